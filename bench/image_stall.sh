#!/usr/bin/env bash
# image_stall.sh: what one engine image costs the write tail, and on which member. A fresh
# 3-node cluster (engines on /dev/shm, `serve --engine-dir`; automatic images off), 10 s of
# C=64 puts, `bench load --objects 100000`, then REPS rounds of 6 s windows at 40K puts/s
# offered (C=4 P=1024, the run.sh row), one per mode: `none` (no image), `leader` or `follower`
# (1.5 s into the window, a `snapshot save` to that member, stopped after 0.15 s: the member
# answers Busy and makes a fresh image, which nobody fetches), `all` (every member at once).
# Prints one JSON line per window, then the leader's snapshot_created lines (size, ms).
# docs/benchmarks.md "Session 11".
# Usage: bench/image_stall.sh [--reps N] [--modes "none leader follower all"] [--disk] [--fetch]
#   --disk keeps the engines in the data dirs (on disk) instead of /dev/shm; --fetch lets each
#   save run to its end, so the member also streams its image to the CLI.
# Every process started here is killed at exit; every loop is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 MODES="none leader follower all" TMPFS=1 FETCH=0
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --reps) REPS=$2 STALL_TOOK=2 ;;
    --modes) MODES=$2 STALL_TOOK=2 ;;
    --disk) TMPFS=0 ;;
    --fetch) FETCH=1 ;;
    *) return 1 ;;
    esac
}
stall_flags 2,13 "$@"
SAVES=""
stall_on_exit() { rm -rf "$SAVES"; }
stall_setup mcimage 10 --image-entries 100000000 --image-log-mb 100000
SAVES=$(mktemp -d /dev/shm/mcimage-saves.XXXXXX) # saved files: RAM, not the disk measured
IFS=, read -r -a EPS <<<"$EP"

# save ID: member ID makes a fresh image (a snapshot save asks for one); with --fetch the save
# runs to its end (the image streamed to a file, then discarded), else it is stopped at once.
save() {
    if [ $FETCH = 1 ]; then
        timeout 60 "$MC" --endpoints "${EPS[$(($1 - 1))]}" snapshot save "$SAVES/s$1" \
            >/dev/null 2>&1 || echo "{\"save\": $1, \"failed\": true}"
    else
        timeout 0.15 "$MC" --endpoints "${EPS[$(($1 - 1))]}" snapshot save "$SAVES/s$1" \
            >/dev/null 2>&1 || true
    fi
    rm -f "$SAVES/s$1" "$SAVES/s$1.tmp"
}

for ((r = 1; r <= REPS; r++)); do
    for mode in $MODES; do
        (
            sleep 1.5
            case $mode in
            leader) save "$L" ;;
            follower) save "$F" ;;
            all) save 1 & save 2 & save 3 & wait ;;
            esac
        ) &
        sp=$!
        "$MC" bench --endpoints "$EP" --workload put --connections 4 --pipeline 1024 \
            --keys 100000 --rate 40000 --duration 6 --json 2>/dev/null | tail -1 |
            jq -c --arg m "$mode" --argjson r "$r" \
                '{mode: $m, round: $r, ops_per_sec, p50_us, p99_us, max_us}'
        wait $sp
        sleep 1
    done
done
grep -h "snapshot_created.*size_bytes" "$WORK/c/n$L.log" |
    sed -e 's/.*msg=//' -e 's/path=[^ ]* //' || true
