// Tests for proxy/heartbeat.h: the derivation documented there (SPEC §4). With idle timeout T:
// ping_after = T/2, pong_timeout = T/2, tick = T/4, so the longest silence on the wire,
// ping_after + tick, stays below T.

#include "proxy/heartbeat.h"

#include <chrono>
#include <doctest/doctest.h>

namespace proxy {
namespace {

using std::chrono::milliseconds;

// The derivation is constexpr: the documented example holds at compile time.
static_assert(derive_heartbeat(milliseconds(60'000)).ping_after == 30'000);
static_assert(derive_heartbeat(milliseconds(60'000)).pong_timeout == 30'000);
static_assert(derive_heartbeat(milliseconds(60'000)).tick == 15'000);

TEST_CASE("derive_heartbeat for nginx's and ALB's 60 s default") {
    const HeartbeatPlan p = derive_heartbeat(milliseconds(60'000));
    CHECK(p.ping_after == 30'000);
    CHECK(p.pong_timeout == 30'000);
    CHECK(p.tick == 15'000);
    CHECK(p.ping_after + p.tick == 45'000);  // 3T/4: the longest silence on the wire
}

TEST_CASE("derive_heartbeat keeps ping_after + tick below the idle timeout for every value") {
    // Every millisecond from the clamp (40 ms) past the config minimum (100 ms) to 10 s, then
    // larger values up to a day.
    auto check = [](std::int64_t t) {
        const HeartbeatPlan p = derive_heartbeat(milliseconds(t));
        const auto timeout = static_cast<std::uint64_t>(t);
        INFO("idle_timeout = ", t, " ms: ping_after ", p.ping_after, ", tick ", p.tick,
             ", pong_timeout ", p.pong_timeout);
        CHECK(p.ping_after + p.tick < timeout);
        CHECK(p.ping_after == timeout / 2);
        CHECK(p.pong_timeout == timeout / 2);
        CHECK(p.tick == timeout / 4);
        CHECK(p.tick >= 10);
        CHECK(p.tick <= p.ping_after);  // the timer is fine enough to notice ping_after
        // A ping then a pong deadline: a dead peer is noticed within T + T/4 of the last byte.
        CHECK(p.ping_after + p.pong_timeout + p.tick <= timeout + timeout / 4);
    };
    for (std::int64_t t = 40; t <= 10'000; ++t) {
        check(t);
    }
    for (std::int64_t t : {15'000LL, 30'000LL, 59'999LL, 60'000LL, 60'001LL, 300'000LL,
                           3'600'000LL, 86'400'000LL}) {
        check(t);
    }
}

TEST_CASE("derive_heartbeat clamps idle timeouts below 40 ms to 40 ms") {
    // config rejects idle timeouts below 100 ms; the clamp only keeps the timer sane.
    for (std::int64_t t : {-5LL, 0LL, 1LL, 39LL, 40LL}) {
        const HeartbeatPlan p = derive_heartbeat(milliseconds(t));
        INFO("idle_timeout = ", t, " ms");
        CHECK(p.ping_after == 20);
        CHECK(p.pong_timeout == 20);
        CHECK(p.tick == 10);
    }
}

TEST_CASE("derive_heartbeat grows monotonically with the idle timeout") {
    HeartbeatPlan previous = derive_heartbeat(milliseconds(40));
    for (std::int64_t t = 41; t <= 5'000; ++t) {
        const HeartbeatPlan p = derive_heartbeat(milliseconds(t));
        CHECK(p.ping_after >= previous.ping_after);
        CHECK(p.tick >= previous.tick);
        previous = p;
    }
}

} // namespace
} // namespace proxy
