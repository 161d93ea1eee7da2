// The Debian package (issue 14; cmake/packaging.cmake): CPack packs the build this test runs
// in, and the .deb must hold exactly the files README.md lists under "Install as a Debian
// package", with its metadata, conffile and maintainer scripts, units that start the packaged
// binary, a configuration that binary accepts, and no lintian error. The package is only
// inspected (dpkg-deb, lintian), never installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, WSBRIDGE_BIN } from './lib/harness.mjs';

const BUILD = path.dirname(WSBRIDGE_BIN);
const UNIT_DIR = '/lib/systemd/system';
const BINARY = '/usr/sbin/wsbridge';
const CONFIG = '/etc/wsbridge/wsbridge.yaml';

/** Runs a program to completion; fails the test if it cannot be started or times out. */
function run(program, args, { timeout = 30_000 } = {}) {
  const r = spawnSync(program, args, { encoding: 'utf8', timeout, maxBuffer: 16 << 20 });
  if (r.error) {
    const hint = r.error.code === 'ENOENT' ? ' (scripts/setup.sh installs dpkg-dev and lintian)' : '';
    assert.fail(`${program} ${args.join(' ')}: ${r.error.message}${hint}`);
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The absolute paths in the first code block under README's "Install as a Debian package". */
function readmeFileList() {
  const text = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const at = text.indexOf('\n### Install as a Debian package\n');
  assert.ok(at >= 0, 'README.md has the section "Install as a Debian package"');
  const block = text.slice(at).match(/\n```\n([\s\S]*?)\n```/);
  assert.ok(block, 'the section lists the files in a code block');
  return block[1].split('\n').filter((l) => l.startsWith('/'));
}

let out;   // the test's directory
let deb;   // path of the .deb
let root;  // its data, extracted
let control; // its control archive, extracted
let version; // the project's version, as the binary prints it

before(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'wsbridge-package-'));
  const config = path.join(BUILD, 'CPackConfig.cmake');
  assert.ok(fs.existsSync(config), `${config} exists (configure the build first)`);
  const packed = run('cpack', ['--config', config, '-B', out], { timeout: 300_000 });
  assert.equal(packed.code, 0, `cpack failed:\n${packed.stdout}${packed.stderr}`);
  const debs = fs.readdirSync(out).filter((f) => f.endsWith('.deb'));
  assert.equal(debs.length, 1, `one .deb in ${out}: ${debs}`);
  deb = path.join(out, debs[0]);
  root = path.join(out, 'root');
  control = path.join(out, 'control');
  assert.equal(run('dpkg-deb', ['-x', deb, root]).code, 0);
  assert.equal(run('dpkg-deb', ['-e', deb, control]).code, 0);
  version = run(WSBRIDGE_BIN, ['--version']).stdout.trim().split(' ')[1];
  assert.match(version, /^\d+\.\d+\.\d+$/);
});

after(() => fs.rmSync(out, { recursive: true, force: true }));

test('the package holds exactly the files README.md lists', () => {
  // A unit README names but systemd/ does not have yet is not expected; every other listed
  // file is, and nothing else may be in the package.
  const expected = readmeFileList().filter((f) => !f.startsWith(`${UNIT_DIR}/`) ||
    fs.existsSync(path.join(REPO, 'systemd', path.basename(f))));
  const listing = run('dpkg-deb', ['-c', deb]).stdout.trim().split('\n');
  const files = [];
  for (const line of listing) {
    // -rw-r--r-- root/root      2922 2026-12-07 21:11 ./etc/wsbridge/wsbridge.yaml
    const [mode, owner, , , , name] = line.split(/\s+/);
    assert.equal(owner, 'root/root', line);
    if (mode.startsWith('d')) continue;
    const file = name.replace(/^\./, '');
    assert.equal(mode, file === BINARY ? '-rwxr-xr-x' : '-rw-r--r--', line);
    files.push(file);
  }
  assert.deepEqual(files.sort(), expected.sort());
});

test('the control fields: name, version, section, priority and computed Depends', () => {
  const field = (name) => run('dpkg-deb', ['-f', deb, name]).stdout.trim();
  assert.equal(field('Package'), 'wsbridge');
  assert.equal(field('Version'), `${version}-1`);
  assert.equal(field('Section'), 'net');
  assert.equal(field('Priority'), 'optional');
  assert.match(field('Maintainer'), /^.+ <.+@.+>$/);
  assert.match(field('Description'), /^\S.{10,79}\n /);
  // dpkg-shlibdeps: the libraries the binary links, with their versions.
  const depends = field('Depends');
  for (const lib of ['libc6', 'libssl3', 'libuv1', 'liburing2', 'libyaml-cpp0.7']) {
    assert.match(depends, new RegExp(`(^|, )${lib.replace('.', '\\.')} \\(>= `), depends);
  }
  const changelog = run('sh', ['-c', `gzip -dc "${root}/usr/share/doc/wsbridge/changelog.Debian.gz"`]);
  assert.match(changelog.stdout, new RegExp(`^wsbridge \\(${version.replaceAll('.', '\\.')}-1\\) `));
});

test('the configuration is a conffile, and the packaged binary accepts it', () => {
  assert.equal(fs.readFileSync(path.join(control, 'conffiles'), 'utf8'), `${CONFIG}\n`);
  const r = run(path.join(root, BINARY), ['--check-config', path.join(root, CONFIG)]);
  assert.equal(r.code, 0, r.stderr);
  const text = fs.readFileSync(path.join(root, CONFIG), 'utf8');
  // Safe defaults: loopback only, in front of the backend on 127.0.0.1:9000.
  assert.match(text, /^listen:\n {2}- address: 127\.0\.0\.1:8080\n/m);
  assert.match(text, /^ {4}backend: ws:\/\/127\.0\.0\.1:9000\//m);
  assert.doesNotMatch(text.replace(/#.*$/gm, ''), /0\.0\.0\.0|\[::\]/);
});

test('the units are systemd/ as written, starting the packaged binary', () => {
  const units = fs.readdirSync(path.join(root, UNIT_DIR));
  assert.ok(units.includes('wsbridge.service'));
  for (const unit of units) {
    const packaged = fs.readFileSync(path.join(root, UNIT_DIR, unit), 'utf8');
    const source = fs.readFileSync(path.join(REPO, 'systemd', unit), 'utf8');
    assert.equal(packaged, source.replace(/\/usr(\/local)?\/s?bin\/wsbridge/g, BINARY), unit);
    for (const exec of packaged.match(/^Exec\w*=.*$/gm) ?? []) {
      const program = exec.replace(/^Exec\w*=[-@:+!]*/, '').split(' ')[0];
      if (program.endsWith('/wsbridge')) assert.equal(program, BINARY, exec);
    }
  }
  assert.match(fs.readFileSync(path.join(root, UNIT_DIR, 'wsbridge.service'), 'utf8'),
    new RegExp(`^ExecStart=${BINARY} -c ${CONFIG}$`, 'm'));
});

test('the maintainer scripts are executable POSIX shell', () => {
  for (const script of ['postinst', 'prerm', 'postrm']) {
    const file = path.join(control, script);
    assert.equal(fs.statSync(file).mode & 0o777, 0o755, script);
    assert.equal(run('sh', ['-n', file]).code, 0, `${script} parses`);
    assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /@\w+@/, `${script}: all substituted`);
  }
});

test('the maintainer scripts drive systemd as dh_installsystemd does', () => {
  // Stubs stand in for deb-systemd-helper, deb-systemd-invoke and systemctl and log their
  // arguments; /run/systemd/system (systemd is running) becomes a directory of the test's.
  const units = fs.readdirSync(path.join(root, UNIT_DIR)).sort().join(' ');
  const bin = path.join(out, 'stubs');
  const booted = path.join(out, 'run-systemd-system');
  const log = path.join(out, 'calls.log');
  fs.mkdirSync(bin);
  fs.mkdirSync(booted);
  for (const name of ['deb-systemd-helper', 'deb-systemd-invoke', 'systemctl']) {
    fs.writeFileSync(path.join(bin, name), [
      '#!/bin/sh',
      `echo "${name} $*" >> "${log}"`,
      'case "$*" in *was-enabled*) exit "$WAS_ENABLED";; esac',
      '',
    ].join('\n'), { mode: 0o755 });
  }
  const calls = (script, args, wasEnabled = 0) => {
    const text = fs.readFileSync(path.join(control, script), 'utf8')
      .replaceAll('/run/systemd/system', booted);
    fs.writeFileSync(path.join(out, script), text, { mode: 0o755 });
    fs.rmSync(log, { force: true });
    const r = spawnSync(path.join(out, script), args, { encoding: 'utf8', env: {
      PATH: `${bin}:/usr/bin:/bin`, WAS_ENABLED: String(wasEnabled) } });
    assert.equal(r.status, 0, `${script} ${args}: ${r.stderr}`);
    return fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
  };
  const enable = [`deb-systemd-helper unmask ${units}`,
    'deb-systemd-helper --quiet was-enabled wsbridge.service'];
  const reload = 'systemctl --system daemon-reload';
  // First install: enabled and started.
  assert.deepEqual(calls('postinst', ['configure']), [...enable,
    'deb-systemd-helper enable wsbridge.service', `deb-systemd-helper update-state ${units}`,
    reload, 'deb-systemd-invoke start wsbridge.service']);
  // Upgrade of a service the administrator disabled: it stays disabled; restart (which
  // deb-systemd-invoke skips for a disabled unit) runs the new binary where it is enabled.
  assert.deepEqual(calls('postinst', ['configure', '0.0.1-1'], 1), [...enable,
    `deb-systemd-helper update-state ${units}`, reload,
    'deb-systemd-invoke restart wsbridge.service']);
  assert.deepEqual(calls('prerm', ['upgrade', '9.9.9-1']), []);
  assert.deepEqual(calls('prerm', ['remove']), [`deb-systemd-invoke stop ${units}`]);
  assert.deepEqual(calls('postrm', ['remove']), [reload, `deb-systemd-helper mask ${units}`]);
  assert.deepEqual(calls('postrm', ['purge']), [reload, `deb-systemd-helper purge ${units}`,
    `deb-systemd-helper unmask ${units}`]);
});

test('lintian reports no error', () => {
  const r = run('lintian', ['--fail-on', 'error', deb], { timeout: 120_000 });
  console.log(r.stdout || 'lintian: no tags');
  assert.doesNotMatch(r.stdout, /^E: /m);
  assert.equal(r.code, 0, r.stderr);
});
