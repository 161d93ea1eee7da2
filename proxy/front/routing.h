#pragma once
// Pure routing helpers (SPEC §1, §5): the backend request target for a client request, and the
// Origin policy. No I/O; unit-tested in tests/unit/proxy/routing_test.cc.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/http/message.h"

namespace proxy {

/// Query parameters the proxy keeps for itself and never forwards.
bool is_reserved_query_param(std::string_view name) noexcept;

/// Decodes a query parameter value (application/x-www-form-urlencoded: `%XX` and `+` for a
/// space). nullopt when a `%` is not followed by two hex digits.
std::optional<std::string> decode_query_value(std::string_view value);

/// The request-target sent to the backend: the backend URL's path, plus the request path's
/// suffix beyond a prefix route (joined with exactly one '/'), plus the backend URL's query
/// and the request's non-reserved query parameters, in order and byte-for-byte.
std::string backend_target(const config::Route& route, const http::Request& request);

/// The client request headers forwarded to the backend (SPEC §2): Cookie, Authorization and
/// the route's forward_headers, in request order. Shared by the relay and sessions.
std::vector<http::Header> forwarded_headers(const config::Route& route,
                                            const http::Request& request);

/// Result of the Origin check.
enum class OriginVerdict : unsigned char { Allowed, NoOrigin, Rejected };

/// Applies SPEC §5 to `request`: with a route `origins` list, the Origin must equal an entry
/// (scheme://host[:port], ASCII case-insensitive), match a `scheme://*.domain` entry for a
/// strict subdomain, or the list holds "*". Without a list, only same-origin requests pass:
/// Origin == `scheme` + "://" + Host. "null" passes only when listed. No Origin header:
/// NoOrigin (allowed unless require_origin; the caller decides).
OriginVerdict check_origin(const config::Route& route, const http::Request& request,
                           std::string_view scheme);

} // namespace proxy
