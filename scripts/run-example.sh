#!/usr/bin/env bash
# The run command (README): set up, build, start the example backend (Node `ws`, port 9000)
# and wsbridge with examples/wsbridge.yaml (port 8080) in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
node examples/backend/server.mjs --port 9000 &
backend_pid=$!
trap 'kill "$backend_pid" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break
  sleep 0.1
done
echo "wsbridge: ws://127.0.0.1:8080/chat and ws://127.0.0.1:8080/echo -> backend 127.0.0.1:9000"
./build/wsbridge -c examples/wsbridge.yaml
