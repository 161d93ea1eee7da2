#include "tests/support/raw_client.h"

#include "tests/support/run_until.h"

namespace proxy::test {

RawClient::RawClient(core::Loop& loop)
    : loop_(loop), stream_(std::make_unique<core::TcpStream>(loop)) {
    ignore_sigpipe();
    stream_->set_handler(this);
    stream_->set_watermarks(std::size_t{64} * 1024 * 1024);
}

RawClient::~RawClient() { close(); }

bool RawClient::connect(std::uint16_t port, std::uint64_t timeout_ms) {
    auto r = stream_->connect("127.0.0.1", port, [this](core::Result<void> result) {
        if (result) {
            connected_ = true;
            stream_->start_read();
        } else {
            connect_failed_ = true;
        }
    });
    if (!r) {
        return false;
    }
    return run_until(
               loop_, [this] { return connected_ || connect_failed_; }, timeout_ms) &&
           connected_;
}

void RawClient::send(std::string_view bytes) {
    if (!closed_) {
        stream_->write(bytes);
    }
}

void RawClient::pause_reading() { stream_->pause(core::kPauseOwner); }

void RawClient::resume_reading() { stream_->resume(core::kPauseOwner); }

void RawClient::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    stream_->close(core::TcpStream::CloseMode::Abort);
}

std::size_t RawClient::queued_bytes() const noexcept { return stream_->queued_bytes(); }

std::size_t RawClient::count(std::uint8_t opcode) const {
    std::size_t n = 0;
    for (const auto& f : frames_) {
        n += f.opcode == opcode ? 1 : 0;
    }
    return n;
}

const Frame* RawClient::close_frame() const {
    for (const auto& f : frames_) {
        if (f.opcode == op::kClose) {
            return &f;
        }
    }
    return nullptr;
}

void RawClient::on_read(std::span<std::byte> bytes) {
    ++reads_;
    received_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    parse_more();
}

void RawClient::parse_more() {
    if (!head_checked_) {
        const auto end = received_.find("\r\n\r\n");
        if (end == std::string::npos) {
            return;
        }
        head_checked_ = true;
        in_ws_ = received_.compare(0, 12, "HTTP/1.1 101") == 0;
        ws_start_ = end + 4;
    }
    if (!in_ws_ || discard_frames) {
        return;
    }
    const std::string_view ws = std::string_view(received_).substr(ws_start_);
    auto fresh = parser_.parse(ws);
    const std::uint64_t now = loop_.now();
    for (auto& f : fresh) {
        if (auto_pong && f.opcode == op::kPing && !closed_) {
            send(client_frame(op::kPong, f.payload));
        }
        frames_.push_back(std::move(f));
        frame_times_.push_back(now);
    }
}

void RawClient::on_read_end(const core::Error* error) {
    eof_ = true;
    reset_ = error != nullptr;
    eof_at_ = loop_.now();
    if (close_on_eof) {
        close();
    }
}

void RawClient::on_write_error(const core::Error& /*error*/) {
    eof_ = true;
    reset_ = true;
    close();
}

} // namespace proxy::test
