// Tests for transports/ws_session/codec.cc: the session framing over WebSocket
// (docs/protocol.md, "WebSocket sessions"). Client messages go through the real frame decoder
// and the MessageAssembler, fed whole, split at every byte offset and byte by byte; each
// split must give the same messages. Controls are checked byte for byte.

#include "transports/ws_session/codec.h"

#include <doctest/doctest.h>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/crypto.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/writer.h"

namespace transports::ws_session {
namespace {

namespace ws = proxy::ws;

/// One client WebSocket message to encode: its opcode, payload and fragment sizes.
struct Wire {
    bool binary = false;
    std::string payload;                 ///< as sent (binary: kind byte included)
    std::vector<std::size_t> fragments;  ///< sizes of all frames but the last; empty: one frame
};

/// Masked client frames for `messages`, pings between some fragments.
std::string encode(const std::vector<Wire>& messages) {
    proxy::core::MaskSource masks;
    ws::FrameWriter w(ws::Role::Client, &masks);
    for (const Wire& m : messages) {
        std::size_t at = 0;
        bool first = true;
        auto piece = [&](std::size_t n, bool fin) {
            w.begin_frame(fin, first ? (m.binary ? ws::Opcode::Binary : ws::Opcode::Text)
                                     : ws::Opcode::Continuation,
                          n);
            w.payload(std::as_bytes(std::span<const char>(m.payload.data() + at, n)));
            at += n;
            first = false;
        };
        for (const std::size_t n : m.fragments) {
            piece(n, false);
            static constexpr std::byte kPing[2] = {std::byte{'h'}, std::byte{'i'}};
            w.control(ws::Opcode::Ping, kPing);  // control frames may sit between fragments
        }
        piece(m.payload.size() - at, true);
    }
    return std::string(w.output());
}

/// Decoder events → assembled session messages, rendered as strings ("T:…", "B:…", "C:…",
/// "E:<error>", "ping").
class Collector final : public ws::DecoderHandler {
  public:
    std::vector<std::string> out;
    void on_data_frame_begin(const ws::FrameHeader& h, ws::Opcode message) override {
        if (h.opcode != ws::Opcode::Continuation) {
            assembler.begin(message == ws::Opcode::Binary);
        }
    }
    void on_data_frame_payload(std::span<const std::byte> bytes) override {
        assembler.append(bytes);
    }
    void on_data_frame_end(bool end) override {
        if (!end) {
            return;
        }
        auto f = assembler.finish();
        if (!f) {
            out.push_back("E:" + f.error().context);
            return;
        }
        const char* tag = f->type == ClientFrame::Type::Text     ? "T:"
                          : f->type == ClientFrame::Type::Binary ? "B:"
                                                                 : "C:";
        out.push_back(tag + f->payload);
    }
    void on_ping(std::span<const std::byte> /*payload*/) override { out.push_back("ping"); }
    void on_pong(std::span<const std::byte> /*payload*/) override {}
    void on_close(std::uint16_t /*code*/, std::string_view /*reason*/) override {}
    MessageAssembler assembler;
};

std::vector<std::string> decode(const std::string& wire, const std::vector<std::size_t>& cuts) {
    Collector c;
    ws::Decoder d(ws::DecoderOptions{ws::Role::Server, 1 << 20}, c);
    std::string copy = wire;  // the decoder unmasks in place
    std::size_t at = 0;
    auto feed = [&](std::size_t end) {
        auto r = d.feed(std::as_writable_bytes(std::span<char>(copy.data() + at, end - at)));
        REQUIRE(r);
        at = end;
    };
    for (const std::size_t cut : cuts) {
        feed(cut);
    }
    feed(copy.size());
    return c.out;
}

/// Same messages whole, at every split into two, and byte by byte.
std::vector<std::string> decode_every_split(const std::string& wire) {
    const auto whole = decode(wire, {});
    for (std::size_t cut = 1; cut < wire.size(); ++cut) {
        CAPTURE(cut);
        REQUIRE(decode(wire, {cut}) == whole);
    }
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < wire.size(); ++i) {
        every.push_back(i);
    }
    REQUIRE(decode(wire, every) == whole);
    return whole;
}

std::string kind(Kind k, std::string_view rest) {
    std::string s(1, static_cast<char>(k));
    s.append(rest);
    return s;
}

} // namespace

TEST_CASE("ws_session: text stays text, the kind byte is stripped, controls are told apart") {
    const std::string ack = R"({"type":"ack","seq":7})";
    const auto got = decode_every_split(encode({
        {false, "hello", {}},
        {true, kind(Kind::Binary, std::string("\x00\x01\xff", 3)), {}},
        {true, kind(Kind::Control, ack), {}},
        {false, "", {}},
        {true, kind(Kind::Binary, ""), {}},
        {false, "caf\xc3\xa9 line\nnext", {}},
    }));
    REQUIRE(got == std::vector<std::string>{"T:hello", "B:" + std::string("\x00\x01\xff", 3),
                                            "C:" + ack, "T:", "B:",
                                            "T:caf\xc3\xa9 line\nnext"});
}

TEST_CASE("ws_session: fragmented messages, the kind byte alone in the first fragment") {
    const std::string payload(300, 'x');
    const auto got = decode_every_split(encode({
        {true, kind(Kind::Binary, "abcdef"), {1, 3}},         // kind byte alone, then "ab", …
        {true, kind(Kind::Control, R"({"type":"close"})"), {4}},
        {false, payload, {100, 0, 150}},                      // an empty fragment too
        {true, kind(Kind::Binary, payload), {0, 1}},          // empty first fragment
    }));
    REQUIRE(got == std::vector<std::string>{"ping", "ping", "B:abcdef", "ping",
                                            R"(C:{"type":"close"})", "ping", "ping", "ping",
                                            "T:" + payload, "ping", "ping", "B:" + payload});
}

TEST_CASE("ws_session: a binary message without a known kind byte is a protocol error") {
    const auto got = decode_every_split(encode({
        {true, "", {}},
        {true, std::string("\x02" "abc", 4), {}},
        {true, std::string("\xff", 1), {}},
        {false, "after", {}},
    }));
    REQUIRE(got.size() == 4);
    CHECK(got[0] == "E:empty binary message (no kind byte)");
    CHECK(got[1] == "E:unknown kind byte 2 in a binary message");
    CHECK(got[2] == "E:unknown kind byte 255 in a binary message");
    CHECK(got[3] == "T:after");  // the assembler is ready for the next message
}

TEST_CASE("ws_session: client controls") {
    SUBCASE("ack") {
        auto c = parse_client_control(R"({"type":"ack","seq":42})");
        REQUIRE(c);
        CHECK(c->type == ClientControl::Type::Ack);
        CHECK(c->seq == 42);
        auto d = parse_client_control(" { \"seq\" : 0 , \"type\" : \"ack\" } ");
        REQUIRE(d);
        CHECK(d->seq == 0);
    }
    SUBCASE("close, with defaults and with code and reason") {
        auto c = parse_client_control(R"({"type":"close"})");
        REQUIRE(c);
        CHECK(c->type == ClientControl::Type::Close);
        CHECK(c->code == 1000);
        CHECK(c->reason.empty());
        auto d = parse_client_control(R"({"reason":"bye \u00e9","code":4999,"type":"close"})");
        REQUIRE(d);
        CHECK(d->code == 4999);
        CHECK(d->reason == "bye \xc3\xa9");
        CHECK(parse_client_control(R"({"type":"close","code":3000})"));
        CHECK(parse_client_control(R"({"type":"close","reason":")" + std::string(123, 'r') +
                                   "\"}"));
    }
    SUBCASE("refused") {
        const std::vector<std::string> bad = {
            "",
            "[]",
            "{}",
            R"({"type":"ack"})",
            R"({"type":"ack","seq":-1})",
            R"({"type":"ack","seq":1.0})",
            R"({"type":"ack","seq":"1"})",
            R"({"type":"ack","seq":18446744073709551616})",
            R"({"type":"ack","seq":1,"seq":2})",
            R"({"type":"ack","seq":1,"type":"ack"})",
            R"({"type":"ack","seq":1,"code":1000})",
            R"({"type":"ack","seq":1,"extra":true})",
            R"({"type":"ack","seq":1},)",
            R"({"type":"ack","seq":1} x)",
            R"({"type":"ACK","seq":1})",
            R"({"type":"nope"})",
            R"({"type":1})",
            R"({"type":"close","code":1001})",
            R"({"type":"close","code":2999})",
            R"({"type":"close","code":5000})",
            R"({"type":"close","seq":3})",
            R"({"type":"close","reason":")" + std::string(124, 'r') + "\"}",
            R"({"type":"close","reason":"\ud800"})",
            "{\"type\":\"close\",\"reason\":\"\xff\"}",
        };
        for (const auto& b : bad) {
            CAPTURE(b);
            auto c = parse_client_control(b);
            REQUIRE_FALSE(c);
            CHECK(c.error().code == proxy::core::Code::ProtocolError);
            CHECK(c.error().context.rfind("session control: ", 0) == 0);
        }
    }
}

TEST_CASE("ws_session: proxy controls, byte for byte") {
    const auto body = [](const std::string& s) {
        REQUIRE(!s.empty());
        CHECK(s[0] == '\x01');
        return s.substr(1);
    };
    std::string s;
    append_session(s, SessionAnnounce{"abc", 5, 9, 30000, ""});
    CHECK(body(s) == R"({"type":"session","session":"abc","last_seq":5,"next_seq":9,"heartbeat_ms":30000})");
    s.clear();
    append_session(s, SessionAnnounce{"abc", 0, 1, 10, "chat.v2"});
    CHECK(body(s) == R"({"type":"session","session":"abc","last_seq":0,"next_seq":1,"heartbeat_ms":10,"protocol":"chat.v2"})");
    s.clear();
    append_reset(s, "new", "unknown session");
    CHECK(body(s) == R"({"type":"reset","session":"new","reason":"unknown session"})");
    s.clear();
    append_gap(s, 3, 18446744073709551615ULL);
    CHECK(body(s) == R"({"type":"gap","from":3,"to":18446744073709551615})");
    s.clear();
    append_ack(s, 65);
    CHECK(body(s) == R"({"type":"ack","next_seq":65})");
    s.clear();
    append_close(s, 1000, "bye \"x\"\n\xe2\x80\xa8");
    CHECK(body(s) == R"({"type":"close","code":1000,"reason":"bye \"x\"\n\u2028"})");
    s.clear();
    append_replaced(s);
    CHECK(body(s) == R"({"type":"replaced"})");
    s.clear();
    append_error(s, "seq_gap", "expected seq 4.", 4);
    CHECK(body(s) == R"({"type":"error","error":"seq_gap","detail":"expected seq 4.","expected_seq":4})");
    s.clear();
    append_error(s, "x", "y");
    CHECK(body(s) == R"({"type":"error","error":"x","detail":"y"})");
}

} // namespace transports::ws_session
