// End-to-end tests of the session transports (SPEC §1, §3, §4, §5): Server-Sent Events,
// long-polling and the POST/DELETE/OPTIONS requests of a session, through wsbridge to the
// example backend (examples/backend/server.mjs).
//
//   node --test tests/e2e/sessions.test.mjs
//   WSBRIDGE_BIN=/path/to/wsbridge node --test tests/e2e/sessions.test.mjs
//   E2E_CLIENT_TLS=1 node --test tests/e2e/sessions.test.mjs    (ctest: e2e.sessions.tls)
//
// With E2E_CLIENT_TLS=1 the whole suite runs with the client hop over TLS: every proxy it starts
// listens with TLS (the test PKI of lib/tls.mjs, made at run time) and every client (requests,
// keep-alive agents, SseClient) speaks https trusting the test CA. Nothing else changes: the
// same SSE resume (Last-Event-ID, ?session=&ack=), long-poll, sending, CORS and limit cases
// must give the same answers byte for byte.
//
// The SSE client is tests/e2e/lib/sse.mjs: a WHATWG event-stream parser plus an EventSource-like
// client that reconnects with Last-Event-ID as a browser does. Wire formats asserted here are
// the ones documented in transports/sse/encoder.h and transports/long_polling/codec.h.
//
// Decisions these tests pin down where the SPEC is silent:
//  - An accepted POST is `200 {"next_seq":N}` (N = the next seq the session expects), also for a
//    retried seq; a refused POST consumes no seq.
//  - Each reconnect's stream starts with a new announce whose `id` is the resume position, so
//    a reconnect without any new event resumes at the same place.
//  - The close event has a position of its own, one past the last message (issue 10). A session
//    whose backend closed, reconnected to with the id of its close event, gets 204 (EventSource
//    stops reconnecting); with an older id, even that of its last message, it gets the missing
//    messages and the close again.
//  - A connected SSE client is never handed a gap: SPEC §3 "Backpressure: … stops reading the
//    backend socket before any buffer limit is hit". Gaps only concern a client that was away.
//  - CORS: a disallowed Origin gets 403 on every request of a session, the preflight included,
//    and no Access-Control-* header; a request without Origin passes (non-browser) and gets no
//    Access-Control-Allow-Origin.
//  - DELETE ends the session: the backend gets close 1000; a held poll is answered at once with
//    the close, an SSE stream gets a close event (code 1000) and ends. For resume_window the
//    closed session then answers like one its backend closed (issue 10): every SSE reconnect
//    gets 204, POSTs get 404 session_closed, polls get the close.
//  - A Last-Event-ID naming a live session of another route is "unknown" there (reset).
//  - A client that goes away is noticed by the proxy on its own (EOF), so resume_window counts
//    from the disconnect, not from the proxy's next write to the dead socket.
//  - The SSE gap case makes the backend send while the client is away with POSTs echoed by
//    /echo (not /stream, whose messages all arrive while the client is still connected), so the
//    lost range is exact: read 1..3, away for 4..103, replay_messages 10 → gap {4..93}.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { WebSocketServer } from 'ws';

import { startBackend, startProxy, proxyConfig, proxySkip, withTimeout, sleep } from './lib/harness.mjs';
import { metricDelta, metricSum, scrape } from './lib/hostile.mjs';
import { SseClient, EventStreamParser, parseEventStream } from './lib/sse.mjs';
import { makePki, opensslSkip } from './lib/tls.mjs';

const CLIENT_TLS = process.env.E2E_CLIENT_TLS === '1';
const skip = proxySkip() || (CLIENT_TLS && opensslSkip());
const T = 15000; // per-test timeout
const SESSION_RE = /^[A-Za-z0-9_-]{22}$/; // 128 random bits, URL-safe base64, no instance prefix
const FAST = { messages_per_second: 100000, burst: 100000 }; // rate that never limits the tests

let backend;
let proxy;
let ctl; // a backend each test drives by hand (startControlBackend)
let pki; // CLIENT_TLS: the test PKI
let clientTls; // CLIENT_TLS: Node TLS client options ({ca}) for every client; else undefined
const web = CLIENT_TLS ? https : http; // the clients' module

/** Listener options for proxyConfig(): one listener, TLS with the test certificate if CLIENT_TLS. */
const listen = () => (CLIENT_TLS ? { listen: [{ address: '127.0.0.1:0', tls: { cert: pki.server.cert, key: pki.server.key } }] } : {});
/** An SseClient for the proxy on `port` (https if CLIENT_TLS). */
const sseClient = (port, path, opts = {}) => new SseClient(port, path, { ...opts, tls: clientTls });

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/** One request to the proxy (`port`: another one) on a fresh connection unless `agent`;
 *  resolves {status, headers, body, raw, ms}. */
function request(method, path, { headers = {}, body, ms = 5000, agent = false, port = proxy.port } = {}) {
  const started = performance.now();
  return withTimeout(new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const h = { ...headers };
    if (payload) h['Content-Length'] = String(payload.length);
    const req = web.request({ host: '127.0.0.1', port, path, method, headers: h, agent, ...clientTls }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, raw, body: raw.toString('utf8'), ms: performance.now() - started });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload ?? undefined);
  }), ms, `${method} ${path}`);
}

const get = (path, opts) => request('GET', path, opts);

function json(res) {
  try {
    return JSON.parse(res.body);
  } catch {
    throw new Error(`not JSON (status ${res.status}): ${res.body.slice(0, 200)}`);
  }
}

/** Asserts a JSON error answer {"error": code, "detail": "…"}. */
function assertError(res, status, code, what) {
  assert.equal(res.status, status, `${what}: status (body ${res.body.slice(0, 200)})`);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, `${what}: content-type`);
  const b = json(res);
  assert.deepEqual(Object.keys(b).sort(), ['detail', 'error'], `${what}: error body keys`);
  assert.equal(b.error, code, `${what}: error code`);
  assert.equal(typeof b.detail, 'string');
  assert.ok(b.detail.length > 0, `${what}: detail`);
  return b;
}

/** Opens a long-poll session: {session, send, poll, hold_ms, last_seq, res}. */
async function lpOpen(path, { headers } = {}) {
  const sep = path.includes('?') ? '&' : '?';
  const res = await get(`${path}${sep}transport=longpoll`, { headers });
  assert.equal(res.status, 200, `open ${path}: ${res.body}`);
  return { ...json(res), res };
}

/** One poll; resolves the response with .json parsed. */
async function lpPoll(pollUrl, ack, { headers, ms = 5000, agent } = {}) {
  const res = await get(`${pollUrl}&ack=${ack}`, { headers, ms, agent });
  assert.equal(res.status, 200, `poll ack=${ack}: ${res.body}`);
  res.json = json(res);
  return res;
}

/** Polls (acking what it got) until `n` messages arrived; resolves {messages, responses}. */
async function lpCollect(pollUrl, n, { ack = 0, ms = 10000, agent } = {}) {
  const deadline = Date.now() + ms;
  const messages = [];
  const responses = [];
  while (messages.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out collecting ${n} long-poll messages (have ${messages.length})`);
    const res = await lpPoll(pollUrl, ack, { ms: left, agent });
    responses.push(res.json);
    for (const m of res.json.messages) {
      messages.push(m);
      ack = m.seq;
    }
    if (res.json.close) break;
  }
  return { messages, responses, ack };
}

/** POSTs one message (text unless `binary`) with seq; resolves the response. */
function post(sendUrl, seq, body, { binary = false, batch = false, headers = {}, contentType, agent } = {}) {
  const h = { ...headers };
  if (contentType) h['Content-Type'] = contentType;
  else if (binary) h['Content-Type'] = 'application/octet-stream';
  else if (batch) h['Content-Type'] = 'application/json';
  else h['Content-Type'] = 'text/plain; charset=utf-8';
  return request('POST', `${sendUrl}&seq=${seq}${batch ? '&batch=1' : ''}`, { headers: h, body, agent });
}

async function postOk(sendUrl, seq, body, opts) {
  const res = await post(sendUrl, seq, body, opts);
  assert.equal(res.status, 200, `POST seq=${seq}: ${res.body}`);
  return res;
}

// ---------------------------------------------------------------------------------------------
// SSE helpers

/** Opens an SSE stream on path; resolves {es, conn, announce, session, send}. */
async function sseOpen(path, { headers, lastEventId } = {}) {
  const es = sseClient(proxy.port, path, { headers, lastEventId });
  const conn = await es.connect();
  assert.equal(conn.status, 200, `SSE ${path}: status ${conn.status}`);
  const [announce] = await es.waitForEvents(1, 3000);
  assert.equal(announce.type, 'session', `first event: ${JSON.stringify(announce)}`);
  const data = JSON.parse(announce.data);
  return { es, conn, announce, data, session: data.session, send: data.send };
}

/** Decodes an SSE message event per its type. */
function decodeEvent(ev) {
  switch (ev.type) {
    case 'message':
      return { binary: false, payload: Buffer.from(ev.data, 'utf8') };
    case 'text-json': {
      const text = JSON.parse(ev.data);
      assert.equal(typeof text, 'string', `text-json data is a JSON string: ${ev.data.slice(0, 80)}`);
      return { binary: false, payload: Buffer.from(text, 'utf8') };
    }
    case 'binary': {
      const bytes = Buffer.from(ev.data, 'base64');
      assert.equal(bytes.toString('base64'), ev.data, 'binary data is canonical padded base64');
      return { binary: true, payload: bytes };
    }
    default:
      throw new Error(`not a message event: ${ev.type}`);
  }
}

const isMessage = (ev) => ev.type === 'message' || ev.type === 'text-json' || ev.type === 'binary';

async function backendStats() {
  return withTimeout(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: backend.port, path: '/stats', agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(JSON.parse(b)));
    }).on('error', reject);
  }), 3000, 'backend /stats');
}

/** Waits until the backend recorded `count` more closes on `path` than `before`; returns them. */
async function backendCloses(path, before, count = 1, ms = 4000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const closes = (await backendStats()).closes.filter((c) => c.path === path);
    if (closes.length >= before + count || Date.now() > deadline) return closes.slice(before);
    await sleep(50);
  }
}
/**
 * A Node `ws` backend that a test drives by hand: every connection is recorded ({ws, url,
 * received: [{data, isBinary}], closed: {code, reason} | null}); the test sends, closes and
 * checks what arrived. It does not check UTF-8 itself (skipUTF8Validation), so it records
 * exactly what the proxy forwards, and it can send text that is not UTF-8.
 */
async function startControlBackend() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, skipUTF8Validation: true });
  await once(wss, 'listening');
  const conns = [];
  const waiters = new Set();
  const wake = () => { for (const w of [...waiters]) w(); };
  wss.on('connection', (ws, req) => {
    const c = { ws, url: req.url, received: [], closed: null };
    ws.on('message', (data, isBinary) => {
      c.received.push({ data: Buffer.from(data), isBinary });
      wake();
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      wake();
    });
    ws.on('error', () => {});
    conns.push(c);
    wake();
  });
  const waitFor = (pred, ms, what) => withTimeout(new Promise((resolve) => {
    const check = () => {
      const v = pred();
      if (v) {
        waiters.delete(check);
        resolve(v);
      }
    };
    waiters.add(check);
    check();
  }), ms, what);
  return {
    port: wss.address().port,
    conns,
    waitFor,
    /** The connection opened after `count` connections existed. */
    nth: (count, ms = 3000) => waitFor(() => conns[count], ms, `backend connection #${count + 1}`),
    close: () => new Promise((resolve) => {
      for (const c of conns) c.ws.terminate();
      wss.close(() => resolve());
    }),
  };
}

/** The proxy's log lines mentioning `needle` (for failure messages). */
const proxyLog = (needle) => proxy.stderr().split('\n').filter((l) => l.includes(needle)).join('\n') || `(no proxy log line mentions ${needle})`;
const closeCount = async (path) => (await backendStats()).closes.filter((c) => c.path === path).length;

// =============================================================================================

describe('event-stream parser (lib/sse.mjs)', () => {
  test('line ends, BOM, fields, leading space, dispatch rules, ids', () => {
    const enc = (s) => Buffer.from(s, 'utf8');
    // CR, LF and CRLF line ends, with a CR ending one chunk and its LF starting the next.
    const chunks = [
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), enc('data: a\r')]), // BOM, CR at a chunk end
      enc('\ndata:b\rdata:  c\n\nevent: e1\r\nid: 7\r'), // …its LF here; no space; two spaces
      enc('\r\n'), // a blank line: dispatches nothing (no data) but sets the last event id
      enc(': comment\nretry: 2500\nretry: 1x\ndata\n\n'), // comment, retry, "data" with no colon
      enc('data: \u00e9'), enc('\u00e9\n\n'),
      enc('id: x\u0000y\ndata: nul-id\n\nevent: only-type\n\nid\ndata: z\n\nevent: custom\ndata: q\n\ndata: r\n\ndata: tail-without-blank-line'),
    ];
    const expected = [
      ['message', 'a\nb\n c', ''],
      ['message', '', '7'], // one empty data line is an event with empty data
      ['message', '\u00e9\u00e9', '7'],
      ['message', 'nul-id', '7'], // an id containing NUL is ignored
      ['message', 'z', ''], // "id" without a value clears the id
      ['custom', 'q', ''],
      ['message', 'r', ''], // the type does not outlive its event; the unterminated one is dropped
    ];
    const bytes = Buffer.concat(chunks);
    const byChunk = parseEventStream(chunks);
    const whole = parseEventStream(bytes);
    const split = parseEventStream([...bytes].map((b) => Buffer.from([b]))); // one byte a chunk
    for (const r of [byChunk, whole, split]) {
      assert.deepEqual(r.events.map((e) => [e.type, e.data, e.lastEventId]), expected);
      assert.deepEqual(r.comments, [' comment']);
      assert.deepEqual(r.retries, [2500]);
    }
    // BOM only stripped at the very start; an incomplete last event is discarded.
    const r2 = parseEventStream(enc('data: \ufeffx\n\n'));
    assert.deepEqual(r2.events.map((e) => e.data), ['\ufeffx']);
    const r3 = parseEventStream(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), enc('data: y\n\n')]));
    assert.deepEqual(r3.events, [], 'a second BOM makes the first line a field named "\\ufeffdata"');
    // A lone CR at the very end, then LF in the next feed: one line end, not two.
    const seen = [];
    const p = new EventStreamParser({ onEvent: (e) => seen.push(e.data) });
    p.feed(enc('data: 1\r'));
    p.feed(enc('\n'));
    p.feed(enc('\r'));
    p.feed(enc('\n'));
    assert.deepEqual(seen, ['1']);
    p.feed(enc('data: 2\n\r\n'));
    assert.deepEqual(seen, ['1', '2']);
  });
});

describe(`sessions${CLIENT_TLS ? ' (client hop over TLS)' : ''}`, { skip }, () => {
  before(async () => {
    if (CLIENT_TLS) {
      pki = makePki();
      clientTls = { ca: pki.ca.pem.cert };
    }
    backend = await startBackend({ label: 'sessions-backend' });
    ctl = await startControlBackend();
    const ctlUrl = (p) => `ws://127.0.0.1:${ctl.port}${p}`;
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: backend.url('/echo'), rate: FAST },
      { path: '/stream', backend: backend.url('/stream'), rate: FAST },
      { path: '/close', backend: backend.url('/close') },
      { path: '/gap', backend: backend.url('/echo'), replay_messages: 10, resume_window: '30s', rate: FAST },
      { path: '/gapstream', backend: backend.url('/stream'), replay_messages: 10, resume_window: '30s' },
      { path: '/hb', backend: backend.url('/echo'), idle_timeout: '400ms' },
      { path: '/small', backend: backend.url('/echo'), max_message: '1k', max_post_body: '4k' },
      { path: '/del', backend: backend.url('/headers') },
      { path: '/sub', backend: backend.url('/subprotocol'), subprotocols: ['chat.v2', 'mqtt'] },
      { path: '/cors', backend: backend.url('/echo'), origins: ['http://app.example'] },
      { path: '/short', backend: backend.url('/chat'), resume_window: '1s' },
      { path: '/toobig', backend: backend.url('/headers'), max_message: 100, outbound_queue: '1k', replay_buffer: '1k' },
      { path: '/ctl', backend: ctlUrl('/ctl'), rate: FAST },
      { path: '/ctlshort', backend: ctlUrl('/ctlshort'), resume_window: '1s', rate: FAST },
      { path: '/rate', backend: backend.url('/echo'), rate: { messages_per_second: 1, burst: 5 } },
    ], listen()), { label: 'sessions-proxy' });
    if (CLIENT_TLS) assert.deepEqual(proxy.tlsPorts, [proxy.port], 'the listener is TLS');
  });
  after(async () => {
    await proxy?.stop();
    await ctl?.close();
    await backend?.stop();
    pki?.cleanup();
  });

  // ------------------------------------------------------------------------------------------
  describe('SSE', () => {
    test('response head and the session announce arrive at once', { timeout: T }, async () => {
      const es = sseClient(proxy.port, '/echo');
      const conn = await es.connect();
      try {
        assert.equal(conn.status, 200);
        assert.equal(conn.headers['content-type'], 'text/event-stream');
        assert.equal(conn.headers['cache-control'], 'no-store');
        assert.equal(conn.headers['x-accel-buffering'], 'no');
        assert.equal(conn.headers['content-length'], undefined, 'no Content-Length');
        const [announce] = await es.waitForEvents(1, 1000);
        assert.ok(announce.at - conn.openedAt < 500, `announce after ${announce.at - conn.openedAt} ms`);
        assert.equal(announce.type, 'session');
        const data = JSON.parse(announce.data);
        assert.match(data.session, SESSION_RE);
        assert.deepEqual(data, { session: data.session, send: `/echo?session=${data.session}`, heartbeat_ms: 30000, last_seq: 0 });
        assert.equal(announce.lastEventId, `${data.session}.0`);
        assert.equal(es.retry, 1000, 'retry field in the announce');
        // Byte-exact announce, as documented in transports/sse/encoder.h.
        assert.equal(es.raw().toString('utf8'),
          `retry: 1000\nevent: session\ndata: ${JSON.stringify(data)}\nid: ${data.session}.0\n\n`);
        // A second stream gets another session.
        const other = await sseOpen('/echo');
        assert.notEqual(other.session, data.session);
        other.es.close();
      } finally {
        es.close();
      }
    });

    test('?protocol= offers subprotocols; the backend\'s choice is in the announce', { timeout: T }, async () => {
      const { es, data } = await sseOpen('/sub?protocol=chat.v2');
      try {
        assert.equal(data.protocol, 'chat.v2');
        const [, first] = await es.waitForEvents(2, 3000);
        assert.equal(first.data, '{"protocol":"chat.v2"}');
      } finally {
        es.close();
      }
    });

    test('/stream?n=1000: 1000 message events in order with ids <session>.1…1000', { timeout: T }, async () => {
      const { es, session } = await sseOpen('/stream?n=1000');
      try {
        await es.waitForEvents(1001, 10000);
        const msgs = es.events.slice(1);
        assert.equal(msgs.length, 1000);
        msgs.forEach((ev, i) => {
          assert.equal(ev.type, 'message');
          assert.equal(ev.data, String(i + 1));
          assert.equal(ev.lastEventId, `${session}.${i + 1}`);
        });
      } finally {
        es.close();
      }
    });

    test('texts and binaries are echoed losslessly, one event per message', { timeout: T }, async () => {
      const { es, session, send } = await sseOpen('/echo');
      try {
        const lines = [];
        for (let i = 0, len = 0; len < 1024 * 1024; i++) {
          lines.push(`line ${i} ${'x'.repeat(i % 50)}`);
          len += lines.at(-1).length + 1;
        }
        const big = lines.join('\n').slice(0, 1024 * 1024); // exactly 1 MiB (ASCII), many LFs
        assert.equal(Buffer.byteLength(big), 1024 * 1024);
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const cases = [
          { text: '', type: 'message' },
          { text: 'a', type: 'message' },
          { text: 'a\n', type: 'message' },
          { text: '\n\n', type: 'message' },
          { text: 'a\r\nb', type: 'text-json' },
          { text: '\r', type: 'text-json' },
          { text: 'x\u0000y', type: 'message' },
          { text: '\u2028\u2029', type: 'message' },
          { text: '\ufeffbom', type: 'message' },
          { text: 'data: injected\n\nevent: evil\nid: 666', type: 'message' },
          { text: ' leading space', type: 'message' },
          { text: 'é😀 ünïcödé', type: 'message' },
          { text: big, type: 'message' },
          { bytes: all, type: 'binary' },
          { bytes: Buffer.alloc(0), type: 'binary' },
          { bytes: Buffer.from('\r\n\n\0'), type: 'binary' },
        ];
        let seq = 0;
        for (const c of cases) {
          seq++;
          const res = c.bytes ? await post(send, seq, c.bytes, { binary: true }) : await post(send, seq, c.text);
          assert.equal(res.status, 200, `POST #${seq}: ${res.body}`);
          assert.deepEqual(json(res), { next_seq: seq + 1 });
        }
        await es.waitForEvents(1 + cases.length, 10000);
        await sleep(100); // nothing extra may follow
        const events = es.events.slice(1);
        assert.equal(events.length, cases.length, `one event per message: ${JSON.stringify(events.map((e) => e.type))}`);
        events.forEach((ev, i) => {
          const c = cases[i];
          const what = `message ${i + 1} (${JSON.stringify((c.text ?? '<binary>').slice(0, 40))})`;
          assert.equal(ev.type, c.type, `${what}: event type`);
          assert.equal(ev.lastEventId, `${session}.${i + 1}`, `${what}: id`);
          const d = decodeEvent(ev);
          assert.equal(d.binary, Boolean(c.bytes), `${what}: binary flag`);
          assert.ok(d.payload.equals(c.bytes ?? Buffer.from(c.text, 'utf8')), `${what}: payload`);
        });
        assert.ok(!es.events.some((e) => e.type === 'evil' || e.lastEventId === '666'), 'no injected event or id');
        // Byte level: the raw text of the injection case has every line prefixed by "data: ".
        const raw = es.raw().toString('utf8');
        assert.ok(raw.includes(`\n\ndata: data: injected\ndata: \ndata: event: evil\ndata: id: 666\nid: ${session}.10\n\n`));
        assert.ok(!raw.includes('\r'), 'the proxy never writes CR');
      } finally {
        es.close();
      }
    });

    test('cut mid-stream, reconnect with Last-Event-ID: no loss, no duplicate', { timeout: T }, async () => {
      const before = (await backendStats()).byPath['/stream'] ?? 0;
      const es = sseClient(proxy.port, '/stream?n=2000');
      // Connection 0: cut right after the 300th message event (rest of that chunk unparsed).
      es.cutWhen = (ev, conn) => conn.index === 0 && conn.events.length === 301;
      await es.connect();
      await es.waitForEnd(5000);
      const session = JSON.parse(es.connections[0].events[0].data).session;
      assert.equal(es.lastEventId, `${session}.300`);
      // Connection 1: cut at a byte offset, most likely inside an event.
      const c1 = await es.reconnect({ cutAfterBytes: 4321 });
      assert.equal(c1.requestHeaders['Last-Event-ID'], `${session}.300`);
      assert.equal(c1.status, 200);
      await es.waitForEnd(5000);
      assert.ok(!es.raw(1).toString('utf8').endsWith('\n\n'), 'connection 1 was cut inside an event');
      const afterCut = es.lastEventId;
      // Connection 2: to the end.
      const c2 = await es.reconnect();
      assert.equal(c2.requestHeaders['Last-Event-ID'], afterCut);
      assert.equal(c2.status, 200);
      await es.waitFor(() => es.lastEventId === `${session}.2000`, 10000, 'message 2000');
      await sleep(50);
      es.close();
      for (const c of es.connections) {
        const [announce] = c.events;
        assert.equal(announce.type, 'session', `connection ${c.index} starts with the announce`);
        const a = JSON.parse(announce.data);
        assert.equal(a.session, session, 'same session on every connection');
        const resumeAt = c.index === 0 ? 0 : Number(c.requestHeaders['Last-Event-ID'].split('.')[1]);
        assert.equal(a.last_seq, resumeAt, `connection ${c.index}: announce last_seq`);
        assert.equal(announce.lastEventId, `${session}.${resumeAt}`);
        assert.ok(c.events.slice(1).every(isMessage), `connection ${c.index}: only messages (no gap/reset)`);
      }
      const msgs = es.events.filter(isMessage);
      assert.equal(msgs.length, 2000, 'no loss, no duplicate');
      msgs.forEach((ev, i) => {
        assert.equal(ev.lastEventId, `${session}.${i + 1}`);
        assert.equal(ev.data, String(i + 1));
      });
      const after = (await backendStats()).byPath['/stream'];
      assert.equal(after - before, 1, 'resuming opened no new backend connection');
    });

    test('a new EventSource resumes by URL: ?session=S&ack=N, and Last-Event-ID wins over it', { timeout: T }, async () => {
      const before = (await backendStats()).byPath['/stream'] ?? 0;
      const first = sseClient(proxy.port, '/stream?n=50');
      await first.connect();
      await first.waitFor(() => first.events.filter(isMessage).length === 50, 5000, '50 messages');
      const session = JSON.parse(first.events[0].data).session;
      first.close();
      // A new object (page reload): only the URL can carry the position.
      const byUrl = sseClient(proxy.port, `/stream?session=${session}&ack=20`);
      await byUrl.connect();
      await byUrl.waitFor(() => byUrl.events.filter(isMessage).length === 30, 5000, '30 messages');
      await sleep(50);
      byUrl.close();
      const [announce, ...rest] = byUrl.events;
      assert.equal(announce.type, 'session');
      assert.deepEqual({ session: JSON.parse(announce.data).session, last_seq: JSON.parse(announce.data).last_seq },
        { session, last_seq: 20 });
      assert.deepEqual(rest.map((e) => e.data), Array.from({ length: 30 }, (_, i) => String(i + 21)));
      // EventSource's own reconnect of that object sends Last-Event-ID, which is newer: it wins.
      const again = sseClient(proxy.port, `/stream?session=${session}&ack=20`, { lastEventId: `${session}.45` });
      await again.connect();
      await again.waitFor(() => again.events.filter(isMessage).length === 5, 5000, '5 messages');
      await sleep(50);
      again.close();
      assert.deepEqual(again.events.filter(isMessage).map((e) => e.data), ['46', '47', '48', '49', '50']);
      // A malformed ack: 400.
      const bad = await get(`/stream?session=${session}&ack=x`, { headers: { Accept: 'text/event-stream' } });
      assert.equal(bad.status, 400);
      assert.equal((await backendStats()).byPath['/stream'] - before, 1, 'one backend connection throughout');
    });

    test('Last-Event-ID of an unknown or forged session: reset, then a new session', { timeout: T }, async () => {
      const live = await sseOpen('/hb'); // a live session of another route is unknown on /echo
      live.es.close();
      for (const [forged, reason] of [['AAAAAAAAAAAAAAAAAAAAAA.5', 'unknown'], ['not a valid id', 'invalid'],
        [`${live.session}.0`, 'other route']]) {
        const es = sseClient(proxy.port, '/echo', { lastEventId: forged });
        try {
          const conn = await es.connect();
          assert.equal(conn.requestHeaders['Last-Event-ID'], forged);
          assert.equal(conn.status, 200);
          const [reset, announce] = await es.waitForEvents(2, 3000);
          assert.equal(reset.type, 'reset', `${reason}: first event`);
          const r = JSON.parse(reset.data);
          assert.deepEqual(Object.keys(r), ['session', 'reason']);
          assert.match(r.session, SESSION_RE);
          assert.notEqual(r.session, 'AAAAAAAAAAAAAAAAAAAAAA');
          assert.notEqual(r.session, live.session);
          assert.equal(typeof r.reason, 'string');
          assert.equal(announce.type, 'session');
          const a = JSON.parse(announce.data);
          assert.deepEqual(a, { session: r.session, send: `/echo?session=${r.session}`, heartbeat_ms: 30000, last_seq: 0 });
          assert.equal(announce.lastEventId, `${r.session}.0`);
          // The new session works.
          await postOk(a.send, 1, `hello ${reason}`);
          const [, , m] = await es.waitForEvents(3, 3000);
          assert.deepEqual([m.type, m.data, m.lastEventId], ['message', `hello ${reason}`, `${r.session}.1`]);
        } finally {
          es.close();
        }
      }
    });

    test('a backend message over max_message closes the session with 1009 (SPEC §5)', { timeout: T }, async () => {
      // /toobig: the backend's first message (its /headers JSON) is larger than 100 bytes.
      const { es } = await sseOpen('/toobig');
      try {
        const close = await es.waitForEvent((e) => e.type === 'close', 5000, 'the close event');
        assert.equal(JSON.parse(close.data).code, 1009);
        assert.equal(es.events.filter((e) => e.type === 'message').length, 0, 'nothing of it delivered');
      } finally {
        es.close();
      }
    });

    test('backend close: close event {code, reason}; a reconnect with the last id gets 204', { timeout: T }, async () => {
      const { es, session } = await sseOpen('/close?code=4001&reason=bye&after=open');
      try {
        const [, close] = await es.waitForEvents(2, 3000);
        assert.equal(close.type, 'close');
        assert.deepEqual(JSON.parse(close.data), { code: 4001, reason: 'bye' });
        await es.waitForEnd(3000);
        assert.equal(es.events.length, 2, 'the close is the last event');
        // The close has its own position, one past the last message (none here).
        assert.equal(close.lastEventId, `${session}.1`);
        assert.equal(es.lastEventId, `${session}.1`);
        const again = await es.reconnect();
        assert.equal(again.status, 204, 'EventSource must stop reconnecting');
        await es.waitForEnd(3000);
        assert.equal(again.events.length, 0);
      } finally {
        es.close();
      }
    });

    test('backend close after a message: the message, then close; resume from before it', { timeout: T }, async () => {
      const { es, session, send } = await sseOpen('/close?code=4001&reason=bye&after=message');
      try {
        await postOk(send, 1, 'last words');
        const [, m, close] = await es.waitForEvents(3, 3000);
        assert.deepEqual([m.type, m.data, m.lastEventId], ['message', 'last words', `${session}.1`]);
        assert.deepEqual([close.type, JSON.parse(close.data)], ['close', { code: 4001, reason: 'bye' }]);
        assert.equal(close.lastEventId, `${session}.2`, 'the close is at the position after the message');
        await es.waitForEnd(3000);
        // A client that missed the message gets it, then the close again.
        const late = sseClient(proxy.port, '/close?code=4001&reason=bye&after=message', { lastEventId: `${session}.0` });
        const lc = await late.connect();
        assert.equal(lc.status, 200);
        await late.waitForEnd(3000);
        assert.deepEqual(lc.events.map((e) => [e.type, e.type === 'session' ? JSON.parse(e.data).last_seq : e.data]),
          [['session', 0], ['message', 'last words'], ['close', '{"code":4001,"reason":"bye"}']]);
        // The client that has everything, the close included: 204.
        const done = await es.reconnect();
        assert.equal(es.connections[1].requestHeaders['Last-Event-ID'], `${session}.2`);
        assert.equal(done.status, 204);
      } finally {
        es.close();
      }
    });

    test('gap: messages written to a client that never read them, then evicted, are named', { timeout: T }, async () => {
      // Route /gap: replay_messages 10. The session keeps undelivered messages (it pauses its
      // backend first, SPEC §3), but a message written to the socket counts as delivered and
      // may be evicted: the client reads 3, stops reading, 100 more are written to its socket
      // and never read, the connection is cut. The buffer keeps 94..103, so a reconnect from 3
      // must see gap {4..93}, then 94..103.
      const { es, session, send } = await sseOpen('/gap');
      try {
        await postOk(send, 1, JSON.stringify([{ text: 'm1' }, { text: 'm2' }, { text: 'm3' }]), { batch: true });
        await es.waitForEvents(4, 3000);
        es.current.res.pause(); // the kernel still takes the bytes; nobody parses them
        const batch = Array.from({ length: 100 }, (_, i) => ({ text: `m${i + 4}` }));
        const res = await postOk(send, 4, JSON.stringify(batch), { batch: true });
        assert.deepEqual(json(res), { next_seq: 104 });
        await sleep(500); // the 100 echoes are written to the unread socket
        es.cut();
        const conn = await es.reconnect();
        assert.equal(conn.requestHeaders['Last-Event-ID'], `${session}.3`);
        assert.equal(conn.status, 200);
        await es.waitFor(() => es.lastEventId === `${session}.103`, 5000, 'message 103');
        await sleep(50);
        const [announce, gap, ...rest] = conn.events;
        assert.equal(announce.type, 'session');
        assert.equal(JSON.parse(announce.data).last_seq, 3);
        assert.equal(gap.type, 'gap', `second event: ${JSON.stringify(gap)}`);
        assert.deepEqual(JSON.parse(gap.data), { from: 4, to: 93 });
        assert.equal(gap.lastEventId, `${session}.93`);
        assert.deepEqual(rest.map((e) => [e.type, e.data, e.lastEventId]),
          Array.from({ length: 10 }, (_, i) => ['message', `m${94 + i}`, `${session}.${94 + i}`]));
      } finally {
        es.close();
      }
    });

    test('a client away longer than the buffer holds loses nothing: the backend is paused instead', { timeout: T }, async () => {
      // SPEC §3: backpressure before any buffer limit. Read 3, cut, 100 more are sent while no
      // client is attached: the session stops reading its backend after replay_messages/2,
      // so the reconnect from 3 gets every message, no gap.
      const { es, session, send } = await sseOpen('/gap');
      try {
        await postOk(send, 1, JSON.stringify([{ text: 'm1' }, { text: 'm2' }, { text: 'm3' }]), { batch: true });
        await es.waitForEvents(4, 3000);
        es.cut();
        await sleep(150);
        const batch = Array.from({ length: 100 }, (_, i) => ({ text: `m${i + 4}` }));
        assert.deepEqual(json(await postOk(send, 4, JSON.stringify(batch), { batch: true })), { next_seq: 104 });
        await sleep(300);
        const conn = await es.reconnect();
        assert.equal(conn.requestHeaders['Last-Event-ID'], `${session}.3`);
        await es.waitFor(() => es.lastEventId === `${session}.103`, 5000, 'message 103');
        await sleep(50);
        const [announce, ...rest] = conn.events;
        assert.equal(announce.type, 'session');
        assert.deepEqual(rest.map((e) => [e.type, e.data]),
          Array.from({ length: 100 }, (_, i) => ['message', `m${4 + i}`]));
      } finally {
        es.close();
      }
    });

    test('a connected client loses nothing even with a tiny replay buffer (/stream?n=100, replay_messages 10)', { timeout: T }, async () => {
      const { es, session } = await sseOpen('/gapstream?n=100');
      try {
        await es.waitFor(() => es.lastEventId === `${session}.100`, 5000, 'message 100');
        await sleep(50);
        assert.deepEqual(es.events.slice(1).map((e) => [e.type, e.data]),
          Array.from({ length: 100 }, (_, i) => ['message', String(i + 1)]),
          'SPEC §3: backpressure before any buffer limit; a connected client is not behind');
      } finally {
        es.close();
      }
    });

    test('a client that went away: after resume_window (1s) the backend gets 1001 and a reconnect a reset', { timeout: T }, async () => {
      // New stream, cut at once, nothing written afterwards: the proxy must notice the
      // disconnect by itself (EOF on the socket), not at its next write.
      const before = await closeCount('/chat');
      const { es, session } = await sseOpen('/short');
      try {
        es.cut();
        const closes = await backendCloses('/chat', before, 1, 4000);
        assert.deepEqual(closes.map((c) => c.code), [1001], `backend closed with 1001 within resume_window + 3 s\n${proxyLog(session)}`);
        const conn = await es.reconnect();
        assert.equal(conn.requestHeaders['Last-Event-ID'], `${session}.0`);
        const [reset, announce] = await es.waitForEvents(2, 3000);
        assert.equal(reset.type, 'reset');
        assert.equal(announce.type, 'session');
        assert.notEqual(JSON.parse(announce.data).session, session);
        // End the new session now so its expiry cannot land in the next test's count, and wait
        // for the backend's close 1000: it may be recorded after the 204 arrived.
        assert.equal((await request('DELETE', JSON.parse(announce.data).send)).status, 204);
        assert.deepEqual((await backendCloses('/chat', before + 1, 1, 4000)).map((c) => c.code), [1000], 'the DELETE reached the backend');
      } finally {
        es.close();
      }
    });

    test('a resumed stream that went away: after resume_window (1s) the backend gets 1001', { timeout: T }, async () => {
      // The same with a stream that was resumed with Last-Event-ID, then cut.
      const before2 = await closeCount('/chat');
      const s2 = await sseOpen('/short');
      try {
        s2.es.cut();
        await s2.es.reconnect();
        await s2.es.waitForEvents(1, 3000);
        s2.es.cut();
        const closes = await backendCloses('/chat', before2, 1, 4000);
        assert.deepEqual(closes.map((c) => c.code), [1001], `resumed stream: backend closed with 1001\n${proxyLog(s2.session)}`);
      } finally {
        s2.es.close();
      }
    });

    test('heartbeat comments after ~200 ms of silence (idle_timeout 400ms), none while busy', { timeout: T }, async () => {
      const { es, data, send, announce } = await sseOpen('/hb');
      try {
        assert.equal(data.heartbeat_ms, 200);
        await sleep(1300);
        const comments = es.comments.slice();
        assert.ok(comments.length >= 4, `heartbeats in 1.3 s of silence: ${comments.length}`);
        let last = announce.at;
        for (const c of comments) {
          const silence = c.at - last;
          assert.ok(silence >= 150 && silence < 400, `silence before a heartbeat: ${silence.toFixed(0)} ms`);
          assert.equal(c.text, '');
          last = c.at;
        }
        // Exact bytes: the announce, then ":\n\n" heartbeats only.
        const raw = es.raw().toString('utf8');
        const afterAnnounce = raw.slice(raw.indexOf('\n\n') + 2);
        assert.equal(afterAnnounce, ':\n\n'.repeat(afterAnnounce.length / 3));
        // Busy: an echo every ~80 ms keeps the stream from being silent for 200 ms.
        const seen = es.comments.length;
        for (let seq = 1; seq <= 12; seq++) {
          await postOk(send, seq, `busy ${seq}`);
          await sleep(80);
        }
        await es.waitForEvents(13, 3000);
        const firstEcho = es.events[1].at;
        const lastEcho = es.events[12].at;
        const during = es.comments.slice(seen).filter((c) => c.at > firstEcho && c.at < lastEcho);
        assert.equal(during.length, 0, 'no heartbeat while messages flow');
      } finally {
        es.close();
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('long-poll', () => {
    test('open: 200 JSON {session, send, poll, hold_ms, last_seq:0}, no-store', { timeout: T }, async () => {
      const res = await get('/echo?transport=longpoll');
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'], /^application\/json/);
      assert.equal(res.headers['cache-control'], 'no-store');
      const b = json(res);
      assert.match(b.session, SESSION_RE);
      const url = `/echo?session=${b.session}`;
      assert.equal(res.body, `{"session":"${b.session}","send":"${url}","poll":"${url}","hold_ms":30000,"last_seq":0}`);
      const hb = await lpOpen('/hb');
      assert.equal(hb.hold_ms, 200);
    });

    test('?protocol= offers subprotocols; the backend\'s choice is in the open response', { timeout: T }, async () => {
      const s = await lpOpen('/sub?protocol=nope&protocol=mqtt');
      assert.equal(s.protocol, 'mqtt');
      const { messages } = await lpCollect(s.poll, 1);
      assert.deepEqual(messages, [{ seq: 1, text: '{"protocol":"mqtt"}' }]);
      const none = await lpOpen('/sub');
      assert.equal(none.protocol, undefined, 'no subprotocol: no protocol field');
    });

    test('a poll returns the messages after ack at once; ack drops what it covers', { timeout: T }, async () => {
      const s = await lpOpen('/echo');
      await postOk(s.send, 1, JSON.stringify([{ text: 'a' }, { text: 'b' }, { text: 'c' }]), { batch: true });
      const { messages } = await lpCollect(s.poll, 3);
      assert.deepEqual(messages, [{ seq: 1, text: 'a' }, { seq: 2, text: 'b' }, { seq: 3, text: 'c' }]);
      await postOk(s.send, 4, JSON.stringify([{ text: 'd' }, { text: 'e' }]), { batch: true });
      await sleep(200); // both echoes are in the buffer
      const r1 = await lpPoll(s.poll, 3);
      assert.ok(r1.ms < 150, `answered in ${r1.ms.toFixed(0)} ms (hold is 30 s)`);
      assert.equal(r1.headers['cache-control'], 'no-store');
      assert.match(r1.headers['content-type'], /^application\/json/);
      assert.equal(r1.body, '{"messages":[{"seq":4,"text":"d"},{"seq":5,"text":"e"}]}');
      // Not acknowledged yet: asking again from 4 gets 5 again.
      const r2 = await lpPoll(s.poll, 4);
      assert.equal(r2.body, '{"messages":[{"seq":5,"text":"e"}]}');
    });

    test('a poll with nothing pending gets {"messages":[]} after hold_ms (200 ms)', { timeout: T }, async () => {
      const s = await lpOpen('/hb');
      const res = await lpPoll(s.poll, 0);
      assert.equal(res.body, '{"messages":[]}');
      assert.ok(res.ms >= 180 && res.ms < 400, `held ${res.ms.toFixed(0)} ms`);
    });

    test('a newer poll answers the older one at once with no messages', { timeout: T }, async () => {
      const s = await lpOpen('/echo');
      const older = lpPoll(s.poll, 0, { ms: 3000 });
      await sleep(150);
      const newerStarted = performance.now();
      const newer = lpPoll(s.poll, 0, { ms: 5000 });
      const o = await older;
      assert.equal(o.body, '{"messages":[]}');
      assert.ok(performance.now() - newerStarted < 500, 'older answered at once');
      await sleep(100);
      await postOk(s.send, 1, 'for the newer poll');
      const n = await newer;
      assert.equal(n.body, '{"messages":[{"seq":1,"text":"for the newer poll"}]}');
    });

    test('a stale ack gets a gap marker with the exact range, then the rest', { timeout: T }, async () => {
      // /gapstream: backend /stream, replay_messages 10. The client reads all 100 with acks
      // (the session pauses its backend while more than 5 are unacknowledged), acks 100, then
      // polls again with a stale ack of 40: messages 41..100 are gone (acknowledged), so the
      // answer names exactly that range and has no messages.
      const s = await lpOpen('/gapstream?n=100');
      let ack = 0;
      const got = [];
      for (let i = 0; i < 200 && got.length < 100; i++) {
        const r = await lpPoll(s.poll, ack);
        for (const m of r.json.messages) got.push(m.seq);
        if (r.json.messages.length) ack = r.json.messages.at(-1).seq;
      }
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i + 1), 'every message once, in order');
      const acked = lpPoll(s.poll, 100); // acknowledges 100; nothing new, so it is held
      await sleep(100);
      const res = await lpPoll(s.poll, 40); // a gap is news: answered at once
      assert.equal(res.body, '{"gap":{"from":41,"to":100},"messages":[]}');
      assert.ok(res.ms < 150, `answered in ${res.ms.toFixed(0)} ms`);
      assert.equal((await acked).body, '{"messages":[]}', 'the newer poll answered the held one');
    });

    test('an unknown session gets a reset marker naming a new, working session', { timeout: T }, async () => {
      const res = await lpPoll('/echo?session=AAAAAAAAAAAAAAAAAAAAAA', 7);
      const b = res.json;
      assert.deepEqual(Object.keys(b), ['reset', 'messages']);
      assert.match(b.reset.session, SESSION_RE);
      assert.equal(typeof b.reset.reason, 'string');
      assert.deepEqual(b.messages, []);
      assert.equal(res.body, `{"reset":{"session":"${b.reset.session}","reason":${JSON.stringify(b.reset.reason)}},"messages":[]}`);
      const url = `/echo?session=${b.reset.session}`;
      await postOk(url, 1, 'after reset');
      const { messages } = await lpCollect(url, 1);
      assert.deepEqual(messages, [{ seq: 1, text: 'after reset' }]);
    });

    test('backend close: "close" after all messages', { timeout: T }, async () => {
      const s0 = await lpOpen('/close?code=4001&reason=bye&after=open');
      const r0 = await lpPoll(s0.poll, 0);
      assert.equal(r0.body, '{"messages":[],"close":{"code":4001,"reason":"bye"}}');

      const s = await lpOpen('/close?code=4001&reason=bye&after=message');
      await postOk(s.send, 1, 'm1');
      const { messages, responses } = await lpCollect(s.poll, 2);
      assert.deepEqual(messages, [{ seq: 1, text: 'm1' }]);
      const last = responses.at(-1);
      assert.deepEqual(last.close, { code: 4001, reason: 'bye' });
      assert.ok(responses.slice(0, -1).every((r) => !r.close), 'close only in the last answer');
    });

    test('no poll for resume_window (1s): the backend gets 1001, a poll gets a reset', { timeout: T }, async () => {
      const before = await closeCount('/chat');
      const s = await lpOpen('/short');
      const closes = await backendCloses('/chat', before, 1, 4000);
      assert.deepEqual(closes.map((c) => c.code), [1001]);
      const res = await lpPoll(s.poll, 0);
      assert.ok(res.json.reset, `reset marker: ${res.body}`);
      assert.notEqual(res.json.reset.session, s.session);
    });

    test('1000 messages each way, in order, with acks', { timeout: T }, async () => {
      // backend → client
      const st = await lpOpen('/stream?n=1000');
      const down = await lpCollect(st.poll, 1000);
      assert.deepEqual(down.messages, Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, text: String(i + 1) })));
      // client → backend → client: 500 single POSTs, then 5 batches of 100, polled concurrently,
      // over keep-alive connections as a browser does.
      const agent = new web.Agent({ keepAlive: true, maxSockets: 2, ...clientTls });
      try {
        const s = await lpOpen('/echo');
        const collecting = lpCollect(s.poll, 1000, { ms: 20000, agent });
        collecting.catch(() => {});
        for (let seq = 1; seq <= 500; seq++) {
          const res = await post(s.send, seq, `c${seq}`, { agent });
          assert.equal(res.status, 200, `POST ${seq}: ${res.body}`);
        }
        for (let first = 501; first <= 1000; first += 100) {
          const batch = Array.from({ length: 100 }, (_, i) => ({ text: `c${first + i}` }));
          const res = await postOk(s.send, first, JSON.stringify(batch), { batch: true, agent });
          assert.deepEqual(json(res), { next_seq: first + 100 });
        }
        const up = await collecting;
        assert.deepEqual(up.messages, Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, text: `c${i + 1}` })));
      } finally {
        agent.destroy();
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('sending', () => {
    test('routing: other requests get 400 naming the transports; reserved parameters stay here', { timeout: T }, async () => {
      for (const [method, path] of [['GET', '/echo'], ['PUT', '/echo?session=x'], ['POST', '/echo'], ['GET', '/echo?transport=sse']]) {
        const res = await request(method, path, { body: method === 'GET' ? undefined : 'x' });
        const b = assertError(res, 400, 'bad_transport', `${method} ${path}`);
        assert.match(b.detail, /WebSocket/);
        assert.match(b.detail, /Server-Sent Events|event-stream/);
        assert.match(b.detail, /long-?poll/i);
      }
      assertError(await get('/nowhere?transport=longpoll'), 404, 'not_found', 'unknown path');
      // /del → backend /headers, whose first message describes the upgrade request it got.
      const s = await lpOpen('/del?x=1&ack=3&y=%20&protocol=&seq=9&batch=1&z=2');
      const first = await lpPoll(s.poll, 0);
      assert.equal(JSON.parse(first.json.messages[0].text).url, '/headers?x=1&y=%20&z=2');
      const sse = await sseOpen('/del?a=b&transport=longpoll');
      try {
        const [, m] = await sse.es.waitForEvents(2, 3000);
        assert.equal(JSON.parse(m.data).url, '/headers?a=b');
      } finally {
        sse.es.close();
      }
    });

    test('a retried seq is acknowledged (200) and forwarded exactly once', { timeout: T }, async () => {
      const s = await lpOpen('/hb'); // hold 200 ms: an empty poll proves nothing more came
      const a = await post(s.send, 1, 'once');
      const b = await post(s.send, 1, 'once');
      assert.deepEqual([a.status, json(a)], [200, { next_seq: 2 }]);
      assert.deepEqual([b.status, json(b)], [200, { next_seq: 2 }]);
      await postOk(s.send, 2, 'then');
      // A retried batch overlapping what was sent: only the new tail goes out.
      const c = await postOk(s.send, 2, JSON.stringify([{ text: 'then' }, { text: 'tail' }]), { batch: true });
      assert.deepEqual(json(c), { next_seq: 4 });
      const { messages, ack } = await lpCollect(s.poll, 3);
      assert.deepEqual(messages, [{ seq: 1, text: 'once' }, { seq: 2, text: 'then' }, { seq: 3, text: 'tail' }]);
      await sleep(100);
      const more = await lpPoll(s.poll, ack);
      assert.equal(more.body, '{"messages":[]}', 'the backend echoed nothing else');
    });

    test('a seq beyond the next expected one gets 409 naming it', { timeout: T }, async () => {
      const s = await lpOpen('/echo');
      await postOk(s.send, 1, 'one');
      await postOk(s.send, 2, 'two');
      const res = await post(s.send, 5, 'five');
      const b = assertError(res, 409, 'seq_gap', 'seq gap');
      assert.match(b.detail, /expected seq 3\b/);
      assert.equal(res.headers['x-expected-seq'], '3');
      await postOk(s.send, 3, 'three'); // the gap consumed nothing
      const { messages } = await lpCollect(s.poll, 3);
      assert.deepEqual(messages.map((m) => m.text), ['one', 'two', 'three']);
    });

    test('seq missing, 0 or not a decimal number: 400', { timeout: T }, async () => {
      const s = await lpOpen('/echo');
      const headers = { 'Content-Type': 'text/plain' };
      for (const q of ['', '&seq=', '&seq=0', '&seq=abc', '&seq=-1', '&seq=1.5', '&seq=+1', '&seq=1x', '&seq=99999999999999999999999']) {
        const res = await request('POST', `${s.send}${q}`, { headers, body: 'x' });
        assertError(res, 400, 'bad_request', `POST${q || ' without seq'}`);
      }
      await postOk(s.send, 1, 'ok');
      const { messages } = await lpCollect(s.poll, 1);
      assert.deepEqual(messages, [{ seq: 1, text: 'ok' }]);
    });

    test('invalid UTF-8 text: 400; binary goes through application/octet-stream', { timeout: T }, async () => {
      const s = await lpOpen('/echo');
      for (const bad of [[0x61, 0xff, 0x62], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]]) {
        const res = await post(s.send, 1, Buffer.from(bad));
        assertError(res, 400, 'invalid_utf8', `text body ${Buffer.from(bad).toString('hex')}`);
      }
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await postOk(s.send, 1, all, { binary: true });
      await postOk(s.send, 2, Buffer.from([0xff, 0xfe]), { contentType: 'application/octet-stream; x=1' });
      const { messages } = await lpCollect(s.poll, 2);
      assert.deepEqual(messages, [{ seq: 1, binary: all.toString('base64') }, { seq: 2, binary: '//4=' }]);
    });

    test('batch=1 with mixed text and binary', { timeout: T }, async () => {
      const s = await lpOpen('/echo');
      const body = JSON.stringify([{ text: 't1' }, { binary: 'AAEC' }, { text: '' }, { binary: '' }, { text: 'é\r\n"' }]);
      const res = await postOk(s.send, 1, body, { batch: true });
      assert.deepEqual(json(res), { next_seq: 6 });
      const bad = await post(s.send, 6, '[{"text":1}]', { batch: true });
      assertError(bad, 400, 'bad_request', 'batch with a non-string text');
      const notJson = await post(s.send, 6, '[{"text":"x"}', { batch: true });
      assertError(notJson, 400, 'bad_request', 'truncated batch');
      const { messages } = await lpCollect(s.poll, 5);
      assert.deepEqual(messages, [
        { seq: 1, text: 't1' }, { seq: 2, binary: 'AAEC' }, { seq: 3, text: '' }, { seq: 4, binary: '' }, { seq: 5, text: 'é\r\n"' },
      ]);
    });

    test('a message over max_message (1k): 413, nothing consumed; max_post_body (4k): 413', { timeout: T }, async () => {
      const s = await lpOpen('/small');
      assertError(await post(s.send, 1, 'x'.repeat(1025)), 413, 'payload_too_large', 'text over max_message');
      assertError(await post(s.send, 1, Buffer.alloc(1025), { binary: true }), 413, 'payload_too_large', 'binary over max_message');
      assertError(await post(s.send, 1, JSON.stringify([{ text: 'ok' }, { text: 'y'.repeat(1025) }]), { batch: true }),
        413, 'payload_too_large', 'batch item over max_message');
      assertError(await post(s.send, 1, JSON.stringify(Array.from({ length: 5 }, () => ({ text: 'z'.repeat(1000) }))), { batch: true }),
        413, 'payload_too_large', 'batch over max_post_body');
      await postOk(s.send, 1, 'x'.repeat(1024));
      const { messages } = await lpCollect(s.poll, 1);
      assert.deepEqual(messages, [{ seq: 1, text: 'x'.repeat(1024) }]);
    });

    test('unknown session: POST and DELETE get 404', { timeout: T }, async () => {
      assertError(await post('/echo?session=AAAAAAAAAAAAAAAAAAAAAA', 1, 'x'), 404, 'unknown_session', 'POST');
      assertError(await request('DELETE', '/echo?session=AAAAAAAAAAAAAAAAAAAAAA'), 404, 'unknown_session', 'DELETE');
    });

    test('DELETE: 204, the backend sees close 1000, the session is gone', { timeout: T }, async () => {
      const closesOf = async () => (await backendStats()).closes.filter((c) => c.path === '/headers');
      const before = (await closesOf()).length;
      const s = await lpOpen('/del');
      const del = await request('DELETE', s.send);
      assert.equal(del.status, 204);
      assert.equal(del.body, '');
      const deadline = Date.now() + 3000;
      let closes = await closesOf();
      while (closes.length === before && Date.now() < deadline) {
        await sleep(50);
        closes = await closesOf();
      }
      assert.equal(closes.length, before + 1, 'the backend saw one close');
      assert.equal(closes.at(-1).code, 1000);
      assertError(await post(s.send, 1, 'late'), 404, 'session_closed', 'POST after DELETE');
      // A held poll of a deleted session is answered at once with the close.
      const s2 = await lpOpen('/del');
      const first = await lpPoll(s2.poll, 0); // the /headers backend's JSON message
      assert.equal(first.json.messages.length, 1);
      const held = lpPoll(s2.poll, 1, { ms: 3000 });
      await sleep(100);
      assert.equal((await request('DELETE', s2.send)).status, 204);
      const h = await held;
      assert.equal(h.body, '{"messages":[],"close":{"code":1000,"reason":"client closed the session"}}');
      // An SSE stream of a deleted session gets the close event, then ends.
      const sse = await sseOpen('/del');
      try {
        await sse.es.waitForEvents(2, 3000);
        assert.equal((await request('DELETE', sse.send)).status, 204);
        await sse.es.waitForEnd(3000);
        const last = sse.es.events.at(-1);
        assert.equal(last.type, 'close');
        assert.equal(JSON.parse(last.data).code, 1000);
      } finally {
        sse.es.close();
      }
      // ?code=&reason= reach the backend, as WebSocket.close(code, reason) would send them.
      const s3 = await lpOpen('/del');
      const before3 = (await closesOf()).length;
      assert.equal((await request('DELETE', `${s3.send}&code=4001&reason=${encodeURIComponent('bye ✓')}`)).status, 204);
      let closes3 = await closesOf();
      for (let i = 0; i < 60 && closes3.length === before3; i++) {
        await sleep(50);
        closes3 = await closesOf();
      }
      assert.deepEqual({ code: closes3.at(-1).code, reason: closes3.at(-1).reason }, { code: 4001, reason: 'bye ✓' });
      const s4 = await lpOpen('/del');
      for (const bad of ['code=1001', 'code=2999', 'code=5000', 'code=x', `reason=${'r'.repeat(124)}`, 'reason=%FF', 'reason=%4']) {
        assertError(await request('DELETE', `${s4.send}&${bad}`), 400, 'bad_request', `DELETE ${bad}`);
      }
      assert.equal((await request('DELETE', s4.send)).status, 204, 'the session survived the bad DELETEs');
    });

    test('CORS: allowed origin gets the headers on every request; preflight 204', { timeout: T }, async () => {
      const origin = 'http://app.example';
      const headers = { Origin: origin };
      const assertCors = (res, what) => {
        assert.equal(res.headers['access-control-allow-origin'], origin, `${what}: ACAO`);
        assert.equal(res.headers['access-control-allow-credentials'], 'true', `${what}: credentials`);
        assert.match(res.headers.vary ?? '', /(^|,\s*)Origin(\s*,|$)/i, `${what}: Vary`);
      };
      const sse = await sseOpen('/cors', { headers });
      try {
        assertCors(sse.conn, 'SSE');
        const sp = await post(sse.send, 1, 'via sse', { headers });
        assert.equal(sp.status, 200);
        assertCors(sp, 'POST (SSE session)');
        const [, m] = await sse.es.waitForEvents(2, 3000);
        assert.equal(m.data, 'via sse');
      } finally {
        sse.es.close();
      }
      const open = await get('/cors?transport=longpoll', { headers });
      assert.equal(open.status, 200);
      assertCors(open, 'long-poll open');
      const s = json(open);
      const p = await post(s.send, 1, 'hi', { headers });
      assert.equal(p.status, 200);
      assertCors(p, 'POST');
      const poll = await get(`${s.poll}&ack=0`, { headers });
      assert.equal(poll.status, 200);
      assertCors(poll, 'poll');
      assert.equal(poll.body, '{"messages":[{"seq":1,"text":"hi"}]}');
      const pre = await request('OPTIONS', s.send, {
        headers: { ...headers, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
      });
      assert.equal(pre.status, 204);
      assertCors(pre, 'preflight');
      const methods = (pre.headers['access-control-allow-methods'] ?? '').split(/\s*,\s*/);
      for (const m of ['GET', 'POST', 'DELETE']) assert.ok(methods.includes(m), `Allow-Methods has ${m}: ${methods}`);
      const allowHeaders = (pre.headers['access-control-allow-headers'] ?? '').toLowerCase().split(/\s*,\s*/);
      for (const h of ['content-type', 'last-event-id']) assert.ok(allowHeaders.includes(h), `Allow-Headers has ${h}`);
      // No Origin (non-browser client): allowed, no CORS grant.
      const plain = await post(s.send, 2, 'no origin');
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['access-control-allow-origin'], undefined);
      const del = await request('DELETE', s.send, { headers });
      assert.equal(del.status, 204);
      assertCors(del, 'DELETE');
    });

    test('CORS: a disallowed Origin gets 403 on SSE, open, poll, POST, DELETE and preflight', { timeout: T }, async () => {
      const evil = { Origin: 'http://evil.example' };
      const noGrant = (res, what) => assert.equal(res.headers['access-control-allow-origin'], undefined, `${what}: no ACAO`);
      const es = sseClient(proxy.port, '/cors', { headers: evil });
      const c = await es.connect();
      await es.waitForEnd(3000);
      assert.equal(c.status, 403, 'SSE');
      noGrant(c, 'SSE');
      assert.equal(JSON.parse(es.raw().toString()).error, 'origin_not_allowed');
      const open = await get('/cors?transport=longpoll', { headers: evil });
      assertError(open, 403, 'origin_not_allowed', 'open');
      // A live session (opened without Origin) is not reachable from the wrong origin.
      const s = await lpOpen('/cors');
      for (const [what, res] of [
        ['poll', await get(`${s.poll}&ack=0`, { headers: evil })],
        ['POST', await post(s.send, 1, 'evil', { headers: evil })],
        ['DELETE', await request('DELETE', s.send, { headers: evil })],
        ['preflight', await request('OPTIONS', s.send, { headers: { ...evil, 'Access-Control-Request-Method': 'POST' } })],
        ['SSE resume', await get('/cors', { headers: { ...evil, Accept: 'text/event-stream', 'Last-Event-ID': `${s.session}.0` } })],
      ]) {
        assertError(res, 403, 'origin_not_allowed', what);
        noGrant(res, what);
      }
      // The session is intact and the refused POST consumed nothing.
      await postOk(s.send, 1, 'good');
      const { messages } = await lpCollect(s.poll, 1);
      assert.deepEqual(messages, [{ seq: 1, text: 'good' }]);
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('issue 10', () => {
    /** Opens an SSE stream on a /ctl route: {es, session, send, c (its backend connection)}. */
    async function ctlSse(path = '/ctl') {
      const count = ctl.conns.length;
      const s = await sseOpen(path);
      return { ...s, c: await ctl.nth(count) };
    }

    const sseStatus = async (path, lastEventId) => {
      const es = sseClient(proxy.port, path, { lastEventId });
      try {
        const conn = await es.connect();
        await es.waitForEnd(3000);
        return conn;
      } finally {
        es.close();
      }
    };

    test('issue 10: after DELETE, SSE reconnects get 204 and open nothing; POSTs get session_closed; polls get the close', { timeout: T }, async () => {
      const CLOSE = { code: 1000, reason: 'client closed the session' };
      const before = ctl.conns.length;
      // 1. DELETE while the stream is attached.
      const a = await ctlSse();
      try {
        a.c.ws.send('m1');
        await a.es.waitForEvents(2, 3000);
        assert.equal((await request('DELETE', a.send)).status, 204);
        const close = await a.es.waitForEvent((e) => e.type === 'close', 3000, 'the close event');
        assert.deepEqual(JSON.parse(close.data), CLOSE);
        assert.equal(close.lastEventId, `${a.session}.2`, 'the close is at the position after m1');
        await a.es.waitForEnd(3000);
        await ctl.waitFor(() => a.c.closed, 3000, 'the backend close');
        assert.equal(a.c.closed.code, 1000);
        // EventSource's own reconnect (Last-Event-ID of the close), a stale id, a new EventSource
        // resuming by URL: all 204, which makes an EventSource stop.
        const again = await a.es.reconnect();
        assert.equal(again.requestHeaders['Last-Event-ID'], `${a.session}.2`);
        assert.equal(again.status, 204, `reconnect after DELETE\n${proxyLog(a.session)}`);
        assert.equal((await sseStatus('/ctl', `${a.session}.0`)).status, 204, 'a stale Last-Event-ID');
        assert.equal((await sseStatus('/ctl', `${a.session}.1`)).status, 204, 'the id of the last message');
        assert.equal((await sseStatus(`/ctl?session=${a.session}&ack=0`)).status, 204, 'resume by URL');
        // POSTs, whatever their seq, get session_closed; a second DELETE is still 204.
        assertError(await post(a.send, 1, 'late'), 404, 'session_closed', 'POST seq 1 after DELETE');
        assertError(await post(a.send, 9, 'late'), 404, 'session_closed', 'POST seq 9 after DELETE');
        assert.equal((await request('DELETE', a.send)).status, 204, 'a repeated DELETE');
        // A poll gets what it has not acknowledged and the close, as after a backend close.
        assert.equal((await lpPoll(a.send, 0)).body, `{"messages":[{"seq":1,"text":"m1"}],"close":${JSON.stringify(CLOSE)}}`);
        assert.equal((await lpPoll(a.send, 1)).body, `{"messages":[],"close":${JSON.stringify(CLOSE)}}`);
      } finally {
        a.es.close();
      }
      // 2. DELETE while the SSE client is away (it had seen m1, not the close).
      const b = await ctlSse();
      try {
        b.c.ws.send('m1');
        await b.es.waitForEvents(2, 3000);
        b.es.cut();
        assert.equal((await request('DELETE', b.send)).status, 204);
        const back = await b.es.reconnect();
        assert.equal(back.requestHeaders['Last-Event-ID'], `${b.session}.1`);
        assert.equal(back.status, 204, `reconnect of a client that was away at the DELETE\n${proxyLog(b.session)}`);
      } finally {
        b.es.close();
      }
      // 3. A long-poll session: DELETE, then polls and POSTs.
      const lpCount = ctl.conns.length;
      const s = await lpOpen('/ctl');
      const c = await ctl.nth(lpCount);
      c.ws.send('x');
      assert.equal((await lpPoll(s.poll, 0)).body, '{"messages":[{"seq":1,"text":"x"}]}');
      assert.equal((await request('DELETE', s.send)).status, 204);
      assert.equal((await lpPoll(s.poll, 1)).body, `{"messages":[],"close":${JSON.stringify(CLOSE)}}`);
      assert.equal((await lpPoll(s.poll, 1)).body, `{"messages":[],"close":${JSON.stringify(CLOSE)}}`, 'and again');
      assertError(await post(s.send, 1, 'late'), 404, 'session_closed', 'long-poll POST after DELETE');
      // Nothing of the above opened a backend connection besides the three sessions.
      await sleep(100);
      assert.equal(ctl.conns.length, before + 3, 'no new backend connection');
    });

    test('issue 10: a DELETEd session answers so for resume_window (1s) from the DELETE, then is forgotten', { timeout: T }, async () => {
      const { es, session, send } = await ctlSse('/ctlshort');
      try {
        assert.equal((await request('DELETE', send)).status, 204);
        const deleted = performance.now();
        await es.waitForEnd(3000);
        // A poll attaches and detaches: it must not extend the window.
        await sleep(300);
        assert.deepEqual(json(await get(`${send}&ack=0`)).close, { code: 1000, reason: 'client closed the session' });
        await sleep(300);
        assert.equal((await sseStatus('/ctlshort', `${session}.1`)).status, 204, 'reconnect 600 ms after the DELETE');
        // POST (no side effects) until the session is forgotten.
        let code = 'session_closed';
        while (code === 'session_closed' && performance.now() - deleted < 4000) {
          code = json(await post(send, 1, 'x')).error;
          if (code === 'session_closed') await sleep(50);
        }
        const forgotten = performance.now() - deleted;
        assert.equal(code, 'unknown_session');
        assert.ok(forgotten >= 950 && forgotten < 2000, `forgotten ${forgotten.toFixed(0)} ms after the DELETE (resume_window 1s)`);
        // Afterwards a reconnect is a reset, as for any unknown session; end that one at once.
        const late = sseClient(proxy.port, '/ctlshort', { lastEventId: `${session}.1` });
        try {
          await late.connect();
          const [reset, announce] = await late.waitForEvents(2, 3000);
          assert.equal(reset.type, 'reset');
          assert.equal((await request('DELETE', JSON.parse(announce.data).send)).status, 204);
        } finally {
          late.close();
        }
      } finally {
        es.close();
      }
    });

    test('issue 10: a backend close while the SSE client is away reaches it on resume, whatever it had seen', { timeout: T }, async () => {
      const { es, session, c } = await ctlSse();
      try {
        c.ws.send('m1');
        const [, m1] = await es.waitForEvents(2, 3000);
        assert.equal(m1.lastEventId, `${session}.1`);
        es.cut(); // the client has seen every message
        await sleep(100);
        c.ws.close(4001, 'kicked');
        await proxy.waitForLog(new RegExp(`event=session_backend_closed\\b.*\\bsession="?${session}"?`), 3000);
        // EventSource's reconnect with the id of the last message: the close, with its own id.
        const conn = await es.reconnect();
        assert.equal(conn.requestHeaders['Last-Event-ID'], `${session}.1`);
        assert.equal(conn.status, 200, `resume after the backend close\n${proxyLog(session)}`);
        await es.waitForEnd(3000);
        assert.deepEqual(conn.events.map((e) => [e.type, e.data, e.lastEventId]), [
          ['session', JSON.stringify({ session, send: `/ctl?session=${session}`, heartbeat_ms: 30000, last_seq: 1 }), `${session}.1`],
          ['close', '{"code":4001,"reason":"kicked"}', `${session}.2`],
        ]);
        // Now it has seen the close: 204.
        assert.equal((await es.reconnect()).status, 204);
        // Every other position gets the close too: by URL at 1, and from the start.
        const byUrl = sseClient(proxy.port, `/ctl?session=${session}&ack=1`);
        const fromStart = sseClient(proxy.port, '/ctl', { lastEventId: `${session}.0` });
        try {
          for (const [client, expected] of [[byUrl, [['session', '1'], ['close', '{"code":4001,"reason":"kicked"}']]],
            [fromStart, [['session', '0'], ['message', 'm1'], ['close', '{"code":4001,"reason":"kicked"}']]]]) {
            const k = await client.connect();
            assert.equal(k.status, 200);
            await client.waitForEnd(3000);
            assert.deepEqual(k.events.map((e) => [e.type, e.type === 'session' ? String(JSON.parse(e.data).last_seq) : e.data]), expected);
          }
        } finally {
          byUrl.close();
          fromStart.close();
        }
        // Long-poll at the same position gets it as well.
        assert.equal((await lpPoll(`/ctl?session=${session}`, 1)).body, '{"messages":[],"close":{"code":4001,"reason":"kicked"}}');
      } finally {
        es.close();
      }
    });

    test('issue 10: backend text that is not UTF-8 closes the session with 1007; nothing of it is delivered', { timeout: T }, async () => {
      const cases = [
        ['"ok\\xce" in one frame', (ws) => ws.send(Buffer.from([0x6f, 0x6b, 0xce]), { binary: false })],
        ['"ok" then "\\xce" as fragments', (ws) => {
          ws.send(Buffer.from('ok'), { binary: false, fin: false });
          ws.send(Buffer.from([0xce]), { fin: true });
        }],
        ['"\\xe2\\x82"', (ws) => ws.send(Buffer.from([0xe2, 0x82]), { binary: false })],
        ['"a\\xffb"', (ws) => ws.send(Buffer.from([0x61, 0xff, 0x62]), { binary: false })],
      ];
      for (const [what, sendBad] of cases) {
        const { es, session, c } = await ctlSse();
        try {
          c.ws.send('before');
          sendBad(c.ws);
          const close = await es.waitForEvent((e) => e.type === 'close', 3000, `the close event (${what})`);
          assert.deepEqual(JSON.parse(close.data), { code: 1007, reason: 'backend sent invalid UTF-8' }, what);
          assert.deepEqual(es.events.filter(isMessage).map((e) => [e.data, e.lastEventId]), [['before', `${session}.1`]], what);
          assert.equal(close.lastEventId, `${session}.2`, what);
        } finally {
          es.close();
        }
      }
      // Long-poll: the message before it, then the close.
      const count = ctl.conns.length;
      const s = await lpOpen('/ctl');
      const c = await ctl.nth(count);
      c.ws.send('before');
      c.ws.send(Buffer.from([0x6f, 0x6b, 0xce]), { binary: false });
      const { messages, responses } = await lpCollect(s.poll, 2);
      assert.deepEqual(messages, [{ seq: 1, text: 'before' }]);
      assert.deepEqual(responses.at(-1).close, { code: 1007, reason: 'backend sent invalid UTF-8' });
    });

    test('issue 10: POSTed text that is not UTF-8 (single or batch, a cut-off last character too) gets 400; nothing of it reaches the backend', { timeout: T }, async () => {
      const count = ctl.conns.length;
      const s = await lpOpen('/ctl');
      const c = await ctl.nth(count);
      const bytes = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
      for (const bad of [[0x6f, 0x6b, 0xce], [0xe2, 0x82], [0x6f, 0x6b, 0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98]]) {
        assertError(await post(s.send, 1, Buffer.from(bad)), 400, 'invalid_utf8', `text body ${Buffer.from(bad).toString('hex')}`);
      }
      // A batch is refused whole, valid messages before the bad one included: no seq is used.
      for (const [what, body] of [
        ['raw "ok\\xce" after a valid item', bytes('[{"text":"ok"},{"text":"ok', [0xce], '"}]')],
        ['raw "\\xe2\\x82" first', bytes('[{"text":"', [0xe2, 0x82], '"},{"text":"ok"}]')],
        ['a lone surrogate escape', bytes('[{"text":"ok"},{"text":"\\ud800"}]')],
      ]) {
        assertError(await post(s.send, 1, body, { batch: true }), 400, 'bad_request', `batch: ${what}`);
      }
      const ok = await postOk(s.send, 1, 'fine');
      assert.deepEqual(json(ok), { next_seq: 2 }, 'the refused POSTs consumed no seq');
      await ctl.waitFor(() => c.received.length >= 1, 3000, 'the valid message at the backend');
      await sleep(100);
      assert.deepEqual(c.received.map((m) => [m.data.toString('hex'), m.isBinary]), [[Buffer.from('fine').toString('hex'), false]],
        'the backend received the valid message only');
    });

    test('issue 10: 429 Retry-After is at least 1 s; a batch over the burst gets 413 and consumes nothing', { timeout: T }, async () => {
      // /rate: 1 message/s, burst 5.
      const s = await lpOpen('/rate');
      const batch = (n, from) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ text: `r${from + i}` })));
      assert.deepEqual(json(await postOk(s.send, 1, batch(3, 1), { batch: true })), { next_seq: 4 });
      // About 2 tokens left: one is available, three are not (this answered Retry-After: 0).
      const limited = await post(s.send, 4, batch(3, 4), { batch: true });
      assertError(limited, 429, 'rate_limited', 'a batch of 3 with 2 tokens left');
      const ra = limited.headers['retry-after'];
      assert.match(ra ?? '', /^[0-9]+$/, 'Retry-After in whole seconds');
      assert.ok(Number(ra) >= 1 && Number(ra) <= 3, `Retry-After ${ra}: at least 1, at most the 3 s three tokens take`);
      // More new messages than the burst could never pass: 413, naming the burst.
      const over = await post(s.send, 4, batch(6, 4), { batch: true });
      const b = assertError(over, 413, 'payload_too_large', 'a batch of 6 over burst 5');
      assert.match(b.detail, /burst \(5\)/);
      // A retry overlapping what was sent counts only its new messages against the burst.
      const overlap = await post(s.send, 2, batch(6, 2), { batch: true }); // seqs 2..7, new: 4..7
      assertError(overlap, 429, 'rate_limited', 'an overlapping retry with 4 new messages');
      // Nothing was consumed: seq 4 is still the next one.
      const gap = await post(s.send, 5, 'r5');
      assertError(gap, 409, 'seq_gap', 'seq 5');
      assert.equal(gap.headers['x-expected-seq'], '4');
      const { messages } = await lpCollect(s.poll, 3);
      assert.deepEqual(messages.map((m) => m.text), ['r1', 'r2', 'r3']);
      assert.equal((await request('DELETE', s.send)).status, 204);
    });

    // A proxy of its own: admin port for /metrics, and a small global max_post_body, which the
    // HTTP parser enforces before any route code runs.
    describe('issue 10: metrics', () => {
      let mp;
      let adminPort;
      before(async () => {
        mp = await startProxy(proxyConfig([
          { path: '/m', backend: backend.url('/echo'), rate: FAST, idle_timeout: '2s' },
        ], { ...listen(), extra: 'admin: { address: 127.0.0.1:0 }\nlimits: { max_post_body: 16k }\n' }), { label: 'sessions-metrics-proxy' });
        adminPort = Number((await mp.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
      });
      after(async () => {
        await mp?.stop();
      });

      const gauge = async (transport) => metricSum(await scrape(adminPort), 'wsbridge_connections', { transport });
      async function waitGauge(transport, want, what) {
        const deadline = Date.now() + 4000;
        let v = await gauge(transport);
        while (v !== want && Date.now() < deadline) {
          await sleep(25);
          v = await gauge(transport);
        }
        assert.equal(v, want, `wsbridge_connections{transport="${transport}"} ${what}`);
      }

      test('issue 10: a session POST over max_post_body (413 from the parser) names its method and counts as transport="session"', { timeout: T }, async () => {
        const open = await request('GET', '/m?transport=longpoll', { port: mp.port });
        assert.equal(open.status, 200, open.body);
        const { send } = JSON.parse(open.body);
        const before = await scrape(adminPort);
        const logsBefore = mp.stderr().split('\n').length;
        const body = 'x'.repeat(16 * 1024 + 1); // one byte over: the parser stops at the last one
        const res = await request('POST', `${send}&seq=1`, { port: mp.port, headers: { 'Content-Type': 'text/plain' }, body });
        assert.equal(res.status, 413, res.body);
        assert.equal(JSON.parse(res.body).error, 'payload_too_large');
        assert.equal(await metricDelta(adminPort, before, 'wsbridge_rejections_total',
          { transport: 'session', reason: 'payload_too_large', status: '413' }), 1, 'counted as transport="session"');
        assert.equal(metricSum(await scrape(adminPort), 'wsbridge_rejections_total', { transport: 'http' }) -
          metricSum(before, 'wsbridge_rejections_total', { transport: 'http' }), 0, 'not as transport="http"');
        const line = mp.stderr().split('\n').slice(logsBefore - 1).find((l) => l.includes('event=http_rejected') && /\bstatus="?413\b/.test(l));
        assert.ok(line, 'a http_rejected line for the 413');
        assert.match(line, /\bmethod="?POST"?(\s|$)/, `the log line names the method: ${line}`);
        // The session is unharmed.
        assert.equal((await request('POST', `${send}&seq=1`, { port: mp.port, headers: { 'Content-Type': 'text/plain' }, body: 'fits' })).status, 200);
        assert.equal((await request('DELETE', send, { port: mp.port })).status, 204);
      });

      test('issue 10: wsbridge_connections counts SSE streams and held polls, back to 0 when they end', { timeout: T }, async () => {
        await waitGauge('sse', 0, 'at rest');
        await waitGauge('longpoll', 0, 'at rest');
        // Two SSE streams.
        const streams = [sseClient(mp.port, '/m'), sseClient(mp.port, '/m')];
        const sessions = [];
        try {
          for (const es of streams) {
            await es.connect();
            const [announce] = await es.waitForEvents(1, 3000);
            sessions.push(JSON.parse(announce.data).send);
          }
          await waitGauge('sse', 2, 'with two streams');
          streams[0].close();
          await waitGauge('sse', 1, 'after one client left');
          assert.equal((await request('DELETE', sessions[1], { port: mp.port })).status, 204);
          await waitGauge('sse', 0, 'after the other stream got its close');
        } finally {
          for (const es of streams) es.close();
        }
        // Two held polls (hold 1 s): one answered by a message, one whose client leaves.
        const opens = [];
        for (let i = 0; i < 2; i++) opens.push(JSON.parse((await request('GET', '/m?transport=longpoll', { port: mp.port })).body));
        const answered = request('GET', `${opens[0].poll}&ack=0`, { port: mp.port, ms: 3000 });
        const leaving = web.get({ host: '127.0.0.1', port: mp.port, path: `${opens[1].poll}&ack=0`, agent: false, ...clientTls });
        leaving.on('error', () => {});
        try {
          await waitGauge('longpoll', 2, 'with two held polls');
          assert.equal((await request('POST', `${opens[0].send}&seq=1`, { port: mp.port, headers: { 'Content-Type': 'text/plain' }, body: 'wake' })).status, 200);
          assert.equal((await answered).body, '{"messages":[{"seq":1,"text":"wake"}]}');
          await waitGauge('longpoll', 1, 'after one poll was answered');
          leaving.destroy();
          await waitGauge('longpoll', 0, 'after the other poll\'s client left');
        } finally {
          leaving.destroy();
        }
        for (const o of opens) assert.equal((await request('DELETE', o.send, { port: mp.port })).status, 204);
        assert.equal(await gauge('sse'), 0);
        assert.equal(await gauge('longpoll'), 0);
      });
    });
  });
});
