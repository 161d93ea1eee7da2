#!/usr/bin/env bash
# Configures and builds wsbridge into build/ (extra CMake arguments are passed through).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j"$(nproc)"
