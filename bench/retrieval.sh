#!/usr/bin/env bash
# get-online-features benchmarks: `larder serve`, Feast 0.67's `feast serve` and a plain Redis
# client (the limit) measured in one run, on this machine, over one private redis-server on a
# free loopback port (nothing here touches a server it did not start).
#
#   bench/retrieval.sh                      everything (about 8 minutes)
#   DURATION=5s DRIVERS=10000 bench/retrieval.sh
#   SKIP_FEAST=1 bench/retrieval.sh         Larder and raw Redis only
#
# Data: the driver example, DRIVERS (default 100k) drivers x 1 hour, 7 features, applied by
# `feast apply` (so both servers read the registry.db Feast wrote) and loaded into Redis by
# `larder materialize`. Both servers answer from the same registry and the same Redis.
# Shapes (bodies from shared/anchors/feast when present, else generated the same way):
#   1x7     1 entity x 7 features, 1 and 8 connections
#   100x7   100 entities x 7 features, 1 and 8 connections
#   wide    100 entities x 250 features over 25 views (10k entities, a generated repo);
#           Larder and raw Redis only (Feast would need a Python repo of 25 views)
# For every shape, `retrieval-bench` sends the same HMGETs Larder sends, one pipeline per
# request, with a plain Redis client: the time Redis itself needs. During each 8-connection run
# the CPU used by redis-server and by the server under test is sampled from /proc.
# Then: cold start of the get-online-features binary (process start to its first poll of the
# Runtime API, registry from a local file, Redis connected: bench/coldstart.py) and its size.
#
# Needs: cargo, redis-server, redis-cli, wrk, python3 and the test virtualenv with Feast
# ($LARDER_VENV, default ~/.cache/larder/venv; scripts/test.sh prepares it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${LARDER_VENV:-$HOME/.cache/larder/venv}
dur=${DURATION:-15s}
drivers=${DRIVERS:-100000}
skip_feast=${SKIP_FEAST:-}

for tool in redis-server redis-cli wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "retrieval.sh: $tool is not installed (scripts/test.sh installs it)" >&2; exit 1; }
done
[ -n "$skip_feast" ] || [ -x "$venv/bin/feast" ] || { echo "retrieval.sh: no Feast in $venv (run scripts/test.sh, set LARDER_VENV or SKIP_FEAST=1)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
start_redis
# CPU ticks (user + system) of a process and its descendants (feast serve runs its worker as a
# child process).
cpu_ticks() {
  local total c
  total=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0)
  for c in $(pgrep -P "$1"); do total=$(( total + $(cpu_ticks "$c") )); done
  echo "$total"
}
secs() { python3 -c "import sys; s=sys.argv[1]; print(float(s[:-1]) * {'s': 1, 'm': 60}[s[-1]])" "$1"; }

results=$work/results.txt
: >"$results"
# wrk_run NAME PORT BODY CONNECTIONS SERVER_PID: one wrk run, with the CPU share (of one core)
# redis-server and the server used while it ran.
wrk_run() {
  local out r0 s0 r1 s1 t
  r0=$(cpu_ticks "$redis_pid"); s0=$(cpu_ticks "$5")
  out=$(wrk -t1 -c"$4" -d"$dur" --latency -s "$work/post.lua" "http://127.0.0.1:$2/get-online-features" -- "$3" 2>&1)
  r1=$(cpu_ticks "$redis_pid"); s1=$(cpu_ticks "$5")
  if grep -q "Non-2xx" <<<"$out"; then echo "retrieval.sh: $1 answered errors:" >&2; echo "$out" >&2; exit 1; fi
  t=$(secs "$dur")
  printf '%-28s c=%-2s p50 %-9s p99 %-9s %s req/s   cpu: redis %s%%, server %s%%\n' "$1" "$4" \
    "$(awk '/ 50%/{print $2}' <<<"$out")" "$(awk '/ 99%/{print $2}' <<<"$out")" \
    "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(( (r1 - r0) * 100 / $(getconf CLK_TCK) / ${t%.*} ))" "$(( (s1 - s0) * 100 / $(getconf CLK_TCK) / ${t%.*} ))" | tee -a "$results"
}
raw_run() { # NAME REPO BODY CONNECTIONS
  local out r0 r1 t
  t=$(secs "$dur")
  r0=$(cpu_ticks "$redis_pid")
  out=$("$bin/retrieval-bench" --name "$1" --repo "$2" --addr "$REDIS_ADDR" --body "$3" --connections "$4" --duration "$t")
  r1=$(cpu_ticks "$redis_pid")
  printf '%s   cpu: redis %s%%\n' "$out" \
    "$(( (r1 - r0) * 100 / $(getconf CLK_TCK) / ${t%.*} ))" | tee -a "$results"
}

echo "== data: $drivers drivers x 7 features (feast apply, larder materialize)" >&2
repo=$work/driver
cp -r "$root/tests/fixtures/feast_driver_repo" "$repo"
mkdir -p "$repo/data"
(cd "$repo" && "$bin/larder" example-data --drivers "$drivers" --hours 1 --end 2026-01-01T00:00:00Z >/dev/null)
if [ -n "$skip_feast" ]; then
  # Without Feast, the same definitions from the driver example's features.yaml.
  cp "$root/examples/driver/features.yaml" "$repo/" && (cd "$repo" && "$bin/larder" apply >/dev/null)
else
  (cd "$repo" && "$venv/bin/feast" apply >"$work/feast-apply.log" 2>&1)
fi
"$bin/larder" materialize --repo "$repo" --views driver_hourly_stats 2025-01-01T00:00:00Z 2026-01-02T00:00:00Z >/dev/null
echo "Redis holds $(redis-cli -p "$rport" dbsize) keys" >&2

features='"driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:miles_driven", "driver_hourly_stats:rating", "driver_hourly_stats:city", "driver_hourly_stats:is_active"'
echo "{\"features\": [$features], \"entities\": {\"driver_id\": [1001]}}" >"$work/body_1x7.json"
echo "{\"features\": [$features], \"entities\": {\"driver_id\": [$(seq -s, 1000 1099)]}}" >"$work/body_100x7.json"

echo "== wide repo: 10k entities x 25 views x 10 features" >&2
wide=$work/wide
mkdir -p "$wide/data"
cat >"$wide/feature_store.yaml" <<EOF
project: wide_bench
registry: data/registry.db
provider: local
online_store: {type: redis, connection_string: "$REDIS_ADDR"}
offline_store: {type: file}
entity_key_serialization_version: 3
EOF
"$venv/bin/python" - "$wide" <<'EOF'
import sys, datetime
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
root = sys.argv[1]
n = 10_000
ts = pa.array([datetime.datetime(2025, 12, 31, 23, tzinfo=datetime.timezone.utc)] * n, pa.timestamp("us", "UTC"))
cols = {"driver_id": pa.array(np.arange(1000, 1000 + n, dtype=np.int64)), "event_timestamp": ts, "created": ts}
rng = np.random.default_rng(7)
for v in range(25):
    for f in range(10):
        cols[f"v{v:02}_f{f}"] = pa.array(rng.random(n, dtype=np.float32))
pq.write_table(pa.table(cols), f"{root}/data/wide.parquet")
with open(f"{root}/features.yaml", "w") as out:
    out.write("entities:\n  driver: {join_key: driver_id, type: Int64}\n")
    out.write("sources:\n  wide_source: {type: file, path: data/wide.parquet, timestamp_field: event_timestamp, created_timestamp_column: created}\n")
    out.write("feature_views:\n")
    for v in range(25):
        out.write(f"  view_{v:02}:\n    entities: [driver]\n    source: wide_source\n    features:\n")
        for f in range(10):
            out.write(f"      v{v:02}_f{f}: Float32\n")
import json
feats = [f"view_{v:02}:v{v:02}_f{f}" for v in range(25) for f in range(10)]
json.dump({"features": feats, "entities": {"driver_id": list(range(1000, 1100))}}, open(f"{root}/body_wide.json", "w"))
EOF
(cd "$wide" && "$bin/larder" apply >/dev/null)
"$bin/larder" materialize --repo "$wide" 2025-01-01T00:00:00Z 2026-01-02T00:00:00Z >/dev/null

echo "== raw Redis (retrieval-bench: the same HMGET pipelines, a plain client)" >&2
raw_run "raw-hmget 1x7" "$repo" "$work/body_1x7.json" 1
raw_run "raw-hmget 1x7" "$repo" "$work/body_1x7.json" 8
raw_run "raw-hmget 100x7" "$repo" "$work/body_100x7.json" 1
raw_run "raw-hmget 100x7" "$repo" "$work/body_100x7.json" 8
raw_run "raw-hmget wide 100x250" "$wide" "$wide/body_wide.json" 1
raw_run "raw-hmget wide 100x250" "$wide" "$wide/body_wide.json" 8

echo "== larder serve" >&2
lport=$(free_port)
"$bin/larder" serve --repo "$repo" --port "$lport" >"$work/larder-serve.log" 2>&1 &
lpid=$!; pids+=("$lpid")
wait_http "http://127.0.0.1:$lport/health"
wrk_run "larder 1x7" "$lport" "$work/body_1x7.json" 1 "$lpid"
wrk_run "larder 1x7" "$lport" "$work/body_1x7.json" 8 "$lpid"
wrk_run "larder 100x7" "$lport" "$work/body_100x7.json" 1 "$lpid"
wrk_run "larder 100x7" "$lport" "$work/body_100x7.json" 8 "$lpid"
wport=$(free_port)
"$bin/larder" serve --repo "$wide" --port "$wport" >"$work/larder-wide.log" 2>&1 &
wpid=$!; pids+=("$wpid")
wait_http "http://127.0.0.1:$wport/health"
wrk_run "larder wide 100x250" "$wport" "$wide/body_wide.json" 1 "$wpid"
wrk_run "larder wide 100x250" "$wport" "$wide/body_wide.json" 8 "$wpid"

if [ -z "$skip_feast" ]; then
  echo "== feast serve (Feast 0.67, one worker)" >&2
  fport=$(free_port)
  (cd "$repo" && exec "$venv/bin/feast" serve -h 127.0.0.1 -p "$fport" --workers 1 --max-requests 100000000 \
    --no-access-log >"$work/feast-serve.log" 2>&1) &
  fpid=$!; pids+=("$fpid")
  wait_http "http://127.0.0.1:$fport/health"
  # The server is feast's python process: the subshell exec'd it.
  wrk_run "feast 1x7" "$fport" "$work/body_1x7.json" 1 "$fpid"
  wrk_run "feast 1x7" "$fport" "$work/body_1x7.json" 8 "$fpid"
  wrk_run "feast 100x7" "$fport" "$work/body_100x7.json" 1 "$fpid"
  wrk_run "feast 100x7" "$fport" "$work/body_100x7.json" 8 "$fpid"
fi

echo "== get-online-features cold start and size" >&2
LARDER_REPO=$repo python3 "$here/coldstart.py" "$bin/get-online-features" "${COLD_RUNS:-15}" | tail -1 | tee -a "$results"
strip -o "$work/gof.stripped" "$bin/get-online-features"
printf 'get-online-features binary (x86_64, bench-fast profile, stripped): %s MB\n' \
  "$(python3 -c "import os,sys; print(round(os.path.getsize(sys.argv[1]) / 1e6, 1))" "$work/gof.stripped")" | tee -a "$results"

echo
echo "== summary"
cat "$results"
python3 - "$results" <<'EOF'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) (.+?)\s+c=(\d+)\s+p50 (\S+)\s+p99 (\S+)\s+([\d.]+) req/s", line)
    if m:
        rows[(m[1].split("-")[0], m[2].strip(), int(m[3]))] = (m[4], float(m[6]))
def us(t):
    v = float(re.match(r"[\d.]+", t)[0])
    return v * {"us": 1, "ms": 1000, "s": 1e6}[re.sub(r"[\d.]+", "", t)]
print()
for shape in ["1x7", "100x7", "wide 100x250"]:
    for c in (1, 8):
        l, r, f = rows.get(("larder", shape, c)), rows.get(("raw", shape, c)), rows.get(("feast", shape, c))
        if not l:
            continue
        parts = [f"{shape:<13} c={c}: larder p50 {l[0]}, {l[1]:.0f} req/s"]
        if r:
            parts.append(f"p50 {us(l[0]) / us(r[0]):.2f}x raw Redis")
        if f:
            parts.append(f"throughput {l[1] / f[1]:.1f}x Feast, p50 {us(f[0]) / us(l[0]):.1f}x lower")
        print("; ".join(parts))
EOF
