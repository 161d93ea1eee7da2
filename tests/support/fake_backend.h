#pragma once
// FakeBackend: a scriptable WebSocket server on the test loop, bound to 127.0.0.1:0, that
// plays the backend behind the proxy. Every accepted connection is a BackendPeer that records
// the request head it got, every frame and message it received (its own frame parser plus the
// proxy's strict ws::Decoder as a conformance check of what the proxy sends), pings, pongs and
// the close code. The script decides how it answers the handshake (101 with an optional
// subprotocol, a rejection status, a wrong accept key, silence, or a manual answer from the
// test), whether it echoes, answers pings, answers closes, and closes after N messages.

#include "proxy/core/loop.h"
#include "proxy/core/tcp.h"
#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/ws/decoder.h"
#include "tests/support/wire.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxy::test {

/// How the backend behaves. Tests may change it between connections.
struct BackendScript {
    /// Answer to the upgrade request.
    enum class Handshake : std::uint8_t {
        Accept,    ///< 101 with the right accept key
        Reject,    ///< `reject_status` with a small body
        BadAccept, ///< 101 with a wrong Sec-WebSocket-Accept
        Silent,    ///< never answers
        Manual,    ///< waits for BackendPeer::accept()/reject() from the test
    };
    Handshake handshake = Handshake::Accept;
    unsigned reject_status = 403;
    std::string reject_headers;  ///< raw header lines ("Name: v\r\n") added to a rejection
    std::string subprotocol;     ///< selected subprotocol in the 101 ("" = none)
    std::string extra_101;       ///< raw header lines added to the 101
    std::string after_101;       ///< raw bytes written in the same write as the 101
    bool echo = false;           ///< echo every data frame back as received
    bool answer_pings = true;    ///< answer Ping with Pong
    bool answer_close = true;    ///< answer a Close with the same code/reason, then close TCP
    std::size_t close_after = 0; ///< after this many messages, send Close (0 = never)
    std::uint16_t close_code = 1000;
    std::string close_reason;
};

/// One connection accepted by the FakeBackend.
class BackendPeer final : private core::StreamHandler, private ws::DecoderHandler {
  public:
    BackendPeer(core::Loop& loop, std::unique_ptr<core::TcpStream> stream, BackendScript script);
    ~BackendPeer() override;
    BackendPeer(const BackendPeer&) = delete;
    BackendPeer& operator=(const BackendPeer&) = delete;

    // ---- what it saw ----
    /// True once the whole request head arrived.
    bool head_complete() const noexcept { return head_complete_; }
    /// The raw request head as received (request line through the blank line).
    const std::string& head() const noexcept { return head_; }
    /// The parsed request.
    const http::Request& request() const noexcept { return request_; }
    /// True once the 101 (or rejection) was written.
    bool responded() const noexcept { return responded_; }
    /// Bytes received after the request head before the handshake answer was written.
    std::size_t bytes_before_answer() const noexcept { return bytes_before_answer_; }
    /// Raw bytes received after the request head.
    const std::string& ws_bytes() const noexcept { return ws_; }
    /// Every frame received after the head, in order.
    const std::vector<Frame>& frames() const noexcept { return frames_; }
    /// Reassembled data messages.
    std::vector<Message> messages() const { return messages_of(frames_); }
    /// Frames with `opcode`.
    std::size_t count(std::uint8_t opcode) const;
    /// The first Close frame received, or nullptr.
    const Frame* close_frame() const;
    /// The strict decoder's verdict on the proxy's frames ("" when all were valid).
    const std::string& decode_error() const noexcept { return decode_error_; }
    /// The proxy closed its side (EOF or error).
    bool eof() const noexcept { return eof_; }
    /// This peer closed its socket (it then receives nothing more).
    bool closed() const noexcept { return closed_; }
    /// Loop time when frame i arrived.
    std::uint64_t frame_time(std::size_t i) const { return frame_times_.at(i); }

    // ---- what it does ----
    /// This connection's copy of the script (changes apply from the next event).
    BackendScript& script() noexcept { return script_; }
    /// Answers the handshake with 101 (Manual scripts).
    void accept();
    /// Answers the handshake with `status` (Manual scripts).
    void reject(unsigned status);
    /// Sends one unmasked frame.
    void send_frame(std::uint8_t opcode, std::string_view payload, bool fin = true);
    void send_text(std::string_view text) { send_frame(op::kText, text); }
    void send_binary(std::string_view bytes) { send_frame(op::kBinary, bytes); }
    /// Sends a Close frame.
    void send_close(std::uint16_t code, std::string_view reason);
    /// Writes raw bytes.
    void send_raw(std::string_view bytes);
    /// Stops/starts reading (TCP backpressure towards the proxy).
    void pause_reading();
    void resume_reading();
    /// Bytes this peer wrote that the kernel has not taken (grows when the proxy stops reading).
    std::size_t queued_bytes() const noexcept;
    /// Closes the socket (Flush: queued bytes first, then FIN). Idempotent.
    void close_tcp();
    /// Closes the socket at once.
    void abort_tcp();

  private:
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_error(const core::Error& error) override;
    void on_data_frame_begin(const ws::FrameHeader&, ws::Opcode) override {}
    void on_data_frame_payload(std::span<const std::byte>) override {}
    void on_data_frame_end(bool) override {}
    void on_ping(std::span<const std::byte>) override {}
    void on_pong(std::span<const std::byte>) override {}
    void on_close(std::uint16_t, std::string_view) override {}

    void answer_handshake();
    void handle_ws_bytes(std::string_view bytes);
    void handle_frame(const Frame& frame);

    core::Loop& loop_;
    std::unique_ptr<core::TcpStream> stream_;
    BackendScript script_;
    std::string pre_head_; ///< raw bytes while the head is incomplete
    http::RequestParser parser_;
    http::Request request_; ///< copy of the parsed head
    ws::Decoder decoder_;
    FrameParser frame_parser_;
    std::string head_;
    std::string ws_;
    std::vector<Frame> frames_;
    std::vector<std::uint64_t> frame_times_;
    std::string decode_error_;
    std::size_t bytes_before_answer_ = 0;
    std::size_t messages_seen_ = 0;
    bool head_complete_ = false;
    bool responded_ = false;
    bool close_sent_ = false;
    bool eof_ = false;
    bool closed_ = false;
};

/// The listener and its peers.
class FakeBackend {
  public:
    explicit FakeBackend(core::Loop& loop, BackendScript script = {});
    ~FakeBackend();
    FakeBackend(const FakeBackend&) = delete;
    FakeBackend& operator=(const FakeBackend&) = delete;

    /// The bound port.
    std::uint16_t port() const noexcept { return port_; }
    /// The script used for connections accepted from now on.
    BackendScript& script() noexcept { return script_; }
    /// Connections accepted so far.
    std::size_t connections() const noexcept { return peers_.size(); }
    /// The i-th accepted connection.
    BackendPeer& peer(std::size_t i = 0) { return *peers_.at(i); }
    /// True when every peer closed its socket.
    bool all_closed() const;
    /// Stops listening and aborts every peer. Idempotent.
    void close();

  private:
    core::Loop& loop_;
    BackendScript script_;
    std::unique_ptr<core::TcpListener> listener_;
    std::vector<std::unique_ptr<BackendPeer>> peers_;
    std::uint16_t port_ = 0;
};

} // namespace proxy::test
