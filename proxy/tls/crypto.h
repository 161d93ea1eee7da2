#pragma once
// The few cryptographic primitives the proxy needs, over OpenSSL 3. The only place besides
// the future TLS transform that includes <openssl/*>.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace proxy::tls {

/// Fills `out` with cryptographically secure random bytes (OpenSSL RAND_bytes). Aborts the
/// process if the RNG fails: continuing without randomness would make ids guessable.
void random_bytes(std::span<std::byte> out);

/// A cheap source of WebSocket masking keys: refills a 4 KiB pool from random_bytes() and hands
/// out 4 bytes at a time, so a frame costs a copy, not a syscall or an RNG call.
class MaskSource {
  public:
    /// The next 4 unpredictable bytes.
    std::array<std::byte, 4> next();

  private:
    std::array<std::byte, 4096> pool_{};
    std::size_t used_ = sizeof(pool_);
};

/// SHA-1 of `data` (RFC 6455 §4.2.2 accept key only; not used for security elsewhere).
std::array<std::uint8_t, 20> sha1(std::string_view data);

/// Standard base64 with padding (RFC 4648 §4).
std::string base64_encode(std::span<const std::byte> data);
/// Standard base64 with padding; nullopt on any invalid character or bad padding.
std::optional<std::string> base64_decode(std::string_view text);
/// URL-safe base64 without padding (RFC 4648 §5), for session ids.
std::string base64url_encode(std::span<const std::byte> data);

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455 GUID)).
std::string websocket_accept(std::string_view key);

} // namespace proxy::tls
