#!/usr/bin/env bash
# deps.sh: install the Debian packages that building and testing metacenter need (idempotent, quiet).
set -euo pipefail

# One list for build, test and bench. Keep it sorted.
PACKAGES=(
    build-essential
    clang
    curl
    libclang-rt-14-dev
    libcriterion-dev
    libjansson-dev
    liblmdb-dev
    libssl-dev
    libuv1-dev
    libxxhash-dev
    jq
    libyaml-dev
    lmdb-utils
    openssl
    pkg-config
    prometheus
    python3
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
