#pragma once
// Heartbeat derivation (SPEC §4), a pure function so it is documented and tested in one place.
//
// A route's idle_timeout T is the shortest idle timeout of anything between a peer and the
// proxy (nginx's proxy_read_timeout and AWS ALB both default to 60 s). For each hop:
//   - ping_after = T/2: a ping (or SSE comment) goes out once nothing was written for T/2;
//   - tick = T/4: how often the connection's timer checks, so the longest silence on the wire
//     is at most ping_after + tick = 3T/4 < T, whatever the timer phase;
//   - pong_timeout = T/2: after a ping, the peer must send something (its pong or any frame)
//     within T/2, else it is considered dead and closed.
// Traffic resets nothing explicitly: the tick compares against the last write and read times,
// so busy connections never send a heartbeat.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace proxy {

/// Derived intervals in milliseconds.
struct HeartbeatPlan {
    std::uint64_t ping_after = 0;
    std::uint64_t pong_timeout = 0;
    std::uint64_t tick = 0;
};

/// The plan for an idle timeout. Tick is at least 10 ms.
constexpr HeartbeatPlan derive_heartbeat(std::chrono::milliseconds idle_timeout) noexcept {
    const auto t = static_cast<std::uint64_t>(std::max<std::int64_t>(idle_timeout.count(), 40));
    return HeartbeatPlan{t / 2, t / 2, std::max<std::uint64_t>(t / 4, 10)};
}

} // namespace proxy
