// Integration tests of heartbeats (SPEC §4) on the WebSocket relay, on both hops. With
// idle_timeout T = 200 ms the derivation (proxy/heartbeat.h) gives ping_after = 100 ms,
// tick = 50 ms and pong_timeout = 100 ms, so a ping goes out at most 150 ms into a silence
// and a peer that stays silent after it is cut at most 150 ms after the ping.

#include "tests/support/harness.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

constexpr std::chrono::milliseconds kIdle{200};

RawClient& open_relay(Harness& h) {
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response().has_value());
    REQUIRE(c.response()->status == 101);
    REQUIRE(h.backend.connections() == 1);
    return c;
}

/// Index of the first frame with `opcode` at or after `from`, or npos.
std::size_t find_frame(const std::vector<Frame>& frames, std::uint8_t opcode,
                       std::size_t from = 0) {
    for (std::size_t i = from; i < frames.size(); ++i) {
        if (frames[i].opcode == opcode) {
            return i;
        }
    }
    return std::string::npos;
}

} // namespace

TEST_CASE("heartbeat: an idle client gets a ping within 150 ms and the backend gets one too") {
    Harness h({}, [](config::Config& c) {
        c.routes[0].limits.idle_timeout = kIdle;
        c.routes[0].limits.backend_idle_timeout = kIdle;
    });
    RawClient& c = h.connect();
    c.auto_pong = true;
    c.send(upgrade_request("/chat"));
    REQUIRE(h.wait_response(c));
    const std::uint64_t opened = now_ms(h.loop);
    BackendPeer& b = h.backend.peer();
    REQUIRE(h.until([&] { return c.count(op::kPing) >= 1 && b.count(op::kPing) >= 1; }, 1000));
    const std::size_t cp = find_frame(c.frames(), op::kPing);
    const std::size_t bp = find_frame(b.frames(), op::kPing);
    CHECK(c.frame_time(cp) - opened <= 150);
    CHECK(b.frame_time(bp) - opened <= 150);
    CHECK(c.frames()[cp].payload.empty());
    CHECK(b.frames()[bp].masked);
    // Pings keep coming while both peers answer, and nobody is disconnected.
    run_for(h.loop, 600);
    CHECK(c.count(op::kPing) >= 3);
    CHECK(b.count(op::kPing) >= 3);
    CHECK(c.count(op::kPing) <= 7);
    CHECK(b.count(op::kPong) == 0); // the client's pongs are not forwarded
    CHECK_FALSE(c.eof());
    CHECK_FALSE(b.eof());
    CHECK(c.close_frame() == nullptr);
    CHECK(b.close_frame() == nullptr);
    CHECK(b.messages().empty());
    h.finish();
}

TEST_CASE("heartbeat: a busy connection carries no heartbeat") {
    BackendScript s;
    s.echo = true;
    Harness h(s, [](config::Config& c) {
        c.routes[0].limits.idle_timeout = kIdle;
        c.routes[0].limits.backend_idle_timeout = kIdle;
    });
    RawClient& c = open_relay(h);
    for (int i = 0; i < 15; ++i) {
        c.send(client_frame(op::kText, "tick " + std::to_string(i)));
        run_for(h.loop, 40);
    }
    REQUIRE(h.wait_frames(c, 15));
    CHECK(c.count(op::kPing) == 0);
    CHECK(h.backend.peer().count(op::kPing) == 0);
    CHECK(c.messages().size() == 15);
    h.finish();
}

TEST_CASE("heartbeat: a client that never answers pings is cut after the pong deadline") {
    Harness h({}, [](config::Config& c) { c.routes[0].limits.idle_timeout = kIdle; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    REQUIRE(h.until([&] { return c.count(op::kPing) == 1; }, 1000));
    const std::uint64_t pinged = c.frame_time(find_frame(c.frames(), op::kPing));
    REQUIRE(h.until([&] { return c.eof(); }, 1000));
    const std::uint64_t cut = c.eof_at() - pinged;
    CHECK(cut >= 95);
    CHECK(cut <= 200);
    CHECK(c.count(op::kPing) == 1);
    // The backend is told the client went away.
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1001);
    h.finish();
    CHECK(h.counter("wsbridge_closes_total", {{"side", "client"}, {"reason", "pong_timeout"}}) ==
          1);
}

TEST_CASE("heartbeat: any client frame counts as a pong") {
    Harness h({}, [](config::Config& c) { c.routes[0].limits.idle_timeout = kIdle; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    // Answer each ping with a data message instead of a pong.
    std::size_t answered = 0;
    const bool survived = !h.until(
        [&] {
            while (answered < c.count(op::kPing)) {
                c.send(client_frame(op::kText, "alive"));
                ++answered;
            }
            return c.eof();
        },
        600);
    CHECK(survived);
    CHECK(answered >= 3);
    CHECK(h.until([&] { return b.messages().size() == answered; }));
    h.finish();
}

TEST_CASE("heartbeat: a backend that stops answering pings gets the client a 1011") {
    BackendScript s;
    s.answer_pings = false;
    Harness h(s, [](config::Config& c) { c.routes[0].limits.backend_idle_timeout = kIdle; });
    RawClient& c = open_relay(h);
    c.auto_pong = true;
    BackendPeer& b = h.backend.peer();
    const std::uint64_t opened = now_ms(h.loop);
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }, 1500));
    const std::uint64_t at = c.frame_time(find_frame(c.frames(), op::kClose));
    CHECK(at - opened >= 190);
    CHECK(at - opened <= 350);
    CHECK(c.close_frame()->close_code() == 1011);
    CHECK(b.count(op::kPing) == 1);
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(h.until([&] { return b.eof(); }));
    h.finish();
}

} // namespace proxy::test
