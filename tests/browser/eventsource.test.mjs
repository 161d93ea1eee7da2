// Real-browser test: a plain `new EventSource(url)` in Debian's headless Chromium against wsbridge
// (SPEC §3 "SSE wire format"). No client library: the page uses only the platform EventSource.
//
//   node --test tests/browser/eventsource.test.mjs
//   WSBRIDGE_BIN=/path/to/wsbridge CHROMIUM_BIN=/usr/bin/chromium node --test tests/browser/eventsource.test.mjs
//
// Setup: the page is served by this test on its own port (http://127.0.0.1:<pagePort>/) and the
// EventSource is cross-origin to the proxy; the proxy route lists the page's origin in `origins`
// and answers with Access-Control-Allow-Origin, which is all a credential-less EventSource
// needs. For B and C the browser reaches the proxy through a TCP relay that the test controls
// (lib/browser.mjs): it records each request/response head and can cut the connection.
//
//  A  /stream?n=500: exactly "1".."500" as message events, in order, lastEventId "<session>.<n>".
//  B  /stream?n=3000 through the relay, cut after a fixed number of response bytes (mid-event),
//     20 more messages are sent to the session while no client is attached; Chromium's own
//     reconnect (Last-Event-ID) resumes the same session: "1".."3000","x1".."x20", no gap, no
//     duplicate. Evidence of the resume: the Last-Event-ID the relay saw, the second announce's
//     last_seq, and the proxy's wsbridge_session_resumes_total{transport="sse"}.
//  C  /close?code=4001&reason=bye: a `close` event {code:4001,reason:"bye"}, then the reconnect
//     (Last-Event-ID: the close event's own id, "<session>.1") is answered 204 and the
//     EventSource ends CLOSED (readyState 2).
//
// Screenshots and page snapshots go to tests/browser/artifacts/ (gitignored), with the proxy's
// and backend's logs.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

// First: it points the harness's log directory at tests/browser/artifacts.
import {
  BROWSER_ARTIFACTS, browserSkip, launchChromium, servePage, startRelay, headerOf, stopAll,
} from './lib/browser.mjs';
import {
  startBackend, startProxy, proxyConfig, proxySkip, withTimeout, httpGet, sleep,
} from '../e2e/lib/harness.mjs';

const PAGE_HTML = fs.readFileSync(new URL('./lib/eventsource-page.html', import.meta.url), 'utf8');
const skip = proxySkip() || (await browserSkip());

let backend;
let proxy;
let adminPort;
let pageServer;
let relay;
let browser;
const pages = [];

/** Sum of the samples of a Prometheus counter whose labels include `labels` (0 if absent). */
async function metric(name, labels = {}) {
  const res = await httpGet(adminPort, '/metrics');
  assert.equal(res.status, 200, 'admin /metrics');
  let sum = 0;
  for (const line of res.body.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})?\s+(\d+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ok = Object.entries(labels).every(([k, v]) => (m[2] || '').includes(`${k}="${v}"`));
    if (ok) sum += Number(m[3]);
  }
  return sum;
}

async function metrics() {
  return {
    opened: await metric('wsbridge_sessions_opened_total'),
    resumes: await metric('wsbridge_session_resumes_total', { transport: 'sse' }),
    resets: await metric('wsbridge_session_resets_total', { transport: 'sse' }),
  };
}

function post(port, p, body, headers = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: p, method: 'POST', agent: false,
      headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  }), 5000, `POST ${p}`);
}

async function openPage(label) {
  const page = await browser.context.newPage();
  page.setDefaultTimeout(15000);
  page.diag = [];
  page.on('console', (msg) => page.diag.push(`console.${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => page.diag.push(`pageerror: ${err.message}`));
  pages.push(page);
  await page.goto(`${pageServer.origin}/?case=${label}`, { timeout: 15000 });
  return page;
}

const start = (page, url, label) => page.evaluate(([u, l]) => window.startSource(u, l), [url, label]);
const snapshot = (page) => page.evaluate(() => window.snapshot());

/** Short, readable form of a snapshot for failure messages. */
function brief(s) {
  if (!s) return 'no snapshot';
  const { messages, ids, ...rest } = s;
  return JSON.stringify({
    ...rest, first: messages.slice(0, 3), last: messages.slice(-3), lastIds: ids.slice(-2),
  });
}

/** Waits (bounded) until pred(snapshot) holds inside the page; the error carries the snapshot. */
async function waitPage(page, pred, arg, ms, what) {
  try {
    await page.waitForFunction(pred, arg, { timeout: ms, polling: 50 });
  } catch (err) {
    const s = await snapshot(page).catch(() => null);
    throw new Error(`timed out after ${ms} ms waiting for ${what}: ${err.message.split('\n')[0]}\n` +
      `page: ${brief(s)}\npage console: ${page.diag.join(' | ')}`);
  }
}

async function artifacts(page, name, snap) {
  fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, `eventsource-${name}.png`), timeout: 10000 });
  if (snap) fs.writeFileSync(path.join(BROWSER_ARTIFACTS, `eventsource-${name}.json`), JSON.stringify(snap, null, 1));
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/** Asserts every message's lastEventId is "<session>.<its 1-based position>". */
function assertIds(snap, session) {
  for (let i = 0; i < snap.ids.length; i++) {
    if (snap.ids[i] !== `${session}.${i + 1}`) {
      assert.fail(`message ${i + 1} (${JSON.stringify(snap.messages[i])}) has lastEventId ` +
        `${JSON.stringify(snap.ids[i])}, expected ${JSON.stringify(`${session}.${i + 1}`)}`);
    }
  }
}

/** First difference between two string arrays, for a readable failure. */
function firstDiff(got, want) {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      return `first difference at index ${i}: got ${JSON.stringify(got.slice(Math.max(0, i - 2), i + 3))}, ` +
        `expected ${JSON.stringify(want.slice(Math.max(0, i - 2), i + 3))} (got ${got.length} messages, expected ${want.length})`;
    }
  }
  return null;
}

function assertSequence(got, want) {
  const d = firstDiff(got, want);
  if (d) {
    const seen = new Set();
    const dups = got.filter((x) => (seen.has(x) ? true : (seen.add(x), false)));
    const missing = want.filter((x) => !seen.has(x));
    assert.fail(`${d}; duplicates: ${JSON.stringify(dups.slice(0, 10))} (${dups.length}), ` +
      `missing: ${JSON.stringify(missing.slice(0, 10))} (${missing.length})`);
  }
}

describe('plain EventSource in headless Chromium', { skip, timeout: 240000 }, () => {
  before(async () => {
    backend = await startBackend({ label: 'eventsource' });
    pageServer = await servePage(PAGE_HTML);
    const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
    const common = { transports: ['sse'], origins: [pageServer.origin], require_origin: true };
    proxy = await startProxy(proxyConfig([
      { path: '/stream', backend: be('/stream'), ...common },
      { path: '/close', backend: be('/close'), ...common },
    ], { extra: 'admin: { address: 127.0.0.1:0 }\n' }), { label: 'eventsource' });
    const m = await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/);
    adminPort = Number(m[1]);
    relay = await startRelay(proxy.port);
    browser = await launchChromium();
  });

  after(() => stopAll([
    ['pages', async () => { for (const p of pages) await withTimeout(p.close(), 5000, 'page close').catch(() => {}); }],
    ['browser', () => browser?.close()],
    ['relay', () => relay?.close()],
    ['page server', () => pageServer?.close()],
    ['proxy', () => proxy?.stop()],
    ['backend', () => backend?.stop()],
  ]));

  test('A: /stream?n=500 arrives as exactly "1".."500", lastEventId "<session>.<n>"', { timeout: 60000 }, async () => {
    const page = await openPage('A');
    const url = `http://127.0.0.1:${proxy.port}/stream?n=500`;
    await start(page, url, 'A: /stream?n=500 direct');
    await waitPage(page, () => window.snapshot().count >= 500, undefined, 15000, '500 message events');
    await sleep(300); // nothing may follow the 500th
    const s = await snapshot(page);
    await artifacts(page, 'A-stream-500', s);
    await page.evaluate(() => window.stopSource());

    assertSequence(s.messages, range(1, 500));
    assert.equal(s.announces.length, 1, `one session announce: ${brief(s)}`);
    const session = s.announces[0].data.session;
    assert.match(session, /^[A-Za-z0-9_-]{22,}$/, 'session id: >= 128 bits, URL-safe');
    assert.equal(s.announces[0].data.last_seq, 0);
    assert.equal(s.announces[0].lastEventId, `${session}.0`);
    assert.equal(s.announces[0].atMessage, 0, 'the announce comes first');
    assertIds(s, session);
    assert.equal(s.opens.length, 1, `one open: ${brief(s)}`);
    assert.deepEqual(s.errors, [], 'no error event');
    assert.deepEqual([s.closes, s.resets, s.gaps, s.others], [[], [], [], []], 'no other event types');
    assert.equal(s.readyState, 1, 'still OPEN');
  });

  test('B: cut mid-stream, Chromium\'s own reconnect resumes the session with no loss and no duplicate', { timeout: 90000 }, async (t) => {
    const N = 3000;
    const EXTRA = 20; // sent while no client is attached
    const CUT_BYTES = 50021; // response bytes the browser gets before the cut (~1100 events, mid-event)
    const m0 = await metrics();
    const page = await openPage('B');
    const cut = relay.cutAfter(CUT_BYTES, /^GET \/stream\?n=3000 /);
    const t0 = Date.now();
    await start(page, `${relay.origin}/stream?n=${N}`, `B: /stream?n=${N} via relay, cut at ${CUT_BYTES} B`);
    const cutConn = await withTimeout(cut, 15000, `the relay to forward ${CUT_BYTES} bytes and cut`);
    assert.equal(cutConn.down, CUT_BYTES);

    // The browser notices: an error event with readyState CONNECTING (it will reconnect itself).
    await waitPage(page, () => {
      const s = window.snapshot();
      return s.errors.length >= 1 && s.readyState === 0;
    }, undefined, 10000, 'the error event after the cut');
    const mid = await snapshot(page);
    const got = mid.count;
    assert.ok(got > 0 && got < N, `the cut is mid-stream: ${got} of ${N} messages before it`);
    const announce = mid.announces[0];
    assert.ok(announce, `announce before the cut: ${brief(mid)}`);
    const session = announce.data.session;
    assert.equal(mid.ids.at(-1), `${session}.${got}`);
    await artifacts(page, 'B-1-after-cut', null);

    // While the browser is away (the relay holds its reconnect), the session keeps flowing:
    // the backend still has the rest of the 3000 to deliver, and 20 more messages are sent now.
    assert.match(announce.data.send, /^\/stream\?session=/, 'send URL');
    for (let i = 1; i <= EXTRA; i++) {
      const r = await post(proxy.port, `${announce.data.send}&seq=${i}`, `x${i}`, { Origin: pageServer.origin });
      assert.ok(r.status === 200 || r.status === 204, `POST seq=${i}: ${r.status} ${r.body}`);
    }
    await sleep(300);
    const held = await snapshot(page);
    assert.equal(held.count, got, 'nothing reaches the page while it is disconnected');
    t.diagnostic(`cut after ${got} messages (${CUT_BYTES} bytes, ${Date.now() - t0} ms); ` +
      `${relay.heldCount()} reconnect(s) held; posted ${EXTRA} while detached`);
    relay.release();

    const total = N + EXTRA;
    await waitPage(page, (n) => window.snapshot().count >= n, total, 20000, `${total} messages after the reconnect`);
    await sleep(500); // nothing may follow
    const s = await snapshot(page);
    await artifacts(page, 'B-2-resumed', s);
    await page.evaluate(() => window.stopSource());
    t.diagnostic(`resumed: ${s.count} messages in ${Date.now() - t0} ms; reconnect announce ` +
      `${JSON.stringify(s.announces[1])}`);

    // The acceptance line: exactly the expected sequence, no gap, no duplicate, one session.
    assertSequence(s.messages, [...range(1, N), ...range(1, EXTRA).map((x) => `x${x}`)]);
    assertIds(s, session);
    assert.deepEqual([s.resets, s.gaps, s.closes, s.others], [[], [], [], []],
      `no reset/gap/close/other event: ${brief(s)}`);
    assert.equal(s.opens.length, 2, `two opens (first + reconnect): ${brief(s)}`);
    assert.equal(s.errors.length, 1, `one error (the cut): ${brief(s)}`);
    assert.equal(s.readyState, 1);

    // The reconnect resumed the same session at the browser's last position.
    assert.equal(s.announces.length, 2, `a second announce on the reconnect: ${brief(s)}`);
    assert.equal(s.announces[1].data.session, session, 'same session after the reconnect');
    assert.equal(s.announces[1].data.last_seq, got, 'the stream resumes after the last delivered message');
    assert.equal(s.announces[1].lastEventId, `${session}.${got}`);
    assert.equal(s.announces[1].atMessage, got);

    // What went over the wire (relay): the browser's own Last-Event-ID, answered 200.
    const reqs = relay.requests().filter((c) => /^GET \/stream\?n=3000 /.test(c.request));
    assert.equal(reqs.length, 2, `two GETs: ${reqs.map((c) => c.request.split('\r\n')[0]).join(' | ')}`);
    assert.equal(headerOf(reqs[0].request, 'Last-Event-ID'), null, 'first GET has no Last-Event-ID');
    assert.equal(headerOf(reqs[1].request, 'Last-Event-ID'), `${session}.${got}`, 'reconnect sends Last-Event-ID');
    assert.equal(headerOf(reqs[1].request, 'Origin'), pageServer.origin);
    assert.match(reqs[1].response ?? '', /^HTTP\/1\.1 200 /);
    assert.equal(headerOf(reqs[1].response, 'Access-Control-Allow-Origin'), pageServer.origin);

    // The proxy counted one SSE resume and no reset, and opened one session only.
    const m1 = await metrics();
    assert.deepEqual({ opened: m1.opened - m0.opened, resumes: m1.resumes - m0.resumes, resets: m1.resets - m0.resets },
      { opened: 1, resumes: 1, resets: 0 }, 'proxy metrics delta');
  });

  test('C: backend close 4001 "bye" → close event, reconnect answered 204, EventSource CLOSED', { timeout: 60000 }, async (t) => {
    const m0 = await metrics();
    const page = await openPage('C');
    await start(page, `${relay.origin}/close?code=4001&reason=bye`, 'C: /close?code=4001&reason=bye via relay');
    await waitPage(page, () => window.snapshot().readyState === 2, undefined, 15000, 'readyState CLOSED');
    await sleep(1500); // a CLOSED EventSource never reconnects; make sure nothing else happens
    const s = await snapshot(page);
    await artifacts(page, 'C-close', s);

    assert.equal(s.closes.length, 1, `one close event: ${brief(s)}`);
    assert.deepEqual(JSON.parse(s.closes[0].data), { code: 4001, reason: 'bye' });
    assert.deepEqual(s.messages, []);
    assert.equal(s.announces.length, 1, `one session only: ${brief(s)}`);
    const session = s.announces[0].data.session;
    assert.deepEqual([s.resets, s.gaps, s.others], [[], [], []]);
    assert.equal(s.opens.length, 1, `opened once: ${brief(s)}`);
    // error #1: the stream ended after the close event (CONNECTING, reconnect pending);
    // error #2: the reconnect got 204 (CLOSED).
    assert.deepEqual(s.errors.map((e) => e.readyState), [0, 2], `errors: ${JSON.stringify(s.errors)}`);
    assert.equal(s.readyState, 2);
    const delay = s.errors[1].t - s.closes[0].t;
    t.diagnostic(`close event at ${s.closes[0].t} ms, CLOSED at ${s.errors[1].t} ms (reconnect delay ~${delay} ms)`);
    assert.ok(delay >= 900 && delay < 2900, `the reconnect used the announced retry (1000 ms), not Chromium's default 3 s: ${delay} ms`);

    const reqs = relay.requests().filter((c) => /^GET \/close\?/.test(c.request));
    assert.equal(reqs.length, 2, `first GET + one reconnect: ${reqs.map((c) => c.request.split('\r\n')[0]).join(' | ')}`);
    // The close event's own id, one past the last message (issue 10): it shows the close was seen.
    assert.equal(headerOf(reqs[1].request, 'Last-Event-ID'), `${session}.1`);
    assert.match(reqs[1].response ?? '', /^HTTP\/1\.1 204 /, `reconnect answered 204: ${reqs[1].response}`);

    const m1 = await metrics();
    assert.deepEqual({ opened: m1.opened - m0.opened, resets: m1.resets - m0.resets }, { opened: 1, resets: 0 },
      'no fresh session for the reconnect');
    await proxy.waitForLog(new RegExp(`event=session_backend_closed\\b.*\\bsession="?${session}"?.*\\bcode="?4001`), 2000);
  });
});
