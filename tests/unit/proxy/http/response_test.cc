// Tests for proxy/http/response.cc: reason phrases and the exact bytes of built responses
// (SPEC §1: every error body is {"error":"<code>","detail":"<sentence>"}).

#include "proxy/http/response.h"

#include <doctest/doctest.h>
#include <string>
#include <string_view>

#include "proxy/http/parser.h"

namespace proxy::http {
namespace {

using namespace std::string_literals;

TEST_CASE("reason_phrase knows every status the proxy sends and says Unknown otherwise") {
    CHECK(reason_phrase(101) == "Switching Protocols");
    CHECK(reason_phrase(200) == "OK");
    CHECK(reason_phrase(400) == "Bad Request");
    CHECK(reason_phrase(403) == "Forbidden");
    CHECK(reason_phrase(404) == "Not Found");
    CHECK(reason_phrase(408) == "Request Timeout");
    CHECK(reason_phrase(413) == "Content Too Large");
    CHECK(reason_phrase(426) == "Upgrade Required");
    CHECK(reason_phrase(429) == "Too Many Requests");
    CHECK(reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(reason_phrase(502) == "Bad Gateway");
    CHECK(reason_phrase(503) == "Service Unavailable");
    CHECK(reason_phrase(504) == "Gateway Timeout");
    CHECK(reason_phrase(299) == "Unknown");
    CHECK(reason_phrase(0) == "Unknown");
}

TEST_CASE("build_response writes the status line, headers in order, Content-Length, body") {
    CHECK(build_response(200, {{"Content-Type", "text/plain"}, {"X-A", "1"}}, "hello", false) ==
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n"
          "hello");
    CHECK(build_response(204, {}, "", false) ==
          "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
    CHECK(build_response(503, {}, "", true) ==
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST_CASE("json_error builds the SPEC error body with its headers") {
    CHECK(json_error(404, "not_found", "No route matches /x.", false) ==
          "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
          "Content-Length: 53\r\n\r\n"
          "{\"error\":\"not_found\",\"detail\":\"No route matches /x.\"}");
    CHECK(std::string_view("{\"error\":\"not_found\",\"detail\":\"No route matches /x.\"}").size() ==
          53);
}

TEST_CASE("json_error adds the extra headers after its own and escapes the detail") {
    const std::string r =
        json_error(426, "upgrade_required", "Use \"13\".", true, {{"Sec-WebSocket-Version", "13"}});
    const std::string body = "{\"error\":\"upgrade_required\",\"detail\":\"Use \\\"13\\\".\"}";
    CHECK(r == "HTTP/1.1 426 Upgrade Required\r\nContent-Type: application/json\r\n"
               "Cache-Control: no-store\r\nSec-WebSocket-Version: 13\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

TEST_CASE("a built response parses back with the same status, headers and body length") {
    const std::string r = json_error(429, "rate_limited", "Slow down.", false,
                                     {{"Retry-After", "1"}});
    ResponseParser parser;
    auto fed = parser.feed(std::span<const char>(r.data(), r.size()));
    REQUIRE(fed);
    REQUIRE(fed->complete);
    const Response& resp = parser.response();
    CHECK(resp.status == 429);
    CHECK(resp.reason == "Too Many Requests");
    REQUIRE(resp.find("Retry-After") != nullptr);
    CHECK(*resp.find("Retry-After") == "1");
    REQUIRE(resp.find("Content-Length") != nullptr);
    CHECK(std::stoul(*resp.find("Content-Length")) == r.size() - fed->consumed);
}

TEST_CASE("json_error quotes code and detail with the one JSON string writer") {
    // core::append_json_string (tests/unit/proxy/core/text_test.cc): short escapes for
    // \b \f \n \r \t, \u00xx for other C0 controls, U+2028/U+2029 escaped, UTF-8 copied.
    const std::string r = json_error(400, "bad\\code", "a\nb\x01 caf\xC3\xA9 \xE2\x80\xA8", false);
    const std::string body =
        "{\"error\":\"bad\\\\code\",\"detail\":\"a\\nb\\u0001 caf\xC3\xA9 \\u2028\"}";
    CHECK(r == "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
               "Cache-Control: no-store\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
}

} // namespace
} // namespace proxy::http
