// Test PKI for the TLS e2e and browser tests, made at test time with the `openssl` CLI into a
// fresh temp directory (nothing here is committed key material). makePki() returns file paths:
//
//   ca            the test CA (CN "wsbridge test CA"): trusted by the test clients
//   server        leaf for localhost + 127.0.0.1 + ::1 (CN localhost), signed by ca
//   other         leaf for other.test + *.other.test (CN other.test), signed by ca (SNI)
//   expired       leaf for localhost + 127.0.0.1 whose notAfter is already past, signed by ca
//   wronghost     leaf for wrong.example only (CN wrong.example), signed by ca
//   untrusted     leaf for localhost + 127.0.0.1 signed by a second CA nobody trusts
//   client        client-auth leaf (CN wsbridge test client), signed by clientCa
//   clientCa      the CA for listen[].tls.client_ca (a separate CA: only its clients pass)
//   strangerClient a client-auth leaf signed by the untrusted CA (must be refused by client_ca)
//
// Each leaf is {cert, key, pem: {cert, key}} (PEM text read back for Node clients); the CAs
// are {cert, key, pem}. pki.spki(certFile) is the base64 SHA-256 of a certificate's public key
// (Chromium's --ignore-certificate-errors-spki-list format). pki.cleanup() removes the dir.

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const OPENSSL = process.env.OPENSSL_BIN || 'openssl';

function openssl(args, cwd) {
  return execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
}

/** node:test skip value: false, or why the openssl CLI cannot be used. */
export function opensslSkip() {
  try {
    openssl(['version']);
    return false;
  } catch (err) {
    if (process.env.E2E_REQUIRE_PROXY === '1') return false;
    return `openssl CLI not usable: ${err.message}`;
  }
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function makeCa(dir, name, cn) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  openssl(['req', '-x509', ...KEY_ARGS, '-keyout', key, '-out', cert, '-days', '3', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { cert, key, pem: { cert: fs.readFileSync(cert, 'utf8'), key: fs.readFileSync(key, 'utf8') } };
}

/**
 * A leaf signed by `ca`. san: 'DNS:localhost,IP:127.0.0.1'; usage 'serverAuth' | 'clientAuth';
 * days: validity (negative: notAfter already past).
 */
function makeLeaf(dir, name, ca, { cn, san, usage = 'serverAuth', days = 2 }) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  openssl(['req', '-new', ...KEY_ARGS, '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
  let text = `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${usage}\n`;
  if (san) text += `subjectAltName=${san}\n`;
  fs.writeFileSync(ext, text);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial',
    `0x${crypto.randomBytes(8).toString('hex')}`, '-days', String(days), '-out', cert, '-extfile', ext], dir);
  fs.rmSync(csr);
  fs.rmSync(ext);
  return { cert, key, pem: { cert: fs.readFileSync(cert, 'utf8'), key: fs.readFileSync(key, 'utf8') } };
}

/** Base64 SHA-256 of the DER SubjectPublicKeyInfo of a PEM certificate file. */
export function spkiHash(certFile) {
  const x = new crypto.X509Certificate(fs.readFileSync(certFile));
  const der = x.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

/** Makes the whole test PKI (about 1 s). See the file comment. */
export function makePki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsbridge-pki-'));
  const ca = makeCa(dir, 'ca', 'wsbridge test CA');
  const rogueCa = makeCa(dir, 'rogue-ca', 'wsbridge untrusted test CA');
  const clientCa = makeCa(dir, 'client-ca', 'wsbridge test client CA');
  const local = 'DNS:localhost,IP:127.0.0.1,IP:::1';
  const pki = {
    dir,
    ca,
    rogueCa,
    clientCa,
    server: makeLeaf(dir, 'server', ca, { cn: 'localhost', san: local }),
    other: makeLeaf(dir, 'other', ca, { cn: 'other.test', san: 'DNS:other.test,DNS:*.other.test' }),
    expired: makeLeaf(dir, 'expired', ca, { cn: 'localhost', san: local, days: -1 }),
    wronghost: makeLeaf(dir, 'wronghost', ca, { cn: 'wrong.example', san: 'DNS:wrong.example' }),
    untrusted: makeLeaf(dir, 'untrusted', rogueCa, { cn: 'localhost', san: local }),
    client: makeLeaf(dir, 'client', clientCa, { cn: 'wsbridge test client', usage: 'clientAuth' }),
    strangerClient: makeLeaf(dir, 'stranger-client', rogueCa, { cn: 'stranger', usage: 'clientAuth' }),
    spki: spkiHash,
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return pki;
}
