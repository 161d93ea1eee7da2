#include "transports/sse/sse_transport.h"

#include "proxy/http/response.h"
#include "transports/sse/encoder.h"

namespace transports::sse {

using proxy::core::TcpStream;

namespace {
/// Bytes of events gathered before one socket write.
constexpr std::size_t kWriteBatch = 64 * 1024;
} // namespace

SseTransport::SseTransport(proxy::core::Loop& loop, std::unique_ptr<TcpStream> stream,
                           SessionView& session, std::uint64_t after_seq, SseOptions options)
    : loop_(loop),
      stream_(std::move(stream)),
      session_(&session),
      cursor_(after_seq),
      options_(std::move(options)) {
    stream_->set_handler(this);
    stream_->set_watermarks(options_.high_watermark);
}

SseTransport::~SseTransport() = default;

void SseTransport::start() {
    // SPEC §3: no Content-Length; the stream ends with the connection.
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "text/event-stream"},
        {"Cache-Control", "no-store"},
        {"X-Accel-Buffering", "no"}};
    headers.insert(headers.end(), options_.headers.begin(), options_.headers.end());
    std::string head = proxy::http::build_stream_head(200, headers, true);
    if (options_.reset_reason) {
        append_reset(head, session_->id(), *options_.reset_reason);
    }
    // A position beyond what exists cannot have been seen: clamp it (no silent skip later).
    cursor_ = std::min(cursor_, session_->replay().last_seq());
    Announce a;
    a.session = session_->id();
    a.send_url = options_.send_url;
    a.heartbeat_ms = options_.heartbeat_ms;
    a.last_seq = cursor_;
    a.retry_ms = options_.retry_ms;
    a.protocol = session_->protocol();
    append_announce(head, a);
    write(head);
    stream_->start_read();
    tick_ = std::make_unique<proxy::core::Timer>(loop_, [this] { on_tick(); });
    tick_->start(options_.tick_ms, options_.tick_ms);
    pump();
}

void SseTransport::pump() {
    if (ended_ || session_ == nullptr) {
        return;
    }
    const ReplayBuffer& replay = session_->replay();
    const std::string_view id = session_->id();
    while (!full_ && cursor_ < replay.last_seq()) {
        if (const auto gap = replay.gap_after(cursor_)) {
            append_gap(out_, id, gap->from, gap->to);
            cursor_ = gap->to;
        }
        const auto& messages = replay.messages();
        for (std::size_t i = replay.index_after(cursor_);
             i < messages.size() && out_.size() < kWriteBatch; ++i) {
            const StoredMessage& m = messages[i];
            append_message(out_, id, m.seq, m.binary,
                           std::as_bytes(std::span<const char>(m.payload.data(), m.payload.size())));
            cursor_ = m.seq;
        }
        write(out_);
        out_.clear();
        if (ended_) {
            return;
        }
    }
    session_->delivered(cursor_);
    if (ended_ || session_ == nullptr) {
        return;
    }
    if (full_) {
        // A client past twice its queue limit is dropped; it can resume (SPEC §5).
        if (stream_->queued_bytes() > 2 * options_.high_watermark) {
            end_slow_consumer();
        }
        return;
    }
    if (const auto& close = session_->close_info(); close && cursor_ >= replay.last_seq()) {
        append_close(out_, id, session_->close_seq(), close->code, close->reason);
        write(out_);
        out_.clear();
        end(true);
    }
}

void SseTransport::write(const std::string& bytes) {
    if (bytes.empty() || ended_) {
        return;
    }
    stream_->write(bytes);
    last_write_ = loop_.now();
}

void SseTransport::on_messages() {
    pump();
}

void SseTransport::on_replaced() {
    session_ = nullptr;
    end(false);
}

void SseTransport::on_session_gone() {
    // Deliver what we can and the final close, then end. The close carries the position after
    // the last message, so it is written only when every message before it was: a client that
    // missed some must not learn a position past them (it reconnects instead). The session is
    // going: nothing here may call its detach() (transport.h), not even pump()'s end.
    session_going_ = true;
    pump();
    if (!ended_ && session_ != nullptr) {
        const auto& close = session_->close_info();
        if (close && cursor_ >= session_->replay().last_seq()) {
            append_close(out_, session_->id(), session_->close_seq(), close->code, close->reason);
            write(out_);
            out_.clear();
        }
    }
    session_ = nullptr;
    end(false);
}

void SseTransport::on_read(std::span<std::byte> /*bytes*/) {
    // An SSE client sends nothing after its request; ignore anything it does send.
}

void SseTransport::on_read_end(const proxy::core::Error* /*error*/) {
    end(true);
}

void SseTransport::on_write_high() {
    full_ = true;
    if (session_ != nullptr) {
        session_->set_transport_full(true);
    }
}

void SseTransport::on_write_low() {
    full_ = false;
    if (session_ != nullptr) {
        session_->set_transport_full(false);
        pump();
    }
}

void SseTransport::on_write_error(const proxy::core::Error& /*error*/) {
    end(true);
}

void SseTransport::on_tick() {
    if (ended_) {
        return;
    }
    if (stall_.stalled(full_, stream_->queued_bytes(), loop_.now(), options_.stall_ms)) {
        end_slow_consumer();
        return;
    }
    if (loop_.now() - last_write_ >= options_.heartbeat_ms && !full_) {
        std::string hb;
        append_heartbeat(hb);
        write(hb);
    }
}

void SseTransport::end_slow_consumer() {
    if (ended_) {
        return;
    }
    if (options_.on_slow_consumer) {
        options_.on_slow_consumer(stream_->queued_bytes());
    }
    end(true);
}

void SseTransport::end(bool detach) {
    if (ended_) {
        return;
    }
    ended_ = true;
    tick_.reset();
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

} // namespace transports::sse
