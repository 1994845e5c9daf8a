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
mc_cluster_start c 3 --log-level info "$@"
EP=$(cat "$WORK/c/endpoints")
timeout 300 "$MC" bench load --endpoints "$EP" --objects 100000 --connections 8 --pipeline 64 >/dev/null
echo "uptime: $(uptime)"
metrics() { for h in $(cat "$WORK/c/http"); do curl -s "http://$h/metrics" | grep -E '^metacenter_wal_fsync_duration_seconds_(bucket|count)' >"$WORK/$1.$h"; done; }
metrics before
# machine-wide Dirty+Writeback (kB) every 100 ms while the run lasts (bounded by DUR)
(for ((k = 0; k < DUR * 10 + 20; k++)); do awk '/^(Dirty|Writeback):/ {s += $2} END {print s}' /proc/meminfo; sleep 0.1; done >"$WORK/dirty") &
DPID=$!
timeout $((DUR + 60)) "$MC" bench --endpoints "$EP" --workload put --connections 64 --pipeline 64 \
    --keys 100000 --rate "$RATE" --duration "$DUR" --json
kill $DPID 2>/dev/null || true
echo "machine Dirty+Writeback max during run: $(sort -n "$WORK/dirty" | tail -1) kB"
metrics after
for i in 1 2 3; do
    # snapshot count and the slowest steps, per node (info log); WAL fsync max from /metrics
    echo "n$i snapshots: $(grep -c 'msg=snapshot_created path' "$WORK/c/n$i.log" || true)" \
        "$(grep 'msg=snapshot_created index' "$WORK/c/n$i.log" | grep -o 'image=[0-9]* sync_ms=[0-9]*' | tr '\n' ';' | cut -c1-300)"
    h=$(cut -d' ' -f$i "$WORK/c/http")
    python3 "$ROOT/bench/snap_hist.py" "n$i wal fsync during run" "$WORK/before.$h" "$WORK/after.$h" || true
done
