// Real-browser harness: Debian's Chromium driven by the pinned npm `playwright-core` (never a
// downloaded browser), a tiny page server and a controllable TCP relay. Every wait is bounded and
// every process is stopped by its PID.
//
// Environment:
//   CHROMIUM_BIN          browser binary (default /usr/bin/chromium, Debian's `chromium`)
//   E2E_REQUIRE_PROXY=1   fail (instead of skip) when the proxy, Chromium or playwright-core is
//                         missing (ctest sets it)
//   E2E_ARTIFACTS         where proxy/backend logs go; defaults to tests/browser/artifacts when
//                         this module is imported before tests/e2e/lib/harness.mjs (which reads
//                         it once, at load)
//
// Launch recipe (shared/notes/restrictive-proxies.md, verified with Chromium 156 + playwright-core
// 1.65.1): launchPersistentContext(fresh mkdtemp user-data-dir, executablePath, the flags below,
// permissions ['local-network-access']).

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

export const BROWSER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BROWSER_ARTIFACTS = path.join(BROWSER_DIR, 'artifacts');
if (!process.env.E2E_ARTIFACTS) process.env.E2E_ARTIFACTS = BROWSER_ARTIFACTS;

export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function bounded(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Teardown for after(): runs each [what, fn] step in order, each bounded by ms; a step that
 * fails or hangs is reported on stderr and the next one still runs. What a closed
 * launchChromium() reports (its PID, process count, stragglers killed) goes to stderr too.
 */
export async function stopAll(steps, ms = 20000) {
  for (const [what, step] of steps) {
    try {
      const r = await bounded(Promise.resolve().then(step), ms, `stopping ${what}`);
      if (r?.browserPid !== undefined) {
        process.stderr.write(`# chromium pid ${r.browserPid}: ${r.processes} process(es), SIGKILLed after close: ${JSON.stringify(r.killed)}\n`);
      }
    } catch (err) {
      process.stderr.write(`# after(): stopping ${what} failed: ${err.message}\n`);
    }
  }
}

/** node:test `skip` value: false, or why the browser layer cannot run here. */
export async function browserSkip() {
  let problem = null;
  try {
    fs.accessSync(CHROMIUM_BIN, fs.constants.X_OK);
  } catch {
    problem = `Chromium not found at ${CHROMIUM_BIN} (scripts/setup.sh installs Debian's chromium)`;
  }
  if (!problem) {
    try {
      await import('playwright-core');
    } catch {
      problem = 'npm playwright-core is not installed (npm ci)';
    }
  }
  if (!problem) return false;
  if (process.env.E2E_REQUIRE_PROXY === '1') return false; // let the test fail loudly
  return problem;
}

// ---- process bookkeeping (Linux /proc) ------------------------------------------------------

function procStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    return { pid, comm, state: fields[0], ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

function allProcs() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(name)) {
      const s = procStat(Number(name));
      if (s) out.push(s);
    }
  }
  return out;
}

/** PIDs of every live descendant of `root` (default: this process). */
export function descendants(root = process.pid) {
  const procs = allProcs();
  const result = [];
  let frontier = [root];
  while (frontier.length) {
    const next = [];
    for (const p of procs) {
      if (frontier.includes(p.ppid) && p.state !== 'Z') {
        result.push(p);
        next.push(p.pid);
      }
    }
    frontier = next;
  }
  return result;
}

function alive(pid) {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z';
}

/**
 * Launches Chromium with a fresh user-data-dir. Resolves {context, browserPid, close()}.
 * close() closes the context (bounded), then SIGKILLs by PID any Chromium process still alive
 * and removes the user-data-dir. `args` are appended to CHROMIUM_ARGS (e.g. --proxy-server).
 */
export async function launchChromium({ args = [] } = {}) {
  const { chromium } = await import('playwright-core');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsbridge-chromium-'));
  const before = new Set(descendants().map((p) => p.pid));
  let context;
  try {
    context = await bounded(chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_BIN,
      headless: true,
      args: [...CHROMIUM_ARGS, ...args],
      permissions: ['local-network-access'],
      viewport: { width: 900, height: 700 },
      timeout: 30000,
    }), 40000, 'Chromium to launch');
  } catch (err) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const browserProcs = descendants().filter((p) => !before.has(p.pid) && p.ppid === process.pid);
  const browserPid = browserProcs[0]?.pid ?? null;
  return {
    context,
    browserPid,
    userDataDir,
    async close() {
      // Everything Chromium started, to check by PID after the polite close.
      const tree = browserPid ? [{ pid: browserPid }, ...descendants(browserPid)] : [];
      try {
        await bounded(context.close(), 15000, 'Chromium to close');
      } catch {
        // fall through to the PID sweep
      }
      const deadline = Date.now() + 3000;
      while (tree.some((p) => alive(p.pid)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const killed = [];
      for (const p of tree) {
        if (alive(p.pid)) {
          try {
            process.kill(p.pid, 'SIGKILL');
            killed.push(p.pid);
          } catch {
            // gone meanwhile
          }
        }
      }
      fs.rmSync(userDataDir, { recursive: true, force: true });
      return { browserPid, processes: tree.length, killed };
    },
  };
}

// ---- page server ------------------------------------------------------------------------------

/** Serves `html` at / on 127.0.0.1:0 (favicon: 204). Resolves {port, origin, close()}. */
export function servePage(html) {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404);
      res.end();
    }
  });
  return listenPage(server);
}

/**
 * Listens with a page `server` (http or https) on 127.0.0.1:0, tracking its sockets so that
 * close() ends kept-alive ones too. Resolves {port, origin, close()}.
 */
export function listenPage(server) {
  const sockets = new Set();
  const secure = server instanceof https.Server;
  server.on(secure ? 'secureConnection' : 'connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        origin: `${secure ? 'https' : 'http'}://127.0.0.1:${port}`,
        close: () => {
          for (const s of sockets) s.destroy();
          return bounded(new Promise((r) => server.close(() => r())), 5000, 'page server to close');
        },
      });
    });
  });
}

// ---- TCP relay --------------------------------------------------------------------------------

const HEAD_LIMIT = 16 * 1024;

function headOf(text) {
  const end = text.indexOf('\r\n\r\n');
  return end < 0 ? null : text.slice(0, end);
}

/** Header `name` (case-insensitive) of an HTTP head, or null. */
export function headerOf(head, name) {
  if (!head) return null;
  const lines = head.split('\r\n').slice(1);
  const want = name.toLowerCase();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === want) return line.slice(colon + 1).trim();
  }
  return null;
}

/**
 * A byte relay 127.0.0.1:port → 127.0.0.1:targetPort that the test controls. With `tls`
 * ({cert, key, ca}: PEM text) it terminates TLS on both hops: the browser's connection is a TLS
 * server with cert/key, the one to targetPort a TLS client that trusts `ca`, so the relay sees
 * (and matches) the requests in the clear and a cut is a TCP cut of both TLS connections.
 * Refused connections are closed before any TLS byte, as the plain relay closes them.
 *  - conns: one record per accepted connection {id, request, response (heads), down (bytes
 *    forwarded to the client), cut, closed}
 *  - cutAfter(bytes, match): the next connection whose request head matches `match` is cut once
 *    `bytes` bytes of the response were forwarded: exactly that many bytes reach the client, then
 *    both sockets are destroyed and the relay holds new connections (accepted, request buffered,
 *    nothing forwarded) until release(). Resolves with the cut connection's record.
 *  - cutNow(match, {refuse}): cuts the open connections whose request head matches at once,
 *    then holds new connections like cutAfter (or, with refuse, closes them as soon as they are
 *    accepted) until release().
 *  - release(): connects the held connections upstream and forwards their buffered bytes.
 */
export function startRelay(targetPort, { tls: tlsOpts } = {}) {
  const conns = [];
  const held = [];
  let holding = false;
  let refusing = false;
  let rule = null;
  const secureContext = tlsOpts ? tls.createSecureContext({ cert: tlsOpts.cert, key: tlsOpts.key }) : null;

  const connectUpstream = (c) => {
    const up = tlsOpts ? tls.connect({ port: targetPort, host: '127.0.0.1', ca: tlsOpts.ca })
      : net.connect(targetPort, '127.0.0.1');
    c.upstream = up;
    // After a cut the client socket is finished by the cut itself (its last write must flush).
    up.on('error', () => { if (!c.cut) c.client.destroy(); });
    up.on('end', () => { if (!c.cut) c.client.end(); });
    // A clean upstream close was already passed on by end() (which flushes): destroy only on error.
    up.on('close', (hadError) => { if (!c.cut && hadError) c.client.destroy(); });
    for (const chunk of c.pending) up.write(chunk);
    c.pending = [];
    up.on('data', (chunk) => {
      if (c.cut) return;
      if (c.responseHead === null) {
        c.responseText += chunk.toString('latin1');
        c.responseHead = headOf(c.responseText);
        if (c.responseText.length > HEAD_LIMIT && c.responseHead === null) c.responseHead = c.responseText;
      }
      if (rule && rule.conn === c && c.down + chunk.length >= rule.bytes) {
        const part = chunk.subarray(0, rule.bytes - c.down);
        c.down += part.length;
        c.cut = true;
        holding = true;
        const { resolve } = rule;
        rule = null;
        up.destroy();
        c.client.write(part, () => {
          c.client.destroy();
          resolve(c);
        });
        return;
      }
      c.down += chunk.length;
      c.client.write(chunk);
    });
  };

  const sockets = new Set();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('error', () => {});
    raw.on('close', () => sockets.delete(raw));
    const client = secureContext && !refusing ? new tls.TLSSocket(raw, { isServer: true, secureContext }) : raw;
    const c = {
      id: conns.length + 1, client, upstream: null, pending: [], requestText: '', requestHead: null,
      responseText: '', responseHead: null, down: 0, cut: false, closed: false, held: holding,
      get request() { return this.requestHead; },
      get response() { return this.responseHead; },
    };
    conns.push(c);
    client.on('error', () => {});
    client.on('close', () => {
      c.closed = true;
      c.upstream?.destroy();
    });
    client.on('data', (chunk) => {
      if (c.requestHead === null) {
        c.requestText += chunk.toString('latin1');
        c.requestHead = headOf(c.requestText);
        if (c.requestHead !== null && rule && !rule.conn && rule.match.test(c.requestHead)) rule.conn = c;
      }
      if (c.upstream) c.upstream.write(chunk);
      else c.pending.push(chunk);
    });
    if (refusing) {
      c.refused = true;
      client.destroy();
    } else if (holding) held.push(c);
    else connectUpstream(c);
  });

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        origin: `${tlsOpts ? 'https' : 'http'}://127.0.0.1:${port}`,
        conns,
        /** Connections that sent a complete request head. */
        requests: () => conns.filter((c) => c.requestHead !== null),
        get holding() { return holding; },
        heldCount: () => held.length,
        cutAfter(bytes, match) {
          return new Promise((res) => {
            rule = { bytes, match, conn: null, resolve: res };
          });
        },
        /**
         * Cuts, now, every open connection whose request head matches `match` (both sockets
         * destroyed), and holds new connections until release(); with {refuse: true} new
         * connections are closed at once instead. Returns the cut records.
         */
        cutNow(match, { refuse = false } = {}) {
          const victims = conns.filter((c) => !c.closed && !c.cut && c.requestHead !== null && match.test(c.requestHead));
          if (refuse) refusing = true;
          else holding = true;
          for (const c of victims) {
            c.cut = true;
            c.upstream?.destroy();
            c.client.destroy();
          }
          return victims;
        },
        /** Connections closed at once while refusing. */
        refusedCount: () => conns.filter((c) => c.refused).length,
        release() {
          holding = false;
          refusing = false;
          for (const c of held.splice(0)) if (!c.closed) connectUpstream(c);
        },
        close() {
          for (const c of conns) {
            c.client.destroy();
            c.upstream?.destroy();
          }
          for (const s of sockets) s.destroy();
          return bounded(new Promise((r) => server.close(() => r())), 5000, 'relay to close');
        },
      });
    });
  });
}
