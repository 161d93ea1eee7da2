#pragma once
// FakeSession: a transports::SessionView over a real ReplayBuffer, for tests of SseTransport and
// PollTransport without a backend (STYLE §1: transport.h's fake). The test plays the backend
// side (push(), close()) and the session's registry (attach(), gone()); the fake records every
// call a transport makes on it (delivered, acknowledged, set_transport_full, detach) and applies
// acknowledgements to the buffer as the real session does.

#include "transports/transport.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxy::test {

/// See the file comment. The attached transport is not owned.
class FakeSession final : public transports::SessionView {
  public:
    /// A session `id` whose buffer holds at most `max_bytes` / `max_messages`.
    explicit FakeSession(std::string id, std::uint64_t max_bytes = 1024 * 1024,
                         std::uint32_t max_messages = 10'000)
        : id_(std::move(id)), replay_(max_bytes, max_messages) {}

    // ---- SessionView ----
    std::string_view id() const override { return id_; }
    std::string_view protocol() const override { return protocol_; }
    const transports::ReplayBuffer& replay() const override { return replay_; }
    const std::optional<transports::CloseInfo>& close_info() const override { return close_; }
    void delivered(std::uint64_t seq) override { delivered_.push_back(seq); }
    void acknowledged(std::uint64_t seq) override;
    void set_transport_full(bool full) override { full_.push_back(full); }
    void detach(transports::Transport& transport) override;
    /// POST rules (exactly once, in order; SeqGap beyond the next expected seq), or
    /// `send_answer` when the test set one. Forwarded messages land in forwarded().
    transports::SendOutcome send(std::uint64_t first_seq,
                                 std::vector<transports::ClientMessage>& messages) override;
    std::uint64_t expected_client_seq() const override { return next_client_seq_; }
    /// Records the close, sets close_info() and ends the attached transport (on_session_gone).
    void close_by_client(std::uint16_t code, std::string_view reason) override;

    // ---- what the test does ----
    /// Makes every send() answer `kind` without forwarding (Busy, RateLimited…); nullopt
    /// restores the POST rules.
    void set_send_answer(std::optional<transports::SendOutcome::Kind> kind) { answer_ = kind; }
    /// Sets the selected subprotocol.
    void set_protocol(std::string protocol) { protocol_ = std::move(protocol); }
    /// Attaches `transport`; a transport attached before gets on_replaced(), as with Session.
    void attach(transports::Transport& transport);
    /// Stores a message without telling anyone (a backlog before a transport attaches).
    std::uint64_t store(std::string payload, bool binary = false);
    /// Stores a message and tells the attached transport (on_messages()).
    std::uint64_t push(std::string payload, bool binary = false);
    /// Sets the close (the backend closed) and, when `notify`, tells the attached transport.
    void close(std::uint16_t code, std::string reason, bool notify = true);
    /// The session goes away: the attached transport gets on_session_gone() and is forgotten.
    void gone();

    // ---- what the transports did ----
    /// Every delivered(seq), in order.
    const std::vector<std::uint64_t>& delivered_calls() const noexcept { return delivered_; }
    /// Every acknowledged(seq), in order.
    const std::vector<std::uint64_t>& acknowledged_calls() const noexcept { return acked_; }
    /// Every set_transport_full(full), in order.
    const std::vector<bool>& full_calls() const noexcept { return full_; }
    /// detach() calls by the attached transport, and by anyone else (a bug in a transport).
    std::size_t detach_calls() const noexcept { return detaches_; }
    std::size_t stray_detach_calls() const noexcept { return stray_detaches_; }
    /// The attached transport, or nullptr.
    transports::Transport* attached() const noexcept { return transport_; }
    /// Client messages forwarded by send(), in order.
    const std::vector<transports::ClientMessage>& forwarded() const noexcept { return forwarded_; }
    /// close_by_client() calls.
    std::size_t client_closes() const noexcept { return client_closes_; }

  private:
    std::string id_;
    std::string protocol_;
    transports::ReplayBuffer replay_;
    std::optional<transports::CloseInfo> close_;
    transports::Transport* transport_ = nullptr;
    std::vector<std::uint64_t> delivered_;
    std::vector<std::uint64_t> acked_;
    std::vector<bool> full_;
    std::size_t detaches_ = 0;
    std::size_t stray_detaches_ = 0;
    std::uint64_t next_client_seq_ = 1;
    std::vector<transports::ClientMessage> forwarded_;
    std::optional<transports::SendOutcome::Kind> answer_;
    std::size_t client_closes_ = 0;
};

} // namespace proxy::test
