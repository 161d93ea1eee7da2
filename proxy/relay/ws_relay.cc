#include "proxy/relay/ws_relay.h"

#include "proxy/backend/backend_bridge.h"
#include "proxy/core/log.h"
#include "proxy/heartbeat.h"
#include "proxy/http/response.h"

namespace proxy {

using core::Code;
using core::Error;
using core::LogLevel;
using core::Side;
using CloseMode = core::TcpStream::CloseMode;
namespace close_code = ws::close_code;

namespace {

/// Client data goes to the backend only while it is open and not sent a Close yet.
bool client_can_send(bool backend_open, bool close_sent) {
    return backend_open && !close_sent;
}

} // namespace

WsRelay::WsRelay(Context& context, const RouteRuntime& route,
                 std::unique_ptr<core::TcpStream> client, ClientSlot slot,
                 const http::Request& /*request*/, ws::ClientHandshake handshake,
                 std::string pending)
    : context_(context),
      snapshot_(route.shared_from_this()),
      route_(*snapshot_),
      limits_(route.route->limits),
      client_(std::move(client)),
      slot_(std::move(slot)),
      handshake_(std::move(handshake)),
      pending_(std::move(pending)),
      decoder_(ws::DecoderOptions{ws::Role::Server, route.route->limits.max_message}, *this),
      client_writer_(ws::Role::Server, nullptr),
      rate_(route.route->limits.rate, context.loop().now()) {
    client_address_ = client_->peer_address();
    client_->set_handler(this);
    client_->set_watermarks(limits_.outbound_queue);
    client_->pause(core::kPauseHandshake);
    started_at_ = context_.loop().now();
    const std::string& path = route.route->path;
    auto& m = context_.metrics();
    m.gauge_add("wsbridge_connections", 1, {{"route", path}, {"transport", "websocket"}});
    msgs_in_cell_ = &m.cell("wsbridge_messages_total",
                            {{"route", path}, {"transport", "websocket"}, {"direction", "in"}});
    msgs_out_cell_ = &m.cell("wsbridge_messages_total",
                             {{"route", path}, {"transport", "websocket"}, {"direction", "out"}});
}

WsRelay::~WsRelay() = default;

void WsRelay::start(const http::Request& request, std::string_view scheme) {
    client_tls_ = scheme == "https";
    backend_ = open_backend(context_, route_,
                            BridgeRequest{request, handshake_.protocols, slot_.ip(), scheme},
                            static_cast<BackendHandler&>(*this), backend_frames_);
}

// ---- backend handshake -----------------------------------------------------------------

void WsRelay::on_backend_open(std::string_view protocol, const http::Response& response) {
    std::vector<std::string> cookies;
    for (const auto& h : response.headers) {
        if (http::iequals(h.name, "Set-Cookie")) {
            cookies.push_back(h.value);
        }
    }
    client_->write(ws::build_client_101(handshake_.key, protocol, cookies));
    handshake_ = ws::ClientHandshake{};  // not needed any more; idle relays stay small
    phase_ = Phase::Open;
    const std::uint64_t now = context_.loop().now();
    last_client_read_ = last_client_write_ = now;
    const HeartbeatPlan client_plan = derive_heartbeat(limits_.idle_timeout);
    const HeartbeatPlan backend_plan = derive_heartbeat(limits_.backend_idle_timeout);
    // The tick also checks message_timeout, to a quarter of its length.
    const std::uint64_t message_tick =
        std::max<std::uint64_t>(1, static_cast<std::uint64_t>(limits_.message_timeout.count()) / 4);
    const std::uint64_t tick = std::min({client_plan.tick, backend_plan.tick, message_tick});
    tick_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] { on_tick(); });
    tick_timer_->start(tick, tick);
    context_.metrics().inc("wsbridge_upgrades_total", {{"result", "accepted"}});
    if (!pending_.empty()) {
        std::string held = std::move(pending_);
        pending_.clear();
        process_client_bytes(std::as_writable_bytes(std::span<char>(held.data(), held.size())));
        if (phase_ == Phase::Done) {
            return;
        }
    }
    client_->resume(core::kPauseHandshake);
    client_->start_read();
}

void WsRelay::on_backend_failed(const Error& error, unsigned status,
                                const http::Response* response) {
    std::string out;
    unsigned answered = 502;
    if (error.code == Code::BackendRejected && status >= 200 && status != 101) {
        // The backend's status goes back to the client, its body is dropped (SPEC §2).
        answered = status;
        std::vector<std::pair<std::string, std::string>> headers;
        if (response != nullptr) {
            for (const auto& h : response->headers) {
                if (http::iequals(h.name, "WWW-Authenticate") ||
                    http::iequals(h.name, "Retry-After") ||
                    http::iequals(h.name, "Sec-WebSocket-Version") ||
                    http::iequals(h.name, "Set-Cookie")) {
                    headers.emplace_back(h.name, h.value);
                }
            }
        }
        out = http::build_response(status, headers, {}, true);
    } else if (error.code == Code::BackendTimeout) {
        answered = 504;
        out = http::json_error(504, "backend_timeout",
                               "The backend did not complete the WebSocket handshake in time.",
                               true);
    } else {
        out = http::json_error(502, "bad_gateway",
                               error.code == Code::BackendUnreachable
                                   ? "The backend could not be reached."
                                   : "The backend answered the WebSocket handshake invalidly.",
                               true);
    }
    client_->write(out);
    core::log_limited(LogLevel::Warn, "ws_rejected",
              {{"client", client_address_},
               {"route", route_.route->path},
               {"status", answered},
               {"reason", core::to_string(error.code)},
               {"detail", error.context}});
    context_.metrics().inc("wsbridge_upgrades_total", {{"result", "rejected"}});
    context_.metrics().inc("wsbridge_rejections_total",
                           {{"transport", "websocket"},
                            {"reason", core::to_string(error.code)},
                            {"status", std::to_string(answered)}});
    closed_by_ = "backend";
    phase_ = Phase::Done;
    finished_ = true;
    client_->close(CloseMode::Flush);
    context_.metrics().gauge_add("wsbridge_connections", -1,
                                 {{"route", route_.route->path}, {"transport", "websocket"}});
    slot_.release();
    tick_timer_.reset();
    context_.retire(*this);
}

// ---- client → backend ----------------------------------------------------------------------

void WsRelay::on_read(std::span<std::byte> bytes) {
    process_client_bytes(bytes);
}

void WsRelay::process_client_bytes(std::span<std::byte> bytes) {
    const std::uint64_t now = context_.loop().now();
    last_client_read_ = now;
    client_ping_sent_at_ = 0;
    while (!bytes.empty() && phase_ == Phase::Open) {
        auto r = decoder_.feed(bytes);
        if (phase_ != Phase::Open) {
            return;
        }
        if (!r) {
            // The frame that failed may be staged for the backend already (the valid bytes
            // before a bad one): drop it while nothing of it has left, so no invalid byte
            // reaches the backend and its Close can follow at once (issue 10).
            backend_->writer().abandon_frame();
            flush_all();
            fail_client(r.error());
            return;
        }
        if (rate_exceeded_) {
            flush_all();
            fail_client(Error{Code::PolicyViolation, Side::Client, "message rate exceeded"});
            return;
        }
        if (*r == 0) {
            break;
        }
        bytes = bytes.subspan(*r);
    }
    // Slow-drip clock (message_timeout): runs from the read that left a frame or message
    // incomplete until it completes.
    if (!decoder_.mid_message()) {
        message_started_at_ = 0;
    } else if (message_started_at_ == 0) {
        message_started_at_ = now;
    }
    flush_all();
}

void WsRelay::on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode /*message*/) {
    if (header.opcode != ws::Opcode::Continuation && !rate_.take(context_.loop().now())) {
        // Over the route's message rate (SPEC §5): this message is not relayed; close 1008.
        decoder_.stop();
        rate_exceeded_ = true;
        return;
    }
    in_data_message_ = true;
    if (client_can_send(backend_->open(), backend_close_sent_)) {
        backend_->writer().begin_frame(header.fin, header.opcode, header.length);
    }
}

void WsRelay::on_data_frame_payload(std::span<const std::byte> bytes) {
    if (rate_exceeded_) {
        return;
    }
    bytes_in_ += bytes.size();
    if (client_can_send(backend_->open(), backend_close_sent_)) {
        backend_->writer().payload(bytes);
    }
}

void WsRelay::on_data_frame_end(bool message_end) {
    if (!message_end) {
        return;
    }
    in_data_message_ = false;
    message_started_at_ = 0;
    ++msgs_in_;
    ++*msgs_in_cell_;
}

void WsRelay::on_ping(std::span<const std::byte> payload) {
    if (!in_data_message_) {
        message_started_at_ = 0;
    }
    if (!client_close_sent_) {
        client_writer_.control(ws::Opcode::Pong, payload);
    }
}

void WsRelay::on_pong(std::span<const std::byte> /*payload*/) {
    // Any read proves liveness (last_client_read_).
    if (!in_data_message_) {
        message_started_at_ = 0;
    }
}

void WsRelay::on_close(std::uint16_t code, std::string_view reason) {
    client_close_received_ = true;
    client_close_code_ = code;
    client_close_reason_ = std::string(reason);
    decoder_.stop();
    if (closed_by_.empty()) {
        closed_by_ = "client";
    }
    if (client_close_sent_) {
        // The client answered the backend's close: complete the backend's handshake too.
        if (!backend_close_sent_ && backend_->open()) {
            backend_->writer().close(code, reason);
            backend_close_sent_ = true;
        }
        flush_all();
        maybe_finish_handshakes();
        return;
    }
    // Client-initiated: relay to the backend and wait for its answer.
    if (backend_->open() && !backend_close_sent_) {
        backend_->writer().close(code, reason);
        backend_close_sent_ = true;
        backend_->flush();
        close_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] {
            on_close_timeout();
        });
        close_timer_->start(static_cast<std::uint64_t>(limits_.close_timeout.count()));
        return;
    }
    // No backend to ask: echo the client's close ourselves.
    client_writer_.close(code, reason);
    client_close_sent_ = true;
    maybe_finish_handshakes();
}

// ---- backend → client ----------------------------------------------------------------------

void WsRelay::on_backend_frame_begin(const ws::FrameHeader& header) {
    if (!client_close_sent_ && !slow_closing_) {
        client_writer_.begin_frame(header.fin, header.opcode, header.length);
    }
}

void WsRelay::on_backend_frame_payload(std::span<const std::byte> bytes) {
    if (!client_close_sent_ && (!slow_closing_ || client_writer_.mid_frame())) {
        bytes_out_ += bytes.size();
        client_writer_.payload(bytes);
    }
}

void WsRelay::on_backend_frame_end(bool message_end) {
    if (slow_closing_) {
        if (!client_writer_.mid_frame()) {
            client_->write(client_writer_.output());
            client_writer_.clear();
            send_slow_consumer_close();
        }
        return;
    }
    if (message_end) {
        ++msgs_out_;
        ++*msgs_out_cell_;
    }
    // Output is flushed once per backend read (on_backend_read_done); large reads are
    // flushed early so the staging buffer stays near one read chunk.
    if (client_writer_.output().size() >= 16 * 1024) {
        flush_client();
    }
}

void WsRelay::on_backend_read_done() {
    if (phase_ == Phase::Open) {
        flush_client();
    }
}

void WsRelay::on_backend_close(std::uint16_t code, std::string_view reason) {
    backend_close_received_ = true;
    backend_close_code_ = code;
    backend_close_reason_ = std::string(reason);
    if (failing_code_ != 0) {
        // The backend answered the Close we sent for the client's violation.
        end_failed_client();
        return;
    }
    if (closed_by_.empty()) {
        closed_by_ = "backend";
    }
    if (!client_close_sent_) {
        client_writer_.close(code, reason);
        client_close_sent_ = true;
    }
    flush_client();
    if (!client_close_received_) {
        // Backend-initiated: wait for the client's answer.
        close_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] {
            on_close_timeout();
        });
        close_timer_->start(static_cast<std::uint64_t>(limits_.close_timeout.count()));
        return;
    }
    maybe_finish_handshakes();
}

void WsRelay::on_backend_gone(const Error* error) {
    if (phase_ != Phase::Open) {
        return;
    }
    // A backend frame may be staged for the client but not complete (invalid UTF-8 in it, or
    // the backend died inside it): drop it while nothing of it has left, so no invalid byte
    // reaches the client and the Close below can be sent (issue 10).
    client_writer_.abandon_frame();
    if (failing_code_ != 0) {
        end_failed_client();
        return;
    }
    if (backend_close_received_ || client_close_received_) {
        // Closing already: complete what the client is owed and end.
        if (client_close_received_ && !client_close_sent_) {
            client_writer_.close(client_close_code_, client_close_reason_);
            client_close_sent_ = true;
        }
        flush_client();
        finish(client_close_code_ != 0 ? client_close_code_ : backend_close_code_,
               client_close_code_ != 0 ? client_close_reason_ : backend_close_reason_,
               closed_by_);
        return;
    }
    // Gone without a Close frame or broken (→ 1014, SPEC §5 "1014 after 101"), dead
    // (PeerTimeout → 1011) or over max_message (→ 1009, SPEC §5): one mapping with sessions.
    const auto [code, reason] = backend_loss(error);
    if (!client_writer_.mid_frame() && !client_close_sent_) {
        client_writer_.close(code, reason);
        client_close_sent_ = true;
    }
    flush_client();
    core::log(LogLevel::Warn, "backend_failed",
              {{"client", client_address_},
               {"route", route_.route->path},
               {"reason", error != nullptr ? core::to_string(error->code) : "eof"},
               {"detail", error != nullptr ? error->context : "eof"}});
    finish(code, reason, "backend");
}

void WsRelay::on_backend_write_high() {
    client_->pause(core::kPausePeerQueueFull);
    client_paused_by_backend_queue_ = true;
}

void WsRelay::on_backend_write_low() {
    client_->resume(core::kPausePeerQueueFull);
    client_paused_by_backend_queue_ = false;
}

// ---- client stream -------------------------------------------------------------------------

void WsRelay::on_write_high() {
    if (backend_ && backend_->open() && !slow_closing_) {
        backend_->pause(core::kPausePeerQueueFull);
        backend_paused_by_client_queue_ = true;
    }
}

void WsRelay::on_write_low() {
    if (backend_ && backend_paused_by_client_queue_) {
        backend_->resume(core::kPausePeerQueueFull);
        backend_paused_by_client_queue_ = false;
    }
}

void WsRelay::on_write_error(const Error& error) {
    client_gone(error.context);
}

void WsRelay::on_read_end(const Error* error) {
    client_gone(error != nullptr ? error->context : "eof");
}

void WsRelay::client_gone(std::string_view why) {
    if (phase_ == Phase::Done) {
        return;
    }
    if (phase_ == Phase::Connecting) {
        phase_ = Phase::Done;
        finish(close_code::kAbnormal, "client went away during the handshake", "client");
        return;
    }
    if (client_close_sent_ && !client_close_received_ && backend_close_received_) {
        // We relayed the backend's close; the client left without answering. Answer the
        // backend with its own code so its handshake completes.
        if (!backend_close_sent_ && backend_->open()) {
            backend_->writer().close(backend_close_code_, backend_close_reason_);
            backend_close_sent_ = true;
            backend_->flush();
        }
        finish(backend_close_code_, backend_close_reason_, closed_by_);
        return;
    }
    if (!backend_close_sent_ && backend_->open() && !backend_->mid_frame()) {
        backend_->send_close(close_code::kGoingAway, "client went away");
        backend_close_sent_ = true;
    }
    core::log(LogLevel::Debug, "client_gone", {{"client", client_address_}, {"detail", why}});
    finish(close_code::kAbnormal, "client closed the connection", "client");
}

void WsRelay::fail_client(const Error& error) {
    if (failing_code_ != 0 || phase_ != Phase::Open) {
        return;
    }
    const std::uint16_t code = ws::close_code_for(error.code);
    core::log_limited(LogLevel::Info, "ws_client_error",
              {{"client", client_address_},
               {"route", route_.route->path},
               {"code", static_cast<unsigned>(code)},
               {"reason", core::to_string(error.code)},
               {"detail", error.context}});
    context_.metrics().inc("wsbridge_protocol_errors_total",
                           {{"side", "client"}, {"reason", core::to_string(error.code)}});
    closed_by_ = "proxy";
    failing_code_ = code;
    failing_reason_ = error.context;
    // Nothing more is read from a client that broke the protocol.
    client_->pause(core::kPauseClosing);
    const bool backend_usable = backend_->open() && !backend_close_sent_ &&
                                !backend_close_received_ && !client_close_sent_;
    if (backend_usable && backend_->writer().abandon_frame()) {
        // Fail the backend side first and keep relaying what it sends before its Close
        // answer (the replies to the client's earlier, valid messages), bounded by
        // close_timeout; then the client gets the violation's code (issue 10).
        backend_->send_close(code, "client protocol error");
        backend_close_sent_ = true;
        close_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] {
            end_failed_client();
        });
        close_timer_->start(static_cast<std::uint64_t>(limits_.close_timeout.count()));
        return;
    }
    if (backend_->open() && !backend_close_sent_) {
        // Mid-frame towards the backend with part of the frame sent: only an abort ends it.
        backend_->close(CloseMode::Abort);
        backend_close_sent_ = true;
    }
    end_failed_client();
}

void WsRelay::end_failed_client() {
    if (phase_ != Phase::Open) {
        return;
    }
    if (!client_writer_.mid_frame() && !client_close_sent_) {
        client_writer_.close(failing_code_, failing_reason_);
        client_close_sent_ = true;
    }
    flush_client();
    finish(failing_code_, failing_reason_, "proxy");
}

// ---- timers --------------------------------------------------------------------------------

void WsRelay::on_tick() {
    if (phase_ != Phase::Open || failing_code_ != 0) {
        return;  // failing the client: only the close timer runs
    }
    const std::uint64_t now = context_.loop().now();
    const HeartbeatPlan plan = derive_heartbeat(limits_.idle_timeout);
    if (client_paused_by_backend_queue_) {
        // We stopped reading the client (the backend is slow): its pong waits unread behind
        // the data it already sent, so its silence proves nothing. The pong deadline starts
        // again once reading resumes; keepalive pings still go out.
        last_client_read_ = now;
        client_ping_sent_at_ = 0;
        // Nor does a message that we stopped reading count as a slow drip.
        if (message_started_at_ != 0) {
            message_started_at_ = now;
        }
    }
    // Slow consumer (SPEC §5): its queue passed outbound_queue and the backend is paused.
    // A client that drains nothing more for idle_timeout / 2 is closed with 1008.
    if (stall_.stalled(backend_paused_by_client_queue_ && !client_close_sent_,
                       client_->queued_bytes(), now, plan.pong_timeout)) {
        close_slow_consumer();
        return;
    }
    if (message_started_at_ != 0 && !client_close_received_ &&
        now - message_started_at_ >= static_cast<std::uint64_t>(limits_.message_timeout.count())) {
        context_.metrics().inc("wsbridge_closes_total",
                               {{"side", "client"}, {"reason", "message_timeout"}});
        fail_client(Error{Code::PolicyViolation, Side::Client,
                          "message not complete within message_timeout"});
        return;
    }
    if (client_ping_sent_at_ != 0 && now - client_ping_sent_at_ >= plan.pong_timeout) {
        core::log(LogLevel::Info, "ws_client_timeout",
                  {{"client", client_address_}, {"route", route_.route->path}});
        context_.metrics().inc("wsbridge_closes_total",
                               {{"side", "client"}, {"reason", "pong_timeout"}});
        if (!backend_close_sent_ && backend_->open() && !backend_->mid_frame()) {
            backend_->send_close(close_code::kGoingAway, "client timed out");
            backend_close_sent_ = true;
        }
        client_->close(CloseMode::Abort);
        finish(close_code::kAbnormal, "client did not answer a ping in time", "proxy");
        return;
    }
    const bool idle = now - last_client_write_ >= plan.ping_after ||
                      now - last_client_read_ >= plan.ping_after;
    if (client_ping_sent_at_ == 0 && idle && !client_writer_.mid_frame() && !client_close_sent_) {
        client_writer_.control(ws::Opcode::Ping, {});
        flush_client();
        client_ping_sent_at_ = now;
    }
    backend_->heartbeat(now);
}

void WsRelay::close_slow_consumer() {
    if (slow_closing_ || finished_) {
        return;
    }
    core::log_limited(LogLevel::Info, "ws_slow_consumer",
                      {{"client", client_address_},
                       {"route", route_.route->path},
                       {"queued", client_->queued_bytes()}});
    context_.metrics().inc("wsbridge_closes_total",
                           {{"side", "client"}, {"reason", "slow_consumer"}});
    closed_by_ = "proxy";
    // SPEC §5: close 1008; the backend is told that its client went away.
    if (backend_ && backend_->open() && !backend_close_sent_ && !backend_->mid_frame()) {
        backend_->send_close(close_code::kGoingAway, "client too slow");
        backend_close_sent_ = true;
    }
    if (!client_close_sent_ && client_writer_.mid_frame() && backend_ && backend_->open()) {
        // A backend frame is half relayed: read just the rest of it (at most max_message), so
        // that the Close can follow it (on_backend_frame_end), bounded by close_timeout.
        slow_closing_ = true;
        backend_->resume(core::kPausePeerQueueFull);
        backend_paused_by_client_queue_ = false;
        close_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] {
            finish(close_code::kPolicyViolation, "slow consumer", "proxy");
        });
        close_timer_->start(static_cast<std::uint64_t>(limits_.close_timeout.count()));
        return;
    }
    send_slow_consumer_close();
}

void WsRelay::send_slow_consumer_close() {
    // The frame goes behind what is queued, so a client that catches up still learns why.
    if (!client_close_sent_ && !client_writer_.mid_frame()) {
        client_writer_.close(close_code::kPolicyViolation, "slow consumer");
        client_close_sent_ = true;
        client_->write(client_writer_.output());
        client_writer_.clear();
    }
    finish(close_code::kPolicyViolation, "slow consumer", "proxy");
}

void WsRelay::on_close_timeout() {
    if (phase_ != Phase::Open) {
        return;
    }
    if (backend_close_sent_ && !backend_close_received_ && client_close_received_) {
        // The backend never answered the client's close: answer it ourselves.
        if (!client_close_sent_) {
            client_writer_.close(client_close_code_, client_close_reason_);
            client_close_sent_ = true;
            flush_client();
        }
        finish(client_close_code_, client_close_reason_, closed_by_);
        return;
    }
    if (client_close_sent_ && !client_close_received_) {
        // The client never answered the backend's close.
        if (!backend_close_sent_ && backend_->open()) {
            backend_->writer().close(backend_close_code_, backend_close_reason_);
            backend_close_sent_ = true;
            backend_->flush();
        }
        finish(backend_close_code_, backend_close_reason_, closed_by_);
        return;
    }
    finish(close_code::kAbnormal, "close handshake timed out", closed_by_);
}

void WsRelay::maybe_finish_handshakes() {
    const bool client_done = client_close_sent_ && client_close_received_;
    const bool backend_done = backend_close_received_ || !backend_->open();
    if (client_done && backend_done) {
        // Log the initiator's code and reason, not the answer's.
        const bool by_backend = closed_by_ == "backend" && backend_close_received_;
        finish(by_backend ? backend_close_code_ : client_close_code_,
               by_backend ? backend_close_reason_ : client_close_reason_, closed_by_);
    }
}

// ---- output and the end --------------------------------------------------------------------

void WsRelay::flush_client() {
    if (!client_writer_.has_output()) {
        return;
    }
    client_->write(client_writer_.output());
    client_writer_.clear();
    last_client_write_ = context_.loop().now();
    // Slow consumer, hard cap: the queue can only pass twice its watermark if the backend kept
    // sending while paused (control frames, a read already in progress) or the client made
    // us answer (pongs). The other rule (no drain while paused) is checked on the tick.
    if (client_->queued_bytes() > 2 * limits_.outbound_queue + 64 * 1024 && !slow_closing_) {
        close_slow_consumer();
    }
}

void WsRelay::flush_all() {
    if (backend_ && phase_ == Phase::Open) {
        backend_->flush();
    }
    if (phase_ == Phase::Open) {
        flush_client();
    }
}

void WsRelay::shutdown(bool going_away) {
    if (phase_ == Phase::Done) {
        return;
    }
    if (phase_ == Phase::Connecting) {
        client_->write(http::json_error(503, "draining", "The proxy is shutting down.", true));
        phase_ = Phase::Done;
        finish(close_code::kGoingAway, "proxy shutting down", "proxy");
        return;
    }
    if (going_away) {
        if (!client_close_sent_ && !client_writer_.mid_frame()) {
            client_writer_.close(close_code::kGoingAway, "proxy shutting down");
            client_close_sent_ = true;
        }
        if (!backend_close_sent_ && backend_->open() && !backend_->mid_frame()) {
            backend_->writer().close(close_code::kGoingAway, "proxy shutting down");
            backend_close_sent_ = true;
        }
        flush_all();
    }
    finish(close_code::kGoingAway, "proxy shutting down", "proxy");
}

void WsRelay::finish(std::uint16_t code, std::string_view reason, std::string_view by) {
    if (finished_) {
        return;
    }
    finished_ = true;
    const bool was_open = phase_ == Phase::Open;
    phase_ = Phase::Done;
    tick_timer_.reset();
    close_timer_.reset();
    client_->close(CloseMode::Flush);
    if (backend_) {
        backend_->close(CloseMode::Flush);
    }
    const std::uint64_t duration = context_.loop().now() - started_at_;
    core::log(LogLevel::Info, "ws_closed",
              {{"client", client_address_},
               {"route", route_.route->path},
               {"tls", client_tls_},
               {"duration_ms", duration},
               {"msgs_in", msgs_in_},
               {"bytes_in", bytes_in_},
               {"msgs_out", msgs_out_},
               {"bytes_out", bytes_out_},
               {"code", static_cast<unsigned>(code)},
               {"reason", reason},
               {"by", by.empty() ? std::string_view("proxy") : by}});
    auto& m = context_.metrics();
    if (was_open) {
        // Messages were counted as they passed (msgs_in_cell_, msgs_out_cell_).
        const std::string& path = route_.route->path;
        m.inc("wsbridge_bytes_total",
              {{"route", path}, {"transport", "websocket"}, {"direction", "in"}}, bytes_in_);
        m.inc("wsbridge_bytes_total",
              {{"route", path}, {"transport", "websocket"}, {"direction", "out"}}, bytes_out_);
    }
    m.inc("wsbridge_ws_closes_total", {{"code", std::to_string(code)},
                                       {"by", by.empty() ? std::string_view("proxy") : by}});
    m.gauge_add("wsbridge_connections", -1,
                {{"route", route_.route->path}, {"transport", "websocket"}});
    slot_.release();
    context_.retire(*this);
}

} // namespace proxy
