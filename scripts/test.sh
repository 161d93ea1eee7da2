#!/usr/bin/env bash
# The test command (README, CI): set up, build with -Werror, run every ctest layer
# (unit, integration, e2e with the Node `ws` backend, conformance, fuzz corpora).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DPROXY_WERROR=ON
cd build
ctest --output-on-failure --timeout 600 "$@"
