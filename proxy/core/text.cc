#include "proxy/core/text.h"

namespace proxy::core {
namespace {

constexpr char kHex[] = "0123456789abcdef";

} // namespace

std::optional<char> percent_escape_at(std::string_view text, std::size_t i) noexcept {
    // Compares `size - i` (i < size here) rather than `i + 2`, so no addition can wrap.
    if (i >= text.size() || text[i] != '%' || text.size() - i < 3) {
        return std::nullopt;
    }
    const int hi = hex_value(text[i + 1]);
    const int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) {
        return std::nullopt;
    }
    return static_cast<char>(hi * 16 + lo);
}

void append_json_string(std::string& out, std::string_view utf8) {
    out.push_back('"');
    std::size_t run = 0; // start of the bytes not yet copied
    for (std::size_t i = 0; i < utf8.size(); ++i) {
        const auto u = static_cast<unsigned char>(utf8[i]);
        const char* short_escape = nullptr;
        std::size_t width = 1; // input bytes replaced by the escape
        switch (u) {
        case '"': short_escape = "\\\""; break;
        case '\\': short_escape = "\\\\"; break;
        case '\b': short_escape = "\\b"; break;
        case '\f': short_escape = "\\f"; break;
        case '\n': short_escape = "\\n"; break;
        case '\r': short_escape = "\\r"; break;
        case '\t': short_escape = "\\t"; break;
        default:
            // U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR are E2 80 A8 / E2 80 A9.
            // JSON allows them raw, but JavaScript before ES2019 ends a string literal there.
            if (u == 0xE2 && i + 2 < utf8.size() && utf8[i + 1] == '\x80' &&
                (utf8[i + 2] == '\xA8' || utf8[i + 2] == '\xA9')) {
                short_escape = utf8[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
                width = 3;
            } else if (u >= 0x20) {
                continue;
            }
        }
        out.append(utf8.substr(run, i - run));
        if (short_escape != nullptr) {
            out.append(short_escape);
        } else {
            const char esc[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 0xF]};
            out.append(esc, sizeof(esc));
        }
        i += width - 1;
        run = i + 1;
    }
    out.append(utf8.substr(run));
    out.push_back('"');
}

} // namespace proxy::core
