#include "transports/mux/mux_poll_transport.h"

#include <algorithm>

#include "transports/mux/codec.h"

namespace transports::mux {

bool MuxPollTransport::Member::has_news() const {
    if (!reset_.empty() || detached_) {
        return true;
    }
    if (session_ == nullptr) {
        return false;
    }
    if (session_->close_info()) {
        return true;
    }
    const ReplayBuffer& replay = session_->replay();
    return replay.last_seq() > ack_ || replay.gap_after(ack_).has_value();
}

void MuxPollTransport::Member::on_messages() {
    if (poll_.started_ && !poll_.done_ && has_news()) {
        poll_.answer(nullptr);
    }
}

void MuxPollTransport::Member::on_replaced() {
    // Another connection took the session: this poll answers at once (SPEC §3), naming it.
    session_ = nullptr;
    detached_ = true;
    if (poll_.started_ && !poll_.done_) {
        poll_.answer(nullptr);
    }
}

void MuxPollTransport::Member::on_session_gone() {
    if (poll_.started_ && !poll_.done_) {
        poll_.answer(this);  // with its messages and close; no detach for it
    }
    session_ = nullptr;
}

MuxPollTransport::MuxPollTransport(proxy::core::Loop& loop, std::uint64_t hold_ms,
                                   long_polling::PollResponder& responder)
    : loop_(loop), hold_ms_(hold_ms), responder_(responder) {}

MuxPollTransport::~MuxPollTransport() = default;

MuxPollTransport::Member& MuxPollTransport::add(SessionView* session, std::string id,
                                                std::uint64_t ack, std::string reset_reason) {
    members_.push_back(std::make_unique<Member>(*this, session, std::move(id), ack));
    Member& m = *members_.back();
    if (session == nullptr) {
        m.reset_ = reset_reason.empty() ? "unknown session" : std::move(reset_reason);
    }
    return m;
}

bool MuxPollTransport::any_news() const {
    return std::any_of(members_.begin(), members_.end(),
                       [](const auto& m) { return m->has_news(); });
}

void MuxPollTransport::start() {
    for (const auto& m : members_) {
        if (m->session_ != nullptr) {
            // An ack beyond what exists cannot be right; clamping keeps every later message
            // deliverable.
            m->ack_ = std::min(m->ack_, m->session_->replay().last_seq());
            m->session_->acknowledged(m->ack_);
        }
    }
    started_ = true;
    if (done_) {
        return;
    }
    if (any_news()) {
        answer(nullptr);
        return;
    }
    hold_ = std::make_unique<proxy::core::Timer>(loop_, [this] { answer(nullptr); });
    hold_->start(hold_ms_);
}

void MuxPollTransport::answer(Member* gone) {
    if (done_) {
        return;
    }
    done_ = true;
    hold_.reset();
    std::vector<PollEntry> entries;
    for (const auto& mp : members_) {
        Member& m = *mp;
        if (!m.has_news()) {
            continue;
        }
        PollEntry e;
        e.session = m.id_;
        if (!m.reset_.empty()) {
            e.reset = m.reset_;
        } else if (m.detached_) {
            e.detached = "replaced";
        } else if (m.session_ != nullptr) {
            const ReplayBuffer& replay = m.session_->replay();
            e.gap = replay.gap_after(m.ack_);
            const auto& stored = replay.messages();
            for (std::size_t i = replay.index_after(m.ack_); i < stored.size(); ++i) {
                e.messages.push_back(long_polling::OutMessage{stored[i].seq, stored[i].binary,
                                                              stored[i].payload});
            }
            if (const auto& info = m.session_->close_info()) {
                e.close = long_polling::Close{info->code, info->reason};
            }
        }
        entries.push_back(std::move(e));
    }
    // Sent is not delivered: each session counts these until the client's next position.
    std::string body = encode_poll(entries);
    for (const auto& mp : members_) {
        Member& m = *mp;
        SessionView* s = m.session_;
        m.session_ = nullptr;
        if (s != nullptr && &m != gone) {
            s->detach(m);
        }
    }
    responder_.respond_poll(std::move(body));
}

void MuxPollTransport::cancel() {
    if (done_) {
        return;
    }
    done_ = true;
    hold_.reset();
    for (const auto& mp : members_) {
        SessionView* s = mp->session_;
        mp->session_ = nullptr;
        if (s != nullptr) {
            s->detach(*mp);
        }
    }
}

} // namespace transports::mux
