#!/usr/bin/env bash
# suite_wal_crash.sh: WAL crash matrix (kill -9 under load, >= 200 runs, bounded to ~100 s).
set -uo pipefail
BUILD=${1:-build}
runs=200
secs=100
if [ "${MC_ASAN:-0}" = "1" ]; then
    runs=60
    secs=60
fi
"$BUILD/wal_crash" --runs "$runs" --max-seconds "$secs" --seed "${MC_SEED:-$(date +%s)}"
