#pragma once
// MuxPollTransport: one held multiplexed poll (docs/protocol.md, "Multiplexed poll"). Each
// listed session is attached through its own Member; on start each acknowledges its position.
// The poll answers as soon as any session has something for the client (messages, a gap, its
// close, or another connection taking it), with every session that has something, or with
// `"sessions":[]` when the hold time passes. Answering detaches every member.
//
// The HTTP connection that received the poll owns this object and gets the answer through
// long_polling::PollResponder.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/core/loop.h"
#include "proxy/core/timer.h"
#include "transports/long_polling/poll_transport.h"
#include "transports/transport.h"

namespace transports::mux {

/// See the file comment.
class MuxPollTransport final : public proxy::core::DeferredDeletable {
  public:
    /// One session of the poll, as the session sees it.
    class Member final : public Transport {
      public:
        Member(MuxPollTransport& poll, SessionView* session, std::string id, std::uint64_t ack)
            : poll_(poll), session_(session), id_(std::move(id)), ack_(ack) {}
        void on_messages() override;
        void on_replaced() override;
        void on_session_gone() override;
        SessionView* session() const noexcept { return session_; }

      private:
        friend class MuxPollTransport;
        bool has_news() const;
        MuxPollTransport& poll_;
        SessionView* session_;
        std::string id_;
        std::uint64_t ack_;
        std::string reset_;       ///< unknown session: its reason
        bool detached_ = false;   ///< another connection took it
    };

    MuxPollTransport(proxy::core::Loop& loop, std::uint64_t hold_ms,
                     long_polling::PollResponder& responder);
    ~MuxPollTransport() override;

    /// Lists a session (before start(); attach the returned member to it). `session` null: an
    /// unknown session, answered with `reset_reason`.
    Member& add(SessionView* session, std::string id, std::uint64_t ack, std::string reset_reason);
    /// Acknowledges every position, then answers at once if there is anything, else holds.
    void start();
    /// The client went away: detach every member without answering. Idempotent.
    void cancel();
    bool done() const noexcept { return done_; }

  private:
    /// Builds the answer (`gone`: the member whose session is going; it is not detached).
    void answer(Member* gone);
    bool any_news() const;

    proxy::core::Loop& loop_;
    std::uint64_t hold_ms_;
    long_polling::PollResponder& responder_;
    std::vector<std::unique_ptr<Member>> members_;
    std::unique_ptr<proxy::core::Timer> hold_;
    bool started_ = false;
    bool done_ = false;
};

} // namespace transports::mux
