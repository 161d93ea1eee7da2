// End-to-end tests of the session transport over WebSocket (subprotocol `wsbridge.session.v1`,
// docs/protocol.md "WebSocket sessions" and "Switching transports"), through wsbridge to the
// example backend (examples/backend/server.mjs) and to a backend the tests drive by hand
// (lib/ctlbackend.mjs).
//
//   node --test tests/e2e/ws_sessions.test.mjs
//   E2E_SEED=123 node --test tests/e2e/ws_sessions.test.mjs     (repeat a run's random cuts)
//
// The client is lib/wssession.mjs (the framing, written from docs/protocol.md alone) and
// lib/session_client.mjs (one session across WebSocket, SSE and long-poll with exact books:
// every message must arrive exactly once, in order, on whatever transport). Against the echo
// backend "the backend saw each client message once" is checked through its echoes: a
// message forwarded twice would be echoed twice, one lost never echoed; against the hand-driven
// backend it is checked on what the backend received.
//
// Cuts are at random byte offsets (seeded; the seed is printed): the client destroys the TCP
// connection after N bytes from the proxy (while the proxy sends), or after writing part of
// its own frames or POST (while the client sends). A resume then resends every client message
// from the first one the proxy had not acknowledged, so seqs the proxy already forwarded are
// sent again on purpose.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBackend, startProxy, proxyConfig, proxySkip, sleep } from './lib/harness.mjs';
import { startControlBackend } from './lib/ctlbackend.mjs';
import { OP, frame } from './lib/rawws.mjs';
import {
  SUBPROTOCOL, connectWs, expectSessionWs, sessionPath, encodeText, encodeControl, prng, seed as pickSeed,
} from './lib/wssession.mjs';
import { SessionClient, httpRequest, describeMessage, messagesEqual } from './lib/session_client.mjs';

const skip = proxySkip();
const T = 30000; // per-test timeout
const SESSION_RE = /^[A-Za-z0-9_-]{22}$/;
const FAST = { messages_per_second: 100000, burst: 100000 }; // rate that never limits the tests
const SEED = pickSeed();

let backend;
let ctl;
let proxy;

/** Message i of a test's client stream: mostly short text, some with CR/LF and non-ASCII
 *  (SSE `text-json`), some binary starting with the kind bytes 0x00/0x01, a few empty. */
function genMessage(rng, i) {
  const r = i % 10;
  if (i % 97 === 5) return { binary: false, data: Buffer.alloc(0) };
  if (i % 89 === 7) return { binary: true, data: Buffer.alloc(0) };
  if (r === 6) return { binary: false, data: Buffer.from(`#${i} é😀\r\nline2\n${'z'.repeat(rng.int(0, 40))}`, 'utf8') };
  if (r === 3 || r === 8) {
    const b = rng.bytes(rng.int(1, 200));
    b[0] = rng.int(0, 2); // 0x00, 0x01 (the kind bytes) or 0x02 as the payload's first byte
    return { binary: true, data: b };
  }
  return { binary: false, data: Buffer.from(`#${i}:${'x'.repeat(rng.int(0, 120))}`, 'utf8') };
}

const genMessages = (rng, n, from = 0) => Array.from({ length: n }, (_, i) => genMessage(rng, from + i));

/** Asserts `client` received exactly `expected`, with no violation, gap, reset or close. */
function assertExact(client, expected, what) {
  const problem = client.compare(expected);
  assert.equal(problem, null, `${what} (seed ${SEED}): ${problem}`);
  assert.deepEqual(client.gaps, [], `${what}: no gap`);
  assert.deepEqual(client.resets, [], `${what}: no reset`);
}

/** Waits until the client saw message `target` and the proxy acknowledged client seq
 *  `sent` (default: the same, as for an echo backend). */
async function settle(c, target, ms = 10000, sent = target) {
  await c.waitUntil(() => c.lastSeen >= target && c.acked >= sent + 1, ms, `messages up to ${target}, acks up to ${sent}`);
}

async function backendUpgrades(p) {
  return (await backend.stats()).byPath[p] ?? 0;
}

/** Items of a SessionWs after index `from`, as a short readable list. */
const itemsAfter = (conn, from) => conn.items.slice(from).map((it) => (it.t === 'control' ? it.control : it.t === 'message' ? `message ${it.seq}` : it));

describe('WebSocket sessions (wsbridge.session.v1)', { skip }, () => {
  before(async () => {
    console.log(`# ws_sessions seed ${SEED} (E2E_SEED=${SEED} repeats the cuts)`);
    backend = await startBackend({ label: 'ws-sessions-backend' });
    ctl = await startControlBackend();
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: backend.url('/echo'), rate: FAST },
      { path: '/stream', backend: backend.url('/stream'), rate: FAST },
      { path: '/sub', backend: backend.url('/subprotocol'), subprotocols: ['chat.v2', 'mqtt'], rate: FAST },
      { path: '/wrap', backend: backend.url('/echo'), replay_messages: 16, replay_buffer: '8k', max_message: '1k', rate: FAST },
      { path: '/limits', backend: backend.url('/echo'), max_message: '1k', rate: FAST },
      { path: '/ctl', backend: ctl.url('/ctl'), rate: FAST },
      { path: '/gap', backend: ctl.url('/gap'), replay_messages: 10, rate: FAST },
      { path: '/ctlecho', backend: ctl.url('/echo'), rate: FAST },
      { path: '/ratelimited', backend: ctl.url('/rate'), rate: { messages_per_second: 20, burst: 5 } },
      { path: '/hb', backend: backend.url('/echo'), idle_timeout: '400ms', rate: FAST },
      { path: '/big', backend: ctl.url('/big'), max_message: '1k', rate: FAST },
      { path: '/origin', backend: backend.url('/echo'), origins: ['http://app.example'], rate: FAST },
    ]), { label: 'ws-sessions-proxy' });
  });
  after(async () => {
    await proxy?.stop();
    await ctl?.close();
    await backend?.stop();
  });

  // ------------------------------------------------------------------------------------------
  describe('the relay is unchanged for other WebSockets', () => {
    test('no subprotocol: transparent relay, kind-byte lookalikes echoed raw', { timeout: T }, async () => {
      const conn = await connectWs(proxy.port, '/echo', { offer: null });
      try {
        assert.equal(conn.status, 101, conn.statusLine);
        assert.ok(conn.acceptOk);
        assert.equal(conn.headers['sec-websocket-protocol'], undefined, 'no subprotocol selected');
        const sent = [
          { opcode: OP.TEXT, payload: Buffer.from('hello') },
          { opcode: OP.BINARY, payload: Buffer.concat([Buffer.from([1]), Buffer.from('{"type":"ack","seq":1}')]) },
          { opcode: OP.BINARY, payload: Buffer.from([0, 1, 2]) },
          { opcode: OP.BINARY, payload: Buffer.from([7]) },
          { opcode: OP.TEXT, payload: Buffer.from('') },
        ];
        for (const f of sent) conn.write(frame(f));
        assert.ok(await conn.waitFor((c) => c.items.length >= sent.length || c.ended, 3000));
        await sleep(150); // nothing more may follow (no session control)
        assert.deepEqual(conn.items.map((it) => [it.t, it.opcode, it.payload.toString('hex')]),
          sent.map((f) => ['raw', f.opcode, f.payload.toString('hex')]));
        conn.sendClose(1000, 'done');
        assert.equal((await conn.waitEnd(3000))?.code, 1000, 'close relayed');
      } finally {
        conn.destroy();
      }
    });

    test('only other subprotocols: transparent relay with the backend\'s choice', { timeout: T }, async () => {
      const conn = await connectWs(proxy.port, '/sub', { offer: 'chat.v2, mqtt' });
      try {
        assert.equal(conn.status, 101, conn.statusLine);
        assert.equal(conn.headers['sec-websocket-protocol'], 'chat.v2');
        assert.ok(await conn.waitFor((c) => c.items.length >= 1 || c.ended, 3000));
        conn.write(frame({ opcode: OP.BINARY, payload: Buffer.from([1, 0x7b, 0x7d]) }));
        assert.ok(await conn.waitFor((c) => c.items.length >= 2 || c.ended, 3000));
        await sleep(100);
        assert.deepEqual(conn.items.map((it) => [it.t, it.opcode, it.payload.toString()]),
          [['raw', OP.TEXT, '{"protocol":"chat.v2"}'], ['raw', OP.BINARY, '\u0001{}']]);
      } finally {
        conn.destroy();
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('a session over WebSocket', () => {
    test('open: 101 with the subprotocol, session control, messages both ways, acks', { timeout: T }, async () => {
      const conn = await expectSessionWs(proxy.port, '/echo');
      try {
        const announce = await conn.waitControl('session', 3000);
        assert.ok(announce, `session control (items ${JSON.stringify(conn.items)})`);
        assert.match(announce.session, SESSION_RE);
        assert.deepEqual(announce, { type: 'session', session: announce.session, last_seq: 0, next_seq: 1, heartbeat_ms: 30000 });
        assert.equal(conn.items.length, 1, 'the session control comes first and alone');
        const sent = [
          { binary: false, data: Buffer.from('a') },
          { binary: true, data: Buffer.from([0x00, 0x01, 0xff]) },
          { binary: true, data: Buffer.alloc(0) },
          { binary: false, data: Buffer.alloc(0) },
          { binary: false, data: Buffer.from('é😀 \r\n x', 'utf8') },
          { binary: true, data: Buffer.concat([Buffer.from([1]), Buffer.from('{"type":"close"}')]) },
        ];
        for (const m of sent) (m.binary ? conn.sendBinary(m.data) : conn.sendText(m.data));
        assert.ok(await conn.waitFor((c) => c.messages.length >= sent.length || c.ended, 3000));
        const started = performance.now();
        const ack1 = await conn.waitFor((c) => c.controls.some((x) => x.type === 'ack' && x.next_seq === 7), 1500);
        assert.ok(ack1, `ack next_seq 7 (controls ${JSON.stringify(conn.controls)})`);
        assert.ok(performance.now() - started < 1000);
        assert.deepEqual(conn.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
        conn.messages.forEach((m, i) => assert.ok(messagesEqual(m, sent[i]), `message ${i + 1}: ${describeMessage(m)}`));
        assert.deepEqual(conn.controls.filter((x) => x.type === 'ack'), [{ type: 'ack', next_seq: 7 }], 'one ack, exact keys');

        // A burst of 130: acks after every 64 and at the end; next_seq only grows.
        const acksBefore = conn.controls.length;
        conn.write(Buffer.concat(Array.from({ length: 130 }, (_, i) => encodeText(`b${i + 7}`))));
        assert.ok(await conn.waitFor((c) => c.controls.some((x) => x.type === 'ack' && x.next_seq === 137), 3000),
          `ack 137 (controls ${JSON.stringify(conn.controls.slice(acksBefore))})`);
        assert.ok(await conn.waitFor((c) => c.messages.length >= 136, 3000));
        const acks = conn.controls.slice(acksBefore);
        assert.ok(acks.every((x) => x.type === 'ack'), JSON.stringify(acks));
        const nexts = acks.map((x) => x.next_seq);
        assert.ok(nexts.length >= 2, `an ack after every 64 messages: ${nexts}`);
        assert.ok(nexts.every((n, i) => i === 0 || n > nexts[i - 1]), `ack next_seq increases: ${nexts}`);
        assert.equal(nexts.at(-1), 137);
        assert.deepEqual(conn.messages.slice(6).map((m) => [m.seq, m.data.toString()]),
          Array.from({ length: 130 }, (_, i) => [i + 7, `b${i + 7}`]));
        // The client's ack control is accepted quietly.
        conn.sendControl({ type: 'ack', seq: 136 });
        await sleep(200);
        assert.equal(conn.ended, false, `connection still open (close ${JSON.stringify(conn.close)})`);
        assert.deepEqual(conn.violations, []);
      } finally {
        conn.destroy();
      }
    });

    test('Sec-WebSocket-Protocol listing other values too; ?protocol= reaches the backend', { timeout: T }, async () => {
      const conn = await expectSessionWs(proxy.port, '/sub?protocol=chat.v2', { offer: `foo, ${SUBPROTOCOL}, bar` });
      try {
        const announce = await conn.waitControl('session', 3000);
        assert.equal(announce?.protocol, 'chat.v2', JSON.stringify(announce));
        assert.ok(await conn.waitFor((c) => c.messages.length >= 1, 3000));
        assert.deepEqual(conn.messages.map((m) => [m.seq, m.binary, m.data.toString()]), [[1, false, '{"protocol":"chat.v2"}']]);
      } finally {
        conn.destroy();
      }
    });

    test('the client\'s ack trims the replay buffer: resuming before it gives a gap', { timeout: T }, async () => {
      const c = new SessionClient(proxy.port, '/echo', { ackEvery: 0 });
      const conn = await c.wsAttach();
      c.queue(Array.from({ length: 20 }, (_, i) => ({ binary: false, data: Buffer.from(`t${i + 1}`) })));
      await c.wsSend(conn);
      await settle(c, 20);
      conn.sendControl({ type: 'ack', seq: 20 });
      await sleep(150);
      conn.destroy();
      // Resume from 15: 16..20 were acknowledged, so dropped: a gap names them.
      const path = sessionPath('/echo', { session: c.session, ack: 15, seq: 21 });
      const again = await expectSessionWs(proxy.port, path);
      try {
        assert.ok(await again.waitFor((x) => x.controls.length >= 2 || x.ended, 3000));
        await sleep(150);
        assert.deepEqual(itemsAfter(again, 0), [
          { type: 'session', session: c.session, last_seq: 15, next_seq: 21, heartbeat_ms: 30000 },
          { type: 'gap', from: 16, to: 20 },
        ]);
        again.sendText('t21');
        assert.ok(await again.waitFor((x) => x.messages.length >= 1, 3000));
        assert.deepEqual(again.messages.map((m) => [m.seq, m.data.toString()]), [[21, 't21']]);
      } finally {
        again.destroy();
      }
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('cuts and resume', () => {
    test('cut while the proxy is sending (random offsets): every message once, in order', { timeout: T }, async () => {
      const rng = prng(SEED + 1);
      const N = 3000; // /stream?n=N sends "1".."N", then echoes
      const c = new SessionClient(proxy.port, '/stream', { open: `/stream?n=${N}` });
      const upgrades = await backendUpgrades('/stream');
      const own = genMessages(rng, 300);
      c.queue(own);
      let conn = await c.wsAttach({ cutAfterBytes: rng.int(100, 6000) });
      let cuts = 0;
      const deadline = Date.now() + 20000;
      for (let round = 0; round < 200 && c.lastSeen < N + own.length; round++) {
        assert.ok(Date.now() < deadline, `progress (lastSeen ${c.lastSeen})`);
        if (conn.announced !== false) {
          void c.wsSend(conn);
          await conn.waitFor((x) => x.ended || c.lastSeen >= N + own.length, 5000);
        }
        if (conn.ended) {
          cuts++;
          conn = await c.wsAttach(cuts < 12 ? { cutAfterBytes: rng.int(1, 8000) } : {});
        }
      }
      await settle(c, N + own.length, 10000, own.length);
      conn.destroy();
      assert.ok(cuts >= 5, `at least 5 cuts (${cuts})`);
      const expected = [...Array.from({ length: N }, (_, i) => ({ binary: false, data: Buffer.from(String(i + 1)) })), ...own];
      assertExact(c, expected, 'stream + echoes');
      assert.equal(await backendUpgrades('/stream'), upgrades + 1, 'one backend connection for all resumes');
    });

    test('cut while the client is sending (random offsets): the backend gets each message once', { timeout: T }, async () => {
      const rng = prng(SEED + 2);
      const c = new SessionClient(proxy.port, '/ctl');
      const n0 = ctl.conns.length;
      const msgs = genMessages(rng, 2000);
      c.queue(msgs);
      let conn = await c.wsAttach();
      const be = await ctl.nth(n0);
      let cuts = 0;
      const deadline = Date.now() + 20000;
      for (let round = 0; round < 100 && c.acked <= msgs.length; round++) {
        assert.ok(Date.now() < deadline, `progress (acked ${c.acked})`);
        if (conn.ended) conn = await c.wsAttach();
        if (cuts < 10) {
          const upTo = Math.min(msgs.length, conn.sendNext + rng.int(20, 300));
          await c.wsSend(conn, upTo, { cutFrac: rng.next() });
          cuts++;
        } else {
          await c.wsSend(conn);
          await c.waitUntil(() => c.acked > msgs.length || conn.ended, 5000, 'the last ack');
        }
      }
      assert.equal(cuts, 10);
      await ctl.waitFor(() => be.received.length >= msgs.length, 5000, 'every message at the backend');
      await sleep(200); // and nothing more
      conn.destroy();
      assert.equal(be.received.length, msgs.length, 'each message once at the backend');
      be.received.forEach((r, i) => {
        assert.ok(messagesEqual({ binary: r.isBinary, data: r.data }, msgs[i]),
          `backend message ${i + 1}: ${describeMessage({ binary: r.isBinary, data: r.data })} want ${describeMessage(msgs[i])}`);
      });
      assert.deepEqual(c.violations, []);
      assert.equal(be.closed, null, 'the backend connection stays open through the cuts');
    });

    test('a session resumes when it has exchanged nothing yet', { timeout: T }, async () => {
      const upgrades = await backendUpgrades('/echo');
      const c = new SessionClient(proxy.port, '/echo');
      const first = await c.wsAttach();
      first.destroy(); // a cut
      const second = await c.wsAttach();
      assert.deepEqual(second.controls[0], { type: 'session', session: c.session, last_seq: 0, next_seq: 1, heartbeat_ms: 30000 });
      second.sendClose(1000); // a Close from the client only detaches
      assert.equal((await second.waitEnd(3000))?.code, 1000);
      const third = await c.wsAttach();
      c.queue(genMessages(prng(SEED + 3), 3));
      await c.wsSend(third);
      await settle(c, 3);
      third.destroy();
      assertExact(c, c.outbox, 'after two empty resumes');
      assert.equal(await backendUpgrades('/echo'), upgrades + 1, 'one backend connection');
    });

    test('resume after the replay buffer wrapped many times (small buffer, client acks)', { timeout: T }, async () => {
      const rng = prng(SEED + 4);
      // replay_messages 16: batches of 8, an ack after each, so at most 16 are unacknowledged.
      const c = new SessionClient(proxy.port, '/wrap', { ackEvery: 8 });
      const msgs = genMessages(rng, 3000).map((m) => (m.data.length > 150 ? { ...m, data: m.data.subarray(0, 150) } : m));
      c.queue(msgs);
      let conn = await c.wsAttach();
      let cuts = 0;
      const deadline = Date.now() + 25000;
      for (let round = 0; round < 2000 && c.lastSeen < msgs.length; round++) {
        assert.ok(Date.now() < deadline, `progress (lastSeen ${c.lastSeen})`);
        if (conn.ended) conn = await c.wsAttach(round % 2 === 0 ? { cutAfterBytes: rng.int(1, 600) } : {});
        if (conn.ended) continue;
        const upTo = Math.min(msgs.length, Math.max(conn.sendNext, c.lastSeen + 8));
        if (round % 37 === 36) {
          await c.wsSend(conn, upTo, { cutFrac: rng.next() });
          cuts++;
          continue;
        }
        await c.wsSend(conn, upTo);
        await c.waitUntil(() => c.lastSeen >= upTo || conn.ended, 5000, `echo of ${upTo}`);
      }
      await settle(c, msgs.length);
      conn.destroy();
      assert.ok(cuts >= 10, `cuts ${cuts}`);
      assertExact(c, msgs, 'through a wrapped replay buffer');
    });

    test('100 resumes in a row, cut in both directions', { timeout: 60000 }, async () => {
      const rng = prng(SEED + 5);
      const n0 = ctl.conns.length;
      const c = new SessionClient(proxy.port, '/ctlecho', { ackEvery: 4 });
      let conn = await c.wsAttach();
      const be = await ctl.nth(n0);
      const all = genMessages(rng, 500);
      let resumes = 0;
      const deadline = Date.now() + 45000;
      for (let i = 0; i < 100; i++) {
        assert.ok(Date.now() < deadline, `resume ${i} in time`);
        c.queue(all.slice(i * 5, i * 5 + 5));
        if (i % 2 === 0) {
          // The proxy is sending when the cut comes (also inside the session control).
          if (!conn.ended) conn.destroy();
          conn = await c.wsAttach({ cutAfterBytes: rng.int(1, 400) });
          resumes++;
          if (conn.announced !== false && !conn.ended) {
            await c.wsSend(conn);
            await conn.waitFor((x) => x.ended || c.lastSeen >= c.outbox.length, 1000);
          }
        } else {
          // The client is sending when the cut comes.
          if (!conn.ended) conn.destroy();
          conn = await c.wsAttach();
          resumes++;
          await c.wsSend(conn, c.outbox.length, { cutFrac: rng.next() });
        }
      }
      if (!conn.ended) conn.destroy();
      conn = await c.wsAttach();
      await c.wsSend(conn);
      await settle(c, c.outbox.length);
      conn.destroy();
      assert.equal(resumes, 100);
      assert.equal(c.outbox.length, 500);
      // What the backend received (each client message once), then what came back.
      assert.equal(be.received.length, all.length, 'each client message once at the backend');
      be.received.forEach((r, i) => {
        const got = { binary: r.isBinary, data: r.data };
        assert.ok(messagesEqual(got, all[i]), `backend message ${i + 1}: ${describeMessage(got)} want ${describeMessage(all[i])}`);
      });
      assertExact(c, all, '100 resumes');
      assert.equal(ctl.conns.length, n0 + 1, 'one backend connection');
    });
  });

  // ------------------------------------------------------------------------------------------
  test('acceptance: 10,000 messages each way over 8 transport switches with random cuts', { timeout: 150000 }, async (t) => {
    const rng = prng(SEED + 6);
    const N = 10000;
    const msgs = genMessages(rng, N);
    const c = new SessionClient(proxy.port, '/echo');
    const upgrades = await backendUpgrades('/echo');
    const plan = ['ws', 'sse', 'lp', 'ws', 'sse', 'ws', 'lp', 'sse', 'ws'];
    const share = Math.ceil(N / plan.length);
    const deadline = Date.now() + 120000;
    const inTime = (what) => assert.ok(Date.now() < deadline, `${what} in time (lastSeen ${c.lastSeen}, acked ${c.acked})`);
    let prev = null; // the transport left attached by the previous phase: {t, conn|es|pending, mark}
    const ends = [];
    let cuts = 0;

    /** Checks the clear end of the transport the new one replaced. */
    async function checkReplaced(p) {
      if (p.t === 'ws') {
        await p.conn.waitEnd(3000);
        assert.deepEqual(itemsAfter(p.conn, p.mark), [{ type: 'replaced' }], 'the replaced WebSocket gets `replaced` and nothing else');
        assert.equal(p.conn.close?.code, 1000, 'then close 1000');
        assert.ok(p.conn.ended && !p.conn.cut, 'and the proxy ends it');
      } else if (p.t === 'sse') {
        const conn = p.es.current;
        await p.es.waitForEnd(3000, conn);
        assert.equal(conn.cut, false, 'the proxy ended the replaced SSE stream');
        assert.equal(conn.events.length, p.mark, 'no event after the switch');
      } else {
        const res = await p.pending;
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, { messages: [] }, 'the held poll is answered with no messages');
      }
      ends.push(p.t);
    }

    async function postAll(target) {
      let cutPosts = 0;
      for (let i = 0; i < 300 && c.acked <= target; i++) {
        inTime('POSTs');
        if (cutPosts < 1 && rng.next() < 0.3) {
          await c.post({ upTo: target, cutFrac: rng.next() * 1.2 }); // > 1: whole, answer lost
          cutPosts++;
          cuts++;
        } else {
          await c.post({ upTo: target });
        }
      }
      assert.equal(c.acked, target + 1);
    }

    for (let p = 0; p < plan.length; p++) {
      const kind = plan[p];
      const replace = p > 0 && p % 2 === 1; // odd switches: attach while the previous is attached
      if (prev && !replace) {
        // The previous transport is cut (no clear end expected).
        if (prev.t === 'ws') prev.conn.destroy();
        else if (prev.t === 'sse') prev.es.close();
        prev = null;
      }
      const from = c.outbox.length;
      const target = Math.min(N, from + share);
      c.queue(msgs.slice(from, target));
      let next = null;
      if (kind === 'ws') {
        // Attach (replacing prev), cut at a random offset while the proxy sends.
        let conn = await c.wsAttach({ cutAfterBytes: rng.int(300, 40000) });
        if (prev) await checkReplaced(prev);
        void c.wsSend(conn);
        await conn.waitFor((x) => x.ended || c.lastSeen >= target, 10000);
        if (conn.ended) cuts++;
        else conn.cutAfterBytes = Infinity; // the offset was past this phase's traffic: no cut
        // Resume, cut at a random offset while the client sends.
        if (conn.ended && c.acked <= target) {
          conn = await c.wsAttach();
          await c.wsSend(conn, target, { cutFrac: rng.next() });
          cuts++;
        }
        for (let i = 0; i < 20 && !(c.lastSeen >= target && c.acked > target && !conn.ended); i++) {
          inTime('ws phase');
          if (conn.ended) conn = await c.wsAttach();
          void c.wsSend(conn);
          await conn.waitFor((x) => x.ended || (c.lastSeen >= target && c.acked > target), 5000);
        }
        await settle(c, target);
        assert.ok(!conn.ended, 'the phase ends with its WebSocket attached');
        c.wsAck(conn);
        await sleep(20);
        next = { t: 'ws', conn, mark: conn.items.length };
      } else if (kind === 'sse') {
        let es = await c.sseAttach({ mode: p % 4 === 1 ? 'lei' : 'url', cutAfterBytes: rng.int(200, 60000) });
        if (prev) await checkReplaced(prev);
        await postAll(target);
        for (let i = 0; i < 20 && (c.lastSeen < target || es.current.ended); i++) {
          inTime('sse phase');
          if (es.current.ended) {
            cuts++;
            es = await c.sseAttach({ mode: i % 2 === 0 ? 'lei' : 'url' });
          }
          await es.waitFor(() => es.current.ended || c.lastSeen >= target, 5000, 'SSE progress').catch(() => {});
        }
        await settle(c, target);
        assert.ok(!es.current.ended, 'the phase ends with its SSE stream attached');
        es.current.cutAfterBytes = Infinity;
        next = { t: 'sse', es, mark: es.current.events.length };
      } else {
        // Long-poll: the first poll attaches (and replaces prev); it is held until the POSTs.
        const first = c.lpPoll();
        await sleep(100);
        if (prev) await checkReplaced(prev);
        await postAll(target);
        await first;
        let cutPoll = false;
        for (let i = 0; i < 500 && c.lastSeen < target; i++) {
          inTime('long-poll phase');
          if (!cutPoll) {
            const r = await c.lpPoll({ cutAfterBytes: rng.int(1, 20000) });
            cutPoll = true;
            if (r.cut) cuts++;
          } else {
            await c.lpPoll();
          }
        }
        await settle(c, target);
        // Leave a held poll attached (acknowledging everything) for the next transport to replace.
        const pending = c.lpPoll({ ms: 20000 });
        await sleep(100);
        next = { t: 'lp', pending };
      }
      prev = next;
    }
    if (prev?.t === 'ws') prev.conn.destroy();
    if (prev?.t === 'sse') prev.es.close();

    assert.equal(c.outbox.length, N);
    assertExact(c, msgs, '10,000 echoes across transports');
    const vias = new Set(c.received.map((m) => m.via.replace(/#\d+$/, '')));
    assert.deepEqual([...vias].sort(), ['lp', 'sse', 'ws'], 'messages arrived on all three transports');
    assert.deepEqual(ends, ['ws', 'lp', 'sse', 'lp'], 'the replaced transports got their clear end');
    assert.ok(ends.includes('ws') && ends.includes('sse') && ends.includes('lp'), `every transport was replaced once: ${ends}`);
    const byTransport = {};
    for (const m of c.received) byTransport[m.via.replace(/#\d+$/, '')] = (byTransport[m.via.replace(/#\d+$/, '')] ?? 0) + 1;
    t.diagnostic(`received by transport ${JSON.stringify(byTransport)}, ${c.log.length} attaches/polls, ${cuts} cuts`);
    assert.ok(cuts >= 8, `random cuts: ${cuts}`);
    assert.equal(await backendUpgrades('/echo'), upgrades + 1, 'one backend connection for the whole session');
  });

  // ------------------------------------------------------------------------------------------
  describe('signals: gap, reset, seq_gap, close', () => {
    test('gap: a client too far behind (no acks, replay_messages 10) gets the lost range', { timeout: T }, async () => {
      // The proxy holds the backend back while messages are undelivered (it never evicts one a
      // client has not been sent), so the lost range comes from a client that was sent 1..103,
      // acknowledged nothing, and resumes from 3 as if it had lost the rest.
      const n0 = ctl.conns.length;
      const conn = await expectSessionWs(proxy.port, '/gap');
      const be = await ctl.nth(n0);
      const announce = await conn.waitControl('session', 3000);
      for (let i = 1; i <= 103; i++) be.ws.send(`g${i}`);
      assert.ok(await conn.waitFor((x) => x.messages.length >= 103, 5000), `103 messages (${conn.messages.length})`);
      assert.deepEqual(conn.messages.map((m) => [m.seq, m.data.toString()]), Array.from({ length: 103 }, (_, i) => [i + 1, `g${i + 1}`]));
      conn.destroy();
      const again = await expectSessionWs(proxy.port, sessionPath('/gap', { session: announce.session, ack: 3 }));
      assert.ok(await again.waitFor((x) => x.messages.length >= 10 || x.ended, 3000));
      await sleep(150); // nothing more may follow
      again.destroy();
      assert.deepEqual(itemsAfter(again, 0), [
        { type: 'session', session: announce.session, last_seq: 3, next_seq: 1, heartbeat_ms: 30000 },
        { type: 'gap', from: 4, to: 93 },
        ...Array.from({ length: 10 }, (_, i) => `message ${94 + i}`),
      ]);
      assert.deepEqual(again.messages.map((m) => m.data.toString()), Array.from({ length: 10 }, (_, i) => `g${94 + i}`));
      assert.deepEqual(again.violations, []);
    });

    test('an unknown session id gives `reset`, then a working new session', { timeout: T }, async () => {
      const conn = await expectSessionWs(proxy.port, sessionPath('/echo', { session: 'AAAAAAAAAAAAAAAAAAAAAA', ack: 5, seq: 7 }));
      try {
        assert.ok(await conn.waitFor((x) => x.controls.length >= 2 || x.ended, 3000));
        const [reset, announce] = conn.controls;
        assert.deepEqual(Object.keys(reset).sort(), ['reason', 'session', 'type'], JSON.stringify(reset));
        assert.equal(reset.type, 'reset');
        assert.match(reset.session, SESSION_RE);
        assert.notEqual(reset.session, 'AAAAAAAAAAAAAAAAAAAAAA');
        assert.ok(reset.reason.length > 0);
        assert.deepEqual(announce, { type: 'session', session: reset.session, last_seq: 0, next_seq: 1, heartbeat_ms: 30000 });
        // The first message on this connection is the new session's seq 1, whatever seq= said.
        conn.sendText('after reset');
        assert.ok(await conn.waitFor((x) => x.controls.some((y) => y.type === 'ack') && x.messages.length >= 1, 3000));
        assert.deepEqual(conn.messages.map((m) => [m.seq, m.data.toString()]), [[1, 'after reset']]);
        assert.deepEqual(conn.controls.find((y) => y.type === 'ack'), { type: 'ack', next_seq: 2 });
        conn.destroy();
        // The new id resumes.
        const again = await expectSessionWs(proxy.port, sessionPath('/echo', { session: reset.session, ack: 1, seq: 2 }));
        assert.deepEqual(await again.waitControl('session', 3000), { type: 'session', session: reset.session, last_seq: 1, next_seq: 2, heartbeat_ms: 30000 });
        again.destroy();
      } finally {
        conn.destroy();
      }
    });

    test('seq= beyond the next expected: `error` seq_gap, close 1008, nothing forwarded; the session stays', { timeout: T }, async () => {
      const n0 = ctl.conns.length;
      const c = new SessionClient(proxy.port, '/ctl');
      const conn = await c.wsAttach();
      const be = await ctl.nth(n0);
      c.queue([{ binary: false, data: Buffer.from('m1') }, { binary: false, data: Buffer.from('m2') }]);
      await c.wsSend(conn);
      await c.waitUntil(() => c.acked === 3, 3000, 'ack 3');
      conn.destroy();
      // seq=5 with a message pipelined right behind the upgrade.
      const bad = await connectWs(proxy.port, sessionPath('/ctl', { session: c.session, ack: 0, seq: 5 }));
      bad.sendText('m5');
      assert.equal(bad.status, 101, bad.statusLine);
      await bad.waitEnd(3000);
      const err = bad.controls.find((x) => x.type === 'error');
      assert.ok(err, `error control (items ${JSON.stringify(itemsAfter(bad, 0))})`);
      assert.deepEqual(Object.keys(err).sort(), ['detail', 'error', 'expected_seq', 'type']);
      assert.equal(err.error, 'seq_gap');
      assert.equal(err.expected_seq, 3);
      assert.ok(err.detail.length > 0);
      // docs/protocol.md: the `session` control, then the `error` control, then close 1008.
      assert.deepEqual(itemsAfter(bad, 0), [
        { type: 'session', session: c.session, last_seq: 0, next_seq: 3, heartbeat_ms: 30000 },
        err,
      ]);
      assert.equal(bad.close?.code, 1008);
      await sleep(200);
      assert.deepEqual(be.received.map((r) => r.data.toString()), ['m1', 'm2'], 'nothing of that connection forwarded');
      // The session stays: resume with the right seq.
      c.queue([{ binary: false, data: Buffer.from('m3') }]);
      const good = await c.wsAttach();
      await c.wsSend(good);
      await ctl.waitFor(() => be.received.length >= 3, 3000, 'm3 at the backend');
      good.destroy();
      assert.deepEqual(be.received.map((r) => r.data.toString()), ['m1', 'm2', 'm3']);
    });

    test('the client\'s `close` control closes the session; later resume and POST see it closed', { timeout: T }, async () => {
      const n0 = ctl.conns.length;
      const c = new SessionClient(proxy.port, '/ctl');
      const conn = await c.wsAttach();
      const be = await ctl.nth(n0);
      c.queue([{ binary: false, data: Buffer.from('a') }, { binary: true, data: Buffer.from([1, 2]) }]);
      await c.wsSend(conn);
      be.ws.send('x');
      await c.waitUntil(() => c.lastSeen === 1 && c.acked === 3, 3000, 'x and the ack');
      const mark = conn.items.length;
      conn.sendControl({ type: 'close', code: 4000, reason: 'done' });
      await ctl.waitFor(() => be.closed, 3000, 'the backend close');
      assert.deepEqual(be.closed, { code: 4000, reason: 'done' });
      await conn.waitEnd(3000);
      assert.deepEqual(itemsAfter(conn, mark), [{ type: 'close', code: 4000, reason: 'done' }]);
      assert.equal(conn.close?.code, 1000);
      assert.deepEqual(be.received.map((r) => [r.isBinary, r.data.toString('hex')]), [[false, '61'], [true, '0102']]);
      // A resume from 0 gets the message and the close again; from 1, only the close.
      const r0 = await expectSessionWs(proxy.port, sessionPath('/ctl', { session: c.session, ack: 0, seq: 3 }));
      await r0.waitEnd(3000);
      assert.deepEqual(itemsAfter(r0, 0).slice(1), ['message 1', { type: 'close', code: 4000, reason: 'done' }]);
      assert.equal(r0.controls[0].type, 'session');
      assert.equal(r0.messages[0].data.toString(), 'x');
      assert.equal(r0.close?.code, 1000);
      const r1 = await expectSessionWs(proxy.port, sessionPath('/ctl', { session: c.session, ack: 1, seq: 3 }));
      await r1.waitEnd(3000);
      assert.deepEqual(itemsAfter(r1, 0).slice(1), [{ type: 'close', code: 4000, reason: 'done' }]);
      const post = await httpRequest(proxy.port, 'POST', `/ctl?session=${c.session}&seq=3`, { body: 'late', headers: { 'Content-Type': 'text/plain' } });
      assert.equal(post.status, 404);
      assert.equal(post.json?.error, 'session_closed');
      assert.equal(ctl.conns.length, n0 + 1, 'nothing more opened toward the backend');
    });

    test('a second WebSocket takes the session over: the first gets `replaced`, then close 1000', { timeout: T }, async () => {
      const c = new SessionClient(proxy.port, '/echo');
      const first = await c.wsAttach();
      c.queue([{ binary: false, data: Buffer.from('one') }]);
      await c.wsSend(first);
      await settle(c, 1);
      const mark = first.items.length;
      const second = await c.wsAttach();
      await first.waitEnd(3000);
      assert.deepEqual(itemsAfter(first, mark), [{ type: 'replaced' }]);
      assert.equal(first.close?.code, 1000);
      assert.equal(first.cut, false, 'the proxy ended it');
      c.queue([{ binary: false, data: Buffer.from('two') }]);
      await c.wsSend(second);
      await settle(c, 2);
      second.destroy();
      assertExact(c, c.outbox, 'across the takeover');
    });

    test('over the route\'s rate: close 1008, nothing after the limit forwarded, resent on resume', { timeout: T }, async () => {
      const n0 = ctl.conns.length;
      const c = new SessionClient(proxy.port, '/ratelimited');
      const conn = await c.wsAttach();
      const be = await ctl.nth(n0);
      c.queue(Array.from({ length: 10 }, (_, i) => ({ binary: false, data: Buffer.from(`r${i + 1}`) })));
      await c.wsSend(conn);
      await conn.waitEnd(3000);
      assert.deepEqual(conn.close, { code: 1008, reason: 'rate limit exceeded' });
      await sleep(500); // the bucket refills (20/s, burst 5: 250 ms)
      const again = await c.wsAttach();
      assert.equal(again.controls[0].next_seq, 6, 'the first 5 (the burst) were forwarded');
      await c.wsSend(again);
      await ctl.waitFor(() => be.received.length >= 10, 3000, '10 messages at the backend');
      await sleep(100);
      again.destroy();
      assert.deepEqual(be.received.map((r) => r.data.toString()), Array.from({ length: 10 }, (_, i) => `r${i + 1}`));
    });

    test('a backend close reaches the client after every message: `close`, then close 1000', { timeout: T }, async () => {
      const n0 = ctl.conns.length;
      const c = new SessionClient(proxy.port, '/ctl');
      const conn = await c.wsAttach();
      const be = await ctl.nth(n0);
      for (let i = 1; i <= 50; i++) be.ws.send(i % 5 === 0 ? Buffer.from([i]) : `b${i}`, { binary: i % 5 === 0 });
      be.ws.close(4001, 'bye');
      await conn.waitEnd(5000);
      assert.equal(conn.close?.code, 1000);
      const items = itemsAfter(conn, 1);
      assert.deepEqual(items, [...Array.from({ length: 50 }, (_, i) => `message ${i + 1}`), { type: 'close', code: 4001, reason: 'bye' }]);
      conn.messages.forEach((m, i) => {
        const want = (i + 1) % 5 === 0 ? { binary: true, data: Buffer.from([i + 1]) } : { binary: false, data: Buffer.from(`b${i + 1}`) };
        assert.ok(messagesEqual(m, want), `message ${i + 1}: ${describeMessage(m)}`);
      });
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('the route\'s rules on a session WebSocket', () => {
    test('heartbeat_ms is idle_timeout/2; pings are answered and keep the connection', { timeout: T }, async () => {
      const conn = await expectSessionWs(proxy.port, '/hb');
      try {
        const announce = await conn.waitControl('session', 3000);
        assert.equal(announce.heartbeat_ms, 200);
        await sleep(1200); // six heartbeat intervals: SessionWs answers the pings
        assert.equal(conn.ended, false, `still open (close ${JSON.stringify(conn.close)})`);
        conn.sendText('still here');
        assert.ok(await conn.waitFor((x) => x.messages.length >= 1, 3000));
        assert.deepEqual(conn.messages.map((m) => [m.seq, m.data.toString()]), [[1, 'still here']]);
      } finally {
        conn.destroy();
      }
    });

    test('Origin: 403 before the upgrade for a foreign origin, 101 for an allowed one', { timeout: T }, async () => {
      const bad = await connectWs(proxy.port, '/origin', { headers: { Origin: 'http://evil.example' } });
      bad.destroy();
      assert.equal(bad.status, 403);
      const good = await connectWs(proxy.port, '/origin', { headers: { Origin: 'http://app.example' } });
      good.destroy();
      assert.equal(good.status, 101);
      assert.equal(good.headers['sec-websocket-protocol'], SUBPROTOCOL);
    });

    test('resume position: absent ack is 0, an ack past the newest is clamped, a bad one is 400', { timeout: T }, async () => {
      const c = new SessionClient(proxy.port, '/echo');
      const conn = await c.wsAttach();
      c.queue([{ binary: false, data: Buffer.from('a') }, { binary: false, data: Buffer.from('b') }]);
      await c.wsSend(conn);
      await settle(c, 2);
      conn.destroy();
      const noAck = await expectSessionWs(proxy.port, `/echo?session=${c.session}`);
      assert.ok(await noAck.waitFor((x) => x.messages.length >= 2, 3000));
      noAck.destroy();
      assert.equal(noAck.controls[0].last_seq, 0);
      assert.deepEqual(noAck.messages.map((m) => [m.seq, m.data.toString()]), [[1, 'a'], [2, 'b']]);
      const ahead = await expectSessionWs(proxy.port, sessionPath('/echo', { session: c.session, ack: 99 }));
      const announce = await ahead.waitControl('session', 3000);
      ahead.destroy();
      assert.equal(announce.last_seq, 2, 'ack clamped to the newest message');
      for (const q of ['ack=x', 'ack=-1', 'ack=1&seq=0', 'ack=1&seq=abc']) {
        const r = await connectWs(proxy.port, `/echo?session=${c.session}&${q}`);
        r.destroy();
        assert.equal(r.status, 400, `?${q}: ${r.statusLine}`);
      }
    });

    test('a backend message over max_message closes the session: `close` 1009 after the earlier messages', { timeout: T }, async () => {
      const n0 = ctl.conns.length;
      const conn = await expectSessionWs(proxy.port, '/big');
      const be = await ctl.nth(n0);
      await conn.waitControl('session', 3000);
      be.ws.send('ok');
      be.ws.send('y'.repeat(2000));
      await conn.waitEnd(3000);
      const items = itemsAfter(conn, 1);
      assert.equal(items[0], 'message 1');
      assert.equal(items.length, 2, JSON.stringify(items));
      assert.equal(items[1].type, 'close');
      assert.equal(items[1].code, 1009);
      assert.equal(conn.close?.code, 1000);
    });

    test('a backend that dies without a close: `close` 1014 after the earlier messages', { timeout: T }, async () => {
      const n0 = ctl.conns.length;
      const conn = await expectSessionWs(proxy.port, '/ctl');
      const be = await ctl.nth(n0);
      await conn.waitControl('session', 3000);
      be.ws.send('last');
      await conn.waitFor((x) => x.messages.length >= 1, 3000);
      be.ws.terminate();
      await conn.waitEnd(3000);
      const items = itemsAfter(conn, 1);
      assert.equal(items.length, 2, JSON.stringify(items));
      assert.equal(items[0], 'message 1');
      assert.equal(items[1].type, 'close');
      assert.equal(items[1].code, 1014);
      assert.equal(conn.close?.code, 1000);
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('edge limits end the connection, not the session', () => {
    /** Opens a /limits session with one echoed message; returns {c, conn}. */
    async function opened() {
      const c = new SessionClient(proxy.port, '/limits');
      const conn = await c.wsAttach();
      c.queue([{ binary: false, data: Buffer.from('ok1') }]);
      await c.wsSend(conn);
      await settle(c, 1);
      return { c, conn };
    }

    /** Resumes and checks the session still works: one more message echoed with the next seqs. */
    async function resumeWorks(c, what) {
      const conn = await c.wsAttach();
      assert.equal(conn.controls[0].next_seq, c.outbox.length + 1, `${what}: nothing of the bad message was forwarded`);
      c.queue([{ binary: false, data: Buffer.from(`after ${what}`) }]);
      await c.wsSend(conn);
      await settle(c, c.outbox.length);
      conn.destroy();
      assertExact(c, c.outbox, what);
    }

    const cases = [
      ['a message over max_message', 1009, () => encodeText('y'.repeat(2000))],
      ['invalid UTF-8 text', 1007, () => frame({ opcode: OP.TEXT, payload: Buffer.from([0x61, 0xff, 0xfe]) })],
      ['a bad kind byte', 1002, () => frame({ opcode: OP.BINARY, payload: Buffer.from([0x02, 1, 2]) })],
      ['an empty binary message', 1002, () => frame({ opcode: OP.BINARY, payload: Buffer.alloc(0) })],
      ['an unknown control type', 1002, () => encodeControl({ type: 'nope' })],
      ['a control with an unknown field', 1002, () => encodeControl({ type: 'ack', seq: 1, extra: true })],
      ['malformed control JSON', 1002, () => encodeControl('{"type":')],
      ['a `close` control with code 1001', 1002, () => encodeControl({ type: 'close', code: 1001 })],
      ['a `close` control with a 124-byte reason', 1002, () => encodeControl({ type: 'close', code: 4000, reason: 'x'.repeat(124) })],
    ];
    for (const [what, code, bytes] of cases) {
      test(`${what}: close ${code}, the session resumes`, { timeout: T }, async () => {
        const { c, conn } = await opened();
        conn.write(bytes());
        await conn.waitEnd(3000);
        assert.equal(conn.close?.code, code, `${what}: close ${JSON.stringify(conn.close)}`);
        await resumeWorks(c, what);
      });
    }
  });
});
