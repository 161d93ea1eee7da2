#pragma once
// Gives the free pages inside the C heap back to the kernel, now and then.
//
// glibc returns memory to the kernel only from the top of its heap. A burst of TLS handshakes
// allocates OpenSSL's record buffers (16 KiB and more each) between the long-lived state of
// the connections that stay; once the burst is over those buffers are free but their pages
// stay resident between live objects, and the process's RSS stays at the burst's peak (about
// a third above the live heap after 2000 handshakes at once). Every `interval`, when the free
// space inside the heap is large, malloc_trim(0) releases those pages (madvise), as HAProxy
// does when it flushes its pools. Without glibc this does nothing.

#include "proxy/core/timer.h"

#include <cstdint>

namespace proxy::core {

/// See the file comment. One per process is enough (malloc_trim covers every arena).
class HeapTrimmer {
  public:
    /// Starts checking every `interval_ms`; the timer does not keep the loop alive.
    HeapTrimmer(Loop& loop, std::uint64_t interval_ms);
    HeapTrimmer(const HeapTrimmer&) = delete;
    HeapTrimmer& operator=(const HeapTrimmer&) = delete;

    /// Trims when the heap's free space is at least `kMinFree` and an eighth of what is in
    /// use. Returns true when it trimmed.
    static bool trim_if_worth_it() noexcept;

    static constexpr std::uint64_t kMinFree = 4u << 20;

  private:
    Timer timer_;
};

} // namespace proxy::core
