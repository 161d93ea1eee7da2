#pragma once
// Session: one SSE, long-poll or WebSocket-session client bridged to one backend WebSocket
// connection (SPEC §3).
// It outlives the client's HTTP requests: transports attach and detach; with none attached the
// backend connection stays open for resume_window, then is closed with 1001.
//
// Backend → client: each complete backend message gets the next sequence number and goes into
// the replay buffer; the attached transport pulls what it has not delivered. Backpressure:
// when the bytes not yet delivered pass the session's threshold (or the transport says its
// socket queue is full), the session stops reading its backend socket, so TCP backpressure
// reaches the backend long before the replay buffer would have to evict undelivered messages.
//
// Client → backend: POSTed messages carry a sequence number; each is forwarded exactly once and
// in order. A repeated seq is acknowledged and not re-sent; a seq beyond the next expected one
// is refused with the expected seq (409).
//
// Lifetime (loop.h, the ownership rule): created by HttpConnection and adopted by the Context's
// registry, which owns it; its id is also in the Context's session index (not owning) until
// end(), which removes it from the index and retires it from the registry (destroyed at the
// loop's next check phase). Its backend connection and timers are parts; attached transports
// are not (an SSE stream is in the registry itself, a held poll belongs to its HTTP connection).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/backend/backend_connection.h"
#include "proxy/context.h"
#include "proxy/core/timer.h"
#include "proxy/rate_limiter.h"
#include "transports/replay_buffer.h"
#include "transports/transport.h"

namespace proxy {

/// Receives the outcome of the backend handshake of a new session.
class SessionOpener {
  public:
    virtual ~SessionOpener() = default;
    /// The backend accepted: the opener answers its client and may attach a transport.
    virtual void on_session_open() = 0;
    /// The backend refused or could not be reached: answer with `status` (502, 504, or the
    /// backend's own status). The session is already gone.
    virtual void on_session_failed(const core::Error& error, unsigned status) = 0;
};

/// One client → backend message (transports/transport.h).
using ClientMessage = transports::ClientMessage;
/// What became of a send (transports/transport.h).
using SendOutcome = transports::SendOutcome;

/// See the file comment.
class Session final : public Closable,
                      public transports::SessionView,
                      private BackendHandler,
                      private ws::DecoderHandler {
  public:
    Session(Context& context, const RouteRuntime& route, std::string id);
    ~Session() override;

    /// Opens the backend connection for `request` (open_backend(): target, forwarded headers,
    /// client IP). Call it once, after the Context adopted the session. `opener` is told the
    /// outcome later, unless cancel_opener() is called first.
    void start(const http::Request& request, const std::string& client_ip,
               std::string_view scheme, SessionOpener* opener);
    /// The opener's client went away before the outcome.
    void cancel_opener(SessionOpener* opener) noexcept;

    /// Attaches `transport`, replacing (on_replaced) any attached one; stops the resume timer.
    void attach(transports::Transport& transport);
    /// True once the backend 101 was validated.
    bool open() const noexcept { return open_; }
    /// The route this session belongs to.
    const RouteRuntime& route() const noexcept { return route_; }
    /// The next client seq the session expects (1 for a new session).
    std::uint64_t expected_client_seq() const noexcept override { return next_client_seq_; }

    /// Client → backend (POST): `first_seq` numbers the first message, the rest follow. All or
    /// nothing: the messages not sent before are forwarded together, or none is. Checked in this
    /// order: Closed (the session is closed, whatever the seq), SeqGap, OverBurst, Busy,
    /// RateLimited.
    SendOutcome send(std::uint64_t first_seq, std::vector<ClientMessage>& messages) override;
    /// DELETE: closes the backend with `code` and `reason` (unless it closed already), gives the
    /// attached transport the close and counts the session as closed. The closed session stays
    /// in the registry for resume_window, like one closed by its backend, so its reconnects
    /// learn that it is closed instead of opening a new one (issue 10). Idempotent.
    void close_by_client(std::uint16_t code, std::string_view reason) override;
    /// True once a DELETE closed the session: every SSE reconnect gets 204.
    bool closed_by_client() const noexcept { return client_closed_; }

    /// Shutdown/drain (Closable): transports end, backend gets 1001.
    void shutdown(bool going_away) override;

    // transports::SessionView
    std::string_view id() const override { return id_; }
    std::string_view protocol() const override { return protocol_; }
    const transports::ReplayBuffer& replay() const override { return replay_; }
    const std::optional<transports::CloseInfo>& close_info() const override { return close_; }
    void delivered(std::uint64_t seq) override;
    void acknowledged(std::uint64_t seq) override;
    void set_transport_full(bool full) override;
    void detach(transports::Transport& transport) override;

  private:
    // BackendHandler
    void on_backend_open(std::string_view protocol, const http::Response& response) override;
    void on_backend_failed(const core::Error& error, unsigned status,
                           const http::Response* response) override;
    void on_backend_read_done() override;
    void on_backend_gone(const core::Error* error) override;
    void on_backend_write_high() override {}
    void on_backend_write_low() override;
    // ws::DecoderHandler: the backend's frames (the session decodes nothing else).
    void on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode message) override;
    void on_data_frame_payload(std::span<const std::byte> bytes) override;
    void on_data_frame_end(bool message_end) override;
    /// Never called: the BackendConnection answers pings itself (ping/pong are per hop).
    void on_ping(std::span<const std::byte> /*payload*/) override {}
    void on_pong(std::span<const std::byte> /*payload*/) override {}
    /// The backend's Close frame.
    void on_close(std::uint16_t code, std::string_view reason) override;

    void backend_ended(std::uint16_t code, std::string reason);
    void notify_transport();
    void update_backpressure();
    void start_resume_timer();
    void on_tick();
    /// Removes the session from the index, tells the transport, closes the backend,
    /// finishes (unless done before) and retires the session from the registry.
    void end(std::string_view why);
    /// Logs the session_closed line and adds the session's counters, once.
    void finish(std::string_view why);

    Context& context_;
    /// The route as it was when this started: reloads leave it alone (it keeps its config).
    std::shared_ptr<const RouteRuntime> snapshot_;
    const RouteRuntime& route_;
    const config::RouteLimits& limits_;
    std::string id_;
    std::string protocol_;                 ///< subprotocol the backend selected
    std::string client_ip_;
    std::unique_ptr<BackendConnection> backend_;  ///< a part: opened by start()
    SessionOpener* opener_ = nullptr;
    transports::Transport* transport_ = nullptr;
    transports::ReplayBuffer replay_;
    std::optional<transports::CloseInfo> close_;
    std::string assembling_;               ///< backend message being assembled
    bool assembling_binary_ = false;
    std::uint64_t delivered_seq_ = 0;      ///< highest seq handed to a client
    std::uint64_t undelivered_bytes_ = 0;  ///< payload bytes with seq > delivered_seq_
    std::uint64_t undelivered_messages_ = 0;  ///< messages with seq > delivered_seq_
    std::uint64_t pause_threshold_ = 0;       ///< bytes
    std::uint64_t pause_messages_ = 0;        ///< messages
    std::uint64_t next_client_seq_ = 1;
    RateLimiter rate_;  ///< client → backend messages (429 + Retry-After when over)
    std::unique_ptr<core::Timer> resume_timer_;
    std::unique_ptr<core::Timer> tick_timer_;
    std::uint64_t started_at_ = 0;
    std::uint64_t msgs_in_ = 0;
    /// wsbridge_messages_total{route,transport="session",direction} cells (Metrics::cell),
    /// counted per message so rates show while the session lives.
    std::uint64_t* msgs_in_cell_ = nullptr;
    std::uint64_t* msgs_out_cell_ = nullptr;
    std::uint64_t msgs_out_ = 0;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    bool open_ = false;
    bool paused_ = false;
    bool transport_full_ = false;
    bool ended_ = false;
    bool client_closed_ = false;  ///< a DELETE closed it
    bool finished_ = false;       ///< finish() ran
    bool client_tls_ = false;     ///< the client reached us over TLS (logs)
};

/// A new session id: 128 random bits, URL-safe base64 (22 characters), prefixed by
/// `instance` + "-" when an instance name is configured.
std::string make_session_id(std::string_view instance);

} // namespace proxy
