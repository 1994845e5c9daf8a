#!/usr/bin/env bash
# suite_crash.sh: crash and corruption tests against real processes (test/fault/test_crash.py):
# kill -9 of every node under load, a torn WAL tail, a flipped byte in a WAL segment / in LMDB
# (and random flips in a killed node's LMDB file),
# wipe and rejoin.
#   usage: test/fault/suite_crash.sh BUILD_DIR     Time: about 100 s (3 min under ASan).
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
for p in jepsen_client lincheck metacenter; do
    [ -x "$BUILD/$p" ] || { echo "missing $BUILD/$p (make first)"; echo "0 passed, 1 failed"; exit 1; }
done
python3 test/fault/test_crash.py --build "$BUILD"
