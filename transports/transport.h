#pragma once
// The seam between a session and the client transport attached to it (STYLE §1). A session
// (proxy/session/session.h) owns one backend WebSocket connection and a replay buffer; an SSE stream or
// a held long-poll request attaches to it as a Transport, pulls what it has not delivered yet,
// and detaches when its HTTP exchange ends. Sessions see transports only through Transport;
// transports see sessions only through SessionView. tests/support has fakes of both.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transports/replay_buffer.h"

namespace transports {

/// How the backend side of a session ended (SPEC §3: delivered after every earlier message).
struct CloseInfo {
    std::uint16_t code = 1000;
    std::string reason;
};

class Transport;

/// One client → backend message (a POST, or a message on a WebSocket session).
struct ClientMessage {
    bool binary = false;
    std::string payload;
};

/// What became of client messages handed to SessionView::send().
struct SendOutcome {
    /// OverBurst: more new messages than the route's `rate.burst` at once (413 for a POST);
    /// such a batch could never fit in the token bucket.
    enum class Kind : std::uint8_t { Accepted, SeqGap, Closed, OverBurst, Busy, RateLimited } kind =
        Kind::Accepted;
    std::uint64_t retry_after_s = 1;  ///< for Busy / RateLimited: when to retry (≥ 1)
    std::uint64_t expected_seq = 0;  ///< next seq the session expects (after this send)
    std::uint64_t forwarded = 0;     ///< messages forwarded now (duplicates excluded)
};

/// What a transport may see and do of its session. All calls are synchronous and cheap.
class SessionView {
  public:
    /// The session id (the secret that identifies it).
    virtual std::string_view id() const = 0;
    /// The subprotocol the backend selected ("" when none).
    virtual std::string_view protocol() const = 0;
    /// Messages not yet acknowledged or evicted, with their sequence numbers.
    virtual const ReplayBuffer& replay() const = 0;
    /// Set once the session's backend connection ended (closed by the backend, by the client's
    /// DELETE, or by the proxy); transports deliver it after every message.
    virtual const std::optional<CloseInfo>& close_info() const = 0;
    /// The close's own position in the session's sequence: one past the last message (no
    /// message follows a close). SSE writes it as the close event's id, so a reconnect's
    /// Last-Event-ID shows whether the client saw the close (issue 10).
    std::uint64_t close_seq() const { return replay().last_seq() + 1; }
    /// The transport handed every message up to `seq` to its client: SSE wrote them to the
    /// socket, long-poll got them acknowledged. Drives the session's backpressure.
    virtual void delivered(std::uint64_t seq) = 0;
    /// The client acknowledged every message up to `seq` (long-poll): they leave the buffer.
    virtual void acknowledged(std::uint64_t seq) = 0;
    /// The transport's own queue is full (true) or drained (false): while full, the session
    /// stops reading its backend.
    virtual void set_transport_full(bool full) = 0;
    /// The transport's HTTP exchange ended; it must not be called again. Starts the resume
    /// window when no other transport is attached.
    virtual void detach(Transport& transport) = 0;

    /// Client → backend: `first_seq` numbers the first of `messages`, the rest follow. Each
    /// seq is forwarded exactly once, in order; all or nothing (see proxy::Session::send).
    virtual SendOutcome send(std::uint64_t first_seq, std::vector<ClientMessage>& messages) = 0;
    /// The next client seq the session expects (1 for a new session).
    virtual std::uint64_t expected_client_seq() const = 0;
    /// The client closes the session (DELETE, or a WebSocket session's close control): the
    /// backend gets `code` and `reason`, the attached transport on_session_gone().
    virtual void close_by_client(std::uint16_t code, std::string_view reason) = 0;

  protected:
    ~SessionView() = default;
};

/// A client connection attached to a session. Callbacks run synchronously from session code;
/// a transport may detach itself from within them.
class Transport {
  public:
    virtual ~Transport() = default;
    /// New messages (or the close) became available in the session.
    virtual void on_messages() = 0;
    /// A newer request of the same client took over this session: finish at once (long-poll:
    /// answer with no messages; SSE: end the stream). The session has already forgotten this
    /// transport; do not call detach().
    virtual void on_replaced() = 0;
    /// The session is going away (DELETE, shutdown, expiry) with `info` as its final state:
    /// deliver what can be delivered and end. Do not call detach().
    virtual void on_session_gone() = 0;
    /// The backend's write queue drained below its low watermark after send() answered Busy:
    /// a transport that holds client messages may send them now.
    virtual void on_backend_writable() {}
};

} // namespace transports
