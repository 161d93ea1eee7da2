// Server-Sent Events for the e2e tests (Node 20 has no global EventSource).
//
//  - EventStreamParser: the WHATWG "event stream interpretation" algorithm, byte-exact
//    (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//    streaming UTF-8 decode (one leading BOM stripped, invalid bytes -> U+FFFD), lines ended by
//    CRLF, LF or CR (a CR at the end of one chunk followed by an LF at the start of the next is
//    one line end), comments, `field: value` with one leading space stripped, `event`, `data`,
//    `id` (ignored when it contains NUL), `retry` (ASCII digits only), dispatch on a blank line
//    with the "empty data buffer -> no event" and "strip one trailing LF" rules, and the
//    incomplete last event discarded at end of stream.
//  - SseClient: an EventSource-like client over node:http that records every event, comment
//    and raw byte, lets a test cut the connection at a chosen point (destroying the socket, the
//    bytes after the cut are never parsed) and reconnect exactly as a browser does: same URL,
//    `Accept: text/event-stream`, `Cache-Control: no-cache`, and `Last-Event-ID: <last event
//    id string>` when that string is not empty. A response that is not `200` with
//    `Content-Type: text/event-stream` is recorded (status, headers, raw bytes) but not parsed,
//    and `failed` is set on its connection record, as a browser fails such a connection.
//
// A parser is per connection, as in browsers. Its "last event ID buffer" starts at the
// EventSource's current last event ID (what Chromium and Firefox do: an event without an `id`
// field keeps the previous id instead of clearing it).

import http from 'node:http';
import https from 'node:https';

/** Parses a `text/event-stream` byte stream incrementally (see the file comment). */
export class EventStreamParser {
  /**
   * @param {object} handlers
   *   onEvent({type, data, lastEventId}) for each dispatched event;
   *   onComment(text) for each comment line (text after the ':');
   *   onRetry(ms) for each valid `retry` field;
   *   onLastEventId(id) whenever the last event ID string is set (at every dispatch).
   * @param {string} lastEventId initial last event ID (the EventSource's).
   */
  constructor({ onEvent = () => {}, onComment = () => {}, onRetry = () => {}, onLastEventId = () => {} } = {},
    lastEventId = '') {
    this.handlers = { onEvent, onComment, onRetry, onLastEventId };
    this.decoder = new TextDecoder('utf-8'); // fatal: false (U+FFFD), ignoreBOM: false (strip one)
    this.pending = ''; // text of the current, unterminated line
    this.skipLF = false; // the previous line ended with CR: a following LF belongs to it
    this.data = '';
    this.eventType = '';
    this.idBuffer = lastEventId;
    this.lastEventId = lastEventId;
    this.stopped = false;
  }

  /** Feeds bytes (Buffer/Uint8Array) or, for unit use, an already decoded string. */
  feed(chunk) {
    if (this.stopped) return;
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    this._text(text);
  }

  /** End of stream: flushes the decoder; any incomplete line or event is discarded. */
  end() {
    if (this.stopped) return;
    const tail = this.decoder.decode();
    if (tail) this._text(tail);
    this.stopped = true;
    this.pending = '';
    this.data = '';
    this.eventType = '';
  }

  /** Stops parsing at once (the connection was cut): nothing fed later is interpreted. */
  stop() {
    this.stopped = true;
  }

  _text(text) {
    let start = 0;
    for (let i = 0; i < text.length && !this.stopped; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a && this.skipLF && i === start && this.pending === '') {
        // LF right after a CR line end (possibly across chunks): part of that CRLF.
        this.skipLF = false;
        start = i + 1;
        continue;
      }
      this.skipLF = false;
      if (c === 0x0d || c === 0x0a) {
        const line = this.pending + text.slice(start, i);
        this.pending = '';
        start = i + 1;
        this.skipLF = c === 0x0d;
        this._line(line);
      }
    }
    if (!this.stopped && start < text.length) {
      this.pending += text.slice(start);
      this.skipLF = false;
    }
  }

  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line[0] === ':') {
      this.handlers.onComment(line.slice(1));
      return;
    }
    const colon = line.indexOf(':');
    let field;
    let value;
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
    } else {
      field = line;
      value = '';
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += value + '\n';
        break;
      case 'id':
        if (!value.includes('\u0000')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.handlers.onRetry(Number(value));
        break;
      default:
        break; // ignored
    }
  }

  _dispatch() {
    this.lastEventId = this.idBuffer;
    this.handlers.onLastEventId(this.lastEventId);
    if (this.data === '') {
      this.eventType = '';
      return;
    }
    let data = this.data;
    if (data.endsWith('\n')) data = data.slice(0, -1);
    const event = { type: this.eventType === '' ? 'message' : this.eventType, data, lastEventId: this.lastEventId };
    this.data = '';
    this.eventType = '';
    this.handlers.onEvent(event);
  }
}

/** Parses a complete stream (Buffer, string, or an array of chunks); returns what it saw. */
export function parseEventStream(input, lastEventId = '') {
  const out = { events: [], comments: [], retries: [], lastEventId };
  const p = new EventStreamParser({
    onEvent: (e) => out.events.push(e),
    onComment: (c) => out.comments.push(c),
    onRetry: (r) => out.retries.push(r),
  }, lastEventId);
  for (const chunk of Array.isArray(input) ? input : [input]) p.feed(chunk);
  p.end();
  out.lastEventId = p.lastEventId;
  return out;
}

function timeoutError(ms, what) {
  return new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/**
 * An EventSource-like client for one URL on 127.0.0.1:port (https when `tls` is given: Node TLS
 * client options such as {ca}). Every connection is recorded in
 * `connections` ({status, headers, rawHeaders, chunks, events, comments, ended, at}); `events`
 * holds the events of all connections (each with `conn`, its connection index, and `at`, the
 * time it was dispatched, from performance.now()).
 */
export class SseClient {
  constructor(port, path, { headers = {}, lastEventId = '', tls } = {}) {
    this.port = port;
    this.tls = tls;
    this.path = path;
    this.headers = headers;
    this.lastEventId = lastEventId;
    this.retry = null;
    this.events = [];
    this.comments = [];
    this.connections = [];
    this.current = null;
    /** Optional (event, conn) => boolean, checked synchronously after every event: true cuts
     *  the connection right there (the rest of the chunk is never parsed). */
    this.cutWhen = null;
    this._waiters = new Set();
  }

  /** The request headers a browser sends for the next connection. */
  requestHeaders() {
    const h = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache', ...this.headers };
    if (this.lastEventId !== '') h['Last-Event-ID'] = this.lastEventId;
    return h;
  }

  /**
   * Opens a connection (a reconnect if one was open before: it sends Last-Event-ID). Resolves
   * with the connection record once the response head arrived. `cutAfterBytes`: parse only
   * that many body bytes, then destroy the socket.
   */
  connect({ ms = 5000, cutAfterBytes = Infinity } = {}) {
    if (this.current && !this.current.ended) this.cut();
    const conn = {
      index: this.connections.length,
      requestHeaders: this.requestHeaders(),
      status: null,
      headers: null,
      rawHeaders: null,
      chunks: [],
      bytes: 0,
      events: [],
      comments: [],
      ended: false,
      cut: false,
      error: null,
      openedAt: performance.now(),
      headAt: null,
      endedAt: null,
      cutAfterBytes,
    };
    this.connections.push(conn);
    this.current = conn;
    const parser = new EventStreamParser({
      onEvent: (e) => {
        const ev = { ...e, conn: conn.index, at: performance.now() };
        conn.events.push(ev);
        this.events.push(ev);
        if (this.cutWhen && this.cutWhen(ev, conn)) this.cut(conn);
        this._wake();
      },
      onComment: (text) => {
        const c = { text, conn: conn.index, at: performance.now() };
        conn.comments.push(c);
        this.comments.push(c);
        this._wake();
      },
      onRetry: (r) => {
        this.retry = r;
      },
      onLastEventId: (id) => {
        this.lastEventId = id;
      },
    }, this.lastEventId);
    conn.parser = parser;
    conn.finished = new Promise((resolve) => {
      conn._resolveFinished = resolve;
    });
    const finish = (err) => {
      if (conn.ended) return;
      conn.ended = true;
      conn.endedAt = performance.now();
      if (err && !conn.cut) conn.error = err;
      if (!conn.cut) parser.end();
      this._wake();
      conn._resolveFinished(conn);
    };
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        req.destroy();
        reject(timeoutError(ms, `SSE response head for ${this.path}`));
      }, ms);
      const req = (this.tls ? https : http).request({
        host: '127.0.0.1', port: this.port, path: this.path, method: 'GET', headers: conn.requestHeaders, agent: false, ...this.tls,
      }, (res) => {
        conn.res = res;
        conn.status = res.statusCode;
        conn.headers = res.headers;
        conn.rawHeaders = res.rawHeaders;
        conn.headAt = performance.now();
        // A browser "fails the connection" (no parsing, no reconnect) unless 200 + event-stream.
        conn.failed = res.statusCode !== 200 ||
          !/^text\/event-stream\s*(;|$)/i.test(res.headers['content-type'] ?? '');
        res.on('data', (chunk) => {
          if (conn.cut) return;
          let piece = chunk;
          if (conn.bytes + piece.length > conn.cutAfterBytes) {
            piece = piece.subarray(0, conn.cutAfterBytes - conn.bytes);
          }
          conn.chunks.push(piece);
          conn.bytes += piece.length;
          if (!conn.failed) parser.feed(piece);
          if (conn.bytes >= conn.cutAfterBytes) this.cut(conn);
          this._wake();
        });
        res.on('end', () => finish(null));
        res.on('error', (e) => finish(e));
        res.on('close', () => finish(null));
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          resolve(conn);
        }
      });
      conn.req = req;
      req.on('error', (e) => {
        finish(e);
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(e);
        }
      });
      req.end();
    });
  }

  /** Cuts the connection now: destroys the socket; later bytes are never parsed. */
  cut(conn = this.current) {
    if (!conn || conn.cut) return;
    conn.cut = true;
    conn.parser.stop();
    conn.req?.destroy();
    conn.res?.socket?.destroy();
    if (!conn.ended) {
      conn.ended = true;
      conn.endedAt = performance.now();
      this._wake();
      conn._resolveFinished(conn);
    }
  }

  /** Reconnects as a browser does after a network error (without waiting `retry`). */
  reconnect(opts) {
    return this.connect(opts);
  }

  close() {
    for (const c of this.connections) this.cut(c);
  }

  /** Body bytes of connection i (default: current) received before any cut. */
  raw(i = this.current?.index) {
    return Buffer.concat(this.connections[i].chunks);
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  /** Resolves with pred()'s truthy value; rejects after ms naming `what`. */
  waitFor(pred, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try {
          v = pred();
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (v) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(timeoutError(ms, `${what} (have ${this.events.length} events: ` +
          `${JSON.stringify(this.events.slice(-3).map((e) => [e.type, e.data.slice(0, 60), e.lastEventId]))})`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      check();
    });
  }

  /** Waits until connection `conn` (default current) holds n events; resolves with them. */
  waitForEvents(n, ms = 5000, conn = this.current) {
    return this.waitFor(() => (conn.events.length >= n ? conn.events.slice(0, n) : null), ms,
      `${n} SSE events on connection ${conn.index}`);
  }

  /** Waits for the first event of connection `conn` (default current) matching pred. */
  waitForEvent(pred, ms = 5000, what = 'an SSE event', conn = this.current) {
    return this.waitFor(() => conn.events.find(pred), ms, `${what} on connection ${conn.index}`);
  }

  /** Waits until connection `conn` (default current) ended (closed by the server or cut). */
  waitForEnd(ms = 5000, conn = this.current) {
    return this.waitFor(() => (conn.ended ? conn : null), ms, `the end of SSE connection ${conn.index}`);
  }
}
