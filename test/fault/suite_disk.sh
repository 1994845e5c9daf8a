#!/usr/bin/env bash
# suite_disk.sh: disk full end to end (test/fault/test_disk.py): each node's data dir on a small
# tmpfs; the leader's disk below --disk-reserve-mb rejects writes (InsufficientStorage) and
# recovers by itself; a follower's disk filled to the last byte fail-stops it with a clear line;
# no acknowledged write lost, history linearizable, hashes equal.
#   usage: test/fault/suite_disk.sh BUILD_DIR     Time: about 35 s (45 s under ASan).
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
for p in jepsen_client lincheck metacenter; do
    [ -x "$BUILD/$p" ] || { echo "missing $BUILD/$p (make first)"; echo "0 passed, 1 failed"; exit 1; }
done
python3 test/fault/test_disk.py --build "$BUILD"
