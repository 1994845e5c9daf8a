#!/usr/bin/env bash
# snap_send.sh: how long a leader takes to send its engine image to a follower that fell behind
# the log. A fresh 3-node cluster (`--snapshot-entries 1000 --snapshot-tail 5`, and
# `--catch-up-log-mb 0` for builds that have it, so the leader keeps no log for the absent
# member); FILL s of C=64 P=16 puts of 512 B over K keys (the image), a follower killed (-9),
# MORE s of puts (C=16 P=16 over 10K keys; longer, up to 10 s, until the leader has taken a
# snapshot since the kill), the follower restarted 2 s later. Measured from the leader's log:
# snapshot_send_started → snapshot_sent (to that follower): seconds and MB/s. The image is made
# before snapshot_send_started, so it is not counted. docs/benchmarks.md "Session 12".
# Usage: bench/snap_send.sh [--reps N] [--mc PATH] [--fill S] [--keys K] [--more S] [--wait S]
#   [-- SERVE_FLAGS...]
#   --reps N   runs, each on a fresh cluster (default 1)
#   --mc PATH  the metacenter binary to time (default build/metacenter): A/B by alternating runs
#   --fill S   seconds of puts before the kill (default 8: a ~270 MB image at ~60K puts/s)
#   --keys K   their key space (default 300000)
#   --more S   seconds of puts while the follower is down (default 3)
#   --wait S   longest wait for snapshot_sent after the restart (default 120; else null)
#   after --   extra `metacenter serve` flags for every node
# Prints one line and one JSON line per run. Every process started here is killed at exit;
# every wait is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=1 FILL=8 KEYS=300000 MORE=3 WAIT=120
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --reps) REPS=$2 STALL_TOOK=2 ;;
    --mc) MC=$2 STALL_TOOK=2 ;;
    --fill) FILL=$2 STALL_TOOK=2 ;;
    --keys) KEYS=$2 STALL_TOOK=2 ;;
    --more) MORE=$2 STALL_TOOK=2 ;;
    --wait) WAIT=$2 STALL_TOOK=2 ;;
    *) return 1 ;;
    esac
}
stall_flags 2,20 "$@"

# puts S CONNECTIONS KEYS VALUE_BYTES: S seconds of closed-loop puts on the current cluster.
puts() {
    timeout $(($1 + 60)) "$MC" bench --endpoints "$EP" --workload put --connections "$2" \
        --pipeline 16 --keys "$3" --value-bytes "$4" --duration "$1" >/dev/null 2>>"$WORK/load.err" ||
        log "  puts failed: $(tail -1 "$WORK/load.err")"
}

# snapshots NAME: snapshot_created lines in the leader's log so far.
snapshots() { grep -c "msg=snapshot_created" "$WORK/$1/n$L.log" || true; }

# ts_ms LINE: a log line's ts= (its first field) in ms since the epoch.
ts_ms() {
    local t=${1#ts=}
    date -d "${t%% *}" +%s%3N
}

# field LINE NAME: the value of NAME= in a log line (not its first field).
field() {
    local v=${1##* "$2"=}
    echo "${v%% *}"
}

# send_json NAME FROM_BYTE: the last send to F in the leader's log after FROM_BYTE, as JSON
# (index, bytes, seconds, MB/s); {} when no snapshot_sent to F is there.
send_json() {
    local new started sent
    new=$(tail -c +$(($2 + 1)) "$WORK/$1/n$L.log")
    sent=$(grep "msg=snapshot_sent to=$F " <<<"$new" | tail -1) || true
    [ -n "$sent" ] || { echo '{}'; return 0; }
    started=$(grep "msg=snapshot_send_started to=$F " <<<"$new" | tail -1) || true
    [ -n "$started" ] || { echo '{}'; return 0; }
    jq -nc --argjson t0 "$(ts_ms "$started")" --argjson t1 "$(ts_ms "$sent")" \
        --argjson b "$(field "$sent" bytes)" \
        --argjson i "$(field "$sent" index)" \
        '{index: $i, bytes: $b, seconds: (($t1 - $t0) / 1000),
          mb_per_s: (if $t1 > $t0 then ($b / 1e6 / (($t1 - $t0) / 1000) * 10 | round / 10) else null end)}'
}

stall_scratch mcsnapsend
FLAGS=(--log-level info --snapshot-entries 1000 --snapshot-tail 5)
# (grep on a variable: under pipefail `serve --help | grep -q` may fail on SIGPIPE)
SERVE_HELP=$("$MC" serve --help 2>&1) || true
if grep -q -- --catch-up-log-mb <<<"$SERVE_HELP"; then
    FLAGS+=(--catch-up-log-mb 0)
fi
for ((r = 1; r <= REPS; r++)); do
    c=c$r
    log "run $r/$REPS: fresh 3-node cluster of $MC (serve flags: ${FLAGS[*]} ${SERVE_FLAGS[*]:-})"
    mc_trio "$c" "${FLAGS[@]}" "${SERVE_FLAGS[@]}"
    log "  leader n$L: $FILL s of puts over $KEYS keys"
    puts "$FILL" 64 "$KEYS" 512
    fpid=$(mc_node_pid "$c" "$F")
    kill -9 "$fpid"
    wait_gone 5 "$fpid"
    n0=$(snapshots "$c")
    log "  follower n$F killed; $MORE s of puts"
    puts "$MORE" 16 10000 128
    k=0
    while [ $k -lt 10 ] && [ "$(snapshots "$c")" = "$n0" ]; do
        puts 1 16 10000 128
        k=$((k + 1))
    done
    [ "$(snapshots "$c")" != "$n0" ] ||
        log "  no snapshot on the leader since the kill: the follower may catch up from the log"
    sleep 2
    off=$(stat -c %s "$WORK/$c/n$L.log")
    log "  follower n$F restarted; waiting for snapshot_sent (up to $WAIT s)"
    mc_node_start "$c" "$F"
    deadline=$(($(now_ms) + WAIT * 1000))
    while [ "$(now_ms)" -lt "$deadline" ] &&
        ! grep -q "msg=snapshot_sent to=$F " < <(tail -c +$((off + 1)) "$WORK/$c/n$L.log"); do
        sleep 0.2
    done
    json=$(jq -nc --argjson r "$r" --arg mc "$MC" --argjson l "$L" --argjson f "$F" \
        --argjson s "$(send_json "$c" "$off")" \
        '{run: $r, mc: $mc, leader: $l, follower: $f, index: null, bytes: null, seconds: null,
          mb_per_s: null} + $s')
    result '"run \(.run): " + (if .seconds then "\(.bytes / 1e6 | round) MB image (index \(.index)) to n\(.follower) in \(.seconds) s, \(.mb_per_s) MB/s" else "no snapshot_sent to n\(.follower) within the wait" end) + " (\(.mc))"' \
        "$json"
    kill_all
    rm -rf "${WORK:?}/$c"
done
