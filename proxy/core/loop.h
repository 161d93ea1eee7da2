#pragma once
// The event loop (one per thread), deferred deletion and the read-buffer pool.
// Only proxy/core/ includes <uv.h>; everything else uses these wrappers.
//
// Ownership, the one rule for every object that lives on a loop (STYLE §2):
//  1. Every object has exactly one owner at every moment, and that owner holds it in a
//     std::unique_ptr. Nothing owns itself: no object news or deletes itself, and no raw
//     pointer ever owns.
//  2. A connection object (an HTTP connection, a relay, a session, a session's stream or held
//     poll, an admin connection) is created with std::make_unique and adopted by its worker's
//     registry (proxy::Context::adopt), which owns it while it lives. It ends by asking the
//     registry to retire it (proxy::Context::retire): the registry moves its unique_ptr into
//     this Loop's deferred deletions, so it is destroyed at the loop's next check phase, after
//     the callback stack that ended it has unwound (STYLE §2.5). Other objects hold only
//     non-owning pointers to it and learn of its end through its callbacks.
//  3. Its parts (streams, timers, the backend connection, transports it created) are
//     unique_ptr members: destroying the object destroys them.
//  4. A uv handle is owned by the proxy/core wrapper that opened it (HandleOwner). The handle's
//     memory, and the wrapper state its callbacks use (TcpStream::Impl), is freed in the last
//     close callback once the wrapper is gone, or by the wrapper's destructor when no handle
//     is open any more; nothing else frees it (STYLE §2.1, §2.2).
//  5. Callbacks never keep an object alive: after a call that can run foreign callbacks, an
//     object re-checks whether it is closing before touching its members (STYLE §2.6).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

struct uv_loop_s;
struct uv_check_s;
struct uv_idle_s;
struct uv_prepare_s;

namespace proxy::core {

/// An object whose destruction is deferred to a safe point of the loop (after the current
/// callback stack unwinds). Sessions and connections derive from it (STYLE §2.5).
class DeferredDeletable {
  public:
    virtual ~DeferredDeletable() = default;
};

class Loop;
class SendBatch;

/// Base of every proxy/core object that owns uv handles (TcpStream's state, TcpListener,
/// Timer, SignalWatcher). It links itself into its Loop for its whole life, so that
/// Loop::close_all() can close what is still open the owner's way: each handle freed in its own
/// close callback (STYLE §2.1). Not copyable or movable: the Loop points at it.
class HandleOwner {
  public:
    HandleOwner(const HandleOwner&) = delete;
    HandleOwner& operator=(const HandleOwner&) = delete;

    /// Closes every handle this object still has open; each is freed in its close callback.
    /// Idempotent. Afterwards no callback of the object fires and its methods are harmless
    /// no-ops; an orphaned object (its public owner already gone) frees itself in the last
    /// close callback. Called by Loop::close_all(); the owner's own close() may share it.
    virtual void close_handles() noexcept = 0;

  protected:
    /// Links this object into `loop`.
    explicit HandleOwner(Loop& loop) noexcept;
    /// Unlinks it (a no-op once the Loop is destroyed).
    virtual ~HandleOwner();

  private:
    friend class Loop;
    Loop* loop_;
    HandleOwner* prev_ = nullptr;
    HandleOwner* next_ = nullptr;
};

/// Size of one pooled read chunk (STYLE §3).
inline constexpr std::size_t kReadChunkSize = 16 * 1024;

/// Free-list of 16 KiB read chunks. A chunk is taken in alloc_cb and given back right after
/// the read callback returns, so idle connections hold no read memory.
class BufferPool {
  public:
    /// A chunk of kReadChunkSize bytes; reuses a freed one when possible.
    std::byte* take();
    /// Returns a chunk from take(). Keeps at most kMaxFree chunks, frees the rest.
    void give_back(std::byte* chunk) noexcept;
    ~BufferPool();

  private:
    static constexpr std::size_t kMaxFree = 64;
    std::vector<std::byte*> free_;
};

/// Owns a uv loop plus the per-loop services: deferred deletion and the read-buffer pool.
/// Not movable: handles point back at it.
class Loop {
  public:
    Loop();
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    /// The underlying uv loop, for the wrappers in proxy/core only.
    uv_loop_s* raw() noexcept { return loop_; }
    /// Runs until no active handles remain or stop() is called.
    void run();
    /// Runs one iteration without blocking when `nowait`, else blocks for one event. Returns
    /// true when handles remain active.
    bool run_once(bool nowait);
    /// Makes run() return after the current iteration.
    void stop() noexcept;
    /// Loop time in milliseconds (cached at the start of each iteration).
    std::uint64_t now() const noexcept;
    /// Refreshes the cached loop time.
    void update_time() noexcept;

    /// Takes ownership of `object` and destroys it at the next check phase of the loop, after
    /// the current callback stack has unwound. Safe to call from the object's own callbacks.
    void defer_delete(std::unique_ptr<DeferredDeletable> object);
    /// Destroys every pending object now (shutdown and tests).
    void drain_deferred() noexcept;
    /// Number of objects waiting for deferred deletion.
    std::size_t deferred_count() const noexcept { return deferred_.size(); }

    /// The read-buffer pool of this loop.
    BufferPool& buffers() noexcept { return buffers_; }

    /// The batched sender (proxy/core/send_batch.h) that TcpStream queues small writes on,
    /// flushed once after each I/O phase and before the loop blocks; null when io_uring is
    /// unavailable or WSBRIDGE_IO_URING=0, and streams then write at once.
    SendBatch* send_batch() noexcept { return send_batch_.get(); }
    /// Sends what streams queued on the batch now (the loop does it on its own).
    void flush_sends() noexcept;

    /// Shutdown (STYLE §2.10): destroys the deferred objects, asks every HandleOwner still
    /// linked to close its handles (a Flush close still draining is aborted), runs the loop
    /// until every close callback has run, and closes the uv loop. Owners that outlive it find
    /// their handles closed. Returns true when uv_loop_close() succeeded and every handle was
    /// closed by its owner; false when a handle no HandleOwner owns (raw uv code outside
    /// proxy/core) had to be closed without a callback, or the loop would not close.
    /// Idempotent; the destructor calls it.
    bool close_all();
    /// HandleOwner objects alive on this loop. After close_all() only owners whose public
    /// object is still alive remain (tests assert 0: no orphan was leaked).
    std::size_t handle_owners() const noexcept { return owner_count_; }

  private:
    friend class HandleOwner;
    /// close_handles() on every linked owner, including owners linked by earlier ones' calls.
    void close_owned_handles() noexcept;

    uv_loop_s* loop_;
    uv_check_s* check_;
    uv_idle_s* idle_;
    uv_prepare_s* prepare_;
    std::unique_ptr<SendBatch> send_batch_;
    HandleOwner* owners_ = nullptr; ///< intrusive list of live owners (no allocation per owner)
    std::size_t owner_count_ = 0;
    std::vector<std::unique_ptr<DeferredDeletable>> deferred_;
    BufferPool buffers_;
    bool services_closed_ = false;
    bool closed_ = false;
};

} // namespace proxy::core
