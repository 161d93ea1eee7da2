#pragma once
// The event loop (one per thread), deferred deletion and the read-buffer pool.
// Only proxy/core/ includes <uv.h>; everything else uses these wrappers.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

struct uv_loop_s;
struct uv_check_s;
struct uv_idle_s;

namespace proxy::core {

/// An object whose destruction is deferred to a safe point of the loop (after the current
/// callback stack unwinds). Sessions and connections derive from it (STYLE §2.5).
class DeferredDeletable {
  public:
    virtual ~DeferredDeletable() = default;
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

    /// Closes every remaining handle and runs the loop until uv_loop_close() succeeds. Returns
    /// true when the loop closed cleanly (no handle leaked).
    bool close_all();

  private:
    uv_loop_s* loop_;
    uv_check_s* check_;
    uv_idle_s* idle_;
    std::vector<std::unique_ptr<DeferredDeletable>> deferred_;
    BufferPool buffers_;
    bool services_closed_ = false;
    bool closed_ = false;
};

} // namespace proxy::core
