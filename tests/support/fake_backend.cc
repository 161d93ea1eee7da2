#include "tests/support/fake_backend.h"

#include "tests/support/run_until.h"

namespace proxy::test {

namespace {
constexpr std::size_t kHuge = std::size_t{256} * 1024 * 1024;
} // namespace

BackendPeer::BackendPeer(core::Loop& loop, std::unique_ptr<core::TcpStream> stream,
                         BackendScript script)
    : loop_(loop), stream_(std::move(stream)), script_(std::move(script)),
      parser_(http::ParserLimits{64 * 1024, 200, 0}),
      decoder_(ws::DecoderOptions{ws::Role::Server, kHuge}, *this) {
    stream_->set_handler(this);
    stream_->set_watermarks(kHuge);
    stream_->set_nodelay(true);
    stream_->start_read();
}

BackendPeer::~BackendPeer() { abort_tcp(); }

std::size_t BackendPeer::count(std::uint8_t opcode) const {
    std::size_t n = 0;
    for (const auto& f : frames_) {
        n += f.opcode == opcode ? 1 : 0;
    }
    return n;
}

const Frame* BackendPeer::close_frame() const {
    for (const auto& f : frames_) {
        if (f.opcode == op::kClose) {
            return &f;
        }
    }
    return nullptr;
}

void BackendPeer::on_read(std::span<std::byte> bytes) {
    std::string_view data(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (!head_complete_) {
        auto r = parser_.feed(std::span<const char>(data.data(), data.size()));
        if (!r) {
            decode_error_ = "bad request head: " + r.error().context;
            abort_tcp();
            return;
        }
        pre_head_.append(data.substr(0, r->consumed));
        if (!r->complete) {
            return;
        }
        head_complete_ = true;
        head_ = std::move(pre_head_);
        request_ = parser_.request();
        data.remove_prefix(r->consumed);
        if (!data.empty()) {
            bytes_before_answer_ += data.size();
            handle_ws_bytes(data);
        }
        answer_handshake();
        return;
    }
    if (!responded_) {
        bytes_before_answer_ += data.size();
    }
    handle_ws_bytes(data);
}

void BackendPeer::answer_handshake() {
    using H = BackendScript::Handshake;
    if (closed_) {
        return;
    }
    switch (script_.handshake) {
    case H::Accept:
    case H::BadAccept: accept(); break;
    case H::Reject: reject(script_.reject_status); break;
    case H::Silent:
    case H::Manual: break;
    }
}

void BackendPeer::accept() {
    if (responded_ || closed_) {
        return;
    }
    responded_ = true;
    const std::string* key = request().find("Sec-WebSocket-Key");
    std::string accept = accept_for(key != nullptr ? *key : "");
    if (script_.handshake == BackendScript::Handshake::BadAccept) {
        accept = accept_for(kSampleKey);
    }
    std::string out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                      accept + "\r\n";
    if (!script_.subprotocol.empty()) {
        out += "Sec-WebSocket-Protocol: " + script_.subprotocol + "\r\n";
    }
    out += script_.extra_101;
    out += "\r\n";
    out += script_.after_101;
    stream_->write(out);
}

void BackendPeer::reject(unsigned status) {
    if (responded_ || closed_) {
        return;
    }
    responded_ = true;
    std::string out = "HTTP/1.1 " + std::to_string(status) +
                      " Nope\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n" +
                      script_.reject_headers + "\r\nbackend body!";
    stream_->write(out);
    close_tcp();
}

void BackendPeer::handle_ws_bytes(std::string_view bytes) {
    ws_.append(bytes);
    if (decode_error_.empty()) {
        std::string copy(bytes);
        auto r = decoder_.feed(std::as_writable_bytes(std::span<char>(copy.data(), copy.size())));
        if (!r) {
            decode_error_ = r.error().context;
        }
    }
    auto fresh = frame_parser_.parse(ws_);
    const std::uint64_t now = loop_.now();
    for (auto& f : fresh) {
        frames_.push_back(std::move(f));
        frame_times_.push_back(now);
        handle_frame(frames_.back());
        if (closed_) {
            return;
        }
    }
}

void BackendPeer::handle_frame(const Frame& frame) {
    switch (frame.opcode) {
    case op::kPing:
        if (script_.answer_pings && !close_sent_) {
            send_frame(op::kPong, frame.payload);
        }
        return;
    case op::kPong: return;
    case op::kClose:
        if (!close_sent_ && script_.answer_close) {
            send_close(frame.close_code(), frame.close_reason());
            close_tcp();
        } else if (close_sent_) {
            close_tcp();
        }
        return;
    default: break;
    }
    if (close_sent_) {
        return;
    }
    if (script_.echo) {
        send_frame(frame.opcode, frame.payload, frame.fin);
    }
    if (frame.fin) {
        ++messages_seen_;
        if (script_.close_after != 0 && messages_seen_ == script_.close_after) {
            send_close(script_.close_code, script_.close_reason);
        }
    }
}

void BackendPeer::send_frame(std::uint8_t opcode, std::string_view payload, bool fin) {
    send_raw(server_frame(opcode, payload, fin));
}

void BackendPeer::send_close(std::uint16_t code, std::string_view reason) {
    close_sent_ = true;
    send_frame(op::kClose, close_body(code, reason));
}

void BackendPeer::send_raw(std::string_view bytes) {
    if (!closed_) {
        stream_->write(bytes);
    }
}

void BackendPeer::pause_reading() { stream_->pause(core::kPauseOwner); }

void BackendPeer::resume_reading() { stream_->resume(core::kPauseOwner); }

std::size_t BackendPeer::queued_bytes() const noexcept { return stream_->queued_bytes(); }

void BackendPeer::close_tcp() {
    if (closed_) {
        return;
    }
    closed_ = true;
    stream_->close(core::TcpStream::CloseMode::Flush);
}

void BackendPeer::abort_tcp() {
    closed_ = true;
    stream_->close(core::TcpStream::CloseMode::Abort);
}

void BackendPeer::on_read_end(const core::Error* /*error*/) {
    eof_ = true;
    close_tcp();
}

void BackendPeer::on_write_error(const core::Error& /*error*/) {
    eof_ = true;
    abort_tcp();
}

// ---------------------------------------------------------------------------------------

FakeBackend::FakeBackend(core::Loop& loop, BackendScript script)
    : loop_(loop), script_(std::move(script)),
      listener_(std::make_unique<core::TcpListener>(loop)) {
    ignore_sigpipe();
    auto r = listener_->listen("127.0.0.1", 0, [this](std::unique_ptr<core::TcpStream> s) {
        peers_.push_back(std::make_unique<BackendPeer>(loop_, std::move(s), script_));
    });
    if (r) {
        port_ = listener_->local_port();
    }
}

FakeBackend::~FakeBackend() { close(); }

bool FakeBackend::all_closed() const {
    for (const auto& p : peers_) {
        if (!p->closed()) {
            return false;
        }
    }
    return true;
}

void FakeBackend::close() {
    listener_->close();
    for (auto& p : peers_) {
        p->abort_tcp();
    }
}

} // namespace proxy::test
