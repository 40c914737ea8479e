#!/usr/bin/env bash
# Checks that what `sam deploy` would upload runs: builds the three functions exactly as the
# README's deploy commands do (`sam build` from the repo root: cargo lambda, arm64, release),
# checks that each artifact is an aarch64 ELF named bootstrap (get-online-features at most
# 15 MB), then starts each under qemu-aarch64 against the Lambda Runtime API emulator and has it
# answer the sample events of the Lambda tests (tests/tests/*_lambda.rs) against a real Redis:
# the same assertions the debug binaries pass in scripts/test.sh, on the artifacts themselves.
#
#   scripts/check-deploy.sh            build, inspect, run
#
# Installs, only when missing: qemu-user and the arm64 C library (apt), the aarch64 Rust
# target (rustup), and the test virtualenv (SAM CLI, cargo-lambda with zig; scripts/test.sh's
# requirements). The release build goes to $LARDER_LAMBDA_TARGET_DIR (default
# ~/.cache/larder/target-lambda), outside the clone, so a second run only relinks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing+=(libc6-arm64-cross libgcc-s1-arm64-cross)
command -v file >/dev/null || missing+=(file)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

export LARDER_VENV="${LARDER_VENV:-$HOME/.cache/larder/venv}"
if ! [ -x "$LARDER_VENV/bin/sam" ] || ! cmp -s scripts/requirements-test.txt "$LARDER_VENV/.larder-requirements"; then
  log "preparing the test virtualenv in $LARDER_VENV"
  python3 -m venv "$LARDER_VENV"
  "$LARDER_VENV/bin/pip" install -q --upgrade pip
  "$LARDER_VENV/bin/pip" install -q -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt "$LARDER_VENV/.larder-requirements"
fi
export PATH="$LARDER_VENV/bin:$PATH"

# SAM finds the workspace's target directory with `cargo metadata`, which honours this.
export CARGO_TARGET_DIR="${LARDER_LAMBDA_TARGET_DIR:-$HOME/.cache/larder/target-lambda}"
log "sam build (release, arm64; target directory $CARGO_TARGET_DIR)"
rm -rf .aws-sam
sam build
unset CARGO_TARGET_DIR

log "inspecting the artifacts"
artifacts=$(mktemp -d -t larder-artifacts.XXXXXX)
trap 'rm -rf "$artifacts"' EXIT
check() {
  local function=$1 resource=$2 limit=$3 file size
  file=".aws-sam/build/$resource/bootstrap"
  [ -f "$file" ] || { echo "error: $file is missing: sam build did not produce $resource" >&2; exit 1; }
  file -b "$file" | grep -q 'ELF 64-bit.*ARM aarch64' || {
    echo "error: $file is not an aarch64 ELF: $(file -b "$file")" >&2
    exit 1
  }
  size=$(stat -c %s "$file")
  if [ -n "$limit" ] && [ "$size" -gt "$limit" ]; then
    echo "error: $file is $size bytes, over $limit" >&2
    exit 1
  fi
  printf '  %-20s %s bytes  %s\n' "$function" "$size" "$(file -b "$file" | cut -d, -f1-2)"
  mkdir -p "$artifacts/$function"
  ln -s "$PWD/$file" "$artifacts/$function/bootstrap"
}
check get-online-features GetOnlineFeaturesFunction 15000000
check push PushFunction ""
check materialize MaterializeFunction ""

log "running the artifacts under qemu-aarch64 against the Lambda Runtime API emulator and Redis"
export LARDER_FUNCTION_ARTIFACTS="$artifacts"
export LARDER_FUNCTION_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# --workspace (not -p), so the features match scripts/test.sh's build and nothing is compiled again.
cargo test --workspace --test retrieval_lambda --test push_lambda --test materialize_lambda

log "the deployable artifacts build, are arm64 bootstraps and answer their events"
