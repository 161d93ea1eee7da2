#pragma once
// Incremental, sans-I/O WebSocket frame decoder (RFC 6455 §5) for either role.
//
// The decoder streams: a data frame's payload is handed to the handler as it arrives, already
// unmasked (in place, in the caller's buffer) and UTF-8-validated, so nothing is buffered for
// data frames and the relay can forward a frame before it is complete. Control frames (≤125
// bytes) are assembled in a small internal buffer and delivered whole. Partial frame headers
// are kept in a 14-byte spill buffer, so any split of the input gives the same events.
//
// Every check happens before the offending payload is delivered:
//  - RSV1-3 set (no extension is negotiated) → ProtocolError
//  - reserved opcodes 3-7, B-F → ProtocolError
//  - masking: Role::Server requires the MASK bit, Role::Client forbids it → ProtocolError
//  - control frames longer than 125 bytes or with FIN clear → ProtocolError
//  - 64-bit length with the most significant bit set, or a length not in its minimal
//    encoding (126 for < 126, 127 for < 65536) → ProtocolError
//  - continuation without a message in progress, or Text/Binary while one is in progress
//    → ProtocolError
//  - message length (sum of its frames) above max_message, checked from each frame header
//    before any of its payload is delivered → MessageTooBig
//  - Text payload not UTF-8, at the first bad byte, across fragment boundaries, and a text
//    message that ends inside a code point → InvalidUtf8. Text payload is delivered only up to
//    the last complete code point: the 1-3 bytes of a code point that the input has not
//    completed yet are held (copied) until it is, or until the frame ends without FIN (a
//    fragment may end inside a code point). So an invalid text message never has its bad bytes
//    delivered, even when it is cut off at its very end (issue 10), and on an error only the
//    bytes up to the last code point boundary before the bad byte were delivered, whatever the
//    split of the input.
//  - Close payload of 1 byte or with an invalid code → ProtocolError; reason not UTF-8
//    → InvalidUtf8
// The resulting error's Code maps to a close code via close_code_for().

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/core/result.h"
#include "proxy/ws/frame.h"
#include "proxy/ws/utf8.h"

namespace proxy::ws {

/// A decoded frame header. `length` is the payload length of this frame only.
struct FrameHeader {
    bool fin = false;
    Opcode opcode = Opcode::Continuation;
    std::uint64_t length = 0;
};

/// Receives decoder events. All callbacks run synchronously inside Decoder::feed(); views are
/// valid only until the callback returns. A handler may call Decoder::stop() from any callback
/// to make feed() return right after that callback.
class DecoderHandler {
  public:
    virtual ~DecoderHandler() = default;
    /// A data frame begins. `message_opcode` is Text or Binary: the first frame's opcode for
    /// the whole message (header.opcode is Continuation for later fragments).
    virtual void on_data_frame_begin(const FrameHeader& header, Opcode message_opcode) = 0;
    /// Unmasked, validated payload bytes of the current data frame. Zero or more calls.
    virtual void on_data_frame_payload(std::span<const std::byte> bytes) = 0;
    /// The current data frame is complete; `message_end` equals its FIN bit.
    virtual void on_data_frame_end(bool message_end) = 0;
    /// A complete Ping frame.
    virtual void on_ping(std::span<const std::byte> payload) = 0;
    /// A complete Pong frame.
    virtual void on_pong(std::span<const std::byte> payload) = 0;
    /// A complete, valid Close frame; `code` is 1005 when the payload was empty. The decoder
    /// ignores (consumes without events) everything after a Close frame.
    virtual void on_close(std::uint16_t code, std::string_view reason) = 0;
};

/// Decoder settings.
struct DecoderOptions {
    Role role = Role::Server;                    ///< Server decodes client frames
    std::uint64_t max_message = 1024 * 1024;     ///< largest message, bytes (sum of frames)
};

/// The decoder. Not copyable (the handler reference is stable); cheap to construct.
class Decoder {
  public:
    Decoder(DecoderOptions options, DecoderHandler& handler) noexcept;
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;

    /// Consumes `bytes` (unmasking them in place) and fires handler events. Returns the number
    /// of bytes consumed: all of them, unless stop() was called from a callback (then the bytes
    /// after the frame or chunk that triggered the callback are left unconsumed). On a protocol
    /// error returns the error; the decoder is then failed and every later feed fails the same.
    core::Result<std::size_t> feed(std::span<std::byte> bytes);

    /// Asks feed() to return after the current callback. Cleared at the next feed() call.
    void stop() noexcept { stop_ = true; }
    /// True after a Close frame was decoded.
    bool closed() const noexcept { return closed_; }
    /// True while a fragmented message is in progress or a frame is partially received.
    bool mid_message() const noexcept {
        return message_in_progress_ || state_ != State::Header || header_have_ != 0;
    }
    /// Changes the message limit (applies from the next frame header).
    void set_max_message(std::uint64_t limit) noexcept { options_.max_message = limit; }

  private:
    enum class State : std::uint8_t { Header, Payload, ControlPayload, Failed };

    // Steps of feed(). Each consumes from data[pos..size) and advances pos. They return false
    // after recording the error with fail_with() (a bool keeps the per-frame path cheap; feed()
    // turns it into the Result).
    bool on_header_bytes(std::byte* data, std::size_t size, std::size_t& pos);
    bool on_payload_bytes(std::byte* data, std::size_t size, std::size_t& pos);
    bool on_control_bytes(std::byte* data, std::size_t size, std::size_t& pos);
    bool deliver_text(std::span<const std::byte> chunk);
    void deliver_held_text();
    bool check_prefix(std::byte first, std::byte second);
    bool begin_frame(const std::byte* header);
    bool end_data_frame();
    bool deliver_close(std::span<const std::byte> payload);
    bool fail_with(core::Code code, std::string context);

    DecoderOptions options_;
    DecoderHandler& handler_;
    State state_ = State::Header;
    bool stop_ = false;
    bool closed_ = false;
    bool message_in_progress_ = false;
    Opcode message_opcode_ = Opcode::Text;
    FrameHeader frame_{};
    std::array<std::byte, 4> mask_{};
    bool masked_ = false;
    std::uint64_t frame_remaining_ = 0;
    std::uint64_t frame_offset_ = 0;       ///< payload bytes of this frame already seen
    std::uint64_t message_length_ = 0;     ///< bytes of the current message so far
    std::uint8_t header_have_ = 0;         ///< bytes in header_spill_
    std::array<std::byte, kMaxHeaderSize> header_spill_{};
    std::uint8_t control_have_ = 0;
    std::array<std::byte, kMaxControlPayload> control_{};
    Utf8Validator utf8_;
    std::uint8_t text_held_ = 0;             ///< bytes in text_tail_
    std::array<std::byte, 3> text_tail_{};   ///< unmasked start of an incomplete code point
    core::Error error_;
};

} // namespace proxy::ws
