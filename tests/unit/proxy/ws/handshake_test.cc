// Tests for proxy/ws/handshake.cc: the client upgrade request rules of RFC 6455 §4.2.1, the
// exact bytes of the request sent to the backend and of the 101 sent to the client, and the
// client-side checks of the backend's 101 (RFC 6455 §4.1).

#include "proxy/ws/handshake.h"

#include <doctest/doctest.h>
#include <string>
#include <utility>
#include <vector>

#include "proxy/http/parser.h"
#include "proxy/core/base64.h"

namespace proxy::ws {
namespace {

using core::Code;

// RFC 6455 §1.3 sample.
constexpr std::string_view kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

using HeaderList = std::vector<std::pair<std::string, std::string>>;

HeaderList valid_headers() {
    return {{"Host", "example.com"},
            {"Upgrade", "websocket"},
            {"Connection", "Upgrade"},
            {"Sec-WebSocket-Key", std::string(kSampleKey)},
            {"Sec-WebSocket-Version", "13"}};
}

http::Request request_with(const HeaderList& headers) {
    http::Request r;
    r.method = "GET";
    r.target = "/chat";
    for (const auto& [name, value] : headers) {
        r.headers.push_back({name, value});
    }
    return r;
}

http::Request valid_request() { return request_with(valid_headers()); }

// The valid headers with `name` removed (all of them), then `extra` appended.
http::Request request_without(std::string_view name, const HeaderList& extra = {}) {
    HeaderList h;
    for (auto& kv : valid_headers()) {
        if (!http::iequals(kv.first, name)) {
            h.push_back(kv);
        }
    }
    h.insert(h.end(), extra.begin(), extra.end());
    return request_with(h);
}

Code code_of(const http::Request& r) {
    auto v = validate_client_handshake(r);
    return v ? Code::Ok : v.error().code;
}

http::Response backend_101(const HeaderList& extra = {}, bool with_accept = true) {
    http::Response r;
    r.status = 101;
    r.reason = "Switching Protocols";
    r.headers.push_back({"Upgrade", "websocket"});
    r.headers.push_back({"Connection", "Upgrade"});
    if (with_accept) {
        r.headers.push_back({"Sec-WebSocket-Accept", std::string(kSampleAccept)});
    }
    for (const auto& [name, value] : extra) {
        r.headers.push_back({name, value});
    }
    return r;
}

Code backend_code(const http::Response& r, const std::vector<std::string>& offered = {}) {
    auto v = validate_backend_response(r, kSampleKey, offered);
    return v ? Code::Ok : v.error().code;
}

// ---- client request ------------------------------------------------------------------------

TEST_CASE("validate_client_handshake accepts a valid request and returns its key") {
    auto v = validate_client_handshake(valid_request());
    REQUIRE(v);
    CHECK(v->key == kSampleKey);
    CHECK(v->protocols.empty());
}

TEST_CASE("validate_client_handshake accepts Upgrade and Connection tokens in any case and "
          "in lists") {
    for (const char* upgrade : {"websocket", "WebSocket", "WEBSOCKET", "h2c, websocket"}) {
        for (const char* connection :
             {"Upgrade", "upgrade", "UPGRADE", "keep-alive, Upgrade", "keep-alive,upgrade"}) {
            INFO("Upgrade: ", upgrade, ", Connection: ", connection);
            HeaderList h = valid_headers();
            h[1].second = upgrade;
            h[2].second = connection;
            const http::Request r = request_with(h);
            CHECK(wants_websocket(r));
            CHECK(code_of(r) == Code::Ok);
        }
    }
    // Header names are case-insensitive too.
    CHECK(code_of(request_with({{"host", "h"},
                                {"UPGRADE", "websocket"},
                                {"connection", "upgrade"},
                                {"sec-websocket-key", std::string(kSampleKey)},
                                {"SEC-WEBSOCKET-VERSION", "13"}})) == Code::Ok);
}

TEST_CASE("wants_websocket needs the websocket token in Upgrade") {
    CHECK(wants_websocket(valid_request()));
    CHECK_FALSE(wants_websocket(request_without("Upgrade")));
    CHECK_FALSE(wants_websocket(request_without("Upgrade", {{"Upgrade", "websockets"}})));
    CHECK_FALSE(wants_websocket(request_without("Upgrade", {{"Upgrade", "h2c"}})));
    CHECK_FALSE(wants_websocket(request_without("Upgrade", {{"X-Upgrade", "websocket"}})));
}

TEST_CASE("validate_client_handshake: a missing or unsupported version is UpgradeRequired") {
    // RFC 6455 §4.2.2: a version the server does not understand gets 426 and the supported
    // version; handshake.h answers a missing version the same way. The request carries a
    // single version (§4.1), so a list like "13, 8" is not version 13.
    CHECK(code_of(request_without("Sec-WebSocket-Version")) == Code::UpgradeRequired);
    for (const char* version : {"8", "12", "14", "13, 8", "8, 13", "", "013", "13.0"}) {
        INFO("Sec-WebSocket-Version: ", version);
        CHECK(code_of(request_without("Sec-WebSocket-Version",
                                      {{"Sec-WebSocket-Version", version}})) ==
              Code::UpgradeRequired);
    }
    CHECK(code_of(request_without("Sec-WebSocket-Version", {{"Sec-WebSocket-Version", "13"},
                                                            {"Sec-WebSocket-Version", "13"}})) ==
          Code::UpgradeRequired);
    auto v = validate_client_handshake(request_without("Sec-WebSocket-Version"));
    REQUIRE_FALSE(v);
    CHECK(v.error().side == core::Side::Client);
}

TEST_CASE("validate_client_handshake: a key that is not base64 of 16 bytes is BadRequest") {
    CHECK(code_of(request_without("Sec-WebSocket-Key")) == Code::BadRequest);
    for (const char* key : {
             "",
             "AAAAAAAAAAAAAAAAAAAA",              // 15 bytes
             "AAAAAAAAAAAAAAAAAAAAAAA=",          // 17 bytes
             "AAAAAAAAAAAAAAAAAAAAAAAA",          // 18 bytes
             "dGhlIHNhbXBsZSBub25jZQ",            // 16 bytes, padding missing
             "dGhlIHNhbXBsZSBub25jZQ=",           // wrong padding
             "dGhlIHNhbXBsZSBub25jZ!==",          // invalid character
             "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==",
         }) {
        INFO("Sec-WebSocket-Key: ", key);
        CHECK(code_of(request_without("Sec-WebSocket-Key", {{"Sec-WebSocket-Key", key}})) ==
              Code::BadRequest);
    }
    CHECK(code_of(request_without("Sec-WebSocket-Key",
                                  {{"Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="}})) ==
          Code::Ok);
}

TEST_CASE("validate_client_handshake: a repeated key is BadRequest even when identical") {
    CHECK(code_of(request_with([] {
              HeaderList h = valid_headers();
              h.emplace_back("Sec-WebSocket-Key", std::string(kSampleKey));
              return h;
          }())) == Code::BadRequest);
}

TEST_CASE("validate_client_handshake: wrong method, old HTTP, Host and Connection problems are "
          "BadRequest") {
    http::Request post = valid_request();
    post.method = "POST";
    CHECK(code_of(post) == Code::BadRequest);

    http::Request http10 = valid_request();
    http10.http_minor = 0;
    CHECK(code_of(http10) == Code::BadRequest);

    CHECK(code_of(request_without("Host")) == Code::BadRequest);
    CHECK(code_of(request_without("Host", {{"Host", "a"}, {"Host", "b"}})) == Code::BadRequest);

    CHECK(code_of(request_without("Connection")) == Code::BadRequest);
    CHECK(code_of(request_without("Connection", {{"Connection", "keep-alive"}})) ==
          Code::BadRequest);
    CHECK(code_of(request_without("Connection", {{"Connection", "upgraded"}})) ==
          Code::BadRequest);
}

TEST_CASE("validate_client_handshake: a request body is BadRequest") {
    http::Request with_body = valid_request();
    with_body.body = "x";
    CHECK(code_of(with_body) == Code::BadRequest);
    CHECK(code_of(request_without("", {{"Content-Length", "0"}})) == Code::BadRequest);
    CHECK(code_of(request_without("", {{"Transfer-Encoding", "chunked"}})) == Code::BadRequest);
}

TEST_CASE("validate_client_handshake collects the subprotocol offer in order across headers") {
    auto v = validate_client_handshake(request_without(
        "", {{"Sec-WebSocket-Protocol", "chat.v2, superchat"}, {"Sec-WebSocket-Protocol", "x,,y"}}));
    REQUIRE(v);
    CHECK(v->protocols == std::vector<std::string>{"chat.v2", "superchat", "x", "y"});
}

TEST_CASE("validate_client_handshake: a subprotocol that is not a token is BadRequest") {
    for (const char* offer : {"chat v2", "a/b", "\"chat\"", "chat, a;b", "x=1", "caf\xC3\xA9"}) {
        INFO("Sec-WebSocket-Protocol: ", offer);
        CHECK(code_of(request_without("", {{"Sec-WebSocket-Protocol", offer}})) ==
              Code::BadRequest);
    }
}

TEST_CASE("validate_client_handshake works on a request from the parser") {
    const std::string raw =
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    http::RequestParser parser;
    auto fed = parser.feed(std::span<const char>(raw.data(), raw.size()));
    REQUIRE(fed);
    REQUIRE(fed->complete);
    auto v = validate_client_handshake(parser.request());
    REQUIRE(v);
    CHECK(v->key == kSampleKey);
    CHECK(v->protocols == std::vector<std::string>{"chat", "superchat"});
}

// ---- backend request -----------------------------------------------------------------------

TEST_CASE("build_backend_request writes the exact upgrade request") {
    BackendRequest r;
    r.target = "/ws/room?x=1";
    r.host_header = "backend:9000";
    r.key = "AAAAAAAAAAAAAAAAAAAAAA==";
    r.protocols = {"chat", "superchat"};
    r.forwarded = {{"Cookie", "a=1; b=2"}, {"Authorization", "Bearer t"}};
    r.forwarded_for = "203.0.113.7";
    r.forwarded_proto = "https";
    r.forwarded_host = "example.com";
    CHECK(build_backend_request(r) ==
          "GET /ws/room?x=1 HTTP/1.1\r\n"
          "Host: backend:9000\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
          "Sec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Protocol: chat, superchat\r\n"
          "Cookie: a=1; b=2\r\n"
          "Authorization: Bearer t\r\n"
          "X-Forwarded-For: 203.0.113.7\r\n"
          "X-Forwarded-Proto: https\r\n"
          "X-Forwarded-Host: example.com\r\n"
          "\r\n");
}

TEST_CASE("build_backend_request leaves out an empty protocol offer and X-Forwarded-Host") {
    BackendRequest r;
    r.target = "/";
    r.host_header = "b";
    r.key = "k";
    r.forwarded_for = "::1";
    r.forwarded_proto = "http";
    CHECK(build_backend_request(r) ==
          "GET / HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n"
          "X-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n\r\n");
}

TEST_CASE("make_key returns base64 of 16 fresh random bytes") {
    const std::string a = make_key();
    const std::string b = make_key();
    CHECK(a.size() == 24);
    auto decoded = core::base64_decode(a);
    REQUIRE(decoded);
    CHECK(decoded->size() == 16);
    CHECK(a != b);
}

// ---- backend response ----------------------------------------------------------------------

TEST_CASE("validate_backend_response accepts a valid 101 and returns no subprotocol") {
    auto v = validate_backend_response(backend_101(), kSampleKey, {});
    REQUIRE(v);
    CHECK(v->empty());
    // Tokens in any case; an empty Sec-WebSocket-Extensions selects nothing.
    http::Response r = backend_101({{"Sec-WebSocket-Extensions", ""}});
    r.headers[0].value = "WebSocket";
    r.headers[1].value = "keep-alive, UPGRADE";
    CHECK(backend_code(r) == Code::Ok);
}

TEST_CASE("validate_backend_response: a status other than 101 is BackendRejected") {
    for (unsigned status : {200u, 302u, 400u, 403u, 404u, 426u, 500u, 503u}) {
        http::Response r = backend_101();
        r.status = status;
        auto v = validate_backend_response(r, kSampleKey, {});
        REQUIRE_FALSE(v);
        CHECK(v.error().code == Code::BackendRejected);
        CHECK(v.error().side == core::Side::Backend);
        CHECK(v.error().context.find(std::to_string(status)) != std::string::npos);
    }
}

TEST_CASE("validate_backend_response: a wrong, missing or repeated accept is "
          "BackendBadHandshake") {
    CHECK(backend_code(backend_101({}, false)) == Code::BackendBadHandshake);
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo"}},
                                   false)) == Code::BackendBadHandshake);
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Accept", "S3PPLMBITXAQ9KYGZZHZRBK+XOO="}},
                                   false)) == Code::BackendBadHandshake);
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Accept", std::string(kSampleAccept)}})) ==
          Code::BackendBadHandshake);
    // The accept of another key.
    auto v = validate_backend_response(backend_101(), "AAAAAAAAAAAAAAAAAAAAAA==", {});
    REQUIRE_FALSE(v);
    CHECK(v.error().code == Code::BackendBadHandshake);
}

TEST_CASE("validate_backend_response: missing Upgrade or Connection is BackendBadHandshake") {
    http::Response no_upgrade = backend_101();
    no_upgrade.headers.erase(no_upgrade.headers.begin());
    CHECK(backend_code(no_upgrade) == Code::BackendBadHandshake);

    http::Response other_upgrade = backend_101();
    other_upgrade.headers[0].value = "h2c";
    CHECK(backend_code(other_upgrade) == Code::BackendBadHandshake);

    http::Response no_connection = backend_101();
    no_connection.headers.erase(no_connection.headers.begin() + 1);
    CHECK(backend_code(no_connection) == Code::BackendBadHandshake);

    http::Response keep_alive = backend_101();
    keep_alive.headers[1].value = "keep-alive";
    CHECK(backend_code(keep_alive) == Code::BackendBadHandshake);
}

TEST_CASE("validate_backend_response: an extension selected is BackendBadHandshake") {
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Extensions", "permessage-deflate"}})) ==
          Code::BackendBadHandshake);
}

TEST_CASE("validate_backend_response returns the subprotocol only when it was offered") {
    auto v = validate_backend_response(backend_101({{"Sec-WebSocket-Protocol", "superchat"}}),
                                       kSampleKey, {"chat", "superchat"});
    REQUIRE(v);
    CHECK(*v == "superchat");

    CHECK(backend_code(backend_101({{"Sec-WebSocket-Protocol", "other"}}), {"chat"}) ==
          Code::BackendBadHandshake);
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Protocol", "chat"}}), {}) ==
          Code::BackendBadHandshake);
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Protocol", "chat, superchat"}}),
                       {"chat", "superchat"}) == Code::BackendBadHandshake);
    CHECK(backend_code(backend_101({{"Sec-WebSocket-Protocol", "chat"},
                                    {"Sec-WebSocket-Protocol", "chat"}}),
                       {"chat"}) == Code::BackendBadHandshake);
    // Not selecting any of the offered subprotocols is allowed.
    CHECK(backend_code(backend_101(), {"chat"}) == Code::Ok);
}

TEST_CASE("validate_backend_response works on a 101 from the parser") {
    const std::string raw =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
        "\r\n";
    http::ResponseParser parser;
    auto fed = parser.feed(std::span<const char>(raw.data(), raw.size()));
    REQUIRE(fed);
    REQUIRE(fed->complete);
    auto v = validate_backend_response(parser.response(), kSampleKey, {"chat"});
    REQUIRE(v);
    CHECK(*v == "chat");
}

// ---- client 101 ----------------------------------------------------------------------------

TEST_CASE("build_client_101 writes the exact 101 for the RFC 6455 sample key") {
    CHECK(build_client_101(kSampleKey, "", {}) ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "\r\n");
}

TEST_CASE("build_client_101 adds the selected subprotocol and the backend's cookies") {
    CHECK(build_client_101(kSampleKey, "chat", {"a=1; Path=/", "b=2; HttpOnly"}) ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: chat\r\n"
          "Set-Cookie: a=1; Path=/\r\n"
          "Set-Cookie: b=2; HttpOnly\r\n"
          "\r\n");
}

} // namespace
} // namespace proxy::ws
