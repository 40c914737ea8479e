#!/usr/bin/env bash
# Stream window aggregation benchmarks (docs/aggregations.md), against a private redis-server on
# a free loopback port, with the repo of bench/aggregations/ (one push source feeding three
# stream views of six aggregations each, another feeding three plain views of the same columns):
#
#   bench/aggregations.sh                 all measurements (a few minutes)
#   RECORDS=10000 SENSORS=1000 RUNS=15 READS=3000 bench/aggregations.sh
#
# agg-bench (built with --profile bench-fast) prints:
#   push    a Kinesis batch of RECORDS records (SENSORS sensors) through the push function's
#           handler into the three stream views, the same into the three plain views, and into
#           one view of three count_distinct aggregations,
#           alternating: medians, records/s, Redis CPU per record;
#   read    get-online-features in process, 1 and 100 entities: 7 plain features against 6
#           aggregated + the same 7 plain, alternating: p50, p99 and the p50 ratio;
#   memory  MEMORY USAGE of each view's tile key per entity after two hours of readings every
#           30 s (steady state).
#
# Needs: cargo, redis-server, redis-cli, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
records=${RECORDS:-10000}
sensors=${SENSORS:-1000}
runs=${RUNS:-15}
reads=${READS:-3000}

for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "aggregations.sh: $tool is not installed (scripts/test.sh installs it)" >&2; exit 1; }
done

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
start_redis

mkdir -p "$work/repo/data"
cp "$here/aggregations/features.yaml" "$work/repo/"
cat >"$work/repo/feature_store.yaml" <<YAML
project: agg_bench
registry: data/registry.db
provider: local
online_store: {type: redis, connection_string: "127.0.0.1:$rport"}
offline_store: {type: file}
entity_key_serialization_version: 3
YAML
(cd "$work/repo" && "$bin/larder" apply >/dev/null)
"$bin/agg-bench" --repo "$work/repo" --addr "127.0.0.1:$rport" --records "$records" --sensors "$sensors" \
  --runs "$runs" --reads "$reads"
