#!/usr/bin/env bash
# bench_http.sh: wrk against the HTTP API over the engine-backed test server (no Raft): GET and
# PUT throughput/latency with 64 keep-alive connections, per worker count (loopback mode).
# Usage: test/http/bench_http.sh [BUILD] [SECONDS] [MODE...]; MODE = pool:N (N workers) | tpc
# (the default, 8 workers). Needs wrk.
set -u
BUILD=${1:-build}
SECS=${2:-5}
shift 2 2>/dev/null || true
MODES=${*:-pool:2 pool:4 pool:8 pool:16 tpc}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/mc_bench_http.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
cat >"$TMP/put.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    return wrk.format("PUT", "/v1/buckets/bench/objects/k" .. (n % 10000), nil,
                      '{"size":100,"etag":"abc"}')
end
LUA
for mode in $MODES; do
    args=()
    case $mode in
        pool:*) args=(--pool "${mode#pool:}") ;;
        tpc) args=() ;;
    esac
    rm -rf "$TMP/eng"
    "$ROOT/$BUILD/http_testserver" --dir "$TMP/eng" "${args[@]}" >"$TMP/out" 2>/dev/null &
    PID=$!
    for _ in $(seq 1 100); do grep -q HTTP_PORT "$TMP/out" 2>/dev/null && break; sleep 0.05; done
    U="http://127.0.0.1:$(sed -n 's/^HTTP_PORT=//p' "$TMP/out")"
    curl -s -X PUT "$U/v1/buckets/bench" >/dev/null
    curl -s -X PUT "$U/v1/buckets/bench/objects/hot" -d '{"size":1}' >/dev/null
    g=$(wrk -t2 -c64 -d"${SECS}s" --latency "$U/v1/buckets/bench/objects/hot" |
        awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print r, "p50", p50, "p99", p99}')
    p=$(wrk -t2 -c64 -d"${SECS}s" --latency -s "$TMP/put.lua" "$U" |
        awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print r, "p50", p50, "p99", p99}')
    echo "$mode GET $g | PUT $p"
    kill "$PID"; wait "$PID" 2>/dev/null; PID=""
done
