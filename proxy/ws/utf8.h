#pragma once
// Incremental UTF-8 validator (RFC 3629) that fails at the first byte that makes the input
// invalid, even when a code point is split across calls, frames or TCP reads.

#include <cstddef>
#include <cstdint>
#include <span>

namespace proxy::ws {

/// Streaming validator. Feed any split of the input; `feed` returns false at the first byte
/// that cannot start or continue a valid sequence (overlong forms, surrogates U+D800–DFFF and
/// values above U+10FFFF are invalid). After a false return the validator stays failed.
class Utf8Validator {
  public:
    /// Validates `bytes` as a continuation of everything fed before. Returns false when invalid.
    bool feed(std::span<const std::byte> bytes) noexcept;
    /// True when the input so far ends on a code point boundary (a message may end here).
    bool complete() const noexcept { return state_ == kAccept; }
    /// True once invalid input was seen.
    bool failed() const noexcept { return state_ == kReject; }
    /// Starts a new text (a new message).
    void reset() noexcept { state_ = kAccept; }

    static constexpr std::uint8_t kAccept = 0;
    static constexpr std::uint8_t kReject = 1;

  private:
    std::uint8_t state_ = kAccept;
};

/// One-shot check of a whole buffer (close reasons, POST bodies).
bool is_valid_utf8(std::span<const std::byte> bytes) noexcept;

} // namespace proxy::ws
