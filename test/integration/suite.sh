#!/usr/bin/env bash
# suite.sh: integration tests against real metacenter processes on 127.0.0.1 (see run.py).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build} exec python3 test/integration/run.py
