#pragma once
// The TLS StreamTransform (proxy/core/stream_transform.h) over an OpenSSL SSL object whose BIO
// reads the caller's wire bytes in place and appends its records to the caller's string, so
// OpenSSL never touches the socket and the stream's write queue, watermarks and send batching
// carry the encrypted bytes.
//
// The handshake runs as wire bytes arrive; plain bytes the owner writes before it completes
// are held and encrypted once it has. A handshake or record failure is returned with OpenSSL's
// reason, after the alert it produced was appended to the wire output.

#include "proxy/core/stream_transform.h"

#include <cstdint>
#include <memory>
#include <string>

struct ssl_st;

namespace proxy::tls {

class HandshakeObserver;

/// The BIO's view of one transform call: unread wire input and where records go.
struct WireIo {
    std::span<const std::byte> in;
    std::string* out = nullptr; ///< null outside a call (OpenSSL writes nothing then)
};

/// See the file comment. One per connection; not copyable.
class Transform final : public core::StreamTransform {
  public:
    /// Takes ownership of `ssl` (already set to the accept or connect state). `observer`, if
    /// given, is told how the handshake ended and must outlive the transform.
    Transform(ssl_st* ssl, HandshakeObserver* observer) noexcept;
    ~Transform() override;
    Transform(const Transform&) = delete;
    Transform& operator=(const Transform&) = delete;

    core::Result<void> on_connected(std::string& wire) override;
    core::Result<void> on_wire(std::span<const std::byte> in, std::string& plain,
                               std::string& wire) override;
    core::Result<void> on_plain(std::span<const std::span<const std::byte>> pieces,
                                std::string& wire) override;
    void on_close(std::string& wire) override;

    /// True once the handshake completed.
    bool ready() const noexcept override { return established_; }

  private:
    /// Runs the handshake as far as the input allows; an error on failure.
    core::Result<void> handshake();
    /// Encrypts `plain` into the current wire output.
    core::Result<void> encrypt(std::span<const std::byte> plain);
    /// Encrypts one write of several pieces into as few records as its size allows.
    core::Result<void> encrypt_gathered(std::span<const std::span<const std::byte>> pieces);
    /// Drops errors an earlier failure left in the thread's OpenSSL error queue.
    static void clear_stale_errors() noexcept;
    /// An error with OpenSSL's reason for the last failure.
    core::Error failure(std::string_view what, int ssl_error);

    ssl_st* ssl_;
    HandshakeObserver* observer_;
    WireIo io_;       ///< what the BIO reads and writes during one call
    std::string held_; ///< plain bytes written before the handshake completed
    bool established_ = false;
    bool failed_ = false;
};

} // namespace proxy::tls
