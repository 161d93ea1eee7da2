#include "proxy/core/send_batch.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <linux/io_uring.h>
#include <string_view>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace proxy::core {

namespace {

/// Ring size: one round sends for up to this many streams (more wait for the next round).
constexpr unsigned kEntries = 256;

int sys_setup(unsigned entries, io_uring_params* params) noexcept {
    return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) noexcept {
    return static_cast<int>(
        syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0));
}

bool disabled_by_environment() noexcept {
    const char* v = std::getenv("WSBRIDGE_IO_URING");
    if (v == nullptr) {
        return false;
    }
    const std::string_view s(v);
    return s == "0" || s == "off" || s == "no" || s == "false";
}

/// Maps one region of the ring `fd`; null on failure.
void* map_ring(int fd, std::size_t len, off_t offset) noexcept {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
    return p == MAP_FAILED ? nullptr : p;
}

unsigned load_acquire(const unsigned* p) noexcept {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void store_release(unsigned* p, unsigned v) noexcept {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

} // namespace

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

SendBatch::~SendBatch() {
    teardown();
}

bool SendBatch::setup(unsigned entries) {
    io_uring_params p{};
    // Continue a round past a request that fails to prepare (a closed fd); one issuer; no
    // task-work interrupts (every request completes inline anyway). Older kernels reject
    // some flags: retry without them.
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    int fd = sys_setup(entries, &p);
    if (fd < 0 && errno == EINVAL) {
        p = io_uring_params{};
        fd = sys_setup(entries, &p);
    }
    if (fd < 0) {
        return false;
    }
    fd_ = fd;
    entries_ = p.sq_entries;
    sq_map_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_map_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) {
        sq_map_len_ = cq_map_len_ = std::max(sq_map_len_, cq_map_len_);
    }
    sqes_map_len_ = p.sq_entries * sizeof(io_uring_sqe);
    sq_map_ = map_ring(fd, sq_map_len_, IORING_OFF_SQ_RING);
    cq_map_ = single || sq_map_ == nullptr ? sq_map_
                                           : map_ring(fd, cq_map_len_, IORING_OFF_CQ_RING);
    sqes_map_ = map_ring(fd, sqes_map_len_, IORING_OFF_SQES);
    if (sq_map_ == nullptr || cq_map_ == nullptr || sqes_map_ == nullptr) {
        teardown();
        return false;
    }
    auto* sq = static_cast<char*>(sq_map_);
    auto* cq = static_cast<char*>(cq_map_);
    sq_tail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sq_mask_ = reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    cq_mask_ = reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
    cqes_ = cq + p.cq_off.cqes;
    sqes_ = sqes_map_;
    round_.reserve(entries_);
    results_.reserve(entries_);
    return true;
}

void SendBatch::teardown() noexcept {
    if (sqes_map_ != nullptr) {
        munmap(sqes_map_, sqes_map_len_);
        sqes_map_ = nullptr;
    }
    if (cq_map_ != nullptr && cq_map_ != sq_map_) {
        munmap(cq_map_, cq_map_len_);
    }
    cq_map_ = nullptr;
    if (sq_map_ != nullptr) {
        munmap(sq_map_, sq_map_len_);
        sq_map_ = nullptr;
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
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
    if (fd_ < 0) {
        return;
    }
    auto* sqes = static_cast<io_uring_sqe*>(sqes_);
    const unsigned mask = *sq_mask_;
    unsigned tail = *sq_tail_;
    unsigned queued = 0;
    for (unsigned i = 0; i < n; ++i) {
        BatchedSender* s = round_[i];
        const std::span<const std::byte> bytes = s->batch_bytes();
        const unsigned idx = tail & mask;
        io_uring_sqe* sqe = &sqes[idx];
        std::memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = IORING_OP_SEND;
        sqe->fd = s->batch_fd();
        sqe->addr = reinterpret_cast<std::uintptr_t>(bytes.data());
        sqe->len = static_cast<std::uint32_t>(bytes.size());
        sqe->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
        sqe->user_data = i;
        sq_array_[idx] = idx;
        ++tail;
        ++queued;
    }
    store_release(sq_tail_, tail);

    // Every request completes inline (MSG_DONTWAIT), so waiting for all of them never blocks.
    unsigned to_submit = queued;
    unsigned completed = 0;
    while (completed < queued) {
        const int r = sys_enter(fd_, to_submit, queued - completed, IORING_ENTER_GETEVENTS);
        const int err = r < 0 ? errno : 0;
        ++enters_;
        if (r > 0) {
            to_submit -= std::min(to_submit, static_cast<unsigned>(r));
        }
        const unsigned before = completed;
        auto* cqes = static_cast<io_uring_cqe*>(cqes_);
        unsigned head = *cq_head_;
        const unsigned cq_tail = load_acquire(cq_tail_);
        const unsigned cq_mask = *cq_mask_;
        while (head != cq_tail) {
            const io_uring_cqe& cqe = cqes[head & cq_mask];
            if (cqe.user_data < n) {
                results_[cqe.user_data] = cqe.res;
                ++completed;
            }
            ++head;
        }
        store_release(cq_head_, head);
        // Requests that ran have their results above. A failed call, or one that neither
        // submitted nor completed anything, leaves the ring in a state not worth trusting:
        // drop it, so that no request can linger; what did not run reports -EAGAIN and its
        // bytes fall back to the stream's own write path.
        const bool stuck = r == 0 && completed == before;
        if ((r < 0 && err != EINTR) || stuck) {
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
