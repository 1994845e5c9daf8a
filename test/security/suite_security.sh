#!/usr/bin/env bash
# suite_security.sh: limits, auth and TLS against real metacenter processes (see run_security.py).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build} exec python3 test/security/run_security.py
