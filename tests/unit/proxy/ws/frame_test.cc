// Tests for proxy/ws/frame.cc: header encoding, masking, close payloads and the close code
// table. Round trips through the decoder live in decoder_test.cc next to its split helper.

#include "proxy/ws/frame.h"

#include <doctest/doctest.h>
#include <string>
#include <vector>

namespace proxy::ws {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::array<std::byte, 4> kKey{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21},
                                        std::byte{0x3d}};

Bytes header_bytes(bool fin, Opcode op, std::uint64_t length,
                   const std::array<std::byte, 4>* mask) {
    std::array<std::byte, kMaxHeaderSize> out{};
    const std::size_t n = encode_header(out, fin, op, length, mask);
    Bytes b;
    for (std::size_t i = 0; i < n; ++i) {
        b.push_back(std::to_integer<std::uint8_t>(out[i]));
    }
    return b;
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::span<const std::byte> as_span(std::string_view s) { return std::as_bytes(std::span{s}); }

} // namespace

TEST_CASE("frame: encode_header uses the minimal length encoding at every boundary") {
    CHECK(header_bytes(true, Opcode::Text, 0, nullptr) == Bytes{0x81, 0x00});
    CHECK(header_bytes(true, Opcode::Binary, 125, nullptr) == Bytes{0x82, 0x7D});
    CHECK(header_bytes(false, Opcode::Text, 126, nullptr) == Bytes{0x01, 0x7E, 0x00, 0x7E});
    CHECK(header_bytes(true, Opcode::Continuation, 127, nullptr) == Bytes{0x80, 0x7E, 0x00, 0x7F});
    CHECK(header_bytes(true, Opcode::Binary, 65535, nullptr) == Bytes{0x82, 0x7E, 0xFF, 0xFF});
    CHECK(header_bytes(true, Opcode::Binary, 65536, nullptr) ==
          Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0});
    CHECK(header_bytes(true, Opcode::Binary, 0x0102030405060708ULL, nullptr) ==
          Bytes{0x82, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("frame: encode_header appends the mask key and sets the MASK bit") {
    CHECK(header_bytes(true, Opcode::Ping, 5, &kKey) == Bytes{0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d});
    CHECK(header_bytes(true, Opcode::Binary, 256, &kKey) ==
          Bytes{0x82, 0xFE, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d});
    const Bytes big = header_bytes(true, Opcode::Binary, 70000, &kKey);
    CHECK(big.size() == kMaxHeaderSize);
    CHECK(big[1] == 0xFF);
}

TEST_CASE("frame: encode_frame reproduces the RFC 6455 section 5.7 examples") {
    CHECK(bytes_of(encode_frame(true, Opcode::Text, as_span("Hello"), nullptr)) ==
          Bytes{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    CHECK(bytes_of(encode_frame(true, Opcode::Text, as_span("Hello"), &kKey)) ==
          Bytes{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    CHECK(bytes_of(encode_frame(false, Opcode::Text, as_span("Hel"), nullptr)) ==
          Bytes{0x01, 0x03, 0x48, 0x65, 0x6c});
    CHECK(bytes_of(encode_frame(true, Opcode::Continuation, as_span("lo"), nullptr)) ==
          Bytes{0x80, 0x02, 0x6c, 0x6f});
    CHECK(bytes_of(encode_frame(true, Opcode::Pong, as_span("Hello"), &kKey)) ==
          Bytes{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    const std::string b256(256, 'x');
    const std::string frame = encode_frame(true, Opcode::Binary, as_span(b256), nullptr);
    CHECK(frame.size() == 4 + 256);
    CHECK(bytes_of(frame.substr(0, 4)) == Bytes{0x82, 0x7E, 0x01, 0x00});
    CHECK(encode_frame(true, Opcode::Close, {}, nullptr) == std::string("\x88\x00", 2));
}

TEST_CASE("frame: apply_mask matches a byte-wise XOR for every length and key offset") {
    for (std::size_t n = 0; n <= 80; ++n) {
        for (std::uint64_t offset = 0; offset < 8; ++offset) {
            std::vector<std::byte> data(n);
            for (std::size_t i = 0; i < n; ++i) {
                data[i] = std::byte{static_cast<std::uint8_t>(i * 31 + 7)};
            }
            std::vector<std::byte> expected = data;
            for (std::size_t i = 0; i < n; ++i) {
                expected[i] ^= kKey[(offset + i) % 4];
            }
            apply_mask(data, kKey, offset);
            if (data != expected) {
                CAPTURE(n);
                CAPTURE(offset);
                CHECK(data == expected);
            }
        }
    }
}

TEST_CASE("frame: apply_mask in pieces equals one pass and is its own inverse") {
    std::vector<std::byte> original(1000);
    for (std::size_t i = 0; i < original.size(); ++i) {
        original[i] = std::byte{static_cast<std::uint8_t>(i * 13)};
    }
    std::vector<std::byte> whole = original;
    apply_mask(whole, kKey, 0);
    for (std::size_t cut = 0; cut <= original.size(); cut += 7) {
        std::vector<std::byte> pieces = original;
        std::span<std::byte> all{pieces};
        apply_mask(all.first(cut), kKey, 0);
        apply_mask(all.subspan(cut), kKey, cut);
        if (pieces != whole) {
            CAPTURE(cut);
            CHECK(pieces == whole);
        }
    }
    apply_mask(whole, kKey, 0);
    CHECK(whole == original);
}

TEST_CASE("frame: close_payload is a big-endian code then the reason") {
    CHECK(close_payload(1000, "") == std::string("\x03\xE8", 2));
    CHECK(close_payload(4001, "bye") == std::string("\x0F\xA1"
                                                    "bye",
                                                    5));
    CHECK(close_payload(close_code::kNoStatus, "dropped").empty());
}

TEST_CASE("frame: close_payload truncates the reason on a UTF-8 boundary within 125 bytes") {
    const std::string fits(123, 'a');
    CHECK(close_payload(1000, fits).size() == 125);
    CHECK(close_payload(1000, fits + "b").substr(2) == fits);
    // 122 ASCII bytes then a 2-byte character straddling byte 123: the character goes.
    const std::string straddle = std::string(122, 'a') + "\xC3\xA9";
    CHECK(close_payload(1000, straddle).substr(2) == std::string(122, 'a'));
    // A 4-byte character ending exactly at 123 stays; one byte later it goes.
    const std::string emoji = "\xF0\x9F\x98\x80";
    CHECK(close_payload(1000, std::string(119, 'a') + emoji + "z").substr(2) ==
          std::string(119, 'a') + emoji);
    CHECK(close_payload(1000, std::string(120, 'a') + emoji).substr(2) == std::string(120, 'a'));
}

TEST_CASE("frame: close code table follows RFC 6455 section 7.4") {
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                     3001, 4000, 4999}) {
        CAPTURE(code);
        CHECK(is_valid_close_code(static_cast<std::uint16_t>(code)));
    }
    for (int code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        CAPTURE(code);
        CHECK_FALSE(is_valid_close_code(static_cast<std::uint16_t>(code)));
    }
    int valid = 0;
    for (unsigned code = 0; code <= 0xFFFF; ++code) {
        valid += is_valid_close_code(static_cast<std::uint16_t>(code)) ? 1 : 0;
    }
    CHECK(valid == 4 + 8 + 2000);
}

TEST_CASE("frame: close_code_for maps codec errors to close codes") {
    CHECK(close_code_for(core::Code::ProtocolError) == 1002);
    CHECK(close_code_for(core::Code::InvalidUtf8) == 1007);
    CHECK(close_code_for(core::Code::MessageTooBig) == 1009);
    CHECK(close_code_for(core::Code::PolicyViolation) == 1008);
    CHECK(close_code_for(core::Code::Internal) == 1011);
    CHECK(close_code_for(core::Code::Io) == 1011);
}

TEST_CASE("frame: is_control is true only for close, ping and pong") {
    CHECK(is_control(Opcode::Close));
    CHECK(is_control(Opcode::Ping));
    CHECK(is_control(Opcode::Pong));
    CHECK_FALSE(is_control(Opcode::Text));
    CHECK_FALSE(is_control(Opcode::Binary));
    CHECK_FALSE(is_control(Opcode::Continuation));
}

} // namespace proxy::ws
