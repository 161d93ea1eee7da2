// Process harness for the e2e tests: starts the example backend and the wsbridge binary as
// child processes on OS-assigned loopback ports, collects their output, and stops them by PID.
// Every wait is bounded. Environment:
//   WSBRIDGE_BIN          proxy binary (default <repo>/build/wsbridge)
//   E2E_REQUIRE_PROXY=1   fail (instead of skip) when the binary is missing
//   E2E_ARTIFACTS         directory for proxy/backend logs (default tests/e2e/artifacts)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const WSBRIDGE_BIN = process.env.WSBRIDGE_BIN || path.join(REPO, 'build', 'wsbridge');
export const BACKEND_SCRIPT = path.join(REPO, 'examples', 'backend', 'server.mjs');
export const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(REPO, 'tests', 'e2e', 'artifacts');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** True when the proxy binary exists and is executable. */
export function haveProxy() {
  try {
    fs.accessSync(WSBRIDGE_BIN, fs.constants.X_OK);
    return fs.statSync(WSBRIDGE_BIN).isFile();
  } catch {
    return false;
  }
}

/** node:test `skip` option for proxy tests: false, or the reason the proxy cannot run. */
export function proxySkip() {
  if (haveProxy()) return false;
  if (process.env.E2E_REQUIRE_PROXY === '1') return false; // let the test fail loudly
  return `wsbridge binary not found at ${WSBRIDGE_BIN} (set WSBRIDGE_BIN)`;
}

/** Rejects after ms with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * A child process with line-wise output capture. waitForLine(re, ms) resolves with the match
 * of the first line (already seen or future) on the chosen stream.
 */
class Child {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.pid = this.proc.pid;
    children.add(this.proc);
    this.out = { stdout: '', stderr: '' };
    this.lines = { stdout: [], stderr: [] };
    this.exit = null;
    this._waiters = new Set();
    for (const stream of ['stdout', 'stderr']) {
      let partial = '';
      this.proc[stream].setEncoding('utf8');
      this.proc[stream].on('data', (chunk) => {
        this.out[stream] += chunk;
        partial += chunk;
        const parts = partial.split('\n');
        partial = parts.pop();
        for (const line of parts) this.lines[stream].push(line);
        this._wake();
      });
    }
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        children.delete(this.proc);
        this._wake();
        resolve(this.exit);
      });
      this.proc.on('error', (err) => {
        this.exit = { code: null, signal: null, error: err.message };
        children.delete(this.proc);
        this._wake();
        resolve(this.exit);
      });
    });
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  /** Waits until pred() is true; rejects with `what` after ms, or when the process exits. */
  waitUntil(pred, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = pred();
        if (value) {
          done();
          resolve(value);
        } else if (this.exit) {
          done();
          reject(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) while waiting for ${what}\n` +
            `--- ${this.name} stderr ---\n${this.out.stderr.slice(-4000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what} from ${this.name}\n` +
          `--- ${this.name} stderr ---\n${this.out.stderr.slice(-4000)}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      check();
    });
  }

  waitForLine(re, { stream = 'stderr', ms = 5000, from = 0 } = {}) {
    return this.waitUntil(() => {
      const lines = this.lines[stream];
      for (let i = from; i < lines.length; i++) {
        const m = re.exec(lines[i]);
        if (m) return m;
      }
      return null;
    }, ms, `a ${stream} line matching ${re}`);
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves with the exit status. */
  async stop(graceMs = 3000) {
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!this.exit) this.proc.kill('SIGKILL');
    }, graceMs);
    const status = await withTimeout(this.exited, graceMs + 2000, `${this.name} to exit`);
    clearTimeout(timer);
    return status;
  }

  saveLog(label) {
    try {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `${label}.${this.name}.log`);
      fs.writeFileSync(file, `# stdout\n${this.out.stdout}\n# stderr\n${this.out.stderr}`);
      return file;
    } catch {
      return null;
    }
  }
}

/** Starts examples/backend/server.mjs on an OS-assigned port. */
export async function startBackend({ args = [], label = 'e2e' } = {}) {
  const child = new Child('backend', process.execPath, [BACKEND_SCRIPT, '--port', '0', ...args], {
    env: { ...process.env, NODE_PATH: process.env.NODE_PATH || path.join(REPO, 'node_modules') },
    cwd: REPO,
  });
  const m = await child.waitForLine(/^backend listening on 127\.0\.0\.1:(\d+)$/, { stream: 'stdout', ms: 10000 });
  const port = Number(m[1]);
  return {
    child,
    pid: child.pid,
    port,
    url: (p) => `ws://127.0.0.1:${port}${p}`,
    stats: () => httpGetJson(port, '/stats'),
    async stop() {
      const status = await child.stop();
      child.saveLog(label);
      return status;
    },
  };
}

/**
 * Writes `config` (YAML text) to a temp file and starts `wsbridge -c FILE`. Resolves once the
 * proxy logged `event=listening address=127.0.0.1:PORT` for every listener (`listeners`).
 * `env` adds to the proxy's environment.
 */
export async function startProxy(config, { listeners = 1, label = 'proxy', env = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsbridge-e2e-'));
  const file = path.join(dir, 'wsbridge.yaml');
  fs.writeFileSync(file, config);
  const child = new Child('proxy', WSBRIDGE_BIN, ['-c', file],
    { cwd: dir, env: { ...process.env, ...env } });
  const re = /\bevent=listening\b.*?\baddress="?([^\s"]+?):(\d+)"?(?:\s|$)/;
  const tlsPorts = [];
  const ports = await child.waitUntil(() => {
    const found = [];
    tlsPorts.length = 0;
    for (const line of child.lines.stderr) {
      const m = re.exec(line);
      if (m) {
        found.push(Number(m[2]));
        if (/\btls=on\b/.test(line)) tlsPorts.push(Number(m[2]));
      }
    }
    return found.length >= listeners ? found : null;
  }, 10000, `${listeners} event=listening line(s)`);
  const port = ports[0];
  return {
    child,
    pid: child.pid,
    port,
    ports,
    /** The ports of the listeners that logged tls=on, in listening order. */
    tlsPorts,
    configFile: file,
    url: (p) => `ws://127.0.0.1:${port}${p}`,
    stderr: () => child.out.stderr,
    /** Resolves with the first stderr line matching re (seen so far or within ms). */
    waitForLog: (logRe, ms = 5000) => child.waitForLine(logRe, { stream: 'stderr', ms }),
    async stop() {
      const status = await child.stop();
      child.saveLog(label);
      fs.rmSync(dir, { recursive: true, force: true });
      return status;
    },
  };
}

/**
 * Routes → wsbridge YAML. Each route: {path, backend, ...other route keys (scalars/objects)}.
 * A `listen` entry is an address string, or {address, tls} where tls is {cert, key} or
 * {certificates: [{cert, key}, ...], min_version, client_ca} (absolute file paths).
 */
export function proxyConfig(routes, { listen = ['127.0.0.1:0'], extra = '' } = {}) {
  const yamlValue = (v) => {
    if (Array.isArray(v)) return `[${v.map((x) => JSON.stringify(String(x))).join(', ')}]`;
    if (v && typeof v === 'object') {
      return `{ ${Object.entries(v).map(([k, x]) => `${k}: ${yamlValue(x)}`).join(', ')} }`;
    }
    if (typeof v === 'string') return JSON.stringify(v);
    return String(v);
  };
  let y = 'listen:\n';
  for (const entry of listen) {
    if (typeof entry === 'string') {
      y += `  - address: ${entry}\n`;
      continue;
    }
    y += `  - address: ${entry.address ?? '127.0.0.1:0'}\n`;
    const tls = entry.tls;
    if (!tls) continue;
    y += '    tls:\n';
    if (tls.certificates) {
      y += '      certificates:\n';
      for (const c of tls.certificates) {
        y += `        - { cert: ${JSON.stringify(c.cert)}, key: ${JSON.stringify(c.key)} }\n`;
      }
    } else {
      y += `      cert: ${JSON.stringify(tls.cert)}\n      key: ${JSON.stringify(tls.key)}\n`;
    }
    if (tls.min_version) y += `      min_version: ${JSON.stringify(tls.min_version)}\n`;
    if (tls.client_ca) y += `      client_ca: ${JSON.stringify(tls.client_ca)}\n`;
  }
  y += extra;
  // A drain spreads its closes over drain_timeout (10 s by default): stop() gives the proxy 3 s
  // before SIGKILL, so unless a test sets its own, the drain here takes at most 2 s.
  if (!/^drain_timeout:/m.test(extra)) y += 'drain_timeout: 2s\n';
  y += 'routes:\n';
  for (const route of routes) {
    const { path: p, ...rest } = route;
    y += `  - path: ${JSON.stringify(p)}\n`;
    for (const [k, v] of Object.entries(rest)) y += `    ${k}: ${yamlValue(v)}\n`;
  }
  return y;
}

/** GET http://127.0.0.1:port{path} on a fresh connection; resolves {status, headers, body}. */
export function httpGet(port, p, { headers = {}, ms = 5000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  }), ms, `GET ${p}`);
}

export async function httpGetJson(port, p) {
  const res = await httpGet(port, p);
  return JSON.parse(res.body);
}

/** A loopback port that nothing listens on (bound by the OS, then released). */
export function closedPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
