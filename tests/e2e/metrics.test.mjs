// End-to-end: the admin port's /metrics is valid Prometheus text that `promtool check metrics`
// (Debian's `prometheus` package, scripts/setup.sh) accepts without an error or a lint warning,
// after the proxy carried every kind of traffic that creates series (issue 14):
//   a WebSocket relay with a message each way, an SSE session with a POSTed message and a resume
//   (Last-Event-ID), a long-poll session with a held poll, rejections (400 and 404), a reload
//   by SIGHUP (event=reloaded, wsbridge_reloads_total{result="ok"}) and a failed one
//   (event=reload_failed, {result="error"}).
// It also checks that examples/grafana/wsbridge-dashboard.json queries only registered families
// and that every query parses (`promtool check rules`).
// Every family gets `# HELP` and `# TYPE` once, before its samples, and counters end in _total.
//
//   node --test tests/e2e/metrics.test.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { WebSocket } from 'ws';

import {
  startBackend, startProxy, proxyConfig, proxySkip, httpGet, withTimeout, ARTIFACTS,
} from './lib/harness.mjs';
import { SseClient } from './lib/sse.mjs';
import { httpRequest } from './lib/session_client.mjs';

const PROMTOOL = process.env.PROMTOOL_BIN || '/usr/bin/promtool';
const promtoolMissing = !fs.existsSync(PROMTOOL)
  ? `promtool not found at ${PROMTOOL} (scripts/setup.sh installs Debian's prometheus)` : false;
const skip = proxySkip() || (process.env.E2E_REQUIRE_PROXY === '1' ? false : promtoolMissing);

let backend;
let proxy;
let adminPort;

/** Sum of the samples of `name` whose labels include `labels`. */
function metricSum(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{.*\})? (-?\d+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] || '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

const scrape = async () => {
  const res = await httpGet(adminPort, '/metrics');
  assert.equal(res.status, 200);
  return res.body;
};

function routes(extra = []) {
  return [
    { path: '/echo', backend: backend.url('/echo'), ...extra[0] },
    { path: '/chat', backend: backend.url('/chat') },
  ];
}

describe('metrics: promtool accepts /metrics after every kind of traffic', { skip }, () => {
  before(async () => {
    backend = await startBackend({ label: 'metrics-backend' });
    proxy = await startProxy(proxyConfig(routes(), {
      extra: 'admin: { address: 127.0.0.1:0 }\ninstance: m1\n',
    }), { label: 'metrics-proxy' });
    adminPort = Number((await proxy.waitForLog(/event=admin_listening address=127\.0\.0\.1:(\d+)/))[1]);
  });

  after(async () => {
    await proxy?.stop();
    await backend?.stop();
  });

  test('relay, SSE, long-poll, rejections and reloads, then promtool check metrics', { timeout: 30000 }, async () => {
    // A WebSocket relay: one message each way.
    const ws = new WebSocket(proxy.url('/echo'));
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', () => ws.send('hello'));
      ws.once('message', (m) => (String(m) === 'hello' ? resolve() : reject(new Error(String(m)))));
      ws.once('error', reject);
    }), 5000, 'echo over the relay');

    // An SSE session: announce, a POSTed message echoed back, then a resume.
    const sse = new SseClient(proxy.port, '/echo');
    await sse.connect();
    const announce = await sse.waitForEvent((e) => e.type === 'session', 5000, 'the announce event');
    const session = JSON.parse(announce.data).session;
    assert.ok(session, `announce: ${announce.data}`);
    const sent = await httpRequest(proxy.port, 'POST', `/echo?session=${session}&seq=1`, { body: 'over sse' });
    assert.ok(sent.status === 204 || sent.status === 200, `POST: ${sent.status}`);
    const echoed = await sse.waitForEvent((e) => e.data === 'over sse', 5000, 'the echo');
    sse.lastEventId = echoed.lastEventId;
    await sse.reconnect();
    await sse.waitForEvent((e) => e.type === 'session', 5000, 'the resumed announce', sse.current);

    // A long-poll session and one held poll.
    const open = await httpGet(proxy.port, '/chat?transport=longpoll');
    assert.equal(open.status, 200, open.body);
    const lp = JSON.parse(open.body).session;
    const poll = httpGet(proxy.port, `/chat?session=${lp}&ack=0`, { ms: 20000 }).catch(() => null);

    // Rejections: no transport (400), unknown path (404).
    assert.equal((await httpGet(proxy.port, '/echo')).status, 400);
    assert.equal((await httpGet(proxy.port, '/nowhere?transport=longpoll')).status, 404);

    // A reload that works and one that fails (the old config stays).
    const good = proxyConfig(routes([{ max_message: '32k' }]), {
      extra: 'admin: { address: 127.0.0.1:0 }\ninstance: m1\n',
    });  // the same admin entry: the admin listener stays
    fs.writeFileSync(proxy.configFile, good);
    process.kill(proxy.pid, 'SIGHUP');
    await proxy.waitForLog(/event=reloaded\b/, 5000);
    // An admin entry on port 0 is bound afresh by a reload: the newest admin_listening line.
    adminPort = Number([...proxy.stderr().matchAll(/event=admin_listening address=127\.0\.0\.1:(\d+)/g)].at(-1)[1]);
    fs.writeFileSync(proxy.configFile, `${good}bogus_key: 1\n`);
    process.kill(proxy.pid, 'SIGHUP');
    await proxy.waitForLog(/event=reload_failed\b/, 5000);

    const text = await scrape();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(`${ARTIFACTS}/metrics.prom`, text);

    // The traffic shows.
    assert.equal(metricSum(text, 'wsbridge_reloads_total', { result: 'ok' }), 1);
    assert.equal(metricSum(text, 'wsbridge_reloads_total', { result: 'error' }), 1);
    assert.equal(metricSum(text, 'wsbridge_config_last_reload_successful'), 0);
    assert.ok(metricSum(text, 'wsbridge_config_last_reload_timestamp_seconds') > 1.6e9);
    assert.equal(metricSum(text, 'wsbridge_connections', { route: '/echo', transport: 'websocket' }), 1);
    assert.equal(metricSum(text, 'wsbridge_connections', { route: '/echo', transport: 'sse' }), 1);
    assert.equal(metricSum(text, 'wsbridge_connections', { route: '/chat', transport: 'longpoll' }), 1);
    assert.equal(metricSum(text, 'wsbridge_sessions'), 2);
    assert.equal(metricSum(text, 'wsbridge_session_resumes_total', { route: '/echo', transport: 'sse' }), 1);
    // Messages count while connections live (not only when they end).
    assert.equal(metricSum(text, 'wsbridge_messages_total', { route: '/echo', transport: 'websocket', direction: 'in' }), 1);
    assert.equal(metricSum(text, 'wsbridge_messages_total', { route: '/echo', transport: 'session', direction: 'in' }), 1);
    assert.ok(metricSum(text, 'wsbridge_rejections_total', { status: '400' }) >= 1);
    assert.ok(metricSum(text, 'wsbridge_rejections_total', { status: '404' }) >= 1);

    // /status.json (the status page's data) is JSON and agrees with /metrics.
    const status = JSON.parse((await httpGet(adminPort, '/status.json')).body);
    assert.deepEqual(status.reload, { ...status.reload, ok: false, ok_total: 1, error_total: 1 });
    assert.deepEqual(status.transports, { websocket: 1, ws_session: 0, sse: 1, longpoll: 1 });
    const echoRow = status.routes.find((r) => r.path === '/echo');
    assert.equal(echoRow.resumes, 1);
    assert.equal(echoRow.messages_in, 2);
    assert.equal((await httpGet(adminPort, '/status')).headers['content-type'], 'text/html; charset=utf-8');

    // Every family has HELP and TYPE, once each, before its samples.
    const helped = new Set();
    const typed = new Set();
    for (const line of text.trimEnd().split('\n')) {
      let m;
      if ((m = /^# HELP (\S+) \S/.exec(line))) {
        assert.ok(!helped.has(m[1]), `second HELP for ${m[1]}`);
        helped.add(m[1]);
      } else if ((m = /^# TYPE (\S+) (counter|gauge)$/.exec(line))) {
        assert.ok(helped.has(m[1]) && !typed.has(m[1]), `TYPE of ${m[1]}`);
        typed.add(m[1]);
        if (m[2] === 'counter') assert.match(m[1], /_total$/);
      } else {
        const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line)?.[1];
        assert.ok(name && typed.has(name), `sample without TYPE: ${line}`);
      }
    }

    // promtool: exit 0 and nothing on stdout/stderr (lint warnings are printed, and exit 3).
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10000 });
    assert.equal(r.error, undefined, `promtool: ${r.error}`);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool check metrics output');
    assert.equal(r.status, 0, 'promtool check metrics exit status');

    // The Grafana dashboard (examples/grafana) queries only families /metrics has, and every
    // query parses (promtool check rules on them as recording rules, variables substituted).
    const dashboard = JSON.parse(fs.readFileSync(new URL('../../examples/grafana/wsbridge-dashboard.json', import.meta.url), 'utf8'));
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets || []).map((t) => t.expr)),
      ...dashboard.annotations.list.filter((a) => a.expr).map((a) => a.expr),
    ];
    assert.ok(exprs.length >= 10, 'dashboard queries');
    // Families show on /metrics once something set them; the registry (proxy/metrics.cc) lists
    // them all.
    const registry = fs.readFileSync(new URL('../../proxy/metrics.cc', import.meta.url), 'utf8');
    for (const name of new Set(exprs.join(' ').match(/wsbridge_[a-z_]+/g))) {
      assert.ok(helped.has(name) || registry.includes(`MetricInfo{"${name}"`),
        `dashboard queries ${name}, which the proxy does not emit`);
    }
    const rules = `groups:\n  - name: dashboard\n    rules:\n${exprs.map((e, i) => `      - record: dashboard:q${i}\n        expr: ${JSON.stringify(
      e.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*').replaceAll('$route', '.*'))}\n`).join('')}`;
    const rulesFile = `${ARTIFACTS}/dashboard-rules.yml`;
    fs.writeFileSync(rulesFile, rules);
    const rc = spawnSync(PROMTOOL, ['check', 'rules', rulesFile], { encoding: 'utf8', timeout: 10000 });
    assert.equal(rc.status, 0, `promtool check rules: ${rc.stdout}${rc.stderr}`);

    ws.close();
    sse.close();
    await httpRequest(proxy.port, 'DELETE', `/chat?session=${lp}`).catch(() => null);
    await poll;
  });
});
