#include "transports/ws_session/ws_session_transport.h"

#include <algorithm>

namespace transports::ws_session {

using proxy::core::TcpStream;
namespace close_code = proxy::ws::close_code;
namespace ws = proxy::ws;

namespace {
/// Staged bytes written before the next message is framed (the relay's flush size).
constexpr std::size_t kWriteBatch = 64 * 1024;

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

/// A Close reason fits 123 bytes; cut at a code point boundary.
std::string_view close_reason(std::string_view reason) {
    if (reason.size() <= 123) {
        return reason;
    }
    std::size_t n = 123;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) {
        --n;
    }
    return reason.substr(0, n);
}
} // namespace

WsSessionTransport::WsSessionTransport(proxy::core::Loop& loop, std::unique_ptr<TcpStream> stream,
                                       SessionView& session, std::uint64_t after_seq,
                                       WsSessionOptions options)
    : loop_(loop),
      stream_(std::move(stream)),
      session_(&session),
      cursor_(after_seq),
      options_(std::move(options)),
      decoder_(ws::DecoderOptions{ws::Role::Server, options_.max_message}, *this),
      writer_(ws::Role::Server, nullptr) {
    stream_->set_handler(this);
    stream_->set_watermarks(options_.high_watermark);
}

WsSessionTransport::~WsSessionTransport() = default;

void WsSessionTransport::start(std::string pending) {
    std::string c;
    if (options_.reset_reason) {
        append_reset(c, session_->id(), *options_.reset_reason);
        control(c);
        c.clear();
    }
    // A position beyond what exists cannot have been seen: clamp it (no silent skip later).
    cursor_ = std::min(cursor_, session_->replay().last_seq());
    const std::uint64_t expected = session_->expected_client_seq();
    client_seq_ = options_.reset_reason ? expected : options_.first_client_seq.value_or(expected);
    acked_client_ = expected;
    SessionAnnounce a;
    a.session = session_->id();
    a.last_seq = cursor_;
    a.next_seq = expected;
    a.heartbeat_ms = options_.ping_after_ms;
    a.protocol = session_->protocol();
    append_session(c, a);
    control(c);
    last_read_ = last_write_ = loop_.now();
    if (client_seq_ > expected) {
        // The client claims messages the session never got: refuse the connection, forward
        // nothing of it (docs/protocol.md: same rule as a POST's 409).
        std::string e;
        append_error(e, "seq_gap",
                     "Messages must be sent in order; expected seq " + std::to_string(expected) +
                         ".",
                     expected);
        control(e);
        fail("seq_gap", close_code::kPolicyViolation, "seq beyond the next expected one");
        return;
    }
    tick_ = std::make_unique<proxy::core::Timer>(loop_, [this] { on_tick(); });
    tick_->start(options_.tick_ms, options_.tick_ms);
    pump();
    if (ended_) {
        return;
    }
    if (!pending.empty()) {
        process(std::as_writable_bytes(std::span<char>(pending.data(), pending.size())));
        if (ended_) {
            return;
        }
    }
    stream_->resume(proxy::core::kPauseOwner);
    stream_->start_read();
}

// ---- proxy → client ------------------------------------------------------------------------

void WsSessionTransport::control(const std::string& payload) {
    if (close_sent_) {
        return;
    }
    writer_.begin_frame(true, ws::Opcode::Binary, payload.size());
    writer_.payload(bytes_of(payload));
}

void WsSessionTransport::flush() {
    if (!writer_.has_output() || ended_) {
        writer_.clear();
        return;
    }
    stream_->write(writer_.output());
    writer_.clear();
    last_write_ = loop_.now();
}

void WsSessionTransport::pump() {
    if (ended_ || session_ == nullptr) {
        return;
    }
    const ReplayBuffer& replay = session_->replay();
    std::string c;
    while (!full_ && cursor_ < replay.last_seq()) {
        if (const auto gap = replay.gap_after(cursor_)) {
            c.clear();
            append_gap(c, gap->from, gap->to);
            control(c);
            cursor_ = gap->to;
        }
        const auto& messages = replay.messages();
        for (std::size_t i = replay.index_after(cursor_);
             i < messages.size() && writer_.output().size() < kWriteBatch; ++i) {
            const StoredMessage& m = messages[i];
            if (m.binary) {
                static constexpr std::byte kBinary[1] = {std::byte{0x00}};
                writer_.begin_frame(true, ws::Opcode::Binary, m.payload.size() + 1);
                writer_.payload(kBinary);
            } else {
                writer_.begin_frame(true, ws::Opcode::Text, m.payload.size());
            }
            writer_.payload(bytes_of(m.payload));
            cursor_ = m.seq;
        }
        flush();
        if (ended_) {
            return;
        }
    }
    flush();
    if (ended_ || session_ == nullptr) {
        return;
    }
    session_->delivered(cursor_);
    if (ended_ || session_ == nullptr) {
        return;
    }
    if (full_) {
        // A client past twice its queue limit is dropped; it can resume (SPEC §5).
        if (stream_->queued_bytes() > 2 * options_.high_watermark) {
            fail("slow_consumer", close_code::kPolicyViolation, "slow consumer");
        }
        return;
    }
    if (const auto& close = session_->close_info();
        close && !close_written_ && cursor_ >= replay.last_seq()) {
        c.clear();
        append_close(c, close->code, close->reason);
        control(c);
        close_written_ = true;
        end(true, close_code::kNormal, "session closed");
    }
}

void WsSessionTransport::on_messages() {
    pump();
}

void WsSessionTransport::on_replaced() {
    session_ = nullptr;
    std::string c;
    append_replaced(c);
    control(c);
    end(false, close_code::kNormal, "replaced by a newer connection");
}

void WsSessionTransport::on_session_gone() {
    // Deliver what we can and the close, then end; the close carries no position of its own
    // here but still comes only after every message (a client missing some resumes instead).
    session_going_ = true;
    pump();
    if (!ended_ && session_ != nullptr) {
        const auto& close = session_->close_info();
        if (close && !close_written_ && cursor_ >= session_->replay().last_seq()) {
            std::string c;
            append_close(c, close->code, close->reason);
            control(c);
            close_written_ = true;
        }
    }
    session_ = nullptr;
    end(false, close_code::kNormal, close_written_ ? "session closed" : "session ended");
}

// ---- client → proxy ------------------------------------------------------------------------

void WsSessionTransport::on_read(std::span<std::byte> bytes) {
    if (waiting_) {
        held_in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return;
    }
    process(bytes);
}

void WsSessionTransport::process(std::span<std::byte> bytes) {
    const std::uint64_t now = loop_.now();
    last_read_ = now;
    ping_sent_at_ = 0;
    while (!bytes.empty() && !ended_) {
        auto r = decoder_.feed(bytes);
        if (ended_) {
            return;
        }
        if (!r) {
            flush();
            fail("protocol_error", ws::close_code_for(r.error().code), r.error().context);
            return;
        }
        bytes = bytes.subspan(*r);
        if (waiting_) {
            // The backend is full: keep the rest until it drains (on_backend_writable).
            held_in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            stream_->pause(proxy::core::kPausePeerQueueFull);
            break;
        }
        if (*r == 0) {
            break;
        }
    }
    if (!decoder_.mid_message()) {
        message_started_at_ = 0;
    } else if (message_started_at_ == 0) {
        message_started_at_ = now;
    }
    flush();
}

void WsSessionTransport::on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode message) {
    if (header.opcode != ws::Opcode::Continuation) {
        assembler_.begin(message == ws::Opcode::Binary);
    }
}

void WsSessionTransport::on_data_frame_payload(std::span<const std::byte> bytes) {
    assembler_.append(bytes);
}

void WsSessionTransport::on_data_frame_end(bool message_end) {
    if (!message_end) {
        return;
    }
    message_started_at_ = 0;
    auto frame = assembler_.finish();
    if (!frame) {
        decoder_.stop();
        flush();
        fail("protocol_error", close_code::kProtocolError, frame.error().context);
        return;
    }
    handle(std::move(*frame));
    if (waiting_ || ended_) {
        decoder_.stop();
    }
}

void WsSessionTransport::handle(ClientFrame frame) {
    if (session_ == nullptr || close_sent_) {
        return;
    }
    if (frame.type == ClientFrame::Type::Control) {
        auto control = parse_client_control(frame.payload);
        if (!control) {
            flush();
            fail("protocol_error", close_code::kProtocolError, control.error().context);
            return;
        }
        if (control->type == ClientControl::Type::Ack) {
            // A client cannot have seen what was not written to it.
            session_->acknowledged(std::min(control->seq, cursor_));
            return;
        }
        flush();
        session_->close_by_client(control->code, control->reason);  // on_session_gone() ends us
        return;
    }
    ClientMessage m{frame.type == ClientFrame::Type::Binary, std::move(frame.payload)};
    if (!send_message(m)) {
        waiting_ = std::move(m);
    }
}

bool WsSessionTransport::send_message(ClientMessage& message) {
    // One reused vector: a message costs no allocation here (send() takes batches).
    std::vector<ClientMessage>& one = one_;
    one.clear();
    one.push_back(std::move(message));
    const SendOutcome out = session_->send(client_seq_, one);
    switch (out.kind) {
    case SendOutcome::Kind::Accepted:
        ++client_seq_;
        note_forwarded(1);
        return true;
    case SendOutcome::Kind::Busy:
        message = std::move(one.front());
        return false;
    case SendOutcome::Kind::Closed:
        // The session's backend is gone: its close control follows the last message.
        return true;
    case SendOutcome::Kind::SeqGap: {
        std::string e;
        append_error(e, "seq_gap",
                     "Messages must be sent in order; expected seq " +
                         std::to_string(out.expected_seq) + ".",
                     out.expected_seq);
        control(e);
        fail("seq_gap", close_code::kPolicyViolation, "seq beyond the next expected one");
        return true;
    }
    case SendOutcome::Kind::OverBurst:
    case SendOutcome::Kind::RateLimited:
        fail("rate_limited", close_code::kPolicyViolation, "rate limit exceeded");
        return true;
    }
    return true;
}

void WsSessionTransport::note_forwarded(std::uint64_t count) {
    unacked_ += count;
    if (unacked_ >= options_.ack_every) {
        send_ack();
        return;
    }
    if (!ack_timer_) {
        ack_timer_ = std::make_unique<proxy::core::Timer>(loop_, [this] {
            send_ack();
            flush();
        });
    }
    if (!ack_timer_->active()) {
        ack_timer_->start(options_.ack_delay_ms);
    }
}

void WsSessionTransport::send_ack() {
    if (ack_timer_) {
        ack_timer_->stop();
    }
    unacked_ = 0;
    if (ended_ || session_ == nullptr || client_seq_ == acked_client_) {
        return;
    }
    acked_client_ = client_seq_;
    std::string c;
    append_ack(c, client_seq_);
    control(c);
}

void WsSessionTransport::on_backend_writable() {
    if (!waiting_ || ended_ || session_ == nullptr) {
        return;
    }
    if (!send_message(*waiting_)) {
        return;  // still full
    }
    waiting_.reset();
    if (ended_) {
        return;
    }
    std::string rest = std::move(held_in_);
    held_in_.clear();
    if (!rest.empty()) {
        process(std::as_writable_bytes(std::span<char>(rest.data(), rest.size())));
    } else {
        flush();
    }
    if (!ended_ && !waiting_) {
        stream_->resume(proxy::core::kPausePeerQueueFull);
    }
}

void WsSessionTransport::on_ping(std::span<const std::byte> payload) {
    if (!close_sent_) {
        writer_.control(ws::Opcode::Pong, payload);
    }
}

void WsSessionTransport::on_pong(std::span<const std::byte> /*payload*/) {
    // Any read proves liveness (last_read_).
}

void WsSessionTransport::on_close(std::uint16_t code, std::string_view reason) {
    // The client ends this connection, not the session (docs/protocol.md): answer its close
    // and detach; the session waits resume_window.
    decoder_.stop();
    flush();
    const bool sendable = code != close_code::kNoStatus;
    end(true, sendable ? code : close_code::kNormal, sendable ? reason : "");
}

void WsSessionTransport::on_read_end(const proxy::core::Error* /*error*/) {
    end(true, 0, {});
}

void WsSessionTransport::on_write_high() {
    full_ = true;
    if (session_ != nullptr) {
        session_->set_transport_full(true);
    }
}

void WsSessionTransport::on_write_low() {
    full_ = false;
    if (session_ != nullptr) {
        session_->set_transport_full(false);
        pump();
    }
}

void WsSessionTransport::on_write_error(const proxy::core::Error& /*error*/) {
    end(true, 0, {});
}

void WsSessionTransport::on_tick() {
    if (ended_) {
        return;
    }
    const std::uint64_t now = loop_.now();
    if (waiting_) {
        // We stopped reading the client (the backend is slow): its silence proves nothing.
        last_read_ = now;
        ping_sent_at_ = 0;
        if (message_started_at_ != 0) {
            message_started_at_ = now;
        }
    }
    if (stall_.stalled(full_, stream_->queued_bytes(), now, options_.stall_ms)) {
        fail("slow_consumer", close_code::kPolicyViolation, "slow consumer");
        return;
    }
    if (message_started_at_ != 0 && now - message_started_at_ >= options_.message_timeout_ms) {
        fail("message_timeout", close_code::kPolicyViolation,
             "message not complete within message_timeout");
        return;
    }
    if (ping_sent_at_ != 0 && now - ping_sent_at_ >= options_.pong_timeout_ms) {
        if (options_.on_client_error && !error_reported_) {
            error_reported_ = true;
            options_.on_client_error("pong_timeout", close_code::kAbnormal,
                                     "client did not answer a ping in time");
        }
        close_sent_ = true;  // nothing more to say to a dead peer
        stream_->close(TcpStream::CloseMode::Abort);
        end(true, 0, {});
        return;
    }
    const bool idle = now - last_write_ >= options_.ping_after_ms ||
                      now - last_read_ >= options_.ping_after_ms;
    if (ping_sent_at_ == 0 && idle && !close_sent_) {
        writer_.control(ws::Opcode::Ping, {});
        flush();
        ping_sent_at_ = now;
    }
}

// ---- ending --------------------------------------------------------------------------------

void WsSessionTransport::fail(std::string_view event, std::uint16_t code,
                              std::string_view detail) {
    if (ended_) {
        return;
    }
    if (options_.on_client_error && !error_reported_) {
        error_reported_ = true;
        options_.on_client_error(event, code, detail);
    }
    end(true, code, close_reason(detail));
}

void WsSessionTransport::end(bool detach, std::uint16_t code, std::string_view reason) {
    if (ended_) {
        return;
    }
    if (code != 0 && !close_sent_ && !stream_->closing()) {
        writer_.abandon_frame();
        writer_.close(code, reason);
        close_sent_ = true;
    }
    flush();
    ended_ = true;
    tick_.reset();
    ack_timer_.reset();
    stream_->close(TcpStream::CloseMode::Flush);
    if (detach && session_ != nullptr && !session_going_) {
        SessionView* s = session_;
        session_ = nullptr;
        s->detach(*this);
    }
    if (options_.retire) {
        options_.retire(*this);
    }
}

} // namespace transports::ws_session
