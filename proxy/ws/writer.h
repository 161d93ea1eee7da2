#pragma once
// FrameWriter: a sans-I/O staging buffer that turns relayed frames into wire bytes for one
// peer. The relay streams each frame (header first, payload as it arrives) into the buffer and
// flushes it to the socket once per read, so a read carrying many small frames costs one
// write syscall. In Role::Client the writer masks every frame with a fresh key.
//
// Control frames may be sent between the frames of a fragmented message but never inside a
// frame (RFC 6455 §5.4): a control frame asked for while a frame's payload is incomplete is
// held and appended right after that frame ends.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/crypto.h"
#include "proxy/ws/frame.h"

namespace proxy::ws {

/// Staging encoder for one direction of one connection.
class FrameWriter {
  public:
    /// `masks` is required (and used) only in Role::Client; it must outlive the writer.
    FrameWriter(Role role, core::MaskSource* masks) noexcept : role_(role), masks_(masks) {}

    /// Starts a data frame of `length` payload bytes. Precondition: !mid_frame().
    void begin_frame(bool fin, Opcode opcode, std::uint64_t length);
    /// Appends payload of the current frame (masked in Role::Client). Precondition: the bytes
    /// do not exceed what begin_frame() announced. Ends the frame when the last byte arrives.
    void payload(std::span<const std::byte> bytes);
    /// Appends a whole control frame, or holds it until the current frame ends. Payload must be
    /// at most 125 bytes (callers pass validated payloads).
    void control(Opcode opcode, std::span<const std::byte> payload);
    /// Appends a Close frame (code 1005 → empty payload). Precondition: !mid_frame().
    void close(std::uint16_t code, std::string_view reason);

    /// Drops the frame in progress when none of it has left the staging buffer yet (no clear()
    /// since its begin_frame()), so a frame whose payload turned out invalid (a client's bad
    /// UTF-8, a peer gone mid-frame) never reaches the peer and a Close may follow at once.
    /// Control frames held for the frame's end are appended. Returns true when the writer is
    /// at a frame boundary afterwards (also when no frame was in progress), false when part of
    /// the frame was already handed out (the peer is mid-frame: only an abort can end it).
    bool abandon_frame();
    /// True while a begun frame still expects payload bytes.
    bool mid_frame() const noexcept { return remaining_ > 0; }
    /// True when bytes are staged.
    bool has_output() const noexcept { return !out_.empty(); }
    /// The staged bytes. The caller writes them and then calls clear().
    std::string_view output() const noexcept { return out_; }
    /// Forgets the staged bytes (after writing them). Keeps the capacity.
    void clear() noexcept;

  private:
    void append_header(bool fin, Opcode opcode, std::uint64_t length);
    void append_held();

    Role role_;
    core::MaskSource* masks_;
    std::string out_;
    std::array<std::byte, 4> mask_{};
    std::uint64_t remaining_ = 0;
    std::uint64_t offset_ = 0;
    std::size_t frame_start_ = kNoFrameStart;  ///< offset in out_ of the current frame's header
    static constexpr std::size_t kNoFrameStart = static_cast<std::size_t>(-1);
    std::vector<std::string> held_;  ///< encoded control frames waiting for a frame end
};

} // namespace proxy::ws
