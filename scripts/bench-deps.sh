#!/usr/bin/env bash
# bench-deps.sh: Debian packages only the benchmarks need (etcd for the side-by-side run, wrk as the
# HTTP load generator, time(1) for wrk's own CPU, gnuplot for the latency/throughput plot).
# Idempotent and quiet: installs only what is missing. Not part of scripts/deps.sh (the build
# and tests do not need them).
set -euo pipefail
PKGS=(etcd-server etcd-client wrk gnuplot-nox time)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "bench-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
