#pragma once
// Small text helpers shared by every layer: hex digits, percent-escapes (RFC 3986 §2.1) and
// JSON string quoting (RFC 8259 §7). They are pure functions over bytes, with no allocation
// beyond the output string, and they live in the `proxy_base` library next to Result so that
// config (which must not link proxy_core), the HTTP codec and the transports all use one copy.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace proxy::core {

/// The value of the hex digit `c` (`0-9`, `a-f`, `A-F`), or -1 for any other byte.
[[nodiscard]] constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/// The byte that the percent-escape at `text[i]` encodes (`%2e` gives '.'), or nullopt when
/// `text[i]` is not '%' followed by two hex digits (in either case) inside `text`. Never reads
/// past the end of `text`; an `i` at or past the end gives nullopt.
[[nodiscard]] std::optional<char> percent_escape_at(std::string_view text, std::size_t i) noexcept;

/// Appends `utf8` to `out` as a quoted JSON string (RFC 8259 §7). Escapes `"` and `\`, writes
/// the short escapes `\b \f \n \r \t`, other C0 controls as lower-case `\u00xx`, and
/// U+2028/U+2029 as `\u2028`/`\u2029` so the document is also a valid JavaScript literal. Every
/// other byte, DEL and non-ASCII included, is copied as is (RFC 8259 §7 allows it).
/// Precondition: `utf8` is valid UTF-8 (the caller validated it); invalid bytes are copied
/// unchanged, never repaired, so the output is then not valid JSON text either.
void append_json_string(std::string& out, std::string_view utf8);

} // namespace proxy::core
