#!/usr/bin/env bash
# suite_jepsen.sh: Jepsen-style fault runs against real processes (test/fault/jepsen.py), after a
# self-test of the pipeline (jepsen_client -> lincheck, loss detection) on the engine-backed server.
#   usage: test/fault/suite_jepsen.sh BUILD_DIR   (MC_ASAN=1: 3 runs of 15 s instead of 4 of 25 s)
#   Runs: 3 nodes {partition, isolate-leader, oneway}, 3 {kill, pause-leader, transfer, membership},
#   5 {bridge, partition, delay}, 5 {kill, isolate-leader, pause-leader, oneway, transfer,
#   membership} (a membership change is the first fault of those two), and a negative control
#   (stale reads must be flagged). Time: about 3 minutes; 1.5 min under ASan.
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
srv=""
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

for p in jepsen_client jepsen_engine_server lincheck faultproxy metacenter; do
    [ -x "$BUILD/$p" ] || { echo "missing $BUILD/$p (make first)"; echo "0 passed, 1 failed"; exit 1; }
done

# 1. pipeline self-test on one engine-backed server (no Raft): linearizable, nothing lost; a
#    stale final read and a lost append must both be caught.
"$BUILD/jepsen_engine_server" "$tmp/eng" >"$tmp/srv.out" 2>"$tmp/srv.err" &
srv=$!
for _ in $(seq 50); do grep -q listening "$tmp/srv.out" && break; sleep 0.1; done
addr=$(awk '/listening/ {print $2}' "$tmp/srv.out")
H="$tmp/h.jsonl"
if "$BUILD/jepsen_client" --endpoints "$addr" --processes 8 --keys 5 --duration 2 --out "$H" \
    --seed 7 >"$tmp/run.out" 2>&1 &&
    "$BUILD/jepsen_client" --verify --endpoints "$addr" --keys 5 --duration 120 --out "$H" >"$tmp/ver.out" 2>&1 &&
    "$BUILD/lincheck" --quiet "$H" >"$tmp/lc.out" 2>&1; then
    pass
else
    fail "self-test run/verify/lincheck: $(tail -3 "$tmp"/run.out "$tmp"/ver.out "$tmp"/lc.out)"
fi
grep -q '"cas":{"ok":[1-9]' "$tmp/run.out" && grep -q '"appends_lost":0' "$tmp/ver.out" &&
    [ "$(wc -l <"$H.appends")" -gt 100 ] && pass || fail "self-test did too little: $(cat "$tmp/run.out")"
# stale final read: the last get of k0 returns the first value ever written to k0
first=$(grep -m1 '"invoke","f":"put","key":"k0"' "$H" | sed -E 's/.*"value":"([^"]*)".*/\1/')
python3 - "$H" "$first" >"$tmp/bad.jsonl" <<'PY'
import sys, json
lines = open(sys.argv[1]).read().splitlines()
for i in range(len(lines) - 1, -1, -1):
    o = json.loads(lines[i])
    if o.get("type") == "ok" and o.get("f") == "get" and o.get("key") == "k0" and o["process"] >= 1000:
        o["value"] = sys.argv[2]
        lines[i] = json.dumps(o)
        break
print("\n".join(lines))
PY
"$BUILD/lincheck" --quiet "$tmp/bad.jsonl" >/dev/null 2>&1
[ $? -eq 1 ] && pass || fail "lincheck did not flag a stale final read of k0 (value $first)"
# lost append: claim one more acknowledged append that was never written
cp "$H.appends" "$tmp/bad.appends"
echo '{"process":0,"key":"a/0/999999999","value":"p0-a999999999","status":"ok"}' >>"$tmp/bad.appends"
"$BUILD/jepsen_client" --verify --endpoints "$addr" --keys 5 --out "$tmp/h2.jsonl" \
    --appends "$tmp/bad.appends" >"$tmp/ver2.out" 2>&1
[ $? -eq 1 ] && grep -q 'LOST append a/0/999999999' "$tmp/ver2.out" && pass ||
    fail "verify did not report a lost append: $(tail -3 "$tmp/ver2.out")"
kill "$srv" && wait "$srv" 2>/dev/null
srv=""

# 2. fault runs against real 3- and 5-node clusters
dur=25
[ "${MC_ASAN:-0}" = 1 ] && dur=15
python3 test/fault/jepsen.py suite --build "$BUILD" --duration "$dur" | tee "$tmp/suite.out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/suite.out" | tail -1)
if [ -n "$line" ]; then
    passed=$((passed + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
else
    fail "jepsen.py suite printed no summary"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
