// Edge limits of the WebSocket relay, end to end (SPEC §5): message rate (close 1008),
// max_message (close 1009), header limits (431), head timeout (408), connection caps (503),
// Origin policy (403), and the admin endpoints that count them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WebSocket } from 'ws';

import { startBackend, startProxy, proxyConfig, withTimeout, httpGet } from './lib/harness.mjs';

let backend;
let proxy;
let adminPort;

function open(path, { headers, ms = 5000 } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}${path}`, { headers, perMessageDeflate: false });
  ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  ws.on('error', () => {});
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error('status'), { status: res.statusCode })));
    ws.once('error', reject);
  }), ms, `open ${path}`);
}

/** Sends raw bytes on a fresh TCP connection; resolves with everything read until close. */
function raw(bytes, { ms = 5000 } = {}) {
  return withTimeout(new Promise((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('close', () => resolve(got));
    s.on('error', () => {});
    if (bytes) s.write(bytes);
  }), ms, 'raw response');
}

describe('edge limits', () => {
  before(async () => {
    backend = await startBackend({ label: 'limits-backend' });
    proxy = await startProxy(proxyConfig([
      { path: '/rate', backend: backend.url('/echo'), rate: { messages_per_second: 5, burst: 10 } },
      { path: '/small', backend: backend.url('/echo'), max_message: '1k', outbound_queue: '1k', replay_buffer: '1k' },
      { path: '/strict', backend: backend.url('/echo'), origins: ['https://app.example.com', 'https://*.example.org'], require_origin: true },
      { path: '/echo', backend: backend.url('/echo') },
    ], { extra: 'admin: { address: 127.0.0.1:0 }\nlimits: { max_header_bytes: 2k, max_headers: 20, header_timeout: 300ms, max_connections_per_ip: 40 }\n' }), { label: 'limits-proxy' });
    const m = await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/);
    adminPort = Number(m[1]);
  });
  after(async () => {
    await proxy?.stop();
    await backend?.stop();
  });

  test('a client over its message rate is closed with 1008 after the burst', async () => {
    const ws = await open('/rate');
    const echoed = [];
    ws.on('message', (d) => echoed.push(String(d)));
    for (let i = 0; i < 50; i++) ws.send(`m${i}`);
    const { code } = await withTimeout(ws.closed, 5000, 'close');
    assert.equal(code, 1008);
    assert.ok(echoed.length <= 10, `at most the burst got through (${echoed.length})`);
    await proxy.waitForLog(/event=ws_client_error .*code=1008 .*reason=policy_violation/);
  });

  test('a message over max_message is closed with 1009 and the backend never gets it', async () => {
    const ws = await open('/small');
    ws.send('x'.repeat(1025));
    const { code } = await withTimeout(ws.closed, 5000, 'close');
    assert.equal(code, 1009);
  });

  test('a message exactly at max_message is relayed', async () => {
    const ws = await open('/small');
    const got = new Promise((resolve) => ws.once('message', (d) => resolve(String(d))));
    ws.send('y'.repeat(1024));
    assert.equal((await withTimeout(got, 5000, 'echo')).length, 1024);
    ws.close(1000);
    await ws.closed;
  });

  test('Origin allow-list: listed, wildcard subdomain, rejected and missing origins', async () => {
    (await open('/strict', { headers: { Origin: 'https://app.example.com' } })).close();
    (await open('/strict', { headers: { Origin: 'https://a.b.example.org' } })).close();
    for (const origin of ['https://evil.example.com', 'https://example.org', 'null', undefined]) {
      const headers = origin ? { Origin: origin } : {};
      await assert.rejects(open('/strict', { headers }), (e) => e.status === 403, `origin ${origin}`);
    }
  });

  test('same-origin default: only Origin equal to http:// + Host passes', async () => {
    const host = `127.0.0.1:${proxy.port}`;
    (await open('/echo', { headers: { Origin: `http://${host}` } })).close();
    (await open('/echo')).close(); // no Origin: a non-browser client
    await assert.rejects(open('/echo', { headers: { Origin: 'http://other.example' } }), (e) => e.status === 403);
  });

  test('header bytes over max_header_bytes get 431 and the connection closes', async () => {
    const res = await raw(`GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(3000)}\r\n\r\n`);
    assert.match(res, /^HTTP\/1\.1 431 /);
    assert.match(res, /"error":"header_too_large"/);
  });

  test('more than max_headers header fields get 431', async () => {
    let req = 'GET /echo HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 25; i++) req += `X-H${i}: v\r\n`;
    const res = await raw(`${req}\r\n`);
    assert.match(res, /^HTTP\/1\.1 431 /);
  });

  test('a head not complete within header_timeout gets 408 and close', async () => {
    const res = await raw('GET /echo HTTP/1.1\r\nHost: x\r\n');
    assert.match(res, /^HTTP\/1\.1 408 /);
    assert.match(res, /Connection: close/);
  });

  test('Content-Length with Transfer-Encoding is a 400 (no smuggling)', async () => {
    const res = await raw('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 400 /);
  });

  test('connections over max_connections_per_ip get 503', async () => {
    const sockets = [];
    try {
      for (let i = 0; i < 40; i++) {
        sockets.push(await new Promise((resolve) => {
          const s = net.connect(proxy.port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        }));
      }
      const res = await raw('GET /echo HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(res, /^HTTP\/1\.1 503 /);
      assert.match(res, /Retry-After: 1/);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  test('rejection log lines are rate-limited per event; the rest are counted', async () => {
    const before = proxy.stderr().split('\n').filter((l) => l.includes('event=http_rejected')).length;
    const started = Date.now();
    const answers = [];
    for (let batch = 0; batch < 6; batch++) { // 25 at a time: under max_connections_per_ip
      const floods = [];
      for (let i = 0; i < 25; i++) floods.push(raw('GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      answers.push(...await Promise.all(floods));
    }
    assert.ok(answers.every((a) => /^HTTP\/1\.1 404 /.test(a)), 'every flood request answered 404');
    const m = await proxy.waitForLog(/event=log_suppressed name=http_rejected count=(\d+)/, 5000);
    const lines = proxy.stderr().split('\n').filter((l) => l.includes('event=http_rejected')).length - before;
    const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
    assert.ok(lines <= 50 * seconds, `${lines} rejection lines in ~${seconds} s`);
    assert.ok(Number(m[1]) >= 1);
  });

  test('the admin endpoint counts rejections and closes by reason', async () => {
    const metrics = await httpGet(adminPort, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /wsbridge_rejections_total\{transport="http",reason="header_too_large",status="431"\} [1-9]/);
    assert.match(metrics.body, /wsbridge_rejections_total\{transport="websocket",reason="origin_not_allowed",status="403"\} [1-9]/);
    assert.match(metrics.body, /wsbridge_ws_closes_total\{code="1008",by="proxy"\} [1-9]/);
    assert.match(metrics.body, /wsbridge_ws_closes_total\{code="1009",by="proxy"\} [1-9]/);
    assert.equal((await httpGet(adminPort, '/healthz')).status, 200);
    assert.equal((await httpGet(adminPort, '/readyz')).status, 200);
  });

  test('batched sends: the listening line names the mode; /metrics counts sends and batches', async () => {
    const line = await proxy.waitForLog(/event=listening .*send_batch=(io_uring|off)/);
    const ws = await open('/echo');
    const n = 200;
    let got = 0;
    const all = new Promise((resolve) => ws.on('message', () => { if (++got === n) resolve(); }));
    for (let i = 0; i < n; i++) ws.send(`b${i}`);
    await withTimeout(all, 5000, 'echoes');
    ws.close(1000);
    await ws.closed;
    const body = (await httpGet(adminPort, '/metrics')).body;
    if (line[1] === 'off') {
      // This kernel refuses io_uring: the plain write path relayed everything.
      assert.doesNotMatch(body, /wsbridge_batched_sends_total/);
      return;
    }
    const sends = Number(/^wsbridge_batched_sends_total (\d+)$/m.exec(body)?.[1]);
    const batches = Number(/^wsbridge_send_batches_total (\d+)$/m.exec(body)?.[1]);
    // Each echo is sent twice (to the backend, to the client), almost all through the batch.
    assert.ok(sends >= n, `batched sends ${sends} >= ${n}`);
    assert.ok(batches >= 1 && batches <= sends, `batches ${batches} <= sends ${sends}`);
  });

  test('WSBRIDGE_IO_URING=0 relays on the plain write path', async () => {
    const plain = await startProxy(proxyConfig([{ path: '/echo', backend: backend.url('/echo') }],
      { extra: 'admin: { address: 127.0.0.1:0 }\n' }), { label: 'limits-plain-proxy', env: { WSBRIDGE_IO_URING: '0' } });
    try {
      await plain.waitForLog(/event=listening .*send_batch=off/);
      const port = Number((await plain.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
      const ws = new WebSocket(plain.url('/echo'), { perMessageDeflate: false });
      await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open');
      const echoed = new Promise((resolve) => ws.once('message', (d) => resolve(String(d))));
      ws.send('plain');
      assert.equal(await withTimeout(echoed, 5000, 'echo'), 'plain');
      const closed = new Promise((resolve) => ws.on('close', resolve));
      ws.close(1000);
      await withTimeout(closed, 5000, 'close');
      assert.doesNotMatch((await httpGet(port, '/metrics')).body, /wsbridge_batched_sends_total/);
    } finally {
      await plain.stop();
    }
  });
});
