#include "tests/support/stream_pair.h"

#include "tests/support/run_until.h"

#include <doctest/doctest.h>

namespace proxy::test {

void ByteSink::on_read(std::span<std::byte> bytes) {
    got.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void ByteSink::on_read_end(const core::Error* /*error*/) {
    eof = true;
}

void ByteSink::on_write_error(const core::Error& /*error*/) {}

StreamPair::StreamPair(core::Loop& l) : loop(l) {
    auto r = listener.listen("127.0.0.1", 0, [this](std::unique_ptr<core::TcpStream> s) {
        accepted = std::move(s);
    });
    REQUIRE(r.has_value());
    connected = std::make_unique<core::TcpStream>(loop);
    bool done = false;
    auto c = connected->connect("127.0.0.1", listener.local_port(),
                                [&done](core::Result<void> res) {
                                    REQUIRE(res.has_value());
                                    done = true;
                                });
    REQUIRE(c.has_value());
    REQUIRE(run_until(
        loop, [&] { return done && accepted != nullptr; }, 2000));
}

void StreamPair::read_accepted_into(ByteSink& sink) {
    accepted->set_handler(&sink);
    accepted->start_read();
}

void StreamPair::close_all() {
    if (connected) {
        connected->close(core::TcpStream::CloseMode::Abort);
    }
    if (accepted) {
        accepted->close(core::TcpStream::CloseMode::Abort);
    }
    listener.close();
}

} // namespace proxy::test
