#pragma once
// Parsed HTTP/1.1 messages (requests from clients, responses from backends) and helpers
// for header lookup and token lists (RFC 9110 §5.6.1). Plain data, no parser state.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace proxy::http {

/// One header field as received (name case preserved; compare case-insensitively).
struct Header {
    std::string name;
    std::string value;  ///< leading/trailing whitespace removed
};

/// Case-insensitive ASCII comparison of header names and tokens.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// Fields shared by requests and responses.
struct Message {
    std::vector<Header> headers;
    unsigned http_major = 1;
    unsigned http_minor = 1;
    bool keep_alive = true;    ///< llhttp's verdict from version and Connection
    bool upgrade = false;      ///< Connection: upgrade with an Upgrade header
    std::string body;          ///< complete body (bounded by the parser's body limit)

    /// Value of the first header named `name` (case-insensitive), or nullptr.
    const std::string* find(std::string_view name) const noexcept;
    /// Number of headers named `name`.
    std::size_t count(std::string_view name) const noexcept;
    /// True when any header `name` holds `token` in its comma-separated list (both compared
    /// case-insensitively, whitespace around elements ignored).
    bool has_token(std::string_view name, std::string_view token) const noexcept;
};

/// A request head (+ body).
struct Request : Message {
    std::string method;   ///< as sent, e.g. "GET"
    std::string target;   ///< request-target as sent, e.g. "/chat?x=1"

    /// The path part of the target (before '?').
    std::string_view path() const noexcept;
    /// The query part of the target (after '?', without it), or "".
    std::string_view query() const noexcept;
};

/// A response head from a backend.
struct Response : Message {
    unsigned status = 0;
    std::string reason;
};

/// Splits a comma-separated header value into trimmed, non-empty elements.
std::vector<std::string_view> split_list(std::string_view value);

/// True when `s` is an RFC 9110 token (tchar+).
bool is_token(std::string_view s) noexcept;

} // namespace proxy::http
