#!/usr/bin/env bash
# snap_ab.sh: one open-loop 3-node write run for the snapshot-stall A/B (issue 8): fresh cluster,
# fill, open-loop puts at RATE; prints uptime and one JSON line. Bounded: every step has a timeout.
# usage: bench/snap_ab.sh BINARY RATE DURATION_S [serve flags...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$1 RATE=$2 DUR=$3
shift 3
MC=$BIN
source "$ROOT/bench/lib.sh"
bench_scratch snapab
mc_cluster_start c 3 "$@"
EP=$(cat "$WORK/c/endpoints")
timeout 300 "$MC" bench load --endpoints "$EP" --objects 100000 --connections 8 --pipeline 64 >/dev/null
echo "uptime: $(uptime)"
timeout $((DUR + 60)) "$MC" bench --endpoints "$EP" --workload put --connections 64 --pipeline 64 \
    --keys 100000 --rate "$RATE" --duration "$DUR" --json
grep -h -c snapshot_created "$WORK"/c/n*.log 2>/dev/null | paste -sd' ' | sed 's/^/snapshots per node (log lines): /' || true
