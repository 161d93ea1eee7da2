#include "transports/replay_buffer.h"

#include <algorithm>

namespace transports {

std::uint64_t ReplayBuffer::push(bool binary, std::string payload, std::size_t* evicted) {
    const std::uint64_t seq = next_seq_++;
    bytes_ += payload.size();
    messages_.push_back(StoredMessage{seq, binary, std::move(payload)});
    std::size_t lost = 0;
    while (messages_.size() > 1 &&
           (bytes_ > max_bytes_ || messages_.size() > max_messages_)) {
        if (messages_.front().seq > acked_) {
            ++lost;
        }
        bytes_ -= messages_.front().payload.size();
        messages_.pop_front();
    }
    if (evicted != nullptr) {
        *evicted = lost;
    }
    return seq;
}

void ReplayBuffer::ack(std::uint64_t seq) noexcept {
    seq = std::min(seq, last_seq());
    acked_ = std::max(acked_, seq);
    while (!messages_.empty() && messages_.front().seq <= seq) {
        bytes_ -= messages_.front().payload.size();
        messages_.pop_front();
    }
}

std::optional<Gap> ReplayBuffer::gap_after(std::uint64_t after) const noexcept {
    after = std::min(after, last_seq());
    const std::uint64_t first = first_seq();
    if (after + 1 >= first) {
        return std::nullopt;
    }
    return Gap{after + 1, first - 1};
}

std::size_t ReplayBuffer::index_after(std::uint64_t after) const noexcept {
    if (messages_.empty() || after < messages_.front().seq) {
        return 0;
    }
    const std::uint64_t offset = after - messages_.front().seq + 1;
    return static_cast<std::size_t>(std::min<std::uint64_t>(offset, messages_.size()));
}

std::uint64_t ReplayBuffer::bytes_after(std::uint64_t after) const noexcept {
    std::uint64_t total = 0;
    for (std::size_t i = index_after(after); i < messages_.size(); ++i) {
        total += messages_[i].payload.size();
    }
    return total;
}

} // namespace transports
