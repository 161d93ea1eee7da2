// The project's own RFC 6455 conformance cases, numbered like the Autobahn testsuite's sections
// (1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close,
// 9 limits, 10 framing edge cases, 11 opening handshake). Each case is run by
// conformance.test.mjs twice: directly against the `ws` backend and through wsbridge.
//
// A WebSocket case:
//   { id, name, path = '/echo', headers, pipelined(),      // how the connection is opened
//     run: async (c) => extra,                              // c is a RawConn (lib/rawws.mjs)
//     expect: { messages, pongs, close: {code, reason?}, extra },
//     direct: {...overrides} | { skip: 'why' },             // per-target differences, each
//     proxy:  {...overrides} | { skip: 'why' } }            //   documented in its case name
// After run(), the runner waits for the expected messages/pongs (or a close), sends a normal
// close (1000) itself unless one was already exchanged or the peer is expected to close with
// an error, then waits for the TCP connection to end. It asserts, in this order of arrival
// per stream: the data messages (opcode + payload: a proxy may re-frame, so fragments are
// compared at message level), the pong payloads (ping/pong is per hop), the close code (and
// reason where given), that the peer closed TCP first (RFC 6455 §7.1.1), that the peer sent
// nothing a client must reject, and `extra` (what run() returned).
//
// An HTTP case (opening handshake):
//   { id, name, kind: 'http', request: ({hostPort}) => string,
//     expect: { status (number or list of allowed numbers), headers: {lower-name: value} } }
// A rejected handshake must end with the server closing TCP; through the proxy the backend
// must not have seen any connection at all (checked with the backend's /stats counters).

import crypto from 'node:crypto';
import {
  OP, frame, text, binary, ping, pong, cont, close, chop, upgradeRequest, randomKey,
} from './rawws.mjs';

const KiB = 1024;
const MiB = 1024 * 1024;

const T = (payload) => ({ opcode: OP.TEXT, payload: Buffer.from(payload) });
const B = (payload) => ({ opcode: OP.BINARY, payload: Buffer.from(payload) });
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** ASCII text of n bytes with a repeating, position-dependent pattern. */
function asciiText(n) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*';
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = alphabet.charCodeAt((i * 7 + (i >> 6)) % alphabet.length);
  return b;
}
const randomBinary = (n) => crypto.randomBytes(n);

const normalClose = { code: 1000 };
const err = (code) => ({ code });

/** Sends one complete frame and expects the same message back. */
function echoCase(id, name, opcode, payload, { writeIn, delayMs = 0 } = {}) {
  return {
    id,
    name,
    run: async (c) => {
      const f = frame({ opcode, payload });
      if (writeIn) await c.writeChopped(chop(f, writeIn), delayMs);
      else c.write(f);
    },
    expect: { messages: [{ opcode, payload }], close: normalClose },
  };
}

/** Sends frames (all in one write) and expects the peer to close with `code`. */
function failCase(id, name, code, build, more = {}) {
  return {
    id,
    name,
    run: async (c) => {
      c.write(Buffer.concat(build()));
    },
    expect: { close: err(code) },
    ...more,
  };
}

/** First a text message that must be echoed, then (in a separate write, after the echo came
 * back) the bad frames. Keeps the expected echo deterministic through a relay. */
function echoThenFail(id, name, code, build) {
  return {
    id,
    name,
    run: async (c) => {
      c.write(text('Hello, world!'));
      await c.waitMessages(1);
      c.write(Buffer.concat(build()));
    },
    expect: { messages: [T('Hello, world!')], close: err(code) },
  };
}

const cases = [];
const add = (...cs) => cases.push(...cs);

// ---------------------------------------------------------------------------------------------
// 1 Framing
const sizes = [
  [1, 'empty payload', 0],
  [2, '125 bytes (largest 7-bit length)', 125],
  [3, '126 bytes (smallest 16-bit length)', 126],
  [4, '127 bytes', 127],
  [5, '128 bytes', 128],
  [6, '65535 bytes (largest 16-bit length)', 65535],
  [7, '65536 bytes (smallest 64-bit length)', 65536],
];
for (const [kind, section, opcode, make] of [
  ['text', '1.1', OP.TEXT, asciiText],
  ['binary', '1.2', OP.BINARY, randomBinary],
]) {
  for (const [n, label, size] of sizes) {
    add(echoCase(`${section}.${n}`, `${kind} message, ${label}, is echoed`, opcode, make(size)));
  }
  add(echoCase(`${section}.8`, `${kind} message, 65536 bytes written in 997-byte chops, is echoed`,
    opcode, make(65536), { writeIn: 997 }));
  add(echoCase(`${section}.9`, `${kind} message, 1 MiB, is echoed`, opcode, make(MiB)));
  add(echoCase(`${section}.10`, `${kind} message, 200 bytes, frame written one byte per write, is echoed`,
    opcode, make(200), { writeIn: 1, delayMs: 1 }));
}
add({
  id: '1.3.1',
  name: 'three messages in one TCP write are echoed in order',
  run: async (c) => {
    c.write(Buffer.concat([text('one'), binary(hex('0102')), text('three')]));
  },
  expect: { messages: [T('one'), B(hex('0102')), T('three')], close: normalClose },
});
add({
  id: '1.3.2',
  name: '100 small messages in one TCP write are echoed in order',
  run: async (c) => {
    c.write(Buffer.concat(Array.from({ length: 100 }, (_, i) => text(`m${i}`))));
  },
  expect: { messages: Array.from({ length: 100 }, (_, i) => T(`m${i}`)), close: normalClose },
});

// ---------------------------------------------------------------------------------------------
// 2 Pings and pongs
const pingCase = (id, name, payload, opts = {}) => ({
  id,
  name,
  run: async (c) => {
    const f = ping(payload);
    if (opts.writeIn) await c.writeChopped(chop(f, opts.writeIn), 1);
    else c.write(f);
  },
  expect: { pongs: [Buffer.from(payload)], close: normalClose },
});
add(pingCase('2.1', 'ping without payload gets an empty pong', Buffer.alloc(0)));
add(pingCase('2.2', 'ping with small text payload gets a pong with the same payload', Buffer.from('Hello, world!')));
add(pingCase('2.3', 'ping with small binary payload gets a pong with the same payload',
  hex('00 ff fe fd fc fb 00 ff')));
add(pingCase('2.4', 'ping with 125-byte payload gets a pong with the same payload', randomBinary(125)));
add(failCase('2.5', 'ping with 126-byte payload closes with 1002', 1002, () => [ping(randomBinary(126))]));
add(pingCase('2.6', 'ping with 125-byte payload written one byte per write gets a pong',
  randomBinary(125), { writeIn: 1 }));
add({
  id: '2.7',
  name: 'unsolicited pong without payload is ignored',
  run: async (c) => c.write(pong(Buffer.alloc(0))),
  expect: { close: normalClose },
});
add({
  id: '2.8',
  name: 'unsolicited pong with payload is ignored',
  run: async (c) => c.write(pong('unsolicited pong payload')),
  expect: { close: normalClose },
});
add({
  id: '2.9',
  name: 'unsolicited pong then ping: only the ping is answered',
  run: async (c) => c.write(Buffer.concat([pong('unsolicited'), ping('ping payload')])),
  expect: { pongs: [Buffer.from('ping payload')], close: normalClose },
});
{
  const payloads = Array.from({ length: 10 }, (_, i) => Buffer.from(`payload-${i}`));
  add({
    id: '2.10',
    name: '10 pings in one write get 10 pongs in order',
    run: async (c) => c.write(Buffer.concat(payloads.map((p) => ping(p)))),
    expect: { pongs: payloads, close: normalClose },
  });
  add({
    id: '2.11',
    name: '10 pings written 10 ms apart get 10 pongs in order',
    run: async (c) => c.writeChopped(payloads.map((p) => ping(p)), 10),
    expect: { pongs: payloads, close: normalClose },
  });
}
{
  const payloads = Array.from({ length: 126 }, (_, n) => randomBinary(n));
  add({
    id: '2.12',
    name: 'pings with every payload size 0..125 (25 per write) get pongs with the same payloads',
    // Batches of 25: ws (8.23+) terminates a connection with more than 60 unanswered
    // (not yet written) pongs, a ping-flood guard; a relay may have one too.
    run: async (c) => {
      for (let i = 0; i < payloads.length; i += 25) {
        c.write(Buffer.concat(payloads.slice(i, i + 25).map((p) => ping(p))));
        await c.waitPongs(Math.min(i + 25, payloads.length));
      }
    },
    expect: { pongs: payloads, close: normalClose },
  });
}

// ---------------------------------------------------------------------------------------------
// 3 Reserved bits (no extension is negotiated, so every RSV bit is a protocol error)
add(failCase('3.1', 'text with RSV1 set closes with 1002', 1002, () => [text('Hello', { rsv: 4 })]));
add(echoThenFail('3.2', 'text with RSV2 set, after an echoed text, closes with 1002', 1002,
  () => [text('Hello', { rsv: 2 })]));
add(echoThenFail('3.3', 'text with RSV3 set closes with 1002 and a ping after it is not answered', 1002,
  () => [text('Hello', { rsv: 1 }), ping('after')]));
add(failCase('3.4', 'binary with RSV1+RSV3 set closes with 1002', 1002,
  () => [binary(hex('00ff'), { rsv: 5 })]));
add(failCase('3.5', 'binary with all RSV bits set closes with 1002', 1002,
  () => [binary(randomBinary(10), { rsv: 7 })]));
add(failCase('3.6', 'ping with RSV2+RSV3 set closes with 1002', 1002, () => [ping('x', { rsv: 3 })]));
add(failCase('3.7', 'close with RSV1+RSV2 set closes with 1002', 1002,
  () => [close(1000, '', { rsv: 6 })]));

// ---------------------------------------------------------------------------------------------
// 4 Opcodes
{
  const dataOps = [3, 4, 5, 6, 7];
  const ctrlOps = [0xb, 0xc, 0xd, 0xe, 0xf];
  for (const [section, ops, kind] of [['4.1', dataOps, 'non-control'], ['4.2', ctrlOps, 'control']]) {
    const [a, b, c3, d, e] = ops;
    const h = (op) => `0x${op.toString(16).toUpperCase()}`;
    add(failCase(`${section}.1`, `reserved ${kind} opcode ${h(a)} without payload closes with 1002`, 1002,
      () => [frame({ opcode: a })]));
    add(failCase(`${section}.2`, `reserved ${kind} opcode ${h(b)} with payload closes with 1002`, 1002,
      () => [frame({ opcode: b, payload: 'reserved opcode payload' })]));
    add(echoThenFail(`${section}.3`, `reserved ${kind} opcode ${h(c3)} after an echoed text closes with 1002`,
      1002, () => [frame({ opcode: c3 })]));
    add(echoThenFail(`${section}.4`,
      `reserved ${kind} opcode ${h(d)} with payload after an echoed text closes with 1002`, 1002,
      () => [frame({ opcode: d, payload: 'reserved opcode payload' })]));
    add(echoThenFail(`${section}.5`,
      `reserved ${kind} opcode ${h(e)} with payload, then a ping: closes with 1002, no pong`, 1002,
      () => [frame({ opcode: e, payload: 'reserved opcode payload' }), ping('after')]));
  }
}

// ---------------------------------------------------------------------------------------------
// 5 Fragmentation
add(failCase('5.1', 'ping in 2 fragments closes with 1002', 1002,
  () => [frame({ opcode: OP.PING, fin: false, payload: 'frag1' }), cont('frag2')]));
add(failCase('5.2', 'pong in 2 fragments closes with 1002', 1002,
  () => [frame({ opcode: OP.PONG, fin: false, payload: 'frag1' }), cont('frag2')]));
{
  const frags = () => [text('fragment1', { fin: false }), cont('fragment2')];
  const withPing = () => [text('fragment1', { fin: false }), ping('ping payload'), cont('fragment2')];
  add({
    id: '5.3',
    name: 'text in 2 fragments is echoed as one message',
    run: async (c) => c.write(Buffer.concat(frags())),
    expect: { messages: [T('fragment1fragment2')], close: normalClose },
  });
  add({
    id: '5.4',
    name: 'text in 2 fragments written 50 ms apart is echoed as one message',
    run: async (c) => c.writeChopped(frags(), 50),
    expect: { messages: [T('fragment1fragment2')], close: normalClose },
  });
  add({
    id: '5.5',
    name: 'text in 2 fragments written one byte per write is echoed as one message',
    run: async (c) => c.writeChopped(chop(Buffer.concat(frags()), 1), 1),
    expect: { messages: [T('fragment1fragment2')], close: normalClose },
  });
  add({
    id: '5.6',
    name: 'text in 2 fragments with a ping between them: pong and one message',
    run: async (c) => c.write(Buffer.concat(withPing())),
    expect: { messages: [T('fragment1fragment2')], pongs: [Buffer.from('ping payload')], close: normalClose },
  });
  add({
    id: '5.7',
    name: 'text in 2 fragments with a ping between them, frames written 50 ms apart',
    run: async (c) => c.writeChopped(withPing(), 50),
    expect: { messages: [T('fragment1fragment2')], pongs: [Buffer.from('ping payload')], close: normalClose },
  });
  add({
    id: '5.8',
    name: 'text in 2 fragments with a ping between them, written one byte per write',
    run: async (c) => c.writeChopped(chop(Buffer.concat(withPing()), 1), 1),
    expect: { messages: [T('fragment1fragment2')], pongs: [Buffer.from('ping payload')], close: normalClose },
  });
}
add(failCase('5.9', 'continuation with FIN set and no message in progress closes with 1002', 1002,
  () => [cont('non-continuation payload'), text('Hello, world!')]));
add(failCase('5.10', 'continuation with FIN clear and no message in progress closes with 1002', 1002,
  () => [cont('non-continuation payload', { fin: false }), text('Hello, world!')]));
add({
  id: '5.11',
  name: 'continuation without a message, written one byte per write, closes with 1002',
  run: async (c) => c.writeChopped(chop(Buffer.concat([cont('non-continuation payload'), text('Hello')]), 1), 1),
  expect: { close: err(1002) },
});
add(echoThenFail('5.12', 'continuation after a complete message closes with 1002', 1002,
  () => [cont('fragment2')]));
add(failCase('5.13', 'new text message while a text message is in progress closes with 1002', 1002,
  () => [text('fragment1', { fin: false }), text('fragment2')]));
add(failCase('5.14', 'new binary message while a text message is in progress closes with 1002', 1002,
  () => [text('fragment1', { fin: false }), binary('fragment2', { fin: false }), cont('fragment3')]));
{
  const parts = [randomBinary(100), randomBinary(200), randomBinary(300)];
  add({
    id: '5.15',
    name: 'binary in 3 fragments is echoed as one message',
    run: async (c) => c.write(Buffer.concat([
      binary(parts[0], { fin: false }), cont(parts[1], { fin: false }), cont(parts[2]),
    ])),
    expect: { messages: [B(Buffer.concat(parts))], close: normalClose },
  });
}
{
  const words = Array.from({ length: 10 }, (_, i) => `frag${i};`);
  add({
    id: '5.16',
    name: 'text in 10 fragments with a ping after each: 10 pongs and one message',
    run: async (c) => {
      const out = [];
      words.forEach((w, i) => {
        out.push(i === 0 ? text(w, { fin: false }) : cont(w, { fin: i === words.length - 1 }));
        out.push(ping(`p${i}`));
      });
      await c.writeChopped(out, 5);
    },
    expect: {
      messages: [T(words.join(''))],
      pongs: words.map((_, i) => Buffer.from(`p${i}`)),
      close: normalClose,
    },
  });
}
add({
  id: '5.17',
  name: 'text with empty first and last fragments is echoed as one message',
  run: async (c) => c.write(Buffer.concat([text('', { fin: false }), cont('middle', { fin: false }), cont('')])),
  expect: { messages: [T('middle')], close: normalClose },
});
add({
  id: '5.18',
  name: 'close between fragments ends the connection without delivering the message',
  run: async (c) => {
    c.write(text('fragment1', { fin: false }));
    c.sendClose(1000);
    c.write(cont('fragment2'));
  },
  expect: { close: normalClose },
});
{
  const msg = asciiText(100);
  add({
    id: '5.19',
    name: 'text in 100 one-byte fragments is echoed as one message',
    run: async (c) => c.write(Buffer.concat([...msg].map((byte, i) => frame({
      opcode: i === 0 ? OP.TEXT : OP.CONT, fin: i === msg.length - 1, payload: Buffer.from([byte]),
    })))),
    expect: { messages: [T(msg)], close: normalClose },
  });
}
{
  const msg = randomBinary(MiB);
  add({
    id: '5.20',
    name: 'binary 1 MiB in 16 fragments of 64 KiB is echoed as one message',
    run: async (c) => {
      const pieces = chop(msg, 64 * KiB);
      c.write(Buffer.concat(pieces.map((p, i) => frame({
        opcode: i === 0 ? OP.BINARY : OP.CONT, fin: i === pieces.length - 1, payload: p,
      }))));
    },
    expect: { messages: [B(msg)], close: normalClose },
  });
}

// ---------------------------------------------------------------------------------------------
// 6 UTF-8
add({
  id: '6.1.1',
  name: 'text in 3 empty fragments is echoed as one empty text message',
  run: async (c) => c.write(Buffer.concat([text('', { fin: false }), cont('', { fin: false }), cont('')])),
  expect: { messages: [T('')], close: normalClose },
});
add({
  id: '6.1.2',
  name: 'text with payload then an empty final fragment is echoed',
  run: async (c) => c.write(Buffer.concat([text('middle', { fin: false }), cont('')])),
  expect: { messages: [T('middle')], close: normalClose },
});
{
  const multi = Buffer.from('Hello-µ@ßöäüàá-UTF-8!! κόσμε ⌘ 日本語 𝄞 😀 ﷽', 'utf8');
  add(echoCase('6.2.1', 'valid multilingual UTF-8 text in one frame is echoed', OP.TEXT, multi));
  add({
    id: '6.2.2',
    name: 'valid multilingual UTF-8 text fragmented at code point boundaries is echoed',
    run: async (c) => {
      const chars = [...multi.toString('utf8')].map((ch) => Buffer.from(ch, 'utf8'));
      c.write(Buffer.concat(chars.map((p, i) => frame({
        opcode: i === 0 ? OP.TEXT : OP.CONT, fin: i === chars.length - 1, payload: p,
      }))));
    },
    expect: { messages: [T(multi)], close: normalClose },
  });
  add({
    id: '6.2.3',
    name: 'valid multilingual UTF-8 text in one-byte fragments (code points split across frames) is echoed',
    run: async (c) => c.write(Buffer.concat([...multi].map((byte, i) => frame({
      opcode: i === 0 ? OP.TEXT : OP.CONT, fin: i === multi.length - 1, payload: Buffer.from([byte]),
    })))),
    expect: { messages: [T(multi)], close: normalClose },
  });
  add(echoCase('6.2.4', 'valid multilingual UTF-8 text frame written one byte per write is echoed',
    OP.TEXT, multi, { writeIn: 1, delayMs: 1 }));
}
{
  const valid = [
    ['U+0000', '00'], ['U+007F', '7f'], ['U+0080', 'c2 80'], ['U+07FF', 'df bf'],
    ['U+0800', 'e0 a0 80'], ['U+D7FF', 'ed 9f bf'], ['U+E000', 'ee 80 80'], ['U+FFFD', 'ef bf bd'],
    ['U+FFFF', 'ef bf bf'], ['U+10000', 'f0 90 80 80'], ['U+10FFFF', 'f4 8f bf bf'],
  ];
  valid.forEach(([cp, bytes], i) => {
    add(echoCase(`6.3.${i + 1}`, `boundary code point ${cp} (${bytes}) is valid and echoed`,
      OP.TEXT, Buffer.concat([Buffer.from('a'), hex(bytes), Buffer.from('z')])));
  });
}
{
  // κόσμε followed by a UTF-16 surrogate (ED A0 80) and "edited" (Autobahn 6.3.1/6.3.2).
  const kosme = hex('ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64');
  add(failCase('6.4.1', 'text containing an encoded surrogate (ED A0 80) closes with 1007', 1007,
    () => [text(kosme)]));
  add(failCase('6.4.2', 'text containing an encoded surrogate, in one-byte fragments, closes with 1007', 1007,
    () => [...kosme].map((byte, i) => frame({
      opcode: i === 0 ? OP.TEXT : OP.CONT, fin: i === kosme.length - 1, payload: Buffer.from([byte]),
    }))));
}
{
  const invalid = [
    ['lone continuation byte 80', '80'],
    ['lone continuation byte BF', 'bf'],
    ['two continuation bytes 80 BF', '80 bf'],
    ['2-byte lead without continuation (C2 20)', 'c2 20'],
    ['overlong 2-byte NUL (C0 80)', 'c0 80'],
    ['overlong 2-byte (C1 BF)', 'c1 bf'],
    ['overlong 3-byte NUL (E0 80 80)', 'e0 80 80'],
    ['overlong 3-byte (E0 9F BF)', 'e0 9f bf'],
    ['overlong 4-byte NUL (F0 80 80 80)', 'f0 80 80 80'],
    ['overlong 4-byte (F0 8F BF BF)', 'f0 8f bf bf'],
    ['high surrogate U+D800 (ED A0 80)', 'ed a0 80'],
    ['low surrogate U+DFFF (ED BF BF)', 'ed bf bf'],
    ['code point above U+10FFFF (F4 90 80 80)', 'f4 90 80 80'],
    ['lead byte F5', 'f5 80 80 80'],
    ['5-byte sequence (F8 88 80 80 80)', 'f8 88 80 80 80'],
    ['6-byte sequence (FC 84 80 80 80 80)', 'fc 84 80 80 80 80'],
    ['byte FE', 'fe'],
    ['byte FF', 'ff'],
    ['3-byte sequence missing its last byte (E2 82) mid-text', 'e2 82'],
  ];
  invalid.forEach(([label, bytes], i) => {
    add(failCase(`6.5.${i + 1}`, `text with ${label} closes with 1007`, 1007,
      () => [text(Buffer.concat([Buffer.from('abc'), hex(bytes), Buffer.from('xyz')]))]));
  });
  const n = invalid.length;
  add(failCase(`6.5.${n + 1}`, 'text ending inside a 3-byte sequence (E2 82) closes with 1007', 1007,
    () => [text(Buffer.concat([Buffer.from('abc'), hex('e2 82')]))]));
  add(failCase(`6.5.${n + 2}`, 'fragmented text ending inside a 4-byte sequence (F0 9F 98) closes with 1007',
    1007, () => [text('abc', { fin: false }), cont(hex('f0 9f'), { fin: false }), cont(hex('98'))]));
  add(failCase(`6.5.${n + 3}`, 'close reason that is not UTF-8 (lone 80) closes with 1007', 1007,
    () => [close(1000, hex('80'))]));
}
{
  // Fail fast (Autobahn 6.4.x): the invalid bytes arrive while the message is still incomplete.
  // wsbridge validates UTF-8 incrementally and must close with 1007 right after the part that
  // holds the invalid byte; `ws` validates a text message only once it is complete, so directly
  // the close comes only after the last part. Both close with 1007; `extra.closedAfterPart`
  // records after which part (1-based) the close arrived.
  const failFast = (id, name, parts, invalidPart) => ({
    id,
    name,
    run: async (c) => {
      let closedAfterPart = null;
      for (let i = 0; i < parts.length; i++) {
        if (!c.write(parts[i])) break;
        if (await c.waitFor((x) => x.close !== null || x.closed, 500)) {
          closedAfterPart = i + 1;
          break;
        }
      }
      return { closedAfterPart };
    },
    expect: { close: err(1007), extra: { closedAfterPart: invalidPart } },
    direct: { extra: { closedAfterPart: parts.length } },
  });
  // One frame in chops: header + valid prefix + invalid byte, then the rest of the payload.
  {
    const payload = Buffer.concat([Buffer.from('Hello-'), hex('f4 90 80 80'), Buffer.from('-rest of the message')]);
    const f = text(payload);
    const split = f.length - Buffer.byteLength('-rest of the message');
    add(failFast('6.6.1',
      'fail fast: invalid byte in the first chop of a frame closes with 1007 before the rest is sent ' +
      '(ws: only after the whole frame)', [f.subarray(0, split), f.subarray(split)], 1));
  }
  {
    const p1 = Buffer.from('κόσμε'), p2 = hex('f4 90 80 80'), p3 = Buffer.from('edited');
    const f = text(Buffer.concat([p1, p2, p3]));
    const a = f.length - p2.length - p3.length;
    const b = f.length - p3.length;
    add(failFast('6.6.2',
      'fail fast: invalid middle chop of a frame closes with 1007 before the last chop ' +
      '(ws: only after the whole frame)', [f.subarray(0, a), f.subarray(a, b), f.subarray(b)], 2));
  }
  add(failFast('6.6.3',
    'fail fast: invalid second of three fragments closes with 1007 before the third ' +
    '(ws: only after the last fragment)',
    [text('κόσμε', { fin: false }), cont(hex('f4 90 80 80'), { fin: false }), cont('edited')], 2));
  add(failFast('6.6.4',
    'fail fast: code point broken across fragments (F0 | 20) closes with 1007 before the last ' +
    'fragment (ws: only after the last fragment)',
    [text(Buffer.concat([Buffer.from('ab'), hex('f0')]), { fin: false }), cont(' cd', { fin: false }), cont('ef')],
    2));
}

// ---------------------------------------------------------------------------------------------
// 7 Close handling
add({
  id: '7.1.1',
  name: 'text is echoed, then a normal close (1000) is answered with 1000',
  run: async (c) => {
    c.write(text('Hello World!'));
    await c.waitMessages(1);
    c.sendClose(1000);
  },
  expect: { messages: [T('Hello World!')], close: { code: 1000, reason: '' } },
});
add({
  id: '7.1.2',
  name: 'a second close frame after the first is ignored',
  run: async (c) => {
    c.sendClose(1000);
    c.write(close(1000));
  },
  expect: { close: normalClose },
});
add({
  id: '7.1.3',
  name: 'ping after close is not answered',
  run: async (c) => {
    c.sendClose(1000);
    c.write(ping('after close'));
  },
  expect: { close: normalClose },
});
add({
  id: '7.1.4',
  name: 'text after close is not echoed',
  run: async (c) => {
    c.sendClose(1000);
    c.write(text('after close'));
  },
  expect: { close: normalClose },
});
add({
  id: '7.1.5',
  name: 'fragment, close, continuation: close answered, message not delivered',
  run: async (c) => {
    c.write(Buffer.concat([text('fragment1', { fin: false }), close(1000), cont('fragment2')]));
    c.closeSent = true;
  },
  expect: { close: normalClose },
});
{
  const big = asciiText(64 * KiB);
  add({
    id: '7.1.6',
    name: '64 KiB text followed by close in the same write: echo arrives before the close',
    run: async (c) => {
      c.write(Buffer.concat([text(big), close(1000)]));
      c.closeSent = true;
    },
    expect: { messages: [T(big)], close: normalClose },
  });
}
add({
  id: '7.3.1',
  name: 'empty close is answered with an empty close (code 1005 semantics)',
  run: async (c) => c.sendClose(null),
  expect: { close: { code: null, reason: '' } },
});
add(failCase('7.3.2', 'close with a 1-byte payload closes with 1002', 1002,
  () => [frame({ opcode: OP.CLOSE, payload: hex('03') })]));
add({
  id: '7.3.3',
  name: 'close 1000 without reason is answered with 1000',
  run: async (c) => c.sendClose(1000),
  expect: { close: { code: 1000, reason: '' } },
});
add({
  id: '7.3.4',
  name: 'close 1000 with reason is answered with the same code and reason',
  run: async (c) => c.sendClose(1000, 'Hello World!'),
  expect: { close: { code: 1000, reason: 'Hello World!' } },
});
{
  const reason123 = 'r'.repeat(123);
  add({
    id: '7.3.5',
    name: 'close 1000 with a 123-byte reason (125-byte payload) is answered with the same reason',
    run: async (c) => c.sendClose(1000, reason123),
    expect: { close: { code: 1000, reason: reason123 } },
  });
}
add(failCase('7.3.6', 'close with a 124-byte reason (126-byte payload) closes with 1002', 1002,
  () => [close(1000, 'r'.repeat(124))]));
add(failCase('7.5.1', 'close 1000 with an invalid UTF-8 reason closes with 1007', 1007,
  () => [close(1000, Buffer.concat([Buffer.from('κόσμε'), hex('ed a0 80'), Buffer.from('edited')]))]));
{
  const valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
  valid.forEach((code, i) => add({
    id: `7.7.${i + 1}`,
    name: `close with valid code ${code} is answered with ${code} and the same reason`,
    run: async (c) => c.sendClose(code, `code ${code}`),
    expect: { close: { code, reason: `code ${code}` } },
  }));
  const invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
  invalid.forEach((code, i) => add(failCase(`7.9.${i + 1}`,
    `close with invalid code ${code} closes with 1002`, 1002, () => [close(code)])));
}
add({
  id: '7.10.1',
  name: 'server-initiated close 4001 "bye" reaches the client with code and reason',
  path: '/close?code=4001&reason=bye',
  run: async () => {},
  expect: { close: { code: 4001, reason: 'bye' } },
});
add({
  id: '7.10.2',
  name: 'server-initiated close after an echoed message: message first, then 4002 "done"',
  path: '/close?code=4002&reason=done&after=message',
  run: async (c) => c.write(text('last words')),
  expect: { messages: [T('last words')], close: { code: 4002, reason: 'done' } },
});

// ---------------------------------------------------------------------------------------------
// 9 Limits. Through the proxy the route /echo-64k has max_message 64k and forwards to the
// backend's unlimited /echo, so the proxy itself must enforce the limit; directly, the backend's
// /echo-64k (ws maxPayload 64 KiB) is the strict reference.
const LIMIT = 64 * KiB;
add({
  ...echoCase('9.1.1', 'text of exactly max_message (64 KiB) is echoed [direct: ws maxPayload 64 KiB]',
    OP.TEXT, asciiText(LIMIT)),
  path: '/echo-64k',
});
add({
  ...failCase('9.1.2', 'text of max_message + 1 closes with 1009 [direct: ws maxPayload 64 KiB]', 1009,
    () => [text(asciiText(LIMIT + 1))]),
  path: '/echo-64k',
});
add({
  ...failCase('9.1.3',
    'binary of max_message + 1 in 3 fragments closes with 1009 [direct: ws maxPayload 64 KiB]', 1009,
    () => [binary(randomBinary(LIMIT / 2), { fin: false }), cont(randomBinary(LIMIT / 2), { fin: false }),
      cont(randomBinary(1))]),
  path: '/echo-64k',
});
{
  const parts = [randomBinary(LIMIT / 2), randomBinary(LIMIT / 2)];
  add({
    id: '9.1.4',
    name: 'binary of exactly max_message in 2 fragments is echoed [direct: ws maxPayload 64 KiB]',
    path: '/echo-64k',
    run: async (c) => c.write(Buffer.concat([binary(parts[0], { fin: false }), cont(parts[1])])),
    expect: { messages: [B(Buffer.concat(parts))], close: normalClose },
  });
}
add({
  ...failCase('9.1.5',
    'frame header declaring 2^40 bytes closes with 1009 before any payload [direct: ws maxPayload 64 KiB]',
    1009, () => [frame({ opcode: OP.BINARY, length: 2n ** 40n, payload: Buffer.alloc(0) })]),
  path: '/echo-64k',
});
add({
  ...failCase('9.1.6', 'frame header declaring 2^40 bytes on the 2 MiB route closes with 1009', 1009,
    () => [frame({ opcode: OP.BINARY, length: 2n ** 40n, payload: Buffer.alloc(0) })]),
});

// ---------------------------------------------------------------------------------------------
// 10 Framing edge cases
add(failCase('10.1', 'unmasked client text frame closes with 1002', 1002,
  () => [text('Hello', { mask: false })]));
add(failCase('10.2', 'unmasked client ping closes with 1002', 1002, () => [ping('Hello', { mask: false })]));
add(failCase('10.3',
  '64-bit length with the most significant bit set closes with 1002 (RFC 6455 §5.2) [ws: 1009]', 1002,
  () => [frame({ opcode: OP.BINARY, length: 2n ** 63n + 5n, payload: Buffer.alloc(0) })],
  // ws reports any length above 2^53-1 as "too big" (1009) instead of a protocol error.
  { direct: { close: err(1009) } }));
{
  // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length". wsbridge
  // rejects a non-minimal encoding as a protocol error (1002); ws accepts it and echoes.
  const lenCase = (id, name, opcode, payload, lenBytes) => ({
    id,
    name,
    run: async (c) => c.write(frame({ opcode, payload, lenBytes })),
    expect: { close: err(1002) },
    direct: { messages: [{ opcode, payload }], close: normalClose },
  });
  add(lenCase('10.4', 'non-minimal length: 5-byte text with a 16-bit length closes with 1002 [ws: echoes]',
    OP.TEXT, Buffer.from('Hello'), 2));
  add(lenCase('10.5', 'non-minimal length: 5-byte text with a 64-bit length closes with 1002 [ws: echoes]',
    OP.TEXT, Buffer.from('Hello'), 8));
  add(lenCase('10.6', 'non-minimal length: 300-byte binary with a 64-bit length closes with 1002 [ws: echoes]',
    OP.BINARY, randomBinary(300), 8));
  // A control frame may only use the 7-bit length: ws rejects this one too.
  add({ ...lenCase('10.7', 'non-minimal length: empty ping with a 16-bit length closes with 1002',
    OP.PING, Buffer.alloc(0), 2), direct: undefined });
}
add({
  id: '10.8',
  name: 'text masked with an all-zero key is echoed',
  run: async (c) => c.write(text('zero mask', { mask: Buffer.alloc(4) })),
  expect: { messages: [T('zero mask')], close: normalClose },
});

// ---------------------------------------------------------------------------------------------
// 11 Opening handshake
const req = (opts) => ({ hostPort }) => upgradeRequest({ host: hostPort, ...opts }).request;
add({
  id: '11.1',
  name: 'valid handshake gets 101 with the right Sec-WebSocket-Accept and no extension',
  kind: 'http',
  key: 'dGhlIHNhbXBsZSBub25jZQ==',
  request: req({ key: 'dGhlIHNhbXBsZSBub25jZQ==' }),
  expect: {
    status: 101,
    headers: { upgrade: 'websocket', 'sec-websocket-accept': 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' },
    absent: ['sec-websocket-extensions'],
  },
});
add({
  id: '11.2',
  name: 'missing Sec-WebSocket-Key is rejected with 400',
  kind: 'http',
  request: req({ headers: { 'Sec-WebSocket-Key': null } }),
  expect: { status: 400 },
});
add({
  id: '11.3',
  name: 'Sec-WebSocket-Key of 15 bytes (base64) is rejected with 400',
  kind: 'http',
  request: req({ key: crypto.randomBytes(15).toString('base64') }),
  expect: { status: 400 },
});
add({
  id: '11.4',
  name: 'Sec-WebSocket-Key that is not base64 is rejected with 400',
  kind: 'http',
  request: req({ key: 'not*valid*base64*key*!==' }),
  expect: { status: 400 },
});
add({
  id: '11.5',
  name: 'Sec-WebSocket-Version 8 is rejected with 426 and Sec-WebSocket-Version: 13 [ws: accepts 8]',
  kind: 'http',
  request: req({ headers: { 'Sec-WebSocket-Version': '8' } }),
  expect: { status: 426, headers: { 'sec-websocket-version': '13' } },
  direct: { status: 101, headers: {} },
});
add({
  id: '11.6',
  name: 'Sec-WebSocket-Version 12 is rejected with 426 and Sec-WebSocket-Version: 13 [ws: 400, "13, 8"]',
  kind: 'http',
  request: req({ headers: { 'Sec-WebSocket-Version': '12' } }),
  expect: { status: 426, headers: { 'sec-websocket-version': '13' } },
  direct: { status: 400, headers: { 'sec-websocket-version': '13, 8' } },
});
add({
  id: '11.7',
  name: 'missing Sec-WebSocket-Version is rejected (400, or 426 with Sec-WebSocket-Version: 13) [ws: 400]',
  kind: 'http',
  request: req({ headers: { 'Sec-WebSocket-Version': null } }),
  expect: { status: [400, 426] },
  direct: { status: 400 },
});
add({
  id: '11.8',
  name: 'POST with Upgrade: websocket is rejected with 400 [ws: 405]',
  kind: 'http',
  request: req({ method: 'POST' }),
  expect: { status: 400 },
  direct: { status: 405 },
});
add({
  id: '11.9',
  name: 'HTTP/1.0 upgrade request is rejected with 400 [ws: accepts]',
  kind: 'http',
  request: req({ httpVersion: '1.0' }),
  expect: { status: 400 },
  direct: { status: 101 },
});
add({
  id: '11.10',
  name: 'Upgrade: h2c is rejected with 400',
  kind: 'http',
  request: req({ headers: { Upgrade: 'h2c' } }),
  expect: { status: 400 },
});
add({
  id: '11.11',
  name: 'Upgrade: websocket without Connection: Upgrade is rejected with 400 [example backend: 426]',
  kind: 'http',
  request: req({ headers: { Connection: null } }),
  expect: { status: 400 },
  // Node's HTTP server does not treat it as an upgrade; the example backend's plain-HTTP
  // handler answers 426 on WebSocket paths.
  direct: { status: 426 },
});
add({
  id: '11.12',
  name: 'missing Host header is rejected with 400 (RFC 6455 §4.2.1) [ws: accepts]',
  kind: 'http',
  request: req({ headers: { Host: null } }),
  expect: { status: 400 },
  direct: { status: 101 },
});
add({
  id: '11.13',
  name: 'Upgrade: WebSocket / Connection: Upgrade (mixed case) is accepted',
  headers: { Upgrade: 'WebSocket', Connection: 'Upgrade' },
  run: async (c) => c.write(text('mixed case')),
  expect: { messages: [T('mixed case')], close: normalClose },
});
add({
  id: '11.14',
  name: 'Upgrade: WEBSOCKET / Connection: keep-alive, UPGRADE is accepted',
  headers: { Upgrade: 'WEBSOCKET', Connection: 'keep-alive, UPGRADE' },
  run: async (c) => c.write(text('upper case')),
  expect: { messages: [T('upper case')], close: normalClose },
});
add({
  id: '11.15',
  name: 'lower-case header names and upgrade/connection values are accepted',
  headers: {
    upgrade: 'websocket', connection: 'upgrade', 'sec-websocket-key': randomKey(), 'sec-websocket-version': '13',
  },
  run: async (c) => c.write(text('lower case')),
  expect: { messages: [T('lower case')], close: normalClose },
});
add({
  id: '11.16',
  name: 'frames pipelined right behind the upgrade request are delivered after the 101',
  pipelined: () => Buffer.concat([text('pipelined 1'), binary(hex('00ff')), ping('pipelined ping')]),
  run: async () => {},
  expect: {
    messages: [T('pipelined 1'), B(hex('00ff'))],
    pongs: [Buffer.from('pipelined ping')],
    close: normalClose,
  },
});
add({
  id: '11.17',
  name: 'permessage-deflate offer is not accepted (no Sec-WebSocket-Extensions), data still relayed',
  headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' },
  checkResponse: (conn) => ('sec-websocket-extensions' in conn.headers ? ['extension accepted'] : []),
  run: async (c) => c.write(text('uncompressed')),
  expect: { messages: [T('uncompressed')], close: normalClose },
});

// ---------------------------------------------------------------------------------------------
// 12 Strict order on a violation: valid messages and the violation in ONE write, as the public
// Autobahn suite sends them (its 3.2-3.4, 4.1.3-4.1.5, 4.2.3-4.2.5 and 5.15). The echo of every
// earlier, valid message must arrive before the close: a relay that closes the client at once,
// before the backend's replies came back, is what Autobahn calls NON-STRICT (issue 10).
{
  const strict = (id, name, bad, messages = [T('Hello, world!')]) => ({
    id,
    name,
    run: async (c) => c.write(Buffer.concat([text('Hello, world!'), ...bad()])),
    expect: { messages, close: err(1002) },
  });
  add(strict('12.1', 'echoed text, text with RSV2 and a ping in one write: echo, then 1002, no pong [Autobahn 3.2/3.3]',
    () => [text('Hello', { rsv: 2 }), ping('after')]));
  add(strict('12.2', 'echoed text, then binary with RSV1+RSV3, in one write: echo, then 1002 [Autobahn 3.4]',
    () => [binary(hex('00ff'), { rsv: 5 }), ping('after')]));
  for (const [sub, op] of [[3, 3], [4, 4], [5, 5], [6, 0xb], [7, 0xc], [8, 0xd]]) {
    add(strict(`12.${sub}`,
      `echoed text, then reserved opcode 0x${op.toString(16).toUpperCase()} and a ping, in one write: echo, then 1002 [Autobahn 4.x.3-5]`,
      () => [frame({ opcode: op, payload: 'reserved opcode payload' }), ping('after')]));
  }
  add({
    id: '12.9',
    name: 'fragmented text, a continuation with nothing to continue, a text, in one write: echo, then 1002 [Autobahn 5.15]',
    run: async (c) => c.write(Buffer.concat([text('fragment1', { fin: false }), cont('fragment2'),
      cont('fragment3', { fin: false }), cont('fragment4'), text('after')])),
    expect: { messages: [T('fragment1fragment2')], close: err(1002) },
  });
}

// Sanity: ids are unique.
{
  const seen = new Set();
  for (const c of cases) {
    if (seen.has(c.id)) throw new Error(`duplicate case id ${c.id}`);
    seen.add(c.id);
  }
}

export default cases;
