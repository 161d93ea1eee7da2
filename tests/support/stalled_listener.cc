#include "tests/support/stalled_listener.h"

#include <arpa/inet.h>
#include <initializer_list>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace proxy::test {

StalledListener::StalledListener() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) {
        return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 0) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return;
    }
    port_ = ntohs(addr.sin_port);
    // Backlog 0 queues one connection; this one fills the queue.
    filler_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    ok_ = filler_fd_ >= 0 &&
          ::connect(filler_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

StalledListener::~StalledListener() {
    for (int fd : {accepted_fd_, filler_fd_, listen_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

void StalledListener::release() {
    if (accepted_fd_ < 0 && listen_fd_ >= 0) {
        accepted_fd_ = ::accept(listen_fd_, nullptr, nullptr);
    }
}

} // namespace proxy::test
