// A WebSocket gate for the real-browser tests: an HTTP-aware TCP relay 127.0.0.1:port →
// 127.0.0.1:targetPort that stands for an intermediary whose WebSocket policy changes while a
// page is open (a corporate proxy whose rules are tightened, then relaxed). It reads every
// request head on every connection (keep-alive included: request bodies are skipped by their
// Content-Length) and
//  - while WebSocket is allowed, passes everything through byte for byte;
//  - blockWebSocket(): cuts every open WebSocket connection (both sockets destroyed, no Close
//    frame: what a proxy that drops the tunnel does) and answers every new Upgrade request with
//    `403 Forbidden` (Connection: close) without passing a byte of it on; plain HTTP (SSE,
//    long-poll, POST) still passes;
//  - allowWebSocket(): passes upgrades again;
//  - cutWebSocket(): cuts the open WebSocket connections once, without blocking new ones;
//  - blockEventStream() / allowEventStream(): the same policy for SSE (requests that accept
//    text/event-stream get 403), so that only long-polling passes.
// requests() lists every request head seen, in order: {conn, method, target, head, websocket,
// blocked}. The relay is a child of nothing: it lives in the test's process and close() ends it.

import net from 'node:net';

const HEAD_LIMIT = 64 * 1024;

function parseHead(head) {
  const lines = head.split('\r\n');
  const [method = '', target = ''] = lines[0].split(' ');
  const headers = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { method, target, headers };
}

/** Starts the gate. Resolves {port, origin, requests(), wsConns(), blockWebSocket(), ...}. */
export function startWsGate(targetPort) {
  const conns = new Set();
  const log = [];
  let blocking = false;
  let blockingSse = false;
  let nextId = 1;

  const server = net.createServer((client) => {
    const c = { id: nextId++, client, upstream: null, buf: Buffer.alloc(0), state: 'head', body: 0, websocket: false };
    conns.add(c);
    const destroy = () => {
      client.destroy();
      c.upstream?.destroy();
      conns.delete(c);
    };
    c.destroy = destroy;
    client.on('error', destroy);
    client.on('close', destroy);
    const upstream = () => {
      if (c.upstream) return c.upstream;
      const up = net.connect(targetPort, '127.0.0.1');
      c.upstream = up;
      up.on('data', (chunk) => client.write(chunk));
      up.on('end', () => client.end());
      up.on('error', destroy);
      up.on('close', () => { if (!client.writableEnded) client.end(); });
      return up;
    };
    client.on('data', (chunk) => {
      c.buf = Buffer.concat([c.buf, chunk]);
      while (c.buf.length > 0) {
        if (c.state === 'refused') return;
        if (c.state === 'tunnel') {
          upstream().write(c.buf);
          c.buf = Buffer.alloc(0);
          return;
        }
        if (c.state === 'body') {
          const n = Math.min(c.body, c.buf.length);
          upstream().write(c.buf.subarray(0, n));
          c.buf = c.buf.subarray(n);
          c.body -= n;
          if (c.body === 0) c.state = 'head';
          continue;
        }
        const end = c.buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (c.buf.length > HEAD_LIMIT) destroy();
          return;
        }
        const head = c.buf.subarray(0, end).toString('latin1');
        const { method, target, headers } = parseHead(head);
        const websocket = /websocket/i.test(headers.upgrade ?? '');
        const sse = /text\/event-stream/i.test(headers.accept ?? '');
        const entry = {
          conn: c.id, method, target, head, websocket, sse,
          blocked: (websocket && blocking) || (sse && blockingSse), at: Date.now(),
        };
        log.push(entry);
        if (entry.blocked) {
          client.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n' +
            'Connection: close\r\n\r\nforbidden\n');
          c.state = 'refused';
          c.buf = Buffer.alloc(0);
          return;
        }
        if (sse) c.sse = true;
        upstream().write(c.buf.subarray(0, end + 4));
        c.buf = c.buf.subarray(end + 4);
        if (websocket || /chunked/i.test(headers['transfer-encoding'] ?? '')) {
          c.websocket = websocket;
          c.state = 'tunnel';
        } else {
          c.body = Number(headers['content-length'] ?? 0) || 0;
          if (c.body > 0) c.state = 'body';
        }
      }
    });
  });

  const cutWs = () => {
    const victims = [...conns].filter((c) => c.websocket);
    for (const c of victims) c.destroy();
    return victims.length;
  };

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        origin: `http://127.0.0.1:${port}`,
        /** Every request head seen so far, in order. */
        requests: () => log.slice(),
        /** Open WebSocket connections. */
        wsConns: () => [...conns].filter((c) => c.websocket).length,
        /** Cuts open WebSocket connections and refuses new upgrades (403); returns how many were cut. */
        blockWebSocket() {
          blocking = true;
          return cutWs();
        },
        allowWebSocket() {
          blocking = false;
        },
        /** Cuts open WebSocket connections once; returns how many. */
        cutWebSocket: cutWs,
        /** Cuts connections that carried an event stream and refuses new ones (403); returns how many were cut. */
        blockEventStream() {
          blockingSse = true;
          const victims = [...conns].filter((c) => c.sse);
          for (const c of victims) c.destroy();
          return victims.length;
        },
        allowEventStream() {
          blockingSse = false;
        },
        close() {
          for (const c of [...conns]) c.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}
