// SIGTERM drain (README "Operations", issue 14): /readyz turns 503 at once, the listeners close
// after drain_delay, and clients are closed spread evenly over drain_timeout, not all at once,
// so the instances that take them over see a ramp; the process exits 0 once none is left. A
// second SIGTERM exits at once. Measured from the clients' own close timestamps.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';

import { httpGet, proxyConfig, proxySkip, sleep, startBackend, startProxy, withTimeout } from './lib/harness.mjs';
import { openLongPoll } from './lib/mux.mjs';

const skip = proxySkip();

/** Opens n WebSockets to url, at most 100 handshakes at a time; resolves the sockets. */
async function openMany(url, n) {
  const out = [];
  for (let i = 0; i < n; i += 100) {
    const batch = Array.from({ length: Math.min(100, n - i) }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.closedAt = null;
      ws.closeCode = null;
      ws.on('open', () => resolve(ws));
      ws.on('error', reject);
      ws.on('close', (code) => {
        ws.closedAt = Date.now();
        ws.closeCode = code;
      });
    }));
    out.push(...await withTimeout(Promise.all(batch), 15000, 'WebSocket opens'));
  }
  return out;
}

function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
}

test('SIGTERM: readyz 503 at once, listeners close after drain_delay, closes spread over drain_timeout, exit 0', { skip, timeout: 60000 }, async () => {
  const N = 600;
  const backend = await startBackend({ label: 'drain' });
  const proxy = await startProxy(proxyConfig([{ path: '/echo', backend: backend.url('/echo') }], {
    extra: 'admin: { address: 127.0.0.1:0 }\ndrain_delay: 1s\ndrain_timeout: 4s\n' +
      'limits: { max_connections: 5000, max_connections_per_ip: 5000 }\n',
  }), { label: 'drain' });
  try {
    const admin = Number((await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
    const clients = await openMany(proxy.url('/echo'), N);
    const session = await openLongPoll(proxy.port, '/echo');
    assert.equal((await httpGet(admin, '/readyz')).status, 200);

    const t0 = Date.now();
    proxy.child.proc.kill('SIGTERM');
    await proxy.waitForLog(/event=draining drain_delay_ms=1000 drain_timeout_ms=4000/);
    assert.equal((await httpGet(admin, '/readyz')).status, 503, 'readyz turns 503 at once');
    assert.equal(await refused(proxy.port), false, 'listeners still open during drain_delay');
    await sleep(600);
    assert.ok(clients.every((c) => c.closedAt === null), 'nobody closed during drain_delay');
    await sleep(700);
    assert.equal(await refused(proxy.port), true, 'listeners closed after drain_delay');

    const status = await withTimeout(proxy.child.exited, 15000, 'the proxy to exit');
    const took = Date.now() - t0;
    assert.equal(status.code, 0, JSON.stringify(status));
    assert.ok(took < 1000 + 4000 + 2000, `exited after ${took} ms`);
    await sleep(200);
    assert.ok(clients.every((c) => c.closeCode === 1001), `close codes ${[...new Set(clients.map((c) => c.closeCode))]}`);
    // The spread: no 500 ms window closes more than twice its even share (4 s × 0.9 over N).
    const first = Math.min(...clients.map((c) => c.closedAt));
    const last = Math.max(...clients.map((c) => c.closedAt));
    assert.ok(first - t0 >= 950, `first close ${first - t0} ms after SIGTERM (drain_delay 1 s)`);
    assert.ok(last - first >= 2800, `closes spread over ${last - first} ms only`);
    const buckets = new Map();
    for (const c of clients) {
      const b = Math.floor((c.closedAt - first) / 500);
      buckets.set(b, (buckets.get(b) || 0) + 1);
    }
    const even = N * 500 / 3600;
    for (const [b, n] of buckets) assert.ok(n <= 2 * even, `window ${b}: ${n} closes (even share ${even.toFixed(0)})`);
    const poll = await httpGet(proxy.port, `/echo?session=${session.session}&ack=0`).catch((e) => ({ error: String(e) }));
    assert.ok(poll.error || poll.status !== 200 || /1001/.test(poll.body), 'the session was closed with 1001');
    assert.match(proxy.stderr(), /event=drained took_ms=\d+/);
  } finally {
    await proxy.stop();
    await backend.stop();
  }
});

test('a second SIGTERM exits at once', { skip, timeout: 30000 }, async () => {
  const backend = await startBackend({ label: 'drain2' });
  const proxy = await startProxy(proxyConfig([{ path: '/echo', backend: backend.url('/echo') }], {
    extra: 'drain_timeout: 20s\n',
  }), { label: 'drain2' });
  try {
    const clients = await openMany(proxy.url('/echo'), 50);
    const t0 = Date.now();
    proxy.child.proc.kill('SIGTERM');
    await proxy.waitForLog(/event=draining/);
    await sleep(300);
    proxy.child.proc.kill('SIGTERM');
    const status = await withTimeout(proxy.child.exited, 5000, 'the proxy to exit');
    assert.equal(status.code, 0);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    await sleep(300);
    assert.ok(clients.every((c) => c.closedAt !== null), 'every client saw its connection end');
  } finally {
    await proxy.stop();
    await backend.stop();
  }
});
