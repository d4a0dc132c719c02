#!/usr/bin/env bash
# The operator console in a real browser: Debian's headless Chromium, driven
# by puppeteer-core (tools/node_modules), against two `novita-recoveryd demo`
# processes on ports the kernel picks: one open, one with API_TOKEN set.
# tests/deploy/console-browser.mjs does the checks; this script starts and
# stops the services. Skips (77) only when Chromium is not installed. The
# screenshot is kept in the build folder (console-screenshot.png).
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}" "${NRD_BINARY:?set by CTest}" "${NRD_BUILD_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

chromium=${NRD_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "Chromium is not installed (scripts/deps.sh --full installs it)"
command -v node >/dev/null || fail "node is not installed (scripts/tools.sh installs it)"
[ -d "$NRD_SOURCE_DIR/tools/node_modules/puppeteer-core" ] ||
  fail "puppeteer-core is missing from tools/node_modules: run scripts/tools.sh"
[ -x "$NRD_BINARY" ] || fail "no binary at NRD_BINARY"

work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for s in open token; do
      echo "--- service '$s' log (tail)"; tail -n 20 "$work/$s.log" 2>/dev/null || true
      echo "--- service '$s' stderr (tail)"; tail -n 20 "$work/$s.err" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# start_demo NAME [VAR=value...]: starts a demo in the background; its port
# is read from its log later (port_of NAME).
start_demo() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  env "$@" "$NRD_BINARY" demo --port 0 --database-path "$work/$name/demo.db" \
    --migration-interval-minutes 0 > "$work/$name.log" 2> "$work/$name.err" &
  pids+=("$!")
}

port_of() {
  local name=$1 port=""
  for _ in $(seq 1 200); do
    port=$(grep '"msg":"listening"' "$work/$name.log" 2>/dev/null |
           sed -n 's/.*"port":\([0-9]*\).*/\1/p' | head -n 1 || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "demo '$name' did not log its port within 20 s"
  printf '%s' "$port"
}

# The open one fails a migration every second, so its second run has work
# (the ticker's); the one with a token never does.
start_demo open DEMO_FAIL_EVERY_SECONDS=1 WATCH_INTERVAL_SECONDS=0  # the console's Run now recovers them
token="console-test-$RANDOM$RANDOM"
start_demo token DEMO_FAIL_EVERY_SECONDS=0 WATCH_INTERVAL_SECONDS=0 API_TOKEN="$token"
open_port=$(port_of open)
token_port=$(port_of token)

# Before the browser: the ticker has failed a migration at least once.
for _ in $(seq 1 100); do
  grep -q '"msg":"demo: the simulator failed a migration"' "$work/open.log" && break
  sleep 0.1
done
grep -q '"msg":"demo: the simulator failed a migration"' "$work/open.log" ||
  fail "the demo's ticker failed no migration within 10 s (DEMO_FAIL_EVERY_SECONDS=1)"
echo "ok: the demo's simulator fails migrations on its own"

shot="$NRD_BUILD_DIR/console-screenshot.png"
NRD_CHROMIUM="$chromium" NRD_PROFILE_DIR="$work/profile" NRD_SCREENSHOT="$shot" \
NRD_OPEN_URL="http://127.0.0.1:$open_port" NRD_TOKEN_URL="http://127.0.0.1:$token_port" \
NRD_TOKEN="$token" NRD_RESPONSES="$work/responses.jsonl" \
  node "$NRD_SOURCE_DIR/tests/deploy/console-browser.mjs"

# Every API answer the page received matches openapi.yaml.
node "$NRD_SOURCE_DIR/tests/deploy/validate-responses.mjs" "$NRD_SOURCE_DIR/openapi.yaml" \
  "$work/responses.jsonl" || fail "answers the console received do not match openapi.yaml"
echo "ok: $(wc -l < "$work/responses.jsonl") answers the console received match openapi.yaml"
echo "PASS: the operator console in Chromium (screenshot: $shot)"
