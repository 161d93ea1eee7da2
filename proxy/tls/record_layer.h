#pragma once
// TLS 1.3 record protection (RFC 8446 §5, §7.2, §4.6.3) for a server connection whose
// handshake OpenSSL completed: the transform hands the connection over to this once it is
// established and quiet, and frees OpenSSL's SSL object, as the kernel's TLS offload (kTLS)
// takes over record protection from a TLS library after its handshake.
//
// Why: an established OpenSSL 3.0 server SSL object holds 13.6 KiB of heap even with its
// buffers released, which alone is over the memory budget of an idle wss connection; and
// every SSL_read/SSL_write walks OpenSSL's generic record layer. What stays here per
// connection is two AEAD contexts (their key schedules), the two traffic secrets and
// sequence numbers.
//
// What it does: application data both ways in records of at most 16 KiB of plain text;
// close_notify both ways; KeyUpdate from the peer (its read key moves on, and a requested
// update is answered with our own); any other post-handshake message, a record over the
// size limit, a record that fails authentication or an unexpected content type fails the
// connection with the matching fatal alert. The suites are TLS 1.3's three defaults
// (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305).

#include "proxy/core/result.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

struct evp_cipher_ctx_st;

namespace proxy::tls {

/// The TLS 1.3 cipher suites the record layer implements.
enum class Suite : std::uint8_t { Aes128Gcm, Aes256Gcm, Chacha20Poly1305 };

/// One direction's traffic secret and the sequence number of its next record.
struct TrafficState {
    std::array<std::uint8_t, 48> secret{};
    std::size_t secret_size = 0;
    std::uint64_t sequence = 0;
};

/// See the file comment. One per connection; not copyable.
class RecordLayer {
  public:
    /// A record layer reading with `read` (the client's application traffic secret) and
    /// writing with `write` (the server's); null when OpenSSL refuses the keys.
    static std::unique_ptr<RecordLayer> create(Suite suite, const TrafficState& read,
                                               const TrafficState& write);
    ~RecordLayer();
    RecordLayer(const RecordLayer&) = delete;
    RecordLayer& operator=(const RecordLayer&) = delete;

    /// Wire bytes from the peer: appends the application data of every complete record to
    /// `plain` and what must be answered (our KeyUpdate, or the fatal alert of a failure) to
    /// `wire`; an incomplete record waits for the next call. After the peer's close_notify
    /// the rest is ignored. An error after a fatal alert.
    core::Result<void> read(std::span<const std::byte> in, std::string& plain, std::string& wire);
    /// Appends `pieces` (one write) as application data records to `wire`.
    void write(std::span<const std::span<const std::byte>> pieces, std::string& wire);
    /// Appends a close_notify alert to `wire`.
    void close_notify(std::string& wire);
    /// True once the peer's close_notify arrived.
    bool peer_closed() const noexcept { return peer_closed_; }

  private:
    struct Direction {
        evp_cipher_ctx_st* aead = nullptr;
        TrafficState traffic;
        std::array<std::uint8_t, 12> iv{};
    };

    explicit RecordLayer(Suite suite) noexcept : suite_(suite) {}
    /// Derives key and IV from the direction's secret and keys its AEAD context.
    bool install(Direction& d, bool encrypt);
    /// Moves the direction's secret on (RFC 8446 §7.2) and re-keys it.
    bool update(Direction& d, bool encrypt);
    /// Seals one record of `type` holding `pieces` into `wire`.
    void seal(std::uint8_t type, std::span<const std::span<const std::byte>> pieces,
              std::size_t size, std::string& wire);
    /// Opens the record `record` (header included): its content type, its plain text appended to
    /// `plain`; 0 when authentication fails.
    std::uint8_t open(std::span<const std::byte> record, std::string& plain);
    /// Post-handshake handshake bytes (complete messages are handled); an error alert or 0.
    std::uint8_t on_handshake(std::string_view bytes, std::string& wire);
    /// Appends a fatal alert and returns the error to report.
    core::Unexpected fail(std::uint8_t alert, std::string_view why, std::string& wire);

    Suite suite_;
    bool peer_closed_ = false;
    bool failed_ = false;
    Direction read_;
    Direction write_;
    std::string partial_;   ///< bytes of a record not complete yet
    std::string handshake_; ///< a post-handshake message not complete yet
};

} // namespace proxy::tls
