// Integration tests of proxy/core/tcp.h lifetimes on a real loop (STYLE §2.2: close() and the
// destructor are idempotent, the owner may die at once or later).

#include "proxy/core/tcp.h"
#include "tests/support/run_until.h"
#include "tests/support/stalled_listener.h"
#include "tests/support/stream_pair.h"

#include <doctest/doctest.h>

namespace proxy::test {

TEST_CASE("tcp: regression: a stream destroyed iterations after close() completed is not a "
          "use-after-free") {
    // Before the fix the close callback freed the stream's state while the TcpStream still
    // pointed at it, and ~TcpStream wrote to the freed memory (ASan: heap-use-after-free in
    // TcpStream::~TcpStream). Owners that keep a closed stream for a while (a test client, a
    // session between transports) hit it.
    core::Loop loop;
    {
        StreamPair p(loop);
        std::size_t left = 0; // handles left open once the close completed
        SUBCASE("Abort") {
            p.connected->close(core::TcpStream::CloseMode::Abort);
            left = 2; // listener, accepted
        }
        SUBCASE("Flush, after the peer's FIN") {
            p.connected->close(core::TcpStream::CloseMode::Flush);
            p.accepted->close(core::TcpStream::CloseMode::Abort);
            left = 1; // listener
        }
        REQUIRE(run_until(
            loop, [&] { return open_handles(loop) == left; }, 2000));
        // The closed stream stays usable as an object: calls are harmless no-ops.
        CHECK(p.connected->closing());
        CHECK_FALSE(p.connected->write(std::string_view("late")));
        CHECK(p.connected->queued_bytes() == 0);
        p.connected->close(core::TcpStream::CloseMode::Abort);
        p.connected.reset(); // long after the close callback ran
        p.accepted->close(core::TcpStream::CloseMode::Abort);
        run_for(loop, 5);
        p.accepted.reset();
        p.listener.close();
    }
    CHECK(run_until(
        loop, [&] { return open_handles(loop) == 0; }, 2000));
    CHECK(loop.close_all());
}

TEST_CASE("tcp: a stream destroyed right after close() finishes its Flush on its own") {
    core::Loop loop;
    {
        StreamPair p(loop);
        p.connected->write(std::string_view("last words"));
        p.connected->close(core::TcpStream::CloseMode::Flush);
        p.connected.reset(); // at once: the Impl drains, sends FIN and waits for ours
        ByteSink sink;
        p.read_accepted_into(sink);
        REQUIRE(run_until(
            loop, [&] { return sink.eof; }, 2000));
        CHECK(sink.got == "last words");
        p.accepted->close(core::TcpStream::CloseMode::Abort);
        p.listener.close();
    }
    CHECK(run_until(
        loop, [&] { return open_handles(loop) == 0; }, 2000));
    CHECK(loop.close_all());
}

TEST_CASE("tcp: regression: closing a stream whose connect is pending cancels the connect") {
    // Before the fix a Flush close kept the connect pending: libuv then reported it as
    // connected at once (the done callback ran after close()), and the socket lingered until
    // the flush deadline.
    StalledListener stalled;
    REQUIRE(stalled.ok());
    core::Loop loop;
    int calls = 0;
    {
        core::TcpStream s(loop);
        auto r = s.connect("127.0.0.1", stalled.port(), [&calls](core::Result<void>) { ++calls; });
        REQUIRE(r.has_value());
        run_for(loop, 20);
        REQUIRE(calls == 0); // the connect hangs: the listener's queue is full
        SUBCASE("Flush") { s.close(core::TcpStream::CloseMode::Flush); }
        SUBCASE("Abort") { s.close(core::TcpStream::CloseMode::Abort); }
        CHECK(run_until(
            loop, [&] { return open_handles(loop) == 0; }, 1000));
        run_for(loop, 50);
        CHECK(calls == 0);
    }
    CHECK(loop.close_all());
}

} // namespace proxy::test
