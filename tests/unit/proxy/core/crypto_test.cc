// Tests for proxy/core/crypto.cc and proxy/core/base64.cc: RFC 4648 base64 vectors and strict
// decoding, SHA-1 vectors (FIPS 180), the random sources, and the RFC 6455 accept key built
// from them (proxy/ws/handshake.h).

#include "proxy/core/base64.h"
#include "proxy/core/crypto.h"
#include "proxy/ws/handshake.h"

#include <doctest/doctest.h>
#include <set>
#include <string>
#include <vector>

namespace proxy::core {
namespace {

std::span<const std::byte> as_span(std::string_view s) { return std::as_bytes(std::span{s}); }

std::string hex(const std::array<std::uint8_t, 20>& digest) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t b : digest) {
        out.push_back(kHex[b >> 4]);
        out.push_back(kHex[b & 0xF]);
    }
    return out;
}

struct Vector {
    std::string_view plain;
    std::string_view encoded;
};

// RFC 4648 §10.
constexpr Vector kRfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

} // namespace

TEST_CASE("crypto: websocket_accept matches the RFC 6455 section 1.3 example") {
    CHECK(ws::websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("crypto: sha1 matches the FIPS 180 test vectors") {
    CHECK(hex(sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex(sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST_CASE("crypto: base64 encodes and decodes the RFC 4648 test vectors") {
    for (const auto& v : kRfc4648) {
        CAPTURE(v.plain);
        CHECK(base64_encode(as_span(v.plain)) == v.encoded);
        const auto decoded = base64_decode(v.encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == v.plain);
    }
}

TEST_CASE("crypto: base64 round-trips every byte value and length") {
    std::string data;
    for (int i = 0; i < 300; ++i) {
        data.push_back(static_cast<char>((i * 151 + 17) & 0xFF));
    }
    for (std::size_t n = 0; n <= data.size(); ++n) {
        const std::string part = data.substr(0, n);
        const std::string enc = base64_encode(as_span(part));
        CHECK(enc.size() == (n + 2) / 3 * 4);
        const auto dec = base64_decode(enc);
        if (!dec || *dec != part) {
            CAPTURE(n);
            CHECK(dec == part);
        }
    }
    CHECK(base64_encode(as_span("\xFB\xFF\xBF")) == "+/+/");
}

TEST_CASE("crypto: base64_decode rejects malformed input") {
    const std::vector<std::string_view> malformed{
        "Zg",         // missing padding
        "Zg=",        // short group
        "Zm9vY",      // length not a multiple of 4
        "Z===",       // too much padding
        "====",       // padding only
        "=Zg=",       // padding first
        "Zg==Zg==",   // padding in the middle
        "Zm9v Zm9v",  // whitespace
        "Zm9v\nZm9v", // line break
        "Zm9vYmFy\n", // trailing newline
        "Zm-v",       // URL-safe alphabet
        "Zm_v",
        "Zh==", // non-zero pad bits (RFC 4648 §3.5)
        "Zm9=",
        "Zm\x80v", // non-ASCII
        std::string_view("Zm\0v", 4),
    };
    for (std::string_view bad : malformed) {
        CAPTURE(bad);
        CHECK_FALSE(base64_decode(bad).has_value());
    }
}

TEST_CASE("crypto: base64url uses the URL-safe alphabet without padding") {
    CHECK(base64url_encode(as_span("\xFB\xFF\xBF")) == "-_-_");
    CHECK(base64url_encode(as_span("\xFB\xFF")) == "-_8");
    CHECK(base64url_encode(as_span("f")) == "Zg");
    CHECK(base64url_encode(as_span("fo")) == "Zm8");
    CHECK(base64url_encode(as_span("foo")) == "Zm9v");
    CHECK(base64url_encode({}).empty());
}

TEST_CASE("crypto: random_bytes fills the buffer with fresh values") {
    std::array<std::byte, 32> a{};
    std::array<std::byte, 32> b{};
    random_bytes(a);
    random_bytes(b);
    CHECK(a != b);
    CHECK(a != std::array<std::byte, 32>{});
    random_bytes({}); // an empty request is fine
}

TEST_CASE("crypto: MaskSource hands out distinct keys across pool refills") {
    MaskSource source;
    std::set<std::array<std::byte, 4>> keys;
    const int draws = 3 * 1024 + 5; // three pool refills
    for (int i = 0; i < draws; ++i) {
        keys.insert(source.next());
    }
    // 3077 draws from 2^32 values: a collision has probability about 0.1%; allow a few.
    CHECK(keys.size() + 5 >= static_cast<std::size_t>(draws));
}

} // namespace proxy::core
