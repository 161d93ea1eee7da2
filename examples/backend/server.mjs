#!/usr/bin/env node
// Example and test WebSocket backend for wsbridge: a plain, strict RFC 6455 server built on the
// npm `ws` package with its defaults (UTF-8 validation on, no compression). wsbridge relays
// browser clients to servers like this one; the e2e tests also talk to it directly so that
// every expectation is first checked against a strict real peer.
//
//   node examples/backend/server.mjs --port 9000 [--host 127.0.0.1] [--quiet]
//
// With --port 0 the OS picks the port. Once listening it prints exactly one line to stdout:
//   backend listening on 127.0.0.1:PORT
//
// WebSocket paths (query parameters in brackets):
//   /echo                 echoes every message back (text stays text, binary stays binary)
//   /echo-64k             same, but maxPayload is 64 KiB (messages above it close with 1009)
//   /chat                 broadcast: each message goes to every /chat client, sender included
//   /close[?code=4001&reason=bye&after=open|message]
//                         closes with that code/reason at once (after=open, the default) or
//                         after echoing the first message (after=message)
//   /headers              sends one JSON text message {url, headers, rawHeaders, remoteAddress,
//                         httpVersion, protocol} describing the upgrade request it received
//   /subprotocol          sends one JSON text message {protocol} with the negotiated protocol
//                         (on every path the first offered subprotocol is selected)
//   /stream[?n=1000]      sends n text messages "1", "2", … "n", then echoes like /echo
//   /reject[?status=403]  answers the upgrade with that HTTP status (body "rejected", then closed)
//   /hang                 accepts the TCP connection and the request but never answers it
// HTTP (no Upgrade):
//   GET /stats            JSON counters: {connections, upgrades, byPath, open, closes}; `closes`
//                         lists the last 100 closed WebSockets as {path, code, reason} where
//                         code/reason are what the peer's close frame carried (1005 = empty,
//                         1006 = the connection ended without a close frame)
//   GET /healthz          200 "ok"
//   anything else         426 for WebSocket paths, 404 otherwise
//
// SIGTERM / SIGINT: every open WebSocket is closed with 1001, then the process exits 0.

import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';

const MiB = 1024 * 1024;

function parseArgs(argv) {
  const opts = { port: 9000, host: '127.0.0.1', quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--port') opts.port = Number(value());
    else if (arg === '--host') opts.host = value();
    else if (arg === '--quiet') opts.quiet = true;
    else if (arg === '-h' || arg === '--help') usage();
    else usage(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    usage('--port must be an integer 0..65535');
  }
  return opts;
}

function usage(problem) {
  if (problem) process.stderr.write(`server.mjs: ${problem}\n`);
  process.stderr.write('usage: node examples/backend/server.mjs --port PORT [--host HOST] [--quiet]\n');
  process.exit(problem ? 2 : 0);
}

const opts = parseArgs(process.argv.slice(2));
const log = (msg) => {
  if (!opts.quiet) process.stderr.write(`backend: ${msg}\n`);
};

const WS_PATHS = new Set([
  '/echo', '/echo-64k', '/chat', '/close', '/headers', '/subprotocol', '/stream', '/reject', '/hang',
]);

// Pick the first subprotocol the client offered (`protocols` is an ordered Set).
function handleProtocols(protocols) {
  for (const p of protocols) return p;
  return false;
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * MiB, handleProtocols });
const wss64k = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, handleProtocols });

const stats = { connections: 0, upgrades: 0, byPath: {}, open: 0, closes: [] };
const chatClients = new Set();
const hanging = new Set();

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

function onConnection(ws, req, url) {
  stats.open++;
  ws.on('close', (code, reason) => {
    stats.open--;
    // What the peer's close frame said (1005: empty close, 1006: no close frame at all).
    stats.closes.push({ path: url.pathname, code, reason: reason.toString() });
    if (stats.closes.length > 100) stats.closes.shift();
  });
  // Protocol errors by the peer are answered by ws itself (close 1002/1007/1009); they must not
  // crash the process.
  ws.on('error', (err) => log(`${url.pathname}: ${err.code || ''} ${err.message}`));

  switch (url.pathname) {
    case '/echo':
    case '/echo-64k':
      echo(ws);
      break;
    case '/chat':
      chatClients.add(ws);
      ws.on('close', () => chatClients.delete(ws));
      ws.on('message', (data, isBinary) => {
        for (const peer of chatClients) {
          if (peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
        }
      });
      break;
    case '/close': {
      const code = Number(url.searchParams.get('code') ?? 1000);
      const reason = url.searchParams.get('reason') ?? '';
      const closeNow = () => {
        try {
          ws.close(code, reason);
        } catch (err) {
          // An invalid code or a reason over 123 bytes: report it as a server error.
          log(`/close: ${err.message}`);
          ws.close(1011, 'bad close parameters');
        }
      };
      if (url.searchParams.get('after') === 'message') {
        ws.once('message', (data, isBinary) => {
          ws.send(data, { binary: isBinary });
          closeNow();
        });
      } else {
        closeNow();
      }
      break;
    }
    case '/headers':
      ws.send(JSON.stringify({
        url: req.url,
        method: req.method,
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        remoteAddress: req.socket.remoteAddress,
        protocol: ws.protocol,
      }));
      echo(ws);
      break;
    case '/subprotocol':
      ws.send(JSON.stringify({ protocol: ws.protocol }));
      echo(ws);
      break;
    case '/stream': {
      const n = Math.min(Math.max(Number(url.searchParams.get('n') ?? 1000) | 0, 0), 1_000_000);
      for (let i = 1; i <= n; i++) ws.send(String(i));
      echo(ws);
      break;
    }
    default:
      ws.close(1011, 'no handler');
  }
}

function rejectUpgrade(socket, status, extra = '') {
  const reason = http.STATUS_CODES[status] || 'Unknown';
  const body = 'rejected\n';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: text/plain\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      extra +
      '\r\n' +
      body,
  );
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://backend.invalid');
  if (req.method === 'GET' && url.pathname === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json', Connection: 'close' });
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === 'GET' && url.pathname === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('ok\n');
    return;
  }
  const status = WS_PATHS.has(url.pathname) ? 426 : 404;
  res.writeHead(status, { 'Content-Type': 'text/plain', Connection: 'close' });
  res.end(status === 426 ? 'WebSocket upgrade required\n' : 'not found\n');
});

server.on('connection', (socket) => {
  stats.connections++;
  socket.on('error', () => {});
});

server.on('upgrade', (req, socket, head) => {
  stats.upgrades++;
  const url = new URL(req.url, 'http://backend.invalid');
  stats.byPath[url.pathname] = (stats.byPath[url.pathname] || 0) + 1;
  socket.on('error', () => {});

  if (url.pathname === '/reject') {
    const status = Number(url.searchParams.get('status') ?? 403);
    rejectUpgrade(socket, Number.isInteger(status) && status >= 200 && status <= 599 ? status : 403);
    return;
  }
  if (url.pathname === '/hang') {
    hanging.add(socket);
    socket.on('close', () => hanging.delete(socket));
    return;
  }
  if (!WS_PATHS.has(url.pathname)) {
    rejectUpgrade(socket, 404);
    return;
  }
  const target = url.pathname === '/echo-64k' ? wss64k : wss;
  // handleUpgrade validates the handshake strictly (400 / 426 with Sec-WebSocket-Version).
  target.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req, url));
});

server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  else socket.destroy();
});

server.listen(opts.port, opts.host, () => {
  const { address, port } = server.address();
  const host = address.includes(':') ? `[${address}]` : address;
  process.stdout.write(`backend listening on ${host}:${port}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`backend: ${err.message}\n`);
  process.exit(1);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: closing`);
  server.close();
  for (const socket of hanging) socket.destroy();
  const all = [...wss.clients, ...wss64k.clients];
  for (const ws of all) ws.close(1001, 'backend shutting down');
  const done = () => process.exit(0);
  if (all.length === 0) return done();
  // Wait for the close handshakes, but never longer than 2 s.
  const timer = setTimeout(() => {
    for (const ws of [...wss.clients, ...wss64k.clients]) ws.terminate();
    done();
  }, 2000);
  timer.unref();
  let pending = all.length;
  for (const ws of all) {
    ws.once('close', () => {
      if (--pending === 0) done();
    });
  }
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
