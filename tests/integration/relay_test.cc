// Integration tests of the WebSocket relay after both 101s (SPEC §2): messages byte-exact in
// both directions, ping/pong per hop, close handshakes from either side, protocol errors and
// drain. Real Server, FakeBackend, RawClient; every test ends with the clean-loop check.

#include "tests/support/harness.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

constexpr std::chrono::milliseconds kDripTimeout{300};

/// Upgrades one client and checks the 101 and the backend connection.
RawClient& open_relay(Harness& h) {
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response().has_value());
    REQUIRE(c.response()->status == 101);
    REQUIRE(h.backend.connections() == 1);
    REQUIRE(h.until([&] { return h.backend.peer().responded(); }));
    return c;
}

void check_same_frame(const Frame& got, const Frame& want) {
    CHECK(got.fin == want.fin);
    CHECK(got.opcode == want.opcode);
    CHECK(got.rsv == 0);
    CHECK(got.payload.size() == want.payload.size());
    CHECK(got.payload == want.payload);
}

Frame frame(std::uint8_t opcode, std::string payload, bool fin = true) {
    Frame f;
    f.fin = fin;
    f.opcode = opcode;
    f.payload = std::move(payload);
    return f;
}

} // namespace

TEST_CASE("relay: client messages reach the backend byte-exact, frame by frame, re-masked") {
    Harness h;
    RawClient& c = open_relay(h);
    const std::vector<Frame> sent = {
        frame(op::kText, "hello"),
        frame(op::kBinary, pattern_bytes(300, 1)),   // 16-bit length
        frame(op::kBinary, pattern_bytes(70000, 2)), // 64-bit length
        frame(op::kText, ""),                        // empty message
        frame(op::kText, "frag", false),             // fragmented text ...
        frame(op::kCont, "men\xC3", false),          // ... split inside a code point ...
        frame(op::kCont, "\xA9t\xC3\xA9", true),     // ... ends it
        frame(op::kBinary, std::string("\0\xff\x00", 3)),
    };
    std::string wire;
    for (const auto& f : sent) {
        wire += client_frame(f.opcode, f.payload, f.fin);
    }
    c.send(wire);
    REQUIRE(h.wait_backend_frames(sent.size()));
    run_for(h.loop, 30);
    BackendPeer& b = h.backend.peer();
    REQUIRE(b.frames().size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        CAPTURE(i);
        check_same_frame(b.frames()[i], sent[i]);
        CHECK(b.frames()[i].masked);
        CHECK(b.frames()[i].mask != kClientMask); // fresh keys, not the client's
    }
    CHECK(b.frames()[1].mask != b.frames()[2].mask);
    CHECK(b.decode_error().empty());
    const auto msgs = b.messages();
    REQUIRE(msgs.size() == 6);
    CHECK(msgs[4].opcode == op::kText);
    CHECK(msgs[4].payload == "fragmen\xC3\xA9t\xC3\xA9");
    CHECK(msgs[4].frames == 3);
    CHECK(c.frames().empty()); // nothing came back
    h.finish();
    CHECK(h.counter("wsbridge_messages_total", {{"transport", "websocket"}, {"direction", "in"}}) ==
          6);
}

TEST_CASE("relay: backend messages reach the client byte-exact, frame by frame, unmasked") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    const std::vector<Frame> sent = {
        frame(op::kText, "hi"),
        frame(op::kBinary, pattern_bytes(100000, 3)),
        frame(op::kBinary, "a", false),
        frame(op::kCont, pattern_bytes(200, 4), false),
        frame(op::kCont, "", true),
        frame(op::kBinary, ""),
        frame(op::kText, "\xF0\x9F\x98\x80 emoji"),
    };
    for (const auto& f : sent) {
        b.send_frame(f.opcode, f.payload, f.fin);
    }
    REQUIRE(h.wait_frames(c, sent.size()));
    run_for(h.loop, 30);
    REQUIRE(c.frames().size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        CAPTURE(i);
        check_same_frame(c.frames()[i], sent[i]);
        CHECK_FALSE(c.frames()[i].masked);
    }
    CHECK(c.messages().size() == 5);
    CHECK(b.frames().empty());
    h.finish();
    CHECK(h.counter("wsbridge_messages_total",
                    {{"transport", "websocket"}, {"direction", "out"}}) == 5);
}

TEST_CASE("relay: an echo round trip keeps order across many interleaved messages") {
    BackendScript s;
    s.echo = true;
    Harness h(s);
    RawClient& c = open_relay(h);
    std::string wire;
    for (int i = 0; i < 50; ++i) {
        const bool text = i % 2 == 0;
        const std::string tail = text ? "" : pattern_bytes(static_cast<std::size_t>(i) * 37, 9);
        wire += client_frame(text ? op::kText : op::kBinary, "m" + std::to_string(i) + tail);
    }
    c.send(wire);
    REQUIRE(h.wait_frames(c, 50));
    const auto msgs = c.messages();
    REQUIRE(msgs.size() == 50);
    for (std::size_t i = 0; i < 50; ++i) {
        CAPTURE(i);
        CHECK(msgs[i].payload.rfind("m" + std::to_string(i), 0) == 0);
        CHECK(msgs[i].opcode == (i % 2 == 0 ? op::kText : op::kBinary));
    }
    h.finish();
}

TEST_CASE("relay: pings are answered per hop and never forwarded") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send(client_frame(op::kPing, "c-ping"));
    REQUIRE(h.wait_frames(c, 1));
    CHECK(c.frames()[0].opcode == op::kPong);
    CHECK(c.frames()[0].payload == "c-ping");
    // A ping between the fragments of a message is answered too; the message stays whole.
    c.send(client_frame(op::kText, "ab", false) + client_frame(op::kPing, "mid") +
           client_frame(op::kCont, "cd", true));
    REQUIRE(h.wait_frames(c, 2));
    CHECK(c.frames()[1].opcode == op::kPong);
    CHECK(c.frames()[1].payload == "mid");
    b.send_frame(op::kPing, "b-ping");
    REQUIRE(h.until([&] { return b.count(op::kPong) == 1; }));
    run_for(h.loop, 30);
    CHECK(b.count(op::kPing) == 0);
    CHECK(b.count(op::kPong) == 1);
    CHECK(b.frames().back().payload == "b-ping");
    REQUIRE(b.messages().size() == 1);
    CHECK(b.messages()[0].payload == "abcd");
    CHECK(c.frames().size() == 2); // no backend ping leaked to the client
    CHECK(c.count(op::kPing) == 0);
    h.finish();
}

TEST_CASE("relay: a client-initiated close handshake relays code and reason both ways") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send_close(4000, "bye now");
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 4000);
    CHECK(b.close_frame()->close_reason() == "bye now");
    // The backend answered (its script echoes the close and closes TCP).
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 4000);
    CHECK(c.close_frame()->close_reason() == "bye now");
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(h.until([&] { return b.closed(); })); // it closed TCP after answering
    CHECK(c.frames().size() == 1);
    CHECK(b.count(op::kClose) == 1);
    CHECK(h.until([&] { return h.context().live_count() == 0; }));
    h.finish();
    CHECK(h.counter("wsbridge_ws_closes_total", {{"code", "4000"}, {"by", "client"}}) == 1);
}

TEST_CASE("relay: a backend-initiated close handshake relays code and reason both ways") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.send_text("last words");
    b.send_close(4001, "server bye");
    REQUIRE(h.wait_frames(c, 2));
    CHECK(c.frames()[0].payload == "last words");
    REQUIRE(c.close_frame() != nullptr);
    CHECK(c.close_frame()->close_code() == 4001);
    CHECK(c.close_frame()->close_reason() == "server bye");
    run_for(h.loop, 30);
    CHECK_FALSE(c.eof()); // the proxy waits for the client's answer
    CHECK(b.count(op::kClose) == 0);
    c.send_close(4001, "server bye");
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 4001);
    CHECK(b.close_frame()->close_reason() == "server bye");
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(h.until([&] { return b.closed(); }));
    CHECK(c.count(op::kClose) == 1);
    h.finish();
    CHECK(h.counter("wsbridge_ws_closes_total", {{"code", "4001"}, {"by", "backend"}}) == 1);
}

TEST_CASE("relay: a close without a code is relayed as a close without a code") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send(client_frame(op::kClose, ""));
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->payload.empty());
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->payload.empty());
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("relay: a client that never answers the backend's close is closed after "
          "close_timeout, and the backend gets its close answered") {
    Harness h({}, [](config::Config& c) {
        c.routes[0].limits.close_timeout = std::chrono::milliseconds(200);
    });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    const std::uint64_t t0 = now_ms(h.loop);
    b.send_close(1001, "restart");
    REQUIRE(h.until([&] { return c.eof(); }));
    const std::uint64_t elapsed = c.eof_at() - t0;
    CHECK(elapsed >= 190);
    CHECK(elapsed < 1000);
    REQUIRE(c.close_frame() != nullptr);
    CHECK(c.close_frame()->close_code() == 1001);
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1001);
    h.finish();
}

TEST_CASE("relay: a backend that never answers the client's close is cut after close_timeout "
          "and the client still gets its close answered") {
    BackendScript s;
    s.answer_close = false;
    Harness h(s, [](config::Config& c) {
        c.routes[0].limits.close_timeout = std::chrono::milliseconds(200);
    });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    const std::uint64_t t0 = now_ms(h.loop);
    c.send_close(1000, "done");
    REQUIRE(h.until([&] { return c.eof(); }));
    CHECK(c.eof_at() - t0 >= 190);
    REQUIRE(c.close_frame() != nullptr);
    CHECK(c.close_frame()->close_code() == 1000);
    CHECK(c.close_frame()->close_reason() == "done");
    REQUIRE(b.close_frame() != nullptr);
    CHECK(b.close_frame()->close_code() == 1000);
    CHECK(h.until([&] { return b.eof(); }));
    h.finish();
}

TEST_CASE("relay: an unmasked client frame is a protocol error: 1002 to the client and a "
          "close to the backend") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send(client_frame(op::kText, "fine"));
    REQUIRE(h.wait_backend_frames(1));
    c.send(server_frame(op::kText, "unmasked"));
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1002);
    CHECK(h.until([&] { return c.eof(); }));
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1002);
    CHECK(b.messages().size() == 1); // the bad frame's payload never reached the backend
    CHECK(b.ws_bytes().find("unmasked") == std::string::npos);
    CHECK(b.decode_error().empty());
    h.finish();
    CHECK(h.counter("wsbridge_protocol_errors_total",
                    {{"side", "client"}, {"reason", "protocol_error"}}) == 1);
}

TEST_CASE("relay: client protocol violations map to their close codes") {
    std::string bad;
    std::uint16_t code = 0;
    bool backend_gets_close = true;
    SUBCASE("RSV1 without an extension → 1002") {
        bad = client_frame(op::kText, "x", true, kClientMask, 4);
        code = 1002;
    }
    SUBCASE("reserved opcode → 1002") {
        bad = client_frame(0x3, "x");
        code = 1002;
    }
    SUBCASE("continuation without a message → 1002") {
        bad = client_frame(op::kCont, "x");
        code = 1002;
    }
    SUBCASE("fragmented ping → 1002") {
        bad = client_frame(op::kPing, "x", false);
        code = 1002;
    }
    SUBCASE("invalid UTF-8 → 1007; the staged frame is dropped and the backend closed 1007") {
        // "ok" was staged inside a begun frame but had not left: the frame is dropped, so the
        // backend gets the Close and none of the bad message (issue 10).
        bad = client_frame(op::kText, "ok\xC0\xAF");
        code = 1007;
    }
    SUBCASE("text cut off inside its last character → 1007 (issue 10)") {
        bad = client_frame(op::kText, "ok\xCE");
        code = 1007;
    }
    SUBCASE("fragments \"ok\" then \"\\xCE\" → 1007 (issue 10)") {
        bad = client_frame(op::kText, "ok", false) + client_frame(op::kCont, "\xCE");
        code = 1007;
    }
    SUBCASE("an unfinished three-byte character → 1007 (issue 10)") {
        bad = client_frame(op::kText, "\xE2\x82");
        code = 1007;
    }
    SUBCASE("invalid UTF-8 in a close reason → 1007") {
        bad = client_frame(op::kClose, close_body(1000, "\xC0\xAF"));
        code = 1007;
    }
    SUBCASE("invalid close code → 1002") {
        bad = client_frame(op::kClose, std::string("\x03\xED", 2)); // 1005 on the wire
        code = 1002;
    }
    SUBCASE("message over max_message → 1009") {
        bad = client_frame(op::kBinary, std::string(2000, 'x'));
        code = 1009;
    }
    Harness h({}, [](config::Config& c) { c.routes[0].limits.max_message = 1024; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send(bad);
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == code);
    CHECK(h.until([&] { return c.eof(); }));
    if (backend_gets_close) {
        REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
        CHECK(b.close_frame()->close_code() == code);
    } else {
        CHECK(h.until([&] { return b.eof(); }));
        CHECK(b.close_frame() == nullptr);
    }
    CHECK(b.messages().empty());
    CHECK(b.decode_error().empty());
    for (const Frame& f : b.frames()) {
        CHECK(f.payload.find('\xCE') == std::string::npos);  // none of a cut-off character
    }
    h.finish();
}

TEST_CASE("relay: a masked frame from the backend closes the client with 1014 and the backend "
          "with 1002") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.send_raw(client_frame(op::kText, "masked from a server"));
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1014);
    CHECK(c.messages().empty());
    CHECK(h.until([&] { return c.eof(); }));
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1002);
    CHECK(h.until([&] { return b.eof() || b.closed(); }));
    h.finish();
}

TEST_CASE("relay: a backend that drops TCP without a close gets the client a close 1014") {
    // SPEC §5: backend unreachable after the 101 → 1014 (Bad Gateway).
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.send_text("before");
    b.abort_tcp();
    REQUIRE(h.until([&] { return c.eof(); }));
    REQUIRE(c.messages().size() == 1);
    CHECK(c.messages()[0].payload == "before");
    REQUIRE(c.close_frame() != nullptr);
    CHECK(c.close_frame()->close_code() == 1014);
    h.finish();
    CHECK(h.counter("wsbridge_ws_closes_total", {{"code", "1014"}, {"by", "backend"}}) == 1);
}

TEST_CASE("relay: a client that drops TCP gets the backend a 1001 close") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send(client_frame(op::kText, "bye"));
    c.close();
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1001);
    REQUIRE(b.messages().size() == 1);
    CHECK(b.messages()[0].payload == "bye");
    CHECK(h.until([&] { return b.closed(); }));
    h.finish();
}

TEST_CASE("relay: the backend closes after N messages and the client sees everything first") {
    BackendScript s;
    s.echo = true;
    s.close_after = 3;
    s.close_code = 4100;
    s.close_reason = "enough";
    Harness h(s);
    RawClient& c = open_relay(h);
    c.send(client_frame(op::kText, "1") + client_frame(op::kText, "2") +
           client_frame(op::kText, "3"));
    REQUIRE(h.wait_frames(c, 4));
    CHECK(c.frames()[0].payload == "1");
    CHECK(c.frames()[2].payload == "3");
    CHECK(c.frames()[3].opcode == op::kClose);
    CHECK(c.frames()[3].close_code() == 4100);
    CHECK(c.frames()[3].close_reason() == "enough");
    c.send_close(4100, "enough");
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("relay: drain (Server::stop(going_away)) closes both sides with 1001") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    // Stop through the context like SIGTERM does; finish() then checks the loop is clean.
    h.context().shutdown_all(true);
    REQUIRE(h.until([&] { return c.close_frame() != nullptr && b.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1001);
    CHECK(b.close_frame()->close_code() == 1001);
    CHECK(h.until([&] { return c.eof() && b.closed(); }));
    h.finish();
}

TEST_CASE("relay: a backend message over max_message closes the client with 1009") {
    // SPEC §5: "message over max_message → close 1009" on the WebSocket transport, whichever
    // side sent it (the session transports close with 1009 too).
    Harness h({}, [](config::Config& c) { c.routes[0].limits.max_message = 1024; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.send_binary(std::string(1024, 'a')); // exactly at the limit: relayed
    b.send_binary(std::string(1025, 'b'));
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    REQUIRE(c.messages().size() == 1);
    CHECK(c.messages()[0].payload.size() == 1024);
    CHECK(c.close_frame()->close_code() == 1009);
    CHECK(c.received().find("bbbb") == std::string::npos);
    CHECK(h.until([&] { return c.eof(); }));
    // RFC 6455 §7.1.7: the backend gets a Close 1009 before its connection ends (issue 10).
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1009);
    CHECK(h.until([&] { return b.eof() || b.closed(); }));
    h.finish();
}

TEST_CASE("issue 10: backend text with invalid UTF-8 never reaches the client; both get 1007") {
    std::string bad;
    SUBCASE("cut off inside its last character") { bad = server_frame(op::kText, "ok\xCE"); }
    SUBCASE("as fragments") {
        bad = server_frame(op::kText, "ok", false) + server_frame(op::kCont, "\xCE");
    }
    SUBCASE("an unfinished three-byte character") { bad = server_frame(op::kText, "\xE2\x82"); }
    SUBCASE("a bad byte in the middle") { bad = server_frame(op::kText, "ok\xC0\xAFmore"); }
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.send_text("before");
    REQUIRE(h.until([&] { return c.messages().size() == 1; }));
    b.send_raw(bad);
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1007);
    CHECK(c.messages().size() == 1);
    CHECK(c.received().find('\xCE') == std::string::npos);
    CHECK(c.received().find('\xE2') == std::string::npos);
    CHECK(c.received().find('\xC0') == std::string::npos);
    CHECK(h.until([&] { return c.eof(); }));
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1007);
    CHECK(h.until([&] { return b.eof() || b.closed(); }));
    h.finish();
}

TEST_CASE("issue 10: on a client violation the backend's replies to earlier messages come first") {
    // Autobahn 3.2-style: a valid message, then a frame with RSV1 set, in one write. The
    // backend is failed first (Close 1002); its echo of the valid message and its Close
    // answer come back; the client gets the echo, then the Close 1002.
    Harness h;
    h.backend.script().echo = true;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.script().echo = true;
    c.send(client_frame(op::kText, "first") + client_frame(op::kText, "x", true, kClientMask, 4) +
           client_frame(op::kPing, "after"));
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1002);
    REQUIRE(c.messages().size() == 1);
    CHECK(c.messages()[0].payload == "first");
    CHECK(c.count(op::kPong) == 0);  // nothing after the violation is answered
    REQUIRE(b.close_frame() != nullptr);
    CHECK(b.close_frame()->close_code() == 1002);
    CHECK(b.messages().size() == 1);
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
    CHECK(h.counter("wsbridge_protocol_errors_total",
                    {{"side", "client"}, {"reason", "protocol_error"}}) == 1);
}

TEST_CASE("issue 10: a client violation is closed after close_timeout when the backend never "
          "answers") {
    Harness h({}, [](config::Config& c) {
        c.routes[0].limits.close_timeout = std::chrono::milliseconds(200);
    });
    h.backend.script().answer_close = false;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    b.script().answer_close = false;
    c.send(client_frame(0x3, "x"));
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1002);
    CHECK(c.close_frame() == nullptr);  // waiting for the backend's answer
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1002);
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("relay: a client over its message rate is closed with 1008") {
    Harness h({}, [](config::Config& c) { c.routes[0].limits.rate = config::Rate{1, 3}; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    std::string wire;
    for (int i = 0; i < 10; ++i) {
        wire += client_frame(op::kText, "m" + std::to_string(i));
    }
    c.send(wire);
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    CHECK(c.close_frame()->close_code() == 1008);
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 1008);
    // Exactly the burst passes: the rate is taken at a message's first frame header, so the
    // message over the rate is never streamed to the backend.
    REQUIRE(b.messages().size() == 3);
    CHECK(b.messages()[2].payload == "m2");
    CHECK(b.count(op::kText) == 3);
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("relay: a client message still incomplete after message_timeout is closed with 1008") {
    // SPEC §5 slow drip: the clock runs from the read that left a message incomplete.
    Harness h({}, [](config::Config& c) { c.routes[0].limits.message_timeout = kDripTimeout; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    std::string wire;
    SUBCASE("a frame whose payload stops half way") {
        wire = client_frame(op::kText, std::string(100, 'x')).substr(0, 60);
    }
    SUBCASE("a fragmented message whose last fragment never comes") {
        wire = client_frame(op::kText, "first", false);
    }
    SUBCASE("a frame header cut short") { wire = client_frame(op::kBinary, "abc").substr(0, 1); }
    const std::uint64_t t0 = now_ms(h.loop);
    c.send(wire);
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }, 3000));
    const std::uint64_t elapsed = now_ms(h.loop) - t0;
    CHECK(c.close_frame()->close_code() == 1008);
    CHECK(c.close_frame()->payload.find("message_timeout") != std::string::npos);
    CHECK(elapsed >= kDripTimeout.count() - 5);
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(h.until([&] { return b.eof() || b.closed(); }));
    CHECK(b.messages().empty());
    h.finish();
}

TEST_CASE("relay: messages that complete within message_timeout keep the connection open") {
    Harness h({}, [](config::Config& c) { c.routes[0].limits.message_timeout = kDripTimeout; });
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    // A fragmented message spread over most of the timeout, then a long quiet spell.
    const std::string whole = client_frame(op::kText, "one ", false) +
                              client_frame(op::kCont, "two ", false) +
                              client_frame(op::kCont, "three", true);
    c.send(whole.substr(0, 7));
    h.until([] { return false; }, kDripTimeout.count() / 2);
    c.send(whole.substr(7));
    REQUIRE(h.until([&] { return b.messages().size() == 1; }));
    CHECK(b.messages()[0].payload == "one two three");
    h.until([] { return false; }, kDripTimeout.count() * 3);
    CHECK(c.close_frame() == nullptr);
    CHECK_FALSE(c.eof());
    c.send(client_frame(op::kText, "still here"));
    REQUIRE(h.until([&] { return b.messages().size() == 2; }));
    h.finish();
}

TEST_CASE("relay: the route's subprotocol list filters the offer sent to the backend") {
    BackendScript s;
    s.subprotocol = "v2";
    Harness h(s, [](config::Config& c) { c.routes[0].subprotocols = {"v2", "v3"}; });
    RawClient& c =
        h.upgrade("/chat", {"Sec-WebSocket-Protocol: v1, v2", "Sec-WebSocket-Protocol: v3"});
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 101);
    REQUIRE(c.response()->header("Sec-WebSocket-Protocol") != nullptr);
    CHECK(*c.response()->header("Sec-WebSocket-Protocol") == "v2");
    REQUIRE(h.backend.peer().request().find("Sec-WebSocket-Protocol") != nullptr);
    CHECK(*h.backend.peer().request().find("Sec-WebSocket-Protocol") == "v2, v3");
    h.finish();
}

TEST_CASE("relay: nothing after a Close frame is relayed, in either direction") {
    BackendScript s;
    s.answer_close = false;
    Harness h(s);
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send(client_frame(op::kClose, close_body(1000, "")) + client_frame(op::kText, "ghost"));
    REQUIRE(h.until([&] { return b.close_frame() != nullptr; }));
    b.send_close(1000, "");
    b.send_text("ghost from the backend");
    REQUIRE(h.until([&] { return c.close_frame() != nullptr; }));
    run_for(h.loop, 30);
    CHECK(b.messages().empty());
    CHECK(c.messages().empty());
    CHECK(b.ws_bytes().find("ghost") == std::string::npos);
    CHECK(c.received().find("ghost") == std::string::npos);
    CHECK(h.until([&] { return c.eof(); }));
    b.close_tcp();
    h.finish();
}

TEST_CASE("relay: simultaneous closes from both sides complete both handshakes") {
    BackendScript s;
    s.answer_close = false;
    Harness h(s);
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    c.send_close(4001, "client first");
    b.send_close(4002, "backend first");
    REQUIRE(h.until([&] { return c.close_frame() != nullptr && b.close_frame() != nullptr; }));
    CHECK(b.close_frame()->close_code() == 4001);
    CHECK(c.close_frame()->close_code() == 4002);
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(c.count(op::kClose) == 1);
    CHECK(b.count(op::kClose) == 1);
    b.close_tcp();
    h.finish();
}

TEST_CASE("relay: control frames are never put inside a frame being relayed") {
    Harness h;
    RawClient& c = open_relay(h);
    BackendPeer& b = h.backend.peer();
    // Backend → client: a 1000-byte frame arrives in two pieces; the client pings in between.
    const std::string big = server_frame(op::kBinary, pattern_bytes(1000, 7));
    b.send_raw(big.substr(0, 300));
    REQUIRE(h.until([&] { return c.received().size() >= c.response()->size + 300; }));
    c.send(client_frame(op::kPing, "between"));
    run_for(h.loop, 30);
    CHECK(c.frames().empty());
    b.send_raw(big.substr(300));
    REQUIRE(h.wait_frames(c, 2));
    CHECK(c.frames()[0].opcode == op::kBinary);
    CHECK(c.frames()[0].payload == pattern_bytes(1000, 7));
    CHECK(c.frames()[1].opcode == op::kPong);
    CHECK(c.frames()[1].payload == "between");

    // Client → backend: the same, with the backend pinging the proxy mid-frame.
    const std::string up = client_frame(op::kBinary, pattern_bytes(1000, 8));
    c.send(up.substr(0, 300));
    REQUIRE(h.until([&] { return b.ws_bytes().size() >= 300 - 4; }));
    b.send_frame(op::kPing, "mid");
    run_for(h.loop, 30);
    CHECK(b.frames().empty());
    c.send(up.substr(300));
    REQUIRE(h.wait_backend_frames(2));
    CHECK(b.frames()[0].opcode == op::kBinary);
    CHECK(b.frames()[0].payload == pattern_bytes(1000, 8));
    CHECK(b.frames()[1].opcode == op::kPong);
    CHECK(b.frames()[1].payload == "mid");
    CHECK(b.decode_error().empty());
    h.finish();
}

} // namespace proxy::test
