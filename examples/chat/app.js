// The chat demo: every message goes through wsbridge to the example backend's /chat route,
// which broadcasts it to every client (the sender included). BridgeSocket picks WebSocket,
// SSE + POST or long-polling; the badge shows which one is live and the line under it why.
//
// Page parameters (all optional): ?proxy=<wsbridge origin, "" = this page's origin>
// &room=/chat &name=alice &transports=sse,longpoll &probe=message &probeTimeout=ms
// &sseAnnounceTimeout=ms &sseReconnectTimeout=ms &wsOpenTimeout=ms &minDelay=ms &maxDelay=ms
// &retryTransportFor=ms &probeUpDelay=ms &probeUpMaxDelay=ms &relay=1 (WebSocket as the
// transparent relay instead of a session) &share=0 (each tab its own SSE/long-poll connection)
//
// For tests and the curious, window.chat exposes {socket, url, name, received, events, send()}.

import { BridgeSocket } from './bridge-socket.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const config = await fetch('config.json', { cache: 'no-store' })
  .then((r) => (r.ok ? r.json() : {}))
  .catch(() => ({}));

const proxy = params.has('proxy') ? params.get('proxy') : (config.proxy ?? '');
const room = params.get('room') || config.room || '/chat';
const url = new URL(room, proxy || location.origin).href;

const options = {};
if (params.get('transports')) options.transports = params.get('transports').split(',');
if (params.get('probe')) options.wsProbe = params.get('probe');
for (const key of ['probeTimeout', 'sseAnnounceTimeout', 'sseReconnectTimeout', 'wsOpenTimeout', 'minDelay', 'maxDelay',
  'retryTransportFor', 'probeUpDelay', 'probeUpMaxDelay']) {
  if (params.has(key)) options[key] = Number(params.get(key));
}
if (params.get('relay') === '1') options.wsSession = false;
if (params.get('share') === '0') options.shareConnection = false;
if (params.get('debug') === '1') options.debug = true;

let stored = null;
try {
  stored = localStorage.getItem('wsbridge-chat-name');
} catch {
  // storage may be unavailable
}
const name = params.get('name') || stored || `guest-${Math.random().toString(36).slice(2, 6)}`;
$('name').value = name;

const LABELS = { websocket: 'WebSocket', sse: 'SSE + POST', longpoll: 'long-polling' };
const STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
const t0 = performance.now();
const chat = { url, name, received: [], events: [], socket: null, sent: 0 };
window.chat = chat;

const socket = new BridgeSocket(url, options);
chat.socket = socket;

function render() {
  const badge = $('transport');
  const share = socket.shared === 'leader' ? ' · this tab holds the shared connection'
    : socket.shared === 'follower' ? ' · via another tab' : '';
  badge.textContent = socket.transport ? `${LABELS[socket.transport]}${share}` : 'connecting…';
  badge.className = `badge ${socket.transport ?? ''}`;
  const state = $('state');
  state.textContent = STATES[socket.readyState];
  state.className = `state s${socket.readyState}`;
  $('why').textContent = socket.fallbackReason ? `fell back because ${socket.fallbackReason}` : '';
  document.title = `wsbridge chat – ${socket.transport ? LABELS[socket.transport] : 'connecting'}`;
}

function line(cls, from, text) {
  const li = document.createElement('li');
  li.className = cls;
  if (from) {
    const b = document.createElement('span');
    b.className = 'from';
    b.textContent = from;
    li.append(b);
  }
  li.append(document.createTextNode(text));
  const list = $('messages');
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function log(type, detail = {}) {
  // `at`: how many messages had arrived when this happened (orders events among messages).
  const entry = { type, t: Math.round(performance.now() - t0), at: chat.received.length, ...detail };
  chat.events.push(entry);
  const li = document.createElement('li');
  const extra = Object.entries(detail).filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  li.textContent = `${(entry.t / 1000).toFixed(2)}s ${type} ${extra}`;
  $('log').append(li);
  render();
}

socket.addEventListener('open', () => log('open', { transport: socket.transport }));
socket.addEventListener('transport', (e) => log('transport', { transport: e.transport, previous: e.previous, reason: e.reason }));
let everOpen = false;
socket.addEventListener('open', () => { everOpen = true; });
socket.addEventListener('reconnecting', (e) => {
  log('reconnecting', { reason: e.reason, attempt: e.attempt, delay: e.delay });
  if (!everOpen && e.attempt >= 3) {
    if (/not an answer from wsbridge/.test(e.reason ?? '')) {
      // The request never got a response head: the browser itself may be holding it back (its
      // connections to the host are all in use). Say that, not "is the proxy down?".
      $('why').textContent = `Cannot connect yet: ${e.reason}`;
    } else {
      // A network error: a browser cannot tell "not running" from "CORS refused": name both.
      $('why').textContent = `Cannot reach wsbridge at ${url}. Is it running, and does its ${room} route ` +
        `list this page's origin (${location.origin}) in \`origins\`? (${e.reason})`;
    }
  }
});
// SSE and long-polling share one connection between the tabs of this origin: one tab (the
// leader) holds it and relays to the others (followers).
socket.addEventListener('share', (e) => log('share', { role: e.role, transport: e.transport }));
socket.addEventListener('reconnect', (e) => log('reconnect', { transport: e.transport, resumed: e.resumed }));
socket.addEventListener('resume', (e) => log('resume', { transport: e.transport, previous: e.previous, lastSeq: e.lastSeq }));
socket.addEventListener('gap', (e) => {
  log('gap', { from: e.from, to: e.to });
  line('system', '', `— ${e.to - e.from + 1} message(s) were lost (${e.from}–${e.to}) —`);
});
socket.addEventListener('reset', (e) => {
  log('reset', { reason: e.reason, transport: e.transport, unconfirmed: e.unconfirmed });
  line('system', '', `— reconnected with a fresh connection (${e.reason}); messages sent meanwhile may be missing —`);
});
socket.addEventListener('error', (e) => log('error', { message: e.message }));
socket.addEventListener('close', (e) => {
  log('close', { code: e.code, reason: e.reason, unsent: e.unsent });
  line('system', '', `— closed (${e.code}${e.reason ? ` ${e.reason}` : ''}) —`);
});
socket.addEventListener('message', (e) => {
  if (typeof e.data !== 'string') {
    chat.received.push({ from: '?', text: '[binary]', binary: true });
    line('', '?', '[binary message]');
    return;
  }
  let m = null;
  try {
    m = JSON.parse(e.data);
  } catch {
    // not one of ours
  }
  if (!m || typeof m !== 'object' || typeof m.text !== 'string') m = { from: '?', text: e.data };
  chat.received.push({ from: String(m.from ?? '?'), text: m.text, id: m.id ?? null, t: Math.round(performance.now() - t0) });
  line(m.from === $('name').value ? 'me' : '', String(m.from ?? '?'), m.text);
});

chat.send = (text) => {
  const from = $('name').value.trim() || name;
  chat.sent += 1;
  socket.send(JSON.stringify({ from, text, id: `${from}-${chat.sent}` }));
};

$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text || socket.readyState >= 2) return;
  chat.send(text);
  $('text').value = '';
});
$('name').addEventListener('change', () => {
  try {
    localStorage.setItem('wsbridge-chat-name', $('name').value.trim());
  } catch {
    // ignore
  }
});

render();
