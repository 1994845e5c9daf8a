#!/usr/bin/env bash
# put_ab.sh: A/B of the 3-node write path: for each round, and for each of two builds in turn
# (alternating, same conditions), start a fresh 3-node cluster with that build (engines on
# /dev/shm, so the LMDB map writeback of a shared disk does not decide the row), run native puts
# at C=64 P=16 with that build's load generator, and print one JSON line: ops/s, p99 and the
# CPU-seconds per 100K puts of the three nodes (/proc/PID/stat).
#
# Usage: bench/put_ab.sh A_BIN B_BIN [--rounds N] [--duration S]
# Every process started here is killed at exit (trap); each run is bounded by --duration.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=${1:?usage: bench/put_ab.sh A_BIN B_BIN [--rounds N] [--duration S]}
B=${2:?usage: bench/put_ab.sh A_BIN B_BIN [--rounds N] [--duration S]}
shift 2
ROUNDS=3 DUR=8
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    *) echo "put_ab.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$A" ] && [ -x "$B" ] || { echo "put_ab.sh: $A or $B is not executable" >&2; exit 2; }

WORK=""
MC_ENGINE_ROOT=""
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
cleanup() {
    [ -n "$WORK" ] && kill_all
    rm -rf "${WORK:-/nonexistent}" "${MC_ENGINE_ROOT:-/nonexistent}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node_ticks() {
    local sum=0 i
    for i in 1 2 3; do sum=$((sum + $(ticks "$(mc_node_pid mc "$i")"))); done
    echo "$sum"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for side in A B; do
        MC=${!side}
        WORK=$(mktemp -d /tmp/mcputab.XXXXXX)
        MC_ENGINE_ROOT=$(mktemp -d /dev/shm/mcputab.XXXXXX)
        export MC_ENGINE_ROOT
        mc_cluster_start mc 3 >/dev/null
        mc_wait_leader mc 30 >/dev/null
        t0=$(node_ticks)
        out=$(timeout $((DUR + 30)) "$MC" bench --endpoints "$(cat "$WORK/mc/endpoints")" \
            --bucket bench --workload put --connections 64 --pipeline 16 --duration "$DUR" \
            --keys 100000 --json 2>/dev/null | tail -1)
        t1=$(node_ticks)
        jq -c --arg side "$side" --argjson r "$r" --argjson t "$((t1 - t0))" \
            --argjson hz "$(getconf CLK_TCK)" \
            '{round: $r, side: $side, ops_per_sec, p99_us,
              cpu_s_per_100k: ($t / $hz * 100000 / .ops)}' <<<"$out"
        kill_all
        rm -rf "$WORK" "$MC_ENGINE_ROOT"
        WORK="" MC_ENGINE_ROOT=""
    done
done
