// Tests for proxy/ws/writer.cc. The writer's output is checked by decoding it with the
// project's strict decoder (proxy/ws/decoder.h) in the matching role, so masking, lengths and
// frame boundaries are all verified by an independent reader.

#include "proxy/ws/writer.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/crypto.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/frame.h"

namespace proxy::ws {
namespace {

using Events = std::vector<std::string>;

std::span<const std::byte> as_span(std::string_view s) { return std::as_bytes(std::span{s}); }

std::string escape(std::span<const std::byte> bytes) {
    std::string out;
    for (std::byte b : bytes) {
        const auto c = std::to_integer<unsigned char>(b);
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            char hex[5];
            std::snprintf(hex, sizeof(hex), "\\x%02X", c);
            out.append(hex);
        }
    }
    return out;
}

// Records decoder events; payload chunks of one frame are merged.
class Recorder final : public DecoderHandler {
  public:
    Events events;
    void on_data_frame_begin(const FrameHeader& h, Opcode message_opcode) override {
        events.push_back("begin msg=" + std::to_string(static_cast<int>(message_opcode)) +
                         " op=" + std::to_string(static_cast<int>(h.opcode)) +
                         " fin=" + (h.fin ? "1" : "0") + " len=" + std::to_string(h.length));
    }
    void on_data_frame_payload(std::span<const std::byte> bytes) override {
        if (!events.empty() && events.back().starts_with("data ")) {
            events.back() += escape(bytes);
        } else {
            events.push_back("data " + escape(bytes));
        }
    }
    void on_data_frame_end(bool message_end) override {
        events.push_back(std::string("end fin=") + (message_end ? "1" : "0"));
    }
    void on_ping(std::span<const std::byte> p) override { events.push_back("ping " + escape(p)); }
    void on_pong(std::span<const std::byte> p) override { events.push_back("pong " + escape(p)); }
    void on_close(std::uint16_t code, std::string_view reason) override {
        events.push_back("close " + std::to_string(code) + " " + escape(as_span(reason)));
    }
};

// Decodes `wire` as the peer of a writer in `writer_role` would: a Client writer's frames are
// read by a server (they must be masked), a Server writer's by a client (must be unmasked).
Events decode(std::string_view wire, Role writer_role) {
    std::vector<std::byte> buf(wire.size());
    for (std::size_t i = 0; i < wire.size(); ++i) {
        buf[i] = static_cast<std::byte>(wire[i]);
    }
    Recorder rec;
    Decoder decoder({writer_role == Role::Client ? Role::Server : Role::Client, 1 << 24}, rec);
    auto r = decoder.feed(buf);
    if (!r) {
        rec.events.push_back("error " + std::string(core::to_string(r.error().code)));
    } else if (*r != buf.size()) {
        rec.events.push_back("short consume");
    }
    if (decoder.mid_message()) {
        rec.events.push_back("(mid message)");
    }
    return rec.events;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>('a' + i % 26);
    }
    return s;
}

// Writes a whole data frame, the payload in pieces of `piece` bytes.
void write_frame(FrameWriter& w, bool fin, Opcode op, std::string_view payload,
                 std::size_t piece) {
    w.begin_frame(fin, op, payload.size());
    for (std::size_t at = 0; at < payload.size(); at += piece) {
        w.payload(as_span(payload.substr(at, piece)));
    }
}

constexpr std::uint8_t byte_at(std::string_view s, std::size_t i) {
    return static_cast<std::uint8_t>(s[i]);
}

TEST_CASE("FrameWriter in the client role masks frames that decode back to the payload") {
    core::MaskSource masks;
    for (std::size_t size : {0u, 1u, 5u, 125u, 126u, 127u, 1000u, 65535u, 65536u, 70000u}) {
        for (std::size_t piece : {1u, 3u, 4u, 7u, 1u << 20}) {
            if (size > 2000 && piece < 7) {
                continue;  // large payloads byte by byte add nothing but time
            }
            INFO("payload size ", size, ", written in pieces of ", piece);
            FrameWriter w(Role::Client, &masks);
            const std::string payload = pattern(size);
            write_frame(w, true, Opcode::Binary, payload, piece);
            CHECK_FALSE(w.mid_frame());
            const std::string_view out = w.output();
            REQUIRE(out.size() >= 2);
            CHECK((byte_at(out, 1) & 0x80) == 0x80);  // MASK bit
            const Events events = decode(out, Role::Client);
            REQUIRE(events.size() == (size == 0 ? 2u : 3u));
            CHECK(events[0] == "begin msg=2 op=2 fin=1 len=" + std::to_string(size));
            if (size > 0) {
                CHECK(events[1] == "data " + payload);
            }
            CHECK(events.back() == "end fin=1");
        }
    }
}

TEST_CASE("FrameWriter in the client role uses a fresh mask for every frame") {
    core::MaskSource masks;
    FrameWriter w(Role::Client, &masks);
    const std::string payload = "same payload";
    write_frame(w, true, Opcode::Text, payload, 100);
    const std::size_t first_size = w.output().size();
    write_frame(w, true, Opcode::Text, payload, 100);
    const std::string_view out = w.output();
    REQUIRE(out.size() == 2 * first_size);
    // Same header, different key (2^-32 chance of a false failure), so different wire bytes.
    CHECK(out.substr(0, 2) == out.substr(first_size, 2));
    CHECK(out.substr(2, 4) != out.substr(first_size + 2, 4));
    CHECK(decode(out, Role::Client) == Events{"begin msg=1 op=1 fin=1 len=12",
                                              "data same payload", "end fin=1",
                                              "begin msg=1 op=1 fin=1 len=12",
                                              "data same payload", "end fin=1"});
}

TEST_CASE("FrameWriter in the server role writes unmasked frames verbatim") {
    FrameWriter w(Role::Server, nullptr);
    write_frame(w, true, Opcode::Text, "Hello", 2);
    // RFC 6455 §5.7: a single-frame unmasked text message.
    CHECK(w.output() == std::string_view("\x81\x05Hello"));
    w.clear();
    CHECK_FALSE(w.has_output());
    CHECK(w.output().empty());

    const std::string big = pattern(300);
    write_frame(w, true, Opcode::Binary, big, 64);
    const std::string_view out = w.output();
    REQUIRE(out.size() == 4 + big.size());
    CHECK(byte_at(out, 0) == 0x82);
    CHECK(byte_at(out, 1) == 126);
    CHECK(byte_at(out, 2) == 0x01);
    CHECK(byte_at(out, 3) == 0x2C);
    CHECK(out.substr(4) == big);
}

TEST_CASE("FrameWriter holds a control frame asked for mid-frame until that frame ends") {
    for (Role role : {Role::Client, Role::Server}) {
        INFO("role ", role == Role::Client ? "client" : "server");
        core::MaskSource masks;
        FrameWriter w(role, &masks);
        w.begin_frame(false, Opcode::Text, 10);
        w.payload(as_span("0123"));
        CHECK(w.mid_frame());
        const std::size_t before = w.output().size();
        w.control(Opcode::Ping, as_span("p1"));
        w.control(Opcode::Pong, as_span("p2"));
        CHECK(w.output().size() == before);  // nothing was appended inside the frame
        w.payload(as_span("45"));
        CHECK(w.output().size() == before + 2);
        w.payload(as_span("6789"));
        CHECK_FALSE(w.mid_frame());
        // The fragmented message goes on after the control frames.
        write_frame(w, true, Opcode::Continuation, "end", 1);
        CHECK(decode(w.output(), role) == Events{"begin msg=1 op=1 fin=0 len=10",
                                                 "data 0123456789", "end fin=0", "ping p1",
                                                 "pong p2", "begin msg=1 op=0 fin=1 len=3",
                                                 "data end", "end fin=1"});
    }
}

TEST_CASE("FrameWriter appends a control frame at once between frames") {
    core::MaskSource masks;
    FrameWriter w(Role::Client, &masks);
    write_frame(w, false, Opcode::Binary, "ab", 2);
    w.control(Opcode::Ping, as_span("now"));
    w.control(Opcode::Ping, {});
    write_frame(w, true, Opcode::Continuation, "cd", 1);
    CHECK(decode(w.output(), Role::Client) ==
          Events{"begin msg=2 op=2 fin=0 len=2", "data ab", "end fin=0", "ping now", "ping ",
                 "begin msg=2 op=0 fin=1 len=2", "data cd", "end fin=1"});
}

TEST_CASE("FrameWriter: a zero-length frame ends at once and does not hold control frames") {
    FrameWriter w(Role::Server, nullptr);
    w.begin_frame(false, Opcode::Text, 0);
    CHECK_FALSE(w.mid_frame());
    w.control(Opcode::Pong, as_span("x"));
    write_frame(w, true, Opcode::Continuation, "", 1);
    CHECK(decode(w.output(), Role::Server) ==
          Events{"begin msg=1 op=1 fin=0 len=0", "end fin=0", "pong x",
                 "begin msg=1 op=0 fin=1 len=0", "end fin=1"});
}

TEST_CASE("FrameWriter::close writes a close frame with its code and reason") {
    core::MaskSource masks;
    FrameWriter client(Role::Client, &masks);
    client.close(close_code::kNormal, "bye");
    CHECK(decode(client.output(), Role::Client) == Events{"close 1000 bye"});

    FrameWriter server(Role::Server, nullptr);
    server.close(close_code::kNoStatus, "ignored");
    CHECK(server.output() == std::string_view("\x88\x00", 2));
    CHECK(decode(server.output(), Role::Server) == Events{"close 1005 "});

    FrameWriter going(Role::Server, nullptr);
    going.close(close_code::kGoingAway, "");
    CHECK(going.output() == std::string_view("\x88\x02\x03\xE9", 4));
}

TEST_CASE("FrameWriter::close truncates a long reason to fit a control frame") {
    FrameWriter w(Role::Server, nullptr);
    w.close(close_code::kPolicyViolation, std::string(300, 'r'));
    const std::string_view out = w.output();
    REQUIRE(out.size() == 2 + 125);
    CHECK(byte_at(out, 1) == 125);
    CHECK(decode(out, Role::Server) == Events{"close 1008 " + std::string(123, 'r')});
}

TEST_CASE("FrameWriter::clear forgets the staged bytes and the writer keeps working") {
    core::MaskSource masks;
    FrameWriter w(Role::Client, &masks);
    CHECK_FALSE(w.has_output());
    const std::string big = pattern(40 * 1024);
    write_frame(w, true, Opcode::Binary, big, 4096);
    CHECK(w.has_output());
    w.clear();
    CHECK_FALSE(w.has_output());
    // A frame split across a flush: the second half continues the same mask stream.
    w.begin_frame(true, Opcode::Text, 6);
    w.payload(as_span("abc"));
    std::string wire(w.output());
    w.clear();
    w.payload(as_span("def"));
    wire += w.output();
    CHECK(decode(wire, Role::Client) == Events{"begin msg=1 op=1 fin=1 len=6", "data abcdef",
                                               "end fin=1"});
}

TEST_CASE("issue 10: abandon_frame drops a frame still staged, so a Close can follow") {
    for (Role role : {Role::Client, Role::Server}) {
        INFO("role ", role == Role::Client ? "client" : "server");
        core::MaskSource masks;
        FrameWriter w(role, &masks);
        write_frame(w, true, Opcode::Text, "earlier", 3);
        w.begin_frame(true, Opcode::Text, 3);
        w.payload(as_span("ok"));  // the third byte turned out invalid and never comes
        w.control(Opcode::Pong, as_span("p"));  // held for the frame's end
        REQUIRE(w.mid_frame());
        CHECK(w.abandon_frame());
        CHECK_FALSE(w.mid_frame());
        w.close(close_code::kInvalidPayload, "bad");
        CHECK(decode(w.output(), role) == Events{"begin msg=1 op=1 fin=1 len=7", "data earlier",
                                                 "end fin=1", "pong p", "close 1007 bad"});
    }
}

TEST_CASE("issue 10: abandon_frame fails once part of the frame left the staging buffer") {
    FrameWriter w(Role::Server, nullptr);
    w.begin_frame(true, Opcode::Text, 4);
    w.payload(as_span("ab"));
    w.clear();  // handed to the socket: the peer has the header
    w.payload(as_span("c"));
    CHECK_FALSE(w.abandon_frame());
    CHECK(w.mid_frame());
    // Not mid-frame: nothing to drop.
    FrameWriter idle(Role::Server, nullptr);
    write_frame(idle, true, Opcode::Binary, "x", 1);
    CHECK(idle.abandon_frame());
    CHECK(idle.output() == std::string_view("\x82\x01x"));
}

} // namespace
} // namespace proxy::ws
