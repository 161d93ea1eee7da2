#pragma once
// Builds HTTP/1.1 responses (sans-I/O): error responses with JSON bodies as SPEC §1 requires
// (`{"error":"<code>","detail":"<sentence>"}`) and handshake responses.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxy::http {

/// Standard reason phrase for `status` ("Bad Request"), or "Unknown".
std::string_view reason_phrase(unsigned status) noexcept;

/// A complete response: status line, `headers` in order, Content-Length (always, even 0), and
/// `Connection: close` when `close` is set, then the body.
std::string build_response(unsigned status,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           std::string_view body, bool close);

/// The head of a response whose body is streamed until the connection closes (SSE): status
/// line, `headers` in order, `Connection: close` when `close` is set, the blank line; no
/// Content-Length.
std::string build_stream_head(unsigned status,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              bool close);

/// A JSON error response: `{"error":"<code>","detail":"<detail>"}` with
/// `Content-Type: application/json` and `Cache-Control: no-store`. `extra` headers are added
/// (e.g. `Sec-WebSocket-Version: 13` on a 426). Both strings are quoted by
/// core::append_json_string, the one JSON string writer (the transports use it too).
std::string json_error(unsigned status, std::string_view code, std::string_view detail,
                       bool close,
                       const std::vector<std::pair<std::string, std::string>>& extra = {});

} // namespace proxy::http
