// Integration tests of proxy/core/send_batch.h (io_uring batched sends) on real sockets, and of
// TcpStream's use of it on a real loop: order, fallbacks, close paths.
//
// Where the kernel refuses io_uring (seccomp in some containers, io_uring_disabled) or
// WSBRIDGE_IO_URING=0 is set, SendBatch::create() returns null: the SendBatch cases then say
// they are skipped, and the TcpStream cases run on the plain write path, which must behave the
// same.

#include "proxy/core/send_batch.h"
#include "proxy/core/tcp.h"
#include "tests/support/run_until.h"
#include "tests/support/stream_pair.h"

#include <cerrno>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace proxy::test {
namespace {

/// A connected AF_UNIX stream pair, both ends non-blocking.
struct SocketPair {
    int a = -1;
    int b = -1;
    SocketPair() {
        int fds[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        a = fds[0];
        b = fds[1];
    }
    ~SocketPair() {
        if (a >= 0) {
            ::close(a);
        }
        if (b >= 0) {
            ::close(b);
        }
    }
    SocketPair(const SocketPair&) = delete;
    SocketPair& operator=(const SocketPair&) = delete;

    /// Everything readable on b now.
    std::string drain_b() const {
        std::string got;
        char buf[65536];
        for (;;) {
            const ssize_t n = ::read(b, buf, sizeof(buf));
            if (n <= 0) {
                return got;
            }
            got.append(buf, static_cast<std::size_t>(n));
        }
    }
};

struct Sender : core::BatchedSender {
    int fd = -1;
    std::string bytes;
    std::vector<int> results;
    std::function<void(Sender&)> on_done;

    int batch_fd() const noexcept override { return fd; }
    std::span<const std::byte> batch_bytes() const noexcept override {
        return std::as_bytes(std::span<const char>(bytes.data(), bytes.size()));
    }
    void batch_done(int result) noexcept override {
        results.push_back(result);
        if (on_done) {
            on_done(*this);
        }
    }
};

std::unique_ptr<core::SendBatch> make_batch() {
    auto batch = core::SendBatch::create();
    if (batch == nullptr) {
        MESSAGE("skipped: io_uring is unavailable here or WSBRIDGE_IO_URING=0");
    }
    return batch;
}

} // namespace

TEST_CASE("send batch: 300 sockets' sends go out in two io_uring_enter calls, every byte in "
          "place") {
    auto batch = make_batch();
    if (batch == nullptr) {
        return;
    }
    constexpr std::size_t kCount = 300; // more than one ring (256 entries)
    std::vector<std::unique_ptr<SocketPair>> pairs;
    std::vector<std::unique_ptr<Sender>> senders;
    for (std::size_t i = 0; i < kCount; ++i) {
        pairs.push_back(std::make_unique<SocketPair>());
        auto s = std::make_unique<Sender>();
        s->fd = pairs.back()->a;
        s->bytes = "message " + std::to_string(i) + std::string(i % 97, 'x');
        batch->add(s.get());
        batch->add(s.get()); // idempotent
        senders.push_back(std::move(s));
    }
    CHECK(batch->pending() == kCount);
    batch->flush();
    CHECK(batch->pending() == 0);
    CHECK(batch->enters() == 2);
    CHECK(batch->sends() == kCount);
    for (std::size_t i = 0; i < kCount; ++i) {
        REQUIRE(senders[i]->results.size() == 1);
        CHECK(senders[i]->results[0] == static_cast<int>(senders[i]->bytes.size()));
        CHECK(pairs[i]->drain_b() == senders[i]->bytes);
        CHECK_FALSE(core::SendBatch::queued(senders[i].get()));
    }
    batch->flush(); // nothing queued: no system call
    CHECK(batch->enters() == 2);
}

TEST_CASE("send batch: a full socket answers EAGAIN or a short count at once, never blocks") {
    auto batch = make_batch();
    if (batch == nullptr) {
        return;
    }
    SocketPair p;
    // Fill a's send path until the kernel refuses more.
    const std::string chunk(65536, 'f');
    std::size_t filled = 0;
    for (int i = 0; i < 10000; ++i) {
        const ssize_t n = ::send(p.a, chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (n <= 0) {
            REQUIRE(errno == EAGAIN);
            break;
        }
        filled += static_cast<std::size_t>(n);
    }
    REQUIRE(filled > 0);
    Sender s;
    s.fd = p.a;
    s.bytes = std::string(200000, 'z');
    batch->add(&s);
    batch->flush(); // returns: the request was not parked in the kernel
    REQUIRE(s.results.size() == 1);
    const int r = s.results[0];
    CHECK((r == -EAGAIN || (r >= 0 && r < static_cast<int>(s.bytes.size()))));
    CHECK(batch->healthy());
}

TEST_CASE("send batch: a closed peer gives EPIPE without SIGPIPE; a bad descriptor fails only "
          "its own send") {
    auto batch = make_batch();
    if (batch == nullptr) {
        return;
    }
    SocketPair closed_peer;
    ::close(closed_peer.b);
    closed_peer.b = -1;
    SocketPair good;
    Sender to_closed;
    to_closed.fd = closed_peer.a;
    to_closed.bytes = "nobody";
    Sender bad_fd;
    bad_fd.fd = 1 << 20; // far above any open descriptor
    bad_fd.bytes = "bad";
    Sender ok;
    ok.fd = good.a;
    ok.bytes = "fine";
    batch->add(&to_closed);
    batch->add(&bad_fd);
    batch->add(&ok);
    batch->flush();
    REQUIRE(to_closed.results.size() == 1);
    CHECK(to_closed.results[0] == -EPIPE);
    REQUIRE(bad_fd.results.size() == 1);
    CHECK(bad_fd.results[0] == -EBADF);
    REQUIRE(ok.results.size() == 1);
    CHECK(ok.results[0] == 4);
    CHECK(good.drain_b() == "fine");
    CHECK(batch->healthy());
}

TEST_CASE("send batch: callbacks may remove later senders of the round and add new ones") {
    auto batch = make_batch();
    if (batch == nullptr) {
        return;
    }
    SocketPair p1, p2, p3, p4;
    Sender first, removed_pending, removed_in_round, added;
    first.fd = p1.a;
    first.bytes = "first";
    removed_in_round.fd = p2.a;
    removed_in_round.bytes = "sent but not reported";
    removed_pending.fd = p3.a;
    removed_pending.bytes = "never sent";
    added.fd = p4.a;
    added.bytes = "added later";
    first.on_done = [&](Sender&) {
        batch->remove(&removed_in_round);
        batch->add(&added);
    };
    batch->add(&first);
    batch->add(&removed_in_round);
    batch->add(&removed_pending);
    batch->remove(&removed_pending);
    batch->remove(&removed_pending); // idempotent
    CHECK(batch->pending() == 2);
    batch->flush();
    CHECK(first.results == std::vector<int>{5});
    CHECK(removed_in_round.results.empty());
    CHECK(removed_pending.results.empty());
    CHECK(added.results == std::vector<int>{11});
    CHECK(p3.drain_b().empty());
    CHECK(p4.drain_b() == "added later");
    CHECK(batch->enters() == 2);
}

TEST_CASE("send batch: a ring that fails reports EAGAIN for what it did not send and turns "
          "itself off") {
    auto batch = make_batch();
    if (batch == nullptr) {
        return;
    }
    // The ring is created single-issuer: a submission from another thread is refused
    // (EEXIST), the one way to make a healthy ring fail on demand.
    SocketPair p;
    Sender s;
    s.fd = p.a;
    s.bytes = "from the wrong thread";
    batch->add(&s);
    std::thread other([&] { batch->flush(); });
    other.join();
    REQUIRE(s.results.size() == 1);
    if (s.results[0] > 0) {
        MESSAGE("skipped: this kernel has no single-issuer rings, so the ring did not fail");
        CHECK(batch->healthy());
        return;
    }
    CHECK(s.results[0] == -EAGAIN);
    CHECK_FALSE(batch->healthy());
    CHECK(p.drain_b().empty()); // nothing was sent: the caller's fallback sends it once
    // From now on every flush reports EAGAIN at once, without a system call.
    const std::uint64_t enters = batch->enters();
    s.results.clear();
    batch->add(&s);
    batch->flush();
    CHECK(s.results == std::vector<int>{-EAGAIN});
    CHECK(batch->enters() == enters);
    CHECK(p.drain_b().empty());
}

TEST_CASE("send batch: WSBRIDGE_IO_URING=0 turns batching off") {
    const char* old = std::getenv("WSBRIDGE_IO_URING");
    const std::string saved = old != nullptr ? old : "";
    setenv("WSBRIDGE_IO_URING", "0", 1);
    CHECK(core::SendBatch::create() == nullptr);
    setenv("WSBRIDGE_IO_URING", "off", 1);
    CHECK(core::SendBatch::create() == nullptr);
    if (old != nullptr) {
        setenv("WSBRIDGE_IO_URING", saved.c_str(), 1);
    } else {
        unsetenv("WSBRIDGE_IO_URING");
    }
}

namespace {

/// A StreamPair whose accepted side reads into a sink.
struct Pair : StreamPair {
    ByteSink sink;
    explicit Pair(core::Loop& l) : StreamPair(l) { read_accepted_into(sink); }
};

} // namespace

TEST_CASE("tcp with batched sends: small, big and small writes arrive in order, byte-exact") {
    core::Loop loop;
    {
        Pair p(loop);
        std::string expected;
        auto write = [&](const std::string& s) {
            CHECK(p.connected->write(std::string_view(s)));
            expected += s;
        };
        write("small one,");
        write("small two,");
        CHECK(p.connected->queued_bytes() == (loop.send_batch() != nullptr ? 20U : 0U));
        std::string big(1 << 20, 'B'); // more than the kernel takes at once: the uv_write path
        for (std::size_t i = 0; i < big.size(); i += 4096) {
            big[i] = static_cast<char>('a' + (i / 4096) % 26);
        }
        write(big);
        write("small three");
        std::string piece = "gathered";
        const std::span<const std::byte> pieces[2] = {
            std::as_bytes(std::span<const char>(piece.data(), 4)),
            std::as_bytes(std::span<const char>(piece.data() + 4, 4))};
        CHECK(p.connected->writev(pieces));
        expected += piece;
        REQUIRE(run_until(
            loop, [&] { return p.sink.got.size() >= expected.size(); }, 5000));
        CHECK(p.sink.got == expected);
        CHECK(p.connected->queued_bytes() == 0);
        p.close_all();
    }
    CHECK(run_until(
        loop, [&] { return open_handles(loop) == 0; }, 2000));
    CHECK(loop.close_all());
}

TEST_CASE("tcp with batched sends: 200 streams' writes of one iteration cost one system call") {
    core::Loop loop;
    if (loop.send_batch() == nullptr) {
        MESSAGE("skipped: io_uring is unavailable here or WSBRIDGE_IO_URING=0");
        return;
    }
    {
        std::vector<std::unique_ptr<Pair>> pairs;
        for (int i = 0; i < 200; ++i) {
            pairs.push_back(std::make_unique<Pair>(loop));
        }
        loop.flush_sends();
        const std::uint64_t enters = loop.send_batch()->enters();
        for (int i = 0; i < 200; ++i) {
            pairs[static_cast<std::size_t>(i)]->connected->write(
                std::string_view("ping " + std::to_string(i)));
        }
        CHECK(loop.send_batch()->pending() == 200);
        REQUIRE(run_until(
            loop,
            [&] {
                for (auto& p : pairs) {
                    if (p->sink.got.empty()) {
                        return false;
                    }
                }
                return true;
            },
            5000));
        CHECK(loop.send_batch()->enters() == enters + 1);
        for (int i = 0; i < 200; ++i) {
            CHECK(pairs[static_cast<std::size_t>(i)]->sink.got == "ping " + std::to_string(i));
        }
        for (auto& p : pairs) {
            p->close_all();
        }
    }
    CHECK(run_until(
        loop, [&] { return open_handles(loop) == 0; }, 2000));
    CHECK(loop.close_all());
}

TEST_CASE("tcp with batched sends: bytes written just before a close still reach the peer") {
    core::Loop loop;
    {
        Pair p(loop);
        SUBCASE("Flush: bytes, then FIN") {
            p.connected->write(std::string_view("flushed words"));
            p.connected->close(core::TcpStream::CloseMode::Flush);
            REQUIRE(run_until(
                loop, [&] { return p.sink.eof; }, 2000));
            CHECK(p.sink.got == "flushed words");
        }
        SUBCASE("shutdown_write: bytes, then FIN, the stream still open") {
            p.connected->write(std::string_view("half closed"));
            p.connected->shutdown_write();
            CHECK_FALSE(p.connected->write(std::string_view("too late")));
            REQUIRE(run_until(
                loop, [&] { return p.sink.eof; }, 2000));
            CHECK(p.sink.got == "half closed");
        }
        SUBCASE("Abort: the bytes already written are not lost") {
            p.connected->write(std::string_view("aborted words"));
            p.connected->close(core::TcpStream::CloseMode::Abort);
            REQUIRE(run_until(
                loop, [&] { return p.sink.eof; }, 2000));
            CHECK(p.sink.got == "aborted words");
        }
        SUBCASE("destroyed at once") {
            p.connected->write(std::string_view("orphaned words"));
            p.connected->close(core::TcpStream::CloseMode::Flush);
            p.connected.reset();
            p.connected = std::make_unique<core::TcpStream>(loop); // for close_all()
            REQUIRE(run_until(
                loop, [&] { return p.sink.eof; }, 2000));
            CHECK(p.sink.got == "orphaned words");
        }
        p.close_all();
    }
    CHECK(run_until(
        loop, [&] { return open_handles(loop) == 0; }, 2000));
    CHECK(loop.close_all());
}

} // namespace proxy::test
