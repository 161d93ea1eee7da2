// Reload in place on SIGHUP (proxy/front/server.cc Server::reload, proxy/context.cc
// Context::reload), end to end: the wsbridge binary between Node clients and real `ws` backends
// (examples/backend/server.mjs), on OS-chosen loopback ports, every process stopped by PID.
//
//   node --test tests/e2e/reload.test.mjs
//
// What a reload promises, and what each part checks:
//  - under load: WebSocket relays (echo and broadcast), a session WebSocket, an SSE session and
//    a long-poll session exchange numbered messages while the config is reloaded 50 times
//    (routes added, removed and changed, one file with errors among them): nobody is closed or
//    reset, nothing is lost, repeated or reordered either way, and the `reloaded` /
//    `reload_failed` lines and the metrics count exactly what happened;
//  - new requests see the new config as soon as the `reloaded` line is out: added routes
//    answer, removed ones are 404 (their live WebSockets go on), changed limits apply to new
//    connections and sessions, never to live ones;
//  - sessions resume across reloads by route path; a session whose path went away is 404 (no
//    route) or, where another route now matches its path, gets the documented reset;
//  - listeners are matched by configured host:port (port 0 entries pair in order, so they keep
//    their port): an added entry is bound, a removed one refuses connections while those it
//    accepted go on;
//  - a file with errors changes nothing and logs one reload_failed line per problem, each
//    `file:line:col: …`; bind and certificate failures are refused the same way;
//  - a TLS listener re-reads its certificate files on every reload: new connections get the new
//    certificate, live ones keep theirs.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

import { startBackend, proxyConfig, proxySkip, sleep, withTimeout } from './lib/harness.mjs';
import { scrape, metricSum } from './lib/hostile.mjs';
import { openLongPoll } from './lib/mux.mjs';
import { NumberedWs, adminPort, pathList, reload, routeDiff, startReloadable } from './lib/reload.mjs';
import { SessionClient, httpRequest } from './lib/session_client.mjs';
import { SseClient } from './lib/sse.mjs';
import { makePki, opensslSkip } from './lib/tls.mjs';

const skip = proxySkip();
const T = 30000; // per-test timeout
const FAST = { messages_per_second: 100000, burst: 100000 }; // a rate that never limits
const ADMIN = 'admin: { address: 127.0.0.1:0 }\n';

let backend;

const text = (s) => ({ binary: false, data: Buffer.from(s, 'utf8') });

/** Resolves true when a TCP connect to 127.0.0.1:port is refused, false when it connects. */
function refused(port, ms = 2000) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e) => (e.code === 'ECONNREFUSED' ? resolve(true) : reject(e)));
  }), ms, `a connect to ${port}`);
}

/** The metrics the tests read, from the admin listener the proxy announced last. */
async function reloadMetrics(proxy) {
  const series = await scrape(adminPort(proxy));
  const gauge = series.filter((s) => s.name === 'wsbridge_config_last_reload_successful');
  return {
    ok: metricSum(series, 'wsbridge_reloads_total', { result: 'ok' }),
    error: metricSum(series, 'wsbridge_reloads_total', { result: 'error' }),
    lastOk: gauge.length ? gauge[0].value : undefined,
  };
}

/** Line and column (1-based) of the first occurrence of `needle` in `yaml`. */
function where(yaml, needle) {
  const i = yaml.indexOf(needle);
  assert.ok(i >= 0, `${needle} in the file`);
  const before = yaml.slice(0, i).split('\n');
  return `${before.length}:${before.at(-1).length + 1}`;
}

/** Asserts `errors` (reload_failed error fields) hold, for each [needle, key], one
 *  `FILE:line:col: …key…` error at the line and column of `needle` in `yaml`, and nothing else. */
function assertErrorsAt(proxy, yaml, errors, expected) {
  assert.equal(errors.length, expected.length, JSON.stringify(errors));
  for (const [needle, key] of expected) {
    const at = `${proxy.configFile}:${where(yaml, needle)}: `;
    assert.ok(errors.some((e) => e.startsWith(at) && e.includes(key)), `an error at ${at} naming ${key}: ${JSON.stringify(errors)}`);
  }
}

/** Opens a session through long-poll and moves it to its own SSE stream (resume by URL). */
async function sseSession(port, route) {
  const c = await openLongPoll(port, route);
  await c.sseAttach({ mode: 'url' });
  return c;
}

/** Sends `n` more numbered messages on session client `c` by POST; waits for their echoes. */
async function postRound(c, name, n, ms = 5000) {
  const first = c.outbox.length + 1;
  c.queue(Array.from({ length: n }, (_, i) => text(`${name}:${first + i}`)));
  await c.post();
  await c.waitUntil(() => c.lastSeen >= c.outbox.length, ms, `${name} echoes up to ${c.outbox.length}`);
}

/** postRound for a long-poll client: polls (bounded) until the echoes are in. */
async function lpRound(c, name, n) {
  const first = c.outbox.length + 1;
  c.queue(Array.from({ length: n }, (_, i) => text(`${name}:${first + i}`)));
  await c.post();
  for (let i = 0; i < 20 && c.lastSeen < c.outbox.length; i++) await c.lpPoll({ ms: 3000 });
  assert.equal(c.lastSeen, c.outbox.length, `${name}: echoes up to ${c.outbox.length}`);
}

describe('reload in place (SIGHUP)', { skip }, () => {
  before(async () => {
    backend = await startBackend({ label: 'reload-backend' });
  });
  after(async () => {
    await backend?.stop();
  });

  // ------------------------------------------------------------------------------------------
  test('under load: 50 reloads, no client closed or reset, nothing lost, repeated or reordered', { timeout: 60000 }, async () => {
    const RELOADS = 50;
    const BAD = 25; // the one file with errors (two of them)
    // Config i: /echo changes on every reload (max_message, origins); /side's backend flips;
    // /dyn-i is added by reload i and removed by reload i+1 (every third reload adds none).
    const routesFor = (i) => {
      const r = [
        { path: '/echo', backend: backend.url('/echo'), rate: FAST, idle_timeout: '2s',
          max_message: i % 2 ? '512k' : '1m', origins: i % 3 ? ['http://a.example'] : ['http://a.example', 'http://b.example'] },
        { path: '/chat', backend: backend.url('/chat'), rate: FAST, idle_timeout: '2s' },
        { path: '/side', backend: backend.url(i % 2 ? '/chat' : '/echo') },
      ];
      if (i % 3 !== 2) r.push({ path: `/dyn-${i}`, backend: backend.url('/echo') });
      return r;
    };
    const yamlFor = (routes) => proxyConfig(routes, { extra: ADMIN });
    let current = routesFor(0);
    const proxy = await startReloadable(yamlFor(current), { label: 'reload-load-proxy' });
    const port = proxy.port;
    const clients = [];
    try {
      // The clients: an echo relay, two broadcast relays, a session WebSocket, an SSE session
      // and a long-poll session, all on routes the reloads change.
      const echo = new NumberedWs(`ws://127.0.0.1:${port}/echo`, 'ws-echo');
      const chatA = new NumberedWs(`ws://127.0.0.1:${port}/chat`, 'chat-a', { peers: ['chat-a', 'chat-b'] });
      const chatB = new NumberedWs(`ws://127.0.0.1:${port}/chat`, 'chat-b', { peers: ['chat-a', 'chat-b'] });
      clients.push(echo, chatA, chatB);
      await Promise.all(clients.map((c) => c.opened()));
      const wsS = new SessionClient(port, '/echo', { ackEvery: 16 });
      const wsConn = await wsS.wsAttach();
      const sse = await sseSession(port, '/echo');
      const lp = await openLongPoll(port, '/echo');

      let stop = false;
      const loop = async (name, round) => {
        let rounds = 0;
        while (!stop) {
          await round();
          rounds++;
        }
        return { name, rounds };
      };
      const relayRound = (c, others = []) => async () => {
        c.send(5);
        await c.heardUpTo(c.sent);
        for (const o of others) await o.heardUpTo(c.sent, c.name);
      };
      let lpPolling = true;
      const poller = (async () => {
        let polls = 0;
        while (lpPolling) {
          await lp.lpPoll({ ms: 5000 });
          polls++;
        }
        return polls;
      })();
      poller.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
      const runs = [
        loop('ws-echo', relayRound(echo)),
        loop('chat-a', relayRound(chatA, [chatB])),
        loop('chat-b', relayRound(chatB, [chatA])),
        loop('ws-session', async () => {
          const first = wsS.outbox.length + 1;
          wsS.queue(Array.from({ length: 5 }, (_, i) => text(`wss:${first + i}`)));
          await wsS.wsSend(wsConn);
          await wsS.waitUntil(() => wsS.lastSeen >= wsS.outbox.length, 5000, 'ws-session echoes');
        }),
        loop('sse', () => postRound(sse, 'sse', 5)),
        loop('longpoll', () => postRound(lp, 'lp', 5)),
      ];
      // Let no run fail unobserved while the reloads go on.
      const settled = Promise.allSettled(runs);

      const reloadedLines = [];
      for (let i = 1; i <= RELOADS; i++) {
        if (i === BAD) {
          const bad = yamlFor(current) +
            '  - path: "/broken"\n' +
            `    backend: ${JSON.stringify(backend.url('/echo'))}\n` +
            '    max_message: lots\n' +
            '    colour: blue\n';
          const r = await reload(proxy, bad, { errors: 2 });
          assertErrorsAt(proxy, bad, r.fields.map((f) => f.error), [['colour', 'colour'], ['lots', 'max_message']]);
          continue;
        }
        const next = routesFor(i);
        const r = await reload(proxy, yamlFor(next));
        const want = routeDiff(current, next);
        assert.deepEqual({
          added: pathList(r.fields.routes_added),
          removed: pathList(r.fields.routes_removed),
          changed: pathList(r.fields.routes_changed),
        }, want, `reload ${i}: ${r.line}`);
        assert.equal(r.fields.listeners_added, '0', r.line);
        assert.equal(r.fields.listeners_removed, '0', r.line);
        assert.match(r.fields.took_us, /^\d+$/);
        reloadedLines.push(r.line);
        current = next;
        await sleep(30); // traffic between reloads, not only during them
      }
      await sleep(200); // traffic after the last reload too
      stop = true;
      const results = await withTimeout(settled, 15000, 'the client loops to finish');
      const failures = results.filter((x) => x.status === 'rejected').map((x) => x.reason?.message ?? String(x.reason));
      assert.deepEqual(failures, [], 'every client loop ran to the end');
      const rounds = results.map((x) => x.value);
      for (const r of rounds) assert.ok(r.rounds >= 3, `${r.name} exchanged during the reloads (${r.rounds} rounds)`);
      lpPolling = false;
      await withTimeout(poller, 5000, 'the last poll');

      // Nobody was closed or reset; every message arrived exactly once, in order, both ways.
      for (const c of clients) {
        assert.equal(c.closed, null, `${c.name} closed`);
        assert.deepEqual(c.problems, [], `${c.name}`);
        for (const p of c.peers) assert.equal(c.heard[p], clients.find((x) => x.name === p).sent, `${c.name} heard all of ${p}`);
      }
      assert.equal(wsConn.ended, false, 'the session WebSocket is still open');
      assert.equal(sse.sse.current.ended, false, 'the SSE stream is still open');
      for (const [name, c] of [['ws-session', wsS], ['sse', sse], ['longpoll', lp]]) {
        assert.deepEqual([c.resets, c.gaps, c.closes], [[], [], []], `${name}: no reset, gap or close`);
        assert.equal(c.compare(c.outbox), null, `${name}: every message once, in order`);
        assert.equal(c.acked, c.outbox.length + 1, `${name}: every client message forwarded`);
      }

      // The log and the metrics count the same reloads.
      const log = proxy.stderr().split('\n');
      assert.equal(log.filter((l) => /\bevent=reloaded\b/.test(l)).length, RELOADS - 1);
      assert.equal(log.filter((l) => /\bevent=reload_failed\b/.test(l)).length, 2);
      assert.equal(log.filter((l) => /\bevent=listening\b/.test(l)).length, 1, 'no listener was bound again');
      assert.deepEqual(await reloadMetrics(proxy), { ok: RELOADS - 1, error: 1, lastOk: 1 });
    } finally {
      for (const c of clients) c.ws.terminate();
      await proxy.stop();
    }
  });

  // ------------------------------------------------------------------------------------------
  describe('one proxy, reloaded step by step', () => {
    let proxy;
    let routes;
    const base = () => [
      { path: '/echo', backend: backend.url('/echo'), rate: FAST, idle_timeout: '2s' },
      { path: '/old', backend: backend.url('/echo'), rate: FAST },
      { path: '/e/echo', backend: backend.url('/echo'), rate: FAST, idle_timeout: '2s' },
      { path: '/chat', backend: backend.url('/chat'), rate: FAST },
    ];
    const yaml = (r, listen) => proxyConfig(r, { extra: ADMIN, ...(listen ? { listen } : {}) });
    before(async () => {
      routes = base();
      proxy = await startReloadable(yaml(routes), { label: 'reload-steps-proxy' });
    });
    after(async () => {
      await proxy?.stop();
    });

    test('new requests see the new config at once; live WebSockets keep theirs', { timeout: T }, async () => {
      const BIG = 'x'.repeat(2000);
      const onOld = new NumberedWs(`ws://127.0.0.1:${proxy.port}/old`, 'old');
      const onEcho = new NumberedWs(`ws://127.0.0.1:${proxy.port}/echo`, 'echo');
      const fresh = [];
      try {
        await Promise.all([onOld.opened(), onEcho.opened()]);
        onOld.send(3);
        await onOld.heardUpTo(3);
        assert.equal((await httpRequest(proxy.port, 'GET', '/new?transport=longpoll')).status, 404, '/new before');

        routes = routes.filter((r) => r.path !== '/old').map((r) => (r.path === '/echo' ? { ...r, max_message: '1k' } : r));
        routes.push({ path: '/new', backend: backend.url('/echo'), rate: FAST });
        const r = await reload(proxy, yaml(routes));
        assert.deepEqual([r.fields.routes_added, r.fields.routes_removed, r.fields.routes_changed], ['/new', '/old', '/echo'], r.line);

        // Right after the line: /new answers on every transport, /old is gone for new requests.
        const onNew = new NumberedWs(`ws://127.0.0.1:${proxy.port}/new`, 'new');
        fresh.push(onNew);
        await onNew.opened();
        onNew.send(3);
        await onNew.heardUpTo(3);
        assert.equal((await httpRequest(proxy.port, 'GET', '/new?transport=longpoll')).status, 200, 'long-poll on /new');
        for (const [what, res] of [
          ['long-poll open', await httpRequest(proxy.port, 'GET', '/old?transport=longpoll')],
          ['SSE open', await httpRequest(proxy.port, 'GET', '/old', { headers: { Accept: 'text/event-stream' }, ms: 3000 })],
        ]) {
          assert.equal(res.status, 404, `${what} on /old`);
          assert.equal(res.json?.error, 'not_found', `${what} on /old`);
        }
        const refusedWs = new NumberedWs(`ws://127.0.0.1:${proxy.port}/old`, 'old2');
        await assert.rejects(refusedWs.opened(), /HTTP 404/, 'a new WebSocket on /old');
        refusedWs.ws.terminate();

        // The WebSocket that was on /old before goes on.
        onOld.send(3);
        await onOld.heardUpTo(6);

        // max_message 1m -> 1k: a new WebSocket is closed 1009 for 2000 bytes...
        const small = new NumberedWs(`ws://127.0.0.1:${proxy.port}/echo`, 'small');
        fresh.push(small);
        await small.opened();
        small.sendRaw(BIG);
        await small.waitUntil(() => small.closed, 3000, 'the close').catch(() => {});
        assert.equal(small.closed?.code, 1009, 'a new connection gets the new max_message');
        // ... the one from before still carries them.
        onEcho.sendRaw(BIG);
        onEcho.send(1);
        await onEcho.heardUpTo(1);
        assert.equal(onEcho.closed, null);
        assert.deepEqual(onEcho.problems, [`unexpected message ${JSON.stringify(BIG.slice(0, 60))}`], 'the 2000 bytes came back');
      } finally {
        for (const c of [onOld, onEcho, ...fresh]) await c.close();
      }
    });

    test('a live session keeps its limits: a POST to a session opened before the change', {
      timeout: T,
    }, async () => {
      // The route starts at 1m; a session opens; the route goes to 1k.
      routes = routes.map((r) => (r.path === '/echo' ? { ...r, max_message: '1m' } : r));
      await reload(proxy, yaml(routes));
      const s = await openLongPoll(proxy.port, '/echo');
      routes = routes.map((r) => (r.path === '/echo' ? { ...r, max_message: '1k' } : r));
      await reload(proxy, yaml(routes));
      const fresh = await openLongPoll(proxy.port, '/echo');
      const big = 'y'.repeat(2000);
      const post = (c) => httpRequest(proxy.port, 'POST', `/echo?session=${c.session}&seq=1`, { headers: { 'Content-Type': 'text/plain' }, body: big });
      assert.equal((await post(fresh)).status, 413, 'a session opened after the change: the new limit');
      const res = await post(s);
      assert.equal(res.status, 200, `a session opened before the change keeps its limit: ${res.status} ${res.body}`);
    });

    test('sessions resume across reloads; a session whose path went away is 404, then reset', { timeout: T }, async () => {
      const sse = await sseSession(proxy.port, '/echo');
      const lp = await openLongPoll(proxy.port, '/echo');
      const goneSse = await sseSession(proxy.port, '/e/echo');
      const goneLp = await openLongPoll(proxy.port, '/e/echo');
      await postRound(sse, 'sse', 3);
      await postRound(goneSse, 'gsse', 2);
      sse.sse.cut(); // away during the reloads
      await lpRound(lp, 'lp', 3);

      // Three reloads: /echo changed, unrelated routes added and removed.
      for (const [i, change] of [
        (r) => r.map((x) => (x.path === '/echo' ? { ...x, max_message: '64k' } : x)),
        (r) => [...r, { path: '/extra', backend: backend.url('/echo') }],
        (r) => r.filter((x) => x.path !== '/extra').map((x) => (x.path === '/echo' ? { ...x, replay_messages: 5000 } : x)),
      ].entries()) {
        routes = change(routes);
        const r = await reload(proxy, yaml(routes));
        // Messages for the SSE session arrive while its client is away.
        const first = sse.outbox.length + 1;
        sse.queue([text(`sse:${first}`), text(`sse:${first + 1}`)]);
        await sse.post();
        assert.equal(r.fields.routes_removed, i === 2 ? '/extra' : '', r.line);
      }

      // SSE resumes with Last-Event-ID: every message once, in order, no gap, no reset.
      await sse.sseAttach({ mode: 'lei' });
      await sse.waitUntil(() => sse.lastSeen >= sse.outbox.length, 5000, 'the SSE resume');
      await postRound(sse, 'sse', 2);
      // Long-poll resumes with its ack.
      await lpRound(lp, 'lp', 2);
      for (const c of [sse, lp]) {
        assert.deepEqual([c.resets, c.gaps, c.closes], [[], [], []]);
        assert.equal(c.compare(c.outbox), null);
      }
      sse.sse.close();

      // /e/echo goes away: its sessions get 404 (no route matches their path)...
      goneSse.sse.cut();
      routes = routes.filter((x) => x.path !== '/e/echo');
      let r = await reload(proxy, yaml(routes));
      assert.equal(r.fields.routes_removed, '/e/echo', r.line);
      let res = await httpRequest(proxy.port, 'GET', `/e/echo?session=${goneLp.session}&ack=0`);
      assert.equal(res.status, 404, 'a poll of a session whose route was removed');
      assert.equal(res.json?.error, 'not_found');
      res = await httpRequest(proxy.port, 'GET', '/e/echo', { headers: { Accept: 'text/event-stream', 'Last-Event-ID': `${goneSse.session}.${goneSse.lastSeen}` }, ms: 3000 });
      assert.equal(res.status, 404, 'an SSE resume of a session whose route was removed');
      res = await httpRequest(proxy.port, 'POST', `/e/echo?session=${goneLp.session}&seq=1`, { body: 'x' });
      assert.equal(res.status, 404, 'a POST to a session whose route was removed');

      // ... and once another route (a prefix) matches the path again, the documented reset:
      // the session is of another route there (/e/echo -> backend /echo through /e/).
      routes = [...routes, { path: '/e/', backend: backend.url('/'), rate: FAST, idle_timeout: '2s' }];
      r = await reload(proxy, yaml(routes));
      assert.equal(r.fields.routes_added, '/e/', r.line);
      const reset = await httpRequest(proxy.port, 'GET', `/e/echo?session=${goneLp.session}&ack=0`);
      assert.equal(reset.status, 200, reset.body);
      assert.equal(reset.json?.reset?.reason, 'unknown session', reset.body);
      assert.notEqual(reset.json.reset.session, goneLp.session);
      const es = new SseClient(proxy.port, '/e/echo', { lastEventId: `${goneSse.session}.${goneSse.lastSeen}` });
      await es.connect();
      const [first, announce] = await es.waitForEvents(2, 3000);
      es.close();
      assert.equal(first.type, 'reset', `first event ${JSON.stringify(first)}`);
      assert.equal(JSON.parse(first.data).reason, 'unknown session');
      assert.equal(announce.type, 'session');
      assert.notEqual(JSON.parse(announce.data).session, goneSse.session);
      for (const c of [lp, sse]) await httpRequest(proxy.port, 'DELETE', `/echo?session=${c.session}`);
      routes = routes.filter((x) => x.path !== '/e/');
      await reload(proxy, yaml(routes));
    });

    test('listeners: an added entry is bound, a removed one refuses connections, its WebSocket lives on', { timeout: T }, async () => {
      const first = proxy.port;
      let r = await reload(proxy, yaml(routes, ['127.0.0.1:0', '127.0.0.1:0']));
      assert.equal(r.fields.listeners_added, '1', r.line);
      assert.equal(r.fields.listeners_removed, '0', r.line);
      const bound = r.lines.map((l) => /\bevent=listening address=127\.0\.0\.1:(\d+)/.exec(l)).filter(Boolean);
      assert.equal(bound.length, 1, `one listening line: ${r.lines.join('\n')}`);
      const second = Number(bound[0][1]);
      assert.notEqual(second, first);
      const onSecond = new NumberedWs(`ws://127.0.0.1:${second}/echo`, 'second');
      const sseOnSecond = await sseSession(second, '/echo');
      try {
        await onSecond.opened();
        onSecond.send(3);
        await onSecond.heardUpTo(3);
        // The first entry kept its socket (port 0 entries pair in order).
        assert.equal((await httpRequest(first, 'GET', '/echo?transport=longpoll')).status, 200);

        r = await reload(proxy, yaml(routes));
        assert.equal(r.fields.listeners_added, '0', r.line);
        assert.equal(r.fields.listeners_removed, '1', r.line);
        assert.ok(r.lines.some((l) => new RegExp(`\\bevent=listener_closed address=127\\.0\\.0\\.1:${second}\\b`).test(l)), r.lines.join('\n'));
        assert.equal(await refused(second), true, 'the removed listener refuses connections');
        assert.equal(await refused(first), false, 'the kept one accepts');
        // What it accepted before goes on: the relay, and the SSE stream (its POSTs go to the
        // listener that is left).
        onSecond.send(3);
        await onSecond.heardUpTo(6);
        sseOnSecond.port = first;
        await postRound(sseOnSecond, 'sse2', 3);
        assert.equal(sseOnSecond.sse.current.ended, false);
        assert.equal(sseOnSecond.compare(sseOnSecond.outbox), null);
        assert.equal(onSecond.closed, null);
      } finally {
        await onSecond.close();
        sseOnSecond.sse?.close();
      }
    });

    test('the admin listener on port 0 keeps its port across reloads', { timeout: T }, async () => {
      const before = adminPort(proxy);
      const r = await reload(proxy, yaml(routes));
      assert.ok(!r.lines.some((l) => /\bevent=admin_listening\b/.test(l)), `the admin socket was bound again: ${r.lines.join('\n')}`);
      assert.equal(adminPort(proxy), before);
      assert.equal((await httpRequest(before, 'GET', '/healthz')).status, 200);
    });

    test('a file with errors changes nothing: one reload_failed line per problem, file:line:col', { timeout: T }, async () => {
      const live = new NumberedWs(`ws://127.0.0.1:${proxy.port}/echo`, 'live');
      try {
        await live.opened();
        const m0 = await reloadMetrics(proxy);
        const bad = `${yaml([...routes, { path: '/added', backend: backend.url('/echo') }])}    max_message: -3\n` +
          '    idle_timeout: forever\nunknown_top: 1\n';
        const r = await reload(proxy, bad, { errors: 3 });
        assertErrorsAt(proxy, bad, r.fields.map((f) => f.error), [['-3', 'max_message'], ['forever', 'idle_timeout'], ['unknown_top', 'unknown_top']]);
        for (const f of r.fields) assert.equal(f.level, 'error');
        // The old config serves: /echo answers with its limits, /added does not exist.
        assert.equal((await httpRequest(proxy.port, 'GET', '/added?transport=longpoll')).status, 404);
        live.send(3);
        await live.heardUpTo(3);
        const fresh = new NumberedWs(`ws://127.0.0.1:${proxy.port}/echo`, 'fresh');
        await fresh.opened();
        fresh.send(2);
        await fresh.heardUpTo(2);
        await fresh.close();
        let m = await reloadMetrics(proxy);
        assert.deepEqual(m, { ok: m0.ok, error: m0.error + 1, lastOk: 0 });

        // A YAML syntax error, a listen address that cannot be bound and a missing certificate
        // are refused the same way; nothing is bound or closed.
        const holder = net.createServer();
        await new Promise((resolve) => holder.listen(0, '127.0.0.1', resolve));
        const held = holder.address().port;
        try {
          const syntax = `${yaml(routes)}  - path: [unclosed\n`;
          let f = await reload(proxy, syntax, { errors: 1 });
          assert.match(f.fields[0].error, new RegExp(`^${proxy.configFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `), f.lines[0]);
          f = await reload(proxy, yaml(routes, ['127.0.0.1:0', '127.0.0.1:0', `127.0.0.1:${held}`]), { errors: 1 });
          assert.match(f.fields[0].error, new RegExp(`127\\.0\\.0\\.1:${held}`), f.lines[0]);
          assert.ok(!f.all.some((l) => /\bevent=listener_closed\b/.test(l)), f.all.join('\n'));
          const noCert = yaml(routes, ['127.0.0.1:0', { address: '127.0.0.1:0', tls: { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' } }]);
          f = await reload(proxy, noCert, { errors: 2 });
          assertErrorsAt(proxy, noCert, f.fields.map((x) => x.error), [['"/nonexistent/cert.pem"', 'cert'], ['"/nonexistent/key.pem"', 'key']]);
        } finally {
          holder.close();
        }
        // The port that was being added is not left bound: a second listener never appeared.
        m = await reloadMetrics(proxy);
        assert.deepEqual(m, { ok: m0.ok, error: m0.error + 4, lastOk: 0 });
        live.send(2);
        await live.heardUpTo(5);
        assert.equal(live.closed, null);

        // A good file again: the gauge says so.
        const ok = await reload(proxy, yaml(routes));
        assert.equal(ok.fields.listeners_added, '0', ok.line);
        m = await reloadMetrics(proxy);
        assert.deepEqual(m, { ok: m0.ok + 1, error: m0.error + 4, lastOk: 1 });
      } finally {
        await live.close();
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('certificates', { skip: opensslSkip() }, () => {
    let pki;
    let dir;
    let proxy;
    const fingerprint = (pem) => new crypto.X509Certificate(pem).fingerprint256;
    /** The certificate a new TLS connection to the proxy gets (and the handshake outcome). */
    const peerCert = (port) => withTimeout(new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.ca.pem.cert, pki.rogueCa.pem.cert] }, () => {
        const c = s.getPeerCertificate();
        s.destroy();
        resolve(c.fingerprint256);
      });
      s.once('error', reject);
    }), 3000, 'a TLS handshake');
    const routes = () => [{ path: '/echo', backend: backend.url('/echo'), rate: FAST }];
    const yaml = () => proxyConfig(routes(), {
      extra: ADMIN,
      listen: [{ address: '127.0.0.1:0', tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') } }],
    });
    const install = (leaf) => {
      fs.copyFileSync(leaf.cert, path.join(dir, 'cert.pem'));
      fs.copyFileSync(leaf.key, path.join(dir, 'key.pem'));
    };

    before(async () => {
      pki = makePki();
      dir = fs.mkdtempSync(path.join(pki.dir, 'live-'));
      install(pki.server);
      proxy = await startReloadable(yaml(), { label: 'reload-tls-proxy' });
    });
    after(async () => {
      await proxy?.stop();
      pki?.cleanup();
    });

    test('replaced certificate files: a new connection gets the new certificate, a live one goes on', { timeout: T }, async () => {
      const port = proxy.tlsPorts[0];
      assert.equal(port, proxy.port);
      assert.equal(await peerCert(port), fingerprint(pki.server.pem.cert));
      let liveCert;
      const live = new NumberedWs(`wss://127.0.0.1:${port}/echo`, 'live', { wsOptions: { ca: [pki.ca.pem.cert] } });
      live.ws.once('upgrade', (res) => {
        liveCert = res.socket.getPeerCertificate().fingerprint256;
      });
      try {
        await live.opened();
        live.send(3);
        await live.heardUpTo(3);
        assert.equal(liveCert, fingerprint(pki.server.pem.cert));

        // Same file names, new contents (another key, another issuer): SIGHUP.
        install(pki.untrusted);
        const r = await reload(proxy, yaml());
        assert.equal(r.fields.certificates, '1', r.line);
        assert.equal(r.fields.listeners_added, '0', r.line);
        assert.equal(r.fields.listeners_removed, '0', r.line);
        assert.equal(await peerCert(port), fingerprint(pki.untrusted.pem.cert), 'a new connection sees the new certificate');
        live.send(3);
        await live.heardUpTo(6);

        // A broken pair (the new certificate with the old key) is refused: the last good one stays.
        fs.copyFileSync(pki.server.key, path.join(dir, 'key.pem'));
        const f = await reload(proxy, yaml(), { errors: 1 });
        assert.match(f.lines[0], /\bevent=reload_failed\b/);
        assert.equal(await peerCert(port), fingerprint(pki.untrusted.pem.cert), 'a failed reload keeps the certificate');

        // Back to the first: new connections follow, the live one still works.
        install(pki.server);
        await reload(proxy, yaml());
        assert.equal(await peerCert(port), fingerprint(pki.server.pem.cert));
        const fresh = new NumberedWs(`wss://127.0.0.1:${port}/echo`, 'fresh', { wsOptions: { ca: [pki.ca.pem.cert] } });
        await fresh.opened();
        fresh.send(2);
        await fresh.heardUpTo(2);
        await fresh.close();
        live.send(3);
        await live.heardUpTo(9);
        assert.equal(live.closed, null);
        assert.deepEqual(live.problems, []);
        const m = await reloadMetrics(proxy);
        assert.deepEqual(m, { ok: 2, error: 1, lastOk: 1 });
      } finally {
        await live.close();
      }
    });
  });
});
