#pragma once
// Token bucket for client message rates (SPEC §5, `rate: {messages_per_second, burst}`).
// Pure: time is passed in as `now` (ms), so it is unit-tested without a loop.

#include <algorithm>
#include <cstdint>

#include "config/config.h"

namespace proxy {

/// Starts full (`burst` tokens); refills at `messages_per_second`; each message takes one.
class RateLimiter {
  public:
    RateLimiter(const config::Rate& rate, std::uint64_t now) noexcept
        : per_ms_(rate.messages_per_second / 1000.0),
          burst_(static_cast<double>(rate.burst)),
          tokens_(static_cast<double>(rate.burst)),
          last_(now) {}

    /// Takes one token at time `now`. Returns false (and takes nothing) when the bucket is
    /// empty: the sender is over its rate.
    bool take(std::uint64_t now) noexcept {
        refill(now);
        if (tokens_ < 1.0) {
            return false;
        }
        tokens_ -= 1.0;
        return true;
    }

    /// Takes `n` tokens at once, or none (returns false) when fewer are available.
    bool take(std::uint64_t now, std::uint64_t n) noexcept {
        refill(now);
        if (tokens_ < static_cast<double>(n)) {
            return false;
        }
        tokens_ -= static_cast<double>(n);
        return true;
    }

    /// Milliseconds until one token is available at time `now` (0 when one is). For
    /// `Retry-After` (rounded up to whole seconds by the caller).
    std::uint64_t wait_ms(std::uint64_t now) noexcept {
        refill(now);
        if (tokens_ >= 1.0 || per_ms_ <= 0.0) {
            return 0;
        }
        return static_cast<std::uint64_t>((1.0 - tokens_) / per_ms_) + 1;
    }

  private:
    void refill(std::uint64_t now) noexcept {
        if (now > last_) {
            tokens_ = std::min(burst_, tokens_ + static_cast<double>(now - last_) * per_ms_);
            last_ = now;
        }
    }

    double per_ms_;
    double burst_;
    double tokens_;
    std::uint64_t last_;
};

} // namespace proxy
