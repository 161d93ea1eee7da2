#pragma once
// The little JSON the transports speak (RFC 8259): a string writer and a strict pull reader.
//
// There is no JSON library among the dependencies, and the transports need none: every
// document they read or write has a fixed shape. So instead of a DOM there is a cursor that
// reads one token at a time. Callers decide the structure, which keeps parsing linear,
// non-recursive and allocation-bounded by the input size. Anything RFC 8259 does not allow
// (comments, trailing commas, single quotes, NaN, leading zeros, raw control characters,
// lone surrogates, invalid UTF-8) is an error with the byte offset where it was found.

#include "proxy/core/result.h"
#include "proxy/core/text.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace transports::json {

/// Appends `utf8` to `out` as a quoted JSON string: proxy::core::append_json_string, which
/// states the escapes (short escapes, other C0 controls as `\u00xx`, U+2028/U+2029 escaped,
/// everything else copied as is). Precondition: `utf8` is valid UTF-8; invalid bytes are
/// copied unchanged, never repaired.
inline void append_string(std::string& out, std::string_view utf8) {
    proxy::core::append_json_string(out, utf8);
}

/// Appends `value` in decimal, as a JSON number.
void append_uint(std::string& out, std::uint64_t value);

/// A strict RFC 8259 pull reader over a complete document. It never recurses: the caller walks
/// the expected structure with expect()/try_consume()/read_*(), each of which first skips JSON
/// whitespace (space, tab, LF, CR and nothing else). Every failure is a Code::BadRequest from
/// Side::Client whose context starts with `offset <byte>: ` (e.g. `offset 17: expected ','
/// or ']'`). After a failure the reader's position is unspecified; stop using it.
/// The reader holds a view: `text` must outlive it.
class Reader {
  public:
    /// Starts reading `text` at offset 0.
    explicit Reader(std::string_view text) noexcept : text_(text) {}

    /// Byte offset of the next unread byte.
    [[nodiscard]] std::size_t offset() const noexcept { return pos_; }

    /// Skips whitespace; true when nothing but whitespace was left.
    [[nodiscard]] bool at_end() noexcept;

    /// Skips whitespace, then consumes `c` if it is the next byte. Never fails.
    bool try_consume(char c) noexcept;

    /// Skips whitespace, then consumes `c` or fails with `offset N: expected 'c'`.
    proxy::core::Result<void> expect(char c);

    /// Skips whitespace, then consumes whichever of `a` or `b` comes next and returns it, or
    /// fails with `offset N: expected 'a' or 'b'`.
    proxy::core::Result<char> expect_either(char a, char b);

    /// Skips whitespace and reads a string, decoding escapes (`\uXXXX` surrogate pairs become
    /// one 4-byte UTF-8 sequence). The result is always valid UTF-8 and may contain NUL
    /// (`\u0000`). Fails on a missing opening quote (`expected <what>`, e.g. `expected string`),
    /// an unterminated string, a raw control character, a bad escape, a lone surrogate, or
    /// invalid UTF-8; the offset names the offending byte.
    proxy::core::Result<std::string> read_string(std::string_view what = "string");

    /// Skips whitespace and reads a non-negative integer in JSON number syntax without fraction
    /// or exponent (`0`, `17`; not `017`, `-1`, `1.0`, `1e3`). Fails on anything else, and with
    /// `number out of range` above 2^64-1. Reads at most 20 digits before failing, so a huge
    /// number costs nothing.
    proxy::core::Result<std::uint64_t> read_uint();

    /// Fails with `offset N: unexpected data after the document` unless only whitespace remains.
    proxy::core::Result<void> expect_end();

    /// A Code::BadRequest, Side::Client failure with context `offset <offset()>: <what>`, for
    /// callers that detect a syntax error of their own at the current position.
    [[nodiscard]] proxy::core::Unexpected error_here(std::string_view what) const;

    /// The same failure for an earlier position, e.g. the start of an offending key.
    [[nodiscard]] static proxy::core::Unexpected error_at(std::size_t offset,
                                                          std::string_view what);

  private:
    void skip_ws() noexcept;
    proxy::core::Result<std::uint32_t> read_hex4();
    proxy::core::Result<void> read_escape(std::string& out);
    proxy::core::Result<void> append_raw_run(std::string& out, std::size_t begin, std::size_t end);

    std::string_view text_;
    std::size_t pos_ = 0;
};

/// `"<up to 32 bytes of s>"` (JSON-quoted, cut at a code point boundary, `...` appended when
/// cut), for naming attacker-supplied keys in error contexts without flooding the log.
[[nodiscard]] std::string quote_for_log(std::string_view s);

} // namespace transports::json
