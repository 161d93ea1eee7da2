#pragma once
// The admin port's status page (issue 14): GET /status is one self-contained HTML page (inline
// CSS and JavaScript, no external asset) that fetches GET /status.json every few seconds and
// shows, per route and transport, live connections and sessions, message rates (from counter
// deltas between two fetches), resumes, gaps and resets, the share of clients on each
// transport, rejections by reason, the last reload and the draining state. The page inserts
// every value with textContent, never as markup, so nothing from config or clients can run.

#include <cstdint>
#include <string>
#include <string_view>

namespace proxy {

class Context;

/// The JSON document behind /status: a snapshot of `context`'s metrics and config, built from
/// the same counters /metrics renders (so the two never disagree). `now_unix` is the wall clock
/// in seconds. Every string is JSON-escaped. Never fails.
std::string status_json(Context& context, std::int64_t now_unix);

/// The HTML page served at /status (a constant; its script fetches `status.json` relative to
/// its own URL).
std::string_view status_html() noexcept;

} // namespace proxy
