// End-to-end tests of many sessions on one connection (docs/protocol.md, "Many sessions on one
// connection (multiplexing)"): the multiplexed SSE stream, the multiplexed poll and the
// multiplexed send, through wsbridge to the example backend (examples/backend/server.mjs) and
// to a backend the tests drive by hand (lib/ctlbackend.mjs).
//
//   node --test tests/e2e/mux.test.mjs
//   E2E_SEED=123 node --test tests/e2e/mux.test.mjs     (repeat a run's random cuts)
//
// Sessions are opened with `GET ?transport=longpoll` (lib/mux.mjs openLongPoll) and are
// SessionClients (lib/session_client.mjs), so whatever carries a session — its own SSE stream,
// WebSocket or poll, or a shared stream or poll — its books are the same: every backend
// message exactly once and in order, every client message forwarded exactly once (checked by
// the echo backend: a message forwarded twice is echoed twice, one lost never echoed; or on
// what the hand-driven backend received).
//
// Cuts are at random byte offsets (seeded; the seed is printed): the stream's socket is
// destroyed after N body bytes, then a new stream lists every session at its current position.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBackend, startProxy, proxyConfig, proxySkip, sleep } from './lib/harness.mjs';
import { startControlBackend } from './lib/ctlbackend.mjs';
import { prng, seed as pickSeed } from './lib/wssession.mjs';
import { httpRequest, postCut } from './lib/session_client.mjs';
import { MuxStream, muxPath, muxPoll, muxSend, muxSendAll, openLongPoll, sendEntry } from './lib/mux.mjs';

const skip = proxySkip();
const T = 30000; // per-test timeout
const FAST = { messages_per_second: 100000, burst: 100000 }; // rate that never limits the tests
const SEED = pickSeed();
const FORGED = 'AAAAAAAAAAAAAAAAAAAAAA';

let backend;
let ctl;
let proxy;

/** Message i of a session's client stream: text (some with CR/LF, non-ASCII, empty) and binary. */
function genMessage(rng, tag, i) {
  const r = i % 10;
  if (i % 97 === 5) return { binary: false, data: Buffer.alloc(0) };
  if (i % 89 === 7) return { binary: true, data: Buffer.alloc(0) };
  if (r === 6) return { binary: false, data: Buffer.from(`${tag}#${i} é😀\r\nline2\n${'z'.repeat(rng.int(0, 40))}`, 'utf8') };
  if (r === 4) return { binary: false, data: Buffer.from(`${tag}#${i}\nsecond line\n`, 'utf8') };
  if (r === 3 || r === 8) return { binary: true, data: rng.bytes(rng.int(1, 200)) };
  return { binary: false, data: Buffer.from(`${tag}#${i}:${'x'.repeat(rng.int(0, 120))}`, 'utf8') };
}

const genMessages = (rng, tag, n, from = 0) => Array.from({ length: n }, (_, i) => genMessage(rng, tag, from + i));
const text = (s) => ({ binary: false, data: Buffer.from(s, 'utf8') });

/** Asserts `c` received exactly `expected` with no violation, gap, reset or close. */
function assertExact(c, expected, what) {
  const problem = c.compare(expected);
  assert.equal(problem, null, `${what} (seed ${SEED}): ${problem}`);
  assert.deepEqual(c.gaps, [], `${what}: no gap`);
  assert.deepEqual(c.resets, [], `${what}: no reset`);
}

const noViolations = (stream) => assert.deepEqual(stream.violations, [], `${stream.label} violations`);

/** Waits until every client saw `n(c)` messages and had `sent(c)` client messages acknowledged. */
async function settleAll(clients, n, sent = n, ms = 15000) {
  await Promise.all(clients.map((c) => c.waitUntil(() => c.lastSeen >= n(c) && c.acked >= sent(c) + 1, ms,
    `session ${c.session}: messages up to ${n(c)}, acks up to ${sent(c)}`)));
}

/** DELETE ?session=S[&code&reason]. */
const del = (route, id, extra = '') => httpRequest(proxy.port, 'DELETE', `${route}?session=${id}${extra}`);

describe('many sessions on one connection (multiplexing)', { skip }, () => {
  before(async () => {
    console.log(`# mux seed ${SEED} (E2E_SEED=${SEED} repeats the cuts)`);
    backend = await startBackend({ label: 'mux-backend' });
    ctl = await startControlBackend();
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: backend.url('/echo'), rate: FAST },
      { path: '/echo2', backend: backend.url('/echo'), rate: FAST },
      { path: '/stream', backend: backend.url('/stream'), rate: FAST },
      { path: '/ctl', backend: ctl.url('/ctl'), rate: FAST },
      { path: '/small', backend: ctl.url('/small'), replay_messages: 10, rate: FAST },
      { path: '/rl', backend: ctl.url('/rl'), rate: { messages_per_second: 1, burst: 3 } },
      { path: '/hold', backend: ctl.url('/hold'), idle_timeout: '1s', rate: FAST },
      { path: '/tiny', backend: ctl.url('/tiny'), max_message: '1k', max_post_body: '8k', rate: FAST },
      { path: '/flood', backend: ctl.url('/echoflood'), outbound_queue: '64k', max_message: '16k', rate: FAST },
      { path: '/slowc', backend: ctl.url('/slowc'), idle_timeout: '1s', outbound_queue: '64k', max_message: '16k', rate: FAST },
      { path: '/origin', backend: backend.url('/echo'), origins: ['http://app.example'], rate: FAST },
    ]), { label: 'mux-proxy' });
  });
  after(async () => {
    await proxy?.stop();
    await ctl?.close();
    await backend?.stop();
  });

  /** The hand-driven backend connection of session `c` (its URL names the route's backend path;
   *  sessions are told apart by the order they were opened in). */
  async function openCtl(route, n) {
    const out = [];
    for (let i = 0; i < n; i++) {
      const before = ctl.conns.length;
      const c = await openLongPoll(proxy.port, route);
      c.backend = await ctl.nth(before);
      out.push(c);
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------
  describe('multiplexed SSE stream', () => {
    test('five sessions on one stream: each message once, in order, both ways (mux POST and single POSTs)', { timeout: T }, async () => {
      const rng = prng(SEED);
      const clients = await Promise.all(Array.from({ length: 5 }, () => openLongPoll(proxy.port, '/echo')));
      const stream = await new MuxStream(proxy.port, '/echo', clients).connect();
      try {
        assert.equal(stream.conn.status, 200);
        assert.match(stream.conn.headers['content-type'], /^text\/event-stream/);
        assert.equal(stream.conn.headers['cache-control'], 'no-store');
        assert.equal(stream.es.retry, 1000, 'retry: 1000');
        assert.deepEqual(stream.announce.sessions.map((e) => [e.session, e.last_seq, e.next_seq]),
          clients.map((c) => [c.session, 0, 1]));
        assert.equal(stream.announce.heartbeat_ms, 30000);
        const N = 200;
        const expected = clients.map((c, k) => genMessages(rng, `s${k}`, N));
        clients.forEach((c, k) => c.queue(expected[k]));
        // Alternate: a multiplexed POST for every session, then a single batch POST per session.
        for (let round = 0; round < 200 && clients.some((c) => c.acked <= N); round++) {
          if (round % 2 === 0) {
            const res = await muxSendAll(proxy.port, '/echo', clients, { max: rng.int(1, 25) });
            assert.equal(res.status, 200, res.body);
            assert.deepEqual(res.json.results.map((r) => Object.keys(r)), res.json.results.map(() => ['session', 'next_seq']));
          } else {
            await Promise.all(clients.map((c) => c.post({ max: rng.int(1, 25) })));
          }
        }
        await settleAll(clients, () => N, () => N);
        clients.forEach((c, k) => assertExact(c, expected[k], `session ${k}`));
        noViolations(stream);
        // The sessions interleave on the stream (each gets its own events, not one after another).
        const order = stream.items.filter((d) => d.kind === 'message').map((d) => d.session);
        let switches = 0;
        for (let i = 1; i < order.length; i++) if (order[i] !== order[i - 1]) switches++;
        assert.ok(switches >= 10, `sessions interleave on the stream (${switches} switches)`);
        assert.equal(stream.ended, false, 'the stream stays open');
      } finally {
        stream.close();
        await Promise.all(clients.map((c) => del('/echo', c.session)));
      }
    });

    test('independent closes: DELETE and a backend close end one session each, the others continue', { timeout: T }, async () => {
      const [a, b, c] = await openCtl('/ctl', 3);
      const stream = await new MuxStream(proxy.port, '/ctl', [a, b, c]).connect();
      try {
        // DELETE of a: its close event, the stream stays for b and c.
        const d = await del('/ctl', a.session, '&code=4001&reason=gone');
        assert.equal(d.status, 204);
        await a.waitUntil(() => a.closes.length === 1, 5000, 'close of a');
        assert.equal(a.closes[0].via, stream.label);
        await ctl.waitFor(() => a.backend.closed, 3000, 'backend close of a');
        assert.deepEqual(a.backend.closed, { code: 4001, reason: 'gone' }, 'the DELETE code reached the backend');
        // b's backend sends two messages, then closes: messages, then close, then b leaves.
        b.backend.ws.send('b1');
        b.backend.ws.send(Buffer.from([0, 1, 2]), { binary: true });
        b.backend.ws.close(4002, 'done');
        await b.waitUntil(() => b.closes.length === 1, 5000, 'close of b');
        assert.deepEqual(b.received.map((m) => [m.seq, m.binary, m.data.toString('hex')]),
          [[1, false, Buffer.from('b1').toString('hex')], [2, true, '000102']]);
        assert.deepEqual(b.closes.map(({ code, reason }) => ({ code, reason })), [{ code: 4002, reason: 'done' }]);
        // c keeps flowing both ways.
        c.backend.ws.send('c1');
        await c.waitUntil(() => c.lastSeen === 1, 3000, 'c1');
        const res = await muxSend(proxy.port, '/ctl', [{ session: c.session, seq: 1, messages: [{ text: 'up' }] }, { session: b.session, seq: 1, messages: [{ text: 'x' }] }]);
        assert.deepEqual(res.json, { results: [{ session: c.session, next_seq: 2 }, { session: b.session, error: 'session_closed' }] });
        await ctl.waitFor(() => c.backend.received.length === 1, 3000, 'c up');
        assert.equal(c.backend.received[0].data.toString(), 'up');
        assert.equal(stream.ended, false, 'the stream stays while c is on it');
        // The close event of each session is the last thing of it on the stream.
        const lastOf = (id) => stream.items.filter((x) => x.session === id).at(-1)?.kind;
        assert.equal(lastOf(a.session), 'close');
        assert.equal(lastOf(b.session), 'close');
        // c's close: no session left, the stream ends.
        c.backend.ws.close(1000, '');
        await stream.waitForEnd(5000);
        assert.deepEqual(c.closes.map(({ code, reason }) => ({ code, reason })), [{ code: 1000, reason: '' }]);
        noViolations(stream);
        // A stream listing a closed session gets its close at once (within resume_window).
        // (a was closed by its DELETE, b by its backend: each gets what it missed and its close.)
        for (const x of [a, b]) {
          x.received = [];
          x.lastSeen = 0;
        }
        const again = await new MuxStream(proxy.port, '/ctl', [a, b], { positions: [0, 0] }).connect();
        await again.waitForEnd(3000);
        assert.equal(again.items[0].kind, 'mux');
        const kindsOf = (id) => again.items.filter((x) => x.session === id).map((x) => x.kind);
        assert.deepEqual(kindsOf(a.session), ['close']);
        assert.deepEqual(kindsOf(b.session), ['message', 'message', 'close']);
        assert.equal(again.items.find((x) => x.kind === 'close' && x.session === b.session).code, 4002);
        noViolations(again);
      } finally {
        stream.close();
      }
    });

    test('resume after cuts at random offsets: no loss, no duplicate per session (cuts on POSTs too)', { timeout: 60000 }, async () => {
      const rng = prng(SEED + 1);
      const N = 300; // /stream sends "1".."N" at once, then echoes
      const clients = await Promise.all(Array.from({ length: 4 }, () => openLongPoll(proxy.port, '/stream', { open: `/stream?n=${N}` })));
      const M = 150;
      const up = clients.map((c, k) => genMessages(rng, `r${k}`, M));
      clients.forEach((c, k) => c.queue(up[k]));
      const expected = up.map((u) => [...Array.from({ length: N }, (_, i) => text(String(i + 1))), ...u]);
      const streams = [];
      try {
        let cuts = 0;
        for (let round = 0; round < 60; round++) {
          const done = clients.every((c) => c.lastSeen >= N + M && c.acked > M);
          if (done) break;
          const s = new MuxStream(proxy.port, '/stream', clients);
          streams.push(s);
          // Cut within the next 6 KB of the stream (about a tenth of what is left at first),
          // or let one round in five run uncut.
          const cutAfter = round % 5 === 4 ? Infinity : rng.int(1, 6000);
          await s.connect({ cutAfterBytes: cutAfter });
          if (s.conn.status !== 200) throw new Error(`stream status ${s.conn.status}`);
          // Meanwhile send: a multiplexed POST, sometimes cut partway (the answer is then lost
          // and the next POST resends from the last acknowledged seq).
          if (rng.next() < 0.4) {
            const entries = clients.filter((c) => c.acked <= M).map((c) => sendEntry(c, { max: rng.int(1, 20) }));
            if (entries.length) await postCut(proxy.port, '/stream?transport=mux', JSON.stringify(entries.map(({ session, seq, messages }) => ({ session, seq, messages }))), rng.next() * 1.2 > 1 ? 1 : rng.next());
          }
          const res = await muxSendAll(proxy.port, '/stream', clients, { max: rng.int(1, 30) });
          if (res) assert.equal(res.status, 200, res.body);
          // Wait for the cut (or give the uncut stream some time), at most 400 ms.
          await s.waitForEnd(400).catch(() => {});
          if (s.conn.cut && s.conn.bytes >= cutAfter) cuts++;
          s.close();
          noViolations(s);
        }
        // A last stream picks up whatever is left.
        const last = await new MuxStream(proxy.port, '/stream', clients).connect();
        streams.push(last);
        await muxSendAll(proxy.port, '/stream', clients, { max: 100 });
        await settleAll(clients, () => N + M, () => M, 10000);
        console.log(`# resume: ${cuts} cuts mid-stream over ${streams.length} streams`);
        clients.forEach((c, k) => assertExact(c, expected[k], `session ${k} after ${cuts} cuts`));
        for (const s of streams) noViolations(s);
        assert.ok(cuts >= 5, `the stream was cut mid-way several times (${cuts})`);
      } finally {
        for (const s of streams) s.close();
        await Promise.all(clients.map((c) => del('/stream', c.session)));
      }
    });

    test('gaps per session with a small replay buffer (replay_messages 10)', { timeout: T }, async () => {
      const [a, b] = await openCtl('/small', 2);
      const s1 = await new MuxStream(proxy.port, '/small', [a, b]).connect();
      try {
        for (let i = 1; i <= 30; i++) a.backend.ws.send(`a${i}`);
        for (let i = 1; i <= 4; i++) b.backend.ws.send(`b${i}`);
        await a.waitUntil(() => a.lastSeen === 30, 5000, 'a 1..30');
        await b.waitUntil(() => b.lastSeen === 4, 5000, 'b 1..4');
        assert.deepEqual(a.gaps, [], 'no gap for a connected stream');
        s1.close();
        // a comes back from 0: its messages 1..20 are gone (gap), 21..30 replayed; b resumes
        // from its own position without a gap; the stream names each gap's session.
        a.received = [];
        a.lastSeen = 0;
        const s2 = await new MuxStream(proxy.port, '/small', [a, b], { positions: [0, 4] }).connect();
        await a.waitUntil(() => a.lastSeen === 30, 5000, 'a replay');
        assert.deepEqual(a.gaps.map(({ from, to }) => [from, to]), [[1, 20]]);
        assert.deepEqual(a.received.map((m) => m.data.toString()), Array.from({ length: 10 }, (_, i) => `a${21 + i}`));
        assert.deepEqual(b.gaps, []);
        b.backend.ws.send('b5');
        await b.waitUntil(() => b.lastSeen === 5, 3000, 'b5');
        assert.equal(b.received.at(-1).data.toString(), 'b5');
        noViolations(s2);
        s2.close();
        // The same through a multiplexed poll.
        a.lastSeen = 5;
        a.received = [];
        const p = await muxPoll(proxy.port, '/small', [a, b], { positions: [5, 5] });
        assert.deepEqual(p.problems, []);
        assert.deepEqual(p.json.sessions.map((e) => e.session), [a.session], 'only a has news');
        assert.deepEqual(p.entries.get(a.session).gap, { from: 6, to: 20 });
        assert.equal(a.lastSeen, 30);
      } finally {
        s1.close();
        await Promise.all([a, b].map((c) => del('/small', c.session)));
      }
    });

    test('one session flooded by its backend does not hold up the others on the stream', { timeout: 45000 }, async () => {
      const [a, b, c] = await openCtl('/flood', 3);
      const stream = new MuxStream(proxy.port, '/flood', [a, b, c]);
      await stream.connect();
      try {
        const N = 20000; // 20 MB: far more than the socket buffers hold
        const payload = 'f'.repeat(1000);
        const t0 = performance.now();
        for (let i = 1; i <= N; i++) a.backend.ws.send(`${i} ${payload}`);
        // b and c send a message every 20 ms (echoed); record when each echo arrives.
        const sent = new Map();
        const got = [];
        const onEcho = (who) => (m) => got.push({ who, text: m.data.toString(), at: performance.now(), aSeen: a.lastSeen });
        const origB = b.onMessage.bind(b);
        const origC = c.onMessage.bind(c);
        b.onMessage = (seq, bin, data, via) => { origB(seq, bin, data, via); onEcho('b')({ data }); };
        c.onMessage = (seq, bin, data, via) => { origC(seq, bin, data, via); onEcho('c')({ data }); };
        let k = 0;
        while (a.lastSeen < N && k < 500 && performance.now() - t0 < 20000) {
          k++;
          b.queue([text(`b${k}`)]);
          c.queue([text(`c${k}`)]);
          sent.set(`b${k}`, performance.now());
          sent.set(`c${k}`, performance.now());
          const r = await muxSendAll(proxy.port, '/flood', [b, c]);
          assert.equal(r.status, 200, r.body);
          await sleep(20);
        }
        await a.waitUntil(() => a.lastSeen === N, 20000, 'the whole flood');
        const floodMs = performance.now() - t0;
        await settleAll([b, c], () => k, () => k, 5000);
        assert.deepEqual(a.gaps, []);
        assert.deepEqual(a.violations, []);
        for (let i = 0; i < N; i += 97) assert.equal(a.received[i].data.toString(), `${i + 1} ${payload}`);
        for (const [cl, tag] of [[b, 'b'], [c, 'c']]) {
          assert.deepEqual(cl.received.map((m) => m.data.toString()), Array.from({ length: k }, (_, i) => `${tag}${i + 1}`));
        }
        const during = got.filter((g) => g.aSeen < N);
        const lat = got.map((g) => g.at - sent.get(g.text));
        const maxLat = Math.max(...lat);
        console.log(`# flood ${N} x 1 KB took ${floodMs.toFixed(0)} ms; ${during.length} of ${got.length} echoes of the others arrived during it; max latency ${maxLat.toFixed(0)} ms`);
        assert.ok(floodMs > 400, `the flood took a while (${floodMs.toFixed(0)} ms)`);
        assert.ok(during.length >= 3, `the others' echoes came through during the flood (${during.length})`);
        assert.ok(maxLat < floodMs / 2 + 500, `no echo waited for the flood to end (max ${maxLat.toFixed(0)} ms, flood ${floodMs.toFixed(0)} ms)`);
        noViolations(stream);
      } finally {
        stream.close();
        await Promise.all([a, b, c].map((x) => del('/flood', x.session)));
      }
    });

    test('a stream of a slow reader ends as a slow consumer; every session on it resumes', { timeout: T }, async () => {
      const [a, b] = await openCtl('/slowc', 2); // idle_timeout 1s: stalled 500 ms → ended
      const s1 = new MuxStream(proxy.port, '/slowc', [a, b]);
      await s1.connect();
      const streams = [s1];
      try {
        s1.conn.res.pause(); // the client stops reading
        const N = 20000; // 20 MB: more than the socket buffers take
        const payload = 'p'.repeat(1000);
        for (let i = 1; i <= N; i++) a.backend.ws.send(`${i} ${payload}`);
        b.backend.ws.send('b1');
        // The proxy gives up on the stream (stalled with a full queue for 500 ms); once the
        // client reads again it gets what was written and then the end of the stream.
        const log = await proxy.waitForLog(/sse_slow_consumer.*session="?mux/, 10000);
        assert.ok(log, 'the proxy logged the slow consumer');
        s1.conn.res.resume();
        await s1.waitForEnd(10000);
        // Resume: a new stream at the positions reached. Nothing of a is lost silently (what
        // its replay buffer no longer holds comes as a gap), b loses nothing.
        for (let k = 0; k < 5 && (a.lastSeen < N || b.lastSeen < 2); k++) {
          const s = await new MuxStream(proxy.port, '/slowc', [a, b]).connect();
          streams.push(s);
          if (k === 0) b.backend.ws.send('b2');
          await a.waitUntil(() => a.lastSeen === N && b.lastSeen === 2, 10000, 'the rest after the slow consumer').catch(() => {});
        }
        assert.equal(a.lastSeen, N);
        let covered = 0;
        for (const m of a.received) {
          if (m.data.toString() !== `${m.seq} ${payload}`) assert.fail(`a: message ${m.seq} is ${m.data.subarray(0, 20)}`);
          covered++;
        }
        for (const g of a.gaps) covered += g.to - g.from + 1;
        assert.equal(covered, N, `a: every message received once or named in a gap (gaps ${JSON.stringify(a.gaps.map(({ from, to }) => [from, to]))})`);
        assert.deepEqual(a.violations, []);
        assert.deepEqual(b.received.map((m) => m.data.toString()), ['b1', 'b2']);
        assert.deepEqual(b.gaps, []);
        for (const s of streams) noViolations(s);
      } finally {
        for (const s of streams) s.close();
        await Promise.all([a, b].map((x) => del('/slowc', x.session)));
      }
    });

    test('listing sessions with backlogs: the stream delivers them all (no slow consumer for a reading client)', { timeout: T }, async () => {
      // 10 sessions with 30 KB each waiting (each under its own backpressure threshold,
      // outbound_queue 64k) listed on one stream whose client reads at once: 300 KB for the
      // stream to write, more than twice outbound_queue in all, though no session is behind.
      const clients = await openCtl('/slowc', 10);
      const payload = 'q'.repeat(1000);
      for (const c of clients) for (let i = 1; i <= 30; i++) c.backend.ws.send(`${i} ${payload}`);
      await sleep(300);
      const s = await new MuxStream(proxy.port, '/slowc', clients).connect();
      try {
        await s.waitFor(() => s.ended || clients.every((c) => c.lastSeen === 30), 5000, 'every backlog, or the end of the stream');
        const slow = proxy.stderr().split('\n').filter((l) => /sse_slow_consumer.*session="?mux/.test(l)).slice(-1)[0];
        assert.equal(s.ended, false, `the stream ended after ${s.conn.bytes} bytes (${clients.map((c) => c.lastSeen).join(',')} of 30 each); proxy: ${slow}`);
        for (const c of clients) assert.deepEqual(c.gaps, []);
        noViolations(s);
      } finally {
        s.close();
        await Promise.all(clients.map((c) => del('/slowc', c.session)));
      }
    });

    test('heartbeat comments after heartbeat_ms of silence; a position past the newest is clamped', { timeout: T }, async () => {
      const [a] = await openCtl('/hold', 1); // idle_timeout 1s: heartbeat_ms 500
      a.backend.ws.send('a1');
      a.backend.ws.send('a2');
      await sleep(100);
      a.lastSeen = 2; // seen both; listed at 999, which cannot have been seen
      a.expectNewest = 2;
      const s = await new MuxStream(proxy.port, '/hold', [a], { positions: [999] }).connect();
      try {
        assert.equal(s.announce.heartbeat_ms, 500);
        assert.equal(s.announce.sessions[0].last_seq, 2, 'clamped to the newest message');
        await sleep(1300);
        assert.ok(s.es.comments.length >= 1 && s.es.comments.length <= 4, `heartbeats in 1.3 s of silence: ${s.es.comments.length}`);
        assert.deepEqual(s.items.map((x) => x.kind), ['mux'], 'nothing but heartbeats');
        a.backend.ws.send('a3');
        await a.waitUntil(() => a.lastSeen === 3, 3000, 'a3 after the clamp');
        assert.equal(a.received.at(-1).data.toString(), 'a3');
        noViolations(s);
      } finally {
        s.close();
        await del('/hold', a.session);
      }
    });

    test('Origin: a foreign origin gets 403 on the stream, the poll and the send; an allowed one CORS headers', { timeout: T }, async () => {
      const a = await openLongPoll(proxy.port, '/origin');
      try {
        const path = muxPath('/origin', [[a.session, 0]]);
        const evil = { Origin: 'http://evil.example' };
        const good = { Origin: 'http://app.example' };
        let r = await httpRequest(proxy.port, 'GET', path, { headers: { ...evil, Accept: 'text/event-stream' } });
        assert.equal(r.status, 403, 'stream');
        r = await httpRequest(proxy.port, 'GET', path, { headers: evil });
        assert.equal(r.status, 403, 'poll');
        r = await muxSend(proxy.port, '/origin', [{ session: a.session, seq: 1, messages: [{ text: 'x' }] }], { headers: evil });
        assert.equal(r.status, 403, 'send');
        assert.equal(r.headers['access-control-allow-origin'], undefined);
        r = await muxSend(proxy.port, '/origin', [{ session: a.session, seq: 1, messages: [{ text: 'x' }] }], { headers: good });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.headers['access-control-allow-origin'], 'http://app.example');
        const s = await new MuxStream(proxy.port, '/origin', [a], { headers: good }).connect();
        assert.equal(s.conn.status, 200);
        assert.equal(s.conn.headers['access-control-allow-origin'], 'http://app.example');
        assert.equal(s.conn.headers['access-control-allow-credentials'], 'true');
        await a.waitUntil(() => a.lastSeen === 1, 3000, 'the echo of x');
        noViolations(s);
        s.close();
      } finally {
        await del('/origin', a.session);
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('moving between connections', () => {
    test('own SSE -> shared stream -> WebSocket -> shared -> long-poll -> mux poll -> shared, without loss', { timeout: T }, async () => {
      const rng = prng(SEED + 2);
      const [x, y] = await Promise.all([openLongPoll(proxy.port, '/echo'), openLongPoll(proxy.port, '/echo')]);
      const ex = genMessages(rng, 'x', 120);
      const ey = genMessages(rng, 'y', 120);
      x.queue(ex);
      y.queue(ey);
      let sentX = 0;
      const step = async (nx, ny = 0) => {
        // x sends nx more (single batch POST), y ny more (mux POST); wait for their echoes.
        sentX += nx;
        await x.post({ upTo: sentX });
        if (ny) await muxSendAll(proxy.port, '/echo', [y], { max: ny });
        await settleAll([x], () => sentX, () => sentX, 5000);
      };
      const streams = [];
      try {
        // 1. x on its own SSE stream.
        const own = await x.sseAttach({ mode: 'url' });
        await step(10);
        // 2. a shared stream takes x (and y): x's own stream ends, nothing lost or repeated.
        const m1 = await new MuxStream(proxy.port, '/echo', [x, y]).connect();
        streams.push(m1);
        await own.waitForEnd(3000);
        await step(10, 10);
        await y.waitUntil(() => y.lastSeen >= 10, 5000, 'y 10');
        // 3. a WebSocket takes x: the shared stream gets `detached` for x only, y stays.
        const ws = await x.wsAttach();
        await m1.waitFor((items) => items.some((d) => d.kind === 'detached' && d.session === x.session), 3000, 'detached x');
        assert.deepEqual(x.detaches.map((d) => [d.reason, d.via]), [['replaced', m1.label]]);
        assert.equal(m1.ended, false, 'the stream stays for y');
        sentX += 10;
        await x.wsSend(ws, sentX);
        await settleAll([x], () => sentX, () => sentX, 5000);
        await muxSendAll(proxy.port, '/echo', [y], { max: 10 });
        await y.waitUntil(() => y.lastSeen >= 20, 5000, 'y 20 on the first stream');
        // 4. a new shared stream takes both: the WebSocket gets `replaced` and close 1000, the
        //    old stream `detached` for y, then ends (no session left).
        const m2 = await new MuxStream(proxy.port, '/echo', [x, y]).connect();
        streams.push(m2);
        await ws.waitFor((cn) => cn.ended, 3000);
        assert.ok(ws.controls.some((cn) => cn.type === 'replaced'), 'the WebSocket got `replaced`');
        assert.equal(ws.close?.code, 1000);
        await m1.waitForEnd(3000);
        assert.equal(m1.items.at(-1).kind, 'detached');
        assert.equal(m1.items.at(-1).session, y.session);
        await step(10, 10);
        await y.waitUntil(() => y.lastSeen >= 30, 5000, 'y 30');
        // 5. x moves to long-poll: m2 gets `detached` for x; the held poll answers with news.
        const poll = x.lpPoll();
        await m2.waitFor((items) => items.some((d) => d.kind === 'detached' && d.session === x.session), 3000, 'detached x on m2');
        await sleep(50);
        sentX += 10;
        const postDone = x.post({ upTo: sentX });
        await poll;
        await postDone;
        for (let i = 0; i < 5 && x.lastSeen < sentX; i++) await x.lpPoll({ ms: 5000 });
        // 6. a held single-session poll is answered `"messages":[]` when a mux poll takes x.
        const held = httpRequest(proxy.port, 'GET', `/echo?session=${x.session}&ack=${x.lastSeen}`);
        await sleep(100);
        const mp = muxPoll(proxy.port, '/echo', [x]);
        const heldRes = await held;
        assert.deepEqual(heldRes.json, { messages: [] }, 'the held poll left with an empty answer');
        // 7. a shared stream takes x from the held mux poll: that poll answers `detached`.
        await sleep(100);
        const m3 = await new MuxStream(proxy.port, '/echo', [x]).connect();
        streams.push(m3);
        const mpRes = await mp;
        assert.deepEqual(mpRes.problems, []);
        assert.deepEqual(mpRes.json, { sessions: [{ session: x.session, detached: 'replaced' }] });
        await step(10);
        sentX += 0;
        // Everything both sessions sent came back exactly once, in order.
        await muxSendAll(proxy.port, '/echo', [y], { max: 100 });
        await settleAll([y], () => y.acked - 1, () => y.acked - 1, 5000);
        assertExact(x, ex.slice(0, sentX), 'x');
        assertExact(y, ey.slice(0, y.acked - 1), 'y');
        assert.deepEqual(x.violations, []);
        for (const s of streams) noViolations(s);
        const via = new Set(x.received.map((m) => m.via.replace(/#\d+$/, '')));
        for (const kind of ['sse', 'mux', 'ws', 'lp']) assert.ok(via.has(kind), `x received over ${kind} (${[...via]})`);
      } finally {
        for (const s of streams) s.close();
        await Promise.all([x, y].map((c) => del('/echo', c.session)));
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('multiplexed poll', () => {
    test('hold with "sessions":[]; only sessions with news; acks by position; reset; close', { timeout: T }, async () => {
      const [a, b, c] = await openCtl('/hold', 3); // idle_timeout 1s: hold_ms 500
      try {
        let p = await muxPoll(proxy.port, '/hold', [a, b, c]);
        assert.equal(p.status, 200);
        assert.equal(p.headers['cache-control'], 'no-store');
        assert.deepEqual(p.json, { sessions: [] });
        assert.ok(p.ms >= 400 && p.ms < 2000, `held about hold_ms 500 (${p.ms.toFixed(0)} ms)`);
        // News for b only: at once, only b.
        b.backend.ws.send('b1');
        b.backend.ws.send(Buffer.from([9]), { binary: true });
        await sleep(50);
        // An answer lost on the way (cut after 20 bytes) acknowledged nothing: sent again.
        p = await muxPoll(proxy.port, '/hold', [a, b, c], { cutAfterBytes: 20, book: false });
        assert.equal(p.cut, true);
        p = await muxPoll(proxy.port, '/hold', [a, b, c]);
        assert.deepEqual(p.problems, []);
        assert.deepEqual(p.json, { sessions: [{ session: b.session, messages: [{ seq: 1, text: 'b1' }, { seq: 2, binary: 'CQ==' }] }] });
        assert.ok(p.ms < 300, `answered at once (${p.ms.toFixed(0)} ms)`);
        // Not acknowledged yet: the same poll position gets them again.
        p = await muxPoll(proxy.port, '/hold', [a, b, c], { positions: [0, 0, 0], book: false });
        assert.deepEqual(p.json.sessions.map((e) => [e.session, e.messages.map((m) => m.seq)]), [[b.session, [1, 2]]]);
        // Acknowledged by position (b.lastSeen is 2 now): held again, then c's news arrives.
        const held = muxPoll(proxy.port, '/hold', [a, b, c]);
        await sleep(150);
        c.backend.ws.send('c1');
        p = await held;
        assert.ok(p.ms < 450, `the held poll answered at c's message (${p.ms.toFixed(0)} ms)`);
        assert.deepEqual(p.json, { sessions: [{ session: c.session, messages: [{ seq: 1, text: 'c1' }] }] });
        // An unknown id and one of another route: `reset` each, at once, and nothing else.
        const other = await openLongPoll(proxy.port, '/echo');
        p = await muxPoll(proxy.port, '/hold', [a], { unknown: [FORGED, other.session] });
        assert.deepEqual(p.problems, []);
        assert.deepEqual(p.json, { sessions: [{ session: FORGED, reset: 'unknown session' }, { session: other.session, reset: 'unknown session' }] });
        await del('/echo', other.session);
        // a's backend closes: a's messages then close.
        a.backend.ws.send('a1');
        a.backend.ws.close(4003, 'bye');
        await ctl.waitFor(() => a.backend.closed, 3000, 'a closed');
        await sleep(50);
        p = await muxPoll(proxy.port, '/hold', [a, b, c]);
        assert.deepEqual(p.json, { sessions: [{ session: a.session, messages: [{ seq: 1, text: 'a1' }], close: { code: 4003, reason: 'bye' } }] });
        // A held mux poll is answered at once when DELETE closes one of its sessions.
        const held2 = muxPoll(proxy.port, '/hold', [b, c]);
        await sleep(100);
        assert.equal((await del('/hold', b.session)).status, 204);
        p = await held2;
        assert.ok(p.ms < 450, `answered at the DELETE (${p.ms.toFixed(0)} ms)`);
        assert.equal(p.json.sessions.length, 1);
        assert.equal(p.json.sessions[0].session, b.session);
        assert.equal(p.json.sessions[0].close?.code, 1000);
        for (const x of [a, b, c]) assert.deepEqual(x.violations, []);
      } finally {
        await Promise.all([a, b, c].map((x) => del('/hold', x.session)));
      }
    });

    test('a newer poll or stream takes the sessions of a held mux poll: `detached`', { timeout: T }, async () => {
      const [a, b] = await openCtl('/hold', 2);
      try {
        const held = muxPoll(proxy.port, '/hold', [a, b]);
        await sleep(100);
        const newer = muxPoll(proxy.port, '/hold', [a]);
        const p = await held;
        assert.ok(p.ms < 400, `answered at once (${p.ms.toFixed(0)} ms)`);
        assert.deepEqual(p.json, { sessions: [{ session: a.session, detached: 'replaced' }] });
        assert.deepEqual((await newer).json, { sessions: [] });
        // b (not taken) is still reachable: its news reaches the next poll.
        b.backend.ws.send('b1');
        const p2 = await muxPoll(proxy.port, '/hold', [a, b]);
        assert.deepEqual(p2.json, { sessions: [{ session: b.session, messages: [{ seq: 1, text: 'b1' }] }] });
      } finally {
        await Promise.all([a, b].map((x) => del('/hold', x.session)));
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('multiplexed send', () => {
    test('per-session outcomes: next_seq, retry, seq_gap, unknown_session, session_closed; entries independent', { timeout: T }, async () => {
      const [a, b, c] = await openCtl('/ctl', 3);
      const other = await openLongPoll(proxy.port, '/echo');
      try {
        assert.equal((await del('/ctl', c.session)).status, 204);
        let r = await muxSend(proxy.port, '/ctl', [
          { session: a.session, seq: 1, messages: [{ text: 'a1' }, { binary: 'AAE=' }] },
          { session: b.session, seq: 3, messages: [{ text: 'b3' }] },
          { session: FORGED, seq: 1, messages: [{ text: 'f' }] },
          { session: c.session, seq: 1, messages: [{ text: 'c' }] },
          { session: other.session, seq: 1, messages: [{ text: 'o' }] },
        ]);
        assert.equal(r.status, 200, r.body);
        assert.match(r.headers['content-type'], /^application\/json/);
        assert.deepEqual(r.json, { results: [
          { session: a.session, next_seq: 3 },
          { session: b.session, error: 'seq_gap', expected_seq: 1 },
          { session: FORGED, error: 'unknown_session' },
          { session: c.session, error: 'session_closed' },
          { session: other.session, error: 'unknown_session' },
        ] });
        // A retried seq is acknowledged, not forwarded again; b from its expected seq works.
        r = await muxSend(proxy.port, '/ctl', [
          { session: b.session, seq: 1, messages: [{ text: 'b1' }] },
          { session: a.session, seq: 1, messages: [{ text: 'a1' }, { binary: 'AAE=' }, { text: 'a3' }] },
        ]);
        assert.deepEqual(r.json, { results: [{ session: b.session, next_seq: 2 }, { session: a.session, next_seq: 4 }] });
        await ctl.waitFor(() => a.backend.received.length >= 3 && b.backend.received.length >= 1, 3000, 'forwarded');
        await sleep(100);
        assert.deepEqual(a.backend.received.map((m) => [m.isBinary, m.data.toString('hex')]),
          [[false, Buffer.from('a1').toString('hex')], [true, '0001'], [false, Buffer.from('a3').toString('hex')]]);
        assert.deepEqual(b.backend.received.map((m) => m.data.toString()), ['b1']);
        // The single-session POST continues from the same seq.
        const single = await httpRequest(proxy.port, 'POST', `/ctl?session=${a.session}&seq=4`, { body: 'a4' });
        assert.deepEqual(single.json, { next_seq: 5 });
        // An empty entry (no messages) just reports next_seq; an empty array answers no results.
        r = await muxSend(proxy.port, '/ctl', [{ session: a.session, seq: 5, messages: [] }]);
        assert.deepEqual(r.json, { results: [{ session: a.session, next_seq: 5 }] });
        r = await muxSend(proxy.port, '/ctl', '[]');
        assert.deepEqual(r.json, { results: [] });
      } finally {
        await Promise.all([a, b].map((x) => del('/ctl', x.session)));
        await del('/echo', other.session);
      }
    });

    test('per-session rate: rate_limited with retry_after, payload_too_large over burst; others unaffected', { timeout: T }, async () => {
      const [a, b] = await openCtl('/rl', 2); // rate 1/s, burst 3
      try {
        let r = await muxSend(proxy.port, '/rl', [
          { session: a.session, seq: 1, messages: [{ text: '1' }, { text: '2' }, { text: '3' }] },
          { session: b.session, seq: 1, messages: [{ text: '1' }, { text: '2' }, { text: '3' }, { text: '4' }] },
        ]);
        assert.deepEqual(r.json, { results: [
          { session: a.session, next_seq: 4 },
          { session: b.session, error: 'payload_too_large' },
        ] });
        r = await muxSend(proxy.port, '/rl', [
          { session: a.session, seq: 4, messages: [{ text: '4' }] },
          { session: b.session, seq: 1, messages: [{ text: '1' }, { text: '2' }] },
        ]);
        assert.equal(r.json.results[0].session, a.session);
        assert.equal(r.json.results[0].error, 'rate_limited');
        assert.ok(Number.isInteger(r.json.results[0].retry_after) && r.json.results[0].retry_after >= 1, JSON.stringify(r.json));
        assert.deepEqual(Object.keys(r.json.results[0]), ['session', 'error', 'retry_after']);
        assert.deepEqual(r.json.results[1], { session: b.session, next_seq: 3 }, 'b has its own bucket');
        await sleep(150);
        assert.deepEqual(a.backend.received.map((m) => m.data.toString()), ['1', '2', '3'], 'nothing of the limited entry forwarded');
      } finally {
        await Promise.all([a, b].map((x) => del('/rl', x.session)));
      }
    });

    test('400 for a body that is not such an array (nothing forwarded), 413 over max_post_body or max_message', { timeout: T }, async () => {
      const [a] = await openCtl('/tiny', 1); // max_message 1k, max_post_body 8k
      try {
        const ok = { session: a.session, seq: 1, messages: [{ text: 'ok' }] };
        const bad = {
          'not JSON': '[{',
          'an object': JSON.stringify(ok),
          'trailing data': `${JSON.stringify([ok])} x`,
          'an entry that is not an object': JSON.stringify([ok, 5]),
          'missing session': JSON.stringify([{ seq: 1, messages: [] }]),
          'missing seq': JSON.stringify([{ session: a.session, messages: [] }]),
          'missing messages': JSON.stringify([{ session: a.session, seq: 1 }]),
          'unknown key': JSON.stringify([{ ...ok, extra: 1 }]),
          'duplicate key': `[{"session":"${a.session}","seq":1,"seq":1,"messages":[]}]`,
          'seq 0': JSON.stringify([{ ...ok, seq: 0 }]),
          'seq negative': JSON.stringify([{ ...ok, seq: -1 }]),
          'seq a string': JSON.stringify([{ ...ok, seq: '1' }]),
          'a session that is no id': JSON.stringify([{ ...ok, session: 'a b' }]),
          'a session listed twice': JSON.stringify([ok, { ...ok, seq: 2 }]),
          'bad base64': JSON.stringify([{ ...ok, messages: [{ binary: 'A' }] }]),
          'a lone surrogate': `[{"session":"${a.session}","seq":1,"messages":[{"text":"\\ud800"}]}]`,
          'a message with two kinds': JSON.stringify([{ ...ok, messages: [{ text: 'a', binary: 'AA==' }] }]),
          '101 entries': JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ session: `S${i}`, seq: 1, messages: [] }))),
        };
        for (const [what, body] of Object.entries(bad)) {
          const r = await muxSend(proxy.port, '/tiny', body);
          assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
          if (r.status === 400) {
            assert.deepEqual(Object.keys(r.json).sort(), ['detail', 'error'], what);
            assert.equal(r.json.error, 'bad_request', what);
          }
        }
        let r = await muxSend(proxy.port, '/tiny', JSON.stringify([ok, { session: a.session, seq: 2, messages: [{ text: 'x'.repeat(1025) }] }]));
        assert.equal(r.status, 413, `a message over max_message: ${r.body}`);
        assert.equal(r.json.error, 'payload_too_large');
        r = await muxSend(proxy.port, '/tiny', JSON.stringify([{ ...ok, messages: Array.from({ length: 9 }, () => ({ text: 'y'.repeat(1000) })) }]));
        assert.equal(r.status, 413, `a body over max_post_body: ${r.body}`);
        await sleep(100);
        assert.deepEqual(a.backend.received, [], 'nothing of a refused request was forwarded');
        r = await muxSend(proxy.port, '/tiny', [ok]);
        assert.deepEqual(r.json, { results: [{ session: a.session, next_seq: 2 }] });
        // 100 entries are allowed (unknown ones answer unknown_session).
        const hundred = [ok, ...Array.from({ length: 99 }, (_, i) => ({ session: `U${i}`, seq: 1, messages: [] }))];
        r = await muxSend(proxy.port, '/tiny', hundred);
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.results.length, 100);
        assert.deepEqual(r.json.results[0], { session: a.session, next_seq: 2 });
        assert.ok(r.json.results.slice(1).every((x) => x.error === 'unknown_session'));
      } finally {
        await del('/tiny', a.session);
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('request limits', () => {
    test('at most 100 sessions, each once, each <id>.<n>: otherwise 400 (stream and poll)', { timeout: T }, async () => {
      const ids = (n) => Array.from({ length: n }, (_, i) => [`X${String(i).padStart(21, '0')}`, 0]);
      const sse = { Accept: 'text/event-stream' };
      for (const headers of [sse, {}]) {
        const kind = headers.Accept ? 'stream' : 'poll';
        const bad = {
          '101 sessions': muxPath('/echo', ids(101)),
          'a session listed twice': muxPath('/echo', [...ids(3), ids(1)[0]]),
          'the same session at two positions': muxPath('/echo', [['AB', 0], ['AB', 3]]),
          'no position': '/echo?transport=mux&session=AB',
          'a position with a leading zero': '/echo?transport=mux&session=AB.01',
          'a negative position': '/echo?transport=mux&session=AB.-1',
          'no session': '/echo?transport=mux',
          'an empty session': '/echo?transport=mux&session=.1',
          'a bad id character': '/echo?transport=mux&session=A*B.1',
        };
        for (const [what, path] of Object.entries(bad)) {
          const r = await httpRequest(proxy.port, 'GET', path, { headers });
          assert.equal(r.status, 400, `${kind}, ${what}: ${r.status} ${r.body.slice(0, 200)}`);
          assert.equal(r.json?.error, 'bad_request', `${kind}, ${what}`);
        }
      }
      // 100 unknown sessions: a stream with 100 resets that ends at once (no session left).
      const s = await new MuxStream(proxy.port, '/echo', [], { unknown: ids(100).map(([id]) => id) }).connect();
      await s.waitForEnd(3000);
      assert.equal(s.announce.sessions.length, 100);
      assert.ok(s.announce.sessions.every((e) => e.reset === 'unknown session'));
      noViolations(s);
      const p = await muxPoll(proxy.port, '/echo', [], { unknown: ids(100).map(([id]) => id) });
      assert.equal(p.status, 200);
      assert.equal(p.json.sessions.length, 100);
      assert.deepEqual(p.problems, []);
    });

    test('a stream lists a session of another route as unknown; the others still work', { timeout: T }, async () => {
      const [a, o] = await Promise.all([openLongPoll(proxy.port, '/echo'), openLongPoll(proxy.port, '/echo2')]);
      try {
        const s = await new MuxStream(proxy.port, '/echo', [a], { unknown: [o.session, FORGED] }).connect();
        assert.deepEqual(s.announce.sessions.slice(1), [{ session: o.session, reset: 'unknown session' }, { session: FORGED, reset: 'unknown session' }]);
        a.queue([text('hi')]);
        await muxSendAll(proxy.port, '/echo', [a]);
        await a.waitUntil(() => a.lastSeen === 1, 3000, 'hi');
        noViolations(s);
        s.close();
        // The other route's session was not touched: it still answers on its own route.
        o.queue([text('there')]);
        await o.post();
        await o.lpPoll();
        assert.equal(o.received.at(-1)?.data.toString(), 'there');
      } finally {
        await del('/echo', a.session);
        await del('/echo2', o.session);
      }
    });
  });
});
