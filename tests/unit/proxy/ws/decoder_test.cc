// Tests for proxy/ws/decoder.cc: every rule in decoder.h's header comment, in both roles.
// Every vector goes through decode_every_split(), which feeds the input whole, split at every
// byte offset and byte by byte, and requires the same event sequence each time.

#include "proxy/ws/decoder.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/ws/frame.h"

namespace proxy::ws {
namespace {

using Bytes = std::vector<std::byte>;
using Events = std::vector<std::string>;

constexpr std::array<std::byte, 4> kKey{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21},
                                        std::byte{0x3d}};

Bytes bytes_of(std::string_view s) {
    Bytes b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        b[i] = static_cast<std::byte>(s[i]);
    }
    return b;
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

// Printable ASCII stays as is, everything else becomes \xHH, so events read well in failures.
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

std::string name_of(Opcode op) {
    switch (op) {
    case Opcode::Continuation: return "cont";
    case Opcode::Text: return "text";
    case Opcode::Binary: return "binary";
    case Opcode::Close: return "close";
    case Opcode::Ping: return "ping";
    case Opcode::Pong: return "pong";
    }
    return "?";
}

enum class LengthForm { Minimal, Force16, Force64 };

// Builds a frame by hand (independently of encode_header) so tests can also build invalid
// ones: `first` is the whole first byte (FIN, RSV, opcode); masked frames use kKey.
Bytes wire(std::uint8_t first, const Bytes& payload, bool masked,
           LengthForm form = LengthForm::Minimal) {
    Bytes out{std::byte{first}};
    const std::uint64_t n = payload.size();
    const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
    if (form == LengthForm::Minimal && n < 126) {
        out.push_back(std::byte{static_cast<std::uint8_t>(mask_bit | n)});
    } else if (form == LengthForm::Force16 || (form == LengthForm::Minimal && n < 65536)) {
        out.push_back(std::byte{static_cast<std::uint8_t>(mask_bit | 126)});
        out.push_back(std::byte{static_cast<std::uint8_t>(n >> 8)});
        out.push_back(std::byte{static_cast<std::uint8_t>(n)});
    } else {
        out.push_back(std::byte{static_cast<std::uint8_t>(mask_bit | 127)});
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(std::byte{static_cast<std::uint8_t>(n >> shift)});
        }
    }
    if (masked) {
        out.insert(out.end(), kKey.begin(), kKey.end());
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out.push_back(payload[i] ^ (masked ? kKey[i % 4] : std::byte{0}));
    }
    return out;
}

Bytes wire(std::uint8_t first, std::string_view payload, bool masked,
           LengthForm form = LengthForm::Minimal) {
    return wire(first, bytes_of(payload), masked, form);
}

// A header only: first byte, then the raw second byte and extended length, mask key if masked.
Bytes raw_header(std::uint8_t first, std::uint8_t len7, std::uint64_t ext, bool masked) {
    Bytes out{std::byte{first}, std::byte{static_cast<std::uint8_t>((masked ? 0x80 : 0) | len7)}};
    const int ext_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    for (int i = ext_bytes - 1; i >= 0; --i) {
        out.push_back(std::byte{static_cast<std::uint8_t>(ext >> (8 * i))});
    }
    if (masked) {
        out.insert(out.end(), kKey.begin(), kKey.end());
    }
    return out;
}

Bytes close_body(std::uint16_t code, std::string_view reason) {
    return concat({Bytes{std::byte{static_cast<std::uint8_t>(code >> 8)},
                         std::byte{static_cast<std::uint8_t>(code & 0xFF)}},
                   bytes_of(reason)});
}

// Records events as strings. Adjacent payload chunks of one frame are merged, because how a
// frame's payload is chunked depends on the split and is not part of the contract.
class Recorder final : public DecoderHandler {
  public:
    Events events;
    Decoder* decoder = nullptr;
    std::string stop_on; // call stop() after any event starting with this

    void on_data_frame_begin(const FrameHeader& h, Opcode message_opcode) override {
        record("begin msg=" + name_of(message_opcode) + " op=" + name_of(h.opcode) +
               " fin=" + (h.fin ? "1" : "0") + " len=" + std::to_string(h.length));
    }
    void on_data_frame_payload(std::span<const std::byte> bytes) override {
        if (bytes.empty()) {
            record("empty payload chunk");
        } else if (!events.empty() && events.back().starts_with("data ")) {
            events.back() += escape(bytes);
            maybe_stop("data ");
        } else {
            record("data " + escape(bytes));
        }
    }
    void on_data_frame_end(bool message_end) override {
        record(std::string("end fin=") + (message_end ? "1" : "0"));
    }
    void on_ping(std::span<const std::byte> payload) override { record("ping " + escape(payload)); }
    void on_pong(std::span<const std::byte> payload) override { record("pong " + escape(payload)); }
    void on_close(std::uint16_t code, std::string_view reason) override {
        record("close " + std::to_string(code) + " " + escape(std::as_bytes(std::span{reason})));
    }

  private:
    void record(std::string event) {
        events.push_back(std::move(event));
        maybe_stop(events.back());
    }
    void maybe_stop(std::string_view event) {
        if (!stop_on.empty() && event.starts_with(stop_on) && decoder != nullptr) {
            decoder->stop();
        }
    }
};

// Feeds `input` in the pieces given by the ascending `cuts` and returns the events, ending
// with "error <code>" on failure. Contract breaches (a short count without stop(), an error
// that is not sticky) are recorded as events too, so the comparison catches them.
Events run(const Bytes& input, const std::vector<std::size_t>& cuts, DecoderOptions options) {
    Bytes buf = input; // feed() unmasks in place
    Recorder rec;
    Decoder decoder(options, rec);
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t end = i < cuts.size() ? cuts[i] : buf.size();
        const std::span<std::byte> part{buf.data() + start, end - start};
        auto r = decoder.feed(part);
        if (!r) {
            const auto code = r.error().code;
            rec.events.push_back("error " + std::string(core::to_string(code)));
            auto again = decoder.feed({});
            if (again || again.error().code != code) {
                rec.events.push_back("error was not sticky");
            }
            break;
        }
        if (*r != part.size()) {
            rec.events.push_back("consumed " + std::to_string(*r) + " of " +
                                 std::to_string(part.size()));
        }
        start = end;
    }
    return rec.events;
}

// Large inputs (the 64 KiB round trips) are split at every offset near both ends and at a
// prime stride in between, which keeps the test quadratic only in the small vectors.
std::vector<std::size_t> split_points(std::size_t n) {
    std::vector<std::size_t> points;
    for (std::size_t k = 0; k <= n; ++k) {
        if (n <= 4096 || k < 64 || k + 64 > n || k % 61 == 0) {
            points.push_back(k);
        }
    }
    return points;
}

Events decode_every_split(const Bytes& input, DecoderOptions options = {}) {
    const Events whole = run(input, {}, options);
    for (std::size_t k : split_points(input.size())) {
        const Events split = run(input, {k}, options);
        if (split != whole) {
            INFO("split at offset ", k);
            CHECK(split == whole);
            break;
        }
    }
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k < input.size(); ++k) {
        every.push_back(k);
    }
    INFO("byte by byte");
    CHECK(run(input, every, options) == whole);
    return whole;
}

DecoderOptions server() { return DecoderOptions{Role::Server, 1024 * 1024}; }
DecoderOptions client() { return DecoderOptions{Role::Client, 1024 * 1024}; }
DecoderOptions options_for(Role role, std::uint64_t max_message = 1024 * 1024) {
    return DecoderOptions{role, max_message};
}

constexpr std::uint8_t kFin = 0x80;
constexpr std::uint8_t kText = 0x1;
constexpr std::uint8_t kBinary = 0x2;
constexpr std::uint8_t kClose = 0x8;
constexpr std::uint8_t kPing = 0x9;
constexpr std::uint8_t kPong = 0xA;

} // namespace
} // namespace proxy::ws

namespace doctest {
template <> struct StringMaker<proxy::ws::Events> {
    static String convert(const proxy::ws::Events& events) {
        std::string s = "[";
        for (const auto& e : events) {
            s += "\n  " + e;
        }
        s += "\n]";
        return String(s.c_str());
    }
};
} // namespace doctest

namespace proxy::ws {
namespace {

TEST_CASE("decoder: RFC 6455 section 5.7 examples decode in both roles") {
    // Server role: the masked "Hello" from the RFC, byte for byte.
    const Bytes masked_hello{std::byte{0x81}, std::byte{0x85}, std::byte{0x37}, std::byte{0xfa},
                             std::byte{0x21}, std::byte{0x3d}, std::byte{0x7f}, std::byte{0x9f},
                             std::byte{0x4d}, std::byte{0x51}, std::byte{0x58}};
    CHECK(decode_every_split(masked_hello, server()) ==
          Events{"begin msg=text op=text fin=1 len=5", "data Hello", "end fin=1"});
    // Client role: unmasked "Hello", the fragmented "Hel"+"lo", and unmasked ping.
    const Bytes input = concat({bytes_of("\x81\x05Hello"), bytes_of("\x01\x03Hel"),
                                bytes_of("\x80\x02lo"), bytes_of("\x89\x05Hello")});
    CHECK(decode_every_split(input, client()) ==
          Events{"begin msg=text op=text fin=1 len=5", "data Hello", "end fin=1",
                 "begin msg=text op=text fin=0 len=3", "data Hel", "end fin=0",
                 "begin msg=text op=cont fin=1 len=2", "data lo", "end fin=1", "ping Hello"});
}

TEST_CASE("decoder: masked payload is unmasked in place in the caller's buffer") {
    Bytes buf = wire(kFin | kBinary, "abcdefghij", true);
    Recorder rec;
    Decoder decoder(server(), rec);
    auto r = decoder.feed(buf);
    REQUIRE(r);
    CHECK(*r == buf.size());
    CHECK(escape(std::span{buf}.subspan(6)) == "abcdefghij");
}

TEST_CASE("decoder: RSV bits are a protocol error in both roles") {
    for (Role role : {Role::Server, Role::Client}) {
        for (int rsv : {0x40, 0x20, 0x10, 0x70}) {
            CAPTURE(rsv);
            const auto first = static_cast<std::uint8_t>(kFin | rsv | kText);
            CHECK(decode_every_split(wire(first, "x", role == Role::Server), options_for(role)) ==
                  Events{"error protocol_error"});
        }
    }
}

TEST_CASE("decoder: reserved opcodes are a protocol error in both roles") {
    for (Role role : {Role::Server, Role::Client}) {
        for (int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
            CAPTURE(op);
            CHECK(decode_every_split(
                      wire(static_cast<std::uint8_t>(kFin | op), "x", role == Role::Server),
                      options_for(role)) == Events{"error protocol_error"});
        }
    }
}

TEST_CASE("decoder: server requires masked frames and client forbids them") {
    CHECK(decode_every_split(wire(kFin | kText, "hi", false), server()) ==
          Events{"error protocol_error"});
    CHECK(decode_every_split(wire(kFin | kText, "hi", true), client()) ==
          Events{"error protocol_error"});
    CHECK(decode_every_split(wire(kFin | kPing, "", false), server()) ==
          Events{"error protocol_error"});
    CHECK(decode_every_split(wire(kFin | kPong, "", true), client()) ==
          Events{"error protocol_error"});
}

TEST_CASE("decoder: errors are attributed to the peer the decoder reads from") {
    Bytes a = wire(kFin | kText, "hi", false);
    Recorder rec;
    Decoder from_client(server(), rec);
    auto r = from_client.feed(a);
    REQUIRE(!r);
    CHECK(r.error().side == core::Side::Client);
    Bytes b = wire(kFin | kText, "hi", true);
    Decoder from_backend(client(), rec);
    auto r2 = from_backend.feed(b);
    REQUIRE(!r2);
    CHECK(r2.error().side == core::Side::Backend);
}

TEST_CASE("decoder: control frames longer than 125 bytes or fragmented are protocol errors") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        const auto opt = options_for(role);
        const std::string p125(125, 'p');
        CHECK(decode_every_split(wire(kFin | kPing, p125, m), opt) == Events{"ping " + p125});
        CHECK(decode_every_split(wire(kFin | kPing, p125 + "p", m), opt) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(wire(kFin | kPong, "p", m, LengthForm::Force16), opt) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(wire(kFin | kClose, "p", m, LengthForm::Force64), opt) ==
              Events{"error protocol_error"});
        for (std::uint8_t op : {kPing, kPong, kClose}) {
            CHECK(decode_every_split(wire(op, "", m), opt) == Events{"error protocol_error"});
        }
    }
}

TEST_CASE("decoder: extended lengths must be minimal and the 64-bit MSB clear") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        const auto opt = options_for(role, std::uint64_t{1} << 63);
        // 16-bit: 126 is the smallest allowed value; 0 and 125 are not minimal.
        CHECK(decode_every_split(raw_header(kFin | kBinary, 126, 0, m), opt) ==
              Events{"error protocol_error"});
        CHECK(
            decode_every_split(wire(kFin | kBinary, std::string(125, 'a'), m, LengthForm::Force16),
                               opt) == Events{"error protocol_error"});
        const std::string s126(126, 'a');
        CHECK(decode_every_split(wire(kFin | kBinary, s126, m), opt) ==
              Events{"begin msg=binary op=binary fin=1 len=126", "data " + s126, "end fin=1"});
        // 64-bit: 65536 is the smallest allowed value; 5 and 65535 are not minimal.
        CHECK(decode_every_split(wire(kFin | kBinary, "abcde", m, LengthForm::Force64), opt) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(raw_header(kFin | kBinary, 127, 65535, m), opt) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(raw_header(kFin | kBinary, 127, 65536, m), opt) ==
              Events{"begin msg=binary op=binary fin=1 len=65536"});
        // The most significant bit must be 0 (RFC 6455 §5.2), whatever max_message says.
        CHECK(decode_every_split(raw_header(kFin | kBinary, 127, std::uint64_t{1} << 63, m), opt) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(raw_header(kFin | kBinary, 127, ~std::uint64_t{0}, m), opt) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(raw_header(kFin | kBinary, 127, (std::uint64_t{1} << 63) - 1, m),
                                 opt) ==
              Events{"begin msg=binary op=binary fin=1 len=9223372036854775807"});
    }
}

TEST_CASE("decoder: continuation without a message is a protocol error") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        CHECK(decode_every_split(wire(kFin, "x", m), options_for(role)) ==
              Events{"error protocol_error"});
        CHECK(decode_every_split(concat({wire(kFin | kText, "a", m), wire(0x00, "b", m)}),
                                 options_for(role)) == Events{"begin msg=text op=text fin=1 len=1",
                                                              "data a", "end fin=1",
                                                              "error protocol_error"});
    }
}

TEST_CASE("decoder: text or binary frame inside a fragmented message is a protocol error") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        for (std::uint8_t op : {kText, kBinary}) {
            CHECK(decode_every_split(concat({wire(kText, "a", m), wire(kFin | op, "b", m)}),
                                     options_for(role)) ==
                  Events{"begin msg=text op=text fin=0 len=1", "data a", "end fin=0",
                         "error protocol_error"});
        }
    }
}

TEST_CASE("decoder: control frames between fragments keep the message going") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        const Bytes input =
            concat({wire(kText, "Hel", m), wire(kFin | kPing, "p1", m), wire(0x00, "l", m),
                    wire(kFin | kPong, "", m), wire(kFin, "o", m), wire(kFin | kBinary, "b", m)});
        CHECK(decode_every_split(input, options_for(role)) ==
              Events{"begin msg=text op=text fin=0 len=3", "data Hel", "end fin=0", "ping p1",
                     "begin msg=text op=cont fin=0 len=1", "data l", "end fin=0", "pong ",
                     "begin msg=text op=cont fin=1 len=1", "data o", "end fin=1",
                     "begin msg=binary op=binary fin=1 len=1", "data b", "end fin=1"});
    }
}

TEST_CASE("decoder: empty frames produce begin and end without payload") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        const Bytes input =
            concat({wire(kFin | kText, "", m), wire(kFin | kBinary, "", m), wire(kText, "", m),
                    wire(0x00, "", m), wire(kFin, "", m), wire(kFin | kPing, "", m),
                    wire(kFin | kPong, "", m), wire(kFin | kClose, "", m)});
        CHECK(decode_every_split(input, options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=0", "end fin=1",
                     "begin msg=binary op=binary fin=1 len=0", "end fin=1",
                     "begin msg=text op=text fin=0 len=0", "end fin=0",
                     "begin msg=text op=cont fin=0 len=0", "end fin=0",
                     "begin msg=text op=cont fin=1 len=0", "end fin=1", "ping ", "pong ",
                     "close 1005 "});
    }
}

TEST_CASE("decoder: message over max_message fails from the header before any payload") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        const auto opt = options_for(role, 10);
        // Exactly at the limit is fine, one byte over is not, and no payload event fires.
        CHECK(decode_every_split(wire(kFin | kBinary, "0123456789", m), opt) ==
              Events{"begin msg=binary op=binary fin=1 len=10", "data 0123456789", "end fin=1"});
        CHECK(decode_every_split(wire(kFin | kBinary, "0123456789A", m), opt) ==
              Events{"error message_too_big"});
        // The limit is on the sum of the frames: the second fragment's header trips it.
        CHECK(decode_every_split(concat({wire(kText, "012345", m), wire(kFin, "6789A", m)}), opt) ==
              Events{"begin msg=text op=text fin=0 len=6", "data 012345", "end fin=0",
                     "error message_too_big"});
        // A huge declared length fails with just the header in hand.
        CHECK(decode_every_split(raw_header(kFin | kBinary, 127, std::uint64_t{1} << 40, m), opt) ==
              Events{"error message_too_big"});
        // Control frames do not count towards the message.
        CHECK(decode_every_split(concat({wire(kText, "01234", m), wire(kFin | kPing, "pppp", m),
                                         wire(kFin, "56789", m)}),
                                 opt) ==
              Events{"begin msg=text op=text fin=0 len=5", "data 01234", "end fin=0", "ping pppp",
                     "begin msg=text op=cont fin=1 len=5", "data 56789", "end fin=1"});
    }
}

TEST_CASE("decoder: set_max_message applies from the next frame header") {
    Bytes input = concat(
        {wire(kFin | kBinary, "0123456789", true), wire(kFin | kBinary, "0123456789", true)});
    Recorder rec;
    Decoder decoder(server(), rec);
    auto first = decoder.feed(std::span{input}.first(16));
    REQUIRE(first);
    decoder.set_max_message(9);
    auto second = decoder.feed(std::span{input}.subspan(16));
    REQUIRE(!second);
    CHECK(second.error().code == core::Code::MessageTooBig);
    CHECK(rec.events ==
          Events{"begin msg=binary op=binary fin=1 len=10", "data 0123456789", "end fin=1"});
}

TEST_CASE("decoder: invalid UTF-8 fails at the first bad byte across fragments") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        // "κόσμε" split inside a character, then a fragment with a bad byte in its middle:
        // everything before the bad byte is delivered, nothing after it.
        const Bytes input = concat({wire(kText, "\xCE\xBA\xE1\xBD", m), wire(kFin | kPing, "", m),
                                    wire(0x00, "\xB9\xCF\x83\xCE\xBC\xCE\xB5xy\xC0zz", m)});
        CHECK(decode_every_split(input, options_for(role)) ==
              Events{"begin msg=text op=text fin=0 len=4", "data \\xCE\\xBA\\xE1\\xBD", "end fin=0",
                     "ping ", "begin msg=text op=cont fin=0 len=12",
                     "data \\xB9\\xCF\\x83\\xCE\\xBC\\xCE\\xB5xy", "error invalid_utf8"});
        // Surrogate and above-U+10FFFF sequences fail at their second byte; the lead byte of
        // the bad sequence is never delivered (issue 10).
        CHECK(decode_every_split(wire(kFin | kText, "a\xED\xA0\x80", m), options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=4", "data a", "error invalid_utf8"});
        CHECK(decode_every_split(wire(kFin | kText, "\xF4\x90\x80\x80", m), options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=4", "error invalid_utf8"});
        // Binary messages are not validated.
        CHECK(decode_every_split(wire(kFin | kBinary, "\xFF", m), options_for(role)) ==
              Events{"begin msg=binary op=binary fin=1 len=1", "data \\xFF", "end fin=1"});
    }
}

TEST_CASE("decoder: the UTF-8 error is returned while feeding the frame with the bad byte") {
    // The second fragment declares 1000 bytes; the error comes as soon as the bad byte is fed,
    // long before the frame would be complete.
    Bytes first = wire(kText, "good ", true);
    Bytes second = raw_header(0x00, 126, 1000, true);
    Bytes body = bytes_of("ok\xFFtrailing");
    for (std::size_t i = 0; i < body.size(); ++i) {
        body[i] ^= kKey[i % 4];
    }
    Recorder rec;
    Decoder decoder(server(), rec);
    REQUIRE(decoder.feed(first));
    REQUIRE(decoder.feed(second));
    REQUIRE(decoder.feed(std::span{body}.first(2)));
    CHECK(rec.events == Events{"begin msg=text op=text fin=0 len=5", "data good ", "end fin=0",
                               "begin msg=text op=cont fin=0 len=1000", "data ok"});
    auto r = decoder.feed(std::span{body}.subspan(2, 1));
    REQUIRE(!r);
    CHECK(r.error().code == core::Code::InvalidUtf8);
    CHECK(close_code_for(r.error().code) == close_code::kInvalidPayload);
}

TEST_CASE("decoder: text message ending inside a character fails at the final frame") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        CHECK(decode_every_split(concat({wire(kText, "a\xE2\x82", m), wire(kFin, "", m)}),
                                 options_for(role)) ==
              Events{"begin msg=text op=text fin=0 len=3", "data a\\xE2\\x82", "end fin=0",
                     "begin msg=text op=cont fin=1 len=0", "error invalid_utf8"});
        CHECK(decode_every_split(wire(kFin | kText, "\xF0\x9F\x98", m), options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=3", "error invalid_utf8"});
        // Completed in the last fragment: valid.
        CHECK(decode_every_split(concat({wire(kText, "\xF0\x9F", m), wire(kFin, "\x98\x80", m)}),
                                 options_for(role)) ==
              Events{"begin msg=text op=text fin=0 len=2", "data \\xF0\\x9F", "end fin=0",
                     "begin msg=text op=cont fin=1 len=2", "data \\x98\\x80", "end fin=1"});
    }
}

TEST_CASE("issue 10: a text message cut off inside its last character delivers none of it") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        // One frame: the valid prefix goes on, the dangling lead byte never does.
        CHECK(decode_every_split(wire(kFin | kText, "ok\xCE", m), options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=3", "data ok", "error invalid_utf8"});
        CHECK(decode_every_split(wire(kFin | kText, "\xE2\x82", m), options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=2", "error invalid_utf8"});
        // "ok" then "\xCE" as fragments: the second frame's only byte is held, then dropped.
        CHECK(decode_every_split(concat({wire(kText, "ok", m), wire(kFin, "\xCE", m)}),
                                 options_for(role)) ==
              Events{"begin msg=text op=text fin=0 len=2", "data ok", "end fin=0",
                     "begin msg=text op=cont fin=1 len=1", "error invalid_utf8"});
        // A lead byte followed by an ASCII byte: neither the lead nor anything after it.
        CHECK(decode_every_split(wire(kFin | kText, "ab\xE2\x82z", m), options_for(role)) ==
              Events{"begin msg=text op=text fin=1 len=5", "data ab", "error invalid_utf8"});
    }
}

TEST_CASE("issue 10: a code point split across reads is delivered once it is complete") {
    // "a€b" with the euro sign's three bytes fed one at a time: before the last of them
    // arrives only "a" has been delivered.
    const Bytes input = wire(kFin | kText, "a\xE2\x82\xAC" "b", false);
    Bytes buf = input;
    Recorder rec;
    Decoder decoder(client(), rec);
    REQUIRE(decoder.feed(std::span{buf}.first(4)));  // header, "a", 0xE2
    REQUIRE(decoder.feed(std::span{buf}.subspan(4, 1)));  // 0x82
    CHECK(rec.events == Events{"begin msg=text op=text fin=1 len=5", "data a"});
    REQUIRE(decoder.feed(std::span{buf}.subspan(5)));
    CHECK(rec.events ==
          Events{"begin msg=text op=text fin=1 len=5", "data a\\xE2\\x82\\xACb", "end fin=1"});
    // Split the same way inside a fragment that ends without FIN: the held bytes belong to
    // that frame and are delivered before its end.
    CHECK(decode_every_split(concat({wire(kText, "a\xE2\x82", true), wire(kFin, "\xAC", true)}),
                             server()) ==
          Events{"begin msg=text op=text fin=0 len=3", "data a\\xE2\\x82", "end fin=0",
                 "begin msg=text op=cont fin=1 len=1", "data \\xAC", "end fin=1"});
}

TEST_CASE("decoder: each text message starts with a fresh UTF-8 state") {
    // An invalid message fails the decoder, so check that a binary message in between does
    // not carry state and that a new text message is validated from a boundary.
    const Bytes input =
        concat({wire(kFin | kText, "\xC3\xA9", true), wire(kFin | kBinary, "\xC3", true),
                wire(kFin | kText, "\xA9", true)});
    CHECK(decode_every_split(input, server()) ==
          Events{"begin msg=text op=text fin=1 len=2", "data \\xC3\\xA9", "end fin=1",
                 "begin msg=binary op=binary fin=1 len=1", "data \\xC3", "end fin=1",
                 "begin msg=text op=text fin=1 len=1", "error invalid_utf8"});
}

TEST_CASE("decoder: close codes follow RFC 6455 section 7.4") {
    const std::vector<std::uint16_t> valid{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                           1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    const std::vector<std::uint16_t> invalid{0,    999,  1004, 1005, 1006, 1015,
                                             1016, 1100, 2000, 2999, 5000, 65535};
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        for (std::uint16_t code : valid) {
            CAPTURE(code);
            CHECK(decode_every_split(wire(kFin | kClose, close_body(code, "bye"), m),
                                     options_for(role)) ==
                  Events{"close " + std::to_string(code) + " bye"});
        }
        for (std::uint16_t code : invalid) {
            CAPTURE(code);
            CHECK(decode_every_split(wire(kFin | kClose, close_body(code, ""), m),
                                     options_for(role)) == Events{"error protocol_error"});
        }
    }
}

TEST_CASE("decoder: close payload of one byte is a protocol error") {
    CHECK(decode_every_split(wire(kFin | kClose, "\x03", true), server()) ==
          Events{"error protocol_error"});
    CHECK(decode_every_split(wire(kFin | kClose, "\x03", false), client()) ==
          Events{"error protocol_error"});
}

TEST_CASE("decoder: close reason that is not UTF-8 is invalid_utf8") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        CHECK(decode_every_split(wire(kFin | kClose, close_body(1000, "ok\xFF"), m),
                                 options_for(role)) == Events{"error invalid_utf8"});
        CHECK(decode_every_split(wire(kFin | kClose, close_body(1000, "\xE2\x82"), m),
                                 options_for(role)) == Events{"error invalid_utf8"});
        // A 123-byte reason with multi-byte characters is fine.
        std::string reason;
        while (reason.size() < 121) {
            reason += "\xC3\xA9";
        }
        reason += "!";
        CHECK(decode_every_split(wire(kFin | kClose, close_body(4000, reason), m),
                                 options_for(role)) ==
              Events{"close 4000 " + escape(bytes_of(reason))});
    }
}

TEST_CASE("decoder: everything after a close frame is ignored") {
    for (Role role : {Role::Server, Role::Client}) {
        const bool m = role == Role::Server;
        const Bytes input =
            concat({wire(kText, "a", m), wire(kFin | kClose, close_body(1001, ""), m),
                    wire(kFin | kText, "after", m), bytes_of("\xFF\xFF garbage")});
        CHECK(decode_every_split(input, options_for(role)) ==
              Events{"begin msg=text op=text fin=0 len=1", "data a", "end fin=0", "close 1001 "});
    }
    Bytes input = concat({wire(kFin | kClose, "", true), bytes_of("\x70garbage")});
    Recorder rec;
    Decoder decoder(server(), rec);
    CHECK(!decoder.closed());
    auto r = decoder.feed(input);
    REQUIRE(r);
    CHECK(*r == input.size());
    CHECK(decoder.closed());
    Bytes more = bytes_of("more");
    auto r2 = decoder.feed(more);
    REQUIRE(r2);
    CHECK(*r2 == more.size());
    CHECK(rec.events == Events{"close 1005 "});
}

TEST_CASE("decoder: errors are sticky") {
    Bytes bad = wire(kFin | 0x3, "", true);
    Recorder rec;
    Decoder decoder(server(), rec);
    auto r = decoder.feed(bad);
    REQUIRE(!r);
    Bytes good = wire(kFin | kText, "ok", true);
    auto again = decoder.feed(good);
    REQUIRE(!again);
    CHECK(again.error().code == core::Code::ProtocolError);
    CHECK(again.error().context == r.error().context);
    CHECK(rec.events.empty());
}

TEST_CASE("decoder: mid_message tracks partial frames and fragmented messages") {
    Bytes input = concat({wire(kText, "ab", true), wire(kFin, "c", true)});
    Recorder rec;
    Decoder decoder(server(), rec);
    CHECK(!decoder.mid_message());
    REQUIRE(decoder.feed(std::span{input}.first(1)));
    CHECK(decoder.mid_message()); // partial header
    REQUIRE(decoder.feed(std::span{input}.subspan(1, 7)));
    CHECK(decoder.mid_message()); // first fragment complete, message not
    REQUIRE(decoder.feed(std::span{input}.subspan(8)));
    CHECK(!decoder.mid_message());
}

TEST_CASE("decoder: stop() returns right after the callback and resumes there") {
    const Bytes input =
        concat({wire(kFin | kPing, "p1", true), wire(kFin | kText, "", true),
                wire(kFin | kBinary, "xyz", true), wire(kFin | kClose, close_body(1000, ""), true),
                bytes_of("ignored")});
    const std::size_t ping_end = 8;
    const std::size_t empty_text_end = ping_end + 6;
    const std::size_t binary_header_end = empty_text_end + 6;
    const std::size_t binary_end = binary_header_end + 3;
    const std::size_t close_end = binary_end + 8;

    Bytes buf = input;
    Recorder rec;
    Decoder decoder(server(), rec);
    rec.decoder = &decoder;
    std::span<std::byte> rest{buf};
    auto feed = [&](std::string stop_on) {
        rec.stop_on = std::move(stop_on);
        auto r = decoder.feed(rest);
        REQUIRE(r);
        rest = rest.subspan(*r);
        return buf.size() - rest.size();
    };
    CHECK(feed("ping") == ping_end);
    CHECK(rec.events == Events{"ping p1"});
    CHECK(feed("begin") == empty_text_end);
    CHECK(feed("end") == empty_text_end); // the zero-length frame ends without input
    CHECK(feed("begin") == binary_header_end);
    CHECK(feed("data") == binary_end);
    CHECK(feed("end") == binary_end);
    CHECK(feed("close") == close_end);
    CHECK(decoder.closed());
    CHECK(feed("") == input.size());
    CHECK(rec.events == Events{"ping p1", "begin msg=text op=text fin=1 len=0", "end fin=1",
                               "begin msg=binary op=binary fin=1 len=3", "data xyz", "end fin=1",
                               "close 1000 "});
}

TEST_CASE("regression: an empty feed inside a control frame is a no-op (issue 5, fuzz)") {
    // The ws_decoder fuzz target found memcpy(dst, nullptr, 0) here: an empty span has a null
    // data pointer, and the control payload path copied from it (UBSan: nonnull argument).
    const Bytes input = wire(kFin | kClose, close_body(1000, "bye"), true);
    Bytes buf = input;
    Recorder rec;
    Decoder decoder(server(), rec);
    auto first = decoder.feed(std::span{buf}.first(8)); // header + 2 payload bytes
    REQUIRE(first);
    CHECK(*first == 8);
    auto empty = decoder.feed({});
    REQUIRE(empty);
    CHECK(*empty == 0);
    CHECK(rec.events.empty());
    auto rest = decoder.feed(std::span{buf}.subspan(8));
    REQUIRE(rest);
    CHECK(rec.events == Events{"close 1000 bye"});
}

TEST_CASE("decoder: stop() is cleared by the next feed") {
    Bytes input = concat({wire(kFin | kPing, "a", true), wire(kFin | kPing, "b", true)});
    Recorder rec;
    Decoder decoder(server(), rec);
    decoder.stop(); // before feeding: has no effect on the next feed
    auto r = decoder.feed(input);
    REQUIRE(r);
    CHECK(*r == input.size());
    CHECK(rec.events == Events{"ping a", "ping b"});
}

TEST_CASE("decoder: encoder output round-trips through the decoder") {
    for (std::size_t n :
         std::initializer_list<std::size_t>{0, 1, 125, 126, 127, 65535, 65536, 70000}) {
        CAPTURE(n);
        std::string payload(n, '\0');
        for (std::size_t i = 0; i < n; ++i) {
            payload[i] = static_cast<char>('a' + (i * 7) % 26);
        }
        const auto bytes = std::as_bytes(std::span{payload});
        const std::string body = "data " + payload;
        const Events expected =
            n == 0 ? Events{"begin msg=text op=text fin=1 len=0", "end fin=1"}
                   : Events{"begin msg=text op=text fin=1 len=" + std::to_string(n), body,
                            "end fin=1"};
        const std::string masked = encode_frame(true, Opcode::Text, bytes, &kKey);
        const std::string plain = encode_frame(true, Opcode::Text, bytes, nullptr);
        const auto opt = options_for(Role::Server, 1 << 20);
        CHECK(decode_every_split(bytes_of(masked), opt) == expected);
        CHECK(decode_every_split(bytes_of(plain), options_for(Role::Client, 1 << 20)) == expected);
    }
}

TEST_CASE("decoder: encoded control frames and close payloads round-trip") {
    const Bytes ping = bytes_of("ping!");
    const std::string close = close_payload(1008, "policy");
    const std::string input =
        encode_frame(true, Opcode::Ping, ping, &kKey) +
        encode_frame(true, Opcode::Pong, {}, &kKey) +
        encode_frame(true, Opcode::Close, std::as_bytes(std::span{close}), &kKey);
    CHECK(decode_every_split(bytes_of(input), server()) ==
          Events{"ping ping!", "pong ", "close 1008 policy"});
    const std::string no_status = close_payload(close_code::kNoStatus, "ignored");
    CHECK(decode_every_split(bytes_of(encode_frame(true, Opcode::Close,
                                                   std::as_bytes(std::span{no_status}), nullptr)),
                             client()) == Events{"close 1005 "});
}

} // namespace
} // namespace proxy::ws
