#!/usr/bin/env bash
# Fuzzes every decoder of Larder's input with cargo fuzz (libFuzzer); docs/fuzzing.md says what
# each target covers, which limits bound the input, and how to run longer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   replay fuzz/regressions/, then fuzz each target
#                                           (default: all) for SECONDS (default 60) from its
#                                           seeds in fuzz/corpus/
#   scripts/fuzz.sh --seeds                 rewrite the seed corpora (fuzz/examples/make_seeds.rs)
#   scripts/fuzz.sh --list                  the targets
#
# Installs, only when missing: the nightly toolchain (cargo fuzz needs it) and cargo-fuzz.
# LARDER_FUZZ_RELEASE=1 builds optimized with AddressSanitizer (cargo fuzz's default: slower to
# build, faster to run; for long runs); the default is an unoptimized build without a sanitizer,
# which builds in about half the time and still finds every panic, overflow (overflow checks
# are on), hang and runaway allocation, the failures safe Rust code can have.
# LARDER_FUZZ_TARGET_DIR (default target/fuzz) keeps the build between runs.
#
# A finding fails the run: the input is saved under fuzz/artifacts/<target>/, and the script
# prints how to reproduce it. Fix it, then copy the input into fuzz/regressions/<target>/ (every
# run replays those first) and add a test at the decoder that fails without the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^larder-fuzz$'; }

install_tools() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz@0.13.2
}

case "${1:-}" in
  --list) targets; exit 0 ;;
  --seeds)
    log "writing the seed corpora into fuzz/corpus/"
    (cd fuzz && cargo run --quiet --example make_seeds)
    exit 0
    ;;
esac

seconds="${1:-60}"
shift || true
case "$seconds" in '' | *[!0-9]*) echo "scripts/fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
selected=("$@")
[ ${#selected[@]} -gt 0 ] || mapfile -t selected < <(targets)
for t in "${selected[@]}"; do
  targets | grep -qx "$t" || { echo "scripts/fuzz.sh: no fuzz target '$t' (scripts/fuzz.sh --list)" >&2; exit 2; }
done

install_tools
target_dir="${LARDER_FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
build=(--target-dir "$target_dir")
if [ "${LARDER_FUZZ_RELEASE:-0}" = 1 ]; then
  build+=(--release --sanitizer address)
else
  build+=(--dev --sanitizer none)
fi

log "building the fuzz targets (cargo +nightly fuzz build ${build[*]})"
(cd fuzz && cargo +nightly fuzz build "${build[@]}")

work="$target_dir/corpus"
failed=()
for t in "${selected[@]}"; do
  mkdir -p "$work/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # libFuzzer: -timeout is per input (a hang), -rss_limit_mb bounds memory, -max_len the input.
  opts=(-timeout=10 -rss_limit_mb=2048 -max_len=1048576 -artifact_prefix="$PWD/fuzz/artifacts/$t/" -print_final_stats=1)
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    log "$t: replaying fuzz/regressions/$t"
    if ! (cd fuzz && cargo +nightly fuzz run "${build[@]}" "$t" "../fuzz/regressions/$t" -- -runs=0 "${opts[@]}"); then
      failed+=("$t (a regression input fails again)")
      continue
    fi
  fi
  log "$t: ${seconds}s from fuzz/corpus/$t"
  # The first folder is the working corpus libFuzzer adds to; the seeds stay as committed.
  if ! (cd fuzz && cargo +nightly fuzz run "${build[@]}" "$t" "$work/$t" "../fuzz/corpus/$t" -- \
      -max_total_time="$seconds" "${opts[@]}" 2>&1 | tail -n 40); then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "fuzzing found failures in: ${failed[*]}"
  echo "inputs are in fuzz/artifacts/<target>/; reproduce one with"
  echo "  (cd fuzz && cargo +nightly fuzz run ${build[*]} <target> ../fuzz/artifacts/<target>/<file>)"
  echo "then fix it, copy the input to fuzz/regressions/<target>/ and add a test (docs/fuzzing.md)"
  exit 1
fi
log "fuzzing: ${#selected[@]} targets, ${seconds}s each, no failure"
