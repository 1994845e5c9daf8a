#!/usr/bin/env bash
# suite_http.sh: the HTTP API over real sockets with curl, /metrics through `promtool check
# metrics`, and the deploy/ files against the metric names the server exports.
# Usage: test/http/suite_http.sh BUILD_DIR. Last line: "N passed, N failed". ~2 s.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PASS=0
FAIL=0
TMP=$(mktemp -d /tmp/mc_suite_http.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (want '$2', got '$3')"; fi
}

if ! command -v curl >/dev/null; then
    echo "curl missing (Debian package curl)"; echo "0 passed, 1 failed"; exit 1
fi

"$ROOT/$BUILD/http_testserver" --dir "$TMP/eng" >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 1 100); do grep -q HTTP_PORT "$TMP/out" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/^HTTP_PORT=//p' "$TMP/out")
if [ -z "$PORT" ]; then
    cat "$TMP/err"; echo "0 passed, 1 failed"; exit 1
fi
U="http://127.0.0.1:$PORT"

code() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }

check "healthz" 200 "$(code "$U/healthz")"
check "readyz" 200 "$(code "$U/readyz")"
check "bucket create" 200 "$(code -X PUT "$U/v1/buckets/suite" -d '{"versioning":"enabled"}')"
check "bucket exists 409" 409 "$(code -X PUT "$U/v1/buckets/suite")"
check "bucket exists name" BucketAlreadyExists "$(jq -r .error "$TMP/body")"
check "put" 200 "$(code -X PUT "$U/v1/buckets/suite/objects/dir/k%201" \
    -H 'Content-Type: application/json' -d '{"size":5,"etag":"e5"}')"
check "put if-none-match 412" 412 "$(code -X PUT -H 'If-None-Match: *' \
    "$U/v1/buckets/suite/objects/dir/k%201" -d '{}')"
check "get" 200 "$(code "$U/v1/buckets/suite/objects/dir/k%201")"
check "get key decoded" "dir/k 1" "$(jq -r .key "$TMP/body")"
check "head etag" '"e5"' "$(curl -s -I "$U/v1/buckets/suite/objects/dir/k%201" |
    tr -d '\r' | sed -n 's/^ETag: //p')"
check "list delimiter" '["dir/"]' "$(curl -s "$U/v1/buckets/suite/objects?delimiter=/" |
    jq -c .common_prefixes)"
check "versions" 1 "$(curl -s "$U/v1/buckets/suite/versions" | jq '.versions | length')"
# an etag holding CR LF is refused at input (it would split the answer into extra header lines)
check "put etag with CRLF" 400 "$(code -X PUT "$U/v1/buckets/suite/objects/inj" \
    -d '{"etag":"x\r\nSet-Cookie: pwned=1\r\nX-Injected: yes"}')"
curl -s -D "$TMP/hdrs" -o /dev/null "$U/v1/buckets/suite/objects/inj"
check "no injected header" 0 "$(grep -ciE '^(Set-Cookie|X-Injected):' "$TMP/hdrs")"
check "Date header" 1 "$(grep -c '^Date: [A-Z][a-z][a-z], [0-9][0-9] [A-Z][a-z][a-z] 20[0-9][0-9] ' "$TMP/hdrs")"
check "delete" 200 "$(code -X DELETE "$U/v1/buckets/suite/objects/dir/k%201")"
check "get after delete 404" 404 "$(code "$U/v1/buckets/suite/objects/dir/k%201")"
check "delete marker flagged" true "$(jq -r .delete_marker "$TMP/body")"
check "no such bucket" 404 "$(code "$U/v1/buckets/nope/objects")"
check "bad json 400" 400 "$(code -X PUT "$U/v1/buckets/suite/objects/x" -d '{')"
head -c 1048577 /dev/zero | tr '\0' ' ' >"$TMP/big"
check "body over 1 MiB 413" 413 "$(code -X PUT "$U/v1/buckets/suite/objects/x" \
    --data-binary @"$TMP/big")"
check "unknown route 404" 404 "$(code "$U/v2/x")"
check "method 405" 405 "$(code -X POST "$U/v1/buckets")"
check "snapshot 501" 501 "$(code -X POST "$U/v1/snapshot")"

# /metrics: format and content
check "metrics" 200 "$(code "$U/metrics")"
cp "$TMP/body" "$TMP/metrics"
# promtool lints two names the contract fixed (the seed's node_count; lag_time_ms): accept
# exactly those findings, fail on anything else (a parse error, a new lint finding).
promtool check metrics <"$TMP/metrics" >"$TMP/promtool" 2>&1
other=$(grep -v -e '^rustfs_metadata_replication_lag_time_ms metric names should not contain abbreviated units$' \
    -e '^rustfs_metadata_replication_node_count non-histogram and non-summary metrics should not have "_count" suffix$' \
    "$TMP/promtool")
[ -z "$other" ] && ok "promtool check metrics" || bad "promtool check metrics: $other"
# and a break is caught: a sample without a value
printf '# TYPE x gauge\nx\n' | promtool check metrics >/dev/null 2>&1 &&
    bad "promtool rejects broken text" || ok "promtool rejects broken text"
grep -q '^metacenter_errors_total{code="NoSuchKey"} ' "$TMP/metrics" &&
    ok "errors_total by code" || bad "errors_total by code"
grep -q '^rustfs_metadata_replication_lag_entries{peer="3"} 7$' "$TMP/metrics" &&
    ok "lag per peer" || bad "lag per peer"

# The deploy files use only names the server exports (histograms: _bucket/_sum/_count), and
# docs/monitoring.md lists every exported name.
names=$(sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$TMP/metrics" | sort -u)
missing=""
for f in deploy/prometheus/alerts.yml deploy/grafana/metacenter.json; do
    for m in $(grep -oE '(rustfs_metadata|metacenter)_[a-z_]+' "$ROOT/$f" | sort -u); do
        base=$(echo "$m" | sed -E 's/_(bucket|sum|count)$//')
        echo "$names" | grep -qx -e "$m" -e "$base" || missing="$missing $f:$m"
    done
done
[ -z "$missing" ] && ok "deploy files use exported metrics" || bad "unknown metrics in deploy:$missing"
undoc=""
for m in $names; do
    grep -q "\`$m\`" "$ROOT/docs/monitoring.md" || undoc="$undoc $m"
done
[ -z "$undoc" ] && ok "docs/monitoring.md lists every metric" || bad "undocumented:$undoc"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
