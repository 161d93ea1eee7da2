#pragma once
// The SSE wire format (SPEC §3 "SSE wire format"): pure functions that append complete events
// to a byte buffer, and the parser for the `Last-Event-ID` header that EventSource sends back.
// Sans-I/O: no loop, no clock, no allocation besides growing `out` (and one temporary string
// for the base64 of a binary message).
//
// Stream grammar, as parsed by the WHATWG "event stream interpretation" algorithm
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//
//   * Every event is a block of lines ending with a blank line ("\n\n"). Lines end with "\n"
//     only; the encoder never writes CR. Field values are written after ": " (one space, which
//     the parser strips), so a value that starts with a space survives.
//   * `<id>` below is `<session>.<seq>`: the session id, a '.', and the sequence number in
//     canonical decimal (no sign, no leading zero). EventSource echoes the last one it saw in
//     `Last-Event-ID` when it reconnects; parse_last_event_id() reads it.
//   * The `id:` line of an event is always its last line, after every `data:` line and just
//     before the blank line (issue 10). The WHATWG parser adopts an id only when the blank line
//     dispatches the event, so the order does not matter to it; but some clients (npm
//     eventsource 2.x) adopt the id as soon as they read its line. With the id last, a stream
//     cut anywhere before the end of the id line leaves every client at the previous id, and
//     only a cut between the id line and the blank line (one offset per event) can make such
//     a client skip the event; no line order can protect that offset.
//   * JSON in `data:` is written by transports/json.h, so it never contains CR or LF.
//   * Every message event has at least one `data:` line, so even an empty message (text or
//     binary) is dispatched: its data buffer is "\n" (non-empty), and dispatch strips the LF.
//
//   announce (first event of every stream):
//     retry: <retry_ms>\n
//     event: session\n
//     data: {"session":"<session>","send":"<send url>","heartbeat_ms":<n>,"last_seq":<n>}\n
//     id: <session>.<last_seq>\n\n
//     `retry` rides in the announce block (the parser applies it as soon as it reads the line,
//     dispatch or not), so one write carries it. `id` makes EventSource's reconnect id point at
//     this session even before the first message arrives, so a reconnect resumes this session
//     rather than orphaning it. `last_seq` is the position the stream resumes after: every
//     later message has a larger seq (0 = nothing seen yet; seqs start at 1).
//   text message without CR (U+000D), type "message", event.data == the text exactly:
//     data: <line>\n            one per LF-separated line of the text: "a\nb" gives the lines
//                               "a" and "b", "a\n" gives "a" and "", "" gives one empty line
//     id: <session>.<seq>\n
//     \n
//   text message containing CR, type "text-json":
//     event: text-json\n
//     data: "<the text as a JSON string literal>"\n
//     id: <session>.<seq>\n\n
//     Written by json::append_string: '"' and '\\' escaped, C0 controls as \b \f \n \r \t
//     or \u00xx, U+2028/U+2029 as \u2028/\u2029, every other character raw (UTF-8).
//   binary message, type "binary":
//     event: binary\n
//     data: <standard base64 with padding (RFC 4648 §4), empty for an empty message>\n
//     id: <session>.<seq>\n\n
//   gap (messages from..to are lost; the stream continues after `to`), type "gap":
//     event: gap\n
//     data: {"from":<first lost seq>,"to":<last lost seq>}\n
//     id: <session>.<to>\n\n
//   reset (the requested session is unknown; `session` is the new one), type "reset":
//     event: reset\n
//     data: {"session":"<new session>","reason":"<reason>"}\n\n
//   close (the session ended; always the last event of a session), type "close":
//     event: close\n
//     data: {"code":<close code>,"reason":"<reason>"}\n
//     id: <session>.<close seq>\n\n
//     The close has a position of its own, one past the last message (<close seq> = last
//     seq + 1), so a reconnect's Last-Event-ID tells whether the client saw it (issue 10).
//   heartbeat (a comment; EventSource dispatches nothing):
//     :\n\n
//
// Injection safety: the only bytes from the backend are message payloads and the close reason.
// A text payload reaches the stream raw only when it has no CR, and then each LF starts a new
// "data: " line, so no payload line can begin a field of its own; everything else is JSON or
// base64, which contain no CR or LF. U+2028, U+2029, NUL and a U+FEFF are ordinary characters
// to the parser (a BOM is stripped only at the very start of the stream, which is ours).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace transports::sse {

/// A position in a session: the parsed value of `Last-Event-ID`.
struct EventId {
    std::string_view session; ///< Views the string given to parse_last_event_id().
    std::uint64_t seq = 0;    ///< Last sequence number the client saw (0 = none yet).
};

/// Fields of the announce event.
struct Announce {
    std::string_view session;       ///< Session id (is_session_id() holds).
    std::string_view send_url;      ///< Where the client POSTs; any text, JSON-escaped.
    std::uint64_t heartbeat_ms = 0; ///< Heartbeat interval the proxy uses on this stream.
    std::uint64_t last_seq = 0;     ///< Position the stream resumes after (0 = from the start).
    std::uint64_t retry_ms = 0;     ///< EventSource reconnection delay, written as `retry:`.
    std::string_view protocol;      ///< Subprotocol the backend selected; omitted when empty.
};

/// Appends one `data: <line>\n` per LF-separated line of `text` (WHATWG SSE: the data buffer
/// then equals `text`). Returns false and leaves `out` unchanged when `text` holds a CR, which a
/// parser would take for a line end (the caller then sends the text as JSON). `first_opened`:
/// `out` already ends with an open `data: ` line, which the first line of `text` completes.
bool append_data_lines(std::string& out, std::string_view text, bool first_opened = false);

/// True if `session` is a well-formed session id: non-empty and only `A-Z a-z 0-9 - _` (URL-safe
/// base64 plus the `-` that separates an optional instance prefix).
bool is_session_id(std::string_view session) noexcept;

/// Appends one message event for message `seq` of `session` (formats in the header comment).
/// `binary` selects the binary event; otherwise `payload` is text and must be valid UTF-8 (the
/// WebSocket codec guarantees it; invalid bytes could not inject anything, but a browser would
/// decode them to U+FFFD). Precondition: is_session_id(session). Postcondition: `out` has grown
/// by exactly one complete event; a WHATWG parser dispatches exactly one event for it, whose
/// lastEventId is "<session>.<seq>" and whose data decodes (per type) to exactly `payload`,
/// including an empty payload. Never fails. Cost: one pass over `payload` in the common case.
void append_message(std::string& out, std::string_view session, std::uint64_t seq, bool binary,
                    std::span<const std::byte> payload);

/// Appends the announce event that starts every stream; it also sets EventSource's reconnect
/// id to "<session>.<last_seq>" and its reconnection time to `retry_ms`. Precondition:
/// is_session_id(a.session). Postcondition: one complete event of type "session". Never fails.
void append_announce(std::string& out, const Announce& a);

/// Appends a gap event: messages `from`..`to` (inclusive, from <= to) of `session` are lost.
/// It also moves EventSource's reconnect id to "<session>.<to>", so a reconnect does not report
/// the same gap again. Precondition: is_session_id(session). Postcondition: one complete event
/// of type "gap". Never fails.
void append_gap(std::string& out, std::string_view session, std::uint64_t from, std::uint64_t to);

/// Appends a reset event: the session the client asked for is unknown and `session` replaces
/// it; `reason` is any text (JSON-escaped). It does not touch EventSource's reconnect id: the
/// announce of the new session does. Postcondition: one complete event of type "reset".
void append_reset(std::string& out, std::string_view session, std::string_view reason);

/// Appends a close event with the session's close `code` and `reason` (any bytes; JSON-escaped,
/// valid UTF-8 expected as RFC 6455 §5.5.1 requires) at position `seq` of `session` (one past
/// the session's last message). It moves EventSource's reconnect id to "<session>.<seq>", so a
/// reconnect shows that the client saw the close. Precondition: is_session_id(session).
/// Postcondition: one complete event of type "close". Never fails.
void append_close(std::string& out, std::string_view session, std::uint64_t seq,
                  std::uint16_t code, std::string_view reason);

/// Appends a heartbeat: the comment line ":" and a blank line (3 bytes). EventSource dispatches
/// nothing and keeps all its state. Never fails.
void append_heartbeat(std::string& out);

/// Parses a `Last-Event-ID` value "<session>.<seq>" strictly: is_session_id(session), then one
/// '.', then seq as 1 to 20 decimal digits without sign or leading zero ("0" itself is allowed)
/// that fits in 64 bits. Anything else (empty, spaces, a second '.', overflow) gives nullopt.
/// The result views `value`, which must outlive it.
[[nodiscard]] std::optional<EventId> parse_last_event_id(std::string_view value) noexcept;

} // namespace transports::sse
