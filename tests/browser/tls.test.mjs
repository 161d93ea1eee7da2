// Real-browser tests over TLS: Debian's headless Chromium loads a page served over https by a
// small Node https server (the test CA's localhost/127.0.0.1 certificate, lib/tls.mjs), and the
// page talks to wsbridge's TLS listener on another port (a cross-origin page the route lists):
//
//   node --test tests/browser/tls.test.mjs
//
//  - WebSocket (wss://) echo, text and binary
//  - EventSource (https://) receives what fetch() POSTs to the session's send URL
//  - BridgeSocket (examples/client/bridge-socket.js) with each transport forced through
//    `transports`: websocket, sse, longpoll; every one echoes text and binary both ways
//  - a negative control: a second TLS listener whose certificate the browser does not trust
//    refuses the same WebSocket, so the trust the other tests rely on is real
//
// Chromium trusts the test certificate through --ignore-certificate-errors-spki-list with the
// base64 SHA-256 of the server certificate's public key (honoured by Debian's Chromium 156 with
// the fresh user-data-dir the launcher uses); the untrusted listener's key is not on the list.
// Every process is started here on OS-chosen loopback ports and stopped by PID; every wait is
// bounded.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// First: it points the harness's log directory at tests/browser/artifacts.
import { BROWSER_ARTIFACTS, browserSkip, launchChromium, listenPage } from './lib/browser.mjs';
import { startBackend, startProxy, proxyConfig, proxySkip, withTimeout } from '../e2e/lib/harness.mjs';
import { makePki, opensslSkip } from '../e2e/lib/tls.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BRIDGE_SOCKET = path.join(HERE, '..', '..', 'examples', 'client', 'bridge-socket.js');
const skip = proxySkip() || opensslSkip() || (await browserSkip());
const T = 60000;

let pki;
let backend;
let proxy;
let proxyOrigin; // https://127.0.0.1:PORT (trusted certificate)
let rogueOrigin; // https://127.0.0.1:PORT (certificate of an untrusted CA)
let pageServer;
let browser;
let page;

/** Serves a blank page and the client module over https. Resolves {port, origin, close()}. */
function servePageHttps({ cert, key }) {
  const server = https.createServer({ cert, key }, (req, res) => {
    const headers = { 'Cache-Control': 'no-store' };
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>wsbridge tls test</title><p id="status">loaded over https</p>');
    } else if (req.url === '/bridge-socket.js') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/javascript; charset=utf-8' });
      res.end(fs.readFileSync(BRIDGE_SOCKET));
    } else {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404, headers);
      res.end();
    }
  });
  return listenPage(server);
}

/** In the page: what `fn(arg)` returns, with the page's console on failure. */
async function inPage(fn, arg, what) {
  try {
    return await withTimeout(page.evaluate(fn, arg), 30000, what);
  } catch (err) {
    throw new Error(`${what}: ${err.message}\nconsole: ${page.diag.slice(-10).join(' | ')}`);
  }
}

describe('browser over TLS (https page, wss/https proxy)', { skip }, () => {
  before(async () => {
    pki = makePki();
    backend = await startBackend({ label: 'browser-tls' });
    pageServer = await servePageHttps({ cert: pki.server.pem.cert, key: pki.server.pem.key });
    const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: be('/echo'), transports: ['websocket', 'sse', 'longpoll'], origins: [pageServer.origin], idle_timeout: '60s' },
    ], {
      listen: [
        { address: '127.0.0.1:0', tls: { cert: pki.server.cert, key: pki.server.key } },
        { address: '127.0.0.1:0', tls: { cert: pki.untrusted.cert, key: pki.untrusted.key } },
      ],
    }), { listeners: 2, label: 'browser-tls' });
    assert.deepEqual(proxy.tlsPorts, proxy.ports, 'both listeners are TLS');
    proxyOrigin = `https://127.0.0.1:${proxy.ports[0]}`;
    rogueOrigin = `https://127.0.0.1:${proxy.ports[1]}`;
    browser = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${pki.spki(pki.server.cert)}`] });
    page = await withTimeout(browser.context.newPage(), 10000, 'a new page');
    page.diag = [];
    page.on('console', (m) => page.diag.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => page.diag.push(`pageerror: ${e.message}`));
    const res = await page.goto(`${pageServer.origin}/`, { timeout: 15000 });
    assert.equal(res.status(), 200);
    assert.equal(await page.evaluate(() => window.isSecureContext && location.protocol), 'https:');
  });

  after(async () => {
    if (page) {
      try {
        fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, 'tls-page.png'), timeout: 10000 });
      } catch {
        // best effort
      }
    }
    await browser?.close();
    await pageServer?.close();
    await proxy?.stop();
    await backend?.stop();
    pki?.cleanup();
  });

  test('WebSocket over wss:// echoes text and binary', { timeout: T }, async () => {
    const r = await inPage(async (url) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      const got = [];
      const result = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), 10000);
        ws.onerror = () => { clearTimeout(timer); resolve('error'); };
        ws.onclose = (e) => { clearTimeout(timer); resolve(`close ${e.code}`); };
        ws.onopen = () => {
          ws.send('hello over wss ✓');
          ws.send(new Uint8Array([0, 1, 254, 255]));
        };
        ws.onmessage = (e) => {
          got.push(typeof e.data === 'string' ? `text:${e.data}` : `bin:${[...new Uint8Array(e.data)].join(',')}`);
          if (got.length === 2) { clearTimeout(timer); resolve('ok'); }
        };
      });
      ws.close(1000);
      return { result, got };
    }, `${proxyOrigin.replace('https:', 'wss:')}/echo`, 'the WebSocket echo');
    assert.deepEqual(r, { result: 'ok', got: ['text:hello over wss ✓', 'bin:0,1,254,255'] });
  });

  test('EventSource over https:// receives what fetch() POSTs to the session', { timeout: T }, async () => {
    const r = await inPage(async (origin) => {
      const es = new EventSource(`${origin}/echo`);
      const events = [];
      const posts = [];
      let messages = 0;
      const result = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), 15000);
        const check = () => {
          if (messages === 2 && posts.length === 2) { clearTimeout(timer); resolve('ok'); }
        };
        es.onerror = () => events.push(`error readyState=${es.readyState}`);
        es.addEventListener('session', async (e) => {
          const { send } = JSON.parse(e.data);
          events.push('session');
          const a = await fetch(`${origin}${send}&seq=1`, { method: 'POST', body: 'first via EventSource' });
          posts.push(`post ${a.status} ${await a.text()}`);
          const b = await fetch(`${origin}${send}&seq=2`, { method: 'POST', body: 'line 1\nline 2' });
          posts.push(`post ${b.status} ${await b.text()}`);
          check();
        });
        es.onmessage = (e) => {
          events.push(`message:${e.data}`);
          messages++;
          check();
        };
      });
      es.close();
      return { result, events, posts };
    }, proxyOrigin, 'the EventSource exchange');
    assert.deepEqual(r, {
      result: 'ok',
      events: ['session', 'message:first via EventSource', 'message:line 1\nline 2'],
      posts: ['post 200 {"next_seq":2}', 'post 200 {"next_seq":3}'],
    });
  });

  for (const transport of ['websocket', 'sse', 'longpoll']) {
    test(`BridgeSocket forced to ${transport} over TLS: echoes text and binary`, { timeout: T }, async () => {
      const r = await inPage(async ({ origin, transport: t }) => {
        const { BridgeSocket } = await import('/bridge-socket.js');
        const s = new BridgeSocket(`${origin}/echo`, { transports: [t], binaryType: 'arraybuffer' });
        const got = [];
        const events = [];
        s.addEventListener('transport', (e) => events.push(`transport:${e.transport ?? e.detail?.transport ?? ''}`));
        s.onerror = () => events.push('error');
        s.onclose = (e) => events.push(`close ${e.code}`);
        s.onmessage = (e) => got.push(typeof e.data === 'string' ? `text:${e.data}` : `bin:${[...new Uint8Array(e.data)].join(',')}`);
        s.send(`hello via ${t}`);
        s.send(new Uint8Array([9, 8, 7]).buffer);
        s.send('é ✓ last');
        const t0 = Date.now();
        while (got.length < 3 && Date.now() - t0 < 15000) await new Promise((res) => setTimeout(res, 25));
        await new Promise((res) => setTimeout(res, 200)); // nothing more may arrive
        const out = { transport: s.transport, readyState: s.readyState, url: s.url, got, events, fallbackReason: s.fallbackReason };
        s.close();
        return out;
      }, { origin: proxyOrigin, transport }, `BridgeSocket over ${transport}`);
      assert.deepEqual({ transport: r.transport, readyState: r.readyState, got: r.got, fallbackReason: r.fallbackReason },
        { transport, readyState: 1, got: [`text:hello via ${transport}`, 'bin:9,8,7', 'text:é ✓ last'], fallbackReason: null },
        JSON.stringify(r.events));
    });
  }

  test('negative control: a listener with an untrusted certificate is refused by the browser', { timeout: T }, async () => {
    const r = await inPage(async (url) => {
      const ws = new WebSocket(url);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), 10000);
        ws.onopen = () => { clearTimeout(timer); ws.close(); resolve('open'); };
        ws.onerror = () => { clearTimeout(timer); resolve('error'); };
      });
    }, `${rogueOrigin.replace('https:', 'wss:')}/echo`, 'the untrusted WebSocket');
    assert.equal(r, 'error');
    const f = await inPage(async (url) => {
      try {
        await fetch(url);
        return 'fetched';
      } catch (e) {
        return `failed: ${e.name}`;
      }
    }, `${rogueOrigin}/echo?transport=longpoll`, 'the untrusted fetch');
    assert.equal(f, 'failed: TypeError');
  });
});
