#!/usr/bin/env node
// Reload soak (issue 14's acceptance line, NOT part of CI): "1,000 live clients across the three
// transports, 100 reloads while they exchange messages: 0 closed, 0 lost, 0 duplicated; an
// invalid file among them changes nothing."
//
//   node tests/soak/reload_soak.mjs [--clients 1000] [--reloads 100] [--interval-ms 100]
//        [--split 40/30/30] [--period-ms 1000] [--batch 2] [--pad 300] [--drain-ms 60000]
//
// One example backend (examples/backend/server.mjs `/echo`) and one wsbridge (build/wsbridge or
// WSBRIDGE_BIN) on 127.0.0.1, OS-chosen ports. The clients are split across plain WebSocket
// relays (lib/reload.mjs NumberedWs), SSE sessions and long-poll sessions (lib/session_client.mjs
// SessionClient, opened by lib/mux.mjs openLongPoll; SSE ones moved to their own stream). Each
// sends `--batch` numbered messages every `--period-ms` (random phase) on /echo, text
// `<name>:<n>` where the name carries `--pad` bytes, so a message is larger than the 256-byte
// max_message some reloads set on /echo: the clients' route path never changes, but its limits
// (max_message 256, rate 1/s burst 1) flip on alternate reloads and must not reach live clients
// (a relay would be closed 1009/1008, a POST answered 413/429). Every echo must come back
// exactly once and in order: each received payload is booked against the client's own counter
// (duplicate: a number seen before; reordered: not one more than the highest seen; lost: sent
// but never seen after the drain), and the session books (seq numbering, next_seq) must hold too.
//
// Meanwhile `--reloads` SIGHUP reloads, `--interval-ms` apart, each waiting for its outcome line:
// /echo's limits change every time, /side's backend flips, /dyn-<i> is added by reload i and
// removed by i+1 (none on every third), /extra-<k> prefix routes come and go in blocks of 10.
// Reload number ceil(reloads/2) writes an invalid file (the current routes with /echo tightened,
// plus a route with two errors): it must log exactly two `reload_failed` lines, leave
// `wsbridge_config_last_reload_successful` at 0, keep answering the previous routes (a probe
// WebSocket on the current /dyn route echoes) and not change /echo for live or new clients; the
// next reload's routes_added/removed/changed must be computed against the file before it.
// Every `reloaded` line's route lists are checked against the expected difference.
//
// After the reloads, traffic goes on for 2 s, then sending stops and every client waits (at
// most --drain-ms in all) for its last echo. Output: one JSON line on stdout (clients opened,
// messages sent/received per transport, closed, reset, lost, duplicated, reordered, errors,
// reloads ok/error from the log and from /metrics, longest took_us); progress on stderr. Exit 0
// only when every one of closed/reset/lost/duplicated/reordered/errors is 0 and every count
// matches; 1 otherwise; 2 on a setup failure. Proxy and backend logs are saved to
// tests/e2e/artifacts/soak-reload.{proxy,backend}.log.
//
// File descriptors: the proxy needs ~2 per WebSocket client and per session, the client side
// one per client plus its POSTs, about clients × 3 + 1024 in all (at most 20000). Node raises
// its soft `ulimit -n` to the hard limit by itself, and its children inherit that; a hard
// limit below the need stops the run at once (exit 2).
// Every loop is bounded in count and time; every process is stopped by its PID.

import { spawnSync } from 'node:child_process';
import http from 'node:http';

import { startBackend, proxyConfig, haveProxy, WSBRIDGE_BIN, sleep, withTimeout } from '../e2e/lib/harness.mjs';
import { NumberedWs, adminPort, logfmt, pathList, reload, routeDiff, startReloadable } from '../e2e/lib/reload.mjs';
import { openLongPoll } from '../e2e/lib/mux.mjs';
import { batchBody } from '../e2e/lib/session_client.mjs';
import { scrape, metricSum } from '../e2e/lib/hostile.mjs';

// ----------------------------------------------------------------------------------------------
// Options

const DEFAULTS = {
  clients: 1000, reloads: 100, 'interval-ms': 100, split: '40/30/30', 'period-ms': 1000, batch: 2,
  pad: 300, 'drain-ms': 60000, 'open-concurrency': 50,
};

function parseArgs(argv) {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stderr.write(`usage: node tests/soak/reload_soak.mjs ${Object.entries(DEFAULTS).map(([k, v]) => `[--${k} ${v}]`).join(' ')}\n`);
      process.exit(0);
    }
    const key = a.replace(/^--/, '');
    if (!a.startsWith('--') || !(key in DEFAULTS) || i + 1 >= argv.length) {
      process.stderr.write(`reload_soak: bad argument ${a}\n`);
      process.exit(2);
    }
    const v = argv[++i];
    o[key] = key === 'split' ? v : Number(v);
    if (key !== 'split' && (!Number.isFinite(o[key]) || o[key] < 0)) {
      process.stderr.write(`reload_soak: --${key} wants a number\n`);
      process.exit(2);
    }
  }
  const parts = o.split.split('/').map(Number);
  if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x) || x < 0) || parts.reduce((a, b) => a + b) <= 0) {
    process.stderr.write('reload_soak: --split wants three numbers a/b/c\n');
    process.exit(2);
  }
  const total = parts.reduce((a, b) => a + b);
  const ws = Math.round((o.clients * parts[0]) / total);
  const sse = Math.round((o.clients * parts[1]) / total);
  o.counts = { ws, sse, longpoll: o.clients - ws - sse };
  if (o.reloads < 4) o.reloads = 4; // valid files before and after the invalid one
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const say = (msg) => process.stderr.write(`[soak ${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}\n`);
const T0 = Date.now();

// ----------------------------------------------------------------------------------------------
// ulimit -n: Node raises its own soft limit to the hard limit at startup, and the proxy and the
// backend inherit it; `sh -c 'ulimit -Sn'` shows what they get. Too low: say so and stop.

function checkFdLimit() {
  const need = Math.min(20000, opts.clients * 3 + 1024);
  const soft = spawnSync('sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).stdout.trim();
  if (soft === 'unlimited' || Number(soft) >= need) return true;
  process.stderr.write(`reload_soak: the file descriptor limit is ${soft}, the run needs ${need}: ` +
    `raise the hard limit (ulimit -Hn ${need}, as root) or run fewer --clients\n`);
  return false;
}

// ----------------------------------------------------------------------------------------------
// HTTP for POSTs and polls: one keep-alive agent (a fresh connection per request would leave
// tens of thousands of TIME_WAIT sockets behind on loopback).

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 2048 });

function request(port, method, path, { body, ms = 10000, headers = {} } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(body, 'utf8');
    const h = { ...headers };
    if (payload) h['Content-Length'] = String(payload.length);
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(ms, () => req.destroy(new Error(`${method} ${path.slice(0, 60)}: no answer in ${ms} ms`)));
    req.end(payload ?? undefined);
  }), ms + 1000, `${method} ${path.slice(0, 60)}`);
}

// ----------------------------------------------------------------------------------------------
// Books: every payload "<name>:<n>" a client receives, against what it sent.

class Books {
  constructor() {
    this.seen = new Set();
    this.max = 0;
    this.received = 0;
    this.duplicated = 0;
    this.reordered = 0;
    this.foreign = 0;
  }

  book(name, text) {
    const i = text.lastIndexOf(':');
    const n = Number(text.slice(i + 1));
    if (text.slice(0, i) !== name || !Number.isInteger(n) || n < 1) {
      this.foreign++;
      return;
    }
    if (this.seen.has(n)) {
      this.duplicated++;
      return;
    }
    this.seen.add(n);
    this.received++;
    if (n !== this.max + 1) this.reordered++;
    if (n > this.max) this.max = n;
  }
}

const FAST = { messages_per_second: 100000, burst: 100000 }; // a rate that never limits
const TIGHT = { messages_per_second: 1, burst: 1 }; // what live clients must never get

// ----------------------------------------------------------------------------------------------

async function main() {
  if (!checkFdLimit()) process.exit(2);
  if (!haveProxy()) {
    process.stderr.write(`reload_soak: no wsbridge binary at ${WSBRIDGE_BIN} (build it, or set WSBRIDGE_BIN)\n`);
    process.exit(2);
  }
  const R = opts.reloads;
  // The invalid file comes halfway, after a config that has a /dyn route (the probe's).
  const BAD = Math.ceil(R / 2) + ((Math.ceil(R / 2) - 1) % 3 === 2 ? 1 : 0);
  const pad = 'x'.repeat(opts.pad);
  const failures = [];
  const errors = [];
  const fail = (what) => {
    failures.push(what);
    say(`FAIL: ${what}`);
  };
  const error = (what) => {
    errors.push(what);
    if (errors.length <= 20) say(`error: ${what}`);
  };

  say(`${opts.clients} clients (ws ${opts.counts.ws}, sse ${opts.counts.sse}, longpoll ${opts.counts.longpoll}), ` +
    `${R} reloads ${opts['interval-ms']} ms apart (invalid file: #${BAD}), ${opts.batch} msgs / ${opts['period-ms']} ms per client`);

  const backend = await startBackend({ label: 'soak-reload' });
  const routesFor = (i) => {
    const r = [
      { path: '/echo', backend: backend.url('/echo'), rate: i % 2 ? TIGHT : FAST, max_message: Math.floor(i / 2) % 2 ? '1m' : '256',
        ...(i === 0 ? { max_message: '1m' } : {}) },
      { path: '/side', backend: backend.url(i % 2 ? '/chat' : '/echo'), rate: FAST },
    ];
    if (i % 3 !== 2) r.push({ path: `/dyn-${i}`, backend: backend.url('/echo'), rate: FAST });
    if (Math.floor(i / 10) % 2 === 1) {
      for (let k = 0; k < 10; k++) r.push({ path: `/extra-${Math.floor(i / 10)}-${k}/`, backend: backend.url('/echo') });
    }
    return r;
  };
  const extra = 'admin: { address: 127.0.0.1:0 }\n' +
    'limits: { max_connections: 5000, max_connections_per_ip: 5000 }\n';
  const yamlFor = (routes) => proxyConfig(routes, { extra });
  let current = routesFor(0);
  const proxy = await startReloadable(yamlFor(current), { label: 'soak-reload' });
  const port = proxy.port;
  const admin = adminPort(proxy);
  say(`backend pid ${backend.pid} port ${backend.port}; proxy pid ${proxy.pid} port ${port}, admin ${admin}`);

  const ws = [];
  const sse = [];
  const lp = [];
  const result = {};
  let stopSending = false;
  let stopPolling = false;
  try {
    // ------------------------------------------------------------------------------ clients
    const nameOf = (kind, i) => `${kind}${i}.${pad}`;
    const tOpen = Date.now();
    const openAll = async (n, open) => {
      let next = 0;
      const worker = async () => {
        while (next < n) {
          const i = next++;
          try {
            await open(i);
          } catch (e) {
            error(`open #${i}: ${e.message.split('\n')[0]}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(opts['open-concurrency'], n) }, worker));
    };
    await openAll(opts.counts.ws, async (i) => {
      const c = new NumberedWs(`ws://127.0.0.1:${port}/echo`, nameOf('w', i));
      c.books = new Books();
      c.ws.on('message', (data) => c.books.book(c.name, String(data)));
      await c.opened(15000);
      ws.push(c);
    });
    await openAll(opts.counts.sse, async (i) => {
      const c = await openLongPoll(port, '/echo');
      c.name = nameOf('s', i);
      await c.sseAttach({ mode: 'url' });
      sse.push(c);
    });
    await openAll(opts.counts.longpoll, async (i) => {
      const c = await openLongPoll(port, '/echo');
      c.name = nameOf('l', i);
      lp.push(c);
    });
    const opened = { ws: ws.length, sse: sse.length, longpoll: lp.length };
    say(`opened ${JSON.stringify(opened)} in ${Date.now() - tOpen} ms`);

    // ------------------------------------------------------------------------------ traffic
    const sessions = [...sse, ...lp];
    const busy = { count: 0 };
    const sendRound = async (c) => {
      const first = c.outbox.length + 1;
      c.queue(Array.from({ length: opts.batch }, (_, k) => ({ binary: false, data: Buffer.from(`${c.name}:${first + k}`, 'utf8') })));
      // POST from `acked` (a retried seq is safe); at most 100 a time; 429 busy is retried.
      for (let attempt = 0; attempt < 20 && c.acked <= c.outbox.length && !c.dead; attempt++) {
        const from = c.acked;
        const to = Math.min(c.outbox.length, from + 99);
        let res;
        try {
          res = await request(port, 'POST', c.sendPath(from), { body: batchBody(c.outbox.slice(from - 1, to)), headers: { 'Content-Type': 'application/json' }, ms: 15000 });
        } catch (e) {
          error(`${c.name.slice(0, 6)} POST seq=${from}: ${e.message}`);
          await sleep(200);
          continue;
        }
        if (res.status === 200) {
          if (res.json?.next_seq !== to + 1) c.violations.push(`POST seq=${from}..${to}: next_seq ${res.json?.next_seq}`);
          c.onAcked(res.json?.next_seq, 'POST');
        } else if (res.status === 429 && res.json?.error === 'busy') {
          busy.count++;
          await sleep(1000 * Math.max(1, Number(res.headers['retry-after']) || 1));
        } else {
          error(`${c.name.slice(0, 6)} POST seq=${from}..${to}: ${res.status} ${res.body.slice(0, 200)}`);
          c.dead = true; // a client that got a refusal (413/429 rate/404) stops sending
        }
      }
    };
    const ticker = (async () => {
      // Each client sends its batch once per period, at a random phase; a session client whose
      // previous POST is still out skips a turn (its messages then go with the next one).
      const period = opts['period-ms'];
      const all = [...ws.map((c) => ({ c, kind: 'ws' })), ...sessions.map((c) => ({ c, kind: 's' }))];
      for (const x of all) x.due = Date.now() + Math.random() * period;
      const limit = Date.now() + 3600_000;
      while (!stopSending && Date.now() < limit) {
        const now = Date.now();
        for (const x of all) {
          if (stopSending || x.due > now) continue;
          x.due += period;
          if (x.kind === 'ws') {
            if (!x.c.closed) x.c.send(opts.batch);
          } else if (!x.c.inFlight && !x.c.dead) {
            x.c.inFlight = sendRound(x.c).finally(() => { x.c.inFlight = null; });
          }
        }
        await sleep(20);
      }
      await Promise.all(sessions.map((c) => c.inFlight).filter(Boolean));
    })();
    // One poll at a time per long-poll client, for the whole run.
    const pollers = lp.map(async (c) => {
      let failuresInARow = 0;
      for (let n = 0; n < 100000 && !stopPolling && !c.dead; n++) {
        try {
          const res = await request(port, 'GET', `/echo?session=${encodeURIComponent(c.session)}&ack=${c.lastSeen}`, { ms: 45000 });
          if (res.status !== 200 || !res.json) throw new Error(`${res.status} ${res.body.slice(0, 200)}`);
          c.lpAnswer(res.json, 'lp');
          failuresInARow = 0;
        } catch (e) {
          if (stopPolling) break;
          error(`${c.name.slice(0, 6)} poll: ${e.message}`);
          if (++failuresInARow >= 5) {
            c.dead = true;
            break;
          }
          await sleep(500);
        }
      }
    });

    // ------------------------------------------------------------------------------ reloads
    await sleep(Math.min(3000, opts['period-ms'] * 2)); // traffic before the first reload
    const reloadedLines = [];
    let badChecked = false;
    const tReloads = Date.now();
    for (let i = 1; i <= R; i++) {
      if (i === BAD) {
        // The current routes with /echo tightened (it would close every live relay if applied),
        // plus a route with two errors.
        const tightened = current.map((x) => (x.path === '/echo' ? { ...x, rate: TIGHT, max_message: '256' } : x));
        const bad = yamlFor(tightened) +
          '  - path: "/broken"\n' +
          `    backend: ${JSON.stringify(backend.url('/echo'))}\n` +
          '    max_message: lots\n' +
          '    colour: blue\n';
        try {
          const r = await reload(proxy, bad, { errors: 2, ms: 15000, settleMs: 200 });
          const errs = r.fields.map((f) => f.error ?? '');
          if (!errs.some((e) => e.includes('colour')) || !errs.some((e) => e.includes('max_message'))) fail(`invalid file: errors ${JSON.stringify(errs)}`);
          // Nothing changed: the previous /dyn route still echoes, /broken is unknown, and
          // the gauge says the last reload failed.
          const dyn = current.find((x) => x.path.startsWith('/dyn-'))?.path;
          const probe = new NumberedWs(`ws://127.0.0.1:${port}${dyn}`, 'probe');
          try {
            await probe.opened(5000);
            probe.send(3);
            await probe.heardUpTo(3, 'probe', 5000);
          } catch (e) {
            fail(`after the invalid file, ${dyn} does not echo: ${e.message}`);
          } finally {
            probe.ws.terminate();
          }
          const broken = await request(port, 'GET', '/broken?transport=longpoll', { ms: 5000 });
          if (broken.status !== 404) fail(`after the invalid file, /broken answered ${broken.status}`);
          const series = await scrape(admin);
          const gauge = metricSum(series, 'wsbridge_config_last_reload_successful');
          if (gauge !== 0) fail(`after the invalid file, wsbridge_config_last_reload_successful = ${gauge}`);
          badChecked = true;
        } catch (e) {
          fail(`invalid file (reload #${i}): ${e.message.split('\n').slice(0, 6).join(' | ')}`);
        }
        await sleep(opts['interval-ms']);
        continue;
      }
      const next = routesFor(i);
      try {
        const r = await reload(proxy, yamlFor(next), { ms: 15000 });
        const want = routeDiff(current, next);
        // The line names 20 paths, then "+N": compare what it names.
        const got = { added: pathList(r.fields.routes_added), removed: pathList(r.fields.routes_removed), changed: pathList(r.fields.routes_changed) };
        for (const k of Object.keys(want)) {
          const named = got[k].filter((p) => !/^\+\d+$/.test(p));
          const more = got[k].find((p) => /^\+\d+$/.test(p));
          const count = named.length + (more ? Number(more.slice(1)) : 0);
          if (count !== want[k].length || named.some((p) => !want[k].includes(p))) {
            fail(`reload #${i}: routes_${k} ${JSON.stringify(got[k])}, want ${JSON.stringify(want[k])} (${r.line})`);
          }
        }
        if (r.fields.listeners_added !== '0' || r.fields.listeners_removed !== '0') fail(`reload #${i}: listeners changed: ${r.line}`);
        reloadedLines.push(r.line);
        current = next;
      } catch (e) {
        fail(`reload #${i}: ${e.message.split('\n').slice(0, 6).join(' | ')}`);
      }
      if (i % 10 === 0) say(`reload ${i}/${R}`);
      await sleep(opts['interval-ms']);
    }
    const reloadSeconds = (Date.now() - tReloads) / 1000;
    say(`${R} reloads in ${reloadSeconds.toFixed(1)} s`);
    await sleep(2000); // traffic after the last reload too

    // ------------------------------------------------------------------------------ drain
    stopSending = true;
    await withTimeout(ticker, 30000, 'the last POSTs').catch((e) => error(e.message));
    const sentOf = (c) => (c instanceof NumberedWs ? c.sent : c.outbox.length);
    const gotOf = (c) => (c instanceof NumberedWs ? c.books.received : c.lastSeen);
    const done = () => [...ws, ...sessions].every((c) => gotOf(c) >= sentOf(c) || c.closed || c.dead);
    const tDrain = Date.now();
    while (!done() && Date.now() < tDrain + opts['drain-ms']) await sleep(50);
    say(`drained ${done() ? 'completely' : 'NOT completely'} in ${Date.now() - tDrain} ms`);
    await sleep(300); // anything extra (a duplicate) would arrive now

    // ------------------------------------------------------------------------------ the books
    const per = {};
    let closed = 0;
    let reset = 0;
    let lost = 0;
    let duplicated = 0;
    let reordered = 0;
    let gaps = 0;
    let seqViolations = 0;
    let unacked = 0;
    const examples = [];
    const example = (s) => {
      if (examples.length < 10) examples.push(s);
    };
    per.ws = { sent: 0, received: 0 };
    for (const c of ws) {
      per.ws.sent += c.sent;
      per.ws.received += c.books.received;
      if (c.closed) {
        closed++;
        example(`${c.name.slice(0, 6)} closed ${JSON.stringify(c.closed)}`);
      }
      lost += c.sent - c.books.received;
      duplicated += c.books.duplicated;
      reordered += c.books.reordered;
      if (c.books.foreign) {
        error(`${c.name.slice(0, 6)}: ${c.books.foreign} foreign messages`);
      }
      if (c.sent !== c.books.received) example(`${c.name.slice(0, 6)} sent ${c.sent} received ${c.books.received}`);
    }
    for (const [kind, list] of [['sse', sse], ['longpoll', lp]]) {
      per[kind] = { sent: 0, received: 0 };
      for (const c of list) {
        const books = new Books();
        for (const m of c.received) books.book(c.name, m.data.toString('utf8'));
        per[kind].sent += c.outbox.length;
        per[kind].received += books.received;
        lost += c.outbox.length - books.received;
        duplicated += books.duplicated;
        reordered += books.reordered;
        if (books.foreign) error(`${c.name.slice(0, 6)}: ${books.foreign} foreign messages`);
        reset += c.resets.length;
        gaps += c.gaps.length;
        seqViolations += c.violations.length;
        if (c.acked !== c.outbox.length + 1) unacked += c.outbox.length + 1 - c.acked;
        let isClosed = c.closes.length > 0 || c.dead;
        if (kind === 'sse' && c.sse.current.ended) isClosed = true;
        if (isClosed) {
          closed++;
          example(`${kind} ${c.name.slice(0, 6)} closed: closes ${JSON.stringify(c.closes)} ended ${kind === 'sse' ? c.sse.current.ended : '-'} dead ${!!c.dead}`);
        }
        if (c.resets.length || c.gaps.length || c.violations.length) {
          example(`${kind} ${c.name.slice(0, 6)}: resets ${JSON.stringify(c.resets)} gaps ${JSON.stringify(c.gaps)} violations ${JSON.stringify(c.violations.slice(0, 3))}`);
        }
        if (c.outbox.length !== books.received) example(`${kind} ${c.name.slice(0, 6)} sent ${c.outbox.length} received ${books.received}`);
      }
    }

    // ------------------------------------------------------------------------------ reloads
    const log = proxy.stderr().split('\n');
    const okLines = log.filter((l) => /\bevent=reloaded\b/.test(l));
    const failedLines = log.filter((l) => /\bevent=reload_failed\b/.test(l));
    const tooks = okLines.map((l) => Number(logfmt(l).took_us)).filter(Number.isFinite);
    const longest = okLines.reduce((a, l) => (Number(logfmt(l).took_us) > Number(logfmt(a ?? '').took_us ?? -1) ? l : a), null);
    const listening = log.filter((l) => /\bevent=listening\b/.test(l)).length;
    const series = await scrape(admin);
    const metrics = {
      ok: metricSum(series, 'wsbridge_reloads_total', { result: 'ok' }),
      error: metricSum(series, 'wsbridge_reloads_total', { result: 'error' }),
      last_successful: metricSum(series, 'wsbridge_config_last_reload_successful'),
    };
    // Close lines of the clients' route while they ran (the invalid-file probe is on /dyn-*).
    const echoRoute = (l) => /\broute="?\/echo"?(\s|$)/.test(l);
    const wsCloses = log.filter((l) => /\bevent=ws_closed\b/.test(l) && echoRoute(l));
    const sessionCloses = log.filter((l) => /\bevent=session_closed\b/.test(l) && echoRoute(l));
    const rejected = log.filter((l) => /\bevent=(http_rejected|ws_rejected|connection_rejected|ws_client_error|backend_failed)\b/.test(l));
    for (const l of [...wsCloses, ...sessionCloses, ...rejected].slice(0, 5)) example(`proxy: ${l.slice(0, 300)}`);

    // ------------------------------------------------------------------------------ verdict
    if (opened.ws !== opts.counts.ws || opened.sse !== opts.counts.sse || opened.longpoll !== opts.counts.longpoll) {
      fail(`opened ${JSON.stringify(opened)}, want ${JSON.stringify(opts.counts)}`);
    }
    for (const [k, v] of Object.entries({ closed, reset, lost, duplicated, reordered, gaps, seq_violations: seqViolations, unacked })) {
      if (v !== 0) fail(`${k} = ${v}`);
    }
    for (const [k, v] of Object.entries(per)) if (v.sent !== v.received) fail(`${k}: sent ${v.sent}, received ${v.received}`);
    if (errors.length) fail(`${errors.length} client errors`);
    if (okLines.length !== R - 1) fail(`${okLines.length} reloaded lines, want ${R - 1}`);
    if (failedLines.length !== 2) fail(`${failedLines.length} reload_failed lines, want 2`);
    if (metrics.ok !== R - 1 || metrics.error !== 1 || metrics.last_successful !== 1) fail(`metrics ${JSON.stringify(metrics)}, want ok ${R - 1}, error 1, last_successful 1`);
    if (listening !== 1) fail(`${listening} listening lines: a listener was bound again`);
    if (!badChecked) fail('the invalid file was not checked');
    if (wsCloses.length || sessionCloses.length) fail(`the proxy logged ${wsCloses.length} ws_closed and ${sessionCloses.length} session_closed lines during the run`);

    Object.assign(result, {
      ok: failures.length === 0,
      clients: { requested: opts.clients, opened: opened.ws + opened.sse + opened.longpoll, ...opened },
      messages: per,
      closed, reset, lost, duplicated, reordered, gaps, seq_violations: seqViolations, unacked,
      errors: errors.length, post_busy_retries: busy.count,
      reloads: {
        attempted: R, invalid_at: BAD,
        ok_lines: okLines.length, reload_failed_lines: failedLines.length,
        metrics_ok: metrics.ok, metrics_error: metrics.error, last_reload_successful: metrics.last_successful,
        took_us_max: tooks.length ? Math.max(...tooks) : null,
        took_us_max_line: longest ? longest.replace(/^ts=\S+ level=\S+ /, '').slice(0, 300) : null,
        took_us_median: tooks.length ? tooks.sort((a, b) => a - b)[Math.floor(tooks.length / 2)] : null,
        seconds: Number(reloadSeconds.toFixed(1)),
      },
      proxy_log: { ws_closed: wsCloses.length, session_closed: sessionCloses.length, rejected: rejected.length },
      options: { clients: opts.clients, reloads: R, interval_ms: opts['interval-ms'], split: opts.counts, period_ms: opts['period-ms'], batch: opts.batch, message_bytes: `${nameOf('w', 0).length + 2}+` },
      seconds: Number(((Date.now() - T0) / 1000).toFixed(1)),
      failures: failures.slice(0, 20),
      examples,
      first_errors: errors.slice(0, 10),
    });
  } finally {
    stopSending = true;
    stopPolling = true;
    for (const c of ws) c.ws.terminate();
    for (const c of sse) c.sse?.cut?.();
    agent.destroy();
    const ps = await proxy.stop().catch((e) => ({ error: e.message }));
    await backend.stop().catch(() => {});
    result.proxy_exit = ps;
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`reload_soak: ${e.stack ?? e}\n`);
  process.exit(2);
});
