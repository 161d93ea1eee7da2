#pragma once
// StallClock: the slow-consumer rule shared by the WebSocket relay and the SSE stream
// (SPEC §5, STYLE §3): a client whose socket queue is over its limit, while the proxy has
// stopped reading for it, and that drains nothing for a whole period, is a slow consumer.
// Sans-I/O: the owner samples it on its heartbeat tick with the loop's `now`.

#include <cstddef>
#include <cstdint>

namespace transports {

/// See the file comment.
class StallClock {
  public:
    /// One sample. `full`: the client's queue is over its limit now; `queued`: its size;
    /// `now`: loop time in ms. Returns true when the queue has been full, without shrinking
    /// below the size seen when the period started, for `period` ms; any drain (a smaller
    /// queue) starts the period again, and a sample that is not full forgets it.
    bool stalled(bool full, std::size_t queued, std::uint64_t now, std::uint64_t period) noexcept {
        if (!full) {
            since_ = 0;
            return false;
        }
        if (since_ == 0 || queued < queued_) {
            since_ = now;
            queued_ = queued;
            return false;
        }
        return now - since_ >= period;
    }

  private:
    std::uint64_t since_ = 0;  ///< 0 when not full, else the last time a drain was seen
    std::size_t queued_ = 0;   ///< the queue's size then
};

} // namespace transports
