// Real-browser test of the admin port's status page (issue 14): Debian's headless Chromium opens
// http://127.0.0.1:<admin>/status while the test holds live clients on every transport, and the
// page must show exactly what the test created:
//   /echo: 2 WebSocket relays (7 messages sent in), 1 SSE session (1 stream), 1 session in all;
//   /chat: 1 long-poll session with 1 held poll;
//   share by transport: websocket 2, sse 1, longpoll 1 (50 % fell back from WebSocket);
//   rejections: bad_transport (400) x2, not_found (404) x1; last reload ok (1 ok, 0 failed);
//   state running.
// A third route's path, `/esc&lt;i&gt;x`, reaches the page through config: it must show as
// those literal characters (text, not markup). The page may load nothing but status.json from
// the admin origin. Screenshot: tests/browser/artifacts/status-page.png (gitignored).
//
//   node --test tests/browser/status_page.test.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';

// First: it points the harness's log directory at tests/browser/artifacts.
import { BROWSER_ARTIFACTS, browserSkip, launchChromium, stopAll } from './lib/browser.mjs';
import {
  startBackend, startProxy, proxyConfig, proxySkip, withTimeout, httpGet,
} from '../e2e/lib/harness.mjs';
import { SseClient } from '../e2e/lib/sse.mjs';
import { httpRequest } from '../e2e/lib/session_client.mjs';

const skip = proxySkip() || (await browserSkip());
const ESCAPED_PATH = '/esc&lt;i&gt;x';

let backend;
let proxy;
let adminPort;
let browser;
let page;
const sockets = [];
let sse;
let lpSession;
let heldPoll;

function openWs(p) {
  const ws = new WebSocket(proxy.url(p));
  sockets.push(ws);
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, `WebSocket ${p}`);
}

/** Sends `n` messages on `ws` and waits for their echoes. */
function echo(ws, n) {
  return withTimeout(new Promise((resolve) => {
    let got = 0;
    const onMessage = () => {
      if (++got === n) {
        ws.off('message', onMessage);
        resolve();
      }
    };
    ws.on('message', onMessage);
    for (let i = 0; i < n; i++) ws.send(`m${i}`);
  }), 5000, `${n} echoes`);
}

describe('status page: live figures in Chromium', { skip }, () => {
  before(async () => {
    backend = await startBackend({ label: 'status-backend' });
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: backend.url('/echo') },
      { path: '/chat', backend: backend.url('/chat') },
      { path: ESCAPED_PATH, backend: backend.url('/echo') },
    ], { extra: 'admin: { address: 127.0.0.1:0 }\ninstance: s1\n' }), { label: 'status-proxy' });
    adminPort = Number((await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
    browser = await launchChromium();
  });

  after(() => stopAll([
    ['page', () => page?.close()],
    ['browser', () => browser?.close()],
    ['clients', async () => {
      for (const ws of sockets) ws.terminate();
      sse?.close();
      if (lpSession) await httpRequest(proxy.port, 'DELETE', `/chat?session=${lpSession}`).catch(() => {});
      await heldPoll;
    }],
    ['proxy', () => proxy?.stop()],
    ['backend', () => backend?.stop()],
  ]));

  test('shows the connections, sessions, rejections and reload the test created', { timeout: 30000 }, async () => {
    // Two WebSocket relays on /echo, 7 messages in.
    const [a, b] = [await openWs('/echo'), await openWs('/echo')];
    await echo(a, 4);
    await echo(b, 3);
    // One SSE session on /echo.
    sse = new SseClient(proxy.port, '/echo');
    await sse.connect();
    await sse.waitForEvent((e) => e.type === 'session', 5000, 'the SSE announce');
    // One long-poll session on /chat and its held poll.
    const open = await httpGet(proxy.port, '/chat?transport=longpoll');
    assert.equal(open.status, 200, open.body);
    lpSession = JSON.parse(open.body).session;
    heldPoll = httpGet(proxy.port, `/chat?session=${lpSession}&ack=0`, { ms: 60000 }).catch(() => null);
    // Rejections: 2 x bad_transport, 1 x not_found.
    assert.equal((await httpGet(proxy.port, '/echo')).status, 400);
    assert.equal((await httpGet(proxy.port, '/echo')).status, 400);
    assert.equal((await httpGet(proxy.port, '/nowhere?transport=longpoll')).status, 404);

    page = await browser.context.newPage();
    page.setDefaultTimeout(10000);
    const requests = [];
    const diag = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => diag.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => diag.push(`pageerror: ${e.message}`));
    const origin = `http://127.0.0.1:${adminPort}`;
    await page.goto(`${origin}/status`, { timeout: 10000 });

    const cell = (route, k) => page.locator(`#routes tr[data-route="${route}"] td[data-k="${k}"]`).textContent();
    const expected = [
      ['/echo', 'conn-websocket', '2'], ['/echo', 'conn-sse', '1'], ['/echo', 'conn-longpoll', '0'],
      ['/echo', 'conn-total', '3'], ['/echo', 'sessions', '1'], ['/echo', 'in', '7'],
      ['/chat', 'conn-longpoll', '1'], ['/chat', 'conn-total', '1'], ['/chat', 'sessions', '1'],
      ['/chat', 'gaps', '0'], ['/chat', 'resets', '0'],
    ];
    // The page refreshes itself: wait (bounded) for a second refresh, then for the figures
    // (the held poll and the SSE stream register asynchronously).
    try {
      await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 2, null, { timeout: 8000 });
      await page.waitForFunction((want) => want.every(([route, k, v]) => {
        const td = document.querySelector(`#routes tr[data-route="${CSS.escape(route)}"] td[data-k="${k}"]`);
        return td && td.textContent === v;
      }), expected, { timeout: 8000, polling: 100 });
    } catch (err) {
      await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, 'status-page-failed.png') }).catch(() => {});
      const json = await httpGet(adminPort, '/status.json').catch((e) => ({ body: String(e) }));
      throw new Error(`${err.message.split('\n')[0]}\nstatus.json: ${json.body}\npage: ${diag.join(' | ')}`);
    }
    for (const [route, k, v] of expected) assert.equal(await cell(route, k), v, `${route} ${k}`);

    // Share of clients by transport; 2 of 4 fell back.
    const legend = await page.locator('#share-legend span').evaluateAll((spans) =>
      Object.fromEntries(spans.map((s) => [s.dataset.transport, Number(s.dataset.count)])));
    assert.deepEqual(legend, { websocket: 2, ws_session: 0, sse: 1, longpoll: 1 });
    assert.equal(await page.locator('#fallback').textContent(), '50');
    assert.equal(await page.locator('#sessions').textContent(), '2');
    assert.equal(await page.locator('#clients').textContent(), '4');

    // Rejections by reason.
    const rejections = await page.locator('#rejections tbody tr').evaluateAll((rows) =>
      rows.map((r) => [r.dataset.reason, r.children[2].textContent, r.querySelector('[data-k="count"]').textContent]));
    assert.deepEqual(rejections, [['bad_transport', '400', '2'], ['not_found', '404', '1']]);

    // Reload and state.
    assert.equal(await page.locator('#reload-result').textContent(), 'ok');
    assert.equal(await page.locator('#reload-ok').textContent(), '0');
    assert.equal(await page.locator('#reload-error').textContent(), '0');
    assert.notEqual(await page.locator('#reload-time').textContent(), 'never');
    assert.equal(await page.locator('#state').textContent(), 'running');
    assert.equal(await page.locator('#instance').textContent(), 's1');

    // Config text is shown as text: the literal characters, and no element made from them.
    const escapedRow = page.locator(`#routes tr[data-route="${ESCAPED_PATH}"]`);
    assert.equal(await escapedRow.locator('td').first().textContent(), ESCAPED_PATH);
    assert.equal(await page.locator('#routes i').count(), 0);

    // Self-contained: nothing but the page and status.json, all from the admin origin.
    const foreign = requests.filter((u) => !u.startsWith(`${origin}/status`));
    assert.deepEqual(foreign, [], 'requests outside /status and /status.json');
    assert.deepEqual(diag.filter((d) => d.startsWith('pageerror')), []);

    fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
    await page.setViewportSize({ width: 1400, height: 720 });
    await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, 'status-page.png'), fullPage: true, timeout: 10000 });
  });
});
