#pragma once
// ReplayBuffer: the per-session store of backend→client messages (SPEC §3). Each message
// gets the next sequence number (1, 2, 3…). Messages stay until acknowledged (long-poll `ack`)
// or evicted by the bounds (oldest first), so a client that reconnects can be sent exactly
// what it missed, or told explicitly which range is gone (a gap). Pure data structure: no I/O.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace transports {

/// One stored message.
struct StoredMessage {
    std::uint64_t seq = 0;
    bool binary = false;
    std::string payload;
};

/// A lost range of sequence numbers, both ends included.
struct Gap {
    std::uint64_t from = 0;
    std::uint64_t to = 0;
};

/// Bounded FIFO of messages keyed by consecutive sequence numbers.
class ReplayBuffer {
  public:
    /// Bounds: total payload bytes and message count. The newest message is always kept,
    /// even when it alone exceeds `max_bytes`.
    ReplayBuffer(std::uint64_t max_bytes, std::uint32_t max_messages) noexcept
        : max_bytes_(max_bytes), max_messages_(max_messages) {}

    /// Appends a message, assigns its sequence number, then evicts the oldest messages while a
    /// bound is exceeded. Returns the new message's sequence number; `*evicted` (when given)
    /// receives the count of evicted messages, which had not been acknowledged (lost for a
    /// client that has not seen them).
    std::uint64_t push(bool binary, std::string payload, std::size_t* evicted = nullptr);

    /// Drops every message with seq ≤ `seq` (clamped to last_seq()).
    void ack(std::uint64_t seq) noexcept;

    /// Sequence number of the oldest stored message, or next_seq() when empty.
    std::uint64_t first_seq() const noexcept { return messages_.empty() ? next_seq_ : messages_.front().seq; }
    /// Sequence number of the newest message ever pushed (0 before the first).
    std::uint64_t last_seq() const noexcept { return next_seq_ - 1; }
    /// The number the next push() will assign.
    std::uint64_t next_seq() const noexcept { return next_seq_; }

    /// For a client whose last seen message is `after`: the range it can no longer get, or
    /// nullopt when everything after `after` is still stored. `after` beyond last_seq() is
    /// treated as last_seq() (a client cannot have seen messages that do not exist yet).
    std::optional<Gap> gap_after(std::uint64_t after) const noexcept;

    /// Index of the first stored message with seq > `after` (messages().size() when none).
    std::size_t index_after(std::uint64_t after) const noexcept;
    /// The stored messages, oldest first.
    const std::deque<StoredMessage>& messages() const noexcept { return messages_; }
    /// Payload bytes of messages with seq > `after`.
    std::uint64_t bytes_after(std::uint64_t after) const noexcept;
    /// Payload bytes stored.
    std::uint64_t bytes() const noexcept { return bytes_; }
    /// Changes nothing stored; resets numbering is not possible (sequence numbers only grow).
    bool empty() const noexcept { return messages_.empty(); }

  private:
    std::uint64_t max_bytes_;
    std::uint32_t max_messages_;
    std::deque<StoredMessage> messages_;
    std::uint64_t bytes_ = 0;
    std::uint64_t next_seq_ = 1;
    std::uint64_t acked_ = 0;
};

} // namespace transports
