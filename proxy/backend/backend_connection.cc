#include "proxy/backend/backend_connection.h"

#include "proxy/context.h"
#include "proxy/heartbeat.h"

namespace proxy {

using core::Code;
using core::Error;
using core::Side;

namespace {
/// Largest backend response head accepted during the handshake.
constexpr std::size_t kMaxBackendHead = 16 * 1024;
} // namespace

BackendConnection::BackendConnection(Context& context, const config::RouteLimits& limits,
                                     BackendHandler& handler, ws::DecoderHandler& frames)
    : context_(context),
      limits_(limits),
      handler_(handler),
      frames_(frames),
      stream_(std::make_unique<core::TcpStream>(context.loop())),
      decoder_(ws::DecoderOptions{ws::Role::Client, limits.max_message}, *this),
      writer_(ws::Role::Client, &context.masks()) {
    stream_->set_handler(this);
    stream_->set_watermarks(limits.outbound_queue);
}

BackendConnection::~BackendConnection() {
    close(core::TcpStream::CloseMode::Abort);
}

void BackendConnection::start(Target target) {
    key_ = ws::make_key();
    target.request.key = key_;
    offered_ = target.request.protocols;
    const std::string request = ws::build_backend_request(target.request);
    if (target.transform) {
        // wss://: TLS inside the stream; the upgrade request below waits for its handshake, and
        // a failed verification ends the connection during our handshake (→ 502).
        stream_->set_transform(std::move(target.transform));
    }
    timer_ = std::make_unique<core::Timer>(context_.loop(), [this] { on_handshake_timeout(); });
    timer_->start(static_cast<std::uint64_t>(limits_.backend_connect_timeout.count()));
    auto r = stream_->connect(target.ip, target.port, [this, request](core::Result<void> res) {
        if (res) {
            stream_->set_nodelay(true);
            stream_->write(request);
        }
        on_connected(std::move(res));
    });
    if (!r) {
        // Report asynchronously (callbacks never fire synchronously): fail on the next turn.
        start_error_ = r.error();
        timer_->start(0);
    }
}

void BackendConnection::on_connected(core::Result<void> result) {
    if (closed_) {
        return;
    }
    if (!result) {
        fail_handshake(result.error(), 0);
        return;
    }
    connected_ = true;
    parser_ = std::make_unique<http::ResponseParser>(
        http::ParserLimits{kMaxBackendHead, 100, 0});
    timer_->start(static_cast<std::uint64_t>(limits_.backend_handshake_timeout.count()));
    stream_->start_read();
}

void BackendConnection::on_handshake_timeout() {
    if (closed_ || open_) {
        return;
    }
    if (start_error_) {
        fail_handshake(*start_error_, 0);
        return;
    }
    if (!connected_) {
        fail_handshake(Error{Code::BackendTimeout, Side::Backend, "connect timeout"}, 0);
        return;
    }
    fail_handshake(Error{Code::BackendTimeout, Side::Backend, "handshake timeout"}, 0);
}

void BackendConnection::fail_handshake(const Error& error, unsigned status) {
    const http::Response* response = parser_ ? &parser_->response() : nullptr;
    // Keep the parser alive for the callback; the handler usually destroys us afterwards.
    auto parser = std::move(parser_);
    close(core::TcpStream::CloseMode::Abort);
    handler_.on_backend_failed(error, status, status != 0 ? response : nullptr);
}

void BackendConnection::on_read(std::span<std::byte> bytes) {
    last_read_ = context_.loop().now();
    ping_sent_at_ = 0;
    if (!open_) {
        handle_handshake_bytes(bytes);
        return;
    }
    if (!held_.empty() || pause_bits_ != 0) {
        // Older bytes wait to be decoded: keep the order.
        held_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return;
    }
    decode(bytes);
}

void BackendConnection::handle_handshake_bytes(std::span<std::byte> bytes) {
    auto r = parser_->feed(std::span<const char>(reinterpret_cast<const char*>(bytes.data()),
                                                 bytes.size()));
    if (!r) {
        fail_handshake(r.error(), 0);
        return;
    }
    if (!r->complete) {
        return;
    }
    const http::Response& response = parser_->response();
    auto selected = ws::validate_backend_response(response, key_, offered_);
    if (!selected) {
        fail_handshake(selected.error(),
                       selected.error().code == Code::BackendRejected ? response.status : 0);
        return;
    }
    open_ = true;
    timer_.reset();
    last_write_ = last_read_ = context_.loop().now();
    auto parser = std::move(parser_);
    handler_.on_backend_open(*selected, parser->response());
    if (closed_) {
        return;
    }
    // Frames that arrived in the same read as the 101.
    decode(bytes.subspan(r->consumed));
}

void BackendConnection::pause(core::PauseReason reason) noexcept {
    pause_bits_ = static_cast<std::uint8_t>(pause_bits_ | reason);
    stream_->pause(reason);
    decoder_.stop();
}

void BackendConnection::resume(core::PauseReason reason) noexcept {
    pause_bits_ = static_cast<std::uint8_t>(pause_bits_ & ~reason);
    stream_->resume(reason);
    if (pause_bits_ == 0 && !held_.empty() && !closed_) {
        if (!held_timer_) {
            held_timer_ = std::make_unique<core::Timer>(context_.loop(), [this] { decode_held(); });
        }
        held_timer_->start(0);
    }
}

void BackendConnection::decode_held() {
    if (closed_ || pause_bits_ != 0 || held_.empty()) {
        return;
    }
    std::string bytes = std::move(held_);
    held_.clear();
    decode(std::as_writable_bytes(std::span<char>(bytes.data(), bytes.size())));
}

void BackendConnection::decode(std::span<std::byte> bytes) {
    while (!bytes.empty() && !closed_) {
        if (pause_bits_ != 0) {
            // Paused from inside a callback: keep the rest, in order, for after resume().
            held_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            break;
        }
        auto r = decoder_.feed(bytes);
        if (closed_) {
            return;
        }
        if (!r) {
            Error e = r.error();
            e.side = Side::Backend;
            fail(e);
            return;
        }
        if (*r == 0) {
            break;
        }
        bytes = bytes.subspan(*r);
    }
    if (!closed_) {
        flush();
        handler_.on_backend_read_done();
    }
}

void BackendConnection::on_read_end(const Error* error) {
    if (closed_) {
        return;
    }
    if (!open_) {
        fail_handshake(Error{Code::BackendBadHandshake, Side::Backend,
                             error != nullptr ? "connection failed during the handshake: " +
                                                    error->context
                                              : "backend closed during the handshake"},
                       0);
        return;
    }
    if (error != nullptr) {
        Error e = *error;
        e.side = Side::Backend;
        gone(&e);
        return;
    }
    gone(nullptr);
}

void BackendConnection::on_write_high() {
    if (open_ && !closed_) {
        handler_.on_backend_write_high();
    }
}

void BackendConnection::on_write_low() {
    if (open_ && !closed_) {
        handler_.on_backend_write_low();
    }
}

void BackendConnection::on_write_error(const Error& error) {
    if (closed_) {
        return;
    }
    if (!open_) {
        fail_handshake(Error{Code::BackendUnreachable, Side::Backend, error.context}, 0);
        return;
    }
    Error e = error;
    e.side = Side::Backend;
    gone(&e);
}

void BackendConnection::fail(const Error& error) {
    // RFC 6455 §7.1.7: the backend broke the protocol (a bad frame, invalid UTF-8, a message
    // over max_message): it gets a Close with the matching code (1002, 1007, 1009) before its
    // TCP connection ends, unless a frame towards it is half sent (then only an abort can end
    // the connection). The owner's staged frame is dropped if none of it left yet.
    if (writer_.abandon_frame()) {
        writer_.close(ws::close_code_for(error.code), error.context);
        flush();
        close(core::TcpStream::CloseMode::Flush);
    } else {
        close(core::TcpStream::CloseMode::Abort);
    }
    handler_.on_backend_gone(&error);
}

void BackendConnection::gone(const Error* error) {
    close(core::TcpStream::CloseMode::Abort);
    handler_.on_backend_gone(error);
}

void BackendConnection::on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode message) {
    frames_.on_data_frame_begin(header, message);
    if (closed_) {
        decoder_.stop();
    }
}

void BackendConnection::on_data_frame_payload(std::span<const std::byte> bytes) {
    frames_.on_data_frame_payload(bytes);
    if (closed_) {
        decoder_.stop();
    }
}

void BackendConnection::on_data_frame_end(bool message_end) {
    frames_.on_data_frame_end(message_end);
    if (closed_) {
        decoder_.stop();
    }
}

void BackendConnection::on_ping(std::span<const std::byte> payload) {
    // Per hop: answered here, not forwarded (the owner's on_ping never runs).
    writer_.control(ws::Opcode::Pong, payload);
}

void BackendConnection::on_pong(std::span<const std::byte> /*payload*/) {
    // Liveness is tracked from any read (last_read_); not forwarded either.
}

void BackendConnection::on_close(std::uint16_t code, std::string_view reason) {
    frames_.on_close(code, reason);
    decoder_.stop();
}

bool BackendConnection::flush() {
    if (closed_ || !writer_.has_output()) {
        return !closed_;
    }
    const auto out = writer_.output();
    const bool ok = stream_->write(out);
    last_write_ = context_.loop().now();
    writer_.clear();
    return ok;
}

void BackendConnection::send_close(std::uint16_t code, std::string_view reason) {
    if (closed_ || !open_) {
        return;
    }
    writer_.close(code, reason);
    flush();
}

void BackendConnection::heartbeat(std::uint64_t now) {
    if (!open_ || closed_) {
        return;
    }
    if (pause_bits_ != 0) {
        // We stopped reading (the client is slow): the backend's pong waits unread behind the
        // data it already sent, so its silence proves nothing. The pong deadline starts again
        // once reading resumes; keepalive pings still go out.
        last_read_ = now;
        ping_sent_at_ = 0;
    }
    const HeartbeatPlan plan = derive_heartbeat(limits_.backend_idle_timeout);
    if (ping_sent_at_ != 0 && now - ping_sent_at_ >= plan.pong_timeout) {
        Error e{Code::PeerTimeout, Side::Backend, "backend did not answer a ping in time"};
        gone(&e);
        return;
    }
    // Ping when either direction went quiet: writes keep intermediaries alive, reads prove
    // that the backend is.
    const bool idle = now - last_write_ >= plan.ping_after || now - last_read_ >= plan.ping_after;
    if (ping_sent_at_ == 0 && idle && !writer_.mid_frame()) {
        writer_.control(ws::Opcode::Ping, {});
        flush();
        ping_sent_at_ = now;
    }
}

void BackendConnection::close(core::TcpStream::CloseMode mode) {
    if (closed_) {
        return;
    }
    closed_ = true;
    decoder_.stop();
    timer_.reset();
    stream_->close(mode);
}

} // namespace proxy
