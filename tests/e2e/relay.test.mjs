// End-to-end relay tests: a Node `ws` client talks to the example backend through wsbridge.
//
//   node --test tests/e2e/relay.test.mjs
//   WSBRIDGE_BIN=/path/to/wsbridge node --test tests/e2e/relay.test.mjs
//   E2E_RELAY_DIRECT=1 node --test tests/e2e/relay.test.mjs   # self-check of the tests: the
//       client talks to the backend directly; proxy-only tests are skipped
//
// Decisions these tests pin down (see SPEC.md §1, §2):
//  - X-Forwarded-Proto is the HTTP scheme the client used, "http" for ws:// (as nginx's $scheme),
//    X-Forwarded-Host is the client's Host header, X-Forwarded-For the client's address.
//  - Only the allow-listed request headers reach the backend (Cookie, Authorization,
//    Sec-WebSocket-Protocol, X-Forwarded-*): an arbitrary X-Custom header does not.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { WebSocket } from 'ws';

import {
  startBackend, startProxy, proxyConfig, proxySkip, closedPort, httpGet, withTimeout, sleep,
} from './lib/harness.mjs';
import { rawConnect, upgradeRequest } from './lib/rawws.mjs';

const DIRECT = process.env.E2E_RELAY_DIRECT === '1';
const T = 15000; // per-test timeout
const proxyOnly = DIRECT ? 'E2E_RELAY_DIRECT=1: proxy-only behaviour' : false;

let backend;
let proxy;
let target; // {port, url(path)}: the proxy, or the backend itself with E2E_RELAY_DIRECT=1

/** Opens a ws client; resolves once open (rejects on error or after ms). */
function connect(path, { protocols, headers, ms = 5000 } = {}) {
  const ws = new WebSocket(target.url(path), protocols, { headers, perMessageDeflate: false });
  ws.received = [];
  ws.on('message', (data, isBinary) => ws.received.push({ data, isBinary }));
  ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  }), ms, `open ${path}`);
}

/** Resolves once ws.received holds n messages. */
function receive(ws, n, ms = 10000) {
  return withTimeout(new Promise((resolve) => {
    const check = () => {
      if (ws.received.length >= n) {
        ws.off('message', check);
        resolve(ws.received.slice(0, n));
      }
    };
    ws.on('message', check);
    check();
  }), ms, `${n} messages (have ${ws.received.length})`);
}

async function closeAndWait(ws, code = 1000, reason = '') {
  ws.close(code, reason);
  return withTimeout(ws.closed, 5000, 'close');
}

/** Polls fn() until it returns a truthy value; bounded. */
async function until(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

describe('relay through wsbridge', { skip: DIRECT ? false : proxySkip() }, () => {
  before(async () => {
    backend = await startBackend({ label: 'relay' });
    if (DIRECT) {
      target = { port: backend.port, url: backend.url };
      return;
    }
    const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
    const common = {
      idle_timeout: '60s', max_message: '1m', rate: { messages_per_second: 100000, burst: 100000 },
    };
    const dead = await closedPort();
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: be('/echo'), ...common },
      { path: '/chat', backend: be('/chat'), ...common },
      { path: '/close', backend: be('/close'), ...common },
      { path: '/headers', backend: be('/headers'), ...common },
      { path: '/subprotocol', backend: be('/subprotocol'), ...common },
      { path: '/stream', backend: be('/stream'), ...common },
      { path: '/reject', backend: be('/reject?status=403'), ...common },
      { path: '/unreachable', backend: `ws://127.0.0.1:${dead}/echo`, ...common, backend_connect_timeout: '2s' },
      { path: '/hang', backend: be('/hang'), ...common, backend_handshake_timeout: '500ms' },
    ]), { label: 'relay' });
    target = { port: proxy.port, url: proxy.url };
  });

  after(async () => {
    await proxy?.stop();
    await backend?.stop();
  });

  test('echo: text and binary of 0, 1, 125, 126, 65535, 65536 bytes and 1 MiB', { timeout: T }, async () => {
    const ws = await connect('/echo');
    const sizes = [0, 1, 125, 126, 65535, 65536, 1024 * 1024];
    let n = 0;
    for (const size of sizes) {
      const bin = crypto.randomBytes(size);
      const txt = 'é'.repeat(Math.floor(size / 2)) + 'x'.repeat(size % 2); // exactly `size` bytes
      assert.equal(Buffer.byteLength(txt), size);
      ws.send(txt);
      ws.send(bin);
      const [t, b] = (await receive(ws, n + 2)).slice(n);
      n += 2;
      assert.equal(t.isBinary, false, `text of ${size} bytes stays text`);
      assert.equal(t.data.toString('utf8'), txt, `text of ${size} bytes`);
      assert.equal(b.isBinary, true, `binary of ${size} bytes stays binary`);
      assert.ok(Buffer.from(b.data).equals(bin), `binary of ${size} bytes`);
    }
    assert.deepEqual(await closeAndWait(ws), { code: 1000, reason: '' });
  });

  test('1000 client messages are echoed in order', { timeout: T }, async () => {
    const ws = await connect('/echo');
    for (let i = 0; i < 1000; i++) ws.send(`m${i}`);
    const got = await receive(ws, 1000);
    assert.deepEqual(got.map((m) => m.data.toString()), Array.from({ length: 1000 }, (_, i) => `m${i}`));
    await closeAndWait(ws);
  });

  test('1000 backend messages arrive in order', { timeout: T }, async () => {
    const ws = await connect('/stream?n=1000');
    const got = await receive(ws, 1000);
    assert.deepEqual(got.map((m) => m.data.toString()), Array.from({ length: 1000 }, (_, i) => String(i + 1)));
    await closeAndWait(ws);
  });

  test('chat: a message from either client reaches both', { timeout: T }, async () => {
    const a = await connect('/chat');
    const b = await connect('/chat');
    a.send('hello from a');
    const [a1] = await receive(a, 1);
    const [b1] = await receive(b, 1);
    assert.equal(a1.data.toString(), 'hello from a');
    assert.equal(b1.data.toString(), 'hello from a');
    b.send(Buffer.from([1, 2, 3]), { binary: true });
    const a2 = (await receive(a, 2))[1];
    const b2 = (await receive(b, 2))[1];
    for (const m of [a2, b2]) {
      assert.equal(m.isBinary, true);
      assert.deepEqual([...Buffer.from(m.data)], [1, 2, 3]);
    }
    await Promise.all([closeAndWait(a), closeAndWait(b)]);
  });

  test('client close 4000 "x" reaches the backend and is answered', { timeout: T }, async () => {
    const before = (await backend.stats()).closes.length;
    const ws = await connect('/echo');
    ws.send('before close');
    await receive(ws, 1);
    assert.deepEqual(await closeAndWait(ws, 4000, 'x'), { code: 4000, reason: 'x' });
    const seen = await until(async () => {
      const s = await backend.stats();
      return s.closes.slice(before).find((c) => c.code === 4000) || null;
    }, 5000, 'the backend to record the close');
    assert.deepEqual(seen, { path: '/echo', code: 4000, reason: 'x' });
  });

  test('backend close 4001 "bye" reaches the client', { timeout: T }, async () => {
    const ws = await connect('/close?code=4001&reason=bye');
    assert.deepEqual(await withTimeout(ws.closed, 5000, 'close'), { code: 4001, reason: 'bye' });
  });

  test('backend close after a message: the message arrives first', { timeout: T }, async () => {
    const ws = await connect('/close?code=4002&reason=done&after=message');
    ws.send('last');
    const closed = await withTimeout(ws.closed, 5000, 'close');
    assert.deepEqual(ws.received.map((m) => m.data.toString()), ['last']);
    assert.deepEqual(closed, { code: 4002, reason: 'done' });
  });

  test('one event=ws_closed log line per closed connection', { timeout: T, skip: proxyOnly }, async () => {
    const count = () => proxy.stderr().split('\n').filter((l) => /\bevent=ws_closed\b/.test(l)).length;
    // Let earlier connections finish logging.
    await until(() => (backend.stats().then((s) => s.open === 0)), 5000, 'no open backend connections');
    await sleep(100);
    const before = count();
    const ws = await connect('/echo');
    await closeAndWait(ws, 1000);
    await until(() => count() >= before + 1, 5000, 'an event=ws_closed line');
    // A backend-initiated close is logged once too, with its code.
    const ws2 = await connect('/close?code=4003&reason=logged');
    await withTimeout(ws2.closed, 5000, 'close');
    await until(() => count() >= before + 2, 5000, 'a second event=ws_closed line');
    await sleep(200);
    assert.equal(count(), before + 2);
    const lines = proxy.stderr().split('\n').filter((l) => /\bevent=ws_closed\b/.test(l));
    assert.match(lines.at(-1), /\bcode=4003\b/);
  });

  test('subprotocol negotiation is passed through', { timeout: T }, async () => {
    const ws = await connect('/subprotocol', { protocols: ['chat.v2', 'chat.v1'] });
    assert.equal(ws.protocol, 'chat.v2');
    const [m] = await receive(ws, 1);
    assert.deepEqual(JSON.parse(m.data.toString()), { protocol: 'chat.v2' });
    await closeAndWait(ws);
  });

  test('forwarded headers: Cookie, Authorization, X-Forwarded-*, query; others dropped', { timeout: T }, async () => {
    const ws = await connect('/headers?room=42&x=y', {
      headers: { Cookie: 'session=abc; theme=dark', Authorization: 'Bearer t0ken', 'X-Custom': 'not forwarded' },
    });
    const [m] = await receive(ws, 1);
    const seen = JSON.parse(m.data.toString());
    assert.equal(seen.url, '/headers?room=42&x=y');
    assert.equal(seen.headers.cookie, 'session=abc; theme=dark');
    assert.equal(seen.headers.authorization, 'Bearer t0ken');
    if (!DIRECT) {
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${target.port}`);
      assert.equal(seen.headers['x-custom'], undefined);
    }
    await closeAndWait(ws);
  });

  test('backend rejects the upgrade with 403: client gets 403, connection closed', { timeout: T }, async () => {
    const { request } = upgradeRequest({ path: '/reject', host: `127.0.0.1:${target.port}` });
    const c = await rawConnect({ port: target.port, request });
    assert.equal(c.status, 403, c.statusLine);
    assert.equal(await c.waitClosed(3000), true, 'connection closed');
    assert.equal(c.peerClosedFirst, true, 'closed by the server');
  });

  test('backend unreachable: 502, connection closed', { timeout: T, skip: proxyOnly }, async () => {
    const { request } = upgradeRequest({ path: '/unreachable', host: `127.0.0.1:${target.port}` });
    const c = await rawConnect({ port: target.port, request });
    assert.equal(c.status, 502, c.statusLine);
    assert.equal(await c.waitClosed(3000), true, 'connection closed');
    assert.equal(c.peerClosedFirst, true, 'closed by the server');
  });

  test('backend never answers the upgrade: 504 after backend_handshake_timeout (500ms)',
    { timeout: T, skip: proxyOnly }, async () => {
      const { request } = upgradeRequest({ path: '/hang', host: `127.0.0.1:${target.port}` });
      const started = Date.now();
      const c = await rawConnect({ port: target.port, request, timeoutMs: 5000 });
      const elapsed = Date.now() - started;
      assert.equal(c.status, 504, c.statusLine);
      assert.ok(elapsed >= 400 && elapsed < 3000, `504 after ${elapsed} ms`);
      assert.equal(await c.waitClosed(3000), true, 'connection closed');
      assert.equal(c.peerClosedFirst, true, 'closed by the server');
    });

  test('unknown path: 404 JSON error', { timeout: T, skip: proxyOnly }, async () => {
    for (const headers of [{}, { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' }]) {
      const res = await httpGet(target.port, '/no/such/route', { headers });
      assert.equal(res.status, 404);
      const body = JSON.parse(res.body);
      assert.equal(typeof body.error, 'string');
      assert.equal(typeof body.detail, 'string');
    }
  });

  test('plain GET on a route without Upgrade: 400 JSON naming the transports', { timeout: T, skip: proxyOnly }, async () => {
    const res = await httpGet(target.port, '/echo');
    assert.equal(res.status, 400);
    const body = JSON.parse(res.body);
    assert.equal(typeof body.error, 'string');
    assert.equal(typeof body.detail, 'string');
    assert.match(body.detail, /websocket/i);
    assert.match(body.detail, /event-stream|\bsse\b|server-sent/i);
    assert.match(body.detail, /long-?poll/i);
  });
});
