#pragma once
// TCP streams and listeners over libuv, with an owned write queue and read pausing by reason.
//
// Lifetimes (STYLE §2): the uv handle is heap-allocated and freed only in its close callback.
// close() and the destructor are idempotent; after them no handler callback fires, so the
// owner may be destroyed right after calling close(). Handler callbacks are never invoked
// synchronously from within a call made by the owner (write, start_read, connect...), except
// where documented. Loop::close_all() closes what is still open (a Flush close still draining
// is aborted); streams and listeners that outlive it behave as closed.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "proxy/core/loop.h"
#include "proxy/core/result.h"
#include "proxy/core/stream_transform.h"

struct uv_tcp_s;
struct uv_write_s;

namespace proxy::core {

/// Receives stream events. The `bytes` view of on_read points into a pooled chunk that is
/// returned to the pool when on_read returns: copy anything kept. The handler may call any
/// TcpStream method from these callbacks, including close().
class StreamHandler {
  public:
    virtual ~StreamHandler() = default;
    /// Bytes arrived. Writable in place (codecs unmask in place).
    virtual void on_read(std::span<std::byte> bytes) = 0;
    /// The peer closed its side (EOF) or the connection failed (`error` set, Code::Io). After a
    /// failure the stream closes its socket as soon as this returns, whatever the handler did.
    virtual void on_read_end(const Error* error) = 0;
    /// The write queue went above its high watermark (fires once per crossing).
    virtual void on_write_high() {}
    /// The write queue fell to or below the low watermark after being high.
    virtual void on_write_low() {}
    /// A write failed (the connection is unusable); fires at most once. The stream closes its
    /// socket as soon as this returns.
    virtual void on_write_error(const Error& error) = 0;
};

/// Reasons a stream's reading is paused; reading resumes only when no bit is set.
enum PauseReason : std::uint8_t {
    kPausePeerQueueFull = 1,   ///< the other side's write queue is over its high watermark
    kPauseHandshake = 2,       ///< waiting for the backend handshake before reading on
    kPauseClosing = 4,         ///< shutting down
    kPauseOwner = 8,           ///< the owner does not want input now
};

/// One connected TCP stream. Move-only by pointer (hold in std::unique_ptr).
class TcpStream {
  public:
    /// A stream not yet connected/accepted on `loop`. Never fails (uv_tcp_init cannot fail on
    /// an initialised loop with AF_UNSPEC).
    explicit TcpStream(Loop& loop);
    ~TcpStream();
    TcpStream(const TcpStream&) = delete;
    TcpStream& operator=(const TcpStream&) = delete;

    /// Sets the receiver of events. Must be called before start_read() / connect().
    void set_handler(StreamHandler* handler) noexcept;
    /// Puts `transform` (TLS) between the socket and the handler: on_read() then delivers the
    /// plain bytes it yields, write() takes plain bytes and queues the wire bytes it makes, a
    /// Flush close appends its closing bytes, and a transform error reaches the handler as
    /// on_read_end(error). Must be called before start_read() / connect(). Wire bytes count
    /// against the watermarks and go through the same queue and send batching as plain ones.
    void set_transform(std::unique_ptr<StreamTransform> transform) noexcept;

    /// Connects to a numeric address ("127.0.0.1" or "::1") and port. `done` is called later
    /// (never synchronously) with success or Code::BackendUnreachable. Returns an error
    /// synchronously (and never calls `done`) when the address is not numeric.
    Result<void> connect(const std::string& ip, std::uint16_t port,
                         std::function<void(Result<void>)> done);

    /// Sets pause bit `reason`; reading stops while any bit is set.
    void pause(PauseReason reason) noexcept;
    /// Clears pause bit `reason`; reading restarts when no bit is left.
    void resume(PauseReason reason) noexcept;
    /// True while reading is requested by the owner and not paused.
    bool reading() const noexcept;
    /// Starts reading (subject to pause bits).
    void start_read() noexcept;

    /// Queues `bytes` for writing: tries to write at once (uv_try_write) and copies only what
    /// the kernel did not take. May call on_write_high() synchronously (so the caller can pause
    /// its source at once); no other callback fires synchronously. Returns false when the
    /// stream is closed or failed (the bytes are dropped).
    bool write(std::span<const std::byte> bytes);
    /// Same for text.
    bool write(std::string_view text) {
        return write(std::as_bytes(std::span<const char>(text.data(), text.size())));
    }
    /// Writes up to 4 pieces as one gather write (a frame header and its payload).
    bool writev(std::span<const std::span<const std::byte>> pieces);

    /// Bytes accepted by write() that the kernel has not taken yet.
    std::size_t queued_bytes() const noexcept;
    /// Sets the high watermark; the low one is half of it. Default 1 MiB.
    void set_watermarks(std::size_t high) noexcept;
    /// True when the queue is above the high watermark (until it drains to low).
    bool above_high() const noexcept;

    /// Sends FIN after the queued bytes are written; reading continues.
    void shutdown_write();
    /// Closes after the queue drains (Flush, bounded by a 5 s flush deadline) or at once
    /// (Abort). After close() no handler callback fires and the TcpStream may be destroyed at
    /// once: a Flush close goes on draining on its own. A failed stream (a read or write error,
    /// also one arriving while a Flush close drains) never lingers: its socket closes at once,
    /// and a close() after the failure has nothing left to do (issue 10).
    enum class CloseMode : std::uint8_t { Flush, Abort };
    void close(CloseMode mode);
    /// True once close() was called or the stream closed itself after a failure.
    bool closing() const noexcept;
    /// True while the stream's transform (TLS) has not completed its handshake: nothing the
    /// owner writes can reach the peer yet. False for a stream without a transform.
    bool handshaking() const noexcept;

    /// "ip:port" of the peer, or "" when unknown.
    std::string peer_address() const;
    /// Peer IP without port, or "".
    std::string peer_ip() const;
    /// Enables TCP_NODELAY (the relay forwards small frames and must not wait for Nagle).
    void set_nodelay(bool on) noexcept;

    /// For the listener: the raw handle to accept into.
    uv_tcp_s* raw() noexcept;

    /// Implementation state; outlives this object while a Flush close drains (tcp.cc).
    struct Impl;

  private:
    Impl* impl_;
};

/// Accepts connections on host:port. `on_accept` is called with a new connected stream.
class TcpListener : private HandleOwner {
  public:
    explicit TcpListener(Loop& loop);
    ~TcpListener();
    TcpListener(const TcpListener&) = delete;
    TcpListener& operator=(const TcpListener&) = delete;

    /// Binds and listens (SO_REUSEADDR, backlog 1024). Fails with Code::Io and the uv error.
    Result<void> listen(const std::string& host, std::uint16_t port,
                        std::function<void(std::unique_ptr<TcpStream>)> on_accept);
    /// Listens on `fd`, a socket already bound and listening (one inherited from systemd,
    /// proxy/core/systemd.h), instead of binding: uv_tcp_open, then uv_listen (backlog 1024).
    /// Takes ownership of `fd` whatever the outcome: on success the listener closes it with
    /// close(); on failure (Code::Io with the uv error, e.g. `fd` is not a TCP socket) it is
    /// closed before this returns and the listener stays unusable. Only on a fresh listener.
    Result<void> adopt(int fd, std::function<void(std::unique_ptr<TcpStream>)> on_accept);
    /// The bound "ip:port" (port chosen by the OS when 0 was asked); "" once closed.
    std::string local_address() const;
    /// The bound port; 0 once closed.
    std::uint16_t local_port() const;
    /// Stops accepting and closes the socket. Idempotent.
    void close();

    // Trampoline target.
    void on_connection_cb(int status);

  private:
    void close_handles() noexcept override;

    Loop& loop_;
    uv_tcp_s* tcp_;  ///< null once closed (the handle is freed in its close callback)
    std::function<void(std::unique_ptr<TcpStream>)> on_accept_;
};

/// The IP of an "ip:port" or "[ipv6]:port" address (brackets removed).
std::string ip_of(std::string address);
/// Formats a sockaddr-like peer for logs; helper shared by streams and listeners.
std::string format_address(const void* sockaddr_storage);

} // namespace proxy::core
