#include "proxy/front/http_connection.h"

#include "proxy/core/log.h"
#include "proxy/http/response.h"
#include "proxy/front/routing.h"
#include "proxy/ws/handshake.h"
#include "transports/ws_session/codec.h"
#include "proxy/relay/ws_relay.h"

namespace proxy {

using core::Code;
using core::LogLevel;
using CloseMode = core::TcpStream::CloseMode;

namespace {

/// Bytes a connection with a held poll reads ahead (a pipelined next request) before it stops
/// reading until the poll is answered.
constexpr std::size_t kHeldPollReadLimit = 64 * 1024;

http::ParserLimits parser_limits(const config::Config& config) {
    http::ParserLimits l;
    l.max_header_bytes = config.limits.max_header_bytes;
    l.max_headers = config.limits.max_headers;
    l.max_body = config.limits.route.max_post_body;
    return l;
}

/// HTTP status and error code for a parser or handshake error.
std::pair<unsigned, std::string_view> status_for(Code code) {
    switch (code) {
    case Code::HeaderTooLarge: return {431, "header_too_large"};
    case Code::PayloadTooLarge: return {413, "payload_too_large"};
    case Code::UpgradeRequired: return {426, "upgrade_required"};
    case Code::NotImplemented: return {501, "not_implemented"};
    default: return {400, "bad_request"};
    }
}

} // namespace

HttpConnection::HttpConnection(Context& context, std::unique_ptr<core::TcpStream> stream,
                               ClientSlot slot, std::string scheme, std::string client_address)
    : context_(context),
      stream_(std::move(stream)),
      slot_(std::move(slot)),
      scheme_(std::move(scheme)),
      parser_(parser_limits(context.config())),
      header_timer_(context.loop(), [this] { on_header_timeout(); }) {
    client_address_ = std::move(client_address);
    stream_->set_handler(this);
    stream_->set_nodelay(true);
}

HttpConnection::~HttpConnection() = default;

void HttpConnection::start() {
    header_timer_.start(static_cast<std::uint64_t>(context_.config().limits.header_timeout.count()));
    stream_->start_read();
}

void HttpConnection::on_read(std::span<std::byte> bytes) {
    process(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void HttpConnection::process(std::string_view data) {
    while (!ended_ && !data.empty()) {
        if (waiting_) {
            // A request waits; keep what was already read. A held poll keeps reading so that
            // its client's departure is seen at once (on_read_end ends the poll), up to a bound.
            leftover_.append(data);
            if (leftover_.size() > kHeldPollReadLimit) {
                stream_->pause(core::kPauseOwner);
            }
            return;
        }
        auto r = parser_.feed(std::span<const char>(data.data(), data.size()));
        if (!r) {
            // A body over max_post_body, say: counted like the session's own rejections when
            // the request goes to a session route (issue 10).
            session_request_ = targets_session();
            const auto [status, code] = status_for(r.error().code);
            respond_error(status, code, r.error().context, true, r.error().context);
            return;
        }
        if (!r->complete) {
            if (parser_.head_complete() && !body_clock_) {
                // The head is in; its body gets the route's message_timeout (slow drip).
                body_clock_ = true;
                const RouteRuntime* route = context_.match(parser_.request().path());
                const config::Duration timeout =
                    route != nullptr ? route->route->limits.message_timeout
                                     : context_.config().limits.route.message_timeout;
                header_timer_.start(static_cast<std::uint64_t>(timeout.count()));
            }
            return;
        }
        const std::string_view rest = data.substr(r->consumed);
        switch (handle_request(rest)) {
        case Next::Stop:
            return;
        case Next::Wait:
            waiting_ = true;
            leftover_.append(rest);
            if ((poll_ || mux_poll_) && leftover_.size() <= kHeldPollReadLimit) {
                // A held poll: read on, to learn at once when its client leaves (a poll that
                // stayed attached after its client left would keep the session from its next
                // poll's client and count as held until its hold time ran out).
                stream_->resume(core::kPauseOwner);
            } else {
                stream_->pause(core::kPauseOwner);
            }
            return;
        case Next::Continue:
            break;
        }
        parser_.reset();
        data = rest;
    }
}

void HttpConnection::resume_after_wait() {
    if (ended_ || !waiting_) {
        return;
    }
    waiting_ = false;
    parser_.reset();
    next_request();
    std::string kept = std::move(leftover_);
    leftover_.clear();
    process(kept);
    if (!ended_ && !waiting_) {
        stream_->resume(core::kPauseOwner);
    }
}

void HttpConnection::next_request() {
    body_clock_ = false;
    header_timer_.start(static_cast<std::uint64_t>(context_.config().limits.header_timeout.count()));
}

HttpConnection::Next HttpConnection::handle_request(std::string_view rest) {
    header_timer_.stop();
    body_clock_ = false;
    session_request_ = false;
    ++requests_;
    http::Request& request = parser_.request();
    const bool upgrade = ws::wants_websocket(request) || request.upgrade;
    // Any upgrade attempt that is not accepted closes the connection (SPEC §2).
    const bool close = upgrade || !request.keep_alive;
    if (context_.draining()) {
        respond_error(503, "draining", "The proxy is shutting down.", true, "draining");
        return Next::Stop;
    }
    const RouteRuntime* route = context_.match(request.path());
    if (route == nullptr) {
        respond_error(404, "not_found", "No route matches this path.", close, "no route");
        return close ? Next::Stop : Next::Continue;
    }
    if (ws::wants_websocket(request)) {
        return handle_upgrade(*route, rest);
    }
    if (!upgrade) {
        return handle_session_request(*route);
    }
    respond_error(400, "bad_transport",
                  "Use a WebSocket upgrade, Server-Sent Events (Accept: text/event-stream) or "
                  "long-polling (?transport=longpoll) on this route.",
                  true, "unsupported upgrade");
    return Next::Stop;
}

HttpConnection::Next HttpConnection::handle_upgrade(const RouteRuntime& route,
                                                    std::string_view rest) {
    const http::Request& request = parser_.request();
    const config::Route& r = *route.route;
    if (!r.transports.websocket) {
        respond_error(400, "transport_disabled", "WebSocket is not enabled on this route.", true,
                      "websocket disabled");
        return Next::Stop;
    }
    auto handshake = ws::validate_client_handshake(request);
    if (!handshake) {
        const auto [status, code] = status_for(handshake.error().code);
        respond_error(status, code, handshake.error().context, true, handshake.error().context);
        return Next::Stop;
    }
    const OriginVerdict origin = check_origin(r, request, scheme_);
    if (origin == OriginVerdict::Rejected ||
        (origin == OriginVerdict::NoOrigin && r.require_origin)) {
        respond_error(403, "origin_not_allowed",
                      origin == OriginVerdict::Rejected ? "This Origin is not allowed."
                                                        : "An Origin header is required.",
                      true, "origin");
        return Next::Stop;
    }
    for (const auto& p : handshake->protocols) {
        if (p == transports::ws_session::kSubprotocol) {
            session_request_ = true;  // rejections from here on count as transport="session"
            return handle_ws_session(route, rest, *handshake);
        }
    }
    // Hand over: the relay owns the stream from now on; the registry owns the relay.
    WsRelay& relay = context_.adopt(std::make_unique<WsRelay>(
        context_, route, std::move(stream_), std::move(slot_), request, std::move(*handshake),
        std::string(rest)));
    relay.start(request, scheme_);
    ended_ = true;
    header_timer_.stop();
    context_.retire(*this);
    return Next::Stop;
}

void HttpConnection::respond_error(unsigned status, std::string_view code,
                                   std::string_view detail, bool close, std::string_view reason,
                                   std::vector<std::pair<std::string, std::string>> extra) {
    if (status == 426) {
        extra.emplace_back("Sec-WebSocket-Version", "13");
    }
    stream_->write(http::json_error(status, code, detail, close, extra));
    const http::Request& request = parser_.request();
    core::log_limited(LogLevel::Info, "http_rejected",
              {{"client", client_address_},
               {"method", request.method},
               {"path", std::string(request.path())},
               {"status", status},
               {"error", code},
               {"reason", reason}});
    context_.metrics().inc(
        "wsbridge_rejections_total",
        {{"transport", ws::wants_websocket(request) ? "websocket"
                       : session_request_          ? "session"
                                                   : "http"},
         {"reason", code},
         {"status", std::to_string(status)}});
    if (close) {
        end();
    } else if (!waiting_) {
        next_request();
    }
}

void HttpConnection::respond(unsigned status,
                             std::vector<std::pair<std::string, std::string>> headers,
                             std::string_view body, bool close) {
    headers.emplace_back("Cache-Control", "no-store");
    stream_->write(http::build_response(status, headers, body, close));
    if (close) {
        end();
    } else if (!waiting_) {
        next_request();
    }
}

bool HttpConnection::targets_session() const {
    const http::Request& request = parser_.request();
    return parser_.head_complete() && !ws::wants_websocket(request) && !request.upgrade &&
           context_.match(request.path()) != nullptr;
}

void HttpConnection::on_header_timeout() {
    if (ended_) {
        return;
    }
    if (body_clock_) {
        respond_error(408, "message_timeout",
                      "The request body was not complete within message_timeout.", true,
                      "message timeout");
        return;
    }
    if (stream_->handshaking()) {
        // The TLS handshake did not complete within header_timeout: no answer can reach the
        // client, so close, and count it as a failed handshake (not as a 408 never sent).
        context_.metrics().inc("wsbridge_tls_handshake_failures_total",
                               {{"side", "client"}, {"reason", "timeout"}});
        core::log_limited(core::LogLevel::Info, "tls_handshake_failed",
                          {{"side", "client"}, {"client", stream_->peer_address()},
                           {"reason", "timeout"},
                           {"detail", "handshake not complete within header_timeout"}});
        end();
        return;
    }
    if (parser_.started() || requests_ == 0) {
        respond_error(408, "header_timeout",
                      "The request head was not complete within header_timeout.", true,
                      "header timeout");
        return;
    }
    // An idle keep-alive connection: close quietly, like nginx's keepalive_timeout.
    end();
}

void HttpConnection::on_read_end(const core::Error* /*error*/) {
    end();
}

void HttpConnection::on_write_error(const core::Error& /*error*/) {
    end();
}

void HttpConnection::shutdown(bool /*going_away*/) {
    end();
}

void HttpConnection::end() {
    if (ended_) {
        return;
    }
    ended_ = true;
    header_timer_.stop();
    if (opening_ != nullptr) {
        opening_->cancel_opener(this);
        opening_ = nullptr;
    }
    if (poll_) {
        poll_->cancel();
    }
    if (mux_poll_) {
        mux_poll_->cancel();
    }
    drop_poll();
    if (stream_) {
        stream_->close(CloseMode::Flush);
    }
    slot_.release();
    context_.retire(*this);
}

} // namespace proxy
