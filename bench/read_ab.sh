#!/usr/bin/env bash
# read_ab.sh: A/B of the 3-node read path: for each round, and for each of two builds in turn
# (alternating, same conditions), start a fresh 3-node cluster with that build, load objects,
# run the get rows with that build's load generator, and record ops/s, p50/p99 and the
# CPU-seconds per 100K reads of the leader, the followers and the load generator (/proc/PID/stat).
#
# Usage: bench/read_ab.sh A_BIN B_BIN [--rounds N] [--duration S] [--keys N] [--rows LIST]
#   A_BIN, B_BIN   two `metacenter` binaries (e.g. a copy of main's build and this branch's)
#   --rows LIST    comma-separated from: lin, stale, lin150k (open loop at 150K/s) (default all)
#   --serve-flags F  extra `serve` flags for both; --a-serve/--b-serve F: for one of them
#   --a-flags/--b-flags F: extra bench flags for one of them
# cpu_per_100k is leader + followers + load generator: the whole box's cost of 100K reads, the
# figure to compare when the machine is shared (throughput then follows the CPU share we get).
# Prints one JSON line per run; every process started here is killed at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1 B=$2
shift 2
ROUNDS=3 DUR=5 KEYS=100000 ROWS=lin,stale,lin150k SERVE_FLAGS="" A_FLAGS="" B_FLAGS="" A_SERVE="" B_SERVE=""
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    --keys) KEYS=$2; shift ;;
    --rows) ROWS=$2; shift ;;
    --serve-flags) SERVE_FLAGS=$2; shift ;;
    --a-flags) A_FLAGS=$2; shift ;;
    --a-serve) A_SERVE=$2; shift ;;
    --b-serve) B_SERVE=$2; shift ;;
    --b-flags) B_FLAGS=$2; shift ;;
    *) echo "read_ab.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_scratch mcreadab

# one_row LABEL BIN ROW: run one bench row against cluster c (built with BIN), print JSON.
one_row() {
    local label=$1 bin=$2 row=$3 extra=$4 args=() leader lpid f1 f2 t0l t0f t1l t1f out tf
    case $row in
    lin) args=(--consistency linearizable) ;;
    stale) args=(--consistency stale) ;;
    lin150k) args=(--consistency linearizable --rate 150000) ;;
    esac
    leader=$(MC=$bin mc_leader c)
    read -r t0l t0f <<<"$(mc_role_ticks c "$leader")"
    tf=$WORK/time.out
    out=$(/usr/bin/time -f '%U %S' -o "$tf" timeout $((DUR + 60)) "$bin" bench \
        --endpoints "$(cat "$WORK/c/endpoints")" --workload get --connections 64 --pipeline 32 \
        --duration "$DUR" --keys "$KEYS" --json "${args[@]}" $extra 2>>"$WORK/bench.err") || {
        echo "{\"label\":\"$label\",\"row\":\"$row\",\"failed\":true}"
        return 0
    }
    read -r t1l t1f <<<"$(mc_role_ticks c "$leader")"
    local lg
    lg=$(awk '{print $1 + $2}' "$tf")
    jq -c --arg lbl "$label" --arg row "$row" --argjson ltk $((t1l - t0l)) \
        --argjson ftk $((t1f - t0f)) --argjson lg "$lg" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '{"label": $lbl, row: $row, ops_per_sec: (.ops_per_sec|floor), p50_us, p99_us, errors,
          leader_cpu_s: ($ltk / 100), followers_cpu_s: ($ftk / 100), loadgen_cpu_s: $lg,
          leader_cpu_per_100k: (if .ops > 0 then ($ltk / 100) * 100000 / .ops else null end),
          followers_cpu_per_100k: (if .ops > 0 then ($ftk / 100) * 100000 / .ops else null end),
          loadgen_cpu_per_100k: (if .ops > 0 then $lg * 100000 / .ops else null end),
          cpu_per_100k: (if .ops > 0 then (($ltk + $ftk) / 100 + $lg) * 100000 / .ops else null end),
          load: $load}' <<<"$out"
}

run_build() {
    local label=$1 bin=$2 serve=$4
    rm -rf "$WORK/c"
    # shellcheck disable=SC2086
    MC=$bin mc_cluster_start c 3 $SERVE_FLAGS $serve
    timeout 120 "$bin" bench load --objects "$KEYS" --endpoints "$(cat "$WORK/c/endpoints")" \
        --connections 16 --pipeline 64 >/dev/null 2>>"$WORK/bench.err"
    MC=$bin mc_wait_leader c 20 >/dev/null
    for row in ${ROWS//,/ }; do
        one_row "$label" "$bin" "$row" "$3"
    done
    kill_all
}

for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) = 1 ]; then
        run_build A "$A" "$A_FLAGS" "$A_SERVE"
        run_build B "$B" "$B_FLAGS" "$B_SERVE"
    else
        run_build B "$B" "$B_FLAGS" "$B_SERVE"
        run_build A "$A" "$A_FLAGS" "$A_SERVE"
    fi
done
