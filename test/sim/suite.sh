#!/usr/bin/env bash
# test/sim/suite.sh: CI run of the deterministic simulator (called by test/run.sh with the build dir).
#   1. random seeds with every fault on: 1000 x 3 nodes + 1000 x 5 nodes (+ 100 x 7 nodes),
#      two shards in parallel (2 cores);
#   2. determinism: the same seed prints the same digest twice (and another seed a different one);
#   3. bug self-test: build/sim_bug_{vote,commit,read} (core compiled with -DMC_RAFT_BUG_*) must
#      each report a violation within the seed budget (commit also with --end-to-end, i.e. caught by
#      Leader Completeness / State Machine Safety, not only by the direct Raft 5.4.2 check).
# MC_ASAN=1 (sanitizer build, ~10x slower): 200 seeds per size, fewer steps.
# Prints "N passed, N failed" last; exits non-zero on any failure.
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."

SEEDS=${SIM_SEEDS:-1000}
SEEDS7=${SIM_SEEDS7:-100}
STEPS=${SIM_STEPS:-50000}
BUG_SEEDS=${SIM_BUG_SEEDS:-500}
if [ "${MC_ASAN:-0}" = 1 ]; then
    SEEDS=${SIM_SEEDS:-200}
    SEEDS7=${SIM_SEEDS7:-20}
    STEPS=${SIM_STEPS:-20000}
fi
LIMIT=300 # seconds: a hard cap per stage so a hung run cannot stall CI

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() {
    echo "ok   - $1"
    passed=$((passed + 1))
}
bad() {
    echo "FAIL - $1"
    failed=$((failed + 1))
}

for p in sim sim_bug_vote sim_bug_commit sim_bug_read; do
    if [ ! -x "$BUILD/$p" ]; then
        echo "missing $BUILD/$p (make -j2 builds it)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

# Stage 1: random seeds, all faults on (crashes, restarts, pauses, partitions of every shape,
# drop/dup/delay/reorder, snapshots, membership changes, leadership transfers, client load).
start=$(date +%s)
half=$((SEEDS / 2))
run_range() { # name nodes lo hi
    timeout $LIMIT "$BUILD/sim" --seeds "$3:$4" --nodes "$2" --steps "$STEPS" >"$tmp/$1.out" 2>&1
    echo $? >"$tmp/$1.rc"
}
run_range n3a 3 1 "$half" &
run_range n3b 3 $((half + 1)) "$SEEDS" &
wait
run_range n5a 5 1 "$half" &
run_range n5b 5 $((half + 1)) "$SEEDS" &
wait
run_range n7 7 1 "$SEEDS7"
for r in n3a n3b n5a n5b n7; do
    line=$(tail -1 "$tmp/$r.out")
    if [ "$(cat "$tmp/$r.rc")" = 0 ]; then
        ok "sim $r: $line"
    else
        bad "sim $r (exit $(cat "$tmp/$r.rc")): $line"
        grep -E "VIOLATION|failing seed|at seed" "$tmp/$r.out" | head -5
    fi
done
echo "-- random seeds: $((2 * SEEDS + SEEDS7)) seeds x $STEPS steps in $(($(date +%s) - start)) s"

# Stage 2: determinism.
a=$("$BUILD/sim" --seed 4242 --nodes 5 --steps "$STEPS" | tail -1)
b=$("$BUILD/sim" --seed 4242 --nodes 5 --steps "$STEPS" | tail -1)
v=$("$BUILD/sim" --seed 4242 --nodes 5 --steps "$STEPS" --verbose | tail -1)
c=$("$BUILD/sim" --seed 4243 --nodes 5 --steps "$STEPS" | tail -1)
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$v" ] && [ "${a##*digest=}" != "${c##*digest=}" ]; then
    ok "determinism: '$a' twice and with --verbose; seed 4243 differs"
else
    bad "determinism: '$a' vs '$b' vs verbose '$v' (other seed: '$c')"
fi

# Stage 3: the simulator finds injected bugs.
bug_found() { # binary nodes [extra args]
    local bin=$1 nodes=$2
    shift 2
    local out
    out=$(timeout $LIMIT "$BUILD/$bin" --seeds "1:$BUG_SEEDS" --nodes "$nodes" --steps "$STEPS" "$@" 2>&1)
    local rc=$?
    local v
    v=$(grep -m1 -E '^VIOLATION' <<<"$out")
    local s
    s=$(grep -m1 -E '^FAIL seed=' <<<"$out")
    if [ $rc = 1 ] && [ -n "$v" ]; then
        ok "$bin nodes=$nodes $*: caught at ${s#FAIL } -> ${v#VIOLATION }"
    else
        bad "$bin nodes=$nodes $*: no violation in $BUG_SEEDS seeds (exit $rc)"
    fi
}
start=$(date +%s)
bug_found sim_bug_vote 3
bug_found sim_bug_vote 5
bug_found sim_bug_commit 3
bug_found sim_bug_commit 5
bug_found sim_bug_commit 3 --end-to-end
bug_found sim_bug_read 3
bug_found sim_bug_read 5
echo "-- bug self-test in $(($(date +%s) - start)) s"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
