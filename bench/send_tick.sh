#!/usr/bin/env bash
# send_tick.sh: what the generator's send grid (`bench --send-tick-us`) does to the 40K-write
# latency row and to the box's CPU. A fresh 3-node cluster (engines on /dev/shm unless --disk),
# 5 s of C=64 puts, `bench load --objects 100000`, then REPS rounds of one 8 s window per tick
# (alternating): 40K puts/s offered, C=4 P=1024 (the run.sh row). Per window: ops/s, p50, p99,
# max and how busy the box was (1 - idle - iowait from /proc/stat). docs/benchmarks.md
# "Session 13".
# Usage: bench/send_tick.sh [--reps N] [--ticks "0 250 500"] [--rate R] [--disk]
# Every process started here is killed at exit; every loop is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 TICKS="0 250 500" RATE=40000 TMPFS=1
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --reps) REPS=$2 STALL_TOOK=2 ;;
    --ticks) TICKS=$2 STALL_TOOK=2 ;;
    --rate) RATE=$2 STALL_TOOK=2 ;;
    --disk) TMPFS=0 ;;
    *) return 1 ;;
    esac
}
stall_flags 2,8 "$@"
stall_setup mctick 5

# cpu_jiffies: "busy idle" jiffies of the whole box so far.
cpu_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }

for ((rep = 1; rep <= REPS; rep++)); do
    for tick in $TICKS; do
        read -r b0 i0 < <(cpu_jiffies)
        timeout 60 "$MC" bench --endpoints "$EP" --workload put --connections 4 --pipeline 1024 \
            --keys 100000 --rate "$RATE" --duration 8 --send-tick-us "$tick" --json 2>/dev/null |
            tail -1 >"$WORK/w.json"
        read -r b1 i1 < <(cpu_jiffies)
        busy=$(awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN {printf "%.0f", 100 * b / (b + i)}')
        jq -c --argjson rep "$rep" --argjson busy "$busy" \
            '{rep: $rep, send_tick_us, ops_per_sec: (.ops_per_sec | floor), p50_us, p99_us, max_us,
              box_busy_pct: $busy}' "$WORK/w.json"
    done
done
grep -h "snapshot_created" "$WORK"/c/n*.log | grep "image=1" | cut -c1-120 || true
