#!/usr/bin/env bash
# Smoke test: the built binary run as a user runs it. Needs NRD_BINARY and
# NRD_SIM_BINARY (set by CTest) and curl (skips with 77 without it).
set -u

bin=${NRD_BINARY:?NRD_BINARY is not set}
sim=${NRD_SIM_BINARY:?NRD_SIM_BINARY is not set}
command -v curl >/dev/null || { echo "smoke: curl not installed; skipping"; exit 77; }

work=$(mktemp -d)
pids=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

status=0
fail() { echo "FAIL: $*"; status=1; }
ok() { echo "ok: $*"; }

# Runs the binary with only the given environment (nothing inherited).
run() { env -i PATH=/usr/bin:/bin "$@"; }

# Waits for a line matching $2 in file $1 and prints it; non-zero on timeout.
wait_line() {
  for _ in $(seq 1 200); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# --- --help and --version -------------------------------------------------
vars="PORT HOST DATABASE_PATH NOVITA_API_KEY NOVITA_API_BASE_URL NOVITA_INTERNAL_API_KEY
NOVITA_INTERNAL_API_BASE_URL NOVITA_RATE_LIMIT_RPS DEFAULT_REGION MIGRATION_DRY_RUN
MIGRATION_INTERVAL_MINUTES MIGRATION_MAX_CONCURRENT MIGRATION_JOB_LOOKBACK_HOURS
MAX_RECOVERIES_PER_RUN MAX_RETRY_ATTEMPTS REQUEST_TIMEOUT RUN_DEADLINE_SECONDS
RECOVERY_LEASE_SECONDS RECOVERY_START_POLL_SECONDS RECOVERY_START_TIMEOUT_SECONDS RECOVER_STATUSES
API_TOKEN API_TOKEN_FILE TRUSTED_PROXIES MAX_BODY_BYTES
HTTP_REQUEST_TIMEOUT_SECONDS HTTP_MAX_CONNECTIONS HTTP_MAX_CONNECTIONS_PER_IP WEBHOOK_URL
WEBHOOK_SECRET WEBHOOK_MAX_AGE_HOURS RETENTION_DAYS LOG_LEVEL RECOVERY_PLACEMENT
RECOVERY_BILLING_FALLBACK NOVITA_RATE_LIMIT_MAX_RPS NOVITA_RATE_LIMIT_ADAPTIVE
WATCH_INTERVAL_SECONDS NOVITA_PAGE_SIZE CIRCUIT_FAILURE_THRESHOLD CIRCUIT_COOLDOWN_SECONDS
NOVITA_API_KEY_FILE NOVITA_INTERNAL_API_KEY_FILE WEBHOOK_SECRET_FILE"
help=$(run "$bin" --help) || fail "--help exited non-zero"
for v in $vars; do
  flag="--$(echo "$v" | tr 'A-Z_' 'a-z-')"
  grep -qw -- "$v" <<<"$help" || fail "--help does not list $v"
  grep -q -- "$flag " <<<"$help" || fail "--help does not list $flag"
done
for c in serve check-failed migrate-db demo healthcheck; do
  grep -qw -- "$c" <<<"$help" || fail "--help does not list the command $c"
done
[ "$(grep -ci 'flag beats the variable' <<<"$help")" -eq 1 ] || fail "--help repeats its options header"
for name in pending deleting deleted creating created running start_failed failed abandoned \
    deferred skipped ignored \
    brake novitaReason retriesSpent placement same-cluster same-region onDemand \
    INSUFFICIENT_RESOURCE MIGRATE_INSUFFICIENT_RESOURCE CLUSTER_STATUS NODE_STATUS \
    DEPENDENT_RESOURCE_STATE OPERATION_LIMIT BALANCE_NOT_ENOUGH DE_BALANCE_NOT_ENOUGH \
    EXPIRED_OR_BALANCE_NOT_ENOUGH CREATE_GPU_NUM_LIMIT UNSUPPORTED_BILLING_MODE VALIDATOR_PARAM \
    REQUEST CUDA_VERSION_INCOMPATIBLE PREPAID_INSTANCE_NOT_SUPPORT_RELEASE RESOURCE_NOT_FOUND; do
  grep -qw -- "$name" <<<"$help" || fail "--help does not name $name"
done
ok "--help lists every variable, its flag, every command, the report's names and Novita's reasons"

ver=$(run "$bin" --version) || fail "--version exited non-zero"
grep -qE '^novita-recoveryd [0-9]+\.[0-9]+\.[0-9]+$' <<<"$ver" || fail "--version printed '$ver'"
ok "--version: $ver"

# --- migrate-db -------------------------------------------------------------
db="$work/fresh/nested/recovery.db"
out=$(run DATABASE_PATH="$db" "$bin" migrate-db 2>&1) || fail "migrate-db exited non-zero: $out"
[ -f "$db" ] || fail "migrate-db did not create $db"
[ "$(stat -c %a "$db")" = 600 ] || fail "database mode $(stat -c %a "$db"), not 600"
[ "$(stat -c %a "$(dirname "$db")")" = 700 ] || fail "folder mode $(stat -c %a "$(dirname "$db")"), not 700"
grep -qE '[1-9][0-9]* migration\(s\) applied' <<<"$out" || fail "first migrate-db: '$out'"
out=$(run DATABASE_PATH="$db" "$bin" migrate-db 2>&1) || fail "second migrate-db exited non-zero"
grep -q ' 0 migration(s) applied' <<<"$out" || fail "second migrate-db applied something: '$out'"
out=$(run "$bin" migrate-db --database-path "$work/flag/r.db" 2>&1) || fail "migrate-db --database-path: $out"
[ -f "$work/flag/r.db" ] || fail "--database-path was not used"
ok "migrate-db creates the database (0600 in a 0700 folder), then applies 0"

# --- bad configuration --------------------------------------------------------
err=$(run PORT=abc NOVITA_API_KEY=k DATABASE_PATH="$work/bad.db" "$bin" serve 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 78 ] || fail "PORT=abc exited $rc, not 78 (EX_CONFIG)"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "PORT=abc printed more than one line: $err"
grep -q PORT <<<"$err" || fail "PORT=abc: the message does not name PORT: $err"
[ ! -e "$work/bad.db" ] || fail "PORT=abc still opened the database"
ok "PORT=abc refused (exit $rc): $err"

err=$(run PORT=0 DATABASE_PATH="$work/nokey.db" "$bin" serve 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 78 ] || fail "serve without NOVITA_API_KEY exited $rc, not 78 (EX_CONFIG)"
grep -q NOVITA_API_KEY <<<"$err" || fail "serve without a key: no clear line: $err"
ok "serve without NOVITA_API_KEY refused (exit $rc)"

# --- exit codes: usage 64, config 78 -------------------------------------------
run "$bin" frobnicate >/dev/null 2>&1
rc=$?
[ "$rc" -eq 64 ] || fail "an unknown command exited $rc, not 64 (EX_USAGE)"
run NOVITA_API_KEY=k "$bin" serve --no-such-flag >/dev/null 2>&1
rc=$?
[ "$rc" -eq 64 ] || fail "an unknown flag exited $rc, not 64 (EX_USAGE)"
printf 'k\n' > "$work/novita.key"
err=$(run NOVITA_API_KEY=k NOVITA_API_KEY_FILE="$work/novita.key" "$bin" serve 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 78 ] || fail "NOVITA_API_KEY with NOVITA_API_KEY_FILE exited $rc, not 78"
grep -q 'NOVITA_API_KEY and NOVITA_API_KEY_FILE' <<<"$err" || fail "two sources: not both named: $err"
err=$(run WEBHOOK_SECRET_FILE="$work/missing" NOVITA_API_KEY=k "$bin" serve 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 78 ] || fail "an unreadable WEBHOOK_SECRET_FILE exited $rc, not 78"
grep -q WEBHOOK_SECRET_FILE <<<"$err" || fail "unreadable secret file: not named: $err"
ok "exit codes: 64 for usage, 78 for configuration (two sources for a secret named)"

# --- Novita unavailable: 75 ------------------------------------------------------
run NOVITA_API_KEY=k NOVITA_API_BASE_URL=http://127.0.0.1:1/gpu-instance/openapi \
  DATABASE_PATH="$work/down/recovery.db" MAX_RETRY_ATTEMPTS=0 REQUEST_TIMEOUT=2000 \
  "$bin" check-failed >"$work/down.json" 2>"$work/down.err"
rc=$?
[ "$rc" -eq 75 ] || fail "check-failed with Novita unreachable exited $rc, not 75 (EX_TEMPFAIL)"
grep -q NOVITA_UNAVAILABLE "$work/down.json" || fail "check-failed with Novita down: no NOVITA_UNAVAILABLE"
ok "check-failed with Novita unreachable exits 75"

# --- check-failed against nrd-sim -------------------------------------------------
"$sim" --port 0 --fleet 20 --failed 5 --api-key k >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
line=$(wait_line "$work/sim.out" '^listening [0-9]+$') || { fail "nrd-sim did not start"; exit 1; }
simport=${line#listening }
base="http://127.0.0.1:$simport/gpu-instance/openapi"
cf_env=(NOVITA_API_KEY=k NOVITA_API_BASE_URL="$base" DATABASE_PATH="$work/cf/recovery.db"
        NOVITA_RATE_LIMIT_RPS=0 REQUEST_TIMEOUT=5000)
posts() { curl -s "http://127.0.0.1:$simport/__sim/requests" | grep -o "\"path\":\"[^\"]*/gpu/instance/$1\"" | wc -l; }

run "${cf_env[@]}" "$bin" check-failed --dry-run >"$work/dry.json" 2>"$work/dry.err"
rc=$?
[ "$rc" -eq 0 ] || fail "check-failed --dry-run exited $rc: $(tail -3 "$work/dry.err")"
grep -qE '"dryRun":[[:space:]]*true' "$work/dry.json" || fail "dry run report lacks dryRun true"
[ "$(grep -cE '"action":[[:space:]]*"planned"' "$work/dry.json")" -eq 5 ] || fail "dry run did not plan 5"
if [ "$(posts delete)" -ne 0 ] || [ "$(posts create)" -ne 0 ]; then
  fail "dry run sent a delete or create"
fi
ok "check-failed --dry-run planned 5, sent nothing"

# The real run reads its key from a file, as the systemd unit would.
run "${cf_env[@]/#NOVITA_API_KEY=k/NOVITA_API_KEY_FILE=$work/novita.key}" "$bin" check-failed \
  >"$work/run.json" 2>"$work/run.err"
rc=$?
[ "$rc" -eq 0 ] || fail "check-failed exited $rc: $(tail -3 "$work/run.err")"
if [ "$(head -c1 "$work/run.json")" != "{" ] || [ "$(tail -n1 "$work/run.json")" != "}" ]; then
  fail "check-failed stdout is not only the report JSON"
fi
grep -qE '"success":[[:space:]]*true' "$work/run.json" || fail "report: success is not true"
grep -qE '"totalChecked":[[:space:]]*5[,}[:space:]]' "$work/run.json" || fail "report: totalChecked is not 5"
grep -qE '"instancesRecreated":[[:space:]]*5[,}[:space:]]' "$work/run.json" || fail "report: instancesRecreated is not 5"
grep -qE '"errors":[[:space:]]*0[,}[:space:]]' "$work/run.json" || fail "report: errors is not 0"
if [ "$(posts delete)" -ne 5 ] || [ "$(posts create)" -ne 5 ]; then
  fail "expected 5 deletes and 5 creates"
fi
grep -q '"level"' "$work/run.err" || fail "logs did not go to stderr"
ok "check-failed recreated 5 and printed the report on stdout"

# --- a row failed: 1 ------------------------------------------------------------
"$sim" --port 0 --fleet 4 --failed 2 --api-key k >"$work/sim2.out" 2>"$work/sim2.err" &
pids+=($!)
line=$(wait_line "$work/sim2.out" '^listening [0-9]+$') || { fail "second nrd-sim did not start"; exit 1; }
sim2=${line#listening }
curl -s -o /dev/null -X POST -d '{"kind":"status","match":"/gpu/instance/create","status":400}' \
  "http://127.0.0.1:$sim2/__sim/faults"
run NOVITA_API_KEY=k NOVITA_API_BASE_URL="http://127.0.0.1:$sim2/gpu-instance/openapi" \
  DATABASE_PATH="$work/rowfail/recovery.db" NOVITA_RATE_LIMIT_RPS=0 \
  "$bin" check-failed >"$work/rowfail.json" 2>"$work/rowfail.err"
rc=$?
[ "$rc" -eq 1 ] || fail "check-failed with Novita refusing creates exited $rc, not 1"
grep -qE '"errors":[[:space:]]*2[,}[:space:]]' "$work/rowfail.json" || fail "report: errors is not 2"
ok "check-failed with failed rows exits 1"

# --- healthcheck --------------------------------------------------------------
# env execs the binary, so $! is the service itself.
env -i PATH=/usr/bin:/bin NOVITA_API_KEY=k NOVITA_API_BASE_URL="$base" \
  DATABASE_PATH="$work/serve/recovery.db" PORT=0 MIGRATION_INTERVAL_MINUTES=0 \
  "$bin" serve >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
line=$(wait_line "$work/serve.log" '"msg":"listening"') || { fail "serve did not start: $(cat "$work/serve.log")"; exit 1; }
port=$(grep -oE '"port":[0-9]+' <<<"$line" | cut -d: -f2)
run PORT="$port" "$bin" healthcheck || fail "healthcheck against a running serve exited non-zero"
run "$bin" healthcheck --port "$port" || fail "healthcheck --port exited non-zero"
kill -TERM "$serve_pid"
wait "$serve_pid"
rc=$?
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM"
if run PORT="$port" "$bin" healthcheck 2>/dev/null; then
  fail "healthcheck exited 0 with nothing listening"
fi
ok "healthcheck: 0 against serve, non-zero when nothing listens"

[ "$status" -eq 0 ] && echo "smoke: all checks passed"
exit "$status"
