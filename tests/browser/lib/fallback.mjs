// The fallback scenarios of the client module (examples/client/bridge-socket.js), driven through
// the chat demo page (examples/chat) in Debian's headless Chromium, through real restrictive
// intermediaries (shared/notes/restrictive-proxies.md). One suite, two runs:
//
//   node --test tests/browser/fallback.test.mjs         page and proxy on http://
//   node --test tests/browser/fallback_https.test.mjs   page and proxy on https:// (wsbridge's
//                                                       TLS listener; a test PKI made at run time)
//
// Over https a browser sends CONNECT for every request through a forward proxy, and a reverse
// proxy terminates TLS, so the intermediaries are their TLS-era counterparts
// (lib/intermediaries.mjs):
//
//  a  direct: WebSocket is used; chat messages both ways; text + binary echo.
//  b  http: Chromium behind squid (Debian's default ACLs refuse CONNECT to non-443 ports, so
//     ws:// cannot be tunnelled): falls back to SSE + POST; squid's access.log shows the denied
//     CONNECT and the SSE/POST requests.
//     https: Chromium behind squid intercepting TLS (ssl-bump with a CA the browser trusts; CONNECT
//     to the test's TLS ports allowed as to 443); squid drops the Upgrade header, so wsbridge
//     answers the handshake 400: falls back to SSE + POST; squid's access.log shows the bumped
//     400, SSE and POST requests. Messages both ways.
//  c  behind nginx with proxy_buffering on and X-Accel-Buffering ignored (the event stream is
//     held): falls back to long-polling; messages both ways; nginx's access.log shows the 400
//     (no Upgrade reached wsbridge), the abandoned SSE request and the polls. https: nginx
//     terminates TLS and proxies to wsbridge's TLS listener (upstream certificate verified).
//  d1 the SSE connection is cut mid-session (a relay; over https one that terminates TLS on both
//     hops, so it sees the requests): the browser's own reconnect (Last-Event-ID) resumes the
//     session: no loss, no duplicate, both ways, no reset.
//  d1b the same for long-polling (every open connection cut, new ones refused for 1.5 s): polls
//     resume with ack, POSTs are retried with the same seq.
//  d2 the proxy is killed (SIGKILL) and restarted while on a WebSocket session: the client's
//     resume (?session=S) meets wsbridge's 'reset' control, then the chat continues; what the
//     page sent while disconnected arrives exactly once.
//  d2r the same on the transparent relay (wsSession: false): the client's own 'reset'.
//  d3 the same on an SSE session: wsbridge answers the Last-Event-ID of the dead session with a
//     'reset' event and a fresh session; queued sends go to it exactly once.
//  d4 the same on long-polling with a graceful stop (SIGTERM once the page's poll is held, read
//     from /metrics: wsbridge answers it with the close 1001): the client reconnects and says
//     'reset'.
//  d5 behind squid (https: the bumping squid), the proxy killed under SSE: EventSource's
//     reconnect gets squid's 503 and gives up; the client continues the same session by
//     long-polling, which meets wsbridge's reset once it is back.
//
// Every scenario asserts the transport the client ends up on and that no message is lost or
// duplicated either way; over https also that the page and the chat URL are https.
// Chromium trusts the test certificates through --ignore-certificate-errors-spki-list (as
// tests/browser/tls.test.mjs): the main browser wsbridge's (and the page's, nginx's and the
// relay's, which share it) leaf key, the browser behind the bumping squid only squid's CA key
// (squid signs the certificates it mints with it, and gives them that key).
//
// Every process (backend, wsbridge, squid, nginx, Chromium, page server) is started here on
// OS-chosen loopback ports (squid, nginx and the restartable wsbridge get a port the OS chose
// and released) and stopped by PID; every wait is bounded. Screenshots of the demo
// page, page-state snapshots and the intermediaries' logs go to tests/browser/artifacts/.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';

// First: it points the harness's log directory at tests/browser/artifacts.
import { BROWSER_ARTIFACTS, browserSkip, launchChromium, startRelay, headerOf, stopAll } from './browser.mjs';
import { intermediarySkip, startSquid, startNginx, freePort } from './intermediaries.mjs';
import { startBackend, startProxy, proxyConfig, proxySkip, withTimeout, sleep } from '../../e2e/lib/harness.mjs';
import { metricSum, scrape } from '../../e2e/lib/hostile.mjs';
import { makePki, opensslSkip } from '../../e2e/lib/tls.mjs';
import { startChatServer } from '../../../examples/chat/server.mjs';

/**
 * Defines the suite. tls: false → page, proxy and intermediaries on http; true → on https
 * (see the file comment for what changes).
 */
export async function fallbackSuite({ tls = false } = {}) {
  const skip = proxySkip() || (await browserSkip()) || intermediarySkip({ bump: tls }) || (tls && opensslSkip());
  const scheme = tls ? 'https' : 'http';
  const label = tls ? 'fallback-https' : 'fallback';

  let pki;
  let backend;
  let proxy;
  let proxyPort;
  let proxyConfigText;
  let adminPort; // the running proxy's admin listener (/metrics)
  let nginxPort;
  let chat;
  let browser;
  const cleanups = [];

  const proxyOrigin = () => `${scheme}://127.0.0.1:${proxyPort}`;
  /** Chromium flags that make it trust certificates with certFile's key (https only). */
  const trust = (certFile) => [`--ignore-certificate-errors-spki-list=${pki.spki(certFile)}`];

  // ---- helpers ----------------------------------------------------------------------------------

  /** A chat participant connected straight to the backend (no proxy): sees every broadcast. */
  async function chatPeer(name) {
    const ws = new WebSocket(backend.url('/chat'));
    const got = [];
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      try {
        got.push(JSON.parse(String(data)));
      } catch {
        got.push({ raw: String(data) });
      }
    });
    ws.on('error', () => {});
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), 5000, `peer ${name} to connect to the backend`);
    let n = 0;
    return {
      name,
      got,
      send(text) {
        n += 1;
        ws.send(JSON.stringify({ from: name, text, id: `${name}-${n}` }));
      },
      /** Texts received from `from`, in order. */
      textsFrom: (from) => got.filter((m) => m.from === from).map((m) => m.text),
      async waitFor(pred, ms, what) {
        const deadline = Date.now() + ms;
        while (!pred(got)) {
          if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; peer got ${JSON.stringify(got.slice(-8))}`);
          await sleep(25);
        }
      },
      close() {
        ws.terminate();
      },
    };
  }

  async function openChat(b, url, label) {
    const page = await withTimeout(b.context.newPage(), 10000, 'a new page');
    page.diag = [];
    page.on('console', (m) => page.diag.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => page.diag.push(`pageerror: ${e.message}`));
    await page.goto(url, { timeout: 15000 });
    page.label = label;
    return page;
  }

  const state = (page) => page.evaluate(() => {
    const c = window.chat;
    if (!c?.socket) return null;
    return {
      url: c.url,
      transport: c.socket.transport,
      fallbackReason: c.socket.fallbackReason,
      readyState: c.socket.readyState,
      session: c.socket.session,
      received: c.received,
      events: c.events,
    };
  });

  function brief(s) {
    if (!s) return 'no page state';
    const { received, events, ...rest } = s;
    return JSON.stringify({ ...rest, received: received.slice(-6).map((m) => `${m.from}:${m.text}`), events });
  }

  /** Waits (bounded) until pred(window.chat) holds in the page; the error carries the page state. */
  async function waitChat(page, pred, arg, ms, what) {
    try {
      await page.waitForFunction(pred, arg, { timeout: ms, polling: 50 });
    } catch (err) {
      const s = await state(page).catch(() => null);
      throw new Error(`${page.label}: timed out after ${ms} ms waiting for ${what}: ${err.message.split('\n')[0]}\n` +
        `page: ${brief(s)}\nconsole: ${page.diag.slice(-10).join(' | ')}`);
    }
  }

  /** Waits for readyState OPEN; then the page and the chat URL must be on the suite's scheme. */
  async function waitOpen(page, ms = 15000) {
    await waitChat(page, () => window.chat?.socket?.readyState === 1, undefined, ms, 'readyState OPEN');
    assert.deepEqual(await page.evaluate(() => [location.protocol, new URL(window.chat.url).protocol]),
      [`${scheme}:`, `${scheme}:`], 'page and chat URL scheme');
  }
  const textsFrom = (s, from) => s.received.filter((m) => m.from === from).map((m) => m.text);
  const pageSend = (page, texts) => page.evaluate((t) => t.forEach((x) => window.chat.send(x)), texts);

  async function artifacts(page, name) {
    fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, `${label}-${name}.png`), timeout: 10000 });
    const s = await state(page);
    fs.writeFileSync(path.join(BROWSER_ARTIFACTS, `${label}-${name}.json`), JSON.stringify(s, null, 1));
    return s;
  }

  function saveLog(name, text) {
    fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(BROWSER_ARTIFACTS, `${label}-${name}`), text ?? '');
  }

  /**
   * A fresh squid and a Chromium behind it (the caller closes the browser). Over https the squid
   * bumps TLS with the test CA, which the browser trusts, and allows CONNECT to the page's and
   * wsbridge's ports. stopSquid() (once; after() runs it too) stops squid, saves its logs as
   * `<name>-squid-*.log` and resolves what squid.stop() did.
   */
  async function behindSquid(name) {
    const squid = await startSquid(tls ? { bump: { ca: pki.ca, sslPorts: [chat.port, proxyPort] } } : {});
    let stopped = null;
    const stopSquid = () => {
      stopped ??= (async () => {
        const r = await squid.stop();
        saveLog(`${name}-squid-access.log`, r.accessLog);
        saveLog(`${name}-squid-cache.log`, r.cacheLog);
        squid.cleanup();
        return r;
      })();
      return stopped;
    };
    cleanups.push(stopSquid);
    const b = await launchChromium({
      args: [`--proxy-server=http://127.0.0.1:${squid.port}`, '--proxy-bypass-list=<-loopback>', ...(tls ? trust(pki.ca.cert) : [])],
    });
    return { b, stopSquid };
  }

  /** Chat messages both ways between the page (`me`) and a peer; asserts exactly once, in order. */
  async function bothWays(page, me, label) {
    const peer = await chatPeer(`${label}-peer`);
    try {
      const toPage = [1, 2, 3].map((i) => `${label}: peer→page ${i}`);
      const toPeer = [1, 2, 3].map((i) => `${label}: page→peer ${i}`);
      const t0 = Date.now();
      for (const t of toPage) peer.send(t);
      await waitChat(page, (args) => window.chat.received.filter((m) => m.from === args.from).length >= 3,
        { from: peer.name }, 10000, 'three messages from the peer');
      const down = Date.now() - t0;
      const t1 = Date.now();
      await pageSend(page, toPeer);
      await peer.waitFor((got) => got.filter((m) => m.from === me).length >= 3, 10000, `three messages from ${me}`);
      const up = Date.now() - t1;
      await sleep(300); // nothing more may arrive
      const s = await state(page);
      assert.deepEqual(textsFrom(s, peer.name), toPage, 'peer → page: exactly once, in order');
      assert.deepEqual(peer.textsFrom(me), toPeer, 'page → peer: exactly once, in order');
      // The broadcast also returns the page's own messages to it.
      await waitChat(page, (args) => window.chat.received.filter((m) => m.from === args.me).length >= 3, { me }, 5000, 'own messages back');
      assert.deepEqual(textsFrom(await state(page), me), toPeer, 'own messages come back once each');
      return { downMs: down, upMs: up };
    } finally {
      peer.close();
    }
  }

  /** In the page: a second BridgeSocket on /echo; text with CR, ArrayBuffer, typed array, Blob. */
  async function echoCheck(page, echoUrl) {
    const r = await page.evaluate(async (url) => {
      const { BridgeSocket } = await import('/bridge-socket.js');
      const s = new BridgeSocket(url, { binaryType: 'arraybuffer' });
      const got = [];
      s.onmessage = (e) => got.push(typeof e.data === 'string' ? `text:${e.data}` : `bin:${[...new Uint8Array(e.data)].join(',')}`);
      s.send('line 1\r\nline 2');
      s.send(new Uint8Array([0, 1, 2, 255]).buffer);
      s.send(new Uint16Array([0x0102]));
      s.send(new Blob([new Uint8Array([7, 8, 9])]));
      s.send('é ✓ last');
      const t0 = Date.now();
      while (got.length < 5 && Date.now() - t0 < 10000) await new Promise((res) => setTimeout(res, 25));
      await new Promise((res) => setTimeout(res, 200));
      const transport = s.transport;
      const closed = new Promise((res) => { s.onclose = (e) => res({ code: e.code, wasClean: e.wasClean }); });
      s.close();
      const close = await Promise.race([closed, new Promise((res) => setTimeout(() => res('no close event'), 5000))]);
      return { got, transport, close };
    }, echoUrl);
    assert.deepEqual(r.got, ['text:line 1\r\nline 2', 'bin:0,1,2,255', 'bin:2,1', 'bin:7,8,9', 'text:é ✓ last'],
      `echo over ${r.transport}: text and binary (ArrayBuffer, Uint16Array, Blob) round-trip in order`);
    assert.deepEqual(r.close, { code: 1000, wasClean: true }, 'close()');
    return r.transport;
  }

  async function killProxy() {
    proxy.child.proc.kill('SIGKILL');
    await withTimeout(proxy.child.exited, 5000, 'the killed proxy to exit');
    proxy.child.saveLog(`${label}-killed`);
    fs.rmSync(path.dirname(proxy.configFile), { recursive: true, force: true }); // what stop() removes
  }

  async function restartProxy() {
    proxy = await startProxy(proxyConfigText, { label });
    assert.equal(proxy.port, proxyPort, 'the restarted proxy listens on the same port');
    adminPort = Number((await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
  }

  /** Waits (bounded) until the proxy holds `n` polls (wsbridge_connections{transport="longpoll"}). */
  async function waitHeldPolls(n, ms = 5000) {
    const deadline = Date.now() + ms;
    let held;
    while ((held = metricSum(await scrape(adminPort), 'wsbridge_connections', { transport: 'longpoll' })) !== n) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${n} held poll(s) (have ${held})`);
      await sleep(20);
    }
  }

  // ---- tests ------------------------------------------------------------------------------------

  describe(`BridgeSocket fallback in headless Chromium (page and proxy on ${scheme})`, { skip, timeout: 180000 }, () => {
    before(async () => {
      if (tls) pki = makePki();
      backend = await startBackend({ label });
      chat = await startChatServer({ port: 0, proxy: '', tls: tls ? pki.server.pem : undefined });
      proxyPort = await freePort();
      nginxPort = await freePort();
      const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
      // The page's own origin, and nginx's (scenario c serves page and proxy on one origin).
      const origins = [chat.origin, `${scheme}://127.0.0.1:${nginxPort}`];
      const address = `127.0.0.1:${proxyPort}`;
      proxyConfigText = proxyConfig([
        { path: '/chat', backend: be('/chat'), origins },
        { path: '/echo', backend: be('/echo'), origins },
      ], {
        listen: [tls ? { address, tls: { cert: pki.server.cert, key: pki.server.key } } : address],
        extra: 'admin: { address: 127.0.0.1:0 }\n',
      });
      await restartProxy();
      if (tls) assert.deepEqual(proxy.tlsPorts, [proxyPort], 'the listener is TLS');
      browser = await launchChromium({ args: tls ? trust(pki.server.cert) : [] });
    });

    after(() => stopAll([
      ['cleanups', async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); }],
      ['browser', () => browser?.close()],
      ['page server', () => chat?.close()],
      ['proxy', () => proxy?.stop()],
      ['backend', () => backend?.stop()],
      ['test PKI', () => pki?.cleanup()],
    ]));

    /**
     * Scenarios a, b, c: the chat page at `url` (+ &name=) in browser `b` opens on `transport`,
     * having fallen back for `reason` (a RegExp; null: the first transport worked); chat
     * messages both ways and the echo round trip on `echoOrigin` arrive exactly once, in order;
     * no reconnect, reset, gap or error. Screenshot and state go to `<artifact>.*`.
     */
    async function chatScenario(t, { b = browser, name, url, echoOrigin, transport, reason, artifact }) {
      const me = `${name}-page`;
      const page = await openChat(b, `${url}&name=${me}`, name);
      const t0 = Date.now();
      await waitOpen(page);
      const opened = Date.now() - t0;
      let s = await state(page);
      assert.equal(s.transport, transport, brief(s));
      if (reason) assert.match(s.fallbackReason, reason, brief(s));
      else assert.equal(s.fallbackReason, null, brief(s));
      const timing = await bothWays(page, me, name);
      assert.equal(await echoCheck(page, `${echoOrigin}/echo`), transport);
      s = await artifacts(page, artifact);
      // 'share': on SSE and long-poll the page leads the connection shared between tabs.
      assert.deepEqual(s.events.filter((e) => !['transport', 'open', 'share'].includes(e.type)), [], 'no reconnect/reset/gap/error');
      t.diagnostic(`${transport} open after ${opened} ms (a WebSocket after its 1000 ms probe window); fallbackReason: ${s.fallbackReason}; ` +
        `peer→page ${timing.downMs} ms, page→peer ${timing.upMs} ms`);
      await page.close();
    }

    test('a: direct — WebSocket, messages both ways', { timeout: 30000 }, async (t) => {
      await chatScenario(t, {
        name: 'a', url: `${chat.url}?proxy=${proxyOrigin()}`, echoOrigin: proxyOrigin(),
        transport: 'websocket', reason: null, artifact: 'a-direct-websocket',
      });
    });

    const squidWhat = tls ? 'squid bumping TLS, Upgrade dropped' : 'squid, CONNECT to non-443 refused';
    test(`b: behind ${squidWhat} — SSE + POST, messages both ways`, { timeout: 45000 }, async (t) => {
      const { b, stopSquid } = await behindSquid('b');
      try {
        await chatScenario(t, {
          b, name: 'b', url: `${chat.url}?proxy=${proxyOrigin()}`, echoOrigin: proxyOrigin(), transport: 'sse',
          reason: /^websocket: failed to open \(close 1006 after \d+ ms\)$/, artifact: 'b-squid-sse',
        });
      } finally {
        await b.close();
      }
      // squid logs a transaction when it ends: the streams are closed now.
      const r = await stopSquid();
      const lines = r.accessLog.split('\n').filter((l) => l.includes(`127.0.0.1:${proxyPort}`));
      const url = `${scheme}://127\\.0\\.0\\.1:${proxyPort}/chat`;
      const want = tls ? [
        // Bumped: squid saw the handshake inside the tunnel and forwarded it as a plain GET
        // (_ABORTED when Chromium dropped the connection as soon as it read the 400's head).
        [`TCP_MISS(_ABORTED)?/400 .* GET ${url} `, 'squid bumped the WebSocket handshake and wsbridge answered it 400 (no Upgrade)'],
      ] : [
        [`TCP_DENIED/403 .* CONNECT 127\\.0\\.0\\.1:${proxyPort} `, 'squid denied the WebSocket CONNECT'],
      ];
      // The (shared) stream is `?transport=mux&session=…`: squid logs it as `/chat?`.
      want.push([`/200 .* GET ${url}\\?? .*text/event-stream`, 'the SSE stream went through squid'],
        // (squid strips query strings from its log lines by default)
        [`TCP_MISS/200 .* POST ${url}\\? `, 'the sends went through squid']);
      for (const [re, what] of want) assert.ok(lines.some((l) => new RegExp(re).test(l)), `${what}:\n${lines.join('\n')}`);
    });

    test(`c: behind buffering nginx${tls ? ' terminating TLS' : ''} — long-polling, messages both ways`, { timeout: 45000 }, async (t) => {
      const nginx = await startNginx({
        port: nginxPort,
        // Over https nginx terminates TLS and verifies wsbridge's and the page server's certificate.
        tls: tls ? { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, name: 'localhost' } : undefined,
        locations: [
          { path: '/chat', upstreamPort: proxyPort },
          { path: '/echo', upstreamPort: proxyPort },
          { path: '/', upstreamPort: chat.port },
        ],
      });
      let nginxStopped = false;
      const stopNginx = async () => {
        if (nginxStopped) return null;
        nginxStopped = true;
        const r = await nginx.stop();
        saveLog('c-nginx-access.log', r.accessLog);
        saveLog('c-nginx-error.log', r.errorLog);
        nginx.cleanup();
        return r;
      };
      cleanups.push(stopNginx);
      // Page and proxy on nginx's origin (?proxy= empty: the page's own origin).
      await chatScenario(t, {
        name: 'c', url: `${nginx.origin}/?proxy=`, echoOrigin: nginx.origin, transport: 'longpoll',
        // nginx holds even the response head of the (shared) event stream.
        reason: /^websocket: failed to open \(close 1006 after \d+ ms\); sse: (no session announce within 3000 ms|shared event stream: no response at all within 3000 ms)/,
        artifact: 'c-nginx-longpoll',
      });
      const r = await stopNginx();
      const log = r.accessLog;
      assert.match(log, /"GET \/chat HTTP\/1\.1" 400 /, 'the WebSocket attempt reached wsbridge without Upgrade (400)');
      assert.match(log, /"GET \/chat\?transport=longpoll HTTP\/1\.1" 200 /, 'long-poll open through nginx');
      assert.match(log, /"POST \/chat\?session=[^ ]*&seq=1[^ ]* HTTP\/1\.1" 200 /, 'sends through nginx');
    });

    /**
     * The page talks to wsbridge through a TCP relay; `cut` connections are destroyed mid-session
     * and the relay holds every new connection for a while. The session must resume with no loss
     * and no duplicate either way.
     */
    async function cutScenario(t, { name, transports, expectTransport, cut: cutMatch, refuse = false, settle }) {
      const relay = await startRelay(proxyPort, tls ? { tls: { ...pki.server.pem, ca: pki.ca.pem.cert } } : {});
      cleanups.push(() => relay.close());
      const me = `${name}-page`;
      const peerName = `${name}-peer`;
      // share=0: these cuts exercise one tab's own connection (EventSource's Last-Event-ID
      // reconnect, its polls); tabs.test.mjs covers the connection shared between tabs.
      const page = await openChat(browser, `${chat.url}?proxy=${relay.origin}&name=${me}&transports=${transports}&share=0`, name);
      await waitOpen(page);
      const peer = await chatPeer(peerName);
      try {
        const before = [1, 2, 3, 4, 5].map((i) => `p${i}`);
        for (const x of before) peer.send(x);
        await waitChat(page, (p) => window.chat.received.filter((m) => m.from === p).length >= 5, peerName, 10000, 'p1..p5');
        const s0 = await state(page);
        assert.equal(s0.transport, expectTransport);
        const session = s0.session;

        const victims = relay.cutNow(cutMatch, { refuse });
        assert.ok(victims.length >= 1, 'a connection was cut');
        const tCut = Date.now();
        await waitChat(page, () => window.chat.socket.readyState === 0, undefined, 5000, 'CONNECTING after the cut');
        // While the browser is away (the relay holds its reconnects): the peer talks, the page sends.
        const during = [1, 2, 3, 4, 5].map((i) => `q${i}`);
        for (const x of during) peer.send(x);
        const mine = ['b1', 'b2', 'b3'];
        await pageSend(page, mine);
        await sleep(settle);
        const held = await state(page);
        assert.deepEqual(textsFrom(held, peerName), before, 'nothing reaches the page while it is cut off');
        const heldCount = relay.heldCount();
        relay.release();

        await waitChat(page, (p) => window.chat.received.filter((m) => m.from === p).length >= 10 &&
          window.chat.socket.readyState === 1, peerName, 15000, 'q1..q5 after the resume');
        await peer.waitFor((got) => got.filter((m) => m.from === me).length >= 3, 10000, 'b1..b3 at the peer');
        await waitChat(page, (p) => window.chat.received.filter((m) => m.from === p).length >= 3, me, 5000, 'own b1..b3 back');
        await sleep(300);
        const s = await artifacts(page, `${name}-cut-resumed-${expectTransport}`);
        t.diagnostic(`cut ${victims.length} connection(s); ${heldCount} held, ${relay.refusedCount()} refused; resumed ${Date.now() - tCut} ms after the cut; ` +
          `events: ${JSON.stringify(s.events.slice(2))}`);

        assert.deepEqual(textsFrom(s, peerName), [...before, ...during], 'peer → page: no loss, no duplicate, in order');
        assert.deepEqual(peer.textsFrom(me), mine, 'page → peer: exactly once, in order');
        assert.deepEqual(textsFrom(s, me), mine, 'own messages back once each');
        assert.equal(s.transport, expectTransport, 'same transport');
        assert.equal(s.session, session, 'same session');
        const types = s.events.map((e) => e.type);
        assert.ok(!types.includes('reset') && !types.includes('gap') && !types.includes('error'), `no reset/gap/error: ${types}`);
        assert.ok(s.events.some((e) => e.type === 'reconnect' && e.resumed === true), 'a resumed reconnect');
        await page.close();
        return { relay, session, held };
      } finally {
        peer.close();
      }
    }

    test('d1: SSE connection cut mid-session — resumed by Last-Event-ID, no loss, no duplicate', { timeout: 40000 }, async (t) => {
      const { relay, session, held } = await cutScenario(t, {
        name: 'd1', transports: 'sse,longpoll', expectTransport: 'sse',
        cut: /^GET \/chat[\s\S]*text\/event-stream/i,
        settle: 1500, // EventSource's reconnect (retry: 1000) is held by the relay meanwhile
      });
      // The wire: the browser's own reconnect carried Last-Event-ID for this session.
      const resumes = relay.requests().filter((c) => /^GET \/chat/.test(c.request) && headerOf(c.request, 'Last-Event-ID'));
      assert.ok(resumes.length >= 1, 'a GET with Last-Event-ID');
      assert.equal(headerOf(resumes[0].request, 'Last-Event-ID'), `${session}.${held.received.length}`);
    });

    test('d1b: every long-poll connection cut mid-session — resumed by ack, no loss, no duplicate', { timeout: 40000 }, async (t) => {
      // New connections are refused (not held) meanwhile: Chromium quietly retries a GET whose
      // reused connection died, so only a refused retry makes the failure reach the page.
      await cutScenario(t, {
        name: 'd1b', transports: 'longpoll', expectTransport: 'longpoll',
        cut: /^/, // the held poll, and any idle keep-alive connection
        refuse: true,
        settle: 1500, // polls and POSTs fail and are retried with backoff meanwhile
      });
    });

    async function restartScenario(t, { name, transports, startTransport, expectTransport, signal = 'SIGKILL', b = browser, whileDown, query = '' }) {
      const me = `${name}-page`;
      const page = await openChat(b, `${chat.url}?proxy=${proxyOrigin()}&name=${me}${transports ? `&transports=${transports}` : ''}${query}`, name);
      await waitOpen(page);
      const peer = await chatPeer(`${name}-peer`);
      try {
        assert.equal((await state(page)).transport, startTransport ?? expectTransport);
        const before = ['p1', 'p2', 'p3'];
        for (const x of before) peer.send(x);
        await waitChat(page, (p) => window.chat.received.filter((m) => m.from === p).length >= 3, peer.name, 10000, 'p1..p3');

        const tKill = Date.now();
        if (signal === 'SIGKILL') await killProxy();
        else {
          // The drain closes sessions with 1001 and exits once no connection is left, so only a
          // held poll carries the 1001: wait until the page's next poll is there.
          if ((startTransport ?? expectTransport) === 'longpoll') await waitHeldPolls(1);
          await proxy.stop(); // SIGTERM: wsbridge drains (close 1001), then exits
          proxy.child.saveLog(`${label}-drained`);
        }
        await waitChat(page, () => window.chat.socket.readyState === 0, undefined, 5000, 'CONNECTING after the kill');
        const mine = ['b1', 'b2', 'b3'];
        await pageSend(page, mine);           // queued while disconnected
        peer.send('q1');                       // nobody relays these to the page: covered by 'reset'
        peer.send('q2');
        await sleep(700);
        if (whileDown) await whileDown(page);
        await restartProxy();
        const tUp = Date.now();
        await waitChat(page, () => window.chat.socket.readyState === 1 && window.chat.events.some((e) => e.type === 'reset'),
          undefined, 20000, 'OPEN again with a reset');
        const back = Date.now() - tUp;
        const after = ['r1', 'r2', 'r3'];
        for (const x of after) peer.send(x);
        await waitChat(page, (p) => window.chat.received.some((m) => m.from === p && m.text === 'r3'), peer.name, 10000, 'r3');
        await peer.waitFor((got) => got.filter((m) => m.from === me).length >= 3, 10000, 'b1..b3 at the peer');
        await sleep(300);
        const s = await artifacts(page, `${name}-restart-${expectTransport}`);
        const reset = s.events.find((e) => e.type === 'reset');
        t.diagnostic(`reconnected ${back} ms after the restart (${Date.now() - tKill} ms after the kill); reset: ${JSON.stringify(reset)}`);

        assert.equal(s.transport, expectTransport, brief(s));
        assert.deepEqual(textsFrom(s, peer.name), [...before, ...after],
          'every message sent while connected arrives once; q1, q2 (sent while the proxy was down) are covered by the reset');
        assert.equal(s.events.filter((e) => e.type === 'reset').length, 1, `one reset: ${brief(s)}`);
        assert.equal(reset.at, s.received.findIndex((m) => m.text === 'p3') + 1, 'the reset comes right after p3, before anything of the new connection');
        assert.deepEqual(peer.textsFrom(me), mine, 'what the page sent while disconnected arrives exactly once, in order');
        assert.ok(!s.events.some((e) => e.type === 'gap' || e.type === 'error' || e.type === 'close'), brief(s));
        await page.close();
        return { s, reset };
      } finally {
        peer.close();
      }
    }

    test('d2: proxy killed and restarted under a WebSocket session — wsbridge\'s reset, queued sends exactly once', { timeout: 40000 }, async (t) => {
      const { reset } = await restartScenario(t, { name: 'd2', transports: '', expectTransport: 'websocket' });
      assert.equal(reset.reason, 'unknown session', 'the reset comes from wsbridge (the WebSocket resumed a session it does not know)');
      assert.equal(reset.transport, 'websocket');
    });

    test('d2r: proxy killed and restarted under a relayed WebSocket (wsSession: false) — the client\'s reset, queued sends exactly once', { timeout: 40000 }, async (t) => {
      const { s, reset } = await restartScenario(t, { name: 'd2r', transports: '', expectTransport: 'websocket', query: '&relay=1' });
      assert.match(reset.reason, /^websocket closed \(1006/);
      assert.equal(reset.transport, 'websocket');
      assert.equal(s.session, null, 'a relay, not a session');
    });

    test('d3: proxy killed and restarted under an SSE session — wsbridge\'s reset, queued sends exactly once', { timeout: 40000 }, async (t) => {
      const { reset } = await restartScenario(t, { name: 'd3', transports: 'sse,longpoll', expectTransport: 'sse' });
      assert.equal(reset.reason, 'unknown session', 'the reset comes from wsbridge (Last-Event-ID of a session it does not know)');
      assert.equal(reset.transport, 'sse');
    });

    test('d4: proxy stopped (SIGTERM drain) and restarted under long-polling — reset, queued sends exactly once', { timeout: 40000 }, async (t) => {
      // share=0: the scenario counts the page's own held poll (wsbridge_connections).
      const { reset } = await restartScenario(t, { name: 'd4', transports: 'longpoll', expectTransport: 'longpoll', signal: 'SIGTERM', query: '&share=0' });
      assert.match(reset.reason, /1001/, 'the drain closed the session with 1001; the client reconnected');
      assert.equal(reset.transport, 'longpoll');
    });

    test(`d5: behind ${tls ? 'the bumping ' : ''}squid, proxy killed under SSE — EventSource refused (squid 503), the session continues by long-polling, reset`, { timeout: 45000 }, async (t) => {
      const { b, stopSquid } = await behindSquid('d5');
      try {
        const { s, reset } = await restartScenario(t, {
          // share=0: the switch below is the one of a tab's own EventSource.
          name: 'd5', b, startTransport: 'sse', expectTransport: 'longpoll', query: '&share=0',
          // EventSource's own reconnect (1 s) gets squid's 503 while wsbridge is down, which ends
          // it (CLOSED): the client then polls the same session, with backoff, through squid.
          whileDown: (page) => waitChat(page, () => window.chat.socket.transport === 'longpoll', undefined, 10000,
            'the switch to long-polling after the EventSource was refused'),
        });
        assert.match(s.fallbackReason, /^sse: the EventSource was refused on reconnect \(HTTP error\); the session continues by long-polling$/);
        assert.equal(reset.reason, 'unknown session', 'the poll of the dead session was answered with wsbridge\'s reset');
        assert.equal(reset.transport, 'longpoll');
      } finally {
        await b.close();
        await stopSquid();
      }
    });
  });
}
