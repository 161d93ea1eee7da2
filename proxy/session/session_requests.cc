// HttpConnection's handling of session requests (SPEC §1 table, §3): SSE streams, long-poll
// open/poll, POST, DELETE and CORS preflights. Kept apart from http_connection.cc, which does
// parsing, limits and the WebSocket hand-over.

#include <algorithm>
#include <charconv>

#include "proxy/core/log.h"
#include "proxy/heartbeat.h"
#include "proxy/http/response.h"
#include "proxy/front/http_connection.h"
#include "proxy/front/routing.h"
#include "proxy/ws/utf8.h"
#include "transports/long_polling/codec.h"
#include "transports/mux/codec.h"
#include "transports/mux/mux_sse_transport.h"
#include "transports/sse/encoder.h"
#include "transports/sse/sse_transport.h"
#include "transports/ws_session/ws_session_transport.h"

namespace proxy {

using core::Code;
using core::LogLevel;
namespace lp = transports::long_polling;

namespace {

enum OpenKind : int {
    kOpenSse = 1,
    kOpenLongPoll = 2,
    kOpenPollReset = 3,
    kOpenWs = 4,
};

/// Value of query parameter `name` (raw, not percent-decoded), or nullopt.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        const auto eq = param.find('=');
        if (param.substr(0, eq) == name) {
            return eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

/// Strict decimal uint64 (no sign, 1–20 digits, no overflow).
std::optional<std::uint64_t> parse_u64(std::string_view text) {
    std::uint64_t v = 0;
    if (text.empty() || text.size() > 20) {
        return std::nullopt;
    }
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return v;
}

/// Keeps a client's admission slot alive for as long as its SSE stream or WebSocket session
/// connection lives, and counts it in wsbridge_connections{transport="sse"|"ws_session"}
/// meanwhile (issue 10).
struct SlotTicket final : core::DeferredDeletable {
    SlotTicket(ClientSlot s, Metrics& m, std::string_view t, std::string r)
        : slot(std::move(s)), metrics(m), transport(t), route(std::move(r)) {
        metrics.gauge_add("wsbridge_connections", 1, {{"route", route}, {"transport", transport}});
    }
    ~SlotTicket() override {
        metrics.gauge_add("wsbridge_connections", -1,
                          {{"route", route}, {"transport", transport}});
    }
    SlotTicket(const SlotTicket&) = delete;
    SlotTicket& operator=(const SlotTicket&) = delete;
    ClientSlot slot;
    Metrics& metrics;
    std::string_view transport;  ///< a literal
    std::string route;           ///< the route's path
};

/// Counts a resume of `session` from position `after` on `transport`, and the gap the client
/// is about to get when `after` is no longer in the replay buffer.
void count_resume(Metrics& metrics, const Session& session, std::string_view transport,
                  std::uint64_t after) {
    const std::string& path = session.route().route->path;
    metrics.inc("wsbridge_session_resumes_total", {{"route", path}, {"transport", transport}});
    if (session.replay().gap_after(after)) {
        metrics.inc("wsbridge_session_gaps_total", {{"route", path}, {"transport", transport}});
    }
}

} // namespace

std::vector<std::pair<std::string, std::string>> HttpConnection::cors_headers() const {
    std::vector<std::pair<std::string, std::string>> h;
    if (const std::string* origin = parser_.request().find("Origin")) {
        h.emplace_back("Access-Control-Allow-Origin", *origin);
        h.emplace_back("Access-Control-Allow-Credentials", "true");
        h.emplace_back("Vary", "Origin");
        // Cross-origin pages must be able to read these on 409 and 429 answers.
        h.emplace_back("Access-Control-Expose-Headers", "X-Expected-Seq, Retry-After");
    }
    return h;
}

std::string HttpConnection::session_url(std::string_view id) const {
    std::string url(parser_.request().path());
    url.append("?session=").append(id);
    return url;
}

HttpConnection::Next HttpConnection::handle_session_request(const RouteRuntime& route) {
    session_request_ = true;  // rejections from here on count as transport="session"
    const http::Request& request = parser_.request();
    const config::Route& r = *route.route;
    const bool close = !request.keep_alive;
    // The Origin policy applies to every request of every transport (SPEC §5).
    const OriginVerdict origin = check_origin(r, request, scheme_);
    if (origin == OriginVerdict::Rejected || (origin == OriginVerdict::NoOrigin && r.require_origin)) {
        respond_error(403, "origin_not_allowed",
                      origin == OriginVerdict::Rejected ? "This Origin is not allowed."
                                                        : "An Origin header is required.",
                      close, "origin");
        return close ? Next::Stop : Next::Continue;
    }
    if (request.method == "OPTIONS") {
        return handle_preflight(route);
    }
    const std::string_view query = request.query();
    if (query_param(query, "transport") == std::string_view("mux")) {
        return handle_mux(route);
    }
    const auto session_id = query_param(query, "session");
    const std::string* accept = request.find("Accept");
    const bool wants_sse = accept != nullptr &&
                           accept->find("text/event-stream") != std::string::npos;
    if (request.method == "GET" && wants_sse) {
        // With ?session=S[&ack=N] too: a new EventSource object resumes by URL (an existing
        // one's Last-Event-ID header wins, it is newer).
        if (!r.transports.sse) {
            respond_error(400, "transport_disabled", "SSE is not enabled on this route.", close,
                          "sse disabled", cors_headers());
            return close ? Next::Stop : Next::Continue;
        }
        return handle_sse(route);
    }
    if (request.method == "GET" && !session_id &&
        query_param(query, "transport") == std::string_view("longpoll")) {
        if (!r.transports.longpoll) {
            respond_error(400, "transport_disabled", "Long-polling is not enabled on this route.",
                          close, "longpoll disabled", cors_headers());
            return close ? Next::Stop : Next::Continue;
        }
        return open_session(route, kOpenLongPoll, {});
    }
    if (session_id && request.method == "GET") {
        return handle_poll(route, *session_id);
    }
    if (session_id && (request.method == "POST" || request.method == "DELETE")) {
        return handle_send(route, *session_id);
    }
    respond_error(400, "bad_transport",
                  "Use a WebSocket upgrade, Server-Sent Events (Accept: text/event-stream) or "
                  "long-polling (?transport=longpoll) on this route.",
                  close, "not a transport request", cors_headers());
    return close ? Next::Stop : Next::Continue;
}

HttpConnection::Next HttpConnection::handle_preflight(const RouteRuntime& /*route*/) {
    const http::Request& request = parser_.request();
    auto headers = cors_headers();
    headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    headers.emplace_back("Access-Control-Allow-Headers", "Content-Type, Last-Event-ID");
    headers.emplace_back("Access-Control-Max-Age", "600");
    respond(204, std::move(headers), {}, !request.keep_alive);
    return request.keep_alive ? Next::Continue : Next::Stop;
}

HttpConnection::Next HttpConnection::open_session(const RouteRuntime& route, int kind,
                                                  std::string reset_reason) {
    const http::Request& request = parser_.request();
    // A refused upgrade never leaves a reusable connection behind (SPEC §2).
    const bool close = !request.keep_alive || kind == kOpenWs;
    if (context_.route_sessions(route.route->path) >= route.route->limits.max_sessions) {
        respond_error(503, "overloaded", "Too many sessions on this route; retry later.",
                      close, "session cap reached", {{"Retry-After", "1"}});
        return close ? Next::Stop : Next::Continue;
    }
    Session& session = context_.adopt(
        std::make_unique<Session>(context_, route, make_session_id(context_.config().instance)));
    opening_ = &session;
    opening_kind_ = kind;
    opening_reset_ = std::move(reset_reason);
    session.start(request, slot_.ip(), scheme_, this);
    return Next::Wait;
}

void HttpConnection::on_session_open() {
    Session* session = opening_;
    opening_ = nullptr;
    if (session == nullptr || ended_) {
        return;
    }
    const http::Request& request = parser_.request();
    std::optional<std::string> reset;
    if (!opening_reset_.empty()) {
        reset = opening_reset_;
    }
    switch (opening_kind_) {
    case kOpenSse:
        start_sse(*session, 0, std::move(reset));
        return;
    case kOpenPollReset:
        start_poll(*session, 0, lp::Reset{std::string(session->id()), opening_reset_});
        return;
    case kOpenWs: {
        std::string pending = std::move(leftover_);
        leftover_.clear();
        start_ws_session(*session, 0, std::move(reset), std::move(pending));
        return;
    }
    default: {
        const HeartbeatPlan plan = derive_heartbeat(session->route().route->limits.idle_timeout);
        auto headers = cors_headers();
        headers.emplace_back("Content-Type", "application/json");
        const std::string url = session_url(session->id());
        respond(200, std::move(headers),
                lp::encode_open_response(session->id(), url, url, plan.ping_after, 0,
                                         session->protocol()),
                !request.keep_alive);
        resume_after_wait();
        return;
    }
    }
}

void HttpConnection::on_session_failed(const core::Error& error, unsigned status) {
    opening_ = nullptr;
    if (ended_) {
        return;
    }
    waiting_ = false;
    const bool gateway = status == 502 || status == 504;
    respond_error(status, gateway ? (status == 504 ? "backend_timeout" : "bad_gateway")
                                  : "backend_rejected",
                  gateway ? "The backend could not open a session: " + error.context
                          : "The backend refused the session.",
                  true, core::to_string(error.code), cors_headers());
}

HttpConnection::Next HttpConnection::handle_sse(const RouteRuntime& route) {
    const http::Request& request = parser_.request();
    const std::string* last = request.find("Last-Event-ID");
    std::optional<transports::sse::EventId> id;
    if (last != nullptr) {
        id = transports::sse::parse_last_event_id(*last);
    } else if (const auto s = query_param(request.query(), "session")) {
        // Resume by URL: ?session=S&ack=N (N = the last seq seen; 0 or absent = none).
        std::uint64_t seq = 0;
        if (const auto a = query_param(request.query(), "ack")) {
            const auto v = parse_u64(*a);
            if (!v) {
                respond_error(400, "bad_request", "ack must be a decimal sequence number.",
                              !request.keep_alive, "bad ack", cors_headers());
                return request.keep_alive ? Next::Continue : Next::Stop;
            }
            seq = *v;
        }
        id = transports::sse::EventId{*s, seq};
    } else {
        return open_session(route, kOpenSse, {});
    }
    Session* session = id ? context_.find_session(id->session) : nullptr;
    if (session == nullptr || session->route().route->path != route.route->path) {
        // Expired, unknown or forged: a fresh session, announced by an explicit reset.
        context_.metrics().inc("wsbridge_session_resets_total",
                               {{"route", route.route->path}, {"transport", "sse"}});
        return open_session(route, kOpenSse, id ? "unknown session" : "invalid Last-Event-ID");
    }
    if (session->close_info() && (session->closed_by_client() || id->seq >= session->close_seq())) {
        // The session is closed and the client knows it: it closed the session itself (DELETE),
        // or its position is the close's own (the close event's id). 204 tells EventSource to
        // stop reconnecting (WHATWG: any status but 200 fails the connection) and opens
        // nothing. A client that has not seen the close gets what it missed and the close
        // (issue 10: the close is never assumed seen because every message was).
        respond(204, cors_headers(), {}, true);
        return Next::Stop;
    }
    count_resume(context_.metrics(), *session, "sse", id->seq);
    core::log(LogLevel::Info, "session_resumed",
              {{"session", session->id()},
               {"client", client_address_},
               {"transport", "sse"},
               {"after_seq", id->seq},
               {"last_seq", session->replay().last_seq()}});
    start_sse(*session, id->seq, std::nullopt);
    return Next::Stop;
}

void HttpConnection::start_sse(Session& session, std::uint64_t after,
                               std::optional<std::string> reset) {
    const auto& limits = session.route().route->limits;
    const HeartbeatPlan plan = derive_heartbeat(limits.idle_timeout);
    transports::sse::SseOptions options;
    options.send_url = session_url(session.id());
    options.heartbeat_ms = plan.ping_after;
    options.tick_ms = plan.tick;
    options.high_watermark = limits.outbound_queue;
    options.stall_ms = plan.pong_timeout;
    options.on_slow_consumer = [&context = context_, id = session.id(),
                                client = client_address_](std::size_t queued) {
        core::log_limited(LogLevel::Info, "sse_slow_consumer",
                          {{"session", id}, {"client", client}, {"queued", queued}});
        context.metrics().inc("wsbridge_closes_total",
                              {{"side", "client"}, {"reason", "slow_consumer"}});
    };
    options.headers = cors_headers();
    options.reset_reason = std::move(reset);
    options.retire = [&context = context_](transports::sse::SseTransport& stream) {
        context.retire(stream);
    };
    stream_->resume(core::kPauseOwner);  // paused while the session opened
    // The registry owns the stream; the stream owns the socket.
    auto& sse = context_.adopt(std::make_unique<transports::sse::SseTransport>(
        context_.loop(), std::move(stream_), session, after, std::move(options)));
    // The stream keeps this connection's admission slot until it ends.
    sse.hold(std::make_unique<SlotTicket>(std::move(slot_), context_.metrics(), "sse",
                                          session.route().route->path));
    session.attach(sse);
    sse.start();
    // The socket belongs to the stream now; this connection is done.
    ended_ = true;
    waiting_ = false;
    header_timer_.stop();
    context_.retire(*this);
}

HttpConnection::Next HttpConnection::handle_poll(const RouteRuntime& route,
                                                 std::string_view session_id) {
    const http::Request& request = parser_.request();
    const bool close = !request.keep_alive;
    if (!route.route->transports.longpoll) {
        respond_error(400, "transport_disabled", "Long-polling is not enabled on this route.",
                      close, "longpoll disabled", cors_headers());
        return close ? Next::Stop : Next::Continue;
    }
    std::uint64_t ack = 0;
    if (const auto a = query_param(request.query(), "ack")) {
        const auto v = parse_u64(*a);
        if (!v) {
            respond_error(400, "bad_request", "ack must be a decimal sequence number.", close,
                          "bad ack", cors_headers());
            return close ? Next::Stop : Next::Continue;
        }
        ack = *v;
    }
    Session* session = context_.find_session(session_id);
    if (session == nullptr || session->route().route->path != route.route->path) {
        context_.metrics().inc("wsbridge_session_resets_total",
                               {{"route", route.route->path}, {"transport", "longpoll"}});
        return open_session(route, kOpenPollReset, "unknown session");
    }
    start_poll(*session, ack, std::nullopt);
    return ended_ ? Next::Stop : (waiting_ ? Next::Wait : Next::Continue);
}

void HttpConnection::start_poll(Session& session, std::uint64_t ack,
                                std::optional<lp::Reset> reset) {
    const HeartbeatPlan plan = derive_heartbeat(session.route().route->limits.idle_timeout);
    poll_close_ = !parser_.request().keep_alive;
    poll_cors_ = cors_headers();
    // From here the answer may come synchronously (from start()) or later; both go through
    // respond_poll(), which resumes reading when the connection waits.
    waiting_ = true;
    stream_->pause(core::kPauseOwner);
    poll_ = std::make_unique<lp::PollTransport>(context_.loop(), session, ack, std::move(reset),
                                                plan.ping_after,
                                                static_cast<lp::PollResponder&>(*this));
    // Counted while attached: until its answer or its client's departure (drop_poll()).
    poll_route_ = session.route().route->path;
    context_.metrics().gauge_add("wsbridge_connections", 1,
                                 {{"route", poll_route_}, {"transport", "longpoll"}});
    if (session.replay().gap_after(ack)) {
        context_.metrics().inc("wsbridge_session_gaps_total",
                               {{"route", poll_route_}, {"transport", "longpoll"}});
    }
    session.attach(*poll_);
    poll_->start();
}

void HttpConnection::respond_poll(std::string body) {
    if (ended_) {
        return;
    }
    auto headers = std::move(poll_cors_);
    headers.emplace_back("Content-Type", "application/json");
    drop_poll();
    respond(200, std::move(headers), body, poll_close_);
    resume_after_wait();
}

void HttpConnection::drop_poll() {
    // A part of this connection, but it may still be on the stack: its owner moves into the
    // loop's deferred deletions, which destroy it at a safe point (STYLE §2.5).
    if (poll_) {
        context_.metrics().gauge_add("wsbridge_connections", -1,
                                     {{"route", poll_route_}, {"transport", "longpoll"}});
        context_.loop().defer_delete(std::move(poll_));
    }
    if (mux_poll_) {
        context_.metrics().gauge_add("wsbridge_connections", -1,
                                     {{"route", poll_route_}, {"transport", "longpoll"}});
        context_.loop().defer_delete(std::move(mux_poll_));
    }
}

HttpConnection::Next HttpConnection::handle_send(const RouteRuntime& route,
                                                 std::string_view session_id) {
    const http::Request& request = parser_.request();
    const bool close = !request.keep_alive;
    const auto cors = cors_headers();
    auto reject = [&](unsigned status, std::string_view code, std::string_view detail,
                      std::vector<std::pair<std::string, std::string>> extra = {}) {
        extra.insert(extra.end(), cors.begin(), cors.end());
        respond_error(status, code, detail, close, code, std::move(extra));
        return close ? Next::Stop : Next::Continue;
    };
    Session* session = context_.find_session(session_id);
    if (session == nullptr || session->route().route->path != route.route->path) {
        return reject(404, "unknown_session", "No such session (expired or never opened).");
    }
    if (request.method == "DELETE") {
        // ?code=N&reason=R, as WebSocket.close(code, reason) allows: 1000 or 3000-4999, a
        // UTF-8 reason of at most 123 bytes. Default: 1000 "client closed the session".
        std::uint16_t code = ws::close_code::kNormal;
        std::string reason = "client closed the session";
        if (const auto c = query_param(request.query(), "code")) {
            const auto v = parse_u64(*c);
            if (!v || (*v != 1000 && (*v < 3000 || *v > 4999))) {
                return reject(400, "bad_request", "code must be 1000 or 3000-4999.");
            }
            code = static_cast<std::uint16_t>(*v);
            reason.clear();
        }
        if (const auto r = query_param(request.query(), "reason")) {
            auto decoded = decode_query_value(*r);
            if (!decoded || decoded->size() > 123 ||
                !ws::is_valid_utf8(std::as_bytes(std::span(decoded->data(), decoded->size())))) {
                return reject(400, "bad_request",
                              "reason must be percent-encoded UTF-8 of at most 123 bytes.");
            }
            reason = std::move(*decoded);
        }
        session->close_by_client(code, reason);
        respond(204, cors, {}, close);
        return close ? Next::Stop : Next::Continue;
    }
    const auto seq_text = query_param(request.query(), "seq");
    const auto seq = seq_text ? parse_u64(*seq_text) : std::nullopt;
    if (!seq || *seq == 0) {
        return reject(400, "bad_request", "seq must be a decimal number starting at 1.");
    }
    // The session's own limits, as it started: a reload since leaves them alone.
    const auto& limits = session->route().route->limits;
    if (request.body.size() > limits.max_post_body) {
        return reject(413, "payload_too_large", "The body is larger than max_post_body.");
    }
    std::vector<ClientMessage> messages;
    const bool batch = query_param(request.query(), "batch") == std::string_view("1");
    const std::string* type = request.find("Content-Type");
    if (batch) {
        auto parsed = lp::parse_batch(request.body, limits.max_message, 10'000);
        if (!parsed) {
            return reject(parsed.error().code == Code::PayloadTooLarge ? 413 : 400,
                          parsed.error().code == Code::PayloadTooLarge ? "payload_too_large"
                                                                       : "bad_request",
                          parsed.error().context);
        }
        for (auto& m : *parsed) {
            messages.push_back(ClientMessage{m.binary, std::move(m.payload)});
        }
    } else {
        if (request.body.size() > limits.max_message) {
            return reject(413, "payload_too_large", "The message is larger than max_message.");
        }
        const bool binary = type != nullptr && type->rfind("application/octet-stream", 0) == 0;
        if (!binary) {
            auto text = lp::decode_text_body(request.body);
            if (!text) {
                return reject(400, "invalid_utf8", text.error().context);
            }
        }
        messages.push_back(ClientMessage{binary, std::move(parser_.request().body)});
    }
    const SendOutcome out = session->send(*seq, messages);
    switch (out.kind) {
    case SendOutcome::Kind::SeqGap:
        return reject(409, "seq_gap",
                      "Messages must be sent in order; expected seq " +
                          std::to_string(out.expected_seq) + ".",
                      {{"X-Expected-Seq", std::to_string(out.expected_seq)}});
    case SendOutcome::Kind::Closed:
        return reject(404, "session_closed", "The session's backend connection is closed.");
    case SendOutcome::Kind::OverBurst:
        return reject(413, "payload_too_large",
                      "A POST may carry at most the route's rate burst (" +
                          std::to_string(limits.rate.burst) +
                          ") of new messages; send the rest from next_seq.");
    case SendOutcome::Kind::Busy:
        return reject(429, "busy", "The backend is not keeping up; retry later.",
                      {{"Retry-After", std::to_string(out.retry_after_s)}});
    case SendOutcome::Kind::RateLimited:
        return reject(429, "rate_limited", "Over the route's message rate; retry later.",
                      {{"Retry-After", std::to_string(out.retry_after_s)}});
    case SendOutcome::Kind::Accepted:
        break;
    }
    auto headers = cors;
    headers.emplace_back("Content-Type", "application/json");
    respond(200, std::move(headers),
            "{\"next_seq\":" + std::to_string(out.expected_seq) + "}", close);
    return close ? Next::Stop : Next::Continue;
}

HttpConnection::Next HttpConnection::handle_ws_session(const RouteRuntime& route,
                                                       std::string_view rest,
                                                       const ws::ClientHandshake& handshake) {
    const http::Request& request = parser_.request();
    const std::string_view query = request.query();
    auto number = [&](std::string_view name) -> std::optional<std::optional<std::uint64_t>> {
        const auto text = query_param(query, name);
        if (!text) {
            return std::optional<std::uint64_t>{};
        }
        const auto v = parse_u64(*text);
        if (!v) {
            return std::nullopt;
        }
        return std::optional<std::uint64_t>{*v};
    };
    const auto ack = number("ack");
    const auto seq = number("seq");
    if (!ack || !seq || (*seq && **seq == 0)) {
        respond_error(400, "bad_request",
                      "ack must be a decimal sequence number and seq one starting at 1.", true,
                      "bad ack or seq");
        return Next::Stop;
    }
    ws_key_ = handshake.key;
    ws_first_seq_ = *seq;
    const auto session_id = query_param(query, "session");
    if (!session_id) {
        return open_session(route, kOpenWs, {});
    }
    Session* session = context_.find_session(*session_id);
    if (session == nullptr || session->route().route->path != route.route->path) {
        context_.metrics().inc("wsbridge_session_resets_total",
                               {{"route", route.route->path}, {"transport", "ws_session"}});
        return open_session(route, kOpenWs, "unknown session");
    }
    const std::uint64_t after = ack->value_or(0);
    count_resume(context_.metrics(), *session, "ws_session", after);
    core::log(LogLevel::Info, "session_resumed",
              {{"session", session->id()},
               {"client", client_address_},
               {"transport", "ws_session"},
               {"after_seq", after},
               {"last_seq", session->replay().last_seq()}});
    start_ws_session(*session, after, std::nullopt, std::string(rest));
    return Next::Stop;
}

void HttpConnection::start_ws_session(Session& session, std::uint64_t after,
                                      std::optional<std::string> reset, std::string pending) {
    const auto& limits = session.route().route->limits;
    const HeartbeatPlan plan = derive_heartbeat(limits.idle_timeout);
    transports::ws_session::WsSessionOptions options;
    options.ping_after_ms = plan.ping_after;
    options.pong_timeout_ms = plan.pong_timeout;
    options.message_timeout_ms = static_cast<std::uint64_t>(limits.message_timeout.count());
    options.tick_ms = std::min(plan.tick, std::max<std::uint64_t>(1, options.message_timeout_ms / 4));
    options.stall_ms = plan.pong_timeout;
    options.max_message = limits.max_message;
    options.high_watermark = limits.outbound_queue;
    options.reset_reason = std::move(reset);
    options.first_client_seq = ws_first_seq_;
    options.on_client_error = [&context = context_, id = std::string(session.id()),
                               client = client_address_,
                               path = session.route().route->path](
                                  std::string_view event, std::uint16_t code,
                                  std::string_view detail) {
        core::log_limited(LogLevel::Info, "ws_session_client_error",
                          {{"session", id},
                           {"client", client},
                           {"route", path},
                           {"event", event},
                           {"code", static_cast<unsigned>(code)},
                           {"detail", detail}});
        if (event == "protocol_error") {
            context.metrics().inc("wsbridge_protocol_errors_total",
                                  {{"side", "client"}, {"reason", "ws_session"}});
        } else {
            context.metrics().inc("wsbridge_closes_total",
                                  {{"side", "client"}, {"reason", std::string(event)}});
        }
    };
    options.retire = [&context = context_](transports::ws_session::WsSessionTransport& t) {
        context.retire(t);
    };
    stream_->write(ws::build_client_101(ws_key_, transports::ws_session::kSubprotocol, {}));
    context_.metrics().inc("wsbridge_upgrades_total", {{"result", "accepted"}});
    stream_->pause(core::kPauseOwner);  // the transport resumes once its first bytes are out
    auto& t = context_.adopt(std::make_unique<transports::ws_session::WsSessionTransport>(
        context_.loop(), std::move(stream_), session, after, std::move(options)));
    t.hold(std::make_unique<SlotTicket>(std::move(slot_), context_.metrics(), "ws_session",
                                        session.route().route->path));
    session.attach(t);
    ended_ = true;
    waiting_ = false;
    header_timer_.stop();
    context_.retire(*this);
    t.start(std::move(pending));
}

// ---- many sessions on one connection (docs/protocol.md) ------------------------------------

HttpConnection::Next HttpConnection::handle_mux(const RouteRuntime& route) {
    const http::Request& request = parser_.request();
    const bool close = !request.keep_alive;
    const std::string* accept = request.find("Accept");
    const bool wants_sse =
        accept != nullptr && accept->find("text/event-stream") != std::string::npos;
    if (request.method == "GET" && wants_sse) {
        if (!route.route->transports.sse) {
            respond_error(400, "transport_disabled", "SSE is not enabled on this route.", close,
                          "sse disabled", cors_headers());
            return close ? Next::Stop : Next::Continue;
        }
        return handle_mux_sse(route);
    }
    if (request.method == "GET") {
        if (!route.route->transports.longpoll) {
            respond_error(400, "transport_disabled", "Long-polling is not enabled on this route.",
                          close, "longpoll disabled", cors_headers());
            return close ? Next::Stop : Next::Continue;
        }
        return handle_mux_poll(route);
    }
    if (request.method == "POST") {
        return handle_mux_send(route);
    }
    respond_error(400, "bad_transport",
                  "A multiplexed request is a GET (stream or poll) or a POST (send).", close,
                  "bad mux method", cors_headers());
    return close ? Next::Stop : Next::Continue;
}

HttpConnection::Next HttpConnection::handle_mux_sse(const RouteRuntime& route) {
    const http::Request& request = parser_.request();
    auto positions = transports::mux::parse_positions(request.query());
    if (!positions) {
        respond_error(400, "bad_request", positions.error().context, !request.keep_alive,
                      "bad mux sessions", cors_headers());
        return request.keep_alive ? Next::Continue : Next::Stop;
    }
    const auto& limits = route.route->limits;
    const HeartbeatPlan plan = derive_heartbeat(limits.idle_timeout);
    transports::mux::MuxSseOptions options;
    options.send_url = std::string(request.path()) + "?transport=mux";
    options.heartbeat_ms = plan.ping_after;
    options.tick_ms = plan.tick;
    options.high_watermark = limits.outbound_queue;
    options.stall_ms = plan.pong_timeout;
    options.headers = cors_headers();
    options.on_slow_consumer = [&context = context_, client = client_address_](std::size_t queued) {
        core::log_limited(LogLevel::Info, "sse_slow_consumer",
                          {{"session", "mux"}, {"client", client}, {"queued", queued}});
        context.metrics().inc("wsbridge_closes_total",
                              {{"side", "client"}, {"reason", "slow_consumer"}});
    };
    options.retire = [&context = context_](transports::mux::MuxSseTransport& stream) {
        context.retire(stream);
    };
    auto& mux = context_.adopt(std::make_unique<transports::mux::MuxSseTransport>(
        context_.loop(), std::move(stream_), std::move(options)));
    std::vector<std::pair<Session*, transports::mux::MuxSseTransport::Member*>> attach;
    for (auto& p : *positions) {
        Session* session = context_.find_session(p.session);
        if (session == nullptr || session->route().route->path != route.route->path) {
            context_.metrics().inc("wsbridge_session_resets_total",
                               {{"route", route.route->path}, {"transport", "mux_sse"}});
            mux.add(nullptr, std::move(p.session), 0, "unknown session");
            continue;
        }
        count_resume(context_.metrics(), *session, "mux_sse", p.seq);
        attach.emplace_back(session, &mux.add(session, std::move(p.session), p.seq));
    }
    // The stream keeps this connection's admission slot until it ends.
    mux.hold(std::make_unique<SlotTicket>(std::move(slot_), context_.metrics(), "sse",
                                          route.route->path));
    for (auto& [session, member] : attach) {
        session->attach(*member);
    }
    ended_ = true;
    waiting_ = false;
    header_timer_.stop();
    context_.retire(*this);
    mux.start();
    return Next::Stop;
}

HttpConnection::Next HttpConnection::handle_mux_poll(const RouteRuntime& route) {
    const http::Request& request = parser_.request();
    auto positions = transports::mux::parse_positions(request.query());
    if (!positions) {
        respond_error(400, "bad_request", positions.error().context, !request.keep_alive,
                      "bad mux sessions", cors_headers());
        return request.keep_alive ? Next::Continue : Next::Stop;
    }
    const HeartbeatPlan plan = derive_heartbeat(route.route->limits.idle_timeout);
    poll_close_ = !request.keep_alive;
    poll_cors_ = cors_headers();
    waiting_ = true;
    stream_->pause(core::kPauseOwner);
    mux_poll_ = std::make_unique<transports::mux::MuxPollTransport>(
        context_.loop(), plan.ping_after, static_cast<lp::PollResponder&>(*this));
    poll_route_ = route.route->path;
    context_.metrics().gauge_add("wsbridge_connections", 1,
                                 {{"route", poll_route_}, {"transport", "longpoll"}});
    std::vector<std::pair<Session*, transports::mux::MuxPollTransport::Member*>> attach;
    for (auto& p : *positions) {
        Session* session = context_.find_session(p.session);
        if (session == nullptr || session->route().route->path != route.route->path) {
            context_.metrics().inc("wsbridge_session_resets_total",
                               {{"route", route.route->path}, {"transport", "mux_longpoll"}});
            mux_poll_->add(nullptr, std::move(p.session), 0, "unknown session");
            continue;
        }
        attach.emplace_back(session, &mux_poll_->add(session, std::move(p.session), p.seq, {}));
    }
    transports::mux::MuxPollTransport* poll = mux_poll_.get();
    for (auto& [session, member] : attach) {
        session->attach(*member);
    }
    poll->start();
    return ended_ ? Next::Stop : (waiting_ ? Next::Wait : Next::Continue);
}

HttpConnection::Next HttpConnection::handle_mux_send(const RouteRuntime& route) {
    const http::Request& request = parser_.request();
    const bool close = !request.keep_alive;
    const auto cors = cors_headers();
    const auto& limits = route.route->limits;
    if (request.body.size() > limits.max_post_body) {
        respond_error(413, "payload_too_large", "The body is larger than max_post_body.", close,
                      "payload_too_large", cors);
        return close ? Next::Stop : Next::Continue;
    }
    // The request is held to the route's limits as they are now (413 as a whole), and each
    // entry below also to its own session's, which may be lower after a reload raised them.
    auto entries = transports::mux::parse_send(request.body, limits.max_message, 10'000);
    if (!entries) {
        const bool big = entries.error().code == Code::PayloadTooLarge;
        respond_error(big ? 413 : 400, big ? "payload_too_large" : "bad_request",
                      entries.error().context, close, big ? "payload_too_large" : "bad_request",
                      cors);
        return close ? Next::Stop : Next::Continue;
    }
    std::vector<transports::mux::SendResult> results;
    results.reserve(entries->size());
    for (auto& e : *entries) {
        transports::mux::SendResult r;
        r.session = e.session;
        Session* session = context_.find_session(e.session);
        if (session == nullptr || session->route().route->path != route.route->path) {
            r.error = "unknown_session";
            results.push_back(r);
            continue;
        }
        const std::uint64_t max_message = session->route().route->limits.max_message;
        if (std::any_of(e.messages.begin(), e.messages.end(),
                        [&](const auto& m) { return m.payload.size() > max_message; })) {
            r.error = "payload_too_large";
            results.push_back(r);
            continue;
        }
        std::vector<ClientMessage> messages;
        messages.reserve(e.messages.size());
        for (auto& m : e.messages) {
            messages.push_back(ClientMessage{m.binary, std::move(m.payload)});
        }
        const SendOutcome out = session->send(e.seq, messages);
        switch (out.kind) {
        case SendOutcome::Kind::Accepted:
            r.next_seq = out.expected_seq;
            break;
        case SendOutcome::Kind::SeqGap:
            r.error = "seq_gap";
            r.expected_seq = out.expected_seq;
            break;
        case SendOutcome::Kind::Closed:
            r.error = "session_closed";
            break;
        case SendOutcome::Kind::OverBurst:
            r.error = "payload_too_large";
            break;
        case SendOutcome::Kind::Busy:
            r.error = "busy";
            r.retry_after = out.retry_after_s;
            break;
        case SendOutcome::Kind::RateLimited:
            r.error = "rate_limited";
            r.retry_after = out.retry_after_s;
            break;
        }
        results.push_back(r);
    }
    auto headers = cors;
    headers.emplace_back("Content-Type", "application/json");
    respond(200, std::move(headers), transports::mux::encode_send_results(results), close);
    return close ? Next::Stop : Next::Continue;
}

} // namespace proxy
