// Integration tests of proxy/core/loop.h shutdown (STYLE §2.1, §2.10): Loop::close_all() closes
// every handle the way its owner would, each freed in its own close callback, and runs the loop
// until uv_loop_close() succeeds, whatever was still open.

#include "proxy/core/loop.h"
#include "proxy/core/signal.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "tests/support/run_until.h"

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

/// A plain POSIX client socket connected to 127.0.0.1:port that never reads: what it is sent
/// stays in the kernel buffers, so the sender's write queue cannot drain.
struct SilentPeer {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);

    explicit SilentPeer(std::uint16_t port) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        REQUIRE(fd >= 0);
        // Completes in the kernel (listen backlog), before the loop accepts.
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    }
    ~SilentPeer() { ::close(fd); }
    SilentPeer(const SilentPeer&) = delete;
    SilentPeer& operator=(const SilentPeer&) = delete;
};

/// A listener on 127.0.0.1:0 that stores the stream it accepts in `accepted`.
std::unique_ptr<core::TcpListener> listen_local(core::Loop& loop,
                                                std::unique_ptr<core::TcpStream>& accepted) {
    auto listener = std::make_unique<core::TcpListener>(loop);
    REQUIRE(
        listener
            ->listen("127.0.0.1", 0,
                     [&accepted](std::unique_ptr<core::TcpStream> s) { accepted = std::move(s); })
            .has_value());
    return listener;
}

} // namespace

TEST_CASE("loop: regression: close_all frees a stream whose Flush close is still draining") {
    // close_all() used to close such stragglers with uv_close(handle, nullptr): the orphaned
    // stream state (its TCP handle, flush timer and in-flight write) was never freed
    // (LeakSanitizer), and the cancelled write's callback closed the closing handle again.
    // The proxy hits it at exit when drain_timeout passed while a client was not reading.
    ignore_sigpipe();
    core::Loop loop;
    std::unique_ptr<core::TcpStream> accepted;
    auto listener = listen_local(loop, accepted);
    SilentPeer peer(listener->local_port());
    REQUIRE(run_until(
        loop, [&] { return accepted != nullptr; }, 2000));
    listener.reset();

    const std::string big(8 * 1024 * 1024, 'x'); // far more than the socket buffers hold
    REQUIRE(accepted->write(std::string_view(big)));
    run_for(loop, 20);
    REQUIRE(accepted->queued_bytes() > 0);
    accepted->close(core::TcpStream::CloseMode::Flush);
    accepted.reset(); // the Flush close goes on alone: it would wait for the 5 s deadline
    REQUIRE(open_handles(loop) == 2); // its TCP handle and its flush timer

    CHECK(loop.close_all());
    CHECK(loop.handle_owners() == 0);
}

TEST_CASE("loop: close_all closes the handles of owners that outlive it") {
    // Owners destroyed after close_all() (a caller that keeps them, or members destroyed after
    // the Loop's own destructor ran close_all()) find their handles closed and freed: every
    // call is a harmless no-op and their destructors touch no freed memory (ASan).
    ignore_sigpipe();
    core::Loop loop;
    int fired = 0;
    std::unique_ptr<core::TcpStream> accepted;
    auto listener = listen_local(loop, accepted);
    auto connected = std::make_unique<core::TcpStream>(loop);
    bool done = false;
    REQUIRE(connected
                ->connect("127.0.0.1", listener->local_port(),
                          [&done](core::Result<void> r) { done = r.has_value(); })
                .has_value());
    REQUIRE(run_until(
        loop, [&] { return done && accepted != nullptr; }, 2000));
    connected->start_read();
    REQUIRE(connected->write(std::string_view("pending")));
    auto timer = std::make_unique<core::Timer>(loop, [&fired] { ++fired; });
    timer->start(60000);
    auto signal = std::make_unique<core::SignalWatcher>(loop, SIGUSR2, [&fired] { ++fired; });
    CHECK(loop.handle_owners() == 5); // listener, 2 streams, timer, signal watcher

    CHECK(loop.close_all());
    CHECK(loop.handle_owners() == 5); // closed, but alive

    CHECK(accepted->closing());
    CHECK_FALSE(accepted->write(std::string_view("late")));
    CHECK(listener->local_port() == 0);
    timer->start(1);
    CHECK_FALSE(timer->active());
    accepted.reset();
    connected.reset();
    listener.reset();
    timer.reset();
    signal.reset();
    CHECK(loop.handle_owners() == 0);
    CHECK(fired == 0);
}

TEST_CASE("loop: owners may outlive the Loop itself") {
    // Declared before the loop, so destroyed after it: ~Loop closed their handles and unlinked
    // them, and their destructors neither close twice nor touch the freed loop (ASan).
    std::unique_ptr<core::Timer> timer;
    std::unique_ptr<core::TcpStream> stream;
    {
        core::Loop loop;
        timer = std::make_unique<core::Timer>(loop, [] {});
        timer->start(60000);
        stream = std::make_unique<core::TcpStream>(loop);
        CHECK(loop.handle_owners() == 2);
    }
    CHECK_FALSE(timer->active());
    CHECK(stream->closing());
    timer.reset();
    stream.reset();
}

} // namespace proxy::test
