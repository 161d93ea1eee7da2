#pragma once
// WsSessionTransport: a session's client reached over one WebSocket connection that offered
// `wsbridge.session.v1` (docs/protocol.md, "WebSocket sessions"; framing in codec.h).
//
// Proxy → client: the `session` control (after a `reset` when the client named an unknown
// session), then every message after the client's position, an explicit `gap` where the
// replay buffer no longer holds what it missed, then new messages as the session gets them;
// the `close` control once the session closed and every message before it was written.
// Client → proxy: whole messages, numbered from the connection's first seq and handed to the
// session's send() (exactly once, in order, as POST); `ack` controls trim the replay buffer;
// the `close` control closes the session. The proxy acknowledges client messages with `ack`
// controls, 100 ms after a forwarded message at the latest and after every 64.
//
// The edge rules of the relay apply to the connection (RFC 6455 decoding, max_message,
// message_timeout, pings and the pong deadline, the slow-consumer rule, the route's rate) and
// end the connection, never the session, which then waits resume_window for a resume.
// Backpressure: while the socket's queue is above its high watermark the session stops reading
// its backend; while the backend's queue is full (send() answers Busy) this stops reading the
// client and sends the held message when the backend drains.
//
// Lifetime: as SseTransport. Owns the client socket; owned by the Context's registry; calls
// WsSessionOptions::retire as its last act; never touches the session after on_replaced(),
// on_session_gone() or its own detach.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/core/loop.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/writer.h"
#include "transports/stall_clock.h"
#include "transports/transport.h"
#include "transports/ws_session/codec.h"

namespace transports::ws_session {

class WsSessionTransport;

/// Settings of one connection.
struct WsSessionOptions {
    std::uint64_t ping_after_ms = 30'000;     ///< ping after this much silence either way
    std::uint64_t pong_timeout_ms = 30'000;   ///< after a ping, the client must send something
    std::uint64_t tick_ms = 15'000;           ///< how often the timer checks
    std::uint64_t message_timeout_ms = 30'000;  ///< a client message must complete within
    std::uint64_t stall_ms = 30'000;          ///< slow consumer: full and no drain this long
    std::uint64_t max_message = 1024 * 1024;
    std::size_t high_watermark = 1024 * 1024;  ///< the route's outbound_queue
    std::uint64_t ack_delay_ms = 100;          ///< ack a forwarded client message within
    std::uint64_t ack_every = 64;              ///< ... or after this many
    /// When set, the client named this unknown session: a `reset` control comes first.
    std::optional<std::string> reset_reason;
    /// Seq of the client's first message on this connection (`?seq=`); unset: the session's
    /// next expected seq.
    std::optional<std::uint64_t> first_client_seq;
    /// The connection ends because of the client: `event` names why (protocol_error,
    /// slow_consumer, pong_timeout, message_timeout, rate_limited, seq_gap), `code` is the
    /// close code sent, `detail` the reason. For logs and metrics; called at most once.
    std::function<void(std::string_view event, std::uint16_t code, std::string_view detail)>
        on_client_error;
    /// Called once, as the last act of a connection that ended (Context::retire).
    std::function<void(WsSessionTransport&)> retire;
};

/// See the file comment.
class WsSessionTransport final : public Transport,
                                 public proxy::core::DeferredDeletable,
                                 private proxy::core::StreamHandler,
                                 private proxy::ws::DecoderHandler {
  public:
    /// Takes the client socket (the 101 already queued on it, reading paused by
    /// kPauseOwner). `after_seq` is the client's position (`ack`, 0 for a new session). Call
    /// start() next, after attaching to the session.
    WsSessionTransport(proxy::core::Loop& loop, std::unique_ptr<proxy::core::TcpStream> stream,
                       SessionView& session, std::uint64_t after_seq, WsSessionOptions options);
    ~WsSessionTransport() override;

    /// Writes the controls and the backlog, handles `pending` (client bytes that followed the
    /// upgrade request), starts reading and the timers.
    void start(std::string pending);
    /// Keeps `resource` alive until the connection ends (the client's admission slot).
    void hold(std::unique_ptr<proxy::core::DeferredDeletable> resource) {
        held_ = std::move(resource);
    }

    // Transport
    void on_messages() override;
    void on_replaced() override;
    void on_session_gone() override;
    void on_backend_writable() override;

  private:
    // StreamHandler
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const proxy::core::Error* error) override;
    void on_write_high() override;
    void on_write_low() override;
    void on_write_error(const proxy::core::Error& error) override;
    // DecoderHandler
    void on_data_frame_begin(const proxy::ws::FrameHeader& header,
                             proxy::ws::Opcode message) override;
    void on_data_frame_payload(std::span<const std::byte> bytes) override;
    void on_data_frame_end(bool message_end) override;
    void on_ping(std::span<const std::byte> payload) override;
    void on_pong(std::span<const std::byte> payload) override;
    void on_close(std::uint16_t code, std::string_view reason) override;

    /// Feeds client bytes to the decoder until they are used up, the connection ends or a
    /// message waits for the backend (the rest is kept in held_in_).
    void process(std::span<std::byte> bytes);
    /// One whole client message or control.
    void handle(ClientFrame frame);
    /// Sends a held client message; true when it went (or was dropped), false while Busy.
    bool send_message(ClientMessage& message);
    void note_forwarded(std::uint64_t count);
    void send_ack();
    /// Writes messages after cursor_ while the socket takes them, then the close if due.
    void pump();
    /// Appends one control (kind byte and JSON in `control`) as a binary frame.
    void control(const std::string& payload);
    void flush();
    void on_tick();
    /// Ends the connection with a Close frame `code` (the session stays): the client's fault.
    void fail(std::string_view event, std::uint16_t code, std::string_view detail);
    /// Writes a Close frame (unless sent) and ends (Flush), detaching when `detach`.
    void end(bool detach, std::uint16_t code, std::string_view reason);

    proxy::core::Loop& loop_;
    std::unique_ptr<proxy::core::TcpStream> stream_;
    SessionView* session_;
    std::uint64_t cursor_;            ///< last message seq written to the client
    WsSessionOptions options_;
    proxy::ws::Decoder decoder_;
    proxy::ws::FrameWriter writer_;
    MessageAssembler assembler_;
    std::unique_ptr<proxy::core::Timer> tick_;
    std::unique_ptr<proxy::core::Timer> ack_timer_;  ///< only while an ack is due
    std::unique_ptr<proxy::core::DeferredDeletable> held_;
    std::vector<ClientMessage> one_;         ///< send()'s argument, reused
    std::optional<ClientMessage> waiting_;   ///< a client message the backend was too busy for
    std::string held_in_;                    ///< client bytes read after it
    std::uint64_t client_seq_ = 0;           ///< seq of the next client message
    std::uint64_t acked_client_ = 0;         ///< next_seq of the last ack control sent
    std::uint64_t unacked_ = 0;              ///< client messages handled since that ack
    std::uint64_t last_read_ = 0;
    std::uint64_t last_write_ = 0;
    std::uint64_t ping_sent_at_ = 0;
    std::uint64_t message_started_at_ = 0;
    StallClock stall_;
    bool full_ = false;
    bool close_written_ = false;   ///< the `close` control went out
    bool close_sent_ = false;      ///< the Close frame went out
    bool session_going_ = false;   ///< in on_session_gone(): never call the session back
    bool ended_ = false;
    bool error_reported_ = false;
};

} // namespace transports::ws_session
