#pragma once
// The session framing over WebSocket (docs/protocol.md, "WebSocket sessions"; subprotocol
// `wsbridge.session.v1`), sans-I/O.
//
// One WebSocket message per session message. Text WebSocket messages are text messages,
// unchanged. A binary WebSocket message starts with a kind byte: 0x00 a binary session message
// (the rest is its payload), 0x01 a control message (the rest is a JSON object with a "type").
// Sequence numbers are counted, not written: the `session` control names the position the
// stream continues after, and each message is the next number.
//
// MessageAssembler turns a client's decoded data frames (ws::Decoder events) into whole
// session messages or controls, holding the kind byte across fragment boundaries; the
// control writers build the proxy's controls; parse_client_control() reads the client's.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy/core/result.h"

namespace transports::ws_session {

/// The subprotocol a client offers to get a session instead of the transparent relay.
inline constexpr std::string_view kSubprotocol = "wsbridge.session.v1";

/// First byte of a binary WebSocket message.
enum class Kind : std::uint8_t { Binary = 0x00, Control = 0x01 };

/// One whole client WebSocket message, classified.
struct ClientFrame {
    enum class Type : std::uint8_t { Text, Binary, Control } type = Type::Text;
    std::string payload;  ///< the message (text or binary payload), or the control's JSON
};

/// Assembles one client WebSocket message at a time from decoder events. Text and control
/// payloads are kept whole (a session message is forwarded whole); the kind byte is checked
/// and stripped as it arrives, whatever the fragmentation.
class MessageAssembler {
  public:
    /// A data message begins (the first frame's opcode: text when `binary` is false).
    void begin(bool binary);
    /// Payload bytes of the message, in order.
    void append(std::span<const std::byte> bytes);
    /// The message ended: the classified message, or a Code::ProtocolError (an empty binary
    /// message, an unknown kind byte). Resets for the next message.
    proxy::core::Result<ClientFrame> finish();
    /// True between begin() and finish().
    bool active() const noexcept { return active_; }

  private:
    ClientFrame frame_;
    bool active_ = false;
    bool binary_ = false;
    bool have_kind_ = false;
    std::uint8_t kind_ = 0;
};

/// A control message from the client.
struct ClientControl {
    enum class Type : std::uint8_t { Ack, Close } type = Type::Ack;
    std::uint64_t seq = 0;       ///< Ack: every message up to seq was received
    std::uint16_t code = 1000;   ///< Close: 1000 or 3000-4999
    std::string reason;          ///< Close: at most 123 bytes of UTF-8
};

/// Parses a client control's JSON: `{"type":"ack","seq":N}` or
/// `{"type":"close"[,"code":C][,"reason":"R"]}`, members in any order. Unknown types, unknown
/// or repeated members, a missing `seq`, a code outside 1000/3000-4999 or a reason over 123
/// bytes are Code::ProtocolError (Side::Client) naming the problem.
proxy::core::Result<ClientControl> parse_client_control(std::string_view json);

/// What the `session` control announces.
struct SessionAnnounce {
    std::string_view session;
    std::uint64_t last_seq = 0;       ///< the next message on this connection is last_seq + 1
    std::uint64_t next_seq = 1;       ///< the next client seq the proxy expects
    std::uint64_t heartbeat_ms = 0;
    std::string_view protocol;        ///< the backend's subprotocol ("" when none)
};

// Control writers: each appends the kind byte 0x01 and the JSON object to `out` (the payload
// of one binary WebSocket message).
void append_session(std::string& out, const SessionAnnounce& announce);
void append_reset(std::string& out, std::string_view new_session, std::string_view reason);
void append_gap(std::string& out, std::uint64_t from, std::uint64_t to);
void append_ack(std::string& out, std::uint64_t next_seq);
void append_close(std::string& out, std::uint16_t code, std::string_view reason);
void append_replaced(std::string& out);
/// `expected_seq` is written when non-zero.
void append_error(std::string& out, std::string_view error, std::string_view detail,
                  std::uint64_t expected_seq = 0);

} // namespace transports::ws_session
