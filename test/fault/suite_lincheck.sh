#!/usr/bin/env bash
# suite_lincheck.sh: lincheck CLI on the test histories, fault proxy tests, Prometheus/Grafana checks.
#   usage: test/fault/suite_lincheck.sh BUILD_DIR    (MC_ASAN=1 shrinks the generated history)
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
LC="$BUILD/lincheck"
HIST=test/fault/lincheck/histories
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect_exit CODE PATTERN NAME -- CMD...: CMD exits CODE and its stdout+stderr match PATTERN.
expect_exit() {
    local want=$1 pat=$2 name=$3
    shift 4
    "$@" >"$tmp/out" 2>&1
    local rc=$?
    if [ "$rc" -eq "$want" ] && grep -qE -- "$pat" "$tmp/out"; then
        pass
    else
        fail "$name: exit $rc (want $want), output: $(head -c 600 "$tmp/out")"
    fi
}

[ -x "$LC" ] || { echo "missing $LC (make first)"; echo "0 passed, 1 failed"; exit 1; }

# 1. hand-made histories: ok_* linearizable, bad_* not, invalid_* bad input naming the line
for f in "$HIST"/ok_*.jsonl; do
    expect_exit 0 '^linearizable$' "$f" -- "$LC" --quiet "$f"
done
for f in "$HIST"/bad_*.jsonl; do
    expect_exit 1 '^not linearizable$' "$f" -- "$LC" --quiet "$f"
done
for f in "$HIST"/invalid_*.jsonl; do
    expect_exit 2 ': line [0-9]+: ' "$f" -- "$LC" --quiet "$f"
done
expect_exit 2 'No such file' "missing file" -- "$LC" "$tmp/nope.jsonl"
expect_exit 2 'usage' "no arguments" -- "$LC"
expect_exit 3 '^unknown$' "per-key op limit" -- "$LC" --quiet --max-ops-per-key 1 "$HIST/ok_sequential.jsonl"

# 2. generated concurrent histories (10 keys, 8 processes, 2% info ops), with and without a bug
ops=100000
[ "${MC_ASAN:-0}" = 1 ] && ops=20000
"$LC" --generate "$ops" --seed 11 >"$tmp/gen.jsonl"
start=$(date +%s%N)
expect_exit 0 '^linearizable$' "generated $ops ops" -- "$LC" "$tmp/gen.jsonl"
ms=$((($(date +%s%N) - start) / 1000000))
echo "lincheck: generated history of $ops ops checked in $ms ms ($(grep 'checked in' "$tmp/out"))"
if [ "$ms" -gt 30000 ]; then fail "generated history took $ms ms"; else pass; fi
"$LC" --generate "$ops" --seed 12 --violation >"$tmp/genv.jsonl"
expect_exit 1 '^key "k0"' "generated $ops ops with a stale read" -- "$LC" "$tmp/genv.jsonl"
"$LC" --generate 3000 --seed 13 --info-percent 20 --keys 3 >"$tmp/geni.jsonl"
expect_exit 0 '^linearizable$' "generated, 20% info ops" -- "$LC" "$tmp/geni.jsonl"
expect_exit 0 '^linearizable$' "history on stdin" -- "$LC" --quiet - <"$tmp/gen.jsonl"

# 3. fault proxy (Criterion tests of build/faultproxy as a real process)
if [ -x "$BUILD/faultproxy" ] && [ -x "$BUILD/unit_tests" ]; then
    BUILD="$BUILD" "$BUILD/unit_tests" --filter 'lincheck_proxy/*' >"$tmp/proxy" 2>&1
    line=$(grep -a 'Synthesis:' "$tmp/proxy" | tail -1)
    if grep -q 'Failing: 0 | Crashing: 0' <<<"$line" && ! grep -q 'Tested: 0 ' <<<"$line"; then
        pass
    else
        fail "faultproxy tests: $(tail -20 "$tmp/proxy")"
    fi
else
    fail "missing $BUILD/faultproxy or $BUILD/unit_tests"
fi

# 4. Prometheus rules and config, and the alert unit tests
if command -v promtool >/dev/null; then
    expect_exit 0 'SUCCESS: 4 rules found' "promtool check rules" -- promtool check rules deploy/prometheus/alerts.yml
    expect_exit 0 'SUCCESS: 1 rule files found' "promtool check config" -- promtool check config deploy/prometheus/prometheus.yml
    expect_exit 0 'SUCCESS' "promtool test rules" -- promtool test rules deploy/prometheus/alerts_test.yml
else
    fail "promtool not installed (Debian package prometheus)"
fi

# 5. Grafana dashboard: valid JSON, only metric names from the contract in docs/monitoring.md
dash=deploy/grafana/metacenter.json
allowed='^(rustfs_metadata_replication_(leader_id|term|node_count|healthy_nodes|lag_entries|lag_time_ms|committed_index|applied_index|snapshot_size_bytes|ops_per_second|write_latency_seconds|read_latency_seconds)|rustfs_metadata_has_leader|metacenter_wal_fsync_duration_seconds|metacenter_apply_duration_seconds|metacenter_proposals_pending|metacenter_client_connections|metacenter_errors_total)$'
if command -v jq >/dev/null; then
    json_ok() { jq empty "$1"; }
else
    json_ok() { python3 -m json.tool "$1" >/dev/null; }
fi
if json_ok "$dash" 2>"$tmp/json"; then pass; else fail "$dash is not valid JSON: $(cat "$tmp/json")"; fi
# base_names FILE...: metric names used, with histogram suffixes removed (node_count stays)
base_names() {
    grep -ohE '\b(rustfs|metacenter)_[a-z_]+' "$@" | sort -u | while read -r n; do
        if grep -qE "$allowed" <<<"$n"; then echo "$n"; else sed -E 's/_(bucket|count|sum)$//' <<<"$n"; fi
    done | sort -u
}
grep -oE '"expr": *"[^"]*"' "$dash" >"$tmp/exprs"
base_names "$tmp/exprs" >"$tmp/names"
bad=$(grep -vE "$allowed" "$tmp/names")
if [ -s "$tmp/names" ] && [ -z "$bad" ]; then pass; else fail "dashboard uses names outside the contract: $bad"; fi
missing=""
for n in $(base_names deploy/prometheus/alerts.yml "$tmp/names"); do
    grep -q "\`$n\`" docs/monitoring.md || missing="$missing $n"
done
if [ -z "$missing" ]; then pass; else fail "docs/monitoring.md does not document:$missing"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
