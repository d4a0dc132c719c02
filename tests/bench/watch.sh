#!/usr/bin/env bash
# Benchmark of the watch loop (issue 15), not part of the test run: how long
# from a migration job's failure to its replacement's create, with the
# service's defaults, against the simulator (fleet 2000, latency 50 ms, 20
# failures at random moments over 10 minutes, nothing POSTs). Runs the
# service with the watch at its default and, at the same time, with the watch
# off (WATCH_INTERVAL_SECONDS=0: the 15-minute timer alone), each against its
# own simulator, and prints both. BENCHMARKS.md explains the figures.
# Settings (environment): BENCH_BUILD_DIR (build-bench), and those of
# nrd-bench-watch (tests/bench/watch.c): BENCH_FLEET, BENCH_FAILURES,
# BENCH_MINUTES, BENCH_LATENCY_MS, BENCH_IDLE_SECONDS, BENCH_SEED,
# BENCH_GIVE_UP_MINUTES; BENCH_WATCH_ONLY=1 skips the timer-alone run.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$SRC/build-bench}
echo "building (Release) in $BUILD ..."
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNRD_WERROR=ON >/dev/null
cmake --build "$BUILD" -j2 --target novita-recoveryd nrd-bench-watch >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nrd-bench-watch.XXXXXX")
ON_PID='' OFF_PID=''
cleanup() {
  for p in $ON_PID $OFF_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

BENCH=$BUILD/tests/bench/nrd-bench-watch
SVC=$BUILD/novita-recoveryd
mkdir -p "$WORK/on" "$WORK/off"
(cd "$WORK/on" && "$BENCH" "$SVC" >"$WORK/on.txt") &
ON_PID=$!
if [ -z "${BENCH_WATCH_ONLY:-}" ]; then
  (cd "$WORK/off" && BENCH_WATCH_INTERVAL=0 "$BENCH" "$SVC" >"$WORK/off.txt") &
  OFF_PID=$!
fi
wait "$ON_PID"; ON_PID=''
echo "== the watch at its default =="
cat "$WORK/on.txt"
if [ -n "$OFF_PID" ]; then
  wait "$OFF_PID"; OFF_PID=''
  echo; echo "== the watch off: the 15-minute timer alone =="
  cat "$WORK/off.txt"
fi
