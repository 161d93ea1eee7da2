// Restrictive intermediaries for the real-browser tests, exactly as verified in
// shared/notes/restrictive-proxies.md (squid 5.7, nginx 1.22.1, Debian 12):
//
//  - startSquid(): a forward proxy with Debian's default ACLs, which refuse CONNECT to any port
//    but 443; Chromium tunnels ws:// through CONNECT, so WebSocket fails and plain HTTP (SSE,
//    long-poll, POST) passes.
//  - startNginx(): a reverse proxy with `proxy_buffering on`, `proxy_ignore_headers
//    X-Accel-Buffering` and no `proxy_http_version 1.1`: no Upgrade reaches the app, and an
//    event stream is held in nginx's buffers.
//
// Each instance renders its config into a fresh mkdtemp dir (chmod 755: as root squid drops to
// `proxy` and nginx's worker to `nobody`), runs in the foreground as a child of this process
// with a bounded readiness wait, and is stopped by its PID (SIGTERM, then SIGKILL).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { descendants } from './browser.mjs';

export const SQUID_BIN = process.env.SQUID_BIN || '/usr/sbin/squid';
export const NGINX_BIN = process.env.NGINX_BIN || '/usr/sbin/nginx';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function executable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** node:test `skip` value: false, or why squid/nginx cannot run (fails loudly under ctest). */
export function intermediarySkip() {
  const missing = [[SQUID_BIN, 'squid'], [NGINX_BIN, 'nginx']].filter(([f]) => !executable(f)).map(([, n]) => n);
  if (missing.length === 0 || process.env.E2E_REQUIRE_PROXY === '1') return false;
  return `Debian package(s) ${missing.join(', ')} not installed (scripts/setup.sh installs them)`;
}

/** A free loopback port: bound by the OS, then released (squid and nginx cannot take port 0). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

function render(template, vars) {
  return template.replace(/\$([A-Z_]+)/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

function readIf(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Starts `cmd args`, keeps its output, and offers a bounded stop by PID. */
function foreground(name, cmd, args) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { text: '' };
  proc.stdout.on('data', (c) => (out.text += c));
  proc.stderr.on('data', (c) => (out.text += c));
  let exit = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve((exit = { code, signal })));
    proc.on('error', (err) => resolve((exit = { code: null, signal: null, error: err.message })));
  });
  const onExit = () => {
    try {
      proc.kill('SIGKILL');
    } catch {
      // gone
    }
  };
  process.on('exit', onExit);
  return {
    proc,
    pid: proc.pid,
    out,
    get exit() { return exit; },
    exited,
    async stop(graceMs = 5000) {
      process.off('exit', onExit);
      if (exit) return exit;
      // Its children (nginx worker, squid helpers), to check by PID once it is gone.
      const tree = descendants(proc.pid).map((p) => p.pid);
      proc.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exit) proc.kill('SIGKILL'); }, graceMs);
      const status = await Promise.race([exited, sleep(graceMs + 2000).then(() => ({ timeout: true }))]);
      clearTimeout(timer);
      const deadline = Date.now() + 2000;
      const alive = (pid) => {
        try {
          process.kill(pid, 0);
          return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
        } catch {
          return false;
        }
      };
      while (tree.some(alive) && Date.now() < deadline) await sleep(50);
      for (const pid of tree.filter(alive)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      return status;
    },
    name,
  };
}

async function waitReady(child, port, ms, what, logFile) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exit) {
      throw new Error(`${what} exited (${JSON.stringify(child.exit)}) before listening:\n${child.out.text}\n${readIf(logFile).slice(-3000)}`);
    }
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} on 127.0.0.1:${port}\n${child.out.text}\n${readIf(logFile).slice(-3000)}`);
}

// ---- squid ------------------------------------------------------------------------------------

const SQUID_CONF = `# --- Debian 12 default ACLs, unchanged ---
acl SSL_ports port 443
acl Safe_ports port 80          # http
acl Safe_ports port 21          # ftp
acl Safe_ports port 443         # https
acl Safe_ports port 70          # gopher
acl Safe_ports port 210         # wais
acl Safe_ports port 1025-65535  # unregistered ports
acl Safe_ports port 280         # http-mgmt
acl Safe_ports port 488         # gss-http
acl Safe_ports port 591         # filemaker
acl Safe_ports port 777         # multiling http
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow localhost
http_access deny all

# --- test plumbing: loopback high port, everything under $DIR ---
http_port 127.0.0.1:$SQUID_PORT
pid_filename $DIR/squid.pid
access_log stdio:$DIR/access.log
cache_log $DIR/cache.log
cache_store_log none
coredump_dir $DIR
netdb_filename none
pinger_enable off
logfile_rotate 0
shutdown_lifetime 1 seconds
refresh_pattern ^ftp:           1440    20%     10080
refresh_pattern -i (/cgi-bin/|\\?) 0     0%      0
refresh_pattern .               0       20%     4320
`;

function chownTree(dir, user) {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const r = spawnSync('chown', ['-R', user, dir], { timeout: 5000 });
  if (r.status !== 0) throw new Error(`chown -R ${user} ${dir} failed: ${r.stderr}`);
}

/**
 * Starts squid on 127.0.0.1:<free port>. Resolves {port, pid, dir, accessLog(), stop()}.
 * stop() removes the instance's /dev/shm segments if squid had to be SIGKILLed.
 */
export async function startSquid() {
  const port = await freePort();
  const root = tempDir('wsbridge-squid-');
  const dir = path.join(root, 'squid');
  fs.mkdirSync(dir);
  const conf = path.join(dir, 'squid.conf');
  fs.writeFileSync(conf, render(SQUID_CONF, { SQUID_PORT: port, DIR: dir }));
  chownTree(dir, 'proxy');
  const name = `wsbt${port}`;
  const parse = spawnSync(SQUID_BIN, ['-n', name, '-k', 'parse', '-f', conf], { timeout: 10000, encoding: 'utf8' });
  if (parse.status !== 0) throw new Error(`squid -k parse failed (${parse.status}):\n${parse.stderr}${parse.stdout}`);
  const child = foreground('squid', SQUID_BIN, ['-n', name, '-N', '-f', conf]);
  try {
    await waitReady(child, port, 15000, 'squid', path.join(dir, 'cache.log'));
  } catch (err) {
    await child.stop(2000);
    throw err;
  }
  return {
    port,
    pid: child.pid,
    dir,
    accessLog: () => readIf(path.join(dir, 'access.log')),
    cacheLog: () => readIf(path.join(dir, 'cache.log')),
    async stop() {
      const status = await child.stop(5000);
      if (status.signal === 'SIGKILL' || status.timeout) {
        for (const f of fs.readdirSync('/dev/shm')) {
          if (f.startsWith(`${name}-`)) fs.rmSync(path.join('/dev/shm', f), { force: true });
        }
      }
      return { status, accessLog: readIf(path.join(dir, 'access.log')), cacheLog: readIf(path.join(dir, 'cache.log')), root };
    },
    cleanup() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

// ---- nginx ------------------------------------------------------------------------------------

const NGINX_CONF = `daemon off;
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log info;
events { worker_connections 256; }
http {
    access_log $DIR/access.log;
    client_body_temp_path $DIR/tmp/body;
    proxy_temp_path       $DIR/tmp/proxy;
    fastcgi_temp_path     $DIR/tmp/fastcgi;
    uwsgi_temp_path       $DIR/tmp/uwsgi;
    scgi_temp_path        $DIR/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
$LOCATIONS
    }
}
`;

// Verified block (notes, scenario C): HTTP/1.0 upstream, no Upgrade, buffering on, the app's
// X-Accel-Buffering ignored; buffer sizes at the defaults (4k / 8 4k).
const BUFFERED_LOCATION = `        location $PATH {
            proxy_pass http://127.0.0.1:$UPSTREAM_PORT;
            proxy_buffering on;
            proxy_ignore_headers X-Accel-Buffering;
        }`;

/**
 * Starts nginx on 127.0.0.1:`port` (default: a free port) with one buffering location per
 * entry of `locations` ({path, upstreamPort}). Resolves {port, pid, dir, accessLog(), stop()}.
 */
export async function startNginx({ port, locations }) {
  port ??= await freePort();
  const root = tempDir('wsbridge-nginx-');
  const dir = path.join(root, 'nginx');
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  fs.chmodSync(dir, 0o755);
  const blocks = locations.map((l) => render(BUFFERED_LOCATION, { PATH: l.path, UPSTREAM_PORT: l.upstreamPort })).join('\n');
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, render(NGINX_CONF, { DIR: dir, NGINX_PORT: port }).replace('$LOCATIONS', blocks));
  const errorLog = path.join(dir, 'error.log');
  const check = spawnSync(NGINX_BIN, ['-t', '-q', '-p', dir, '-c', conf, '-e', errorLog], { timeout: 10000, encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed (${check.status}):\n${check.stderr}${readIf(errorLog)}`);
  const child = foreground('nginx', NGINX_BIN, ['-p', dir, '-c', conf, '-e', errorLog]);
  try {
    await waitReady(child, port, 10000, 'nginx', errorLog);
  } catch (err) {
    await child.stop(2000);
    throw err;
  }
  return {
    port,
    pid: child.pid,
    dir,
    origin: `http://127.0.0.1:${port}`,
    accessLog: () => readIf(path.join(dir, 'access.log')),
    async stop() {
      const status = await child.stop(5000);
      return { status, accessLog: readIf(path.join(dir, 'access.log')), errorLog: readIf(errorLog), root };
    },
    cleanup() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
