#pragma once
// The TLS StreamTransform (proxy/core/stream_transform.h) over an OpenSSL SSL object whose BIO
// reads the caller's wire bytes in place and appends its records to the caller's string, so
// OpenSSL never touches the socket and the stream's write queue, watermarks and send batching
// carry the encrypted bytes.
//
// A TLS 1.3 server connection is handed over to the RecordLayer (record_layer.h) once its
// handshake is complete and no record is half read: the SSL object is freed and the record
// layer protects the records from then on (see docs/tls.md, "Handover after the handshake").
//
// The handshake runs as wire bytes arrive; plain bytes the owner writes before it completes
// are held and encrypted once it has. A handshake or record failure is returned with OpenSSL's
// reason, after the alert it produced was appended to the wire output.

#include "proxy/core/stream_transform.h"
#include "proxy/tls/record_layer.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct ssl_st;

namespace proxy::tls {

class HandshakeObserver;

/// Counts the TLS records in a byte stream fed to it in arbitrary pieces.
class RecordCounter {
  public:
    void feed(std::span<const std::byte> bytes) noexcept;
    /// Complete records seen.
    std::uint64_t records() const noexcept { return records_; }
    /// True between records.
    bool at_boundary() const noexcept { return have_ == 0 && body_left_ == 0; }

  private:
    std::array<std::uint8_t, 5> header_{};
    std::size_t have_ = 0;      ///< header bytes collected
    std::size_t body_left_ = 0; ///< body bytes of the current record still to come
    std::uint64_t records_ = 0;
};

/// The BIO's view of one transform call: unread wire input and where records go, and while a
/// server connection may still be handed over to the RecordLayer, who counts the records
/// OpenSSL reads and writes under the application keys.
struct WireIo {
    std::span<const std::byte> in;
    std::string* out = nullptr;            ///< null outside a call (OpenSSL writes nothing then)
    RecordCounter* read_count = nullptr;   ///< records OpenSSL consumed, when counting
    RecordCounter* write_count = nullptr;  ///< records OpenSSL wrote, when counting
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
    /// True once OpenSSL handed the connection over to the RecordLayer.
    bool handed_over() const noexcept { return records_ != nullptr; }

    /// Keeps `owner` (the ServerContext that made this transform, whose SNI callback may still
    /// run) alive as long as the transform, across reloads that replace it.
    void hold(std::shared_ptr<const void> owner) noexcept { owner_ = std::move(owner); }

    // OpenSSL's callbacks (keylog and message callbacks of the server contexts).
    void on_keylog(std::string_view line) noexcept;
    void on_handshake_message() noexcept;

  private:
    /// Runs the handshake as far as the input allows; an error on failure.
    core::Result<void> handshake();
    /// Encrypts `plain` into the current wire output.
    core::Result<void> encrypt(std::span<const std::byte> plain);
    /// Encrypts one write of several pieces into as few records as its size allows.
    core::Result<void> encrypt_gathered(std::span<const std::span<const std::byte>> pieces);
    /// Hands a quiet, established TLS 1.3 server connection over to the RecordLayer and frees
    /// the SSL object; gives up for good on anything else.
    void try_handover() noexcept;
    /// Stops counting for a handover that will not happen.
    void give_up_handover() noexcept;
    /// Drops errors an earlier failure left in the thread's OpenSSL error queue.
    static void clear_stale_errors() noexcept;
    /// An error with OpenSSL's reason for the last failure.
    core::Error failure(std::string_view what, int ssl_error);

    /// What a handover needs, gathered during the handshake (server connections only).
    struct Handover {
        TrafficState client; ///< CLIENT_TRAFFIC_SECRET_0 (what we read with)
        TrafficState server; ///< SERVER_TRAFFIC_SECRET_0 (what we write with)
        RecordCounter read;  ///< records read under the client's application key
        RecordCounter written;
        bool post_handshake_message = false; ///< a KeyUpdate went through OpenSSL: keys moved
    };

    ssl_st* ssl_; ///< null after the handover
    HandshakeObserver* observer_;
    std::shared_ptr<const void> owner_; ///< see hold(); released after ssl_ in ~Transform
    std::unique_ptr<Handover> handover_;
    std::unique_ptr<RecordLayer> records_;
    WireIo io_;       ///< what the BIO reads and writes during one call
    std::string held_; ///< plain bytes written before the handshake completed
    bool established_ = false;
    bool failed_ = false;
};

} // namespace proxy::tls
