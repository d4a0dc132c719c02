#!/usr/bin/env bash
# Installs the Debian packages the project needs, when any is missing.
# Usage: scripts/deps.sh [--full]   (--full adds the test extras: clang, valgrind, nginx,
#                                    Chromium and a font for the console's browser test)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev
      libsqlite3-dev libcmocka-dev libssl-dev curl ca-certificates)
if [ "${1:-}" = "--full" ]; then
  pkgs+=(clang-14 libclang-rt-14-dev valgrind nginx wrk chromium fonts-dejavu-core)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
