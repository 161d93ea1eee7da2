// Integration tests of transports::ws_session::WsSessionTransport alone (docs/protocol.md,
// "WebSocket sessions"): a real stream over a loopback socket pair, its session a FakeSession
// the test plays, its client a raw socket that writes masked frames and decodes what comes
// back. Every test ends with the clean-loop check.

#include "proxy/core/crypto.h"
#include "proxy/core/loop.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/writer.h"
#include "tests/support/fake_session.h"
#include "tests/support/run_until.h"
#include "tests/support/stream_pair.h"
#include "transports/ws_session/ws_session_transport.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

using transports::ws_session::WsSessionOptions;
using transports::ws_session::WsSessionTransport;
namespace ws = proxy::ws;

constexpr std::string_view kId = "sess_W-1";
constexpr std::uint64_t kWait = 2000;

/// What the client decoded: "T:text", "B:binary", "C:{json}", "ping", "close:<code>:<reason>".
struct Decoded final : ws::DecoderHandler {
    std::vector<std::string> events;
    std::string message;
    bool binary = false;
    void on_data_frame_begin(const ws::FrameHeader& h, ws::Opcode m) override {
        if (h.opcode != ws::Opcode::Continuation) {
            message.clear();
            binary = m == ws::Opcode::Binary;
        }
    }
    void on_data_frame_payload(std::span<const std::byte> b) override {
        message.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    void on_data_frame_end(bool end) override {
        if (!end) {
            return;
        }
        if (!binary) {
            events.push_back("T:" + message);
        } else if (!message.empty() && message[0] == '\x01') {
            events.push_back("C:" + message.substr(1));
        } else if (!message.empty() && message[0] == '\x00') {
            events.push_back("B:" + message.substr(1));
        } else {
            events.push_back("?:" + message);
        }
    }
    void on_ping(std::span<const std::byte> /*p*/) override { events.emplace_back("ping"); }
    void on_pong(std::span<const std::byte> /*p*/) override {}
    void on_close(std::uint16_t code, std::string_view reason) override {
        events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
    }
};

struct World {
    explicit World(std::uint32_t replay_messages = 10'000)
        : pair(loop), session(std::string(kId), 1024 * 1024, replay_messages) {
        ignore_sigpipe();
        pair.connected->set_handler(&client);
        pair.connected->start_read();
    }
    ~World() {
        if (!finished_) {
            session.gone();
            pair.close_all();
            loop.drain_deferred();
        }
    }
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    bool until(const std::function<bool()>& pred, std::uint64_t timeout_ms = kWait) {
        return run_until(loop, pred, timeout_ms);
    }
    /// Decodes what the client got so far (server frames, unmasked).
    std::vector<std::string> events() {
        Decoded d;
        ws::Decoder dec(ws::DecoderOptions{ws::Role::Client, 1 << 24}, d);
        std::string copy = client.got;
        REQUIRE(dec.feed(std::as_writable_bytes(std::span<char>(copy.data(), copy.size()))));
        return d.events;
    }
    /// Waits until the client decoded `n` events, then a little longer.
    std::vector<std::string> wait_events(std::size_t n) {
        CHECK(until([&] { return events().size() >= n; }));
        run_for(loop, 20);
        return events();
    }
    void send_text(std::string_view text) { send(ws::Opcode::Text, std::string(text)); }
    void send_binary(std::string_view data) {
        send(ws::Opcode::Binary, std::string(1, '\0') + std::string(data));
    }
    void send_control(std::string_view json) {
        send(ws::Opcode::Binary, "\x01" + std::string(json));
    }
    void send(ws::Opcode op, const std::string& payload) {
        writer.begin_frame(true, op, payload.size());
        writer.payload(std::as_bytes(std::span<const char>(payload.data(), payload.size())));
        pair.connected->write(writer.output());
        writer.clear();
    }
    void finish() {
        finished_ = true;
        session.gone();
        CHECK(until([&] { return client.eof && loop.deferred_count() == 0; }));
        pair.close_all();
        CHECK_MESSAGE(until([&] { return open_handles(loop) == 0; }),
                      "open handles: " << describe_open_handles(loop));
        CHECK(loop.close_all());
    }
    void retire(WsSessionTransport& t) {
        for (auto it = transports.begin(); it != transports.end(); ++it) {
            if (it->get() == &t) {
                loop.defer_delete(std::move(*it));
                transports.erase(it);
                return;
            }
        }
    }

    core::Loop loop;
    StreamPair pair;
    ByteSink client;
    FakeSession session;
    core::MaskSource masks;
    ws::FrameWriter writer{ws::Role::Client, &masks};
    std::vector<std::unique_ptr<WsSessionTransport>> transports;

  private:
    bool finished_ = false;
};

WsSessionTransport& start(World& w, std::uint64_t after, WsSessionOptions o = {}) {
    o.retire = [&w](WsSessionTransport& t) { w.retire(t); };
    w.transports.push_back(std::make_unique<WsSessionTransport>(
        w.loop, std::move(w.pair.accepted), w.session, after, std::move(o)));
    WsSessionTransport& t = *w.transports.back();
    w.session.attach(t);
    t.start({});
    return t;
}

std::string session_control(std::uint64_t last, std::uint64_t next) {
    return "C:{\"type\":\"session\",\"session\":\"sess_W-1\",\"last_seq\":" + std::to_string(last) +
           ",\"next_seq\":" + std::to_string(next) + ",\"heartbeat_ms\":30000}";
}

} // namespace

TEST_CASE("ws_session: the session control, then the backlog after the position, text and "
          "binary framed as documented") {
    World w;
    w.session.store("m1");
    w.session.store(std::string("\x00\xff", 2), true);
    w.session.store("m3");
    start(w, 1);
    w.session.push("");
    w.session.push("", true);
    const auto got = w.wait_events(5);
    CHECK(got == std::vector<std::string>{session_control(1, 1),
                                          "B:" + std::string("\x00\xff", 2), "T:m3", "T:",
                                          "B:"});
    REQUIRE_FALSE(w.session.delivered_calls().empty());
    CHECK(w.session.delivered_calls().back() == 5);
    w.finish();
    CHECK(w.session.detach_calls() == 0);
}

TEST_CASE("ws_session: reset first, then a gap for what the buffer lost") {
    World w(2);
    for (int i = 1; i <= 5; ++i) {
        w.session.store("m" + std::to_string(i));
    }
    WsSessionOptions o;
    o.reset_reason = "unknown session";
    start(w, 1, o);
    const auto got = w.wait_events(5);
    CHECK(got == std::vector<std::string>{
                     R"(C:{"type":"reset","session":"sess_W-1","reason":"unknown session"})",
                     session_control(1, 1), R"(C:{"type":"gap","from":2,"to":3})", "T:m4",
                     "T:m5"});
    w.finish();
}

TEST_CASE("ws_session: client messages are forwarded once, in order; resends are acknowledged "
          "not forwarded; acks come after 64 messages or the delay") {
    World w;
    {
        WsSessionOptions o;
        o.ack_delay_ms = 50;
        start(w, 0, o);
    }
    for (int i = 1; i <= 70; ++i) {
        w.send_text("c" + std::to_string(i));
    }
    w.send_binary("bin");
    CHECK(w.until([&] { return w.session.forwarded().size() == 71; }));
    auto got = w.wait_events(2);
    REQUIRE(got.size() >= 2);
    CHECK(got[1] == R"(C:{"type":"ack","next_seq":65})");
    run_for(w.loop, 120);
    got = w.events();
    REQUIRE(got.size() == 3);
    CHECK(got[2] == R"(C:{"type":"ack","next_seq":72})");
    CHECK(w.session.forwarded()[0].payload == "c1");
    CHECK(w.session.forwarded()[69].payload == "c70");
    CHECK(w.session.forwarded()[70].binary);
    CHECK(w.session.forwarded()[70].payload == "bin");
    w.finish();
}

TEST_CASE("ws_session: a resumed connection that resends from an older seq forwards only the "
          "new messages") {
    World w;
    std::vector<transports::ClientMessage> two{{false, "a"}, {false, "b"}};
    (void)w.session.send(1, two);  // seqs 1 and 2 went before (a POST, an earlier connection)
    WsSessionOptions o;
    o.first_client_seq = 1;
    o.ack_delay_ms = 10;
    start(w, 0, o);
    w.send_text("a");
    w.send_text("b");
    w.send_text("c");
    CHECK(w.until([&] { return w.session.forwarded().size() == 3; }));
    const auto got = w.wait_events(2);
    CHECK(got == std::vector<std::string>{session_control(0, 3),
                                          R"(C:{"type":"ack","next_seq":4})"});
    CHECK(w.session.forwarded()[2].payload == "c");
    w.finish();
}

TEST_CASE("ws_session: a first seq beyond the expected one is refused, nothing forwarded") {
    World w;
    WsSessionOptions o;
    o.first_client_seq = 5;
    start(w, 0, o);
    w.send_text("early");
    const auto got = w.wait_events(3);
    CHECK(got == std::vector<std::string>{
                     session_control(0, 1),
                     R"(C:{"type":"error","error":"seq_gap","detail":"Messages must be sent in order; expected seq 1.","expected_seq":1})",
                     "close:1008:seq beyond the next expected one"});
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.session.forwarded().empty());
    CHECK(w.session.detach_calls() == 1);  // the connection ends, the session stays
    w.finish();
}

TEST_CASE("ws_session: client acks trim the buffer, clamped to what was written") {
    World w;
    start(w, 0);
    w.session.push("m1");
    w.session.push("m2");
    (void)w.wait_events(3);
    w.send_control(R"({"type":"ack","seq":1})");
    w.send_control(R"({"type":"ack","seq":99})");
    CHECK(w.until([&] { return w.session.acknowledged_calls().size() == 2; }));
    CHECK(w.session.acknowledged_calls() == std::vector<std::uint64_t>{1, 2});
    CHECK(w.session.replay().empty());
    w.finish();
}

TEST_CASE("ws_session: the close control closes the session; the close comes back after every "
          "message") {
    World w;
    start(w, 0);
    w.session.push("last");
    w.send_control(R"({"type":"close","code":4001,"reason":"done"})");
    CHECK(w.until([&] { return w.client.eof; }));
    const auto got = w.events();
    CHECK(got == std::vector<std::string>{session_control(0, 1), "T:last",
                                          R"(C:{"type":"close","code":4001,"reason":"done"})",
                                          "close:1000:session closed"});
    CHECK(w.session.client_closes() == 1);
    w.finish();
}

TEST_CASE("ws_session: a backend close reaches the client as the close control, then close "
          "1000") {
    World w;
    start(w, 0);
    w.session.push("bye soon");
    w.session.close(1011, "backend trouble");
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.events() == std::vector<std::string>{
                            session_control(0, 1), "T:bye soon",
                            R"(C:{"type":"close","code":1011,"reason":"backend trouble"})",
                            "close:1000:session closed"});
    CHECK(w.session.detach_calls() == 1);
    w.finish();
}

TEST_CASE("ws_session: the session going away (expiry, shutdown) ends the connection") {
    World w;
    start(w, 0);
    (void)w.wait_events(1);
    w.session.gone();
    CHECK(w.until([&] { return w.client.eof; }));
    w.finish();
}

TEST_CASE("ws_session: a newer connection on any transport replaces this one with a clear end") {
    World w;
    start(w, 0);
    (void)w.wait_events(1);
    struct Other final : transports::Transport {
        void on_messages() override {}
        void on_replaced() override {}
        void on_session_gone() override {}
    } other;
    w.session.attach(other);
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.events() == std::vector<std::string>{session_control(0, 1),
                                                 R"(C:{"type":"replaced"})",
                                                 "close:1000:replaced by a newer connection"});
    CHECK(w.session.detach_calls() == 0);
    w.session.detach(other);
    w.finish();
}

TEST_CASE("ws_session: protocol errors end the connection, not the session") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {std::string("\x02zz", 3), "close:1002:unknown kind byte 2 in a binary message"},
        {"", "close:1002:empty binary message (no kind byte)"},
        {std::string("\x01{\"type\":\"nope\"}"),
         "close:1002:session control: unknown type \"nope\""},
    };
    for (const auto& c : cases) {
        const std::string& payload = c.first;
        const std::string& want = c.second;
        CAPTURE(want);
        World w;
        start(w, 0);
        w.send(ws::Opcode::Binary, payload);
        CHECK(w.until([&] { return w.client.eof; }));
        const auto got = w.events();
        REQUIRE(got.size() == 2);
        CHECK(got[1] == want);
        CHECK(w.session.detach_calls() == 1);
        CHECK(w.session.client_closes() == 0);
        w.finish();
    }
}

TEST_CASE("ws_session: a client Close ends the connection only") {
    World w;
    start(w, 0);
    w.writer.close(1001, "leaving");
    w.pair.connected->write(w.writer.output());
    w.writer.clear();
    CHECK(w.until([&] { return w.client.eof; }));
    CHECK(w.events() == std::vector<std::string>{session_control(0, 1), "close:1001:leaving"});
    CHECK(w.session.detach_calls() == 1);
    CHECK(w.session.client_closes() == 0);
    w.finish();
}

TEST_CASE("ws_session: a busy backend pauses the client; its held message goes when it drains") {
    World w;
    WsSessionTransport& t = start(w, 0);
    w.session.set_send_answer(transports::SendOutcome::Kind::Busy);
    w.send_text("one");
    w.send_text("two");
    run_for(w.loop, 50);
    CHECK(w.session.forwarded().empty());
    w.session.set_send_answer(std::nullopt);
    t.on_backend_writable();
    CHECK(w.until([&] { return w.session.forwarded().size() == 2; }));
    CHECK(w.session.forwarded()[0].payload == "one");
    CHECK(w.session.forwarded()[1].payload == "two");
    w.finish();
}

} // namespace proxy::test
