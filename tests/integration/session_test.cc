// Integration tests of proxy::Session below end to end (SPEC §3, docs/protocol.md "Sessions"):
// a real Session on a real loop, its backend a FakeBackend on 127.0.0.1:0, its client a
// FakeTransport that records what the session hands it. No HTTP front: the session is driven
// through its public API (attach, send, SessionView) and watched through what the transport
// and the backend receive. Every test ends with the clean-loop check.

#include "proxy/context.h"
#include "proxy/core/log.h"
#include "proxy/session/session.h"
#include "tests/support/fake_backend.h"
#include "tests/support/fake_transport.h"
#include "tests/support/harness.h"
#include "tests/support/run_until.h"

#include <cstdlib>
#include <doctest/doctest.h>

namespace proxy::test {
namespace {

/// Records the outcome of a session's backend handshake.
struct Opener final : SessionOpener {
    int opened = 0;
    int failed = 0;
    unsigned status = 0;
    void on_session_open() override { ++opened; }
    void on_session_failed(const core::Error& /*error*/, unsigned s) override {
        ++failed;
        status = s;
    }
};

/// One test's world: a loop, a FakeBackend, and the Context of a worker whose one route
/// `/chat` points at it (base_config() adjusted by `tweak`). finish() is the clean-loop check.
struct World {
    explicit World(const std::function<void(config::Config&)>& tweak = {},
                   BackendScript script = {})
        : backend(loop, std::move(script)) {
        ignore_sigpipe();
        if (std::getenv("WSBRIDGE_LOG_LEVEL") == nullptr) {
            core::set_log_level(core::LogLevel::Error);
        }
        config::Config c = base_config(backend.port());
        if (tweak) {
            tweak(c);
        }
        context = std::make_unique<Context>(loop, std::make_shared<const config::Config>(c));
        REQUIRE(context->resolve_backends().has_value());
        route = context->match("/chat");
        REQUIRE(route != nullptr);
    }

    ~World() {
        if (!finished_) {
            // A failed test: tear down without asserting, sessions before their Context.
            context->shutdown_all(false);
            run_until(
                loop, [this] { return context->live_count() == 0; }, 1000);
            loop.drain_deferred();
            backend.close();
        }
    }
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    bool until(const std::function<bool()>& pred, std::uint64_t timeout_ms = kWait) {
        return run_until(loop, pred, timeout_ms);
    }

    /// A counter of the worker's metrics (from a snapshot taken by finish() once it ran).
    std::uint64_t counter(std::string_view name, Labels labels = {}) const {
        return (context ? context->metrics() : final_metrics_).counter(name, labels);
    }

    /// The clean-loop check: every session shuts down and is deleted, every backend connection
    /// ends, no handle is left open and the loop closes.
    void finish() {
        finished_ = true;
        context->shutdown_all(false);
        CHECK(until([&] { return context->live_count() == 0 && loop.deferred_count() == 0; }));
        CHECK(context->session_count() == 0);
        CHECK_MESSAGE(until([&] { return backend.all_closed(); }),
                      "a backend connection was left open by the session");
        backend.close();
        final_metrics_ = context->metrics();
        context.reset();
        CHECK_MESSAGE(until([&] { return open_handles(loop) == 0; }),
                      "open handles: " << describe_open_handles(loop));
        CHECK(loop.close_all());
    }

    // Declared first: destroyed last.
    core::Loop loop;
    FakeBackend backend;
    std::unique_ptr<Context> context;
    const RouteRuntime* route = nullptr;
    Opener opener;  ///< of the session open_session() opens

  private:
    Metrics final_metrics_;
    bool finished_ = false;
};

/// resume_window = 100 ms.
void short_resume_window(config::Config& c) {
    c.routes[0].limits.resume_window = std::chrono::milliseconds(100);
}

/// The one place that creates a Session: adopted by the Context's registry, which owns it until
/// it retires (loop.h's ownership rule).
Session& create_session(Context& context, const RouteRuntime& route) {
    return context.adopt(std::make_unique<Session>(context, route, make_session_id("t")));
}

/// The request that opens a session: GET /chat.
http::Request get_chat() {
    http::Request request;
    request.method = "GET";
    request.target = "/chat";
    request.headers.push_back(http::Header{"Host", "127.0.0.1"});
    return request;
}

/// A session whose backend accepted: created, started like a GET /chat, and open.
Session& open_session(World& w) {
    Opener& opener = w.opener;
    Session& s = create_session(*w.context, *w.route);
    s.start(get_chat(), "127.0.0.1", "http", &opener);
    REQUIRE(w.until([&] { return opener.opened + opener.failed > 0; }));
    REQUIRE(opener.opened == 1);
    REQUIRE(s.open());
    REQUIRE(w.backend.connections() == 1);
    REQUIRE(w.until([&] { return w.backend.peer().responded(); }));
    return s;
}

/// Attaches `t` and lets it take the backlog, as a real transport's start() does.
void attach(Session& s, FakeTransport& t) {
    s.attach(t);
    t.pull();
}

std::vector<ClientMessage> texts(std::initializer_list<const char*> items) {
    std::vector<ClientMessage> out;
    for (const char* i : items) {
        out.push_back(ClientMessage{false, i});
    }
    return out;
}

std::vector<std::string> payloads_of(const std::vector<Message>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages) {
        out.push_back(m.payload);
    }
    return out;
}

/// A text payload of exactly `size` bytes that starts with "m<i>-".
std::string sized(std::size_t i, std::size_t size) {
    std::string p = "m" + std::to_string(i) + "-";
    p.resize(size, 'x');
    return p;
}

} // namespace

// ---- backend → client ------------------------------------------------------------------------

TEST_CASE("session: backend messages get seq 1, 2, 3 in order and reach the attached "
          "transport whole") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    CHECK(t.messages().empty());
    BackendPeer& b = w.backend.peer();
    b.send_text("one");
    b.send_binary(std::string("\x00\x01\xff", 3));
    b.send_frame(op::kText, "th", false);  // a fragmented message is one message
    b.send_frame(op::kCont, "r", false);
    b.send_frame(op::kCont, "ee", true);
    b.send_text("");
    REQUIRE(w.until([&] { return t.messages().size() == 4; }));
    run_for(w.loop, 30);
    REQUIRE(t.messages().size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
        CAPTURE(i);
        CHECK(t.messages()[i].seq == i + 1);
    }
    CHECK(t.payloads() == std::vector<std::string>{"one", std::string("\x00\x01\xff", 3), "three", ""});
    CHECK_FALSE(t.messages()[0].binary);
    CHECK(t.messages()[1].binary);
    CHECK_FALSE(t.messages()[2].binary);
    CHECK(t.gaps().empty());
    CHECK_FALSE(t.close().has_value());
    CHECK(t.messages_calls() >= 1);
    CHECK(s.replay().last_seq() == 4);
    CHECK(s.replay().first_seq() == 1);  // nothing acknowledged: all still buffered
    CHECK(w.context->find_session(s.id()) == &s);
    w.finish();
    CHECK(t.gone_calls() == 1);  // shutdown told the attached transport
    CHECK(t.replaced_calls() == 0);
    CHECK(w.counter("wsbridge_sessions_closed_total", {{"reason", "shutdown"}}) == 1);
}

TEST_CASE("session: with no transport attached messages wait in the replay buffer; one "
          "attached later gets them, then the new ones") {
    World w;
    Session& s = open_session(w);
    BackendPeer& b = w.backend.peer();
    b.send_text("a");
    b.send_text("b");
    b.send_text("c");
    REQUIRE(w.until([&] { return s.replay().last_seq() == 3; }));
    CHECK(s.replay().messages().size() == 3);
    CHECK(s.replay().bytes() == 3);
    FakeTransport t(s);
    attach(s, t);
    CHECK(t.payloads() == std::vector<std::string>{"a", "b", "c"});
    CHECK(t.messages().back().seq == 3);
    b.send_text("d");
    REQUIRE(w.until([&] { return t.messages().size() == 4; }));
    CHECK(t.messages()[3].seq == 4);
    CHECK(t.messages()[3].payload == "d");
    CHECK(t.gaps().empty());
    w.finish();
}

TEST_CASE("session: an acknowledgement trims the replay buffer; a resume after it starts "
          "past the acknowledged messages") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    b.send_text("11");
    b.send_text("222");
    b.send_text("4444");
    REQUIRE(w.until([&] { return t.messages().size() == 3; }));
    CHECK(s.replay().bytes() == 9);
    t.ack(2);
    CHECK(s.replay().first_seq() == 3);
    CHECK(s.replay().messages().size() == 1);
    CHECK(s.replay().bytes() == 4);
    CHECK(s.replay().last_seq() == 3);
    // A poll with the same ack (a lost answer) gets the rest again and no gap.
    FakeTransport again(s, 2);
    attach(s, again);
    CHECK(again.gaps().empty());
    REQUIRE(again.messages().size() == 1);
    CHECK(again.messages()[0].seq == 3);
    CHECK(again.messages()[0].payload == "4444");
    t.ack(100);  // t was replaced: the session no longer hears from it
    CHECK(t.replaced_calls() == 1);
    CHECK(s.replay().messages().size() == 1);
    again.ack(100);  // beyond the last seq: clamped, everything goes
    CHECK(s.replay().empty());
    CHECK(s.replay().last_seq() == 3);
    CHECK(s.replay().next_seq() == 4);
    w.finish();
}

TEST_CASE("session: replay_messages evicts the oldest delivered messages and a resume from "
          "before them sees the gap") {
    World w([](config::Config& c) { c.routes[0].limits.replay_messages = 3; });
    Session& s = open_session(w);
    FakeTransport sse(s);  // an SSE-like client: delivered, never acknowledged
    sse.auto_deliver = true;
    attach(s, sse);
    BackendPeer& b = w.backend.peer();
    for (int i = 1; i <= 6; ++i) {
        b.send_text("m" + std::to_string(i));
    }
    REQUIRE(w.until([&] { return sse.messages().size() == 6; }));
    CHECK(s.replay().first_seq() == 4);
    CHECK(s.replay().messages().size() == 3);
    // The client reconnects having seen only seq 1.
    FakeTransport resumed(s, 1);
    attach(s, resumed);
    CHECK(sse.replaced_calls() == 1);
    REQUIRE(resumed.gaps().size() == 1);
    CHECK(resumed.gaps()[0].from == 2);
    CHECK(resumed.gaps()[0].to == 3);
    CHECK(resumed.payloads() == std::vector<std::string>{"m4", "m5", "m6"});
    CHECK(resumed.messages().front().seq == 4);
    // Only delivered messages were evicted: nothing was lost for the client that was attached.
    CHECK(w.counter("wsbridge_replay_evictions_total") == 0);
    w.finish();
}

TEST_CASE("session: replay_buffer evicts by bytes, oldest first, and the gap names the range") {
    World w([](config::Config& c) {
        c.routes[0].limits.replay_buffer = 1000;
        c.routes[0].limits.max_message = 1000;
    });
    Session& s = open_session(w);
    FakeTransport sse(s);
    sse.auto_deliver = true;
    attach(s, sse);
    BackendPeer& b = w.backend.peer();
    for (std::size_t i = 1; i <= 6; ++i) {
        b.send_text(sized(i, 300));
    }
    REQUIRE(w.until([&] { return sse.messages().size() == 6; }));
    CHECK(s.replay().bytes() == 900);  // a fourth message of 300 would pass 1000
    CHECK(s.replay().first_seq() == 4);
    FakeTransport resumed(s, 0);
    attach(s, resumed);
    REQUIRE(resumed.gaps().size() == 1);
    CHECK(resumed.gaps()[0].from == 1);
    CHECK(resumed.gaps()[0].to == 3);
    REQUIRE(resumed.messages().size() == 3);
    CHECK(resumed.messages()[0].seq == 4);
    CHECK(resumed.messages()[0].payload == sized(4, 300));
    CHECK(resumed.messages()[2].payload == sized(6, 300));
    w.finish();
}

TEST_CASE("session: a message larger than the room left evicts an undelivered one: the "
          "transport sees the gap and the eviction is counted") {
    // The pause threshold is replay_buffer / 2, so a message over half the buffer that arrives
    // before the pause pushes out a message nobody has seen (docs/protocol.md promises the
    // pause comes first; see the report of this branch).
    World w([](config::Config& c) {
        c.routes[0].limits.replay_buffer = 1000;
        c.routes[0].limits.max_message = 1000;
    });
    Session& s = open_session(w);
    BackendPeer& b = w.backend.peer();
    b.send_text(sized(1, 400));  // 400 undelivered: under the 500 threshold, no pause
    b.send_text(sized(2, 900));  // 1300 > 1000: seq 1 goes, undelivered
    REQUIRE(w.until([&] { return s.replay().last_seq() == 2; }));
    CHECK(s.replay().first_seq() == 2);
    CHECK(w.counter("wsbridge_replay_evictions_total") == 1);
    FakeTransport t(s);
    attach(s, t);
    REQUIRE(t.gaps().size() == 1);
    CHECK(t.gaps()[0].from == 1);
    CHECK(t.gaps()[0].to == 1);
    REQUIRE(t.messages().size() == 1);
    CHECK(t.messages()[0].seq == 2);
    w.finish();
}

// ---- client → backend ------------------------------------------------------------------------

TEST_CASE("session: send forwards each seq exactly once and in order; repeats are "
          "acknowledged and not re-sent; a gap is refused with the expected seq") {
    World w;
    Session& s = open_session(w);
    BackendPeer& b = w.backend.peer();
    CHECK(s.expected_client_seq() == 1);

    auto m = texts({"a"});
    SendOutcome out = s.send(1, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.forwarded == 1);
    CHECK(out.expected_seq == 2);

    m = texts({"a"});  // a retry of seq 1
    out = s.send(1, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.forwarded == 0);
    CHECK(out.expected_seq == 2);

    m = texts({"b", "c"});
    out = s.send(2, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.forwarded == 2);
    CHECK(out.expected_seq == 4);

    m = texts({"c", "d"});  // overlaps: only d is new
    out = s.send(3, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.forwarded == 1);
    CHECK(out.expected_seq == 5);

    m = texts({"x"});
    out = s.send(7, m);
    CHECK(out.kind == SendOutcome::Kind::SeqGap);
    CHECK(out.expected_seq == 5);
    CHECK(out.forwarded == 0);
    m = texts({"x"});
    out = s.send(6, m);  // one past the expected is a gap too
    CHECK(out.kind == SendOutcome::Kind::SeqGap);
    CHECK(out.expected_seq == 5);

    std::vector<ClientMessage> bin{ClientMessage{true, std::string("\x00\xfe", 2)}};
    out = s.send(5, bin);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.expected_seq == 6);
    CHECK(s.expected_client_seq() == 6);

    REQUIRE(w.until([&] { return b.messages().size() == 5; }));
    run_for(w.loop, 30);
    const auto got = b.messages();
    CHECK(payloads_of(got) ==
          std::vector<std::string>{"a", "b", "c", "d", std::string("\x00\xfe", 2)});
    REQUIRE(got.size() == 5);
    CHECK(got[0].opcode == op::kText);
    CHECK(got[4].opcode == op::kBinary);
    CHECK(b.decode_error().empty());
    w.finish();
}

TEST_CASE("session: send over the rate is refused with Retry-After, over the burst at once; "
          "retried seqs cost nothing") {
    World w([](config::Config& c) { c.routes[0].limits.rate = config::Rate{0.3, 3}; });
    Session& s = open_session(w);
    BackendPeer& b = w.backend.peer();

    auto m = texts({"a", "b", "c"});  // the whole bucket
    SendOutcome out = s.send(1, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.expected_seq == 4);

    m = texts({"d"});
    out = s.send(4, m);
    CHECK(out.kind == SendOutcome::Kind::RateLimited);
    // One token at 0.3/s: 3334 ms, rounded up to whole seconds.
    CHECK(out.retry_after_s == 4);
    CHECK(out.expected_seq == 4);
    CHECK(out.forwarded == 0);

    m = texts({"d", "e"});
    out = s.send(4, m);
    CHECK(out.kind == SendOutcome::Kind::RateLimited);
    CHECK(out.retry_after_s == 7);  // 3334 + ceil(1000 / 0.3) = 6668 ms

    m = texts({"a", "b", "c"});  // a retry: no token needed
    out = s.send(1, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    CHECK(out.forwarded == 0);
    CHECK(out.expected_seq == 4);

    m = texts({"d", "e", "f", "g"});  // 4 new > burst 3: could never fit
    out = s.send(4, m);
    CHECK(out.kind == SendOutcome::Kind::OverBurst);
    CHECK(out.expected_seq == 4);

    m = texts({"b", "c", "d", "e", "f"});  // 5 messages, 3 new: within the burst, over the rate
    out = s.send(2, m);
    CHECK(out.kind == SendOutcome::Kind::RateLimited);

    m = texts({"x", "y", "z", "w"});  // a gap is reported before the burst
    out = s.send(9, m);
    CHECK(out.kind == SendOutcome::Kind::SeqGap);

    REQUIRE(w.until([&] { return b.messages().size() == 3; }));
    run_for(w.loop, 30);
    CHECK(payloads_of(b.messages()) == std::vector<std::string>{"a", "b", "c"});
    CHECK(s.expected_client_seq() == 4);
    w.finish();
}

TEST_CASE("session: send is refused as Busy while the backend's write queue is over "
          "outbound_queue") {
    World w([](config::Config& c) {
        c.routes[0].limits.outbound_queue = 64 * 1024;
        c.routes[0].limits.max_message = 64 * 1024 * 1024;
    });
    Session& s = open_session(w);
    BackendPeer& b = w.backend.peer();
    b.pause_reading();
    // More than loopback's socket buffers can take: the rest waits in the proxy's queue.
    std::vector<ClientMessage> big{ClientMessage{true, std::string(48 * 1024 * 1024, 'z')}};
    SendOutcome out = s.send(1, big);
    REQUIRE(out.kind == SendOutcome::Kind::Accepted);
    auto m = texts({"next"});
    out = s.send(2, m);
    CHECK(out.kind == SendOutcome::Kind::Busy);
    CHECK(out.retry_after_s == 1);
    CHECK(out.expected_seq == 2);
    CHECK(out.forwarded == 0);
    b.resume_reading();
    REQUIRE(w.until([&] { return b.messages().size() == 1; }, 10'000));
    m = texts({"next"});
    out = s.send(2, m);
    CHECK(out.kind == SendOutcome::Kind::Accepted);
    REQUIRE(w.until([&] { return b.messages().size() == 2; }));
    CHECK(b.messages()[0].payload.size() == 48 * 1024 * 1024);
    CHECK(b.messages()[1].payload == "next");
    w.finish();
}

// ---- backpressure ----------------------------------------------------------------------------

TEST_CASE("session: the backend's reading pauses once undelivered bytes pass the threshold and "
          "resumes at half of it") {
    // threshold = min(outbound_queue, replay_buffer / 2) = 10000 bytes.
    World w([](config::Config& c) { c.routes[0].limits.outbound_queue = 10'000; });
    Session& s = open_session(w);
    FakeTransport t(s);  // takes nothing as delivered until told
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    std::string burst;
    for (std::size_t i = 1; i <= 30; ++i) {
        burst += server_frame(op::kText, sized(i, 1000));
    }
    b.send_raw(burst);  // all 30 in one write: the pause must take effect inside a read
    // The 11th message makes 11000 > 10000 undelivered bytes: nothing after it is decoded.
    REQUIRE(w.until([&] { return s.replay().last_seq() >= 11; }));
    run_for(w.loop, 50);
    CHECK(s.replay().last_seq() == 11);
    CHECK(w.counter("wsbridge_backend_pauses_total", {{"transport", "session"}}) == 1);
    t.deliver(5);  // 6000 undelivered: above half the threshold, still paused
    run_for(w.loop, 50);
    CHECK(s.replay().last_seq() == 11);
    t.deliver(6);  // 5000 = half: resumes; 6 more make 11000 again
    REQUIRE(w.until([&] { return s.replay().last_seq() >= 17; }));
    run_for(w.loop, 50);
    CHECK(s.replay().last_seq() == 17);
    CHECK(w.counter("wsbridge_backend_pauses_total", {{"transport", "session"}}) == 2);
    t.deliver(17);
    REQUIRE(w.until([&] { return s.replay().last_seq() == 28; }));
    t.deliver(28);
    REQUIRE(w.until([&] { return s.replay().last_seq() == 30; }));
    REQUIRE(w.until([&] { return t.messages().size() == 30; }));
    for (std::size_t i = 0; i < 30; ++i) {
        CAPTURE(i);
        CHECK(t.messages()[i].seq == i + 1);
        CHECK(t.messages()[i].payload == sized(i + 1, 1000));
    }
    CHECK(t.gaps().empty());
    w.finish();
}

TEST_CASE("session: a transport whose queue is full pauses the backend until it drains") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    t.auto_deliver = true;
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    b.send_text("before");
    REQUIRE(w.until([&] { return t.messages().size() == 1; }));
    t.set_full(true);
    CHECK(w.counter("wsbridge_backend_pauses_total", {{"transport", "session"}}) == 1);
    b.send_text("x");
    b.send_text("y");
    run_for(w.loop, 50);
    CHECK(s.replay().last_seq() == 1);
    CHECK(t.messages().size() == 1);
    t.set_full(false);
    REQUIRE(w.until([&] { return t.messages().size() == 3; }));
    CHECK(t.payloads() == std::vector<std::string>{"before", "x", "y"});
    CHECK(w.counter("wsbridge_backend_pauses_total", {{"transport", "session"}}) == 1);
    w.finish();
}

// ---- how the backend side ends -------------------------------------------------------------

TEST_CASE("session: a backend close reaches the transport after every message, with its code "
          "and reason, at the position after the last message") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    b.send_text("first");
    b.send_text("last");
    b.send_close(4001, "server bye");
    REQUIRE(w.until([&] { return t.close().has_value(); }));
    CHECK(t.payloads() == std::vector<std::string>{"first", "last"});
    CHECK(t.close()->code == 4001);
    CHECK(t.close()->reason == "server bye");
    CHECK(t.close_seq() == 3);
    CHECK(s.close_info()->code == 4001);
    // The session completed the close handshake with the backend.
    REQUIRE(w.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 4001);
    CHECK(b.close_frame()->close_reason() == "server bye");
    CHECK(w.until([&] { return b.closed(); }));  // the handshake done, it hung up
    // A closed session refuses every POST, whatever its seq.
    auto m = texts({"late"});
    const SendOutcome out = s.send(1, m);
    CHECK(out.kind == SendOutcome::Kind::Closed);
    CHECK(out.expected_seq == 1);
    CHECK(w.context->find_session(s.id()) == &s);  // kept for resume_window
    w.finish();
}

TEST_CASE("session: a backend close with no transport attached reaches one that attaches "
          "later, after the messages it missed") {
    World w;
    Session& s = open_session(w);
    BackendPeer& b = w.backend.peer();
    b.send_text("a");
    b.send_close(1000, "done");
    REQUIRE(w.until([&] { return s.close_info().has_value(); }));
    CHECK(s.replay().last_seq() == 1);
    FakeTransport t(s);
    attach(s, t);
    CHECK(t.payloads() == std::vector<std::string>{"a"});
    REQUIRE(t.close().has_value());
    CHECK(t.close()->code == 1000);
    CHECK(t.close()->reason == "done");
    CHECK(t.close_seq() == 2);
    // A client that had seen the message gets only the close.
    FakeTransport seen(s, 1);
    attach(s, seen);
    CHECK(seen.messages().empty());
    REQUIRE(seen.close().has_value());
    CHECK(seen.close()->code == 1000);
    w.finish();
}

TEST_CASE("session: a backend gone without a close gives 1014 after the messages") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    b.send_text("only");
    REQUIRE(w.until([&] { return t.messages().size() == 1; }));
    b.close_tcp();
    REQUIRE(w.until([&] { return t.close().has_value(); }));
    CHECK(t.close()->code == 1014);
    CHECK(t.close()->reason == "backend closed the connection");
    CHECK(t.close_seq() == 2);
    CHECK(t.payloads() == std::vector<std::string>{"only"});
    w.finish();
}

TEST_CASE("session: a backend reset gives 1014 too") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    w.backend.peer().abort_tcp();
    REQUIRE(w.until([&] { return t.close().has_value(); }));
    CHECK(t.close()->code == 1014);
    CHECK(t.messages().empty());
    CHECK(t.close_seq() == 1);
    w.finish();
}

TEST_CASE("session: invalid UTF-8 from the backend gives 1007 to the client and the backend") {
    World w;
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    b.send_text("fine");
    b.send_text("bad\xff");
    REQUIRE(w.until([&] { return t.close().has_value(); }));
    CHECK(t.close()->code == 1007);
    CHECK(t.close()->reason == "backend sent invalid UTF-8");
    CHECK(t.payloads() == std::vector<std::string>{"fine"});
    CHECK(t.close_seq() == 2);
    REQUIRE(w.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1007);
    w.finish();
}

TEST_CASE("session: a backend message over max_message gives 1009; one of exactly "
          "max_message passes") {
    World w([](config::Config& c) { c.routes[0].limits.max_message = 100; });
    Session& s = open_session(w);
    FakeTransport t(s);
    attach(s, t);
    BackendPeer& b = w.backend.peer();
    b.send_text(std::string(100, 'k'));
    b.send_binary(std::string(101, 'o'));
    REQUIRE(w.until([&] { return t.close().has_value(); }));
    CHECK(t.close()->code == 1009);
    CHECK(t.close()->reason == "backend message too big");
    REQUIRE(t.messages().size() == 1);
    CHECK(t.messages()[0].payload.size() == 100);
    REQUIRE(w.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1009);
    w.finish();
}

// ---- lifetime --------------------------------------------------------------------------------

TEST_CASE("session: with no transport for resume_window the backend gets 1001 and the "
          "session is gone") {
    World w(short_resume_window);
    const std::uint64_t opened_at = now_ms(w.loop);
    Session& s = open_session(w);
    const std::string id(s.id());
    BackendPeer& b = w.backend.peer();
    REQUIRE(w.until([&] { return b.close_frame() != nullptr; }));
    CHECK(now_ms(w.loop) - opened_at >= 100);
    CHECK(b.close_frame()->close_code() == 1001);
    CHECK(b.close_frame()->close_reason() == "session expired");
    CHECK(w.until([&] { return w.context->find_session(id) == nullptr; }));
    CHECK(w.until([&] { return b.closed(); }));  // the handshake done, it hung up
    CHECK(w.counter("wsbridge_sessions_closed_total", {{"reason", "resume_window_expired"}}) == 1);
    w.finish();
}

TEST_CASE("session: an attached transport holds the session open; its detach starts the "
          "resume window") {
    World w(short_resume_window);
    Session& s = open_session(w);
    const std::string id(s.id());
    FakeTransport t(s);
    attach(s, t);
    run_for(w.loop, 250);
    CHECK(w.context->find_session(id) == &s);
    CHECK(w.backend.peer().close_frame() == nullptr);
    const std::uint64_t detached_at = now_ms(w.loop);
    t.detach();
    REQUIRE(w.until([&] { return w.context->find_session(id) == nullptr; }));
    CHECK(now_ms(w.loop) - detached_at >= 100);
    REQUIRE(w.until([&] { return w.backend.peer().close_frame() != nullptr; }));
    CHECK(w.backend.peer().close_frame()->close_code() == 1001);
    CHECK(t.gone_calls() == 0);  // it had detached: not told again
    w.finish();
}

TEST_CASE("session: attaching a second transport replaces the first, which hears nothing more; "
          "its late detach is ignored") {
    World w(short_resume_window);
    Session& s = open_session(w);
    const std::string id(s.id());
    BackendPeer& b = w.backend.peer();
    FakeTransport first(s);
    attach(s, first);
    b.send_text("x");
    REQUIRE(w.until([&] { return first.messages().size() == 1; }));
    FakeTransport second(s, 1);
    attach(s, second);
    CHECK(first.replaced_calls() == 1);
    CHECK_FALSE(first.attached());
    CHECK(second.replaced_calls() == 0);
    const std::size_t first_calls = first.messages_calls();
    b.send_text("y");
    REQUIRE(w.until([&] { return second.messages().size() == 1; }));
    CHECK(second.messages()[0].seq == 2);
    CHECK(second.messages()[0].payload == "y");
    CHECK(first.messages_calls() == first_calls);
    CHECK(first.messages().size() == 1);
    // A detach from the replaced transport (a bug in it, or a race) must not detach the new one.
    s.detach(first);
    b.send_text("z");
    REQUIRE(w.until([&] { return second.messages().size() == 2; }));
    run_for(w.loop, 200);  // past resume_window: no expiry started
    CHECK(w.context->find_session(id) == &s);
    w.finish();
    CHECK(second.gone_calls() == 1);
    CHECK(first.gone_calls() == 0);
}

TEST_CASE("session: a backend that refuses the session fails the opener with its status") {
    BackendScript script;
    script.handshake = BackendScript::Handshake::Reject;
    script.reject_status = 403;
    World w({}, script);
    Session& s = create_session(*w.context, *w.route);
    const std::string id(s.id());
    s.start(get_chat(), "127.0.0.1", "http", &w.opener);
    REQUIRE(w.until([&] { return w.opener.failed == 1; }));
    CHECK(w.opener.opened == 0);
    CHECK(w.opener.status == 403);
    CHECK(w.context->find_session(id) == nullptr);
    w.finish();
}

} // namespace proxy::test
