#include "tests/support/fake_session.h"

namespace proxy::test {

void FakeSession::acknowledged(std::uint64_t seq) {
    acked_.push_back(seq);
    replay_.ack(seq);
}

void FakeSession::detach(transports::Transport& transport) {
    if (&transport != transport_) {
        ++stray_detaches_;
        return;
    }
    ++detaches_;
    transport_ = nullptr;
}

void FakeSession::attach(transports::Transport& transport) {
    if (transport_ != nullptr && transport_ != &transport) {
        transports::Transport* old = transport_;
        transport_ = nullptr;
        old->on_replaced();
    }
    transport_ = &transport;
}

std::uint64_t FakeSession::store(std::string payload, bool binary) {
    return replay_.push(binary, std::move(payload));
}

std::uint64_t FakeSession::push(std::string payload, bool binary) {
    const std::uint64_t seq = store(std::move(payload), binary);
    if (transport_ != nullptr) {
        transport_->on_messages();
    }
    return seq;
}

void FakeSession::close(std::uint16_t code, std::string reason, bool notify) {
    close_ = transports::CloseInfo{code, std::move(reason)};
    if (notify && transport_ != nullptr) {
        transport_->on_messages();
    }
}

void FakeSession::gone() {
    if (transport_ != nullptr) {
        transports::Transport* t = transport_;
        transport_ = nullptr;
        t->on_session_gone();
    }
}

transports::SendOutcome FakeSession::send(std::uint64_t first_seq,
                                          std::vector<transports::ClientMessage>& messages) {
    transports::SendOutcome out;
    out.expected_seq = next_client_seq_;
    if (answer_) {
        out.kind = *answer_;
        return out;
    }
    if (close_) {
        out.kind = transports::SendOutcome::Kind::Closed;
        return out;
    }
    if (first_seq > next_client_seq_) {
        out.kind = transports::SendOutcome::Kind::SeqGap;
        return out;
    }
    std::uint64_t seq = first_seq;
    for (auto& m : messages) {
        if (seq == next_client_seq_) {
            forwarded_.push_back(std::move(m));
            ++next_client_seq_;
            ++out.forwarded;
        }
        ++seq;
    }
    out.expected_seq = next_client_seq_;
    return out;
}

void FakeSession::close_by_client(std::uint16_t code, std::string_view reason) {
    ++client_closes_;
    if (!close_) {
        close_ = transports::CloseInfo{code, std::string(reason)};
    }
    gone();
}

} // namespace proxy::test
