#!/usr/bin/env bash
# Validates the responses the integration tests recorded against openapi.yaml.
# usage: validate-recorded.sh openapi.yaml responses.jsonl   (77 = skipped)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node is not installed; skipped"; exit 77; }
[ -d "$here/../tools/node_modules/ajv" ] || { echo "run scripts/tools.sh first; skipped"; exit 77; }
[ -s "$2" ] || { echo "no responses were recorded (no integration test ran); skipped"; exit 77; }
echo "validating $(wc -l < "$2") recorded responses"
exec node "$here/deploy/validate-responses.mjs" "$1" "$2"
