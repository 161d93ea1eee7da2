// Hostile clients against the wsbridge binary (SPEC §2, §3, §5; docs/protocol.md): malformed
// requests and handshakes, request smuggling, WebSocket frame attacks, slowloris heads,
// slow-drip messages and POST bodies (message_timeout), and forged session inputs.
//
//   node --test tests/e2e/hostile_client.test.mjs
//   WSBRIDGE_BIN=/path/to/wsbridge node --test tests/e2e/hostile_client.test.mjs
//
// Every case asserts the exact HTTP status or close code, the matching counter on the admin
// listener's /metrics (exactly one more per rejected request or closed connection), and that
// the proxy is still healthy afterwards: the process runs, /healthz is 200, and a fresh
// WebSocket echoes. Requests the proxy must refuse before contacting a backend go to routes
// whose backend is a recording TCP server (lib/hostile.mjs) that counts connections and keeps
// every byte it gets; it answers any request with 403.
//
// Decisions these tests pin down where the SPEC and docs are silent:
//  - Every HTTP-level error (parse error, bad handshake, 408, 431) is one JSON error answer
//    with `Connection: close`, then the proxy closes the connection: nothing after it is ever
//    parsed as a second request.
//  - `Upgrade: h2c` is no transport (SPEC §1 "anything else"): 400 `bad_transport`, no 101, and
//    the connection is closed like any other refused upgrade.
//  - A POST body that is not complete within message_timeout gets 408 with the error code
//    `message_timeout` (the WebSocket side counts the same reason in wsbridge_closes_total), so
//    it is told apart from a slow head (`header_timeout`). The refused POST consumes no seq.
//  - A Last-Event-ID naming a live session with a seq beyond what the session sent resumes at
//    the session's real position (the announce's last_seq), without a reset: a forged future
//    position cannot make the client skip messages sent later.
//  - Forged ids on a long-poll GET (unknown, garbage, overlong within the head limit, empty)
//    get the documented reset with a fresh session; the same ids on POST and DELETE get 404.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBackend, startProxy, proxyConfig, proxySkip, sleep } from './lib/harness.mjs';
import { OP, frame, text, binary, ping, cont, close, closePayload, openWs, upgradeRequest } from './lib/rawws.mjs';
import { SseClient } from './lib/sse.mjs';
import {
  scrape, metricDelta, httpRequest, exchange, bytesOf, startRecordingBackend, assertHealthy, expectEchoes,
} from './lib/hostile.mjs';

const skip = proxySkip();
const T = 20000; // per-test timeout
const FAST = { messages_per_second: 100000, burst: 100000 }; // a rate that never limits the tests
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // RFC 6455 §1.3 sample key (base64 of 16 bytes)
const UNKNOWN_ID = 'AAAAAAAAAAAAAAAAAAAAAA'; // a well-formed session id nobody was given
const SESSION_RE = /^[A-Za-z0-9_-]{22}$/;

let backend; // examples/backend/server.mjs
let rec; // recording backend: must never be contacted by refused requests
let proxy;
let adminPort;

const REJECTIONS = 'wsbridge_rejections_total';
const WS_CLOSES = 'wsbridge_ws_closes_total';
const PROTOCOL_ERRORS = 'wsbridge_protocol_errors_total';

// ---------------------------------------------------------------------------------------------
// Helpers

/** A WebSocket upgrade head to `path` with header overrides (null removes one). */
function wsHead(path = '/rec', headers = {}, { method = 'GET', httpVersion = '1.1' } = {}) {
  return upgradeRequest({ path, host: '127.0.0.1', method, httpVersion, key: KEY, headers }).request;
}

function errorCode(res) {
  try {
    return JSON.parse(res.body).error;
  } catch {
    return `<not JSON: ${res.body.slice(0, 80)}>`;
  }
}

/**
 * Sends `bytes` on a fresh connection and asserts: exactly one answer with `status` and JSON
 * error `code`, `Connection: close`, the proxy closed the connection, the recording backend
 * saw no connection, and wsbridge_rejections_total{reason: code, status} grew by exactly one.
 * Resolves the exchange.
 */
async function expectRefused(what, bytes, status, code, { gapMs = 0, ms = 3000, metricReason = code } = {}) {
  const before = await scrape(adminPort);
  const recBefore = rec.conns.length;
  const ex = await exchange(proxy.port, bytes, { gapMs, ms });
  assert.equal(ex.responses.length, 1, `${what}: exactly one answer, got ${JSON.stringify(ex.data.toString('latin1').slice(0, 300))}`);
  const [res] = ex.responses;
  assert.equal(res.status, status, `${what}: status (${res.statusLine} ${res.body.slice(0, 160)})`);
  assert.equal(errorCode(res), code, `${what}: JSON error code`);
  assert.match(res.headers.connection ?? '', /^close$/i, `${what}: Connection: close`);
  assert.equal(res.headers['cache-control'], 'no-store', `${what}: Cache-Control`);
  assert.equal(ex.rest.length, 0, `${what}: nothing after the answer`);
  assert.ok(ex.closedByPeer, `${what}: the proxy closed the connection`);
  assert.equal(rec.conns.length, recBefore, `${what}: the backend was not contacted`);
  const delta = await metricDelta(adminPort, before, REJECTIONS, { reason: metricReason, status });
  assert.equal(delta, 1, `${what}: ${REJECTIONS}{reason="${metricReason}",status="${status}"} grew by ${delta}`);
  return ex;
}

/**
 * Opens a WebSocket on `path`, writes `frames` (Buffers, each after gapMs), and asserts the
 * proxy closes with `code` (and a reason matching `reason` when given) then closes TCP, and
 * that the close and the protocol error are counted once each.
 */
async function expectWsClose(what, frames, code, metricReason, { path = '/ws', gapMs = 0, reason, ms = 3000, pipelined } = {}) {
  const before = await scrape(adminPort);
  const conn = await openWs({ port: proxy.port, path, timeoutMs: 3000, pipelined });
  try {
    await conn.writeChopped(frames, gapMs);
    await conn.waitClose(ms);
    assert.ok(conn.close, `${what}: a close frame from the proxy (closed=${conn.closed}, messages=${conn.messages.length})`);
    assert.equal(conn.close.code, code, `${what}: close code (reason ${JSON.stringify(conn.close.reason)})`);
    if (reason) assert.match(conn.close.reason, reason, `${what}: close reason`);
    assert.ok(await conn.waitClosed(3000), `${what}: the proxy closed TCP`);
    assert.deepEqual(conn.violations, [], `${what}: the proxy sent nothing a client must reject`);
  } finally {
    conn.destroy();
  }
  const closes = await metricDelta(adminPort, before, WS_CLOSES, { code, by: 'proxy' });
  assert.equal(closes, 1, `${what}: ${WS_CLOSES}{code="${code}",by="proxy"} grew by ${closes}`);
  const errors = await metricDelta(adminPort, before, PROTOCOL_ERRORS, { side: 'client', reason: metricReason });
  assert.equal(errors, 1, `${what}: ${PROTOCOL_ERRORS}{side="client",reason="${metricReason}"} grew by ${errors}`);
}

const healthy = () => assertHealthy(proxy, adminPort);

function json(res) {
  try {
    return JSON.parse(res.body);
  } catch {
    throw new Error(`not JSON (status ${res.status}): ${res.body.slice(0, 200)}`);
  }
}

const get = (path, opts) => httpRequest(proxy.port, 'GET', path, opts);
const del = (path, opts) => httpRequest(proxy.port, 'DELETE', path, opts);
const post = (path, seq, body, { headers = {} } = {}) =>
  httpRequest(proxy.port, 'POST', `${path}&seq=${seq}`, { headers: { 'Content-Type': 'text/plain', ...headers }, body });

async function lpOpen(path) {
  const res = await get(`${path}?transport=longpoll`);
  assert.equal(res.status, 200, `open ${path}: ${res.body}`);
  return json(res);
}

/** Opens an SSE stream; resolves {es, session, send} after the announce. */
async function sseOpen(path, { lastEventId } = {}) {
  const es = new SseClient(proxy.port, path, { lastEventId });
  const conn = await es.connect();
  assert.equal(conn.status, 200, `SSE ${path}: status ${conn.status}`);
  const [announce] = await es.waitForEvents(1, 3000);
  assert.equal(announce.type, 'session');
  const data = JSON.parse(announce.data);
  return { es, session: data.session, send: data.send, data };
}

/** Polls with ack until `n` messages or `ms`; resolves the messages. */
async function lpCollect(url, n, ack = 0, ms = 5000) {
  const deadline = Date.now() + ms;
  const messages = [];
  for (let i = 0; i < 50 && messages.length < n && Date.now() < deadline; i++) {
    const res = await get(`${url}&ack=${ack}`, { ms: Math.max(500, deadline - Date.now()) });
    assert.equal(res.status, 200, `poll: ${res.body}`);
    for (const m of json(res).messages) {
      messages.push(m);
      ack = m.seq;
    }
  }
  return messages;
}

// =============================================================================================

describe('hostile clients', { skip }, () => {
  before(async () => {
    backend = await startBackend({ label: 'hostile-backend' });
    rec = await startRecordingBackend();
    proxy = await startProxy(proxyConfig([
      { path: '/rec', backend: rec.url('/never') },
      { path: '/recreject', backend: rec.url('/reject') },
      { path: '/ws', backend: backend.url('/echo'), max_message: '1k', rate: FAST },
      { path: '/echo', backend: backend.url('/echo'), rate: FAST },
      { path: '/lp', backend: backend.url('/echo'), rate: FAST, resume_window: '5s' },
      { path: '/patient', backend: backend.url('/echo'), rate: FAST, message_timeout: '5s' },
      { path: '/other', backend: backend.url('/echo'), rate: FAST, resume_window: '5s' },
    ], {
      extra: 'admin: { address: 127.0.0.1:0 }\n' +
        'limits: { header_timeout: 1s, message_timeout: 1s, max_connections_per_ip: 1000 }\n',
    }), { label: 'hostile-client-proxy' });
    const m = await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/);
    adminPort = Number(m[1]);
  });
  after(async () => {
    const status = await proxy?.stop();
    await rec?.stop();
    await backend?.stop();
    // After all of the above, SIGTERM still ends the process cleanly.
    if (status) assert.deepEqual(status, { code: 0, signal: null }, 'the proxy exits 0 on SIGTERM');
  });

  // ------------------------------------------------------------------------------------------
  describe('malformed requests and handshakes: refused before any backend contact', () => {
    test('bad request lines: 400', { timeout: T }, async () => {
      // The rest of the head is a valid upgrade: a request line taken leniently would reach
      // the recording backend, which expectRefused() checks.
      const tail = wsHead('/rec').slice(wsHead('/rec').indexOf('\r\n') + 2);
      for (const [what, line] of [
        ['extra token after the version', 'GET /rec HTTP/1.1 extra\r\n'],
        ['leading space', ' GET /rec HTTP/1.1\r\n'],
        ['tab as separator', 'GET\t/rec HTTP/1.1\r\n'],
        ['whitespace after the version', 'GET /rec HTTP/1.1\t\r\n'],
        ['no version', 'GET /rec\r\n'],
        ['bad version', 'GET /rec HTTP/1.x\r\n'],
        ['HTTP/2.0 version', 'GET /rec HTTP/2.0\r\n'],
        ['lower-case method', 'get /rec HTTP/1.1\r\n'],
        ['unknown method', 'BREW /rec HTTP/1.1\r\n'],
        ['control byte in the method', 'G\x01T /rec HTTP/1.1\r\n'],
        ['NUL in the target', 'GET /rec\x00 HTTP/1.1\r\n'],
        ['space in the target', 'GET /r ec HTTP/1.1\r\n'],
      ]) {
        await expectRefused(what, line + tail, 400, 'bad_request');
      }
      await expectRefused('HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'bad_request');
      await expectRefused('TLS ClientHello on a plain port',
        Buffer.from('16030100a5010000a103030000000000000000000000000000000000000000000000000000000000000000', 'hex'),
        400, 'bad_request');
      await healthy();
    });

    test('bad header syntax and obsolete line folding: 400', { timeout: T }, async () => {
      // Each bad line sits right after the request line, before a valid upgrade's headers.
      const line = 'GET /rec HTTP/1.1\r\n';
      const tail = wsHead('/rec').slice(line.length);
      for (const [what, header] of [
        ['no colon', 'X-A b\r\n'],
        ['space before the colon', 'X-A : b\r\n'],
        ['name not a token', 'X-(a): b\r\n'],
        ['empty name', ': b\r\n'],
        ['NUL in a value', 'X-A: a\x00b\r\n'],
        ['obs-fold (space)', 'X-A: a\r\n folded\r\n'],
        ['obs-fold (tab)', 'X-A: a\r\n\tfolded\r\n'],
        ['obs-fold of the first header', ' X-A: a\r\n'],
      ]) {
        await expectRefused(what, `${line}${header}${tail}`, 400, 'bad_request');
      }
      await healthy();
    });

    test('NUL bytes, CR-only and LF-only line ends: 400', { timeout: T }, async () => {
      const head = wsHead('/rec');
      for (const [what, bytes] of [
        ['NUL bytes only', Buffer.from([0, 0, 0, 0, 0x0d, 0x0a, 0x0d, 0x0a])],
        ['CR-only line ends', head.replaceAll('\r\n', '\r')],
        ['LF-only line ends', head.replaceAll('\r\n', '\n')],
        ['a bare CR inside a value', head.replace('\r\n\r\n', '\r\nX-A: a\rb\r\n\r\n')],
        ['a bare LF between two headers', head.replace('\r\nUpgrade:', '\nUpgrade:')],
        ['NUL between two headers', head.replace('\r\nUpgrade:', '\r\n\x00\r\nUpgrade:')],
      ]) {
        await expectRefused(what, bytes, 400, 'bad_request');
      }
      await healthy();
    });

    test('bad Sec-WebSocket-Key and other handshake errors: 400', { timeout: T }, async () => {
      const b64 = (n) => Buffer.alloc(n, 7).toString('base64');
      for (const [what, head] of [
        ['key of 15 bytes', wsHead('/rec', { 'Sec-WebSocket-Key': b64(15) })],
        ['key of 17 bytes', wsHead('/rec', { 'Sec-WebSocket-Key': b64(17) })],
        ['empty key', wsHead('/rec', { 'Sec-WebSocket-Key': '' })],
        ['key not base64', wsHead('/rec', { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' })],
        ['key of 16 bytes without padding', wsHead('/rec', { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ' })],
        ['missing key', wsHead('/rec', { 'Sec-WebSocket-Key': null })],
        ['two keys', wsHead('/rec').replace('\r\n\r\n', `\r\nSec-WebSocket-Key: ${KEY}\r\n\r\n`)],
        ['Upgrade on POST', wsHead('/rec', { 'Content-Length': '0' }, { method: 'POST' })],
        ['HTTP/1.0 upgrade', wsHead('/rec', {}, { httpVersion: '1.0' })],
        ['no Connection: upgrade', wsHead('/rec', { Connection: 'keep-alive' })],
        ['no Host', wsHead('/rec', { Host: null })],
        ['two Hosts', wsHead('/rec').replace('\r\n\r\n', '\r\nHost: evil.example\r\n\r\n')],
        ['upgrade with a body', `${wsHead('/rec', { 'Content-Length': '5' })}hello`],
        ['subprotocol that is not a token', wsHead('/rec', { 'Sec-WebSocket-Protocol': 'chat, a b' })],
      ]) {
        await expectRefused(what, head, 400, 'bad_request');
      }
      await healthy();
    });

    test('missing or wrong Sec-WebSocket-Version: 426 with Sec-WebSocket-Version: 13', { timeout: T }, async () => {
      for (const [what, head] of [
        ['missing version', wsHead('/rec', { 'Sec-WebSocket-Version': null })],
        ['version 8', wsHead('/rec', { 'Sec-WebSocket-Version': '8' })],
        ['version 14', wsHead('/rec', { 'Sec-WebSocket-Version': '14' })],
        ['version list', wsHead('/rec', { 'Sec-WebSocket-Version': '13, 8' })],
        ['two version headers', wsHead('/rec').replace('\r\n\r\n', '\r\nSec-WebSocket-Version: 8\r\n\r\n')],
      ]) {
        const ex = await expectRefused(what, head, 426, 'upgrade_required');
        assert.equal(ex.responses[0].headers['sec-websocket-version'], '13', `${what}: Sec-WebSocket-Version`);
      }
      await healthy();
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('smuggling', () => {
    const smuggled = 'GET /rec HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'; // would be a second 400 if parsed

    test('Content-Length with Transfer-Encoding: 400 and close, the body never parsed', { timeout: T }, async () => {
      const body = `0\r\n\r\n${smuggled}`;
      for (const [what, headers] of [
        ['CL then TE', `Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n`],
        ['TE then CL', `Transfer-Encoding: chunked\r\nContent-Length: ${body.length}\r\n`],
        ['CL then TE, short CL', 'Content-Length: 3\r\nTransfer-Encoding: chunked\r\n'],
      ]) {
        await expectRefused(what,
          `POST /lp?session=${UNKNOWN_ID}&seq=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n${headers}\r\n${body}`,
          400, 'bad_request');
      }
      await healthy();
    });

    test('duplicate differing Content-Length and obfuscated Transfer-Encoding: 400 and close', { timeout: T }, async () => {
      const start = `POST /lp?session=${UNKNOWN_ID}&seq=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n`;
      for (const [what, headers, body] of [
        ['two differing Content-Length', 'Content-Length: 5\r\nContent-Length: 45\r\n', `hello${smuggled}`],
        ['Content-Length list', 'Content-Length: 5, 45\r\n', `hello${smuggled}`],
        ['negative Content-Length', 'Content-Length: -1\r\n', `hello${smuggled}`],
        ['Content-Length not a number', 'Content-Length: 5x\r\n', `hello${smuggled}`],
        ['Transfer-Encoding not ending in chunked', 'Transfer-Encoding: chunked, identity\r\n', `0\r\n\r\n${smuggled}`],
        ['Transfer-Encoding xchunked', 'Transfer-Encoding: xchunked\r\n', `0\r\n\r\n${smuggled}`],
        ['Transfer-Encoding with a space before the colon', 'Transfer-Encoding : chunked\r\n', `0\r\n\r\n${smuggled}`],
        ['bad chunk size', 'Transfer-Encoding: chunked\r\n', `5;\x00\r\nhello\r\n0\r\n\r\n${smuggled}`],
        ['chunk size with a sign', 'Transfer-Encoding: chunked\r\n', `+5\r\nhello\r\n0\r\n\r\n${smuggled}`],
      ]) {
        await expectRefused(what, `${start}${headers}\r\n${body}`, 400, 'bad_request');
      }
      await healthy();
    });

    test('a refused upgrade (426) followed by pipelined bytes: one answer, closed, nothing reaches a backend', { timeout: T }, async () => {
      const bad = wsHead('/rec', { 'Sec-WebSocket-Version': '8' });
      const good = wsHead('/rec'); // a valid upgrade, pipelined: must never be parsed
      const frames = Buffer.concat([text('smuggled frame'), close(1000)]);
      await expectRefused('426 + pipelined upgrade and frames', Buffer.concat([Buffer.from(bad + good, 'latin1'), frames]),
        426, 'upgrade_required');
      await expectRefused('400 + pipelined upgrade', wsHead('/rec', { 'Sec-WebSocket-Key': 'short' }) + good, 400, 'bad_request');
      // An upgrade on an unknown path: 404, also closed (a refused upgrade is never reusable).
      const before = await scrape(adminPort);
      const recBefore = rec.conns.length;
      const ex = await exchange(proxy.port, wsHead('/nowhere') + good);
      assert.deepEqual(ex.responses.map((r) => r.status), [404], 'one 404, the pipelined upgrade unanswered');
      assert.ok(ex.closedByPeer, 'the proxy closed the connection');
      assert.equal(rec.conns.length, recBefore, 'no backend was contacted');
      assert.equal(await metricDelta(adminPort, before, REJECTIONS, { reason: 'not_found', status: 404 }), 1);
      await healthy();
    });

    test('an upgrade the backend refuses (403): pipelined bytes never reach the backend', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const recBefore = rec.conns.length;
      const head = wsHead('/recreject');
      const pipelined = Buffer.concat([text('SMUGGLED-AFTER-UPGRADE'), Buffer.from(wsHead('/recreject'), 'latin1'), binary(Buffer.alloc(100, 0x41))]);
      const ex = await exchange(proxy.port, Buffer.concat([Buffer.from(head, 'latin1'), pipelined]));
      assert.deepEqual(ex.responses.map((r) => r.status), [403], `one answer, the backend's status: ${ex.data.toString('latin1').slice(0, 200)}`);
      assert.equal(ex.rest.length, 0, 'nothing after the answer');
      assert.ok(ex.closedByPeer, 'the proxy closed the connection');
      await rec.settle();
      assert.equal(rec.conns.length, recBefore + 1, 'exactly one backend connection');
      const got = rec.conns.at(-1).data;
      const end = got.indexOf('\r\n\r\n');
      assert.ok(end > 0, 'the backend got a request head');
      assert.equal(got.length, end + 4, `the backend got the proxy's head and nothing else (${got.length - end - 4} extra bytes)`);
      assert.match(got.toString('latin1'), /^GET \/reject HTTP\/1\.1\r\n/);
      assert.equal((got.toString('latin1').match(/HTTP\/1\.1\r\n/g) ?? []).length, 1, 'one request');
      assert.equal(await metricDelta(adminPort, before, REJECTIONS, { transport: 'websocket', reason: 'backend_rejected', status: 403 }), 1);
      assert.equal(await metricDelta(adminPort, before, 'wsbridge_upgrades_total', { result: 'rejected' }), 1);
      await healthy();
    });

    test('Upgrade: h2c is not upgraded: a plain 400, closed, pipelined HTTP/2 never parsed', { timeout: T }, async () => {
      const h2c = 'GET /rec HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n' +
        'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
      const ex = await expectRefused('h2c', h2c + 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'bad_transport');
      const [res] = ex.responses;
      assert.equal(res.headers.upgrade, undefined, 'no Upgrade header in the answer');
      // On a session route, with an SSE Accept: still no switch, no session, no backend.
      const stats = await backend.stats();
      const ex2 = await expectRefused('h2c on an SSE request',
        h2c.replace('/rec', '/lp').replace('\r\n\r\n', '\r\nAccept: text/event-stream\r\n\r\n'), 400, 'bad_transport');
      assert.equal(ex2.responses[0].headers['content-type'], 'application/json');
      assert.equal((await backend.stats()).upgrades, stats.upgrades, 'no backend upgrade for the h2c request');
      await healthy();
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('frame attacks after a successful upgrade', () => {
    test('bad frames pipelined behind the upgrade request: held, then 1002/1007 after the 101', { timeout: T }, async () => {
      await expectWsClose('pipelined unmasked frame', [], 1002, 'protocol_error', { pipelined: text('early', { mask: false }) });
      await expectWsClose('pipelined invalid UTF-8', [], 1007, 'invalid_utf8', { pipelined: text(Buffer.from([0xff])) });
      await expectWsClose('pipelined good message, then a reserved opcode', [], 1002, 'protocol_error',
        { pipelined: Buffer.concat([text('early'), frame({ opcode: 5, payload: '' })]) });
      await healthy();
    });

    test('unmasked client frame: 1002', { timeout: T }, async () => {
      await expectWsClose('unmasked text', [text('hi', { mask: false })], 1002, 'protocol_error');
      await expectWsClose('unmasked close', [close(1000, '', { mask: false })], 1002, 'protocol_error');
      await healthy();
    });

    test('oversized and fragmented control frames: 1002', { timeout: T }, async () => {
      await expectWsClose('ping of 126 bytes', [ping(Buffer.alloc(126, 1))], 1002, 'protocol_error');
      await expectWsClose('ping with a 16-bit length of 125', [frame({ opcode: OP.PING, payload: Buffer.alloc(125), lenBytes: 2 })], 1002, 'protocol_error');
      await expectWsClose('close of 126 bytes', [close(1000, 'r'.repeat(124))], 1002, 'protocol_error');
      await expectWsClose('fragmented ping', [ping('a', { fin: false }), cont('b')], 1002, 'protocol_error');
      await expectWsClose('fragmented close', [frame({ opcode: OP.CLOSE, payload: closePayload(1000), fin: false })], 1002, 'protocol_error');
      await healthy();
    });

    test('64-bit length with the MSB set and non-minimal lengths: 1002', { timeout: T }, async () => {
      await expectWsClose('64-bit length, MSB set', [frame({ opcode: OP.BINARY, payload: Buffer.alloc(0), length: 1n << 63n, lenBytes: 8 })], 1002, 'protocol_error');
      await expectWsClose('64-bit length, all ones', [frame({ opcode: OP.BINARY, payload: Buffer.alloc(0), length: 0xffffffffffffffffn, lenBytes: 8 })], 1002, 'protocol_error');
      await expectWsClose('7 bytes in a 16-bit length', [frame({ opcode: OP.TEXT, payload: 'abcdefg', lenBytes: 2 })], 1002, 'protocol_error');
      await expectWsClose('100 bytes in a 64-bit length', [frame({ opcode: OP.BINARY, payload: Buffer.alloc(100), lenBytes: 8 })], 1002, 'protocol_error');
      await expectWsClose('300 bytes in a 64-bit length', [frame({ opcode: OP.BINARY, payload: Buffer.alloc(300), lenBytes: 8 })], 1002, 'protocol_error');
      await expectWsClose('empty frame in a 16-bit length', [frame({ opcode: OP.TEXT, payload: '', lenBytes: 2 })], 1002, 'protocol_error');
      await healthy();
    });

    test('a length over max_message (1k) announced in the header: 1009 before the payload', { timeout: T }, async () => {
      // Only headers are sent: the close must come without any payload byte.
      await expectWsClose('2 KiB text header', [frame({ opcode: OP.TEXT, payload: Buffer.alloc(0), length: 2048 })], 1009, 'message_too_big');
      await expectWsClose('2^40 binary header', [frame({ opcode: OP.BINARY, payload: Buffer.alloc(0), length: 1n << 40n })], 1009, 'message_too_big');
      await expectWsClose('second fragment takes the message over 1k',
        [text(Buffer.alloc(600, 0x61), { fin: false }), frame({ opcode: OP.CONT, payload: Buffer.alloc(0), length: 600 })],
        1009, 'message_too_big');
      await healthy();
    });

    test('reserved bits and opcodes, bad continuations: 1002', { timeout: T }, async () => {
      for (const rsv of [4, 2, 1]) {
        await expectWsClose(`RSV ${rsv}`, [frame({ opcode: OP.TEXT, payload: 'x', rsv })], 1002, 'protocol_error');
      }
      await expectWsClose('RSV on a ping', [frame({ opcode: OP.PING, payload: '', rsv: 4 })], 1002, 'protocol_error');
      for (const opcode of [3, 7, 0xb, 0xf]) {
        await expectWsClose(`opcode ${opcode}`, [frame({ opcode, payload: 'x' })], 1002, 'protocol_error');
      }
      await expectWsClose('continuation without a message', [cont('x')], 1002, 'protocol_error');
      await expectWsClose('new text inside a fragmented message', [text('a', { fin: false }), text('b')], 1002, 'protocol_error');
      await healthy();
    });

    test('invalid UTF-8 in text messages, also split across fragments: 1007', { timeout: T }, async () => {
      const hex = (s) => Buffer.from(s, 'hex');
      for (const [what, frames] of [
        ['0xff', [text(hex('61ff62'))]],
        ['overlong slash', [text(hex('c0af'))]],
        ['UTF-16 surrogate', [text(hex('eda080'))]],
        ['above U+10FFFF', [text(hex('f4908080'))]],
        ['truncated at the message end', [text(hex('e282'))]],
        ['split: valid prefix, bad continuation byte', [text(hex('e282'), { fin: false }), cont(hex('28'))]],
        ['split: the 4th byte of a sequence is bad', [text(hex('f09f98'), { fin: false }), cont(hex('41'))]],
        ['split: truncated at the last fragment', [text(hex('41'), { fin: false }), cont(hex('f09f'), { fin: false }), cont(hex(''))]],
      ]) {
        await expectWsClose(what, frames, 1007, 'invalid_utf8');
      }
      // Fail fast: a bad byte in an unfinished message closes at once, without its end.
      await expectWsClose('fail fast in a first fragment', [text(hex('41ff'), { fin: false })], 1007, 'invalid_utf8');
      await healthy();
    });

    test('invalid UTF-8 in a close reason: 1007; invalid close codes and payloads: 1002', { timeout: T }, async () => {
      await expectWsClose('close reason 0xff', [close(1000, Buffer.from([0xff]))], 1007, 'invalid_utf8');
      await expectWsClose('close reason truncated sequence', [close(1001, Buffer.from([0x61, 0xe2, 0x82]))], 1007, 'invalid_utf8');
      for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
        await expectWsClose(`close code ${code}`, [close(code, '')], 1002, 'protocol_error');
      }
      await expectWsClose('1-byte close payload', [frame({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) })], 1002, 'protocol_error');
      await healthy();
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('slowloris heads (header_timeout 1s)', () => {
    test('an upgrade head dripped byte by byte: 408 and close, no backend contact', { timeout: T }, async () => {
      // ~170 bytes at 30 ms each would take 5 s; dripping stops once the proxy answers.
      const ex = await expectRefused('byte drip', bytesOf(wsHead('/rec')), 408, 'header_timeout', { gapMs: 30, ms: 3000 });
      assert.ok(ex.written < bytesOf(wsHead('/rec')).length, `the head was never complete (${ex.written} bytes written)`);
      await healthy();
    });

    test('a head that keeps adding header lines: 408 and close', { timeout: T }, async () => {
      const lines = ['GET /lp?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n'];
      for (let i = 0; i < 30; i++) lines.push(`X-Drip-${i}: ${i}\r\n`);
      const stats = await backend.stats();
      const ex = await expectRefused('header drip', lines, 408, 'header_timeout', { gapMs: 150, ms: 3000 });
      assert.ok(ex.written < lines.length, 'the head was never complete');
      assert.equal((await backend.stats()).upgrades, stats.upgrades, 'no session was opened');
      await healthy();
    });

    test('a kept-alive connection whose second head drips: 408 and close', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const first = `DELETE /lp?session=${UNKNOWN_ID} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`; // 404, kept alive
      const second = bytesOf(`GET /lp?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'s'.repeat(60)}\r\n\r\n`);
      const ex = await exchange(proxy.port, [first, ...second], { gapMs: 30, ms: 3000, stopOnAnswer: false });
      assert.deepEqual(ex.responses.map((r) => r.status), [404, 408], ex.data.toString('latin1').slice(0, 400));
      assert.equal(errorCode(ex.responses[1]), 'header_timeout');
      assert.match(ex.responses[1].headers.connection ?? '', /^close$/i);
      assert.ok(ex.closedByPeer, 'the proxy closed the connection');
      assert.ok(ex.written < second.length + 1, 'the second head was never complete');
      assert.equal(await metricDelta(adminPort, before, REJECTIONS, { reason: 'header_timeout', status: 408 }), 1);
      await healthy();
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('slow-drip messages (message_timeout 1s)', () => {
    test('one WebSocket frame dripped byte by byte: close 1008 naming message_timeout', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const f = text('d'.repeat(100));
      const pieces = [f.subarray(0, 7), ...bytesOf(f.subarray(7))]; // header + mask + 1 byte, then 1 byte each
      await expectWsClose('frame drip', pieces, 1008, 'policy_violation', { gapMs: 100, reason: /message[ _]timeout/i });
      assert.equal(await metricDelta(adminPort, before, 'wsbridge_closes_total', { side: 'client', reason: 'message_timeout' }), 1);
      await healthy();
    });

    test('a fragmented message dripped fragment by fragment (pings between): close 1008', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const frames = [text('a', { fin: false })];
      for (let i = 0; i < 20; i++) frames.push(i % 2 ? ping('p') : cont('b', { fin: false }));
      await expectWsClose('fragment drip', frames, 1008, 'policy_violation', { gapMs: 150, reason: /message[ _]timeout/i });
      assert.equal(await metricDelta(adminPort, before, 'wsbridge_closes_total', { side: 'client', reason: 'message_timeout' }), 1);
      await healthy();
    });

    test('a route\'s own message_timeout (5s) overrides the global one: a 1.5 s drip is relayed', { timeout: T }, async () => {
      const f = text('p'.repeat(15));
      await expectEchoes(proxy.port, '/patient',
        (conn) => conn.writeChopped([f.subarray(0, 7), ...bytesOf(f.subarray(7))], 100), // ~1.5 s
        ['p'.repeat(15)]);
      await healthy();
    });

    test('idle time between complete messages is not a slow drip', { timeout: T }, async () => {
      await expectEchoes(proxy.port, '/ws', async (conn) => {
        conn.write(text('one'));
        await conn.waitMessages(1, 3000);
        await sleep(1600); // longer than message_timeout, between two messages
        conn.write(text('two'));
      }, ['one', 'two']);
      await healthy();
    });

    test('a POST body dripped past message_timeout: 408 and close; no seq consumed', { timeout: T }, async () => {
      const s = await lpOpen('/lp');
      const body = 'b'.repeat(40); // 40 bytes at 100 ms would take 4 s
      const head = `POST ${s.send}&seq=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`;
      const ex = await expectRefused('POST body drip (Content-Length)', [head, ...bytesOf(body)], 408, 'message_timeout', { gapMs: 100, ms: 3000 });
      assert.ok(ex.written < body.length + 1, 'the body was never complete');
      const chunked = `POST ${s.send}&seq=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n`;
      const chunks = Array.from({ length: 30 }, () => '1\r\nc\r\n');
      await expectRefused('POST body drip (chunked)', [chunked, ...chunks], 408, 'message_timeout', { gapMs: 150, ms: 3000 });
      // The session is intact and seq 1 is still the next one.
      const ok = await post(s.send, 1, 'after the drips');
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(json(ok), { next_seq: 2 });
      assert.deepEqual(await lpCollect(s.poll, 1), [{ seq: 1, text: 'after the drips' }]);
      assert.equal((await del(s.send)).status, 204);
      await healthy();
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('forged session inputs', () => {
    let lp; // a long-poll session that must stay unaffected
    let sse; // an SSE session that must stay unaffected
    let otherRoute; // a live session of another route

    before(async () => {
      lp = await lpOpen('/lp');
      assert.equal((await post(lp.send, 1, 'lp one')).status, 200);
      assert.deepEqual(await lpCollect(lp.poll, 1), [{ seq: 1, text: 'lp one' }]);
      sse = await sseOpen('/lp');
      assert.equal((await post(sse.send, 1, 'sse one')).status, 200);
      await sse.es.waitForEvents(2, 3000);
      otherRoute = await lpOpen('/other');
    });
    after(async () => {
      sse?.es.close();
      for (const s of [lp, sse, otherRoute]) if (s) await del(s.send).catch(() => {});
    });

    const forgedIds = () => [
      ['unknown well-formed id', UNKNOWN_ID],
      ['garbage', 'garbage'],
      ['path traversal', '..%2F..%2Fetc%2Fpasswd'],
      ['encoded CRLF and NUL', '%0D%0ASet-Cookie:%20x%00'],
      ['overlong (4000 characters)', 'x'.repeat(4000)],
      ['empty', ''],
      ['a live id plus one character', `${lp.session}x`],
      ['a live id minus one character', lp.session.slice(0, -1)],
      ['a live session of another route', otherRoute.session],
    ];

    test('long-poll GET with a forged id: 200 with a reset naming a fresh session', { timeout: T }, async () => {
      for (const [what, id] of forgedIds()) {
        const before = await scrape(adminPort);
        const res = await get(`/lp?session=${id}&ack=0`);
        assert.equal(res.status, 200, `${what}: ${res.body.slice(0, 200)}`);
        const b = json(res);
        assert.deepEqual(Object.keys(b), ['reset', 'messages'], `${what}: ${res.body.slice(0, 200)}`);
        assert.match(b.reset.session, SESSION_RE, what);
        assert.ok(![id, lp.session, sse.session, otherRoute.session].includes(b.reset.session), `${what}: a fresh id`);
        assert.deepEqual(b.messages, []);
        assert.equal(await metricDelta(adminPort, before, 'wsbridge_session_resets_total', { transport: 'longpoll' }), 1, what);
        assert.equal((await del(`/lp?session=${b.reset.session}`)).status, 204, `${what}: the fresh session can be deleted`);
      }
      // An id that makes the head too large: 431 and close.
      await expectRefused('id over max_header_bytes', `GET /lp?session=${'x'.repeat(9000)}&ack=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
        431, 'header_too_large');
      await healthy();
    });

    test('long-poll GET with a malformed ack: 400', { timeout: T }, async () => {
      for (const id of [lp.session, UNKNOWN_ID]) {
        for (const ack of ['abc', '-1', '1.5', '+1', '0x10', '1e3', '99999999999999999999999', '%31']) {
          const before = await scrape(adminPort);
          const res = await get(`/lp?session=${id}&ack=${ack}`);
          assert.equal(res.status, 400, `ack=${ack}: ${res.body}`);
          assert.equal(json(res).error, 'bad_request');
          assert.equal(await metricDelta(adminPort, before, REJECTIONS, { transport: 'session', reason: 'bad_request', status: 400 }), 1);
        }
      }
      await healthy();
    });

    test('POST and DELETE with a forged id: 404 unknown_session', { timeout: T }, async () => {
      for (const [what, id] of forgedIds()) {
        for (const method of ['POST', 'DELETE']) {
          const before = await scrape(adminPort);
          const res = method === 'POST' ? await post(`/lp?session=${id}`, 1, 'forged')
            : await del(`/lp?session=${id}`);
          assert.equal(res.status, 404, `${method} ${what}: ${res.body.slice(0, 200)}`);
          assert.equal(json(res).error, 'unknown_session', `${method} ${what}`);
          assert.equal(await metricDelta(adminPort, before, REJECTIONS, { transport: 'session', reason: 'unknown_session', status: 404 }), 1, `${method} ${what}`);
        }
      }
      await healthy();
    });

    test('SSE resume with a forged or malformed Last-Event-ID: 200, reset, fresh session', { timeout: T }, async () => {
      const S = sse.session;
      for (const [what, lastEventId] of [
        ['unknown session', `${UNKNOWN_ID}.5`],
        ['non-numeric seq', `${S}.abc`],
        ['negative seq', `${S}.-1`],
        ['seq over 64 bits', `${S}.99999999999999999999999`],
        ['two seqs', `${S}.1.2`],
        ['no seq', S],
        ['no session', '.5'],
        ['garbage', 'garbage'],
        ['overlong', `${'y'.repeat(3000)}.1`],
        ['a live session of another route', `${otherRoute.session}.0`],
      ]) {
        const before = await scrape(adminPort);
        const es = new SseClient(proxy.port, '/lp', { lastEventId });
        try {
          const conn = await es.connect();
          assert.equal(conn.status, 200, `${what}: status`);
          const [reset, announce] = await es.waitForEvents(2, 3000);
          assert.equal(reset.type, 'reset', `${what}: first event ${JSON.stringify(reset)}`);
          const r = JSON.parse(reset.data);
          assert.match(r.session, SESSION_RE);
          assert.ok(![S, lp.session, otherRoute.session, UNKNOWN_ID].includes(r.session), `${what}: a fresh id`);
          assert.equal(announce.type, 'session');
          assert.deepEqual(JSON.parse(announce.data).session, r.session);
          assert.equal(JSON.parse(announce.data).last_seq, 0);
          assert.equal(await metricDelta(adminPort, before, 'wsbridge_session_resets_total', { transport: 'sse' }), 1, what);
          assert.equal((await del(`/lp?session=${r.session}`)).status, 204);
        } finally {
          es.close();
        }
      }
      await healthy();
    });

    test('SSE resume beyond the last sent seq resumes at the real position, no reset', { timeout: T }, async () => {
      const b = await sseOpen('/lp');
      try {
        for (const seq of [1, 2]) assert.equal((await post(b.send, seq, `b${seq}`)).status, 200);
        await b.es.waitForEvents(3, 3000);
        b.es.close();
        let next = 3;
        for (const forged of ['7', '18446744073709551615']) {
          const before = await scrape(adminPort);
          const es = new SseClient(proxy.port, '/lp', { lastEventId: `${b.session}.${forged}` });
          try {
            const conn = await es.connect();
            assert.equal(conn.status, 200);
            const [announce] = await es.waitForEvents(1, 3000);
            assert.equal(announce.type, 'session', `.${forged}: no reset`);
            assert.deepEqual(JSON.parse(announce.data), { ...b.data, last_seq: next - 1 }, `.${forged}: announce`);
            assert.equal(announce.lastEventId, `${b.session}.${next - 1}`);
            assert.equal((await post(b.send, next, `b${next}`)).status, 200);
            const [, m] = await es.waitForEvents(2, 3000);
            assert.deepEqual([m.type, m.data, m.lastEventId], ['message', `b${next}`, `${b.session}.${next}`], `.${forged}: the next message`);
            assert.equal(await metricDelta(adminPort, before, 'wsbridge_session_resumes_total', { transport: 'sse' }), 1);
            next++;
          } finally {
            es.close();
          }
        }
      } finally {
        b.es.close();
        await del(b.send);
      }
      await healthy();
    });

    test('a batch POST nested 100000 deep: 400, nothing consumed', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const res = await httpRequest(proxy.port, 'POST', `${lp.send}&seq=2&batch=1`,
        { headers: { 'Content-Type': 'application/json' }, body: '['.repeat(100000) });
      assert.equal(res.status, 400, res.body.slice(0, 200));
      assert.equal(json(res).error, 'bad_request');
      assert.equal(await metricDelta(adminPort, before, REJECTIONS, { transport: 'session', reason: 'bad_request', status: 400 }), 1);
      await healthy();
    });

    test('the sessions the forged inputs pointed at are unaffected', { timeout: T }, async () => {
      // Long-poll: seq 2 is next, the backend echoes, nothing else arrived in between.
      const p = await post(lp.send, 2, 'lp two');
      assert.equal(p.status, 200, p.body);
      assert.deepEqual(json(p), { next_seq: 3 });
      assert.deepEqual(await lpCollect(lp.poll, 1, 1), [{ seq: 2, text: 'lp two' }]);
      // SSE: the original stream is still attached and gets the next message as seq 2.
      assert.equal(sse.es.current.ended, false, 'the SSE stream is still open');
      assert.equal((await post(sse.send, 2, 'sse two')).status, 200);
      const [, , m] = await sse.es.waitForEvents(3, 3000);
      assert.deepEqual([m.type, m.data, m.lastEventId], ['message', 'sse two', `${sse.session}.2`]);
      assert.ok(sse.es.events.every((e) => e.type !== 'reset' && e.type !== 'close'), 'no reset or close on the stream');
      // The other route's session too.
      assert.equal((await post(otherRoute.send, 1, 'other')).status, 200);
      assert.deepEqual(await lpCollect(otherRoute.poll, 1), [{ seq: 1, text: 'other' }]);
      await healthy();
    });
  });
});
