#include "transports/sse/encoder.h"

#include "proxy/core/base64.h"
#include "transports/json.h"

#include <charconv>
#include <system_error>

namespace transports::sse {
namespace {

using json::append_string;
using json::append_uint;

// The longest uint64 in decimal: 18446744073709551615.
constexpr std::size_t kMaxSeqDigits = 20;

void append_id_line(std::string& out, std::string_view session, std::uint64_t seq) {
    out.append("id: ");
    out.append(session);
    out.push_back('.');
    append_uint(out, seq);
    out.push_back('\n');
}

} // namespace

// Writes one "data: <line>\n" per LF-separated line of `text` (WHATWG SSE: each data line adds
// its value plus LF to the data buffer, and dispatch drops the final LF, so event.data == text).
// A CR anywhere would end a line early in the parser (CR and CRLF are line ends too), so on the
// first CR this undoes its output and returns false. Each byte is looked at by one memchr for
// LF and one for CR within its line; the common one-line text costs two appends.
bool append_data_lines(std::string& out, std::string_view text, bool first_opened) {
    const std::size_t mark = out.size();
    std::size_t start = 0;
    bool opened = first_opened;
    for (;;) {
        const std::size_t lf = text.find('\n', start);
        const std::string_view line =
            text.substr(start, lf == std::string_view::npos ? std::string_view::npos : lf - start);
        if (line.find('\r') != std::string_view::npos) {
            out.resize(mark);
            return false;
        }
        if (!opened) {
            out.append("data: ");
        }
        opened = false;
        out.append(line);
        out.push_back('\n');
        if (lf == std::string_view::npos) {
            return true;
        }
        start = lf + 1;
    }
}


bool is_session_id(std::string_view session) noexcept {
    if (session.empty()) {
        return false;
    }
    for (const char c : session) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void append_message(std::string& out, std::string_view session, std::uint64_t seq, bool binary,
                    std::span<const std::byte> payload) {
    // Every id line comes last in its event, just before the blank line (issue 10): a client
    // that adopts an id as soon as it reads the line (npm eventsource 2.x) has then read every
    // data line, so a cut inside the event cannot advance its Last-Event-ID past it.
    if (binary) {
        out.append("event: binary\ndata: ");
        out.append(proxy::core::base64_encode(payload));
        out.push_back('\n');
        append_id_line(out, session, seq);
        out.push_back('\n');
        return;
    }
    // The payload is UTF-8 text; a byte view of it is the same bytes as chars.
    const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
    out.reserve(out.size() + text.size() + session.size() + 40);
    if (append_data_lines(out, text)) {
        append_id_line(out, session, seq);
        out.push_back('\n');
        return;
    }
    // Text with a CR: raw lines cannot carry it, so send it as one JSON string on one line.
    out.append("event: text-json\ndata: ");
    append_string(out, text);
    out.push_back('\n');
    append_id_line(out, session, seq);
    out.push_back('\n');
}

void append_announce(std::string& out, const Announce& a) {
    out.append("retry: ");
    append_uint(out, a.retry_ms);
    out.append("\nevent: session\ndata: {\"session\":");
    append_string(out, a.session);
    out.append(",\"send\":");
    append_string(out, a.send_url);
    out.append(",\"heartbeat_ms\":");
    append_uint(out, a.heartbeat_ms);
    out.append(",\"last_seq\":");
    append_uint(out, a.last_seq);
    if (!a.protocol.empty()) {
        out.append(",\"protocol\":");
        append_string(out, a.protocol);
    }
    out.append("}\n");
    append_id_line(out, a.session, a.last_seq);
    out.push_back('\n');
}

void append_gap(std::string& out, std::string_view session, std::uint64_t from, std::uint64_t to) {
    out.append("event: gap\ndata: {\"from\":");
    append_uint(out, from);
    out.append(",\"to\":");
    append_uint(out, to);
    out.append("}\n");
    append_id_line(out, session, to);
    out.push_back('\n');
}

void append_reset(std::string& out, std::string_view session, std::string_view reason) {
    out.append("event: reset\ndata: {\"session\":");
    append_string(out, session);
    out.append(",\"reason\":");
    append_string(out, reason);
    out.append("}\n\n");
}

void append_close(std::string& out, std::string_view session, std::uint64_t seq,
                  std::uint16_t code, std::string_view reason) {
    out.append("event: close\ndata: {\"code\":");
    append_uint(out, code);
    out.append(",\"reason\":");
    append_string(out, reason);
    out.append("}\n");
    append_id_line(out, session, seq);
    out.push_back('\n');
}

void append_heartbeat(std::string& out) { out.append(":\n\n"); }

std::optional<EventId> parse_last_event_id(std::string_view value) noexcept {
    // Session ids contain no '.', so the first '.' is the separator; a second one fails the
    // digit check below.
    const std::size_t dot = value.find('.');
    if (dot == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string_view session = value.substr(0, dot);
    const std::string_view digits = value.substr(dot + 1);
    if (!is_session_id(session) || digits.empty() || digits.size() > kMaxSeqDigits ||
        (digits.size() > 1 && digits.front() == '0') || digits.front() < '0' ||
        digits.front() > '9') {
        return std::nullopt;
    }
    // from_chars on an unsigned type accepts no sign and reports overflow; the first character
    // is a digit (checked above), and every other one must be consumed.
    std::uint64_t seq = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
    if (ec != std::errc{} || end != digits.data() + digits.size()) {
        return std::nullopt;
    }
    return EventId{session, seq};
}

} // namespace transports::sse
