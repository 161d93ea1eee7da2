#include <doctest/doctest.h>

#include "proxy/rate_limiter.h"

using proxy::RateLimiter;

TEST_CASE("rate limiter: a full bucket allows exactly `burst` messages at once") {
    RateLimiter r(config::Rate{10, 5}, 1000);
    for (int i = 0; i < 5; ++i) {
        CHECK(r.take(1000));
    }
    CHECK_FALSE(r.take(1000));
}

TEST_CASE("rate limiter: refills at messages_per_second and never above burst") {
    RateLimiter r(config::Rate{10, 2}, 0);
    CHECK(r.take(0));
    CHECK(r.take(0));
    CHECK_FALSE(r.take(0));
    CHECK_FALSE(r.take(99));   // 0.99 token
    CHECK(r.take(100));        // 1 token after 100 ms at 10/s
    CHECK_FALSE(r.take(100));
    CHECK(r.take(10'000));     // long idle: back to the burst of 2, not 100
    CHECK(r.take(10'000));
    CHECK_FALSE(r.take(10'000));
}

TEST_CASE("rate limiter: wait_ms says when the next token arrives") {
    RateLimiter r(config::Rate{4, 1}, 0);
    CHECK(r.wait_ms(0) == 0);
    CHECK(r.take(0));
    const auto wait = r.wait_ms(0);
    CHECK(wait >= 250);
    CHECK(wait <= 251);
    CHECK(r.take(wait));
}

TEST_CASE("rate limiter: time going backwards changes nothing") {
    RateLimiter r(config::Rate{1, 1}, 5000);
    CHECK(r.take(5000));
    CHECK_FALSE(r.take(4000));
    CHECK(r.take(6000));
}
