#!/usr/bin/env bash
# Configures and builds wsbridge into build/ (extra CMake arguments are passed through to the
# configure step). BUILD_TARGETS (space-separated) limits the build to those targets, e.g.
# BUILD_TARGETS=wsbridge for the run command; by default every target is built (the test
# command needs them all: unit and integration tests, fuzz-corpus replayers, benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
targets=()
for t in ${BUILD_TARGETS:-}; do
  targets+=(--target "$t")
done
cmake --build build -j"$(nproc)" "${targets[@]}"
