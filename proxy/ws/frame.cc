#include "proxy/ws/frame.h"

#include <cstring>

namespace proxy::ws {

bool is_valid_close_code(std::uint16_t code) noexcept {
    // RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011; 1012-1014 were registered later in the
    // IANA registry. 1004 is reserved, 1005, 1006 and 1015 must never be sent, the rest of
    // 0-2999 is reserved and 3000-4999 belongs to libraries and applications (§7.4.2).
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

std::uint16_t close_code_for(core::Code code) noexcept {
    switch (code) {
    case core::Code::ProtocolError: return close_code::kProtocolError;
    case core::Code::InvalidUtf8: return close_code::kInvalidPayload;
    case core::Code::MessageTooBig: return close_code::kMessageTooBig;
    case core::Code::PolicyViolation: return close_code::kPolicyViolation;
    default: return close_code::kInternalError;
    }
}

std::size_t encode_header(std::span<std::byte, kMaxHeaderSize> out, bool fin, Opcode opcode,
                          std::uint64_t payload_length, const std::array<std::byte, 4>* mask) {
    const auto mask_bit = static_cast<std::uint8_t>(mask != nullptr ? 0x80 : 0x00);
    out[0] = std::byte{
        static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | static_cast<std::uint8_t>(opcode))};
    std::size_t n = 2;
    // RFC 6455 §5.2: the minimal number of bytes must be used to encode the length.
    if (payload_length < 126) {
        out[1] = std::byte{static_cast<std::uint8_t>(mask_bit | payload_length)};
    } else if (payload_length <= 0xFFFF) {
        out[1] = std::byte{static_cast<std::uint8_t>(mask_bit | 126)};
        out[2] = std::byte{static_cast<std::uint8_t>(payload_length >> 8)};
        out[3] = std::byte{static_cast<std::uint8_t>(payload_length)};
        n = 4;
    } else {
        out[1] = std::byte{static_cast<std::uint8_t>(mask_bit | 127)};
        for (std::size_t i = 0; i < 8; ++i) {
            out[2 + i] = std::byte{static_cast<std::uint8_t>(payload_length >> (56 - 8 * i))};
        }
        n = 10;
    }
    if (mask != nullptr) {
        std::memcpy(out.data() + n, mask->data(), mask->size());
        n += mask->size();
    }
    return n;
}

void apply_mask(std::span<std::byte> bytes, const std::array<std::byte, 4>& key,
                std::uint64_t offset) noexcept {
    // Rotate the key so that rotated[0] applies to bytes[0], then repeat it into a 64-bit word.
    // Loading and storing through memcpy keeps memory order on both sides, so the XOR is
    // byte-for-byte correct on any endianness and any alignment.
    std::array<std::byte, 8> pattern{};
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        pattern[i] = key[(offset + i) & 3];
    }
    std::uint64_t key64 = 0;
    std::memcpy(&key64, pattern.data(), sizeof(key64));

    std::byte* p = bytes.data();
    std::size_t left = bytes.size();
    while (left >= 32) {
        std::uint64_t w[4];
        std::memcpy(w, p, sizeof(w));
        w[0] ^= key64;
        w[1] ^= key64;
        w[2] ^= key64;
        w[3] ^= key64;
        std::memcpy(p, w, sizeof(w));
        p += 32;
        left -= 32;
    }
    while (left >= 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, p, sizeof(w));
        w ^= key64;
        std::memcpy(p, &w, sizeof(w));
        p += 8;
        left -= 8;
    }
    // Every step above advanced by a multiple of 4, so the tail starts at pattern[0].
    for (std::size_t i = 0; i < left; ++i) {
        p[i] ^= pattern[i];
    }
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    if (code == close_code::kNoStatus) {
        return {};
    }
    constexpr std::size_t kMaxReason = kMaxControlPayload - 2;
    if (reason.size() > kMaxReason) {
        // Cut before the character that straddles the limit: back off over continuation
        // bytes (10xxxxxx) so the cut lands on a lead byte or ASCII.
        std::size_t cut = kMaxReason;
        while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        reason = reason.substr(0, cut);
    }
    std::string out;
    out.reserve(2 + reason.size());
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason);
    return out;
}

std::string encode_frame(bool fin, Opcode opcode, std::span<const std::byte> payload,
                         const std::array<std::byte, 4>* mask) {
    std::array<std::byte, kMaxHeaderSize> header{};
    const std::size_t header_size = encode_header(header, fin, opcode, payload.size(), mask);
    std::string out(header_size + payload.size(), '\0');
    auto* dst = reinterpret_cast<std::byte*>(out.data());
    std::memcpy(dst, header.data(), header_size);
    if (!payload.empty()) {
        std::memcpy(dst + header_size, payload.data(), payload.size());
        if (mask != nullptr) {
            apply_mask({dst + header_size, payload.size()}, *mask, 0);
        }
    }
    return out;
}

} // namespace proxy::ws
