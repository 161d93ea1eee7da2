#include "proxy/backend/backend_bridge.h"

#include "proxy/context.h"
#include "proxy/front/routing.h"

namespace proxy {

using core::Code;
namespace close_code = ws::close_code;

BackendConnection::Target bridge_target(const RouteRuntime& route, const BridgeRequest& client) {
    const config::Route& r = *route.route;
    BackendConnection::Target target;
    target.ip = route.backend_ip;
    target.port = r.backend.port;
    target.request.target = backend_target(r, client.request);
    target.request.host_header = r.backend.host_header;
    for (const auto& p : client.protocols) {
        // The relay's protocols are tokens already (validate_client_handshake); a session's
        // come from its query string and are checked here.
        bool allowed = r.subprotocols.empty();
        for (const auto& s : r.subprotocols) {
            allowed = allowed || s == p;
        }
        if (allowed && http::is_token(p)) {
            target.request.protocols.push_back(p);
        }
    }
    target.request.forwarded = forwarded_headers(r, client.request);
    target.request.forwarded_for = std::string(client.client_ip);
    target.request.forwarded_proto = std::string(client.scheme);
    if (const std::string* host = client.request.find("Host")) {
        target.request.forwarded_host = *host;
    }
    return target;
}

std::unique_ptr<BackendConnection> open_backend(Context& context, const RouteRuntime& route,
                                                const BridgeRequest& client,
                                                BackendHandler& handler,
                                                ws::DecoderHandler& frames) {
    auto backend =
        std::make_unique<BackendConnection>(context, route.route->limits, handler, frames);
    BackendConnection::Target target = bridge_target(route, client);
    if (route.backend_tls) {
        target.transform = route.backend_tls->new_transform();
    }
    backend->start(std::move(target));
    return backend;
}

BackendLoss backend_loss(const core::Error* error) noexcept {
    if (error == nullptr || error->code == Code::Io) {
        return {close_code::kBadGateway, "backend closed the connection"};
    }
    switch (error->code) {
    case Code::PeerTimeout: return {close_code::kInternalError, "backend timed out"};
    case Code::MessageTooBig: return {close_code::kMessageTooBig, "backend message too big"};
    case Code::InvalidUtf8: return {close_code::kInvalidPayload, "backend sent invalid UTF-8"};
    default: return {close_code::kBadGateway, "backend protocol error"};
    }
}

} // namespace proxy
