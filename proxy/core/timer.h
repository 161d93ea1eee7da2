#pragma once
// One-shot/repeating timer over uv_timer_t. The handle is freed in its close callback; the
// destructor closes it, after which the callback never fires (STYLE §2.2).

#include <cstdint>
#include <functional>

#include "proxy/core/loop.h"

struct uv_timer_s;

namespace proxy::core {

/// A timer owned by one object. The callback runs on the loop, never synchronously from
/// start(). Destroying the Timer cancels it. After Loop::close_all() the timer is closed:
/// start() does nothing and active() is false.
class Timer : private HandleOwner {
  public:
    Timer(Loop& loop, std::function<void()> on_fire);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    /// (Re)starts: fires once after `timeout_ms`, then every `repeat_ms` when non-zero.
    void start(std::uint64_t timeout_ms, std::uint64_t repeat_ms = 0) noexcept;
    /// Stops without firing. Idempotent.
    void stop() noexcept;
    /// Lets the loop exit while this timer is the only active handle.
    void unref() noexcept;
    /// True while started.
    bool active() const noexcept;

    // Trampoline target.
    void fire();

  private:
    void close_handles() noexcept override;

    uv_timer_s* timer_;  ///< null once closed
    std::function<void()> on_fire_;
};

} // namespace proxy::core
