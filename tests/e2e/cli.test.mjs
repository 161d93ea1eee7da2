// The command line: --check-config reports every error with file:line:col and exits non-zero,
// valid files (every examples/*.yaml) exit 0; --version and --help; an unusable config stops
// startup with a clear message.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { REPO, WSBRIDGE_BIN } from './lib/harness.mjs';

function run(args) {
  const r = spawnSync(WSBRIDGE_BIN, args, { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tempFile(name, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsbridge-cli-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

test('--check-config accepts every example config', () => {
  const dir = path.join(REPO, 'examples');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 2, 'examples/*.yaml present');
  for (const f of files) {
    const r = run(['--check-config', path.join(dir, f)]);
    assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    assert.match(r.stdout, /OK/);
  }
});

test('--check-config names every error of a broken file with line:col and exits 1', () => {
  const file = tempFile('broken.yaml', [
    'listen:',
    '  - address: 127.0.0.1:99999',
    'limits:',
    '  header_timeout: 10parsecs',
    'routes:',
    '  - path: chat',
    '    backend: http://127.0.0.1:9000/chat',
    '    max_message: lots',
    '    colour: blue',
    '',
  ].join('\n'));
  const r = run(['--check-config', file]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  const at = (line, col) => lines.find((l) => l.startsWith(`${file}:${line}:${col}: `));
  assert.ok(at(2, 14), `port error at 2:14 in:\n${r.stderr}`);
  assert.ok(at(4, 19), `duration error at 4:19 in:\n${r.stderr}`);
  assert.ok(at(6, 11), `path error at 6:11 in:\n${r.stderr}`);
  assert.ok(at(7, 14), `URL error at 7:14 in:\n${r.stderr}`);
  assert.ok(at(8, 18), `size error at 8:18 in:\n${r.stderr}`);
  assert.ok(at(9, 5), `unknown key error at 9:5 in:\n${r.stderr}`);
  for (const l of lines) {
    assert.match(l, /^.+:\d+:\d+: .+/, `every line is file:line:col: message: ${l}`);
  }
});

test('--check-config reports a YAML syntax error with its position', () => {
  const file = tempFile('syntax.yaml', 'listen:\n  - address: [127.0.0.1:0\nroutes: []\n');
  const r = run(['--check-config', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
});

test('--check-config on a missing file fails clearly', () => {
  const r = run(['--check-config', '/nonexistent/wsbridge.yaml']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nonexistent\/wsbridge\.yaml/);
});

test('--version and --help exit 0; bad usage exits 2', () => {
  const v = run(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^wsbridge \d+\.\d+\.\d+/);
  const h = run(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--check-config/);
  const bad = run(['--frobnicate']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /usage/);
});

test('-c with an invalid config exits 1 without listening', () => {
  const file = tempFile('bad.yaml', 'listen: []\nroutes: []\n');
  const r = run(['-c', file]);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stderr, /event=listening/);
});

test('log: {format: json} writes one JSON object per line, numbers as numbers', async () => {
  const { spawn } = await import('node:child_process');
  const net = await import('node:net');
  const file = tempFile('json.yaml', [
    'listen:', '  - address: 127.0.0.1:0',
    'log: { format: json, level: info }',
    'routes:', '  - path: /chat', '    backend: ws://127.0.0.1:9/chat', '    origins: [https://app.example]', '',
  ].join('\n'));
  const child = spawn(WSBRIDGE_BIN, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 10_000;
  let port = 0;
  while (!port && Date.now() < deadline) {
    const m = /"event":"listening","address":"127\.0\.0\.1:(\d+)"/.exec(err);
    if (m) port = Number(m[1]);
    else await new Promise((r) => setTimeout(r, 20));
  }
  try {
    assert.ok(port, `no listening line in ${err}`);
    // A WebSocket upgrade from a foreign Origin: rejected with 403 and logged.
    const req = 'GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      'Origin: https://evil.example\r\n\r\n';
    const answer = await new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(req));
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => resolve(got));
      s.on('error', reject);
      setTimeout(() => { s.destroy(); resolve(got); }, 3000);
    });
    assert.match(answer, /^HTTP\/1\.1 403 /);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  const lines = err.split('\n').filter((l) => l !== '');
  assert.ok(lines.length >= 4, err);
  const events = lines.map((l) => {
    const o = JSON.parse(l); // every line parses on its own
    assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level), l);
    assert.equal(typeof o.event, 'string');
    return o;
  });
  const rejected = events.find((o) => o.event === 'http_rejected');
  assert.ok(rejected, `no http_rejected line in ${err}`);
  assert.equal(rejected.status, 403); // a number, not "403"
  assert.equal(rejected.path, '/chat');
  assert.ok(events.some((o) => o.event === 'stopped'), err);
});
