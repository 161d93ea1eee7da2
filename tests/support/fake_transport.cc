#include "tests/support/fake_transport.h"

namespace proxy::test {

void FakeTransport::on_messages() {
    ++messages_calls_;
    pull();
}

void FakeTransport::on_replaced() {
    ++replaced_calls_;
    session_ = nullptr;
}

void FakeTransport::on_session_gone() {
    ++gone_calls_;
    pull();
    session_ = nullptr;
}

void FakeTransport::pull() {
    if (session_ == nullptr) {
        return;
    }
    const transports::ReplayBuffer& replay = session_->replay();
    if (const auto gap = replay.gap_after(cursor_)) {
        gaps_.push_back(*gap);
        cursor_ = gap->to;
    }
    const auto& stored = replay.messages();
    for (std::size_t i = replay.index_after(cursor_); i < stored.size(); ++i) {
        messages_.push_back(TakenMessage{stored[i].seq, stored[i].binary, stored[i].payload});
        cursor_ = stored[i].seq;
    }
    // The close holds the position after the last message: taken only once every message was.
    if (!close_ && session_->close_info() && cursor_ >= replay.last_seq()) {
        close_ = *session_->close_info();
        close_seq_ = session_->close_seq();
    }
    if (auto_deliver) {
        session_->delivered(cursor_);
    }
}

void FakeTransport::deliver(std::uint64_t seq) {
    if (session_ != nullptr) {
        session_->delivered(seq);
    }
}

void FakeTransport::ack(std::uint64_t seq) {
    if (session_ != nullptr) {
        session_->acknowledged(seq);
    }
}

void FakeTransport::set_full(bool full) {
    if (session_ != nullptr) {
        session_->set_transport_full(full);
    }
}

void FakeTransport::detach() {
    if (session_ != nullptr) {
        transports::SessionView* s = session_;
        session_ = nullptr;
        s->detach(*this);
    }
}

std::vector<std::string> FakeTransport::payloads() const {
    std::vector<std::string> out;
    out.reserve(messages_.size());
    for (const auto& m : messages_) {
        out.push_back(m.payload);
    }
    return out;
}

} // namespace proxy::test
