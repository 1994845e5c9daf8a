#!/usr/bin/env bash
# catchup.sh: does a follower paused under writes catch up from the log or need a snapshot, and
# how long does it take? A fresh 3-node cluster; open-loop puts at R/s (C=16 P=64, 100K keys) for
# 2 + S + 6 s; 2 s in, a follower is stopped (kill -STOP) for S s, then continued (SIGCONT).
# Prints the load's figures (bench --json), the leader's metacenter_snapshots_sent_total over the
# run, its metacenter_raft_log_bytes at the end of the pause and 2 s after the load, and the time
# from SIGCONT until the follower's applied index reached the leader's (both from /metrics,
# rustfs_metadata_replication_applied_index). docs/benchmarks.md "Session 12".
# Usage: bench/catchup.sh [--down S] [--rate R] [--reps N] [--value-bytes B] [--wait S]
#   [-- SERVE_FLAGS...]
#   --down S         seconds the follower is stopped (default 10)
#   --rate R         puts/s offered (default 20000)
#   --reps N         runs, each on a fresh cluster (default 1)
#   --value-bytes B  user metadata bytes per put (default 128)
#   --wait S         longest wait for the catch-up after SIGCONT (default 60; else null)
#   after --         extra `metacenter serve` flags for every node (e.g. -- --catch-up-log-mb 0)
# Prints one line and one JSON line per run. Every process started here is killed at exit (a
# stopped follower too); every wait is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOWN=10 RATE=20000 REPS=1 VB=128 WAIT=60
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --down) DOWN=$2 STALL_TOOK=2 ;;
    --rate) RATE=$2 STALL_TOOK=2 ;;
    --reps) REPS=$2 STALL_TOOK=2 ;;
    --value-bytes) VB=$2 STALL_TOOK=2 ;;
    --wait) WAIT=$2 STALL_TOOK=2 ;;
    *) return 1 ;;
    esac
}
stall_flags 2,18 "$@"
LOAD=""
# The load runs in the background, where Ctrl-C does not reach it: stop it here (TERM to
# `timeout` reaches the generator too).
stall_on_exit() { [ -z "$LOAD" ] || kill "$LOAD" 2>/dev/null || true; }
APPLIED=rustfs_metadata_replication_applied_index

# catch_up NAME: ms from now until follower F's applied index reaches leader L's ("null" when
# not within WAIT s). The leader is read first, so a follower keeping up under load passes.
catch_up() {
    local t0 deadline la fa
    t0=$(now_ms)
    deadline=$((t0 + WAIT * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        la=$(mc_metric "$1" "$L" $APPLIED)
        fa=$(mc_metric "$1" "$F" $APPLIED)
        if [ -n "$la" ] && [ -n "$fa" ] && [ "$fa" -ge "$la" ]; then
            echo $(($(now_ms) - t0))
            return 0
        fi
        sleep 0.1
    done
    echo null
}

stall_scratch mccatchup
for ((r = 1; r <= REPS; r++)); do
    c=c$r
    log "run $r/$REPS: fresh 3-node cluster (serve flags: ${SERVE_FLAGS[*]:-none})"
    mc_trio "$c" "${SERVE_FLAGS[@]}"
    fpid=$(mc_node_pid "$c" "$F")
    sent0=$(mc_metric "$c" "$L" metacenter_snapshots_sent_total)
    dur=$((2 + DOWN + 6))
    log "  leader n$L; $dur s of puts at $RATE/s; follower n$F stopped at 2 s for $DOWN s"
    timeout $((dur + 30)) "$MC" bench --endpoints "$EP" --workload put --connections 16 \
        --pipeline 64 --keys 100000 --value-bytes "$VB" --rate "$RATE" --duration "$dur" \
        --json >"$WORK/load$r.json" 2>"$WORK/load$r.err" &
    LOAD=$!
    sleep 2
    fa0=$(mc_metric "$c" "$F" $APPLIED)
    kill -STOP "$fpid"
    sleep "$DOWN"
    bytes_paused=$(mc_metric "$c" "$L" metacenter_raft_log_bytes)
    la1=$(mc_metric "$c" "$L" $APPLIED)
    kill -CONT "$fpid"
    behind=null
    [ -z "$la1" ] || [ -z "$fa0" ] || behind=$((la1 - fa0))
    log "  follower continued, $behind entries behind"
    ms=$(catch_up "$c")
    log "  caught up: ${ms} ms; waiting for the load to end"
    wait "$LOAD" || log "  the load failed: $(tail -3 "$WORK/load$r.err")"
    LOAD=""
    sleep 2
    bj=$(tail -1 "$WORK/load$r.json" | jq -c . 2>/dev/null) || true
    json=$(jq -nc --argjson r "$r" --argjson d "$DOWN" --argjson rate "$RATE" --argjson l "$L" \
        --argjson f "$F" --argjson b "${bj:-null}" \
        --arg s0 "$sent0" --arg s1 "$(mc_metric "$c" "$L" metacenter_snapshots_sent_total)" \
        --arg bp "$bytes_paused" --arg be "$(mc_metric "$c" "$L" metacenter_raft_log_bytes)" \
        --argjson behind "$behind" --argjson ms "$ms" --arg la "$(mc_leader "$c" || true)" \
        'def num: tonumber? // null;
        {run: $r, down_s: $d, rate: $rate, leader: $l, follower: $f, bench: $b,
         snapshots_sent: (if ($s0 | num) and ($s1 | num) then ($s1 | num) - ($s0 | num) else null end),
         raft_log_bytes_paused: ($bp | num), raft_log_bytes_after: ($be | num),
         entries_behind: $behind, catch_up_ms: $ms, leader_after: ($la | num)}')
    result '"run \(.run): follower n\(.follower) down \(.down_s) s at \(.rate) puts/s: \(.bench.ops_per_sec // "-") puts/s, p99 \(.bench.p99_us // "-") us; snapshots sent \(.snapshots_sent); leader Raft log \(.raft_log_bytes_paused) B at the end of the pause, \(.raft_log_bytes_after) B after; caught up in \(.catch_up_ms // "(not within the wait)") ms"' \
        "$json"
    kill_all
    rm -rf "${WORK:?}/$c"
done
