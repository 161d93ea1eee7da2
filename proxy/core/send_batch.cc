#include "proxy/core/send_batch.h"

#include <cerrno>
#include <cstdlib>
#include <liburing.h>
#include <string_view>
#include <sys/socket.h>

namespace proxy::core {

namespace {

/// Ring size: one round sends for up to this many streams (more wait for the next round).
constexpr unsigned kEntries = 256;

bool disabled_by_environment() noexcept {
    const char* v = std::getenv("WSBRIDGE_IO_URING");
    if (v == nullptr) {
        return false;
    }
    const std::string_view s(v);
    return s == "0" || s == "off" || s == "no" || s == "false";
}

} // namespace

struct SendBatch::Ring {
    io_uring ring{};
    ~Ring() { io_uring_queue_exit(&ring); }
};

std::unique_ptr<SendBatch> SendBatch::create() {
    if (disabled_by_environment()) {
        return nullptr;
    }
    std::unique_ptr<SendBatch> batch(new SendBatch);
    if (!batch->setup(kEntries)) {
        return nullptr;
    }
    return batch;
}

SendBatch::SendBatch() = default;

SendBatch::~SendBatch() {
    teardown();
}

bool SendBatch::setup(unsigned entries) {
    auto ring = std::make_unique<Ring>();
    io_uring_params p{};
    // Continue a round past a request that fails to prepare (a closed fd); one issuer; no
    // task-work interrupts (every request completes inline anyway). Older kernels reject
    // some flags: retry without them.
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    int r = io_uring_queue_init_params(entries, &ring->ring, &p);
    if (r == -EINVAL) {
        p = io_uring_params{};
        r = io_uring_queue_init_params(entries, &ring->ring, &p);
    }
    if (r < 0) {
        ring.release();  // liburing leaves nothing to free after a failed init
        return false;
    }
    entries_ = p.sq_entries;
    ring_ = std::move(ring);
    round_.reserve(entries_);
    results_.reserve(entries_);
    return true;
}

void SendBatch::teardown() noexcept {
    ring_.reset();
}

void SendBatch::add(BatchedSender* sender) {
    if (sender->batch_index_ != BatchedSender::kNone) {
        return;
    }
    sender->batch_index_ = pending_.size();
    sender->batch_in_round_ = false;
    pending_.push_back(sender);
    ++pending_count_;
}

void SendBatch::remove(BatchedSender* sender) noexcept {
    const std::size_t i = sender->batch_index_;
    if (i == BatchedSender::kNone) {
        return;
    }
    if (sender->batch_in_round_) {
        round_[i] = nullptr;
    } else {
        pending_[i] = nullptr;
        --pending_count_;
    }
    sender->batch_index_ = BatchedSender::kNone;
    sender->batch_in_round_ = false;
}

void SendBatch::submit_round() noexcept {
    const auto n = static_cast<unsigned>(round_.size());
    results_.assign(n, -EAGAIN);
    if (!ring_) {
        return;
    }
    io_uring* ring = &ring_->ring;
    unsigned queued = 0;
    for (unsigned i = 0; i < n; ++i) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        if (sqe == nullptr) {
            break;  // cannot happen: a round is at most the ring's size and starts empty
        }
        BatchedSender* s = round_[i];
        const std::span<const std::byte> bytes = s->batch_bytes();
        io_uring_prep_send(sqe, s->batch_fd(), bytes.data(), bytes.size(),
                           MSG_DONTWAIT | MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, i);
        ++queued;
    }

    // Every request completes inline (MSG_DONTWAIT), so waiting for all of them never blocks:
    // one io_uring_enter submits the round and reaps it.
    unsigned completed = 0;
    while (completed < queued) {
        const int r = io_uring_submit_and_wait(ring, queued - completed);
        ++enters_;
        const unsigned before = completed;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(ring, head, cqe) {
            const std::uint64_t i = io_uring_cqe_get_data64(cqe);
            if (i < n) {
                results_[i] = cqe->res;
                ++completed;
            }
            ++seen;
        }
        io_uring_cq_advance(ring, seen);
        // Requests that ran have their results above. A failed call, or one that neither
        // submitted nor completed anything, leaves the ring in a state not worth trusting:
        // drop it, so that no request can linger; what did not run reports -EAGAIN and its
        // bytes fall back to the stream's own write path.
        const bool stuck = r == 0 && completed == before;
        if ((r < 0 && r != -EINTR) || stuck) {
            sends_ += completed;
            teardown();
            return;
        }
    }
    sends_ += queued;
}

void SendBatch::flush() noexcept {
    while (pending_count_ > 0) {
        // Move up to entries_ live senders from pending_ into this round.
        round_.clear();
        std::size_t taken = 0;
        const std::size_t limit = entries_ == 0 ? pending_.size() : entries_;
        for (; taken < pending_.size() && round_.size() < limit; ++taken) {
            BatchedSender* s = pending_[taken];
            if (s == nullptr) {
                continue;
            }
            s->batch_index_ = round_.size();
            s->batch_in_round_ = true;
            round_.push_back(s);
            --pending_count_;
        }
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken));
        for (std::size_t i = 0; i < pending_.size(); ++i) {
            if (pending_[i] != nullptr) {
                pending_[i]->batch_index_ = i;
            }
        }
        if (round_.empty()) {
            break;
        }
        submit_round();
        // Report in order. A callback may remove later senders of this round (null) or add
        // senders (pending_, a later round).
        for (std::size_t i = 0; i < round_.size(); ++i) {
            BatchedSender* s = round_[i];
            if (s == nullptr) {
                continue;
            }
            round_[i] = nullptr;
            s->batch_index_ = BatchedSender::kNone;
            s->batch_in_round_ = false;
            s->batch_done(results_[i]);
        }
        round_.clear();
    }
    if (pending_count_ == 0) {
        pending_.clear();
    }
}

} // namespace proxy::core
