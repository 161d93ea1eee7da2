// Reload in place (SIGHUP) for the e2e tests: a proxy started so that a SIGHUP is safe to send,
// a reload that rewrites its config file, signals it and waits for the outcome lines, a logfmt
// line parser, and small clients that count what they send and receive (a plain WebSocket
// echo client and a broadcast peer).
//
// Every wait is bounded in time.

import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';

import { startProxy, withTimeout, httpGet } from './harness.mjs';

/** Parses one logfmt line into {key: value} (quoted values unescaped). */
export function logfmt(line) {
  const out = {};
  const re = /([A-Za-z0-9_.]+)=("(?:[^"\\]|\\.)*"|[^\s]*)/g;
  let m;
  while ((m = re.exec(line)) !== null) {
    let v = m[2];
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    out[m[1]] = v;
  }
  return out;
}

/** The comma-separated route list of a `reloaded` field, as a sorted array. */
export const pathList = (v) => (v ? v.split(',').sort() : []);

/** What a `reloaded` line should name going from routes `from` to routes `to` (route objects
 *  as given to proxyConfig): {added, removed, changed}, each a sorted array of paths. */
export function routeDiff(from, to) {
  const before = new Map(from.map((x) => [x.path, JSON.stringify(x)]));
  const after = new Map(to.map((x) => [x.path, JSON.stringify(x)]));
  return {
    added: [...after.keys()].filter((p) => !before.has(p)).sort(),
    removed: [...before.keys()].filter((p) => !after.has(p)).sort(),
    changed: [...after.keys()].filter((p) => before.has(p) && before.get(p) !== after.get(p)).sort(),
  };
}

/**
 * Starts `wsbridge -c FILE` (harness startProxy) and waits until a SIGHUP can no longer kill
 * it: the `started` line is logged before the signal watchers exist, so it also waits for one
 * answer from the running loop (GET /healthz on the admin listener, or any answer from the
 * first listener), which comes only after every watcher was installed.
 */
export async function startReloadable(config, opts = {}) {
  const proxy = await startProxy(config, opts);
  await proxy.waitForLog(/\bevent=started\b/, 5000);
  const admin = /\bevent=admin_listening address=127\.0\.0\.1:(\d+)/.exec(proxy.stderr());
  await httpGet(admin ? Number(admin[1]) : proxy.port, admin ? '/healthz' : '/', { ms: 3000 });
  proxy.reloads = 0;
  return proxy;
}

/** The port of the admin listener the proxy announced last (`admin_listening`). */
export function adminPort(proxy) {
  const all = [...proxy.stderr().matchAll(/\bevent=admin_listening address=127\.0\.0\.1:(\d+)/g)];
  if (all.length === 0) throw new Error('no admin_listening line');
  return Number(all.at(-1)[1]);
}

/**
 * Writes `config` over the proxy's config file (atomically: a rename) and sends SIGHUP.
 * `errors` = 0: resolves {line, fields, lines} of the `reloaded` line. `errors` = N > 0: waits
 * for exactly N `reload_failed` lines and resolves {lines, fields: [parsed…]}. A `reloaded` line
 * when errors were expected (or the reverse) rejects with the proxy's log.
 */
export async function reload(proxy, config, { errors = 0, ms = 5000, settleMs = 50 } = {}) {
  const tmp = path.join(path.dirname(proxy.configFile), `.next-${process.pid}.yaml`);
  fs.writeFileSync(tmp, config);
  fs.renameSync(tmp, proxy.configFile);
  const child = proxy.child;
  const from = child.lines.stderr.length;
  const outcome = () => {
    const lines = child.lines.stderr.slice(from);
    const ok = lines.filter((l) => /\bevent=reloaded\b/.test(l));
    const failed = lines.filter((l) => /\bevent=reload_failed\b/.test(l));
    return { lines, ok, failed };
  };
  process.kill(proxy.pid, 'SIGHUP');
  proxy.reloads++;
  await child.waitUntil(() => {
    const o = outcome();
    return o.ok.length > 0 || o.failed.length >= Math.max(errors, 1);
  }, ms, `the outcome of reload #${proxy.reloads}`);
  if (errors > 0 && settleMs > 0) await new Promise((r) => setTimeout(r, settleMs)); // no extra lines
  const o = outcome();
  if (errors === 0) {
    if (o.failed.length > 0 || o.ok.length !== 1) {
      throw new Error(`reload #${proxy.reloads}: want one reloaded line, got:\n${o.lines.join('\n')}`);
    }
    return { line: o.ok[0], fields: logfmt(o.ok[0]), lines: o.lines };
  }
  if (o.ok.length > 0 || o.failed.length !== errors) {
    throw new Error(`reload #${proxy.reloads}: want ${errors} reload_failed line(s), got:\n${o.lines.join('\n')}`);
  }
  return { lines: o.failed, fields: o.failed.map(logfmt), all: o.lines };
}

/**
 * A plain WebSocket (transparent relay) client that sends numbered text messages `name:N` and
 * checks that what comes back is, for each sender it hears, N = 1, 2, 3… with nothing lost,
 * repeated or reordered. `peers` names the senders it expects to hear (itself for an echo
 * route; every member for a broadcast route).
 */
export class NumberedWs {
  constructor(url, name, { peers = [name], wsOptions = {} } = {}) {
    this.url = url;
    this.name = name;
    this.peers = peers;
    this.sent = 0;
    this.heard = Object.fromEntries(peers.map((p) => [p, 0]));
    this.problems = [];
    this.closed = null;
    this.ws = new WebSocket(url, wsOptions);
    this._waiters = new Set();
    this.ws.on('message', (data, isBinary) => {
      const text = String(data);
      const i = text.lastIndexOf(':');
      const who = text.slice(0, i);
      const n = Number(text.slice(i + 1));
      if (isBinary || !(who in this.heard)) this.problems.push(`unexpected message ${JSON.stringify(text.slice(0, 60))}`);
      else if (n !== this.heard[who] + 1) this.problems.push(`${who}:${n} after ${who}:${this.heard[who]}`);
      if (who in this.heard && n > this.heard[who]) this.heard[who] = n;
      this._wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this._wake();
    });
    this.ws.on('error', (e) => {
      this.problems.push(`error: ${e.message}`);
      this._wake();
    });
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  opened(ms = 5000) {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`${this.url}: HTTP ${res.statusCode}`)));
      this.ws.once('error', reject);
    }), ms, `${this.url} to open`);
  }

  /** Resolves once pred() holds; rejects after ms, or at once when the socket closed. */
  waitUntil(pred, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          done();
          resolve();
        } else if (this.closed) {
          done();
          reject(new Error(`${this.name}: closed ${JSON.stringify(this.closed)} while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: timed out after ${ms} ms waiting for ${what} (heard ${JSON.stringify(this.heard)}, sent ${this.sent})`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      check();
    });
  }

  /** Sends n more numbered messages (no wait). */
  send(n) {
    for (let i = 0; i < n; i++) this.ws.send(`${this.name}:${++this.sent}`);
  }

  /** Sends one raw message (not numbered). */
  sendRaw(data) {
    this.ws.send(data);
  }

  /** Waits until this client heard `n` messages of sender `who` (default: itself). */
  heardUpTo(n, who = this.name, ms = 5000) {
    return this.waitUntil(() => this.heard[who] >= n, ms, `${who}:${n}`);
  }

  /** Closes with 1000 and waits for the end (bounded). */
  async close(ms = 3000) {
    if (this.closed) return this.closed;
    this.ws.close(1000);
    await this.waitUntil(() => false, ms, 'the close').catch(() => {});
    if (!this.closed) this.ws.terminate();
    return this.closed;
  }
}
