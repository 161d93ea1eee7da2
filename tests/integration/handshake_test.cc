// Integration tests of the WebSocket opening handshake through the proxy (SPEC §2 "Backend
// first"): the real Server on an in-process loop, a FakeBackend behind it and RawClients in
// front. Every test ends with the clean-loop check (Harness::finish).

#include "proxy/core/tcp.h"
#include "tests/support/harness.h"
#include "tests/support/stalled_listener.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

using Handshake = BackendScript::Handshake;

BackendScript script_with(Handshake h) {
    BackendScript s;
    s.handshake = h;
    return s;
}

/// A port on which nothing listens: bind :0, read the port, close.
std::uint16_t closed_port(core::Loop& loop) {
    core::TcpListener l(loop);
    auto r = l.listen("127.0.0.1", 0, [](std::unique_ptr<core::TcpStream>) {});
    REQUIRE(r.has_value());
    const std::uint16_t port = l.local_port();
    l.close();
    run_for(loop, 1);
    return port;
}

} // namespace

TEST_CASE("handshake: accepted upgrade answers 101 with the client's accept key and forwards "
          "only the allow-listed headers") {
    BackendScript script;
    script.subprotocol = "superchat";
    script.extra_101 = "Set-Cookie: sid=9; HttpOnly\r\nX-Backend-Internal: 1\r\n";
    Harness h(script);
    RawClient& c = h.upgrade("/chat?room=7&transport=x",
                             {"Cookie: a=1; b=2", "Authorization: Bearer token",
                              "X-Secret: do-not-forward", "X-Forwarded-For: 10.9.9.9",
                              "Sec-WebSocket-Protocol: chat, superchat", "User-Agent: test"});
    const auto r = c.response();
    REQUIRE(r.has_value());
    CHECK(r->status == 101);
    REQUIRE(r->header("Sec-WebSocket-Accept") != nullptr);
    CHECK(*r->header("Sec-WebSocket-Accept") == kSampleAccept);
    CHECK(*r->header("Sec-WebSocket-Accept") == accept_for(kSampleKey));
    REQUIRE(r->header("Upgrade") != nullptr);
    CHECK(*r->header("Upgrade") == "websocket");
    REQUIRE(r->header("Sec-WebSocket-Protocol") != nullptr);
    CHECK(*r->header("Sec-WebSocket-Protocol") == "superchat");
    REQUIRE(r->header("Set-Cookie") != nullptr);
    CHECK(*r->header("Set-Cookie") == "sid=9; HttpOnly");
    CHECK(r->header("X-Backend-Internal") == nullptr);
    CHECK(r->header("Content-Length") == nullptr);
    CHECK(c.received().size() == r->size); // nothing after the 101 head

    REQUIRE(h.backend.connections() == 1);
    BackendPeer& b = h.backend.peer();
    REQUIRE(b.head_complete());
    const http::Request& req = b.request();
    CHECK(req.method == "GET");
    CHECK(req.target == "/chat?room=7"); // reserved `transport` is not forwarded
    REQUIRE(req.find("Host") != nullptr);
    CHECK(*req.find("Host") == "127.0.0.1:" + std::to_string(h.backend.port()));
    REQUIRE(req.find("Cookie") != nullptr);
    CHECK(*req.find("Cookie") == "a=1; b=2");
    REQUIRE(req.find("Authorization") != nullptr);
    CHECK(*req.find("Authorization") == "Bearer token");
    CHECK(req.count("X-Forwarded-For") == 1);
    CHECK(*req.find("X-Forwarded-For") == "127.0.0.1");
    REQUIRE(req.find("X-Forwarded-Proto") != nullptr);
    CHECK(*req.find("X-Forwarded-Proto") == "http");
    REQUIRE(req.find("X-Forwarded-Host") != nullptr);
    CHECK(*req.find("X-Forwarded-Host") == "127.0.0.1");
    REQUIRE(req.find("Sec-WebSocket-Protocol") != nullptr);
    CHECK(*req.find("Sec-WebSocket-Protocol") == "chat, superchat");
    CHECK(req.find("X-Secret") == nullptr);
    CHECK(req.find("User-Agent") == nullptr);
    REQUIRE(req.find("Sec-WebSocket-Key") != nullptr);
    CHECK(*req.find("Sec-WebSocket-Key") != kSampleKey); // the proxy's own key
    CHECK(*req.find("Sec-WebSocket-Version") == "13");
    CHECK(b.bytes_before_answer() == 0);

    CHECK(h.counter("wsbridge_upgrades_total", {{"result", "accepted"}}) == 1);
    CHECK(h.context().metrics().gauge("wsbridge_connections", {{"transport", "websocket"}}) == 1);
    h.finish();
    CHECK(h.counter("wsbridge_ws_closes_total", {{"code", "1001"}, {"by", "proxy"}}) == 1);
}

TEST_CASE("handshake: bytes pipelined behind the upgrade reach the backend exactly once, "
          "after both 101s") {
    Harness h(script_with(Handshake::Manual));
    RawClient& c = h.connect();
    c.send(upgrade_request("/chat") + client_frame(op::kText, "early"));
    REQUIRE(
        h.until([&] { return h.backend.connections() == 1 && h.backend.peer().head_complete(); }));
    BackendPeer& b = h.backend.peer();
    // While the backend has not answered, another frame arrives in a separate segment.
    c.send(client_frame(op::kBinary, "second"));
    run_for(h.loop, 60);
    CHECK(b.bytes_before_answer() == 0);
    CHECK(b.ws_bytes().empty());
    CHECK(c.received().empty()); // no 101 to the client before the backend's

    b.accept();
    REQUIRE(h.wait_backend_frames(2));
    REQUIRE(h.wait_response(c));
    CHECK(c.response()->status == 101);
    run_for(h.loop, 50);
    REQUIRE(b.frames().size() == 2);
    CHECK(b.frames()[0].opcode == op::kText);
    CHECK(b.frames()[0].payload == "early");
    CHECK(b.frames()[1].opcode == op::kBinary);
    CHECK(b.frames()[1].payload == "second");
    CHECK(b.frames()[0].masked);
    CHECK(b.decode_error().empty());
    CHECK(b.bytes_before_answer() == 0);
    h.finish();
}

TEST_CASE("handshake: a backend rejection status goes back to the client, body dropped, and "
          "the connection closes") {
    BackendScript s = script_with(Handshake::Reject);
    s.reject_status = 403;
    s.reject_headers = "WWW-Authenticate: Bearer\r\nX-Internal: 1\r\n";
    Harness h(s);
    RawClient& c = h.upgrade("/chat", {}, client_frame(op::kText, "held"));
    const auto r = c.response();
    REQUIRE(r.has_value());
    CHECK(r->status == 403);
    CHECK(r->body.empty());
    CHECK(c.received().find("backend body!") == std::string::npos);
    REQUIRE(r->header("WWW-Authenticate") != nullptr);
    CHECK(*r->header("WWW-Authenticate") == "Bearer");
    CHECK(r->header("X-Internal") == nullptr);
    REQUIRE(r->header("Connection") != nullptr);
    CHECK(*r->header("Connection") == "close");
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(c.received().size() == r->size); // nothing else, and no reusable connection
    REQUIRE(h.backend.connections() == 1);
    CHECK(h.backend.peer().ws_bytes().empty()); // the held frame was never forwarded
    CHECK(h.counter("wsbridge_upgrades_total", {{"result", "rejected"}}) == 1);
    h.finish();
}

TEST_CASE("handshake: a backend 101 with a wrong accept key gives 502") {
    Harness h(script_with(Handshake::BadAccept));
    RawClient& c = h.upgrade("/chat", {}, client_frame(op::kText, "held"));
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 502);
    CHECK(c.response()->body.find("\"error\":\"bad_gateway\"") != std::string::npos);
    CHECK(h.until([&] { return c.eof(); }));
    REQUIRE(h.backend.connections() == 1);
    CHECK(h.until([&] { return h.backend.peer().eof(); }));
    CHECK(h.backend.peer().ws_bytes().empty());
    h.finish();
}

TEST_CASE("handshake: a backend 101 with an unoffered subprotocol gives 502") {
    BackendScript s;
    s.subprotocol = "other";
    Harness h(s);
    RawClient& c = h.upgrade("/chat", {"Sec-WebSocket-Protocol: chat"});
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 502);
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("handshake: a backend that never answers gives 504 after backend_handshake_timeout") {
    Harness h(script_with(Handshake::Silent), [](config::Config& c) {
        c.routes[0].limits.backend_handshake_timeout = std::chrono::milliseconds(200);
    });
    RawClient& c = h.connect();
    const std::uint64_t sent = now_ms(h.loop);
    c.send(upgrade_request("/chat"));
    REQUIRE(h.wait_response(c, 3000));
    const std::uint64_t elapsed = now_ms(h.loop) - sent;
    CHECK(c.response()->status == 504);
    CHECK(c.response()->body.find("\"error\":\"backend_timeout\"") != std::string::npos);
    CHECK(elapsed >= 195);
    CHECK(elapsed < 1000);
    CHECK(h.until([&] { return c.eof(); }));
    REQUIRE(h.backend.connections() == 1);
    CHECK(h.until([&] { return h.backend.peer().eof(); }));
    h.finish();
}

TEST_CASE("handshake: a backend that closes before answering gives 502") {
    Harness h(script_with(Handshake::Manual));
    RawClient& c = h.connect();
    c.send(upgrade_request("/chat"));
    REQUIRE(
        h.until([&] { return h.backend.connections() == 1 && h.backend.peer().head_complete(); }));
    h.backend.peer().close_tcp();
    REQUIRE(h.wait_response(c));
    CHECK(c.response()->status == 502);
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("handshake: an unreachable backend gives 502") {
    core::Loop probe;
    const std::uint16_t dead = closed_port(probe);
    CHECK(probe.close_all());
    Harness h({}, [dead](config::Config& c) {
        c.routes[0].backend.port = dead;
        c.routes[0].backend.host_header = "127.0.0.1:" + std::to_string(dead);
    });
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 502);
    CHECK(c.response()->body.find("could not be reached") != std::string::npos);
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(h.backend.connections() == 0);
    h.finish();
}

TEST_CASE("handshake: malformed upgrades are refused before any backend connection") {
    Harness h;
    std::string request;
    unsigned status = 0;
    SUBCASE("missing key → 400") {
        request = upgrade_request("/chat", {}, "");
        status = 400;
    }
    SUBCASE("version 8 → 426 naming version 13") {
        request = "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        status = 426;
    }
    SUBCASE("key not 16 bytes → 400") {
        request = upgrade_request("/chat", {}, "c2hvcnQ=");
        status = 400;
    }
    SUBCASE("POST upgrade → 400") {
        request = upgrade_request("/chat");
        request.replace(0, 3, "POST");
        status = 400;
    }
    SUBCASE("Connection without upgrade → 400") {
        request = "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        status = 400;
    }
    SUBCASE("foreign Origin → 403") {
        request = upgrade_request("/chat", {"Origin: https://evil.example"});
        status = 403;
    }
    RawClient& c = h.connect();
    c.send(request + client_frame(op::kText, "never"));
    REQUIRE(h.wait_response(c));
    const auto r = c.response();
    CHECK(r->status == status);
    CHECK(r->body.rfind("{\"error\":\"", 0) == 0);
    if (status == 426) {
        REQUIRE(r->header("Sec-WebSocket-Version") != nullptr);
        CHECK(*r->header("Sec-WebSocket-Version") == "13");
    }
    CHECK(h.until([&] { return c.eof(); }));
    run_for(h.loop, 20);
    CHECK(h.backend.connections() == 0);
    h.finish();
}

TEST_CASE("handshake: frames sent right behind the backend's 101 reach the client after its 101") {
    BackendScript s;
    s.after_101 = server_frame(op::kText, "welcome") + server_frame(op::kBinary, "\x01\x02");
    Harness h(s);
    RawClient& c = h.upgrade("/chat");
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 101);
    REQUIRE(h.wait_frames(c, 2));
    CHECK(c.frames()[0].opcode == op::kText);
    CHECK(c.frames()[0].payload == "welcome");
    CHECK(c.frames()[1].opcode == op::kBinary);
    CHECK(c.frames()[1].payload == "\x01\x02");
    CHECK_FALSE(c.frames()[0].masked);
    h.finish();
}

TEST_CASE("handshake: the YAML config path drives the same relay") {
    auto h = Harness::from_yaml(R"(
listen:
  - address: 127.0.0.1:0
routes:
  - path: /chat/
    backend: ws://127.0.0.1:BACKEND_PORT/app
    backend_handshake_timeout: 1s
)",
                                BackendScript{});
    RawClient& c = h->upgrade("/chat/room/5?x=1");
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 101);
    REQUIRE(h->backend.connections() == 1);
    CHECK(h->backend.peer().request().target == "/app/room/5?x=1");
    h->finish();
}

TEST_CASE("handshake: a backend connect that does not complete gives 504 after "
          "backend_connect_timeout") {
    StalledListener stalled;
    REQUIRE(stalled.ok());
    Harness h({}, [&stalled](config::Config& c) {
        c.routes[0].backend.port = stalled.port();
        c.routes[0].limits.backend_connect_timeout = std::chrono::milliseconds(200);
    });
    RawClient& c = h.connect();
    const std::uint64_t t0 = now_ms(h.loop);
    c.send(upgrade_request("/chat"));
    REQUIRE(h.wait_response(c));
    const std::uint64_t elapsed = now_ms(h.loop) - t0;
    CHECK(c.response()->status == 504);
    CHECK(elapsed >= 195);
    CHECK(elapsed < 1000);
    CHECK(h.until([&] { return c.eof(); }));
    h.finish();
}

TEST_CASE("handshake: regression: shutdown while the backend connect is in flight cancels the "
          "connect") {
    // The relay's shutdown closed its backend stream with Flush while the TCP connect was
    // still pending, and the connect was not cancelled: libuv then reported the connect as
    // successful at once (the callback ran after close(), against TcpStream's contract; had
    // the relay been deleted first it would have been a use-after-free), and the half-open
    // socket lingered until the 5 s flush deadline. Loop::close_all() then force-closed it and
    // leaked its state (LeakSanitizer: 496 bytes). Sessions close their backend the same way.
    StalledListener stalled;
    REQUIRE(stalled.ok());
    Harness h({}, [&stalled](config::Config& c) {
        c.routes[0].backend.port = stalled.port();
        c.routes[0].limits.backend_connect_timeout = std::chrono::seconds(10);
    });
    RawClient& c = h.connect();
    c.send(upgrade_request("/chat"));
    REQUIRE(h.until([&] {
        return h.context().metrics().gauge("wsbridge_connections", {{"transport", "websocket"}}) ==
               1;
    }));
    run_for(h.loop, 30);
    CHECK_FALSE(c.response().has_value()); // still connecting
    h.context().shutdown_all(false);
    REQUIRE(h.until([&] { return c.eof(); }));
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 503);
    CHECK(h.until([&] { return h.context().live_count() == 0; }));
    // Let the hanging connect complete now (next SYN retransmit, about a second later).
    stalled.release();
    run_for(h.loop, 1500);
    CHECK(h.context().live_count() == 0);
    h.finish();
}

TEST_CASE("handshake: an upgrade pipelined behind a keep-alive request is still relayed") {
    Harness h;
    RawClient& c = h.connect();
    c.send(get_request("/nope") + upgrade_request("/chat") + client_frame(op::kText, "after"));
    REQUIRE(h.wait_backend_frames(1));
    CHECK(h.backend.peer().frames()[0].payload == "after");
    REQUIRE(h.until([&] { return parse_responses(c.received()).size() == 2; }));
    const auto rs = parse_responses(c.received());
    CHECK(rs[0].status == 404);
    CHECK(rs[1].status == 101);
    REQUIRE(rs[1].header("Sec-WebSocket-Accept") != nullptr);
    CHECK(*rs[1].header("Sec-WebSocket-Accept") == kSampleAccept);
    h.finish();
}

TEST_CASE("handshake: an upgrade with a body is refused with 400") {
    Harness h;
    RawClient& c = h.connect();
    std::string req = upgrade_request("/chat", {"Content-Length: 5"}) + "hello";
    c.send(req);
    REQUIRE(h.wait_response(c));
    CHECK(c.response()->status == 400);
    CHECK(h.until([&] { return c.eof(); }));
    CHECK(h.backend.connections() == 0);
    h.finish();
}

TEST_CASE("handshake: a backend 101 split across segments is parsed incrementally") {
    BackendScript s;
    s.handshake = BackendScript::Handshake::Manual;
    Harness h(s);
    RawClient& c = h.connect();
    c.send(upgrade_request("/chat"));
    REQUIRE(
        h.until([&] { return h.backend.connections() == 1 && h.backend.peer().head_complete(); }));
    BackendPeer& b = h.backend.peer();
    const std::string* key = b.request().find("Sec-WebSocket-Key");
    REQUIRE(key != nullptr);
    const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                             accept_for(*key) + "\r\n\r\n" + server_frame(op::kText, "split");
    for (std::size_t i = 0; i < head.size(); i += 7) {
        b.send_raw(head.substr(i, 7));
        run_for(h.loop, 1);
    }
    REQUIRE(h.wait_response(c));
    CHECK(c.response()->status == 101);
    REQUIRE(h.wait_frames(c, 1));
    CHECK(c.frames()[0].payload == "split");
    h.finish();
}

TEST_CASE("handshake: route forward_headers extend the allow-list; a same-origin page passes") {
    Harness h({}, [](config::Config& c) { c.routes[0].forward_headers = {"X-Tenant"}; });
    RawClient& c =
        h.upgrade("/chat", {"X-Tenant: blue", "X-Secret: no", "Origin: http://127.0.0.1"});
    REQUIRE(c.response().has_value());
    CHECK(c.response()->status == 101);
    const http::Request& req = h.backend.peer().request();
    REQUIRE(req.find("X-Tenant") != nullptr);
    CHECK(*req.find("X-Tenant") == "blue");
    CHECK(req.find("X-Secret") == nullptr);
    CHECK(req.find("Origin") == nullptr);
    h.finish();
}

} // namespace proxy::test
