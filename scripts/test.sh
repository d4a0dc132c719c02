#!/usr/bin/env bash
# Runs every test: the format check (scripts/format-check.sh), the sanitizer build (ASan+UBSan) with all of CTest (with
# the operator kit: promtool, systemd-analyze, the .deb, the contracts), then
# valgrind over the unit tests, then each fuzz target for about a minute.
# Usage: scripts/test.sh        (FUZZ_SECONDS=60 by default; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --full
scripts/tools.sh   # Node tools that lint openapi.yaml and validate responses against it

jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-60}

echo "== format (.clang-format)"
scripts/format-check.sh

echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNRD_SANITIZE=ON -DNRD_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests (sanitizers)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" | tee build-asan/ctest.log

# The operator kit's checks skip (77) only when their tool is missing; deps.sh
# installed every one, so here a skip is a failure: promtool over the live
# /metrics and the rules with their tests, systemd-analyze verify, the .deb
# build-install-run-remove, the response and webhook contracts, and the
# PostgreSQL store's tests (PostgreSQL's server).
echo "== operator kit ran (no skips)"
if grep -E 'deploy_(alert_rules|metrics_live|systemd_unit|deb|compose|openapi)|openapi_(responses|webhooks)|test_pg_' \
     build-asan/ctest.log | grep -q 'Skipped'; then
  grep -E 'deploy_|openapi_|test_pg_' build-asan/ctest.log | grep 'Skipped'
  echo "an operator-kit check was skipped: a tool is missing"
  exit 1
fi

echo "== valgrind (unit tests)"
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug -DNRD_WERROR=ON >/dev/null
cmake --build build-valgrind -j"$jobs"
ctest --test-dir build-valgrind -L unit -T memcheck --output-on-failure -j"$jobs" \
  --overwrite MemoryCheckCommandOptions="--leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite"

if [ -x fuzz/run.sh ] && [ "$fuzz_seconds" != 0 ]; then
  echo "== fuzzing (${fuzz_seconds}s per target)"
  FUZZ_SECONDS=$fuzz_seconds fuzz/run.sh
fi
echo "== all test stages passed"
