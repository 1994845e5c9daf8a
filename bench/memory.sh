#!/usr/bin/env bash
# memory.sh: what a node's memory holds after a large load. A fresh 3-node cluster; per node the
# RSS breakdown of /proc/PID/status (VmRSS, RssAnon, RssFile, RssShmem, VmHWM) at start, after
# `metacenter bench load --objects N` and S seconds later, with the leader's Raft log in memory
# (metacenter_raft_log_bytes / _entries from /metrics) at each point; then each node's engine
# size on disk and bytes per object. docs/benchmarks.md "Session 12".
# Usage: bench/memory.sh [--objects N] [--later S] [-- SERVE_FLAGS...]
#   --objects N  objects loaded (default 1000000; ~650 MiB of engine per node at 1M)
#   --later S    seconds after the load for the third sample (default 5)
#   after --      extra `metacenter serve` flags for every node (e.g. -- --snapshot-tail 50)
# Prints one line per node and point, then one JSON line per measurement. Every process started
# here is killed at exit; every wait is bounded (the load: 1800 s).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OBJECTS=1000000 LATER=5
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --objects) OBJECTS=$2 STALL_TOOK=2 ;;
    --later) LATER=$2 STALL_TOOK=2 ;;
    *) return 1 ;;
    esac
}
stall_flags 2,12 "$@"

# status_kib PID FIELD: FIELD of /proc/PID/status in KiB (0 when the process is gone).
status_kib() {
    [ -r "/proc/$1/status" ] || { echo 0; return; }
    awk -v f="$2:" '$1 == f {v = $2} END {print v + 0}' "/proc/$1/status" 2>/dev/null || echo 0
}

# sample POINT: the memory of every node, and the leader's Raft log, at POINT.
sample() {
    local i pid role f json
    for i in 1 2 3; do
        pid=$(mc_node_pid c "$i")
        role=follower
        [ "$i" != "$L" ] || role=leader
        json=$(jq -nc --arg p "$1" --argjson n "$i" --arg r "$role" '{point: $p, node: $n, role: $r}')
        for f in VmRSS RssAnon RssFile RssShmem VmHWM; do
            json=$(jq -c --arg f "$f" --argjson v "$(status_kib "$pid" "$f")" \
                '. + {($f + "_kib"): $v}' <<<"$json")
        done
        result '"\(.point) n\(.node) (\(.role)), MiB: VmRSS \(.VmRSS_kib / 1024 | floor) (RssAnon \(.RssAnon_kib / 1024 | floor), RssFile \(.RssFile_kib / 1024 | floor), RssShmem \(.RssShmem_kib / 1024 | floor)), VmHWM \(.VmHWM_kib / 1024 | floor)"' \
            "$json"
    done
    json=$(jq -nc --arg p "$1" --argjson n "$L" \
        --arg b "$(mc_metric c "$L" metacenter_raft_log_bytes)" \
        --arg e "$(mc_metric c "$L" metacenter_raft_log_entries)" \
        '{point: $p, leader: $n, raft_log_bytes: ($b | tonumber? // null),
          raft_log_entries: ($e | tonumber? // null)}')
    result '"\(.point) leader n\(.leader): Raft log \(.raft_log_entries) entries, \(.raft_log_bytes) bytes"' "$json"
}

stall_scratch mcmemory
log "3-node cluster (serve flags: ${SERVE_FLAGS[*]:-none})"
mc_trio c "${SERVE_FLAGS[@]}"
sample start
log "bench load --objects $OBJECTS"
t0=$(now_ms)
timeout 1800 "$MC" bench load --endpoints "$EP" --bucket list --objects "$OBJECTS" \
    --connections 16 --pipeline 64 >/dev/null 2>"$WORK/load.err" ||
    { log "bench load failed: $(tail -3 "$WORK/load.err")"; exit 1; }
t1=$(now_ms)
log "loaded in $((t1 - t0)) ms"
sample loaded
sleep "$LATER"
sample "${LATER}s_later"
# Blocks in use (the LMDB file is sparse: its apparent size is the grown map, not the data).
for i in 1 2 3; do
    eng=$(du -sB1 "$WORK/c/n$i/engine" | cut -f1)
    dir=$(du -sB1 "$WORK/c/n$i" | cut -f1)
    result '"n\(.node): engine \(.engine_bytes / 1048576 | floor) MiB, \(.bytes_per_object) B/object; data dir \(.data_dir_bytes / 1048576 | floor) MiB"' \
        "$(jq -nc --argjson n "$i" --argjson o "$OBJECTS" --argjson e "$eng" --argjson d "$dir" \
            --argjson ms $((t1 - t0)) '{node: $n, objects: $o, load_ms: $ms, engine_bytes: $e,
                bytes_per_object: ($e / $o | floor), data_dir_bytes: $d}')"
done
