#pragma once
// PollTransport: one held long-poll request of a session (SPEC §3). On start it acknowledges
// everything up to the client's `ack`; then it answers as soon as any message with seq > ack
// exists (all of them in one response, after a gap marker when some are gone), with the close
// marker once the backend closed and everything before it is included, or with no messages
// when the hold time passes or a newer poll of the same session replaces it.
//
// The HTTP connection that received the poll owns this object and receives the answer through
// PollResponder; the transport detaches itself from the session when it answers.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "proxy/core/loop.h"
#include "proxy/core/timer.h"
#include "transports/long_polling/codec.h"
#include "transports/transport.h"

namespace transports::long_polling {

/// Where a poll's answer goes (the HTTP connection holding the request).
class PollResponder {
  public:
    virtual ~PollResponder() = default;
    /// The 200 JSON body to send. Called at most once, possibly from inside session callbacks.
    virtual void respond_poll(std::string body) = 0;
};

/// See the file comment.
class PollTransport final : public Transport, public proxy::core::DeferredDeletable {
  public:
    /// `reset` is set when the client polled an unknown session and `session` is the new one.
    PollTransport(proxy::core::Loop& loop, SessionView& session, std::uint64_t ack,
                  std::optional<Reset> reset, std::uint64_t hold_ms, PollResponder& responder);
    ~PollTransport() override;

    /// Acknowledges `ack`, then answers at once if there is anything to say, else holds.
    /// The caller must have attached this transport to the session before.
    void start();
    /// The client went away: detach without answering. Idempotent.
    void cancel();
    /// True once answered or cancelled.
    bool done() const noexcept { return done_; }

    // Transport
    void on_messages() override;
    void on_replaced() override;
    void on_session_gone() override;

  private:
    /// Sends what the session has for this client (possibly nothing) and detaches.
    void answer(bool detach);
    /// True when an answer now would carry something.
    bool has_news() const;

    proxy::core::Loop& loop_;
    SessionView* session_;
    std::uint64_t ack_;
    std::optional<Reset> reset_;
    std::uint64_t hold_ms_;
    PollResponder& responder_;
    std::unique_ptr<proxy::core::Timer> hold_;
    bool done_ = false;
};

} // namespace transports::long_polling
