#!/usr/bin/env bash
# run.sh: runs every test suite against a build dir and prints one closing "N passed, N failed" line.
#   Suites: the Criterion unit binary, then every test/*/suite*.sh (each prints its own
#   "N passed, N failed" as its last line and exits non-zero on failure).
#   MC_ASAN=1 tells suites they run under sanitizers (they may shrink their budgets).
#   A failing unit test or suite is run once more; a pass on the second run counts, and the
#   closing lines name it as FLAKY so it is fixed rather than forgotten.
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
export BUILD
passed=0
failed=0
flaky=()
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
    for name in $(grep -aoE '^\[FAIL\] [A-Za-z0-9_]+::[A-Za-z0-9_]+' "$log" | sed -E 's/^\[FAIL\] //'); do
        pattern="${name/::/\/}"
        echo "RETRY unit test $pattern"
        if "$BUILD/unit_tests" --filter "$pattern" >"$log.one" 2>&1 &&
            grep -aq 'Failing: 0 | Crashing: 0' "$log.one"; then
            passed=$((passed + 1))
            flaky+=("unit:$pattern")
        else
            grep -aE '^\[(----|FAIL)\]' "$log.one" | head -40
            failed=$((failed + 1))
        fi
        rm -f "$log.one"
    done
    crashed=$((t - p - $(grep -acE '^\[FAIL\] ' "$log")))
    [ "$crashed" -gt 0 ] && failed=$((failed + crashed))
else
    echo "unit tests: no summary line (crashed?)"
    failed=$((failed + 1))
fi

# Runs one suite; sets sp (passed), sf (failed).
run_suite() {
    bash "$1" "$BUILD" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -aE '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -n "$line" ]; then
        sp=$(sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/' <<<"$line")
        sf=$(sed -E 's/^([A-Za-z]+: )?[0-9]+ passed, ([0-9]+) failed.*/\2/' <<<"$line")
        [ "$rc" -ne 0 ] && [ "$sf" -eq 0 ] && sf=1
    else
        echo "$1: no summary line (exit $rc)"
        sp=0
        sf=1
    fi
}

for suite in $(ls test/*/suite*.sh 2>/dev/null | sort); do
    echo "== $suite"
    start=$(date +%s)
    run_suite "$suite"
    if [ "$sf" -ne 0 ]; then
        echo "RETRY $suite (first run: $sp passed, $sf failed)"
        run_suite "$suite"
        [ "$sf" -eq 0 ] && flaky+=("suite:$suite")
    fi
    passed=$((passed + sp))
    failed=$((failed + sf))
    echo "-- $suite took $(($(date +%s) - start)) s"
done

for f in "${flaky[@]}"; do
    echo "FLAKY (passed on retry): $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
