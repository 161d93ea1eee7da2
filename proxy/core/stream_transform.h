#pragma once
// StreamTransform: the one place where a byte transform (TLS) sits between a TcpStream's socket
// and its owner, inside the stream (as h2o keeps TLS inside its socket type). The owner (the
// HTTP front, the relay, a session's transport, the backend client) reads and writes plain
// bytes and never learns whether a transform is there; the transform's wire bytes go through
// the stream's one write queue, so watermarks, backpressure and send batching apply to them as
// to plain bytes.
//
// Calls come from the stream, synchronously, on its loop thread. Output is appended to the
// string arguments (never replaced), which the stream owns and reuses.

#include "proxy/core/result.h"

#include <span>
#include <string>

namespace proxy::core {

/// A bidirectional byte transform owned by one TcpStream (TcpStream::set_transform).
class StreamTransform {
  public:
    virtual ~StreamTransform() = default;

    /// The socket connected (client side only): appends the first wire bytes to send (a TLS
    /// ClientHello). An error fails the stream.
    virtual Result<void> on_connected(std::string& wire) = 0;
    /// Wire bytes arrived from the peer: appends the plain bytes they carry for the owner to
    /// `plain` and the wire bytes to answer with (handshake messages, alerts) to `wire`. An
    /// error (the peer broke the transform's protocol; `wire` may hold an alert to send first)
    /// reaches the owner as on_read_end(error).
    virtual Result<void> on_wire(std::span<const std::byte> in, std::string& plain,
                                 std::string& wire) = 0;
    /// The owner writes `pieces` (one write: a frame's header and payload): appends the wire
    /// bytes to `wire`. Bytes written before the transform is ready (a handshake in progress)
    /// are held and appended by a later on_wire.
    virtual Result<void> on_plain(std::span<const std::span<const std::byte>> pieces,
                                  std::string& wire) = 0;
    /// A Flush close: appends the wire bytes that end the transform cleanly (TLS close_notify).
    virtual void on_close(std::string& wire) = 0;
    /// True once plain bytes flow (the TLS handshake completed).
    virtual bool ready() const noexcept = 0;
};

} // namespace proxy::core
