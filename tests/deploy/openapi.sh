#!/usr/bin/env bash
# The API contract: openapi.yaml passes `redocly lint` cleanly, names exactly
# the routes and error codes the service has, every schema in it compiles
# under ajv's strict mode, and the response validator accepts known-good
# responses and reports each known-bad one. Skips (77) when Node or
# the tools from scripts/tools.sh are missing.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

command -v node >/dev/null || skip "node is not installed"
tools="$NRD_SOURCE_DIR/tools/node_modules"
if [ ! -x "$tools/.bin/redocly" ] || [ ! -d "$tools/ajv" ]; then
  skip "Node tools missing: run scripts/tools.sh"
fi

spec="$NRD_SOURCE_DIR/openapi.yaml"
validator="$NRD_SOURCE_DIR/tests/deploy/validate-responses.mjs"
fixtures="$NRD_SOURCE_DIR/tests/deploy/fixtures"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Lint: no errors and no warnings.
if ! (cd "$NRD_SOURCE_DIR" && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
      "$tools/.bin/redocly" lint openapi.yaml) > "$work/lint" 2>&1; then
  cat "$work/lint"
  fail "redocly lint reports errors"
fi
grep -q "Your API description is valid" "$work/lint" || { cat "$work/lint"; fail "redocly lint did not pass"; }
if grep -Eq "You have [0-9]+ warning" "$work/lint"; then
  cat "$work/lint"
  fail "redocly lint reports warnings"
fi
echo "ok: redocly lint openapi.yaml is clean"

# The document and the route table / error catalogue agree.
node "$NRD_SOURCE_DIR/tests/deploy/check-routes.mjs" "$NRD_SOURCE_DIR" ||
  fail "openapi.yaml and the service's routes or error codes differ"

# Good records: all match.
node "$validator" "$spec" "$fixtures/good.jsonl" || fail "known-good responses rejected"

# Bad records: every line reported, exit 1.
set +e
node "$validator" "$spec" "$fixtures/bad.jsonl" > "$work/bad.out" 2>&1
rc=$?
set -e
cat "$work/bad.out"
[ "$rc" -eq 1 ] || fail "validator exited $rc on known-bad responses, expected 1"
lines=$(grep -c . "$fixtures/bad.jsonl")
reported=$(grep -c "^$fixtures/bad.jsonl:[0-9]*: " "$work/bad.out" || true)
[ "$reported" -eq "$lines" ] || fail "validator reported $reported of $lines known-bad records"
echo "ok: validator reports each of $lines known-bad records"

# A typo in a schema keyword makes the document itself refused (exit 2).
sed 's/additionalProperties: false/additionalProperty: false/' "$spec" > "$work/typo.yaml"
set +e
node "$validator" "$work/typo.yaml" "$fixtures/good.jsonl" > "$work/typo.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || { cat "$work/typo.out"; fail "a misspelt schema keyword was not caught (exit $rc)"; }
echo "PASS: openapi.yaml contract checks"
