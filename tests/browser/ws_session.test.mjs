// BridgeSocket on wsbridge's session transport over WebSocket (docs/protocol.md, "WebSocket
// sessions"; examples/client/bridge-socket.js) in headless Chromium: one chat page, one session,
// moved between transports while both sides keep talking.
//
//   node --test tests/browser/ws_session.test.mjs
//
// The page (examples/chat) reaches wsbridge through a WebSocket gate (lib/ws_gate.mjs), an
// intermediary whose policy the test changes while the page is open; a peer talks to the
// backend's /chat room directly. Throughout, the peer sends p1, p2, … and the page b1, b2, …
// every 40 ms, and every scenario ends by asserting the exact sequences: the page got p1..pN
// and its own b1..bM back, the peer got b1..bM, each exactly once and in order.
//
//  a  the page opens a session on WebSocket; the gate then cuts it and refuses every new
//     WebSocket (403): the client resumes THE SAME session over SSE (a new EventSource on
//     ?session=S&ack=N), resending its unconfirmed messages by POST; no reset, no gap.
//  b  the gate allows WebSocket again: the client probes up and moves the same session onto a
//     WebSocket (?session=S&ack=N&seq=M); wsbridge ends the SSE stream, which the client does
//     not take for a failure (no reconnecting).
//  c  the session's WebSocket is cut mid-stream (TCP, both sides): it resumes on WebSocket;
//     what was in flight either way arrives exactly once.
//  d  the gate blocks WebSocket and SSE: the same session continues by long-polling
//     (?session=S&ack=N), sends by POST.
//  e  WebSocket allowed again: the client probes up from long-polling and moves the session
//     onto a WebSocket; wsbridge answers the held poll empty, which is no failure either.
//  f  a second Chromium behind squid (Debian's ACLs refuse CONNECT to non-443 ports, so
//     WebSocket never works; lib/intermediaries.mjs): the session opens on SSE and the client's
//     probes up (?session=S) are denied by squid over and over, silently: no event reaches the
//     page and the messages still arrive exactly once.
//
// Every process (backend, wsbridge, squid, Chromium, page server) is started here and stopped by PID;
// every wait is bounded. Screenshots and page-state snapshots go to tests/browser/artifacts/.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';

// First: it points the harness's log directory at tests/browser/artifacts.
import { BROWSER_ARTIFACTS, browserSkip, launchChromium, stopAll } from './lib/browser.mjs';
import { startWsGate } from './lib/ws_gate.mjs';
import { intermediarySkip, startSquid } from './lib/intermediaries.mjs';
import { startBackend, startProxy, proxyConfig, proxySkip, withTimeout, sleep } from '../e2e/lib/harness.mjs';
import { startChatServer } from '../../examples/chat/server.mjs';

const LABEL = 'ws_session';
const skip = proxySkip() || (await browserSkip()) || intermediarySkip();

let backend;
let proxy;
let chat;
let gate;
let browser;
let page;         // the page, peer and page name the helpers below work on
let peer;
let me = 'ws-page';
let session;      // the session id the page opened
let squid;        // scenario f
let squidBrowser;

/** A chat participant connected straight to the backend; keeps every message it gets. */
async function chatPeer(name) {
  const ws = new WebSocket(backend.url('/chat'));
  const got = [];
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      try {
        got.push(JSON.parse(String(data)));
      } catch {
        got.push({ raw: String(data) });
      }
    }
  });
  ws.on('error', () => {});
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 5000, `peer ${name} to connect to the backend`);
  let n = 0;
  let timer = null;
  return {
    name,
    textsFrom: (from) => got.filter((m) => m.from === from).map((m) => m.text),
    get sent() { return n; },
    /** Sends p<n> every `ms` until stop(). */
    stream(ms) {
      timer = setInterval(() => {
        n += 1;
        ws.send(JSON.stringify({ from: name, text: `p${n}`, id: `${name}-${n}` }));
      }, ms);
    },
    stop() {
      clearInterval(timer);
      timer = null;
    },
    close() {
      this.stop();
      ws.terminate();
    },
  };
}

const seq = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

const state = () => page.evaluate(() => {
  const c = window.chat;
  return {
    transport: c.socket.transport,
    fallbackReason: c.socket.fallbackReason,
    readyState: c.socket.readyState,
    session: c.socket.session,
    received: c.received.map((m) => ({ from: m.from, text: m.text })),
    events: c.events,
    sent: window.pageSent ?? 0,
  };
});

function brief(s) {
  if (!s) return 'no page state';
  const { received, events, ...rest } = s;
  return JSON.stringify({ ...rest, received: received.slice(-6).map((m) => `${m.from}:${m.text}`), events: events.slice(-8) });
}

/** Waits (bounded) until pred(arg) holds in the page; the error carries the page state. */
async function waitPage(pred, arg, ms, what) {
  try {
    await page.waitForFunction(pred, arg, { timeout: ms, polling: 50 });
  } catch (err) {
    const s = await state().catch(() => null);
    throw new Error(`timed out after ${ms} ms waiting for ${what}: ${err.message.split('\n')[0]}\npage: ${brief(s)}\n` +
      `console: ${page.diag.slice(-10).join(' | ')}`);
  }
}

/** The page sends b<n> every `ms` (numbering continues across calls) until stopPage(). */
const streamPage = (ms) => page.evaluate((every) => {
  window.pageSent ??= 0;
  window.pageTimer = setInterval(() => {
    window.pageSent += 1;
    window.chat.send(`b${window.pageSent}`);
  }, every);
}, ms);
const stopPage = () => page.evaluate(() => {
  clearInterval(window.pageTimer);
  return window.pageSent;
});

/**
 * Stops both streams, waits until everything sent arrived, and asserts the exact sequences:
 * the page got p1..pN from the peer and b1..bM back, the peer got b1..bM.
 */
async function settleAndCheck(what) {
  peer.stop();
  const sentByPage = await stopPage();
  const sentByPeer = peer.sent;
  await waitPage((a) => window.chat.received.filter((m) => m.from === a.peer).length >= a.n &&
    window.chat.received.filter((m) => m.from === a.me).length >= a.m,
  { peer: peer.name, me, n: sentByPeer, m: sentByPage }, 15000, `${what}: p1..p${sentByPeer} and b1..b${sentByPage} at the page`);
  const deadline = Date.now() + 15000;
  while (peer.textsFrom(me).length < sentByPage && Date.now() < deadline) await sleep(25);
  await sleep(400); // nothing more may arrive
  const s = await state();
  const texts = (from) => s.received.filter((m) => m.from === from).map((m) => m.text);
  assert.deepEqual(texts(peer.name), seq('p', sentByPeer), `${what}: peer → page exactly once, in order`);
  assert.deepEqual(peer.textsFrom(me), seq('b', sentByPage), `${what}: page → peer exactly once, in order`);
  assert.deepEqual(texts(me), seq('b', sentByPage), `${what}: the page's own messages back exactly once, in order`);
  return { s, sentByPage, sentByPeer };
}

async function artifacts(name) {
  fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, `${LABEL}-${name}.png`), timeout: 10000 });
  const s = await state();
  fs.writeFileSync(path.join(BROWSER_ARTIFACTS, `${LABEL}-${name}.json`), JSON.stringify({
    ...s, gate: gate.requests().map(({ conn, method, target, websocket, blocked }) => ({ conn, method, target, websocket, blocked })),
  }, null, 1));
  return s;
}

const eventsSince = (s, n) => s.events.slice(n);
const noTrouble = (events) => assert.ok(!events.some((e) => ['reset', 'gap', 'error', 'close'].includes(e.type)),
  `no reset, gap, error or close: ${JSON.stringify(events)}`);

/** A resume of `session` by URL: its own (`?session=S&ack=N`) or a shared stream or poll (`?transport=mux&session=S.N`). */
function resumeRe(session) {
  return new RegExp(`(?:[?&]session=${session}&ack=\\d+|[?&]transport=mux&session=${session}\\.\\d+)$`);
}

describe('BridgeSocket on a WebSocket session in headless Chromium', { skip, timeout: 150000 }, () => {
  before(async () => {
    backend = await startBackend({ label: LABEL });
    chat = await startChatServer({ port: 0, proxy: '' });
    const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
    proxy = await startProxy(proxyConfig([
      { path: '/chat', backend: be('/chat'), origins: [chat.origin] },
    ]), { label: LABEL });
    gate = await startWsGate(proxy.port);
    browser = await launchChromium();
    page = await withTimeout(browser.context.newPage(), 10000, 'a new page');
    page.diag = [];
    page.on('console', (m) => page.diag.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => page.diag.push(`pageerror: ${e.message}`));
    // Short delays so that the scenarios stay short: retry a lost WebSocket for 1.5 s before
    // falling back; probe back up after 1–2 s, then 2–4 s.
    const q = new URLSearchParams({
      proxy: gate.origin, name: me, retryTransportFor: '1500', probeUpDelay: '2000', probeUpMaxDelay: '4000',
      minDelay: '200', maxDelay: '1000',
    });
    await page.goto(`${chat.url}?${q}`, { timeout: 15000 });
    peer = await chatPeer('ws-peer');
  });

  after(() => stopAll([
    ['peer', () => peer?.close()],
    ['browser behind squid', () => squidBrowser?.close()],
    ['squid', async () => { await squid?.stop(); squid?.cleanup(); }],
    ['browser', () => browser?.close()],
    ['gate', () => gate?.close()],
    ['page server', () => chat?.close()],
    ['proxy', () => proxy?.stop()],
    ['backend', () => backend?.stop()],
  ]));

  test('a: WebSocket session, then WebSocket blocked — the same session continues over SSE, exactly once both ways', { timeout: 45000 }, async (t) => {
    await waitPage(() => window.chat?.socket?.readyState === 1, undefined, 15000, 'OPEN');
    let s = await state();
    assert.equal(s.transport, 'websocket', brief(s));
    assert.equal(s.fallbackReason, null);
    assert.match(s.session ?? '', /^[A-Za-z0-9_-]{22}$/, 'a session id: the WebSocket is a session, not the relay');
    session = s.session;
    const opened = gate.requests().filter((r) => r.websocket);
    assert.equal(opened.length, 1);
    assert.match(opened[0].head, /\r\nSec-WebSocket-Protocol: wsbridge\.session\.v1\b/i, 'the client asked for the session transport');
    assert.doesNotMatch(opened[0].target, /session=/, 'a new session');

    peer.stream(40);
    await streamPage(40);
    await waitPage((p) => window.chat.received.filter((m) => m.from === p).length >= 10, peer.name, 10000, 'p1..p10 over WebSocket');
    const nEvents = (await state()).events.length;
    const tBlock = Date.now();
    assert.equal(gate.blockWebSocket(), 1, 'the gate cut the session\'s WebSocket');
    await waitPage(() => window.chat.socket.transport === 'sse' && window.chat.socket.readyState === 1, undefined, 15000, 'the session on SSE');
    const switched = Date.now() - tBlock;
    await sleep(1000); // both sides keep talking over SSE + POST
    const r = await settleAndCheck('a');
    s = await artifacts('a-websocket-blocked-sse');
    t.diagnostic(`on SSE ${switched} ms after the block; ${r.sentByPeer} messages peer → page, ${r.sentByPage} page → peer; ` +
      `fallbackReason: ${s.fallbackReason}`);

    assert.equal(s.transport, 'sse');
    assert.equal(s.session, session, 'the same session');
    const ev = eventsSince(s, nEvents);
    noTrouble(ev);
    assert.ok(ev.some((e) => e.type === 'resume' && e.transport === 'sse'), `a resume onto SSE: ${JSON.stringify(ev)}`);
    assert.match(s.fallbackReason, /^websocket: failed to open \(close 1006 after \d+ ms\)/, 'WebSocket was tried first');
    // On the wire: WebSocket resumes refused by the gate, then SSE resuming by URL.
    const after = gate.requests().filter((q) => q.at >= tBlock);
    const wsResume = after.filter((q) => q.websocket);
    assert.ok(wsResume.length >= 1 && wsResume.every((q) => q.blocked), 'WebSocket resumes were tried, and refused');
    assert.match(wsResume[0].target, new RegExp(`^/chat\\?session=${session}&ack=\\d+&seq=\\d+$`), 'resume by ?session=S&ack=N&seq=M');
    const sse = after.find((q) => q.method === 'GET' && /text\/event-stream/i.test(q.head));
    assert.ok(sse, 'an SSE request');
    // Its own stream (`?session=S&ack=N`) or the stream shared between tabs (`?transport=mux&session=S.N`).
    assert.match(sse.target, resumeRe(session), 'SSE resumes the session by URL');
    assert.ok(after.some((q) => q.method === 'POST' && new RegExp(`session=${session}&seq=\\d+`).test(q.target)), 'sends by POST');
  });

  test('b: WebSocket allowed again — the client probes up and moves the same session onto WebSocket', { timeout: 45000 }, async (t) => {
    assert.ok(session, 'scenario a ran');
    const nEvents = (await state()).events.length;
    peer.stream(40);
    await streamPage(40);
    await sleep(300);
    const tAllow = Date.now();
    gate.allowWebSocket();
    await waitPage(() => window.chat.socket.transport === 'websocket', undefined, 20000, 'the session back on WebSocket');
    const moved = Date.now() - tAllow;
    await sleep(1000);
    const r = await settleAndCheck('b');
    const s = await artifacts('b-probed-up-websocket');
    t.diagnostic(`on WebSocket ${moved} ms after WebSocket was allowed; ${r.sentByPeer} peer → page, ${r.sentByPage} page → peer`);

    assert.equal(s.transport, 'websocket');
    assert.equal(s.session, session, 'the same session');
    assert.equal(s.fallbackReason, null, 'no fallback any more');
    const ev = eventsSince(s, nEvents);
    noTrouble(ev);
    assert.ok(!ev.some((e) => e.type === 'reconnecting'), `the move is not a reconnect (the SSE stream the proxy ended is no failure): ${JSON.stringify(ev)}`);
    assert.ok(ev.some((e) => e.type === 'transport' && e.transport === 'websocket' && e.previous === 'sse'), JSON.stringify(ev));
    assert.ok(ev.some((e) => e.type === 'resume' && e.transport === 'websocket' && e.previous === 'sse'), JSON.stringify(ev));
    const up = gate.requests().filter((q) => q.at >= tAllow && q.websocket && !q.blocked);
    assert.equal(up.length, 1, 'one WebSocket moved the session');
    assert.match(up[0].target, new RegExp(`^/chat\\?session=${session}&ack=\\d+&seq=\\d+$`));
    assert.equal(gate.wsConns(), 1, 'the session\'s WebSocket is open');
  });

  test('c: the session\'s WebSocket cut mid-stream — resumed on WebSocket, nothing lost or repeated', { timeout: 45000 }, async (t) => {
    assert.ok(session, 'scenario a ran');
    const nEvents = (await state()).events.length;
    const nRequests = gate.requests().length;
    peer.stream(20);
    await streamPage(20);
    await sleep(700);
    const tCut = Date.now();
    assert.equal(gate.cutWebSocket(), 1, 'the gate cut the session\'s WebSocket');
    await waitPage((n) => window.chat.events.slice(n).some((e) => e.type === 'resume' && e.transport === 'websocket'),
      nEvents, 15000, 'a resume on WebSocket');
    const resumed = Date.now() - tCut;
    await sleep(700);
    const r = await settleAndCheck('c');
    const s = await artifacts('c-cut-resumed-websocket');
    t.diagnostic(`resumed ${resumed} ms after the cut; ${r.sentByPeer} peer → page, ${r.sentByPage} page → peer`);

    assert.equal(s.transport, 'websocket');
    assert.equal(s.session, session, 'the same session');
    const ev = eventsSince(s, nEvents);
    noTrouble(ev);
    assert.ok(ev.some((e) => e.type === 'reconnect' && e.resumed === true), JSON.stringify(ev));
    const again = gate.requests().slice(nRequests).filter((q) => q.websocket);
    assert.ok(again.length >= 1);
    assert.match(again.at(-1).target, new RegExp(`^/chat\\?session=${session}&ack=\\d+&seq=\\d+$`));
    assert.ok(!gate.requests().slice(nRequests).some((q) => /text\/event-stream/i.test(q.head)), 'no fallback to SSE');
  });

  test('d: WebSocket and SSE blocked — the same session continues by long-polling, exactly once both ways', { timeout: 45000 }, async (t) => {
    assert.ok(session, 'scenario a ran');
    const nEvents = (await state()).events.length;
    peer.stream(40);
    await streamPage(40);
    await sleep(300);
    const tBlock = Date.now();
    gate.blockEventStream();
    assert.equal(gate.blockWebSocket(), 1, 'the gate cut the session\'s WebSocket');
    await waitPage(() => window.chat.socket.transport === 'longpoll' && window.chat.socket.readyState === 1, undefined, 20000, 'the session on long-polling');
    const switched = Date.now() - tBlock;
    await sleep(1000);
    const r = await settleAndCheck('d');
    const s = await artifacts('d-websocket-and-sse-blocked-longpoll');
    t.diagnostic(`on long-polling ${switched} ms after the block; ${r.sentByPeer} peer → page, ${r.sentByPage} page → peer; ` +
      `fallbackReason: ${s.fallbackReason}`);

    assert.equal(s.transport, 'longpoll');
    assert.equal(s.session, session, 'the same session');
    const ev = eventsSince(s, nEvents);
    noTrouble(ev);
    assert.ok(ev.some((e) => e.type === 'resume' && e.transport === 'longpoll' && e.previous === 'websocket'), JSON.stringify(ev));
    const after = gate.requests().filter((q) => q.at >= tBlock);
    const sse = after.filter((q) => q.sse);
    assert.ok(sse.length >= 1 && sse.every((q) => q.blocked), 'SSE was tried, and refused');
    assert.match(sse[0].target, resumeRe(session));
    const polls = after.filter((q) => q.method === 'GET' && !q.sse && !q.websocket);
    assert.ok(polls.length >= 1 && polls.every((q) => new RegExp(`^/chat\\?(session=${session}&ack=\\d+|transport=mux&session=${session}\\.\\d+)$`).test(q.target)),
      `polls of the same session: ${polls.map((q) => q.target).join(' ')}`);
  });

  test('e: WebSocket allowed again — probed up from long-polling onto WebSocket, same session', { timeout: 45000 }, async (t) => {
    assert.ok(session, 'scenario a ran');
    const nEvents = (await state()).events.length;
    peer.stream(40);
    await streamPage(40);
    await sleep(300);
    const tAllow = Date.now();
    gate.allowWebSocket();
    await waitPage(() => window.chat.socket.transport === 'websocket', undefined, 20000, 'the session back on WebSocket');
    const moved = Date.now() - tAllow;
    await sleep(1000);
    const r = await settleAndCheck('e');
    const s = await artifacts('e-probed-up-from-longpoll');
    t.diagnostic(`on WebSocket ${moved} ms after WebSocket was allowed; ${r.sentByPeer} peer → page, ${r.sentByPage} page → peer`);

    assert.equal(s.transport, 'websocket');
    assert.equal(s.session, session, 'the same session');
    const ev = eventsSince(s, nEvents);
    noTrouble(ev);
    assert.ok(!ev.some((e) => e.type === 'reconnecting'), `the move is not a reconnect: ${JSON.stringify(ev)}`);
    assert.ok(ev.some((e) => e.type === 'resume' && e.transport === 'websocket' && e.previous === 'longpoll'), JSON.stringify(ev));
    assert.equal(gate.requests().filter((q) => q.at >= tAllow && q.websocket && !q.blocked).length, 1, 'one WebSocket moved the session');
    await sleep(500);
    assert.equal(gate.wsConns(), 1, 'and it stays: no poll took the session back');
    assert.equal((await state()).transport, 'websocket');
  });

  test('f: behind squid refusing CONNECT — a session on SSE whose probes up are denied, silently, exactly once both ways', { timeout: 45000 }, async (t) => {
    peer.close();
    await page.close();
    squid = await startSquid();
    squidBrowser = await launchChromium({ args: [`--proxy-server=http://127.0.0.1:${squid.port}`, '--proxy-bypass-list=<-loopback>'] });
    me = 'f-page';
    page = await withTimeout(squidBrowser.context.newPage(), 10000, 'a new page behind squid');
    page.diag = [];
    page.on('console', (m) => page.diag.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => page.diag.push(`pageerror: ${e.message}`));
    const q = new URLSearchParams({
      proxy: `http://127.0.0.1:${proxy.port}`, name: me, probeUpDelay: '600', probeUpMaxDelay: '1200',
    });
    await page.goto(`${chat.url}?${q}`, { timeout: 15000 });
    peer = await chatPeer('f-peer');
    await waitPage(() => window.chat?.socket?.readyState === 1, undefined, 15000, 'OPEN');
    const s0 = await state();
    assert.equal(s0.transport, 'sse', brief(s0));
    assert.match(s0.session ?? '', /^[A-Za-z0-9_-]{22}$/);
    peer.stream(40);
    await streamPage(40);
    await sleep(4000); // probes after 0.3–0.6 s, then every 0.6–1.2 s
    const r = await settleAndCheck('f');
    const s = await artifacts('f-squid-sse-probes-denied');
    assert.equal(s.transport, 'sse');
    assert.equal(s.session, s0.session, 'the same session');
    // 'share': on SSE the page leads the connection shared between tabs.
    assert.deepEqual(s.events.filter((e) => !['transport', 'open', 'share'].includes(e.type)), [],
      'failed probes are silent: no reconnecting, resume, reset, gap or error');

    const { accessLog } = await squid.stop();
    fs.writeFileSync(path.join(BROWSER_ARTIFACTS, `${LABEL}-f-squid-access.log`), accessLog);
    const denied = accessLog.split('\n').filter((l) => new RegExp(`TCP_DENIED/403 .* CONNECT 127\\.0\\.0\\.1:${proxy.port} `).test(l));
    t.diagnostic(`${denied.length} WebSocket attempts denied by squid (the first one, then probes); ` +
      `${r.sentByPeer} peer → page, ${r.sentByPage} page → peer`);
    assert.ok(denied.length >= 3, `the first attempt and at least two probes went to squid and were denied:\n${accessLog}`);
  });
});
