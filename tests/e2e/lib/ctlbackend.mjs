// A WebSocket backend (npm `ws`) that a test drives by hand, to see exactly what the proxy
// forwards: every connection is recorded as {ws, url, protocol, received: [{data, isBinary}],
// closed: {code, reason} | null}; the test sends, closes and checks what arrived (on paths that
// start with /echo it also echoes each message back, as the example backend does). It does not
// validate UTF-8 itself (skipUTF8Validation), so it records the proxy's bytes as they are.
// Every wait is bounded in time.

import { once } from 'node:events';
import { WebSocketServer } from 'ws';

import { withTimeout } from './harness.mjs';

export async function startControlBackend() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, skipUTF8Validation: true });
  await once(wss, 'listening');
  const conns = [];
  const waiters = new Set();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  wss.on('connection', (ws, req) => {
    const c = { ws, url: req.url, protocol: ws.protocol, received: [], closed: null };
    // A path starting with /echo also echoes every message (after recording it).
    const echo = req.url.startsWith('/echo');
    ws.on('message', (data, isBinary) => {
      c.received.push({ data: Buffer.from(data), isBinary });
      if (echo) ws.send(data, { binary: isBinary });
      wake();
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      wake();
    });
    ws.on('error', () => {});
    conns.push(c);
    wake();
  });
  const waitFor = (pred, ms, what) => {
    let check;
    return withTimeout(new Promise((resolve) => {
      check = () => {
        const v = pred();
        if (v) {
          waiters.delete(check);
          resolve(v);
        }
      };
      waiters.add(check);
      check();
    }), ms, what).finally(() => waiters.delete(check));
  };
  return {
    port: wss.address().port,
    url: (p) => `ws://127.0.0.1:${wss.address().port}${p}`,
    conns,
    waitFor,
    /** The connection opened after `count` connections existed. */
    nth: (count, ms = 3000) => waitFor(() => conns[count], ms, `backend connection #${count + 1}`),
    close: () => new Promise((resolve) => {
      for (const c of conns) c.ws.terminate();
      wss.close(() => resolve());
    }),
  };
}
