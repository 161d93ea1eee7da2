// YAML loading, validation messages, route resolution and matching (config/config.cc), plus
// backend URLs and origins (config/url.cc).

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace {

namespace fs = std::filesystem;
using config::Duration;

/// Loads `yaml` and returns the error lines; fails the test if it loads.
std::string errors_of(std::string_view yaml, const std::string& name = "bad.yaml") {
    auto result = config::load_config_string(yaml, name);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == proxy::core::Code::Config);
    CHECK(result.error().side == proxy::core::Side::Config);
    return result.error().context;
}

config::Config load_ok(std::string_view yaml) {
    auto result = config::load_config_string(yaml, "good.yaml");
    if (!result) {
        FAIL_CHECK(result.error().context);
    }
    REQUIRE(result.has_value());
    return std::move(result).value();
}

/// A valid file with one route; `route_extra` lines are appended to the route (4 spaces).
std::string with_route(std::string_view route_extra) {
    return std::string("listen:\n"
                       "  - address: 127.0.0.1:0\n"
                       "routes:\n"
                       "  - path: /chat\n"
                       "    backend: ws://127.0.0.1:9000/chat\n") +
           std::string(route_extra);
}

// ---------------------------------------------------------------------------------------------
// Backend URLs and origins

TEST_CASE("parse_backend_url: valid URLs") {
    std::string why;
    auto url = config::parse_backend_url("ws://127.0.0.1:9000/chat", why);
    REQUIRE(url);
    CHECK_FALSE(url->tls);
    CHECK(url->host == "127.0.0.1");
    CHECK(url->port == 9000);
    CHECK(url->path == "/chat");
    CHECK(url->host_header == "127.0.0.1:9000");
    CHECK(url->text == "ws://127.0.0.1:9000/chat");

    url = config::parse_backend_url("wss://backend.internal", why);
    REQUIRE(url);
    CHECK(url->tls);
    CHECK(url->port == 443);
    CHECK(url->path == "/");
    CHECK(url->host_header == "backend.internal");

    url = config::parse_backend_url("WS://Host_1.example:80/a/b?x=1&y=%20", why);
    REQUIRE(url);
    CHECK(url->port == 80);
    CHECK(url->host_header == "Host_1.example"); // default port is left out
    CHECK(url->path == "/a/b?x=1&y=%20");

    url = config::parse_backend_url("ws://h?x=1", why);
    REQUIRE(url);
    CHECK(url->path == "/?x=1");

    url = config::parse_backend_url("ws://[::1]:9000/", why);
    REQUIRE(url);
    CHECK(url->host == "::1");
    CHECK(url->host_header == "[::1]:9000");

    url = config::parse_backend_url("wss://[2001:db8::1]/x", why);
    REQUIRE(url);
    CHECK(url->host == "2001:db8::1");
    CHECK(url->host_header == "[2001:db8::1]");
    CHECK(url->port == 443);

    url = config::parse_backend_url("ws://h:65535", why);
    REQUIRE(url);
    CHECK(url->port == 65535);
}

TEST_CASE("parse_backend_url: invalid URLs say why") {
    struct Case {
        const char* url;
        const char* why;
    };
    const Case cases[] = {
        {"http://h/", "scheme must be ws:// or wss:// (got http://)"},
        {"https://h/", "scheme must be ws:// or wss:// (got https://)"},
        {"h:9000/chat", "expected a ws:// or wss:// URL"},
        {"ws://", "host is required"},
        {"ws:///chat", "host is required"},
        {"ws://:9000/", "host is required"},
        {"ws://h:0/", "invalid port \"0\" (use 1-65535)"},
        {"ws://h:65536/", "invalid port \"65536\" (use 1-65535)"},
        {"ws://h:99999999999/", "invalid port \"99999999999\" (use 1-65535)"},
        {"ws://h:-1/", "invalid port \"-1\" (use 1-65535)"},
        {"ws://h:/", "empty port after ':'"},
        {"ws://user:pw@h/", "userinfo (\"user@\") is not allowed"},
        {"ws://user@h/", "userinfo (\"user@\") is not allowed"},
        {"ws://h/chat#top", "fragments ('#') are not allowed in backend URLs"},
        {"ws://::1:9000/", "IPv6 addresses must be written in brackets, like [::1]:9000"},
        {"ws://[::1/", "missing ']' after IPv6 address"},
        {"ws://[::g]/", "invalid IPv6 address \"::g\""},
        {"ws://[::1]x/", "unexpected text after ']'"},
        {"ws://999.1.1.1/", "invalid IPv4 address \"999.1.1.1\""},
        {"ws://1.2.3/", "invalid IPv4 address \"1.2.3\""},
        {"ws://a..b/", "host \"a..b\" has an empty label"},
        {"ws://h./", "host \"h.\" has an empty label"},
        {"ws://h%20x/", "invalid character '%' in host"},
        {"ws://h/a b", "character byte 0x20 is not allowed in a URL path; percent-encode it"},
        {"ws://h/a\"b", "character '\"' is not allowed in a URL path; percent-encode it"},
        {"ws://h/%zz", "invalid percent-escape in path"},
        {"ws://h/%2", "invalid percent-escape in path"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.url);
        std::string why;
        CHECK_FALSE(config::parse_backend_url(c.url, why));
        CHECK(why == c.why);
    }
}

TEST_CASE("parse_origin: normalised patterns") {
    std::string why;
    CHECK(config::parse_origin("*", why) == "*");
    CHECK(config::parse_origin("null", why) == "null");
    CHECK(config::parse_origin("https://app.example.com", why) == "https://app.example.com");
    CHECK(config::parse_origin("HTTPS://App.Example.COM", why) == "https://app.example.com");
    CHECK(config::parse_origin("https://app.example.com:443", why) == "https://app.example.com");
    CHECK(config::parse_origin("http://localhost:80", why) == "http://localhost");
    CHECK(config::parse_origin("http://localhost:3000", why) == "http://localhost:3000");
    CHECK(config::parse_origin("https://*.example.com", why) == "https://*.example.com");
    CHECK(config::parse_origin("https://*.example.com:8443", why) == "https://*.example.com:8443");
    CHECK(config::parse_origin("http://[::1]:8080", why) == "http://[::1]:8080");
    CHECK(config::parse_origin("chrome-extension://abcdef", why) == "chrome-extension://abcdef");
}

TEST_CASE("parse_origin: invalid patterns say why") {
    struct Case {
        const char* origin;
        const char* why;
    };
    const Case cases[] = {
        {"app.example.com", "expected \"*\" or scheme://host[:port], like https://app.example.com"},
        {"https://app.example.com/",
         "an origin has no path, query or fragment (remove \"/\")"},
        {"https://a.com/x?y", "an origin has no path, query or fragment (remove \"/x?y\")"},
        {"https://*", "'*' is only allowed as \"*\" or as a leading \"*.\" in the host"},
        {"https://a.*.com", "'*' is only allowed as \"*\" or as a leading \"*.\" in the host"},
        {"*.example.com", "expected \"*\" or scheme://host[:port], like https://app.example.com"},
        {"https://*.10.0.0.1", "a \"*.\" wildcard needs a domain name, not an IP address"},
        {"NULL", "expected \"*\" or scheme://host[:port], like https://app.example.com"},
        {"https://u@a.com", "userinfo (\"user@\") is not allowed"},
        {"https://a.com:0", "invalid port \"0\" (use 1-65535)"},
        {"1http://a.com", "invalid scheme \"1http\""},
        {"ht_tp://a.com", "invalid scheme \"ht_tp\""},
        {"https://", "host is required"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.origin);
        std::string why;
        CHECK_FALSE(config::parse_origin(c.origin, why));
        CHECK(why == c.why);
    }
}

// ---------------------------------------------------------------------------------------------
// Loading: values, defaults and overrides

TEST_CASE("minimal file: defaults everywhere") {
    const auto config = load_ok("listen: [{address: 0.0.0.0:8080}]\n"
                                "routes: [{path: /, backend: ws://b:9000}]\n");
    CHECK(config.source == "good.yaml");
    CHECK(config.instance.empty());
    REQUIRE(config.listen.size() == 1);
    CHECK(config.listen[0].host == "0.0.0.0");
    CHECK(config.listen[0].port == 8080);
    CHECK_FALSE(config.listen[0].tls);
    CHECK_FALSE(config.admin);
    CHECK(config.drain_timeout == Duration{10'000});
    CHECK(config.limits.max_connections == 10'000);
    CHECK(config.limits.max_header_bytes == 8 * 1024);
    REQUIRE(config.routes.size() == 1);
    const config::Route& route = config.routes[0];
    CHECK(route.path == "/");
    CHECK(route.prefix);
    CHECK(route.backend.host == "b");
    CHECK(route.transports.websocket);
    CHECK(route.transports.sse);
    CHECK(route.transports.longpoll);
    CHECK(route.origins.empty());
    CHECK_FALSE(route.require_origin);
    CHECK(route.limits.max_message == config::RouteLimits{}.max_message);
    CHECK(route.limits.idle_timeout == Duration{60'000});
}

TEST_CASE("every key is read") {
    const auto config = load_ok(R"(instance: a1-B_2
listen:
  - address: 127.0.0.1:0
  - address: "[::1]:8443"
admin: { address: "[::]:9091" }
drain_timeout: 2.5s
limits:
  max_connections: 500
  max_connections_per_ip: 20
  max_header_bytes: 16k
  max_headers: 50
  header_timeout: 5s
  idle_timeout: 30s
  backend_idle_timeout: 45s
  backend_connect_timeout: 2s
  backend_handshake_timeout: 3s
  close_timeout: 4s
  message_timeout: 3s
  max_message: 32k
  max_post_body: 128k
  rate: { messages_per_second: 12.5, burst: 25 }
  max_sessions: 77
  outbound_queue: 256k
  resume_window: 1m
  replay_buffer: 512k
  replay_messages: 900
routes:
  - path: /chat/
    backend: wss://chat.internal/ws
    transports: [sse, longpoll]
    origins: [https://app.example.com, "https://*.Example.com:443"]
    require_origin: true
    subprotocols: [chat.v2, mqtt]
    forward_headers: [X-Request-Id, Origin]
)");
    CHECK(config.instance == "a1-B_2");
    REQUIRE(config.listen.size() == 2);
    CHECK(config.listen[1].host == "::1");
    CHECK(config.listen[1].port == 8443);
    REQUIRE(config.admin);
    CHECK(config.admin->host == "::");
    CHECK(config.admin->port == 9091);
    CHECK(config.drain_timeout == Duration{2'500});
    CHECK(config.limits.max_connections == 500);
    CHECK(config.limits.max_connections_per_ip == 20);
    CHECK(config.limits.max_header_bytes == 16 * 1024);
    CHECK(config.limits.max_headers == 50);
    CHECK(config.limits.header_timeout == Duration{5'000});
    const config::Route& route = config.routes.at(0);
    CHECK(route.prefix);
    CHECK(route.backend.tls);
    CHECK_FALSE(route.transports.websocket);
    CHECK(route.transports.sse);
    CHECK(route.transports.longpoll);
    CHECK(route.origins == std::vector<std::string>{"https://app.example.com",
                                                    "https://*.example.com"});
    CHECK(route.require_origin);
    CHECK(route.subprotocols == std::vector<std::string>{"chat.v2", "mqtt"});
    CHECK(route.forward_headers == std::vector<std::string>{"X-Request-Id", "Origin"});
    const config::RouteLimits& l = route.limits;
    CHECK(l.idle_timeout == Duration{30'000});
    CHECK(l.backend_idle_timeout == Duration{45'000});
    CHECK(l.backend_connect_timeout == Duration{2'000});
    CHECK(l.backend_handshake_timeout == Duration{3'000});
    CHECK(l.close_timeout == Duration{4'000});
    CHECK(l.message_timeout == Duration{3'000});
    CHECK(l.max_message == 32 * 1024);
    CHECK(l.max_post_body == 128 * 1024);
    CHECK(l.rate.messages_per_second == doctest::Approx(12.5));
    CHECK(l.rate.burst == 25);
    CHECK(l.max_sessions == 77);
    CHECK(l.outbound_queue == 256 * 1024);
    CHECK(l.resume_window == Duration{60'000});
    CHECK(l.replay_buffer == 512 * 1024);
    CHECK(l.replay_messages == 900);
}

TEST_CASE("route values override limits, key by key, wherever limits is in the file") {
    const auto config = load_ok(R"(listen: [{address: 127.0.0.1:0}]
routes:
  - path: /a
    backend: ws://b/a
    idle_timeout: 20s
    rate: { burst: 7 }
  - path: /b
    backend: ws://b/b
    max_message: 512k
limits:
  idle_timeout: 90s
  max_message: 16k
  rate: { messages_per_second: 3, burst: 9 }
)");
    REQUIRE(config.routes.size() == 2);
    const auto& a = config.routes[0].limits;
    const auto& b = config.routes[1].limits;
    CHECK(a.idle_timeout == Duration{20'000});
    CHECK(a.max_message == 16 * 1024);
    CHECK(a.rate.messages_per_second == doctest::Approx(3));
    CHECK(a.rate.burst == 7);
    CHECK(b.idle_timeout == Duration{90'000});
    CHECK(b.max_message == 512 * 1024);
    CHECK(b.rate.burst == 9);
    CHECK(b.close_timeout == config::RouteLimits{}.close_timeout);
    CHECK(config.limits.route.max_message == 16 * 1024);
}

TEST_CASE("YAML integers are bytes where a size is expected; quoted numbers are accepted") {
    const auto config = load_ok(with_route("    max_message: 4096\n"
                                           "    max_sessions: \"12\"\n"
                                           "    idle_timeout: 0.1s\n"));
    CHECK(config.routes[0].limits.max_message == 4096);
    CHECK(config.routes[0].limits.max_sessions == 12);
    CHECK(config.routes[0].limits.idle_timeout == Duration{100});
}

// ---------------------------------------------------------------------------------------------
// Errors: one test per category, with the exact line

TEST_CASE("error: YAML syntax") {
    CHECK(errors_of("listen: [1, 2\nroutes: 3\n") ==
          "bad.yaml:2:7: invalid YAML: end of sequence flow not found");
    CHECK(errors_of("listen:\n  - a: 1\n   b: 2\n") ==
          "bad.yaml:3:4: invalid YAML: end of sequence not found");
}

TEST_CASE("error: empty file, wrong root, several documents") {
    CHECK(errors_of("") ==
          "bad.yaml:1:1: the configuration is empty; it needs at least listen and routes");
    CHECK(errors_of("# only a comment\n") ==
          "bad.yaml:1:1: the configuration is empty; it needs at least listen and routes");
    CHECK(errors_of("- a\n- b\n") ==
          "bad.yaml:1:1: expected a map with keys (instance, listen, admin, limits, "
          "drain_timeout, drain_delay, log, routes), got a list");
    CHECK(errors_of(with_route("---\nlisten: []\n")) ==
          "bad.yaml:6:1: only one YAML document is allowed per file");
}

TEST_CASE("error: input that makes yaml-cpp 0.7 loop (jbeder/yaml-cpp#1040) fails at once") {
    CHECK(errors_of(",") == "bad.yaml:1:1: invalid YAML: unexpected \",\"");
    CHECK(errors_of("# comment\n,# x\nlisten: []\n") ==
          "bad.yaml:2:1: invalid YAML: unexpected \",\"");
}

TEST_CASE("error: unknown keys, with the allowed ones and a hint") {
    CHECK(errors_of(with_route("    idle_timout: 5s\n")) ==
          "bad.yaml:6:5: routes[0].idle_timout: unknown key; did you mean \"idle_timeout\"? "
          "allowed: path, backend, transports, origins, require_origin, subprotocols, "
          "forward_headers, backend_tls, idle_timeout, backend_idle_timeout, backend_connect_timeout, "
          "backend_handshake_timeout, close_timeout, message_timeout, max_message, "
          "max_post_body, rate, max_sessions, outbound_queue, resume_window, replay_buffer, "
          "replay_messages");
    CHECK(errors_of(with_route("    rate: {per_second: 5}\n")) ==
          "bad.yaml:6:12: routes[0].rate.per_second: unknown key; allowed: "
          "messages_per_second, burst");
    CHECK(errors_of("color: blue\n" + with_route("")) ==
          "bad.yaml:1:1: color: unknown key; allowed: instance, listen, admin, limits, "
          "drain_timeout, drain_delay, log, routes");
    CHECK(errors_of(with_route("limits: {max_conections: 5}\n")) ==
          "bad.yaml:6:10: limits.max_conections: unknown key; did you mean "
          "\"max_connections\"? allowed: max_connections, max_connections_per_ip, "
          "max_header_bytes, max_headers, header_timeout, idle_timeout, backend_idle_timeout, "
          "backend_connect_timeout, backend_handshake_timeout, close_timeout, message_timeout, "
          "max_message, max_post_body, rate, max_sessions, outbound_queue, resume_window, "
          "replay_buffer, replay_messages");
}

TEST_CASE("regression: control characters from the file stay on their error line (issue 5)") {
    // Found by the config_load fuzz target: keys and values were printed raw, so a newline in
    // a quoted key or origin split one problem over two lines (the context holds one problem
    // per line).
    CHECK(errors_of("\"col\\nor\\x7f\": blue\n" + with_route("")) ==
          "bad.yaml:1:1: col?or?: unknown key; allowed: instance, listen, admin, limits, "
          "drain_timeout, drain_delay, log, routes");
    // The same for text from the file quoted in a reason.
    CHECK(errors_of(with_route("    origins: [\"https://a/x\\ny\"]\n")) ==
          "bad.yaml:6:15: routes[0].origins[0]: invalid origin \"https://a/x?y\": an origin has "
          "no path, query or fragment (remove \"/x?y\")");
}

TEST_CASE("error: duplicate and missing keys") {
    CHECK(errors_of(with_route("    path: /again\n")) ==
          "bad.yaml:6:5: routes[0].path: duplicate key (first set on line 4)");
    CHECK(errors_of("listen: [{address: 127.0.0.1:0}]\n"
                    "routes:\n"
                    "  - path: /chat\n") ==
          "bad.yaml:3:5: routes[0].backend: required key is missing");
    CHECK(errors_of("instance: x\n") == "bad.yaml:1:1: listen: required key is missing\n"
                                        "bad.yaml:1:1: routes: required key is missing");
    CHECK(errors_of(with_route("admin: {}\n")) ==
          "bad.yaml:6:8: admin.address: required key is missing");
}

TEST_CASE("error: wrong types") {
    CHECK(errors_of(with_route("    max_sessions: abc\n")) ==
          "bad.yaml:6:19: routes[0].max_sessions: expected a non-negative integer, got \"abc\"");
    CHECK(errors_of(with_route("    max_sessions: -5\n")) ==
          "bad.yaml:6:19: routes[0].max_sessions: must not be negative (got -5)");
    CHECK(errors_of(with_route("    max_sessions: 1.5\n")) ==
          "bad.yaml:6:19: routes[0].max_sessions: expected a non-negative integer, got \"1.5\"");
    CHECK(errors_of(with_route("    max_sessions: 4294967296\n")) ==
          "bad.yaml:6:19: routes[0].max_sessions: must be at most 4294967295");
    CHECK(errors_of(with_route("    max_sessions: {a: 1}\n")) ==
          "bad.yaml:6:19: routes[0].max_sessions: expected a non-negative integer, got a map");
    CHECK(errors_of(with_route("    require_origin: yes\n")) ==
          "bad.yaml:6:21: routes[0].require_origin: expected true or false, got \"yes\"");
    CHECK(errors_of(with_route("    origins: https://a.com\n")) ==
          "bad.yaml:6:14: routes[0].origins: expected a list, got \"https://a.com\"");
    CHECK(errors_of(with_route("    subprotocols: [[a]]\n")) ==
          "bad.yaml:6:20: routes[0].subprotocols[0]: expected a string, got a list");
    CHECK(errors_of(with_route("    rate: 50\n")) ==
          "bad.yaml:6:11: routes[0].rate: expected a map with keys (messages_per_second, "
          "burst), got \"50\"");
    CHECK(errors_of(with_route("    rate: {messages_per_second: fast}\n")) ==
          "bad.yaml:6:33: routes[0].rate.messages_per_second: expected a number, got \"fast\"");
    CHECK(errors_of(with_route("    rate: {messages_per_second: .nan}\n")) ==
          "bad.yaml:6:33: routes[0].rate.messages_per_second: expected a number, got \".nan\"");
    CHECK(errors_of(with_route("limits:\n")) ==
          "bad.yaml:6:1: limits: expected a map with keys (max_connections, "
          "max_connections_per_ip, max_header_bytes, max_headers, header_timeout, idle_timeout, "
          "backend_idle_timeout, backend_connect_timeout, backend_handshake_timeout, "
          "close_timeout, message_timeout, max_message, max_post_body, rate, max_sessions, "
          "outbound_queue, resume_window, replay_buffer, replay_messages), got an empty value");
    CHECK(errors_of("listen: {address: 127.0.0.1:80}\nroutes: []\n") ==
          "bad.yaml:1:9: listen: expected a list, got a map\n"
          "bad.yaml:2:9: routes: at least one route is required");
    CHECK(errors_of(with_route("instance: a.b\n")) ==
          "bad.yaml:6:11: instance: must be 1-32 characters from A-Z a-z 0-9 _ - (got \"a.b\")");
    CHECK(errors_of(with_route("instance: " + std::string(33, 'a') + "\n")) ==
          "bad.yaml:6:11: instance: must be 1-32 characters from A-Z a-z 0-9 _ - (got \"" +
              std::string(33, 'a') + "\")");
}

TEST_CASE("error: durations and sizes") {
    CHECK(errors_of(with_route("    idle_timeout: 10parsecs\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: invalid duration \"10parsecs\" "
          "(use 250ms, 30s, 5m, 1h)");
    CHECK(errors_of(with_route("    idle_timeout: 60\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: invalid duration \"60\": a unit is required "
          "(use 250ms, 30s, 5m, 1h)");
    CHECK(errors_of(with_route("    idle_timeout: 1.0005s\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: invalid duration \"1.0005s\": not a whole "
          "number of milliseconds");
    CHECK(errors_of(with_route("    idle_timeout: -5s\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: must not be negative (got -5s)");
    CHECK(errors_of(with_route("    idle_timeout: 169h\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: must be at most 168h");
    CHECK(errors_of(with_route("    idle_timeout: 99999999999999999999h\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: must be at most 168h");
    CHECK(errors_of(with_route("    idle_timeout:\n")) ==
          "bad.yaml:6:5: routes[0].idle_timeout: invalid duration an empty value "
          "(use 250ms, 30s, 5m, 1h)");
    CHECK(errors_of(with_route("    max_message: 10q\n")) ==
          "bad.yaml:6:18: routes[0].max_message: invalid size \"10q\" (use 512, 16k, 1m, 1g)");
    CHECK(errors_of(with_route("    max_message: -1k\n")) ==
          "bad.yaml:6:18: routes[0].max_message: must not be negative (got -1k)");
    CHECK(errors_of(with_route("    max_message: 99999999999999g\n")) ==
          "bad.yaml:6:18: routes[0].max_message: must be at most 18446744073709551615");
    CHECK(errors_of(with_route("limits: {max_header_bytes: 4g}\n")) ==
          "bad.yaml:6:28: limits.max_header_bytes: must be at most 4294967295");
    CHECK(errors_of(with_route("limits: {max_header_bytes: 512}\n")) ==
          "bad.yaml:6:28: limits.max_header_bytes: must be at least 1k");
}

TEST_CASE("error: impossible values") {
    CHECK(errors_of(with_route("    idle_timeout: 50ms\n")) ==
          "bad.yaml:6:19: routes[0].idle_timeout: must be at least 100ms");
    CHECK(errors_of(with_route("    backend_idle_timeout: 0\n")) ==
          "bad.yaml:6:27: routes[0].backend_idle_timeout: must be at least 100ms");
    CHECK(errors_of(with_route("    max_message: 0\n")) ==
          "bad.yaml:6:18: routes[0].max_message: must be greater than 0");
    CHECK(errors_of(with_route("limits: {header_timeout: 0}\n")) ==
          "bad.yaml:6:26: limits.header_timeout: must be greater than 0");
    CHECK(errors_of(with_route("    close_timeout: 0s\n")) ==
          "bad.yaml:6:20: routes[0].close_timeout: must be greater than 0");
    CHECK(errors_of(with_route("    resume_window: 500ms\n")) ==
          "bad.yaml:6:20: routes[0].resume_window: must be at least 1s");
    CHECK(errors_of(with_route("    max_sessions: 0\n")) ==
          "bad.yaml:6:19: routes[0].max_sessions: must be greater than 0");
    CHECK(errors_of(with_route("    rate: {messages_per_second: 0, burst: 0}\n")) ==
          "bad.yaml:6:33: routes[0].rate.messages_per_second: must be greater than 0\n"
          "bad.yaml:6:43: routes[0].rate.burst: must be greater than 0");
    CHECK(errors_of(with_route("limits: {max_connections: 0}\n")) ==
          "bad.yaml:6:27: limits.max_connections: must be greater than 0");
    CHECK(errors_of(with_route("    transports: []\n")) ==
          "bad.yaml:6:17: routes[0].transports: at least one transport is required "
          "(websocket, sse, longpoll)");
    CHECK(errors_of(with_route("    transports: [websocket, ws, websocket]\n")) ==
          "bad.yaml:6:29: routes[0].transports[1]: unknown transport \"ws\" (use websocket, "
          "sse, longpoll)\n"
          "bad.yaml:6:33: routes[0].transports[2]: duplicate transport \"websocket\"");
    CHECK(errors_of("listen: []\nroutes: [{path: /, backend: ws://b}]\n") ==
          "bad.yaml:1:9: listen: at least one listener is required");
}

TEST_CASE("error: queues must hold one whole message") {
    CHECK(errors_of(with_route("    outbound_queue: 16k\n    max_message: 64k\n")) ==
          "bad.yaml:6:21: routes[0].outbound_queue: 16k is smaller than max_message (64k); it "
          "must hold at least one whole message");
    CHECK(errors_of(with_route("    max_message: 2m\n")) ==
          "bad.yaml:6:18: routes[0].max_message: 2m is larger than outbound_queue (1m); raise "
          "outbound_queue too\n"
          "bad.yaml:6:18: routes[0].max_message: 2m is larger than replay_buffer (1m); raise "
          "replay_buffer too");
    CHECK(errors_of(with_route("limits: {replay_buffer: 1000}\n")) ==
          "bad.yaml:6:25: limits.replay_buffer: 1000 is smaller than max_message (1m); it must "
          "hold at least one whole message");
    // Inherited from limits: reported once, at limits, not again for every route.
    CHECK(errors_of(with_route("limits: {max_message: 4m}\n")) ==
          "bad.yaml:6:23: limits.max_message: 4m is larger than outbound_queue (1m); raise "
          "outbound_queue too\n"
          "bad.yaml:6:23: limits.max_message: 4m is larger than replay_buffer (1m); raise "
          "replay_buffer too");
    // A route that fixes what limits got wrong is fine.
    load_ok(with_route("    max_message: 64k\n"
                       "limits: {max_message: 4m, outbound_queue: 4m, replay_buffer: 4m}\n"));
}

TEST_CASE("error: backend URLs") {
    const std::string head = "listen: [{address: 127.0.0.1:0}]\nroutes:\n  - path: /x\n";
    CHECK(errors_of(head + "    backend: http://b/x\n") ==
          "bad.yaml:4:14: routes[0].backend: invalid URL \"http://b/x\": scheme must be ws:// "
          "or wss:// (got http://)");
    CHECK(errors_of(head + "    backend: ws://:9000/x\n") ==
          "bad.yaml:4:14: routes[0].backend: invalid URL \"ws://:9000/x\": host is required");
    CHECK(errors_of(head + "    backend: ws://b:0/x\n") ==
          "bad.yaml:4:14: routes[0].backend: invalid URL \"ws://b:0/x\": invalid port \"0\" "
          "(use 1-65535)");
    CHECK(errors_of(head + "    backend: ws://b:70000/x\n") ==
          "bad.yaml:4:14: routes[0].backend: invalid URL \"ws://b:70000/x\": invalid port "
          "\"70000\" (use 1-65535)");
    CHECK(errors_of(head + "    backend: ws://u:p@b/x\n") ==
          "bad.yaml:4:14: routes[0].backend: invalid URL \"ws://u:p@b/x\": userinfo "
          "(\"user@\") is not allowed");
    CHECK(errors_of(head + "    backend: \"ws://b/x#frag\"\n") ==
          "bad.yaml:4:14: routes[0].backend: invalid URL \"ws://b/x#frag\": fragments ('#') "
          "are not allowed in backend URLs");
}

TEST_CASE("error: route paths") {
    const std::string head = "listen: [{address: 127.0.0.1:0}]\nroutes:\n";
    CHECK(errors_of(head + "  - {path: chat, backend: ws://b}\n") ==
          "bad.yaml:3:12: routes[0].path: must start with '/' (got \"chat\")");
    CHECK(errors_of(head + "  - {path: \"/chat?x=1\", backend: ws://b}\n") ==
          "bad.yaml:3:12: routes[0].path: a route path has no query or fragment");
    CHECK(errors_of(head + "  - {path: /a/../b, backend: ws://b}\n") ==
          "bad.yaml:3:12: routes[0].path: must not contain \".\" or \"..\" segments");
    CHECK(errors_of(head + "  - {path: /a b, backend: ws://b}\n") ==
          "bad.yaml:3:12: routes[0].path: character byte 0x20 is not allowed in a URL path; "
          "percent-encode it");
    CHECK(errors_of(head + "  - {path: /chat, backend: ws://b}\n"
                           "  - {path: /chat/, backend: ws://b}\n"
                           "  - {path: /chat, backend: ws://c}\n") ==
          "bad.yaml:5:12: routes[2].path: duplicate route path \"/chat\" (also routes[0])");
}

TEST_CASE("error: listen and admin addresses") {
    const std::string tail = "routes: [{path: /, backend: ws://b}]\n";
    CHECK(errors_of("listen:\n"
                    "  - address: 127.0.0.1:8080\n"
                    "  - address: 127.0.0.1:8080\n"
                    "  - address: 0.0.0.0:8080\n"
                    "  - address: 127.0.0.1:0\n"
                    "  - address: 127.0.0.1:0\n"
                    "  - address: \"[::1]:8080\"\n" +
                    tail) ==
          "bad.yaml:3:14: listen[1].address: 127.0.0.1:8080 conflicts with 127.0.0.1:8080 "
          "(listen[0].address)\n"
          "bad.yaml:4:14: listen[2].address: 0.0.0.0:8080 conflicts with 127.0.0.1:8080 "
          "(listen[0].address)");
    // The admin block may come first: conflicts are checked once everything is read.
    CHECK(errors_of("admin: {address: 127.0.0.1:9090}\nlisten: [{address: 0.0.0.0:9090}]\n" +
                    tail) ==
          "bad.yaml:1:18: admin.address: 127.0.0.1:9090 conflicts with 0.0.0.0:9090 "
          "(listen[0].address)");
    CHECK(errors_of("listen: [{address: \"[::]:80\"}]\nadmin: {address: \"[0:0::1]:80\"}\n" +
                    tail) ==
          "bad.yaml:2:18: admin.address: [::1]:80 conflicts with [::]:80 (listen[0].address)");
    load_ok("listen: [{address: \"[::]:80\"}, {address: 0.0.0.0:80}]\n"
            "admin: {address: 127.0.0.1:0}\n" + tail);
    CHECK(errors_of("listen: [{address: localhost:8080}]\n" + tail) ==
          "bad.yaml:1:20: listen[0].address: host \"localhost\" is not an IPv4 address "
          "(listeners bind IP addresses, like 0.0.0.0 or [::])");
    CHECK(errors_of("listen: [{address: \"::1:8080\"}]\n" + tail) ==
          "bad.yaml:1:20: listen[0].address: IPv6 addresses must be written in brackets, like "
          "[::1]:8080");
    CHECK(errors_of("listen: [{address: 8080}]\n" + tail) ==
          "bad.yaml:1:20: listen[0].address: expected host:port or [v6]:port, like "
          "127.0.0.1:8080");
    CHECK(errors_of("listen: [{address: \"127.0.0.1:65536\"}]\n" + tail) ==
          "bad.yaml:1:20: listen[0].address: invalid port \"65536\" (use 0-65535; 0 picks a "
          "free port)");
}

TEST_CASE("error: TLS files") {
    const std::string tail = "routes: [{path: /, backend: ws://b}]\n";
    CHECK(errors_of("listen:\n  - address: 127.0.0.1:0\n    tls: {cert: /nonexistent/c.pem}\n" +
                    tail) ==
          "bad.yaml:3:10: listen[0].tls.key: required key is missing\n"
          "bad.yaml:3:17: listen[0].tls.cert: cannot read \"/nonexistent/c.pem\": No such file "
          "or directory");
    CHECK(errors_of("listen:\n  - address: 127.0.0.1:0\n    tls: {cert: /, key: \"\"}\n" +
                    tail) ==
          "bad.yaml:3:17: listen[0].tls.cert: \"/\" is not a regular file\n"
          "bad.yaml:3:25: listen[0].tls.key: must not be empty");
}

TEST_CASE("TLS paths are resolved against the configuration file's directory") {
    const fs::path dir = fs::temp_directory_path() / "wsbridge_config_test_tls";
    fs::create_directories(dir / "certs");
    std::ofstream(dir / "certs" / "cert.pem") << "cert";
    std::ofstream(dir / "certs" / "key.pem") << "key";
    std::ofstream(dir / "tls.yaml") << "listen:\n"
                                       "  - address: 127.0.0.1:0\n"
                                       "    tls: {cert: certs/cert.pem, key: certs/key.pem}\n"
                                       "routes: [{path: /, backend: wss://b}]\n";
    auto result = config::load_config((dir / "tls.yaml").string());
    if (!result) {
        FAIL_CHECK(result.error().context);
    }
    REQUIRE(result.has_value());
    REQUIRE(result->listen.at(0).tls);
    REQUIRE(result->listen[0].tls->certificates.size() == 1);
    CHECK(result->listen[0].tls->certificates[0].cert == (dir / "certs" / "cert.pem").string());
    CHECK(result->listen[0].tls->certificates[0].key == (dir / "certs" / "key.pem").string());
    CHECK(result->listen[0].tls->min_version == "1.2");
    CHECK(result->listen[0].tls->client_ca.empty());
    fs::remove_all(dir);
}

TEST_CASE("TLS: several certificates, min_version and client_ca") {
    const fs::path dir = fs::temp_directory_path() / "wsbridge_config_test_tls_many";
    fs::create_directories(dir);
    for (const char* f : {"a.pem", "a.key", "b.pem", "b.key", "ca.pem"}) {
        std::ofstream(dir / f) << "x";
    }
    std::ofstream(dir / "tls.yaml")
        << "listen:\n"
           "  - address: 127.0.0.1:0\n"
           "    tls:\n"
           "      certificates: [{cert: a.pem, key: a.key}, {cert: b.pem, key: b.key}]\n"
           "      min_version: \"1.3\"\n"
           "      client_ca: ca.pem\n"
           "routes: [{path: /, backend: ws://b}]\n";
    auto result = config::load_config((dir / "tls.yaml").string());
    if (!result) {
        FAIL_CHECK(result.error().context);
    }
    REQUIRE(result.has_value());
    const auto& tls = *result->listen.at(0).tls;
    REQUIRE(tls.certificates.size() == 2);
    CHECK(tls.certificates[0].cert == (dir / "a.pem").string());
    CHECK(tls.certificates[1].key == (dir / "b.key").string());
    CHECK(tls.min_version == "1.3");
    CHECK(tls.client_ca == (dir / "ca.pem").string());
    fs::remove_all(dir);
}

TEST_CASE("error: TLS forms and versions") {
    const std::string tail = "routes: [{path: /, backend: ws://b}]\n";
    CHECK(errors_of("listen:\n  - address: 127.0.0.1:0\n    tls: {min_version: \"1.1\", "
                    "certificates: []}\n" + tail) ==
          "bad.yaml:3:24: listen[0].tls.min_version: must be \"1.2\" or \"1.3\" (TLS versions "
          "below 1.2 are not offered)\n"
          "bad.yaml:3:45: listen[0].tls.certificates: must list at least one {cert, key}");
    CHECK(errors_of("listen:\n  - address: 127.0.0.1:0\n    tls: {cert: /, certificates: []}\n" +
                    tail)
              .find("give either cert and key or certificates, not both") != std::string::npos);
}

TEST_CASE("backend_tls: verification settings of a wss backend") {
    const fs::path dir = fs::temp_directory_path() / "wsbridge_config_test_backend_tls";
    fs::create_directories(dir);
    for (const char* f : {"ca.pem", "c.pem", "c.key"}) {
        std::ofstream(dir / f) << "x";
    }
    std::ofstream(dir / "b.yaml")
        << "listen: [{address: 127.0.0.1:0}]\n"
           "routes:\n"
           "  - path: /a\n"
           "    backend: wss://backend.internal/ws\n"
           "    backend_tls: {ca: ca.pem, server_name: api.internal, cert: c.pem, key: c.key}\n"
           "  - path: /b\n"
           "    backend: wss://10.0.0.1:8443/\n"
           "    backend_tls: {verify: false}\n"
           "  - path: /c\n"
           "    backend: wss://x/\n";
    auto result = config::load_config((dir / "b.yaml").string());
    if (!result) {
        FAIL_CHECK(result.error().context);
    }
    REQUIRE(result.has_value());
    const auto& a = result->routes.at(0).backend_tls;
    CHECK(a.ca == (dir / "ca.pem").string());
    CHECK(a.server_name == "api.internal");
    CHECK(a.cert == (dir / "c.pem").string());
    CHECK(a.key == (dir / "c.key").string());
    CHECK(a.verify);
    CHECK_FALSE(result->routes.at(1).backend_tls.verify);
    CHECK(result->routes.at(2).backend_tls.verify);  // verification is on by default
    CHECK(result->routes.at(2).backend_tls.ca.empty());
    fs::remove_all(dir);
}

TEST_CASE("error: backend_tls") {
    CHECK(errors_of("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - path: /\n"
                    "    backend: ws://b\n    backend_tls: {verify: false}\n") ==
          "bad.yaml:5:18: routes[0].backend_tls: applies to wss:// backends only (backend is "
          "\"ws://b\")");
    CHECK(errors_of("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - path: /\n"
                    "    backend: wss://b\n    backend_tls: {cert: /, server_name: \"a b\"}\n")
              .find("cert and key go together") != std::string::npos);
}

TEST_CASE("error: origins, subprotocols, forward_headers") {
    CHECK(errors_of(with_route("    origins: [\"*\", https://a.com/, \"https://*\"]\n")) ==
          "bad.yaml:6:20: routes[0].origins[1]: invalid origin \"https://a.com/\": an origin "
          "has no path, query or fragment (remove \"/\")\n"
          "bad.yaml:6:36: routes[0].origins[2]: invalid origin \"https://*\": '*' is only "
          "allowed as \"*\" or as a leading \"*.\" in the host");
    CHECK(errors_of(with_route("    subprotocols: [chat, \"a b\", \"x/1\", chat]\n")) ==
          "bad.yaml:6:26: routes[0].subprotocols[1]: \"a b\" is not a valid subprotocol "
          "(RFC 7230 token)\n"
          "bad.yaml:6:33: routes[0].subprotocols[2]: \"x/1\" is not a valid subprotocol "
          "(RFC 7230 token)\n"
          "bad.yaml:6:40: routes[0].subprotocols[3]: duplicate entry \"chat\"");
    CHECK(errors_of(with_route("    forward_headers:\n"
                               "      - X-Trace\n"
                               "      - \"X Bad\"\n"
                               "      - Connection\n"
                               "      - host\n"
                               "      - Sec-WebSocket-Key\n"
                               "      - Transfer-Encoding\n"
                               "      - Content-Length\n"
                               "      - Upgrade\n"
                               "      - x-trace\n")) ==
          "bad.yaml:8:9: routes[0].forward_headers[1]: \"X Bad\" is not a valid header name "
          "(RFC 7230 token)\n"
          "bad.yaml:9:9: routes[0].forward_headers[2]: \"Connection\" is a hop-by-hop header "
          "and cannot be forwarded\n"
          "bad.yaml:10:9: routes[0].forward_headers[3]: \"host\" is set by the proxy and cannot "
          "be forwarded\n"
          "bad.yaml:11:9: routes[0].forward_headers[4]: \"Sec-WebSocket-Key\" is set by the "
          "proxy and cannot be forwarded\n"
          "bad.yaml:12:9: routes[0].forward_headers[5]: \"Transfer-Encoding\" is a hop-by-hop "
          "header and cannot be forwarded\n"
          "bad.yaml:13:9: routes[0].forward_headers[6]: \"Content-Length\" is set by the proxy "
          "and cannot be forwarded\n"
          "bad.yaml:14:9: routes[0].forward_headers[7]: \"Upgrade\" is a hop-by-hop header and "
          "cannot be forwarded\n"
          "bad.yaml:15:9: routes[0].forward_headers[8]: duplicate entry \"x-trace\"");
}

TEST_CASE("several errors are all reported, in file order") {
    // `limits` comes last in the file but is read first; its error still sorts last.
    const std::string errors = errors_of(R"(listen:
  - address: 127.0.0.1:99999
routes:
  - path: chat
    backend: http://x
    idle_timeout: 10parsecs
    colour: red
  - path: /ok
    backend: ws://b/ok
    max_message: 0
limits:
  max_headers: many
)");
    CHECK(errors ==
          "bad.yaml:2:14: listen[0].address: invalid port \"99999\" (use 0-65535; 0 picks a "
          "free port)\n"
          "bad.yaml:4:11: routes[0].path: must start with '/' (got \"chat\")\n"
          "bad.yaml:5:14: routes[0].backend: invalid URL \"http://x\": scheme must be ws:// or "
          "wss:// (got http://)\n"
          "bad.yaml:6:19: routes[0].idle_timeout: invalid duration \"10parsecs\" (use 250ms, "
          "30s, 5m, 1h)\n"
          "bad.yaml:7:5: routes[0].colour: unknown key; allowed: path, backend, transports, "
          "origins, require_origin, subprotocols, forward_headers, backend_tls, idle_timeout, "
          "backend_idle_timeout, backend_connect_timeout, backend_handshake_timeout, "
          "close_timeout, message_timeout, max_message, max_post_body, rate, max_sessions, "
          "outbound_queue, resume_window, replay_buffer, replay_messages\n"
          "bad.yaml:10:18: routes[1].max_message: must be greater than 0\n"
          "bad.yaml:12:16: limits.max_headers: expected a non-negative integer, got \"many\"");
}

TEST_CASE("a flood of errors is cut at 100 lines") {
    std::string yaml = with_route("    subprotocols:\n");
    for (int i = 0; i < 150; ++i) {
        yaml += "      - \"bad token\"\n";
    }
    const std::string errors = errors_of(yaml);
    CHECK(std::count(errors.begin(), errors.end(), '\n') == 100);
    CHECK(errors.substr(errors.rfind('\n') + 1) == "bad.yaml: 50 more problems not shown");
}

TEST_CASE("aliases that multiply errors keep memory bounded and the count exact") {
    std::string yaml = "listen: [{address: 127.0.0.1:0}]\nroutes:\n"
                       "  - {path: /r0, backend: ws://b, origins: &o [";
    for (int i = 0; i < 200; ++i) {
        yaml += i == 0 ? "bad" : ", bad";
    }
    yaml += "]}\n";
    for (int i = 1; i < 200; ++i) {
        yaml += "  - {path: /r" + std::to_string(i) + ", backend: ws://b, origins: *o}\n";
    }
    const std::string errors = errors_of(yaml);
    CHECK(std::count(errors.begin(), errors.end(), '\n') == 100);
    CHECK(errors.substr(errors.rfind('\n') + 1) == "bad.yaml: 39900 more problems not shown");
}

TEST_CASE("load_config: missing file, directory") {
    auto result = config::load_config("/nonexistent/wsbridge.yaml");
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == proxy::core::Code::Config);
    CHECK(result.error().context ==
          "/nonexistent/wsbridge.yaml: cannot read configuration file: No such file or directory");
    result = config::load_config(WSBRIDGE_SOURCE_DIR "/examples");
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().context ==
          WSBRIDGE_SOURCE_DIR "/examples: cannot read configuration file: not a regular file");
}

// ---------------------------------------------------------------------------------------------
// Files: every example loads; every broken file gives exactly the errors it announces

TEST_CASE("every examples/*.yaml loads") {
    int count = 0;
    for (const auto& entry : fs::directory_iterator(fs::path(WSBRIDGE_SOURCE_DIR) / "examples")) {
        if (entry.path().extension() != ".yaml") {
            continue;
        }
        CAPTURE(entry.path().string());
        auto result = config::load_config(entry.path().string());
        if (!result) {
            FAIL_CHECK(result.error().context);
        }
        ++count;
    }
    CHECK(count >= 2);
}

TEST_CASE("examples/wsbridge.yaml is the README's configuration") {
    auto result = config::load_config(WSBRIDGE_SOURCE_DIR "/examples/wsbridge.yaml");
    REQUIRE(result.has_value());
    const config::Config& c = *result;
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].host == "127.0.0.1");
    CHECK(c.listen[0].port == 8080);
    CHECK_FALSE(c.listen[0].tls);
    CHECK(c.listen[1].port == 8443);
    REQUIRE(c.listen[1].tls);
    CHECK(c.listen[1].tls->certificates.at(0).cert ==
          WSBRIDGE_SOURCE_DIR "/examples/tls/localhost.pem");
    REQUIRE(c.admin);
    CHECK(c.admin->port == 9090);
    REQUIRE(c.routes.size() == 2);
    CHECK(c.routes[0].path == "/chat");
    CHECK(c.routes[0].backend.text == "ws://127.0.0.1:9000/chat");
    CHECK(c.routes[1].path == "/echo");
    CHECK(c.routes[1].backend.path == "/echo");
    // /chat allows the demo page that scripts/run-example.sh serves on port 8000.
    CHECK(c.routes[0].origins ==
          std::vector<std::string>{"http://127.0.0.1:8000", "http://localhost:8000"});
    CHECK(c.routes[1].origins.empty());
    for (const config::Route& r : c.routes) {
        CHECK(r.limits.max_message == 64 * 1024);
        CHECK(r.limits.rate.burst == 100);
        CHECK(r.limits.resume_window == Duration{30'000});
        CHECK(r.limits.replay_buffer == 1024 * 1024);
    }
}

/// Each tests/unit/config/bad/*.yaml starts with `# expect: line:col: message` comments, one
/// per error, in order; loading the file must give exactly those lines.
TEST_CASE("every tests/unit/config/bad/*.yaml fails with its announced errors") {
    const fs::path dir = fs::path(WSBRIDGE_SOURCE_DIR) / "tests/unit/config/bad";
    int count = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".yaml") {
            continue;
        }
        const std::string file = entry.path().string();
        CAPTURE(file);
        std::ifstream in(file);
        std::string line;
        std::string expected;
        const std::string marker = "# expect: ";
        while (std::getline(in, line)) {
            if (line.rfind(marker, 0) == 0) {
                expected += expected.empty() ? "" : "\n";
                expected += file + ":" + line.substr(marker.size());
            }
        }
        REQUIRE_FALSE(expected.empty());
        auto result = config::load_config(file);
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().context == expected);
        ++count;
    }
    CHECK(count >= 3);
}

// ---------------------------------------------------------------------------------------------
// Route matching

TEST_CASE("match_route: exact vs prefix, longest wins, no match") {
    const auto config = load_ok(R"(listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /chat, backend: ws://b/1}
  - {path: /chat/, backend: ws://b/2}
  - {path: /chat/rooms/, backend: ws://b/3}
  - {path: /chat/rooms/lobby, backend: ws://b/4}
  - {path: /api/, backend: ws://b/5}
)");
    auto backend_of = [&](std::string_view path) -> std::string {
        const config::Route* route = config::match_route(config, path);
        return route == nullptr ? "none" : route->backend.path;
    };
    CHECK(backend_of("/chat") == "/1");
    CHECK(backend_of("/chat/") == "/2");
    CHECK(backend_of("/chat/x") == "/2");
    CHECK(backend_of("/chatroom") == "none"); // exact route: no prefix match
    CHECK(backend_of("/chat/rooms") == "/2");  // "/chat/rooms/" needs its slash
    CHECK(backend_of("/chat/rooms/") == "/3");
    CHECK(backend_of("/chat/rooms/a/b") == "/3");
    CHECK(backend_of("/chat/rooms/lobby") == "/4");
    CHECK(backend_of("/chat/rooms/lobby/x") == "/3");
    CHECK(backend_of("/api") == "none");
    CHECK(backend_of("/api/v1") == "/5");
    CHECK(backend_of("/") == "none");
    CHECK(backend_of("") == "none");
    CHECK(backend_of("/CHAT") == "none"); // case-sensitive
    CHECK(backend_of("chat") == "none");
}

TEST_CASE("match_route: a catch-all route and dot segments") {
    const auto config = load_ok("listen: [{address: 127.0.0.1:0}]\n"
                                "routes: [{path: /, backend: ws://b/all}, "
                                "{path: /chat/, backend: ws://b/chat}]\n");
    auto backend_of = [&](std::string_view path) -> std::string {
        const config::Route* route = config::match_route(config, path);
        return route == nullptr ? "none" : route->backend.path;
    };
    CHECK(backend_of("/") == "/all");
    CHECK(backend_of("/anything/else") == "/all");
    CHECK(backend_of("/chat/a") == "/chat");
    CHECK(backend_of("/chat/a.b/..c/...") == "/chat"); // dots inside names are fine
    for (const char* path : {"/chat/../admin", "/chat/..", "/chat/./x", "/..", "/chat/%2e%2E/x",
                             "/chat/.%2e", "/chat/..%2fadmin", "/chat/..%5Cadmin",
                             "/chat\\..\\admin", "/chat/%2E"}) {
        CAPTURE(path);
        CHECK(config::match_route(config, path) == nullptr);
    }
}

} // namespace
