// Tests for transports/sse/encoder.cc: the exact bytes of every event kind, round trips of
// whole streams through the WHATWG parser in tests/unit/support/event_source_parser.h (small
// streams split at every offset, big ones in random chunks), injection attempts that must
// stay inside their own event, and the strict Last-Event-ID parser.

#include "proxy/core/base64.h"
#include "proxy/core/crypto.h"
#include "tests/unit/support/event_source_parser.h"
#include "transports/sse/encoder.h"

#include <algorithm>
#include <doctest/doctest.h>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace transports::sse {
namespace {

using namespace std::literals;
using test_support::FieldCounts;
using test_support::ParseResult;
using test_support::SseEvent;

constexpr std::string_view kSession = "a1-Zx_9Q";
constexpr std::string_view kSendUrl = "/chat?session=a1-Zx_9Q";
constexpr std::string_view kAnnounceData =
    R"({"session":"a1-Zx_9Q","send":"/chat?session=a1-Zx_9Q","heartbeat_ms":25000,"last_seq":0})";

std::span<const std::byte> as_span(std::string_view s) { return std::as_bytes(std::span{s}); }

struct Message {
    bool binary = false;
    std::string payload;
    bool operator==(const Message&) const = default;
};

Message text(std::string s) { return {false, std::move(s)}; }
Message binary(std::string s) { return {true, std::move(s)}; }

std::string id_of(std::uint64_t seq) { return std::string(kSession) + "." + std::to_string(seq); }

std::string encode(std::uint64_t seq, const Message& m) {
    std::string out;
    append_message(out, kSession, seq, m.binary, as_span(m.payload));
    return out;
}

std::optional<std::uint32_t> hex4(std::string_view s) {
    if (s.size() < 4) {
        return std::nullopt;
    }
    std::uint32_t v = 0;
    for (const char c : s.substr(0, 4)) {
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0) {
            return std::nullopt;
        }
        v = v * 16 + static_cast<std::uint32_t>(d);
    }
    return v;
}

// A strict decoder for one JSON string literal (RFC 8259 §7), written independently of
// transports/json.h so the round trip does not check the writer against its own reader.
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
            i += 4;
            if (cp && *cp >= 0xD800 && *cp <= 0xDBFF) {
                const auto low = s.substr(i + 1, 2) == "\\u" ? hex4(s.substr(i + 3)) : std::nullopt;
                if (!low || *low < 0xDC00 || *low > 0xDFFF) {
                    return std::nullopt;
                }
                cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
                i += 6;
            } else if (cp && *cp >= 0xDC00 && *cp <= 0xDFFF) {
                return std::nullopt;
            }
            if (!cp) {
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

// Decodes a dispatched event back into the message it carries, by type.
std::optional<Message> decode(const SseEvent& e) {
    if (e.type == "message") {
        return text(e.data);
    }
    if (e.type == "text-json") {
        auto t = json_string(e.data);
        return t ? std::optional(text(std::move(*t))) : std::nullopt;
    }
    if (e.type == "binary") {
        auto b = proxy::core::base64_decode(e.data);
        return b ? std::optional(binary(std::move(*b))) : std::nullopt;
    }
    return std::nullopt;
}

bool has_cr(std::string_view s) { return s.find('\r') != std::string_view::npos; }

FieldCounts operator+(FieldCounts a, const FieldCounts& b) {
    a.data += b.data;
    a.event += b.event;
    a.id += b.id;
    a.retry += b.retry;
    a.other += b.other;
    a.comments += b.comments;
    a.blank += b.blank;
    return a;
}

// The lines the encoder must write for `m`: one id, one data line per LF-separated line of a
// raw text, or event + one data line for text-json and binary; and the closing blank line.
FieldCounts counts_for(const Message& m) {
    FieldCounts c{.id = 1, .blank = 1};
    if (m.binary || has_cr(m.payload)) {
        c.event = 1;
        c.data = 1;
    } else {
        c.data = 1 + static_cast<std::size_t>(std::count(m.payload.begin(), m.payload.end(), '\n'));
    }
    return c;
}

constexpr FieldCounts kAnnounceCounts{.data = 1, .event = 1, .id = 1, .retry = 1, .blank = 1};
constexpr FieldCounts kGapCounts{.data = 1, .event = 1, .id = 1, .blank = 1};
constexpr FieldCounts kCloseCounts{.data = 1, .event = 1, .id = 1, .blank = 1};
constexpr FieldCounts kHeartbeatCounts{.comments = 1, .blank = 1};
constexpr std::uint64_t kGapLength = 10;

// A whole session stream: announce, `messages` with seqs 1..n, a heartbeat, a gap of
// kGapLength messages after them, and a close at the position after the gap.
std::string encode_stream(const std::vector<Message>& messages) {
    std::string out;
    append_announce(out, {kSession, kSendUrl, 25000, 0, 3000, {}});
    std::uint64_t seq = 0;
    for (const auto& m : messages) {
        append_message(out, kSession, ++seq, m.binary, as_span(m.payload));
    }
    append_heartbeat(out);
    append_gap(out, kSession, seq + 1, seq + kGapLength);
    append_close(out, kSession, seq + kGapLength + 1, 1000, "bye");
    return out;
}

// Checks that `e` carries message `m` with sequence number `seq`.
void check_message(const SseEvent& e, const Message& m, std::uint64_t seq) {
    CHECK(e.type == (m.binary ? "binary" : has_cr(m.payload) ? "text-json" : "message"));
    CHECK(e.last_event_id == id_of(seq));
    CHECK(decode(e) == m);
}

// Checks everything a parse of encode_stream(messages) must show: each message is exactly one
// event of the right type with the right id that decodes to the payload, and the stream holds
// no field the encoder did not write.
void check_stream(const ParseResult& r, const std::vector<Message>& messages) {
    const std::uint64_t n = messages.size();
    REQUIRE(r.events.size() == n + 3);
    CHECK(r.events.front() == SseEvent{"session", std::string(kAnnounceData), id_of(0)});
    FieldCounts expected = kAnnounceCounts + kHeartbeatCounts + kGapCounts + kCloseCounts;
    for (std::size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        check_message(r.events[i + 1], messages[i], i + 1);
        expected = expected + counts_for(messages[i]);
    }
    const std::string gap =
        "{\"from\":" + std::to_string(n + 1) + ",\"to\":" + std::to_string(n + kGapLength) + "}";
    CHECK(r.events[n + 1] == SseEvent{"gap", gap, id_of(n + kGapLength)});
    CHECK(r.events[n + 2] ==
          SseEvent{"close", R"({"code":1000,"reason":"bye"})", id_of(n + kGapLength + 1)});
    CHECK(r.counts == expected);
    CHECK(r.retry == 3000u);
    CHECK(r.last_event_id == id_of(n + kGapLength + 1));
    CHECK(r.at_event_boundary);
}

// Random valid UTF-8 of `code_points` characters, rich in what could confuse SSE framing.
std::string random_text(std::mt19937_64& rng, std::size_t code_points) {
    static const std::string_view kFragments[] = {
        "\n", "\r", "\r\n", "\n\n", "\0"sv, ":", " ", "data: ", "event: x", "id: z", "retry: 1"};
    static constexpr std::uint32_t kOdd[] = {0x2028, 0x2029, 0xFEFF, 0x85, 0xFFFD};
    std::string s;
    for (std::size_t i = 0; i < code_points; ++i) {
        switch (rng() % 10) {
        case 0: s.append(kFragments[rng() % std::size(kFragments)]); break;
        case 1: test_support::append_utf8(s, kOdd[rng() % std::size(kOdd)]); break;
        case 2:
            test_support::append_utf8(s, static_cast<std::uint32_t>(0x80 + rng() % 0x780));
            break;
        case 3: {
            auto cp = static_cast<std::uint32_t>(0x800 + rng() % 0xF800);
            test_support::append_utf8(s, cp >= 0xD800 && cp <= 0xDFFF ? cp - 0x800 : cp);
            break;
        }
        case 4:
            test_support::append_utf8(s, static_cast<std::uint32_t>(0x10000 + rng() % 0x100000));
            break;
        default: s.push_back(static_cast<char>(0x20 + rng() % 0x5F)); break;
        }
    }
    return s;
}

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
    std::string s(n, '\0');
    for (char& c : s) {
        c = static_cast<char>(rng() & 0xFF);
    }
    return s;
}

// Parses `stream` in random chunks whose sizes are uniform in 1..max_chunk.
ParseResult parse_random_chunks(std::string_view stream, std::mt19937_64& rng,
                                std::size_t max_chunk) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = 1 + rng() % max_chunk; at < stream.size(); at += 1 + rng() % max_chunk) {
        cuts.push_back(at);
    }
    return test_support::parse_in_chunks(stream, cuts);
}

// The messages the brief names, odd characters, and one binary message of every byte value.
std::vector<Message> listed_messages() {
    std::string all;
    for (int b = 0; b < 256; ++b) {
        all.push_back(static_cast<char>(b));
    }
    return {
        text(""),
        text("a"),
        text("a\n"),
        text("\n"),
        text("\n\n"),
        text("a\nb"),
        text("a\r\nb"),
        text("\r"),
        text("a\rb"),
        text("\r\n"),
        text("\0"s),
        text("a\0b\0"s),
        text("\xE2\x80\xA8"),
        text("\xE2\x80\xA9"),
        text("\xEF\xBB\xBF"),
        text("\xEF\xBB\xBF"s + "data: x"),
        text(" lead"),
        text("  two"),
        text(":colon"),
        text("\xF0\x9F\x98\x80\r\xE2\x80\xA8"),
        text("\"\\\b\f\t\x01\x1F\x7F"),
        binary(""),
        binary("\0"s),
        binary("\r\n"),
        binary(all),
    };
}

// Every byte value as a one-byte binary message, and every byte below 0x80 as a text.
std::vector<Message> single_byte_messages() {
    std::vector<Message> v;
    for (int b = 0; b < 256; ++b) {
        v.push_back(binary(std::string(1, static_cast<char>(b))));
        if (b < 0x80) {
            v.push_back(text(std::string(1, static_cast<char>(b))));
        }
    }
    return v;
}

} // namespace

TEST_CASE("sse encoder: each event kind has the documented bytes") {
    // The id line comes last in every event, just before the blank line (issue 10).
    CHECK(encode(7, text("hello")) == "data: hello\nid: a1-Zx_9Q.7\n\n");
    CHECK(encode(7, text("")) == "data: \nid: a1-Zx_9Q.7\n\n");
    CHECK(encode(7, text("a\nb\n")) == "data: a\ndata: b\ndata: \nid: a1-Zx_9Q.7\n\n");
    CHECK(encode(18446744073709551615u, text(" x")) ==
          "data:  x\nid: a1-Zx_9Q.18446744073709551615\n\n");
    CHECK(encode(7, text("a\r\nb\"\xE2\x80\xA8\x01")) ==
          "event: text-json\ndata: \"a\\r\\nb\\\"\\u2028\\u0001\"\nid: a1-Zx_9Q.7\n\n");
    CHECK(encode(7, text("a\nb\rc")) ==
          "event: text-json\ndata: \"a\\nb\\rc\"\nid: a1-Zx_9Q.7\n\n");
    CHECK(encode(7, binary("\0\xFF"s)) == "event: binary\ndata: AP8=\nid: a1-Zx_9Q.7\n\n");
    CHECK(encode(7, binary("")) == "event: binary\ndata: \nid: a1-Zx_9Q.7\n\n");

    std::string out = "kept";
    append_announce(out, {kSession, "/s?a=\"1\"", 25000, 42, 3000, {}});
    CHECK(out ==
          "kept"
          "retry: 3000\nevent: session\n"
          "data: {\"session\":\"a1-Zx_9Q\",\"send\":\"/s?a=\\\"1\\\"\",\"heartbeat_ms\":25000,"
          "\"last_seq\":42}\nid: a1-Zx_9Q.42\n\n");
    out.clear();
    append_announce(out, {kSession, "/s", 25000, 0, 3000, "chat.v2"});
    CHECK(out ==
          "retry: 3000\nevent: session\n"
          "data: {\"session\":\"a1-Zx_9Q\",\"send\":\"/s\",\"heartbeat_ms\":25000,"
          "\"last_seq\":0,\"protocol\":\"chat.v2\"}\nid: a1-Zx_9Q.0\n\n");
    out.clear();
    append_gap(out, kSession, 5, 9);
    CHECK(out == "event: gap\ndata: {\"from\":5,\"to\":9}\nid: a1-Zx_9Q.9\n\n");
    out.clear();
    append_reset(out, "new-S_1", "unknown session");
    CHECK(out ==
          "event: reset\ndata: {\"session\":\"new-S_1\",\"reason\":\"unknown session\"}\n\n");
    out.clear();
    append_close(out, kSession, 12, 1011, "oops\n\"x\"");
    CHECK(out == "event: close\ndata: {\"code\":1011,\"reason\":\"oops\\n\\\"x\\\"\"}\n"
                 "id: a1-Zx_9Q.12\n\n");
    out.clear();
    append_heartbeat(out);
    CHECK(out == ":\n\n");
}

TEST_CASE("sse encoder: each listed message survives a stream split at every offset") {
    auto messages = listed_messages();
    const auto singles = single_byte_messages();
    messages.insert(messages.end(), singles.begin(), singles.end());
    for (const Message& m : messages) {
        CAPTURE(m.binary);
        CAPTURE(m.payload);
        const std::vector<Message> one = {m};
        const std::string stream = encode_stream(one);
        CHECK(test_support::split_mismatch(stream) == "");
        check_stream(test_support::parse_whole(stream), one);
    }
}

TEST_CASE("sse encoder: a stream of all listed messages survives every split") {
    const auto messages = listed_messages();
    const std::string stream = encode_stream(messages);
    CHECK(test_support::split_mismatch(stream) == "");
    check_stream(test_support::parse_whole(stream), messages);
}

TEST_CASE("sse encoder: a stream of every single-byte message survives random chunks") {
    const auto messages = single_byte_messages();
    const std::string stream = encode_stream(messages);
    const ParseResult whole = test_support::parse_whole(stream);
    check_stream(whole, messages);
    std::mt19937_64 rng(11);
    for (const std::size_t max_chunk : {1u, 3u, 64u, 1000u}) {
        CAPTURE(max_chunk);
        CHECK(parse_random_chunks(stream, rng, max_chunk) == whole);
    }
}

TEST_CASE("sse encoder: seeded random text and binary messages round-trip") {
    std::mt19937_64 rng(20240611);
    std::vector<Message> messages;
    for (int i = 0; i < 3000; ++i) {
        const std::size_t n = rng() % 8 == 0 ? rng() % 2000 : rng() % 40;
        messages.push_back(rng() % 3 == 0 ? binary(random_bytes(rng, n))
                                          : text(random_text(rng, n)));
    }
    const auto raw = std::count_if(messages.begin(), messages.end(), [](const Message& m) {
        return !m.binary && !has_cr(m.payload);
    });
    CHECK(raw > 500); // both text paths are well exercised
    CHECK(raw < 1500);

    // Small streams of one message: every split.
    for (std::size_t i = 0; i < 300; ++i) {
        CAPTURE(i);
        const std::vector<Message> one = {messages[i]};
        const std::string stream = encode_stream(one);
        if (stream.size() <= 600) {
            CHECK(test_support::split_mismatch(stream) == "");
        }
        check_stream(test_support::parse_whole(stream), one);
    }
    // All in one stream, in random chunks of three size ranges.
    const std::string stream = encode_stream(messages);
    const ParseResult whole = test_support::parse_whole(stream);
    check_stream(whole, messages);
    for (const std::size_t max_chunk : {7u, 500u, 70000u}) {
        CAPTURE(max_chunk);
        CHECK(parse_random_chunks(stream, rng, max_chunk) == whole);
    }
}

TEST_CASE("sse encoder: 1 MiB texts with many line breaks round-trip in random chunks") {
    std::mt19937_64 rng(7);
    std::string lines; // LF only: sent raw, about 20000 data lines
    while (lines.size() < (1u << 20)) {
        std::string line = random_text(rng, rng() % 100);
        std::erase(line, '\r');
        lines.append(line);
        lines.push_back('\n');
    }
    std::string crlf; // CRLF: sent as one JSON line
    for (const char c : lines) {
        if (c == '\n') {
            crlf.push_back('\r');
        }
        crlf.push_back(c);
    }
    const std::vector<Message> messages = {text(lines), text(crlf), binary(lines)};
    const std::string stream = encode_stream(messages);
    const ParseResult whole = test_support::parse_whole(stream);
    check_stream(whole, messages);
    CHECK(whole.counts.data > 20000);
    for (const std::size_t max_chunk : {16u, 4096u, 100000u}) {
        CAPTURE(max_chunk);
        CHECK(parse_random_chunks(stream, rng, max_chunk) == whole);
    }
}

TEST_CASE("sse encoder: backend bytes cannot inject a field, an event or an id") {
    const std::string attacks[] = {
        "\n\nevent: x\ndata: y",
        "\n\nevent: x\ndata: y\n\n",
        "id: z",
        "\nid: z\n",
        "\n\nid: z\n\n",
        "retry: 1",
        "\nretry: 1\n\n",
        "\r\n\r\nevent: x\r\ndata: y\r\n\r\n",
        "\rid: z\r\r",
        "a\0b"s,
        "\0\n\0"s,
        "\r",
        "a\rb",
        "a\r\nb",
        "\xE2\x80\xA8id: z\xE2\x80\xA9retry: 1",
        "\xEF\xBB\xBF",
        "\xEF\xBB\xBF"s + "event: x",
        "\xC2\x85id: z", // U+0085 NEXT LINE
        ":comment",
        "\n:comment\n",
        "data: x\n\n",
        "\n",
        "\n\n",
    };
    for (const std::string& attack : attacks) {
        CAPTURE(attack);
        // As a text message, a binary message, a close reason and a reset reason.
        const std::vector<Message> messages = {text(attack), binary(attack)};
        std::string stream = encode_stream(messages);
        check_stream(test_support::parse_whole(stream), messages);
        CHECK(test_support::split_mismatch(stream) == "");

        stream.clear();
        append_reset(stream, "S2", attack);
        append_close(stream, "S2", 8, 4000, attack);
        const auto r = test_support::parse_whole(stream);
        REQUIRE(r.events.size() == 2);
        CHECK(r.events[0].type == "reset");
        CHECK(r.events[1].type == "close");
        const std::string_view reset_prefix = R"({"session":"S2","reason":)";
        const std::string_view close_prefix = R"({"code":4000,"reason":)";
        for (const auto& [e, prefix] :
             {std::pair{r.events[0], reset_prefix}, std::pair{r.events[1], close_prefix}}) {
            REQUIRE(e.data.starts_with(prefix));
            REQUIRE(e.data.ends_with("}"));
            const std::string_view quoted =
                std::string_view(e.data).substr(prefix.size(), e.data.size() - prefix.size() - 1);
            CHECK(json_string(quoted) == attack);
        }
        CHECK(r.events[0].last_event_id.empty());
        CHECK(r.events[1].last_event_id == "S2.8");
        CHECK(r.counts == FieldCounts{.data = 2, .event = 2, .id = 1, .blank = 2});
        CHECK_FALSE(r.retry.has_value());
    }
}

namespace {

// The last event id of a client that adopts an `id` field as soon as it has read the line (npm
// eventsource 2.x), instead of at dispatch as WHATWG says. The encoder writes LF line ends
// only and every payload line starts with "data: ", so splitting at LF is exact here.
std::string eager_last_event_id(std::string_view prefix) {
    std::string id;
    for (std::size_t line = 0;;) {
        const std::size_t end = prefix.find('\n', line);
        if (end == std::string_view::npos) {
            return id;
        }
        const std::string_view l = prefix.substr(line, end - line);
        if (l.starts_with("id: ")) {
            id.assign(l.substr(4));
        }
        line = end + 1;
    }
}

} // namespace

TEST_CASE("issue 10: a stream cut at any byte offset never advances the id past an event "
          "the client did not dispatch") {
    // Every event kind that carries an id, and messages of every shape.
    std::string stream;
    append_announce(stream, {kSession, kSendUrl, 25000, 0, 3000, {}});
    const std::vector<Message> messages = {text("one"), text("a\nb\n\nc"), text(""),
                                           text("cr\r\nlf"), binary("\0\x01\xFF"s),
                                           text("id: 99\ndata: x")};
    std::uint64_t seq = 0;
    for (const Message& m : messages) {
        append_message(stream, kSession, ++seq, m.binary, as_span(m.payload));
    }
    append_heartbeat(stream);
    append_gap(stream, kSession, seq + 1, seq + 3);
    append_reset(stream, "other", "x");
    append_close(stream, kSession, seq + 4, 4001, "kicked");
    const ParseResult whole = test_support::parse_whole(stream);
    REQUIRE(whole.events.size() == messages.size() + 4);
    const std::size_t with_id = whole.events.size() - 1; // all but the reset

    std::size_t eager_ahead = 0;
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        const std::string_view prefix = std::string_view(stream).substr(0, cut);
        test_support::EventSourceParser p;
        p.feed(prefix);
        // WHATWG: what was dispatched is a prefix of the whole stream's events, and the id a
        // reconnect would send is that of the last one dispatched, never a later one.
        const auto& got = p.events();
        REQUIRE(got.size() <= whole.events.size());
        CHECK(std::equal(got.begin(), got.end(), whole.events.begin()));
        const std::string dispatched = got.empty() ? "" : got.back().last_event_id;
        CHECK(p.last_event_id() == dispatched);
        // An eager client may be ahead only between an id line and the blank line that ends
        // its event: the id line is the event's last, so every data line was read by then.
        const std::string eager = eager_last_event_id(prefix);
        if (eager != dispatched) {
            ++eager_ahead;
            REQUIRE(cut >= 2);
            CHECK(stream[cut - 1] == '\n');
            CHECK(stream[cut] == '\n');
            const std::size_t line = stream.rfind('\n', cut - 2);
            CHECK(std::string_view(stream).substr(line + 1, 4) == "id: ");
            // And it names the very next event, the one whose blank line is next.
            REQUIRE(got.size() < whole.events.size());
            CHECK(eager == whole.events[got.size()].last_event_id);
        }
    }
    // Exactly one such offset per event with an id.
    CHECK(eager_ahead == with_id);
}

TEST_CASE("sse encoder: announce sets retry and the reconnect id; gap moves it past the gap") {
    std::string out;
    append_announce(out, {kSession, kSendUrl, 25000, 5, 2500, {}});
    test_support::EventSourceParser p;
    p.feed(out);
    CHECK(p.retry() == 2500u);
    CHECK(p.last_event_id() == id_of(5));
    REQUIRE(p.events().size() == 1);
    CHECK(p.events()[0].type == "session");

    out.clear();
    append_gap(out, kSession, 6, 9);
    append_heartbeat(out);
    append_reset(out, "other", "x");
    p.feed(out);
    CHECK(p.last_event_id() == id_of(9)); // heartbeat and reset leave it alone
    const auto parsed = parse_last_event_id(p.last_event_id());
    REQUIRE(parsed.has_value());
    CHECK(parsed->session == kSession);
    CHECK(parsed->seq == 9u);
}

TEST_CASE("sse encoder: parse_last_event_id accepts exactly <session>.<seq>") {
    const std::string value = "a1-Zx_9Q.18446744073709551615";
    const auto max = parse_last_event_id(value);
    REQUIRE(max.has_value());
    CHECK(max->session == "a1-Zx_9Q");
    CHECK(max->session.data() == value.data()); // a view, not a copy
    CHECK(max->seq == 18446744073709551615u);
    CHECK(parse_last_event_id("S.0")->seq == 0u);
    CHECK(parse_last_event_id("-_.1")->session == "-_");

    std::mt19937_64 rng(3);
    for (int i = 0; i < 1000; ++i) {
        const std::uint64_t seq = rng() >> (rng() % 64);
        std::string out;
        append_message(out, kSession, seq, false, {});
        const auto r = test_support::parse_whole(out);
        REQUIRE(r.events.size() == 1);
        const auto parsed = parse_last_event_id(r.events[0].last_event_id);
        REQUIRE(parsed.has_value());
        CHECK(parsed->session == kSession);
        CHECK(parsed->seq == seq);
    }

    for (const std::string_view bad : {""sv,
                                       "."sv,
                                       "S"sv,
                                       "S."sv,
                                       ".5"sv,
                                       "S.-1"sv,
                                       "S.+1"sv,
                                       "S. 1"sv,
                                       "S.1 "sv,
                                       " S.1"sv,
                                       "S .1"sv,
                                       "S.01"sv,
                                       "S.00"sv,
                                       "S.18446744073709551616"sv,
                                       "S.99999999999999999999"sv,
                                       "S.123456789012345678901"sv,
                                       "S.000000000000000000001"sv,
                                       "a.b.1"sv,
                                       "S.1.2"sv,
                                       "S..1"sv,
                                       "ab/c.1"sv,
                                       "ab=.1"sv,
                                       "ab+.1"sv,
                                       "S.0x1"sv,
                                       "S.1e3"sv,
                                       "S.1\0"sv,
                                       "\0S.1"sv,
                                       "S\xC3\xA9.1"sv,
                                       "S.\xD9\xA1"sv,
                                       "S.1\n"sv}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_last_event_id(bad).has_value());
    }
}

TEST_CASE("sse encoder: is_session_id allows URL-safe base64 and '-' only") {
    CHECK(is_session_id("AZaz09-_"));
    CHECK(is_session_id("a1-Zx_9Q"));
    CHECK_FALSE(is_session_id(""));
    for (const char c : "+/=. :\n\r\0\x7F\x80"s) {
        CAPTURE(c);
        CHECK_FALSE(is_session_id("ab"s + c + "cd"));
    }
}

} // namespace transports::sse
