#pragma once
// The TLS StreamTransform (proxy/core/stream_transform.h) over an OpenSSL SSL object with memory
// BIOs: wire bytes go in and out as strings, so OpenSSL never touches the socket and the
// stream's write queue, watermarks and send batching carry the encrypted bytes.
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
    core::Result<void> on_plain(std::span<const std::byte> plain, std::string& wire) override;
    void on_close(std::string& wire) override;

    /// True once the handshake completed.
    bool ready() const noexcept override { return established_; }

  private:
    /// Runs the handshake as far as the input allows; an error on failure.
    core::Result<void> handshake(std::string& wire);
    /// Encrypts `plain` into the wire BIO.
    core::Result<void> encrypt(std::span<const std::byte> plain);
    /// Moves what OpenSSL wrote into the wire BIO to `wire`.
    void drain(std::string& wire);
    /// Replaces an empty memory BIO that kept a large buffer (idle memory).
    void trim();
    /// An error with OpenSSL's reason for the last failure.
    core::Error failure(std::string_view what, int ssl_error);

    ssl_st* ssl_;
    HandshakeObserver* observer_;
    std::string held_; ///< plain bytes written before the handshake completed
    bool established_ = false;
    bool failed_ = false;
};

} // namespace proxy::tls
