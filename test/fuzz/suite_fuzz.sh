#!/usr/bin/env bash
# suite_fuzz.sh: builds the libFuzzer targets (make fuzz), replays corpora + regressions, fuzzes each.
# Usage: test/fuzz/suite_fuzz.sh BUILD_DIR   (BUILD_DIR is unused: fuzzers live in build-fuzz/)
# Env: MC_ASAN=1 → 5 s per target (the ASan CI pass); MC_FUZZ_SECONDS=N overrides the time;
#      MC_FUZZ_TARGETS="op proto" restricts the targets. Last line: "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."

secs=20
[ "${MC_ASAN:-0}" = 1 ] && secs=5
secs=${MC_FUZZ_SECONDS:-$secs}
passed=0
failed=0
work=$(mktemp -d /tmp/mc_fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Storage/apply targets put their scratch files here (on tmpfs when possible), so inputs that
# abort do not leave directories behind.
scratch_base=/dev/shm
[ -w "$scratch_base" ] || scratch_base=/tmp
scratch=$(mktemp -d "$scratch_base/mc_fuzz_suite.XXXXXX")
trap 'rm -rf "$work" "$scratch"' EXIT
export MC_FUZZ_SCRATCH=$scratch

pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

if ! make --no-print-directory -j2 fuzz >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log"
    fail "make fuzz (needs clang and libclang-rt-14-dev: bash scripts/deps.sh)"
    echo "$passed passed, $failed failed"
    exit 1
fi

targets=${MC_FUZZ_TARGETS:-$(make --no-print-directory -s fuzz-list)}
for t in $targets; do
    bin=build-fuzz/fuzz_$t
    corpus=test/fuzz/corpus/$t
    regress=test/fuzz/regressions/$t
    mkdir -p "$work/$t/new" "$work/$t/art"
    opts=(-rss_limit_mb=1024 -timeout=10 -artifact_prefix="$work/$t/art/")
    [ -f "test/fuzz/$t.dict" ] && opts+=(-dict="test/fuzz/$t.dict")

    # 1. Replay every seed and every saved regression input (all must pass).
    inputs=()
    [ -d "$corpus" ] && inputs+=("$corpus")
    [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ] && inputs+=("$regress")
    if [ ${#inputs[@]} -eq 0 ]; then
        fail "$t: no seed corpus in $corpus"
    elif timeout 300 "$bin" "${opts[@]}" -runs=0 "${inputs[@]}" >"$work/$t/replay.log" 2>&1; then
        pass "$t: replay of $(find "${inputs[@]}" -type f | wc -l) seed/regression inputs"
    else
        grep -m5 -E "ASSERTION|ERROR|runtime error|Running:" "$work/$t/replay.log"
        fail "$t: replay (log: rerun $bin ${inputs[*]})"
    fi

    # 2. Open bugs (BUGS.md): still reproducible in strict mode? Informational only.
    for f in "$regress"/open-*; do
        [ -e "$f" ] || continue
        if MC_FUZZ_STRICT=1 timeout 60 "$bin" -timeout=5 -artifact_prefix="$work/$t/strict-" "$f" \
            >/dev/null 2>&1; then
            echo "NOTE $t: $(basename "$f") no longer fails in strict mode: the bug looks FIXED;"\
                 "drop its tolerance (fuzz_common.h fuzz_strict) and rename it"
        else
            echo "NOTE $t: $(basename "$f") still open (see test/fuzz/BUGS.md)"
        fi
    done

    # 3. Fuzz for $secs seconds from the seeds; any crash/leak/timeout/assertion fails.
    if timeout $((secs * 3 + 60)) "$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
        "$work/$t/new" "${inputs[@]}" >"$work/$t/fuzz.log" 2>&1; then
        stats=$(grep -E "^stat::number_of_executed_units" "$work/$t/fuzz.log" | awk '{print $2}')
        cov=$(grep -E "cov: [0-9]+" "$work/$t/fuzz.log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
        pass "$t: fuzzed ${secs}s, ${stats:-?} runs, cov ${cov:-?}, no crash"
    else
        grep -m4 -E "ASSERTION|ERROR: |runtime error|SUMMARY" "$work/$t/fuzz.log"
        grep -E "#[0-9]+ 0x.* in .* (src|test/fuzz)/" "$work/$t/fuzz.log" | head -8
        for a in "$work/$t/art"/*; do
            [ -e "$a" ] || continue
            mkdir -p "$regress"
            cp "$a" "$regress/"
            echo "saved $regress/$(basename "$a"): add it to git and to test/fuzz/BUGS.md"
        done
        fail "$t: fuzzing found a crash (replay: $bin $regress/<file>)"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
