// Clients that reset their connection (RST, as after SO_LINGER 0 or Node's
// socket.resetAndDestroy()) in the middle of a request head or of a WebSocket frame: the proxy
// must give their file descriptors back at once (issue 10). Before the fix each one was held
// until the 5 s flush deadline, because the Flush close waited for a FIN that a reset socket
// never sends, so a flood of resets could exhaust the fd limit while the connection caps
// (released at once) let more in.
//
//   node --test tests/e2e/client_resets.test.mjs
//   WSBRIDGE_BIN=/path/to/wsbridge node --test tests/e2e/client_resets.test.mjs
//
// The fd count is read from /proc/PID/fd (tests/e2e/lib/procstat.mjs). Peers are the example
// `ws` backend and raw sockets, all on 127.0.0.1; every loop is bounded in count and time.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startBackend, startProxy, proxyConfig, proxySkip, withTimeout } from './lib/harness.mjs';
import { OP, frame, openWs, text } from './lib/rawws.mjs';
import { alive, settle, waitFor } from './lib/procstat.mjs';
import { expectEchoes } from './lib/hostile.mjs';

const skip = proxySkip();
const T = 30000; // per-test timeout
const N = 100; // clients per kind (partial head, partial frame)
const BATCH = 25; // connections opened in parallel

/** A raw TCP connection to the proxy that has written `head` (a partial request head). */
function partialHead(port, head) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {}); // the reset is ours; nothing else is expected
    s.once('connect', () => {
      s.setNoDelay(true);
      s.write(head, 'latin1', () => resolve(s));
    });
    s.once('close', () => reject(new Error('the proxy closed a partial head')));
  }), 5000, 'a partial-head connection');
}

/** A WebSocket through the proxy (101 seen) that has written part of a 1000-byte frame. */
async function partialFrame(port) {
  const conn = await openWs({ port, path: '/echo', timeoutMs: 5000 });
  conn.socket.on('error', () => {});
  const part = frame({ opcode: OP.TEXT, payload: 'x'.repeat(40), length: 1000 });
  await new Promise((resolve) => conn.socket.write(part, resolve));
  return conn.socket;
}

/** Opens `n` connections with `open`, BATCH at a time. */
async function openAll(n, open) {
  const out = [];
  for (let i = 0; i < n; i += BATCH) {
    out.push(...await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, () => open())));
  }
  return out;
}

/** One message echoed through the proxy, then a clean close 1000. */
const echoOnce = (port, msg) => expectEchoes(port, '/echo', (conn) => conn.write(text(msg)), [msg]);

describe('client resets', { skip }, () => {
  let backend;
  let proxy;
  let baseFds;

  before(async () => {
    backend = await startBackend({ label: 'client-resets-backend', args: ['--quiet'] });
    proxy = await startProxy(proxyConfig([{ path: '/echo', backend: backend.url('/echo') }], {
      extra: `limits: { max_connections_per_ip: ${4 * N}, header_timeout: 20s }\n`,
    }), { label: 'client-resets' });
    // Warm up (libuv's spare fd for EMFILE, pools), then take the baseline once it is steady.
    await echoOnce(proxy.port, 'warm-up');
    const base = await settle(proxy.pid, { ms: 5000, stableFor: 300 });
    assert.ok(base.settled, 'the fd count settles before the test');
    baseFds = base.sample.fds;
  });

  after(async () => {
    await proxy?.stop();
    await backend?.stop();
  });

  test(`issue 10: ${2 * N} clients that reset mid-head or mid-frame free their fds within 1 s`, { timeout: T }, async () => {
    const head = 'GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nSec-WebSocket-';
    const sockets = [];
    try {
      sockets.push(...await openAll(N, () => partialHead(proxy.port, head)));
      sockets.push(...await openAll(N, () => partialFrame(proxy.port)));
      // Held: one fd per partial head, two per WebSocket (client and backend).
      const held = await waitFor(proxy.pid, (s) => s.fds >= baseFds + 3 * N, { ms: 5000, interval: 20 });
      assert.ok(held.ok, `the proxy holds every connection (fds ${held.sample?.fds}, baseline ${baseFds})`);
      // Let the last bytes be read: the fd count stays put while the proxy waits for more.
      await settle(proxy.pid, { ms: 2000, stableFor: 200, rssSlack: Infinity });
    } catch (err) {
      for (const s of sockets) s.destroy();
      throw err;
    }

    const t0 = performance.now();
    for (const s of sockets) s.resetAndDestroy();
    const back = await waitFor(proxy.pid, (s) => s.fds <= baseFds, { ms: 3000, interval: 10 });
    const took = Math.round(performance.now() - t0);
    console.log(`client resets: ${sockets.length} resets, fds back to ${back.sample?.fds} ` +
      `(baseline ${baseFds}) after ${took} ms`);
    assert.ok(back.ok, `fds back to the baseline ${baseFds} (now ${back.sample?.fds})`);
    assert.ok(took < 1000, `fds back to the baseline within 1 s (took ${took} ms)`);

    // The proxy is unharmed: alive, echoing, and nothing more leaks once that closed too.
    assert.ok(alive(proxy.pid), 'the proxy is alive');
    await echoOnce(proxy.port, 'after the resets');
    const end = await waitFor(proxy.pid, (s) => s.fds === baseFds, { ms: 2000, interval: 20 });
    assert.ok(end.ok, `fds at the baseline afterwards (now ${end.sample?.fds})`);
  });

  test('issue 10: the proxy exits cleanly after the resets', { timeout: T }, async () => {
    const status = await proxy.stop();
    assert.deepEqual({ code: status.code, signal: status.signal }, { code: 0, signal: null },
      `the proxy exits cleanly on SIGTERM\n${proxy.stderr().slice(-2000)}`);
    assert.doesNotMatch(proxy.stderr(), /AddressSanitizer|LeakSanitizer|runtime error:/);
  });
});
