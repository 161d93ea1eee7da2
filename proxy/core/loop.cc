#include "proxy/core/loop.h"

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
        loop->drain_deferred();
    }
}

void on_idle_cb(uv_idle_t* /*handle*/) noexcept {
    // Only keeps the loop from blocking in poll while deferred deletions are pending.
}

} // namespace

Loop::Loop() : loop_(new uv_loop_t), check_(new uv_check_t), idle_(new uv_idle_t) {
    if (uv_loop_init(loop_) != 0) {
        std::abort();
    }
    uv_check_init(loop_, check_);
    check_->data = this;
    uv_check_start(check_, on_check_cb);
    uv_unref(reinterpret_cast<uv_handle_t*>(check_));
    uv_idle_init(loop_, idle_);
    idle_->data = this;
}

Loop::~Loop() {
    close_all();
    delete loop_;
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

namespace {

void close_walk_cb(uv_handle_t* handle, void* /*arg*/) noexcept {
    if (uv_is_closing(handle) == 0) {
        // A straggler: its owner is gone or never closed it. Close it; the memory of such a
        // handle is owned by its wrapper, whose close callback frees it.
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
        uv_close(reinterpret_cast<uv_handle_t*>(check_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
        uv_close(reinterpret_cast<uv_handle_t*>(idle_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    }
    uv_run(loop_, UV_RUN_NOWAIT);
    drain_deferred();
    int r = uv_loop_close(loop_);
    for (int i = 0; i < 100 && r == UV_EBUSY; ++i) {
        uv_walk(loop_, close_walk_cb, nullptr);
        uv_run(loop_, UV_RUN_NOWAIT);
        drain_deferred();
        r = uv_loop_close(loop_);
    }
    closed_ = r == 0;
    return closed_;
}

} // namespace proxy::core
