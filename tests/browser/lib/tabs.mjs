// Helpers for tests/browser/tabs.test.mjs: chat-demo tabs in one browser context, a chat peer
// straight on the backend, and exact-set checks of what every tab received.

import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';

import { BROWSER_ARTIFACTS } from './browser.mjs';
import { withTimeout, sleep } from '../../e2e/lib/harness.mjs';

/**
 * Opens the chat demo at `url` in a new page of `context`, records every message event with
 * its wall-clock arrival (window.arrivals: {id, from, text, at}) and waits for readyState OPEN.
 */
export async function openTab(context, url, label, ms = 20000) {
  const page = await withTimeout(context.newPage(), 10000, 'a new page');
  page.label = label;
  page.diag = [];
  page.on('console', (m) => page.diag.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.diag.push(`pageerror: ${e.message}`));
  await page.goto(url, { timeout: 15000 });
  await page.waitForFunction(() => window.chat?.socket, undefined, { timeout: 10000, polling: 50 });
  await page.evaluate(() => {
    window.arrivals = [];
    window.chat.socket.addEventListener('message', (e) => {
      let m = {};
      try {
        m = JSON.parse(e.data);
      } catch {
        // not a chat message
      }
      window.arrivals.push({ id: m.id ?? null, from: m.from ?? '?', text: m.text ?? String(e.data), at: Date.now() });
    });
  });
  await waitTab(page, () => window.chat.socket.readyState === 1, undefined, ms, 'readyState OPEN');
  return page;
}

/** The tab's state: transport, shared role, session, readyState, arrivals, events. */
export function tabState(page) {
  return page.evaluate(() => ({
    transport: window.chat.socket.transport,
    shared: window.chat.socket.shared,
    session: window.chat.socket.session,
    readyState: window.chat.socket.readyState,
    fallbackReason: window.chat.socket.fallbackReason,
    arrivals: window.arrivals,
    events: window.chat.events,
  }));
}

/** Waits (bounded) for pred in the page; the error carries the page's state and console. */
export async function waitTab(page, pred, arg, ms, what) {
  try {
    await page.waitForFunction(pred, arg, { timeout: ms, polling: 25 });
  } catch (err) {
    let s = null;
    try {
      s = await tabState(page);
    } catch {
      // page gone or frozen
    }
    const brief = s ? JSON.stringify({ ...s, arrivals: s.arrivals.slice(-5).map((a) => a.id), events: s.events.slice(-8) }) : 'no state';
    throw new Error(`${page.label}: timed out after ${ms} ms waiting for ${what}: ${err.message.split('\n')[0]}\n` +
      `state: ${brief}\nconsole: ${page.diag.slice(-10).join(' | ')}`);
  }
}

/** Waits until the tab received every id in `ids`. */
export function waitIds(page, ids, ms, what) {
  return waitTab(page, (want) => {
    const got = new Set(window.arrivals.map((a) => a.id));
    return want.every((id) => got.has(id));
  }, ids, ms, what ?? `${ids.length} message(s)`);
}

/** The ids (and arrival times) of the tab's messages whose id starts with `prefix`, in order. */
export async function arrivalsWith(page, prefix) {
  const all = await page.evaluate(() => window.arrivals);
  return all.filter((a) => typeof a.id === 'string' && a.id.startsWith(prefix));
}

/** Sends one chat message from the tab with the given id; resolves the wall-clock send time. */
export function sendFrom(page, id, text) {
  return page.evaluate(([i, t]) => {
    window.chat.socket.send(JSON.stringify({ from: window.chat.name, text: t, id: i }));
    return Date.now();
  }, [id, text]);
}

/** A chat participant straight on the backend's /chat (no proxy). */
export async function chatPeer(backendUrl, name) {
  const ws = new WebSocket(backendUrl);
  ws.on('error', () => {});
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 5000, `peer ${name} to connect`);
  return {
    send: (id, text) => ws.send(JSON.stringify({ from: name, text, id })),
    close: () => ws.terminate(),
  };
}

export async function screenshot(page, name) {
  fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(BROWSER_ARTIFACTS, `tabs-${name}.png`), timeout: 10000 });
}

export function saveJson(name, value) {
  fs.mkdirSync(BROWSER_ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(BROWSER_ARTIFACTS, `tabs-${name}.json`), JSON.stringify(value, null, 1));
}

export { sleep };
