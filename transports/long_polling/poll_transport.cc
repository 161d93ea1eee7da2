#include "transports/long_polling/poll_transport.h"

#include <vector>

namespace transports::long_polling {

PollTransport::PollTransport(proxy::core::Loop& loop, SessionView& session, std::uint64_t ack,
                             std::optional<Reset> reset, std::uint64_t hold_ms,
                             PollResponder& responder)
    : loop_(loop),
      session_(&session),
      ack_(ack),
      reset_(std::move(reset)),
      hold_ms_(hold_ms),
      responder_(responder) {}

PollTransport::~PollTransport() = default;

void PollTransport::start() {
    // An ack beyond what exists cannot be right; clamping keeps every later message deliverable.
    ack_ = std::min(ack_, session_->replay().last_seq());
    session_->acknowledged(ack_);
    if (session_ == nullptr || done_) {
        return;
    }
    if (has_news()) {
        answer(true);
        return;
    }
    hold_ = std::make_unique<proxy::core::Timer>(loop_, [this] { answer(true); });
    hold_->start(hold_ms_);
}

bool PollTransport::has_news() const {
    if (reset_ || session_->close_info()) {
        return true;
    }
    // A gap is news too: the client must learn at once that a range is gone.
    const ReplayBuffer& replay = session_->replay();
    return replay.last_seq() > ack_ || replay.gap_after(ack_).has_value();
}

void PollTransport::answer(bool detach) {
    if (done_) {
        return;
    }
    done_ = true;
    hold_.reset();
    std::string body;
    if (session_ == nullptr) {
        body = encode_poll_response({}, std::nullopt, reset_, std::nullopt);
    } else {
        const ReplayBuffer& replay = session_->replay();
        std::optional<Gap> gap;
        gap = replay.gap_after(ack_);
        std::vector<OutMessage> out;
        const auto& stored = replay.messages();
        for (std::size_t i = replay.index_after(ack_); i < stored.size(); ++i) {
            out.push_back(OutMessage{stored[i].seq, stored[i].binary, stored[i].payload});
        }
        std::optional<Close> close;
        if (const auto& info = session_->close_info()) {
            close = Close{info->code, info->reason};
        }
        // Sent is not delivered: only the client's next `ack` proves receipt, so these stay
        // counted against the session's backpressure threshold until then.
        body = encode_poll_response(out, gap, reset_, close);
        if (detach) {
            SessionView* s = session_;
            session_ = nullptr;
            s->detach(*this);
        }
    }
    session_ = nullptr;
    responder_.respond_poll(std::move(body));
}

void PollTransport::cancel() {
    if (done_) {
        return;
    }
    done_ = true;
    hold_.reset();
    if (session_ != nullptr) {
        SessionView* s = session_;
        session_ = nullptr;
        s->detach(*this);
    }
}

void PollTransport::on_messages() {
    if (!done_ && session_ != nullptr && has_news()) {
        answer(true);
    }
}

void PollTransport::on_replaced() {
    // A newer poll answers this one at once with no messages (SPEC §3).
    session_ = nullptr;
    answer(false);
}

void PollTransport::on_session_gone() {
    answer(false);
    session_ = nullptr;
}

} // namespace transports::long_polling
