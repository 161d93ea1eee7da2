// RFC 6455 conformance suite (cases in lib/conformance-cases.mjs), driven with raw sockets.
// Every case runs three times: directly against the strict `ws` backend (the reference), through
// wsbridge's plain listener (ws://) and through its TLS listener (wss://, a test CA made at test
// time by lib/tls.mjs), asserting the exact observable result each time. The wss run uses the
// cases' `proxy` expectations (TLS must change nothing a WebSocket client can observe) unless a
// case has a `wss` entry of its own.
//
//   node --test tests/e2e/conformance.test.mjs
//   CONFORMANCE_DIRECT_ONLY=1 node --test tests/e2e/conformance.test.mjs   # no proxy needed
//   CONFORMANCE_TARGETS=wss node --test tests/e2e/conformance.test.mjs     # direct,proxy,wss
//   CONFORMANCE_CASES='^(6|7)\.' node --test tests/e2e/conformance.test.mjs  # filter by id
//   WSBRIDGE_BIN=/path/to/wsbridge node --test tests/e2e/conformance.test.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import cases from './lib/conformance-cases.mjs';
import { acceptFor, openWs, rawConnect } from './lib/rawws.mjs';
import { startBackend, startProxy, proxyConfig, proxySkip } from './lib/harness.mjs';
import { makePki, opensslSkip } from './lib/tls.mjs';

const DIRECT_ONLY = process.env.CONFORMANCE_DIRECT_ONLY === '1';
const FILTER = process.env.CONFORMANCE_CASES ? new RegExp(process.env.CONFORMANCE_CASES) : null;
const TARGETS = new Set((process.env.CONFORMANCE_TARGETS || 'direct,proxy,wss').split(',').map((t) => t.trim()));
const targetSkip = (t) => (TARGETS.has(t) ? false : `CONFORMANCE_TARGETS=${process.env.CONFORMANCE_TARGETS}`);
const CASE_TIMEOUT_MS = 20000;

const selected = FILTER ? cases.filter((c) => FILTER.test(c.id)) : cases;

/** The case's override key for a target: the wss run shares the proxy's unless it has its own. */
const overrideKey = (c, target) => (target === 'wss' && !c.wss ? 'proxy' : target);
const viaProxy = (target) => target !== 'direct';

/** The expectation of case c for target ('direct' | 'proxy' | 'wss'); null when skipped. */
function expectationFor(c, target) {
  const override = c[overrideKey(c, target)] || {};
  return { ...c.expect, ...override };
}

function skipFor(c, target) {
  return c[overrideKey(c, target)]?.skip || false;
}

const OPNAME = { 1: 'text', 2: 'binary' };
function summarize(payload) {
  const b = Buffer.from(payload);
  if (b.length <= 48) return `${b.length}:${b.toString('hex')}`;
  return `${b.length}:sha1=${crypto.createHash('sha1').update(b).digest('hex')}`;
}
const messageSummary = (m) => `${OPNAME[m.opcode] ?? `op${m.opcode}`} ${summarize(m.payload)}`;

async function runWsCase(c, target, port, tls) {
  const exp = expectationFor(c, target);
  const conn = await openWs({ port, path: c.path ?? '/echo', headers: c.headers, pipelined: c.pipelined?.(), tls });
  try {
    const responseProblems = c.checkResponse ? c.checkResponse(conn) : [];
    const extra = await c.run(conn);
    const wantMessages = exp.messages?.length ?? 0;
    const wantPongs = exp.pongs?.length ?? 0;
    await conn.waitFor(
      (x) => (x.messages.length >= wantMessages && x.pongs.length >= wantPongs) || x.close !== null || x.closed,
      10000,
    );
    // A normal end: the client starts the close handshake unless one is already under way or
    // the peer is expected to close (error codes, server-initiated closes).
    if (!conn.closeSent && conn.close === null && !conn.closed && exp.close?.code === 1000) conn.sendClose(1000);
    await conn.waitClose(5000);
    await conn.waitClosed(5000);

    const observed = {
      messages: conn.messages.map(messageSummary),
      pongs: conn.pongs.map(summarize),
      close: conn.close === null ? null
        : 'reason' in (exp.close ?? {}) ? { code: conn.close.code, reason: conn.close.reason }
          : { code: conn.close.code },
      peerClosedTcpFirst: conn.peerClosedFirst,
      violations: [...responseProblems, ...conn.violations],
      extra: exp.extra === undefined ? undefined : extra,
    };
    const expected = {
      messages: (exp.messages ?? []).map(messageSummary),
      pongs: (exp.pongs ?? []).map(summarize),
      close: exp.close ?? null,
      peerClosedTcpFirst: true,
      violations: [],
      extra: exp.extra,
    };
    assert.deepStrictEqual(observed, expected);
  } finally {
    conn.destroy();
  }
}

function isJsonError(body) {
  try {
    const j = JSON.parse(body);
    return typeof j.error === 'string' && typeof j.detail === 'string';
  } catch {
    return false;
  }
}

async function runHttpCase(c, target, port, backend, tls) {
  const exp = expectationFor(c, target);
  const statsBefore = viaProxy(target) ? await backend.stats() : null;
  const conn = await rawConnect({ port, request: c.request({ hostPort: `127.0.0.1:${port}` }), tls });
  try {
    const allowed = Array.isArray(exp.status) ? exp.status : [exp.status];
    const wantHeaders = { ...(exp.headers ?? {}) };
    if (viaProxy(target) && conn.status === 426) wantHeaders['sec-websocket-version'] = '13';
    if (conn.status === 101) {
      conn.sendClose(1000);
      await conn.waitClose(3000);
    }
    await conn.waitClosed(3000);
    const observed = {
      status: allowed.includes(conn.status) ? exp.status : conn.statusLine,
      headers: Object.fromEntries(Object.keys(wantHeaders).map((h) => [h, conn.headers[h]])),
      present: (exp.absent ?? []).filter((h) => h in conn.headers),
      // Every rejected upgrade ends with the server closing the connection.
      serverClosedTcp: conn.status === 101 ? true : conn.closed && conn.peerClosedFirst,
    };
    const expected = { status: exp.status, headers: wantHeaders, present: [], serverClosedTcp: true };
    if (viaProxy(target) && conn.status !== 101) {
      observed.jsonErrorBody = isJsonError(conn.body.toString('utf8'));
      expected.jsonErrorBody = true;
    }
    if (conn.status === 101 && c.key) {
      observed.accept = conn.headers['sec-websocket-accept'];
      expected.accept = acceptFor(c.key);
    }
    if (viaProxy(target) && conn.status !== 101) {
      const statsAfter = await backend.stats();
      // The /stats request itself is one connection; anything more reached the backend.
      observed.backendContacted = {
        connections: statsAfter.connections - statsBefore.connections - 1,
        upgrades: statsAfter.upgrades - statsBefore.upgrades,
      };
      expected.backendContacted = { connections: 0, upgrades: 0 };
    }
    assert.deepStrictEqual(observed, expected, `response: ${conn.statusLine}`);
  } finally {
    conn.destroy();
  }
}

function registerCases(target, getPorts) {
  for (const c of selected) {
    test(`${c.id} ${c.name}`, { timeout: CASE_TIMEOUT_MS, skip: skipFor(c, target) }, async () => {
      const { port, backend, tls } = getPorts();
      if (c.kind === 'http') await runHttpCase(c, target, port, backend, tls);
      else await runWsCase(c, target, port, tls);
    });
  }
}

let backend;
before(async () => {
  backend = await startBackend({ label: 'conformance' });
});
after(async () => {
  await backend?.stop();
});

describe('conformance direct (ws backend, the reference)', { skip: targetSkip('direct') }, () => {
  registerCases('direct', () => ({ port: backend.port, backend }));
});

/** The proxy's routes for the conformance runs (plain and TLS listeners alike). */
function conformanceRoutes() {
  const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
  const common = { idle_timeout: '60s', rate: { messages_per_second: 100000, burst: 100000 } };
  return [
    { path: '/echo', backend: be('/echo'), max_message: '2m', outbound_queue: '2m', replay_buffer: '2m', ...common },
    // The proxy must enforce this limit itself: its backend (/echo) allows 64 MiB.
    { path: '/echo-64k', backend: be('/echo'), max_message: '64k', ...common },
    { path: '/close', backend: be('/close'), max_message: '1m', ...common },
  ];
}

describe('conformance through wsbridge', { skip: DIRECT_ONLY ? 'CONFORMANCE_DIRECT_ONLY=1' : proxySkip() || targetSkip('proxy') }, () => {
  let proxy;
  before(async () => {
    proxy = await startProxy(proxyConfig(conformanceRoutes()), { label: 'conformance' });
  });
  after(async () => {
    await proxy?.stop();
  });
  registerCases('proxy', () => ({ port: proxy.port, backend }));
});

describe('conformance through wsbridge over wss (TLS listener)', {
  skip: DIRECT_ONLY ? 'CONFORMANCE_DIRECT_ONLY=1' : proxySkip() || opensslSkip() || targetSkip('wss'),
}, () => {
  let proxy;
  let pki;
  let tlsOptions;
  before(async () => {
    pki = makePki();
    // Verified like a browser would: the test CA, the host name 127.0.0.1 (an IP SAN).
    tlsOptions = { ca: pki.ca.pem.cert, servername: undefined };
    proxy = await startProxy(proxyConfig(conformanceRoutes(), {
      listen: [{ address: '127.0.0.1:0', tls: { cert: pki.server.cert, key: pki.server.key } }],
    }), { label: 'conformance-wss' });
    if (proxy.tlsPorts[0] !== proxy.port) throw new Error(`listener is not TLS: ${proxy.stderr().slice(0, 400)}`);
  });
  after(async () => {
    await proxy?.stop();
    pki?.cleanup();
  });
  registerCases('wss', () => ({ port: proxy.port, backend, tls: tlsOptions }));
});
