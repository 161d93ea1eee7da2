#!/usr/bin/env node
// Static server for the chat demo: serves the page (index.html, app.js) and the client module
// (examples/client/bridge-socket.js) on its own port. The chat itself goes through wsbridge to
// the example backend's /chat route (examples/backend/server.mjs, Node `ws`, broadcast), so the
// proxy's /chat route must allow this page's origin (http://127.0.0.1:PORT).
//
//   node examples/chat/server.mjs [--port 8000] [--host 127.0.0.1] [--proxy http://127.0.0.1:8080]
//
// --proxy is where the page finds wsbridge ("" = the page's own origin, e.g. when a reverse
// proxy serves both). Once listening it prints one line to stdout:
//   chat page on http://HOST:PORT/
//
// Also importable: startChatServer({port, host, proxy, tls}) → {port, origin, url, close()};
// `tls: {cert, key}` (PEM text) serves the page over https (the origin is then https://HOST:PORT).

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FILES = {
  '/': [path.join(HERE, 'index.html'), 'text/html; charset=utf-8'],
  '/index.html': [path.join(HERE, 'index.html'), 'text/html; charset=utf-8'],
  '/app.js': [path.join(HERE, 'app.js'), 'text/javascript; charset=utf-8'],
  '/bridge-socket.js': [path.join(HERE, '..', 'client', 'bridge-socket.js'), 'text/javascript; charset=utf-8'],
};

export function startChatServer({ port = 8000, host = '127.0.0.1', proxy = 'http://127.0.0.1:8080', room = '/chat', tls } = {}) {
  const sockets = new Set();
  const handler = (req, res) => {
    const { pathname } = new URL(req.url, 'http://page.invalid');
    const headers = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' });
      res.end();
      return;
    }
    if (pathname === '/config.json') {
      res.writeHead(200, { ...headers, 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ proxy, room }));
      return;
    }
    if (pathname === '/favicon.ico') {
      res.writeHead(204, headers);
      res.end();
      return;
    }
    const file = FILES[pathname];
    if (!file) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    fs.readFile(file[0], (err, body) => {
      if (err) {
        res.writeHead(500, { ...headers, 'Content-Type': 'text/plain' });
        res.end('cannot read file\n');
        return;
      }
      res.writeHead(200, { ...headers, 'Content-Type': file[1], 'Content-Length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  };
  const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler) : http.createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: bound } = server.address();
      const origin = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${bound}`;
      resolve({
        port: bound,
        origin,
        url: `${origin}/`,
        close: () => new Promise((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
      });
    });
  });
}

function usage(problem) {
  if (problem) process.stderr.write(`server.mjs: ${problem}\n`);
  process.stderr.write('usage: node examples/chat/server.mjs [--port 8000] [--host 127.0.0.1] [--proxy URL] [--room /chat]\n');
  process.exit(problem ? 2 : 0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const opts = { port: 8000, host: '127.0.0.1', proxy: 'http://127.0.0.1:8080', room: '/chat' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${argv[i]} needs a value`));
    if (argv[i] === '--port') opts.port = Number(value());
    else if (argv[i] === '--host') opts.host = value();
    else if (argv[i] === '--proxy') opts.proxy = value();
    else if (argv[i] === '--room') opts.room = value();
    else if (argv[i] === '-h' || argv[i] === '--help') usage();
    else usage(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('--port must be 0..65535');
  const srv = await startChatServer(opts).catch((err) => {
    process.stderr.write(`chat: ${err.message}\n`);
    process.exit(1);
  });
  process.stdout.write(`chat page on ${srv.url}\n`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
