#!/usr/bin/env bash
# Larder end to end on one machine, no AWS: builds the `larder` CLI, starts a private Redis on a
# free loopback port, creates the driver example repository, generates data, applies the
# definitions, materializes them into Redis, pushes a fresh row, answers get-online-features
# over HTTP with `larder serve`, and ends with `larder freshness` and `larder get` printing the
# same answer as a table. Installs what is missing on Debian/Ubuntu
# (build tools, curl, redis-server; Rust via rustup).
#
#   scripts/demo.sh [WORKDIR]      (default: a new temporary directory, kept for you to explore)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v curl >/dev/null || missing+=(curl ca-certificates)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (apt)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  step "installing Rust (rustup)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

step "building larder (the first build compiles the AWS SDK and takes several minutes)"
# The same dependency builds as scripts/test.sh's `cargo build --workspace --all-targets`, so
# `make test` after `make demo` compiles no dependency again. Feature unification differs with
# and without dev-dependencies: the benches' criterion turns on either/use_std (under the AWS
# SDK, through bytes-utils) and regex-automata's meta engine (under tracing-subscriber), and a
# plain `cargo build` leaves them off. Selecting examples (there are none) makes Cargo resolve
# with dev-dependencies, without building the test and bench targets.
(cd "$root" && cargo build --workspace --lib --bins --examples --quiet)
larder="$root/target/debug/larder"

work=${1:-$(mktemp -d -t larder-demo.XXXXXX)}
mkdir -p "$work"
port=$(( (RANDOM % 20000) + 30000 ))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$(( (RANDOM % 20000) + 30000 )); done
step "starting a private redis-server on 127.0.0.1:$port"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
serve_pid=
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; kill "$redis_pid" 2>/dev/null; true; }
trap cleanup EXIT
export REDIS_ADDR="127.0.0.1:$port"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

cd "$work"
step "larder init repo"
"$larder" init repo --force
cd repo

step "larder example-data (1000 drivers x 24 hours)"
end=$(date -u +%Y-%m-%dT%H:00:00Z)
"$larder" example-data --drivers 1000 --hours 24 --end "$end"

step "larder plan && larder apply"
"$larder" plan
"$larder" apply

step "larder materialize-incremental $end"
"$larder" materialize-incremental "$end"
echo "Redis now holds $(redis-cli -p "$port" dbsize) entity keys."

step "larder push: a fresh row for driver 1001 on the push-sourced view"
cat >fresh.json <<JSON
{"push_source_name": "driver_stats_push_source",
 "df": {"driver_id": [1001], "event_timestamp": ["$(date -u +%Y-%m-%dT%H:%M:%SZ)"],
        "created": ["$(date -u +%Y-%m-%dT%H:%M:%SZ)"], "conv_rate": [0.99], "acc_rate": [0.98],
        "avg_daily_trips": [42], "miles_driven": [123.4], "rating": [4.9], "city": ["sea"], "is_active": [true]}}
JSON
"$larder" push fresh.json

hport=$(( port + 1 ))
step "larder serve on 127.0.0.1:$hport"
"$larder" serve --port "$hport" >serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$hport/health" >/dev/null && break; sleep 0.1; done
curl -s "http://127.0.0.1:$hport/health"; echo

step "POST /get-online-features: a feature service mixing the batch and the pushed view (HTTP status)"
curl -s -o /dev/null -w '%{http_code}\n' -X POST "http://127.0.0.1:$hport/get-online-features" \
  -H 'content-type: application/json' \
  -d '{"feature_service": "driver_model_v2", "entities": {"driver_id": [1001, 1002, 999999]}, "full_feature_names": true}'

step "larder freshness: newest stored event and last materialization per view"
"$larder" freshness

step "larder get: the same request as a table (--json prints the HTTP body; 999999 has no row)"
"$larder" get --feature-service driver_model_v2 --entity driver_id=1001 --entity driver_id=1002 \
  --entity driver_id=999999 --full-feature-names

step "done"
echo "The repository is in $work/repo; Redis and the server are stopped now."
