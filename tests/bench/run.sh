#!/usr/bin/env bash
# Benchmark of novita-recoveryd against the Novita simulator (issue 8).
# Not part of the test run. Builds a Release tree, then measures:
#   1. check-failed recovering N failed migrations (fleet 2N) at latency L:
#      wall time against the lower bound Novita's latency sets, calls made
#      against the minimum, peak RSS and CPU time of the service alone;
#   2. a snapshot sync of a large fleet at latency 0 (rows per second);
#   3. start-up to a ready /ready, with an empty database and a full one;
#   4. /health under wrk against a bare libmicrohttpd hello-world.
# Every figure is printed beside the baseline it is judged against, measured
# in the same run. BENCHMARKS.md explains the figures. Settings (environment):
#   BENCH_BUILD_DIR (build-bench), BENCH_N ("100 1000 5000"), BENCH_LATENCY_MS (50),
#   BENCH_CONCURRENCY (16), BENCH_PAGE_SIZE (1000), BENCH_SYNC_FLEET (100000),
#   BENCH_READY_TRIES (7), BENCH_WRK_SECONDS (5), BENCH_WRK_ROUNDS (3), BENCH_KEEP (keep the work dir),
#   BENCH_PARTS ("recover sync ready health": the parts to run),
#   BENCH_PG (1: the recover part on PostgreSQL, DATABASE_URL, against a throwaway
#   server of tests/support/pg.sh with fsync on, as in production, or BENCH_PG_FSYNC=off;
#   only that part).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$SRC/build-bench}
CASES=${BENCH_N:-"100 1000 5000"}
LAT=${BENCH_LATENCY_MS:-50}
CONC=${BENCH_CONCURRENCY:-16}
PAGE=${BENCH_PAGE_SIZE:-1000}
SYNC_FLEET=${BENCH_SYNC_FLEET:-100000}
READY_TRIES=${BENCH_READY_TRIES:-7}
WRK_SECONDS=${BENCH_WRK_SECONDS:-5}
WRK_ROUNDS=${BENCH_WRK_ROUNDS:-3}
PARTS=" ${BENCH_PARTS:-recover sync ready health} "
KEY=bench-key

# On PostgreSQL: this script again, inside a server of its own (fsync on).
if [ -n "${BENCH_PG:-}" ] && [ -z "${NRD_TEST_PG_HOST:-}" ]; then
  NRD_PG_FSYNC=${BENCH_PG_FSYNC:-on} exec "$SRC/tests/support/pg.sh" "$0" "$@"
fi
if [ -n "${BENCH_PG:-}" ]; then
  command -v psql >/dev/null || { echo "run.sh: BENCH_PG needs psql" >&2; exit 2; }
  [[ "$PARTS" =~ ^\ *recover\ *$ ]] || { echo "run.sh: BENCH_PG measures BENCH_PARTS=recover only" >&2; exit 2; }
fi

for tool in curl jq wrk cmake awk; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is needed (apt-get install $tool)" >&2; exit 2; }
done

echo "building (Release) in $BUILD ..."
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNRD_WERROR=ON >/dev/null
cmake --build "$BUILD" -j2 --target bench >/dev/null

SVC=$BUILD/novita-recoveryd
SIM=$BUILD/tests/tools/nrd-sim
PROBE=$BUILD/tests/bench/nrd-bench-probe
HELLO=$BUILD/tests/bench/nrd-bench-hello
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nrd-bench.XXXXXX")
HZ=$(getconf CLK_TCK)
SIM_PID='' SERVE_PID='' HELLO_PID=''

stop_pid() {  # stops one process this script started, by its id
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop_pid "$SIM_PID"; stop_pid "$SERVE_PID"; stop_pid "$HELLO_PID"
  if [ -n "${BENCH_KEEP:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# The service's environment: nothing inherited but PATH.
svc_env() {
  env -i PATH="$PATH" NOVITA_API_KEY=$KEY LOG_LEVEL=info MIGRATION_INTERVAL_MINUTES=0 \
    NOVITA_RATE_LIMIT_RPS=0 NOVITA_PAGE_SIZE="$PAGE" MIGRATION_MAX_CONCURRENT="$CONC" "$@"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_sim FLEET FAILED LATENCY_MS: SIM_PID, SIM_URL, SIM_API
start_sim() {
  "$SIM" --port 0 --fleet "$1" --failed "$2" --latency-ms "$3" --api-key $KEY \
    >"$WORK/sim.out" 2>"$WORK/sim.err" &
  SIM_PID=$!
  for _ in $(seq 1200); do grep -q '^listening' "$WORK/sim.out" && break; sleep 0.05; done
  local port
  port=$(awk '/^listening/{print $2}' "$WORK/sim.out")
  [ -n "$port" ] || { echo "run.sh: the simulator did not start" >&2; cat "$WORK/sim.err" >&2; exit 1; }
  SIM_URL=http://127.0.0.1:$port
  SIM_API=$SIM_URL/gpu-instance/openapi
}
stop_sim() { stop_pid "$SIM_PID"; SIM_PID=; }

sim_get() { curl -sf -H "Authorization: Bearer $KEY" "$SIM_API$1"; }
sim_requests() { curl -sf "$SIM_URL/__sim/requests"; }

# Mean time of 20 sequential requests on one keep-alive connection, in ms:
# the latency the simulator really adds (the baseline of the bound).
sim_latency_ms() {
  local args=()
  for _ in $(seq 20); do args+=(-o /dev/null "$SIM_API/v1/products?productName=bench"); done
  curl -s -H "Authorization: Bearer $KEY" -w '%{time_total}\n' "${args[@]}" |
    awk '{s += $1} END {printf "%.2f", 1000 * s / NR}'
}

pages() { awk -v n="$1" -v p="$PAGE" 'BEGIN {x = int((n + p - 1) / p); print (x < 1 ? 1 : x)}'; }

# ms since the epoch of the first log line whose msg is $2 (file $1).
log_ms() {
  local ts
  ts=$(jq -r --arg m "$2" 'select(.msg == $m) | .ts' "$1" | head -1)
  date -d "$ts" +%s%3N
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "work dir $WORK; $(nproc) cores; latency ${LAT} ms; concurrency $CONC; page size $PAGE"
if [ -n "${BENCH_PG:-}" ]; then
  echo "store: PostgreSQL $(psql -h "$NRD_TEST_PG_HOST" -p "$NRD_TEST_PG_PORT" -U "$NRD_TEST_PG_USER" \
    -d postgres -Atc "SELECT current_setting('server_version') || ', fsync ' ||
    current_setting('fsync') || ', synchronous_commit ' || current_setting('synchronous_commit')")"
else
  echo "store: SQLite"
fi

# The store of case $1: a fresh PostgreSQL database, or a new SQLite file.
store_env() {
  if [ -n "${BENCH_PG:-}" ]; then
    psql -h "$NRD_TEST_PG_HOST" -p "$NRD_TEST_PG_PORT" -U "$NRD_TEST_PG_USER" -d postgres -qc \
      "CREATE DATABASE bench_$1" >/dev/null
    echo "DATABASE_URL=postgresql://$NRD_TEST_PG_USER@/bench_$1?host=$NRD_TEST_PG_HOST&port=$NRD_TEST_PG_PORT"
  else
    echo "DATABASE_PATH=$WORK/recover-$1.db"
  fi
}

part() { [[ "$PARTS" == *" $1 "* ]]; }

# ---- 1. check-failed: N failed migrations in a fleet of 2N ----
if part recover; then
echo
echo "== check-failed, L = $LAT ms, MIGRATION_MAX_CONCURRENT = $CONC, NOVITA_PAGE_SIZE = $PAGE"
printf '%6s %8s %8s %7s %7s %6s %13s %7s %7s %7s %8s\n' N wall_s bound_s ratio ratio_m \
  L_m_ms calls/minimum rss_MB cpu_s cpu_ms/r sim_cpu
for n in $CASES; do
  start_sim $((2 * n)) "$n" "$LAT"
  inst_pages=$(pages $((2 * n)))
  jm=$(sim_get "/v1/jobs?type=instanceMigrate&pageSize=1" | jq .total)
  ja=$(sim_get "/v1/jobs?type=autoInstanceMigrate&pageSize=1" | jq .total)
  job_pages=$(( $(pages "$jm") + $(pages "$ja") ))
  # The simulator's fleet leaves productId out of every fifth instance: one
  # product look-up (one name, one region) for the whole run.
  # The product fallback's look-up (rows without a productId: every fifth)
  # and the capacity check's, once per (product, cluster): one cluster here.
  products=$(( (n >= 5 ? 1 : 0) + (n >= 1 ? 1 : 0) ))
  lat_m=$(sim_latency_ms)
  k0=$(sim_requests | jq length)
  c0=$(cpu_ticks "$SIM_PID")
  code=0
  store=$(store_env "$n")
  svc_env NOVITA_API_BASE_URL="$SIM_API" "$store" \
    MAX_RECOVERIES_PER_RUN="$n" \
    "$PROBE" run "$WORK/stats" -- "$SVC" check-failed >"$WORK/report-$n.json" \
    2>"$WORK/run-$n.log" || code=$?
  c1=$(cpu_ticks "$SIM_PID")
  recreated=$(jq '.result.instancesRecreated' "$WORK/report-$n.json")
  if [ "$code" != 0 ] || [ "$recreated" != "$n" ]; then
    echo "run.sh: N=$n: exit $code, $recreated recreated (want $n); log in $WORK/run-$n.log" >&2
    BENCH_KEEP=1
    exit 1
  fi
  calls=$(sim_requests | jq --argjson k "$k0" '.[$k:] | length')
  minimum=$((inst_pages + job_pages + products + 2 * n))
  read -r wall user sys rss _ <"$WORK/stats"
  awk -v n="$n" -v wall="$wall" -v user="$user" -v sys="$sys" -v rss="$rss" -v L="$LAT" \
    -v Lm="$lat_m" -v c="$CONC" -v pg=$((inst_pages + job_pages)) -v pr="$products" \
    -v calls="$calls" -v min="$minimum" -v st=$((c1 - c0)) -v hz="$HZ" 'BEGIN {
      # The canary: the first row goes alone (delete, create), the pool
      # opens when its create is accepted; the other n-1 go c at a time.
      rounds = (n >= 1 ? 1 : 0) + int((n - 1 + c - 1) / c)
      bound = (pg + rounds * 2 + pr) * L
      bound_m = (pg + rounds * 2 + pr) * Lm
      printf "%6d %8.2f %8.2f %7.3f %7.3f %6.2f %6d/%-6d %7.1f %7.2f %8.3f %7.1f%%\n", n, wall / 1000,
        bound / 1000, wall / bound, wall / bound_m, Lm, calls, min, rss / 1024,
        (user + sys) / 1000, (user + sys) / n, 100 * st / hz / (wall / 1000)
    }'
  stop_sim
done
echo "ratio: wall / bound at the nominal L; ratio_m: against the bound at L_m, the latency"
echo "the simulator was measured to add (20 sequential keep-alive requests) in the same run."
echo "bound = (pages + (1 + ceil((N-1)/$CONC)) x 2 + product look-ups) x L: the canary's round"
echo "trip (the first row alone) and the capacity look-up included; wall includes process start."
fi

# ---- 2. snapshot sync ----
if part sync || part ready; then
echo
echo "== snapshot sync, $SYNC_FLEET instances, latency 0, pages of $PAGE"
start_sim "$SYNC_FLEET" 0 0
np=$(pages "$SYNC_FLEET")
args=()
for p in $(seq 1 "$np"); do args+=(-o /dev/null "$SIM_API/v1/gpu/instances?pageSize=$PAGE&pageNum=$p"); done
# The simulator prints each instance once, on its first listing: the first
# pass warms it up, the second is the baseline (what fetching alone costs).
curl -s -H "Authorization: Bearer $KEY" "${args[@]}"
t0=$(date +%s%3N)
curl -s -H "Authorization: Bearer $KEY" "${args[@]}"
bare_ms=$(( $(date +%s%3N) - t0 ))
printf '%-36s %9s %10s %8s %8s\n' "" sync_s rows/s rss_MB sim_cpu
printf '%-36s %9.2f %10.0f %8s %8s\n' "bare fetch of the $np pages" "$(awk -v m=$bare_ms 'BEGIN{print m/1000}')" \
  "$(awk -v m=$bare_ms -v f="$SYNC_FLEET" 'BEGIN{print f / (m / 1000)}')" - -
for pass in first again; do
  c0=$(cpu_ticks "$SIM_PID")
  svc_env NOVITA_API_BASE_URL="$SIM_API" DATABASE_PATH="$WORK/sync.db" \
    "$PROBE" run "$WORK/stats" -- "$SVC" check-failed >/dev/null 2>"$WORK/sync-$pass.log"
  c1=$(cpu_ticks "$SIM_PID")
  read -r wall user sys rss _ <"$WORK/stats"
  sync_ms=$(( $(log_ms "$WORK/sync-$pass.log" "run finished") - $(log_ms "$WORK/sync-$pass.log" "run started") ))
  label="check-failed, $pass sync"
  [ "$pass" = first ] && label="$label (insert)" || label="$label (update)"
  awk -v l="$label" -v ms="$sync_ms" -v f="$SYNC_FLEET" -v rss="$rss" -v st=$((c1 - c0)) \
    -v hz="$HZ" -v wall="$wall" -v bare="$bare_ms" 'BEGIN {
      printf "%-36s %9.2f %10.0f %8.1f %7.1f%%   (%.2fx the bare fetch)\n", l, ms / 1000,
        f / (ms / 1000), rss / 1024, 100 * st / hz / (wall / 1000), ms / bare
    }'
done
stop_sim
echo "sync_s: from the run's 'run started' to 'run finished' log lines (no failed jobs,"
echo "so the run is the sync); sim_cpu: the simulator's CPU over the service's wall time."
fi

# ---- 3. start-up to a ready /ready ----
if part ready; then
echo
echo "== start-up to a ready /ready (median of $READY_TRIES, fork to the first 200)"
svc_env DATABASE_PATH="$WORK/empty.db" "$SVC" migrate-db >/dev/null
hello_ready=$("$PROBE" ready "$READY_TRIES" /ready -- "$HELLO" | median)
empty_ready=$(svc_env NOVITA_API_BASE_URL=http://127.0.0.1:9 DATABASE_PATH="$WORK/empty.db" \
  "$PROBE" ready "$READY_TRIES" /ready -- "$SVC" serve | median)
full_ready=$(svc_env NOVITA_API_BASE_URL=http://127.0.0.1:9 DATABASE_PATH="$WORK/sync.db" \
  "$PROBE" ready "$READY_TRIES" /ready -- "$SVC" serve | median)
printf '%-44s %8.2f ms\n' "bare hello-world (any path answers 200)" "$hello_ready"
printf '%-44s %8.2f ms  (%.1fx the hello-world)\n' "serve, empty database" "$empty_ready" \
  "$(awk -v a="$empty_ready" -v b="$hello_ready" 'BEGIN{print a/b}')"
printf '%-44s %8.2f ms  (%.1fx the hello-world)\n' "serve, database of $SYNC_FLEET snapshots" \
  "$full_ready" "$(awk -v a="$full_ready" -v b="$hello_ready" 'BEGIN{print a/b}')"
fi

# ---- 4. /health under wrk ----
if part health; then
echo
echo "== /health under wrk -t1 -c32, $WRK_ROUNDS rounds of ${WRK_SECONDS}s each, alternating"
wrk_rps() {
  wrk -t1 -c32 -d"${WRK_SECONDS}s" "$1" | awk '/^Requests\/sec/ {print $2}'
}
wait_200() {
  for _ in $(seq 400); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.025
  done
  echo "run.sh: $1 never answered 200" >&2
  exit 1
}
hello_port=$("$PROBE" port)
PORT=$hello_port "$HELLO" >/dev/null &
HELLO_PID=$!
wait_200 "http://127.0.0.1:$hello_port/health"
svc_port=$("$PROBE" port)
# Started by env itself, not through svc_env: $! of a function is a subshell.
env -i PATH="$PATH" NOVITA_API_KEY=$KEY MIGRATION_INTERVAL_MINUTES=0 \
  NOVITA_API_BASE_URL=http://127.0.0.1:9 DATABASE_PATH="$WORK/empty.db" PORT="$svc_port" \
  "$SVC" serve >/dev/null 2>&1 &
SERVE_PID=$!
wait_200 "http://127.0.0.1:$svc_port/health"
# Both servers run side by side; each round measures one after the other, so
# a slow spell of the machine falls on both. The ratio is the median of the
# rounds' ratios.
printf '%6s %14s %14s %8s\n' round hello_req/s health_req/s ratio
for round in $(seq "$WRK_ROUNDS"); do
  h=$(wrk_rps "http://127.0.0.1:$hello_port/health")
  v=$(wrk_rps "http://127.0.0.1:$svc_port/health")
  awk -v r="$round" -v h="$h" -v v="$v" 'BEGIN {printf "%6d %14.0f %14.0f %8.3f\n", r, h, v, v / h}' |
    tee -a "$WORK/health.rounds"
done
stop_pid "$HELLO_PID"; HELLO_PID=
stop_pid "$SERVE_PID"; SERVE_PID=
printf 'novita-recoveryd /health (access log on) against the bare hello-world: %.3f (median of %d)\n' \
  "$(awk '{print $4}' "$WORK/health.rounds" | median)" "$WRK_ROUNDS"
fi
