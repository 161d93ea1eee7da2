#include "proxy/ws/handshake.h"

#include <array>

#include "proxy/core/base64.h"
#include "proxy/core/base64.h"
#include "proxy/core/crypto.h"

namespace proxy::ws {

std::string websocket_accept(std::string_view key) {
    // RFC 6455 §4.2.2 step 5.4: base64(SHA-1(key + GUID)).
    static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string input;
    input.reserve(key.size() + kGuid.size());
    input.append(key);
    input.append(kGuid);
    const auto digest = core::sha1(input);
    return core::base64_encode(std::as_bytes(std::span{digest}));
}


using core::Code;
using core::fail;
using core::Side;

bool wants_websocket(const http::Request& request) noexcept {
    return request.has_token("Upgrade", "websocket");
}

core::Result<ClientHandshake> validate_client_handshake(const http::Request& request) {
    auto bad = [](std::string why) { return fail(Code::BadRequest, Side::Client, std::move(why)); };
    if (request.method != "GET") {
        return bad("a WebSocket upgrade must use GET");
    }
    if (request.http_major < 1 || (request.http_major == 1 && request.http_minor < 1)) {
        return bad("a WebSocket upgrade needs HTTP/1.1");
    }
    if (request.count("Host") != 1) {
        return bad("exactly one Host header is required");
    }
    if (!request.has_token("Connection", "upgrade")) {
        return bad("Connection header must include the upgrade token");
    }
    const std::string* version = request.find("Sec-WebSocket-Version");
    if (version == nullptr || request.count("Sec-WebSocket-Version") != 1 || *version != "13") {
        return fail(Code::UpgradeRequired, Side::Client,
                    "only WebSocket version 13 is supported");
    }
    const std::string* key = request.find("Sec-WebSocket-Key");
    if (key == nullptr || request.count("Sec-WebSocket-Key") != 1) {
        return bad("exactly one Sec-WebSocket-Key header is required");
    }
    const auto decoded = core::base64_decode(*key);
    if (!decoded || decoded->size() != 16) {
        return bad("Sec-WebSocket-Key must be base64 of 16 bytes");
    }
    if (!request.body.empty() || request.find("Content-Length") != nullptr ||
        request.find("Transfer-Encoding") != nullptr) {
        return bad("a WebSocket upgrade request must not have a body");
    }
    ClientHandshake out;
    out.key = *key;
    for (const auto& h : request.headers) {
        if (!http::iequals(h.name, "Sec-WebSocket-Protocol")) {
            continue;
        }
        for (auto p : http::split_list(h.value)) {
            if (!http::is_token(p)) {
                return bad("Sec-WebSocket-Protocol elements must be tokens");
            }
            out.protocols.emplace_back(p);
        }
    }
    return out;
}

std::string make_key() {
    std::array<std::byte, 16> raw{};
    core::random_bytes(raw);
    return core::base64_encode(raw);
}

std::string build_backend_request(const BackendRequest& r) {
    std::string out;
    out.reserve(256);
    out.append("GET ").append(r.target).append(" HTTP/1.1\r\n");
    out.append("Host: ").append(r.host_header).append("\r\n");
    out.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
    out.append("Sec-WebSocket-Key: ").append(r.key).append("\r\n");
    out.append("Sec-WebSocket-Version: 13\r\n");
    if (!r.protocols.empty()) {
        out.append("Sec-WebSocket-Protocol: ");
        for (std::size_t i = 0; i < r.protocols.size(); ++i) {
            out.append(i == 0 ? "" : ", ").append(r.protocols[i]);
        }
        out.append("\r\n");
    }
    for (const auto& h : r.forwarded) {
        out.append(h.name).append(": ").append(h.value).append("\r\n");
    }
    out.append("X-Forwarded-For: ").append(r.forwarded_for).append("\r\n");
    out.append("X-Forwarded-Proto: ").append(r.forwarded_proto).append("\r\n");
    if (!r.forwarded_host.empty()) {
        out.append("X-Forwarded-Host: ").append(r.forwarded_host).append("\r\n");
    }
    out.append("\r\n");
    return out;
}

core::Result<std::string> validate_backend_response(const http::Response& response,
                                                    std::string_view key,
                                                    const std::vector<std::string>& offered) {
    auto bad = [](std::string why) {
        return fail(Code::BackendBadHandshake, Side::Backend, std::move(why));
    };
    if (response.status != 101) {
        return fail(Code::BackendRejected, Side::Backend,
                    "backend answered the upgrade with " + std::to_string(response.status));
    }
    if (!response.has_token("Upgrade", "websocket")) {
        return bad("backend 101 without Upgrade: websocket");
    }
    if (!response.has_token("Connection", "upgrade")) {
        return bad("backend 101 without Connection: upgrade");
    }
    const std::string* accept = response.find("Sec-WebSocket-Accept");
    if (accept == nullptr || response.count("Sec-WebSocket-Accept") != 1 ||
        *accept != websocket_accept(key)) {
        return bad("backend 101 with a wrong Sec-WebSocket-Accept");
    }
    if (const std::string* ext = response.find("Sec-WebSocket-Extensions");
        ext != nullptr && !ext->empty()) {
        return bad("backend 101 selected an extension that was not offered");
    }
    std::string selected;
    if (const std::string* proto = response.find("Sec-WebSocket-Protocol")) {
        bool found = false;
        for (const auto& o : offered) {
            found = found || o == *proto;
        }
        if (!found || response.count("Sec-WebSocket-Protocol") != 1) {
            return bad("backend 101 selected a subprotocol that was not offered");
        }
        selected = *proto;
    }
    return selected;
}

std::string build_client_101(std::string_view client_key, std::string_view protocol,
                             const std::vector<std::string>& set_cookies) {
    std::string out;
    out.reserve(160);
    out.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    out.append("Sec-WebSocket-Accept: ").append(websocket_accept(client_key)).append("\r\n");
    if (!protocol.empty()) {
        out.append("Sec-WebSocket-Protocol: ").append(protocol).append("\r\n");
    }
    for (const auto& c : set_cookies) {
        out.append("Set-Cookie: ").append(c).append("\r\n");
    }
    out.append("\r\n");
    return out;
}

} // namespace proxy::ws
