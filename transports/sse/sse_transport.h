#pragma once
// SseTransport: a session's client reached over one Server-Sent Events response (SPEC §3).
// Writes the response head, the announce event (after a reset event when the client asked for
// an unknown session), then every message after the client's position, with an explicit gap
// event where the replay buffer no longer holds what the client missed, then streams new
// messages as the session gets them. Ends with a close event after the last message once the
// backend closed. Heartbeat comments keep intermediaries from timing out a quiet stream.
//
// Backpressure: writing stops while the socket's queue is above its high watermark; the
// session is told (set_transport_full) and stops reading its backend. A client that stays
// behind past twice the watermark, or that drains nothing for stall_ms while over it, gets its
// stream ended as a slow consumer (SPEC §5); it resumes with Last-Event-ID.
//
// Lifetime: owns the client socket. It is owned by whoever created it (the proxy: the Context's
// registry, loop.h rule 2) and never by itself: when the stream ends it calls
// SseOptions::retire as its last act, and its owner destroys it at a safe point (it is still on
// the stack then). It never touches the session after on_replaced()/on_session_gone() or its
// own detach.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/core/loop.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "transports/stall_clock.h"
#include "transports/transport.h"

namespace transports::sse {

class SseTransport;

/// Settings of one stream.
struct SseOptions {
    std::string send_url;                 ///< POST URL announced to the client
    std::uint64_t heartbeat_ms = 30'000;  ///< comment after this much write silence
    std::uint64_t stall_ms = 30'000;      ///< a full queue that drains nothing this long ends
    /// Called once when the stream is ended as a slow consumer (metrics, log).
    std::function<void(std::size_t queued)> on_slow_consumer;
    std::uint64_t tick_ms = 15'000;       ///< how often silence is checked
    std::uint64_t retry_ms = 1'000;       ///< EventSource reconnection delay
    std::size_t high_watermark = 1024 * 1024;
    /// Extra response headers (CORS).
    std::vector<std::pair<std::string, std::string>> headers;
    /// When set, the client asked for this unknown session: a reset event comes first.
    std::optional<std::string> reset_reason;
    /// Called once, as the last act of a stream that ended: its owner ends its life, not before
    /// the current callback stack unwinds (the proxy passes Context::retire, which defers the
    /// deletion). Unset: the owner learns nothing and destroys the stream when it likes.
    std::function<void(SseTransport&)> retire;
};

/// See the file comment.
class SseTransport final : public Transport,
                           public proxy::core::DeferredDeletable,
                           private proxy::core::StreamHandler {
  public:
    /// Takes the client socket (its request fully read). `after_seq` is the client's position
    /// (0 for a new stream). Call start() next, after attaching to the session.
    SseTransport(proxy::core::Loop& loop, std::unique_ptr<proxy::core::TcpStream> stream,
                 SessionView& session, std::uint64_t after_seq, SseOptions options);
    ~SseTransport() override;

    /// Writes the head, announce (and reset/gap) and the backlog; starts heartbeats.
    void start();
    /// Keeps `resource` alive until the stream ends (the client's admission slot).
    void hold(std::unique_ptr<proxy::core::DeferredDeletable> resource) {
        held_ = std::move(resource);
    }

    // Transport
    void on_messages() override;
    void on_replaced() override;
    void on_session_gone() override;

  private:
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const proxy::core::Error* error) override;
    void on_write_high() override;
    void on_write_low() override;
    void on_write_error(const proxy::core::Error& error) override;

    /// Writes messages after cursor_ while the socket takes them, then the close if due.
    void pump();
    void write(const std::string& bytes);
    void on_tick();
    /// Ends the stream of a client that stays behind (SPEC §5 slow consumer; resumable).
    void end_slow_consumer();
    /// Ends the stream (Flush), detaching from the session when `detach`.
    void end(bool detach);

    proxy::core::Loop& loop_;
    std::unique_ptr<proxy::core::TcpStream> stream_;
    SessionView* session_;
    std::uint64_t cursor_;
    SseOptions options_;
    std::unique_ptr<proxy::core::Timer> tick_;
    std::string out_;
    std::unique_ptr<proxy::core::DeferredDeletable> held_;
    std::uint64_t last_write_ = 0;
    bool full_ = false;
    bool session_going_ = false;  ///< in on_session_gone(): never call the session back
    bool ended_ = false;
    StallClock stall_;  ///< slow consumer: full and no drain for stall_ms
};

} // namespace transports::sse
