// Integration tests of transports::sse::SseTransport alone (SPEC §3 "SSE wire format",
// docs/protocol.md "Server-Sent Events"): a real stream over a loopback socket pair, its
// session a FakeSession the test plays, its client a ByteSink that keeps every byte. The bytes
// are compared whole, byte for byte. Every test ends with the clean-loop check.

#include "proxy/core/loop.h"
#include "transports/sse/sse_transport.h"
#include "tests/support/fake_session.h"
#include "tests/support/fake_transport.h"
#include "tests/support/run_until.h"
#include "tests/support/stream_pair.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

using transports::sse::SseOptions;
using transports::sse::SseTransport;

constexpr std::string_view kId = "sess_A-1";
constexpr std::uint64_t kWait = 2000;

/// The 200 head SseTransport writes, with `extra` header lines ("Name: value\r\n").
std::string head(std::string_view extra = {}) {
    return std::string("HTTP/1.1 200 OK\r\n"
                       "Content-Type: text/event-stream\r\n"
                       "Cache-Control: no-store\r\n"
                       "X-Accel-Buffering: no\r\n") +
           std::string(extra) + "Connection: close\r\n\r\n";
}

/// The announce event of session kId at `last_seq` with default options.
std::string announce(std::uint64_t last_seq, std::string_view protocol = {}) {
    std::string a = "retry: 1000\nevent: session\ndata: {\"session\":\"sess_A-1\",\"send\":"
                    "\"/chat?session=sess_A-1\",\"heartbeat_ms\":30000,\"last_seq\":" +
                    std::to_string(last_seq);
    if (!protocol.empty()) {
        a += ",\"protocol\":\"" + std::string(protocol) + "\"";
    }
    return a + "}\nid: sess_A-1." + std::to_string(last_seq) + "\n\n";
}

/// The `id:` values of `stream`, in order.
std::vector<std::string> ids_in(std::string_view stream) {
    std::vector<std::string> ids;
    for (auto at = stream.find("\nid: "); at != std::string_view::npos;
         at = stream.find("\nid: ", at + 1)) {
        const auto end = stream.find('\n', at + 5);
        ids.emplace_back(stream.substr(at + 5, end - at - 5));
    }
    return ids;
}

SseOptions options() {
    SseOptions o;
    o.send_url = "/chat?session=sess_A-1";
    return o;
}

/// One test's world: a loop, a socket pair whose accepted end the stream gets and whose
/// connected end is the client, and the FakeSession. finish() is the clean-loop check.
struct SseWorld {
    /// `replay_messages`: the fake session's buffer bound.
    explicit SseWorld(std::uint32_t replay_messages = 10'000)
        : pair(loop), session(std::string(kId), 1024 * 1024, replay_messages) {
        ignore_sigpipe();
        pair.connected->set_handler(&client);
        pair.connected->start_read();
    }
    ~SseWorld() {
        if (!finished_) {
            session.gone();
            pair.close_all();
            loop.drain_deferred();
        }
    }
    SseWorld(const SseWorld&) = delete;
    SseWorld& operator=(const SseWorld&) = delete;

    bool until(const std::function<bool()>& pred, std::uint64_t timeout_ms = kWait) {
        return run_until(loop, pred, timeout_ms);
    }
    /// Waits until the client has received exactly `want` (and then a little longer, to see
    /// that nothing else follows).
    void expect_stream(const std::string& want) {
        CHECK(until([&] { return client.got.size() >= want.size(); }));
        run_for(loop, 20);
        CHECK(client.got == want);
    }

    /// Ends a stream still attached (the session goes), then checks that the stream ended and
    /// was deleted, closes the client and the listener, and that the loop closes clean.
    void finish() {
        finished_ = true;
        session.gone();
        CHECK(until([&] { return client.eof && loop.deferred_count() == 0; }));
        pair.close_all();
        CHECK_MESSAGE(until([&] { return open_handles(loop) == 0; }),
                      "open handles: " << describe_open_handles(loop));
        CHECK(loop.close_all());
    }

    /// Owns a stream until it retires (SseOptions::retire), then hands it to the loop's
    /// deferred deletion, as Context::retire does in the proxy.
    void retire(SseTransport& t) {
        for (auto it = streams.begin(); it != streams.end(); ++it) {
            if (it->get() == &t) {
                loop.defer_delete(std::move(*it));
                streams.erase(it);
                return;
            }
        }
    }

    core::Loop loop;
    StreamPair pair;
    ByteSink client;
    FakeSession session;
    std::vector<std::unique_ptr<SseTransport>> streams;  ///< started, not yet retired

  private:
    bool finished_ = false;
};

/// The one place that creates an SseTransport: on the accepted socket, attached to the fake
/// session, started, owned by the world until it retires (loop.h's ownership rule). Nothing
/// may use the transport once it ended.
SseTransport& start_sse(SseWorld& w, std::uint64_t after, SseOptions o = options()) {
    o.retire = [&w](SseTransport& t) { w.retire(t); };
    w.streams.push_back(std::make_unique<SseTransport>(w.loop, std::move(w.pair.accepted),
                                                       w.session, after, std::move(o)));
    SseTransport& t = *w.streams.back();
    w.session.attach(t);
    t.start();
    return t;
}

} // namespace

TEST_CASE("sse: the 200 head and the announce event are written at once, byte-exact") {
    SseWorld w;
    SseOptions o = options();
    o.headers = {{"Access-Control-Allow-Origin", "https://a.example"}, {"Vary", "Origin"}};
    start_sse(w, 0, std::move(o));
    const std::string want =
        head("Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\n") + announce(0);
    w.expect_stream(want);
    CHECK(w.client.got.find("Content-Length") == std::string::npos);
    CHECK_FALSE(w.client.eof);
    CHECK(w.session.delivered_calls() == std::vector<std::uint64_t>{0});
    w.finish();
    CHECK(w.session.detach_calls() == 0);  // the session went: no detach
}

TEST_CASE("sse: message events are byte-exact per docs/protocol.md, id last, and cannot inject "
          "fields") {
    SseWorld w;
    start_sse(w, 0);
    w.session.push("hello");
    w.session.push("a\nb\n");
    w.session.push("x\r\ny");
    w.session.push(std::string("\x00\x01\x02\x03", 4), true);
    w.session.push("");
    w.session.push("", true);
    w.session.push("data: evil\nid: x\n\nevent: close");
    w.session.push("\xE2\x80\xA8 \"q\"");  // U+2028 and quotes travel raw in a message event
    const std::string want = head() + announce(0) +
                             "data: hello\nid: sess_A-1.1\n\n"
                             "data: a\ndata: b\ndata: \nid: sess_A-1.2\n\n"
                             "event: text-json\ndata: \"x\\r\\ny\"\nid: sess_A-1.3\n\n"
                             "event: binary\ndata: AAECAw==\nid: sess_A-1.4\n\n"
                             "data: \nid: sess_A-1.5\n\n"
                             "event: binary\ndata: \nid: sess_A-1.6\n\n"
                             "data: data: evil\ndata: id: x\ndata: \ndata: event: close\n"
                             "id: sess_A-1.7\n\n"
                             "data: \xE2\x80\xA8 \"q\"\nid: sess_A-1.8\n\n";
    w.expect_stream(want);
    REQUIRE_FALSE(w.session.delivered_calls().empty());
    CHECK(w.session.delivered_calls().back() == 8);
    CHECK(w.session.full_calls().empty());
    w.finish();
}

TEST_CASE("sse: a resume writes reset, announce, gap, then the backlog after its position") {
    SseWorld w(3);  // the buffer keeps 3 messages
    FakeSession& s = w.session;
    s.set_protocol("chat.v2");
    for (int i = 1; i <= 5; ++i) {
        s.store("m" + std::to_string(i));
    }
    SseOptions o = options();
    o.reset_reason = "unknown session";
    start_sse(w, 1, std::move(o));
    const std::string want = head() +
                             "event: reset\ndata: {\"session\":\"sess_A-1\",\"reason\":"
                             "\"unknown session\"}\n\n" +
                             announce(1, "chat.v2") +
                             "event: gap\ndata: {\"from\":2,\"to\":2}\nid: sess_A-1.2\n\n"
                             "data: m3\nid: sess_A-1.3\n\n"
                             "data: m4\nid: sess_A-1.4\n\n"
                             "data: m5\nid: sess_A-1.5\n\n";
    w.expect_stream(want);
    CHECK(s.delivered_calls() == std::vector<std::uint64_t>{5});
    w.finish();
}

TEST_CASE("sse: a position beyond the last message is clamped: nothing later is skipped") {
    SseWorld w;
    w.session.store("one");
    start_sse(w, 99);
    w.session.push("two");
    w.expect_stream(head() + announce(1) + "data: two\nid: sess_A-1.2\n\n");
    w.finish();
}

TEST_CASE("sse: the close event comes after every message with its own id, then the stream "
          "ends and detaches") {
    SseWorld w;
    start_sse(w, 0);
    w.session.push("a");
    w.session.push("b");
    w.session.close(4000, "bye \"now\"");
    const std::string want = head() + announce(0) + "data: a\nid: sess_A-1.1\n\n" +
                             "data: b\nid: sess_A-1.2\n\n" +
                             "event: close\ndata: {\"code\":4000,\"reason\":\"bye \\\"now\\\"\"}\n"
                             "id: sess_A-1.3\n\n";
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.client.got == want);
    CHECK(w.session.detach_calls() == 1);
    CHECK(w.session.stray_detach_calls() == 0);
    CHECK(w.session.attached() == nullptr);
    CHECK(ids_in(w.client.got) ==
          std::vector<std::string>{"sess_A-1.0", "sess_A-1.1", "sess_A-1.2", "sess_A-1.3"});
    w.finish();
}

TEST_CASE("sse: a session that goes with a close gets its last messages and the close "
          "written, without a detach") {
    SseWorld w;
    start_sse(w, 0);
    // A DELETE or shutdown: the close is set and the session goes, in one step.
    w.session.store("tail");
    w.session.close(1001, "proxy shutting down", false);
    w.session.gone();
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.client.got == head() + announce(0) + "data: tail\nid: sess_A-1.1\n\n" +
                              "event: close\ndata: {\"code\":1001,\"reason\":\"proxy shutting "
                              "down\"}\nid: sess_A-1.2\n\n");
    CHECK(w.session.detach_calls() == 0);
    w.finish();
}

// on_session_gone() pumps, and the pump may write the close and end the stream: that end must
// not call detach() on the session that is going (transport.h: "Do not call detach()").
TEST_CASE("sse: a session that goes with a close is not called back with detach()") {
    SseWorld w;
    start_sse(w, 0);
    w.session.close(1000, "bye", false);
    w.session.gone();
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.session.stray_detach_calls() == 0);
    w.finish();
}

TEST_CASE("sse: a session that goes without a close ends the stream without a close event") {
    SseWorld w;
    start_sse(w, 0);
    w.session.push("a");
    w.session.gone();
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.client.got == head() + announce(0) + "data: a\nid: sess_A-1.1\n\n");
    CHECK(w.session.detach_calls() == 0);
    w.finish();
}

TEST_CASE("sse: a replaced stream ends at once with no close event and no detach") {
    SseWorld w;
    start_sse(w, 0);
    w.session.push("a");
    FakeTransport newer(w.session, 1);
    w.session.attach(newer);
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.client.got == head() + announce(0) + "data: a\nid: sess_A-1.1\n\n");
    w.session.push("b");  // goes to the newer transport only
    run_for(w.loop, 20);
    CHECK(w.client.got.find("sess_A-1.2") == std::string::npos);
    CHECK(w.session.detach_calls() == 0);
    CHECK(w.session.stray_detach_calls() == 0);  // it ended without calling back
    newer.detach();
    w.finish();
}

TEST_CASE("sse: a client that goes away detaches the stream from its session once") {
    SseWorld w;
    start_sse(w, 0);
    w.expect_stream(head() + announce(0));
    w.pair.connected->close(core::TcpStream::CloseMode::Abort);
    CHECK(w.until([&] { return w.session.detach_calls() == 1; }));
    CHECK(w.until([&] { return w.loop.deferred_count() == 0; }));
    w.session.push("after");  // nobody attached: nothing happens
    run_for(w.loop, 20);
    CHECK(w.session.detach_calls() == 1);
    w.client.eof = true;  // the client's own socket is gone; finish() waits for nothing more
    w.finish();
}

TEST_CASE("sse: a quiet stream gets a heartbeat comment after heartbeat_ms") {
    SseWorld w;
    SseOptions o = options();
    o.heartbeat_ms = 60;
    o.tick_ms = 10;
    const std::uint64_t started = now_ms(w.loop);
    start_sse(w, 0, std::move(o));
    const std::string first = head() +
                              "retry: 1000\nevent: session\ndata: {\"session\":\"sess_A-1\","
                              "\"send\":\"/chat?session=sess_A-1\",\"heartbeat_ms\":60,"
                              "\"last_seq\":0}\nid: sess_A-1.0\n\n";
    REQUIRE(w.until([&] { return w.client.got.size() >= first.size() + 3; }));
    CHECK(now_ms(w.loop) - started >= 60);
    CHECK(w.client.got == first + ":\n\n");
    // A message resets the silence: the next heartbeat comes heartbeat_ms after it.
    w.session.push("m");
    const std::uint64_t pushed = now_ms(w.loop);
    const std::string with_message = first + ":\n\n" + "data: m\nid: sess_A-1.1\n\n";
    REQUIRE(w.until([&] { return w.client.got.size() >= with_message.size() + 3; }));
    CHECK(now_ms(w.loop) - pushed >= 60);
    CHECK(w.client.got == with_message + ":\n\n");
    w.finish();
}

TEST_CASE("sse: a client past twice its queue limit is ended as a slow consumer at once; what "
          "was written still arrives") {
    SseWorld w;
    SseOptions o = options();
    o.high_watermark = 64 * 1024;
    std::size_t slow_calls = 0;
    std::size_t slow_queued = 0;
    o.on_slow_consumer = [&](std::size_t queued) {
        ++slow_calls;
        slow_queued = queued;
    };
    start_sse(w, 0, std::move(o));
    w.expect_stream(head() + announce(0));
    w.pair.connected->pause(core::kPauseOwner);
    // More than loopback's socket buffers hold: the rest queues in the stream, far past 2 × 64 KiB.
    const std::string big(32 * 1024 * 1024, 'z');
    w.session.push(big);
    CHECK(slow_calls == 1);
    CHECK(slow_queued > 128 * 1024);
    CHECK(w.session.full_calls() == std::vector<bool>{true});
    CHECK(w.session.delivered_calls().back() == 1);
    CHECK(w.session.detach_calls() == 1);
    CHECK(w.session.stray_detach_calls() == 0);
    w.session.push("never");
    w.pair.connected->resume(core::kPauseOwner);
    const std::string want =
        head() + announce(0) + "data: " + big + "\nid: sess_A-1.1\n\n";
    REQUIRE(w.until([&] { return w.client.eof; }, 10'000));
    CHECK(w.client.got.size() == want.size());
    CHECK(w.client.got == want);  // no close event: the client resumes with Last-Event-ID
    w.finish();
}

TEST_CASE("sse: a full queue pauses the session and resumes it when the client drains") {
    SseWorld w;
    SseOptions o = options();
    o.high_watermark = 64 * 1024;
    std::size_t slow_calls = 0;
    o.on_slow_consumer = [&](std::size_t) { ++slow_calls; };
    start_sse(w, 0, std::move(o));
    w.expect_stream(head() + announce(0));
    w.pair.connected->pause(core::kPauseOwner);
    const std::string chunk(16 * 1024, 'c');
    std::uint64_t last = 0;
    while (w.session.full_calls().empty() && last < 8192) {
        last = w.session.push(chunk);
    }
    REQUIRE(w.session.full_calls() == std::vector<bool>{true});
    // Stored while full: not written until the queue drains.
    for (int i = 0; i < 5; ++i) {
        last = w.session.push("later" + std::to_string(i));
    }
    CHECK(w.session.delivered_calls().back() < last);
    w.pair.connected->resume(core::kPauseOwner);
    const std::string tail = "data: later4\nid: sess_A-1." + std::to_string(last) + "\n\n";
    REQUIRE(w.until([&] {
        return w.client.got.size() >= tail.size() &&
               w.client.got.compare(w.client.got.size() - tail.size(), tail.size(), tail) == 0;
    }));
    CHECK(w.session.full_calls() == std::vector<bool>{true, false});
    CHECK(w.session.delivered_calls().back() == last);
    CHECK(slow_calls == 0);
    const auto ids = ids_in(w.client.got);
    REQUIRE(ids.size() == last + 1);
    for (std::uint64_t i = 0; i <= last; ++i) {
        CAPTURE(i);
        CHECK(ids[i] == "sess_A-1." + std::to_string(i));
    }
    CHECK(w.session.detach_calls() == 0);
    w.finish();
}

TEST_CASE("sse: a full queue that drains nothing for stall_ms ends the stream as a slow "
          "consumer") {
    SseWorld w;
    SseOptions o = options();
    o.high_watermark = 64 * 1024;
    o.stall_ms = 80;
    o.tick_ms = 10;
    o.heartbeat_ms = 1000;
    std::size_t slow_calls = 0;
    o.on_slow_consumer = [&](std::size_t) { ++slow_calls; };
    start_sse(w, 0, std::move(o));
    w.expect_stream(head() +
                    "retry: 1000\nevent: session\ndata: {\"session\":\"sess_A-1\",\"send\":"
                    "\"/chat?session=sess_A-1\",\"heartbeat_ms\":1000,\"last_seq\":0}\n"
                    "id: sess_A-1.0\n\n");
    w.pair.connected->pause(core::kPauseOwner);
    const std::string chunk(16 * 1024, 'c');
    std::uint64_t last = 0;
    while (w.session.full_calls().empty() && last < 8192) {
        last = w.session.push(chunk);
    }
    REQUIRE(w.session.full_calls() == std::vector<bool>{true});
    CHECK(slow_calls == 0);  // within twice the limit: not at once
    const std::uint64_t full_at = now_ms(w.loop);
    REQUIRE(w.until([&] { return slow_calls == 1; }));
    CHECK(now_ms(w.loop) - full_at >= 80);
    CHECK(w.session.detach_calls() == 1);
    w.pair.connected->resume(core::kPauseOwner);
    REQUIRE(w.until([&] { return w.client.eof; }, 10'000));
    CHECK(ids_in(w.client.got).back() == "sess_A-1." + std::to_string(last));
    CHECK(w.client.got.find("event: close") == std::string::npos);
    w.finish();
}

} // namespace proxy::test
