#pragma once
// Wire helpers for the integration tests: building client requests and frames, and parsing
// what a peer received (HTTP response heads, WebSocket frames). The frame parser here is
// written independently of proxy/ws/ so that a codec bug cannot hide itself in the tests.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxy::test {

/// WebSocket opcodes as plain numbers (tests compare raw wire values).
namespace op {
inline constexpr std::uint8_t kCont = 0x0;
inline constexpr std::uint8_t kText = 0x1;
inline constexpr std::uint8_t kBinary = 0x2;
inline constexpr std::uint8_t kClose = 0x8;
inline constexpr std::uint8_t kPing = 0x9;
inline constexpr std::uint8_t kPong = 0xA;
} // namespace op

/// A fixed, recognisable client masking key.
inline constexpr std::array<std::uint8_t, 4> kClientMask{0x11, 0x22, 0x33, 0x44};

/// A client key from RFC 6455 §1.3 and its accept value.
inline constexpr std::string_view kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
inline constexpr std::string_view kSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// One frame as seen on the wire. `payload` is unmasked.
struct Frame {
    bool fin = false;
    std::uint8_t rsv = 0; ///< the three RSV bits, shifted down (0..7)
    std::uint8_t opcode = 0;
    bool masked = false;
    std::array<std::uint8_t, 4> mask{};
    std::string payload;

    /// Close code of a Close frame (1005 when the payload is empty).
    std::uint16_t close_code() const;
    /// Close reason of a Close frame.
    std::string close_reason() const;
};

/// A reassembled data message (Text or Binary) and how many frames carried it.
struct Message {
    std::uint8_t opcode = 0;
    std::string payload;
    std::size_t frames = 0;
};

/// Incremental frame parser over a growing byte buffer; never throws, never asserts.
class FrameParser {
  public:
    /// Parses every complete frame in `bytes` from the current offset. Returns the frames
    /// completed by this call. `bytes` must start with what earlier calls saw.
    std::vector<Frame> parse(std::string_view bytes);
    /// Bytes consumed so far.
    std::size_t offset() const noexcept { return offset_; }

  private:
    std::size_t offset_ = 0;
};

/// Groups data frames into messages; control frames are skipped. Incomplete trailing
/// messages are left out.
std::vector<Message> messages_of(const std::vector<Frame>& frames);

/// A frame as a client sends it: masked with `mask`, RSV bits from `rsv`.
std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         std::array<std::uint8_t, 4> mask = kClientMask, std::uint8_t rsv = 0);
/// A frame as a server sends it: unmasked.
std::string server_frame(std::uint8_t opcode, std::string_view payload, bool fin = true);
/// A frame with full control over the header: `masked` picks whether a mask key is written.
std::string raw_frame(std::uint8_t opcode, std::string_view payload, bool fin, bool masked,
                      std::array<std::uint8_t, 4> mask, std::uint8_t rsv);
/// Close frame payload: 2-byte code + reason (code 1005: empty).
std::string close_body(std::uint16_t code, std::string_view reason);

/// A parsed HTTP/1.1 response.
struct HttpResponse {
    unsigned status = 0;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::size_t size = 0; ///< bytes of head + body on the wire

    /// First header named `name` (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const;
    /// Number of headers named `name`.
    std::size_t count(std::string_view name) const;
};

/// Parses one response at the start of `bytes`: the head, plus a body of Content-Length bytes
/// (none for 101). nullopt when the response is incomplete or malformed.
std::optional<HttpResponse> parse_response(std::string_view bytes);
/// Parses back-to-back responses (keep-alive); stops at the first incomplete one.
std::vector<HttpResponse> parse_responses(std::string_view bytes);

/// A WebSocket upgrade request for `path` with `key`, Host 127.0.0.1, version 13, plus
/// `extra` header lines (each "Name: value", no CRLF).
std::string upgrade_request(std::string_view path, const std::vector<std::string>& extra = {},
                            std::string_view key = kSampleKey);
/// A plain GET request for `path` plus `extra` header lines.
std::string get_request(std::string_view path, const std::vector<std::string>& extra = {});

/// Sec-WebSocket-Accept for `key` (via proxy/ws/handshake.h; the RFC sample above pins it independently).
std::string accept_for(std::string_view key);

/// Deterministic pseudo-random bytes (for byte-exact relay checks).
std::string pattern_bytes(std::size_t n, std::uint32_t seed);

} // namespace proxy::test
