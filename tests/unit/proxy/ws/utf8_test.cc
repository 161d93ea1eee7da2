// Tests for proxy/ws/utf8.cc, after RFC 3629 and Markus Kuhn's UTF-8 decoder stress test.
// Every vector is fed whole, split at every offset and byte by byte; the validator must fail
// at the same byte each time (fail fast) and agree on whether the input ends on a boundary.

#include "proxy/ws/utf8.h"

#include <doctest/doctest.h>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxy::ws {
namespace {

std::span<const std::byte> as_span(std::string_view s) { return std::as_bytes(std::span{s}); }

// What a split feed concluded: the offset of the first rejected byte, or nullopt when valid so
// far; and whether the input ends on a code point boundary.
struct Verdict {
    std::optional<std::size_t> fail_at;
    bool complete = false;
    bool operator==(const Verdict&) const = default;
};

// Feeds `input` cut at the ascending `cuts`. The offset of the first bad byte is recovered
// from the piece that failed by feeding a copy of the previous state byte by byte.
Verdict run(std::string_view input, const std::vector<std::size_t>& cuts) {
    Utf8Validator v;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t end = i < cuts.size() ? cuts[i] : input.size();
        const auto piece = as_span(input.substr(start, end - start));
        Utf8Validator before = v;
        if (!v.feed(piece)) {
            std::size_t k = 0;
            while (before.feed(piece.subspan(k, 1))) {
                ++k;
            }
            const bool sticky = v.failed() && !v.feed(as_span("a")) && !v.complete();
            return Verdict{sticky ? std::optional<std::size_t>{start + k} : std::nullopt, false};
        }
        start = end;
    }
    return Verdict{std::nullopt, v.complete()};
}

// Checks one vector: `fail_at` is the offset of the first invalid byte (nullopt when the input
// is valid so far) and `complete` whether a message could end here.
void check_vector(std::string_view input, std::optional<std::size_t> fail_at, bool complete) {
    const Verdict expected{fail_at, fail_at ? false : complete};
    CHECK(run(input, {}) == expected);
    for (std::size_t k = 0; k <= input.size(); ++k) {
        if (run(input, {k}) != expected) {
            INFO("split at ", k);
            CHECK(run(input, {k}) == expected);
            break;
        }
    }
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k < input.size(); ++k) {
        every.push_back(k);
    }
    CHECK(run(input, every) == expected);
    CHECK(is_valid_utf8(as_span(input)) == (!fail_at && complete));
}

void valid(std::string_view input) { check_vector(input, std::nullopt, true); }
void incomplete(std::string_view input) { check_vector(input, std::nullopt, false); }
void fails_at(std::string_view input, std::size_t offset) { check_vector(input, offset, false); }

// Reference decoder for the exhaustive comparisons: decodes one sequence at a time by the
// RFC 3629 §4 grammar's arithmetic definition rather than by byte ranges.
bool reference_valid(const std::vector<unsigned char>& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char b = s[i];
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if (b < 0x80) {
            ++i;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            n = 1;
            cp = b & 0x1Fu;
        } else if ((b & 0xF0) == 0xE0) {
            n = 2;
            cp = b & 0x0Fu;
        } else if ((b & 0xF8) == 0xF0) {
            n = 3;
            cp = b & 0x07u;
        } else {
            return false;
        }
        if (i + n >= s.size()) { // truncated
            return false;
        }
        for (std::size_t k = 1; k <= n; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        const std::uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

std::string encode(std::uint32_t cp) {
    std::string s;
    auto put = [&s](std::uint32_t v) { s.push_back(static_cast<char>(v)); };
    if (cp < 0x80) {
        put(cp);
    } else if (cp < 0x800) {
        put(0xC0 | (cp >> 6));
        put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        put(0xE0 | (cp >> 12));
        put(0x80 | ((cp >> 6) & 0x3F));
        put(0x80 | (cp & 0x3F));
    } else {
        put(0xF0 | (cp >> 18));
        put(0x80 | ((cp >> 12) & 0x3F));
        put(0x80 | ((cp >> 6) & 0x3F));
        put(0x80 | (cp & 0x3F));
    }
    return s;
}

} // namespace

TEST_CASE("utf8: empty input, ASCII and a correct text are valid") {
    valid("");
    valid("Hello, world! 0123456789 abcdefghijklmnopqrstuvwxyz");
    valid("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"); // κόσμε
    valid(std::string(1, '\0') + "\x7F");
}

TEST_CASE("utf8: first and last code point of each sequence length are valid") {
    valid(std::string_view("\x00", 1));
    valid("\xC2\x80");         // U+0080
    valid("\xE0\xA0\x80");     // U+0800
    valid("\xF0\x90\x80\x80"); // U+10000
    valid("\x7F");             // U+007F
    valid("\xDF\xBF");         // U+07FF
    valid("\xEF\xBF\xBF");     // U+FFFF
    valid("\xF4\x8F\xBF\xBF"); // U+10FFFF
    valid("\xED\x9F\xBF");     // U+D7FF, just below the surrogates
    valid("\xEE\x80\x80");     // U+E000, just above them
    valid("\xEF\xBF\xBD");     // U+FFFD
    valid("\xEF\xBF\xBE");     // U+FFFE, a noncharacter but valid UTF-8
    valid("\xF0\x9F\x98\x80"); // U+1F600
    valid("\xF3\xBF\xBF\xBF"); // U+FFFFF
}

TEST_CASE("utf8: values above U+10FFFF fail at the first byte that proves it") {
    fails_at("\xF4\x90\x80\x80", 1); // U+110000: F4 90 fails at 90
    fails_at("\xF4\xBF\xBF\xBF", 1);
    fails_at("\xF5\x80\x80\x80", 0); // F5..FF never appear
    fails_at("\xF7\xBF\xBF\xBF", 0);
    fails_at("\xF8\x88\x80\x80\x80", 0);     // 5-byte form
    fails_at("\xFC\x84\x80\x80\x80\x80", 0); // 6-byte form
    fails_at("\xFE", 0);
    fails_at("\xFF", 0);
    fails_at("ab\xFE\xFE\xFF\xFF", 2);
}

TEST_CASE("utf8: surrogates fail at the second byte") {
    fails_at("\xED\xA0\x80", 1); // U+D800
    fails_at("\xED\xAD\xBF", 1); // U+DB7F
    fails_at("\xED\xAE\x80", 1);
    fails_at("\xED\xAF\xBF", 1);
    fails_at("\xED\xB0\x80", 1); // U+DC00
    fails_at("\xED\xBE\x80", 1);
    fails_at("\xED\xBF\xBF", 1);             // U+DFFF
    fails_at("\xED\xA0\x80\xED\xB0\x80", 1); // a paired surrogate is still invalid
    fails_at("x\xED\xBF\xBF", 2);
}

TEST_CASE("utf8: overlong forms fail at the first byte that proves it") {
    fails_at("\xC0\xAF", 0); // C0 and C1 always start an overlong form
    fails_at("\xC1\xBF", 0);
    fails_at("\xC0\x80", 0);     // overlong NUL
    fails_at("\xE0\x80\xAF", 1); // '/' in three bytes
    fails_at("\xE0\x9F\xBF", 1); // U+07FF in three bytes
    fails_at("\xE0\x80\x80", 1);
    fails_at("\xF0\x80\x80\xAF", 1); // '/' in four bytes
    fails_at("\xF0\x8F\xBF\xBF", 1); // U+FFFF in four bytes
    fails_at("\xF0\x80\x80\x80", 1);
    fails_at("\xF8\x80\x80\x80\xAF", 0); // five bytes
}

TEST_CASE("utf8: unexpected continuation bytes fail where they stand") {
    fails_at("\x80", 0);
    fails_at("\xBF", 0);
    fails_at("a\x80\xBF", 1);
    fails_at("\xC2\x80\x80", 2);
    fails_at("\xEF\xBF\xBF\xBF", 3);
    fails_at("\xF0\x9F\x98\x80\x80", 4);
}

TEST_CASE("utf8: a lead byte followed by a non-continuation fails at that byte") {
    fails_at("\xC2 ", 1);
    fails_at("\xC2\xC2\x80", 1);
    fails_at("\xE1\x80 ", 2);
    fails_at("\xE1 \x80", 1);
    fails_at("\xF1\x80\x80 ", 3);
    fails_at("\xF1\x80\x80\xF1", 3);
    fails_at("\xE0\xA0\x7F", 2);
}

TEST_CASE("utf8: input ending inside a sequence is valid so far but not complete") {
    incomplete("\xC2");
    incomplete("\xE1\x80");
    incomplete("\xE0\xA0");
    incomplete("\xED\x9F");
    incomplete("\xF0\x90\x80");
    incomplete("\xF4\x8F\xBF");
    incomplete("Hello \xF1");
}

TEST_CASE("utf8: the 8-byte ASCII fast path finds a bad byte at any position") {
    for (std::size_t len : std::initializer_list<std::size_t>{1, 7, 8, 9, 15, 16, 17, 40}) {
        for (std::size_t bad = 0; bad < len; ++bad) {
            std::string s(len, 'a');
            s[bad] = '\xFF';
            CAPTURE(len);
            CAPTURE(bad);
            fails_at(s, bad);
        }
    }
    // Multi-byte characters between long ASCII runs, in every alignment.
    for (std::size_t pad = 0; pad < 9; ++pad) {
        valid(std::string(pad, 'x') + "\xE2\x82\xAC" + std::string(17, 'y') + "\xF0\x9F\x98\x80" +
              std::string(pad, 'z'));
        fails_at(std::string(pad, 'x') + "\xE2\x82\xAC" + std::string(9, 'y') + "\xE2\x82" +
                     std::string(9, 'y'),
                 pad + 3 + 9 + 2);
    }
}

TEST_CASE("utf8: the validator stays failed and reset starts a new text") {
    Utf8Validator v;
    CHECK(v.complete());
    CHECK(v.feed(as_span("\xE2\x82")));
    CHECK_FALSE(v.complete());
    CHECK_FALSE(v.feed(as_span("x")));
    CHECK(v.failed());
    CHECK_FALSE(v.feed(as_span("")));
    CHECK_FALSE(v.feed(as_span("plain ascii text")));
    v.reset();
    CHECK_FALSE(v.failed());
    CHECK(v.feed(as_span("\xE2\x82\xAC")));
    CHECK(v.complete());
}

TEST_CASE("utf8: every code point encodes to valid UTF-8 except the surrogates") {
    int wrong = 0;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const std::string s = encode(cp);
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (is_valid_utf8(as_span(s)) == surrogate) {
            ++wrong;
        }
    }
    CHECK(wrong == 0);
}

TEST_CASE("utf8: all 1- and 2-byte inputs and 3-byte inputs with a lead byte agree with a "
          "reference decoder") {
    int wrong = 0;
    std::vector<unsigned char> s;
    for (unsigned a = 0; a < 256; ++a) {
        s = {static_cast<unsigned char>(a)};
        wrong += is_valid_utf8(std::as_bytes(std::span{s})) != reference_valid(s) ? 1 : 0;
        for (unsigned b = 0; b < 256; ++b) {
            s = {static_cast<unsigned char>(a), static_cast<unsigned char>(b)};
            wrong += is_valid_utf8(std::as_bytes(std::span{s})) != reference_valid(s) ? 1 : 0;
        }
    }
    for (unsigned a = 0xC0; a < 256; ++a) {
        for (unsigned b = 0x70; b < 0xD0; ++b) {
            for (unsigned c = 0x70; c < 0xD0; ++c) {
                s = {static_cast<unsigned char>(a), static_cast<unsigned char>(b),
                     static_cast<unsigned char>(c)};
                wrong += is_valid_utf8(std::as_bytes(std::span{s})) != reference_valid(s) ? 1 : 0;
            }
        }
    }
    CHECK(wrong == 0);
}

} // namespace proxy::ws
