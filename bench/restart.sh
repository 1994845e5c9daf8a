#!/usr/bin/env bash
# restart.sh: how long a member takes to serve again after a stop, at a given store size. A
# fresh 3-node cluster, `bench load --objects N`, then PRE seconds of puts (C=64 P=16) so the
# WAL holds entries past the newest engine image; then ROUNDS × (stop a follower while puts run,
# start it, time until its /readyz answers 200), alternating SIGTERM (a clean stop: the engine
# is sealed) and kill -9 (unsealed: the engine is verified page by page before it is used).
# Per restart: ms to the first /readyz 200 and the node's own start-up figures from its log
# (engine verify ms, WAL load ms and entries, ms spent in mc_node_start).
#
# Usage: bench/restart.sh [--objects N] [--pre S] [--rounds R] [-- SERVE_FLAGS...]
#   defaults: 1,000,000 objects, 20 s of puts, 4 rounds (2 clean, 2 kill -9)
# Prints one JSON line per restart and a summary line. Every process started here is killed at
# exit; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OBJECTS=1000000 PRE=20 ROUNDS=4
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --objects) OBJECTS=$2 STALL_TOOK=2 ;;
    --pre) PRE=$2 STALL_TOOK=2 ;;
    --rounds) ROUNDS=$2 STALL_TOOK=2 ;;
    *) return 1 ;;
    esac
}
stall_flags 2,13 "$@"
bench_scratch mcrestart

make -C "$ROOT" -j2 >"$WORK/make.log" 2>&1 || { tail -30 "$WORK/make.log"; exit 1; }
mc_cluster_start rs 3 --log-level info ${SERVE_FLAGS[@]+"${SERVE_FLAGS[@]}"}
EP=$(cat "$WORK/rs/endpoints")
read -r -a HTTP <<<"$(cat "$WORK/rs/http")"
log "loading $OBJECTS objects"
timeout 600 "$MC" bench load --endpoints "$EP" --objects "$OBJECTS" >/dev/null
log "puts for $PRE s"
timeout $((PRE + 30)) "$MC" bench --endpoints "$EP" --workload put --connections 64 --pipeline 16 \
    --keys "$OBJECTS" --duration "$PRE" >/dev/null 2>&1

# Background puts at a moderate rate while members restart (bounded by --duration 590).
# The generator itself (no wrapper) is recorded, so kill_all stops it at exit with the nodes.
"$MC" bench --endpoints "$EP" --workload put --connections 8 --pipeline 8 \
    --keys "$OBJECTS" --rate 10000 --duration 590 >/dev/null 2>&1 &
echo $! >"$WORK/load.pid"

ready_ms() { # ready_ms ID T0: ms from T0 to node ID's first /readyz 200 (bounded: 300 s)
    local url="http://${HTTP[$(($1 - 1))]}/readyz" k
    for ((k = 0; k < 30000; k++)); do
        if curl -sf -m 1 "$url" >/dev/null 2>&1; then
            echo $(($(now_ms) - $2))
            return 0
        fi
        sleep 0.01
    done
    echo null
}

# The node's start-up lines after byte offset OFF of its log, as one JSON object: engine
# verify ms (kill -9 only), WAL load ms and entries, ms inside mc_node_start, and whether the
# engine was rebuilt from its image.
startup_figures() {
    tail -c +"$(($2 + 1))" "$WORK/rs/n$1.log" | awk '
        function val(k,   i) {for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return ""}
        /msg=engine_verified/ {v = val("ms")}
        /msg=wal_loaded/ {w = val("ms"); n = val("last") - val("first") + 1}
        /msg=node_started/ {s = val("ms")}
        /msg=engine_rebuild/ {rebuilt = 1}
        function j(x) {return x == "" ? "null" : x}
        END {printf "{\"verify_ms\":%s,\"wal_ms\":%s,\"wal_entries\":%s,\"start_ms\":%s,\"rebuilt\":%s}\n",
            j(v), j(w), j(n), j(s), rebuilt ? "true" : "false"}'
}

ALL="[]"
for ((k = 1; k <= ROUNDS; k++)); do
    leader=$(mc_wait_leader rs 60)
    id=$((leader % 3 + 1)) # a follower
    pid=$(mc_node_pid rs "$id")
    how=$([ $((k % 2)) -eq 1 ] && echo term || echo kill9)
    if [ "$how" = term ]; then kill -TERM "$pid"; else kill -9 "$pid"; fi
    wait_gone 30 "$pid"
    sleep 1 # the others go on without it
    off=$(stat -c %s "$WORK/rs/n$id.log")
    engine=$(du -sm "$WORK/rs/n$id/engine" 2>/dev/null | cut -f1)
    wal=$(du -sm "$WORK/rs/n$id/wal" 2>/dev/null | cut -f1)
    t0=$(now_ms)
    mc_node_start rs "$id"
    ms=$(ready_ms "$id" "$t0")
    fig=$(startup_figures "$id" "$off")
    line=$(jq -c --arg how "$how" --argjson id "$id" --argjson ms "$ms" --argjson e "${engine:-0}" \
        --argjson w "${wal:-0}" '{stop: $how, node: $id, ready_ms: $ms, engine_mb: $e,
        wal_dir_mb: $w} + .' <<<"$fig")
    echo "$line"
    ALL=$(jq -c --argjson l "$line" '. + [$l]' <<<"$ALL")
done
jq -c --argjson n "$OBJECTS" '{objects: $n, restarts: length,
    clean_ready_ms: [.[] | select(.stop == "term") | .ready_ms],
    kill9_ready_ms: [.[] | select(.stop == "kill9") | .ready_ms],
    kill9_verify_ms: [.[] | select(.stop == "kill9") | .verify_ms]}' <<<"$ALL"
