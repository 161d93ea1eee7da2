#!/usr/bin/env bash
# The run command (README): set up, build, start the example backend (Node `ws`, port 9000),
# the chat demo page (examples/chat, port 8000) and wsbridge with examples/wsbridge.yaml
# (port 8080, and 8443 with TLS: scripts/example-cert.sh makes its certificate on first run) in
# the foreground. Ctrl-C stops all three.
# Only the wsbridge executable is built: the test, fuzz and benchmark targets are most of the
# compile time, and scripts/test.sh builds them in the same build/ directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
BUILD_TARGETS=wsbridge scripts/build.sh
scripts/example-cert.sh
node examples/backend/server.mjs --port 9000 &
backend_pid=$!
node examples/chat/server.mjs --port 8000 --proxy http://127.0.0.1:8080 &
chat_pid=$!
trap 'kill "$backend_pid" "$chat_pid" 2>/dev/null || true' EXIT INT TERM
for port in 9000 8000; do
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
echo "wsbridge: ws://127.0.0.1:8080/chat and ws://127.0.0.1:8080/echo -> backend 127.0.0.1:9000"
echo "         wss://localhost:8443/... (TLS; trust examples/tls/localhost.pem, e.g. curl --cacert)"
echo "chat demo: open http://127.0.0.1:8000/ in two browser tabs (add ?transports=longpoll to force a fallback)"
./build/wsbridge -c examples/wsbridge.yaml
