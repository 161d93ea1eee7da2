// Clients of "Many sessions on one connection" (docs/protocol.md, multiplexing), written from
// the document alone, for the e2e tests. Each session is a SessionClient (lib/session_client.mjs)
// so its books (every message once, in order; client seqs acknowledged) are the same whatever
// carries it: its own SSE stream, WebSocket or long-poll, or a shared one here.
//
//  - openLongPoll: opens a session with `GET ?transport=longpoll` (the cheapest way, as the
//    document suggests) into a SessionClient.
//  - muxPath: `<route>?transport=mux&session=<id>.<n>&…`.
//  - decodeMuxEvent: one dispatched event of a multiplexed stream -> a typed record, or
//    {kind:'error'} for anything the document does not allow.
//  - MuxStream: one multiplexed SSE stream (over lib/sse.mjs SseClient, so it can be cut after
//    N bytes). It checks the `mux` announce against the positions it listed and books every
//    event into the SessionClient it names; an event naming a session it did not list, or one
//    after that session left the stream (close/detached), is a violation.
//  - muxPoll: one multiplexed poll; books every entry into its SessionClient and checks the
//    entry's key order.
//  - muxSend / sendEntry: the multiplexed POST and one session's entry from its outbox.
//
// Every wait is bounded in time.

import { SseClient } from './sse.mjs';
import { SessionClient, httpRequest } from './session_client.mjs';

/** `route?transport=mux&session=S.n…` for [[id, n], …] or SessionClients (id, lastSeen). */
export function muxPath(route, list) {
  const parts = list.map((x) => (x instanceof SessionClient ? `session=${x.session}.${x.lastSeen}` : `session=${x[0]}.${x[1]}`));
  return `${route}${route.includes('?') ? '&' : '?'}transport=mux&${parts.join('&')}`;
}

/** Opens a session over long-poll: resolves a SessionClient whose `session` is set. */
export async function openLongPoll(port, route, { open = route, ackEvery = 64 } = {}) {
  const c = new SessionClient(port, route, { open, ackEvery });
  const path = `${open}${open.includes('?') ? '&' : '?'}transport=longpoll`;
  const res = await httpRequest(port, 'GET', path);
  if (res.status !== 200 || !res.json?.session) throw new Error(`open ${path}: ${res.status} ${res.body}`);
  c.session = res.json.session;
  c.openAnswer = res.json;
  return c;
}

/**
 * Decodes one event of a multiplexed stream:
 *   {kind:'mux', announce} | {kind:'message', session, seq, binary, data: Buffer}
 *   | {kind:'gap'|'close'|'detached', session, …fields} | {kind:'error', error}
 */
export function decodeMuxEvent(ev) {
  // Every message event's data is "<id> <seq> <body>" (an empty body keeps its space).
  const head = (data) => {
    const m = /^([A-Za-z0-9_-]+) ([1-9][0-9]*) /.exec(data);
    if (!m) return null;
    return { session: m[1], seq: Number(m[2]), rest: data.slice(m[0].length) };
  };
  const json = (data) => {
    try {
      return JSON.parse(data);
    } catch {
      return undefined;
    }
  };
  switch (ev.type) {
    case 'mux': {
      const a = json(ev.data);
      if (!a || !Array.isArray(a.sessions)) return { kind: 'error', error: `bad mux announce ${ev.data}` };
      return { kind: 'mux', announce: a };
    }
    case 'message': {
      const h = head(ev.data);
      if (!h) return { kind: 'error', error: `bad message event ${JSON.stringify(ev.data.slice(0, 80))}` };
      return { kind: 'message', session: h.session, seq: h.seq, binary: false, data: Buffer.from(h.rest, 'utf8') };
    }
    case 'mt': {
      const h = head(ev.data);
      const text = h && !h.rest.includes('\n') ? json(h.rest) : undefined;
      if (typeof text !== 'string') return { kind: 'error', error: `bad mt event ${JSON.stringify(ev.data.slice(0, 80))}` };
      return { kind: 'message', session: h.session, seq: h.seq, binary: false, data: Buffer.from(text, 'utf8') };
    }
    case 'mb': {
      const h = head(ev.data);
      if (!h || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(h.rest)) {
        return { kind: 'error', error: `bad mb event ${JSON.stringify(ev.data.slice(0, 80))}` };
      }
      return { kind: 'message', session: h.session, seq: h.seq, binary: true, data: Buffer.from(h.rest, 'base64') };
    }
    case 'gap':
    case 'close':
    case 'detached': {
      const o = json(ev.data);
      if (!o || typeof o.session !== 'string') return { kind: 'error', error: `bad ${ev.type} event ${ev.data}` };
      const want = { gap: ['from', 'session', 'to'], close: ['code', 'reason', 'session'], detached: ['reason', 'session'] }[ev.type];
      if (JSON.stringify(Object.keys(o).sort()) !== JSON.stringify(want)) return { kind: 'error', error: `${ev.type} keys ${Object.keys(o)}` };
      return { kind: ev.type, ...o };
    }
    default:
      return { kind: 'error', error: `unexpected event type ${JSON.stringify(ev.type)}` };
  }
}

/**
 * One multiplexed SSE stream for `clients` (SessionClients with `session` set), listed at their
 * current positions (lastSeen) unless `positions` ([n, …]) says otherwise. `unknown` lists extra
 * ids (with position 0) that the proxy must answer with a reset.
 *
 * State: `announce` (the mux event's data), `items` (decoded events in order), `violations`,
 * `left` (session id -> 'close'|'detached'), `es` (the SseClient), `conn` (its connection).
 */
export class MuxStream {
  constructor(port, route, clients, { positions, unknown = [], headers = {} } = {}) {
    this.port = port;
    this.route = route;
    this.clients = new Map(clients.map((c) => [c.session, c]));
    this.listed = clients.map((c, i) => [c.session, positions ? positions[i] : c.lastSeen]);
    for (const id of unknown) this.listed.push([id, 0]);
    this.path = muxPath(route, this.listed);
    this.announce = null;
    this.items = [];
    this.violations = [];
    this.left = new Map();
    this.label = `mux#${MuxStream.count++}`;
    this.es = new SseClient(port, this.path, { headers });
    this.es.cutWhen = (ev) => {
      this._onEvent(ev);
      return false;
    };
  }

  /** Opens the stream; resolves once the `mux` announce arrived (or the stream ended). With
   *  `cutAfterBytes` only that many body bytes are parsed, then the socket is destroyed. */
  async connect({ cutAfterBytes = Infinity, ms = 5000 } = {}) {
    this.conn = await this.es.connect({ cutAfterBytes, ms });
    if (this.conn.status !== 200) return this;
    await this.es.waitFor(() => this.announce || this.conn.ended, ms, `${this.label} mux announce`);
    return this;
  }

  _violation(text) {
    this.violations.push(`${this.label}: ${text}`);
  }

  _onEvent(ev) {
    const d = decodeMuxEvent(ev);
    this.items.push(d);
    if (ev.lastEventId !== '') this._violation(`an id on a multiplexed stream: ${ev.lastEventId}`);
    if (d.kind === 'error') {
      this._violation(d.error);
      return;
    }
    if (d.kind === 'mux') {
      if (this.items.length !== 1) this._violation('mux announce is not the first event');
      this.announce = d.announce;
      this._checkAnnounce(d.announce);
      return;
    }
    if (!this.announce) this._violation(`${d.kind} before the announce`);
    const c = this.clients.get(d.session);
    if (!c) {
      this._violation(`${d.kind} for a session not on the stream: ${d.session}`);
      return;
    }
    if (this.left.has(d.session)) this._violation(`${d.kind} for ${d.session} after its ${this.left.get(d.session)}`);
    const via = this.label;
    if (d.kind === 'message') c.onMessage(d.seq, d.binary, d.data, via);
    else if (d.kind === 'gap') {
      c.gaps.push({ from: d.from, to: d.to, via });
      if (d.from !== c.lastSeen + 1) this._violation(`gap ${d.from}..${d.to} after ${c.lastSeen}`);
      c.lastSeen = d.to;
      c._wake();
    } else if (d.kind === 'close') {
      c.closes.push({ code: d.code, reason: d.reason, via });
      this.left.set(d.session, 'close');
      c._wake();
    } else if (d.kind === 'detached') {
      (c.detaches ??= []).push({ reason: d.reason, via });
      this.left.set(d.session, 'detached');
      c._wake();
    }
  }

  _checkAnnounce(a) {
    const keys = Object.keys(a).sort().join(',');
    if (keys !== 'heartbeat_ms,send,sessions') this._violation(`announce keys ${keys}`);
    const base = this.route.split('?')[0];
    if (a.send !== `${base}?transport=mux`) this._violation(`announce send ${a.send}`);
    if (a.sessions.length !== this.listed.length) {
      this._violation(`announce lists ${a.sessions.length} sessions, ${this.listed.length} asked`);
      return;
    }
    this.listed.forEach(([id, n], i) => {
      const e = a.sessions[i];
      if (e.session !== id) this._violation(`announce entry ${i}: session ${e.session}, want ${id}`);
      const c = this.clients.get(id);
      if (!c) {
        if (JSON.stringify(Object.keys(e)) !== '["session","reset"]' || typeof e.reset !== 'string') {
          this._violation(`announce entry ${i} for an unknown session: ${JSON.stringify(e)}`);
        }
        return;
      }
      const want = ['session', 'last_seq', 'next_seq'];
      if ('protocol' in e) want.push('protocol');
      if (JSON.stringify(Object.keys(e)) !== JSON.stringify(want)) this._violation(`announce entry ${i} keys ${Object.keys(e)}`);
      if (e.last_seq !== Math.min(n, c.expectNewest ?? n)) this._violation(`announce ${id}: last_seq ${e.last_seq}, listed ${n}`);
      if (typeof e.next_seq !== 'number' || e.next_seq < c.acked) this._violation(`announce ${id}: next_seq ${e.next_seq} below acknowledged ${c.acked}`);
      else c.onAcked(e.next_seq, `${this.label} announce`);
    });
  }

  get ended() {
    return this.conn?.ended ?? false;
  }

  waitForEnd(ms = 5000) {
    return this.es.waitForEnd(ms, this.conn);
  }

  /** Resolves once pred(items) holds. */
  waitFor(pred, ms, what) {
    return this.es.waitFor(() => pred(this.items), ms, `${this.label}: ${what}`);
  }

  cut() {
    this.es.cut(this.conn);
  }

  close() {
    this.es.close();
  }
}
MuxStream.count = 0;

/** The entry order the document prescribes for a multiplexed poll answer entry. */
const POLL_ORDER = ['session', 'reset', 'detached', 'gap', 'messages', 'close'];

/**
 * One multiplexed poll listing `clients` at their positions (or `positions`), plus `unknown`
 * ids. Books every entry into its client (unless `book` is false) and checks the entry shapes; resolves
 * {status, json, entries: Map(id -> entry), ms, problems}.
 */
export async function muxPoll(port, route, clients, { positions, unknown = [], ms = 10000, cutAfterBytes, book = true } = {}) {
  const listed = clients.map((c, i) => [c.session, positions ? positions[i] : c.lastSeen]);
  for (const id of unknown) listed.push([id, 0]);
  const started = performance.now();
  const res = await httpRequest(port, 'GET', muxPath(route, listed), { ms, cutAfterBytes });
  const out = { status: res.status, json: res.json, body: res.body, headers: res.headers, entries: new Map(), ms: performance.now() - started, problems: [], cut: res.cut };
  if (res.cut || res.status !== 200) return out;
  const byId = new Map(clients.map((c) => [c.session, c]));
  if (!res.json || JSON.stringify(Object.keys(res.json)) !== '["sessions"]' || !Array.isArray(res.json.sessions)) {
    out.problems.push(`poll body ${res.body.slice(0, 200)}`);
    return out;
  }
  const order = listed.map(([id]) => id);
  let lastIndex = -1;
  for (const e of res.json.sessions) {
    const keys = Object.keys(e);
    const idx = keys.map((k) => POLL_ORDER.indexOf(k));
    if (idx.some((x) => x < 0) || idx.some((x, i) => i > 0 && x <= idx[i - 1]) || keys[0] !== 'session') out.problems.push(`entry keys ${keys}`);
    const at = order.indexOf(e.session);
    if (at < 0) out.problems.push(`entry for a session not listed: ${e.session}`);
    if (at <= lastIndex) out.problems.push(`entries not in the request's order (or repeated): ${e.session}`);
    lastIndex = at;
    out.entries.set(e.session, e);
    if ('reset' in e && keys.length !== 2) out.problems.push(`reset entry with more: ${keys}`);
    if ('detached' in e && keys.length !== 2) out.problems.push(`detached entry with more: ${keys}`);
    if (!('reset' in e) && !('detached' in e) && !Array.isArray(e.messages)) out.problems.push(`entry without messages: ${JSON.stringify(e)}`);
    const c = book ? byId.get(e.session) : undefined;
    if (!c) continue;
    const label = `muxpoll#${muxPoll.count}`;
    if (e.detached) (c.detaches ??= []).push({ reason: e.detached, via: label });
    c.lpAnswer({ reset: e.reset === undefined ? undefined : { reason: e.reset }, gap: e.gap, messages: e.messages, close: e.close }, label);
  }
  muxPoll.count++;
  return out;
}
muxPoll.count = 0;

/** One session's entry of a multiplexed send: outbox messages from `acked`, at most `max`. */
export function sendEntry(c, { max = 100, upTo = c.outbox.length } = {}) {
  const from = c.acked;
  const to = Math.min(upTo, from + max - 1);
  const messages = c.outbox.slice(from - 1, to).map((m) => (m.binary ? { binary: m.data.toString('base64') } : { text: m.data.toString('utf8') }));
  return { session: c.session, seq: from, messages, to };
}

/** POST `route?transport=mux` with `body` (an array of entries, or a raw string/Buffer). */
export function muxSend(port, route, body, { ms = 10000, headers = {} } = {}) {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body
    : JSON.stringify(body.map(({ session, seq, messages }) => ({ session, seq, messages })));
  return httpRequest(port, 'POST', `${route}?transport=mux`, { body: payload, ms, headers: { 'Content-Type': 'application/json', ...headers } });
}

/**
 * Sends every client's outbox from its `acked` in one multiplexed POST (entries of at most
 * `max` messages) and books each result's next_seq; resolves the response. A result that is
 * not next_seq is returned, not thrown.
 */
export async function muxSendAll(port, route, clients, { max = 100 } = {}) {
  const entries = clients.filter((c) => c.acked <= c.outbox.length).map((c) => sendEntry(c, { max }));
  if (entries.length === 0) return null;
  const res = await muxSend(port, route, entries);
  if (res.status === 200 && Array.isArray(res.json?.results)) {
    res.json.results.forEach((r, i) => {
      const c = clients.find((x) => x.session === r.session);
      if (!c || r.session !== entries[i].session) return;
      if (r.next_seq !== undefined) {
        // Above to + 1 when an earlier request whose answer was lost forwarded more.
        if (!(r.next_seq >= entries[i].to + 1)) c.violations.push(`mux send ${entries[i].seq}..${entries[i].to}: next_seq ${r.next_seq}`);
        c.onAcked(r.next_seq, 'mux send');
      }
    });
  }
  return res;
}
