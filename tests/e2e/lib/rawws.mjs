// Raw RFC 6455 client for the conformance suite: hand-built frames on a net.Socket, so a test
// can send anything (bad masks, reserved bits, odd lengths, chopped writes) and observe exactly
// what the peer answers: the HTTP status line, every frame, the close code, and who closed TCP.
//
// Nothing here hides protocol behaviour: pings the peer sends on its own (heartbeats) are
// answered, and a close frame from the peer is answered with a close frame (echoing its code),
// as RFC 6455 §5.5.1 requires of a client; everything else is the test's to send.

import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';

export const OP = Object.freeze({
  CONT: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
});

export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

export function randomKey() {
  return crypto.randomBytes(16).toString('base64');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function toBuffer(payload) {
  if (payload === undefined || payload === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (Array.isArray(payload)) return Buffer.from(payload);
  return Buffer.from(payload);
}

/**
 * Builds one frame.
 *  fin       FIN bit (default true)
 *  rsv       RSV bits as a 3-bit number: 4 = RSV1, 2 = RSV2, 1 = RSV3 (default 0)
 *  opcode    0..15
 *  payload   Buffer | string (UTF-8) | byte array
 *  mask      true (random key, default), false (unmasked) or a 4-byte Buffer key
 *  lenBytes  force the length encoding: 0 (7-bit), 2 (16-bit) or 8 (64-bit); default minimal
 *  length    declared payload length (number or BigInt) written instead of payload.length;
 *            the payload bytes are still appended as given
 */
export function frame({
  fin = true,
  rsv = 0,
  opcode,
  payload,
  mask = true,
  lenBytes,
  length,
} = {}) {
  const data = toBuffer(payload);
  const declared = BigInt(length ?? data.length);
  let enc = lenBytes;
  if (enc === undefined) enc = declared < 126n ? 0 : declared < 65536n ? 2 : 8;
  const head = [((fin ? 1 : 0) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
  const maskBit = mask ? 0x80 : 0;
  let ext;
  if (enc === 0) {
    head.push(maskBit | Number(declared));
    ext = Buffer.alloc(0);
  } else if (enc === 2) {
    head.push(maskBit | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(declared));
  } else {
    head.push(maskBit | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(declared);
  }
  let key = Buffer.alloc(0);
  let body = data;
  if (mask) {
    key = Buffer.isBuffer(mask) ? mask : crypto.randomBytes(4);
    body = Buffer.allocUnsafe(data.length);
    for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  }
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

/** Close frame payload: 2-byte code (omitted when code is null) + reason (string or Buffer). */
export function closePayload(code, reason = '') {
  if (code === null || code === undefined) return Buffer.alloc(0);
  const c = Buffer.alloc(2);
  c.writeUInt16BE(code);
  return Buffer.concat([c, toBuffer(reason)]);
}

export const text = (payload, extra = {}) => frame({ opcode: OP.TEXT, payload, ...extra });
export const binary = (payload, extra = {}) => frame({ opcode: OP.BINARY, payload, ...extra });
export const ping = (payload, extra = {}) => frame({ opcode: OP.PING, payload, ...extra });
export const pong = (payload, extra = {}) => frame({ opcode: OP.PONG, payload, ...extra });
export const cont = (payload, extra = {}) => frame({ opcode: OP.CONT, payload, ...extra });
export const close = (code, reason, extra = {}) =>
  frame({ opcode: OP.CLOSE, payload: closePayload(code, reason), ...extra });

/** Splits a buffer into pieces of at most `size` bytes. */
export function chop(buf, size) {
  const out = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  if (buf.length === 0) out.push(buf);
  return out;
}

/** A WebSocket upgrade request. `headers` entries override the defaults; null removes one. */
export function upgradeRequest({
  path = '/echo',
  host = '127.0.0.1',
  method = 'GET',
  httpVersion = '1.1',
  key = randomKey(),
  headers = {},
} = {}) {
  const base = {
    Host: host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
  };
  const merged = { ...base };
  for (const [name, value] of Object.entries(headers)) {
    for (const k of Object.keys(merged)) if (k.toLowerCase() === name.toLowerCase()) delete merged[k];
    if (value !== null && value !== undefined) merged[name] = value;
  }
  let req = `${method} ${path} HTTP/${httpVersion}\r\n`;
  for (const [name, value] of Object.entries(merged)) req += `${name}: ${value}\r\n`;
  const keyName = Object.keys(merged).find((k) => k.toLowerCase() === 'sec-websocket-key');
  return { request: req + '\r\n', key: keyName ? merged[keyName] : null };
}

/**
 * One raw connection. State the tests read:
 *   status, statusLine, headers (lower-case names), body   the HTTP response
 *   messages   [{opcode, payload}] complete data messages (fragments assembled)
 *   frames     every data frame as {fin, opcode, length} (the peer's framing, informational)
 *   pongs      [payload]            pings      [payload] (peer-initiated, answered)
 *   close      null | {code, reason, raw}   code is null for an empty close payload
 *   violations [string]  frames a strict client must reject (masked, RSV, bad opcode, …)
 *   ended      peer sent FIN      closed     socket fully closed
 *   peerClosedFirst  the peer's FIN arrived before we ended our side
 */
export class RawConn {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.phase = 'http';
    this.status = null;
    this.statusLine = null;
    this.headers = {};
    this.rawHeaders = [];
    this.body = Buffer.alloc(0);
    this.messages = [];
    this.frames = [];
    this.pongs = [];
    this.pings = [];
    this.close = null;
    this.closeSent = false;
    this.violations = [];
    this.ended = false;
    this.closed = false;
    this.weEnded = false;
    this.peerClosedFirst = false;
    this.errors = [];
    this.autoPong = true;
    this.autoCloseReply = true;
    this._frag = null;
    this._waiters = new Set();
    this._closeTimer = null;

    socket.setNoDelay(true);
    socket.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this._parse();
      this._wake();
    });
    socket.on('end', () => {
      this.ended = true;
      if (!this.weEnded) this.peerClosedFirst = true;
      // Half-close answered: the peer is done, so are we.
      this._endOurSide();
      this._wake();
    });
    socket.on('close', () => {
      this.closed = true;
      clearTimeout(this._closeTimer);
      this._wake();
    });
    socket.on('error', (err) => {
      this.errors.push(err.code || err.message);
      this._wake();
    });
  }

  _endOurSide() {
    if (this.weEnded) return;
    this.weEnded = true;
    if (!this.socket.destroyed) this.socket.end();
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  /** Resolves true once pred(this) holds, false after timeoutMs. Never rejects. */
  waitFor(pred, timeoutMs = 5000) {
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
      }, timeoutMs);
      this._waiters.add(check);
    });
  }

  waitMessages(n, timeoutMs = 5000) {
    return this.waitFor((c) => c.messages.length >= n || c.close !== null || c.closed, timeoutMs);
  }

  waitPongs(n, timeoutMs = 5000) {
    return this.waitFor((c) => c.pongs.length >= n || c.close !== null || c.closed, timeoutMs);
  }

  waitClose(timeoutMs = 5000) {
    return this.waitFor((c) => c.close !== null || c.closed, timeoutMs);
  }

  /** Waits for the TCP connection to be fully closed; destroys it after timeoutMs. */
  async waitClosed(timeoutMs = 5000) {
    const ok = await this.waitFor((c) => c.closed, timeoutMs);
    if (!ok) this.socket.destroy();
    return ok;
  }

  _parse() {
    if (this.phase === 'http') {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(end + 4);
      const lines = head.split('\r\n');
      this.statusLine = lines[0];
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(lines[0]);
      this.status = m ? Number(m[1]) : -1;
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        this.rawHeaders.push([name, value]);
        const lower = name.toLowerCase();
        this.headers[lower] = lower in this.headers ? `${this.headers[lower]}, ${value}` : value;
      }
      this.phase = this.status === 101 ? 'ws' : 'body';
    }
    if (this.phase === 'body') {
      this.body = Buffer.concat([this.body, this.buf]);
      this.buf = Buffer.alloc(0);
      return;
    }
    if (this.phase === 'ws') this._parseFrames();
  }

  _parseFrames() {
    for (;;) {
      if (this.close !== null) {
        // Anything after a close frame is ignored (RFC 6455 §5.5.1) but noted.
        if (this.buf.length) this.violations.push(`${this.buf.length} bytes after close frame`);
        this.buf = Buffer.alloc(0);
        return;
      }
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const rsv = (b[0] >> 4) & 7;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
          this.violations.push(`64-bit length ${big}`);
          this.socket.destroy();
          return;
        }
        len = Number(big);
        off = 10;
      }
      let key = null;
      if (masked) {
        if (b.length < off + 4) return;
        key = b.subarray(off, off + 4);
        off += 4;
      }
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      this.buf = b.subarray(off + len);
      if (masked) {
        this.violations.push('masked frame from server');
        for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
      }
      if (rsv) this.violations.push(`RSV bits ${rsv} set`);
      this._onFrame(fin, opcode, payload);
    }
  }

  _onFrame(fin, opcode, payload) {
    switch (opcode) {
      case OP.PING:
        this.pings.push(payload);
        if (this.autoPong && !this.closeSent) this.write(frame({ opcode: OP.PONG, payload }));
        return;
      case OP.PONG:
        this.pongs.push(payload);
        return;
      case OP.CLOSE: {
        let code = null;
        let reason = '';
        if (payload.length === 1) this.violations.push('1-byte close payload');
        if (payload.length >= 2) {
          code = payload.readUInt16BE(0);
          reason = payload.subarray(2).toString('utf8');
        }
        this.close = { code, reason, raw: payload };
        if (this.autoCloseReply && !this.closeSent) {
          // Echo the code (RFC 6455 §5.5.1), or an empty close for an empty one.
          this.sendClose(code, '');
        }
        // The server should close TCP first (§7.1.1); give it 1 s, then end ours.
        this._closeTimer = setTimeout(() => this._endOurSide(), 1000);
        return;
      }
      case OP.TEXT:
      case OP.BINARY:
        this.frames.push({ fin, opcode, length: payload.length });
        if (this._frag) this.violations.push('new data frame while a message is in progress');
        if (fin) this.messages.push({ opcode, payload });
        else this._frag = { opcode, parts: [payload] };
        return;
      case OP.CONT:
        this.frames.push({ fin, opcode, length: payload.length });
        if (!this._frag) {
          this.violations.push('continuation without a message');
          return;
        }
        this._frag.parts.push(payload);
        if (fin) {
          this.messages.push({ opcode: this._frag.opcode, payload: Buffer.concat(this._frag.parts) });
          this._frag = null;
        }
        return;
      default:
        this.violations.push(`reserved opcode ${opcode}`);
    }
  }

  write(buf, callback) {
    if (this.socket.destroyed || this.weEnded) return false;
    this.socket.write(buf, callback);
    return true;
  }

  /** Writes each piece separately, waiting delayMs between writes. Stops once a close arrived
   * (or the socket closed) if stopOnClose. Returns the number of pieces written. */
  async writeChopped(pieces, delayMs = 1, { stopOnClose = true } = {}) {
    let n = 0;
    for (const piece of pieces) {
      if (stopOnClose && (this.close !== null || this.closed || this.ended)) break;
      if (this.socket instanceof tls.TLSSocket) {
        // A TLS socket may hold bytes (writableLength > 0) without ever emitting 'drain', so
        // wait for this piece's write callback: its record was handed to the kernel.
        const written = new Promise((resolve) => {
          if (!this.write(piece, () => resolve(true))) resolve(false);
        });
        if (!(await written)) break;
        n++;
        if (delayMs > 0) await sleep(delayMs);
        continue;
      }
      if (!this.write(piece)) break;
      n++;
      // Wait for the kernel to take the bytes so every piece leaves as its own segment.
      await new Promise((resolve) => {
        if (this.socket.writableLength === 0) resolve();
        else this.socket.once('drain', resolve);
      });
      if (delayMs > 0) await sleep(delayMs);
    }
    return n;
  }

  sendClose(code = 1000, reason = '', extra = {}) {
    this.closeSent = true;
    return this.write(close(code, reason, extra));
  }

  /** Ends our side and destroys the socket. */
  destroy() {
    clearTimeout(this._closeTimer);
    this.socket.destroy();
  }
}

/**
 * Opens a TCP connection, writes `request` (a string or Buffer; see upgradeRequest) and
 * optionally `pipelined` bytes in the same write, and waits for the response head.
 * Resolves to a RawConn (status -1 when no response head came within timeoutMs).
 * With `tls` (Node tls.connect options, e.g. {ca, servername}; `true` for none) the connection
 * is TLS: the request is written once the handshake completed ('secureConnect').
 */
export async function rawConnect({ port, host = '127.0.0.1', request, pipelined, timeoutMs = 5000, tls: tlsOptions }) {
  const socket = tlsOptions
    ? tls.connect({ port, host, ...(tlsOptions === true ? {} : tlsOptions) })
    : net.connect({ port, host });
  const conn = new RawConn(socket);
  const connected = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!connected) {
    socket.destroy();
    throw new Error(`cannot connect to ${host}:${port}${conn.errors.length ? ` (${conn.errors.join(", ")})` : ""}`);
  }
  const head = Buffer.isBuffer(request) ? request : Buffer.from(request, 'latin1');
  socket.write(pipelined ? Buffer.concat([head, pipelined]) : head);
  await conn.waitFor((c) => c.status !== null || c.closed, timeoutMs);
  if (conn.status === null) conn.status = -1;
  return conn;
}

/** Opens a WebSocket with a valid handshake; checks the 101 and Sec-WebSocket-Accept. */
export async function openWs({ port, host = '127.0.0.1', path = '/echo', headers = {}, pipelined, timeoutMs, tls: tlsOptions }) {
  const { request, key } = upgradeRequest({ path, host: `${host}:${port}`, headers });
  const conn = await rawConnect({ port, host, request, pipelined, timeoutMs, tls: tlsOptions });
  if (conn.status !== 101) {
    conn.destroy();
    throw new Error(`expected 101, got ${conn.statusLine ?? 'no response'}`);
  }
  if (conn.headers['sec-websocket-accept'] !== acceptFor(key)) {
    conn.destroy();
    throw new Error(`bad Sec-WebSocket-Accept ${conn.headers['sec-websocket-accept']}`);
  }
  return conn;
}
