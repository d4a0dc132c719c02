#!/usr/bin/env bash
# Builds every libFuzzer target (clang, ASan + UBSan) in build-fuzz and runs
# each for FUZZ_SECONDS (default 60) from a scratch copy of its seed corpus
# (fuzz/corpus-run/, not committed). Exits non-zero when a target crashes,
# leaks or breaks an invariant; the reproducer is left in fuzz/corpus-run/.
# The seed is fixed (FUZZ_SEED, default 1) so that CI's run is the run you
# can repeat here; FUZZ_SEED=0 lets libFuzzer pick one, for exploring.
# Usage: fuzz/run.sh [target ...]     (default: every target)
#   FUZZ_SECONDS=300 fuzz/run.sh recreate
#   FUZZ_SEED=0 FUZZ_SECONDS=600 fuzz/run.sh
#   CC=clang-15 fuzz/run.sh           (any clang with libFuzzer)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
seed=${FUZZ_SEED:-1}
cc=${CC:-clang-14}
build="build-fuzz"
scratch=fuzz/corpus-run
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(novita_decode instance_page body recreate json_depth)
fi

if ! command -v "$cc" >/dev/null; then
  echo "fuzz: $cc not found (install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi

cmake -S fuzz -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

status=0
for t in "${targets[@]}"; do
  run_dir="$scratch/$t"
  mkdir -p "$run_dir/corpus" "$run_dir/artifacts"
  cp -n fuzz/corpus/"$t"/* "$run_dir/corpus/" 2>/dev/null || true
  echo "== fuzz_$t for ${seconds}s (seed $seed)"
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$build/fuzz_$t" -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$run_dir/artifacts/" \
       "$run_dir/corpus" >"$run_dir/log.txt" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$run_dir/log.txt" || true
  else
    status=1
    echo "fuzz_$t FAILED; log: $run_dir/log.txt; reproducer(s):" >&2
    ls "$run_dir/artifacts" >&2
    tail -40 "$run_dir/log.txt" >&2
  fi
done
exit $status
