#include "proxy/ws/decoder.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace proxy::ws {

namespace {

constexpr std::uint8_t kFinBit = 0x80;
constexpr std::uint8_t kRsvBits = 0x70;
constexpr std::uint8_t kOpcodeBits = 0x0F;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7F;

std::uint8_t u8(std::byte b) noexcept { return std::to_integer<std::uint8_t>(b); }

// Opcodes 0-2 and 8-A are defined; 3-7 and B-F are reserved (RFC 6455 §5.2).
bool is_reserved_opcode(std::uint8_t op) noexcept { return (op > 0x2 && op < 0x8) || op > 0xA; }

// Header size once the second byte is known: 2 bytes, the extended length, the mask key.
std::size_t header_size(std::byte second) noexcept {
    const std::uint8_t b1 = u8(second);
    const std::uint8_t len7 = b1 & kLengthBits;
    const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    return 2 + ext + ((b1 & kMaskBit) != 0 ? 4 : 0);
}

// Frames decoded by a server come from the client and vice versa; the side takes the blame.
core::Side side_for(Role role) noexcept {
    return role == Role::Server ? core::Side::Client : core::Side::Backend;
}

} // namespace

Decoder::Decoder(DecoderOptions options, DecoderHandler& handler) noexcept
    : options_(options), handler_(handler) {}

core::Result<std::size_t> Decoder::feed(std::span<std::byte> bytes) {
    if (state_ == State::Failed) {
        return core::Unexpected{error_};
    }
    stop_ = false;
    if (closed_) {
        return bytes.size();
    }
    std::byte* const data = bytes.data();
    const std::size_t size = bytes.size();
    std::size_t pos = 0;
    for (;;) {
        bool ok = true;
        switch (state_) {
        case State::Header:
            if (pos == size) {
                return pos;
            }
            ok = on_header_bytes(data, size, pos);
            break;
        case State::Payload:
            // A frame whose payload is complete ends even when no byte is left, so a zero-length
            // frame (or one whose last chunk triggered stop()) ends at once.
            if (frame_remaining_ == 0) {
                ok = end_data_frame();
                break;
            }
            if (pos == size) {
                return pos;
            }
            ok = on_payload_bytes(data, size, pos);
            break;
        case State::ControlPayload:
            ok = on_control_bytes(data, size, pos);
            if (ok && state_ == State::ControlPayload) {
                return pos; // the control payload needs more input
            }
            break;
        case State::Failed: ok = false; break;
        }
        if (!ok) {
            return core::Unexpected{error_};
        }
        if (closed_) {
            return stop_ ? pos : size; // everything after a Close frame is ignored
        }
        if (stop_) {
            return pos;
        }
    }
}

bool Decoder::on_header_bytes(std::byte* data, std::size_t size, std::size_t& pos) {
    const std::size_t avail = size - pos;
    // Fast path: the whole header is in the input, so parse it where it lies.
    if (header_have_ == 0 && avail >= 2 && avail >= header_size(data[pos + 1])) {
        const std::byte* header = data + pos;
        pos += header_size(data[pos + 1]);
        return check_prefix(header[0], header[1]) && begin_frame(header);
    }
    // Slow path: collect the header in the spill buffer. The first two bytes are checked as
    // soon as they are here, before waiting for the extended length or the mask.
    if (header_have_ < 2) {
        const std::size_t take = std::min<std::size_t>(2u - header_have_, avail);
        std::memcpy(header_spill_.data() + header_have_, data + pos, take);
        header_have_ = static_cast<std::uint8_t>(header_have_ + take);
        pos += take;
        if (header_have_ < 2) {
            return true;
        }
        if (!check_prefix(header_spill_[0], header_spill_[1])) {
            return false;
        }
    }
    const std::size_t need = header_size(header_spill_[1]);
    const std::size_t take = std::min(need - header_have_, size - pos);
    std::memcpy(header_spill_.data() + header_have_, data + pos, take);
    header_have_ = static_cast<std::uint8_t>(header_have_ + take);
    pos += take;
    if (header_have_ < need) {
        return true;
    }
    header_have_ = 0;
    return begin_frame(header_spill_.data());
}

bool Decoder::check_prefix(std::byte first, std::byte second) {
    const std::uint8_t b0 = u8(first);
    const std::uint8_t b1 = u8(second);
    const std::uint8_t op = b0 & kOpcodeBits;
    const bool control = (op & 0x8) != 0;
    if ((b0 & kRsvBits) != 0) {
        return fail_with(core::Code::ProtocolError, "RSV bits set without an extension");
    }
    if (is_reserved_opcode(op)) {
        return fail_with(core::Code::ProtocolError, "reserved opcode " + std::to_string(op));
    }
    const bool masked = (b1 & kMaskBit) != 0;
    if (options_.role == Role::Server && !masked) {
        return fail_with(core::Code::ProtocolError, "unmasked frame from a client");
    }
    if (options_.role == Role::Client && masked) {
        return fail_with(core::Code::ProtocolError, "masked frame from a server");
    }
    if (control && (b0 & kFinBit) == 0) {
        return fail_with(core::Code::ProtocolError, "fragmented control frame");
    }
    if (control && (b1 & kLengthBits) > kMaxControlPayload) {
        return fail_with(core::Code::ProtocolError, "control frame longer than 125 bytes");
    }
    if (!control && op == 0 && !message_in_progress_) {
        return fail_with(core::Code::ProtocolError, "continuation without a message");
    }
    if (!control && op != 0 && message_in_progress_) {
        return fail_with(core::Code::ProtocolError, "new message inside a fragmented one");
    }
    return true;
}

bool Decoder::begin_frame(const std::byte* header) {
    const std::uint8_t b0 = u8(header[0]);
    const std::uint8_t b1 = u8(header[1]);
    const std::uint8_t len7 = b1 & kLengthBits;
    const std::byte* p = header + 2;
    std::uint64_t length = len7;
    // RFC 6455 §5.2: the minimal number of bytes must be used to encode the length, and the
    // most significant bit of a 64-bit length must be 0.
    if (len7 == 126) {
        length = (std::uint64_t{u8(p[0])} << 8) | u8(p[1]);
        p += 2;
        if (length < 126) {
            return fail_with(core::Code::ProtocolError, "16-bit length not minimal");
        }
    } else if (len7 == 127) {
        length = 0;
        for (int i = 0; i < 8; ++i) {
            length = (length << 8) | u8(p[i]);
        }
        p += 8;
        if ((length >> 63) != 0) {
            return fail_with(core::Code::ProtocolError, "64-bit length with its top bit set");
        }
        if (length <= 0xFFFF) {
            return fail_with(core::Code::ProtocolError, "64-bit length not minimal");
        }
    }
    masked_ = (b1 & kMaskBit) != 0;
    if (masked_) {
        std::memcpy(mask_.data(), p, mask_.size());
    }
    const auto op = static_cast<Opcode>(b0 & kOpcodeBits);
    frame_ = FrameHeader{(b0 & kFinBit) != 0, op, length};
    frame_offset_ = 0;
    frame_remaining_ = length;
    if (is_control(op)) {
        state_ = State::ControlPayload;
        control_have_ = 0;
        return true;
    }
    if (op != Opcode::Continuation) {
        message_opcode_ = op;
        message_length_ = 0;
        utf8_.reset();
    }
    // The limit is checked from the header, so no payload of an oversized message is seen.
    const std::uint64_t limit = options_.max_message;
    if (message_length_ > limit || length > limit - message_length_) {
        return fail_with(core::Code::MessageTooBig,
                         "message over " + std::to_string(limit) + " bytes");
    }
    message_length_ += length;
    message_in_progress_ = true;
    state_ = State::Payload;
    handler_.on_data_frame_begin(frame_, message_opcode_);
    return true;
}

bool Decoder::on_payload_bytes(std::byte* data, std::size_t size, std::size_t& pos) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, size - pos));
    const std::span<std::byte> chunk{data + pos, n};
    if (masked_) {
        apply_mask(chunk, mask_, frame_offset_);
    }
    pos += n;
    frame_offset_ += n;
    frame_remaining_ -= n;
    if (message_opcode_ == Opcode::Text) {
        return deliver_text(chunk);
    }
    handler_.on_data_frame_payload(chunk);
    return true;
}

bool Decoder::deliver_text(std::span<const std::byte> chunk) {
    const Utf8Validator before = utf8_;
    if (!utf8_.feed(chunk)) {
        // Fail fast, but first deliver what precedes the bad byte up to the last code point
        // boundary, so the events do not depend on how the input was split.
        Utf8Validator probe = before;
        std::size_t boundary = 0;
        for (std::size_t i = 0; probe.feed(chunk.subspan(i, 1)); ++i) {
            if (probe.complete()) {
                boundary = i + 1;
            }
        }
        if (boundary > 0) {
            deliver_held_text();
            handler_.on_data_frame_payload(chunk.first(boundary));
        }
        text_held_ = 0;
        return fail_with(core::Code::InvalidUtf8, "invalid UTF-8 in a text message");
    }
    if (utf8_.complete()) {
        deliver_held_text();
        handler_.on_data_frame_payload(chunk);
        return true;
    }
    // The chunk ends inside a code point. Its lead byte is among the chunk's last three bytes
    // (a four-byte sequence with three continuation bytes would be complete); when none of
    // them is a lead byte, the chunk only continues the held bytes.
    std::size_t lead = chunk.size();
    for (std::size_t back = 1; back <= std::min<std::size_t>(3, chunk.size()); ++back) {
        if ((u8(chunk[chunk.size() - back]) & 0xC0) != 0x80) {
            lead = chunk.size() - back;
            break;
        }
    }
    if (lead == chunk.size()) {
        std::memcpy(text_tail_.data() + text_held_, chunk.data(), chunk.size());
        text_held_ = static_cast<std::uint8_t>(text_held_ + chunk.size());
        return true;
    }
    deliver_held_text();
    if (lead > 0) {
        handler_.on_data_frame_payload(chunk.first(lead));
    }
    std::memcpy(text_tail_.data(), chunk.data() + lead, chunk.size() - lead);
    text_held_ = static_cast<std::uint8_t>(chunk.size() - lead);
    return true;
}

void Decoder::deliver_held_text() {
    if (text_held_ == 0) {
        return;
    }
    const std::size_t n = text_held_;
    text_held_ = 0;
    handler_.on_data_frame_payload(std::span<const std::byte>(text_tail_.data(), n));
}

bool Decoder::end_data_frame() {
    state_ = State::Header;
    const bool fin = frame_.fin;
    if (fin) {
        if (message_opcode_ == Opcode::Text && !utf8_.complete()) {
            text_held_ = 0;  // never delivered: the message is invalid
            return fail_with(core::Code::InvalidUtf8, "text message ends inside a character");
        }
        message_in_progress_ = false;
    } else {
        // A fragment may end inside a code point: its bytes belong to this frame.
        deliver_held_text();
    }
    handler_.on_data_frame_end(fin);
    return true;
}

bool Decoder::on_control_bytes(std::byte* data, std::size_t size, std::size_t& pos) {
    const auto length = static_cast<std::size_t>(frame_.length);
    std::span<std::byte> payload;
    if (control_have_ == 0 && size - pos >= length) {
        // The whole payload is in the input: unmask and deliver it in place.
        payload = {data + pos, length};
        pos += length;
    } else {
        const std::size_t take = std::min(length - control_have_, size - pos);
        if (take > 0) {
            // An empty feed (a default span: data is null) may land here; memcpy from null is
            // undefined even for 0 bytes (found by the ws_decoder fuzz target, issue 5).
            std::memcpy(control_.data() + control_have_, data + pos, take);
        }
        control_have_ = static_cast<std::uint8_t>(control_have_ + take);
        pos += take;
        if (control_have_ < length) {
            return true;
        }
        payload = {control_.data(), length};
        control_have_ = 0;
    }
    if (masked_) {
        apply_mask(payload, mask_, 0);
    }
    state_ = State::Header;
    switch (frame_.opcode) {
    case Opcode::Ping: handler_.on_ping(payload); return true;
    case Opcode::Pong: handler_.on_pong(payload); return true;
    default: return deliver_close(payload);
    }
}

bool Decoder::deliver_close(std::span<const std::byte> payload) {
    // RFC 6455 §5.5.1: an empty body, or a 2-byte code followed by a UTF-8 reason.
    std::uint16_t code = close_code::kNoStatus;
    std::string_view reason;
    if (payload.size() == 1) {
        return fail_with(core::Code::ProtocolError, "close payload of 1 byte");
    }
    if (!payload.empty()) {
        code = static_cast<std::uint16_t>((u8(payload[0]) << 8) | u8(payload[1]));
        if (!is_valid_close_code(code)) {
            return fail_with(core::Code::ProtocolError,
                             "invalid close code " + std::to_string(code));
        }
        const auto text = payload.subspan(2);
        if (!is_valid_utf8(text)) {
            return fail_with(core::Code::InvalidUtf8, "close reason is not UTF-8");
        }
        reason = {reinterpret_cast<const char*>(text.data()), text.size()};
    }
    closed_ = true;
    handler_.on_close(code, reason);
    return true;
}

bool Decoder::fail_with(core::Code code, std::string context) {
    state_ = State::Failed;
    error_ = core::Error{code, side_for(options_.role), std::move(context)};
    return false;
}

} // namespace proxy::ws
