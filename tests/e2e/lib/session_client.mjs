// One logical session client that moves between the three session transports (WebSocket with
// `wsbridge.session.v1`, SSE, long-poll + POST), as docs/protocol.md "Switching transports"
// describes, and keeps exact books for the tests:
//
//  - backend -> client: every session message it is handed (on any transport) must have seq
//    lastSeen + 1; a repeated or skipped seq is recorded in `violations` (a repeat is not
//    added again), so a test asserts `received` against what it expects and `violations` empty.
//  - client -> backend: `outbox[i]` is client seq i + 1. `acked` is the next client seq the
//    proxy is known to have forwarded up to (from `ack`/`session` controls and POST answers).
//    After a cut the client resends from `acked`, so seqs the proxy already forwarded are sent
//    again on purpose: the proxy must acknowledge them without forwarding them twice.
//
// Cuts are at byte offsets the caller picks: `cutAfterBytes` on a WebSocket or SSE attach or a
// poll (the bytes after it are never parsed), `wsSend({cutFrac})` writes part of the frames
// then destroys the socket, `post({cutFrac})` writes part of the request then destroys it.
//
// Every wait is bounded in time; every loop in count.

import http from 'node:http';
import net from 'node:net';

import { withTimeout, sleep } from './harness.mjs';
import { SseClient } from './sse.mjs';
import { expectSessionWs, sessionPath, encodeMessage, encodeControl } from './wssession.mjs';

/** Plain HTTP request on a fresh connection; {status, headers, body, json?, cut}. With
 *  cutAfterBytes the response is destroyed after that many body bytes (resolves {cut: true}). */
export function httpRequest(port, method, path, { headers = {}, body, ms = 10000, cutAfterBytes = Infinity } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const h = { ...headers };
    if (payload) h['Content-Length'] = String(payload.length);
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: h, agent: false }, (res) => {
      const chunks = [];
      let n = 0;
      res.on('data', (c) => {
        n += c.length;
        chunks.push(c);
        if (n >= cutAfterBytes) {
          res.destroy();
          req.destroy();
          resolve({ status: res.statusCode, cut: true, bytes: n });
        }
      });
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const out = { status: res.statusCode, headers: res.headers, body: raw.toString('utf8'), cut: false };
        try {
          out.json = JSON.parse(out.body);
        } catch {
          out.json = undefined;
        }
        resolve(out);
      });
      res.on('error', () => {});
    });
    req.on('error', reject); // after a cut: the promise is already settled
    req.end(payload ?? undefined);
  }), ms, `${method} ${path}`);
}

/** The JSON body of a batch POST for session messages ({binary, data}). */
export function batchBody(messages) {
  return JSON.stringify(messages.map((m) => (m.binary ? { binary: m.data.toString('base64') } : { text: m.data.toString('utf8') })));
}

/** Writes the first `cutFrac` (0..1) of the bytes of a POST request on a raw socket, then
 *  destroys it (a cut in the client->proxy direction). 1 sends it whole and waits
 *  `settleMs` before the cut, so the proxy may have forwarded it while the answer is lost. */
export async function postCut(port, path, body, cutFrac, { contentType = 'application/json', settleMs = 30 } = {}) {
  const payload = Buffer.from(body);
  const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: ${contentType}\r\n` +
    `Content-Length: ${payload.length}\r\n\r\n`;
  const all = Buffer.concat([Buffer.from(head, 'latin1'), payload]);
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 3000, 'connect for a cut POST');
  const n = Math.max(1, Math.min(Math.round(cutFrac * all.length), all.length));
  await new Promise((resolve) => socket.write(all.subarray(0, n), resolve));
  if (n === all.length) await sleep(settleMs);
  else await sleep(2);
  socket.destroy();
  return { written: n, total: all.length };
}

export const messagesEqual = (a, b) => a.binary === b.binary && Buffer.compare(a.data, b.data) === 0;

/** Describes a message for assertion output. */
export const describeMessage = (m) => (m ? `${m.binary ? 'binary' : 'text'}(${m.data.length}) ${JSON.stringify(m.data.subarray(0, 40).toString(m.binary ? 'hex' : 'utf8'))}` : 'none');

export class SessionClient {
  /**
   * @param port    proxy port
   * @param route   route path (e.g. '/echo'); `open` is the path that opens the session
   *                (the route plus backend query parameters)
   * @param ackEvery  send the WebSocket `ack` control after this many messages (0: never)
   */
  constructor(port, route, { open = route, ackEvery = 64 } = {}) {
    this.port = port;
    this.route = route;
    this.openPath = open;
    this.ackEvery = ackEvery;
    this.session = null;
    this.received = [];
    this.lastSeen = 0;
    this.lastAckSent = 0;
    this.outbox = [];
    this.acked = 1;
    this.violations = [];
    this.gaps = [];
    this.resets = [];
    this.closes = [];
    this.log = [];
    this.ws = null;
    this.sse = null;
    this._waiters = new Set();
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  /** Resolves once pred() holds; rejects after ms naming `what`. */
  waitUntil(pred, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          done();
          resolve(true);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (lastSeen ${this.lastSeen}, ` +
          `acked ${this.acked}, outbox ${this.outbox.length}, violations ${JSON.stringify(this.violations.slice(0, 5))})`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      check();
    });
  }

  /** A session message arrived with `seq` over `via`. */
  onMessage(seq, binary, data, via) {
    if (seq !== this.lastSeen + 1) {
      this.violations.push(`${via}: message seq ${seq} after ${this.lastSeen}`);
      if (seq <= this.lastSeen) return;
    }
    this.received.push({ seq, binary, data: Buffer.from(data), via });
    this.lastSeen = seq;
    this._wake();
  }

  onAcked(nextSeq, via) {
    if (typeof nextSeq !== 'number' || !Number.isInteger(nextSeq)) {
      this.violations.push(`${via}: next_seq ${JSON.stringify(nextSeq)}`);
      return;
    }
    if (nextSeq > this.outbox.length + 1) this.violations.push(`${via}: next_seq ${nextSeq} beyond the ${this.outbox.length} messages sent`);
    if (nextSeq > this.acked) this.acked = nextSeq;
    this._wake();
  }

  /** Adds messages to send; returns the seq of the first. */
  queue(msgs) {
    const first = this.outbox.length + 1;
    this.outbox.push(...msgs);
    return first;
  }

  // ------------------------------------------------------------------------------------------
  // WebSocket

  /**
   * Attaches over a session WebSocket: opens the session (first attach) or resumes it with
   * `?session=S&ack=lastSeen&seq=acked`. Waits for the `session` control and checks it names
   * this session and the position asked for. Resolves the SessionWs with `sendNext` = the seq
   * its first message has.
   */
  async wsAttach({ cutAfterBytes, expectLastSeq = this.lastSeen } = {}) {
    const path = this.session === null ? this.openPath
      : sessionPath(this.route, { session: this.session, ack: this.lastSeen, seq: this.acked });
    const firstSeq = this.acked;
    const conn = await expectSessionWs(this.port, path, {
      cutAfterBytes,
      onItem: (item, c) => this._onWsItem(item, c),
      onWake: () => this._wake(), // the connection's end too wakes the client's waits
    });
    conn.label = `ws#${this.log.length}`;
    conn.sendNext = firstSeq;
    this.log.push({ t: 'ws', path, cutAfterBytes });
    const ok = await conn.waitFor((c) => c.controls.some((x) => x.type === 'session') || c.ended, 5000);
    const announce = conn.controls.find((x) => x.type === 'session');
    if (announce === undefined && conn.cut && this.session !== null) {
      conn.announced = false; // our own cut came before the whole session control
      return conn;
    }
    conn.announced = true;
    if (!ok || !announce) {
      throw new Error(`${path}: no session control (items ${JSON.stringify(conn.items.slice(0, 3))}, close ${JSON.stringify(conn.close)}, ended ${conn.ended})`);
    }
    const wantKeys = ['heartbeat_ms', 'last_seq', 'next_seq', 'session', 'type'];
    if ('protocol' in announce) wantKeys.push('protocol');
    if (JSON.stringify(Object.keys(announce).sort()) !== JSON.stringify(wantKeys.sort())) {
      this.violations.push(`${conn.label}: session control keys ${Object.keys(announce)}`);
    }
    if (conn.items[0]?.t !== 'control' || conn.items[0].control !== announce) {
      this.violations.push(`${conn.label}: the session control is not the first item`);
    }
    if (this.session === null) this.session = announce.session;
    if (announce.session !== this.session) this.violations.push(`${conn.label}: session ${announce.session}, want ${this.session}`);
    if (announce.last_seq !== expectLastSeq) this.violations.push(`${conn.label}: last_seq ${announce.last_seq}, want ${expectLastSeq}`);
    if (announce.next_seq < firstSeq) this.violations.push(`${conn.label}: next_seq ${announce.next_seq} below acknowledged ${firstSeq}`);
    this.onAcked(announce.next_seq, `${conn.label} session`);
    this.ws = conn;
    return conn;
  }

  _onWsItem(item, conn) {
    if (item.t === 'message') {
      this.onMessage(item.seq, item.binary, item.data, conn.label ?? 'ws');
      if (this.ackEvery > 0 && this.lastSeen - this.lastAckSent >= this.ackEvery) this.wsAck(conn);
    } else if (item.t === 'control') {
      const c = item.control;
      if (c.type === 'ack') {
        if (JSON.stringify(Object.keys(c).sort()) !== '["next_seq","type"]') this.violations.push(`ack control keys ${Object.keys(c)}`);
        this.onAcked(c.next_seq, `${conn.label} ack`);
      } else if (c.type === 'gap') {
        this.gaps.push({ ...c, via: conn.label });
        this.lastSeen = c.to;
      } else if (c.type === 'reset') {
        this.resets.push({ ...c, via: conn.label });
      } else if (c.type === 'close') {
        this.closes.push({ ...c, via: conn.label });
      } else if (c.type !== 'session' && c.type !== 'replaced') {
        this.violations.push(`${conn.label}: unexpected control ${JSON.stringify(c)}`);
      }
    } else if (item.t === 'error') {
      this.violations.push(`${conn.label}: ${item.error}`);
    }
    this._wake();
  }

  /** Sends the `ack` control for everything seen so far. */
  wsAck(conn = this.ws) {
    this.lastAckSent = this.lastSeen;
    conn.sendControl({ type: 'ack', seq: this.lastSeen });
  }

  /**
   * Sends outbox messages conn.sendNext..upTo (client seqs) on `conn`, in writes of `chunk`
   * messages. With cutFrac (0..1: a byte offset into those frames, as a fraction of their
   * length) it writes only that many bytes (at least 1, never all) and destroys the
   * connection: a cut while the client is sending.
   */
  wsSend(conn, upTo = this.outbox.length, opts = {}) {
    // One sender per connection at a time: the seqs of a connection are implicit in the order
    // of its messages, so two interleaved senders would send a message twice as two seqs.
    const run = (conn.sendChain ?? Promise.resolve()).then(() => this._wsSend(conn, upTo, opts));
    conn.sendChain = run.catch(() => {});
    return run;
  }

  async _wsSend(conn, upTo, { chunk = 100, cutFrac } = {}) {
    const frames = [];
    for (let s = conn.sendNext; s <= upTo; s++) frames.push(encodeMessage(this.outbox[s - 1]));
    if (cutFrac !== undefined) {
      const all = Buffer.concat(frames);
      const n = Math.max(1, Math.min(Math.round(cutFrac * all.length), all.length - 1));
      await conn.writeLastThenCut(all.subarray(0, n));
      return { written: n, total: all.length };
    }
    for (let i = 0; i < frames.length; i += chunk) {
      if (conn.ended) return null;
      const ok = await conn.writeFlushed(Buffer.concat(frames.slice(i, i + chunk)));
      if (!ok) return null;
      conn.sendNext += Math.min(chunk, frames.length - i);
    }
    return null;
  }

  // ------------------------------------------------------------------------------------------
  // SSE

  /**
   * Attaches over SSE: `mode` 'lei' resumes with `Last-Event-ID: S.lastSeen`, 'url' with
   * `?session=S&ack=lastSeen`. Waits for the `session` event and checks its position.
   */
  async sseAttach({ mode = 'lei', cutAfterBytes = Infinity } = {}) {
    const path = mode === 'lei' ? this.route : sessionPath(this.route, { session: this.session, ack: this.lastSeen });
    const lastEventId = mode === 'lei' ? `${this.session}.${this.lastSeen}` : '';
    const es = new SseClient(this.port, path, { lastEventId });
    const label = `sse#${this.log.length}`;
    es.label = label;
    this.log.push({ t: 'sse', mode, cutAfterBytes });
    const expectLast = this.lastSeen;
    es.cutWhen = (ev) => {
      this._onSseEvent(ev, label);
      return false;
    };
    const conn = await es.connect({ cutAfterBytes });
    if (conn.status !== 200) throw new Error(`${label} ${path}: status ${conn.status}`);
    await es.waitFor(() => es.events.length > 0 || conn.ended, 5000, `${label} session event`);
    const first = es.events[0];
    if (!first || first.type !== 'session') throw new Error(`${label}: first event ${JSON.stringify(first)}`);
    const a = JSON.parse(first.data);
    if (a.session !== this.session) this.violations.push(`${label}: session ${a.session}`);
    if (a.last_seq !== expectLast) this.violations.push(`${label}: last_seq ${a.last_seq}, want ${expectLast}`);
    this.sse = es;
    return es;
  }

  _onSseEvent(ev, label) {
    if (ev.type === 'message' || ev.type === 'text-json' || ev.type === 'binary') {
      const seq = Number(ev.lastEventId.slice(ev.lastEventId.lastIndexOf('.') + 1));
      if (ev.lastEventId.slice(0, ev.lastEventId.lastIndexOf('.')) !== this.session) this.violations.push(`${label}: id ${ev.lastEventId}`);
      let m;
      if (ev.type === 'message') m = { binary: false, data: Buffer.from(ev.data, 'utf8') };
      else if (ev.type === 'text-json') m = { binary: false, data: Buffer.from(JSON.parse(ev.data), 'utf8') };
      else m = { binary: true, data: Buffer.from(ev.data, 'base64') };
      this.onMessage(seq, m.binary, m.data, label);
    } else if (ev.type === 'gap') {
      const g = JSON.parse(ev.data);
      this.gaps.push({ ...g, via: label });
      this.lastSeen = g.to;
    } else if (ev.type === 'close') {
      this.closes.push({ ...JSON.parse(ev.data), via: label });
    } else if (ev.type === 'reset') {
      this.resets.push({ ...JSON.parse(ev.data), via: label });
    } else if (ev.type !== 'session') {
      this.violations.push(`${label}: unexpected event ${ev.type}`);
    }
    this._wake();
  }

  // ------------------------------------------------------------------------------------------
  // Long-poll and POST

  /** One poll `?session=S&ack=lastSeen`; processes its messages; resolves the response. */
  async lpPoll({ cutAfterBytes, ms = 10000 } = {}) {
    const path = sessionPath(this.route, { session: this.session, ack: this.lastSeen });
    const label = `lp#${this.log.length}`;
    this.log.push({ t: 'lp', cutAfterBytes });
    const res = await httpRequest(this.port, 'GET', path, { cutAfterBytes, ms });
    if (res.cut) return res;
    if (res.status !== 200 || !res.json) throw new Error(`${label}: ${res.status} ${res.body}`);
    this.lpAnswer(res.json, label);
    return res;
  }

  /** Books one long-poll answer. */
  lpAnswer(json, label) {
    if (json.reset) this.resets.push({ ...json.reset, via: label });
    if (json.gap) {
      this.gaps.push({ ...json.gap, via: label });
      this.lastSeen = json.gap.to;
    }
    for (const m of json.messages ?? []) {
      if (typeof m.text === 'string') this.onMessage(m.seq, false, Buffer.from(m.text, 'utf8'), label);
      else this.onMessage(m.seq, true, Buffer.from(m.binary, 'base64'), label);
    }
    if (json.close) this.closes.push({ ...json.close, via: label });
    this._wake();
  }

  /** The send URL with seq. */
  sendPath(seq, batch = true) {
    return `${sessionPath(this.route, { session: this.session })}&seq=${seq}${batch ? '&batch=1' : ''}`;
  }

  /**
   * POSTs outbox messages from `acked` (at most `max`, up to `upTo`) as one batch and books
   * the answer's next_seq. With cutFrac (0..1), writes that part of the request's bytes and
   * destroys it (the answer is lost) instead; the next post resends from `acked`.
   */
  async post({ max = 100, upTo = this.outbox.length, cutFrac } = {}) {
    const from = this.acked;
    const to = Math.min(upTo, from + max - 1);
    if (to < from) return null;
    const body = batchBody(this.outbox.slice(from - 1, to));
    if (cutFrac !== undefined) return postCut(this.port, this.sendPath(from), body, cutFrac);
    const res = await httpRequest(this.port, 'POST', this.sendPath(from), { headers: { 'Content-Type': 'application/json' }, body });
    if (res.status !== 200) throw new Error(`POST seq=${from}..${to}: ${res.status} ${res.body}`);
    if (res.json?.next_seq !== to + 1) this.violations.push(`POST seq=${from}..${to}: next_seq ${res.json?.next_seq}`);
    this.onAcked(res.json?.next_seq, 'POST');
    return res;
  }

  /** Checks `received` equals `expected` ({binary, data} each) exactly; returns a problem or null. */
  compare(expected) {
    if (this.violations.length) return `violations: ${this.violations.slice(0, 10).join('; ')}`;
    for (let i = 0; i < Math.max(expected.length, this.received.length); i++) {
      const got = this.received[i];
      const want = expected[i];
      if (!got || !want || !messagesEqual(got, want) || got.seq !== i + 1) {
        let where = '';
        if (got && want) {
          let k = 0;
          while (k < got.data.length && k < want.data.length && got.data[k] === want.data[k]) k++;
          where = ` (first difference at byte ${k}: got ${got.data.subarray(k, k + 16).toString('hex')}, ` +
            `want ${want.data.subarray(k, k + 16).toString('hex')})`;
        }
        return `message ${i + 1}: got ${describeMessage(got)} seq ${got?.seq} via ${got?.via}, want ${describeMessage(want)}${where}` +
          ` (received ${this.received.length}, expected ${expected.length})`;
      }
    }
    return null;
  }
}
