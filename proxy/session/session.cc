#include "proxy/session/session.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "proxy/backend/backend_bridge.h"
#include "proxy/core/base64.h"
#include "proxy/core/crypto.h"
#include "proxy/core/log.h"
#include "proxy/heartbeat.h"

namespace proxy {

using core::Code;
using core::Error;
using core::LogLevel;
namespace close_code = ws::close_code;

std::string make_session_id(std::string_view instance) {
    std::array<std::byte, 16> raw{};
    core::random_bytes(raw);
    std::string id;
    if (!instance.empty()) {
        id.append(instance);
        id.push_back('-');
    }
    id.append(core::base64url_encode(raw));
    return id;
}

Session::Session(Context& context, const RouteRuntime& route, std::string id)
    : context_(context),
      snapshot_(route.shared_from_this()),
      route_(*snapshot_),
      limits_(route.route->limits),
      id_(std::move(id)),
      replay_(route.route->limits.replay_buffer, route.route->limits.replay_messages),
      rate_(route.route->limits.rate, context.loop().now()) {
    // Pause before the replay buffer could have to evict an undelivered message: one more
    // message (≤ max_message) may arrive after the pause.
    pause_threshold_ = std::min<std::uint64_t>(limits_.outbound_queue, limits_.replay_buffer / 2);
    pause_messages_ = std::max<std::uint64_t>(1, limits_.replay_messages / 2);
    started_at_ = context_.loop().now();
    context_.add_session(id_, this);
    context_.count_route_session(route_.route->path, +1);
    auto& m = context_.metrics();
    const std::string& path = route_.route->path;
    m.gauge_add("wsbridge_sessions", 1, {{"route", path}});
    msgs_in_cell_ = &m.cell("wsbridge_messages_total",
                            {{"route", path}, {"transport", "session"}, {"direction", "in"}});
    msgs_out_cell_ = &m.cell("wsbridge_messages_total",
                             {{"route", path}, {"transport", "session"}, {"direction", "out"}});
}

Session::~Session() = default;

void Session::start(const http::Request& request, const std::string& client_ip,
                    std::string_view scheme, SessionOpener* opener) {
    opener_ = opener;
    client_ip_ = client_ip;
    // A subprotocol for a session comes from the reserved `protocol` query parameter.
    std::vector<std::string> offered;
    std::string_view query = request.query();
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (param.rfind("protocol=", 0) == 0 && param.size() > 9) {
            offered.emplace_back(param.substr(9));
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query.remove_prefix(amp + 1);
    }
    client_tls_ = scheme == "https";
    backend_ = open_backend(context_, route_, BridgeRequest{request, offered, client_ip, scheme},
                            static_cast<BackendHandler&>(*this),
                            static_cast<ws::DecoderHandler&>(*this));
}

void Session::cancel_opener(SessionOpener* opener) noexcept {
    if (opener_ == opener) {
        opener_ = nullptr;
    }
}

void Session::on_backend_open(std::string_view protocol, const http::Response& /*resp*/) {
    open_ = true;
    protocol_ = std::string(protocol);
    const HeartbeatPlan plan = derive_heartbeat(limits_.backend_idle_timeout);
    tick_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] { on_tick(); });
    tick_timer_->start(plan.tick, plan.tick);
    context_.metrics().inc("wsbridge_sessions_opened_total", {{"route", route_.route->path}});
    if (opener_ != nullptr) {
        SessionOpener* opener = opener_;
        opener_ = nullptr;
        opener->on_session_open();
    }
    if (transport_ == nullptr && !ended_) {
        start_resume_timer();
    }
}

void Session::on_backend_failed(const Error& error, unsigned status,
                                const http::Response* /*response*/) {
    // A backend 4xx/5xx (an auth failure, say) reaches the client; other statuses (200, 3xx)
    // and 426 (which would blame the client's HTTP version) are a bad gateway (SPEC §5: 502).
    unsigned answer = 502;
    if (error.code == Code::BackendRejected && status >= 400 && status <= 599 && status != 426) {
        answer = status;
    } else if (error.code == Code::BackendTimeout) {
        answer = 504;
    }
    SessionOpener* opener = opener_;
    opener_ = nullptr;
    // The opener's answer counts the rejection (wsbridge_rejections_total).
    core::log_limited(LogLevel::Warn, "session_rejected",
              {{"session", id_},
               {"route", route_.route->path},
               {"status", answer},
               {"reason", core::to_string(error.code)},
               {"detail", error.context}});
    close_ = transports::CloseInfo{close_code::kBadGateway, "backend refused the session"};
    end("backend_failed");
    if (opener != nullptr) {
        opener->on_session_failed(error, answer);
    }
}

void Session::on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode message) {
    if (header.opcode != ws::Opcode::Continuation) {
        assembling_.clear();
        assembling_binary_ = message == ws::Opcode::Binary;
    }
    // The decoder already checked the message length against max_message.
    assembling_.reserve(assembling_.size() + static_cast<std::size_t>(header.length));
}

void Session::on_data_frame_payload(std::span<const std::byte> bytes) {
    assembling_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void Session::on_data_frame_end(bool message_end) {
    if (!message_end) {
        return;
    }
    if (close_) {
        // Nothing follows the close: it holds the position after the last message.
        assembling_.clear();
        return;
    }
    const std::size_t size = assembling_.size();
    std::size_t lost = 0;
    std::string payload;
    payload.swap(assembling_);
    (void)replay_.push(assembling_binary_, std::move(payload), &lost);
    ++msgs_out_;
    ++*msgs_out_cell_;
    bytes_out_ += size;
    undelivered_bytes_ += size;
    ++undelivered_messages_;
    // `lost` counts unacknowledged evictions; SSE never acknowledges, so most of those were
    // delivered already. Only an eviction past the delivered position loses anything, and only
    // then is the (linear) recount needed: doing it per message cost SSE half its throughput.
    if (lost != 0 && replay_.first_seq() > delivered_seq_ + 1) {
        // Only reachable when a single message is larger than the room left; the client will
        // get an explicit gap when it asks for these. Recount exactly (rare path).
        undelivered_bytes_ = replay_.bytes_after(delivered_seq_);
        undelivered_messages_ = replay_.messages().size() - replay_.index_after(delivered_seq_);
        context_.metrics().inc("wsbridge_replay_evictions_total", {}, lost);
    }
    update_backpressure();
}

void Session::on_backend_read_done() {
    notify_transport();
}

void Session::on_close(std::uint16_t code, std::string_view reason) {
    // Complete the backend's close handshake, then deliver the close after every message.
    backend_->send_close(code == close_code::kNoStatus ? close_code::kNormal : code, reason);
    backend_->close(core::TcpStream::CloseMode::Flush);
    backend_ended(code, std::string(reason));
}

void Session::on_backend_gone(const Error* error) {
    if (close_) {
        return;
    }
    // Gone without a Close: 1014 (Bad Gateway), 1011 (no pong), 1009 (over max_message) or
    // 1007 (invalid UTF-8, issue 10), exactly as on the WebSocket relay (SPEC §5).
    const auto [code, reason] = backend_loss(error);
    backend_ended(code, std::string(reason));
}

void Session::backend_ended(std::uint16_t code, std::string reason) {
    if (close_) {
        return;
    }
    close_ = transports::CloseInfo{code, std::move(reason)};
    tick_timer_.reset();
    core::log(LogLevel::Info, "session_backend_closed",
              {{"session", id_}, {"code", static_cast<unsigned>(code)}, {"reason", close_->reason}});
    notify_transport();
    if (transport_ == nullptr && !ended_) {
        start_resume_timer();
    }
}

void Session::on_backend_write_low() {
    if (transport_ != nullptr) {
        transport_->on_backend_writable();
    }
}

void Session::notify_transport() {
    if (transport_ != nullptr) {
        transport_->on_messages();
    }
}

void Session::delivered(std::uint64_t seq) {
    seq = std::min(seq, replay_.last_seq());
    if (seq <= delivered_seq_) {
        return;
    }
    // Subtract what became delivered; evicted messages were accounted for at eviction.
    const auto& stored = replay_.messages();
    for (std::size_t i = replay_.index_after(delivered_seq_);
         i < stored.size() && stored[i].seq <= seq; ++i) {
        undelivered_bytes_ -= std::min<std::uint64_t>(undelivered_bytes_, stored[i].payload.size());
        undelivered_messages_ -= std::min<std::uint64_t>(undelivered_messages_, 1);
    }
    delivered_seq_ = seq;
    update_backpressure();
}

void Session::acknowledged(std::uint64_t seq) {
    delivered(seq);  // first: it reads the sizes of the messages ack() drops
    replay_.ack(seq);
}

void Session::set_transport_full(bool full) {
    transport_full_ = full;
    update_backpressure();
}

void Session::update_backpressure() {
    if (!backend_ || !open_) {
        return;
    }
    const bool want_pause = transport_full_ || undelivered_bytes_ > pause_threshold_ ||
                            undelivered_messages_ >= pause_messages_;
    const bool may_resume = !transport_full_ && undelivered_bytes_ <= pause_threshold_ / 2 &&
                            undelivered_messages_ <= pause_messages_ / 2;
    if (!paused_ && want_pause) {
        paused_ = true;
        // Takes effect inside the current read: the rest of it waits in the backend
        // connection, so nothing undelivered is ever evicted by a burst.
        backend_->pause(core::kPausePeerQueueFull);
        context_.metrics().inc("wsbridge_backend_pauses_total", {{"transport", "session"}});
    } else if (paused_ && may_resume) {
        paused_ = false;
        backend_->resume(core::kPausePeerQueueFull);
    }
}

void Session::attach(transports::Transport& transport) {
    if (transport_ != nullptr && transport_ != &transport) {
        transports::Transport* old = transport_;
        transport_ = nullptr;
        old->on_replaced();
    }
    transport_ = &transport;
    transport_full_ = false;
    if (!close_) {
        // A closed session's window runs from its close (or from the detach of the client that
        // was attached then); a poll or a resume does not extend it.
        resume_timer_.reset();
    }
    update_backpressure();
}

void Session::detach(transports::Transport& transport) {
    if (transport_ != &transport) {
        return;
    }
    transport_ = nullptr;
    transport_full_ = false;
    update_backpressure();
    if (!ended_ && (!close_ || !resume_timer_)) {
        start_resume_timer();
    }
}

void Session::start_resume_timer() {
    resume_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] {
        end(close_ ? "closed" : "resume_window_expired");
    });
    resume_timer_->start(static_cast<std::uint64_t>(limits_.resume_window.count()));
}

void Session::on_tick() {
    if (backend_ && open_) {
        backend_->heartbeat(context_.loop().now());
    }
}

SendOutcome Session::send(std::uint64_t first_seq, std::vector<ClientMessage>& messages) {
    SendOutcome out;
    out.expected_seq = next_client_seq_;
    // A closed session refuses every POST the same way, whatever its seq (issue 10).
    if (close_ || !open_ || !backend_->open()) {
        out.kind = SendOutcome::Kind::Closed;
        return out;
    }
    if (first_seq > next_client_seq_) {
        out.kind = SendOutcome::Kind::SeqGap;
        return out;
    }
    // Only messages not sent before count against the rate; a retry costs nothing.
    const std::uint64_t skip = next_client_seq_ - first_seq;
    const std::uint64_t fresh = messages.size() > skip ? messages.size() - skip : 0;
    const config::Rate& rate = limits_.rate;
    if (fresh > rate.burst) {
        // The bucket never holds more than `burst` tokens, so such a batch could never pass
        // within the rate; accepting it would let one POST exceed the rate without bound.
        out.kind = SendOutcome::Kind::OverBurst;
        return out;
    }
    if (backend_->queued_bytes() > limits_.outbound_queue) {
        out.kind = SendOutcome::Kind::Busy;
        return out;
    }
    const std::uint64_t now = context_.loop().now();
    if (fresh > 0 && !rate_.take(now, fresh)) {
        out.kind = SendOutcome::Kind::RateLimited;
        // When the bucket holds all `fresh` tokens: the first one after wait_ms(), each
        // further one 1/rate later (an upper bound when it holds one already). Whole seconds,
        // rounded up and at least 1 (issue 10: `Retry-After: 0` made obedient clients retry a
        // batch hundreds of times a second).
        const auto more_ms = static_cast<std::uint64_t>(std::min(
            1e12, std::ceil(static_cast<double>(fresh - 1) * 1000.0 / rate.messages_per_second)));
        const std::uint64_t wait_ms = rate_.wait_ms(now) + more_ms;
        out.retry_after_s = std::max<std::uint64_t>(1, (wait_ms + 999) / 1000);
        return out;
    }
    std::uint64_t seq = first_seq;
    for (auto& m : messages) {
        if (seq == next_client_seq_) {
            auto& w = backend_->writer();
            w.begin_frame(true, m.binary ? ws::Opcode::Binary : ws::Opcode::Text,
                          m.payload.size());
            w.payload(std::as_bytes(std::span<const char>(m.payload.data(), m.payload.size())));
            ++next_client_seq_;
            ++out.forwarded;
            ++msgs_in_;
            ++*msgs_in_cell_;
            bytes_in_ += m.payload.size();
        }
        ++seq;
    }
    backend_->flush();
    out.expected_seq = next_client_seq_;
    return out;
}

void Session::close_by_client(std::uint16_t code, std::string_view reason) {
    if (!open_) {
        // Not open yet: nobody can have learned the id; nothing to keep.
        if (!close_) {
            close_ = transports::CloseInfo{code, std::string(reason)};
        }
        end("client_closed");
        return;
    }
    if (client_closed_) {
        return;  // a repeated DELETE
    }
    client_closed_ = true;
    const bool was_closed = close_.has_value();
    if (!was_closed) {
        if (backend_ && backend_->open()) {
            backend_->send_close(code, reason);
        }
        close_ = transports::CloseInfo{code, std::string(reason)};
    }
    tick_timer_.reset();
    if (backend_) {
        backend_->close(core::TcpStream::CloseMode::Flush);
    }
    // The attached stream or poll gets the close and ends.
    if (transport_ != nullptr) {
        transports::Transport* t = transport_;
        transport_ = nullptr;
        t->on_session_gone();
    }
    // Counted and logged as closed now; the closed session stays findable for resume_window
    // (from now, or from the backend's earlier close) so that EventSource reconnects get 204,
    // POSTs session_closed and polls the close, exactly as after a backend close, instead of
    // a reset and a brand-new backend connection (issue 10). It still counts against
    // max_sessions until then, which bounds what closed sessions hold.
    finish(was_closed ? "closed" : "client_closed");
    if (!was_closed || !resume_timer_) {
        start_resume_timer();
    }
}

void Session::shutdown(bool going_away) {
    if (going_away && backend_ && backend_->open() && !close_) {
        backend_->send_close(close_code::kGoingAway, "proxy shutting down");
    }
    if (!close_) {
        close_ = transports::CloseInfo{close_code::kGoingAway, "proxy shutting down"};
    }
    end("shutdown");
}

void Session::end(std::string_view why) {
    if (ended_) {
        return;
    }
    ended_ = true;
    context_.remove_session(id_);
    context_.count_route_session(route_.route->path, -1);
    resume_timer_.reset();
    tick_timer_.reset();
    if (transport_ != nullptr) {
        transports::Transport* t = transport_;
        transport_ = nullptr;
        t->on_session_gone();
    }
    if (backend_) {
        if (backend_->open() && !close_) {
            backend_->send_close(close_code::kGoingAway, "session expired");
        }
        backend_->close(core::TcpStream::CloseMode::Flush);
    }
    finish(why);
    context_.retire(*this);
}

void Session::finish(std::string_view why) {
    if (finished_) {
        return;
    }
    finished_ = true;
    core::log(LogLevel::Info, "session_closed",
              {{"session", id_},
               {"route", route_.route->path},
               {"client", client_ip_},
               {"tls", client_tls_},
               {"duration_ms", context_.loop().now() - started_at_},
               {"msgs_in", msgs_in_},
               {"bytes_in", bytes_in_},
               {"msgs_out", msgs_out_},
               {"bytes_out", bytes_out_},
               {"code", static_cast<unsigned>(close_ ? close_->code : close_code::kGoingAway)},
               {"reason", why}});
    auto& m = context_.metrics();
    // Messages were counted as they passed (msgs_in_cell_, msgs_out_cell_).
    const std::string& path = route_.route->path;
    m.inc("wsbridge_bytes_total", {{"route", path}, {"transport", "session"}, {"direction", "in"}},
          bytes_in_);
    m.inc("wsbridge_bytes_total", {{"route", path}, {"transport", "session"}, {"direction", "out"}},
          bytes_out_);
    m.inc("wsbridge_sessions_closed_total", {{"route", path}, {"reason", why}});
    m.gauge_add("wsbridge_sessions", -1, {{"route", path}});
}

} // namespace proxy
