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
// * Resume without loss or duplicate (SSE and long-poll sessions). Every backend message has a
//   sequence number; the client keeps the last one it delivered and drops anything at or below
//   it. Long-poll polls carry `ack=<last seq>`. An SSE stream is resumed by the browser's own
//   EventSource reconnect, which sends Last-Event-ID (timing: the proxy's `retry:`, 1 s). An
//   EventSource that gives up (an HTTP error on reconnect) or has not come back within
//   `sseReconnectTimeout` says that SSE itself is failing on this path (wsbridge would also let
//   a new EventSource resume by URL, `?session=S&ack=N`), so the client continues THE SAME session by
//   long-polling from its last position (explicit ack) with backoff; `transport` becomes
//   'longpoll' and `fallbackReason` says why. Lost ranges arrive as 'gap' events; a session the
//   proxy no longer knows (restart, expiry) arrives as a 'reset' event before any message of the
//   fresh session.
//
// * WebSocket has no sequence numbers. A WebSocket that drops is reconnected (a new backend
//   connection); the client then fires 'reset' (reason: why the old one ended), because messages
//   the backend sent in between are gone. That is the explicit signal instead of a silent loss.
//
// * Sending. send() never throws while CONNECTING: messages are queued and delivered in order.
//   Over sessions each POST carries the seq of its first message; a retry of the same seq is
//   safe (wsbridge forwards each seq once), 409 tells the expected seq, and when two or more are
//   queued they go as one `&batch=1` POST. After a 'reset' the queued messages are sent to the
//   fresh session; `event.unconfirmed` counts those whose earlier POST had no answer (they may
//   have reached the old backend connection: at-least-once across a reset, and you are told).
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
// Each is also available as an on<type> property.

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const KNOWN_TRANSPORTS = ['websocket', 'sse', 'longpoll'];

export const DEFAULT_OPTIONS = Object.freeze({
  transports: ['websocket', 'sse', 'longpoll'],
  protocols: [],                 // WebSocket subprotocols (sent as ?protocol= on SSE/long-poll)
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
  debug: false,
  WebSocket: undefined,          // implementations (default: the global ones)
  EventSource: undefined,
  fetch: undefined,
});

const handlerMaps = new WeakMap();
const EVENT_TYPES = ['open', 'message', 'close', 'error', 'transport', 'reconnecting', 'reconnect', 'gap', 'reset'];

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
  #sess = null;          // SSE/long-poll session: {id, url, lastSeq, sendSeq, holdMs, blocked, maxBatch}
  #queue = [];           // unconfirmed outgoing messages, in order
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
  /** The current session id (SSE/long-poll), else null. */
  get session() { return this.#sess?.id ?? null; }
  get bufferedAmount() {
    const ws = this.#conn?.kind === 'websocket' ? this.#conn.ws.bufferedAmount : 0;
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
      const r = name === 'websocket' ? await this.#tryWebSocket(gen)
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
        unconfirmed: kind === 'websocket' ? null : unconfirmed,
      }));
    }
    this.#hadBackend = true;
    this.#lostReason = null;
  }

  /** The transport carries traffic: OPEN, with open (first time) or reconnect. */
  #up(kind, resumed) {
    const was = this.#readyState;
    if (was === CONNECTING) this.#readyState = OPEN;
    if (!this.#everOpen) {
      this.#everOpen = true;
      this.#emit(makeEvent('open', { transport: kind }));
    } else if (was === CONNECTING) {
      this.#emit(makeEvent('reconnect', { transport: kind, resumed }));
    }
    this.#pumpWaker?.();
    this.#pump();
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
    const cancel = () => ctrl.abort();
    if (cancellable) this.#cancels.add(cancel);
    try {
      const headers = {};
      if (contentType) headers['Content-Type'] = contentType;
      const res = await this.#fetch(url, {
        method, body, headers, signal: ctrl.signal, cache: 'no-store', keepalive,
        credentials: this.#credentials(),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, text };
    } finally {
      clearTimeout(timer);
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

  #tryWebSocket(gen) {
    return new Promise((resolve) => {
      const { wsOpenTimeout, wsProbe, probeTimeout } = this.#opts;
      const t0 = Date.now();
      const ms = () => Date.now() - t0;
      let ws;
      try {
        ws = new this.#WS(this.#wsUrl, this.#opts.protocols);
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
      const confirm = () => {
        if (phase === 'done') return;
        phase = 'done';
        done();
        if (gen !== this.#cycleGen) {
          ws.close();
          resolve({ ok: false, reason: 'cancelled' });
          return;
        }
        this.#accepted('websocket');
        const conn = { kind: 'websocket', ws, stop: () => { ws.onmessage = ws.onclose = null; ws.close(); } };
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
      openTimer = setTimeout(() => fail(`did not open within ${wsOpenTimeout} ms`), wsOpenTimeout);
      ws.onopen = () => {
        phase = 'probing';
        clearTimeout(openTimer);
        if (wsProbe !== 'message' && probeTimeout <= 0) {
          confirm();
          return;
        }
        probeTimer = setTimeout(() => {
          if (wsProbe === 'message') fail(`opened but carried no message within ${probeTimeout} ms`);
          else confirm();
        }, probeTimeout);
      };
      ws.onmessage = (e) => {
        early.push(e.data);
        if (phase === 'probing') confirm();
      };
      ws.onerror = () => {};
      ws.onclose = (e) => {
        if (phase === 'probing' && e.wasClean && e.code !== 1006) {
          // The backend itself closed cleanly: that is its answer, not a broken transport.
          earlyClose = e;
          confirm();
        } else if (phase === 'probing') {
          fail(`opened, then closed (${e.code}) after ${ms()} ms`);
        } else {
          fail(`failed to open (close ${e.code} after ${ms()} ms)`);
        }
      };
    });
  }

  #onWsClose(conn, e) {
    if (this.#conn !== conn) return;
    this.#conn = null;
    if (this.#readyState === CLOSING) {
      this.#finish(e.code, e.reason, e.wasClean);
    } else if (this.#shouldReconnect(e.code) || !e.wasClean) {
      this.#lost(`websocket closed (${e.code}${e.reason ? ` ${e.reason}` : ''})`, { fresh: true });
    } else {
      this.#finish(e.code, e.reason, e.wasClean);
    }
  }

  // ---- sessions (SSE and long-poll) ------------------------------------------------------------

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

  // SSE ------------------------------------------------------------------------------------------

  #trySse(gen) {
    return new Promise((resolve) => {
      const { sseAnnounceTimeout } = this.#opts;
      const t0 = Date.now();
      let es;
      try {
        es = new this.#ES(this.#sessionBaseUrl({}), { withCredentials: this.#opts.withCredentials });
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
        this.#cancels.delete(cancel);
        es.close();
        resolve({ ok: false, reason });
      };
      const cancel = () => fail('cancelled');
      this.#cancels.add(cancel);
      const timer = setTimeout(() => fail(`no session announce within ${sseAnnounceTimeout} ms ` +
        '(an intermediary is buffering the event stream)'), sseAnnounceTimeout);
      const live = () => conn !== null && this.#conn === conn;

      es.onerror = () => {
        if (phase === 'announce') {
          fail(es.readyState === 2 ? `refused after ${Date.now() - t0} ms (an HTTP error or not an event stream)`
            : `connection failed after ${Date.now() - t0} ms`);
        } else if (live()) {
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
          this.#cancels.delete(cancel);
          if (gen !== this.#cycleGen) {
            es.close();
            resolve({ ok: false, reason: 'cancelled' });
            return;
          }
          this.#accepted('sse');
          conn = { kind: 'sse', es, reconnectTimer: null, stop: () => { clearTimeout(conn.reconnectTimer); es.close(); } };
          this.#conn = conn;
          this.#newSession(info.session, info.send, info.last_seq, info.heartbeat_ms);
          this.#protocol = typeof info.protocol === 'string' ? info.protocol : '';
          this.#freshBackend('sse', null);
          this.#up('sse', false);
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
      this.#lost(`sse: ${why}`, { fresh: true });
      return;
    }
    if (this.#readyState === OPEN) {
      this.#readyState = CONNECTING;
      this.#emit(makeEvent('reconnecting', { reason: `sse: ${why}`, attempt: 0, delay: 0 }));
    }
    this.#setTransport('longpoll', `sse: ${why}; the session continues by long-polling`);
    this.#startPolling();
  }

  // long-poll ------------------------------------------------------------------------------------

  async #tryLongPoll(gen) {
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

  #startPolling() {
    const conn = { kind: 'longpoll', stopped: false, stop: () => { conn.stopped = true; } };
    this.#conn = conn;
    this.#pollLoop(conn);
  }

  async #pollLoop(conn) {
    let failures = 0;
    const live = () => this.#conn === conn && !conn.stopped;
    while (live()) {
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
        if (this.#readyState === CONNECTING) this.#up('longpoll', resumed);
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
    }
    if (this.#readyState === CLOSING && this.#queue.length === 0) this.#closeNow();
  }

  async #pumpLoop() {
    let failures = 0;
    while (this.#queue.length > 0 && this.#readyState !== CLOSED) {
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
      if (!sess || sess.blocked || !conn) return;
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
