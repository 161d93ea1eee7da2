// Helpers for the hostile-client suite (tests/e2e/hostile_client.test.mjs): Prometheus scrapes
// with label filters, raw byte exchanges that record every byte until the proxy closes, a
// recording TCP backend that counts connections and keeps what it received, HTTP requests on
// fresh connections, and the "proxy is still healthy" check run after every hostile case.
//
// Every wait here is bounded in time; every loop in count.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { withTimeout, sleep } from './harness.mjs';
import { openWs, text as textFrame } from './rawws.mjs';

// ---------------------------------------------------------------------------------------------
// Metrics

const SERIES_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text into [{name, labels, value}]. */
export function parseMetrics(body) {
  const out = [];
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SERIES_RE.exec(line.trim());
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(LABEL_RE)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of every series of `name` whose labels include all of `labels`. */
export function metricSum(series, name, labels = {}) {
  let sum = 0;
  for (const s of series) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === String(v))) sum += s.value;
  }
  return sum;
}

/** GET /metrics on the admin listener; resolves the parsed series. */
export async function scrape(adminPort) {
  const res = await httpRequest(adminPort, 'GET', '/metrics', { ms: 3000 });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(res.body);
}

/**
 * Waits (at most ms) until metricSum(name, labels) grew by at least `want` since `before` (a
 * scrape); resolves the growth seen last. Counters are added when a connection ends, so a
 * test scrapes again until the proxy has finished with its connection.
 */
export async function metricDelta(adminPort, before, name, labels, want = 1, ms = 3000) {
  const base = metricSum(before, name, labels);
  const deadline = Date.now() + ms;
  let delta = 0;
  for (let i = 0; i < 200; i++) {
    delta = metricSum(await scrape(adminPort), name, labels) - base;
    if (delta >= want || Date.now() > deadline) break;
    await sleep(25);
  }
  return delta;
}

// ---------------------------------------------------------------------------------------------
// HTTP on fresh connections

/** One request on a fresh connection (node:http); resolves {status, headers, body, raw}. */
export function httpRequest(port, method, path, { headers = {}, body, ms = 5000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const h = { ...headers };
    if (payload) h['Content-Length'] = String(payload.length);
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, raw, body: raw.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload ?? undefined);
  }), ms, `${method} ${path.slice(0, 80)}`);
}

// ---------------------------------------------------------------------------------------------
// Raw exchanges

/**
 * Splits raw response bytes into HTTP responses: [{status, statusLine, headers, body}].
 * Bodies are delimited by Content-Length (the proxy's error answers always carry one); what
 * cannot be parsed is left in `rest`.
 */
export function parseResponses(buf) {
  const responses = [];
  let rest = buf;
  for (let i = 0; i < 16; i++) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.subarray(0, end).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(lines[0]);
    if (!m) break;
    const headers = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const body = rest.subarray(end + 4, end + 4 + length);
    responses.push({ status: Number(m[1]), statusLine: lines[0], headers, body: body.toString('utf8') });
    rest = rest.subarray(end + 4 + length);
  }
  return { responses, rest };
}

/**
 * Opens a TCP connection to the proxy and writes `chunks` (Buffers or latin1 strings), each
 * after `gapMs`, stopping early once the proxy answered or closed. Then reads until the proxy
 * closes, at most `ms` after the last write. Resolves:
 *   {data, responses, rest, closedByPeer, written, error}
 * closedByPeer is true when the proxy ended the connection (FIN or reset) by itself.
 */
export async function exchange(port, chunks, { gapMs = 0, ms = 3000, stopOnAnswer = true } = {}) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let data = Buffer.alloc(0);
  let closedByPeer = false;
  let error = null;
  let closed = false;
  const ended = new Promise((resolve) => {
    socket.on('data', (d) => {
      data = Buffer.concat([data, d]);
    });
    socket.on('end', () => {
      closedByPeer = true;
      socket.end();
    });
    socket.on('error', (e) => {
      error = e.code || e.message;
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') closedByPeer = true;
    });
    socket.on('close', () => {
      closed = true;
      resolve();
    });
  });
  await withTimeout(new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  }), 3000, 'connect to the proxy');
  const list = Array.isArray(chunks) ? chunks : [chunks];
  let written = 0;
  for (const chunk of list) {
    if (closed || (stopOnAnswer && data.length > 0)) break;
    socket.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'latin1'));
    written++;
    if (gapMs > 0 && written < list.length) await sleep(gapMs);
  }
  const timer = setTimeout(() => socket.destroy(), ms);
  await ended;
  clearTimeout(timer);
  const { responses, rest } = parseResponses(data);
  return { data, responses, rest, closedByPeer, written, error };
}

/** Splits a string or Buffer into single bytes (for dripping). */
export function bytesOf(input) {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1');
  return [...b].map((x) => Buffer.from([x]));
}

// ---------------------------------------------------------------------------------------------
// A recording backend

/**
 * A TCP server standing in for a WebSocket backend. It records every connection and every
 * byte it receives, and answers each request head with `403 Forbidden` (then half-closes and
 * keeps reading until the peer closes), so a proxy that contacts it gets a clean refusal and
 * the test sees exactly which bytes arrived.
 */
export async function startRecordingBackend() {
  const conns = [];
  const sockets = new Set();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const rec = { data: Buffer.alloc(0), answered: false, closed: false };
    conns.push(rec);
    socket.on('data', (d) => {
      rec.data = Buffer.concat([rec.data, d]);
      if (!rec.answered && rec.data.indexOf('\r\n\r\n') >= 0) {
        rec.answered = true;
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nrejected\n');
      }
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => {
      rec.closed = true;
      sockets.delete(socket);
    });
    // Never keep a connection longer than 10 s, whatever the proxy does.
    socket.setTimeout(10000, () => socket.destroy());
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    conns,
    url: (p) => `ws://127.0.0.1:${port}${p}`,
    /** Waits (bounded) until every recorded connection is closed. */
    async settle(ms = 3000) {
      const deadline = Date.now() + ms;
      while (conns.some((c) => !c.closed) && Date.now() < deadline) await sleep(20);
    },
    stop() {
      return new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        setTimeout(resolve, 1000).unref();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Echo checks and health

/**
 * Opens a WebSocket on `path`, lets `drive(conn)` write to it, and asserts that exactly the
 * texts `want` come back with no close in between; then closes cleanly with 1000.
 */
export async function expectEchoes(port, path, drive, want) {
  const conn = await openWs({ port, path, timeoutMs: 3000 });
  try {
    await drive(conn);
    await conn.waitMessages(want.length, 3000);
    assert.equal(conn.close, null, `${path}: no close expected, got ${JSON.stringify(conn.close)}`);
    assert.deepEqual(conn.messages.map((m) => m.payload.toString()), want, `${path}: echoed messages`);
    conn.sendClose(1000);
    await conn.waitClose(3000);
    assert.equal(conn.close?.code, 1000, `${path}: close code`);
  } finally {
    await conn.waitClosed(2000);
    conn.destroy();
  }
}

let healthCounter = 0;

/**
 * Asserts that the proxy process is alive, its /healthz answers 200, and a fresh WebSocket
 * on `path` echoes a message and closes cleanly with 1000.
 */
export async function assertHealthy(proxy, adminPort, { path = '/echo' } = {}) {
  assert.equal(proxy.child.exit, null, 'the proxy process is alive');
  const h = await httpRequest(adminPort, 'GET', '/healthz', { ms: 3000 });
  assert.equal(h.status, 200, '/healthz');
  const msg = `health ${++healthCounter}`;
  await expectEchoes(proxy.port, path, (conn) => conn.write(textFrame(msg)), [msg]);
  assert.equal(proxy.child.exit, null, 'the proxy process is alive');
}
