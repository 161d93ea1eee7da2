#pragma once
// Long-poll wire format (SPEC §3 "Long-poll wire format" and "Sending (both)"): the JSON
// bodies of the open and poll responses, and the POST bodies a client sends. Pure functions:
// bytes in, bytes or values out; no I/O, no clock, no session state.
//
// Shapes, byte-exact (no whitespace is ever written; keys always in this order):
//
//   open:  {"session":"S","send":"URL","poll":"URL","hold_ms":25000,"last_seq":0}
//   poll:  {"reset":{"session":"S","reason":"R"},        only when a reset marker is given
//           "gap":{"from":1,"to":5},                      only when a gap marker is given
//           "messages":[{"seq":7,"text":"hi"},{"seq":8,"binary":"AAE="}],   always present
//           "close":{"code":1000,"reason":"bye"}}         only when a close marker is given
//   batch POST body (client -> proxy):  [{"text":"hi"},{"binary":"AAE="}]
//
// The poll key order follows time: reset and gap describe what happened before the first
// message, close what happened after the last one. JSON consumers must not depend on it;
// tests and docs/protocol.md do.

#include "proxy/core/result.h"
#include "transports/json.h"
#include "transports/replay_buffer.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace transports::long_polling {

/// One backend→client message as handed to the encoder. `payload` is a view (typically into
/// the replay buffer) that must stay valid until encode_poll_response returns; it is copied.
struct OutMessage {
    std::uint64_t seq = 0;    ///< Per-session sequence number (1, 2, 3, ...).
    bool binary = false;      ///< Binary messages are sent as base64, text as a JSON string.
    std::string_view payload; ///< Text: valid UTF-8 (validated by the WS decoder).
};

/// Gap marker: the messages `from`..`to` (both included, as transports::Gap of the replay
/// buffer) were evicted before the client saw them. Written as given (SPEC §3: never a silent
/// skip).
using Gap = transports::Gap;

/// Reset marker: the polled session was unknown, so a fresh one was opened. `session` is the
/// id the client must use from now on; `reason` is a short ASCII token such as "unknown".
struct Reset {
    std::string session;
    std::string reason;
};

/// Close marker: the backend closed with `code` and `reason` after all earlier messages.
struct Close {
    std::uint16_t code = 1000;
    std::string reason; ///< Valid UTF-8 (the WS decoder rejects anything else with 1007).
};

/// Poll response body, see the header comment for the exact bytes. `messages` are written in
/// the order given (the caller passes ascending seqs). Text payloads and every string field
/// must be valid UTF-8 (precondition, not checked); they are escaped per RFC 8259 with U+2028
/// and U+2029 escaped as well (transports::json::append_string). Binary payloads are standard
/// padded base64 (RFC 4648 §4). Never fails; output size is linear in the input.
std::string encode_poll_response(std::span<const OutMessage> messages,
                                 const std::optional<Gap>& gap, const std::optional<Reset>& reset,
                                 const std::optional<Close>& close);

/// Open response body: `{"session":…,"send":…,"poll":…,"hold_ms":…,"last_seq":…}`, plus
/// `"protocol":…` when the backend selected a subprotocol; strings JSON-escaped. `send`/`poll`
/// are the URLs the client uses for POST and poll; `last_seq` is the highest seq already
/// assigned (0 for a new session), i.e. the first `ack` to poll with.
std::string encode_open_response(std::string_view session, std::string_view send_url,
                                 std::string_view poll_url, std::uint64_t hold_ms,
                                 std::uint64_t last_seq, std::string_view protocol = {});

/// One client→backend message decoded from a POST body. Owns its bytes.
struct InMessage {
    bool binary = false; ///< Forward as a binary frame (else text, and `payload` is UTF-8).
    std::string payload;

    bool operator==(const InMessage&) const = default;
};

/// Parses a `&batch=1` POST body: a JSON array of objects, each with exactly one key, `text`
/// (a string) or `binary` (a string holding padded base64). Strict RFC 8259 and the checks of
/// transports::json::Reader; no other keys, no duplicates, no other value types. Runs in time
/// linear in `body`, never recurses, and allocates at most a small multiple of `body.size()`.
/// Failures (all Side::Client):
///  - Code::PayloadTooLarge: more than `max_count` items (`more than N messages`, found as soon
///    as item N+1 starts), or one decoded message over `max_message` bytes
///    (`item I: message of B bytes exceeds max_message M`).
///  - Code::BadRequest: syntax, as `offset O: what` (e.g. `offset 17: expected ',' or ']'`),
///    or content, as `item I: what` (`invalid base64`, `unknown key "x"`, `duplicate key
///    "text"`, `both text and binary`, `expected "text" or "binary"`).
/// Item indices I are 0-based, so item I becomes client seq N+I. Errors are reported in byte
/// order: the first problem in the body wins. An empty array is valid and yields no messages.
proxy::core::Result<std::vector<InMessage>>
parse_batch(std::string_view body, std::uint64_t max_message, std::size_t max_count);

/// parse_batch's array, read from `reader` (whitespace, then '['), which is left just past the
/// ']': for documents that embed a batch (the multiplexed send, transports/mux/codec.h).
proxy::core::Result<std::vector<InMessage>>
read_batch(json::Reader& reader, std::uint64_t max_message, std::size_t max_count);

/// A single-message text POST (any content type but application/octet-stream): the body as is,
/// or Code::BadRequest (`body is not valid UTF-8 at offset O`). The caller enforces the size.
proxy::core::Result<std::string> decode_text_body(std::string_view body);

/// One message of a parsed poll response (client side; owns its bytes).
struct PolledMessage {
    std::uint64_t seq = 0;
    bool binary = false;
    std::string payload; ///< Decoded: base64 undone, escapes undone.

    bool operator==(const PolledMessage&) const = default;
};

/// A parsed poll response (client side).
struct PollResponse {
    std::vector<PolledMessage> messages;
    std::optional<Gap> gap;
    std::optional<Reset> reset;
    std::optional<Close> close;
};

/// Client-side inverse of encode_poll_response, for tests, fuzz round-trips and C++ test
/// clients; the proxy itself never calls it. Accepts the keys in any order, but is as strict as
/// parse_batch otherwise: unknown or duplicate keys, a missing `messages`, `seq`, `code`, etc.,
/// a close code above 65535 and bad base64 are Code::BadRequest. Linear, non-recursive.
proxy::core::Result<PollResponse> parse_poll_response(std::string_view body);

} // namespace transports::long_polling
