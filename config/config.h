#pragma once
// Plain configuration aggregates with in-class defaults, and the YAML loader. No yaml-cpp type
// leaks out of config/. Every default here is safe at the edge: nothing is unlimited.
// The YAML shape and every key are documented in README.md ("Configuration reference").

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/result.h"

namespace config {

using Duration = std::chrono::milliseconds;

/// A certificate chain and its key (PEM files); both are checked to be readable regular files.
/// A relative path in the file is resolved against the configuration file's directory
/// (load_config) and stored resolved.
struct Certificate {
    std::string cert;
    std::string key;

    bool operator==(const Certificate&) const = default;
};

/// A listener's TLS (`tls: {cert, key}` or `tls: {certificates: [{cert, key}, ...]}`, plus
/// `min_version` and `client_ca`).
struct Tls {
    /// Chosen by SNI from their SAN names; the first is the default. Never empty once loaded.
    std::vector<Certificate> certificates;
    std::string min_version = "1.2";  ///< "1.2" or "1.3"
    std::string client_ca;            ///< PEM CA bundle requiring client certificates, or ""

    bool operator==(const Tls&) const = default;
};

/// One listening socket (`listen[]`). `address` is "host:port" or "[v6]:port" where host is an
/// IP literal (no DNS names); `host` holds it normalised by inet_ntop, without brackets. Port 0
/// asks the kernel for a free port.
struct Listener {
    std::string host = "0.0.0.0";
    std::uint16_t port = 8080;
    std::optional<Tls> tls;

    bool operator==(const Listener&) const = default;
};

/// Admin listener (`admin: {address}`): /metrics, /healthz, /readyz. Loopback by default.
struct Admin {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9090;

    bool operator==(const Admin&) const = default;
};

/// A parsed backend URL (`backend: ws://host:port/path?query`).
struct BackendUrl {
    bool tls = false;           ///< true for wss://
    std::string host;           ///< host name or IP literal, without brackets
    std::uint16_t port = 80;    ///< explicit port, or 80/443 by scheme
    std::string path = "/";     ///< path and query as written, always starting with '/'
    std::string host_header;    ///< value for the Host header ("host" or "host:port")
    std::string text;           ///< the URL as written in the file

    bool operator==(const BackendUrl&) const = default;
};

/// Token bucket for client messages (`rate: {messages_per_second, burst}`).
struct Rate {
    double messages_per_second = 100;
    std::uint32_t burst = 200;

    bool operator==(const Rate&) const = default;
};

/// How a route verifies and authenticates to a wss:// backend (`backend_tls`). Verification
/// (the chain against `ca`, or the system CA store when `ca` is empty, and the host name) is
/// always on unless `verify: false`.
struct BackendTls {
    std::string ca;           ///< PEM CA bundle to trust instead of the system store, or ""
    std::string server_name;  ///< SNI and the name to verify; default: the backend URL's host
    std::string cert;         ///< client certificate (PEM) presented to the backend, or ""
    std::string key;          ///< its key; set together with cert
    bool verify = true;

    bool operator==(const BackendTls&) const = default;
};

/// Limits that a route may override; the global `limits` block holds their defaults.
struct RouteLimits {
    std::uint64_t max_message = 1024 * 1024;        ///< one WebSocket message, bytes
    std::uint64_t max_post_body = 2 * 1024 * 1024;  ///< one POST body (SSE/long-poll), bytes
    Duration idle_timeout{60'000};                  ///< shortest idle timeout client-side
    Duration backend_idle_timeout{60'000};          ///< idle timeout towards the backend
    Duration backend_connect_timeout{5'000};        ///< TCP connect to the backend
    Duration backend_handshake_timeout{10'000};     ///< backend 101 after connect
    Duration close_timeout{5'000};                  ///< close handshake completion
    Duration message_timeout{30'000};               ///< one client message or POST body, from
                                                    ///< its first byte to its last (slow drip)
    std::uint64_t outbound_queue = 1024 * 1024;     ///< write queue high watermark per peer
    Rate rate;                                      ///< client message rate
    std::uint32_t max_sessions = 10'000;            ///< sessions per route
    Duration resume_window{30'000};                 ///< session lifetime with no client
    std::uint64_t replay_buffer = 1024 * 1024;      ///< replay buffer bytes per session
    std::uint32_t replay_messages = 10'000;         ///< replay buffer messages per session

    bool operator==(const RouteLimits&) const = default;
};

/// Global limits (`limits:`), plus the defaults of every RouteLimits key.
struct Limits {
    std::uint32_t max_connections = 10'000;       ///< open client connections, all listeners
    std::uint32_t max_connections_per_ip = 256;   ///< open client connections per client IP
    std::uint32_t max_header_bytes = 8 * 1024;    ///< request line + headers, bytes
    std::uint32_t max_headers = 100;              ///< header fields per request
    Duration header_timeout{10'000};              ///< complete request head
    RouteLimits route;                            ///< defaults for every route
};

/// Client transports a route accepts (`transports: [websocket, sse, longpoll]`).
struct Transports {
    bool websocket = true;
    bool sse = true;
    bool longpoll = true;

    bool operator==(const Transports&) const = default;
};

/// One route (`routes[]`). `limits` is resolved: global defaults with route overrides applied.
struct Route {
    std::string path;                       ///< "/chat" (exact) or "/chat/" (prefix)
    bool prefix = false;                    ///< path ends in '/'
    BackendUrl backend;
    Transports transports;
    std::vector<std::string> origins;       ///< empty: same-origin only; see parse_origin()
    bool require_origin = false;            ///< reject requests without Origin
    std::vector<std::string> subprotocols;  ///< empty: pass the client's offer through
    std::vector<std::string> forward_headers; ///< extra request headers sent to the backend
    BackendTls backend_tls;                 ///< used for wss:// backends only
    RouteLimits limits;

    bool operator==(const Route&) const = default;
};

/// Logging (`log: {format, level}`): one logfmt or JSON line per event on stderr.
struct Log {
    std::string format = "logfmt";  ///< "logfmt" or "json"
    std::string level;              ///< "debug", "info", "warn", "error"; "" keeps the default
                                    ///< (WSBRIDGE_LOG_LEVEL, else info)

    bool operator==(const Log&) const = default;
};

/// The whole file. Shared immutably (`std::shared_ptr<const Config>`) once loaded.
struct Config {
    std::string source;                      ///< file name the config came from
    std::string instance;                    ///< session id prefix for load balancers
    std::vector<Listener> listen;            ///< at least one
    std::optional<Admin> admin;              ///< absent: no admin listener
    Limits limits;
    Duration drain_timeout{10'000};          ///< SIGTERM: closes spread over this long
    Duration drain_delay{0};                 ///< SIGTERM: /readyz 503 this long before the
                                             ///< listeners close (load balancers notice)
    Log log;
    std::vector<Route> routes;               ///< at least one
};

/// Reads, parses and validates a YAML file. On failure the Error has Code::Config and its
/// context holds every problem, one per line, as `file:line:col: key: reason`.
proxy::core::Result<Config> load_config(const std::string& path);

/// Same as load_config but from text in memory; `name` stands in for the file name in errors.
proxy::core::Result<Config> load_config_string(std::string_view text, const std::string& name);

/// Parses "250ms", "30s", "5m", "1h" (and a bare "0"). Returns nullopt on anything else.
std::optional<Duration> parse_duration(std::string_view text);

/// Parses "512", "16k", "1m", "1g" (binary multiples; upper or lower case). nullopt if invalid
/// or if the value overflows 64 bits.
std::optional<std::uint64_t> parse_size(std::string_view text);

/// Formats a duration with the largest unit that represents it exactly ("90s", "250ms", "0").
std::string format_duration(Duration value);

/// Formats a size with the largest binary suffix that represents it exactly ("64k", "1000").
std::string format_size(std::uint64_t value);

/// Parses a ws:// or wss:// URL. nullopt with `why` set when invalid. The scheme is
/// case-insensitive; host is required (name, IPv4, or [IPv6]); port is 1-65535; userinfo,
/// fragments, and characters outside RFC 3986 (unencoded spaces, for example) are rejected.
std::optional<BackendUrl> parse_backend_url(std::string_view text, std::string& why);

/// Validates one `origins` entry and returns it normalised: "*", "null", "scheme://host[:port]"
/// or "scheme://*.domain[:port]", with scheme and host in lower case and a default port (80 for
/// http, 443 for https) removed, so that it compares byte for byte with a browser's Origin
/// header. nullopt with `why` set when invalid (a path, userinfo, a misplaced '*').
std::optional<std::string> parse_origin(std::string_view text, std::string& why);

/// The route that matches `path` (longest exact or prefix match), or nullptr. `path` is the
/// request target's path only: the caller strips the query ('?...') first. Matching is
/// byte-exact and case-sensitive, with no percent-decoding. A path that does not start with
/// '/' or that holds a dot segment ("." or "..", also as %2e, or split by %2f or a
/// backslash) matches nothing, so that a prefix route cannot be escaped on the backend.
const Route* match_route(const Config& config, std::string_view path);

} // namespace config
