#include "proxy/ws/writer.h"

namespace proxy::ws {

void FrameWriter::append_header(bool fin, Opcode opcode, std::uint64_t length) {
    std::array<std::byte, kMaxHeaderSize> header{};
    const std::array<std::byte, 4>* mask = nullptr;
    if (role_ == Role::Client) {
        mask_ = masks_->next();
        mask = &mask_;
    }
    const std::size_t n = encode_header(header, fin, opcode, length, mask);
    out_.append(reinterpret_cast<const char*>(header.data()), n);
}

void FrameWriter::begin_frame(bool fin, Opcode opcode, std::uint64_t length) {
    frame_start_ = out_.size();
    append_header(fin, opcode, length);
    remaining_ = length;
    offset_ = 0;
}

void FrameWriter::payload(std::span<const std::byte> bytes) {
    if (bytes.empty()) {
        return;
    }
    const std::size_t start = out_.size();
    out_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (role_ == Role::Client) {
        apply_mask(std::as_writable_bytes(std::span<char>(out_.data() + start, bytes.size())),
                   mask_, offset_);
    }
    offset_ += bytes.size();
    remaining_ -= std::min<std::uint64_t>(remaining_, bytes.size());
    if (remaining_ == 0) {
        append_held();
    }
}

void FrameWriter::append_held() {
    for (const auto& frame : held_) {
        out_.append(frame);
    }
    held_.clear();
}

bool FrameWriter::abandon_frame() {
    if (!mid_frame()) {
        return true;
    }
    if (frame_start_ == kNoFrameStart) {
        return false;
    }
    out_.resize(frame_start_);
    frame_start_ = kNoFrameStart;
    remaining_ = 0;
    append_held();
    return true;
}

void FrameWriter::control(Opcode opcode, std::span<const std::byte> payload_bytes) {
    const std::array<std::byte, 4>* mask = nullptr;
    std::array<std::byte, 4> key{};
    if (role_ == Role::Client) {
        key = masks_->next();
        mask = &key;
    }
    std::string frame = encode_frame(true, opcode, payload_bytes, mask);
    if (mid_frame()) {
        held_.push_back(std::move(frame));
        return;
    }
    out_.append(frame);
}

void FrameWriter::close(std::uint16_t code, std::string_view reason) {
    const std::string payload_text = close_payload(code, reason);
    control(Opcode::Close, std::as_bytes(std::span<const char>(payload_text.data(),
                                                               payload_text.size())));
}

void FrameWriter::clear() noexcept {
    out_.clear();
    frame_start_ = kNoFrameStart;  // what was staged is on its way to the peer
    if (out_.capacity() > 32 * 1024) {
        // Do not keep a large buffer alive on an idle connection.
        std::string().swap(out_);
    }
}

} // namespace proxy::ws
