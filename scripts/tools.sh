#!/usr/bin/env bash
# Installs the Node tools that check the API contract into tools/node_modules
# (ignored by git), at the versions pinned in tools/package-lock.json:
# @redocly/cli lints openapi.yaml; ajv + ajv-formats + yaml validate recorded
# responses against it (tests/deploy/validate-responses.mjs); puppeteer-core
# drives Debian's Chromium in the console's browser test (no browser is
# downloaded: PUPPETEER_SKIP_DOWNLOAD).
# usage: scripts/tools.sh         install (skipped when already installed)
#        scripts/tools.sh lint    install, then lint openapi.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x tools/node_modules/.bin/redocly ] || [ ! -d tools/node_modules/ajv-formats ] ||
   [ ! -d tools/node_modules/yaml ] || [ ! -d tools/node_modules/puppeteer-core ]; then
  if ! command -v npm >/dev/null; then  # a fresh Debian machine: Debian's Node.js
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix tools --no-audit --no-fund --loglevel=error
fi

if [ "${1:-}" = lint ]; then
  REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true tools/node_modules/.bin/redocly lint openapi.yaml
fi
