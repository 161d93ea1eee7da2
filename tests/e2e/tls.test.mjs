// TLS listeners (listen[].tls), end to end: real clients (Node `ws`/`tls`/`https`, curl, openssl
// s_client) against the wsbridge binary on OS-chosen loopback ports, with a test PKI made at test
// time (lib/tls.mjs). One proxy with five listeners:
//
//   main   tls: {cert, key}                  the localhost/127.0.0.1 certificate
//   sni    certificates: [server, other]     SNI picks other.test / *.other.test, else the first
//   tls13  min_version: "1.3"
//   mtls   client_ca: the test client CA    a client certificate it signed is required
//   plain  no TLS                            for "TLS sent to a plain port" and contrasts
//
// plus the admin listener (the wsbridge_tls_* metrics). limits.header_timeout is 1 s, so the hostile cases (truncated and dripped handshakes) have
// exact, short deadlines. Every wait and loop is bounded.
//
//   node --test tests/e2e/tls.test.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';

import { startBackend, startProxy, proxyConfig, proxySkip, withTimeout, sleep } from './lib/harness.mjs';
import { openWs, rawConnect, upgradeRequest } from './lib/rawws.mjs';
import { fdCount, memory, waitFor, alive, SANITIZERS } from './lib/procstat.mjs';
import { scrape, metricSum } from './lib/hostile.mjs';
import { makePki, opensslSkip } from './lib/tls.mjs';

const skip = proxySkip() || opensslSkip();
const T = 20000; // per-test timeout
const HEADER_TIMEOUT_MS = 1000;
const FLOOD = 300; // handshakes in the flood test
const FLOOD_CONCURRENCY = 25;
// RSS the proxy may keep after the flood, over its level after a warm-up of the same kind
// (not checked under ASan, whose quarantine keeps freed memory resident: as hostile_load does).
const FLOOD_RSS_BOUND_KIB = 4 * 1024;

let pki;
let backend;
let proxy;
let port; // main TLS listener
let sniPort;
let tls13Port;
let mtlsPort;
let plainPort;
let adminPort;
let ca;

// ---- helpers ----------------------------------------------------------------------------------

/** Runs a command with a time bound; resolves {code, stdout, stderr} (never rejects). */
function run(cmd, args, { ms = 10000, input } = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: ms, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

const curl = (args, ms = 10000) => run('curl', ['-sS', '--cacert', pki.ca.cert, ...args], { ms });

/**
 * An SSE stream read by curl (trusting the test CA; `args` before the URL, e.g. headers).
 * waitOut(re, what) resolves re's match on stdout so far (bounded); exited resolves curl's exit
 * code; kill() ends it (SIGKILL) if it still runs.
 */
function curlSse(url, args = []) {
  const child = spawn('curl', ['-sS', '-N', '--cacert', pki.ca.cert, '-m', '15', '-H', 'Accept: text/event-stream', ...args, url],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const r = { out: '', err: '' };
  child.stdout.on('data', (d) => (r.out += d));
  child.stderr.on('data', (d) => (r.err += d));
  r.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  r.waitOut = async (re, what) => {
    const deadline = Date.now() + 5000;
    while (!re.test(r.out)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; curl stdout: ${r.out} stderr: ${r.err}`);
      await sleep(20);
    }
    return re.exec(r.out);
  };
  r.kill = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
  return r;
}

/** openssl s_client against port; stdin closed at once. */
const sClient = (p, args) => run('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, '-CAfile', pki.ca.cert, ...args], { ms: 10000, input: '' });

/**
 * A TLS connection; resolves {socket, sessions} at 'secureConnect', rejects with the TLS error.
 * `sessions` collects the 'session' events (TLS 1.2: the session; 1.3: each ticket).
 */
function tlsConnect(p, opts = {}, ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const socket = tls.connect({ port: p, host: '127.0.0.1', ca, ...opts });
    const sessions = [];
    socket.on('session', (s) => sessions.push(s));
    socket.once('secureConnect', () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      resolve({ socket, sessions });
    });
    socket.once('error', reject);
  }), ms, `TLS handshake with port ${p}`);
}

/** Writes an HTTP request on a connected (TLS) socket and resolves the whole response text
 * once `done(text)` holds or the peer ends; rejects on error or after ms. */
function exchangeOn(socket, request, { done = (t) => /\r\n\r\n/.test(t), ms = 5000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    let got = '';
    const finish = () => resolve(got);
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (done(got)) finish();
    });
    socket.once('end', finish);
    socket.once('error', reject);
    socket.write(request);
  }), ms, `a response to ${request.split('\r\n')[0]}`);
}

/**
 * A raw TCP connection that writes `chunks` (Buffers) `gapMs` apart and records what comes
 * back. Resolves {bytes, endedAt, closedAt, error, reset, written} (ms from connect) once the
 * socket closed, or after ms (then timedOut: true and the socket is destroyed).
 */
function rawTcp(p, chunks, { gapMs = 0, ms = 5000 } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(p, '127.0.0.1');
    const r = { bytes: Buffer.alloc(0), endedAt: null, closedAt: null, error: null, reset: false, written: 0, timedOut: false };
    let t0 = performance.now();
    const at = () => Math.round(performance.now() - t0);
    socket.on('connect', async () => {
      t0 = performance.now();
      for (const c of chunks) {
        if (socket.destroyed || r.endedAt !== null) break;
        socket.write(c);
        r.written += c.length;
        if (gapMs) await sleep(gapMs);
      }
    });
    socket.on('data', (d) => { r.bytes = Buffer.concat([r.bytes, d]); });
    socket.on('end', () => { r.endedAt = at(); socket.end(); });
    socket.on('error', (e) => { r.error = e.code; r.reset = e.code === 'ECONNRESET'; });
    const timer = setTimeout(() => { r.timedOut = true; socket.destroy(); }, ms);
    socket.on('close', () => { clearTimeout(timer); r.closedAt = at(); resolve(r); });
  });
}

/** The bytes of `buf` parsed as TLS records: [{type, version, length}]; null if not records. */
function tlsRecords(buf) {
  const out = [];
  let i = 0;
  while (i < buf.length) {
    if (buf.length - i < 5) return null;
    const type = buf[i];
    const version = buf.readUInt16BE(i + 1);
    const length = buf.readUInt16BE(i + 3);
    if (type < 20 || type > 23 || (version >> 8) !== 3) return null;
    out.push({ type, version, length, body: buf.subarray(i + 5, i + 5 + length) });
    i += 5 + length;
  }
  return out;
}

/** A real ClientHello as Node sends it (captured on a throwaway listener). */
function captureClientHello(opts = {}) {
  return withTimeout(new Promise((resolve) => {
    const srv = net.createServer((s) => {
      let got = Buffer.alloc(0);
      s.on('data', (d) => {
        got = Buffer.concat([got, d]);
        const recs = tlsRecords(got);
        if (recs && recs.length >= 1 && got.length >= 5 + recs[0].length) {
          resolve(got.subarray(0, 5 + recs[0].length));
          s.destroy();
          srv.close();
        }
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: srv.address().port, host: '127.0.0.1', rejectUnauthorized: false, ...opts });
      c.on('error', () => {});
    });
  }), 5000, 'a ClientHello');
}

/**
 * Opens a Node `ws` client; resolves once open. ws.firstMessage resolves with the first message
 * (listened for from the start: it may arrive in the same read as the 101).
 */
function wsOpen(url, opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    ws.firstMessage = new Promise((res) => ws.once('message', (d) => res(d)));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  }), 5000, `WebSocket ${url} to open`);
}

/** Sends each message and resolves the echoes ([{text|binary}]) once all came back. */
function echoAll(ws, messages) {
  return withTimeout(new Promise((resolve, reject) => {
    const got = [];
    ws.on('message', (data, isBinary) => {
      got.push(isBinary ? { binary: Buffer.from(data).toString('hex') } : { text: data.toString() });
      if (got.length === messages.length) resolve(got);
    });
    ws.once('error', reject);
    for (const m of messages) ws.send(m.text ?? Buffer.from(m.binary, 'hex'), { binary: m.text === undefined });
  }), 5000, `${messages.length} echoes`);
}

/** An HTTPS request through Node `https` trusting the test CA. */
function httpsRequest(p, method, reqPath, { headers = {}, body, ms = 5000, tlsOpts = {} } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: p, method, path: reqPath, headers, ca, agent: false, ...tlsOpts }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  }), ms, `${method} ${reqPath}`);
}

// ---- setup ------------------------------------------------------------------------------------

describe('TLS listeners', { skip }, () => {
  before(async () => {
    pki = makePki();
    ca = pki.ca.pem.cert;
    backend = await startBackend({ label: 'tls' });
    const be = (p) => `ws://127.0.0.1:${backend.port}${p}`;
    const route = { transports: ['websocket', 'sse', 'longpoll'], idle_timeout: '60s', rate: { messages_per_second: 100000, burst: 100000 } };
    const server = { cert: pki.server.cert, key: pki.server.key };
    proxy = await startProxy(proxyConfig([
      { path: '/echo', backend: be('/echo'), ...route },
      { path: '/headers', backend: be('/headers'), ...route },
    ], {
      listen: [
        { address: '127.0.0.1:0', tls: server },
        { address: '127.0.0.1:0', tls: { certificates: [server, { cert: pki.other.cert, key: pki.other.key }] } },
        { address: '127.0.0.1:0', tls: { ...server, min_version: '1.3' } },
        { address: '127.0.0.1:0', tls: { ...server, client_ca: pki.clientCa.cert } },
        '127.0.0.1:0',
      ],
      extra: `admin: { address: 127.0.0.1:0 }\nlimits:\n  header_timeout: ${HEADER_TIMEOUT_MS}ms\n  max_connections_per_ip: 1000\n`,
    }), { listeners: 5, label: 'tls' });
    adminPort = Number((await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
    [port, sniPort, tls13Port, mtlsPort, plainPort] = proxy.ports;
    assert.deepEqual(proxy.tlsPorts, [port, sniPort, tls13Port, mtlsPort], 'four listeners log tls=on');
  });

  after(async () => {
    await proxy?.stop();
    await backend?.stop();
    pki?.cleanup();
  });

  // ---- every transport over TLS ---------------------------------------------------------------

  describe('wss and https clients', () => {
    test('wss echo with Node ws (test CA), by IP and by name; text and binary', { timeout: T }, async () => {
      for (const host of ['127.0.0.1', 'localhost']) {
        const ws = await wsOpen(`wss://${host}:${port}/echo`, { ca });
        const msgs = [{ text: `hello over wss via ${host}` }, { binary: '00ff10' }, { text: 'x'.repeat(70000) }];
        assert.deepEqual(await echoAll(ws, msgs), msgs);
        assert.equal(ws._socket.getProtocol(), 'TLSv1.3');
        ws.close(1000);
      }
    });

    test('wss without the test CA is refused by the client (the certificate is really checked)', { timeout: T }, async () => {
      await assert.rejects(wsOpen(`wss://127.0.0.1:${port}/echo`), (err) => {
        assert.match(err.code ?? err.message, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
        return true;
      });
    });

    test('same-origin over TLS means https://host:port (Origin http:// is refused 403)', { timeout: T }, async () => {
      const tlsOpts = { ca };
      const good = await openWs({ port, path: '/echo', headers: { Origin: `https://127.0.0.1:${port}` }, tls: tlsOpts });
      good.destroy();
      const { request } = upgradeRequest({ path: '/echo', host: `127.0.0.1:${port}`, headers: { Origin: `http://127.0.0.1:${port}` } });
      const bad = await rawConnect({ port, request, tls: tlsOpts });
      assert.equal(bad.status, 403, bad.statusLine);
      bad.destroy();
    });

    test('curl https: SSE stream, POST ?session=S&seq=1 echoed on it, DELETE ends it', { timeout: T }, async () => {
      const sse = curlSse(`https://127.0.0.1:${port}/echo`);
      const { waitOut } = sse;
      try {
        const m = await waitOut(/event: session\ndata: (\{.*\})\n/, 'the session event');
        const announce = JSON.parse(m[1]);
        assert.match(announce.send, /^\/echo\?session=[A-Za-z0-9_-]{22}$/);
        const post = await curl(['-X', 'POST', '--data', 'hello over https', '-w', '\\n%{http_code}',
          `https://127.0.0.1:${port}${announce.send}&seq=1`]);
        assert.equal(post.code, 0, post.stderr);
        assert.equal(post.stdout, '{"next_seq":2}\n200');
        await waitOut(/\ndata: hello over https\nid: [A-Za-z0-9_-]{22}\.1\n\n/, 'the echoed message');
        const del = await curl(['-X', 'DELETE', '-o', '/dev/null', '-w', '%{http_code}',
          `https://127.0.0.1:${port}/echo?session=${announce.session}`]);
        assert.equal(del.stdout, '204');
        await waitOut(/event: close\ndata: \{"code":1000,/, 'the close event');
        // The stream then ends: curl exits 0 by itself (no -m timeout: that would be 28).
        assert.equal(await withTimeout(sse.exited, 5000, 'curl to end'), 0, sse.err);
      } finally {
        sse.kill();
      }
    });

    test('curl https: SSE resume by Last-Event-ID and by ?session=S&ack=N, byte-exact', { timeout: T }, async () => {
      // The full resume flows over https are in sessions.test.mjs (ctest e2e.sessions.tls, Node
      // clients); this is the same resume by a client that is not Node.
      const base = `https://127.0.0.1:${port}`;
      const first = curlSse(`${base}/echo`);
      let s;
      try {
        const announce = JSON.parse((await first.waitOut(/event: session\ndata: (\{.*\})\n/, 'the session event'))[1]);
        s = announce.session;
        const post = await curl(['-X', 'POST', '-H', 'Content-Type: application/json', '--data',
          '[{"text":"m1"},{"text":"m2"},{"text":"m3"}]', `${base}${announce.send}&seq=1&batch=1`]);
        assert.equal(post.stdout, '{"next_seq":4}', post.stderr);
        await first.waitOut(new RegExp(`\ndata: m3\nid: ${s}\\.3\n\n`), 'm3');
      } finally {
        first.kill();
      }
      const stream = (lastSeq, messages) => `retry: 1000\nevent: session\ndata: ${JSON.stringify({ session: s, send: `/echo?session=${s}`, heartbeat_ms: 30000, last_seq: lastSeq })}\n` +
        `id: ${s}.${lastSeq}\n\n${messages.map((n) => `data: m${n}\nid: ${s}.${n}\n\n`).join('')}`;
      // A client that had seen m1 reconnects as EventSource does, and a new one resumes by URL.
      for (const [what, url, args, lastSeq] of [['Last-Event-ID', `${base}/echo`, ['-H', `Last-Event-ID: ${s}.1`], 1],
        ['?session=&ack=', `${base}/echo?session=${s}&ack=2`, [], 2]]) {
        const again = curlSse(url, args);
        try {
          await again.waitOut(/\ndata: m3\n/, `m3 after resuming by ${what}`);
          await sleep(100); // nothing more may come
          assert.equal(again.out, stream(lastSeq, [2, 3].filter((n) => n > lastSeq)), `resume by ${what}`);
        } finally {
          again.kill();
        }
      }
      const del = await curl(['-X', 'DELETE', '-o', '/dev/null', '-w', '%{http_code}', `${base}/echo?session=${s}`]);
      assert.equal(del.stdout, '204');
    });

    test('curl https: long-poll open, POST, poll, DELETE', { timeout: T }, async () => {
      const base = `https://127.0.0.1:${port}`;
      const open = await curl([`${base}/echo?transport=longpoll`]);
      assert.equal(open.code, 0, open.stderr);
      const o = JSON.parse(open.stdout);
      assert.match(o.session, /^[A-Za-z0-9_-]{22}$/);
      const post = await curl(['-X', 'POST', '--data', 'poll me', `${base}${o.send}&seq=1`]);
      assert.equal(post.stdout, '{"next_seq":2}');
      // The echo may take a moment: poll (bounded) until it is there.
      let messages = [];
      for (let i = 0; i < 5 && messages.length === 0; i++) {
        const poll = await curl([`${base}${o.poll}&ack=0`]);
        assert.equal(poll.code, 0, poll.stderr);
        messages = JSON.parse(poll.stdout).messages;
      }
      assert.deepEqual(messages, [{ seq: 1, text: 'poll me' }]);
      const del = await curl(['-X', 'DELETE', '-o', '/dev/null', '-w', '%{http_code}', `${base}/echo?session=${o.session}`]);
      assert.equal(del.stdout, '204');
      const after = await curl([`${base}${o.poll}&ack=1`]);
      assert.deepEqual(JSON.parse(after.stdout).close?.code, 1000);
    });

    test('curl without --cacert fails verification (exit 60)', { timeout: T }, async () => {
      const r = await run('curl', ['-sS', `https://127.0.0.1:${port}/echo?transport=longpoll`]);
      assert.equal(r.code, 60, r.stderr);
    });

    test('X-Forwarded-Proto toward the backend: "https" from the TLS listener, "http" from the plain one', { timeout: T }, async () => {
      const seen = {};
      for (const [name, p, scheme] of [['tls', port, 'wss'], ['plain', plainPort, 'ws']]) {
        const ws = await wsOpen(`${scheme}://127.0.0.1:${p}/headers`, { ca });
        const relayed = JSON.parse(await withTimeout(ws.firstMessage, 5000, '/headers'));
        ws.close();
        // A session (long-poll) opens its own backend connection: same header.
        const lp = await (name === 'tls' ? httpsRequest(p, 'GET', '/headers?transport=longpoll')
          : run('curl', ['-sS', `http://127.0.0.1:${p}/headers?transport=longpoll`]).then((r) => ({ body: r.stdout })));
        const o = JSON.parse(lp.body);
        let messages = [];
        for (let i = 0; i < 5 && messages.length === 0; i++) {
          const poll = await (name === 'tls' ? httpsRequest(p, 'GET', `${o.poll}&ack=0`)
            : run('curl', ['-sS', `http://127.0.0.1:${p}${o.poll}&ack=0`]).then((r) => ({ body: r.stdout })));
          messages = JSON.parse(poll.body).messages;
        }
        const session = JSON.parse(messages[0].text);
        seen[name] = { relay: relayed.headers['x-forwarded-proto'], session: session.headers['x-forwarded-proto'] };
      }
      assert.deepEqual(seen, { tls: { relay: 'https', session: 'https' }, plain: { relay: 'http', session: 'http' } });
    });

    test('ws_closed and session_closed lines say whether the client hop was TLS', { timeout: T }, async () => {
      const wsLine = async (scheme, p) => {
        const ws = await wsOpen(`${scheme}://127.0.0.1:${p}/echo`, { ca });
        const client = `127.0.0.1:${ws._socket.localPort}`;
        ws.close(1000);
        return (await proxy.waitForLog(new RegExp(`event=ws_closed client=${client.replace(/\./g, '\\.')} .*`)))[0];
      };
      const sessionLine = async (p, secure) => {
        const req = (method, q) => (secure ? httpsRequest(p, method, q)
          : run('curl', ['-sS', '-X', method, `http://127.0.0.1:${p}${q}`]).then((r) => ({ body: r.stdout })));
        const o = JSON.parse((await req('GET', '/echo?transport=longpoll')).body);
        await req('DELETE', `/echo?session=${o.session}`);
        return (await proxy.waitForLog(new RegExp(`event=session_closed session=${o.session} .*`)))[0];
      };
      const lines = {
        wss: await wsLine('wss', port),
        ws: await wsLine('ws', plainPort),
        https: await sessionLine(port, true),
        http: await sessionLine(plainPort, false),
      };
      const tlsField = Object.fromEntries(Object.entries(lines).map(([k, l]) => [k, /\btls=(\S+)/.exec(l)?.[1] ?? `(none) ${l}`]));
      assert.deepEqual(tlsField, { wss: '1', ws: '0', https: '1', http: '0' });
    });
  });

  // ---- protocol versions, SNI, ALPN, resumption, client certificates ---------------------------

  describe('handshake policy', () => {
    test('TLS 1.2 and TLS 1.3 both complete (openssl s_client and Node)', { timeout: T }, async () => {
      for (const [flag, version] of [['-tls1_2', 'TLSv1.2'], ['-tls1_3', 'TLSv1.3']]) {
        const r = await sClient(port, [flag]);
        assert.match(r.stdout, new RegExp(`^New, ${version.replace('.', '\\.')}, Cipher is (\\S+)$`, 'm'), r.stdout + r.stderr);
        assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
        const { socket } = await tlsConnect(port, { minVersion: version, maxVersion: version });
        assert.equal(socket.getProtocol(), version);
        const res = await exchangeOn(socket, 'GET /echo?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { done: (t) => /"session"/.test(t) });
        assert.match(res, /^HTTP\/1\.1 200 /);
        socket.destroy();
      }
    });

    test('TLS 1.2 uses forward-secret AEAD suites only', { timeout: T }, async () => {
      const r = await sClient(port, ['-tls1_2']);
      const suite = /^New, TLSv1\.2, Cipher is (\S+)$/m.exec(r.stdout)?.[1];
      assert.match(suite ?? 'none', /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
      // A client offering only non-forward-secret or CBC suites gets no handshake.
      const weak = await sClient(port, ['-tls1_2', '-cipher', 'AES128-SHA:AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA']);
      assert.match(weak.stdout, /Cipher is \(NONE\)/);
      assert.match(weak.stderr, /alert handshake failure|no shared cipher/);
    });

    test('TLS 1.1 is refused with a protocol_version alert (openssl s_client -tls1_1)', { timeout: T }, async () => {
      // SECLEVEL=0 so that the refusal is the server's, not the client's own policy.
      const r = await sClient(port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /tlsv1 alert protocol version/);
      assert.match(r.stdout, /New, \(NONE\), Cipher is \(NONE\)/);
      const node = tlsConnect(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      await assert.rejects(node, /alert protocol version|ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION|unsupported protocol/i);
    });

    test('min_version 1.3 refuses TLS 1.2 and accepts TLS 1.3', { timeout: T }, async () => {
      const r12 = await sClient(tls13Port, ['-tls1_2']);
      assert.match(r12.stderr, /tlsv1 alert protocol version/);
      assert.match(r12.stdout, /Cipher is \(NONE\)/);
      await assert.rejects(tlsConnect(tls13Port, { maxVersion: 'TLSv1.2' }), /protocol version/i);
      const { socket } = await tlsConnect(tls13Port, { minVersion: 'TLSv1.3' });
      assert.equal(socket.getProtocol(), 'TLSv1.3');
      socket.destroy();
      // The main listener (default minimum 1.2) still takes 1.2: the option is per listener.
      const { socket: s12 } = await tlsConnect(port, { maxVersion: 'TLSv1.2' });
      assert.equal(s12.getProtocol(), 'TLSv1.2');
      s12.destroy();
    });

    test('SNI picks each certificate by its SAN names; the first is the default', { timeout: T }, async () => {
      const seen = {};
      for (const name of ['localhost', 'other.test', 'sub.other.test', 'unknown.test', 'a.b.other.test', null]) {
        const opts = name ? { servername: name } : {};
        // Verified against the test CA and the requested name, except where the default answers.
        const { socket } = await tlsConnect(sniPort, { ...opts, rejectUnauthorized: false });
        const cert = socket.getPeerCertificate();
        seen[name ?? '(no SNI)'] = { cn: cert.subject.CN, authorized: socket.authorized };
        socket.destroy();
      }
      assert.deepEqual(seen, {
        localhost: { cn: 'localhost', authorized: true },
        'other.test': { cn: 'other.test', authorized: true },
        'sub.other.test': { cn: 'other.test', authorized: true },
        'unknown.test': { cn: 'localhost', authorized: false },
        // RFC 6125: a wildcard covers exactly one label.
        'a.b.other.test': { cn: 'localhost', authorized: false },
        '(no SNI)': { cn: 'localhost', authorized: true },
      });
      // A WebSocket through the second certificate works end to end.
      const ws = await wsOpen(`wss://127.0.0.1:${sniPort}/echo`, { ca, servername: 'other.test' });
      assert.deepEqual(await echoAll(ws, [{ text: 'sni' }]), [{ text: 'sni' }]);
      assert.equal(ws._socket.getPeerCertificate().subject.CN, 'other.test');
      ws.close();
    });

    test('ALPN: http/1.1 is selected; a client offering only h2 gets none and still works', { timeout: T }, async () => {
      const a = await tlsConnect(port, { ALPNProtocols: ['h2', 'http/1.1'] });
      assert.equal(a.socket.alpnProtocol, 'http/1.1');
      a.socket.destroy();
      const s = await sClient(port, ['-alpn', 'h2,http/1.1']);
      assert.match(s.stdout, /^ALPN protocol: http\/1\.1$/m);
      const b = await tlsConnect(port, { ALPNProtocols: ['h2'] });
      assert.equal(b.socket.alpnProtocol, false);
      const res = await exchangeOn(b.socket, 'GET /echo?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { done: (t) => /"session"/.test(t) });
      assert.match(res, /^HTTP\/1\.1 200 /);
      b.socket.destroy();
    });

    for (const version of ['TLSv1.2', 'TLSv1.3']) {
      test(`session resumption on ${version}: the second connection resumes and works`, { timeout: T }, async () => {
        const first = await tlsConnect(port, { minVersion: version, maxVersion: version });
        // TLS 1.3 tickets come after the handshake: one request/response makes sure they arrived.
        await exchangeOn(first.socket, 'GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        await sleep(50);
        assert.equal(first.socket.isSessionReused(), false);
        assert.ok(first.sessions.length >= 1, 'the server issued a session/ticket');
        const session = first.sessions.at(-1);
        first.socket.end();
        const second = await tlsConnect(port, { minVersion: version, maxVersion: version, session });
        assert.equal(second.socket.isSessionReused(), true, 'resumed');
        const res = await exchangeOn(second.socket, 'GET /echo?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { done: (t) => /"session"/.test(t) });
        assert.match(res, /^HTTP\/1\.1 200 /);
        second.socket.destroy();
        // A session of another listener's certificate is not resumed blindly on this one... but
        // the same listener resumes again from the same ticket/session.
        const third = await tlsConnect(port, { minVersion: version, maxVersion: version, session });
        assert.equal(third.socket.isSessionReused(), true, 'resumed again');
        third.socket.destroy();
      });
    }

    test('client_ca: no client certificate → no service (1.2: handshake alert; 1.3: certificate_required)', { timeout: T }, async () => {
      await assert.rejects(tlsConnect(mtlsPort, { maxVersion: 'TLSv1.2' }), /handshake failure|peer did not return a certificate|HANDSHAKE_FAILURE/i);
      // TLS 1.3: the client finishes its side first; the server's alert comes right after, and
      // no HTTP answer ever does.
      let socket;
      try {
        ({ socket } = await tlsConnect(mtlsPort, { minVersion: 'TLSv1.3' }));
      } catch (err) {
        assert.match(err.code ?? err.message, /CERTIFICATE_REQUIRED/);
        return;
      }
      await assert.rejects(exchangeOn(socket, 'GET /echo?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { done: () => false }),
        (err) => {
          assert.match(err.code ?? err.message, /ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED/);
          return true;
        });
      socket.destroy();
    });

    test('client_ca: a client certificate from another CA is refused (unknown_ca)', { timeout: T }, async () => {
      const key = pki.strangerClient.pem.key;
      const cert = pki.strangerClient.pem.cert;
      await assert.rejects(tlsConnect(mtlsPort, { maxVersion: 'TLSv1.2', key, cert }), /unknown ca|UNKNOWN_CA/i);
      let socket;
      try {
        ({ socket } = await tlsConnect(mtlsPort, { minVersion: 'TLSv1.3', key, cert }));
      } catch (err) {
        assert.match(err.code ?? err.message, /UNKNOWN_CA/);
        return;
      }
      await assert.rejects(exchangeOn(socket, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { done: () => false }), /UNKNOWN_CA|unknown ca/i);
      socket.destroy();
    });

    test('client_ca: with a client certificate the CA signed, wss echo and https work (1.2 and 1.3)', { timeout: T }, async () => {
      const key = pki.client.pem.key;
      const cert = pki.client.pem.cert;
      for (const v of ['TLSv1.2', 'TLSv1.3']) {
        const ws = await wsOpen(`wss://127.0.0.1:${mtlsPort}/echo`, { ca, key, cert, minVersion: v, maxVersion: v });
        assert.deepEqual(await echoAll(ws, [{ text: `mtls ${v}` }]), [{ text: `mtls ${v}` }]);
        assert.equal(ws._socket.getProtocol(), v);
        ws.close();
      }
      const res = await httpsRequest(mtlsPort, 'GET', '/echo?transport=longpoll', { tlsOpts: { key, cert } });
      assert.equal(res.status, 200);
      // The listener asks for certificates of the client CA only (its CA names list).
      const s = await sClient(mtlsPort, ['-tls1_2']);
      assert.match(s.stdout, /Acceptable client certificate CA names\n\s*CN = wsbridge test client CA\n/);
    });
    test('metrics: handshakes by version, resumed sessions, failures by reason', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const request = 'GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
      // Each connection sends a request, so the server surely saw the client's Finished.
      const full12 = await tlsConnect(port, { maxVersion: 'TLSv1.2' });
      await exchangeOn(full12.socket, request);
      full12.socket.end();
      const full13 = await tlsConnect(port, { minVersion: 'TLSv1.3' });
      await exchangeOn(full13.socket, request);
      await sleep(50);
      full13.socket.end();
      const resumed = await tlsConnect(port, { minVersion: 'TLSv1.3', session: full13.sessions.at(-1) });
      assert.equal(resumed.socket.isSessionReused(), true);
      await exchangeOn(resumed.socket, request);
      resumed.socket.end();
      await rawTcp(port, [Buffer.from(request)]); // plain HTTP: "http request"
      await assert.rejects(tlsConnect(tls13Port, { maxVersion: 'TLSv1.2' })); // "unsupported protocol"
      const want = {
        'TLSv1.2': 1, 'TLSv1.3': 2, resumed: 1, 'http request': 1, 'unsupported protocol': 1,
      };
      let got;
      for (let i = 0; i < 40; i++) {
        const now = await scrape(adminPort);
        const d = (name, labels) => metricSum(now, name, labels) - metricSum(before, name, labels);
        got = {
          'TLSv1.2': d('wsbridge_tls_handshakes_total', { side: 'client', version: 'TLSv1.2' }),
          'TLSv1.3': d('wsbridge_tls_handshakes_total', { side: 'client', version: 'TLSv1.3' }),
          resumed: d('wsbridge_tls_resumed_total', { side: 'client' }),
          'http request': d('wsbridge_tls_handshake_failures_total', { side: 'client', reason: 'http request' }),
          'unsupported protocol': d('wsbridge_tls_handshake_failures_total', { side: 'client', reason: 'unsupported protocol' }),
        };
        if (JSON.stringify(got) === JSON.stringify(want)) break;
        await sleep(50);
      }
      assert.deepEqual(got, want);
    });
  });

  // ---- hostile inputs ---------------------------------------------------------------------------

  describe('hostile TLS inputs', () => {
    /** Asserts a clean close: the peer sent FIN (no reset), quickly, with at most TLS alerts. */
    function assertCleanClose(r, { withinMs, what }) {
      assert.equal(r.timedOut, false, `${what}: the proxy never closed (hang)`);
      assert.equal(r.reset, false, `${what}: reset instead of a clean close`);
      assert.notEqual(r.endedAt, null, `${what}: no FIN from the proxy`);
      assert.ok(r.endedAt <= withinMs, `${what}: closed after ${r.endedAt} ms (want ≤ ${withinMs})`);
      const recs = tlsRecords(r.bytes);
      assert.ok(recs !== null && recs.every((x) => x.type === 21), `${what}: sent ${r.bytes.toString('hex').slice(0, 64)} (only TLS alerts allowed)`);
      return recs;
    }

    test('garbage bytes: closed at once (FIN), nothing but an alert sent', { timeout: T }, async () => {
      const ascii = await rawTcp(port, [Buffer.alloc(300, 0x41)]);
      assert.deepEqual(assertCleanClose(ascii, { withinMs: 500, what: 'ASCII garbage' }), []);
      // A handshake record header with a body that is not a ClientHello: a decode/protocol alert.
      const fake = await rawTcp(port, [Buffer.concat([Buffer.from('1603010040', 'hex'), Buffer.alloc(64, 0xee)])]);
      const recs = assertCleanClose(fake, { withinMs: 500, what: 'a bogus handshake record' });
      assert.equal(recs.length, 1, 'one alert');
      assert.equal(recs[0].body[0], 2, 'a fatal alert');
    });

    test('plain HTTP sent to the TLS port: a clean close, never a hang', { timeout: T }, async () => {
      const r = await rawTcp(port, [Buffer.from('GET /echo?transport=longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')]);
      assertCleanClose(r, { withinMs: 500, what: 'plain HTTP on the TLS port' });
    });

    test('TLS sent to the plain port: 400 and a close, never a hang', { timeout: T }, async () => {
      const hello = await captureClientHello();
      const r = await rawTcp(plainPort, [hello]);
      assert.equal(r.timedOut, false, 'hang');
      assert.match(r.bytes.toString('latin1'), /^HTTP\/1\.1 400 /);
      assert.ok(r.endedAt !== null && r.endedAt <= 500, `closed after ${r.endedAt} ms`);
      // And through a real TLS client: the handshake fails fast on the HTTP answer.
      const s = await sClient(plainPort, []);
      assert.match(s.stderr, /wrong version number|packet length too long|record layer failure/);
    });

    test('a truncated ClientHello held open is closed by header_timeout (no answer, FIN)', { timeout: T }, async () => {
      const before = await scrape(adminPort);
      const hello = await captureClientHello();
      const r = await rawTcp(port, [hello.subarray(0, Math.floor(hello.length / 2))], { ms: 5000 });
      assertCleanClose(r, { withinMs: HEADER_TIMEOUT_MS + 700, what: 'half a ClientHello' });
      assert.ok(r.endedAt >= HEADER_TIMEOUT_MS - 100, `closed after ${r.endedAt} ms, before header_timeout`);
      assert.equal(r.bytes.length, 0, 'no bytes (the 408 cannot be sent before a handshake)');
      // Counted as a handshake that timed out, not as a 408 that was never sent.
      const labels = { side: 'client', reason: 'timeout' };
      const after = await scrape(adminPort);
      assert.equal(metricSum(after, 'wsbridge_tls_handshake_failures_total', labels) -
        metricSum(before, 'wsbridge_tls_handshake_failures_total', labels), 1);
      assert.equal(metricSum(after, 'wsbridge_rejections_total', { reason: 'header_timeout' }) -
        metricSum(before, 'wsbridge_rejections_total', { reason: 'header_timeout' }), 0);
      await proxy.waitForLog(/event=tls_handshake_failed side=client .*reason=timeout/);
    });

    test('a handshake dripped slower than header_timeout is cut at header_timeout', { timeout: T }, async () => {
      const hello = await captureClientHello();
      // One byte every 10 ms: the whole ClientHello would take ~3.5 s; every byte is progress,
      // which must not restart the clock.
      const pieces = [...hello].map((b) => Buffer.from([b]));
      const r = await rawTcp(port, pieces, { gapMs: 10, ms: 8000 });
      assertCleanClose(r, { withinMs: HEADER_TIMEOUT_MS + 700, what: 'dripped ClientHello' });
      assert.ok(r.endedAt >= HEADER_TIMEOUT_MS - 100, `closed after ${r.endedAt} ms`);
      assert.ok(r.written < hello.length, 'the ClientHello was not complete when cut');
    });

    test('a full handshake and then nothing: 408 and a close at header_timeout', { timeout: T }, async () => {
      const { socket } = await tlsConnect(port);
      const t0 = performance.now();
      let data = '';
      socket.on('data', (d) => (data += d));
      const ended = await withTimeout(new Promise((resolve) => socket.once('close', () => resolve(performance.now() - t0))), 5000, 'close');
      assert.ok(ended >= HEADER_TIMEOUT_MS - 150 && ended <= HEADER_TIMEOUT_MS + 700, `closed after ${ended} ms`);
      // As on a plain listener: no request head within header_timeout is a 408, then the close.
      assert.match(data, /^HTTP\/1\.1 408 /, JSON.stringify(data.slice(0, 80)));
    });

    test('renegotiation on TLS 1.2 is refused: no_renegotiation, and the connection is closed', { timeout: T }, async () => {
      const { socket } = await tlsConnect(port, { maxVersion: 'TLSv1.2' });
      // The connection works before.
      const before = await exchangeOn(socket, 'GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      assert.match(before, /^HTTP\/1\.1 404 /);
      const events = [];
      socket.on('error', (e) => events.push(`error:${e.code}`));
      const closed = new Promise((resolve) => socket.once('close', resolve));
      // Node reports the outcome through the callback or, when the alert kills the connection,
      // only through 'error': wait for either.
      const renegResult = await withTimeout(new Promise((resolve) => {
        socket.once('error', (e) => resolve(e.code ?? e.message));
        const started = socket.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err ? err.code ?? err.message : 'ok'));
        if (!started) resolve('not started');
      }), 5000, 'the renegotiation outcome');
      await withTimeout(closed, 3000, 'the connection to close after the refused renegotiation');
      // Observed (OpenSSL 3.0 server with SSL_OP_NO_RENEGOTIATION): the server answers the new
      // ClientHello with a no_renegotiation alert; Node treats it as fatal and closes, so the
      // connection cannot be used for anything more (no second renegotiation, no request).
      assert.equal(renegResult, 'ERR_SSL_NO_RENEGOTIATION');
      assert.deepEqual(events, ['error:ERR_SSL_NO_RENEGOTIATION']);
      assert.equal(socket.destroyed, true);
      assert.equal(socket.writable, false, 'the connection is not usable afterwards');
      // On the wire (openssl s_client's `R` command): the server's answer to the second
      // ClientHello is a warning no_renegotiation alert, and no ServerHello.
      const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-CAfile', pki.ca.cert, '-msg'],
        { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise((resolve) => child.on('exit', resolve));
      try {
        const until = async (re, ms) => {
          const deadline = Date.now() + ms;
          while (!re.test(out) && Date.now() < deadline) await sleep(20);
          return re.test(out);
        };
        assert.ok(await until(/Verify return code: 0/, 5000), out);
        child.stdin.write('R\n');
        assert.ok(await until(/no renegotiation/, 5000), out);
        await withTimeout(exited, 5000, 's_client to exit');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      const afterReneg = out.slice(out.indexOf('RENEGOTIATING'));
      assert.match(afterReneg, /<<< TLS 1\.2, Alert \[length 0002\], warning no_renegotiation/);
      assert.doesNotMatch(afterReneg, /<<< .*ServerHello/);
      // The proxy is fine and serves the next TLS 1.2 connection.
      const again = await tlsConnect(port, { maxVersion: 'TLSv1.2' });
      assert.match(await exchangeOn(again.socket, 'GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'), /^HTTP\/1\.1 404 /);
      again.socket.destroy();
    });

    test(`a flood of ${FLOOD} handshakes: fds back to baseline within 2 s, RSS bounded`, { timeout: 60000 }, async () => {
      const hello = await captureClientHello();
      const kinds = [
        // full handshake + one request
        async () => {
          const { socket } = await tlsConnect(port, {}, 8000);
          await exchangeOn(socket, 'GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { ms: 8000 });
          socket.destroy();
        },
        // full handshake, then the client goes away without a word
        async () => {
          const { socket } = await tlsConnect(port, { maxVersion: 'TLSv1.2' }, 8000);
          socket.destroy();
        },
        // half a ClientHello, then the client goes away
        async () => {
          const r = await rawTcp(port, [hello.subarray(0, 60)], { ms: 100 });
          return r;
        },
        // garbage
        async () => {
          await rawTcp(port, [Buffer.alloc(64, 0x42)], { ms: 3000 });
        },
      ];
      const runFlood = async (n) => {
        let next = 0;
        let failures = 0;
        const worker = async () => {
          while (next < n) {
            const i = next++;
            try {
              await kinds[i % kinds.length]();
            } catch {
              failures++;
            }
          }
        };
        await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, worker));
        return failures;
      };
      const idle = await waitFor(proxy.pid, () => true);
      let peakFds = 0;
      const sampler = setInterval(() => {
        try {
          peakFds = Math.max(peakFds, fdCount(proxy.pid));
        } catch {
          // process gone: the asserts below say so
        }
      }, 10);
      // Warm-up (OpenSSL's lazy allocations, the allocator's arenas), then the baseline.
      assert.equal(await runFlood(40), 0, 'warm-up handshakes failed');
      const warm = await waitFor(proxy.pid, (s) => s.fds <= idle.sample.fds, { ms: 3000 });
      assert.ok(warm.ok, `fds after warm-up ${warm.sample?.fds} > idle ${idle.sample.fds}`);
      const base = memory(proxy.pid);
      const t0 = performance.now();
      const failures = await withTimeout(runFlood(FLOOD), 45000, 'the flood');
      const floodMs = Math.round(performance.now() - t0);
      clearInterval(sampler);
      assert.ok(peakFds > idle.sample.fds + 5, `the flood was seen by the proxy (peak fds ${peakFds}, idle ${idle.sample.fds})`);
      assert.equal(failures, 0, `${failures} flood connections failed`);
      const fdsBack = await waitFor(proxy.pid, (s) => s.fds <= idle.sample.fds, { ms: 2000 });
      assert.ok(fdsBack.ok, `fds ${fdsBack.sample?.fds} did not return to ${idle.sample.fds} within 2 s`);
      const rss = memory(proxy.pid).rss;
      const grew = rss - base.rss;
      console.log(`# flood: ${FLOOD} connections in ${floodMs} ms; fds ${idle.sample.fds} → peak ${peakFds} → ${fdsBack.sample.fds}; ` +
        `RSS ${base.rss} → ${rss} KiB (${grew >= 0 ? '+' : ''}${grew} KiB, bound ${FLOOD_RSS_BOUND_KIB} KiB)`);
      if (SANITIZERS) console.log('# flood: RSS threshold not checked: WSBRIDGE_SANITIZERS=1 (ASan quarantine)');
      else assert.ok(grew <= FLOOD_RSS_BOUND_KIB, `RSS grew by ${grew} KiB (> ${FLOOD_RSS_BOUND_KIB} KiB)`);
      assert.ok(alive(proxy.pid));
      // Still serving.
      const ws = await wsOpen(`wss://127.0.0.1:${port}/echo`, { ca });
      assert.deepEqual(await echoAll(ws, [{ text: 'after the flood' }]), [{ text: 'after the flood' }]);
      ws.close();
    });

    test('a failed handshake logs one line with the reason', { timeout: T }, async () => {
      // Past the log limiter's current second (the flood may have filled it).
      await sleep(1100);
      const from = proxy.child.lines.stderr.length;
      const r = await rawTcp(port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
      assert.notEqual(r.endedAt, null);
      await sleep(300);
      const lines = proxy.child.lines.stderr.slice(from).filter((l) => /\bevent=tls_handshake_failed\b/.test(l));
      assert.equal(lines.length, 1, `TLS failure log lines: ${JSON.stringify(lines)}`);
      assert.match(lines[0], /\bside=client reason="http request" /);
    });
  });
});
