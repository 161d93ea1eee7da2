#pragma once
// RFC 6455 §5 framing vocabulary and the frame encoder. Sans-I/O: functions write into
// caller-provided memory and never allocate except where they return a std::string.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/core/result.h"

namespace proxy::ws {

/// Frame opcodes (RFC 6455 §5.2). Other values are reserved and rejected by the decoder.
enum class Opcode : std::uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

/// Which side of a connection a codec plays (RFC 6455 §5.1 masking rules).
/// Server: decodes frames sent by a client (must be masked), encodes unmasked frames.
/// Client: decodes frames sent by a server (must be unmasked), encodes masked frames.
enum class Role : std::uint8_t { Server, Client };

/// Close status codes used by the proxy (RFC 6455 §7.4.1).
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kUnsupportedData = 1003;
inline constexpr std::uint16_t kNoStatus = 1005;   ///< never on the wire: close had no code
inline constexpr std::uint16_t kAbnormal = 1006;   ///< never on the wire: no close frame
inline constexpr std::uint16_t kInvalidPayload = 1007;
inline constexpr std::uint16_t kPolicyViolation = 1008;
inline constexpr std::uint16_t kMessageTooBig = 1009;
inline constexpr std::uint16_t kInternalError = 1011;
inline constexpr std::uint16_t kBadGateway = 1014;
} // namespace close_code

/// Largest frame header: 2 bytes + 8-byte length + 4-byte mask.
inline constexpr std::size_t kMaxHeaderSize = 14;
/// Largest control frame payload (RFC 6455 §5.5).
inline constexpr std::size_t kMaxControlPayload = 125;

/// True for Close, Ping and Pong.
constexpr bool is_control(Opcode op) noexcept {
    return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

/// True when `code` may appear in a Close frame on the wire (RFC 6455 §7.4): 1000–1003,
/// 1007–1014 and 3000–4999. 1004, 1005, 1006, 1015 and everything else are invalid.
bool is_valid_close_code(std::uint16_t code) noexcept;

/// The close code a codec error maps to: ProtocolError→1002, InvalidUtf8→1007,
/// MessageTooBig→1009, PolicyViolation→1008, anything else→1011.
std::uint16_t close_code_for(core::Code code) noexcept;

/// Writes a frame header into `out` using the minimal length encoding, RSV bits clear.
/// `mask` is null for unmasked frames. Returns the header length (2..14).
std::size_t encode_header(std::span<std::byte, kMaxHeaderSize> out, bool fin, Opcode opcode,
                          std::uint64_t payload_length, const std::array<std::byte, 4>* mask);

/// XORs `bytes` with `key`, starting at position `offset` of the key stream (so a payload may
/// be masked in several calls). Masking and unmasking are the same operation.
void apply_mask(std::span<std::byte> bytes, const std::array<std::byte, 4>& key,
                std::uint64_t offset) noexcept;

/// Builds a Close frame payload: 2-byte big-endian code then the reason, which is truncated
/// on a UTF-8 character boundary to fit 125 bytes. code 1005 gives an empty payload.
std::string close_payload(std::uint16_t code, std::string_view reason);

/// Encodes one whole frame (header + payload, masked when `mask` is non-null) into a string.
/// For control frames and small messages; the relay streams large payloads instead.
std::string encode_frame(bool fin, Opcode opcode, std::span<const std::byte> payload,
                         const std::array<std::byte, 4>* mask);

} // namespace proxy::ws
