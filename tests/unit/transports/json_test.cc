// Tests for transports/json.cc: the strict reader's accepted syntax and every error with its
// offset (RFC 8259 §6, §7, §8.2), writer→reader round trips, and every prefix of a valid
// document rejected cleanly. The string writer's exact output is tested where it lives, in
// tests/unit/proxy/core/text_test.cc.

#include "transports/json.h"

#include <cstdint>
#include <doctest/doctest.h>
#include <random>
#include <string>
#include <string_view>

namespace transports::json {
namespace {

using proxy::core::Code;
using proxy::core::Side;
using namespace std::string_literals;

std::string quoted(std::string_view s) {
    std::string out;
    append_string(out, s);
    return out;
}

// Reads one whole document that is a single string.
proxy::core::Result<std::string> parse_string_doc(std::string_view doc) {
    Reader reader(doc);
    auto s = reader.read_string();
    if (!s) {
        return s;
    }
    if (auto end = reader.expect_end(); !end) {
        return proxy::core::Unexpected{end.error()};
    }
    return s;
}

template <class T> void check_error(const proxy::core::Result<T>& r, std::string_view context) {
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Code::BadRequest);
    CHECK(r.error().side == Side::Client);
    CHECK(r.error().context == context);
}

// Appends code point `cp` as UTF-8 (test-local, independent of the reader's encoder).
void put_utf8(std::string& s, std::uint32_t cp) {
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

TEST_CASE("json: append_uint writes plain decimal") {
    std::string out;
    append_uint(out, 0);
    out += ',';
    append_uint(out, 1000);
    out += ',';
    append_uint(out, UINT64_MAX);
    CHECK(out == "0,1000,18446744073709551615");
}

TEST_CASE("json: read_string decodes every escape") {
    CHECK(*parse_string_doc(R"("")") == "");
    CHECK(*parse_string_doc(R"("\"\\\/\b\f\n\r\t")") == "\"\\/\b\f\n\r\t");
    CHECK(*parse_string_doc(R"("\u0041\u00e9\u00E9\u20ac")") == "A\xc3\xa9\xc3\xa9\xe2\x82\xac");
    CHECK(*parse_string_doc(R"("\u0000")") == "\0"s);
    CHECK(*parse_string_doc(R"("\uD83D\uDE00")") == "\xf0\x9f\x98\x80");
    CHECK(*parse_string_doc(R"("\udbff\udfff")") == "\xf4\x8f\xbf\xbf"); // U+10FFFF
    CHECK(*parse_string_doc(R"("\ud800\udc00")") == "\xf0\x90\x80\x80"); // U+10000
    CHECK(*parse_string_doc("\"raw caf\xc3\xa9 \xf0\x9f\x98\x80 \x7f\"") ==
          "raw caf\xc3\xa9 \xf0\x9f\x98\x80 \x7f");
    CHECK(*parse_string_doc(" \t\r\n\"x\" \t\r\n") == "x");
}

TEST_CASE("json: read_string rejects each malformed string at the offending byte") {
    check_error(parse_string_doc(""), "offset 0: expected string");
    check_error(parse_string_doc("'x'"), "offset 0: expected string");
    check_error(parse_string_doc("\"abc"), "offset 4: unterminated string");
    check_error(parse_string_doc("\"abc\\"), "offset 4: unterminated string");
    check_error(parse_string_doc("\"a\nb\""), "offset 2: unescaped control character in string");
    check_error(parse_string_doc("\"a\tb\""), "offset 2: unescaped control character in string");
    check_error(parse_string_doc("\"a\0b\""s), "offset 2: unescaped control character in string");
    check_error(parse_string_doc(R"("a\x")"), "offset 2: invalid escape");
    check_error(parse_string_doc(R"("a\U0041")"), "offset 2: invalid escape");
    check_error(parse_string_doc(R"("a\'")"), "offset 2: invalid escape");
    check_error(parse_string_doc(R"("\u12G4")"), "offset 1: invalid \\u escape");
    check_error(parse_string_doc(R"("\u12")"), "offset 1: invalid \\u escape");
    check_error(parse_string_doc(R"("\u)"), "offset 1: invalid \\u escape");
    // Surrogates: a high one must be followed at once by an escaped low one.
    check_error(parse_string_doc(R"("\ud800")"), "offset 1: lone surrogate");
    check_error(parse_string_doc(R"("x\ud800y")"), "offset 2: lone surrogate");
    check_error(parse_string_doc(R"("\ud800\u0041")"), "offset 1: lone surrogate");
    check_error(parse_string_doc(R"("\ud800\ud800")"), "offset 1: lone surrogate");
    check_error(parse_string_doc(R"("\udc00")"), "offset 1: lone surrogate");
    check_error(parse_string_doc(R"("\udfff\ud800")"), "offset 1: lone surrogate");
    check_error(parse_string_doc(R"("\ud800\n")"), "offset 1: lone surrogate");
    check_error(parse_string_doc(R"("\ud800\u12")"), "offset 7: invalid \\u escape");
    // Raw bytes must be UTF-8 (RFC 8259 §8.1).
    check_error(parse_string_doc("\"ab\xff\""), "offset 3: invalid UTF-8");
    check_error(parse_string_doc("\"\xc0\xaf\""), "offset 1: invalid UTF-8");         // overlong
    check_error(parse_string_doc("\"\xed\xa0\x80\""), "offset 2: invalid UTF-8");     // surrogate
    check_error(parse_string_doc("\"\xf4\x90\x80\x80\""), "offset 2: invalid UTF-8"); // > U+10FFFF
    check_error(parse_string_doc("\"\xe2\x82\""), "offset 3: invalid UTF-8 (truncated sequence)");
    check_error(parse_string_doc("\"\xe2\x82\\n\""),
                "offset 3: invalid UTF-8 (truncated sequence)");
    check_error(parse_string_doc("\"\xe2\x82"), "offset 3: invalid UTF-8 (truncated sequence)");
    check_error(parse_string_doc("\"\xe2\x82\n"), "offset 3: invalid UTF-8 (truncated sequence)");
    check_error(parse_string_doc("\"a\" b"), "offset 4: unexpected data after the document");
}

TEST_CASE("json: read_uint accepts JSON integers and nothing else") {
    const auto read = [](std::string_view doc) {
        Reader reader(doc);
        return reader.read_uint();
    };
    CHECK(*read("0") == 0);
    CHECK(*read(" 17") == 17);
    CHECK(*read("18446744073709551615") == UINT64_MAX);
    CHECK(*read("7,") == 7);
    check_error(read("18446744073709551616"), "offset 0: number out of range");
    check_error(read(" 99999999999999999999999"), "offset 1: number out of range");
    check_error(read("017"), "offset 0: leading zero in number");
    check_error(read("00"), "offset 0: leading zero in number");
    check_error(read("-1"), "offset 0: expected unsigned integer");
    check_error(read("+1"), "offset 0: expected unsigned integer");
    check_error(read("1.0"), "offset 0: expected unsigned integer");
    check_error(read("1e3"), "offset 0: expected unsigned integer");
    check_error(read("0E0"), "offset 0: expected unsigned integer");
    check_error(read("\"1\""), "offset 0: expected unsigned integer");
    check_error(read(""), "offset 0: expected unsigned integer");
    check_error(read("NaN"), "offset 0: expected unsigned integer");
}

TEST_CASE("json: a huge number costs nothing") {
    const std::string digits(1 << 20, '9');
    Reader reader(digits);
    check_error(reader.read_uint(), "offset 0: number out of range");
    CHECK(reader.offset() <= 20);
}

TEST_CASE("json: punctuation helpers skip only RFC 8259 whitespace") {
    Reader reader(" \t\n\r[ , ]\f");
    CHECK(reader.try_consume('['));
    CHECK_FALSE(reader.try_consume(']'));
    CHECK(reader.expect(',').has_value());
    CHECK(*reader.expect_either(',', ']') == ']');
    CHECK(reader.offset() == 9);
    CHECK_FALSE(reader.at_end());
    check_error(reader.expect_end(), "offset 9: unexpected data after the document");
    check_error(reader.expect(':'), "offset 9: expected ':'");
    check_error(reader.expect_either(',', '}'), "offset 9: expected ',' or '}'");

    Reader nbsp("\xc2\xa0[");
    check_error(nbsp.expect('['), "offset 0: expected '['");
    Reader empty("  ");
    CHECK(empty.at_end());
    CHECK(empty.expect_end().has_value());
}

TEST_CASE("json: quote_for_log caps attacker-controlled names at a code point boundary") {
    CHECK(quote_for_log("text") == R"("text")");
    CHECK(quote_for_log("a\"b") == R"("a\"b")");
    CHECK(quote_for_log(std::string(32, 'k')) == "\"" + std::string(32, 'k') + "\"");
    CHECK(quote_for_log(std::string(33, 'k')) == "\"" + std::string(32, 'k') + "...\"");
    // 31 ASCII bytes, then a 2-byte character straddling the cut: it is left out whole.
    CHECK(quote_for_log(std::string(31, 'k') + "\xc3\xa9zz") ==
          "\"" + std::string(31, 'k') + "...\"");
}

TEST_CASE("json: append_string then read_string gives the input back") {
    std::vector<std::string> inputs = {
        "", "plain", "\"\\/", "\xe2\x80\xa8\xe2\x80\xa9", "\xf0\x9f\x98\x80", "\0\0"s};
    std::string all_ascii;
    for (int c = 0; c < 0x80; ++c) {
        all_ascii += static_cast<char>(c);
    }
    inputs.push_back(all_ascii);
    // Random valid UTF-8, weighted towards the interesting ranges.
    std::mt19937 engine(12345);
    const auto rng = [&] { return static_cast<std::uint32_t>(engine()); };
    const std::uint32_t ranges[][2] = {{0, 0x7F},        {0x80, 0x7FF},       {0x800, 0xD7FF},
                                       {0xE000, 0xFFFF}, {0x10000, 0x10FFFF}, {0x2026, 0x202A}};
    for (int n = 0; n < 200; ++n) {
        std::string s;
        const auto len = rng() % 40;
        for (std::uint32_t i = 0; i < len; ++i) {
            const auto& r = ranges[rng() % std::size(ranges)];
            put_utf8(s, r[0] + rng() % (r[1] - r[0] + 1));
        }
        inputs.push_back(s);
    }
    for (const auto& s : inputs) {
        const auto doc = quoted(s);
        const auto back = parse_string_doc(doc);
        REQUIRE(back.has_value());
        CHECK(*back == s);
        // Every proper prefix of the document is rejected without crashing.
        for (std::size_t k = 0; k < doc.size(); ++k) {
            CHECK_FALSE(parse_string_doc(doc.substr(0, k)).has_value());
        }
    }
}

TEST_CASE("json: long runs of escapes decode in linear time") {
    std::string doc = "\"";
    for (int i = 0; i < 200000; ++i) {
        doc += "\\u00e9\\ud83d\\ude00\\n";
    }
    doc += "\"";
    const auto s = parse_string_doc(doc);
    REQUIRE(s.has_value());
    CHECK(s->size() == 200000u * 7u);
}

} // namespace
} // namespace transports::json
