#pragma once
// StalledListener: a TCP listener on 127.0.0.1:0 whose accept queue is full, so that a new
// connect to it hangs (Linux drops the SYN while the queue is full and the connecting side
// retransmits it after about a second). Used to hold the proxy's backend connect in flight.
// Plain POSIX sockets, outside the loop: nothing here touches libuv.

#include <cstdint>

namespace proxy::test {

/// See the file comment.
class StalledListener {
  public:
    /// Binds, listens with a backlog of 0 and fills the queue with one connection.
    StalledListener();
    ~StalledListener();
    StalledListener(const StalledListener&) = delete;
    StalledListener& operator=(const StalledListener&) = delete;

    /// True when the socket is set up and the queue is full.
    bool ok() const noexcept { return ok_; }
    std::uint16_t port() const noexcept { return port_; }
    /// Accepts the filler connection: a hanging connect completes at its next SYN retransmit.
    void release();

  private:
    int listen_fd_ = -1;
    int filler_fd_ = -1;
    int accepted_fd_ = -1;
    std::uint16_t port_ = 0;
    bool ok_ = false;
};

} // namespace proxy::test
