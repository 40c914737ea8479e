#!/usr/bin/env bash
# The Redis online store against Redis itself, on one private redis-server this script starts
# on a free loopback port (and stops):
#   writes: Larder's newest-wins write of 100k distinct keys x 7 features, vs redis-benchmark
#           -P 64 running an EVAL of the same shape (one HGET + one 8-field HSET);
#   reads:  read_views of 100 keys x 7 features (one pipelined round trip) vs redis-benchmark
#           with 100 pipelined 8-field HMGETs from one client; and 1 key vs one HMGET.
# Runs are interleaved (reference, Larder, reference, Larder...) so background noise hits
# both; medians of RUNS runs and their ratios are printed.
# Usage: bench/online_store.sh [RUNS]          (default 5)
# Env:   RUNTIME=current|multi (Larder's tokio scheduler, default current)
# Needs: redis-server, redis-benchmark, redis-cli (apt-get install -y redis-server redis-tools).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
runtime=${RUNTIME:-current}

cd "$root"
(cd "$root" && cargo build --quiet --profile bench-fast --workspace --bins)
bin="$root/target/bench-fast/online_store"

work=$(mktemp -d)
cleanup() { [ -n "${rds:-}" ] && kill "$rds" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
rds=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
addr="127.0.0.1:$port"

rb() { # redis-benchmark ... -> requests per second
  redis-benchmark -h 127.0.0.1 -p "$port" --csv "$@" | awk -F'","' 'NR==2 {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
larder() { "$bin" --addr "$addr" --runtime "$runtime" "$@"; }

# The reference script: what newest-wins must do at least (read _ts, write 8 fields), no more.
ref_lua="local t = redis.call('HGET', KEYS[1], ARGV[1]) redis.call('HSET', KEYS[1], unpack(ARGV)) return 1"
ref_args=(1 "key:__rand_int__" "_ts:driver_hourly_stats" "$(printf '\x08\x80\xd2\xca\xac\x06')"
  f1 5aaaa f2 5bbbb f3 ccc f4 9dddddddd f5 5eeee f6 4fff f7 2g)

: >"$work/w_ref"; : >"$work/w_lar"; : >"$work/r100_ref"; : >"$work/r100_lar"; : >"$work/r1_ref"; : >"$work/r1_lar"
for i in $(seq "$runs"); do
  echo "run $i/$runs" >&2
  redis-cli -p "$port" flushall >/dev/null
  rb -r 100000 -n 200000 -P 64 EVAL "$ref_lua" "${ref_args[@]}" >>"$work/w_ref"
  larder write --rows 100000 --runs 1 | awk -F= '/median/ {print $NF}' >>"$work/w_lar"
done

redis-cli -p "$port" flushall >/dev/null
larder setup-reference --keys 100000 >/dev/null
hm=(HMGET "key:__rand_int__" f1 f2 f3 f4 f5 f6 f7 f8)
for i in $(seq "$runs"); do
  echo "read run $i/$runs" >&2
  # 100 pipelined HMGETs from one client: one round trip per 100 commands.
  rps=$(rb -r 100000 -c 1 -P 100 -n 200000 "${hm[@]}")
  awk -v r="$rps" 'BEGIN {printf "%.1f\n", 100 / r * 1e6}' >>"$work/r100_ref"
  larder read --keys 100 --calls 2000 --runs 1 | awk -F= '/median/ {print $NF}' >>"$work/r100_lar"
  rps=$(rb -r 100000 -c 1 -P 1 -n 50000 "${hm[@]}")
  awk -v r="$rps" 'BEGIN {printf "%.1f\n", 1 / r * 1e6}' >>"$work/r1_ref"
  larder read --keys 1 --calls 20000 --runs 1 | awk -F= '/median/ {print $NF}' >>"$work/r1_lar"
done

w_ref=$(median <"$work/w_ref"); w_lar=$(median <"$work/w_lar")
r100_ref=$(median <"$work/r100_ref"); r100_lar=$(median <"$work/r100_lar")
r1_ref=$(median <"$work/r1_ref"); r1_lar=$(median <"$work/r1_lar")
echo
echo "redis-server $(redis-server --version | awk '{print $3}'), $(nproc) cores, $runs runs, Larder runtime: $runtime"
echo "all runs: writes ref [$(paste -sd' ' "$work/w_ref")] larder [$(paste -sd' ' "$work/w_lar")]"
echo "          reads 100 ref [$(paste -sd' ' "$work/r100_ref")] larder [$(paste -sd' ' "$work/r100_lar")]"
echo "          reads 1   ref [$(paste -sd' ' "$work/r1_ref")] larder [$(paste -sd' ' "$work/r1_lar")]"
printf '%-44s %14s %14s %8s %s\n' "workload" "redis-bench" "larder" "ratio" "target"
awk -v a="$w_ref" -v b="$w_lar" 'BEGIN {printf "%-44s %11.0f/s %11.0f/s %8.2f %s\n", "write 100k keys x 7 (newest wins), rows/s", a, b, b / a, ">= 0.80"}'
awk -v a="$r100_ref" -v b="$r100_lar" 'BEGIN {printf "%-44s %11.1fus %11.1fus %8.2f %s\n", "read 100 keys x 7, one round trip", a, b, b / a, "<= 2.0"}'
awk -v a="$r1_ref" -v b="$r1_lar" 'BEGIN {printf "%-44s %11.1fus %11.1fus %8.2f %s\n", "read 1 key x 7", a, b, b / a, "<= 1.5"}'
