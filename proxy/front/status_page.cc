#include "proxy/front/status_page.h"

#include <map>
#include <set>
#include <vector>

#include "proxy/context.h"
#include "transports/json.h"

namespace proxy {
namespace {

namespace json = transports::json;

// The transports a client connection is counted under (wsbridge_connections{transport}).
constexpr std::string_view kTransports[] = {"websocket", "ws_session", "sse", "longpoll"};

/// Undoes the text format's label-value escaping (Metrics keys hold escaped values).
std::string unescape(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) {
            ++i;
            out.push_back(v[i] == 'n' ? '\n' : v[i]);
        } else {
            out.push_back(v[i]);
        }
    }
    return out;
}

/// Appends `"key":value` to the object or array element being written, after a comma unless
/// it is the first member.
void member(std::string& out, std::string_view key) {
    if (out.back() != '{') {
        out.push_back(',');
    }
    json::append_string(out, key);
    out.push_back(':');
}

void key_value(std::string& out, std::string_view key, std::uint64_t value) {
    member(out, key);
    json::append_uint(out, value);
}

void key_value(std::string& out, std::string_view key, bool value) {
    member(out, key);
    out.append(value ? "true" : "false");
}

void key_value(std::string& out, std::string_view key, std::string_view value) {
    member(out, key);
    json::append_string(out, value);
}

std::uint64_t clamp(std::int64_t v) {
    return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

/// What the page shows for one route.
struct RouteRow {
    std::string backend;  ///< scheme://host[:port]/path, without the query (it may hold tokens)
    std::string transports;
    bool configured = false;
    std::map<std::string, std::uint64_t, std::less<>> connections;
    std::uint64_t sessions = 0;
    std::uint64_t in = 0;
    std::uint64_t out = 0;
    std::uint64_t resumes = 0;
    std::uint64_t gaps = 0;
    std::uint64_t resets = 0;
};

} // namespace

std::string status_json(Context& context, std::int64_t now_unix) {
    const Metrics& m = context.metrics();
    const config::Config& config = context.config();
    std::map<std::string, RouteRow> routes;
    for (const config::Route& r : config.routes) {
        RouteRow& row = routes[r.path];
        row.configured = true;
        const auto& b = r.backend;
        row.backend = (b.tls ? "wss://" : "ws://") + b.host_header +
                      b.path.substr(0, b.path.find('?'));
        for (auto [on, name] : {std::pair{r.transports.websocket, "websocket"},
                                {r.transports.sse, "sse"}, {r.transports.longpoll, "longpoll"}}) {
            if (on) {
                row.transports.append(row.transports.empty() ? "" : ",").append(name);
            }
        }
    }
    // Removed routes still show while something lives or was counted on them.
    auto row_of = [&](std::string_view key) -> RouteRow& {
        return routes[unescape(Metrics::label_of(key, "route"))];
    };
    std::map<std::string, std::uint64_t> by_transport;
    m.each_gauge("wsbridge_connections", [&](std::string_view k, std::int64_t v) {
        const std::string t = unescape(Metrics::label_of(k, "transport"));
        row_of(k).connections[t] += clamp(v);
        by_transport[t] += clamp(v);
    });
    m.each_gauge("wsbridge_sessions",
                 [&](std::string_view k, std::int64_t v) { row_of(k).sessions += clamp(v); });
    m.each_counter("wsbridge_messages_total", [&](std::string_view k, std::uint64_t v) {
        (Metrics::label_of(k, "direction") == "in" ? row_of(k).in : row_of(k).out) += v;
    });
    m.each_counter("wsbridge_session_resumes_total",
                   [&](std::string_view k, std::uint64_t v) { row_of(k).resumes += v; });
    m.each_counter("wsbridge_session_gaps_total",
                   [&](std::string_view k, std::uint64_t v) { row_of(k).gaps += v; });
    m.each_counter("wsbridge_session_resets_total",
                   [&](std::string_view k, std::uint64_t v) { row_of(k).resets += v; });

    std::string out = "{";
    key_value(out, "time", static_cast<std::uint64_t>(now_unix));
    key_value(out, "instance", config.instance);
    key_value(out, "draining", context.draining());
    key_value(out, "clients", context.client_count());
    key_value(out, "accepted", m.counter("wsbridge_connections_accepted_total"));
    key_value(out, "sessions_opened", m.counter("wsbridge_sessions_opened_total"));
    member(out, "reload");
    out.push_back('{');
    key_value(out, "ok", m.gauge("wsbridge_config_last_reload_successful") != 0);
    key_value(out, "time", clamp(m.gauge("wsbridge_config_last_reload_timestamp_seconds")));
    key_value(out, "ok_total", m.counter("wsbridge_reloads_total", {{"result", "ok"}}));
    key_value(out, "error_total", m.counter("wsbridge_reloads_total", {{"result", "error"}}));
    out.push_back('}');
    member(out, "transports");
    out.push_back('{');
    for (std::string_view t : kTransports) {
        key_value(out, t, by_transport[std::string(t)]);
    }
    out.push_back('}');
    member(out, "routes");
    out.push_back('[');
    bool first = true;
    for (auto& [path, row] : routes) {
        out.append(first ? "{" : ",{");
        first = false;
        key_value(out, "path", path);
        key_value(out, "backend", row.backend);
        key_value(out, "transports", row.transports);
        key_value(out, "configured", row.configured);
        member(out, "connections");
        out.push_back('{');
        for (std::string_view t : kTransports) {
            const auto it = row.connections.find(t);
            key_value(out, t, it == row.connections.end() ? std::uint64_t{0} : it->second);
        }
        out.push_back('}');
        key_value(out, "sessions", row.sessions);
        key_value(out, "messages_in", row.in);
        key_value(out, "messages_out", row.out);
        key_value(out, "resumes", row.resumes);
        key_value(out, "gaps", row.gaps);
        key_value(out, "resets", row.resets);
        out.push_back('}');
    }
    out.push_back(']');
    member(out, "rejections");
    out.push_back('[');
    first = true;
    m.each_counter("wsbridge_rejections_total", [&](std::string_view k, std::uint64_t v) {
        out.append(first ? "{" : ",{");
        first = false;
        key_value(out, "transport", unescape(Metrics::label_of(k, "transport")));
        key_value(out, "reason", unescape(Metrics::label_of(k, "reason")));
        key_value(out, "status", unescape(Metrics::label_of(k, "status")));
        key_value(out, "count", v);
        out.push_back('}');
    });
    out.append("]}\n");
    return out;
}

} // namespace proxy

namespace proxy {

std::string_view status_html() noexcept {
    // Everything inline: the admin port serves no other file, and an operator's browser may
    // have no route to a CDN. Values go in with textContent only.
    return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsbridge status</title>
<link rel="icon" href="data:,">
<style>
  :root { --bg:#f6f7f9; --fg:#1d232b; --muted:#687384; --line:#d9dee5; --ok:#1f8a4c;
          --bad:#c0392b; --warn:#c77c02; --ws:#3566c9; --sse:#8a4fd0; --lp:#d0852f; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
  header { display:flex; gap:16px; align-items:baseline; padding:12px 20px; background:#1d232b;
           color:#fff; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:#b8c1cc; }
  .badge { padding:2px 8px; border-radius:10px; font-weight:600; font-size:12px; }
  .ok { background:var(--ok); color:#fff; } .bad { background:var(--bad); color:#fff; }
  .warn { background:var(--warn); color:#fff; }
  main { padding:16px 20px; }
  .cards { display:flex; gap:12px; flex-wrap:wrap; margin-bottom:16px; }
  .card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:10px 14px;
          min-width:140px; }
  .card .v { font-size:22px; font-weight:600; font-variant-numeric:tabular-nums; }
  .card .l { color:var(--muted); font-size:12px; text-transform:uppercase; }
  .bar { display:flex; height:14px; border-radius:3px; overflow:hidden; background:var(--line);
         min-width:260px; margin-top:6px; }
  .bar span { display:block; height:100%; }
  .legend span { margin-right:10px; font-size:12px; }
  .dot { display:inline-block; width:9px; height:9px; border-radius:2px; margin-right:3px; }
  h2 { font-size:15px; margin:18px 0 6px; }
  table { border-collapse:collapse; background:#fff; border:1px solid var(--line); width:100%; }
  th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right;
           font-variant-numeric:tabular-nums; white-space:nowrap; }
  th { background:#eef1f5; font-weight:600; font-size:12px; }
  th.grp { text-align:center; border-left:1px solid var(--line); }
  td.l, th.l { text-align:left; }
  td.sep, th.sep { border-left:1px solid var(--line); }
  tr.removed td { color:var(--muted); font-style:italic; }
  .zero { color:#b3bac4; }
  .nz-bad { color:var(--bad); font-weight:600; }
  footer { color:var(--muted); font-size:12px; padding:8px 20px 20px; }
  #error { display:none; margin:0 0 12px; padding:8px 12px; border-radius:4px;
           background:#fdecea; color:var(--bad); }
</style>
</head>
<body>
<header>
  <h1>wsbridge</h1>
  <span class="meta">instance <b id="instance">-</b></span>
  <span id="state" class="badge ok">running</span>
  <span class="meta">last reload: <span id="reload-time">-</span>
    <span id="reload-result" class="badge ok">-</span>
    (<span id="reload-ok">0</span> ok, <span id="reload-error">0</span> failed)</span>
  <span class="meta" style="margin-left:auto">updated <span id="updated">-</span></span>
</header>
<main>
  <div id="error"></div>
  <div class="cards">
    <div class="card"><div class="l">client connections</div><div class="v" id="clients">0</div></div>
    <div class="card"><div class="l">live sessions</div><div class="v" id="sessions">0</div></div>
    <div class="card"><div class="l">messages/s in</div><div class="v" id="rate-in">0</div></div>
    <div class="card"><div class="l">messages/s out</div><div class="v" id="rate-out">0</div></div>
    <div class="card"><div class="l">accepted (total)</div><div class="v" id="accepted">0</div></div>
    <div class="card" style="flex:1">
      <div class="l">clients by transport &mdash; <span id="fallback">0</span>% fell back from WebSocket</div>
      <div class="bar" id="share-bar"></div>
      <div class="legend" id="share-legend"></div>
    </div>
  </div>

  <h2>Routes</h2>
  <table id="routes">
    <thead>
      <tr><th class="l" rowspan="2">route</th><th class="l" rowspan="2">backend</th>
          <th class="l" rowspan="2">transports</th>
          <th class="grp" colspan="5">live connections</th>
          <th class="grp" rowspan="2">sessions</th>
          <th class="grp" colspan="2">messages/s</th>
          <th class="grp" colspan="2">messages (total)</th>
          <th class="grp" colspan="3">sessions: resume events</th></tr>
      <tr><th class="sep">websocket</th><th>ws session</th><th>sse</th><th>long-poll</th><th>total</th>
          <th class="sep">in</th><th>out</th><th class="sep">in</th><th>out</th>
          <th class="sep">resumes</th><th>gaps</th><th>resets</th></tr>
    </thead>
    <tbody></tbody>
  </table>

  <h2>Rejections by reason</h2>
  <table id="rejections">
    <thead><tr><th class="l">transport</th><th class="l">reason</th><th>status</th><th>total</th>
      <th>per minute</th></tr></thead>
    <tbody></tbody>
  </table>
</main>
<footer>Refreshes every <span id="period">2</span> s from <code>status.json</code>; rates are
counter deltas between two refreshes. Prometheus metrics: <code>/metrics</code>.</footer>
<script>
"use strict";
const PERIOD_MS = 2000;
const TRANSPORTS = [["websocket", "WebSocket", "var(--ws)"], ["ws_session", "WS session", "#5b8def"],
                    ["sse", "SSE", "var(--sse)"], ["longpoll", "long-poll", "var(--lp)"]];
let previous = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function num(td, v, badWhenNonZero) {
  td.textContent = String(v);
  if (v === 0 || v === "0") td.classList.add("zero");
  else if (badWhenNonZero) td.classList.add("nz-bad");
  return td;
}
function rate(now, before, dt) {
  if (before === undefined || dt <= 0) return "0";
  const r = Math.max(0, now - before) / dt;
  return r >= 10 ? r.toFixed(0) : r.toFixed(1).replace(/\.0$/, "");
}
function when(unix) {
  if (!unix) return "never";
  return new Date(unix * 1000).toLocaleString();
}

function render(s) {
  const dt = previous ? (Date.now() - previous.at) / 1000 : 0;
  const before = previous ? previous.s : null;
  document.getElementById("instance").textContent = s.instance || "(unnamed)";
  const state = document.getElementById("state");
  state.textContent = s.draining ? "draining" : "running";
  state.className = "badge " + (s.draining ? "warn" : "ok");
  document.getElementById("reload-time").textContent = when(s.reload.time);
  const rr = document.getElementById("reload-result");
  rr.textContent = s.reload.ok ? "ok" : "error";
  rr.className = "badge " + (s.reload.ok ? "ok" : "bad");
  document.getElementById("reload-ok").textContent = s.reload.ok_total;
  document.getElementById("reload-error").textContent = s.reload.error_total;
  document.getElementById("clients").textContent = s.clients;
  document.getElementById("accepted").textContent = s.accepted;
  document.getElementById("updated").textContent = new Date(s.time * 1000).toLocaleTimeString();

  // Share of client connections per transport.
  const total = TRANSPORTS.reduce((a, [k]) => a + (s.transports[k] || 0), 0);
  const bar = document.getElementById("share-bar");
  const legend = document.getElementById("share-legend");
  bar.replaceChildren();
  legend.replaceChildren();
  for (const [k, label, color] of TRANSPORTS) {
    const n = s.transports[k] || 0;
    const part = el("span");
    part.style.width = total ? (100 * n / total) + "%" : "0";
    part.style.background = color;
    part.title = label + ": " + n;
    bar.append(part);
    const item = el("span");
    const dot = el("i", undefined, "dot");
    dot.style.background = color;
    item.append(dot, document.createTextNode(label + " " + n));
    item.dataset.transport = k;
    item.dataset.count = String(n);
    legend.append(item);
  }
  const fell = (s.transports.sse || 0) + (s.transports.longpoll || 0);
  document.getElementById("fallback").textContent = total ? Math.round(100 * fell / total) : 0;

  const prevRoutes = new Map((before ? before.routes : []).map((r) => [r.path, r]));
  const body = document.querySelector("#routes tbody");
  body.replaceChildren();
  let sessions = 0, rin = 0, rout = 0;
  for (const r of s.routes) {
    const p = prevRoutes.get(r.path);
    sessions += r.sessions;
    const tr = el("tr", undefined, r.configured ? "" : "removed");
    tr.dataset.route = r.path;
    tr.append(el("td", r.path + (r.configured ? "" : " (removed)"), "l"), el("td", r.backend, "l"),
              el("td", r.transports, "l"));
    let conns = 0;
    TRANSPORTS.forEach(([k], i) => {
      const td = num(el("td", undefined, i === 0 ? "sep" : ""), r.connections[k] || 0);
      td.dataset.k = "conn-" + k;
      conns += r.connections[k] || 0;
      tr.append(td);
    });
    const tdTotal = num(el("td"), conns);
    tdTotal.dataset.k = "conn-total";
    const tdSessions = num(el("td", undefined, "sep"), r.sessions);
    tdSessions.dataset.k = "sessions";
    tr.append(tdTotal, tdSessions);
    const ri = rate(r.messages_in, p && p.messages_in, dt);
    const ro = rate(r.messages_out, p && p.messages_out, dt);
    rin += Number(ri);
    rout += Number(ro);
    for (const [k, v, cls, bad] of [["rate-in", ri, "sep"], ["rate-out", ro], ["in", r.messages_in, "sep"],
                                    ["out", r.messages_out], ["resumes", r.resumes, "sep"],
                                    ["gaps", r.gaps, "", true], ["resets", r.resets, "", true]]) {
      const td = num(el("td", undefined, cls), v, bad);
      td.dataset.k = k;
      tr.append(td);
    }
    body.append(tr);
  }
  document.getElementById("sessions").textContent = sessions;
  document.getElementById("rate-in").textContent = rin >= 10 ? rin.toFixed(0) : String(Math.round(rin * 10) / 10);
  document.getElementById("rate-out").textContent = rout >= 10 ? rout.toFixed(0) : String(Math.round(rout * 10) / 10);

  const prevRej = new Map((before ? before.rejections : []).map((r) => [r.transport + "|" + r.reason + "|" + r.status, r.count]));
  const rbody = document.querySelector("#rejections tbody");
  rbody.replaceChildren();
  const rej = [...s.rejections].sort((a, b) => b.count - a.count);
  if (rej.length === 0) {
    const tr = el("tr");
    const td = el("td", "none", "l zero");
    td.colSpan = 5;
    tr.append(td);
    rbody.append(tr);
  }
  for (const r of rej) {
    const tr = el("tr");
    tr.dataset.reason = r.reason;
    tr.dataset.transport = r.transport;
    const per = rate(r.count, prevRej.get(r.transport + "|" + r.reason + "|" + r.status), dt / 60);
    const count = num(el("td"), r.count, true);
    count.dataset.k = "count";
    tr.append(el("td", r.transport, "l"), el("td", r.reason, "l"), el("td", r.status), count,
              num(el("td"), per));
    rbody.append(tr);
  }
  previous = { s, at: Date.now() };
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const res = await fetch("status.json", { cache: "no-store" });
    if (!res.ok) throw new Error("status.json: HTTP " + res.status);
    render(await res.json());
    error.style.display = "none";
  } catch (err) {
    error.textContent = "Cannot refresh: " + err.message;
    error.style.display = "block";
  } finally {
    setTimeout(refresh, PERIOD_MS);
  }
}
document.getElementById("period").textContent = PERIOD_MS / 1000;
refresh();
</script>
</body>
</html>
)html";
}

} // namespace proxy
