#!/usr/bin/env bash
# The test command (README, CI). After scripts/setup.sh, three steps:
#
#   1. build/ (scripts/build.sh, -Werror) and every ctest layer: unit, integration, e2e (the
#      Node `ws` backend, the conformance suite), browser, fuzz-corpus.
#   2. build-asan/: clang, -Werror, PROXY_SANITIZE=address,undefined (no recovery, frame
#      pointers; cmake/sanitizers.cmake), no benchmarks; then the same whole ctest suite once
#      more. tests/CMakeLists.txt makes every sanitizer report fatal (ASAN_OPTIONS and
#      UBSAN_OPTIONS: halt_on_error, abort_on_error, detect_leaks, print_stacktrace) and sets
#      WSBRIDGE_SANITIZERS=1; reports of the wsbridge processes that Node tests spawn are
#      collected in build-asan/sanitizer-logs/ and fail the test sanitizer-logs.check.
#   3. scripts/fuzz.sh: every libFuzzer target (clang, ASan+UBSan, build-fuzz/) for
#      FUZZ_SECONDS each, FUZZ_JOBS at a time; a crash, leak, timeout or OOM fails.
#
# Environment (every step is on by default, as in CI):
#   SKIP_ASAN=1       skip step 2
#   FUZZ_SECONDS=N    seconds per fuzz target (default 60); 0 skips step 3
#   FUZZ_JOBS=N       fuzz targets run at a time (default 2, the CI machine's cores)
# Arguments are passed to both ctest runs (e.g. `scripts/test.sh -L unit`). Every step runs
# even when an earlier one failed; the script prints each step's time and result, and exits
# non-zero when any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1

fuzz_seconds=${FUZZ_SECONDS:-60}
fuzz_jobs=${FUZZ_JOBS:-2}
summary=()
failed=0

# Runs "$@" as step NAME, timing it; a failure is recorded, not fatal.
step() {
  local name=$1 start status=0
  shift
  echo "test: == $name"
  start=$(date +%s)
  "$@" || status=$?
  local line
  line=$(printf '%-14s %4ss  %s' "$name" "$(($(date +%s) - start))" \
    "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")")
  summary+=("$line")
  if [ "$status" -ne 0 ]; then
    failed=1
  fi
  return "$status"
}

run_ctest() {
  (cd "$1" && ctest --output-on-failure --timeout 600 "${@:2}")
}

build_asan() {
  # clang, so that CI also compiles everything with the second compiler and -Werror.
  CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPROXY_SANITIZE=address,undefined -DPROXY_WERROR=ON -DPROXY_BENCH=OFF >/dev/null &&
    cmake --build build-asan -j"$(nproc)"
}

start_all=$(date +%s)
if step build scripts/build.sh -DPROXY_WERROR=ON; then
  step suite run_ctest build "$@"
fi
if [ "${SKIP_ASAN:-0}" != 1 ]; then
  if step asan-build build_asan; then
    step asan-suite run_ctest build-asan "$@"
  fi
fi
if [ "$fuzz_seconds" -gt 0 ]; then
  step fuzz env FUZZ_JOBS="$fuzz_jobs" scripts/fuzz.sh "$fuzz_seconds"
fi

echo "test: summary"
for line in "${summary[@]}"; do
  echo "test:   $line"
done
echo "test:   total          $(($(date +%s) - start_all))s"
exit "$failed"
