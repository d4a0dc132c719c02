#!/usr/bin/env bash
# A real nginx with docker/nginx.conf on loopback in front of a running
# `novita-recoveryd demo` (the service against its bundled simulator), driven
# with curl: an immediate check-failed that recreates instances, X-Request-Id
# and X-Forwarded-For carried through (the client connects from 127.0.0.2 and
# only nginx, on 127.0.0.1, is a trusted proxy), the service's JSON error bodies kept
# (404, 405, 415, 400), a body over 64 KiB refused by nginx (413, same JSON
# shape). Every response received is validated against openapi.yaml when the
# Node tools are installed (scripts/tools.sh).
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}" "${NRD_BINARY:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

nginx=$(find_nginx)
[ -n "$nginx" ] || skip "nginx is not installed"
command -v curl >/dev/null || skip "curl is not installed"
[ -x "$NRD_BINARY" ] || fail "no binary at NRD_BINARY"

work=$(mktemp -d)
# Workers of an nginx started as root run as nobody: let them into the prefix.
chmod 755 "$work"
svc_pid=""
ngx_pid=""
cleanup() {
  local rc=$?
  for p in $ngx_pid $svc_pid; do
    kill "$p" 2>/dev/null || true
  done
  for p in $ngx_pid $svc_pid; do
    wait "$p" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "--- service log (tail)"; tail -n 30 "$work/service.log" 2>/dev/null || true
    echo "--- service stderr (tail)"; tail -n 30 "$work/service.err" 2>/dev/null || true
    echo "--- nginx stderr (tail)"; tail -n 30 "$work/nginx.err" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# ---- the service, on a port the kernel picks ----
mkdir -p "$work/db"
# Only nginx's address is a trusted proxy; the client comes from 127.0.0.2.
# No scheduler and no watch: the watch's first tick (at start) would recover
# the demo's failed rows before the POST below, which must find them.
"$NRD_BINARY" demo --port 0 --database-path "$work/db/demo.db" --migration-interval-minutes 0 \
  --watch-interval-seconds 0 --trusted-proxies 127.0.0.1/32 \
  > "$work/service.log" 2> "$work/service.err" &
svc_pid=$!
svc_port=""
for _ in $(seq 1 200); do
  svc_port=$(grep '"msg":"listening"' "$work/service.log" 2>/dev/null |
             sed -n 's/.*"port":\([0-9]*\).*/\1/p' | head -n 1 || true)
  [ -n "$svc_port" ] && break
  kill -0 "$svc_pid" 2>/dev/null || fail "the service exited before listening"
  sleep 0.1
done
[ -n "$svc_port" ] || fail "the service did not log its port within 20 s"

# ---- nginx, on a free loopback port (retried when the port is taken) ----
mkdir -p "$work/nginx"
ngx_port=""
for _ in $(seq 1 10); do
  port=$((20000 + RANDOM % 40000))
  nginx_conf_for "127.0.0.1:$svc_port" "127.0.0.1:$port" "$work/nginx/nginx.conf"
  "$nginx" -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e stderr \
    > "$work/nginx.out" 2> "$work/nginx.err" &
  ngx_pid=$!
  for _ in $(seq 1 50); do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; then
      ngx_port=$port
      break
    fi
    kill -0 "$ngx_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ngx_port" ] && break
  kill "$ngx_pid" 2>/dev/null || true
  wait "$ngx_pid" 2>/dev/null || true
  ngx_pid=""
  grep -q "in use" "$work/nginx.err" || fail "nginx did not start"
done
[ -n "$ngx_port" ] || fail "no free port for nginx after 10 tries"
base="http://127.0.0.1:$ngx_port"
api="$base/api/instances/migration"

# Wait until the service is ready (through nginx).
ready=""
for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/ready")" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || fail "/ready did not answer 200 through nginx within 10 s"

# ---- helpers ----
n=0
: > "$work/responses.jsonl"

json_text() {  # stdin -> a JSON string literal
  printf '"'
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' -e 's/\r/\\r/g' | awk '{ printf "%s\\n", $0 }'
  printf '"'
}

# req METHOD TEMPLATE URL [curl args...]: sets status, body (file), headers
# (file), and records the response for the contract check.
req() {
  local method=$1 template=$2 url=$3
  shift 3
  n=$((n + 1))
  body="$work/body.$n"
  headers="$work/headers.$n"
  status=$(curl -s -X "$method" -o "$body" -D "$headers" -w '%{http_code}' --max-time 60 "$@" "$url")
  local ctype
  ctype=$(header Content-Type)
  {
    printf '{"method":"%s","path":"%s","status":%s,"contentType":"%s","body":' \
      "$method" "$template" "$status" "$ctype"
    case "$ctype" in
      application/json*) if [ -s "$body" ]; then tr -d '\n' < "$body"; else printf 'null'; fi ;;
      *) json_text < "$body" ;;
    esac
    printf '}\n'
  } >> "$work/responses.jsonl"
}

header() {  # header NAME: its value in the last response
  grep -i "^$1:" "$headers" | head -n 1 | sed -e 's/^[^:]*: *//' -e 's/\r$//' || true
}

expect_status() {
  [ "$status" = "$1" ] || fail "$2: expected $1, got $status: $(head -c 300 "$body")"
}

expect_body() {  # expect_body FIXED-STRING WHAT
  grep -qF -- "$1" "$body" || fail "$2: body lacks $1: $(head -c 300 "$body")"
}

expect_error() {  # expect_error STATUS CODE WHAT
  expect_status "$1" "$3"
  expect_body '"success":false' "$3"
  expect_body "\"code\":\"$2\"" "$3"
  case "$(header Content-Type)" in
    application/json*) ;;
    *) fail "$3: Content-Type is '$(header Content-Type)', not application/json" ;;
  esac
}

# ---- an immediate run through nginx, from a client on 127.0.0.2 ----
# The client also sends a forged X-Forwarded-For: nginx appends the real
# peer, and the service, trusting only nginx, must log 127.0.0.2.
rid="deploy-test-$$"
req POST /api/instances/migration/check-failed "$api/check-failed" --interface 127.0.0.2 \
  -H 'Content-Type: application/json' -H "X-Request-Id: $rid" \
  -H 'X-Forwarded-For: 203.0.113.7' --data '{"immediate":true}'
[ "$status" != 000 ] || fail "cannot connect from 127.0.0.2 (curl --interface)"
expect_status 200 "immediate check-failed"
expect_body '"success":true' "immediate check-failed"
recreated=$(sed -n 's/.*"instancesRecreated":\([0-9]*\).*/\1/p' "$body")
[ "${recreated:-0}" -gt 0 ] ||
  fail "immediate check-failed recreated nothing: $(head -c 300 "$body")"
[ "$(header X-Request-Id)" = "$rid" ] || fail "X-Request-Id not echoed: '$(header X-Request-Id)'"
run_id=$(sed -n 's/.*"runId":"\([^"]*\)".*/\1/p' "$body" | head -n 1)
[ -n "$run_id" ] || fail "the report has no runId"
echo "ok: immediate check-failed through nginx recreated $recreated instance(s) in $run_id"

# The service logged the client nginx put in X-Forwarded-For, not the forged
# entry and not nginx's own address. Access lines are written up to 100 ms
# after the request (NRD_LOG_FLUSH_MS): wait for it.
line=""
for _ in $(seq 1 30); do
  line=$(grep "\"requestId\":\"$rid\"" "$work/service.log" | grep '"msg":"request"' | head -n 1 || true)
  [ -n "$line" ] && break
  sleep 0.1
done
[ -n "$line" ] || fail "no access log line with requestId $rid"
case "$line" in
  *'"client":"127.0.0.2"'*) ;;
  *) fail "access log line does not carry the client nginx forwarded (127.0.0.2): $line" ;;
esac
echo "ok: access log carries the requestId and the client from nginx's X-Forwarded-For"

# Without X-Request-Id nginx makes one (32 hex digits) and the service echoes it.
req GET /health "$base/health"
expect_status 200 "/health"
expect_body '"status":"ok"' "/health"
header X-Request-Id | grep -Eq '^[0-9a-f]{32}$' ||
  fail "no generated X-Request-Id on /health: '$(header X-Request-Id)'"
echo "ok: nginx generates X-Request-Id when the client sends none"

req GET '/api/instances/migration/runs/{runId}' "$api/runs/$run_id"
expect_status 200 "GET run"
expect_body '"state":"done"' "GET run"

req GET /api/instances/migration/recoveries "$api/recoveries?state=created"
expect_status 200 "list recoveries"
expect_body '"state":"created"' "list recoveries"

req GET /api/instances/migration/scheduler/status "$api/scheduler/status"
case "$status" in
  200) expect_body '"paused":false' "scheduler status" ;;
  503) expect_error 503 SCHEDULER_DISABLED "scheduler status (interval 0)" ;;
  *) fail "scheduler status: unexpected $status" ;;
esac

req GET /metrics "$base/metrics"
expect_status 200 "/metrics"
case "$(header Content-Type)" in
  text/plain*) ;;
  *) fail "/metrics Content-Type is '$(header Content-Type)'" ;;
esac
grep -q '^nrd_' "$body" || fail "/metrics has no nrd_ series"

# ---- error cases keep their JSON bodies through nginx ----
req POST /api/instances/migration/check-failed "$api/check-failed" \
  -H 'Content-Type: text/plain' --data '{"immediate":true}'
expect_error 415 UNSUPPORTED_MEDIA_TYPE "text/plain body"

req GET /api/instances/migration/check-failed "$api/check-failed"
expect_error 405 METHOD_NOT_ALLOWED "GET on check-failed"
[ "$(header Allow)" = POST ] || fail "405 without 'Allow: POST': '$(header Allow)'"

req GET /api/instances/migration/no-such-thing "$api/no-such-thing"
expect_error 404 NOT_FOUND "unknown path"

req POST /api/instances/migration/check-failed "$api/check-failed" \
  -H 'Content-Type: application/json' --data '{"dry_run":true}'
expect_error 400 UNKNOWN_FIELD "misspelt field"
expect_body "dry_run" "misspelt field"

# A body over 64 KiB: nginx refuses it, in the service's error shape, and the
# service never sees it.
head -c 70000 /dev/zero | tr '\0' ' ' > "$work/big.json"
req POST /api/instances/migration/check-failed "$api/check-failed" \
  -H 'Content-Type: application/json' -H 'X-Request-Id: deploy-too-large' \
  --data-binary "@$work/big.json"
expect_error 413 PAYLOAD_TOO_LARGE "70000-byte body"
[ "$(header X-Request-Id)" = deploy-too-large ] || fail "413 from nginx lacks X-Request-Id"
sleep 0.3  # past the access log's flush delay, so a line would be there
grep -q '"requestId":"deploy-too-large"' "$work/service.log" &&
  fail "the 70000-byte body reached the service"
echo "ok: 404, 405, 415, 400 and 413 keep the JSON error shape through nginx"

# ---- the rest of the API through nginx (from 127.0.0.5, so the rate limit
# of the requests above does not apply); every response is checked against
# openapi.yaml below ----
o=(--interface 127.0.0.5)
json=(-H 'Content-Type: application/json')
req POST /api/instances/migration/check-failed "$api/check-failed" "${o[@]}" "${json[@]}" \
  --data '{"immediate":true,"dryRun":true}'
expect_status 200 "immediate dry run"
expect_body '"dryRun":true' "immediate dry run"
req POST /api/instances/migration/check-failed "$api/check-failed" "${o[@]}"
expect_status 202 "background check-failed without a body"
expect_body '"jobId":"run_' "background check-failed"
req GET '/api/instances/migration/runs/{runId}' "$api/runs/run_0_nothing" "${o[@]}"
expect_error 404 RUN_NOT_FOUND "unknown run"
req GET /api/instances/migration/recoveries "$api/recoveries?state=bogus" "${o[@]}"
expect_error 400 INVALID_STATE "unknown state"
req GET /api/instances/migration/events "$api/events?limit=5" "${o[@]}"
expect_status 200 "events"
req GET /api/instances/migration/events "$api/events?limit=0" "${o[@]}"
expect_error 400 INVALID_LIMIT "events limit 0"
req POST '/api/instances/migration/recoveries/{jobId}/retry' "$api/recoveries/no-such-job/retry" "${o[@]}"
expect_error 404 RECOVERY_NOT_FOUND "retry of an unknown row"
req POST '/api/instances/migration/recoveries/{jobId}/abandon' "$api/recoveries/no-such-job/abandon" \
  "${o[@]}" "${json[@]}" --data '{"reason":"test"}'
expect_error 404 RECOVERY_NOT_FOUND "abandon of an unknown row"
req POST /api/instances/migration/scheduler/pause "$api/scheduler/pause" "${o[@]}"
expect_status 200 "pause"
expect_body '"paused":true' "pause"
req POST /api/instances/migration/scheduler/trigger "$api/scheduler/trigger" "${o[@]}"
expect_error 409 SCHEDULER_PAUSED "trigger while paused"
req POST /api/instances/migration/scheduler/resume "$api/scheduler/resume" "${o[@]}"
expect_status 200 "resume"
expect_body '"paused":false' "resume"
req GET /ready "$base/ready" "${o[@]}"
expect_status 200 "/ready"
req GET /api/instances/migration/runs "$api/runs?limit=5" "${o[@]}"
expect_status 200 "list runs"
expect_body "\"runId\":\"$run_id\"" "list runs"
req GET /api/instances/migration/overview "$api/overview" "${o[@]}"
expect_status 200 "overview"
expect_body '"ledger":{' "overview"
req GET /api/instances/migration/stats/hourly "$api/stats/hourly?days=7" "${o[@]}"
expect_status 200 "hourly stats"
expect_body '"action":"recreated"' "hourly stats"
req GET /api/instances/migration/stats/hourly "$api/stats/hourly?days=0" "${o[@]}"
expect_error 400 INVALID_QUERY "hourly stats days=0"
echo "ok: the rest of the API answers through nginx"

# ---- the operator console through nginx: the page, its files, its headers ----
for page in / /ui/; do
  req GET "$page" "$base$page" "${o[@]}"
  expect_status 200 "console page $page"
  expect_body '<script type="module" src="/ui/app.js">' "console page $page"
  case "$(header Content-Type)" in
    text/html*) ;;
    *) fail "$page Content-Type is '$(header Content-Type)'" ;;
  esac
  header Content-Security-Policy | grep -q "default-src 'self'" ||
    fail "$page lacks the strict Content-Security-Policy through nginx: '$(header Content-Security-Policy)'"
  [ "$(header X-Content-Type-Options)" = nosniff ] || fail "$page lacks X-Content-Type-Options: nosniff"
  [ -n "$(header Referrer-Policy)" ] || fail "$page lacks Referrer-Policy"
done
req GET '/ui/{file}' "$base/ui/app.js" "${o[@]}"
expect_status 200 "/ui/app.js"
case "$(header Content-Type)" in
  text/javascript*) ;;
  *) fail "/ui/app.js Content-Type is '$(header Content-Type)'" ;;
esac
req GET '/ui/{file}' "$base/ui/style.css" "${o[@]}"
expect_status 200 "/ui/style.css"
case "$(header Content-Type)" in
  text/css*) ;;
  *) fail "/ui/style.css Content-Type is '$(header Content-Type)'" ;;
esac
req GET '/ui/{file}' "$base/ui/no-such-file.js" "${o[@]}"
expect_error 404 NOT_FOUND "unknown console file"
req GET /openapi.yaml "$base/openapi.yaml" "${o[@]}"
expect_status 200 "/openapi.yaml"
expect_body 'openapi: 3.1.0' "/openapi.yaml"
echo "ok: the operator console, its files and openapi.yaml through nginx, with their headers"

# ---- the per-client rate limit on /api/ (10 r/s, burst 20) ----
# 40 requests from 127.0.0.3 at once (one curl, in parallel, so a busy
# machine cannot spread them over the seconds the limit allows) meet 429 in
# the JSON shape; another client (127.0.0.4) is not limited by them.
limited=0
curl -s --interface 127.0.0.3 --parallel --parallel-immediate --parallel-max 40 --max-time 10 \
  -o "$work/limited.#1" "$api/scheduler/status?n=[1-40]" || true
for f in "$work"/limited.*; do
  if grep -qF '"code":"RATE_LIMITED"' "$f"; then
    limited=$((limited + 1))
  elif ! grep -qF '"paused":' "$f"; then
    fail "a parallel request got neither the status nor the JSON 429: $(head -c 300 "$f")"
  fi
done
[ "$limited" -gt 0 ] || fail "40 quick requests from one client were never limited"
code=$(curl -s --interface 127.0.0.4 -o /dev/null -w '%{http_code}' --max-time 5 "$api/scheduler/status")
[ "$code" != 429 ] || fail "a second client was limited by the first one's requests"
echo "ok: per-client rate limit ($limited of 40 requests refused with 429)"

# ---- every response against openapi.yaml ----
validator="$NRD_SOURCE_DIR/tests/deploy/validate-responses.mjs"
if command -v node >/dev/null && [ -d "$NRD_SOURCE_DIR/tools/node_modules/ajv" ]; then
  node "$validator" "$NRD_SOURCE_DIR/openapi.yaml" "$work/responses.jsonl" ||
    fail "responses through nginx do not match openapi.yaml"
else
  echo "note: Node tools not installed (scripts/tools.sh); responses not checked against openapi.yaml"
fi
if [ -n "${NRD_RESPONSE_LOG:-}" ]; then
  cat "$work/responses.jsonl" >> "$NRD_RESPONSE_LOG"
fi

# ---- graceful shutdown: SIGTERM, exit 0 within 10 s (Docker's grace) ----
kill -TERM "$svc_pid"
for _ in $(seq 1 100); do
  kill -0 "$svc_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$svc_pid" 2>/dev/null && fail "the service did not exit within 10 s of SIGTERM"
svc_rc=0
wait "$svc_pid" || svc_rc=$?
svc_pid=""
[ "$svc_rc" -eq 0 ] || fail "the service exited $svc_rc after SIGTERM"
echo "ok: SIGTERM: the service exited 0"
echo "PASS: service behind nginx"
