#!/usr/bin/env bash
# window_metrics.sh: where one window of open-loop puts spends its time, from the nodes' own
# histograms. A fresh 3-node cluster (bench/lib.sh stall_setup: PRE s of C=64 puts, then
# `bench load --objects 100000`), then one window of puts at RATE/s; prints how busy the box was
# (/proc/stat), the generator's JSON line, and per node the deltas over the window of every
# /metrics histogram (count, mean, p50/p99 bucket bounds): WAL fsync, apply, server write latency.
# Usage: bench/window_metrics.sh [--rate N] [--seconds S] [--pre S] [--connections C
#   --pipeline P] [--send-tick-us N] [--engine-tmpfs] [-- serve flags]; MC=PATH for another build.
# Every process started here is killed at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=40000 SECS=8 PRE=10 CONN=4 PIPE=1024 TICK=500 TMPFS=0
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
stall_flag() {
    case $1 in
    --rate) RATE=$2 STALL_TOOK=2 ;;
    --seconds) SECS=$2 STALL_TOOK=2 ;;
    *) load_shape_flag "$@" ;;
    esac
}
stall_flags 2,9 "$@"
load_shape_tick
stall_setup mcwin "$PRE" ${SERVE_FLAGS[@]+"${SERVE_FLAGS[@]}"} >/dev/null
for i in 1 2 3; do mc_metric_dump c "$i" >"$WORK/m0.$i"; done
head -1 /proc/stat >"$WORK/stat0"
"$MC" bench --endpoints "$EP" --workload put --connections "$CONN" --pipeline "$PIPE" --keys 100000 \
    --rate "$RATE" --duration "$SECS" ${TICK_FLAG[@]+"${TICK_FLAG[@]}"} --json 2>/dev/null |
    tail -1 >"$WORK/bench.json"
head -1 /proc/stat >"$WORK/stat1"
for i in 1 2 3; do mc_metric_dump c "$i" >"$WORK/m1.$i"; done
python3 "$ROOT/bench/window_metrics.py" "$WORK" "$L"
