#pragma once
// Batched non-blocking sends: many sockets' small writes in one system call (Linux io_uring,
// through Debian's liburing).
//
// Relaying a small WebSocket message costs the proxy a read and a write on each hop, and on
// machines where every system call pays for page-table isolation the entry and exit dominate
// that cost. A loop iteration typically has tens of streams with a few bytes to send; instead
// of one send(2) each, TcpStream queues them here and the Loop flushes them all with a single
// io_uring_enter(2) after the I/O phase and before blocking again.
//
// Every send carries MSG_DONTWAIT, which io_uring honours by never parking the request: it
// completes inside the same io_uring_enter with the bytes sent, -EAGAIN or an error. So no
// request outlives flush(), no buffer has to outlive it, and nothing is left in the kernel
// when a stream closes. Whatever was not sent falls back to the stream's ordinary libuv write
// path, which also reports errors exactly as before.
//
// When the kernel refuses io_uring (old kernel, seccomp, io_uring_disabled) or the environment
// sets WSBRIDGE_IO_URING=0, create() returns null and streams write at once as before.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace proxy::core {

/// Something with bytes waiting in a SendBatch (TcpStream's state).
class BatchedSender {
  public:
    /// The socket to send on.
    virtual int batch_fd() const noexcept = 0;
    /// The bytes to send; must stay valid and unchanged until batch_done().
    virtual std::span<const std::byte> batch_bytes() const noexcept = 0;
    /// The send finished: `result` bytes were taken (maybe fewer than offered), or -errno.
    /// May add or remove any sender, including this one.
    virtual void batch_done(int result) noexcept = 0;

    virtual ~BatchedSender() = default;

    BatchedSender(const BatchedSender&) = delete;  // a copy would claim the original's place
    BatchedSender& operator=(const BatchedSender&) = delete;

  protected:
    BatchedSender() = default;

  private:
    friend class SendBatch;
    static constexpr std::size_t kNone = ~std::size_t{0};
    std::size_t batch_index_ = kNone;  ///< position in SendBatch::pending_ or in the round
    bool batch_in_round_ = false;      ///< being sent by the current flush() round
};

/// One io_uring used as a batched send(2). Not thread-safe: one per Loop.
class SendBatch {
  public:
    /// A batch on a new ring, or null when io_uring is unavailable or disabled by
    /// WSBRIDGE_IO_URING=0 (or "off", "no", "false").
    static std::unique_ptr<SendBatch> create();
    ~SendBatch();
    SendBatch(const SendBatch&) = delete;
    SendBatch& operator=(const SendBatch&) = delete;

    /// Queues `sender` for the next flush(). Idempotent.
    void add(BatchedSender* sender);
    /// Takes `sender` out of the batch (before or during a flush); its batch_done() will not be
    /// called. Idempotent.
    void remove(BatchedSender* sender) noexcept;
    /// True while `sender` waits for flush() or is in the round being sent.
    static bool queued(const BatchedSender* sender) noexcept {
        return sender->batch_index_ != BatchedSender::kNone;
    }
    /// Number of senders waiting.
    std::size_t pending() const noexcept { return pending_count_; }

    /// Sends for every queued sender, in rounds of up to the ring's size, each round one
    /// io_uring_enter; calls batch_done() for each. Senders added meanwhile are sent in a
    /// later round of the same call. If the ring fails, the batch disables itself and reports
    /// -EAGAIN, so callers fall back to their own write path.
    void flush() noexcept;

    /// False once the ring failed; add() then only queues for flush() to fail over.
    bool healthy() const noexcept { return ring_ != nullptr; }
    /// Sends done through the ring and io_uring_enter calls made, since creation.
    std::uint64_t sends() const noexcept { return sends_; }
    std::uint64_t enters() const noexcept { return enters_; }

  private:
    SendBatch();
    bool setup(unsigned entries);
    void teardown() noexcept;
    /// One round: sends for round_, fills results_ (-EAGAIN for what did not run; a failing
    /// ring tears itself down).
    void submit_round() noexcept;

    struct Ring;                  ///< liburing's ring (send_batch.cc), null once failed
    std::unique_ptr<Ring> ring_;
    unsigned entries_ = 0;

    std::vector<BatchedSender*> pending_;  ///< null where a sender was removed
    std::size_t pending_count_ = 0;
    std::vector<BatchedSender*> round_;    ///< null where a sender was removed mid-round
    std::vector<int> results_;
    std::uint64_t sends_ = 0;
    std::uint64_t enters_ = 0;
};

} // namespace proxy::core
