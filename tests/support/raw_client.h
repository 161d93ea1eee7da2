#pragma once
// RawClient: a TCP client on the test loop that writes raw bytes and records everything it
// receives. It understands just enough to help tests: the HTTP response head at the start of
// the stream, the WebSocket frames after a 101, and (optionally) answering pings.

#include "proxy/core/loop.h"
#include "proxy/core/tcp.h"
#include "tests/support/wire.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxy::test {

/// See the file comment. Not movable (the stream points back at it).
class RawClient final : private core::StreamHandler {
  public:
    explicit RawClient(core::Loop& loop);
    ~RawClient() override;
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    /// Connects to 127.0.0.1:`port` and starts reading; waits (bounded) for the connection.
    /// Returns false when it failed or timed out.
    bool connect(std::uint16_t port, std::uint64_t timeout_ms = 2000);
    /// Writes raw bytes (copied when the kernel does not take them at once).
    void send(std::string_view bytes);
    /// Sends a masked client frame.
    void send_frame(std::uint8_t opcode, std::string_view payload, bool fin = true) {
        send(client_frame(opcode, payload, fin));
    }
    /// Sends a masked Close frame.
    void send_close(std::uint16_t code, std::string_view reason) {
        send(client_frame(op::kClose, close_body(code, reason)));
    }

    /// Stops/starts reading from the socket (the kernel buffers fill, TCP pushes back).
    void pause_reading();
    void resume_reading();
    /// Closes the socket at once. Idempotent.
    void close();

    /// Everything received so far.
    const std::string& received() const noexcept { return received_; }
    /// Number of on_read callbacks and bytes received.
    std::size_t reads() const noexcept { return reads_; }
    /// The peer closed (EOF) or the connection failed.
    bool eof() const noexcept { return eof_; }
    /// The read side ended with an error (e.g. ECONNRESET) rather than a clean EOF.
    bool reset() const noexcept { return reset_; }
    /// Loop time of the EOF, or 0.
    std::uint64_t eof_at() const noexcept { return eof_at_; }
    bool closed() const noexcept { return closed_; }
    /// Bytes written but not yet taken by the kernel.
    std::size_t queued_bytes() const noexcept;

    /// The response head (and body, by Content-Length) at the start of the stream.
    std::optional<HttpResponse> response() const { return parse_response(received_); }
    /// Frames received after a 101 head, in order.
    const std::vector<Frame>& frames() const noexcept { return frames_; }
    /// Reassembled data messages among frames().
    std::vector<Message> messages() const { return messages_of(frames_); }
    /// Number of received frames with `opcode`.
    std::size_t count(std::uint8_t opcode) const;
    /// The first received Close frame, or nullptr.
    const Frame* close_frame() const;
    /// Loop time at which the frame with index i arrived.
    std::uint64_t frame_time(std::size_t i) const { return frame_times_.at(i); }
    /// Bytes of WebSocket payload received (after the head), for floods.
    std::size_t ws_bytes() const noexcept { return received_.size() - ws_start_; }

    /// When set, each Ping is answered with a masked Pong carrying the same payload.
    bool auto_pong = false;
    /// When set (default), an EOF from the peer closes the socket, like a normal client.
    bool close_on_eof = true;
    /// When set, frames are not kept (floods): only ws_bytes() grows.
    bool discard_frames = false;

  private:
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_error(const core::Error& error) override;
    void parse_more();

    core::Loop& loop_;
    std::unique_ptr<core::TcpStream> stream_;
    std::string received_;
    std::vector<Frame> frames_;
    std::vector<std::uint64_t> frame_times_;
    FrameParser parser_;
    std::size_t ws_start_ = 0;
    bool in_ws_ = false;
    bool head_checked_ = false;
    std::size_t reads_ = 0;
    std::uint64_t eof_at_ = 0;
    bool connected_ = false;
    bool connect_failed_ = false;
    bool eof_ = false;
    bool reset_ = false;
    bool closed_ = false;
};

} // namespace proxy::test
