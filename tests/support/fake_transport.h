#pragma once
// FakeTransport: a transports::Transport that records what its session tells it (STYLE §1:
// transport.h's fake), for tests of proxy::Session without an HTTP client. It pulls from the
// SessionView the way the real transports do: every message after its position (with the gap
// the replay buffer reports first), then the close once every message before it was taken.
// Whether it also reports progress (delivered / acknowledged) is up to the test: by default it
// only records, like a client that reads nothing; `auto_deliver` makes it behave like an SSE
// stream whose socket takes everything at once.

#include "transports/transport.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace proxy::test {

/// One message as the fake took it from the replay buffer.
struct TakenMessage {
    std::uint64_t seq = 0;
    bool binary = false;
    std::string payload;
};

/// See the file comment. Holds a non-owning pointer to its session until it is replaced, the
/// session goes, or the test detaches it.
class FakeTransport final : public transports::Transport {
  public:
    /// A transport for `session` whose client has seen every message up to `after`. It is not
    /// attached: the test calls the session's attach(), then pull() as a real transport's
    /// start() would.
    explicit FakeTransport(transports::SessionView& session, std::uint64_t after = 0)
        : session_(&session), cursor_(after) {}
    /// Detaches when still attached (a test that failed half-way), so the session is not left
    /// pointing at a dead transport.
    ~FakeTransport() override { detach(); }
    FakeTransport(const FakeTransport&) = delete;
    FakeTransport& operator=(const FakeTransport&) = delete;

    // ---- Transport ----
    /// Counts the call and pulls.
    void on_messages() override;
    /// Counts the call and forgets the session (the session already did).
    void on_replaced() override;
    /// Counts the call, pulls what is left and forgets the session.
    void on_session_gone() override;

    // ---- what the test does ----
    /// Takes every message after the position (gap first), then the close when due; with
    /// auto_deliver, reports the new position with delivered(). No-op without a session.
    void pull();
    /// delivered(seq) on the session.
    void deliver(std::uint64_t seq);
    /// acknowledged(seq) on the session.
    void ack(std::uint64_t seq);
    /// set_transport_full(full) on the session.
    void set_full(bool full);
    /// detach(*this) on the session, then forgets it. No-op without a session.
    void detach();

    /// When set, pull() reports everything it took as delivered (an SSE-like client).
    bool auto_deliver = false;

    // ---- what it saw ----
    /// Messages taken, in order.
    const std::vector<TakenMessage>& messages() const noexcept { return messages_; }
    /// Payloads taken, in order (for compact checks).
    std::vector<std::string> payloads() const;
    /// Gaps reported by the replay buffer before the messages that follow them.
    const std::vector<transports::Gap>& gaps() const noexcept { return gaps_; }
    /// The close, once taken (after every message before it).
    const std::optional<transports::CloseInfo>& close() const noexcept { return close_; }
    /// The close's position (SessionView::close_seq()) when it was taken.
    std::uint64_t close_seq() const noexcept { return close_seq_; }
    /// Highest seq taken (or the starting position).
    std::uint64_t position() const noexcept { return cursor_; }
    /// Calls of each Transport callback.
    std::size_t messages_calls() const noexcept { return messages_calls_; }
    std::size_t replaced_calls() const noexcept { return replaced_calls_; }
    std::size_t gone_calls() const noexcept { return gone_calls_; }
    /// True while the fake still refers to its session.
    bool attached() const noexcept { return session_ != nullptr; }

  private:
    transports::SessionView* session_;
    std::uint64_t cursor_;
    std::vector<TakenMessage> messages_;
    std::vector<transports::Gap> gaps_;
    std::optional<transports::CloseInfo> close_;
    std::uint64_t close_seq_ = 0;
    std::size_t messages_calls_ = 0;
    std::size_t replaced_calls_ = 0;
    std::size_t gone_calls_ = 0;
};

} // namespace proxy::test
