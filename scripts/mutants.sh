#!/usr/bin/env bash
# Mutation testing of Larder's core modules with cargo-mutants: each mutant is a small change to
# the code (an operator flipped, a match arm deleted, a function made to return a default) that
# a test must notice. A mutant no test notices ("missed") is a gap: kill it with a test, or, if
# it cannot change behaviour, exclude it in .cargo/mutants.toml and say why in docs/testing.md.
#
#   scripts/mutants.sh                   every mutant of the core modules, against the larder
#                                        crate's unit tests (about 2 hours on 2 cores)
#   scripts/mutants.sh --in-diff [BASE]  only mutants on lines changed since BASE (default: the
#                                        commit in .ci/mutants-base); scripts/test.sh runs this
#   scripts/mutants.sh --store           the newest-wins stores (memory.rs, script.rs) against the
#                                        online-store conformance suite on a real Redis and the
#                                        unit tests (about 45 s a mutant: 90 minutes)
#   scripts/mutants.sh FILE...           these files only (paths from the repository root)
#
# Mutants are applied in the source tree itself (--in-place), one at a time, each restored
# before the next, so the build reuses target/; do not edit files while it runs. Results are in
# target/mutants/ (missed.txt, caught.txt, ...). Exits non-zero if any mutant is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  echo "installing cargo-mutants $version" >&2
  cargo install --quiet --locked "cargo-mutants@$version"
fi

# The modules whose mistakes would corrupt data or answers: key and value bytes, times,
# retrieval, what materialization selects and scans, and how pushed rows are converted.
core=(shared/src/keys.rs shared/src/time.rs 'shared/src/value/*.rs' 'shared/src/retrieval/*.rs'
  shared/src/materialize/select.rs shared/src/materialize/scan.rs shared/src/push/convert.rs)
store=(shared/src/online/memory.rs shared/src/online/redis/script.rs)

files=("${core[@]}")
extra=()
tests=(--test-package larder -- --lib)
case "${1:-}" in
  --in-diff)
    base=${2:-$(cat .ci/mutants-base 2>/dev/null || echo HEAD~1)}
    if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
      echo "mutants.sh: base $base is not in this clone's history; nothing to compare with" >&2
      exit 0
    fi
    mkdir -p target
    git diff "$base" -- "${core[@]}" >target/mutants.diff
    if [ ! -s target/mutants.diff ]; then
      echo "mutants.sh: no core module changed since $base"
      exit 0
    fi
    extra=(--in-diff target/mutants.diff)
    ;;
  --store)
    files=("${store[@]}")
    # The conformance suites (in the larder-tests package) and the larder unit tests (the Redis
    # store's call splitting is tested there). cargo-mutants 27.1 runs `cargo test
    # --package=larder` whatever --test-package or --test-workspace say, so the other package
    # goes in the arguments it passes on to cargo test.
    tests=(-- --package larder-tests --lib --test online_memory --test online_redis)
    ;;
  "") ;;
  *) files=("$@") ;;
esac

args=()
for f in "${files[@]}"; do args+=(-f "$f"); done
exec cargo mutants --in-place -p larder "${args[@]}" "${extra[@]}" --timeout 300 --output target/mutants "${tests[@]}"
