#!/usr/bin/env bash
# suite_clock.sh: wall-clock jumps (test/fault/test_clock.py) through the test-only
# MC_TEST_WALL_CLOCK_FILE hook: lease reads stay linearizable while clocks jump by minutes to days
# and the leader is isolated; a key's last-modified stays monotonic across a backward jump and a
# leader change, also when the new leader is elected before applying its predecessor's writes
# (MC_TEST_APPLY_DELAY_MS hook).
#   usage: test/fault/suite_clock.sh BUILD_DIR     Time: about 40 s (40 s under ASan).
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
for p in jepsen_client lincheck faultproxy metacenter rawwrite; do
    [ -x "$BUILD/$p" ] || { echo "missing $BUILD/$p (make first)"; echo "0 passed, 1 failed"; exit 1; }
done
python3 test/fault/test_clock.py --build "$BUILD"
