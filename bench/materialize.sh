#!/usr/bin/env bash
# Materialization: Larder against Feast 0.67 on the same parquet file and the same Redis.
#
#   bench/materialize.sh                 1M rows (100k drivers x 10 hours), Feast and Larder
#   bench/materialize.sh --scale         also Larder alone on 10M rows two ways:
#                                        100k drivers x 100 hours (10x rows, same entities) and
#                                        1M drivers x 10 hours (10x rows, 10x entities)
# Env: REPEAT (runs per measurement, default 3; medians are printed), LARDER_VENV (the test
#      virtualenv with Feast; default ~/.cache/larder/venv), SKIP_FEAST=1.
#
# The workload is the example repo (tests/fixtures/feast_driver_repo): two feature views over one
# file of driver stats, 7 features each, so a run writes 2 x (distinct drivers) hashes rows.
# Each measurement starts from an empty Redis (FLUSHALL) and reports wall time and peak RSS
# (/usr/bin/time -f "%e %M"). Both tools read the registry `feast apply` wrote.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${LARDER_VENV:-$HOME/.cache/larder/venv}
repeat=${REPEAT:-3}
scale=false; [ "${1:-}" = "--scale" ] && scale=true

echo "building larder (profile bench-fast)..." >&2
# The whole workspace, as the other bench scripts: one feature set, one build of the dependencies.
(cd "$root" && cargo build -q --profile bench-fast --workspace --bins)
larder="$root/target/bench-fast/larder"

work=$(mktemp -d)
cleanup() { [ -n "${rds:-}" ] && kill "$rds" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 & rds=$!
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_ADDR=127.0.0.1:$port

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# measure NAME CMD...: runs REPEAT times from an empty Redis; prints "seconds peak_MiB keys".
measure() {
  local name=$1; shift
  : >"$work/$name.times"
  for _ in $(seq "$repeat"); do
    redis-cli -p "$port" flushall >/dev/null
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
    cat "$work/t" >>"$work/$name.times"
  done
  local s mb
  s=$(awk '{print $1}' "$work/$name.times" | median)
  mb=$(awk '{print $2/1024}' "$work/$name.times" | median)
  printf '%s %s %s\n' "$s" "$mb" "$(redis-cli -p "$port" dbsize)"
}

# setup DRIVERS HOURS: a fresh repo with its data file and a registry from `feast apply`.
setup() {
  rm -rf "$work/repo"
  cp -r "$root/tests/fixtures/feast_driver_repo" "$work/repo"
  mkdir -p "$work/repo/data"
  "$larder" example-data --drivers "$1" --hours "$2" --end 2026-11-20T00:00:00Z --out "$work/repo/data/driver_stats.parquet" >/dev/null
  (cd "$work/repo" && "$venv/bin/feast" apply >/dev/null 2>&1)
}

window=(2000-01-01T00:00:00 2030-01-01T00:00:00)
row() { printf '%-34s %10s rows %8s s %8s MiB %9s keys\n' "$@"; }

echo "redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port; $(nproc) CPUs; medians of $repeat runs"
setup 100000 10
if [ "${SKIP_FEAST:-0}" != 1 ]; then
  read -r fs fm fk < <(cd "$work/repo" && measure feast "$venv/bin/feast" materialize "${window[@]}")
  row "feast materialize (1M)" 1000000 "$fs" "$fm" "$fk"
fi
read -r ls lm lk < <(cd "$work/repo" && measure larder "$larder" materialize --repo . "${window[@]}")
row "larder materialize (1M)" 1000000 "$ls" "$lm" "$lk"
if [ "${SKIP_FEAST:-0}" != 1 ]; then
  awk -v fs="$fs" -v ls="$ls" -v fm="$fm" -v lm="$lm" \
    'BEGIN { printf "ratio: %.1fx faster, %.1fx less peak memory (targets: >= 20x, >= 5x)\n", fs/ls, fm/lm }'
fi

if $scale; then
  setup 100000 100
  read -r s m k < <(cd "$work/repo" && measure larder10 "$larder" materialize --repo . "${window[@]}")
  row "larder (10M rows, 100k drivers)" 10000000 "$s" "$m" "$k"
  setup 1000000 10
  read -r s m k < <(cd "$work/repo" && measure larder10e "$larder" materialize --repo . "${window[@]}")
  row "larder (10M rows, 1M drivers)" 10000000 "$s" "$m" "$k"
fi
