#pragma once
// LoopbackListener: a TCP socket bound to 127.0.0.1 (port chosen by the OS) and listening,
// made with plain POSIX calls outside any loop, the way a service manager makes the sockets it
// passes on (socket activation, proxy/core/systemd.h). Nothing here touches libuv.

#include <cstdint>
#include <string>

namespace proxy::test {

/// See the file comment. Closes its fd on destruction unless released or closed before.
class LoopbackListener {
  public:
    /// Binds and listens (backlog 16). ok() is false when any step failed.
    LoopbackListener();
    ~LoopbackListener();
    LoopbackListener(const LoopbackListener&) = delete;
    LoopbackListener& operator=(const LoopbackListener&) = delete;

    bool ok() const noexcept { return fd_ >= 0 && port_ != 0; }
    /// The listening fd (close-on-exec), or -1 once closed or released.
    int fd() const noexcept { return fd_; }
    std::uint16_t port() const noexcept { return port_; }
    /// "127.0.0.1:<port>".
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    /// Closes the fd now. Idempotent.
    void close() noexcept;
    /// Gives the fd to the caller, who closes it; fd() is -1 afterwards.
    int release() noexcept;

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

/// A blocking TCP client socket (close-on-exec) connected to 127.0.0.1:`port`, with a 5 s
/// receive timeout; -errno when socket() or connect() failed.
int connect_loopback(std::uint16_t port);

} // namespace proxy::test
