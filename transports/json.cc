#include "transports/json.h"

#include "proxy/core/text.h"
#include "proxy/ws/utf8.h"

#include <charconv>
#include <span>

namespace transports::json {

using proxy::core::Code;
using proxy::core::fail;
using proxy::core::hex_value;
using proxy::core::Result;
using proxy::core::Side;
using proxy::core::Unexpected;

namespace {

// Appends code point `cp` (a scalar value: not a surrogate, at most U+10FFFF) as UTF-8.
void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool is_high_surrogate(std::uint32_t u) noexcept { return u >= 0xD800 && u <= 0xDBFF; }
bool is_low_surrogate(std::uint32_t u) noexcept { return u >= 0xDC00 && u <= 0xDFFF; }

} // namespace

void append_uint(std::string& out, std::uint64_t value) {
    char buf[20];
    const auto r = std::to_chars(buf, buf + sizeof(buf), value);
    out.append(buf, r.ptr);
}

std::string quote_for_log(std::string_view s) {
    constexpr std::size_t kMax = 32;
    std::string out;
    if (s.size() <= kMax) {
        append_string(out, s);
        return out;
    }
    std::size_t cut = kMax;
    // Back up to a lead byte so the quoted prefix stays valid UTF-8.
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
        --cut;
    }
    append_string(out, s.substr(0, cut));
    out.insert(out.size() - 1, "...");
    return out;
}

void Reader::skip_ws() noexcept {
    while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return;
        }
        ++pos_;
    }
}

bool Reader::at_end() noexcept {
    skip_ws();
    return pos_ == text_.size();
}

bool Reader::try_consume(char c) noexcept {
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == c) {
        ++pos_;
        return true;
    }
    return false;
}

Result<void> Reader::expect(char c) {
    if (try_consume(c)) {
        return {};
    }
    const char what[] = {'e', 'x', 'p', 'e', 'c', 't', 'e', 'd', ' ', '\'', c, '\''};
    return error_here(std::string_view(what, sizeof(what)));
}

Result<char> Reader::expect_either(char a, char b) {
    skip_ws();
    if (pos_ < text_.size() && (text_[pos_] == a || text_[pos_] == b)) {
        return text_[pos_++];
    }
    std::string what = "expected '";
    what.push_back(a);
    what.append("' or '");
    what.push_back(b);
    what.push_back('\'');
    return error_here(what);
}

Unexpected Reader::error_at(std::size_t offset, std::string_view what) {
    std::string context = "offset ";
    append_uint(context, offset);
    context.append(": ");
    context.append(what);
    return fail(Code::BadRequest, Side::Client, std::move(context));
}

Unexpected Reader::error_here(std::string_view what) const { return error_at(pos_, what); }

Result<void> Reader::expect_end() {
    if (at_end()) {
        return {};
    }
    return error_here("unexpected data after the document");
}

Result<std::uint64_t> Reader::read_uint() {
    skip_ws();
    const std::size_t start = pos_;
    const auto is_digit = [&](std::size_t i) {
        return i < text_.size() && text_[i] >= '0' && text_[i] <= '9';
    };
    if (!is_digit(pos_)) {
        return error_here("expected unsigned integer");
    }
    std::uint64_t value = 0;
    if (text_[pos_] == '0') {
        ++pos_;
        if (is_digit(pos_)) {
            return error_at(start, "leading zero in number");
        }
    } else {
        // Stops at the first digit that overflows, so at most 20 digits are ever read.
        while (is_digit(pos_)) {
            const auto digit = static_cast<std::uint64_t>(text_[pos_] - '0');
            if (value > (UINT64_MAX - digit) / 10) {
                return error_at(start, "number out of range");
            }
            value = value * 10 + digit;
            ++pos_;
        }
    }
    if (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E')) {
        return error_at(start, "expected unsigned integer");
    }
    return value;
}

Result<std::uint32_t> Reader::read_hex4() {
    // pos_ is just past "\u"; the error names the backslash.
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        const int v = pos_ + i < text_.size() ? hex_value(text_[pos_ + i]) : -1;
        if (v < 0) {
            return error_at(pos_ - 2, "invalid \\u escape");
        }
        value = (value << 4) | static_cast<std::uint32_t>(v);
    }
    pos_ += 4;
    return value;
}

Result<void> Reader::append_raw_run(std::string& out, std::size_t begin, std::size_t end) {
    // Raw bytes between escapes must be valid UTF-8 on their own: a code point cannot straddle
    // an escape, a quote or a control character, since those are all ASCII.
    const auto run = text_.substr(begin, end - begin);
    proxy::ws::Utf8Validator validator;
    if (!validator.feed(std::as_bytes(std::span{run}))) {
        // Error path only: find the first bad byte.
        proxy::ws::Utf8Validator again;
        std::size_t k = 0;
        while (again.feed(std::as_bytes(std::span{run.substr(k, 1)}))) {
            ++k;
        }
        return error_at(begin + k, "invalid UTF-8");
    }
    if (!validator.complete()) {
        return error_at(end, "invalid UTF-8 (truncated sequence)");
    }
    out.append(run);
    return {};
}

Result<void> Reader::read_escape(std::string& out) {
    // An escape (RFC 8259 §7); pos_ is at the backslash, which every error names.
    const std::size_t esc = pos_;
    if (pos_ + 1 >= text_.size()) {
        return error_here("unterminated string");
    }
    const char e = text_[pos_ + 1];
    pos_ += 2;
    switch (e) {
    case '"': out.push_back('"'); return {};
    case '\\': out.push_back('\\'); return {};
    case '/': out.push_back('/'); return {};
    case 'b': out.push_back('\b'); return {};
    case 'f': out.push_back('\f'); return {};
    case 'n': out.push_back('\n'); return {};
    case 'r': out.push_back('\r'); return {};
    case 't': out.push_back('\t'); return {};
    case 'u': break;
    default: return error_at(esc, "invalid escape");
    }
    auto unit = read_hex4();
    if (!unit) {
        return Unexpected{std::move(unit).error()};
    }
    std::uint32_t cp = *unit;
    if (is_low_surrogate(cp)) {
        return error_at(esc, "lone surrogate");
    }
    if (is_high_surrogate(cp)) {
        // Must be followed at once by an escaped low surrogate (RFC 8259 §7).
        if (pos_ + 1 >= text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') {
            return error_at(esc, "lone surrogate");
        }
        pos_ += 2;
        auto low = read_hex4();
        if (!low) {
            return Unexpected{std::move(low).error()};
        }
        if (!is_low_surrogate(*low)) {
            return error_at(esc, "lone surrogate");
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (*low - 0xDC00);
    }
    append_utf8(out, cp);
    return {};
}

Result<std::string> Reader::read_string(std::string_view what) {
    skip_ws();
    if (pos_ >= text_.size() || text_[pos_] != '"') {
        return error_here(std::string("expected ").append(what));
    }
    ++pos_;
    std::string out;
    std::size_t run = pos_;
    while (true) {
        if (pos_ >= text_.size()) {
            if (auto ok = append_raw_run(out, run, pos_); !ok) {
                return Unexpected{std::move(ok).error()};
            }
            return error_here("unterminated string");
        }
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c != '"' && c != '\\' && c >= 0x20) {
            ++pos_;
            continue;
        }
        if (auto ok = append_raw_run(out, run, pos_); !ok) {
            return Unexpected{std::move(ok).error()};
        }
        if (c == '"') {
            ++pos_;
            return out;
        }
        if (c < 0x20) {
            return error_here("unescaped control character in string");
        }
        if (auto escape = read_escape(out); !escape) {
            return Unexpected{std::move(escape).error()};
        }
        run = pos_;
    }
}

} // namespace transports::json
