#!/usr/bin/env bash
# Runs every test: the sanitizer build (ASan+UBSan) with all of CTest, then
# valgrind over the unit tests, then each fuzz target for about a minute.
# Usage: scripts/test.sh        (FUZZ_SECONDS=60 by default; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --full
scripts/tools.sh   # Node tools that lint openapi.yaml and validate responses against it

jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-60}

echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNRD_SANITIZE=ON -DNRD_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests (sanitizers)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

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
