#!/usr/bin/env bash
# Installs the Debian packages the project needs, when any is missing.
# Usage: scripts/deps.sh [--full]   (--full adds the test extras: clang, clang-format, valgrind,
# PostgreSQL's server (the pg store's tests start their own), nginx, systemd's
# systemd-analyze, Chromium and a font for the console's browser test, and
# promtool from Debian's prometheus package, extracted alone into tools/bin/ so
# that no Prometheus service is installed)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev
      libsqlite3-dev libpq-dev libcmocka-dev libssl-dev curl ca-certificates help2man git)
if [ "${1:-}" = "--full" ]; then
  pkgs+=(clang-14 libclang-rt-14-dev clang-format-14 valgrind postgresql nginx wrk jq systemd chromium
         fonts-dejavu-core)
fi

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

# promtool (check metrics, check rules, test rules) without the service.
promtool_alone() {
  command -v promtool >/dev/null && return 0
  [ -x tools/bin/promtool ] && return 0
  local tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's download user must be able to write there
  apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]' || $sudo apt-get update -qq
  (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) || {
    rm -rf "$tmp"; echo "deps.sh: apt-get download prometheus failed" >&2; return 1; }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p tools/bin
  cp "$tmp/x/usr/bin/promtool" tools/bin/promtool
  rm -rf "$tmp"
  echo "promtool: tools/bin/promtool ($(tools/bin/promtool --version 2>&1 | head -n 1))"
}

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--full" ]; then
  promtool_alone
fi
