// Fuzz target sse_roundtrip: the SSE encoder (transports/sse/encoder.h) checked against the
// WHATWG EventSource parser of the tests (tests/unit/support/event_source_parser.h).
//
// Input: [settings] [chunk plan] [operations] (layout in fuzz_support.h).
//   settings bits 0-2   the session id (kSessions)
//   each operation: one op byte, a length byte n (n & 0x80: 15-bit length, low 7 bits then the
//   next byte), then n bytes of payload (fewer if the input ends). op & 7 picks the kind,
//   op & 8 a variant:
//     0-2 text message (a payload that is not UTF-8 is sent as binary instead, since text must
//         be UTF-8); 3 binary message. Variant: seq from the next 8 bytes, else seq + 1.
//     4   heartbeat
//     5   gap: from seq + 1 to seq + 1 + n; variant: from/to from the next 16 bytes (ordered)
//     6   close at position seq + 1 (code from the next 2 bytes, reason = payload); variant:
//         reset (new session from the next byte, reason = payload). A reason that is not UTF-8
//         becomes "".
//     7   announce (send url = payload, then heartbeat, last_seq, retry from 24 bytes);
//         variant: parse_last_event_id(payload) must accept only canonical "<session>.<seq>".
//
// Every operation is appended to one stream, which is parsed whole and cut by the chunk plan.
// Invariants: both parses are identical; each event the encoder wrote is dispatched exactly
// once, in order, with its type, its lastEventId and its data decoding byte-exactly to what
// was encoded; heartbeats dispatch nothing; the field counts are exactly those the encoder
// writes (so no payload became a field of its own); the stream ends on an event boundary;
// `retry` and the final last event ID are those of the last announce / id written; and every
// `id:` line is the last line of its event, right before the blank line (issue 10: a client
// that adopts an id when it reads the line must have read the event's data lines by then).

#include "tests/fuzz/fuzz_support.h"
#include "tests/unit/support/event_source_parser.h"
#include "transports/json.h"
#include "transports/sse/encoder.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using test_support::FieldCounts;
using test_support::SseEvent;

constexpr std::array<std::string_view, 8> kSessions{
    "a1-Zx_9Q",
    "S",
    "0",
    "-",
    "_",
    "inst-1-AbCdEfGhIjKlMnOpQrStUv",
    "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "x-y"};

// What one operation must produce on the parser's side.
struct Expected {
    enum class Kind : std::uint8_t { Text, Binary, Gap, Close, Reset, Announce };
    Kind kind = Kind::Text;
    std::string payload; // text/binary payload, close/reset reason, announce send url
    std::string id;      // the last event ID at its dispatch
    std::uint64_t a = 0; // gap from, close code, announce heartbeat_ms
    std::uint64_t b = 0; // gap to, announce last_seq
    std::string session; // reset/announce session
};

std::optional<std::uint32_t> hex4(std::string_view s) {
    if (s.size() < 4) {
        return std::nullopt;
    }
    std::uint32_t v = 0;
    for (const char c : s.substr(0, 4)) {
        int d = -1;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        }
        if (d < 0) {
            return std::nullopt;
        }
        v = v * 16 + static_cast<std::uint32_t>(d);
    }
    return v;
}

// A strict decoder for one JSON string literal (RFC 8259 §7), independent of transports/json.
std::optional<std::string> json_string(std::string_view s) {
    if (s.size() < 2 || s.front() != '"' || s.back() != '"') {
        return std::nullopt;
    }
    s = s.substr(1, s.size() - 2);
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '"' || static_cast<unsigned char>(c) < 0x20) {
            return std::nullopt;
        }
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (++i == s.size()) {
            return std::nullopt;
        }
        switch (s[i]) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
            auto cp = hex4(s.substr(i + 1));
            if (!cp) {
                return std::nullopt;
            }
            i += 4;
            if (*cp >= 0xD800 && *cp <= 0xDBFF) {
                const auto low = s.substr(i + 1, 2) == "\\u" ? hex4(s.substr(i + 3)) : std::nullopt;
                if (!low || *low < 0xDC00 || *low > 0xDFFF) {
                    return std::nullopt;
                }
                cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
                i += 6;
            } else if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
                return std::nullopt;
            }
            test_support::append_utf8(out, *cp);
            break;
        }
        default: return std::nullopt;
        }
    }
    return out;
}

// The JSON writer must escape U+2028/U+2029 (and never write a raw CR or LF, which would end
// the data line), so its output is one line that is also a JavaScript literal.
void check_json_text(std::string_view data) {
    FUZZ_CHECK(data.find('\n') == std::string_view::npos);
    FUZZ_CHECK(data.find('\r') == std::string_view::npos);
    FUZZ_CHECK(data.find("\xE2\x80\xA8") == std::string_view::npos);
    FUZZ_CHECK(data.find("\xE2\x80\xA9") == std::string_view::npos);
}

// Reads `"key":` from a JSON object with transports::json::Reader (a separate component from
// the writer under test).
void expect_key(transports::json::Reader& r, std::string_view key) {
    auto k = r.read_string();
    FUZZ_CHECK(k && *k == key);
    FUZZ_CHECK(r.expect(':'));
}

std::string read_string_field(transports::json::Reader& r, std::string_view key) {
    expect_key(r, key);
    auto v = r.read_string();
    FUZZ_CHECK(v.has_value());
    return *v;
}

std::uint64_t read_uint_field(transports::json::Reader& r, std::string_view key) {
    expect_key(r, key);
    auto v = r.read_uint();
    FUZZ_CHECK(v.has_value());
    return *v;
}

std::string id_of(std::string_view session, std::uint64_t seq) {
    return std::string(session) + "." + std::to_string(seq);
}

// Checks the JSON data of a gap, close, reset or announce event with transports::json::Reader.
void check_json_event(const SseEvent& e, const Expected& x) {
    using Kind = Expected::Kind;
    check_json_text(e.data);
    transports::json::Reader r(e.data);
    FUZZ_CHECK(r.expect('{'));
    switch (x.kind) {
    case Kind::Gap:
        FUZZ_CHECK(e.type == "gap");
        FUZZ_CHECK(read_uint_field(r, "from") == x.a);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_uint_field(r, "to") == x.b);
        break;
    case Kind::Close:
        FUZZ_CHECK(e.type == "close");
        FUZZ_CHECK(read_uint_field(r, "code") == x.a);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_string_field(r, "reason") == x.payload);
        break;
    case Kind::Reset:
        FUZZ_CHECK(e.type == "reset");
        FUZZ_CHECK(read_string_field(r, "session") == x.session);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_string_field(r, "reason") == x.payload);
        break;
    case Kind::Announce:
        FUZZ_CHECK(e.type == "session");
        FUZZ_CHECK(read_string_field(r, "session") == x.session);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_string_field(r, "send") == x.payload);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_uint_field(r, "heartbeat_ms") == x.a);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_uint_field(r, "last_seq") == x.b);
        break;
    default: FUZZ_CHECK(false);
    }
    FUZZ_CHECK(r.expect('}'));
    FUZZ_CHECK(r.expect_end());
}

// Checks one dispatched event against what the encoder was asked to write.
void check_event(const SseEvent& e, const Expected& x) {
    FUZZ_CHECK_MSG(e.last_event_id == x.id, fuzz::escape(e.last_event_id) + " != " + x.id);
    using Kind = Expected::Kind;
    if (x.kind == Kind::Text && x.payload.find('\r') == std::string::npos) {
        FUZZ_CHECK(e.type == "message");
        FUZZ_CHECK_MSG(e.data == x.payload,
                       fuzz::escape(e.data) + " != " + fuzz::escape(x.payload));
    } else if (x.kind == Kind::Text) {
        FUZZ_CHECK(e.type == "text-json");
        check_json_text(e.data);
        const auto text = json_string(e.data);
        FUZZ_CHECK_MSG(text && *text == x.payload, fuzz::escape(e.data));
    } else if (x.kind == Kind::Binary) {
        FUZZ_CHECK(e.type == "binary");
        FUZZ_CHECK_MSG(e.data == fuzz::base64(x.payload), fuzz::escape(e.data));
    } else {
        check_json_event(e, x);
    }
}

// parse_last_event_id accepts exactly the canonical "<session>.<seq>" spellings.
void check_last_event_id(std::string_view value) {
    const auto id = transports::sse::parse_last_event_id(value);
    if (id) {
        FUZZ_CHECK(transports::sse::is_session_id(id->session));
        FUZZ_CHECK_MSG(id_of(id->session, id->seq) == value, fuzz::escape(value));
    }
}

// Builds the stream from the operations, and what the parser must see.
struct Stream {
    std::string bytes;
    std::vector<Expected> expected;
    FieldCounts counts;
    std::optional<std::uint64_t> retry;
    std::string last_id;
};

std::span<const std::byte> as_bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// Operation kinds 0-3: one message.
void add_message(Stream& s, fuzz::Input& in, std::string_view session, std::uint64_t& seq,
                 std::uint8_t op, std::size_t n) {
    const std::string payload(in.take(n));
    seq = (op & 8u) != 0 ? in.u64() : seq + 1;
    const bool binary = (op & 7u) == 3 || !fuzz::valid_utf8(payload);
    transports::sse::append_message(s.bytes, session, seq, binary, as_bytes(payload));
    s.last_id = id_of(session, seq);
    s.expected.push_back(
        {binary ? Expected::Kind::Binary : Expected::Kind::Text, payload, s.last_id, 0, 0, {}});
    ++s.counts.id;
    ++s.counts.blank;
    if (binary || payload.find('\r') != std::string::npos) {
        ++s.counts.event;
        ++s.counts.data;
    } else {
        s.counts.data +=
            1 + static_cast<std::size_t>(std::count(payload.begin(), payload.end(), '\n'));
    }
}

// Operation kind 5: a gap.
void add_gap(Stream& s, fuzz::Input& in, std::string_view session, std::uint64_t& seq, bool variant,
             std::size_t n) {
    std::uint64_t from = seq + 1;
    std::uint64_t to = seq + 1 + n;
    if (variant) {
        from = in.u64();
        to = in.u64();
        if (from > to) {
            std::swap(from, to);
        }
    }
    seq = to;
    transports::sse::append_gap(s.bytes, session, from, to);
    s.last_id = id_of(session, to);
    s.expected.push_back({Expected::Kind::Gap, {}, s.last_id, from, to, {}});
    s.counts.event += 1;
    s.counts.id += 1;
    s.counts.data += 1;
    s.counts.blank += 1;
}

// Operation kind 6: a close, or (variant) a reset.
void add_close_or_reset(Stream& s, fuzz::Input& in, std::string_view session, std::uint64_t& seq,
                        bool variant, std::size_t n) {
    std::string reason(in.take(n));
    if (!fuzz::valid_utf8(reason)) {
        reason.clear();
    }
    if (variant) {
        const std::string_view next = kSessions[in.byte() % kSessions.size()];
        transports::sse::append_reset(s.bytes, next, reason);
        s.expected.push_back({Expected::Kind::Reset, reason, s.last_id, 0, 0, std::string(next)});
    } else {
        const unsigned high = in.byte();
        const auto code = static_cast<std::uint16_t>((high << 8) | in.byte());
        seq += 1;  // the close's own position, one past the last message
        transports::sse::append_close(s.bytes, session, seq, code, reason);
        s.last_id = id_of(session, seq);
        s.expected.push_back({Expected::Kind::Close, reason, s.last_id, code, 0, {}});
        s.counts.id += 1;
    }
    s.counts.event += 1;
    s.counts.data += 1;
    s.counts.blank += 1;
}

// Operation kind 7: an announce.
void add_announce(Stream& s, fuzz::Input& in, std::string_view session, std::string text) {
    if (!fuzz::valid_utf8(text)) {
        text.clear();
    }
    transports::sse::Announce a;
    a.session = session;
    a.send_url = text;
    a.heartbeat_ms = in.u64();
    a.last_seq = in.u64();
    a.retry_ms = in.u64();
    transports::sse::append_announce(s.bytes, a);
    s.last_id = id_of(session, a.last_seq);
    s.retry = a.retry_ms;
    s.expected.push_back({Expected::Kind::Announce, text, s.last_id, a.heartbeat_ms, a.last_seq,
                          std::string(session)});
    s.counts.retry += 1;
    s.counts.event += 1;
    s.counts.id += 1;
    s.counts.data += 1;
    s.counts.blank += 1;
}

Stream build(fuzz::Input& in, std::string_view session) {
    Stream s;
    std::uint64_t seq = 0;
    for (int ops = 0; ops < 256 && !in.empty(); ++ops) {
        const std::uint8_t op = in.byte();
        std::size_t n = in.byte();
        if ((n & 0x80u) != 0) {
            n = ((n & 0x7Fu) << 8) | in.byte();
        }
        const bool variant = (op & 8u) != 0;
        switch (op & 7u) {
        case 4:
            transports::sse::append_heartbeat(s.bytes);
            ++s.counts.comments;
            ++s.counts.blank;
            break;
        case 5: add_gap(s, in, session, seq, variant, n); break;
        case 6: add_close_or_reset(s, in, session, seq, variant, n); break;
        case 7:
            if (variant) {
                check_last_event_id(in.take(n));
            } else {
                add_announce(s, in, session, std::string(in.take(n)));
            }
            break;
        default: add_message(s, in, session, seq, op, n); break;
        }
    }
    return s;
}

// Every line that starts with "id:" (only the encoder writes one: payload lines start with
// "data: ") is followed at once by the blank line that ends its event.
void check_id_lines_last(std::string_view bytes) {
    std::size_t line = 0;
    while (line < bytes.size()) {
        const std::size_t end = bytes.find('\n', line);
        FUZZ_CHECK(end != std::string_view::npos);
        if (bytes.substr(line, 3) == "id:") {
            FUZZ_CHECK_MSG(end + 1 < bytes.size() && bytes[end + 1] == '\n',
                           "an id line at offset " + std::to_string(line) + " is not last");
        }
        line = end + 1;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > std::size_t{64} * 1024) {
        return 0;
    }
    fuzz::Input in(data, size);
    const std::string_view session = kSessions[in.byte() & 7u];
    const fuzz::ChunkPlan plan = in.plan();
    const Stream s = build(in, session);

    std::vector<std::size_t> cuts;
    for (const auto& [offset, length] : plan.cut(s.bytes.size())) {
        cuts.push_back(offset + length);
    }
    const test_support::ParseResult whole = test_support::parse_whole(s.bytes);
    const test_support::ParseResult split = test_support::parse_in_chunks(s.bytes, cuts);
    FUZZ_CHECK_MSG(whole == split, "the chunk plan changed the parse");

    FUZZ_CHECK_MSG(whole.events.size() == s.expected.size(),
                   std::to_string(whole.events.size()) + " events for " +
                       std::to_string(s.expected.size()) + " written");
    for (std::size_t i = 0; i < s.expected.size(); ++i) {
        check_event(whole.events[i], s.expected[i]);
        if (s.expected[i].kind == Expected::Kind::Text ||
            s.expected[i].kind == Expected::Kind::Binary) {
            // What EventSource sends back on reconnect names this session and seq.
            const auto id = transports::sse::parse_last_event_id(whole.events[i].last_event_id);
            FUZZ_CHECK(id && id->session == session);
            FUZZ_CHECK(id_of(id->session, id->seq) == whole.events[i].last_event_id);
        }
    }
    FUZZ_CHECK_MSG(whole.counts == s.counts, "field counts differ");
    FUZZ_CHECK(whole.at_event_boundary);
    check_id_lines_last(s.bytes);
    FUZZ_CHECK(whole.retry == s.retry);
    FUZZ_CHECK(whole.last_event_id == s.last_id);
    return 0;
}
