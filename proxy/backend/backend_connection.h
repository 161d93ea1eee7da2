#pragma once
// The proxy's WebSocket client towards one backend: TCP connect, the RFC 6455 client
// handshake with timeouts, then frame decoding (Role::Client) and masked frame writing.
//
// A part of exactly one session or relay, which opens it through open_backend()
// (backend_bridge.h). Events reach the owner, always from loop callbacks (never synchronously
// from a call the owner makes): life-cycle events through BackendHandler, decoded frames through
// the owner's ws::DecoderHandler. After close() no callback fires. Pings from the backend are
// answered here (ping/pong are per hop).

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "proxy/http/parser.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/handshake.h"
#include "proxy/ws/writer.h"

namespace proxy {

class Context;

/// Receives a BackendConnection's life-cycle events. Frame events go to the owner's
/// ws::DecoderHandler instead (see BackendConnection's constructor).
class BackendHandler {
  public:
    virtual ~BackendHandler() = default;
    /// The backend accepted the upgrade. `protocol` is its selected subprotocol ("" if none);
    /// `response` is its 101 (for Set-Cookie). Frames that followed the 101 are decoded right
    /// after this returns.
    virtual void on_backend_open(std::string_view protocol, const http::Response& response) = 0;
    /// Connecting or the handshake failed: `error.code` is BackendUnreachable (→502),
    /// BackendTimeout (→504), BackendRejected (`status` holds the backend's status) or
    /// BackendBadHandshake (→502). The connection is already closed.
    virtual void on_backend_failed(const core::Error& error, unsigned status,
                                   const http::Response* response) = 0;
    /// Every frame of one read from the backend was delivered: the owner flushes what it
    /// staged for the client (one write per read, not per frame).
    virtual void on_backend_read_done() = 0;
    /// After open: the backend broke the protocol (`error` has a ProtocolError-like code),
    /// went silent past its pong deadline (PeerTimeout), or its TCP connection ended
    /// (`error` null for a clean EOF, Code::Io otherwise). backend_loss() (backend_bridge.h)
    /// gives the close code and reason the client gets for it.
    virtual void on_backend_gone(const core::Error* error) = 0;
    /// The backend's write queue crossed its high / low watermark.
    virtual void on_backend_write_high() = 0;
    virtual void on_backend_write_low() = 0;
};

/// One backend WebSocket connection.
class BackendConnection final : private core::StreamHandler, private ws::DecoderHandler {
  public:
    /// Everything needed to open the connection.
    struct Target {
        std::string ip;              ///< numeric backend address
        std::uint16_t port = 0;
        ws::BackendRequest request;  ///< handshake request (key filled in by start())
        /// TLS towards a wss:// backend (set before connecting), or null for ws://.
        std::unique_ptr<core::StreamTransform> transform;
    };

    /// `handler` gets the life-cycle events. `frames` gets the backend decoder's data frames
    /// and the backend's Close (on_close; reading stops after it), synchronously from inside
    /// the decoder's feed(), views valid during the call only. Pings and pongs are per hop:
    /// answered here and never forwarded, so `frames`' on_ping/on_pong do not run. A frame
    /// callback may close this connection; decoding stops right after.
    BackendConnection(Context& context, const config::RouteLimits& limits,
                      BackendHandler& handler, ws::DecoderHandler& frames);
    ~BackendConnection() override;

    /// Starts connecting. Failures are reported through on_backend_failed, later.
    void start(Target target);

    /// Frame streaming towards the backend (masked). Nothing reaches the socket until flush().
    ws::FrameWriter& writer() noexcept { return writer_; }
    /// Writes what the writer staged. Returns false when the connection is unusable.
    bool flush();
    /// Sends a Close frame (flushes). The caller then waits for on_backend_close or a timeout.
    void send_close(std::uint16_t code, std::string_view reason);

    /// Pauses reading from the backend (TCP backpressure to the backend). Takes effect at
    /// once, even inside a frame callback: the rest of the current read is held, unparsed,
    /// and decoded only after resume(). Reasons are bits; reading resumes when none is left.
    void pause(core::PauseReason reason) noexcept;
    /// Clears a pause reason. When none is left, held bytes are decoded on the next loop
    /// turn (never synchronously, so the caller's stack is not re-entered).
    void resume(core::PauseReason reason) noexcept;
    /// Bytes waiting to be written to the backend.
    std::size_t queued_bytes() const noexcept { return stream_->queued_bytes(); }

    /// Heartbeat tick (called by the owner's timer): pings when nothing was written for the
    /// backend idle interval; reports PeerTimeout through on_backend_gone when a ping got no
    /// answer in time. `now` is loop time in ms.
    void heartbeat(std::uint64_t now);

    /// Closes the TCP connection (Flush: queued bytes first). Idempotent; no callback after.
    void close(core::TcpStream::CloseMode mode);
    /// True once open (101 validated) and not closed.
    bool open() const noexcept { return open_ && !closed_; }
    /// True while mid-frame towards the backend (no Close frame may be sent now).
    bool mid_frame() const noexcept { return writer_.mid_frame(); }

  private:
    // core::StreamHandler
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_high() override;
    void on_write_low() override;
    void on_write_error(const core::Error& error) override;
    // ws::DecoderHandler
    void on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode message) override;
    void on_data_frame_payload(std::span<const std::byte> bytes) override;
    void on_data_frame_end(bool message_end) override;
    void on_ping(std::span<const std::byte> payload) override;
    void on_pong(std::span<const std::byte> payload) override;
    void on_close(std::uint16_t code, std::string_view reason) override;

    void on_connected(core::Result<void> result);
    void on_handshake_timeout();
    void fail_handshake(const core::Error& error, unsigned status);
    void handle_handshake_bytes(std::span<std::byte> bytes);
    void decode(std::span<std::byte> bytes);
    void decode_held();
    void gone(const core::Error* error);
    /// The backend broke the protocol: Close it with the error's code, then report it gone.
    void fail(const core::Error& error);

    Context& context_;
    const config::RouteLimits& limits_;
    BackendHandler& handler_;
    ws::DecoderHandler& frames_;
    std::unique_ptr<core::TcpStream> stream_;
    std::unique_ptr<http::ResponseParser> parser_;  ///< only during the handshake
    std::unique_ptr<core::Timer> timer_;            ///< connect + handshake deadline
    std::unique_ptr<core::Timer> held_timer_;       ///< decodes held_ after a resume
    std::string held_;                              ///< bytes read but not decoded (paused)
    std::uint8_t pause_bits_ = 0;
    ws::Decoder decoder_;
    ws::FrameWriter writer_;
    std::string key_;
    std::optional<core::Error> start_error_;  ///< synchronous connect failure, reported later
    std::vector<std::string> offered_;
    std::uint64_t last_read_ = 0;
    std::uint64_t last_write_ = 0;
    std::uint64_t ping_sent_at_ = 0;   ///< 0 when no ping is outstanding
    bool connected_ = false;
    bool open_ = false;
    bool closed_ = false;
};

} // namespace proxy
