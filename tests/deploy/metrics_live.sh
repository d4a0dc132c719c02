#!/usr/bin/env bash
# A running `novita-recoveryd demo` after one run: /metrics and the probes
# answer HEAD (200, no body); `promtool check metrics` finds nothing to say
# about the live /metrics; every expression of deploy/prometheus/alerts.yml
# and deploy/grafana/novita-recoveryd.json names only metrics, labels and
# label values that this /metrics exposes.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}" "${NRD_BINARY:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

promtool=$(find_promtool)
[ -n "$promtool" ] || skip "promtool is not installed (scripts/deps.sh --full extracts it)"
command -v curl >/dev/null || skip "curl is not installed"
command -v node >/dev/null || skip "node is not installed"
[ -d "$NRD_SOURCE_DIR/tools/node_modules/yaml" ] || skip "run scripts/tools.sh first"
[ -x "$NRD_BINARY" ] || fail "no binary at NRD_BINARY"

work=$(mktemp -d)
svc_pid=""
cleanup() {
  local rc=$?
  if [ -n "$svc_pid" ]; then
    kill "$svc_pid" 2>/dev/null || true
    wait "$svc_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "--- service stderr (tail)"; tail -n 30 "$work/service.err" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

start_demo "$NRD_BINARY" "$work" --migration-interval-minutes 15
base="http://127.0.0.1:$svc_port"

for p in /metrics /health /ready; do
  code=$(curl -sS -I -o "$work/head" -w '%{http_code} %{size_download}' "$base$p")
  [ "$code" = "200 0" ] || fail "HEAD $p answered '$code' (want 200 and no body)"
done

code=$(curl -sS -o "$work/run.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
       -d '{"immediate":true}' "$base/api/instances/migration/check-failed")
[ "$code" = 200 ] || fail "check-failed answered $code"
curl -sS -f -o "$work/metrics.txt" "$base/metrics"

"$promtool" check metrics < "$work/metrics.txt" > "$work/lint" 2>&1 || {
  cat "$work/lint"; fail "promtool check metrics refused the live /metrics"; }
[ ! -s "$work/lint" ] || { cat "$work/lint"; fail "promtool check metrics has remarks"; }
echo "promtool check metrics: $(grep -c '^# TYPE' "$work/metrics.txt") families, no remarks"

node "$NRD_SOURCE_DIR/tests/deploy/check-expressions.mjs" "$work/metrics.txt" \
  "$NRD_SOURCE_DIR/deploy/prometheus/alerts.yml" "$NRD_SOURCE_DIR/deploy/grafana/novita-recoveryd.json"
