// Integration tests of backpressure on the WebSocket relay (STYLE §3, SPEC §3 "Backpressure"):
// when one side stops reading, the proxy stops reading the other side, so TCP pushes back to
// the sender instead of the proxy buffering. The evidence is on the peers: once the path is
// full, the sender keeps a backlog in its own write queue however long it keeps offering data,
// and what left it stays within kernel buffers plus the proxy's bounded queue. That queue is
// bounded for the slow side: the relay closes a client with 1008 ("slow consumer") as soon as
// its queue passes 2 × outbound_queue + 64 KiB, so a flood that ends with every byte
// delivered and no 1008 proves the bound held at every write.

#include "proxy/core/timer.h"
#include "tests/support/harness.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

constexpr std::size_t kChunk = 64 * 1024;
constexpr std::size_t kOutboundQueue = 256 * 1024;
/// The sender's queue size that shows the path is full end to end.
constexpr std::size_t kSenderBacklog = 2 * 1024 * 1024;
/// Never send more than this (bounds the test if backpressure is broken).
constexpr std::size_t kMaxFlood = 256 * 1024 * 1024;
/// What may leave the sender before the path is full: two sockets' kernel buffers on loopback
/// (a few MiB each) plus the proxy's bounded queue. Without backpressure it is kMaxFlood.
constexpr std::size_t kMaxInFlight = 48 * 1024 * 1024;

void tune(config::Config& c) {
    c.routes[0].limits.outbound_queue = kOutboundQueue;
    c.routes[0].limits.rate = config::Rate{1e6, 1'000'000};
}

std::string chunk_payload(std::size_t i) {
    return pattern_bytes(kChunk, static_cast<std::uint32_t>(i + 1));
}

/// Drives a flood from one peer: `send(i)` writes chunk i (`wire` bytes on the wire) and
/// `queued()` is that peer's own write queue, which it keeps topped up to kSenderBacklog.
template <class Send, class Queued> class Flood {
  public:
    Flood(Harness& h, Send send, Queued queued, std::size_t wire)
        : h_(h), send_(send), queued_(queued), wire_(wire) {}

    /// Runs until the bytes the kernel took from the sender stopped growing for `quiet_ms`
    /// (every buffer on the path is full). False when that never happened.
    bool until_stalled(std::uint64_t quiet_ms) {
        // Nothing happens on a stalled path; a ticking timer wakes the loop to notice it.
        core::Timer ticker(h_.loop, [] {});
        ticker.start(10, 10);
        std::size_t accepted = in_flight();
        std::uint64_t since = now_ms(h_.loop);
        return h_.until(
            [&] {
                top_up();
                const std::uint64_t now = h_.loop.now();
                if (in_flight() != accepted) {
                    accepted = in_flight();
                    since = now;
                    return false;
                }
                return now - since >= quiet_ms;
            },
            15000);
    }

    /// Keeps the sender's queue topped up for `ms`: it offers far more than can be in flight.
    void pump_for(std::uint64_t ms) {
        core::Timer ticker(h_.loop, [] {});
        ticker.start(10, 10);
        (void)h_.until(
            [&] {
                top_up();
                return false;
            },
            ms);
    }

    /// Bytes that left the sender (kernel buffers on the path plus whatever the proxy holds).
    std::size_t in_flight() const { return sent_ * wire_ - queued_(); }
    std::size_t sent() const noexcept { return sent_; }

  private:
    void top_up() {
        while (queued_() < kSenderBacklog && sent_ * kChunk < kMaxFlood) {
            send_(sent_);
            ++sent_;
        }
    }

    Harness& h_;
    Send send_;
    Queued queued_;
    std::size_t wire_;
    std::size_t sent_ = 0;
};

} // namespace

TEST_CASE("backpressure: a client that stops reading stops the proxy reading the backend, "
          "and everything flows once it reads again") {
    Harness h({}, tune);
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response().has_value());
    REQUIRE(c.response()->status == 101);
    c.discard_frames = true;
    c.pause_reading();
    BackendPeer& b = h.backend.peer();

    // Flood until the kernel stops taking the backend's writes: every buffer on the path is
    // full, so the proxy stopped reading the backend.
    const std::size_t wire = server_frame(op::kBinary, chunk_payload(0)).size();
    Flood flood(
        h, [&](std::size_t i) { b.send_binary(chunk_payload(i)); },
        [&] { return b.queued_bytes(); }, wire);
    REQUIRE(flood.until_stalled(100));
    MESSAGE("path full after ", flood.in_flight() / 1024,
            " KiB left the backend (kernel buffers plus the proxy's bounded queue)");
    // The backend keeps offering data; the proxy takes no more than the path holds.
    flood.pump_for(300);
    CHECK(flood.in_flight() < kMaxInFlight);
    CHECK(b.queued_bytes() > 0);
    const std::size_t sent = flood.sent();
    CHECK_FALSE(c.eof());
    CHECK(h.context().live_count() == 1);
    CHECK(h.counter("wsbridge_closes_total", {{"side", "client"}, {"reason", "slow_consumer"}}) ==
          0);

    // The client reads again: the proxy resumes and every message arrives, byte-exact.
    c.resume_reading();
    const std::size_t expected = sent * wire;
    REQUIRE(h.until([&] { return c.ws_bytes() >= expected && b.queued_bytes() == 0; }, 20000));
    FrameParser parser;
    const auto frames = parser.parse(std::string_view(c.received()).substr(c.response()->size));
    REQUIRE(frames.size() == sent);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        bad += frames[i].opcode == op::kBinary && frames[i].fin &&
                       frames[i].payload == chunk_payload(i)
                   ? 0
                   : 1;
    }
    CHECK(bad == 0);
    CHECK(parser.offset() == c.ws_bytes()); // no close frame or anything else
    CHECK(h.counter("wsbridge_closes_total", {{"side", "client"}, {"reason", "slow_consumer"}}) ==
          0);
    h.finish();
}

TEST_CASE("backpressure: a backend that stops reading stops the proxy reading the client, "
          "and everything flows once it reads again") {
    Harness h({}, tune);
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response().has_value());
    REQUIRE(c.response()->status == 101);
    BackendPeer& b = h.backend.peer();
    b.pause_reading();

    const std::size_t wire = client_frame(op::kBinary, chunk_payload(0)).size();
    Flood flood(
        h, [&](std::size_t i) { c.send(client_frame(op::kBinary, chunk_payload(i))); },
        [&] { return c.queued_bytes(); }, wire);
    REQUIRE(flood.until_stalled(100));
    MESSAGE("path full after ", flood.in_flight() / 1024, " KiB left the client");
    // The client keeps offering data; the proxy takes no more than the path holds.
    flood.pump_for(300);
    CHECK(flood.in_flight() < kMaxInFlight);
    CHECK(c.queued_bytes() > 0);
    const std::size_t sent = flood.sent();
    CHECK_FALSE(c.eof());
    CHECK(h.context().live_count() == 1);

    b.resume_reading();
    REQUIRE(h.until([&] { return b.frames().size() == sent && c.queued_bytes() == 0; }, 20000));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < sent; ++i) {
        const Frame& f = b.frames()[i];
        bad +=
            f.opcode == op::kBinary && f.fin && f.masked && f.payload == chunk_payload(i) ? 0 : 1;
    }
    CHECK(bad == 0);
    CHECK(b.decode_error().empty());
    CHECK(c.frames().empty());
    h.finish();
}

// Heartbeats measure liveness by what the proxy reads. While the proxy itself stops reading a
// peer because the other side is slow, that peer's pongs wait unread behind the data it
// already sent: the proxy must not declare it dead for that.

TEST_CASE("backpressure: regression: a stalled client does not make a healthy backend look "
          "dead") {
    Harness h({}, [](config::Config& c) {
        tune(c);
        c.routes[0].limits.backend_idle_timeout = std::chrono::milliseconds(200);
    });
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response()->status == 101);
    c.discard_frames = true;
    c.pause_reading();
    BackendPeer& b = h.backend.peer();
    const std::size_t wire = server_frame(op::kBinary, chunk_payload(0)).size();
    Flood flood(
        h, [&](std::size_t i) { b.send_binary(chunk_payload(i)); },
        [&] { return b.queued_bytes(); }, wire);
    REQUIRE(flood.until_stalled(100));
    const std::size_t sent = flood.sent();
    // Several backend heartbeat periods pass while the proxy is not reading the backend.
    run_for(h.loop, 600);
    CHECK(h.context().live_count() == 1);
    CHECK_FALSE(b.eof());
    c.resume_reading();
    const bool all = h.until([&] { return c.ws_bytes() >= sent * wire || c.eof(); }, 20000);
    CHECK(all);
    CHECK_FALSE(c.eof());
    CHECK(c.ws_bytes() == sent * wire); // every message, and no close frame (1011)
    h.finish();
}

TEST_CASE("backpressure: regression: a stalled backend does not make a live client look dead") {
    Harness h({}, [](config::Config& c) {
        tune(c);
        c.routes[0].limits.idle_timeout = std::chrono::milliseconds(200);
    });
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response()->status == 101);
    c.auto_pong = true;
    BackendPeer& b = h.backend.peer();
    b.pause_reading();
    const std::size_t wire = client_frame(op::kBinary, chunk_payload(0)).size();
    Flood flood(
        h, [&](std::size_t i) { c.send(client_frame(op::kBinary, chunk_payload(i))); },
        [&] { return c.queued_bytes(); }, wire);
    REQUIRE(flood.until_stalled(100));
    const std::size_t sent = flood.sent();
    // Several client heartbeat periods pass while the proxy is not reading the client.
    run_for(h.loop, 600);
    CHECK_FALSE(c.eof());
    CHECK(h.context().live_count() == 1);
    b.resume_reading();
    const bool all = h.until([&] { return b.messages().size() >= sent || b.eof(); }, 20000);
    CHECK(all);
    CHECK(b.messages().size() == sent);
    CHECK_FALSE(c.eof());
    CHECK(b.close_frame() == nullptr);
    h.finish();
}

TEST_CASE("backpressure: a client that drains nothing for idle_timeout / 2 while the backend "
          "waits on it is closed as a slow consumer with 1008") {
    // SPEC §5 slow consumer on WebSocket: backpressure holds the queue at outbound_queue, and
    // a client that then takes nothing more is closed, like nginx's send_timeout.
    Harness h({}, [](config::Config& c) {
        tune(c);
        c.routes[0].limits.idle_timeout = std::chrono::seconds(2);
    });
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response()->status == 101);
    c.discard_frames = true;
    c.pause_reading();
    BackendPeer& b = h.backend.peer();
    const std::size_t wire = server_frame(op::kBinary, chunk_payload(0)).size();
    Flood flood(
        h, [&](std::size_t i) { b.send_binary(chunk_payload(i)); },
        [&] { return b.queued_bytes(); }, wire);
    REQUIRE(flood.until_stalled(100));
    const std::uint64_t stalled_at = now_ms(h.loop);
    REQUIRE(h.until([&] { return h.context().live_count() == 0; }, 5000));
    // Detected after idle_timeout / 2 without a drained byte, checked every idle_timeout / 4.
    CHECK(now_ms(h.loop) - stalled_at >= 900);
    CHECK(h.counter("wsbridge_closes_total", {{"side", "client"}, {"reason", "slow_consumer"}}) ==
          1);
    CHECK(h.counter("wsbridge_closes_total", {{"side", "client"}, {"reason", "pong_timeout"}}) ==
          0);
    CHECK(h.counter("wsbridge_ws_closes_total", {{"code", "1008"}, {"by", "proxy"}}) == 1);
    // The client catches up: the queued data, then the close frame that says why.
    c.discard_frames = false;
    c.resume_reading();
    REQUIRE(h.until([&] { return c.eof(); }, 10000));
    REQUIRE(c.close_frame() != nullptr);
    CHECK(c.close_frame()->close_code() == 1008);
    REQUIRE(h.until([&] { return b.close_frame() != nullptr || b.eof(); }));
    h.finish();
}

TEST_CASE("backpressure: a client that floods pings without reading is closed as a slow "
          "consumer with 1008, and the backend is told") {
    // Pongs are the proxy's own output: they cannot be slowed by pausing the backend, so the
    // slow-consumer limit (2 × outbound_queue + 64 KiB) is what bounds them.
    Harness h({}, [](config::Config& c) {
        c.routes[0].limits.outbound_queue = 64 * 1024;
        c.routes[0].limits.rate = config::Rate{1e6, 1'000'000};
    });
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response()->status == 101);
    BackendPeer& b = h.backend.peer();
    c.pause_reading();
    const std::string ping = client_frame(op::kPing, std::string(125, 'p'));
    std::string burst;
    for (int i = 0; i < 1000; ++i) {
        burst += ping;
    }
    std::size_t pings = 0;
    const bool cut = h.until(
        [&] {
            if (c.queued_bytes() < 1024 * 1024 && pings < 400'000) {
                c.send(burst);
                pings += 1000;
            }
            return h.context().live_count() == 0;
        },
        10000);
    REQUIRE(cut);
    CHECK(h.counter("wsbridge_closes_total", {{"side", "client"}, {"reason", "slow_consumer"}}) ==
          1);
    // The client catches up: every queued pong, then the close frame.
    c.resume_reading();
    REQUIRE(h.until([&] { return c.eof(); }, 10000));
    REQUIRE(c.close_frame() != nullptr);
    CHECK(c.close_frame()->close_code() == 1008);
    CHECK(c.frames().back().opcode == op::kClose);
    REQUIRE(h.until([&] { return b.close_frame() != nullptr || b.eof(); }));
    REQUIRE(b.close_frame() != nullptr);
    CHECK(b.close_frame()->close_code() == 1001);
    CHECK(b.count(op::kPing) == 0);
    h.finish();
}

} // namespace proxy::test
