// Tests for proxy/core/text.cc: hex digits over every byte, percent-escapes at every position
// and near the end of the text, and the exact bytes of the JSON string writer for quotes,
// backslashes, every C0 control, DEL, non-ASCII UTF-8, U+2028/U+2029 and invalid bytes.

#include "proxy/core/text.h"

#include <doctest/doctest.h>
#include <string>
#include <string_view>

namespace proxy::core {
namespace {

using namespace std::string_literals;

constexpr char kHex[] = "0123456789abcdef";

std::string quoted(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

static_assert(hex_value('0') == 0 && hex_value('9') == 9);
static_assert(hex_value('a') == 10 && hex_value('F') == 15);
static_assert(hex_value('g') == -1 && hex_value('/') == -1 && hex_value(':') == -1);

TEST_CASE("text: hex_value accepts exactly 0-9, a-f, A-F") {
    const std::string_view digits = "0123456789abcdef";
    const std::string_view upper = "ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        const auto lower_at = digits.find(c);
        const auto upper_at = upper.find(c);
        int expected = -1;
        if (lower_at != std::string_view::npos) {
            expected = static_cast<int>(lower_at);
        } else if (upper_at != std::string_view::npos) {
            expected = 10 + static_cast<int>(upper_at);
        }
        CAPTURE(b);
        CHECK(hex_value(c) == expected);
    }
}

TEST_CASE("text: percent_escape_at decodes %XX in either case and nothing else") {
    CHECK(percent_escape_at("%2e", 0) == '.');
    CHECK(percent_escape_at("%2E", 0) == '.');
    CHECK(percent_escape_at("a/%2f", 2) == '/');
    CHECK(percent_escape_at("%5C", 0) == '\\');
    CHECK(percent_escape_at("%00", 0) == '\0');
    CHECK(percent_escape_at("%ff", 0) == '\xff');
    CHECK(percent_escape_at("%41%42", 3) == 'B');
    // Not an escape: not at '%', a non-hex digit, or cut short by the end of the text.
    CHECK_FALSE(percent_escape_at("x2e", 0));
    CHECK_FALSE(percent_escape_at("%2e", 1));
    CHECK_FALSE(percent_escape_at("%zz", 0));
    CHECK_FALSE(percent_escape_at("%2g", 0));
    CHECK_FALSE(percent_escape_at("%+1", 0));
    CHECK_FALSE(percent_escape_at("%2", 0));
    CHECK_FALSE(percent_escape_at("%", 0));
    CHECK_FALSE(percent_escape_at("a%2e", 4));
    CHECK_FALSE(percent_escape_at("", 0));
    CHECK_FALSE(percent_escape_at("%2e", std::string_view::npos));
    // A view into a longer buffer ends where the view ends.
    const std::string_view cut = std::string_view("%2e").substr(0, 2);
    CHECK_FALSE(percent_escape_at(cut, 0));
}

TEST_CASE("text: append_json_string quotes, and escapes quotes, backslashes and controls") {
    CHECK(quoted("") == R"("")");
    CHECK(quoted("plain text") == R"("plain text")");
    CHECK(quoted(R"(say "hi" \o/)") == R"("say \"hi\" \\o/")");
    CHECK(quoted("/") == R"("/")"); // the solidus needs no escape
    CHECK(quoted("\b\f\n\r\t") == R"("\b\f\n\r\t")");
    CHECK(quoted("nul\0byte"s) == R"("nul\u0000byte")");
    CHECK(quoted("\x01\x1f") == R"("\u0001\u001f")");
    CHECK(quoted("\x7f") == "\"\x7f\""); // DEL is not a control character in JSON
    std::string out = "prefix:";
    append_json_string(out, "\"");
    CHECK(out == "prefix:\"\\\"\"");
}

TEST_CASE("text: append_json_string writes every C0 control in its one form") {
    for (int b = 0; b < 0x20; ++b) {
        const std::string in(1, static_cast<char>(b));
        std::string expected;
        switch (b) {
        case '\b': expected = R"("\b")"; break;
        case '\f': expected = R"("\f")"; break;
        case '\n': expected = R"("\n")"; break;
        case '\r': expected = R"("\r")"; break;
        case '\t': expected = R"("\t")"; break;
        default: expected = R"("\u00)"s + kHex[b >> 4] + kHex[b & 0xF] + "\""; break;
        }
        CAPTURE(b);
        CHECK(quoted(in) == expected);
    }
}

TEST_CASE("text: append_json_string copies UTF-8 but escapes U+2028 and U+2029") {
    CHECK(quoted("caf\xc3\xa9 \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    CHECK(quoted("a\xe2\x80\xa8"
                 "b\xe2\x80\xa9"
                 "c") == R"("a\u2028b\u2029c")");
    // Neighbours of the two separators are copied.
    CHECK(quoted("\xe2\x80\xa7\xe2\x80\xaa") == "\"\xe2\x80\xa7\xe2\x80\xaa\"");
}

TEST_CASE("text: append_json_string copies invalid bytes unchanged, never repairs them") {
    CHECK(quoted("\xff\xfe") == "\"\xff\xfe\"");
    CHECK(quoted("a\xc3") == "\"a\xc3\"");               // truncated sequence at the end
    CHECK(quoted("\xe2\x80") == "\"\xe2\x80\"");         // a cut-off U+2028 is not escaped
    CHECK(quoted("\x80\"") == "\"\x80\\\"\"");           // a stray continuation byte, then a quote
    CHECK(quoted("\xed\xa0\x80") == "\"\xed\xa0\x80\""); // an encoded surrogate
}

} // namespace
} // namespace proxy::core
