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
// And their https counterparts (a browser sends CONNECT for every https request through a
// forward proxy, so a plain squid sees nothing of what goes through the tunnel):
//
//  - startSquid({bump}): the same squid intercepting TLS (ssl-bump, Debian's squid-openssl
//    flavour) with a CA the browser trusts, as a corporate proxy with its own root does:
//    server-first bumping (peek at the CONNECT, stare at the server, bump), certificates minted
//    from the server's, signed by that CA. Upgrade headers are dropped (squid 5's default, no
//    http_upgrade_request_protocols rule), so a WebSocket handshake reaches the server as a
//    plain GET; responses stream as without TLS.
//  - startNginx({tls}): the same nginx terminating TLS, proxying to https upstreams.
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
export const SQUID_CERTGEN = process.env.SQUID_CERTGEN || '/usr/lib/squid/security_file_certgen';
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

/**
 * node:test `skip` value: false, or why squid/nginx cannot run (fails loudly under ctest).
 * bump: squid must be able to intercept TLS (startSquid({bump})).
 */
export function intermediarySkip({ bump = false } = {}) {
  const missing = [[SQUID_BIN, 'squid-openssl'], [NGINX_BIN, 'nginx']].filter(([f]) => !executable(f)).map(([, n]) => n);
  if (bump && missing.length === 0 && !squidCanBump()) missing.push('squid-openssl (squid has no ssl-bump)');
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

// TLS interception (bump): replaces the plain http_port line. Server-first bumping: peek at the
// CONNECT (step 1), stare at the server's certificate (step 2), bump (step 3), so the minted
// certificate copies the server's names. The server's chain is verified against the CA; only
// its name check is waived, because squid 5.7 matches the host against CN and DNS names only and
// the test servers are reached as 127.0.0.1 (an IP SAN). No http_upgrade_request_protocols
// rule: squid's default drops every Upgrade offer.
const SQUID_BUMP = `http_port 127.0.0.1:$SQUID_PORT ssl-bump tls-cert=$DIR/bump-ca.crt tls-key=$DIR/bump-ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=4MB
sslcrtd_program $CERTGEN -s $DIR/ssl_db -M 4MB
sslcrtd_children 1 startup=1 idle=1
acl step1 at_step SslBump1
acl step2 at_step SslBump2
ssl_bump peek step1
ssl_bump stare step2
ssl_bump bump all
tls_outgoing_options cafile=$DIR/bump-ca.crt
acl ip_san_host ssl_error SQUID_X509_V_ERR_DOMAIN_MISMATCH
sslproxy_cert_error allow ip_san_host
sslproxy_cert_error deny all`;

/** True when squid was built with OpenSSL (Debian's squid-openssl): it can ssl-bump. */
function squidCanBump() {
  const r = spawnSync(SQUID_BIN, ['-v'], { timeout: 10000, encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('--with-openssl') && executable(SQUID_CERTGEN);
}

/**
 * Starts squid on 127.0.0.1:<free port>. Resolves {port, pid, dir, accessLog(), stop()}.
 * stop() removes the instance's /dev/shm segments if squid had to be SIGKILLed.
 * bump: {ca: {cert, key} (files), sslPorts: [port, ...]} intercepts TLS with that CA (see
 * SQUID_BUMP); sslPorts join SSL_ports, standing in for 443 (tests cannot bind it), so CONNECT
 * to them is allowed while the Debian ACLs stay as they are.
 */
export async function startSquid({ bump } = {}) {
  if (bump && !squidCanBump()) {
    throw new Error(`${SQUID_BIN} cannot ssl-bump (the GnuTLS flavour?) or ${SQUID_CERTGEN} is missing: ` +
      'install Debian\'s squid-openssl (scripts/setup.sh)');
  }
  const port = await freePort();
  const root = tempDir('wsbridge-squid-');
  const dir = path.join(root, 'squid');
  fs.mkdirSync(dir);
  const conf = path.join(dir, 'squid.conf');
  let text = SQUID_CONF;
  if (bump) {
    fs.copyFileSync(bump.ca.cert, path.join(dir, 'bump-ca.crt'));
    fs.copyFileSync(bump.ca.key, path.join(dir, 'bump-ca.key'));
    const init = spawnSync(SQUID_CERTGEN, ['-c', '-s', path.join(dir, 'ssl_db'), '-M', '4MB'], { timeout: 10000, encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`${SQUID_CERTGEN} -c failed (${init.status}):\n${init.stderr}${init.stdout}`);
    text = text.replace('acl SSL_ports port 443\n', `acl SSL_ports port 443\nacl SSL_ports port ${bump.sslPorts.join(' ')}\n`)
      .replace('http_port 127.0.0.1:$SQUID_PORT', SQUID_BUMP);
  }
  fs.writeFileSync(conf, render(text, { SQUID_PORT: port, DIR: dir, CERTGEN: SQUID_CERTGEN }));
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
        listen 127.0.0.1:$NGINX_PORT$LISTEN_TLS;
$LOCATIONS
    }
}
`;

// Verified block (notes, scenario C): HTTP/1.0 upstream, no Upgrade, buffering on, the app's
// X-Accel-Buffering ignored; buffer sizes at the defaults (4k / 8 4k).
const BUFFERED_LOCATION = `        location $PATH {
            proxy_pass $SCHEME://127.0.0.1:$UPSTREAM_PORT;$UPSTREAM_TLS
            proxy_buffering on;
            proxy_ignore_headers X-Accel-Buffering;
        }`;

// TLS termination (startNginx({tls})): the listener's certificate, and upstreams verified
// against the CA under the name their certificate has (nginx 1.22 matches DNS names only).
const LISTEN_TLS = ` ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY`;
const UPSTREAM_TLS = `
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $CA;
            proxy_ssl_name $SSL_NAME;`;

/**
 * Starts nginx on 127.0.0.1:`port` (default: a free port) with one buffering location per
 * entry of `locations` ({path, upstreamPort}). Resolves {port, pid, dir, accessLog(), stop()}.
 * tls: {cert, key, ca, name} (files; name: a DNS name of the upstreams' certificate) makes it
 * an https listener whose upstreams are https too.
 */
export async function startNginx({ port, locations, tls }) {
  port ??= await freePort();
  const root = tempDir('wsbridge-nginx-');
  const dir = path.join(root, 'nginx');
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  fs.chmodSync(dir, 0o755);
  const upstreamTls = tls ? render(UPSTREAM_TLS, { CA: tls.ca, SSL_NAME: tls.name }) : '';
  const blocks = locations.map((l) => render(BUFFERED_LOCATION, {
    PATH: l.path, SCHEME: tls ? 'https' : 'http', UPSTREAM_PORT: l.upstreamPort,
  }).replace('$UPSTREAM_TLS', upstreamTls)).join('\n');
  const listenTls = tls ? render(LISTEN_TLS, { CERT: tls.cert, KEY: tls.key }) : '';
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, render(NGINX_CONF, { DIR: dir, NGINX_PORT: port }).replace('$LISTEN_TLS', listenTls).replace('$LOCATIONS', blocks));
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
    origin: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
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
