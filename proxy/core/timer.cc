#include "proxy/core/timer.h"

#include <uv.h>

namespace proxy::core {
namespace {

void timer_cb(uv_timer_t* handle) noexcept {
    if (auto* self = static_cast<Timer*>(handle->data)) {
        self->fire();
    }
}

void timer_closed_cb(uv_handle_t* handle) noexcept {
    delete reinterpret_cast<uv_timer_t*>(handle);
}

} // namespace

Timer::Timer(Loop& loop, std::function<void()> on_fire)
    : HandleOwner(loop), timer_(new uv_timer_t), on_fire_(std::move(on_fire)) {
    uv_timer_init(loop.raw(), timer_);
    timer_->data = this;
}

Timer::~Timer() {
    close_handles();
}

void Timer::close_handles() noexcept {
    if (timer_ == nullptr) {
        return;
    }
    timer_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), timer_closed_cb);
    timer_ = nullptr;
}

void Timer::start(std::uint64_t timeout_ms, std::uint64_t repeat_ms) noexcept {
    if (timer_ != nullptr) {
        uv_timer_start(timer_, timer_cb, timeout_ms, repeat_ms);
    }
}

void Timer::stop() noexcept {
    if (timer_ != nullptr) {
        uv_timer_stop(timer_);
    }
}

void Timer::unref() noexcept {
    if (timer_ != nullptr) {
        uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
    }
}

bool Timer::active() const noexcept {
    return timer_ != nullptr && uv_is_active(reinterpret_cast<const uv_handle_t*>(timer_)) != 0;
}

void Timer::fire() {
    on_fire_();
}

} // namespace proxy::core
