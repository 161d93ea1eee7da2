#!/usr/bin/env bash
# Makes the example's TLS certificate (examples/tls/localhost.pem and localhost.key) when it
# is missing: a self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, valid for a
# year, with the `openssl` command. It is never committed (.gitignore). Trust it explicitly:
#   curl --cacert examples/tls/localhost.pem https://localhost:8443/...
# scripts/run-example.sh runs this, and so does ctest (examples/wsbridge.yaml names the files).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=examples/tls
if [ -s "$dir/localhost.pem" ] && [ -s "$dir/localhost.key" ] &&
   openssl x509 -in "$dir/localhost.pem" -noout -checkend 86400 >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$tmp/localhost.key" -out "$tmp/localhost.pem" 2>/dev/null
chmod 600 "$tmp/localhost.key"
mv "$tmp/localhost.key" "$tmp/localhost.pem" "$dir/"
echo "example-cert: made $dir/localhost.pem (self-signed for localhost and 127.0.0.1)"
