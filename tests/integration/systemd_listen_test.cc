// Integration tests of socket activation's building blocks on a real loop:
// TcpListener::adopt (proxy/core/tcp.h) and InheritedListeners (proxy/core/systemd.h), with
// listening sockets made here the way systemd makes them (bound and listening before we run).

#include "proxy/core/systemd.h"
#include "proxy/core/tcp.h"
#include "tests/support/loopback_socket.h"
#include "tests/support/run_until.h"

#include <arpa/inet.h>
#include <cerrno>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace proxy::test {
namespace {

/// A socket bound to 127.0.0.1:0 and listening, outside the loop, as systemd passes it.
/// Returns the fd, which the caller owns.
int listening_socket(std::uint16_t& port) {
    LoopbackListener listener;
    REQUIRE(listener.ok());
    port = listener.port();
    return listener.release();
}

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

/// Connects a plain blocking client to 127.0.0.1:`port`; the handshake completes in the
/// kernel (listen backlog) before the loop accepts. Returns the fd.
int connect_client(std::uint16_t port) {
    const int fd = proxy::test::connect_loopback(port);
    REQUIRE(fd >= 0);
    return fd;
}

TEST_CASE("TcpListener::adopt accepts on a socket that was bound and listening elsewhere") {
    core::Loop loop;
    std::uint16_t port = 0;
    const int fd = listening_socket(port);
    int accepted = 0;
    std::unique_ptr<core::TcpStream> stream;
    {
        core::TcpListener listener(loop);
        REQUIRE(listener.adopt(fd, [&](std::unique_ptr<core::TcpStream> s) {
            ++accepted;
            stream = std::move(s);
        }));
        CHECK(listener.local_port() == port);
        CHECK(listener.local_address() == "127.0.0.1:" + std::to_string(port));
        const int client = connect_client(port);
        CHECK(run_until(
            loop, [&] { return accepted == 1; }, 5000));
        CHECK(stream->peer_ip() == "127.0.0.1");
        ::close(client);
        stream->close(core::TcpStream::CloseMode::Abort);
        stream.reset();
        listener.close();
        CHECK(run_until(
            loop, [&] { return !fd_open(fd); }, 5000)); // the listener owned it
    }
    CHECK(accepted == 1);
    CHECK(loop.close_all());
    CHECK(loop.handle_owners() == 0);
}

TEST_CASE("TcpListener::adopt of a descriptor that cannot listen fails and closes it") {
    core::Loop loop;
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    int calls = 0;
    {
        core::TcpListener listener(loop);
        auto r = listener.adopt(pipe_fds[0], [&](std::unique_ptr<core::TcpStream>) { ++calls; });
        REQUIRE_FALSE(r);
        CHECK(r.error().code == core::Code::Io);
        CHECK(r.error().context.find("cannot adopt fd") != std::string::npos);
        CHECK(listener.local_address().empty());
        run_for(loop, 10);
        CHECK_FALSE(fd_open(pipe_fds[0]));
        // A second adopt on the failed listener is refused and still takes the fd.
        std::uint16_t port = 0;
        const int fd = listening_socket(port);
        CHECK_FALSE(listener.adopt(fd, [&](std::unique_ptr<core::TcpStream>) { ++calls; }));
        CHECK_FALSE(fd_open(fd));
    }
    ::close(pipe_fds[1]);
    CHECK(calls == 0);
    CHECK(loop.close_all());
}

TEST_CASE("InheritedListeners: take by address, close and report the rest") {
    std::uint16_t port_a = 0;
    std::uint16_t port_b = 0;
    const int a = listening_socket(port_a);
    const int b = listening_socket(port_b);
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    ::close(pipe_fds[1]);

    const auto described = core::describe_socket(a);
    CHECK(described.fd == a);
    CHECK(described.address == "127.0.0.1:" + std::to_string(port_a));
    CHECK(core::describe_socket(pipe_fds[0]).address.empty());

    core::InheritedListeners inherited(
        {core::describe_socket(a), core::describe_socket(b), core::describe_socket(pipe_fds[0])});
    CHECK(inherited.size() == 3);
    CHECK(inherited.take("127.0.0.2", port_a) == -1);
    CHECK(inherited.take("::1", port_a) == -1);
    CHECK(inherited.take("not an ip", port_a) == -1);
    CHECK(inherited.take("", 0) == -1); // the pipe has no address and is never taken
    CHECK(inherited.take("127.0.0.1", port_a) == a);
    CHECK(inherited.take("127.0.0.1", port_a) == -1); // taken once
    CHECK(inherited.size() == 2);

    const auto closed = inherited.close_unclaimed();
    REQUIRE(closed.size() == 2);
    CHECK(closed[0].fd == b);
    CHECK(closed[0].address == "127.0.0.1:" + std::to_string(port_b));
    CHECK(closed[1].address.empty());
    CHECK_FALSE(fd_open(b));
    CHECK_FALSE(fd_open(pipe_fds[0]));
    CHECK(fd_open(a)); // the taken one belongs to the caller
    CHECK(inherited.size() == 0);
    CHECK(inherited.close_unclaimed().empty());
    ::close(a);
}

TEST_CASE("InheritedListeners: the destructor closes what was not taken") {
    std::uint16_t port = 0;
    const int fd = listening_socket(port);
    { core::InheritedListeners inherited({core::describe_socket(fd)}); }
    CHECK_FALSE(fd_open(fd));
}

TEST_CASE("inherited_listeners: nothing without LISTEN_FDS for this pid") {
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_PID");
    CHECK(core::inherited_listeners().empty());
    // Another process's sockets (LISTEN_PID not ours) are not taken, and the variables go.
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_PID", std::to_string(::getppid()).c_str(), 1);
    CHECK(core::inherited_listeners().empty());
    CHECK(std::getenv("LISTEN_FDS") == nullptr);
}

} // namespace
} // namespace proxy::test
