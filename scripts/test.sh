#!/usr/bin/env bash
# Runs every check and test of Larder, installing what is missing first.
#
#   scripts/test.sh            format check, clippy, then every test (unit, handler, real peers;
#                              every CLI command runs as a user runs it: cli_lifecycle.rs, cli_operator.rs)
#   scripts/test.sh --quick    unit tests of the larder crate only
#
# Then the deployable artifacts: scripts/check-deploy.sh builds them as `sam build` does and runs
# them under qemu-aarch64 (LARDER_SKIP_DEPLOY_CHECK=1 skips it, for a quicker local run), and
# every fuzz target runs for 10 seconds (scripts/fuzz.sh; LARDER_SKIP_FUZZ=1 skips it).
#
# Installs, only when missing: redis-server, redis-tools, openssl, wrk (apt), cargo-machete,
# cargo-mutants (scripts/mutants.sh),
# the nightly toolchain and cargo-fuzz (scripts/fuzz.sh),
# and a virtualenv ($LARDER_VENV, default ~/.cache/larder/venv) with Feast 0.67, moto_server,
# cargo-lambda, cfn-lint, cfn-lint-serverless, SAM CLI and jsonata-python
# (scripts/requirements-test.txt); infra/lint.sh keeps checkov in a virtualenv of its own. Tests start their own servers on free loopback
# ports and stop them (tests/src/peers.rs), even when a test panics or the test binary is
# killed; the run fails if any process it started outlives it. Nothing here touches a server it
# did not start.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # A Debian redis-server package starts a system service; tests never use it.
}

install_venv() {
  export LARDER_VENV="${LARDER_VENV:-$HOME/.cache/larder/venv}"
  local stamp="$LARDER_VENV/.larder-requirements"
  if [ -x "$LARDER_VENV/bin/python" ] && cmp -s scripts/requirements-test.txt "$stamp"; then
    return
  fi
  log "preparing the test virtualenv in $LARDER_VENV (Feast, moto, cargo-lambda, SAM CLI, template linters)"
  python3 -m venv "$LARDER_VENV" || { sudo_if_needed apt-get install -y -qq python3-venv >/dev/null; python3 -m venv "$LARDER_VENV"; }
  "$LARDER_VENV/bin/pip" install -q --upgrade pip
  "$LARDER_VENV/bin/pip" install -q -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt "$stamp"
}

quick=false
[ "${1:-}" = "--quick" ] && quick=true

if $quick; then
  cargo test -p larder
  exit 0
fi

install_apt
install_venv
export PATH="$LARDER_VENV/bin:$PATH"

log "cargo fmt --check"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)   # the fuzz targets are a workspace of their own

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "module cycles (scripts/check-module-cycles.py)"
python3 scripts/check-module-cycles.py

log "unused dependencies (cargo machete)"
command -v cargo-machete >/dev/null || cargo install --quiet --locked cargo-machete@0.9.2
cargo machete

# cfn-lint, cfn-lint's serverless rules, `sam validate --lint` and checkov (in its own virtualenv,
# made by the script), each clean; suppressions are justified beside them in the template.
log "template linters (infra/lint.sh)"
infra/lint.sh

# Tests run the workspace's binaries themselves (`larder serve`, the functions under the Lambda
# emulator); `cargo test` builds binaries only for their own package's tests, so build every
# target first (with --all-targets, so the features match the test build and nothing is
# compiled twice; scripts/demo.sh builds the same dependencies).
log "cargo build (the binaries the tests run)"
cargo build --workspace --all-targets

# Every process the tests start carries this run's LARDER_TEST_RUN in its environment (children
# inherit it). Whatever still carries it once `cargo test` has returned outlived the run: list
# it, kill it (it is ours) and fail. Zombies have no environment left and are not counted.
run_id=$(cat /proc/sys/kernel/random/uuid)
survivors() { grep -lzxF "LARDER_TEST_RUN=$run_id" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true; }
nothing_outlives_the_tests() {
  local pids pid
  # A test binary killed by a signal leaves its peers to its reaper, which needs a moment.
  for _ in $(seq 50); do
    pids=$(survivors)
    [ -z "$pids" ] && return 0
    sleep 0.1
  done
  echo "error: processes started by the tests outlived them:" >&2
  for pid in $pids; do
    printf '  %s (parent %s): %s\n' "$pid" "$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" \
      "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
  done
  # shellcheck disable=SC2046
  kill -KILL $(survivors) 2>/dev/null || true
  return 1
}
# Also when the tests fail (set -e exits the script).
trap 'nothing_outlives_the_tests || exit 1' EXIT

log "cargo test (unit, handler and real-peer tests)"
LARDER_TEST_RUN=$run_id cargo test --workspace --all-targets --no-fail-fast

trap - EXIT
log "checking that no process the tests started outlived them"
nothing_outlives_the_tests

# Mutation testing of the core modules' lines changed since the last landed commit
# (.ci/mutants-base; docs/testing.md): every mutant there must be caught by a unit test or be
# excluded with a reason in .cargo/mutants.toml. A few minutes for a typical change, on the
# build the tests just made. LARDER_SKIP_MUTANTS=1 skips it; scripts/mutants.sh alone runs all.
if [ "${LARDER_SKIP_MUTANTS:-}" != 1 ]; then
  log "mutation testing of changed core code (scripts/mutants.sh --in-diff)"
  scripts/mutants.sh --in-diff
fi

if [ "${LARDER_SKIP_DEPLOY_CHECK:-}" != 1 ]; then
  log "deployable artifacts (scripts/check-deploy.sh)"
  scripts/check-deploy.sh
fi

# Every decoder of outside input under libFuzzer for a few seconds each, after replaying the
# inputs earlier runs found (docs/fuzzing.md; LARDER_SKIP_FUZZ=1 skips it, for a quicker local
# run). The build is the slow part (about 7 minutes cold on 2 cores); the runs take 2.
# A target with an open finding (an input under fuzz/known/<target>/, listed in docs/fuzzing.md
# with what is left to fix) is left out here, so a bug already on record cannot fail every run;
# `scripts/fuzz.sh` alone still fuzzes it.
if [ "${LARDER_SKIP_FUZZ:-}" != 1 ]; then
  targets=()
  for t in $(scripts/fuzz.sh --list); do
    if [ -d "fuzz/known/$t" ]; then
      log "not fuzzing $t here: an open finding is on record (docs/fuzzing.md, fuzz/known/$t)"
    else
      targets+=("$t")
    fi
  done
  log "fuzzing every other decoder (scripts/fuzz.sh ${LARDER_FUZZ_SECONDS:-10})"
  scripts/fuzz.sh "${LARDER_FUZZ_SECONDS:-10}" "${targets[@]}"
fi

log "all checks passed"
