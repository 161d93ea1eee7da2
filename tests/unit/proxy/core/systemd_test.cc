// Tests for the pure parts of proxy/core/systemd.cc: the notification texts, the test hook's
// "<after>,<block>" syntax and the address form used to match inherited sockets. The
// protocol itself, against a fake service manager, is tested in tests/e2e/systemd/.

#include "proxy/core/systemd.h"

#include <doctest/doctest.h>

namespace proxy::core {
namespace {

TEST_CASE("systemd: RELOADING=1 carries MONOTONIC_USEC on its own line") {
    CHECK(reloading_message(0) == "RELOADING=1\nMONOTONIC_USEC=0");
    CHECK(reloading_message(18446744073709551615ULL) ==
          "RELOADING=1\nMONOTONIC_USEC=18446744073709551615");
}

TEST_CASE("systemd: STATUS= is one line, whatever the text") {
    CHECK(status_message("2 sessions") == "STATUS=2 sessions");
    CHECK(status_message("") == "STATUS=");
    // A newline would start a new assignment (READY=1 smuggled in a status text).
    CHECK(status_message("a\nREADY=1\r\nb") == "STATUS=a READY=1  b");
}

TEST_CASE("systemd: WSBRIDGE_TEST_STALL_AFTER_MS takes <after>,<block> in ms") {
    const auto stall = parse_loop_stall("700,1500");
    REQUIRE(stall.has_value());
    CHECK(stall->after_ms == 700);
    CHECK(stall->block_ms == 1500);
    CHECK(parse_loop_stall("0,1").has_value());
    for (const char* bad : {"", ",", "700", "700,", ",1500", "700,0", "-1,5", "1,2,3", "1, 2",
                            " 1,2", "1,2ms", "x,1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_loop_stall(bad).has_value());
    }
}

TEST_CASE("systemd: listen addresses compare in their canonical form") {
    CHECK(canonical_address("127.0.0.1", 8080) == "127.0.0.1:8080");
    CHECK(canonical_address("0.0.0.0", 80) == "0.0.0.0:80");
    CHECK(canonical_address("::1", 8080) == "[::1]:8080");
    CHECK(canonical_address("0:0:0::1", 8080) == "[::1]:8080");
    CHECK(canonical_address("::", 443) == "[::]:443");
    CHECK(canonical_address("localhost", 8080).empty());
    CHECK(canonical_address("[::1]", 8080).empty());
    CHECK(canonical_address("", 8080).empty());
}

} // namespace
} // namespace proxy::core
