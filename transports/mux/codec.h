#pragma once
// Wire formats of many sessions on one connection (docs/protocol.md, "Many sessions on one
// connection"), sans-I/O: the positions a multiplexed request lists, the events of a
// multiplexed SSE stream, the body of a multiplexed poll answer, and the multiplexed send.
// Each event and entry names its session; messages carry their session's seq.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/result.h"
#include "transports/long_polling/codec.h"
#include "transports/replay_buffer.h"

namespace transports::mux {

/// Sessions one multiplexed request may list, and entries one multiplexed send may carry.
inline constexpr std::size_t kMaxSessions = 100;

/// A listed session and the last message seq its client has seen.
struct Position {
    std::string session;
    std::uint64_t seq = 0;
};

/// Every `session=<id>.<n>` of a raw query string, in order. Code::BadRequest (Side::Client)
/// when there is none, more than kMaxSessions, one listed twice, or one that is not a session
/// id followed by `.` and a decimal seq.
proxy::core::Result<std::vector<Position>> parse_positions(std::string_view query);

// ---- SSE ----------------------------------------------------------------------------------

/// One session of the `mux` announce: `reset` non-empty for an unknown session (then only
/// `session` is written).
struct AnnounceEntry {
    std::string_view session;
    std::uint64_t last_seq = 0;
    std::uint64_t next_seq = 1;
    std::string_view protocol;
    std::string_view reset;
};

/// `retry: <retry_ms>` and the `mux` event.
void append_announce(std::string& out, std::string_view send_url, std::uint64_t heartbeat_ms,
                     std::uint64_t retry_ms, std::span<const AnnounceEntry> sessions);
/// One message event, its data `<id> <seq> <body>`: the default type for text without CR,
/// `mt` (the text as a JSON string) or `mb` (standard base64); text payloads are valid UTF-8.
void append_message(std::string& out, std::string_view session, std::uint64_t seq, bool binary,
                    std::string_view payload);
void append_gap(std::string& out, std::string_view session, std::uint64_t from, std::uint64_t to);
void append_close(std::string& out, std::string_view session, std::uint16_t code,
                  std::string_view reason);
void append_detached(std::string& out, std::string_view session, std::string_view reason);

// ---- poll ---------------------------------------------------------------------------------

/// What one session says in a multiplexed poll answer.
struct PollEntry {
    std::string_view session;
    std::string_view reset;      ///< non-empty: unknown session, nothing else is written
    std::string_view detached;   ///< non-empty: another connection took the session
    std::optional<Gap> gap;
    std::vector<long_polling::OutMessage> messages;
    std::optional<long_polling::Close> close;
};

/// `{"sessions":[…]}` with the entries in order; `messages` is written for every entry that
/// is neither a reset nor a detach.
std::string encode_poll(std::span<const PollEntry> entries);

// ---- send ---------------------------------------------------------------------------------

/// One session's batch of a multiplexed send.
struct SendEntry {
    std::string session;
    std::uint64_t seq = 0;
    std::vector<long_polling::InMessage> messages;
};

/// Parses `[{"session":"<id>","seq":N,"messages":[…]},…]` (keys in any order, each exactly
/// once; `messages` as a batch POST's body, at most `max_messages` per entry, each at most
/// `max_message` bytes; seq ≥ 1; at most kMaxSessions entries, each session once). Failures are
/// Code::BadRequest (syntax as `offset O: …`, content as `entry E: …`) or Code::PayloadTooLarge
/// (`entry E: …`), Side::Client.
proxy::core::Result<std::vector<SendEntry>> parse_send(std::string_view body,
                                                       std::uint64_t max_message,
                                                       std::size_t max_messages);

/// One session's outcome: `error` empty → `{"session","next_seq"}`, else
/// `{"session","error"[,"expected_seq"][,"retry_after"]}` (zero values are left out).
struct SendResult {
    std::string_view session;
    std::uint64_t next_seq = 0;
    std::string_view error;
    std::uint64_t expected_seq = 0;
    std::uint64_t retry_after = 0;
};

/// `{"results":[…]}` in order.
std::string encode_send_results(std::span<const SendResult> results);

} // namespace transports::mux
