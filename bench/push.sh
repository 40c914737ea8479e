#!/usr/bin/env bash
# Push benchmarks: Larder and Feast 0.67 measured in the same run, on this machine, against a
# private redis-server on a free loopback port (nothing here touches a server it did not start).
#
#   bench/push.sh                  all measurements (about 3 minutes)
#   DURATION=30s RUNS=25 bench/push.sh
#
# Larder (built with --profile bench-fast):
#   1. a Kinesis batch of 10,000 single-row records through the push function's handler, in
#      process, from the raw event bytes to Redis (push-bench end-to-end), and the same with a
#      store that drops writes (push-bench decode): the decode-only figure;
#   2. POST /push with 100 rows through `larder serve` with wrk, 1 and 8 connections;
#   3. POST /push with 100 rows in process (api::handle), fresh event times on every request.
# Feast 0.67 (the test virtualenv's `feast serve`, one worker): POST /push with the same
# 100-row body through wrk, 1 and 8 connections. Rows/s = requests/s x 100.
#
# The wrk body is the same for both servers and is sent again and again, so after the first
# request every row has the stored event time and is skipped by both (Feast compares in
# Python after an HMGET; Larder in its Redis script). push-bench's in-process figure uses a
# new event time per request, so every row is written.
#
# Needs: cargo, redis-server, redis-cli, wrk, python3, and the test virtualenv with Feast
# ($LARDER_VENV, default ~/.cache/larder/venv; scripts/test.sh prepares it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${LARDER_VENV:-$HOME/.cache/larder/venv}
dur=${DURATION:-15s}
runs=${RUNS:-15}
records=${RECORDS:-10000}

for tool in redis-server redis-cli wrk python3; do
  command -v "$tool" >/dev/null || { echo "push.sh: $tool is not installed (scripts/test.sh installs it)" >&2; exit 1; }
done
[ -x "$venv/bin/feast" ] || { echo "push.sh: no Feast in $venv (run scripts/test.sh or set LARDER_VENV)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
start_redis

# The same body for both servers: 100 drivers, the driver example's 7 features.
python3 - "$work/push_100.json" <<'EOF'
import json, sys
n = 100
ts = "2026-01-01T10:00:00Z"
df = {"driver_id": [1000 + i for i in range(n)], "event_timestamp": [ts] * n, "created": [ts] * n,
      "conv_rate": [0.5] * n, "acc_rate": [0.7] * n, "avg_daily_trips": [10] * n, "miles_driven": [12.5] * n,
      "rating": [4.5] * n, "city": ["sf"] * n, "is_active": [True] * n}
json.dump({"push_source_name": "driver_stats_push_source", "df": df, "to": "online"}, open(sys.argv[1], "w"))
EOF

results=$work/results.txt
: >"$results"
wrk_push() { # name port connections
  local out rps
  out=$(wrk -t1 -c"$3" -d"$dur" --latency -s "$work/post.lua" "http://127.0.0.1:$2/push" -- "$work/push_100.json" 2>&1)
  if grep -q "Non-2xx" <<<"$out"; then echo "push.sh: $1 answered errors:" >&2; echo "$out" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  printf '%-8s POST /push 100 rows  c=%-2s p50 %-9s p99 %-9s %9s req/s %10.0f rows/s\n' "$1" "$3" \
    "$(awk '/ 50%/{print $2}' <<<"$out")" "$(awk '/ 99%/{print $2}' <<<"$out")" "$rps" "$(awk -v r="$rps" 'BEGIN{print r*100}')" | tee -a "$results"
}

echo "== Larder" >&2
cp -r "$root/examples/driver" "$work/larder"
(cd "$work/larder" && "$bin/larder" apply >/dev/null)
"$bin/push-bench" --repo "$work/larder" --records "$records" --runs "$runs" | tee "$work/push-bench.txt"
redis-cli -p "$rport" flushall >/dev/null
lport=$(free_port)
"$bin/larder" serve --repo "$work/larder" --port "$lport" >"$work/larder-serve.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$lport/health"
wrk_push larder "$lport" 1
wrk_push larder "$lport" 8

echo "== Feast 0.67" >&2
redis-cli -p "$rport" flushall >/dev/null
cp -r "$root/tests/fixtures/feast_driver_repo" "$work/feast"
mkdir -p "$work/feast/data"
# feast apply reads the batch source's parquet; the example data generator writes one.
(cd "$work/feast" && "$bin/larder" example-data --drivers 100 --hours 1 >/dev/null)
(cd "$work/feast" && "$venv/bin/feast" apply >"$work/feast-apply.log" 2>&1)
fport=$(free_port)
(cd "$work/feast" && exec "$venv/bin/feast" serve -h 127.0.0.1 -p "$fport" --workers 1 --max-requests 100000000 \
  --no-access-log >"$work/feast-serve.log" 2>&1) &
pids+=($!)
wait_http "http://127.0.0.1:$fport/health"
wrk_push feast "$fport" 1
wrk_push feast "$fport" 8

echo
echo "== Summary (medians of runs; wrk over $dur)"
cat "$work/push-bench.txt"
cat "$results"
python3 - "$work/push-bench.txt" "$results" <<'EOF'
import re, sys
bench = open(sys.argv[1]).read()
wrk = open(sys.argv[2]).read().splitlines()
def rows(line): return float(re.search(r"([\d.]+) rows/s", line).group(1))
def find(lines, *words): return next((l for l in lines if all(w in l for w in words)), None)
feast = {c: rows(find(wrk, "feast", f"c={c} ")) for c in ("1", "8")}
best_feast = max(feast.values())
print(f"Feast best: {best_feast:,.0f} rows/s")
for label, words in [("Kinesis batch end to end", ("end to end",)), ("Kinesis batch decode only", ("decode only",)),
                     ("POST /push in process", ("in process",))]:
    l = find(bench.splitlines(), *words)
    if l:
        r = float(re.search(r"\(\s*([\d.]+) rows/s\)", l).group(1))
        print(f"{label:<28} {r:>10,.0f} rows/s  = {r / best_feast:5.1f}x Feast's best HTTP push")
for c in ("1", "8"):
    l = rows(find(wrk, "larder", f"c={c} "))
    print(f"POST /push via larder serve c={c}: {l:>10,.0f} rows/s  = {l / feast[c]:5.1f}x Feast at c={c}")
EOF
