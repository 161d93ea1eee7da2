// bridge-socket.js — a WebSocket-shaped client for wsbridge that falls back from WebSocket to
// Server-Sent Events (+ POST) to long-polling, resumes sessions, and never loses a message
// silently. One ES module, no dependencies, no build step.
//
//   import { BridgeSocket } from './bridge-socket.js';
//   const socket = new BridgeSocket('https://rt.example.com/chat');
//   socket.onopen = () => socket.send('hello');
//   socket.onmessage = (e) => console.log(e.data, 'via', socket.transport);
//
// The wire protocol is wsbridge's docs/protocol.md. What this module adds on top, and why:
//
// * Transport choice. `transports` (default ['websocket', 'sse', 'longpoll']) is tried in order.
//   - WebSocket fails when it does not open within `wsOpenTimeout`, or when it opens and then
//     dies (closed without a clean close frame) within the probe window. Browsers cannot send
//     WebSocket pings and wsbridge answers pings per hop, so the probe is application level:
//     with `wsProbe: 'open'` (default) a socket is trusted once it stays up for `probeTimeout`
//     ms or a message arrives sooner; with `wsProbe: 'message'` the backend must send something
//     (a greeting) within `probeTimeout`, which also catches intermediaries that keep the socket
//     open but carry nothing. Sends are queued until the socket is trusted.
//   - SSE fails when the `session` announce (the first event wsbridge writes, at once) does not
//     arrive within `sseAnnounceTimeout`: a buffering intermediary is holding the stream.
//   - Long-polling works through anything that passes plain HTTP requests.
//   The transport in use is `socket.transport`; why earlier ones were skipped is
//   `socket.fallbackReason` (null when the first one worked). A 'transport' event fires on
//   every change.
//
// * Sessions on every transport. By default a WebSocket asks for wsbridge's session transport
//   (subprotocol `wsbridge.session.v1`, docs/protocol.md "WebSocket sessions"), so the same
//   session — the same backend connection, the same message numbering — lives on over
//   WebSocket, SSE and long-polling alike. Every backend message has a sequence number (on the
//   WebSocket counted from the `session` control's `last_seq`; a `gap` control moves the count);
//   the client keeps the last one it delivered and drops anything at or below it, and
//   acknowledges on the WebSocket at least every 64 messages or 100 ms (long-poll: `ack=` of
//   each poll; SSE has no ack channel). A proxy that does not select the subprotocol (an older
//   wsbridge) gets the transparent relay of the old days, as does `wsSession: false`.
//
// * Resume without loss or duplicate. After a cut the client resumes THE SAME session: on
//   WebSocket when it can (`?session=S&ack=N&seq=M`, sending only once the `session` or `reset`
//   control arrived), else by SSE (a new EventSource on `?session=S&ack=N`), else by
//   long-polling (`?session=S&ack=N`). An SSE stream that breaks is first resumed by the
//   browser's own EventSource reconnect, which sends Last-Event-ID (timing: the proxy's
//   `retry:`, 1 s). An EventSource that gives up (an HTTP error on reconnect) or has not come
//   back within `sseReconnectTimeout` says that SSE itself is failing on this path, so the
//   client continues the session by long-polling from its last position (explicit ack) with
//   backoff; `transport` becomes 'longpoll' and `fallbackReason` says why. While the session is
//   below WebSocket, the client probes back up (`probeUpDelay`, doubling to `probeUpMaxDelay`,
//   jittered) and moves the session onto a WebSocket that gets its `session` control; the proxy
//   then ends the old transport (SSE stream ended, poll answered empty), which is not a
//   failure. Lost ranges arrive as 'gap' events; a session the proxy no longer knows (restart,
//   expiry) arrives as a 'reset' event before any message of the fresh session; every resume of
//   the same session fires 'resume'.
//
// * The transparent WebSocket relay (`wsSession: false`, or an older proxy) has no sequence
//   numbers. A relayed WebSocket that drops is reconnected (a new backend connection); the
//   client then fires 'reset' (reason: why the old one ended), because messages the backend
//   sent in between are gone. That is the explicit signal instead of a silent loss.
//
// * Sending. send() never throws while CONNECTING: messages are queued and delivered in order,
//   exactly once within a session. Each message keeps its client seq until the proxy confirms
//   it (the WebSocket `ack` control's `next_seq`, a POST's `next_seq`); after any reconnect or
//   switch the unconfirmed ones are sent again from the first unconfirmed seq (the proxy
//   forwards each seq once, so a resend is safe). Only one transport sends at a time: a probe
//   up to WebSocket waits for the POST in flight. Over SSE and long-poll each POST carries the
//   seq of its first message; 409 tells the expected seq, and when two or more are queued they
//   go as one `&batch=1` POST. After a 'reset' the queued messages are sent to the fresh
//   session; `event.unconfirmed` counts those that were sent but never confirmed (they may
//   have reached the old backend connection: at-least-once across a reset, and you are told).
//
// * One connection for all tabs. On SSE and long-polling the tabs of an origin share one
//   waiting connection per route (a browser allows six per host over HTTP/1.1): one tab, elected
//   with Web Locks, holds a multiplexed stream or poll for every tab's session and relays over
//   BroadcastChannel; each tab keeps its own session, dedup and POSTs (see TabHub below, and
//   `shareConnection`). `socket.shared` and the 'share' event say whether this tab leads.
//
// * Honest failures. A request that never gets a response head is reported as possibly held
//   back by the browser (its connections to the host all in use), never as wsbridge's answer.
//
// * Reconnecting uses exponential backoff with full jitter: a random delay in
//   [0, min(maxDelay, minDelay * 2^(attempt-1))]. Backend close codes in `reconnectOn` (default
//   1001, 1006, 1011, 1012, 1013, 1014) reconnect (with a 'reset'); any other close code closes
//   the BridgeSocket, like a WebSocket. For `retryTransportFor` ms after a loss, the transport
//   that was carrying traffic is retried alone: a failure then more likely means the server is
//   restarting than that an intermediary started blocking it, and a lower transport that happens
//   to answer first once the server is back would be kept for the rest of the page's life.
//
// Events: open, message (MessageEvent; lastEventId = the session seq), close (CloseEvent-like,
// plus `unsent`: queued messages never delivered), error, and additionally:
//   transport    {transport, previous, reason}      the transport in use changed
//   reconnecting {reason, attempt, delay}           connection lost / next attempt scheduled
//   reconnect    {transport, resumed}               back OPEN (resumed: same session, no loss)
//   gap          {from, to}                         backend messages from..to were lost
//   reset        {reason, transport, session, unconfirmed}   a fresh backend connection
//   resume       {transport, previous, session, lastSeq}   the same session continues on a new
//                                                   connection (after a cut, a fallback, a move up)
//   share        {role, transport}                 SSE/long-poll: this tab leads the connection the
//                                                   tabs share ('leader') or follows ('follower')
// Each is also available as an on<type> property.

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const KNOWN_TRANSPORTS = ['websocket', 'sse', 'longpoll'];

/** The WebSocket subprotocol that asks wsbridge for a session (docs/protocol.md). */
export const SESSION_PROTOCOL = 'wsbridge.session.v1';
const KIND_BINARY = 0x00;   // first byte of a binary WebSocket message: a binary session message
const KIND_CONTROL = 0x01;  // ... a JSON control message
const ACK_EVERY = 64;       // acknowledge at least every 64 messages ...
const ACK_DELAY = 100;      // ... or 100 ms after the first unacknowledged one

export const DEFAULT_OPTIONS = Object.freeze({
  transports: ['websocket', 'sse', 'longpoll'],
  protocols: [],                 // WebSocket subprotocols (sent as ?protocol= on sessions)
  wsSession: true,               // WebSocket as a wsbridge session (false: the transparent relay)
  probeUp: true,                 // a session below WebSocket probes back up to it
  probeUpDelay: 5000,            // first probe after this (jittered: [d/2, d]), doubling ...
  probeUpMaxDelay: 120000,       // ... up to this
  binaryType: 'blob',
  wsOpenTimeout: 5000,           // a WebSocket that is not open by then has failed
  wsProbe: 'open',               // 'open' | 'message' (see above)
  probeTimeout: 1000,            // probe window after a WebSocket opened (0: trust open at once)
  sseAnnounceTimeout: 3000,      // no `session` event by then: the stream is held back
  sseReconnectTimeout: 5000,     // EventSource's own reconnect must succeed within this
  requestTimeout: 15000,         // long-poll open, POST, DELETE
  pollTimeoutExtra: 10000,       // a poll may take hold_ms + this before it counts as failed
  reconnect: true,
  minDelay: 500,                 // backoff: full jitter over min(maxDelay, minDelay * 2^(n-1))
  maxDelay: 10000,
  maxAttempts: Infinity,         // full passes over the transports before giving up
  retryTransportFor: 5000,       // after a loss, retry the lost transport alone this long first
  reconnectOn: [1001, 1006, 1011, 1012, 1013, 1014],
  batchThreshold: 2,             // POST as a batch when at least this many are queued
  maxBatchMessages: 200,         // the default rate burst: a larger batch gets 413 (then halves)
  maxBatchBytes: 256 * 1024,
  closeTimeout: 5000,            // close(): longest wait for queued sends to drain
  withCredentials: true,         // cookies on SSE/long-poll, as WebSocket always sends them
  closeOnPageHide: true,         // DELETE the session when the page goes away (as a WebSocket closes)
  shareConnection: true,         // SSE/long-poll: the tabs of an origin share one connection (multiplexing)
  debug: false,
  WebSocket: undefined,          // implementations (default: the global ones)
  EventSource: undefined,
  fetch: undefined,
});

const handlerMaps = new WeakMap();
const EVENT_TYPES = ['open', 'message', 'close', 'error', 'transport', 'reconnecting', 'reconnect', 'gap', 'reset', 'resume', 'share'];

function makeEvent(type, props = {}) {
  const ev = new Event(type);
  for (const [k, v] of Object.entries(props)) {
    Object.defineProperty(ev, k, { value: v, enumerable: true });
  }
  Object.defineProperty(ev, 'detail', { value: props, enumerable: true });
  return ev;
}

function makeCloseEvent(code, reason, wasClean, extra) {
  let ev;
  if (typeof CloseEvent === 'function') {
    ev = new CloseEvent('close', { code, reason, wasClean });
    for (const [k, v] of Object.entries(extra)) Object.defineProperty(ev, k, { value: v, enumerable: true });
  } else {
    ev = makeEvent('close', { code, reason, wasClean, ...extra });
  }
  return ev;
}

function domError(message, name) {
  if (typeof DOMException === 'function') return new DOMException(message, name);
  const e = new Error(message);
  e.name = name;
  return e;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** A binary WebSocket message of the session transport: the kind byte, then `payload`. */
function sessionFrame(kind, payload) {
  const out = new Uint8Array(payload.length + 1);
  out[0] = kind;
  out.set(payload, 1);
  return out;
}

/**
 * Decodes one WebSocket message of the session transport: {kind: 'text'|'binary', data} or
 * {kind: 'control', msg}; null for a protocol error (an empty binary message, an unknown kind
 * byte, a control that is not a JSON object with a string `type`).
 */
function decodeSessionFrame(data) {
  if (typeof data === 'string') return { kind: 'text', data };
  const bytes = new Uint8Array(data);
  if (bytes.length === 0) return null;
  if (bytes[0] === KIND_BINARY) return { kind: 'binary', data: bytes.subarray(1) };
  if (bytes[0] !== KIND_CONTROL) return null;
  let msg;
  try {
    msg = JSON.parse(utf8Decoder.decode(bytes.subarray(1)));
  } catch {
    return null;
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return null;
  return { kind: 'control', msg };
}

export function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function withParam(url, name, value) {
  const u = new URL(url);
  u.searchParams.set(name, String(value));
  return u.href;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** "<session>.<seq>" → seq, or NaN. */
function seqOf(lastEventId) {
  const dot = lastEventId.lastIndexOf('.');
  return dot < 0 ? NaN : Number(lastEventId.slice(dot + 1));
}

// ---- one connection for every tab (multiplexing) -------------------------------------------------
//
// A browser gives a host six HTTP/1.1 connections, and every SSE stream or held poll keeps one,
// so the seventh tab of an app on SSE or long-polling never connects (docs/protocol.md, "Many
// sessions on one connection"). On those transports the tabs of one origin therefore share:
// each tab keeps its own session (opened by `GET ?transport=longpoll`, which answers at once),
// its own message numbering and dedup, and sends its own POSTs (short requests are not the
// problem), but only one tab, the leader, holds a connection that waits: one multiplexed SSE
// stream (or one multiplexed poll) listing every tab's session with its position.
//
// * Election: Web Locks. Every tab queues a request for the lock of (route, transport); the
//   holder leads. A tab that closes or crashes releases it, so the next one leads at once. A
//   frozen tab keeps it: followers miss its heartbeats (HEARTBEAT_MS), ping it once, and when it
//   does not answer within PING_MS they take the lock with {steal: true}.
// * Messages: one BroadcastChannel per (route, transport). Followers `join`/`leave` their
//   sessions with their positions and answer each heartbeat with `alive`; the leader relays
//   `up`, `m`, `gap`, `close`, `reset`, `detached`, `down`, `fail` per session. A new leader says `hello`, every
//   tab answers with its sessions' positions, and the new stream resumes each from there: what
//   the old leader relayed late is dropped by the tab's seq check, so nothing is lost or doubled.
// * Reopening: when the set of sessions changes the leader closes the stream and opens one with
//   the new list and the positions it relayed; never an EventSource reconnect (it would repeat
//   stale positions).

const HEARTBEAT_MS = 1000;   // leader → followers
const LEADER_SILENT_MS = 2500; // no heartbeat for this long: ping the leader
const PING_MS = 1500;        // no answer to the ping: take the lock over
const TAB_STALE_MS = 30000;  // a follower not heard of for this long (closed, crashed, frozen): drop its sessions
const COLLECT_MS = 150;      // a new leader waits this long for the tabs' positions
const REOPEN_MS = 40;        // joins and leaves within this are one reopen
const MAX_MUX_SESSIONS = 100; // the proxy's limit per request
const RELEASE_MS = 1000;     // longest wait for the leader to let a session go (probe up)

const hubs = new Map();
const pendingByOrigin = new Map(); // origin → requests of this page still waiting for a response head

/** Counts a request of this page to `origin` until its response head arrives (see #diagnose). */
function trackPending(origin) {
  pendingByOrigin.set(origin, (pendingByOrigin.get(origin) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    pendingByOrigin.set(origin, (pendingByOrigin.get(origin) ?? 1) - 1);
  };
}

/** Whether this browser can share a connection between tabs (else each tab has its own). */
export function canShareConnection() {
  return typeof BroadcastChannel === 'function' && typeof globalThis.navigator?.locks?.request === 'function';
}

function randomId() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return toBase64(b).replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * Says why a request that never got a response head failed, honestly: the browser itself may be
 * holding it back (its connection pool for the host is in use), which is no answer of wsbridge.
 */
function noHeadReason(what, ms, origin) {
  const host = new URL(origin).host;
  const pending = (pendingByOrigin.get(origin) ?? 1) - 1;
  const mine = pending > 0 ? `; ${pending} other request(s) of this page to ${host} were still waiting too` : '';
  return `${what}: no response at all within ${ms} ms. This is not an answer from wsbridge: the browser ` +
    `may be holding the request back because all its connections to ${host} are in use (Chromium allows 6 ` +
    `per host over HTTP/1.1, and each SSE stream or held poll of any tab keeps one${mine}), or something ` +
    'between the browser and wsbridge holds it';
}

/**
 * This tab's end of the connection shared for one (route, transport): its members are this
 * tab's sessions (one per BridgeSocket); as the leader it holds the multiplexed stream or poll.
 */
class TabHub {
  /** The hub of (route, kind) for this tab, made on first use. */
  static get(routeUrl, kind, env) {
    const key = `${routeUrl}|${kind}`;
    let hub = hubs.get(key);
    if (!hub || hub.disposed) {
      hub = new TabHub(key, routeUrl, kind, env);
      hubs.set(key, hub);
    }
    return hub;
  }

  constructor(key, routeUrl, kind, env) {
    this.key = key;
    this.routeUrl = routeUrl;
    this.origin = new URL(routeUrl).origin;
    this.kind = kind;
    this.env = env; // {ES, fetch, withCredentials, announceTimeout, pollTimeoutExtra, maxDelay, debug}
    this.id = randomId();
    this.role = 'follower';
    this.disposed = false;
    this.members = new Map();   // sid → member {sid, pos(), holdMs, deliver(msg)}
    this.releaseWaiters = new Map(); // sid → resolve() of release()
    this.parked = new Set();    // sessions released for a probe: they may join again
    this.released = new Set();  // leader: sessions left since the last open()
    this.tracked = new Map();   // leader: sid → {sid, tab, pos, holdMs, detached}
    this.tabsSeen = new Map();  // leader: tab → last heard (ms)
    this.leaderId = null;
    this.joinedLeader = null;   // the leader our members joined
    this.lastLeaderSeen = Date.now();
    this.pingAt = 0;
    this.streamGen = 0;
    this.stream = null;         // {close()} of the running stream or poll
    this.failures = 0;
    this.everAnnounced = false;
    this.reopenTimer = null;
    this.hbTimer = null;
    this.lockAbort = null;
    this.releaseLock = null;
    this.ch = new BroadcastChannel(`wsbridge-mux:${key}`);
    this.ch.onmessage = (e) => this.onMessage(e.data);
    this.watchdog = setInterval(() => this.tick(), HEARTBEAT_MS);
    this.requestLock(false);
  }

  debug(...args) {
    if (this.env.debug) console.debug('[BridgeSocket hub]', this.kind, this.role, ...args);
  }

  get lockName() { return `wsbridge-mux:${this.key}`; }

  requestLock(steal) {
    if (this.disposed) return;
    this.lockAbort?.abort();
    this.lockAbort = null;
    const ac = new AbortController();
    const opts = steal ? { steal: true } : { signal: ac.signal };
    if (!steal) this.lockAbort = ac;
    navigator.locks.request(this.lockName, opts, () => new Promise((release) => {
      if (this.disposed) {
        release();
        return;
      }
      if (this.lockAbort === ac) this.lockAbort = null;
      this.releaseLock = release;
      this.becomeLeader(steal);
    })).catch((err) => {
      // Aborted by us (we steal instead): nothing to do. Taken from us (another tab stole it
      // while this one was frozen or slow): follow, and queue again.
      if (this.disposed || ac.signal.aborted) return;
      this.debug('lock lost:', err?.name);
      if (this.role === 'leader') this.stepDown('the leadership was taken over by another tab');
      else this.requestLock(false);
    });
  }

  // ---- members (this tab's sessions) ----

  join(member) {
    this.parked.delete(member.sid);
    this.members.set(member.sid, member);
    clearTimeout(this.disposeTimer);
    for (const m of this.members.values()) m.role?.(this.role);
    if (this.role === 'leader') {
      this.track(member.sid, this.id, member.pos(), member.holdMs, true);
    } else {
      this.post({ t: 'join', tab: this.id, sid: member.sid, pos: member.pos(), holdMs: member.holdMs });
    }
  }

  leave(member) {
    if (this.parked.delete(member.sid)) {
      this.maybeDispose();
      return;
    }
    if (this.members.get(member.sid) !== member) return;
    this.members.delete(member.sid);
    if (this.role === 'leader') this.untrack(member.sid);
    else this.post({ t: 'leave', tab: this.id, sid: member.sid });
    this.maybeDispose();
  }

  /** A hub with no session of this tab (none parked either) goes, and lets another tab lead. */
  maybeDispose() {
    if (this.members.size || this.parked.size) return;
    clearTimeout(this.disposeTimer);
    this.disposeTimer = setTimeout(() => {
      if (this.members.size === 0 && this.parked.size === 0) this.dispose();
    }, 1000);
  }

  /**
   * Takes `member`'s session off the shared connection and resolves once no request of the
   * leader lists it any more (at most RELEASE_MS), so that another connection of this tab (a
   * probe up to WebSocket) can take it without a shared request taking it back.
   */
  release(member) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, RELEASE_MS);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.releaseWaiters.set(member.sid, done);
      this.leave(member);
      this.parked.add(member.sid); // it may come back (join) or go for good (leave)
    });
  }

  dispose() {
    this.disposed = true;
    if (hubs.get(this.key) === this) hubs.delete(this.key);
    this.closeStream();
    clearInterval(this.watchdog);
    clearInterval(this.hbTimer);
    clearTimeout(this.reopenTimer);
    this.lockAbort?.abort();
    this.releaseLock?.();
    this.ch.close();
  }

  post(msg) {
    if (!this.disposed) this.ch.postMessage(msg);
  }

  /** Leader: a relay for session `sid`, to this tab's member or to the channel. */
  relay(sid, msg) {
    const local = this.members.get(sid);
    if (local) local.deliver(msg);
    else this.post({ ...msg, sid });
  }

  rejoinAll() {
    this.joinedLeader = this.leaderId;
    for (const m of this.members.values()) {
      this.post({ t: 'join', tab: this.id, sid: m.sid, pos: m.pos(), holdMs: m.holdMs });
    }
  }

  // ---- followers ----

  tick() {
    if (this.disposed) return;
    const now = Date.now();
    if (this.role === 'leader') {
      this.sweepTabs(now);
      return;
    }
    if (this.members.size === 0) return;
    if (now - this.lastLeaderSeen < LEADER_SILENT_MS) return;
    if (!this.pingAt) {
      this.pingAt = now;
      this.post({ t: 'ping', tab: this.id });
    } else if (now - this.pingAt > PING_MS) {
      // The lock holder says nothing: closed pages release the lock, so it is frozen or hung.
      this.debug('the leader is silent; taking over');
      this.pingAt = 0;
      this.lastLeaderSeen = now;
      this.requestLock(true);
    }
  }

  onMessage(msg) {
    if (this.disposed || !msg || typeof msg !== 'object') return;
    switch (msg.t) {
      case 'hello':
      case 'hb':
        if (msg.leader === this.id) return;
        this.lastLeaderSeen = Date.now();
        this.pingAt = 0;
        if (this.role === 'leader') {
          // Another tab leads now (it took the lock while we were frozen or slow).
          if (msg.t === 'hello') this.stepDown('another tab took over the shared connection');
          else return;
        }
        this.leaderId = msg.leader;
        if (msg.t === 'hello' || this.joinedLeader !== msg.leader) this.rejoinAll();
        // Answered from the message handler, which browsers do not throttle in hidden tabs
        // (their timers they do): the leader keeps the sessions of a live tab listed.
        else if (this.members.size) this.post({ t: 'alive', tab: this.id, sessions: [...this.members.values()].map((m) => ({ sid: m.sid, pos: m.pos(), holdMs: m.holdMs })) });
        return;
      case 'ping':
        if (this.role === 'leader') this.post({ t: 'hb', leader: this.id });
        return;
      case 'join':
        if (this.role === 'leader') {
          this.tabsSeen.set(msg.tab, Date.now());
          this.track(msg.sid, msg.tab, Number(msg.pos) || 0, msg.holdMs, true);
        }
        return;
      case 'alive':
        if (this.role === 'leader') {
          this.tabsSeen.set(msg.tab, Date.now());
          for (const s of msg.sessions ?? []) {
            if (!this.tracked.has(s.sid)) this.track(s.sid, msg.tab, Number(s.pos) || 0, s.holdMs, false);
          }
        }
        return;
      case 'leave':
        if (this.role === 'leader') this.untrack(msg.sid);
        return;
      case 'released': {
        const done = this.releaseWaiters.get(msg.sid);
        if (done) {
          this.releaseWaiters.delete(msg.sid);
          done();
        }
        return;
      }
      default: {
        const m = this.members.get(msg.sid);
        if (m && this.role !== 'leader') m.deliver(msg);
      }
    }
  }

  // ---- the leader ----

  becomeLeader(stolen) {
    this.debug('leading', stolen ? '(took over)' : '');
    this.role = 'leader';
    this.leaderId = this.id;
    this.tracked = new Map();
    this.tabsSeen = new Map();
    this.failures = 0;
    for (const m of this.members.values()) {
      m.role?.('leader');
      this.tracked.set(m.sid, { sid: m.sid, tab: this.id, pos: m.pos(), holdMs: m.holdMs, detached: false });
    }
    this.post({ t: 'hello', leader: this.id });
    clearInterval(this.hbTimer);
    this.hbTimer = setInterval(() => this.post({ t: 'hb', leader: this.id }), HEARTBEAT_MS);
    this.scheduleReopen(COLLECT_MS);
  }

  stepDown(why) {
    if (this.role !== 'leader') return;
    this.debug('stepping down:', why);
    this.role = 'follower';
    clearInterval(this.hbTimer);
    clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    this.closeStream();
    this.releaseLock?.();
    this.releaseLock = null;
    this.lastLeaderSeen = Date.now();
    for (const m of this.members.values()) m.role?.('follower');
    // Queue again, so that this tab can lead at once when the new leader goes.
    this.requestLock(false);
  }

  track(sid, tab, pos, holdMs, reopen) {
    const t = this.tracked.get(sid);
    if (t) {
      // A re-join after `detached` or a takeover: the tab's position wins if it is older.
      t.tab = tab;
      t.detached = false;
      t.pos = Math.min(t.pos, pos);
    } else {
      this.tracked.set(sid, { sid, tab, pos, holdMs: Number(holdMs) || 30000, detached: false });
    }
    if (reopen || !t) this.scheduleReopen(REOPEN_MS);
  }

  untrack(sid) {
    if (this.tracked.delete(sid)) {
      this.released.add(sid);
      this.scheduleReopen(REOPEN_MS);
    } else {
      this.confirmRelease(sid);
    }
  }

  /** Leader: no request lists `sid` any more. */
  confirmRelease(sid) {
    const local = this.releaseWaiters.get(sid);
    if (local) {
      this.releaseWaiters.delete(sid);
      local();
    } else {
      this.post({ t: 'released', sid });
    }
  }

  sweepTabs(now) {
    for (const [sid, t] of this.tracked) {
      if (t.tab === this.id) continue;
      const seen = this.tabsSeen.get(t.tab) ?? 0;
      if (!this.tabsSeen.has(t.tab)) this.tabsSeen.set(t.tab, now);
      else if (now - seen > TAB_STALE_MS) {
        this.debug('dropping the session of a silent tab', sid);
        this.untrack(sid);
      }
    }
  }

  scheduleReopen(ms) {
    if (this.role !== 'leader' || this.reopenTimer !== null) return;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      this.open();
    }, ms);
  }

  closeStream() {
    this.streamGen++;
    this.stream?.close();
    this.stream = null;
  }

  /** (Re)opens the shared stream or poll with every attached session and its position. */
  open() {
    if (this.role !== 'leader' || this.disposed) return;
    this.closeStream();
    for (const sid of this.released) this.confirmRelease(sid);
    this.released.clear();
    const list = [...this.tracked.values()].filter((t) => !t.detached).slice(0, MAX_MUX_SESSIONS);
    if (list.length === 0) return;
    const gen = this.streamGen;
    if (this.kind === 'sse') this.openSse(gen, list);
    else this.pollLoop(gen);
  }

  muxUrl(list) {
    const u = new URL(this.routeUrl);
    u.searchParams.set('transport', 'mux');
    for (const t of list) u.searchParams.append('session', `${t.sid}.${t.pos}`);
    return u.href;
  }

  /** The stream or poll failed before it carried anything: tell the tabs, retry with backoff. */
  failed(gen, reason, fatal) {
    if (gen !== this.streamGen || this.role !== 'leader') return;
    this.closeStream();
    this.failures++;
    this.debug('shared connection failed:', reason);
    for (const t of this.tracked.values()) this.relay(t.sid, { t: fatal ? 'fail' : 'down', reason });
    if (fatal) {
      this.tracked.clear();
      return;
    }
    const d = Math.min(this.env.maxDelay, 500 * 2 ** Math.min(10, this.failures - 1));
    clearTimeout(this.reopenTimer);
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      this.open();
    }, Math.round(d / 2 + (Math.random() * d) / 2));
  }

  /** One multiplexed message: relayed once (seq above what was relayed before). */
  message(sid, seq, payload) {
    const t = this.tracked.get(sid);
    if (!t || !Number.isFinite(seq) || seq <= t.pos) return;
    t.pos = seq;
    this.relay(sid, { t: 'm', seq, ...payload });
  }

  gap(sid, g) {
    const t = this.tracked.get(sid);
    if (!t) return;
    t.pos = Math.max(t.pos, Number(g.to) || 0);
    this.relay(sid, { t: 'gap', from: g.from, to: g.to });
  }

  entry(sid, e) {
    if (e.reset) {
      this.tracked.delete(sid);
      this.relay(sid, { t: 'reset', reason: String(e.reset) });
      return false;
    }
    return true;
  }

  ended(sid, kind, info) {
    const t = this.tracked.get(sid);
    if (!t) return;
    if (kind === 'close') {
      this.tracked.delete(sid);
      this.relay(sid, { t: 'close', code: info.code, reason: info.reason });
    } else {
      // Another connection took it (the tab probed up to WebSocket, or a stale leader): the
      // tab decides whether to join again.
      t.detached = true;
      this.relay(sid, { t: 'detached', reason: info.reason });
    }
  }

  openSse(gen, list) {
    const env = this.env;
    const t0 = Date.now();
    const settled = trackPending(this.origin);
    let es;
    try {
      es = new env.ES(this.muxUrl(list), { withCredentials: env.withCredentials });
    } catch (err) {
      settled();
      this.failed(gen, `the shared event stream cannot be created (${err.message})`, true);
      return;
    }
    let opened = false;
    let announced = false;
    const timer = setTimeout(() => {
      if (announced) return;
      const reason = opened
        ? `shared event stream: the response started but no mux event came within ${env.announceTimeout} ms (an intermediary is buffering the event stream)`
        : noHeadReason('shared event stream', env.announceTimeout, this.origin);
      this.failed(gen, reason, false);
    }, env.announceTimeout);
    this.stream = {
      close: () => {
        clearTimeout(timer);
        settled();
        es.close();
      },
    };
    const live = () => gen === this.streamGen;
    es.onopen = () => {
      opened = true;
      settled();
    };
    es.onerror = () => {
      if (!live()) return;
      es.close();
      settled();
      if (!announced) {
        // Refused three times in a row and never announced: most likely a wsbridge without
        // multiplexing (its 400), so the tabs go back to connections of their own.
        const refused = es.readyState === 2;
        this.failed(gen, refused
          ? `the shared event stream was refused after ${Date.now() - t0} ms (an HTTP error: wsbridge's answer, or an intermediary's)`
          : `the shared event stream could not connect (network error after ${Date.now() - t0} ms; the browser does not say whether the connection was refused or blocked)`,
        refused && !this.everAnnounced && this.failures >= 2);
        return;
      }
      // It ended (every session left, a slow consumer, a restart): open a new one with the
      // current positions, never EventSource's own reconnect.
      clearTimeout(timer);
      this.stream = null;
      this.scheduleReopen(0);
    };
    es.addEventListener('mux', (e) => {
      if (!live()) return;
      const info = parseJson(e.data);
      announced = true;
      this.everAnnounced = true;
      clearTimeout(timer);
      this.failures = 0;
      for (const s of info?.sessions ?? []) {
        if (this.entry(s.session, s)) this.relay(s.session, { t: 'up', lastSeq: s.last_seq, nextSeq: s.next_seq, protocol: s.protocol });
      }
    });
    // Every message event's data is "<id> <seq> <body>".
    const onMsg = (type) => (e) => {
      if (!live()) return;
      const sp = e.data.indexOf(' ');
      const sp2 = e.data.indexOf(' ', sp + 1);
      if (sp < 0 || sp2 < 0) return;
      const sid = e.data.slice(0, sp);
      const seq = Number(e.data.slice(sp + 1, sp2));
      const rest = e.data.slice(sp2 + 1);
      if (type === 'message') this.message(sid, seq, { text: rest });
      else if (type === 'mt') this.message(sid, seq, { text: String(parseJson(rest)) });
      else this.message(sid, seq, { binary: rest });
    };
    es.addEventListener('message', onMsg('message'));
    es.addEventListener('mt', onMsg('mt'));
    es.addEventListener('mb', onMsg('mb'));
    es.addEventListener('gap', (e) => {
      const g = parseJson(e.data);
      if (live() && g) this.gap(g.session, g);
    });
    es.addEventListener('close', (e) => {
      const c = parseJson(e.data);
      if (live() && c) this.ended(c.session, 'close', c);
    });
    es.addEventListener('detached', (e) => {
      const d = parseJson(e.data);
      if (live() && d) this.ended(d.session, 'detached', d);
    });
  }

  async pollLoop(gen) {
    const env = this.env;
    const live = () => gen === this.streamGen && this.role === 'leader';
    let announced = new Set();
    while (live()) {
      const list = [...this.tracked.values()].filter((t) => !t.detached).slice(0, MAX_MUX_SESSIONS);
      if (list.length === 0) return;
      // A poll answers when there is something to say, so a session is live on it as soon as
      // it is listed (as a single long-poll session is once its open answered).
      for (const t of list) {
        if (!announced.has(t.sid)) {
          announced.add(t.sid);
          this.relay(t.sid, { t: 'up', lastSeq: t.pos });
        }
      }
      const hold = Math.max(...list.map((t) => t.holdMs));
      const ac = new AbortController();
      const timeout = hold + env.pollTimeoutExtra;
      const timer = setTimeout(() => ac.abort(), timeout);
      this.stream = { close: () => ac.abort() };
      const settled = trackPending(this.origin);
      let status = 0;
      let text = '';
      let head = false;
      let error = null;
      try {
        const res = await env.fetch(this.muxUrl(list), {
          signal: ac.signal, cache: 'no-store', credentials: env.withCredentials ? 'include' : 'same-origin',
        });
        head = true;
        settled();
        status = res.status;
        text = await res.text();
      } catch (err) {
        error = err;
      } finally {
        clearTimeout(timer);
        settled();
      }
      if (!live()) return;
      const body = status === 200 ? parseJson(text) : null;
      if (!body || !Array.isArray(body.sessions)) {
        const detail = parseJson(text);
        const reason = status ? `the shared poll answered ${status}${detail?.detail ? `: ${detail.detail}` : ''}`
          : !head && error?.name === 'AbortError' ? noHeadReason('shared poll', timeout, this.origin)
            : `the shared poll failed (network error: ${error?.message}; the browser does not say whether the connection was refused or blocked)`;
        announced = new Set();
        this.failed(gen, reason, status === 403 || status === 400);
        return;
      }
      this.failures = 0;
      for (const s of body.sessions) {
        const sid = s.session;
        if (!this.entry(sid, s)) continue;
        if (s.detached) {
          this.ended(sid, 'detached', { reason: s.detached });
          continue;
        }
        if (s.gap) this.gap(sid, s.gap);
        for (const m of s.messages ?? []) {
          this.message(sid, Number(m.seq), typeof m.binary === 'string' ? { binary: m.binary } : { text: m.text });
        }
        if (s.close) this.ended(sid, 'close', s.close);
      }
    }
  }
}

export class BridgeSocket extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;

  get CONNECTING() { return CONNECTING; }
  get OPEN() { return OPEN; }
  get CLOSING() { return CLOSING; }
  get CLOSED() { return CLOSED; }

  #opts;
  #url;            // as given, resolved
  #wsUrl;
  #httpUrl;
  #origin;
  #order;
  #WS;
  #ES;
  #fetch;

  #readyState = CONNECTING;
  #transport = null;
  #fallbackReason = null;
  #binaryType = 'blob';
  #protocol = '';

  #cycleGen = 0;         // bumped to abandon a running connect cycle
  #cancels = new Set();  // cancel functions of connection attempts in progress
  #sleeps = new Set();   // pending sleeps (woken on close)
  #conn = null;          // the running transport: {kind, ...}; identity = liveness
  #sess = null;          // the session: {id, url, lastSeq, sendSeq, holdMs, blocked, maxBatch}
  #queue = [];           // unconfirmed outgoing messages, in order; #queue[i] has seq sendSeq + i
  #queuedBytes = 0;
  #pumping = false;
  #pumpAgain = false;    // #pump() was called while a pump was running
  #pumpWaker = null;     // ends the sender's retry wait early
  #everOpen = false;
  #hadBackend = false;   // a backend connection existed before (a fresh one means 'reset')
  #lostReason = null;    // why the previous backend connection ended
  #floor = 0;            // index in #order where a reconnect cycle starts
  #stickUntil = 0;       // until then (ms epoch) a failure at #floor backs off and retries it
  #attempt = 0;          // failed full passes since the last success
  #pass = null;          // {index, failures[]} of the running cycle
  #closeReq = null;      // {code, reason} once close() was called
  #closeTimer = null;
  #onPageHide = null;
  #sendHold = false;     // a probe up to WebSocket is running: no new POST
  #idleWaiters = [];     // resolved when the sender is idle
  #probe = { timer: null, attempt: 0, running: null }; // running: a promise that settles with the probe
  #dropAt1009 = false;   // the proxy closed 1009: the message at its next_seq is too large
  #shareRoleNow = null;  // 'leader' | 'follower' in the hub of the shared connection
  #shareRefused = false; // wsbridge refused the shared request (an older proxy): own connections

  constructor(url, options = {}) {
    super();
    const o = { ...DEFAULT_OPTIONS, ...options };
    this.#opts = o;
    const base = globalThis.location?.href;
    const u = new URL(String(url), base);
    u.hash = '';
    if (u.protocol === 'ws:' || u.protocol === 'http:') u.protocol = 'http:';
    else if (u.protocol === 'wss:' || u.protocol === 'https:') u.protocol = 'https:';
    else throw domError(`BridgeSocket: unsupported URL scheme ${u.protocol}`, 'SyntaxError');
    this.#httpUrl = u.href;
    this.#origin = u.origin;
    const w = new URL(u.href);
    w.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    this.#wsUrl = w.href;
    this.#url = new URL(String(url), base).href;
    const order = (Array.isArray(o.transports) ? o.transports : [o.transports]).filter((t) => KNOWN_TRANSPORTS.includes(t));
    if (order.length === 0) throw domError('BridgeSocket: no known transport in options.transports', 'SyntaxError');
    this.#order = [...new Set(order)];
    this.binaryType = o.binaryType;
    this.#WS = o.WebSocket ?? globalThis.WebSocket;
    this.#ES = o.EventSource ?? globalThis.EventSource;
    this.#fetch = o.fetch ?? globalThis.fetch?.bind(globalThis);
    if (o.closeOnPageHide && typeof globalThis.addEventListener === 'function') {
      // A WebSocket is closed by the browser when the page goes away; a session would wait for
      // resume_window. End it now (keepalive lets the request outlive the page).
      this.#onPageHide = () => {
        const sess = this.#sess;
        if (sess && this.#readyState < CLOSING) {
          this.#fetch?.(sess.url, { method: 'DELETE', keepalive: true, credentials: this.#credentials() }).catch(() => {});
        }
      };
      globalThis.addEventListener('pagehide', this.#onPageHide);
    }
    this.#cycle(0);
  }

  // ---- public API ------------------------------------------------------------------------------

  get url() { return this.#url; }
  get readyState() { return this.#readyState; }
  get protocol() { return this.#protocol; }
  get extensions() { return ''; }
  /** 'websocket' | 'sse' | 'longpoll' | null (not connected yet). */
  get transport() { return this.#transport; }
  /** Why the transports before `transport` were not used (null: the first one worked). */
  get fallbackReason() { return this.#fallbackReason; }
  /** The current session id (any transport), else null (a relayed WebSocket). */
  get session() { return this.#sess?.id ?? null; }
  /**
   * On a connection shared between tabs (SSE and long-poll): 'leader' (this tab holds it) or
   * 'follower' (another tab does and relays); null otherwise.
   */
  get shared() { return this.#conn?.shared ? this.#shareRoleNow : null; }
  get bufferedAmount() {
    // On a session the queue holds every message until the proxy confirmed it.
    const conn = this.#conn;
    const ws = conn?.kind === 'websocket' && !conn.session ? conn.ws.bufferedAmount : 0;
    return this.#queuedBytes + ws;
  }
  get binaryType() { return this.#binaryType; }
  set binaryType(v) {
    if (v === 'blob' || v === 'arraybuffer') this.#binaryType = v;
  }

  /**
   * Queues `data` (string, ArrayBuffer, typed array / DataView, Blob) for delivery, in order,
   * exactly once over sessions. Throws InvalidStateError once close() was called.
   */
  send(data) {
    if (this.#readyState === CLOSING || this.#readyState === CLOSED) {
      throw domError('BridgeSocket is closing or closed', 'InvalidStateError');
    }
    const m = { binary: false, data: null, bytes: 0, pending: null, ambiguous: false };
    if (typeof data === 'string') {
      m.data = data;
      m.bytes = utf8.encode(data).length;
    } else if (data instanceof ArrayBuffer) {
      m.binary = true;
      m.data = new Uint8Array(data.slice(0));
    } else if (ArrayBuffer.isView(data)) {
      m.binary = true;
      m.data = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    } else if (typeof Blob === 'function' && data instanceof Blob) {
      m.binary = true;
      m.bytes = data.size;
      m.pending = data.arrayBuffer().then((ab) => {
        m.data = new Uint8Array(ab);
        m.pending = null;
      }, (err) => {
        m.data = null;
        m.pending = null;
        m.failed = String(err);
      });
    } else {
      m.data = String(data);
      m.bytes = utf8.encode(m.data).length;
    }
    if (m.binary && !m.pending) m.bytes = m.data.length;
    this.#queue.push(m);
    this.#queuedBytes += m.bytes;
    this.#pump();
  }

  /** Closes like WebSocket.close(); queued messages are flushed first (up to closeTimeout). */
  close(code = 1000, reason = '') {
    if (code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw domError(`close code ${code} is neither 1000 nor in 3000-4999`, 'InvalidAccessError');
    }
    if (utf8.encode(reason).length > 123) throw domError('close reason over 123 bytes', 'SyntaxError');
    if (this.#readyState === CLOSING || this.#readyState === CLOSED) return;
    this.#closeReq = { code, reason };
    this.#readyState = CLOSING;
    this.#stopProbe();
    if (!this.#conn) {
      // Nothing is connected (first connect or a reconnect in progress).
      this.#abandonAttempts();
      const sess = this.#sess;
      if (sess) this.#deleteSession(sess);
      this.#finish(code, reason, this.#everOpen);
      return;
    }
    this.#closeTimer = setTimeout(() => this.#closeNow(), this.#opts.closeTimeout);
    this.#pump();
  }

  // ---- events ----------------------------------------------------------------------------------

  #emit(ev) {
    this.dispatchEvent(ev);
  }

  #debug(...args) {
    if (this.#opts.debug) console.debug('[BridgeSocket]', ...args);
  }

  // ---- connection cycle ------------------------------------------------------------------------

  #backoff(n) {
    const { minDelay, maxDelay } = this.#opts;
    return Math.round(Math.random() * Math.min(maxDelay, minDelay * 2 ** Math.max(0, n - 1)));
  }

  #sleep(ms) {
    return new Promise((resolve) => {
      const entry = { resolve, timer: null };
      entry.timer = setTimeout(() => {
        this.#sleeps.delete(entry);
        resolve();
      }, ms);
      this.#sleeps.add(entry);
    });
  }

  #abandonAttempts() {
    this.#cycleGen++;
    for (const cancel of [...this.#cancels]) cancel();
    for (const s of [...this.#sleeps]) {
      clearTimeout(s.timer);
      s.resolve();
    }
    this.#sleeps.clear();
  }

  /** Walks the transport order until one carries traffic; full passes back off with jitter. */
  async #cycle(initialDelay) {
    const gen = ++this.#cycleGen;
    if (initialDelay > 0) {
      await this.#sleep(initialDelay);
      if (gen !== this.#cycleGen) return;
    }
    let index = this.#floor;
    let tried = 0;
    this.#pass = { index, failures: [] };
    for (;;) {
      if (gen !== this.#cycleGen || this.#readyState >= CLOSING) return;
      const name = this.#order[index];
      this.#pass.index = index;
      this.#debug('trying', name);
      const r = name === 'websocket' ? await this.#tryWebSocket(() => gen === this.#cycleGen)
        : this.#shareable() ? await this.#tryShared(name, gen)
          : name === 'sse' ? await this.#trySse(gen)
            : await this.#tryLongPoll(gen);
      if (gen !== this.#cycleGen || r.ok) return;
      this.#debug(name, 'failed:', r.reason);
      this.#pass.failures.push(`${name}: ${r.reason}`);
      if (r.fatal) {
        this.#fail(this.#pass.failures.join('; '), 1008);
        return;
      }
      tried++;
      // The transport that carried traffic until the loss failed again: the server is more
      // likely down (a restart) than newly blocked, so back off and retry it rather than
      // settle on a lower transport that happens to answer first once the server is back.
      const sticky = index === this.#floor && Date.now() < this.#stickUntil;
      index = sticky ? index : (index + 1) % this.#order.length;
      if (sticky || index === 0 || tried >= this.#order.length) {
        // A full pass failed (or we wrapped around from the floor): back off, then start over
        // from the first transport.
        this.#attempt++;
        if (this.#attempt > this.#opts.maxAttempts || !this.#opts.reconnect) {
          this.#fail(`no transport worked: ${this.#pass.failures.join('; ')}`, 1006);
          return;
        }
        const delay = this.#backoff(this.#attempt);
        this.#emit(makeEvent('reconnecting', {
          reason: this.#pass.failures.at(-1), attempt: this.#attempt, delay,
        }));
        await this.#sleep(delay);
        if (gen !== this.#cycleGen) return;
        if (!sticky) {
          index = 0;
          this.#floor = 0;
        }
        tried = 0;
        this.#pass = { index, failures: [] };
      }
    }
  }

  /** A transport attempt succeeded: bookkeeping shared by all transports (synchronous). */
  #accepted(kind) {
    const pass = this.#pass;
    this.#floor = pass ? pass.index : 0;
    this.#attempt = 0;
    this.#stickUntil = 0;
    this.#setTransport(kind, pass && pass.failures.length ? pass.failures.join('; ') : null);
  }

  #setTransport(kind, reason) {
    const previous = this.#transport;
    this.#fallbackReason = reason;
    this.#transport = kind;
    if (previous !== kind) this.#emit(makeEvent('transport', { transport: kind, previous, reason }));
  }

  /** A new backend connection is up; after an earlier one it is a reset. */
  #freshBackend(kind, reason) {
    if (this.#hadBackend) {
      const unconfirmed = this.#queue.filter((m) => m.ambiguous).length;
      for (const m of this.#queue) m.ambiguous = false;
      const why = reason ?? this.#lostReason ?? 'new backend connection';
      this.#emit(makeEvent('reset', {
        reason: why, transport: kind, session: this.#sess?.id ?? null,
        unconfirmed: this.#sess ? unconfirmed : null, // a relayed WebSocket cannot tell
      }));
    }
    this.#hadBackend = true;
    this.#lostReason = null;
  }

  /**
   * The transport carries traffic: OPEN, with open (first time) or reconnect; `resumed`: the
   * same session continues on a new connection (a 'resume' event; `previous` is the transport
   * it came from, by default the current one).
   */
  #up(kind, resumed, previous = kind) {
    const was = this.#readyState;
    if (was === CONNECTING) this.#readyState = OPEN;
    if (resumed) {
      this.#emit(makeEvent('resume', {
        transport: kind, previous, session: this.#sess?.id ?? null, lastSeq: this.#sess?.lastSeq ?? 0,
      }));
    }
    if (this.#readyState === CLOSED) return; // closed by a handler
    if (!this.#everOpen) {
      this.#everOpen = true;
      this.#emit(makeEvent('open', { transport: kind }));
    } else if (was === CONNECTING) {
      this.#emit(makeEvent('reconnect', { transport: kind, resumed }));
    }
    this.#pumpWaker?.();
    this.#pump();
    this.#scheduleProbeUp();
  }

  /** The connection is gone but may come back: CONNECTING, then a new cycle. */
  #lost(reason, { fresh }) {
    this.#conn = null;
    if (fresh) {
      this.#sess = null;
      this.#lostReason = reason;
    }
    if (this.#readyState === CLOSING) {
      const { code, reason: r } = this.#closeReq;
      this.#finish(code, r, false);
      return;
    }
    this.#readyState = CONNECTING;
    this.#stickUntil = Date.now() + this.#opts.retryTransportFor;
    const delay = this.#backoff(1);
    this.#emit(makeEvent('reconnecting', { reason, attempt: 0, delay }));
    this.#cycle(delay);
  }

  #shouldReconnect(code) {
    return this.#opts.reconnect && this.#readyState !== CLOSING &&
      (code === 1006 || this.#opts.reconnectOn.includes(code));
  }

  #fail(reason, code) {
    this.#emit(makeEvent('error', { message: reason }));
    this.#finish(code, reason, false);
  }

  #finish(code, reason, wasClean) {
    if (this.#readyState === CLOSED) return;
    this.#readyState = CLOSED;
    clearTimeout(this.#closeTimer);
    this.#stopProbe();
    if (this.#onPageHide) globalThis.removeEventListener('pagehide', this.#onPageHide);
    this.#abandonAttempts();
    const conn = this.#conn;
    this.#conn = null;
    if (conn) conn.stop?.();
    const unsent = this.#queue.length;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#sess = null;
    this.#emit(makeCloseEvent(code, reason, wasClean, { unsent }));
  }

  #closeNow() {
    clearTimeout(this.#closeTimer);
    if (this.#readyState === CLOSED) return;
    const { code, reason } = this.#closeReq;
    const conn = this.#conn;
    if (conn?.kind === 'websocket' && conn.session) {
      // The `close` control ends the session (a WebSocket Close would only detach it); the
      // proxy answers with its own `close` control, which finishes (#sessionClosed).
      if (conn.closing) return;
      conn.closing = true;
      try {
        this.#sendAck(conn);
        this.#sendControl(conn, reason ? { type: 'close', code, reason } : { type: 'close', code });
      } catch {
        this.#wsSessionLost(conn, 'closed while closing');
        return;
      }
      setTimeout(() => {
        if (this.#conn === conn && this.#readyState === CLOSING) this.#wsSessionLost(conn, 'no close control in time');
      }, this.#opts.closeTimeout);
      return;
    }
    if (conn?.kind === 'websocket') {
      try {
        conn.ws.close(code, reason);
      } catch {
        this.#finish(code, reason, false);
        return;
      }
      // onclose finishes; make sure it happens.
      setTimeout(() => this.#finish(code, reason, false), this.#opts.closeTimeout);
      return;
    }
    const sess = this.#sess;
    this.#abandonAttempts();
    this.#conn = null;
    conn?.stop?.();
    if (!sess) {
      this.#finish(code, reason, false);
      return;
    }
    this.#deleteSession(sess, code, reason).then((ok) => this.#finish(code, reason, ok));
  }

  async #deleteSession(sess, code, reason) {
    try {
      // The backend gets code and reason, as a WebSocket close would send them.
      const u = new URL(sess.url);
      if (code !== undefined) u.searchParams.set('code', String(code));
      if (reason) u.searchParams.set('reason', reason);
      // Not cancellable: it must survive the close that follows.
      const r = await this.#request('DELETE', u.href, { keepalive: true, cancellable: false });
      return r.status === 204 || r.status === 404;
    } catch {
      return false;
    }
  }

  // ---- HTTP ------------------------------------------------------------------------------------

  /** fetch with a timeout covering the body; resolves {status, headers, text}. */
  async #request(method, url, { body, contentType, timeout = this.#opts.requestTimeout, keepalive = false, cancellable = true } = {}) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeout);
    let cancelled = false;
    const cancel = () => {
      cancelled = true;
      ctrl.abort();
    };
    if (cancellable) this.#cancels.add(cancel);
    const settled = trackPending(this.#origin);
    let head = false;
    try {
      const headers = {};
      if (contentType) headers['Content-Type'] = contentType;
      const res = await this.#fetch(url, {
        method, body, headers, signal: ctrl.signal, cache: 'no-store', keepalive,
        credentials: this.#credentials(),
      });
      head = true;
      settled();
      const text = await res.text();
      return { status: res.status, headers: res.headers, text };
    } catch (err) {
      // No response head before the timeout: the browser may never have sent the request (its
      // connections to the host are all held), which is no answer of wsbridge. Say so.
      if (err?.name === 'AbortError' && !head && !cancelled) {
        const e = new Error(noHeadReason(`${method} ${new URL(url).pathname}`, timeout, this.#origin));
        e.name = 'NoResponse';
        throw e;
      }
      if (err?.name === 'TypeError') {
        throw new TypeError(`${err.message}: a network error; the browser does not say whether the connection ` +
          'was refused, cut, or blocked by CORS');
      }
      throw err;
    } finally {
      clearTimeout(timer);
      settled();
      this.#cancels.delete(cancel);
    }
  }

  #credentials() {
    return this.#opts.withCredentials ? 'include' : 'same-origin';
  }

  #sessionBaseUrl(extra) {
    const u = new URL(this.#httpUrl);
    for (const p of this.#opts.protocols) u.searchParams.append('protocol', p);
    for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
    return u.href;
  }

  // ---- WebSocket -------------------------------------------------------------------------------

  /**
   * One WebSocket attempt. With `wsSession` it offers SESSION_PROTOCOL and, when a session
   * exists, resumes it (`?session=S&ack=N&seq=M`); it succeeds when the `session` control
   * arrives (which proves the path carries data), and the connection is adopted synchronously
   * so that no message after it is missed. A proxy that does not select the subprotocol gets
   * the transparent relay and its probe window (never for a probe up: `probe` true).
   * `wanted()` false at the moment of success abandons the attempt.
   */
  #tryWebSocket(wanted, { probe = false } = {}) {
    return new Promise((resolve) => {
      const { wsOpenTimeout, wsProbe, probeTimeout, wsSession } = this.#opts;
      const t0 = Date.now();
      const ms = () => Date.now() - t0;
      const resuming = wsSession && this.#sess !== null;
      const firstSeq = resuming ? this.#sess.sendSeq : 1;
      let ws;
      try {
        ws = wsSession ? new this.#WS(this.#wsSessionUrl(), [SESSION_PROTOCOL, ...this.#opts.protocols])
          : new this.#WS(this.#wsUrl, this.#opts.protocols);
      } catch (err) {
        resolve({ ok: false, reason: `cannot be created (${err.message})` });
        return;
      }
      ws.binaryType = 'arraybuffer';
      let phase = 'opening';
      let openTimer = null;
      let probeTimer = null;
      const early = [];
      let earlyClose = null;
      let pendingReset = null;
      let refusal = null;   // an `error` control before the `session` control
      const done = () => {
        clearTimeout(openTimer);
        clearTimeout(probeTimer);
        this.#cancels.delete(cancel);
      };
      const fail = (reason) => {
        if (phase === 'done') return;
        phase = 'done';
        done();
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch {
          // not open yet
        }
        resolve({ ok: false, reason });
      };
      const cancel = () => fail('cancelled');
      this.#cancels.add(cancel);
      const settle = () => {
        if (phase === 'done') return false;
        phase = 'done';
        done();
        if (!wanted()) {
          ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
          ws.close();
          resolve({ ok: false, reason: 'cancelled' });
          return false;
        }
        return true;
      };
      const confirmSession = (info) => {
        if (!settle()) return;
        this.#adoptWsSession(ws, info, pendingReset, firstSeq, probe);
        resolve({ ok: true });
      };
      const confirmRelay = () => {
        if (!settle()) return;
        this.#accepted('websocket');
        const conn = { kind: 'websocket', session: false, ws, stop: () => { ws.onmessage = ws.onclose = null; ws.close(); } };
        this.#conn = conn;
        this.#sess = null;
        this.#protocol = ws.protocol;
        ws.onmessage = (e) => {
          if (this.#conn === conn) this.#deliver(e.data, typeof e.data !== 'string', null);
        };
        ws.onclose = (e) => this.#onWsClose(conn, e);
        ws.onerror = null;
        this.#freshBackend('websocket', null);
        this.#up('websocket', false);
        for (const d of early) {
          if (this.#conn === conn) this.#deliver(d, typeof d !== 'string', null);
        }
        if (earlyClose) this.#onWsClose(conn, earlyClose);
        resolve({ ok: true });
      };
      openTimer = setTimeout(() => fail(phase === 'announce'
        ? `opened but sent no session control within ${wsOpenTimeout} ms`
        : `did not open within ${wsOpenTimeout} ms`), wsOpenTimeout);
      ws.onopen = () => {
        if (wsSession && ws.protocol === SESSION_PROTOCOL) {
          phase = 'announce'; // the open timer runs on until the `session` control
          return;
        }
        if (probe) {
          fail(`the proxy did not select ${SESSION_PROTOCOL}`);
          return;
        }
        phase = 'probing';
        clearTimeout(openTimer);
        if (wsProbe !== 'message' && probeTimeout <= 0) {
          confirmRelay();
          return;
        }
        probeTimer = setTimeout(() => {
          if (wsProbe === 'message') fail(`opened but carried no message within ${probeTimeout} ms`);
          else confirmRelay();
        }, probeTimeout);
      };
      ws.onmessage = (e) => {
        if (phase === 'announce') {
          // Before the `session` control only `reset` (then `session`) or `error` may come.
          const f = decodeSessionFrame(e.data);
          const type = f?.kind === 'control' ? f.msg.type : null;
          if (type === 'reset') pendingReset = f.msg;
          else if (type === 'session' && typeof f.msg.session === 'string') confirmSession(f.msg);
          else if (type === 'error') refusal = f.msg;
          else fail('protocol error: a message before the session control');
          return;
        }
        early.push(e.data);
        if (phase === 'probing') confirmRelay();
      };
      ws.onerror = () => {};
      ws.onclose = (e) => {
        if (refusal) {
          this.#refused(refusal);
          fail(`refused: ${refusal.error}${refusal.detail ? ` (${refusal.detail})` : ''}`);
        } else if (phase === 'probing' && e.wasClean && e.code !== 1006) {
          // The backend itself closed cleanly: that is its answer, not a broken transport.
          earlyClose = e;
          confirmRelay();
        } else if (phase === 'probing' || phase === 'announce') {
          fail(`opened, then closed (${e.code}) after ${ms()} ms`);
        } else {
          fail(`failed to open (close ${e.code} after ${ms()} ms)`);
        }
      };
    });
  }

  /** The WebSocket URL of a session: new (with ?protocol=) or resumed (session, ack, seq). */
  #wsSessionUrl() {
    const u = new URL(this.#wsUrl);
    const sess = this.#sess;
    if (sess) {
      u.searchParams.set('session', sess.id);
      u.searchParams.set('ack', String(sess.lastSeq));
      u.searchParams.set('seq', String(sess.sendSeq));
    } else {
      for (const p of this.#opts.protocols) u.searchParams.append('protocol', p);
    }
    return u.href;
  }

  /** The proxy refused a session WebSocket with an `error` control before its `session`. */
  #refused(msg) {
    const sess = this.#sess;
    const expected = Number(msg.expected_seq);
    if (msg.error === 'seq_gap' && sess && Number.isFinite(expected) && expected > 0 && expected < sess.sendSeq) {
      // The proxy expects an earlier seq: messages we believed confirmed were not forwarded.
      this.#emit(makeEvent('error', {
        message: `the proxy expected seq ${expected}, not ${sess.sendSeq}: ${sess.sendSeq - expected} message(s) were lost`,
      }));
      sess.sendSeq = expected;
    }
  }

  /**
   * Makes `ws` (its `session` control `info` just arrived, after `pendingReset` if any) the
   * session's connection, retiring the one before it (a probe up: the proxy has already ended
   * it). Synchronous, inside the message event, so every later message reaches the new handler.
   */
  #adoptWsSession(ws, info, pendingReset, firstSeq, probe) {
    const previous = this.#transport;
    const old = this.#conn;
    if (old) {
      old.stop();
      this.#conn = null;
    }
    if (probe) {
      this.#floor = this.#order.indexOf('websocket');
      this.#attempt = 0;
      this.#stickUntil = 0;
      this.#setTransport('websocket', null);
    } else {
      this.#accepted('websocket');
    }
    const conn = {
      kind: 'websocket', session: true, ws, since: Date.now(), nextSeq: 1, writeSeq: 1, ready: false,
      unacked: 0, ackTimer: null, error: null, closing: false,
      stop: () => {
        clearTimeout(conn.ackTimer);
        ws.onmessage = ws.onclose = null;
        ws.close();
      },
    };
    this.#conn = conn;
    ws.onmessage = (e) => this.#onWsSessionMessage(conn, e.data);
    ws.onclose = (e) => this.#onWsClose(conn, e);
    ws.onerror = null;
    let resumed = false;
    if (!this.#sess) {
      this.#newSession(info.session, this.#sessionUrl(info.session), info.last_seq, info.heartbeat_ms);
      this.#freshBackend('websocket', null);
    } else if (pendingReset || info.session !== this.#sess.id) {
      // Seqs restart at 1 both ways: the first message written here is the new session's seq 1.
      this.#applyReset('websocket', info.session, pendingReset?.reason);
      this.#sess.holdMs = Number(info.heartbeat_ms) || this.#sess.holdMs;
    } else {
      resumed = true;
      conn.writeSeq = firstSeq;
      if (this.#dropAt1009) this.#dropTooLarge(Number(info.next_seq));
    }
    this.#dropAt1009 = false;
    if (typeof info.protocol === 'string') this.#protocol = info.protocol;
    else if (!resumed) this.#protocol = '';
    conn.nextSeq = (Number(info.last_seq) || 0) + 1;
    conn.ready = true;
    this.#sess.blocked = false;
    this.#up('websocket', resumed, previous);
  }

  /**
   * After a close 1009 the proxy's next_seq names the message that was too large: it can never
   * be forwarded, so it is dropped (with an `error` event, as a POST's 413) before it is sent
   * again. It was not forwarded, so the ones after it may take its seq.
   */
  #dropTooLarge(nextSeq) {
    const i = nextSeq - this.#sess.sendSeq;
    if (!Number.isFinite(i) || i < 0 || i >= this.#queue.length) return;
    const [m] = this.#queue.splice(i, 1);
    this.#queuedBytes -= m.bytes;
    this.#emit(makeEvent('error', { message: 'the proxy refused a message (close 1009: too large); it was dropped' }));
  }

  #onWsSessionMessage(conn, data) {
    if (this.#conn !== conn) return;
    const f = decodeSessionFrame(data);
    if (!f) {
      // RFC 6455 §7.4.1: 1002, protocol error. The session stays; resume.
      conn.ws.close(1002, 'session framing error');
      this.#wsSessionLost(conn, 'a message that is not session framing (closed 1002)');
      return;
    }
    if (f.kind !== 'control') {
      const seq = conn.nextSeq++;
      this.#sessionMessage(seq, f.data, f.kind === 'binary');
      if (this.#conn !== conn) return;
      conn.unacked++;
      if (conn.unacked >= ACK_EVERY) this.#sendAck(conn);
      else if (conn.ackTimer === null) conn.ackTimer = setTimeout(() => this.#sendAck(conn), ACK_DELAY);
      return;
    }
    const msg = f.msg;
    switch (msg.type) {
      case 'ack':
        this.#confirmUpTo(Number(msg.next_seq));
        break;
      case 'gap':
        this.#gap(msg);
        if (Number.isFinite(Number(msg.to))) conn.nextSeq = Number(msg.to) + 1;
        break;
      case 'close':
        this.#sessionClosed(conn, msg);
        break;
      case 'replaced':
        // Another connection took the session over. This client keeps one connection per
        // session, so it can only be a request of ours that was still on its way: resume.
        conn.stop();
        this.#wsSessionLost(conn, 'the proxy gave the session to another connection (replaced)');
        break;
      case 'error':
        conn.error = msg; // the close follows
        break;
      default:
        this.#debug('ignoring control', msg);
    }
  }

  /** Sends `{"type":"ack","seq":<last delivered>}` now. */
  #sendAck(conn) {
    clearTimeout(conn.ackTimer);
    conn.ackTimer = null;
    if (this.#conn !== conn || conn.ws.readyState !== 1 || !this.#sess) return;
    conn.unacked = 0;
    this.#sendControl(conn, { type: 'ack', seq: this.#sess.lastSeq });
  }

  #sendControl(conn, msg) {
    conn.ws.send(sessionFrame(KIND_CONTROL, utf8.encode(JSON.stringify(msg))));
  }

  /** The proxy confirmed every client message below `next`: they leave the queue. */
  #confirmUpTo(next) {
    const sess = this.#sess;
    if (!sess || !Number.isFinite(next)) return;
    const k = Math.min(this.#queue.length, next - sess.sendSeq);
    if (k <= 0) return;
    this.#dequeue(k);
    sess.sendSeq += k;
    if (this.#readyState === CLOSING && this.#queue.length === 0 && !this.#pumping) this.#closeNow();
  }

  /** Messages written on a connection that is gone may or may not have been forwarded. */
  #markWritten(conn) {
    const n = Math.min(this.#queue.length, conn.writeSeq - (this.#sess?.sendSeq ?? conn.writeSeq));
    for (let i = 0; i < n; i++) this.#queue[i].ambiguous = true;
  }

  /** A session WebSocket ended without ending the session: resume it. */
  #wsSessionLost(conn, reason) {
    if (this.#conn !== conn) return;
    clearTimeout(conn.ackTimer);
    this.#markWritten(conn);
    this.#conn = null;
    // A WebSocket that stayed up a while resets the probe-up backoff.
    if (Date.now() - conn.since > 30000) this.#probe.attempt = 0;
    if (this.#readyState === CLOSING) {
      // close() was waiting for the proxy: end the session by DELETE instead.
      const { code, reason: r } = this.#closeReq;
      const sess = this.#sess;
      if (sess) this.#deleteSession(sess, code, r).then((ok) => this.#finish(code, r, ok));
      else this.#finish(code, r, false);
      return;
    }
    this.#lost(`websocket: ${reason}`, { fresh: false });
  }

  #onWsClose(conn, e) {
    if (this.#conn !== conn) return;
    if (conn.session) {
      if (e.code === 1009) this.#dropAt1009 = true;
      const why = conn.error ? `; ${conn.error.error}${conn.error.detail ? `: ${conn.error.detail}` : ''}` : '';
      if (conn.error) this.#refused(conn.error);
      this.#wsSessionLost(conn, `closed (${e.code}${e.reason ? ` ${e.reason}` : ''}${why})`);
      return;
    }
    this.#conn = null;
    if (this.#readyState === CLOSING) {
      this.#finish(e.code, e.reason, e.wasClean);
    } else if (this.#shouldReconnect(e.code) || !e.wasClean) {
      this.#lost(`websocket closed (${e.code}${e.reason ? ` ${e.reason}` : ''})`, { fresh: true });
    } else {
      this.#finish(e.code, e.reason, e.wasClean);
    }
  }

  // ---- probing back up to WebSocket --------------------------------------------------------

  /** While a session runs below WebSocket, schedules the next probe up (backoff, jitter). */
  #scheduleProbeUp() {
    const o = this.#opts;
    const p = this.#probe;
    if (!o.wsSession || !o.probeUp || !this.#sess || p.timer !== null || p.running) return;
    const ws = this.#order.indexOf('websocket');
    if (ws < 0 || this.#order.indexOf(this.#transport) <= ws || this.#readyState !== OPEN) return;
    p.attempt++;
    const d = Math.min(o.probeUpMaxDelay, o.probeUpDelay * 2 ** (p.attempt - 1));
    const delay = Math.round(d / 2 + (Math.random() * d) / 2);
    this.#debug('probing up to websocket in', delay, 'ms');
    p.timer = setTimeout(() => {
      p.timer = null;
      this.#probeUp();
    }, delay);
  }

  async #probeUp() {
    const p = this.#probe;
    const from = this.#conn;
    if (this.#readyState !== OPEN || !this.#sess || !from || from.kind === 'websocket') return;
    let settled;
    p.running = new Promise((r) => { settled = r; });
    const token = p.running;
    // One sender at a time: the WebSocket numbers its messages from seq=, so no POST may
    // confirm (and drop) messages while it opens.
    this.#sendHold = true;
    this.#pumpWaker?.();
    await this.#pumpIdle();
    let r = { ok: false, reason: 'cancelled' };
    // A shared stream or poll must stop listing the session first: a request of the leader
    // already on its way would take the session back from the probe's WebSocket.
    if (from.shared && p.running === token && this.#conn === from) await from.hub.release(from.member);
    if (p.running === token && this.#readyState === OPEN && this.#conn === from) {
      r = await this.#tryWebSocket(() => p.running === token && this.#readyState < CLOSING, { probe: true });
    }
    if (p.running === token) p.running = null;
    this.#sendHold = false;
    settled();
    if (r.ok) return;
    this.#debug('probe up failed:', r.reason);
    if (from.shared && this.#conn === from) {
      // Back on the shared connection, from this tab's position.
      from.dormant = false;
      from.hub.join(from.member);
    }
    if (this.#readyState >= CLOSING) return;
    if (this.#conn === from && from.dormant) {
      // The old transport ended while the probe ran (the proxy may have attached the probe and
      // then lost it): resume the session from where the transport order stands.
      this.#conn = null;
      this.#lost(`${from.kind}: ended while probing WebSocket (${r.reason})`, { fresh: false });
      return;
    }
    this.#pump();
    this.#scheduleProbeUp();
  }

  #stopProbe() {
    const p = this.#probe;
    clearTimeout(p.timer);
    p.timer = null;
    p.running = null; // a running probe sees it is no longer wanted
    this.#sendHold = false;
  }

  /** Resolves once no probe is running. */
  async #probeSettled() {
    while (this.#probe.running) await this.#probe.running;
  }

  // ---- sessions (every transport) --------------------------------------------------------------

  /** The URL of session `id` (POST with &seq=, poll with &ack=, DELETE). */
  #sessionUrl(id) {
    return withParam(this.#httpUrl, 'session', id);
  }

  #newSession(id, sendUrl, lastSeq, holdMs) {
    this.#sess = {
      id,
      url: new URL(sendUrl, this.#httpUrl).href,
      lastSeq: Number(lastSeq) || 0,
      sendSeq: 1,
      holdMs: Number(holdMs) || 30000,
      blocked: false,
      maxBatch: this.#opts.maxBatchMessages,
    };
    return this.#sess;
  }

  /** The proxy replaced an unknown session by a fresh one. */
  #applyReset(kind, id, reason) {
    const old = this.#sess;
    const url = old ? withParam(old.url, 'session', id) : this.#sessionBaseUrl({ session: id });
    this.#newSession(id, url, 0, old?.holdMs);
    this.#freshBackend(kind, reason || 'unknown session');
    this.#pumpWaker?.();
  }

  #sessionMessage(seq, data, binary) {
    const sess = this.#sess;
    if (!sess) return;
    if (Number.isFinite(seq)) {
      if (seq <= sess.lastSeq) return; // already delivered (never twice)
      sess.lastSeq = seq;
    }
    this.#deliver(data, binary, seq);
  }

  #gap(g) {
    const sess = this.#sess;
    if (!sess || !g) return;
    const from = Number(g.from);
    const to = Number(g.to);
    if (to <= sess.lastSeq) return;
    sess.lastSeq = to;
    this.#emit(makeEvent('gap', { from, to }));
  }

  /** The backend closed the session (close event / poll close). */
  #sessionClosed(conn, info) {
    if (this.#conn !== conn) return;
    conn.stop?.();
    this.#conn = null;
    const code = Number(info?.code) || 1005;
    const reason = String(info?.reason ?? '');
    if (this.#readyState === CLOSING) {
      this.#sess = null;
      this.#finish(code, reason, true);
    } else if (this.#shouldReconnect(code)) {
      this.#lost(`the backend closed the session (${code}${reason ? ` ${reason}` : ''})`, { fresh: true });
    } else {
      this.#sess = null;
      this.#finish(code, reason, true);
    }
  }

  // ---- SSE and long-poll over the connection the tabs share (see TabHub) ----------------------

  #shareable() {
    return this.#opts.shareConnection && !this.#shareRefused && canShareConnection();
  }

  /** Opens a session with `GET ?transport=longpoll` (it answers at once with the id). */
  async #openSession(gen) {
    let r;
    try {
      r = await this.#request('GET', this.#sessionBaseUrl({ transport: 'longpoll' }));
    } catch (err) {
      return { ok: false, reason: `open request failed (${err.name === 'AbortError' ? 'timeout' : err.message})` };
    }
    if (gen !== this.#cycleGen) return { ok: false, reason: 'cancelled' };
    const body = parseJson(r.text);
    if (r.status !== 200 || !body?.session) {
      const detail = body?.detail ? `: ${body.detail}` : '';
      return {
        ok: false, reason: `open answered ${r.status}${detail}`, fatal: r.status === 403,
        disabled: r.status === 400 && body?.error === 'transport_disabled',
      };
    }
    this.#newSession(body.session, body.poll || body.send, body.last_seq, body.hold_ms);
    this.#protocol = typeof body.protocol === 'string' ? body.protocol : '';
    return { ok: true };
  }

  #shareRole(role) {
    if (this.#shareRoleNow === role) return;
    this.#shareRoleNow = role;
    const conn = this.#conn;
    if (!conn?.shared) return;
    this.#debug('shared connection:', role);
    this.#emit(makeEvent('share', { role, transport: conn.kind }));
  }

  /**
   * `kind` ('sse' | 'longpoll') over the tabs' shared connection: this tab's session is listed
   * on the leader's multiplexed stream or poll; it is up once the leader says so.
   */
  async #tryShared(kind, gen) {
    if (!this.#sess) {
      const r = await this.#openSession(gen);
      if (!r.ok) {
        // A route without long-polling cannot open sessions that way: SSE on its own.
        if (r.disabled && kind === 'sse') return this.#trySse(gen);
        return r;
      }
      // Not up until a shared connection carries it (maybe on the next transport of the cycle).
      this.#sess.unattached = true;
    }
    const fresh = this.#sess.unattached === true;
    if (gen !== this.#cycleGen) return { ok: false, reason: 'cancelled' };
    const previous = this.#transport;
    const route = new URL(this.#httpUrl);
    route.search = '';
    const o = this.#opts;
    const hub = TabHub.get(route.href, kind, {
      ES: this.#ES, fetch: this.#fetch, withCredentials: o.withCredentials, announceTimeout: o.sseAnnounceTimeout,
      pollTimeoutExtra: o.pollTimeoutExtra, maxDelay: o.maxDelay, debug: o.debug,
    });
    const wait = o.sseAnnounceTimeout + LEADER_SILENT_MS + PING_MS + COLLECT_MS + HEARTBEAT_MS;
    return new Promise((resolve) => {
      const sess = this.#sess;
      let phase = 'attach';
      const conn = {
        kind, shared: true, hub, member: null, downTimer: null, dormant: false,
        stop: () => {
          clearTimeout(conn.downTimer);
          hub.leave(conn.member);
        },
      };
      const fail = (reason) => {
        if (phase !== 'attach') return;
        phase = 'done';
        clearTimeout(timer);
        this.#cancels.delete(cancel);
        hub.leave(conn.member);
        resolve({ ok: false, reason });
      };
      const cancel = () => fail('cancelled');
      this.#cancels.add(cancel);
      const timer = setTimeout(() => fail(`the connection shared with the other tabs did not carry this session within ${wait} ms`), wait);
      conn.member = {
        sid: sess.id,
        holdMs: sess.holdMs,
        pos: () => (this.#sess?.id === sess.id ? this.#sess.lastSeq : 0),
        role: (r) => {
          if (phase === 'live' && this.#conn === conn) this.#shareRole(r);
          else conn.pendingRole = r;
        },
        deliver: (msg) => {
          if (phase === 'attach') {
            // The shared stream failed before it carried this session: this transport failed
            // for it now, as its own stream would have (the leader keeps trying for the others).
            if (msg.t === 'down') fail(String(msg.reason));
            else if (msg.t === 'fail') {
              this.#shareRefused = true;
              fail(`${msg.reason}; this tab uses a connection of its own from now on`);
            }
            else if (msg.t === 'reset') fail(`the session is unknown to wsbridge (${msg.reason})`);
            if (msg.t !== 'up') return;
            phase = 'live';
            clearTimeout(timer);
            this.#cancels.delete(cancel);
            if (gen !== this.#cycleGen || this.#sess !== sess) {
              phase = 'done';
              hub.leave(conn.member);
              resolve({ ok: false, reason: 'cancelled' });
              return;
            }
            this.#accepted(kind);
            this.#conn = conn;
            sess.unattached = false;
            if (fresh) this.#freshBackend(kind, null);
            sess.blocked = false;
            if (typeof msg.protocol === 'string') this.#protocol = msg.protocol;
            this.#shareRole(conn.pendingRole ?? hub.role);
            this.#up(kind, !fresh, previous);
            resolve({ ok: true });
            return;
          }
          if (phase === 'live') this.#onShared(conn, msg);
        },
      };
      hub.join(conn.member);
    });
  }

  /** A relay of the leader (or this tab's own hub) for this session. */
  #onShared(conn, msg) {
    if (this.#conn !== conn) return;
    const kind = conn.kind;
    switch (msg.t) {
      case 'up':
        clearTimeout(conn.downTimer);
        conn.downTimer = null;
        if (this.#sess) this.#sess.blocked = false;
        if (this.#readyState === CONNECTING) this.#up(kind, true);
        return;
      case 'm': {
        const binary = typeof msg.binary === 'string';
        let data;
        try {
          data = binary ? fromBase64(msg.binary) : String(msg.text);
        } catch {
          return;
        }
        this.#sessionMessage(Number(msg.seq), data, binary);
        if (this.#conn === conn && this.#queue.length) this.#pump();
        return;
      }
      case 'gap':
        this.#gap(msg);
        return;
      case 'close':
        this.#sessionClosed(conn, msg);
        return;
      case 'reset':
        // wsbridge's reason, as the single-session transports report it; the next cycle opens a
        // fresh session and fires 'reset' with it.
        conn.stop();
        this.#lost(String(msg.reason || 'unknown session'), { fresh: true });
        return;
      case 'detached':
        if (this.#probe.running) {
          // Most likely the probe's WebSocket took the session (or, through a proxy that drops
          // Upgrade, the probe's request arrived as a poll): the probe's outcome decides
          // (#probeUp), and a failed probe lists the session again.
          conn.dormant = true;
          return;
        }
        // Someone else's request took it (a stale leader): list it again.
        conn.hub.join(conn.member);
        return;
      case 'down':
        if (this.#readyState === OPEN) {
          this.#readyState = CONNECTING;
          this.#emit(makeEvent('reconnecting', { reason: `${kind} (shared): ${msg.reason}`, attempt: 0, delay: 0 }));
        }
        if (conn.downTimer === null) {
          const t = kind === 'sse' ? this.#opts.sseReconnectTimeout : this.#opts.requestTimeout;
          conn.downTimer = setTimeout(() => {
            if (this.#conn !== conn) return;
            conn.stop();
            this.#lost(`${kind} (shared): ${msg.reason}; not back within ${t} ms`, { fresh: false });
          }, t);
        }
        return;
      case 'fail':
        // The proxy refused the multiplexed request (an older wsbridge, say): a connection of
        // this tab's own from now on.
        this.#shareRefused = true;
        conn.stop();
        this.#lost(`${kind} (shared): ${msg.reason}; this tab uses a connection of its own from now on`, { fresh: false });
        return;
      default:
    }
  }

  // SSE ------------------------------------------------------------------------------------------

  #trySse(gen) {
    return new Promise((resolve) => {
      const { sseAnnounceTimeout } = this.#opts;
      const t0 = Date.now();
      // With a session, a new EventSource resumes it by URL (it cannot set Last-Event-ID).
      const resuming = this.#sess;
      const url = resuming ? withParam(withParam(resuming.url, 'session', resuming.id), 'ack', resuming.lastSeq)
        : this.#sessionBaseUrl({});
      let es;
      try {
        es = new this.#ES(url, { withCredentials: this.#opts.withCredentials });
      } catch (err) {
        resolve({ ok: false, reason: `cannot be created (${err.message})` });
        return;
      }
      let phase = 'announce';
      let conn = null;
      let pendingReset = null;
      const fail = (reason) => {
        if (phase !== 'announce') return;
        phase = 'done';
        clearTimeout(timer);
        settled();
        this.#cancels.delete(cancel);
        es.close();
        resolve({ ok: false, reason });
      };
      const cancel = () => fail('cancelled');
      this.#cancels.add(cancel);
      // onopen = the response head arrived. Without it the request may be queued in the browser
      // (every connection to the host held), which is no sign of a buffering intermediary.
      let opened = false;
      const settled = trackPending(this.#origin);
      const timer = setTimeout(() => fail(opened
        ? `no session announce within ${sseAnnounceTimeout} ms (the response started, so an intermediary is buffering the event stream)`
        : noHeadReason('event stream', sseAnnounceTimeout, this.#origin)), sseAnnounceTimeout);
      const live = () => conn !== null && this.#conn === conn;
      es.onopen = () => {
        opened = true;
        settled();
      };

      es.onerror = () => {
        if (phase === 'announce') {
          fail(es.readyState === 2 ? `refused after ${Date.now() - t0} ms (an HTTP error or not an event stream)`
            : `connection failed after ${Date.now() - t0} ms`);
        } else if (live()) {
          if (this.#probe.running) {
            // Most likely the proxy ended the stream because the probe's WebSocket took the
            // session over. EventSource must not take it back: stop it, and let the probe's
            // outcome decide (#probeUp resumes when the probe failed).
            conn.dormant = true;
            conn.stop();
            return;
          }
          this.#sseInterrupted(conn);
        }
      };
      es.addEventListener('reset', (e) => {
        if (live()) pendingReset = parseJson(e.data) ?? { reason: 'reset' };
      });
      es.addEventListener('session', (e) => {
        const info = parseJson(e.data);
        if (phase === 'announce') {
          if (!info?.session || !info.send) {
            fail('announce without a session');
            return;
          }
          phase = 'live';
          clearTimeout(timer);
          settled();
          this.#cancels.delete(cancel);
          if (gen !== this.#cycleGen) {
            es.close();
            resolve({ ok: false, reason: 'cancelled' });
            return;
          }
          const previous = this.#transport;
          this.#accepted('sse');
          conn = { kind: 'sse', es, reconnectTimer: null, stop: () => { clearTimeout(conn.reconnectTimer); es.close(); } };
          this.#conn = conn;
          let resumed = false;
          if (!this.#sess) {
            this.#newSession(info.session, info.send, info.last_seq, info.heartbeat_ms);
            this.#freshBackend('sse', null);
          } else if (pendingReset || info.session !== this.#sess.id) {
            this.#applyReset('sse', info.session, pendingReset?.reason);
          } else {
            resumed = true;
          }
          pendingReset = null;
          this.#sess.url = new URL(info.send, this.#httpUrl).href;
          this.#sess.holdMs = Number(info.heartbeat_ms) || this.#sess.holdMs;
          this.#sess.blocked = false;
          if (typeof info.protocol === 'string') this.#protocol = info.protocol;
          else if (!resumed) this.#protocol = '';
          this.#up('sse', resumed, previous);
          resolve({ ok: true });
          return;
        }
        if (!live() || !info?.session) return;
        clearTimeout(conn.reconnectTimer);
        conn.reconnectTimer = null;
        let resumed = true;
        if (pendingReset || info.session !== this.#sess?.id) {
          this.#applyReset('sse', info.session, pendingReset?.reason);
          pendingReset = null;
          resumed = false;
        }
        this.#sess.url = new URL(info.send, this.#httpUrl).href;
        this.#sess.blocked = false;
        this.#up('sse', resumed);
      });
      const onData = (binary, decode) => (e) => {
        if (!live()) return;
        let data;
        try {
          data = decode(e.data);
        } catch {
          return;
        }
        this.#sessionMessage(seqOf(e.lastEventId), data, binary);
      };
      es.addEventListener('message', onData(false, (d) => d));
      es.addEventListener('text-json', onData(false, (d) => String(JSON.parse(d))));
      es.addEventListener('binary', onData(true, (d) => fromBase64(d)));
      es.addEventListener('gap', (e) => {
        if (live()) this.#gap(parseJson(e.data));
      });
      es.addEventListener('close', (e) => {
        if (live()) this.#sessionClosed(conn, parseJson(e.data));
      });
    });
  }

  /** The SSE stream broke; EventSource reconnects by itself with Last-Event-ID, within bounds. */
  #sseInterrupted(conn) {
    const es = conn.es;
    if (es.readyState === 2) {
      this.#resumeByPoll(conn, 'the EventSource was refused on reconnect (HTTP error)');
      return;
    }
    if (this.#readyState === OPEN) {
      this.#readyState = CONNECTING;
      this.#emit(makeEvent('reconnecting', {
        reason: 'the event stream was interrupted; the browser reconnects with Last-Event-ID',
        attempt: 0, delay: 0,
      }));
    }
    if (conn.reconnectTimer === null) {
      const t = this.#opts.sseReconnectTimeout;
      conn.reconnectTimer = setTimeout(() => {
        if (this.#conn === conn) this.#resumeByPoll(conn, `the EventSource did not reconnect within ${t} ms`);
      }, t);
    }
  }

  /** Continues the SSE session by long-polling from the last delivered seq. */
  #resumeByPoll(conn, why) {
    conn.stop();
    this.#conn = null;
    if (!this.#order.includes('longpoll') || !this.#sess) {
      this.#lost(`sse: ${why}`, { fresh: !this.#sess });
      return;
    }
    if (this.#readyState === OPEN) {
      this.#readyState = CONNECTING;
      this.#emit(makeEvent('reconnecting', { reason: `sse: ${why}`, attempt: 0, delay: 0 }));
    }
    this.#setTransport('longpoll', `sse: ${why}; the session continues by long-polling`);
    this.#startPolling(true, 'sse');
  }

  // long-poll ------------------------------------------------------------------------------------

  async #tryLongPoll(gen) {
    if (this.#sess) {
      // Resume: polling the session with ack= attaches it; the first answer makes it OPEN.
      const previous = this.#transport;
      this.#accepted('longpoll');
      this.#startPolling(true, previous);
      return { ok: true };
    }
    let r;
    try {
      r = await this.#request('GET', this.#sessionBaseUrl({ transport: 'longpoll' }));
    } catch (err) {
      return { ok: false, reason: `open request failed (${err.name === 'AbortError' ? 'timeout' : err.message})` };
    }
    if (gen !== this.#cycleGen) return { ok: false, reason: 'cancelled' };
    const body = parseJson(r.text);
    if (r.status !== 200 || !body?.session) {
      const detail = body?.detail ? `: ${body.detail}` : '';
      return { ok: false, reason: `open answered ${r.status}${detail}`, fatal: r.status === 403 };
    }
    this.#accepted('longpoll');
    this.#newSession(body.session, body.poll || body.send, body.last_seq, body.hold_ms);
    this.#protocol = typeof body.protocol === 'string' ? body.protocol : '';
    this.#freshBackend('longpoll', null);
    this.#startPolling();
    this.#up('longpoll', false);
    return { ok: true };
  }

  /**
   * Polls the session; `resuming`: the first answer is a resume (when it is no reset) from the
   * `previous` transport.
   */
  #startPolling(resuming = false, previous = this.#transport) {
    const conn = { kind: 'longpoll', stopped: false, resuming, previous, stop: () => { conn.stopped = true; } };
    this.#conn = conn;
    this.#pollLoop(conn);
  }

  async #pollLoop(conn) {
    let failures = 0;
    const live = () => this.#conn === conn && !conn.stopped;
    while (live()) {
      // A probe up to WebSocket is running: a new poll would take the session back from it.
      if (this.#probe.running) {
        await this.#probeSettled();
        continue;
      }
      const sess = this.#sess;
      const url = withParam(sess.url, 'ack', sess.lastSeq);
      let r;
      try {
        r = await this.#request('GET', url, { timeout: sess.holdMs + this.#opts.pollTimeoutExtra });
      } catch (err) {
        r = { status: 0, text: '', error: err.name === 'AbortError' ? 'timeout' : err.message };
      }
      if (!live()) return;
      const body = r.status === 200 ? parseJson(r.text) : null;
      if (body && Array.isArray(body.messages)) {
        failures = 0;
        let resumed = true;
        if (body.reset?.session) {
          this.#applyReset('longpoll', body.reset.session, body.reset.reason);
          resumed = false;
        }
        this.#sess.blocked = false;
        if (conn.resuming) {
          conn.resuming = false;
          this.#up('longpoll', resumed, conn.previous);
        } else if (this.#readyState === CONNECTING) this.#up('longpoll', resumed);
        if (body.gap) this.#gap(body.gap);
        for (const m of body.messages) {
          if (!live()) return;
          if (typeof m.text === 'string') this.#sessionMessage(Number(m.seq), m.text, false);
          else if (typeof m.binary === 'string') this.#sessionMessage(Number(m.seq), fromBase64(m.binary), true);
        }
        if (body.close && live()) {
          this.#sessionClosed(conn, body.close);
          return;
        }
        if (this.#queue.length) this.#pump();
        continue;
      }
      const err = parseJson(r.text);
      if (r.status === 403 || (r.status === 400 && err?.error === 'transport_disabled')) {
        conn.stop();
        this.#conn = null;
        if (r.status === 403) this.#fail(`poll answered 403: ${err?.detail ?? ''}`, 1008);
        else this.#lost(`long-polling is disabled on this route: ${err?.detail ?? ''}`, { fresh: true });
        return;
      }
      failures++;
      if (this.#readyState === OPEN) {
        this.#readyState = CONNECTING;
        this.#emit(makeEvent('reconnecting', {
          reason: `poll failed (${r.error ?? r.status})`, attempt: failures, delay: 0,
        }));
      }
      if (failures > 1 && this.#opts.maxAttempts !== Infinity && failures > this.#opts.maxAttempts * this.#order.length) {
        conn.stop();
        this.#conn = null;
        this.#fail(`polling failed ${failures} times`, 1006);
        return;
      }
      await this.#sleep(this.#retryDelay(r, failures));
    }
  }

  #retryDelay(r, failures) {
    const after = Number(r.headers?.get?.('Retry-After'));
    if (Number.isFinite(after) && after > 0) return Math.min(after * 1000, this.#opts.maxDelay);
    return this.#backoff(failures);
  }

  // ---- sending ---------------------------------------------------------------------------------

  #dequeue(n) {
    for (const m of this.#queue.splice(0, n)) this.#queuedBytes -= m.bytes;
  }

  async #pump() {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        await this.#pumpLoop();
      } while (this.#pumpAgain && this.#readyState !== CLOSED);
    } finally {
      this.#pumping = false;
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
    if (this.#readyState === CLOSING && this.#queue.length === 0) this.#closeNow();
  }

  /** Resolves once no send (POST) is in flight. */
  #pumpIdle() {
    if (!this.#pumping) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async #pumpLoop() {
    let failures = 0;
    while (this.#queue.length > 0 && this.#readyState !== CLOSED) {
      if (this.#conn?.kind === 'websocket' && this.#conn.session) {
        await this.#writeWsSession(this.#conn);
        return;
      }
      const head = this.#queue[0];
      if (head.pending) {
        await head.pending;
        continue;
      }
      if (head.data === null) {
        this.#dequeue(1);
        this.#emit(makeEvent('error', { message: `a Blob could not be read (${head.failed}); it was not sent` }));
        continue;
      }
      const conn = this.#conn;
      if (conn?.kind === 'websocket') {
        if (conn.ws.readyState !== 1) return;
        conn.ws.send(head.data);
        this.#dequeue(1);
        continue;
      }
      const sess = this.#sess;
      if (!sess || sess.blocked || !conn || this.#sendHold) return;
      // Take a run of ready messages: one alone, or a batch when several are queued.
      let n = 1;
      let bytes = head.bytes;
      if (this.#queue.length >= this.#opts.batchThreshold) {
        while (n < this.#queue.length && n < sess.maxBatch) {
          const m = this.#queue[n];
          const cost = m.binary ? Math.ceil(m.bytes / 3) * 4 : m.bytes;
          if (m.pending || m.data === null || bytes + cost > this.#opts.maxBatchBytes) break;
          bytes += cost;
          n++;
        }
      }
      const batch = this.#queue.slice(0, n);
      const seq = sess.sendSeq;
      let url = withParam(sess.url, 'seq', seq);
      let body;
      let contentType;
      if (n > 1) {
        url = withParam(url, 'batch', 1);
        body = JSON.stringify(batch.map((m) => (m.binary ? { binary: toBase64(m.data) } : { text: m.data })));
        contentType = 'text/plain;charset=UTF-8'; // a CORS-simple type: no preflight
      } else {
        body = head.data;
        contentType = head.binary ? 'application/octet-stream' : 'text/plain;charset=UTF-8';
      }
      let r;
      try {
        r = await this.#request('POST', url, { body, contentType });
      } catch (err) {
        r = { status: 0, text: '', error: err.name === 'AbortError' ? 'timeout' : err.message };
      }
      if (this.#readyState === CLOSED) return;
      if (this.#sess !== sess) {
        // A reset happened meanwhile: the next round numbers from the fresh session.
        if (r.status === 0) for (const m of batch) m.ambiguous = true;
        continue;
      }
      const answer = parseJson(r.text);
      if (r.status === 200 || r.status === 204) {
        failures = 0;
        const next = Number(answer?.next_seq);
        const confirmed = Number.isFinite(next) ? Math.max(0, Math.min(n, next - seq)) : n;
        sess.sendSeq = seq + confirmed;
        if (this.#queue[0] === head) this.#dequeue(confirmed);
        continue;
      }
      if (r.status === 409) {
        // The proxy expects an earlier seq: messages we believed confirmed were not forwarded.
        const expected = Number(r.headers.get('X-Expected-Seq')) ||
          Number(/expected seq (\d+)/.exec(answer?.detail ?? '')?.[1]);
        if (Number.isFinite(expected) && expected > 0 && expected < seq) {
          this.#emit(makeEvent('error', {
            message: `the proxy expected seq ${expected}, not ${seq}: ${seq - expected} message(s) were lost`,
          }));
          sess.sendSeq = expected;
          continue;
        }
      }
      if (r.status === 413 || (r.status === 400 && answer?.error !== 'transport_disabled')) {
        if (n > 1 && r.status === 413) {
          sess.maxBatch = Math.max(1, Math.floor(n / 2));
          continue;
        }
        this.#dequeue(1);
        this.#emit(makeEvent('error', {
          message: `the proxy refused a message (${r.status} ${answer?.error ?? ''}: ${answer?.detail ?? ''}); it was dropped`,
        }));
        continue;
      }
      if (r.status === 403) {
        this.#fail(`send answered 403: ${answer?.detail ?? ''}`, 1008);
        return;
      }
      if (r.status === 404) {
        // Unknown or closed session: the receiving side (stream or poll) reports the reset or
        // the close; sending resumes on the fresh session.
        sess.blocked = true;
        return;
      }
      // Network error, timeout, 429, 5xx: retry the same seq later (safe: forwarded once).
      if (r.status === 0) for (const m of batch) m.ambiguous = true;
      failures++;
      await this.#pumpSleep(this.#retryDelay(r, failures));
    }
  }

  /**
   * Writes the queued messages not yet written on this session WebSocket, in seq order; they
   * stay queued until the proxy's `ack` control confirms them. The connection numbers them by
   * position from its first seq, so nothing before them may leave the queue meanwhile (one
   * sender at a time, see #probeUp).
   */
  async #writeWsSession(conn) {
    for (;;) {
      if (this.#conn !== conn || !conn.ready || conn.closing || conn.ws.readyState !== 1) return;
      const sess = this.#sess;
      const i = conn.writeSeq - sess.sendSeq;
      if (i < 0) {
        // Cannot happen with one sender; were it to, resume with a correct seq=.
        this.#debug('write position behind the confirmed seq; reconnecting');
        conn.stop();
        this.#wsSessionLost(conn, 'write position lost');
        return;
      }
      if (i >= this.#queue.length) return;
      const m = this.#queue[i];
      if (m.pending) {
        await m.pending;
        continue;
      }
      if (m.data === null) {
        // Never written anywhere, so it has no seq yet: the ones after it move up.
        this.#queue.splice(i, 1);
        this.#queuedBytes -= m.bytes;
        this.#emit(makeEvent('error', { message: `a Blob could not be read (${m.failed}); it was not sent` }));
        continue;
      }
      conn.ws.send(m.binary ? sessionFrame(KIND_BINARY, m.data) : m.data);
      conn.writeSeq++;
    }
  }

  /** A retry wait of the sender; cut short when the connection is (re)established. */
  #pumpSleep(ms) {
    return new Promise((resolve) => {
      const entry = { resolve, timer: null };
      const wake = () => {
        clearTimeout(entry.timer);
        this.#sleeps.delete(entry);
        if (this.#pumpWaker === wake) this.#pumpWaker = null;
        resolve();
      };
      entry.timer = setTimeout(wake, ms);
      this.#sleeps.add(entry);
      this.#pumpWaker = wake;
    });
  }

  // ---- receiving -------------------------------------------------------------------------------

  #deliver(data, binary, seq) {
    if (binary) {
      let ab;
      if (data instanceof ArrayBuffer) ab = data;
      else if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) ab = data.buffer;
      else ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      data = this.#binaryType === 'arraybuffer' ? ab : new Blob([ab]);
    }
    this.#emit(new MessageEvent('message', {
      data, origin: this.#origin, lastEventId: seq === null || !Number.isFinite(seq) ? '' : String(seq),
    }));
  }
}

// on<type> properties with the DOM's semantics: one handler per type, kept at the position of
// its first assignment among the listeners.
for (const type of EVENT_TYPES) {
  Object.defineProperty(BridgeSocket.prototype, `on${type}`, {
    configurable: true,
    enumerable: true,
    get() {
      return handlerMaps.get(this)?.[type]?.fn ?? null;
    },
    set(fn) {
      let map = handlerMaps.get(this);
      if (!map) handlerMaps.set(this, (map = {}));
      if (!map[type]) {
        const slot = { fn: null };
        slot.listener = (ev) => {
          if (typeof slot.fn === 'function') return slot.fn.call(this, ev);
          return undefined;
        };
        map[type] = slot;
        this.addEventListener(type, slot.listener);
      }
      map[type].fn = typeof fn === 'function' ? fn : null;
    },
  });
}

export default BridgeSocket;
