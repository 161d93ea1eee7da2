// End-to-end: wss:// backends (issue 11, "wss backends"). Real `ws` WebSocketServers behind
// Node https servers with certificates from the test PKI (lib/tls.mjs): one with a good
// certificate, and one each with an expired, a wrong-host and an untrusted certificate. The
// proxy must reach the good one (every transport), and never send the others an upgrade: its
// clients get 502 and the log names the verification error.
//
//   node --test tests/e2e/tls_backend.test.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import { WebSocket, WebSocketServer } from 'ws';

import { startProxy, proxyConfig, proxySkip, withTimeout, httpGet, sleep } from './lib/harness.mjs';
import { makePki, opensslSkip } from './lib/tls.mjs';

const T = 20000;

/** An https + ws echo server with `leaf`; counts upgrades and records X-Forwarded-Proto. */
async function startWssBackend(leaf) {
  const server = https.createServer({ cert: fs.readFileSync(leaf.cert), key: fs.readFileSync(leaf.key) });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  const seen = { upgrades: 0, protos: [] };
  wss.on('connection', (ws, req) => {
    seen.upgrades += 1;
    seen.protos.push(req.headers['x-forwarded-proto']);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    seen,
    close: () => new Promise((resolve) => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections?.();
      server.close(resolve);
    }),
  };
}

function wsOpen(url, opts = {}) {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  }), 5000, `open ${url}`);
}

describe('issue 11: wss backends', { skip: proxySkip() || opensslSkip() }, () => {
  let pki;
  let good;
  let expired;
  let wronghost;
  let untrusted;
  let proxy;
  let adminPort;

  before(async () => {
    pki = makePki();
    good = await startWssBackend(pki.server);
    expired = await startWssBackend(pki.expired);
    wronghost = await startWssBackend(pki.wronghost);
    untrusted = await startWssBackend(pki.untrusted);
    const ca = { ca: pki.ca.cert };
    proxy = await startProxy(proxyConfig([
      { path: '/good', backend: `wss://localhost:${good.port}/`, backend_tls: ca },
      { path: '/good-ip', backend: `wss://127.0.0.1:${good.port}/`, backend_tls: ca },
      { path: '/expired', backend: `wss://localhost:${expired.port}/`, backend_tls: ca },
      { path: '/wronghost', backend: `wss://localhost:${wronghost.port}/`, backend_tls: ca },
      { path: '/untrusted', backend: `wss://localhost:${untrusted.port}/`, backend_tls: ca },
      { path: '/system-store', backend: `wss://localhost:${good.port}/` },
      { path: '/unverified', backend: `wss://localhost:${untrusted.port}/`, backend_tls: { verify: false } },
    ], { extra: 'admin: { address: 127.0.0.1:0 }\n' }), { label: 'tls-backend' });
    adminPort = Number((await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([good, expired, wronghost, untrusted].map((b) => b?.close()));
    pki?.cleanup();
  });

  test('a verified wss backend relays WebSocket messages both ways', { timeout: T }, async () => {
    for (const path of ['/good', '/good-ip']) {
      const ws = await wsOpen(proxy.url(path));
      const got = new Promise((resolve) => ws.once('message', (m) => resolve(String(m))));
      ws.send(`hello ${path}`);
      assert.equal(await withTimeout(got, 5000, 'echo'), `hello ${path}`);
      ws.close();
    }
    assert.deepEqual(good.seen.protos.slice(0, 2), ['http', 'http']);
  });

  test('a session (long-poll) works over a wss backend', { timeout: T }, async () => {
    const open = await httpGet(proxy.port, '/good?transport=longpoll');
    assert.equal(open.status, 200);
    const id = JSON.parse(open.body).session;
    const post = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: `/good?session=${id}&seq=1`, headers: { 'Content-Type': 'text/plain' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end('over wss');
    });
    assert.ok(post === 200 || post === 204, `POST ${post}`);
    const poll = await httpGet(proxy.port, `/good?session=${id}&ack=0`, { ms: 8000 });
    assert.equal(poll.status, 200);
    assert.equal(JSON.parse(poll.body).messages[0].text, 'over wss');
  });

  for (const [path, backendName, why] of [
    ['/expired', 'expired', /certificate has expired/],
    ['/wronghost', 'wronghost', /hostname mismatch/],
    ['/untrusted', 'untrusted', /self-signed certificate in certificate chain|unable to get local issuer certificate/],
    ['/system-store', null, /unable to get local issuer certificate|self-signed certificate in certificate chain/],
  ]) {
    test(`a backend ${path.slice(1)} is never sent the upgrade: 502 and the reason logged`, { timeout: T }, async () => {
      const backend = { expired, wronghost, untrusted }[backendName] ?? good;
      const before = backend.seen.upgrades;
      await assert.rejects(wsOpen(proxy.url(path)), (e) => e.status === 502);
      const line = await proxy.waitForLog(new RegExp(`event=ws_rejected .*route=${path} .*status=502`));
      assert.match(line.input, why);
      await sleep(50);
      assert.equal(backend.seen.upgrades, before, 'the backend saw no upgrade');
    });
  }

  test('verify: false reaches a backend whose certificate nobody trusts, with a startup warning', { timeout: T }, async () => {
    await proxy.waitForLog(/event=backend_tls_unverified .*route=\/unverified/);
    const ws = await wsOpen(proxy.url('/unverified'));
    const got = new Promise((resolve) => ws.once('message', (m) => resolve(String(m))));
    ws.send('unverified');
    assert.equal(await withTimeout(got, 5000, 'echo'), 'unverified');
    ws.close();
  });

  test('backend handshakes are counted with side="backend"', { timeout: T }, async () => {
    const metrics = (await httpGet(adminPort, '/metrics')).body;
    assert.match(metrics, /wsbridge_tls_handshakes_total\{side="backend",version="TLSv1\.3"\} [1-9]/);
    assert.match(metrics, /wsbridge_tls_handshake_failures_total\{side="backend",reason="certificate verify failed"\} [1-9]/);
  });
});
