// Backend URLs (RFC 6455 §3: ws-URI and wss-URI) and `origins` entries (RFC 6454 §6.2, the
// ASCII serialisation a browser sends in the Origin header). Both are checked strictly here so
// that the data path can trust them: no userinfo, no fragment, only RFC 3986 characters.

#include <arpa/inet.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/core/text.h"

namespace config {
namespace {

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = lower(c);
    }
    return out;
}

/// RFC 3986 §3.3 pchar minus '%' (checked separately), plus '/' and '?' for path and query.
bool is_path_char(char c) {
    if (is_alpha(c) || is_digit(c)) {
        return true;
    }
    constexpr std::string_view kOther = "-._~!$&'()*+,;=:@/?";
    return kOther.find(c) != std::string_view::npos;
}

/// Describes a character for an error message: printable ASCII as itself, the rest as hex.
std::string show_char(char c) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte > 0x20 && byte < 0x7f) {
        return std::string("'") + c + "'";
    }
    constexpr std::string_view kHex = "0123456789ABCDEF";
    return std::string("byte 0x") + kHex[byte >> 4] + kHex[byte & 0xf];
}

bool ip_literal(std::string_view text, int family) {
    if (text.empty() || text.size() > 45) {
        return false;
    }
    const std::string copy(text);
    unsigned char out[16];
    return inet_pton(family, copy.c_str(), out) == 1;
}

/// A DNS-style name (letters, digits, '-', '_', dots between non-empty labels) or, when it
/// is made of digits and dots only, a valid dotted-quad IPv4 address.
bool valid_host_name(std::string_view host, std::string& why) {
    if (host.empty()) {
        why = "host is required";
        return false;
    }
    if (host.size() > 253) {
        why = "host name is longer than 253 characters";
        return false;
    }
    bool numeric = true;
    std::size_t label = 0;
    for (const char c : host) {
        if (c == '.') {
            if (label == 0) {
                why = "host \"" + std::string(host) + "\" has an empty label";
                return false;
            }
            label = 0;
            continue;
        }
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') {
            why = "invalid character " + show_char(c) + " in host";
            return false;
        }
        numeric = numeric && is_digit(c);
        if (++label > 63) {
            why = "host label is longer than 63 characters";
            return false;
        }
    }
    if (label == 0) {
        why = "host \"" + std::string(host) + "\" has an empty label";
        return false;
    }
    if (numeric && !ip_literal(host, AF_INET)) {
        why = "invalid IPv4 address \"" + std::string(host) + "\"";
        return false;
    }
    return true;
}

/// Parses a decimal port 1-65535 (0 is refused: it cannot be connected to).
std::optional<std::uint16_t> parse_port(std::string_view text, std::string& why) {
    if (text.empty()) {
        why = "empty port after ':'";
        return std::nullopt;
    }
    std::uint32_t value = 0;
    for (const char c : text) {
        if (!is_digit(c) || value > 65535) {
            why = "invalid port \"" + std::string(text) + "\" (use 1-65535)";
            return std::nullopt;
        }
        value = value * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (value == 0 || value > 65535) {
        why = "invalid port \"" + std::string(text) + "\" (use 1-65535)";
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

/// The host and optional port of an authority ("host", "host:port", "[v6]", "[v6]:port").
struct Authority {
    std::string host;
    bool bracketed = false;
    std::optional<std::uint16_t> port;
};

std::optional<Authority> parse_authority(std::string_view text, std::string& why) {
    if (text.find('@') != std::string_view::npos) {
        why = "userinfo (\"user@\") is not allowed";
        return std::nullopt;
    }
    Authority out;
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            why = "missing ']' after IPv6 address";
            return std::nullopt;
        }
        const std::string_view v6 = text.substr(1, close - 1);
        if (!ip_literal(v6, AF_INET6)) {
            why = "invalid IPv6 address \"" + std::string(v6) + "\"";
            return std::nullopt;
        }
        out.host = std::string(v6);
        out.bracketed = true;
        rest = text.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') {
            why = "unexpected text after ']'";
            return std::nullopt;
        }
    } else {
        const auto colon = text.find(':');
        if (colon != std::string_view::npos &&
            text.find(':', colon + 1) != std::string_view::npos) {
            why = "IPv6 addresses must be written in brackets, like [::1]:9000";
            return std::nullopt;
        }
        const std::string_view host = text.substr(0, colon);
        if (!valid_host_name(host, why)) {
            return std::nullopt;
        }
        out.host = std::string(host);
        rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
    }
    if (!rest.empty()) {
        const auto port = parse_port(rest.substr(1), why);
        if (!port) {
            return std::nullopt;
        }
        out.port = port;
    }
    return out;
}

/// Checks a path-and-query for RFC 3986 characters and well-formed percent-escapes.
bool valid_path(std::string_view path, std::string& why) {
    for (std::size_t i = 0; i < path.size(); ++i) {
        const char c = path[i];
        if (c == '%') {
            if (i + 2 >= path.size() || proxy::core::hex_value(path[i + 1]) < 0 ||
                proxy::core::hex_value(path[i + 2]) < 0) {
                why = "invalid percent-escape in path";
                return false;
            }
            i += 2;
            continue;
        }
        if (!is_path_char(c)) {
            why = "character " + show_char(c) + " is not allowed in a URL path; percent-encode it";
            return false;
        }
    }
    return true;
}

} // namespace

std::optional<BackendUrl> parse_backend_url(std::string_view text, std::string& why) {
    const auto sep = text.find("://");
    if (sep == std::string_view::npos) {
        why = "expected a ws:// or wss:// URL";
        return std::nullopt;
    }
    BackendUrl url;
    const std::string scheme = lowered(text.substr(0, sep));
    if (scheme == "ws") {
        url.tls = false;
    } else if (scheme == "wss") {
        url.tls = true;
    } else {
        why = "scheme must be ws:// or wss:// (got " + std::string(text.substr(0, sep)) + "://)";
        return std::nullopt;
    }
    if (text.find('#') != std::string_view::npos) {
        why = "fragments ('#') are not allowed in backend URLs";
        return std::nullopt;
    }
    const std::string_view after = text.substr(sep + 3);
    const auto path_start = after.find_first_of("/?");
    const std::string_view authority = after.substr(0, path_start);
    const auto parsed = parse_authority(authority, why);
    if (!parsed) {
        return std::nullopt;
    }
    const std::uint16_t default_port = url.tls ? 443 : 80;
    url.host = parsed->host;
    url.port = parsed->port.value_or(default_port);
    url.host_header = parsed->bracketed ? "[" + url.host + "]" : url.host;
    if (url.port != default_port) {
        url.host_header += ":" + std::to_string(url.port);
    }
    if (path_start != std::string_view::npos) {
        const std::string_view path = after.substr(path_start);
        if (!valid_path(path, why)) {
            return std::nullopt;
        }
        url.path = path.front() == '/' ? std::string(path) : "/" + std::string(path);
    }
    url.text = std::string(text);
    return url;
}

std::optional<std::string> parse_origin(std::string_view text, std::string& why) {
    if (text == "*") {
        return std::string("*");
    }
    if (text == "null") {
        // Sandboxed frames, file:// and data: pages send "Origin: null"; an explicit opt-in.
        return std::string("null");
    }
    const auto sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        why = "expected \"*\" or scheme://host[:port], like https://app.example.com";
        return std::nullopt;
    }
    const std::string scheme = lowered(text.substr(0, sep));
    if (!is_alpha(scheme.front())) {
        why = "invalid scheme \"" + std::string(text.substr(0, sep)) + "\"";
        return std::nullopt;
    }
    for (const char c : scheme) {
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
            why = "invalid scheme \"" + std::string(text.substr(0, sep)) + "\"";
            return std::nullopt;
        }
    }
    std::string_view authority = text.substr(sep + 3);
    const auto tail = authority.find_first_of("/?#");
    if (tail != std::string_view::npos) {
        why = "an origin has no path, query or fragment (remove \"" +
              std::string(authority.substr(tail)) + "\")";
        return std::nullopt;
    }
    std::string prefix;
    if (authority.substr(0, 2) == "*.") {
        prefix = "*.";
        authority.remove_prefix(2);
    }
    if (authority.find('*') != std::string_view::npos) {
        why = "'*' is only allowed as \"*\" or as a leading \"*.\" in the host";
        return std::nullopt;
    }
    const auto parsed = parse_authority(authority, why);
    if (!parsed) {
        return std::nullopt;
    }
    if (!prefix.empty() && (parsed->bracketed || ip_literal(parsed->host, AF_INET))) {
        why = "a \"*.\" wildcard needs a domain name, not an IP address";
        return std::nullopt;
    }
    std::string out = scheme + "://" + prefix;
    out += parsed->bracketed ? "[" + lowered(parsed->host) + "]" : lowered(parsed->host);
    const bool default_port = (scheme == "http" && parsed->port == 80) ||
                              (scheme == "https" && parsed->port == 443);
    if (parsed->port && !default_port) {
        out += ":" + std::to_string(*parsed->port);
    }
    return out;
}

} // namespace config
