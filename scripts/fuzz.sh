#!/usr/bin/env bash
# Fuzzes every libFuzzer target (tests/fuzz/, STYLE §10) for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds with clang, PROXY_FUZZ=ON (ASan + UBSan, no recovery) into build-fuzz/, then runs each
# target on a fresh copy of its seed corpus (build-fuzz/fuzz-runs/<target>/corpus; the seeds in
# tests/fuzz/corpus/ are never written) with its .dict, -max_total_time=SECONDS,
# -rss_limit_mb=1024 and -timeout=10. FUZZ_JOBS=N runs N targets at a time (default 1).
# Prints the executions per target and fails if any target crashed, leaked, timed out or ran
# out of memory; the input that did it is in build-fuzz/fuzz-runs/<target>/ (crash-*, leak-*,
# timeout-*, oom-*) and the log beside it. tests/fuzz/README.md says how to add it to the
# corpus. scripts/test.sh (CI) runs it as its last step (FUZZ_SECONDS, FUZZ_JOBS).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(ws_decoder http_request sse_roundtrip config_load long_poll_batch ws_session_frames
           mux_codec)
fi
jobs=${FUZZ_JOBS:-1}

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPROXY_FUZZ=ON -DPROXY_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

runs=build-fuzz/fuzz-runs
# Runs one target; its log and any crashing input stay in $runs/<target>/.
run_target() {
  local target=$1 dir=$runs/$1
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  cp tests/fuzz/corpus/"$target"/* "$dir/corpus/"
  local args=(-max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10
              -print_final_stats=1 -artifact_prefix="$dir/")
  if [ -f tests/fuzz/corpus/"$target".dict ]; then
    args+=(-dict=tests/fuzz/corpus/"$target".dict)
  fi
  if [ "$target" = config_load ]; then
    args+=(-max_len=4096) # the harness skips bigger inputs (yaml-cpp cost, see config_load.cc)
  fi
  local status=0
  build-fuzz/tests/fuzz/fuzz_"$target" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || status=$?
  echo "$status" >"$dir/status"
}

start=$(date +%s)
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  echo "fuzz: $target for ${seconds}s"
  run_target "$target" &
done
wait

failed=0
for target in "${targets[@]}"; do
  status=$(cat "$runs/$target/status")
  log=$runs/$target/log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  corpus=$(find "$runs/$target/corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    printf 'fuzz: %-16s ok      %12s execs  %8s/s  corpus %s\n' "$target" "${execs:-?}" \
      "${rate:-?}" "$corpus"
  else
    failed=1
    printf 'fuzz: %-16s FAILED  %12s execs  (exit %s), log %s\n' "$target" "${execs:-?}" \
      "$status" "$log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz invariant failed|artifact_prefix|Test unit written)' \
      "$log" | head -n 8 | sed 's/^/  /' || true
  fi
done
echo "fuzz: ${#targets[@]} targets in $(($(date +%s) - start))s"
exit "$failed"
