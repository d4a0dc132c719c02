#!/usr/bin/env bash
# Installs what is missing, builds, and starts the service on its embedded
# defaults: `serve` when NOVITA_API_KEY is set, otherwise `demo` (the bundled
# Novita simulator with a sample fleet). Extra arguments go to the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNRD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
if [ -n "${NOVITA_API_KEY:-}" ]; then
  exec build/novita-recoveryd serve "$@"
fi
exec build/novita-recoveryd demo "$@"
