#pragma once
// RFC 6455 §4 opening handshake, both roles, sans-I/O: validating a client's upgrade request,
// building the request the proxy sends to the backend, validating the backend's 101, and
// building the 101 the client receives.

#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/result.h"
#include "proxy/http/message.h"

namespace proxy::ws {

/// What a valid client upgrade request offers.
struct ClientHandshake {
    std::string key;                     ///< Sec-WebSocket-Key as sent
    std::vector<std::string> protocols;  ///< Sec-WebSocket-Protocol offer, in order
};

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455 GUID)).
std::string websocket_accept(std::string_view key);

/// True when the request asks for a WebSocket upgrade at all (`Upgrade` lists the token
/// "websocket", any case). Such requests are answered by validate_client_handshake().
bool wants_websocket(const http::Request& request) noexcept;

/// Validates an upgrade request (RFC 6455 §4.2.1). Errors (Side::Client):
///  - UpgradeRequired: Sec-WebSocket-Version missing or not 13 (answer 426 with
///    `Sec-WebSocket-Version: 13`)
///  - BadRequest: not GET, HTTP before 1.1, no Host or several, Connection without the
///    "upgrade" token, Sec-WebSocket-Key missing, repeated or not base64 of 16 bytes,
///    a request body, a Sec-WebSocket-Protocol element that is not a token.
core::Result<ClientHandshake> validate_client_handshake(const http::Request& request);

/// Inputs for the request sent to the backend.
struct BackendRequest {
    std::string target;          ///< path and query for the request line
    std::string host_header;     ///< Host header value
    std::string key;             ///< our Sec-WebSocket-Key (make_key())
    std::vector<std::string> protocols;  ///< offer to forward (already filtered by the route)
    /// Client headers forwarded verbatim (Cookie, Authorization, route forward_headers).
    std::vector<http::Header> forwarded;
    std::string forwarded_for;   ///< X-Forwarded-For: client IP
    std::string forwarded_proto; ///< X-Forwarded-Proto: "http" or "https"
    std::string forwarded_host;  ///< X-Forwarded-Host: the client's Host header
};

/// A fresh Sec-WebSocket-Key: base64 of 16 random bytes.
std::string make_key();

/// Serialises the backend upgrade request.
std::string build_backend_request(const BackendRequest& request);

/// Validates the backend's response to our upgrade (RFC 6455 §4.1, client side): status 101,
/// Upgrade: websocket, Connection: upgrade, the exact Sec-WebSocket-Accept for `key`, no
/// extension (none was offered), and a subprotocol only if it is one of `offered`.
/// Returns the selected subprotocol ("" when none). Errors: BackendRejected (status not 101;
/// context holds the status) or BackendBadHandshake (Side::Backend).
core::Result<std::string> validate_backend_response(const http::Response& response,
                                                    std::string_view key,
                                                    const std::vector<std::string>& offered);

/// The 101 sent to the client once the backend accepted: Upgrade, Connection, the accept key
/// for the client's key, the selected subprotocol, and the backend's Set-Cookie headers.
std::string build_client_101(std::string_view client_key, std::string_view protocol,
                             const std::vector<std::string>& set_cookies);

} // namespace proxy::ws
