#pragma once
// The backend side of every bridge, shared by the WebSocket relay and the sessions (issue 11,
// "one backend bridge"): what a client's request becomes towards the backend (SPEC §2: the
// route's backend address and target, the allowed subprotocols, the allow-listed headers and
// X-Forwarded-*), the BackendConnection opened with it, and the one close code and reason a
// client gets when its backend is lost without a Close frame (SPEC §5).
//
// The connection opened here is a part of its caller (loop.h rule 3): the relay or session
// holds the returned unique_ptr, and destroying that closes the connection.

#include "proxy/backend/backend_connection.h"
#include "proxy/http/message.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace proxy {

struct RouteRuntime;

/// The parts of a client's request that reach its backend. Views; used only during the call.
struct BridgeRequest {
    const http::Request& request;           ///< the client's request (target, Host, headers)
    std::span<const std::string> protocols; ///< subprotocols the client offered, in order
    std::string_view client_ip;             ///< X-Forwarded-For
    std::string_view scheme;                ///< X-Forwarded-Proto: "http" or "https"
};

/// The handshake target for `client` on `route`: the route's resolved backend address and
/// port, backend_target() and the backend Host header, the offered subprotocols that are
/// tokens and that the route's `subprotocols` list allows (all when it is empty), the
/// forwarded_headers() and X-Forwarded-For/-Proto/-Host. Pure; the key is filled by start().
BackendConnection::Target bridge_target(const RouteRuntime& route, const BridgeRequest& client);

/// Opens the backend connection for `client` on `route` (bridge_target(), then start()).
/// Failures reach `handler` later (on_backend_failed), never from inside this call; `frames`
/// gets the decoded frames once open. The caller owns the result.
std::unique_ptr<BackendConnection> open_backend(Context& context, const RouteRuntime& route,
                                                const BridgeRequest& client,
                                                BackendHandler& handler,
                                                ws::DecoderHandler& frames);

/// The close a client gets when its backend went away without a Close frame.
struct BackendLoss {
    std::uint16_t code = 0;
    std::string_view reason; ///< a static string
};

/// Maps on_backend_gone's `error` to the client's close (SPEC §5): a clean EOF or an I/O error
/// → 1014 "backend closed the connection"; PeerTimeout (no pong) → 1011; MessageTooBig →
/// 1009; InvalidUtf8 → 1007 (issue 10); any other protocol error → 1014 "backend protocol
/// error".
BackendLoss backend_loss(const core::Error* error) noexcept;

} // namespace proxy
