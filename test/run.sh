#!/usr/bin/env bash
# run.sh: runs every test suite against a build dir and prints one closing "N passed, N failed" line.
#   Suites: the Criterion unit binary, then every test/*/suite*.sh (each prints its own
#   "N passed, N failed" as its last line and exits non-zero on failure).
#   MC_ASAN=1 tells suites they run under sanitizers (they may shrink their budgets).
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
export BUILD
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests ($BUILD/unit_tests)"
"$BUILD/unit_tests" --jobs 2 >"$log" 2>&1
# Failures (with their assertion lines) and the summary; the node's log lines are left out.
grep -aE '^\[(----|FAIL|====)\]|runtime error|AddressSanitizer|LeakSanitizer' "$log" | head -200
line=$(grep -a 'Synthesis:' "$log" | tail -1)
if [ -n "$line" ]; then
    t=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$line")
    p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + p))
    failed=$((failed + t - p))
else
    echo "unit tests: no summary line (crashed?)"
    failed=$((failed + 1))
fi

for suite in $(ls test/*/suite*.sh 2>/dev/null | sort); do
    echo "== $suite"
    start=$(date +%s)
    bash "$suite" "$BUILD" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line=$(grep -aE '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -n "$line" ]; then
        p=$(sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/' <<<"$line")
        f=$(sed -E 's/^([A-Za-z]+: )?[0-9]+ passed, ([0-9]+) failed.*/\2/' <<<"$line")
        passed=$((passed + p))
        failed=$((failed + f))
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
    else
        echo "$suite: no summary line (exit $rc)"
        failed=$((failed + 1))
    fi
    echo "-- $suite took $(($(date +%s) - start)) s"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
