// Resource figures of a running process, read from /proc, for the e2e flood tests: resident
// memory (VmRSS, VmHWM and RssAnon from /proc/PID/status, Pss from /proc/PID/smaps_rollup when
// readable) and the number of open file descriptors (/proc/PID/fd). Linux only.
//
// Memory figures of a process that just handled a burst keep moving for a while (deferred
// deletes, lingering closes, the kernel reporting pages lazily), so the waits below poll until
// the figures settle or a predicate holds. Every wait is bounded in time and never rejects:
// it resolves with the last sample and whether it settled, so the test decides what to assert.
//
// Under ASan (WSBRIDGE_SANITIZERS=1) resident memory includes the shadow map and the
// quarantine of freed blocks, so RSS thresholds mean nothing there; `SANITIZERS` lets a test
// skip them (fd counts stay exact in every build).

import fs from 'node:fs';

/** True when the proxy under test is an ASan/UBSan build (RSS figures are inflated). */
export const SANITIZERS = process.env.WSBRIDGE_SANITIZERS === '1';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `Key:   123 kB` lines of /proc/PID/status → {VmRSS: 123, …} in KiB (only the kB ones). */
function readKbFields(file) {
  const out = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** True while /proc/PID exists and the process is not a zombie. */
export function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (after the parenthesised command, which may hold spaces) is the state.
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Resident memory in KiB: {rss, hwm, anon, pss} (pss is null when smaps_rollup is unreadable). */
export function memory(pid) {
  const status = readKbFields(`/proc/${pid}/status`);
  let pss = null;
  try {
    pss = readKbFields(`/proc/${pid}/smaps_rollup`).Pss ?? null;
  } catch {
    // Older kernels, or another user's process: RSS alone.
  }
  return { rss: status.VmRSS, hwm: status.VmHWM, anon: status.RssAnon ?? null, pss };
}

/** Number of open file descriptors of pid. */
export function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** One sample: {rss, hwm, anon, pss, fds, at} (KiB, count, performance.now()). */
export function sample(pid) {
  return { ...memory(pid), fds: fdCount(pid), at: performance.now() };
}

/** "12345 KiB (12.1 MiB)" */
export function kib(n) {
  return `${n} KiB (${(n / 1024).toFixed(1)} MiB)`;
}

/**
 * Waits until pred(sample) holds, polling every `interval` ms for at most `ms`.
 * Resolves {ok, sample}; never rejects (a dead process resolves ok: false at once).
 */
export async function waitFor(pid, pred, { ms = 5000, interval = 50 } = {}) {
  const deadline = performance.now() + ms;
  for (;;) {
    if (!alive(pid)) return { ok: false, sample: null, dead: true };
    const s = sample(pid);
    if (pred(s)) return { ok: true, sample: s };
    if (performance.now() >= deadline) return { ok: false, sample: s };
    await sleep(interval);
  }
}

/**
 * Waits until the process's figures are steady: `stableFor` ms during which RSS moved by at
 * most `rssSlack` KiB and the fd count did not change, polled every `interval` ms, for at most
 * `ms`. Resolves {settled, sample} with the last sample (the settled value when settled).
 */
export async function settle(pid, { ms = 5000, interval = 50, stableFor = 300, rssSlack = 64 } = {}) {
  const deadline = performance.now() + ms;
  let ref = null;
  for (;;) {
    if (!alive(pid)) return { settled: false, sample: null, dead: true };
    const s = sample(pid);
    if (ref === null || Math.abs(s.rss - ref.rss) > rssSlack || s.fds !== ref.fds) {
      ref = s;
    } else if (s.at - ref.at >= stableFor) {
      return { settled: true, sample: s };
    }
    if (performance.now() >= deadline) return { settled: false, sample: s };
    await sleep(interval);
  }
}

/**
 * Waits for the fd count to equal `fds` exactly and then for memory to settle. Resolves
 * {fdsOk, settled, sample}.
 */
export async function settleTo(pid, fds, { ms = 10000 } = {}) {
  const started = performance.now();
  const f = await waitFor(pid, (s) => s.fds === fds, { ms });
  const left = Math.max(500, ms - (performance.now() - started));
  const m = await settle(pid, { ms: left });
  return { fdsOk: f.ok && m.sample?.fds === fds, settled: m.settled, sample: m.sample ?? f.sample };
}
