#!/usr/bin/env bash
# What metrics cost: `larder serve` with its Prometheus recorder (the default: every request
# counted and timed, GET /metrics) and with `--no-metrics` (no recorder: every metrics call is a
# no-op), both running at once over one private redis-server and the same data. Rounds rotate
# between the two servers (the order alternates every round) so the machine's noise falls on
# both alike; wrk at 8 connections, one thread. Workloads:
#   gof          POST /get-online-features, 1 entity x 7 features (bench/auth.sh's and
#                bench/retrieval.sh's 1x7)
#   push-replay  POST /push, bench/push.sh's 100-row body sent again and again: after the first
#                request every row has the stored event time and is skipped by the Redis script
#                (counted as not newer)
#   push-fresh   POST /push, the same 100 rows (other drivers) with a new event time on every
#                request (wrk's Lua script puts one in), so every row is written
# Reports per workload and variant the median requests/s and p50 of the rounds, the server's
# CPU per request (from /proc, less noisy than throughput on a busy machine), and the ratios
# metrics on / off: of the medians, and the median of the per-round ratios. At the end it
# scrapes GET /metrics of the metrics-on server (the counters moved) and checks that the
# --no-metrics server does not serve it.
#
#   bench/metrics.sh                        5 rounds of 3 workloads x 2 variants x 10 s (~6 minutes)
#   ROUNDS=9 DURATION=15s bench/metrics.sh
#   WORKLOADS="gof push-replay" bench/metrics.sh
#   PERF=1 bench/metrics.sh                 and then perf-sample both servers once per workload
#   AA=1 bench/metrics.sh                   and a second --no-metrics server in every round: the
#                                           A/A control, how far two identical servers differ
#
# Needs: cargo, redis-server, redis-cli, wrk, curl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dur=${DURATION:-10s}
rounds=${ROUNDS:-5}
drivers=${DRIVERS:-10000}
workloads=${WORKLOADS:-gof push-replay push-fresh}

for tool in redis-server redis-cli wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "metrics.sh: $tool is not installed (scripts/test.sh installs it)" >&2; exit 1; }
done
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
start_redis

echo "== data: $drivers drivers x 7 features (larder materialize)" >&2
repo=$work/driver
mkdir -p "$repo/data"
cp "$root/examples/driver/feature_store.yaml" "$root/examples/driver/features.yaml" "$repo/"
(cd "$repo" && "$bin/larder" example-data --drivers "$drivers" --hours 1 --end 2026-01-01T00:00:00Z >/dev/null)
(cd "$repo" && "$bin/larder" apply >/dev/null)
"$bin/larder" materialize --repo "$repo" 2025-01-01T00:00:00Z 2026-01-02T00:00:00Z >/dev/null
echo "Redis holds $(redis-cli -p "$rport" dbsize) keys" >&2

features='"driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:miles_driven", "driver_hourly_stats:rating", "driver_hourly_stats:city", "driver_hourly_stats:is_active"'
echo "{\"features\": [$features], \"entities\": {\"driver_id\": [1001]}}" >"$work/gof.json"
# bench/push.sh's body (100 drivers, the driver example's 7 features, one event time), and the
# same with @TS@ where the event and created times go, for push-fresh, on other drivers
# (900000-900099: none of the example data's, none of push-replay's, which are newer than BASE).
python3 - "$work/push-replay.json" "$work/push-fresh.json" <<'EOF'
import json, sys
n = 100
for path, ts, first in ((sys.argv[1], "2026-01-01T10:00:00Z", 1000), (sys.argv[2], "@TS@", 900000)):
    df = {"driver_id": [first + i for i in range(n)], "event_timestamp": [ts] * n, "created": [ts] * n,
          "conv_rate": [0.5] * n, "acc_rate": [0.7] * n, "avg_daily_trips": [10] * n, "miles_driven": [12.5] * n,
          "rating": [4.5] * n, "city": ["sf"] * n, "is_active": [True] * n}
    json.dump({"push_source_name": "driver_stats_push_source", "df": df, "to": "online"}, open(path, "w"))
EOF
# A new event time on every request: BASE (Unix seconds, in the past, larger on every run so a
# run never replays an earlier run's rows) plus one second per request.
cat >"$work/push-fresh.lua" <<'LUA'
local path, base = nil, 0
function init(args) path, base = args[1], tonumber(args[2]) end
local n = 0
function request()
  if not _G.parts then
    local f = io.open(path, "r"); local body = f:read("*a"); f:close()
    _G.parts = {}
    for piece in (body .. "@TS@"):gmatch("(.-)@TS@") do table.insert(_G.parts, piece) end
    _G.headers = {["Content-Type"] = "application/json"}
  end
  n = n + 1
  return wrk.format("POST", nil, _G.headers, table.concat(_G.parts, os.date("!%Y-%m-%dT%H:%M:%SZ", base + n)))
end
LUA

serve() { # NAME [ARGS...] -> port on stdout; the PID goes to $work/NAME.pid
  local port name=$1
  shift
  port=$(free_port)
  "$bin/larder" serve --repo "$repo" --port "$port" "$@" >"$work/$name.log" 2>&1 &
  echo "$!" >"$work/$name.pid"
  echo "$port"
}
variants=(on off)
[ -n "${AA:-}" ] && variants+=(off2)
declare -A port spid
for v in "${variants[@]}"; do
  if [ "$v" = on ]; then port[$v]=$(serve "$v"); else port[$v]=$(serve "$v" --no-metrics); fi
  spid[$v]=$(cat "$work/$v.pid")
  pids+=("${spid[$v]}")
done
for v in "${variants[@]}"; do wait_http "http://127.0.0.1:${port[$v]}/health"; done
onport=${port[on]} offport=${port[off]}

secs() { python3 -c "import sys; s=sys.argv[1]; print(float(s[:-1]) * {'s': 1, 'm': 60}[s[-1]])" "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
results=$work/results.txt
: >"$results"
fresh_run=0
run() { # VARIANT WORKLOAD
  local out path args=() c0 c1 rps
  case $2 in
    gof) path=get-online-features; args=(-s "$work/post.lua" -- "$work/gof.json") ;;
    push-replay) path=push; args=(-s "$work/post.lua" -- "$work/push-replay.json") ;;
    push-fresh) path=push; fresh_run=$((fresh_run + 1))
      args=(-s "$work/push-fresh.lua" -- "$work/push-fresh.json" $((1577836800 + fresh_run * 1000000))) ;;
  esac
  c0=$(cpu_ticks "${spid[$1]}")
  out=$(wrk -t1 -c8 -d"$dur" --latency "http://127.0.0.1:${port[$1]}/$path" "${args[@]}" 2>&1)
  c1=$(cpu_ticks "${spid[$1]}")
  if grep -q "Non-2xx" <<<"$out"; then echo "metrics.sh: $1 $2 answered errors:" >&2; echo "$out" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  printf '%s %s %s %s %s\n' "$2" "$1" "$rps" "$(awk '/ 50%/{print $2}' <<<"$out")" \
    "$(python3 -c "import sys; t, r, d = map(float, sys.argv[1:]); print(f'{t / r / d:.1f}')" \
      "$(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) ))" "$rps" "$(secs "$dur")")" | tee -a "$results"
}

echo "== warm-up" >&2
saved_dur=$dur
dur=3s
for w in $workloads; do for v in "${variants[@]}"; do run "$v" "$w" >/dev/null; done; done
dur=$saved_dur
: >"$results"
echo "== $rounds rounds of $dur per variant and workload, 8 connections, order alternating" >&2
echo "workload variant req/s p50 server_cpu_us_per_req"
for i in $(seq "$rounds"); do
  for w in $workloads; do
    order=("${variants[@]}")
    ((i % 2)) || mapfile -t order < <(printf '%s\n' "${variants[@]}" | tac)
    for v in "${order[@]}"; do run "$v" "$w"; done
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "== GET /metrics of the metrics-on server after the rounds"
curl -sf "http://127.0.0.1:$onport/metrics" >"$work/metrics.txt"
grep -E '^larder_(requests_total|push_rows(_written|_not_newer)?_total|feature_answers_total)' "$work/metrics.txt" || true
grep -q '^larder_requests_total{route="/get-online-features",status="200"} [1-9]' "$work/metrics.txt" ||
  { echo "metrics.sh: no get-online-features 200 count in GET /metrics" >&2; exit 1; }
echo "--no-metrics server, GET /metrics: HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$offport/metrics")"

if [ -n "${PERF:-}" ]; then
  # Where the metrics-on server's time goes: perf samples (DWARF call graphs) of each server
  # during one more run per workload; the share of samples under the metrics calls
  # (larder::telemetry::*, the recorder's upkeep and GET /metrics) is what metrics cost in
  # server CPU, free of the machine's noise. Off is the no-op floor (the macros still run).
  # Printed with what that share is in server CPU per request, and in the machine's time per
  # request (all cores over the run's throughput): the throughput metrics can cost at most
  # when the machine is saturated.
  command -v perf >/dev/null || { echo "metrics.sh: PERF is set but perf is not installed" >&2; exit 1; }
  echo
  echo "== perf: share of server samples in metrics code (one ${dur} run per workload and variant)"
  results=$work/perf-runs.txt   # these runs stay out of the summary
  for w in $workloads; do
    for v in on off; do
      perf record -q -F 499 --call-graph dwarf,16384 -p "${spid[$v]}" -o "$work/perf.data" -- sleep "$(secs "$dur")" \
        >/dev/null 2>&1 &
      ppid=$!
      sleep 0.5
      run "$v" "$w" >/dev/null
      wait "$ppid" || true
      read -r _ _ rps _ cpu < <(tail -n1 "$results")
      perf report -i "$work/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
        python3 -c '
import re, sys
w, v, rps, cpu, cores = sys.argv[1:]
total, parts = 0.0, {}
for line in sys.stdin:
    m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
    if not m:
        continue
    sym = m[3]
    if re.fullmatch(r"larder::telemetry::\w+", sym) or re.search(r"PrometheusHandle::(run_upkeep|render)$", sym):
        parts[sym.split("::")[-1]] = float(m[1])
        total += float(m[1])
top = ", ".join(f"{k} {x:.2f}%" for k, x in sorted(parts.items(), key=lambda kv: -kv[1]) if x >= 0.05)
us = total / 100 * float(cpu)
print(f"{w:<12} {v:<3} {total:5.2f}% of server samples = {us:.2f} us/req of server CPU = "
      f"{us / (int(cores) * 1e6 / float(rps)) * 100:.2f}% of the machine per request   ({top})")
' "$w" "$v" "$rps" "$cpu" "$(nproc)"
      rm -f "$work/perf.data"
    done
  done
fi

echo
echo "== summary (medians of $rounds rounds; ratio = metrics on / --no-metrics)"
python3 - "$work/results.txt" "$workloads" "${variants[*]}" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    w, v, rps, p50, cpu = line.split()
    us = float(re.match(r"[\d.]+", p50)[0]) * {"us": 1, "ms": 1000, "s": 1e6}[re.sub(r"[\d.]+", "", p50)]
    rows.setdefault((w, v), []).append((float(rps), us, float(cpu)))
med = lambda xs: statistics.median(xs)
variants = sys.argv[3].split()
for w in sys.argv[2].split():
    for v in variants:
        r = rows[(w, v)]
        print(f"{w:<12} {v:<4} {med(x[0] for x in r):8.0f} req/s  p50 {med(x[1] for x in r):5.0f} us  "
              f"server cpu {med(x[2] for x in r):5.1f} us/req   rounds: {[round(x[0]) for x in r]}")
    # off2 / off is the A/A control: what two identical servers differ by in this run.
    off = rows[(w, "off")]
    for v in [v for v in variants if v != "off"]:
        r = rows[(w, v)]
        paired = sorted(round(a[0] / b[0], 3) for a, b in zip(r, off))
        print(f"{w:<12} {v}/off: throughput {med(x[0] for x in r) / med(x[0] for x in off):.3f} "
              f"(median of per-round ratios {med(paired):.3f}), p50 {med(x[1] for x in r) / med(x[1] for x in off):.3f}, "
              f"server cpu/req {med(x[2] for x in r) / med(x[2] for x in off):.3f}   per-round ratios: {paired}")
EOF
