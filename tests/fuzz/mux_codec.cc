// Fuzz target mux_codec: the wire formats of many sessions on one connection
// (transports/mux/codec.h, docs/protocol.md "Many sessions on one connection"): the positions a
// multiplexed request lists, the multiplexed send's body and results, and the events of a
// multiplexed SSE stream, read back with the WHATWG EventSource parser of the tests
// (tests/unit/support/event_source_parser.h).
//
// Input: [settings] [chunk plan] [data] (layout in fuzz_support.h). The same data is used three
// ways:
//   settings bits 0-1   max_message for parse_send: 0, 1, 16, 1 MiB
//   settings bits 2-3   max_messages for parse_send: 0, 1, 3, 10000
//
//   1. as a query string for parse_positions. Invariants: the verdict is that of an independent
//      model (every `session=` parameter is `<id>.<seq>` with an id of [A-Za-z0-9_-]+ and a
//      canonical decimal seq below 2^64, 1..100 of them, no id twice); success ⇒ the positions
//      are exactly those parameters in order, and written back as a query they parse to the
//      same; failure ⇒ BadRequest from the client.
//   2. as a body for parse_send. Invariants: success ⇒ at most 100 entries, each id a session id
//      listed once, seq ≥ 1, at most max_messages messages of at most max_message bytes each,
//      text UTF-8; the entries written back (keys in an order the data picks, json::append_string
//      and standard base64) parse to the same entries; limits only add 413s (the unlimited
//      verdict is the same success or the same BadRequest); failures are BadRequest
//      ("offset N: …", "entry E: …" or "more than 100 entries") or PayloadTooLarge
//      ("entry E: …") from the client. The entries' results (next_seq, or an error with
//      expected_seq / retry_after picked by the data) encode to JSON that reads back the same,
//      and so does a multiplexed poll answer made of them (encode_poll: reset, detached, or the
//      entry's messages with a gap and a close; each entry's rest parses with
//      long_polling::parse_poll_response to what was put in).
//   3. as operations appending to one multiplexed SSE stream: op byte, length byte n (n & 0x80:
//      15-bit length, low 7 bits then the next byte), then n bytes of payload. op & 7 is the
//      kind, op & 8 a variant, op >> 4 the session (kSessions):
//        0-2 text message (a payload that is not UTF-8 goes as binary); 3 binary message.
//            Variant: seq from the next 8 bytes, else the session's last seq + 1.
//        4   gap (from/to from the next 16 bytes, ordered)
//        5   close (code from the next 2 bytes, reason = payload, "" when not UTF-8)
//        6   detached (reason = payload); variant: a heartbeat
//        7   mux announce (send url = payload; heartbeat and retry from 16 bytes; then a count
//            byte % 6 of entries: session byte, flags byte (1 reset, 2 protocol), last_seq and
//            next_seq from 16 bytes)
//      The stream is parsed whole and cut by the chunk plan. Invariants: both parses are
//      identical; one event per operation (none for a heartbeat), in order; every message
//      event decodes back to its session, seq and payload (data is "<id> <seq> <body>": the text
//      for the default type, a JSON string of it for `mt`, standard base64 for `mb`); gap, close,
//      detached and mux read back field by field; no `id` field ever (the stream has none);
//      field counts are exactly those written (no payload became a field); the stream ends on
//      an event boundary; `retry` is the last announce's.

#include "proxy/core/result.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/unit/support/event_source_parser.h"
#include "transports/json.h"
#include "transports/long_polling/codec.h"
#include "transports/mux/codec.h"
#include "transports/sse/encoder.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace mux = transports::mux;
namespace lp = transports::long_polling;
using proxy::core::Code;
using proxy::core::Side;
using test_support::FieldCounts;
using test_support::SseEvent;

constexpr std::array<std::uint64_t, 4> kMaxMessage{0, 1, 16, std::uint64_t{1} << 20};
constexpr std::array<std::size_t, 4> kMaxMessages{0, 1, 3, 10'000};
constexpr std::array<std::string_view, 16> kSessions{
    "a1-Zx_9Q",
    "S",
    "0",
    "-",
    "_",
    "inst-1-AbCdEfGhIjKlMnOpQrStUv",
    "x-y",
    "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "AAAAAAAAAAAAAAAAAAAAAA",
    "b",
    "c_",
    "D-",
    "e9",
    "F0f",
    "gg",
    "Hh-_"};

bool id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool model_id(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), id_char); }

// A canonical decimal below 2^64: digits only, no leading zero (except "0"), no overflow.
std::optional<std::uint64_t> model_seq(std::string_view s) {
    if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
            return std::nullopt;
        }
        v = v * 10 + d;
    }
    return v;
}

// ---- 1. parse_positions ---------------------------------------------------------------------

void check_positions(std::string_view query) {
    // The model: split at '&', keep the `session=` parameters.
    std::vector<std::string_view> params;
    for (std::size_t start = 0;;) {
        const std::size_t amp = query.find('&', start);
        const std::string_view p = query.substr(
            start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
        if (p.starts_with("session=")) {
            params.push_back(p.substr(8));
        }
        if (amp == std::string_view::npos) {
            break;
        }
        start = amp + 1;
    }
    bool model_ok = !params.empty() && params.size() <= mux::kMaxSessions;
    std::vector<mux::Position> want;
    for (std::size_t i = 0; model_ok && i < params.size(); ++i) {
        const std::size_t dot = params[i].find('.');
        const std::string_view id = params[i].substr(0, dot);
        const auto seq =
            dot == std::string_view::npos ? std::nullopt : model_seq(params[i].substr(dot + 1));
        model_ok = model_id(id) && seq.has_value();
        for (const auto& w : want) {
            model_ok = model_ok && w.session != id;
        }
        if (model_ok) {
            want.push_back({std::string(id), *seq});
        }
    }

    const auto got = mux::parse_positions(query);
    FUZZ_CHECK_MSG(got.has_value() == model_ok, fuzz::escape(query));
    if (!got) {
        FUZZ_CHECK(got.error().code == Code::BadRequest && got.error().side == Side::Client);
        FUZZ_CHECK(!got.error().context.empty());
        return;
    }
    FUZZ_CHECK(got->size() == want.size());
    std::string again = "transport=mux";
    for (std::size_t i = 0; i < want.size(); ++i) {
        FUZZ_CHECK((*got)[i].session == want[i].session && (*got)[i].seq == want[i].seq);
        again += "&session=" + want[i].session + "." + std::to_string(want[i].seq);
    }
    const auto reparsed = mux::parse_positions(again);
    FUZZ_CHECK_MSG(reparsed && reparsed->size() == got->size(), again);
    for (std::size_t i = 0; i < got->size(); ++i) {
        FUZZ_CHECK((*reparsed)[i].session == (*got)[i].session &&
                   (*reparsed)[i].seq == (*got)[i].seq);
    }
}

// ---- 2. parse_send and encode_send_results ---------------------------------------------------

bool same_entries(const std::vector<mux::SendEntry>& a, const std::vector<mux::SendEntry>& b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].session != b[i].session || a[i].seq != b[i].seq ||
            a[i].messages != b[i].messages) {
            return false;
        }
    }
    return true;
}

// The entries as a body again, each entry's keys in one of the six orders (picked by `order`).
std::string send_body(const std::vector<mux::SendEntry>& entries, std::uint8_t order) {
    std::string out = "[";
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& e = entries[i];
        std::string session = "\"session\":";
        transports::json::append_string(session, e.session);
        const std::string seq = "\"seq\":" + std::to_string(e.seq);
        std::string messages = "\"messages\":[";
        for (std::size_t k = 0; k < e.messages.size(); ++k) {
            messages += k == 0 ? "{" : ",{";
            if (e.messages[k].binary) {
                messages += "\"binary\":\"" + fuzz::base64(e.messages[k].payload) + "\"";
            } else {
                messages += "\"text\":";
                transports::json::append_string(messages, e.messages[k].payload);
            }
            messages += "}";
        }
        messages += "]";
        std::array<const std::string*, 3> keys{&session, &seq, &messages};
        const std::size_t pick = (order + i) % 6;
        std::rotate(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(pick % 3), keys.end());
        if (pick >= 3) {
            std::swap(keys[1], keys[2]);
        }
        out += i == 0 ? "{" : ",{";
        out += *keys[0] + "," + *keys[1] + "," + *keys[2] + "}";
    }
    return out + "]";
}

void check_send_error(const proxy::core::Error& e) {
    FUZZ_CHECK(e.side == Side::Client);
    if (e.code == Code::BadRequest) {
        FUZZ_CHECK_MSG(e.context.starts_with("offset ") || e.context.starts_with("entry ") ||
                           e.context == "more than 100 entries",
                       e.context);
    } else {
        FUZZ_CHECK_MSG(e.code == Code::PayloadTooLarge && e.context.starts_with("entry "),
                       e.context);
    }
}

// Reads `"key":` with transports::json::Reader (a component apart from the writers under test).
void expect_key(transports::json::Reader& r, std::string_view key) {
    auto k = r.read_string();
    FUZZ_CHECK_MSG(k && *k == key, std::string(key));
    FUZZ_CHECK(r.expect(':'));
}

std::uint64_t read_uint_field(transports::json::Reader& r, std::string_view key) {
    expect_key(r, key);
    auto v = r.read_uint();
    FUZZ_CHECK(v.has_value());
    return *v;
}

std::string read_string_field(transports::json::Reader& r, std::string_view key) {
    expect_key(r, key);
    auto v = r.read_string();
    FUZZ_CHECK(v.has_value());
    return *v;
}

constexpr std::array<std::string_view, 6> kErrors{
    "unknown_session", "session_closed", "seq_gap", "payload_too_large", "busy", "rate_limited"};

void check_results(const std::vector<mux::SendEntry>& entries, std::uint8_t pick) {
    std::vector<mux::SendResult> results;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        mux::SendResult r;
        r.session = entries[i].session;
        const std::size_t k = (pick + i * 7) % 8;
        if (k < 2) {
            r.next_seq = entries[i].seq + entries[i].messages.size();
        } else {
            r.error = kErrors[k - 2];
            r.expected_seq = r.error == "seq_gap" ? entries[i].seq / 2 + 1 : 0;
            r.retry_after = r.error == "busy" || r.error == "rate_limited" ? entries[i].seq : 0;
        }
        results.push_back(r);
    }
    const std::string body = mux::encode_send_results(results);
    transports::json::Reader r(body);
    FUZZ_CHECK(r.expect('{'));
    expect_key(r, "results");
    FUZZ_CHECK(r.expect('['));
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (i > 0) {
            FUZZ_CHECK(r.expect(','));
        }
        FUZZ_CHECK(r.expect('{'));
        FUZZ_CHECK(read_string_field(r, "session") == results[i].session);
        FUZZ_CHECK(r.expect(','));
        if (results[i].error.empty()) {
            FUZZ_CHECK(read_uint_field(r, "next_seq") == results[i].next_seq);
        } else {
            FUZZ_CHECK(read_string_field(r, "error") == results[i].error);
            if (results[i].expected_seq != 0) {
                FUZZ_CHECK(r.expect(','));
                FUZZ_CHECK(read_uint_field(r, "expected_seq") == results[i].expected_seq);
            }
            if (results[i].retry_after != 0) {
                FUZZ_CHECK(r.expect(','));
                FUZZ_CHECK(read_uint_field(r, "retry_after") == results[i].retry_after);
            }
        }
        FUZZ_CHECK(r.expect('}'));
    }
    FUZZ_CHECK(r.expect(']'));
    FUZZ_CHECK(r.expect('}'));
    FUZZ_CHECK(r.expect_end());
}

// ---- the multiplexed poll answer (from the parsed send entries) ------------------------------

// Each entry of a poll answer for the parsed send entries: reset, detached, or its messages
// (seqs from the entry's seq) with a gap and a close picked by `pick`. The answer is split at
// `},{"session":` (raw quotes cannot occur inside a JSON string), each entry's `session`
// member is read with json::Reader, and the rest of a message entry, as an object, must parse
// with lp::parse_poll_response to exactly what was put in.
void check_poll(const std::vector<mux::SendEntry>& entries, std::uint8_t pick) {
    std::vector<mux::PollEntry> polls;
    polls.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& e = entries[i];
        mux::PollEntry p;
        p.session = e.session;
        const std::size_t k = (pick + i * 5) % 16;
        if (k == 0) {
            p.reset = "unknown session";
        } else if (k == 1) {
            p.detached = "replaced";
        } else {
            std::uint64_t seq = e.seq;
            for (const auto& m : e.messages) {
                p.messages.push_back(lp::OutMessage{seq++, m.binary, m.payload});
            }
            if ((k & 2u) != 0) {
                p.gap = transports::Gap{e.seq / 2 + 1, e.seq};
            }
            if ((k & 4u) != 0) {
                p.close = lp::Close{
                    static_cast<std::uint16_t>(e.seq),
                    e.messages.empty() || e.messages[0].binary ? "" : e.messages[0].payload};
            }
        }
        polls.push_back(std::move(p));
    }
    const std::string body = mux::encode_poll(polls);
    const std::string_view head = R"({"sessions":[)";
    FUZZ_CHECK(body.starts_with(head) && body.ends_with("]}"));
    std::string_view list =
        std::string_view(body).substr(head.size(), body.size() - head.size() - 2);
    std::vector<std::string_view> parts;
    while (!list.empty()) {
        const std::size_t next = list.find(R"(},{"session":)");
        parts.push_back(list.substr(0, next == std::string_view::npos ? list.size() : next + 1));
        list.remove_prefix(next == std::string_view::npos ? list.size() : next + 2);
    }
    FUZZ_CHECK_MSG(parts.size() == polls.size(), fuzz::escape(body.substr(0, 200)));
    for (std::size_t i = 0; i < polls.size(); ++i) {
        const auto& p = polls[i];
        const std::string_view part = parts[i];
        transports::json::Reader r(part);
        FUZZ_CHECK(r.expect('{'));
        FUZZ_CHECK(read_string_field(r, "session") == p.session);
        if (!p.reset.empty() || !p.detached.empty()) {
            FUZZ_CHECK(r.expect(','));
            const bool reset = !p.reset.empty();
            FUZZ_CHECK(read_string_field(r, reset ? "reset" : "detached") ==
                       (reset ? p.reset : p.detached));
            FUZZ_CHECK(r.expect('}') && r.expect_end());
            continue;
        }
        FUZZ_CHECK(r.expect(','));
        const std::string rest = "{" + std::string(part.substr(r.offset()));
        const auto parsed = lp::parse_poll_response(rest);
        FUZZ_CHECK_MSG(parsed.has_value(), fuzz::escape(rest.substr(0, 200)));
        FUZZ_CHECK(!parsed->reset.has_value());
        FUZZ_CHECK(parsed->gap.has_value() == p.gap.has_value());
        if (p.gap) {
            FUZZ_CHECK(parsed->gap->from == p.gap->from && parsed->gap->to == p.gap->to);
        }
        FUZZ_CHECK(parsed->close.has_value() == p.close.has_value());
        if (p.close) {
            FUZZ_CHECK(parsed->close->code == p.close->code &&
                       parsed->close->reason == p.close->reason);
        }
        FUZZ_CHECK(parsed->messages.size() == p.messages.size());
        for (std::size_t k = 0; k < p.messages.size(); ++k) {
            const auto& got = parsed->messages[k];
            FUZZ_CHECK(got.seq == p.messages[k].seq && got.binary == p.messages[k].binary &&
                       got.payload == p.messages[k].payload);
        }
    }
}

void check_send(std::string_view body, std::uint64_t max_message, std::size_t max_messages,
                std::uint8_t pick) {
    const auto limited = mux::parse_send(body, max_message, max_messages);
    const auto unlimited = mux::parse_send(body, std::numeric_limits<std::uint64_t>::max(),
                                           std::numeric_limits<std::size_t>::max());
    if (!unlimited) {
        check_send_error(unlimited.error());
        FUZZ_CHECK_MSG(unlimited.error().code == Code::BadRequest, unlimited.error().context);
    }
    if (!limited) {
        check_send_error(limited.error());
        if (limited.error().code == Code::BadRequest) {
            FUZZ_CHECK(!unlimited && unlimited.error().context == limited.error().context);
        }
        return;
    }
    FUZZ_CHECK(unlimited && same_entries(*unlimited, *limited));
    const auto& entries = *limited;
    FUZZ_CHECK(entries.size() <= mux::kMaxSessions);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        FUZZ_CHECK(model_id(entries[i].session));
        FUZZ_CHECK(entries[i].seq >= 1);
        FUZZ_CHECK(entries[i].messages.size() <= max_messages);
        for (std::size_t k = 0; k < i; ++k) {
            FUZZ_CHECK(entries[k].session != entries[i].session);
        }
        for (const auto& m : entries[i].messages) {
            FUZZ_CHECK(m.payload.size() <= max_message);
            FUZZ_CHECK(m.binary || fuzz::valid_utf8(m.payload));
        }
    }
    const std::string again = send_body(entries, pick);
    const auto reparsed = mux::parse_send(again, max_message, max_messages);
    FUZZ_CHECK_MSG(reparsed && same_entries(*reparsed, entries), fuzz::escape(again));
    check_results(entries, pick);
    check_poll(entries, pick);
}

// ---- 3. the multiplexed SSE stream -----------------------------------------------------------

struct Expected {
    enum class Kind : std::uint8_t { Message, Gap, Close, Detached, Announce };
    Kind kind = Kind::Message;
    std::string session;
    std::uint64_t seq = 0; // message seq, gap from, close code, announce heartbeat
    std::uint64_t to = 0;  // gap to
    bool binary = false;
    std::string payload; // message payload, close/detached reason, announce send url
    std::vector<mux::AnnounceEntry> entries; // announce; `protocol` is in protocols[i]
    std::vector<std::string> protocols;
};

struct Stream {
    std::string bytes;
    std::vector<Expected> expected;
    FieldCounts counts;
    std::optional<std::uint64_t> retry;
};

void add_event_counts(Stream& s, std::size_t data_lines, bool typed = true) {
    s.counts.event += typed ? 1 : 0;
    s.counts.data += data_lines;
    s.counts.blank += 1;
}

Stream build(fuzz::Input& in) {
    Stream s;
    std::array<std::uint64_t, kSessions.size()> seqs{};
    for (int ops = 0; ops < 256 && !in.empty(); ++ops) {
        const std::uint8_t op = in.byte();
        std::size_t n = in.byte();
        if ((n & 0x80u) != 0) {
            n = ((n & 0x7Fu) << 8) | in.byte();
        }
        const bool variant = (op & 8u) != 0;
        const std::size_t si = op >> 4;
        const std::string session(kSessions[si]);
        Expected x;
        x.session = session;
        switch (op & 7u) {
        case 0:
        case 1:
        case 2:
        case 3: {
            x.payload = std::string(in.take(n));
            x.seq = variant ? in.u64() : seqs[si] + 1;
            seqs[si] = x.seq;
            x.binary = (op & 7u) == 3 || !fuzz::valid_utf8(x.payload);
            mux::append_message(s.bytes, session, x.seq, x.binary, x.payload);
            const bool raw = !x.binary && x.payload.find('\r') == std::string::npos;
            // Text without CR: the default type, one data line per line of the text; else
            // `mt` or `mb` with one data line.
            add_event_counts(s, raw ? 1 + static_cast<std::size_t>(
                                              std::count(x.payload.begin(), x.payload.end(), '\n'))
                                    : 1,
                             !raw);
            break;
        }
        case 4: {
            x.kind = Expected::Kind::Gap;
            x.seq = in.u64();
            x.to = in.u64();
            if (x.seq > x.to) {
                std::swap(x.seq, x.to);
            }
            mux::append_gap(s.bytes, session, x.seq, x.to);
            add_event_counts(s, 1);
            break;
        }
        case 5: {
            x.kind = Expected::Kind::Close;
            x.payload = std::string(in.take(n));
            if (!fuzz::valid_utf8(x.payload)) {
                x.payload.clear();
            }
            const unsigned high = in.byte();
            x.seq = (high << 8) | in.byte();
            mux::append_close(s.bytes, session, static_cast<std::uint16_t>(x.seq), x.payload);
            add_event_counts(s, 1);
            break;
        }
        case 6: {
            if (variant) {
                transports::sse::append_heartbeat(s.bytes);
                ++s.counts.comments;
                ++s.counts.blank;
                continue;
            }
            x.kind = Expected::Kind::Detached;
            x.payload = std::string(in.take(n));
            if (!fuzz::valid_utf8(x.payload)) {
                x.payload.clear();
            }
            mux::append_detached(s.bytes, session, x.payload);
            add_event_counts(s, 1);
            break;
        }
        default: {
            x.kind = Expected::Kind::Announce;
            x.payload = std::string(in.take(n));
            if (!fuzz::valid_utf8(x.payload)) {
                x.payload.clear();
            }
            x.seq = in.u64();
            const std::uint64_t retry = in.u64();
            const std::size_t count = in.byte() % 6;
            for (std::size_t i = 0; i < count; ++i) {
                const std::uint8_t who = in.byte();
                const std::uint8_t flags = in.byte();
                mux::AnnounceEntry e;
                std::string protocol;
                e.session = kSessions[who % kSessions.size()];
                if ((flags & 1u) != 0) {
                    e.reset = (flags & 4u) != 0 ? "unknown session" : "x\"y\\\n\xE2\x80\xA8";
                } else {
                    e.last_seq = in.u64();
                    e.next_seq = in.u64();
                    if ((flags & 2u) != 0) {
                        protocol = std::string(in.take(flags >> 3));
                        if (!fuzz::valid_utf8(protocol)) {
                            protocol = "chat.v2";
                        }
                    }
                }
                x.entries.push_back(e);
                x.protocols.push_back(std::move(protocol));
            }
            // The protocols are viewed only here: x moves into the expectations afterwards.
            std::vector<mux::AnnounceEntry> entries = x.entries;
            for (std::size_t i = 0; i < entries.size(); ++i) {
                entries[i].protocol = x.protocols[i];
            }
            mux::append_announce(s.bytes, x.payload, x.seq, retry, entries);
            s.retry = retry;
            ++s.counts.retry;
            add_event_counts(s, 1);
            break;
        }
        }
        s.expected.push_back(std::move(x));
    }
    return s;
}

void check_json_line(std::string_view data) {
    FUZZ_CHECK(data.find('\n') == std::string_view::npos);
    FUZZ_CHECK(data.find('\r') == std::string_view::npos);
    FUZZ_CHECK(data.find("\xE2\x80\xA8") == std::string_view::npos);
    FUZZ_CHECK(data.find("\xE2\x80\xA9") == std::string_view::npos);
}

void check_message(const SseEvent& e, const Expected& x) {
    const std::string head = x.session + " " + std::to_string(x.seq);
    FUZZ_CHECK_MSG(e.data.starts_with(head + " "), fuzz::escape(e.data.substr(0, 80)));
    const std::string_view rest = std::string_view(e.data).substr(head.size() + 1);
    if (x.binary) {
        FUZZ_CHECK(e.type == "mb");
        FUZZ_CHECK_MSG(rest == fuzz::base64(x.payload), fuzz::escape(rest));
    } else if (x.payload.find('\r') == std::string::npos) {
        FUZZ_CHECK(e.type == "message");
        FUZZ_CHECK_MSG(rest == x.payload, fuzz::escape(rest) + " != " + fuzz::escape(x.payload));
    } else {
        FUZZ_CHECK(e.type == "mt");
        check_json_line(rest);
        transports::json::Reader r(rest);
        const auto text = r.read_string();
        FUZZ_CHECK_MSG(text && *text == x.payload && r.expect_end(), fuzz::escape(rest));
    }
}

void check_json_event(const SseEvent& e, const Expected& x) {
    using Kind = Expected::Kind;
    check_json_line(e.data);
    transports::json::Reader r(e.data);
    FUZZ_CHECK(r.expect('{'));
    if (x.kind == Kind::Announce) {
        FUZZ_CHECK(e.type == "mux");
        FUZZ_CHECK(read_string_field(r, "send") == x.payload);
        FUZZ_CHECK(r.expect(','));
        FUZZ_CHECK(read_uint_field(r, "heartbeat_ms") == x.seq);
        FUZZ_CHECK(r.expect(','));
        expect_key(r, "sessions");
        FUZZ_CHECK(r.expect('['));
        for (std::size_t i = 0; i < x.entries.size(); ++i) {
            const auto& a = x.entries[i];
            if (i > 0) {
                FUZZ_CHECK(r.expect(','));
            }
            FUZZ_CHECK(r.expect('{'));
            FUZZ_CHECK(read_string_field(r, "session") == a.session);
            FUZZ_CHECK(r.expect(','));
            if (!a.reset.empty()) {
                FUZZ_CHECK(read_string_field(r, "reset") == a.reset);
            } else {
                FUZZ_CHECK(read_uint_field(r, "last_seq") == a.last_seq);
                FUZZ_CHECK(r.expect(','));
                FUZZ_CHECK(read_uint_field(r, "next_seq") == a.next_seq);
                if (!x.protocols[i].empty()) {
                    FUZZ_CHECK(r.expect(','));
                    FUZZ_CHECK(read_string_field(r, "protocol") == x.protocols[i]);
                }
            }
            FUZZ_CHECK(r.expect('}'));
        }
        FUZZ_CHECK(r.expect(']'));
    } else {
        FUZZ_CHECK(read_string_field(r, "session") == x.session);
        FUZZ_CHECK(r.expect(','));
        if (x.kind == Kind::Gap) {
            FUZZ_CHECK(e.type == "gap");
            FUZZ_CHECK(read_uint_field(r, "from") == x.seq);
            FUZZ_CHECK(r.expect(','));
            FUZZ_CHECK(read_uint_field(r, "to") == x.to);
        } else if (x.kind == Kind::Close) {
            FUZZ_CHECK(e.type == "close");
            FUZZ_CHECK(read_uint_field(r, "code") == x.seq);
            FUZZ_CHECK(r.expect(','));
            FUZZ_CHECK(read_string_field(r, "reason") == x.payload);
        } else {
            FUZZ_CHECK(e.type == "detached");
            FUZZ_CHECK(read_string_field(r, "reason") == x.payload);
        }
    }
    FUZZ_CHECK(r.expect('}'));
    FUZZ_CHECK(r.expect_end());
}

void check_stream(fuzz::Input& in, const fuzz::ChunkPlan& plan) {
    const Stream s = build(in);
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
        const SseEvent& e = whole.events[i];
        FUZZ_CHECK(e.last_event_id.empty());
        if (s.expected[i].kind == Expected::Kind::Message) {
            check_message(e, s.expected[i]);
        } else {
            check_json_event(e, s.expected[i]);
        }
    }
    FUZZ_CHECK_MSG(whole.counts == s.counts, "field counts differ");
    FUZZ_CHECK(whole.counts.id == 0 && whole.counts.other == 0);
    FUZZ_CHECK(whole.at_event_boundary);
    FUZZ_CHECK(whole.retry == s.retry);
    FUZZ_CHECK(whole.last_event_id.empty());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > std::size_t{64} * 1024) {
        return 0;
    }
    fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    const fuzz::ChunkPlan plan = in.plan();
    const std::string_view rest = in.rest();
    check_positions(rest);
    check_send(rest, kMaxMessage[settings & 3u], kMaxMessages[(settings >> 2) & 3u], settings >> 4);
    check_stream(in, plan);
    return 0;
}
