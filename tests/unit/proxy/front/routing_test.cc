// Tests for proxy/routing.cc: the backend request target (SPEC §1: path suffix and
// non-reserved query parameters forwarded) and the Origin policy (SPEC §5). Routes are built
// by hand; YAML loading is config_test.cc's business.

#include "proxy/front/routing.h"

#include <doctest/doctest.h>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/http/message.h"

namespace proxy {
namespace {

config::Route route(std::string path, std::string backend_path) {
    config::Route r;
    r.prefix = !path.empty() && path.back() == '/';
    r.path = std::move(path);
    r.backend.host = "backend";
    r.backend.port = 9000;
    r.backend.host_header = "backend:9000";
    r.backend.path = std::move(backend_path);
    r.backend.text = "ws://backend:9000" + r.backend.path;
    return r;
}

config::Route with_origins(std::vector<std::string> origins) {
    config::Route r = route("/chat", "/ws");
    r.origins = std::move(origins);
    return r;
}

http::Request get(std::string target) {
    http::Request r;
    r.method = "GET";
    r.target = std::move(target);
    r.headers.push_back({"Host", "example.com"});
    return r;
}

http::Request from_origin(std::string_view origin, std::string_view host = "example.com") {
    http::Request r;
    r.method = "GET";
    r.target = "/chat";
    r.headers.push_back({"Host", std::string(host)});
    r.headers.push_back({"Origin", std::string(origin)});
    return r;
}

OriginVerdict verdict(const config::Route& r, std::string_view origin,
                      std::string_view scheme = "https", std::string_view host = "example.com") {
    return check_origin(r, from_origin(origin, host), scheme);
}

// ---- backend_target ------------------------------------------------------------------------

TEST_CASE("backend_target: an exact route maps to the backend path") {
    const config::Route r = route("/chat", "/ws");
    CHECK(backend_target(r, get("/chat")) == "/ws");
    CHECK(backend_target(r, get("/chat?")) == "/ws");
    CHECK(backend_target(route("/chat", "/"), get("/chat")) == "/");
}

TEST_CASE("backend_target: a prefix route appends the path suffix with exactly one slash") {
    CHECK(backend_target(route("/chat/", "/ws"), get("/chat/room/1")) == "/ws/room/1");
    CHECK(backend_target(route("/chat/", "/ws/"), get("/chat/room/1")) == "/ws/room/1");
    CHECK(backend_target(route("/chat/", "/"), get("/chat/room")) == "/room");
    CHECK(backend_target(route("/", "/api"), get("/a/b")) == "/api/a/b");
    CHECK(backend_target(route("/chat/", "/ws"), get("/chat/")) == "/ws");
    CHECK(backend_target(route("/chat/", "/ws/"), get("/chat/")) == "/ws/");
    // Extra slashes at the start of the suffix collapse into the one separator.
    CHECK(backend_target(route("/chat/", "/ws"), get("/chat//room")) == "/ws/room");
    // The suffix is forwarded byte for byte (no decoding, trailing slash kept).
    CHECK(backend_target(route("/chat/", "/ws"), get("/chat/a%20b/")) == "/ws/a%20b/");
}

TEST_CASE("backend_target: the backend URL's query comes first, then the client's "
          "non-reserved parameters in order") {
    CHECK(backend_target(route("/chat", "/ws?token=abc"), get("/chat?x=1&y=2")) ==
          "/ws?token=abc&x=1&y=2");
    CHECK(backend_target(route("/chat", "/ws?token=abc"), get("/chat")) == "/ws?token=abc");
    CHECK(backend_target(route("/chat", "/ws"), get("/chat?b=2&a=1&b=3")) == "/ws?b=2&a=1&b=3");
    CHECK(backend_target(route("/chat/", "/ws?v=2"), get("/chat/room?x=1")) ==
          "/ws/room?v=2&x=1");
    // Parameters are copied byte for byte, valueless ones included; empty ones are dropped.
    CHECK(backend_target(route("/chat", "/ws"), get("/chat?q=a%20b+c&flag&&e=")) ==
          "/ws?q=a%20b+c&flag&e=");
}

TEST_CASE("backend_target drops the reserved parameters and keeps look-alikes") {
    const config::Route r = route("/chat", "/ws?k=v");
    CHECK(backend_target(r, get("/chat?transport=longpoll&session=S&ack=3&seq=4&batch=1"
                                "&protocol=chat&x=1")) == "/ws?k=v&x=1");
    CHECK(backend_target(route("/chat", "/ws"),
                         get("/chat?a=1&transport=longpoll&b=2&session&ack=&c=3")) ==
          "/ws?a=1&b=2&c=3");
    CHECK(backend_target(route("/chat", "/ws"), get("/chat?transport=longpoll")) == "/ws");
    CHECK(backend_target(route("/chat", "/ws"), get("/chat?sessions=1&xack=2&seq_=3")) ==
          "/ws?sessions=1&xack=2&seq_=3");
    for (const char* name : {"transport", "session", "ack", "seq", "batch", "protocol"}) {
        CHECK(is_reserved_query_param(name));
    }
    CHECK_FALSE(is_reserved_query_param("Session"));
    CHECK_FALSE(is_reserved_query_param(""));
}

// ---- check_origin: with a list -------------------------------------------------------------

TEST_CASE("check_origin: exact entries match case-insensitively, scheme and port included") {
    const config::Route r = with_origins({"https://app.example.com", "http://localhost:3000"});
    CHECK(verdict(r, "https://app.example.com") == OriginVerdict::Allowed);
    CHECK(verdict(r, "HTTPS://App.Example.COM") == OriginVerdict::Allowed);
    CHECK(verdict(r, "http://localhost:3000") == OriginVerdict::Allowed);
    CHECK(verdict(r, "http://app.example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://app.example.com:8443") == OriginVerdict::Rejected);
    CHECK(verdict(r, "http://localhost:3001") == OriginVerdict::Rejected);
    CHECK(verdict(r, "http://localhost") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://app.example.co") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://app.example.com.evil.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://example.com") == OriginVerdict::Rejected);
    // The list replaces the same-origin default.
    CHECK(verdict(r, "https://example.com", "https", "example.com") == OriginVerdict::Rejected);
}

TEST_CASE("check_origin: a wildcard entry matches strict subdomains only") {
    const config::Route r = with_origins({"https://*.example.com"});
    CHECK(verdict(r, "https://a.example.com") == OriginVerdict::Allowed);
    CHECK(verdict(r, "https://a.b.example.com") == OriginVerdict::Allowed);
    CHECK(verdict(r, "https://A.Example.com") == OriginVerdict::Allowed);
    CHECK(verdict(r, "https://example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://evilexample.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://a.evilexample.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "http://a.example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://.example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://a.example.com:8443") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://a.example.com.evil.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://evil.com/.example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "wss://a.example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "null") == OriginVerdict::Rejected);
}

TEST_CASE("check_origin: a wildcard entry with a port needs that port") {
    const config::Route r = with_origins({"https://*.example.com:8443"});
    CHECK(verdict(r, "https://a.example.com:8443") == OriginVerdict::Allowed);
    CHECK(verdict(r, "https://a.example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://a.example.com:443") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://example.com:8443") == OriginVerdict::Rejected);
}

TEST_CASE("check_origin: \"*\" allows any origin but not \"null\"") {
    const config::Route r = with_origins({"*"});
    CHECK(verdict(r, "https://anything.test") == OriginVerdict::Allowed);
    CHECK(verdict(r, "http://localhost:1234") == OriginVerdict::Allowed);
    CHECK(verdict(r, "null") == OriginVerdict::Rejected);
}

TEST_CASE("check_origin: \"null\" passes only when listed") {
    CHECK(verdict(with_origins({"null"}), "null") == OriginVerdict::Allowed);
    CHECK(verdict(with_origins({"https://a.test", "null"}), "null") == OriginVerdict::Allowed);
    CHECK(verdict(with_origins({"null"}), "https://a.test") == OriginVerdict::Rejected);
    CHECK(verdict(with_origins({"https://a.test"}), "null") == OriginVerdict::Rejected);
    // Without a list, an opaque origin is never same-origin.
    CHECK(verdict(route("/chat", "/ws"), "null") == OriginVerdict::Rejected);
}

// ---- check_origin: same-origin default -----------------------------------------------------

TEST_CASE("check_origin without a list allows only the listener's scheme plus the Host") {
    const config::Route r = route("/chat", "/ws");
    CHECK(verdict(r, "https://example.com", "https", "example.com") == OriginVerdict::Allowed);
    CHECK(verdict(r, "https://example.com:8443", "https", "example.com:8443") ==
          OriginVerdict::Allowed);
    CHECK(verdict(r, "https://EXAMPLE.com:8443", "https", "example.COM:8443") ==
          OriginVerdict::Allowed);
    CHECK(verdict(r, "http://example.com:8080", "http", "example.com:8080") ==
          OriginVerdict::Allowed);
    // Port, scheme or host differences reject.
    CHECK(verdict(r, "https://example.com", "https", "example.com:8443") ==
          OriginVerdict::Rejected);
    CHECK(verdict(r, "https://example.com:8443", "https", "example.com") ==
          OriginVerdict::Rejected);
    CHECK(verdict(r, "http://example.com", "https", "example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://example.com", "http", "example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://evil.com", "https", "example.com") == OriginVerdict::Rejected);
    CHECK(verdict(r, "https://a.example.com", "https", "example.com") ==
          OriginVerdict::Rejected);
}

TEST_CASE("check_origin: no Origin header is NoOrigin whatever the route says") {
    http::Request r = get("/chat");
    CHECK(check_origin(route("/chat", "/ws"), r, "https") == OriginVerdict::NoOrigin);
    CHECK(check_origin(with_origins({"https://a.test"}), r, "https") == OriginVerdict::NoOrigin);
    config::Route strict = with_origins({"*"});
    strict.require_origin = true;
    CHECK(check_origin(strict, r, "https") == OriginVerdict::NoOrigin);
}

TEST_CASE("check_origin: several Origin headers or no Host are rejected") {
    http::Request twice = from_origin("https://example.com");
    twice.headers.push_back({"Origin", "https://example.com"});
    CHECK(check_origin(with_origins({"*"}), twice, "https") == OriginVerdict::Rejected);
    CHECK(check_origin(route("/chat", "/ws"), twice, "https") == OriginVerdict::Rejected);

    http::Request no_host;
    no_host.method = "GET";
    no_host.target = "/chat";
    no_host.headers.push_back({"origin", "https://example.com"});
    CHECK(check_origin(route("/chat", "/ws"), no_host, "https") == OriginVerdict::Rejected);
}

} // namespace
} // namespace proxy

namespace proxy {

TEST_CASE("decode_query_value: %XX and + decode; a broken escape is nullopt") {
    CHECK(decode_query_value("") == std::string());
    CHECK(decode_query_value("plain") == std::string("plain"));
    CHECK(decode_query_value("a+b%20c") == std::string("a b c"));
    CHECK(decode_query_value("%E2%9C%93%2b%2B") == std::string("\xE2\x9C\x93++"));
    CHECK(decode_query_value("%00") == std::string(1, '\0'));
    CHECK_FALSE(decode_query_value("%"));
    CHECK_FALSE(decode_query_value("%4"));
    CHECK_FALSE(decode_query_value("ab%4"));
    CHECK_FALSE(decode_query_value("%G0"));
    CHECK_FALSE(decode_query_value("%0g"));
    CHECK(decode_query_value("x%41+%42y") == std::string("xA By"));
}

} // namespace proxy
