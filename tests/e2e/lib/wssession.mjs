// A raw client of the WebSocket session transport (subprotocol `wsbridge.session.v1`, see
// docs/protocol.md "WebSocket sessions"), written from the document alone for the e2e tests.
//
//  - encodeText / encodeBinary / encodeControl: one client message as a masked WebSocket frame
//    (text unchanged; binary = kind byte 0x00 + payload; control = kind byte 0x01 + JSON).
//  - decodeMessage: one server WebSocket message -> {kind: 'text'|'binary', data} or
//    {kind: 'control', control}; anything else is reported as a protocol error.
//  - SessionWs: one connection. It parses every frame by hand (so a test can cut the TCP
//    connection after exactly N received bytes and never see a byte after the cut), numbers the
//    session messages as the document says (from the `session` control's last_seq, moved by
//    `gap`, restarted by `reset`), answers pings and the server's Close, and records everything
//    in arrival order in `items`. It never sends anything on its own beyond pong and the Close
//    echo: acks, resends and the like are the caller's.
//
// Every wait is bounded in time.

import net from 'node:net';
import crypto from 'node:crypto';

import { OP, frame, upgradeRequest, acceptFor, closePayload } from './rawws.mjs';

export const SUBPROTOCOL = 'wsbridge.session.v1';
export const KIND_BINARY = 0x00;
export const KIND_CONTROL = 0x01;

/** A text session message: a masked text frame (unchanged UTF-8). */
export function encodeText(text, extra = {}) {
  return frame({ opcode: OP.TEXT, payload: Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'), ...extra });
}

/** A binary session message: a masked binary frame, kind byte 0x00 then the payload. */
export function encodeBinary(payload, extra = {}) {
  return frame({ opcode: OP.BINARY, payload: Buffer.concat([Buffer.from([KIND_BINARY]), Buffer.from(payload)]), ...extra });
}

/** A control message: a masked binary frame, kind byte 0x01 then the JSON object. */
export function encodeControl(obj, extra = {}) {
  const json = typeof obj === 'string' ? obj : JSON.stringify(obj);
  return frame({ opcode: OP.BINARY, payload: Buffer.concat([Buffer.from([KIND_CONTROL]), Buffer.from(json, 'utf8')]), ...extra });
}

/** A session message ({binary, data}) as its frame. */
export function encodeMessage(m) {
  return m.binary ? encodeBinary(m.data) : encodeText(m.data);
}

/**
 * Decodes one complete server WebSocket message. Returns {kind:'text', data: Buffer},
 * {kind:'binary', data: Buffer}, {kind:'control', control: object} or {kind:'error', error}.
 */
export function decodeMessage(opcode, payload) {
  if (opcode === OP.TEXT) return { kind: 'text', data: payload };
  if (payload.length === 0) return { kind: 'error', error: 'empty binary message' };
  if (payload[0] === KIND_BINARY) return { kind: 'binary', data: payload.subarray(1) };
  if (payload[0] === KIND_CONTROL) {
    let control;
    try {
      control = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(1)));
    } catch (e) {
      return { kind: 'error', error: `control message is not JSON: ${e.message}` };
    }
    if (!control || typeof control !== 'object' || Array.isArray(control) || typeof control.type !== 'string') {
      return { kind: 'error', error: `control message without a type: ${payload.subarray(1).toString()}` };
    }
    return { kind: 'control', control };
  }
  return { kind: 'error', error: `bad kind byte 0x${payload[0].toString(16)}` };
}

/** Builds the request target for a session WebSocket. */
export function sessionPath(route, { session, ack, seq, extra = '' } = {}) {
  const params = [];
  if (session !== undefined) params.push(`session=${encodeURIComponent(session)}`);
  if (ack !== undefined) params.push(`ack=${ack}`);
  if (seq !== undefined) params.push(`seq=${seq}`);
  if (extra) params.push(extra);
  if (params.length === 0) return route;
  return `${route}${route.includes('?') ? '&' : '?'}${params.join('&')}`;
}

/**
 * One WebSocket connection that speaks (or, with `offer` set to something else, does not speak)
 * the session subprotocol. State the tests read:
 *   status, headers            HTTP response head (lower-case header names)
 *   items     every event in arrival order: {t:'message', seq, binary, data} |
 *             {t:'control', control} | {t:'raw', opcode, payload} (non-session connection) |
 *             {t:'error', error} (a message the session framing forbids)
 *   messages  the session messages ({seq, binary, data}); controls  the control objects
 *   close     null | {code, reason} (the server's Close frame)
 *   ended     TCP closed (by either side or by a cut)     cut  we destroyed it
 *   rxBytes   bytes received after the response head (the ones parsed)
 *   nextSeq   seq the next session message will get (null before `session`)
 */
export class SessionWs {
  constructor(socket, { session = true, cutAfterBytes = Infinity, onItem = null, onWake = null } = {}) {
    this.socket = socket;
    this.onWake = onWake;
    this.sessionMode = session;
    this.cutAfterBytes = cutAfterBytes;
    this.onItem = onItem;
    this.buf = Buffer.alloc(0);
    this.phase = 'http';
    this.status = null;
    this.statusLine = null;
    this.headers = {};
    this.items = [];
    this.messages = [];
    this.controls = [];
    this.close = null;
    this.closeSent = false;
    this.ended = false;
    this.cut = false;
    this.rxBytes = 0;
    this.nextSeq = null;
    this.sessionId = null;
    this.violations = [];
    this._frag = null;
    this._waiters = new Set();
    socket.setNoDelay(true);
    socket.on('data', (d) => this._onData(d));
    socket.on('close', () => {
      this.ended = true;
      this._wake();
    });
    socket.on('error', () => {});
  }

  _wake() {
    for (const w of [...this._waiters]) w();
    if (this.onWake) this.onWake(this);
  }

  _onData(d) {
    if (this.cut) return;
    if (this.phase !== 'http') {
      const room = this.cutAfterBytes - this.rxBytes;
      if (d.length >= room) {
        this._feed(d.subarray(0, room));
        this.destroy();
        return;
      }
      this.rxBytes += d.length;
    }
    this._feed(d);
  }

  _feed(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.phase === 'http') {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const rest = this.buf.subarray(end + 4);
      this.buf = Buffer.alloc(0);
      this.statusLine = lines[0];
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(lines[0]);
      this.status = m ? Number(m[1]) : -1;
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) this.headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      this.phase = this.status === 101 ? 'ws' : 'body';
      this._wake();
      if (rest.length) this._onData(rest);
      return;
    }
    if (this.phase === 'ws') this._frames();
    this._wake();
  }

  _frames() {
    for (;;) {
      if (this.close) {
        this.buf = Buffer.alloc(0);
        return;
      }
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      if (b[1] & 0x80) this.violations.push('masked frame from the proxy');
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      this.buf = b.subarray(off + len);
      this._frame(fin, opcode, payload);
    }
  }

  _frame(fin, opcode, payload) {
    if (opcode === OP.PING) {
      if (!this.closeSent) this.write(frame({ opcode: OP.PONG, payload }));
      return;
    }
    if (opcode === OP.PONG) return;
    if (opcode === OP.CLOSE) {
      this.close = {
        code: payload.length >= 2 ? payload.readUInt16BE(0) : null,
        reason: payload.length > 2 ? payload.subarray(2).toString('utf8') : '',
      };
      if (!this.closeSent) {
        this.closeSent = true;
        this.write(frame({ opcode: OP.CLOSE, payload: closePayload(this.close.code ?? 1000) }));
      }
      return;
    }
    if (opcode === OP.CONT) {
      if (!this._frag) {
        this.violations.push('continuation without a message');
        return;
      }
      this._frag.parts.push(payload);
      if (fin) {
        const { op, parts } = this._frag;
        this._frag = null;
        this._message(op, Buffer.concat(parts));
      }
      return;
    }
    if (fin) this._message(opcode, payload);
    else this._frag = { op: opcode, parts: [payload] };
  }

  _push(item) {
    this.items.push(item);
    if (this.onItem) this.onItem(item, this);
  }

  _message(opcode, payload) {
    if (!this.sessionMode) {
      this._push({ t: 'raw', opcode, payload });
      return;
    }
    const d = decodeMessage(opcode, payload);
    if (d.kind === 'error') {
      this.violations.push(d.error);
      this._push({ t: 'error', error: d.error });
      return;
    }
    if (d.kind === 'control') {
      const c = d.control;
      if (c.type === 'reset') {
        this.sessionId = c.session;
        this.nextSeq = null;
      } else if (c.type === 'session') {
        this.sessionId = c.session;
        this.nextSeq = c.last_seq + 1;
      } else if (c.type === 'gap') {
        this.nextSeq = c.to + 1;
      }
      this.controls.push(c);
      this._push({ t: 'control', control: c });
      return;
    }
    if (this.nextSeq === null) this.violations.push('a session message before the session control');
    const m = { seq: this.nextSeq, binary: d.kind === 'binary', data: d.data };
    if (this.nextSeq !== null) this.nextSeq++;
    this.messages.push(m);
    this._push({ t: 'message', ...m });
  }

  write(buf, cb) {
    if (this.socket.destroyed || this.cut || this.sealed) return false;
    this.socket.write(buf, cb);
    return true;
  }

  /**
   * Writes `buf` (typically a part of a frame) as the last bytes of this connection: nothing
   * is written after it (no ack, pong or Close could complete the torn frame), then the
   * connection is cut `afterMs` after the kernel took the bytes.
   */
  async writeLastThenCut(buf, afterMs = 2) {
    const flushed = this.writeFlushed(buf);
    this.sealed = true;
    await flushed;
    await new Promise((resolve) => setTimeout(resolve, afterMs));
    this.destroy();
  }

  sendText(text) {
    return this.write(encodeText(text));
  }

  sendBinary(payload) {
    return this.write(encodeBinary(payload));
  }

  sendControl(obj) {
    return this.write(encodeControl(obj));
  }

  /** Sends our Close frame (a detach, not a session close). */
  sendClose(code = 1000, reason = '') {
    this.closeSent = true;
    return this.write(frame({ opcode: OP.CLOSE, payload: closePayload(code, reason) }));
  }

  /** Writes `buf` and resolves once the kernel took it (so a following cut comes after it). */
  writeFlushed(buf) {
    return new Promise((resolve) => {
      if (!this.write(buf, () => resolve(true))) resolve(false);
    });
  }

  /** Destroys the TCP connection now (a cut); nothing received later is parsed. */
  destroy() {
    if (this.cut) return;
    this.cut = true;
    this.socket.destroy();
    this.ended = true;
    this._wake();
  }

  /** Resolves true once pred(this) holds, false after ms. Never rejects. */
  waitFor(pred, ms = 5000) {
    if (pred(this)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (pred(this)) {
          clearTimeout(timer);
          this._waiters.delete(check);
          resolve(true);
        }
      };
      const timer = setTimeout(() => {
        this._waiters.delete(check);
        resolve(pred(this));
      }, ms);
      this._waiters.add(check);
    });
  }

  /** Waits for the first control of `type`; resolves it, or null after ms (or at the end). */
  async waitControl(type, ms = 5000) {
    const find = () => this.controls.find((c) => c.type === type);
    await this.waitFor((c) => find() || c.ended || c.close, ms);
    return find() ?? null;
  }

  /** Waits for the server's Close frame and the end of TCP; resolves this.close (or null). */
  async waitEnd(ms = 5000) {
    await this.waitFor((c) => c.ended, ms);
    return this.close;
  }
}

/**
 * Opens a WebSocket to 127.0.0.1:port `path`. `offer`: the Sec-WebSocket-Protocol header value
 * (default the session subprotocol; null: none, and the connection is parsed as a plain relay).
 * Resolves the SessionWs once the response head arrived (status -1 if none within ms); it
 * checks nothing, so a test can assert the status itself (see expectSessionWs).
 */
export async function connectWs(port, path, { offer = SUBPROTOCOL, headers = {}, cutAfterBytes, onItem, onWake, ms = 5000 } = {}) {
  const hdrs = { ...headers };
  if (offer !== null) hdrs['Sec-WebSocket-Protocol'] = offer;
  const { request, key } = upgradeRequest({ path, host: `127.0.0.1:${port}`, headers: hdrs });
  const socket = net.connect({ port, host: '127.0.0.1' });
  const sessionMode = offer !== null && offer.split(',').map((s) => s.trim()).includes(SUBPROTOCOL);
  const conn = new SessionWs(socket, { session: sessionMode, cutAfterBytes, onItem, onWake });
  conn.key = key;
  socket.write(request);
  await conn.waitFor((c) => c.status !== null || c.ended, ms);
  if (conn.status === null) conn.status = -1;
  conn.acceptOk = conn.headers['sec-websocket-accept'] === acceptFor(key);
  return conn;
}

/** Opens a session WebSocket and requires 101 with the session subprotocol selected. */
export async function expectSessionWs(port, path, opts = {}) {
  const conn = await connectWs(port, path, opts);
  if (conn.status !== 101 || !conn.acceptOk || conn.headers['sec-websocket-protocol'] !== SUBPROTOCOL) {
    conn.destroy();
    throw new Error(`${path}: expected 101 with Sec-WebSocket-Protocol ${SUBPROTOCOL}, got ` +
      `${conn.statusLine ?? 'no response'} (protocol ${conn.headers['sec-websocket-protocol']})`);
  }
  return conn;
}

/** A deterministic PRNG (mulberry32) so a failing run can be repeated with its seed. */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** integer in [lo, hi] */
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    bytes: (n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}

/** A random seed (or E2E_SEED), printed by the caller so a failure can be replayed. */
export function seed() {
  return process.env.E2E_SEED ? Number(process.env.E2E_SEED) : crypto.randomInt(2 ** 31);
}
