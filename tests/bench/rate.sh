#!/usr/bin/env bash
# Benchmark of the adaptive rate (issue 15), not part of the test run: one
# check-failed with the service's defaults against the simulator (latency
# BENCH_LATENCY_MS, 50) limited server-side to R requests a second (429 with
# Retry-After above it), for each "N R" of BENCH_RATE_CASES, BENCH_ROUNDS
# (3) times. Prints wall time, calls, 429s and wall / (calls / R).
# BENCHMARKS.md explains the figures. BENCH_BUILD_DIR (build-bench).
# NOVITA_RATE_LIMIT_RPS, _MAX_RPS and _ADAPTIVE, when set, are passed on to
# the service (to compare settings); otherwise it runs on its defaults.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$SRC/build-bench}
CASES=${BENCH_RATE_CASES:-"100:20 100:5 50:0 10:0"}
ROUNDS=${BENCH_ROUNDS:-3}
echo "building (Release) in $BUILD ..."
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNRD_WERROR=ON >/dev/null
cmake --build "$BUILD" -j2 --target novita-recoveryd nrd-bench-rate >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nrd-bench-rate.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
for c in $CASES; do
  for _ in $(seq "$ROUNDS"); do
    "$BUILD/tests/bench/nrd-bench-rate" "$BUILD/novita-recoveryd" "${c%%:*}" "${c##*:}"
  done
done
