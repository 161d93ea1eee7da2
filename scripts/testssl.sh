#!/usr/bin/env bash
# Scans a wsbridge TLS listener with Debian's testssl.sh (package testssl.sh, command `testssl`)
# and prints a summary: protocols offered, ciphers, and every finding flagged VULNERABLE.
# Not part of CI (a full scan takes minutes); run it by hand after changing TLS code:
#
#   scripts/testssl.sh                # build/wsbridge, or WSBRIDGE_BIN=/path/to/wsbridge
#   TESTSSL_ARGS="--fast" scripts/testssl.sh
#
# It makes a test PKI with the openssl CLI (tests/e2e/lib/tls.mjs, into a temp dir), starts
# wsbridge on 127.0.0.1 (OS-chosen port) with `listen[].tls` and that certificate, scans it,
# stops wsbridge by PID and removes the temp dir. The full testssl output and its JSON go to
# $OUT (default tests/e2e/artifacts/testssl).
#
# Exit status: 0 when no protocol below TLS 1.2 is offered and nothing is flagged VULNERABLE;
# 1 when something is; 2 when the scan could not run (no testssl and not root, no binary, ...).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WSBRIDGE_BIN="${WSBRIDGE_BIN:-$REPO/build/wsbridge}"
OUT="${OUT:-$REPO/tests/e2e/artifacts/testssl}"
TESTSSL="${TESTSSL:-testssl}"
# Extra testssl options, e.g. "--fast". The default scan is testssl's full one.
read -r -a EXTRA <<<"${TESTSSL_ARGS:-}"

die() { echo "testssl.sh: $*" >&2; exit 2; }

if ! command -v "$TESTSSL" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's testssl.sh ..." >&2
    apt-get install -y -qq --no-install-recommends testssl.sh >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends testssl.sh >/dev/null; } ||
      die "apt-get install testssl.sh failed"
  else
    echo "testssl is not installed; install it with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends testssl.sh" >&2
    exit 2
  fi
fi
[ -x "$WSBRIDGE_BIN" ] || die "no wsbridge binary at $WSBRIDGE_BIN (build it, or set WSBRIDGE_BIN)"
command -v node >/dev/null || die "node is needed (it makes the test certificates and reads the JSON)"

mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/wsbridge-testssl-XXXXXX")"
PROXY_PID=""
cleanup() {
  if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROXY_PID" 2>/dev/null || true
  fi
  [ -n "${PKI_DIR:-}" ] && rm -rf "$PKI_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT

# The test PKI (the same one the e2e tests make).
PKI_DIR="$(cd "$REPO" && node --input-type=module -e "
  import { makePki } from './tests/e2e/lib/tls.mjs';
  console.log(makePki().dir);")"
[ -f "$PKI_DIR/server.crt" ] || die "could not make the test certificates"

cat >"$WORK/wsbridge.yaml" <<EOF
listen:
  - address: 127.0.0.1:0
    tls: { cert: "$PKI_DIR/server.crt", key: "$PKI_DIR/server.key" }
limits:
  header_timeout: 10s
routes:
  - path: /echo
    backend: ws://127.0.0.1:9/echo
EOF

"$WSBRIDGE_BIN" -c "$WORK/wsbridge.yaml" 2>"$OUT/wsbridge.log" &
PROXY_PID=$!
PORT=""
for _ in $(seq 1 100); do
  PORT="$(sed -n 's/.*event=listening address="\{0,1\}127\.0\.0\.1:\([0-9]*\).*tls=on.*/\1/p' "$OUT/wsbridge.log" | head -1)"
  [ -n "$PORT" ] && break
  kill -0 "$PROXY_PID" 2>/dev/null || die "wsbridge exited: $(tail -5 "$OUT/wsbridge.log")"
  sleep 0.1
done
[ -n "$PORT" ] || die "wsbridge did not log a TLS listener within 10 s"
echo "wsbridge $("$WSBRIDGE_BIN" --version 2>/dev/null || true) pid $PROXY_PID: TLS listener on 127.0.0.1:$PORT" >&2
echo "$("$TESTSSL" --version 2>/dev/null | sed -n 's/.*\(testssl  *[0-9][^ ]*\).*/\1/p' | head -1), $(openssl version)" >&2

rm -f "$OUT/testssl.json" "$OUT/testssl.txt"
set +e
# --ip one: the literal address only; --warnings batch: never ask anything; no colour for logs.
# --add-ca: the chain is checked against the test CA too.
timeout 900 "$TESTSSL" --quiet --color 0 --warnings batch --ip one --add-ca "$PKI_DIR/ca.crt" \
  --jsonfile "$OUT/testssl.json" \
  "${EXTRA[@]}" "127.0.0.1:$PORT" >"$OUT/testssl.txt" 2>&1
TESTSSL_STATUS=$?
set -e
[ -s "$OUT/testssl.json" ] || die "testssl produced no JSON (status $TESTSSL_STATUS); see $OUT/testssl.txt"
kill -0 "$PROXY_PID" 2>/dev/null || die "wsbridge died during the scan; see $OUT/wsbridge.log"

# The summary and the verdict, from testssl's JSON findings ({id, severity, finding}).
node --input-type=module - "$OUT/testssl.json" <<'EOF'
import fs from 'node:fs';
const findings = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const by = (id) => findings.find((f) => f.id === id);
const line = (label, text) => console.log(`  ${label.padEnd(28)} ${text}`);
let bad = 0;

console.log('\nProtocols');
for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3']) {
  const f = by(id);
  const offered = f ? /^offered/.test(f.finding) : false;
  const tooOld = !['TLS1_2', 'TLS1_3'].includes(id);
  if (offered && tooOld) bad++;
  line(id, `${f ? f.finding : '(not tested)'}${offered && tooOld ? '   <-- BELOW TLS 1.2' : ''}`);
}
for (const id of ['ALPN', 'ALPN_HTTP2', 'NPN']) if (by(id)) line(id, by(id).finding);

console.log('\nCiphers');
for (const f of findings.filter((x) => /^(cipherlist_|cipher_order$|cipher_negotiated$|P?FS$|P?FS_ciphers$|P?FS_ECDHE_curves$|DH_groups$|cipherorder_TLSv1|TLS_session_ticket$|sessionresumption_)/.test(x.id))) {
  line(f.id, f.finding);
}

console.log('\nVulnerabilities');
const vulnIds = ['heartbleed', 'CCS', 'ticketbleed', 'ROBOT', 'secure_renego', 'secure_client_renego',
  'CRIME_TLS', 'BREACH', 'POODLE_SSL', 'fallback_SCSV', 'SWEET32', 'FREAK', 'DROWN', 'LOGJAM',
  'LOGJAM-common_primes', 'BEAST', 'LUCKY13', 'winshock', 'RC4'];
for (const id of vulnIds) if (by(id)) line(id, `${by(id).finding} [${by(id).severity}]`);
const vulnerable = findings.filter((f) => /VULNERABLE/.test(f.finding));
for (const f of vulnerable) {
  bad++;
  line(f.id, `${f.finding} [${f.severity}]   <-- VULNERABLE`);
}

// The certificate is the short-lived test one (no CRL/OCSP, days of validity): its findings are
// listed apart and do not count.
const isCert = (f) => /^(cert_|intermediate_cert|chain_of_trust|OCSP|DNS_CAArecord|certificate_transparency)/.test(f.id);
console.log('\nOther findings of severity MEDIUM or above');
const other = findings.filter((f) => ['MEDIUM', 'HIGH', 'CRITICAL'].includes(f.severity) && !/VULNERABLE/.test(f.finding) && !isCert(f));
if (other.length === 0) console.log('  (none)');
for (const f of other) line(f.id, `${f.finding} [${f.severity}]`);
console.log('\nCertificate findings (the generated test certificate; informational)');
for (const f of findings.filter((x) => isCert(x) && ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'].includes(x.severity))) {
  line(f.id, `${f.finding} [${f.severity}]`);
}

console.log(`\nVerdict: ${bad === 0 ? 'OK: nothing below TLS 1.2 offered, nothing flagged VULNERABLE'
  : `FAIL: ${bad} problem(s) (see the lines marked <--)`}`);
process.exit(bad === 0 ? 0 : 1);
EOF
