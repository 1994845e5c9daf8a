#!/usr/bin/env bash
# writeback_stall.sh: the write stalls after heavy write phases (docs/benchmarks.md). A fresh
# 3-node cluster (its leader printed first), 30 s of C=64 P=16 puts, `bench load --objects
# 100000`, then NW (default 6) windows of 5 s at 40K puts/s offered; per window p50/p99/max and
# the most Dirty/Writeback seen in /proc/meminfo (sampled every 100 ms); then the engine images
# the nodes wrote (log lines).
# Usage: bench/writeback_stall.sh [--windows N] [--pre S] [--connections C --pipeline P]
#   [--send-tick-us N] [--engine-tmpfs]: --engine-tmpfs keeps each node's engine on /dev/shm
#   (`serve --engine-dir`); --send-tick-us is the generator's (bench --help). MC=PATH times
#   another build. Flags after `--` go to every `serve` (e.g. -- --no-image-handoff).
# Every process started here is killed at exit; every loop is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NW=6 PRE=30 CONN=64 PIPE=64 TMPFS=0 TICK=0
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --windows) NW=$2 STALL_TOOK=2 ;;
    *) load_shape_flag "$@" ;;
    esac
}
stall_flags 2,11 "$@"
load_shape_tick
MEMPID=""
stall_on_exit() { [ -z "$MEMPID" ] || kill "$MEMPID" 2>/dev/null || true; }
stall_setup mcstall "$PRE" ${SERVE_FLAGS[@]+"${SERVE_FLAGS[@]}"}
# Bounded sampler: at most (NW * 6 + 10) s of 100 ms samples.
(
    end=$(($(date +%s) + NW * 6 + 10))
    while [ "$(date +%s)" -lt "$end" ]; do
        awk -v t="$(date +%s.%N)" '/^Dirty:/ {d = $2} /^Writeback:/ {w = $2}
            END {printf "%s %d %d\n", t, d / 1024, w / 1024}' /proc/meminfo
        sleep 0.1
    done
) >"$WORK/mem.log" &
MEMPID=$!
for ((k = 1; k <= NW; k++)); do
    t0=$(date +%s.%N)
    "$MC" bench --endpoints "$EP" --workload put --connections "$CONN" --pipeline "$PIPE" \
        --keys 100000 --rate 40000 --duration 5 ${TICK_FLAG[@]+"${TICK_FLAG[@]}"} --json 2>/dev/null |
        tail -1 >"$WORK/w.json"
    t1=$(date +%s.%N)
    read -r dmax wmax < <(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b {
        if ($2 > d) d = $2; if ($3 > w) w = $3 } END {print d + 0, w + 0}' "$WORK/mem.log")
    jq -c --arg w "w$k $(date -d "@${t0%.*}" +%T)" --argjson d "$dmax" --argjson b "$wmax" \
        '{window: $w, p50_us, p99_us, max_us, dirty_mb_max: $d, writeback_mb_max: $b}' "$WORK/w.json"
done
grep -h "snapshot_created" "$WORK"/c/n*.log | grep "image=1" | cut -c1-120 || true
grep -h "msg=image_handoff\|msg=raft_state role=leader" "$WORK"/c/n*.log | sort | cut -c1-120 || true
