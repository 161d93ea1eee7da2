#pragma once
// MuxSseTransport: many sessions' clients reached over one Server-Sent Events response
// (docs/protocol.md, "Multiplexed SSE stream"). Each listed session is attached through its
// own Member (a Transport), so a session sees an ordinary transport and keeps its own replay
// buffer, position, limits and exactly-once rules; the stream interleaves their events, each
// naming its session and seq. A session leaves the stream when it closes (close event), when
// another connection takes it (detached event) or when it goes away; the stream ends when no
// session is left, on the client's EOF, or as a slow consumer (SPEC §5), and every session on
// it then resumes on the client's next request.
//
// Backpressure: while the socket's queue is above its high watermark every member tells its
// session the transport is full, so each session stops reading its backend.
//
// Lifetime: as SseTransport (owns the socket, owned by the Context's registry, retires itself
// through MuxSseOptions::retire). Members live as long as the stream; a member never touches its
// session after on_replaced(), on_session_gone() or its detach.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/core/loop.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "transports/stall_clock.h"
#include "transports/transport.h"

namespace transports::mux {

class MuxSseTransport;

/// Settings of one stream.
struct MuxSseOptions {
    std::string send_url;                 ///< the multiplexed POST URL announced
    std::uint64_t heartbeat_ms = 30'000;
    std::uint64_t stall_ms = 30'000;
    std::uint64_t tick_ms = 15'000;
    std::uint64_t retry_ms = 1'000;
    std::size_t high_watermark = 1024 * 1024;
    std::vector<std::pair<std::string, std::string>> headers;  ///< CORS
    /// Called once when the stream ends as a slow consumer (metrics, log).
    std::function<void(std::size_t queued)> on_slow_consumer;
    /// Called once, as the stream's last act (Context::retire).
    std::function<void(MuxSseTransport&)> retire;
};

/// See the file comment.
class MuxSseTransport final : public proxy::core::DeferredDeletable,
                              private proxy::core::StreamHandler {
  public:
    /// One session on the stream, as the session sees it.
    class Member final : public Transport {
      public:
        Member(MuxSseTransport& stream, SessionView* session, std::string id, std::uint64_t after)
            : stream_(stream), session_(session), id_(std::move(id)), cursor_(after) {}
        void on_messages() override;
        void on_replaced() override;
        void on_session_gone() override;
        /// The session (null for an unknown one, or once it left).
        SessionView* session() const noexcept { return session_; }

      private:
        friend class MuxSseTransport;
        MuxSseTransport& stream_;
        SessionView* session_;
        std::string id_;
        std::uint64_t cursor_;
        bool reset_ = false;     ///< listed but unknown: announced as a reset, nothing else
    };

    MuxSseTransport(proxy::core::Loop& loop, std::unique_ptr<proxy::core::TcpStream> stream,
                    MuxSseOptions options);
    ~MuxSseTransport() override;

    /// Lists a session at position `after` (call before start(), then attach the returned
    /// member to the session). `session` null: unknown, announced with `reset`.
    Member& add(SessionView* session, std::string id, std::uint64_t after,
                std::string reset_reason = {});
    /// Writes the head and the announce, then every session's backlog; starts heartbeats.
    void start();
    /// Keeps `resource` alive until the stream ends (the client's admission slot).
    void hold(std::unique_ptr<proxy::core::DeferredDeletable> resource) {
        held_ = std::move(resource);
    }

  private:
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const proxy::core::Error* error) override;
    void on_write_high() override;
    void on_write_low() override;
    void on_write_error(const proxy::core::Error& error) override;

    /// Writes what every member has, then leaves sessions that closed; ends when none is left.
    void pump();
    /// Writes `m`'s backlog (up to the write batch); true when it has more.
    bool pump_member(Member& m);
    /// pump() for one member: what its session got, its delivered position, its close.
    void pump_one(Member& m);
    /// Takes `m` off the stream (detaching from its session when `detach`).
    void leave(Member& m, bool detach);
    void write_out();
    void on_tick();
    void end();
    std::size_t live_members() const noexcept;

    proxy::core::Loop& loop_;
    std::unique_ptr<proxy::core::TcpStream> stream_;
    MuxSseOptions options_;
    std::vector<std::unique_ptr<Member>> members_;
    std::vector<std::string> resets_;   ///< reset reasons, by member index ("" for none)
    std::unique_ptr<proxy::core::Timer> tick_;
    std::unique_ptr<proxy::core::DeferredDeletable> held_;
    std::string out_;
    std::uint64_t last_write_ = 0;
    std::size_t batch_ = 64 * 1024;  ///< bytes gathered per write
    std::size_t next_ = 0;           ///< member the next round-robin pass starts with
    bool started_ = false;
    bool full_ = false;
    bool pumping_ = false;
    bool ended_ = false;
    StallClock stall_;
};

} // namespace transports::mux
