#!/usr/bin/env bash
# failover.sh: failover time alone, for tuning: a 3-node cluster started with the given serve flags,
# KILLS × (kill -9 the leader, time until a fresh client's first write succeeds, restart it).
#
# Usage: bench/failover.sh [--kills N] [-- SERVE_FLAGS...]
#   e.g. bench/failover.sh --kills 10 -- --election-timeout-ms 500 --heartbeat-ms 50
# Prints one JSON line: {"kills":N,"median_ms":..,"max_ms":..,"failed":..,"ms":[...],"flags":".."}.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILLS=10
while [ $# -gt 0 ]; do
    case $1 in
    --kills) KILLS=$2; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "failover.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done

WORK=$(mktemp -d /tmp/mcfailover.XXXXXX)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
trap 'kill_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

make -C "$ROOT" -j2 >"$WORK/make.log" 2>&1 || { tail -30 "$WORK/make.log"; exit 1; }
mc_cluster_start fo 3 "$@"
FO=$(mc_failover fo "$KILLS")
jq -c --arg flags "$*" '{kills: length, median_ms: ([.[].ms | select(. != null)] | sort |
    if length > 0 then .[length / 2 | floor] else null end),
    max_ms: ([.[].ms | select(. != null)] | max), failed: ([.[] | select(.ms == null)] | length),
    ms: [.[].ms], flags: $flags}' <<<"$FO"
