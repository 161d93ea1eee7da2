#include "proxy/core/loop.h"

#include "proxy/core/send_batch.h"

#include <cstdlib>
#include <uv.h>

namespace proxy::core {

std::byte* BufferPool::take() {
    if (!free_.empty()) {
        std::byte* chunk = free_.back();
        free_.pop_back();
        return chunk;
    }
    return new std::byte[kReadChunkSize];
}

void BufferPool::give_back(std::byte* chunk) noexcept {
    if (chunk == nullptr) {
        return;
    }
    if (free_.size() < kMaxFree) {
        free_.push_back(chunk);
        return;
    }
    delete[] chunk;
}

BufferPool::~BufferPool() {
    for (std::byte* chunk : free_) {
        delete[] chunk;
    }
}

namespace {

void on_check_cb(uv_check_t* handle) noexcept {
    if (auto* loop = static_cast<Loop*>(handle->data)) {
        // The I/O phase is over: send what its callbacks wrote, in one system call.
        loop->flush_sends();
        loop->drain_deferred();
    }
}

void on_prepare_cb(uv_prepare_t* handle) noexcept {
    // About to block: send what timers and close callbacks wrote since the last check.
    if (auto* loop = static_cast<Loop*>(handle->data)) {
        loop->flush_sends();
    }
}

void on_idle_cb(uv_idle_t* /*handle*/) noexcept {
    // Only keeps the loop from blocking in poll while deferred deletions are pending.
}

} // namespace

Loop::Loop()
    : loop_(new uv_loop_t), check_(new uv_check_t), idle_(new uv_idle_t),
      prepare_(new uv_prepare_t), send_batch_(SendBatch::create()) {
    if (uv_loop_init(loop_) != 0) {
        std::abort();
    }
    uv_check_init(loop_, check_);
    check_->data = this;
    uv_check_start(check_, on_check_cb);
    uv_unref(reinterpret_cast<uv_handle_t*>(check_));
    uv_idle_init(loop_, idle_);
    idle_->data = this;
    uv_prepare_init(loop_, prepare_);
    prepare_->data = this;
    uv_prepare_start(prepare_, on_prepare_cb);
    uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
}

Loop::~Loop() {
    close_all();
    if (closed_) {
        delete loop_;
    } // else a handle still points at loop_: leaking it is safer than freeing it under them.
    // Owners that outlive the loop must not unlink themselves from it later.
    for (HandleOwner* owner = owners_; owner != nullptr; owner = owner->next_) {
        owner->loop_ = nullptr;
    }
}

void Loop::run() {
    uv_run(loop_, UV_RUN_DEFAULT);
}

bool Loop::run_once(bool nowait) {
    return uv_run(loop_, nowait ? UV_RUN_NOWAIT : UV_RUN_ONCE) != 0;
}

void Loop::stop() noexcept {
    uv_stop(loop_);
}

std::uint64_t Loop::now() const noexcept {
    return uv_now(loop_);
}

void Loop::update_time() noexcept {
    uv_update_time(loop_);
}

void Loop::flush_sends() noexcept {
    if (send_batch_ != nullptr && send_batch_->pending() > 0) {
        send_batch_->flush();
    }
}

void Loop::defer_delete(std::unique_ptr<DeferredDeletable> object) {
    deferred_.push_back(std::move(object));
    if (!services_closed_ && uv_is_active(reinterpret_cast<uv_handle_t*>(idle_)) == 0) {
        uv_idle_start(idle_, on_idle_cb);
    }
}

void Loop::drain_deferred() noexcept {
    // Destructors may defer further objects: loop until the list stays empty.
    while (!deferred_.empty()) {
        auto batch = std::move(deferred_);
        deferred_.clear();
        batch.clear();
    }
    if (!services_closed_) {
        uv_idle_stop(idle_);
    }
}

HandleOwner::HandleOwner(Loop& loop) noexcept : loop_(&loop), next_(loop.owners_) {
    if (next_ != nullptr) {
        next_->prev_ = this;
    }
    loop.owners_ = this;
    ++loop.owner_count_;
}

HandleOwner::~HandleOwner() {
    if (loop_ == nullptr) {
        return;
    }
    if (prev_ != nullptr) {
        prev_->next_ = next_;
    } else {
        loop_->owners_ = next_;
    }
    if (next_ != nullptr) {
        next_->prev_ = prev_;
    }
    --loop_->owner_count_;
}

void Loop::close_owned_handles() noexcept {
    // close_handles() only calls uv_close(): nothing is freed or unlinked before the close
    // callbacks run in uv_run, so the list is stable while we walk it.
    for (HandleOwner* owner = owners_; owner != nullptr; owner = owner->next_) {
        owner->close_handles();
    }
}

namespace {

/// Handles that no HandleOwner closed: raw uv code outside proxy/core. Their memory belongs to
/// whoever created them, so they can only be closed without a callback, as a last resort.
void close_foreign_cb(uv_handle_t* handle, void* found) noexcept {
    if (uv_is_closing(handle) == 0) {
        *static_cast<bool*>(found) = true;
        uv_close(handle, nullptr);
    }
}

} // namespace

bool Loop::close_all() {
    if (closed_) {
        return true;
    }
    drain_deferred();
    if (!services_closed_) {
        services_closed_ = true;
        check_->data = nullptr;
        idle_->data = nullptr;
        prepare_->data = nullptr;
        uv_close(reinterpret_cast<uv_handle_t*>(prepare_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
        uv_close(reinterpret_cast<uv_handle_t*>(check_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
        uv_close(reinterpret_cast<uv_handle_t*>(idle_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    }
    // Each pass: owners close their handles (those created by the previous pass's callbacks or
    // deferred destructors too); one non-blocking iteration runs the close callbacks, which
    // free the handles, cancel their requests (whose callbacks free them) and free orphaned
    // owners. Usually one pass is enough.
    bool clean = true;
    constexpr int kMaxPasses = 100;
    for (int pass = 0; pass < kMaxPasses; ++pass) {
        close_owned_handles();
        if (pass > 0) {
            bool found = false;
            uv_walk(loop_, close_foreign_cb, &found);
            clean = clean && !found;
        }
        uv_run(loop_, UV_RUN_NOWAIT);
        drain_deferred();
        if (uv_loop_close(loop_) == 0) {
            closed_ = true;
            return clean;
        }
    }
    return false;
}

} // namespace proxy::core
