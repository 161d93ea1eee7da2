#include "proxy/core/result.h"

namespace proxy::core {

std::string_view to_string(Code code) noexcept {
    switch (code) {
    case Code::Ok: return "ok";
    case Code::BadRequest: return "bad_request";
    case Code::NotFound: return "not_found";
    case Code::UpgradeRequired: return "upgrade_required";
    case Code::Forbidden: return "forbidden";
    case Code::HeaderTooLarge: return "header_too_large";
    case Code::HeaderTimeout: return "header_timeout";
    case Code::PayloadTooLarge: return "payload_too_large";
    case Code::NotImplemented: return "not_implemented";
    case Code::Overloaded: return "overloaded";
    case Code::ProtocolError: return "protocol_error";
    case Code::InvalidUtf8: return "invalid_utf8";
    case Code::MessageTooBig: return "message_too_big";
    case Code::PolicyViolation: return "policy_violation";
    case Code::BackendUnreachable: return "backend_unreachable";
    case Code::BackendTimeout: return "backend_timeout";
    case Code::BackendRejected: return "backend_rejected";
    case Code::BackendBadHandshake: return "backend_bad_handshake";
    case Code::PeerTimeout: return "peer_timeout";
    case Code::Io: return "io";
    case Code::Tls: return "tls";
    case Code::Config: return "config";
    case Code::Internal: return "internal";
    }
    return "unknown";
}

std::string_view to_string(Side side) noexcept {
    switch (side) {
    case Side::Client: return "client";
    case Side::Backend: return "backend";
    case Side::Internal: return "internal";
    case Side::Config: return "config";
    }
    return "unknown";
}

} // namespace proxy::core
