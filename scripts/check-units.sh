#!/usr/bin/env bash
# Checks the units in systemd/ without installing or starting anything (ctest: units.systemd).
#   scripts/check-units.sh WSBRIDGE_BINARY [UNIT_DIR]
# 1. `systemd-analyze verify` must print nothing. It checks that ExecStart's binary exists,
#    so it runs with --root on a scratch tree holding the units in /etc/systemd/system, the
#    binary as /usr/local/bin/wsbridge, /usr/bin/kill (ExecReload) and a copy of the host's
#    system units (wsbridge.service is ordered after them).
# 2. `systemd-analyze security --offline=yes --threshold=15` on the service: the overall
#    exposure must be at most 1.5 (the threshold is in tenths).
set -euo pipefail
bin=${1:?usage: check-units.sh WSBRIDGE_BINARY [UNIT_DIR]}
units=${2:-$(dirname "$0")/../systemd}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
ln -s usr/bin "$root/bin"
cp "$bin" "$root/usr/local/bin/wsbridge"
cp /usr/bin/kill "$root/usr/bin/kill"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$units/wsbridge.service" "$units/wsbridge.socket" "$root/etc/systemd/system/"

out=$(systemd-analyze verify --root="$root" wsbridge.service wsbridge.socket 2>&1) || {
  echo "$out"; echo "check-units: systemd-analyze verify failed" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out"; echo "check-units: systemd-analyze verify is not clean" >&2; exit 1
fi
echo "check-units: verify clean"

systemd-analyze security --offline=yes --threshold=15 "$units/wsbridge.service" | tail -1 || {
  echo "check-units: exposure over 1.5:" >&2
  systemd-analyze security --offline=yes "$units/wsbridge.service" | grep '✗' >&2
  exit 1
}
