#!/usr/bin/env bash
# suite_http_cluster.sh: the HTTP API end to end against a real 3-node cluster (metacenter serve):
# writes through a follower (forwarded by the client library), read-your-writes on every node,
# leader kill -9 and failover, /metrics + /readyz on every node. Uses each node's own HTTP port
# when the node serves one, else build/http_testserver --client NODE (the same server code).
# Skips (0 passed, 0 failed) when this build's `metacenter serve` elects no leader. ~10 s.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) BDIR=$BUILD ;; *) BDIR="$ROOT/$BUILD" ;; esac
BIN="$BDIR/metacenter"
TS="$BDIR/http_testserver"
PASS=0
FAIL=0
TMP=$(mktemp -d /tmp/mc_suite_http_cluster.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (want '$2', got '$3')"; fi; }

# Below the kernel's ephemeral range (32768+), so no test's outgoing connection holds one.
BASE=$((20000 + (RANDOM % 1200) * 10))
IC=""
for i in 1 2 3; do IC="$IC${IC:+,}$i=127.0.0.1:$((BASE + i * 3 + 1))"; done
declare -A NPID
start_node() {
    local i=$1
    "$BIN" serve --data-dir "$TMP/d$i" --node-id "$i" \
        --listen-client "127.0.0.1:$((BASE + i * 3))" --listen-peer "127.0.0.1:$((BASE + i * 3 + 1))" \
        --listen-http "127.0.0.1:$((BASE + i * 3 + 2))" --initial-cluster "$IC" \
        --election-timeout-ms 300 --heartbeat-ms 50 >"$TMP/log$i" 2>&1 &
    NPID[$i]=$!
    PIDS+=($!)
    disown $! # no "Killed" job notices; cleanup kills by pid
}
for i in 1 2 3; do start_node "$i"; done

# HTTP endpoint per node: the node's own, or a testserver in front of its client port.
declare -A H
wired=0
sleep 0.5
if curl -s -m 1 "http://127.0.0.1:$((BASE + 5))/healthz" >/dev/null 2>&1; then wired=1; fi
for i in 1 2 3; do
    if [ $wired = 1 ]; then
        H[$i]="http://127.0.0.1:$((BASE + i * 3 + 2))"
    else
        "$TS" --client "127.0.0.1:$((BASE + i * 3))" >"$TMP/ts$i" 2>/dev/null &
        PIDS+=($!)
        disown $!
        for _ in $(seq 1 100); do grep -q HTTP_PORT "$TMP/ts$i" 2>/dev/null && break; sleep 0.05; done
        H[$i]="http://127.0.0.1:$(sed -n 's/^HTTP_PORT=//p' "$TMP/ts$i")"
    fi
done
echo "node HTTP: $([ $wired = 1 ] && echo "served by the nodes" || echo "http_testserver --client")"

leader=""
end=$((SECONDS + 15))
while [ $SECONDS -lt $end ]; do
    leader=$(curl -s -m 1 "${H[2]}/v1/cluster" | jq -r '.leader // empty' 2>/dev/null)
    [ -n "$leader" ] && break
    sleep 0.1
done
if [ -z "$leader" ]; then
    echo "SKIP: no leader within 15 s (this build's metacenter serve does not run a cluster)"
    tail -n 3 "$TMP"/log* "$TMP"/ts* 2>/dev/null | sed 's/^/     /'
    curl -s -m 2 "${H[2]}/v1/cluster" | head -c 300 | sed 's/^/     /'; echo
    echo "0 passed, 0 failed"
    exit 0
fi
ok "leader elected ($leader)"
f=$(( leader % 3 + 1 )) # a follower
code() { curl -s -m 10 -o "$TMP/body" -w '%{http_code}' "$@"; }

check "cluster members" 3 "$(curl -s "${H[$f]}/v1/cluster" | jq '.members | length')"
check "bucket via follower" 200 "$(code -X PUT "${H[$f]}/v1/buckets/clus" -d '{"versioning":"enabled"}')"
check "put via follower" 200 "$(code -X PUT "${H[$f]}/v1/buckets/clus/objects/k%2F1" -d '{"size":7,"etag":"e7"}')"
for i in 1 2 3; do
    check "linearizable read on node $i" e7 "$(curl -s "${H[$i]}/v1/buckets/clus/objects/k%2F1" | jq -r .etag)"
done
check "412 via follower" 412 "$(code -X PUT -H 'If-None-Match: *' "${H[$f]}/v1/buckets/clus/objects/k%2F1" -d '{}')"
check "list" 1 "$(curl -s "${H[$f]}/v1/buckets/clus/objects" | jq .key_count)"
# A refused listing keeps the node's status, S3 name and message (node_read.c: refusals are
# decided before the reply is begun).
refused() { # refused NAME URL STATUS ERROR MESSAGE
    check "$1 status" "$3" "$(code "$2")"
    check "$1 error" "$4" "$(jq -r .error "$TMP/body")"
    check "$1 message" "$5" "$(jq -r .message "$TMP/body")"
}
refused "list bad token" "${H[$f]}/v1/buckets/clus/objects?continuation-token=zz" 400 \
    InvalidContinuationToken "malformed continuation token"
refused "versions marker alone" "${H[$f]}/v1/buckets/clus/versions?version-id-marker=v" 400 \
    InvalidArgument "version-id-marker needs key-marker"
# (A 16-hex-digit marker is an op time: a position even when its version is gone, list.c.)
refused "versions unknown marker" \
    "${H[$f]}/v1/buckets/clus/versions?key-marker=k/1&version-id-marker=nosuchversion" 404 \
    NoSuchVersion "version-id-marker nosuchversion of key-marker not found (not an op-time id)"
refused "list no bucket" "${H[$f]}/v1/buckets/nope/objects" 404 NoSuchBucket \
    "the bucket does not exist"

if [ $wired = 1 ]; then
    for i in 1 2 3; do
        curl -s "${H[$i]}/metrics" >"$TMP/m$i"
        grep -q '^rustfs_metadata_has_leader 1$' "$TMP/m$i" && ok "has_leader on node $i" ||
            bad "has_leader on node $i"
        check "readyz node $i" 200 "$(code "${H[$i]}/readyz")"
    done
fi

# Leader kill -9: a write through a surviving node succeeds once a new leader is elected.
kill -9 "${NPID[$leader]}"
t0=$(date +%s%N)
s=$(code -X PUT "${H[$f]}/v1/buckets/clus/objects/after-failover" -d '{}')
t1=$(date +%s%N)
check "write after leader kill" 200 "$s"
echo "     failover write took $(( (t1 - t0) / 1000000 )) ms"
check "read after failover" 200 "$(code "${H[$f]}/v1/buckets/clus/objects/after-failover")"
nl=$(curl -s "${H[$f]}/v1/cluster" | jq -r '.leader // empty')
[ -n "$nl" ] && [ "$nl" != "$leader" ] && ok "new leader $nl" || bad "new leader (got '$nl')"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
