// End-to-end: what each peer sees when the other one breaks the protocol (issue 10). The
// backend is a real `ws` WebSocketServer in this process (strict: it validates the UTF-8 of
// every text message it receives and reports a Close frame's code), so it records exactly
// what the proxy sent it: messages, the Close code, and whether the connection ended without
// a Close (ws reports 1006). Clients are raw sockets (lib/rawws.mjs) so they can send what no
// WebSocket library would.
//
//   node --test tests/e2e/protocol_failures.test.mjs
//
// Decisions these tests pin down (SPEC §2, §5; RFC 6455 §7.1.7):
//  - Invalid UTF-8 in text, from either side, reaches neither peer, not even when the message
//    is cut off inside its last character; the client and the backend both get Close 1007.
//  - A backend message over max_message gets the client 1009 and the backend a Close 1009
//    frame before its TCP connection ends.
//  - On a client violation, the backend's replies to the client's earlier messages still
//    reach the client before the Close with the violation's code.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';

import { startProxy, proxyConfig, proxySkip, withTimeout, sleep } from './lib/harness.mjs';
import { openWs, text, cont, frame } from './lib/rawws.mjs';

const T = 20000;
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A `ws` backend that records every connection; the path picks what it sends. */
async function startRecordingBackend() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise((resolve) => wss.once('listening', resolve));
  const conns = [];
  wss.on('connection', (ws, req) => {
    const rec = { path: req.url, messages: [], errors: [], close: null };
    rec.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      rec.close = { code, reason: reason.toString() };
      resolve(rec.close);
    }));
    ws.on('message', (data, isBinary) => {
      rec.messages.push({ data: Buffer.from(data), isBinary });
      if (req.url.startsWith('/echo')) ws.send(data, { binary: isBinary });
    });
    ws.on('error', (err) => rec.errors.push(err.code || err.message));
    const url = new URL(req.url, 'http://x');
    const send = url.searchParams.get('send');
    if (send) {
      // Raw bytes as a text frame (ws does not validate what it sends), optionally split
      // into two fragments at `split`; or a binary message of `big` bytes.
      const bytes = hex(send);
      const split = url.searchParams.get('split');
      ws.send('before');
      if (split !== null) {
        ws.send(bytes.subarray(0, Number(split)), { binary: false, fin: false });
        ws.send(bytes.subarray(Number(split)), { binary: false, fin: true });
      } else {
        ws.send(bytes, { binary: false });
      }
    }
    const big = url.searchParams.get('big');
    if (big) {
      ws.send('before');
      ws.send(Buffer.alloc(Number(big), 0x61), { binary: true });
    }
    conns.push(rec);
  });
  return {
    port: wss.address().port,
    conns,
    last: () => conns[conns.length - 1],
    close: () => new Promise((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(resolve);
    }),
  };
}

describe('issue 10: protocol failures through wsbridge', { skip: proxySkip() }, () => {
  let backend;
  let proxy;

  before(async () => {
    backend = await startRecordingBackend();
    proxy = await startProxy(proxyConfig([
      { path: '/', backend: `ws://127.0.0.1:${backend.port}/`, max_message: '4k', close_timeout: '2s' },
    ]), { label: 'protocol-failures' });
  });

  after(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  /** Opens a client through the proxy and waits for the backend's connection record. */
  async function open(path) {
    const before = backend.conns.length;
    const c = await openWs({ port: proxy.port, path });
    await withTimeout((async () => {
      while (backend.conns.length === before) await sleep(5);
    })(), 5000, 'backend connection');
    return { c, b: backend.last() };
  }

  const badClientText = [
    ['"ok\\xce" in one frame', () => [text(hex('6f6bce'))]],
    ['"ok" then "\\xce" as fragments', () => [text('ok', { fin: false }), cont(hex('ce'))]],
    ['"\\xe2\\x82" (an unfinished euro sign)', () => [text(hex('e282'))]],
    ['a bad byte in the middle', () => [text(hex('6f6bc0af6d6f7265'))]],
  ];
  for (const [name, build] of badClientText) {
    test(`client text ${name}: the backend gets no message and a Close 1007`, { timeout: T }, async () => {
      const { c, b } = await open('/rec');
      c.write(text('fine'));
      assert.ok(await withTimeout((async () => {
        while (b.messages.length < 1) await sleep(5);
        return true;
      })(), 5000, 'the valid message'));
      c.write(Buffer.concat(build()));
      assert.ok(await c.waitClose(5000), 'client close');
      assert.equal(c.close?.code, 1007);
      const closed = await withTimeout(b.closed, 5000, 'backend close');
      assert.equal(closed.code, 1007, 'the backend got a Close 1007 frame');
      assert.deepEqual(b.messages.map((m) => m.data.toString()), ['fine']);
      assert.deepEqual(b.errors, [], 'ws saw nothing invalid');
      await c.waitClosed(5000);
    });
  }

  const badBackendText = [
    ['"ok\\xce" in one frame', 'send=6f6bce'],
    ['"ok" then "\\xce" as fragments', 'send=6f6bce&split=2'],
    ['"\\xe2\\x82" (an unfinished euro sign)', 'send=e282'],
    ['a bad byte in the middle', 'send=6f6bc0af6d6f7265'],
  ];
  for (const [name, query] of badBackendText) {
    test(`backend text ${name}: the client gets no message and both get 1007`, { timeout: T }, async () => {
      const { c, b } = await open(`/bad?${query}`);
      assert.ok(await c.waitClose(5000), 'client close');
      assert.equal(c.close?.code, 1007);
      assert.deepEqual(c.messages.map((m) => m.payload.toString()), ['before']);
      assert.deepEqual(c.violations, []);
      const closed = await withTimeout(b.closed, 5000, 'backend close');
      assert.equal(closed.code, 1007, 'the backend got a Close 1007 frame');
      await c.waitClosed(5000);
    });
  }

  test('a backend message over max_message: client 1009, backend a Close 1009 frame', { timeout: T }, async () => {
    const { c, b } = await open('/big?big=5000');
    assert.ok(await c.waitClose(5000));
    assert.equal(c.close?.code, 1009);
    assert.deepEqual(c.messages.map((m) => m.payload.toString()), ['before']);
    const closed = await withTimeout(b.closed, 5000, 'backend close');
    assert.equal(closed.code, 1009, 'a Close frame, not a reset (ws reports 1006 then)');
    await c.waitClosed(5000);
  });

  test('a client violation: the echo of the earlier message comes before the Close 1002', { timeout: T }, async () => {
    const { c, b } = await open('/echo');
    c.write(Buffer.concat([text('first'), frame({ opcode: 0x3, payload: 'x' }), text('never')]));
    assert.ok(await c.waitClose(5000));
    assert.equal(c.close?.code, 1002);
    assert.deepEqual(c.messages.map((m) => m.payload.toString()), ['first']);
    const closed = await withTimeout(b.closed, 5000, 'backend close');
    assert.equal(closed.code, 1002);
    assert.deepEqual(b.messages.map((m) => m.data.toString()), ['first']);
    await c.waitClosed(5000);
  });
});
