#include "transports/mux/mux_sse_transport.h"

#include <algorithm>

#include "proxy/http/response.h"
#include "transports/mux/codec.h"
#include "transports/sse/encoder.h"

namespace transports::mux {

using proxy::core::TcpStream;

namespace {
/// Bytes of events gathered before one socket write.
constexpr std::size_t kWriteBatch = 64 * 1024;
} // namespace

void MuxSseTransport::Member::on_messages() {
    stream_.pump_one(*this);
}

void MuxSseTransport::Member::on_replaced() {
    // The session went to another connection: it leaves this stream with a clear end.
    session_ = nullptr;
    if (stream_.ended_) {
        return;
    }
    append_detached(stream_.out_, id_, "replaced");
    stream_.write_out();
    if (stream_.live_members() == 0) {
        stream_.end();
    }
}

void MuxSseTransport::Member::on_session_gone() {
    // Deliver what can be delivered and the close, then leave; never call the session back
    // with detach() (transport.h).
    if (!stream_.ended_ && session_ != nullptr) {
        while (!stream_.full_ && stream_.pump_member(*this)) {
            stream_.write_out();
        }
        stream_.write_out();
        const auto& close = session_->close_info();
        if (close && cursor_ >= session_->replay().last_seq()) {
            append_close(stream_.out_, id_, close->code, close->reason);
            stream_.write_out();
        }
    }
    session_ = nullptr;
    if (!stream_.ended_ && stream_.started_ && stream_.live_members() == 0) {
        stream_.end();
    }
}

MuxSseTransport::MuxSseTransport(proxy::core::Loop& loop, std::unique_ptr<TcpStream> stream,
                                 MuxSseOptions options)
    : loop_(loop), stream_(std::move(stream)), options_(std::move(options)) {
    // A batch well under the watermark: the queue never runs far past it before a pass stops.
    batch_ = std::clamp<std::size_t>(options_.high_watermark / 4, 4096, kWriteBatch);
    stream_->set_handler(this);
    stream_->set_watermarks(options_.high_watermark);
}

MuxSseTransport::~MuxSseTransport() = default;

MuxSseTransport::Member& MuxSseTransport::add(SessionView* session, std::string id,
                                              std::uint64_t after, std::string reset_reason) {
    members_.push_back(std::make_unique<Member>(*this, session, std::move(id), after));
    Member& m = *members_.back();
    m.reset_ = session == nullptr;
    resets_.push_back(m.reset_ ? (reset_reason.empty() ? "unknown session" : reset_reason)
                               : std::string());
    return m;
}

std::size_t MuxSseTransport::live_members() const noexcept {
    return static_cast<std::size_t>(std::count_if(
        members_.begin(), members_.end(), [](const auto& m) { return m->session_ != nullptr; }));
}

void MuxSseTransport::start() {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "text/event-stream"},
        {"Cache-Control", "no-store"},
        {"X-Accel-Buffering", "no"}};
    headers.insert(headers.end(), options_.headers.begin(), options_.headers.end());
    out_ = proxy::http::build_stream_head(200, headers, true);
    std::vector<AnnounceEntry> entries;
    entries.reserve(members_.size());
    for (std::size_t i = 0; i < members_.size(); ++i) {
        Member& m = *members_[i];
        AnnounceEntry e;
        e.session = m.id_;
        if (m.session_ == nullptr) {
            e.reset = resets_[i];
        } else {
            // A position beyond what exists cannot have been seen: clamp it.
            m.cursor_ = std::min(m.cursor_, m.session_->replay().last_seq());
            e.last_seq = m.cursor_;
            e.next_seq = m.session_->expected_client_seq();
            e.protocol = m.session_->protocol();
        }
        entries.push_back(e);
    }
    append_announce(out_, options_.send_url, options_.heartbeat_ms, options_.retry_ms, entries);
    started_ = true;
    write_out();
    if (ended_) {
        return;
    }
    stream_->start_read();
    tick_ = std::make_unique<proxy::core::Timer>(loop_, [this] { on_tick(); });
    tick_->start(options_.tick_ms, options_.tick_ms);
    pump();
    if (!ended_ && live_members() == 0) {
        end();
    }
}

bool MuxSseTransport::pump_member(Member& m) {
    SessionView* s = m.session_;
    if (s == nullptr) {
        return false;
    }
    const ReplayBuffer& replay = s->replay();
    if (m.cursor_ >= replay.last_seq()) {
        return false;
    }
    if (const auto gap = replay.gap_after(m.cursor_)) {
        append_gap(out_, m.id_, gap->from, gap->to);
        m.cursor_ = gap->to;
    }
    const auto& messages = replay.messages();
    for (std::size_t i = replay.index_after(m.cursor_);
         i < messages.size() && out_.size() < batch_; ++i) {
        const StoredMessage& msg = messages[i];
        append_message(out_, m.id_, msg.seq, msg.binary, msg.payload);
        m.cursor_ = msg.seq;
    }
    return m.cursor_ < replay.last_seq();
}

void MuxSseTransport::pump() {
    if (!started_ || ended_ || pumping_) {
        return;
    }
    pumping_ = true;
    // Round robin: each pass gives every session up to a write batch, so one busy session
    // cannot starve the others; it stops as soon as the socket's queue is full (a client that
    // reads is never taken for a slow consumer because of one pass over many backlogs) and the
    // next pass starts with the session that was next.
    const std::size_t n = members_.size();
    bool more = true;
    while (more && !full_ && !ended_ && n > 0) {
        more = false;
        std::size_t k = 0;
        for (; k < n && !ended_ && !full_; ++k) {
            Member& m = *members_[(next_ + k) % n];
            more = pump_member(m) || more;
            write_out();
        }
        next_ = (next_ + k) % n;
        more = more || full_;
    }
    pumping_ = false;
    if (ended_) {
        return;
    }
    for (std::size_t i = 0; i < members_.size() && !ended_; ++i) {
        Member& m = *members_[i];
        if (m.session_ != nullptr) {
            m.session_->delivered(m.cursor_);
        }
    }
    if (ended_) {
        return;
    }
    if (full_) {
        if (stream_->queued_bytes() > 2 * options_.high_watermark) {
            if (options_.on_slow_consumer) {
                options_.on_slow_consumer(stream_->queued_bytes());
            }
            end();
        }
        return;
    }
    // Sessions whose close is due: the close event after their last message, then they leave.
    for (std::size_t i = 0; i < members_.size() && !ended_; ++i) {
        Member& m = *members_[i];
        if (m.session_ == nullptr) {
            continue;
        }
        const auto& close = m.session_->close_info();
        if (close && m.cursor_ >= m.session_->replay().last_seq()) {
            append_close(out_, m.id_, close->code, close->reason);
            write_out();
            leave(m, true);
        }
    }
    if (!ended_ && live_members() == 0) {
        end();
    }
}

void MuxSseTransport::pump_one(Member& m) {
    // One session has news: write only its events (a stream may carry a hundred sessions, so
    // a message must not cost a pass over all of them).
    if (!started_ || ended_ || pumping_ || full_) {
        return;
    }
    pumping_ = true;
    bool more = true;
    while (more && !full_ && !ended_) {
        more = pump_member(m);
        write_out();
    }
    pumping_ = false;
    if (ended_ || m.session_ == nullptr) {
        return;
    }
    m.session_->delivered(m.cursor_);
    if (ended_ || m.session_ == nullptr) {
        return;
    }
    if (full_) {
        if (stream_->queued_bytes() > 2 * options_.high_watermark) {
            if (options_.on_slow_consumer) {
                options_.on_slow_consumer(stream_->queued_bytes());
            }
            end();
        }
        return;
    }
    const auto& close = m.session_->close_info();
    if (close && m.cursor_ >= m.session_->replay().last_seq()) {
        append_close(out_, m.id_, close->code, close->reason);
        write_out();
        leave(m, true);
        if (!ended_ && live_members() == 0) {
            end();
        }
    }
}

void MuxSseTransport::leave(Member& m, bool detach) {
    SessionView* s = m.session_;
    m.session_ = nullptr;
    if (detach && s != nullptr) {
        s->detach(m);
    }
}

void MuxSseTransport::write_out() {
    if (out_.empty() || ended_) {
        out_.clear();
        return;
    }
    stream_->write(out_);
    out_.clear();
    last_write_ = loop_.now();
}

void MuxSseTransport::on_read(std::span<std::byte> /*bytes*/) {
    // An SSE client sends nothing after its request; ignore anything it does send.
}

void MuxSseTransport::on_read_end(const proxy::core::Error* /*error*/) {
    end();
}

void MuxSseTransport::on_write_high() {
    full_ = true;
    for (const auto& m : members_) {
        if (m->session_ != nullptr) {
            m->session_->set_transport_full(true);
        }
    }
}

void MuxSseTransport::on_write_low() {
    full_ = false;
    for (const auto& m : members_) {
        if (m->session_ != nullptr) {
            m->session_->set_transport_full(false);
        }
    }
    pump();
}

void MuxSseTransport::on_write_error(const proxy::core::Error& /*error*/) {
    end();
}

void MuxSseTransport::on_tick() {
    if (ended_) {
        return;
    }
    if (stall_.stalled(full_, stream_->queued_bytes(), loop_.now(), options_.stall_ms)) {
        if (options_.on_slow_consumer) {
            options_.on_slow_consumer(stream_->queued_bytes());
        }
        end();
        return;
    }
    if (loop_.now() - last_write_ >= options_.heartbeat_ms && !full_) {
        sse::append_heartbeat(out_);
        write_out();
    }
}

void MuxSseTransport::end() {
    if (ended_) {
        return;
    }
    write_out();
    ended_ = true;
    tick_.reset();
    stream_->close(TcpStream::CloseMode::Flush);
    for (const auto& m : members_) {
        leave(*m, true);
    }
    if (options_.retire) {
        options_.retire(*this);
    }
}

} // namespace transports::mux
