#pragma once
// StreamPair: a loopback listener with one connected and one accepted core::TcpStream, and
// ByteSink, a handler that collects what a stream reads. For tests of proxy/core/tcp.h.

#include "proxy/core/tcp.h"

#include <memory>
#include <string>

namespace proxy::test {

/// Collects the bytes a stream reads and whether it saw the end.
struct ByteSink : core::StreamHandler {
    std::string got;
    bool eof = false;
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_error(const core::Error& error) override;
};

/// A listener on 127.0.0.1:0, a stream connected to it and the stream it accepted; the
/// constructor runs the loop until both exist (REQUIREs it within 2 s).
struct StreamPair {
    core::Loop& loop;
    core::TcpListener listener{loop};
    std::unique_ptr<core::TcpStream> accepted;
    std::unique_ptr<core::TcpStream> connected;

    explicit StreamPair(core::Loop& l);
    /// Makes `sink` the accepted stream's handler and starts reading.
    void read_accepted_into(ByteSink& sink);
    /// Aborts both streams (those still held) and closes the listener.
    void close_all();
};

} // namespace proxy::test
