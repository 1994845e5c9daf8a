#!/usr/bin/env bash
# list_ab.sh: A/B of ListObjectsV2 pages on a 3-node cluster. Loads N objects once (bucket
# "list", with A_BIN), then for each round and each of the two builds in turn (alternating, same
# data dirs: the engine format is the same) restarts the three nodes with that build and runs
# the list rows of bench/run.sh with that build's load generator, recording pages/s, p50/p99
# and the CPU-milliseconds per page of the leader, the followers and the load generator.
#
# Usage: bench/list_ab.sh A_BIN B_BIN [--rounds N] [--duration S] [--objects N] [--rows LIST]
#   --rows LIST   comma-separated from: lin, stale (default both); C=4, pipeline 1, pages of 1000
# Prints one JSON line per run; every process started here is killed at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1 B=$2
shift 2
ROUNDS=3 DUR=10 OBJECTS=1000000 ROWS=lin,stale
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    --objects) OBJECTS=$2; shift ;;
    --rows) ROWS=$2; shift ;;
    *) echo "list_ab.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_scratch mclistab

# one_row LABEL BIN ROW: one `bench --workload list` run against cluster c, one JSON line.
one_row() {
    local label=$1 bin=$2 row=$3 leader t0l t0f t1l t1f out tf lg
    leader=$(MC=$bin mc_leader c)
    read -r t0l t0f <<<"$(mc_role_ticks c "$leader")"
    tf=$WORK/time.out
    out=$(/usr/bin/time -f '%U %S' -o "$tf" timeout $((DUR + 60)) "$bin" bench \
        --endpoints "$(cat "$WORK/c/endpoints")" --workload list --bucket list --keys "$OBJECTS" \
        --connections 4 --pipeline 1 --duration "$DUR" --json \
        --consistency "$([ "$row" = lin ] && echo linearizable || echo stale)" \
        2>>"$WORK/bench.err") || {
        echo "{\"label\":\"$label\",\"row\":\"$row\",\"failed\":true}"
        return 0
    }
    read -r t1l t1f <<<"$(mc_role_ticks c "$leader")"
    lg=$(awk '{print $1 + $2}' "$tf")
    jq -c --arg lbl "$label" --arg row "$row" --argjson ltk $((t1l - t0l)) \
        --argjson ftk $((t1f - t0f)) --argjson lg "$lg" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '{"label": $lbl, row: $row, pages_per_sec: (.ops_per_sec|floor), p50_us, p99_us, max_us,
          errors, leader_cpu_ms_per_page: (if .ops > 0 then $ltk * 10 / .ops else null end),
          followers_cpu_ms_per_page: (if .ops > 0 then $ftk * 10 / .ops else null end),
          loadgen_cpu_ms_per_page: (if .ops > 0 then $lg * 1000 / .ops else null end),
          load: $load}' <<<"$out"
}

# use_build BIN: restart the three nodes of cluster c with BIN (clean stop: SIGTERM).
use_build() {
    local bin=$1 i pid pids=()
    for i in 1 2 3; do
        pid=$(mc_node_pid c "$i")
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    wait_gone 30 "${pids[@]}"
    for i in 1 2 3; do
        sed -i "s|^[^ ]* |$(printf '%q' "$bin") |" "$WORK/c/n$i.cmd"
        mc_node_start c "$i"
    done
    MC=$bin mc_wait_leader c 60 >/dev/null
}

MC=$A mc_cluster_start c 3
t0=$(now_ms)
timeout 1800 "$A" bench load --endpoints "$(cat "$WORK/c/endpoints")" --bucket list \
    --objects "$OBJECTS" --connections 16 --pipeline 64 >/dev/null 2>>"$WORK/bench.err"
echo "{\"loaded\":$OBJECTS,\"ms\":$(($(now_ms) - t0))}"
MC=$A mc_wait_leader c 60 >/dev/null

run_build() {
    use_build "$2"
    for row in ${ROWS//,/ }; do
        one_row "$1" "$2" "$row"
    done
}

for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) = 1 ]; then
        run_build A "$A"
        run_build B "$B"
    else
        run_build B "$B"
        run_build A "$A"
    fi
done
