#!/usr/bin/env bash
# Every benchmark, one after the other (the machine is small: running them at once would
# measure their contention). Each script starts its own redis-server on a free loopback port
# and measures Feast 0.67 (from the test virtualenv) in the same run where it applies.
# Output goes to stdout and to bench/results/<script>.txt; BENCHMARKS.md quotes them.
#
#   bench/run-all.sh              about 25 minutes after the first bench-fast build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/results"
run() { echo; echo "######## $*"; "$@" 2>&1 | tee "$here/results/$(basename "$1" .sh).txt"; }
run "$here/online_store.sh"
run "$here/retrieval.sh"
run "$here/push.sh"
run "$here/materialize.sh" --scale
run "$here/auth.sh"
run "$here/metrics.sh"
run "$here/aggregations.sh"
echo; echo "######## criterion: handler alone"
(cd "$here/.." && cargo bench --workspace --profile bench-fast --bench handler -- --noplot 2>&1 | grep -E 'handler|time:' | tee "$here/results/handler.txt")
