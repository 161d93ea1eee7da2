#pragma once
// The two cryptographic primitives the proxy needs outside TLS, over OpenSSL 3: random bytes
// (session ids, masking keys) and SHA-1 (the WebSocket accept key). Only their .cc includes
// <openssl/*>; TLS itself lives in proxy/tls/.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace proxy::core {

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

} // namespace proxy::core
