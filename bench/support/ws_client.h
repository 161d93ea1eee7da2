#pragma once
// A minimal WebSocket client connection for the load generator: RFC 6455 §4.1 client handshake
// (with Sec-WebSocket-Accept validation) and masked client frames built with the proxy's own
// codec (proxy/ws/frame.h, proxy/ws/decoder.h, proxy/core/crypto.h).
//
// It drives libuv directly rather than through proxy/core: a stated exception to STYLE §1 for
// bench/, so that the benchmark measures the proxy's I/O layer instead of sharing it.
//
// Single loop, single thread. Every ClientConn must outlive its uv handle: keep it alive until
// ClientHandler::on_closed has fired (or until start() failed or was never called). The load
// generator keeps all connections until the loop has finished.

#include "bench/support/tls.h"
#include "proxy/core/result.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/frame.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <uv.h>

namespace bench {

/// Where to connect: an IPv4 loopback address, the Host header and the request target.
struct Target {
    sockaddr_in address{};
    std::string host; ///< Host header value, e.g. "127.0.0.1:8080"
    std::string path; ///< request target, e.g. "/echo"
    bool wss = false; ///< the URL said wss://: connections run TLS (`tls` must be set)
    /// Offer `wsbridge.session.v1` and speak its framing (docs/protocol.md "WebSocket
    /// sessions"); see ClientConn for what the connection then does on its own.
    bool session = false;
    TlsClientContext* tls = nullptr; ///< the TLS client context for wss:// (owned by the caller)
};

/// Parses `ws://127.0.0.1:PORT/path` or `wss://127.0.0.1:PORT/path` (`localhost` is accepted as
/// 127.0.0.1). Fails with Code::Config for anything else, including non-loopback hosts: the load
/// generator only ever targets this machine. For wss:// the caller sets Target::tls.
proxy::core::Result<Target> parse_url(std::string_view url);

/// How a connection ended. Reported exactly once, by ClientHandler::on_closed.
enum class Outcome : std::uint8_t {
    Clean,          ///< we sent Close and the server answered with Close
    PeerClose,      ///< the server sent Close first (we answered it)
    Eof,            ///< TCP EOF or reset without a Close frame
    ConnectError,   ///< TCP connect failed
    HandshakeError, ///< the upgrade response was not a valid 101
    ProtocolError,  ///< the server sent something the decoder rejects
    IoError,        ///< a read or write failed
    Aborted,        ///< the owner called abort()
};

/// Stable snake_case name of an outcome, used as a JSON key.
std::string_view to_string(Outcome outcome) noexcept;

class ClientConn;

/// Receives connection events. All callbacks run on the loop, never synchronously inside a
/// ClientConn method called by the owner. A handler may call any ClientConn method from them.
class ClientHandler {
  public:
    virtual ~ClientHandler() = default;
    /// The 101 response was validated; the connection can send.
    virtual void on_open(ClientConn& conn) = 0;
    /// Payload bytes of a data message (any number of calls per message). The view is valid
    /// until the callback returns.
    virtual void on_data(ClientConn& conn, std::span<const std::byte> bytes) = 0;
    /// The current data message is complete.
    virtual void on_message_end(ClientConn& conn) = 0;
    /// The socket is closed and released; no further callback fires for `conn`.
    virtual void on_closed(ClientConn& conn, Outcome outcome, std::string_view detail) = 0;
};

/// The subprotocol of wsbridge's session transport over WebSocket.
inline constexpr std::string_view kSessionSubprotocol = "wsbridge.session.v1";

/// One client WebSocket connection on a uv loop.
///
/// With Target::session the connection is a wsbridge session client: the upgrade offers
/// `wsbridge.session.v1` and the 101 must select it; a binary message sent with send() gets the
/// kind byte 0x00 in front, and received binary messages lose theirs, so the handler sees the
/// session's payloads only. Control messages (kind 0x01) never reach the handler: `session`
/// (its last_seq starts the message count) and `ack` are consumed, any other type aborts the
/// connection with detail `session_control_<type>` (counted as an error by the run), and a
/// session message before the `session` control is a protocol error (a relayed connection whose
/// backend selected the subprotocol would otherwise pass for a session). After
/// every 64 messages received the connection sends an `ack` control. close() ends the session
/// (the `close` control), not just the connection: the proxy answers with the `close` control
/// and Close 1000, which ends the connection as Outcome::Clean.
class ClientConn final : private proxy::ws::DecoderHandler {
  public:
    enum class State : std::uint8_t { Idle, Connecting, Handshaking, Open, Closing, Closed };

    /// A connection to `target` (which must outlive it). `id` is the owner's index.
    /// `max_message` bounds received messages (larger ones close with ProtocolError).
    ClientConn(uv_loop_t* loop, const Target& target, ClientHandler& handler, std::size_t id,
               std::uint64_t max_message);
    /// Aborts the process if the uv handle is still open (its memory lives in this object).
    ~ClientConn() override;
    ClientConn(const ClientConn&) = delete;
    ClientConn& operator=(const ClientConn&) = delete;

    /// Starts the TCP connect and then the handshake. On failure (e.g. EMFILE) returns the
    /// error and no callback ever fires; the connection is then Closed once the loop has run.
    proxy::core::Result<void> start();
    /// Sends one unfragmented, masked message. Returns false (and sends nothing) unless Open.
    /// A write error closes the connection later with Outcome::IoError. In session mode a
    /// Binary message is sent as a session binary message (kind byte 0x00 first).
    bool send(proxy::ws::Opcode opcode, std::span<const std::byte> payload);
    /// Starts the closing handshake (RFC 6455 §7.1.2): sends Close with `code` and waits for
    /// the server's Close. In session mode it sends the `close` control instead and waits for
    /// the proxy's Close. Before the connection is open, aborts instead.
    void close(std::uint16_t code);
    /// Closes the socket now; on_closed reports `outcome`. No-op when already Closed.
    void abort(Outcome outcome, std::string_view detail);

    /// TLS only (wss://): end the connection right after the TLS handshake instead of sending
    /// the upgrade: send close_notify and FIN, read (session tickets) until the server's EOF,
    /// then report Outcome::Clean. Call before start().
    void set_handshake_only() noexcept { handshake_only_ = true; }
    [[nodiscard]] bool tls_established() const noexcept { return tls_established_; }
    [[nodiscard]] bool tls_resumed() const noexcept { return tls_resumed_; }
    /// Nanoseconds (uv_hrtime) from start() to the completed TLS handshake; 0 before.
    [[nodiscard]] std::uint64_t tls_handshake_ns() const noexcept { return tls_handshake_ns_; }
    /// The negotiated TLS cipher suite ("" before the handshake or without TLS).
    [[nodiscard]] const std::string& tls_cipher() const noexcept { return tls_cipher_; }

    /// Session mode: session messages received (the seq of the last one, counting from the
    /// `session` control's last_seq).
    [[nodiscard]] std::uint64_t session_seq() const noexcept { return session_seq_; }

    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] std::size_t id() const noexcept { return id_; }

  private:
    static void on_connect_cb(uv_connect_t* req, int status) noexcept;
    static void on_alloc_cb(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf) noexcept;
    static void on_read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
    static void on_write_cb(uv_write_t* req, int status) noexcept;
    static void on_close_cb(uv_handle_t* handle) noexcept;
    static void on_shutdown_cb(uv_shutdown_t* req, int status) noexcept;

    void on_connect(int status);
    void on_read(ssize_t nread, const uv_buf_t* buf);
    void send_upgrade();
    void on_plain(std::span<std::byte> bytes);
    void on_tls_wire(std::span<const std::byte> bytes);
    void on_tls_established();
    bool flush_tls();
    bool write_raw(std::span<const std::byte> bytes);
    void on_handshake_bytes(std::span<const std::byte> bytes);
    [[nodiscard]] std::string_view check_handshake(std::string_view head) const;
    void feed(std::span<std::byte> bytes);
    bool write_bytes(std::span<const std::byte> bytes);
    bool send_frame(proxy::ws::Opcode opcode, std::span<const std::byte> prefix,
                    std::span<const std::byte> payload);
    bool send_control(std::string_view json);
    void on_control();
    void finish(Outcome outcome, std::string_view detail);

    // DecoderHandler: events of frames sent by the server.
    void on_data_frame_begin(const proxy::ws::FrameHeader& header,
                             proxy::ws::Opcode message_opcode) override;
    void on_data_frame_payload(std::span<const std::byte> bytes) override;
    void on_data_frame_end(bool message_end) override;
    void on_ping(std::span<const std::byte> payload) override;
    void on_pong(std::span<const std::byte> payload) override;
    void on_close(std::uint16_t code, std::string_view reason) override;

    proxy::ws::Decoder decoder_;
    uv_loop_t* loop_;
    const Target* target_;
    ClientHandler* handler_;
    std::size_t id_;
    State state_ = State::Idle;
    Outcome outcome_ = Outcome::Aborted;
    bool handle_open_ = false;  ///< uv_tcp_init succeeded and the close callback has not run
    bool notify_closed_ = true; ///< false when start() failed synchronously
    uv_tcp_t tcp_{};
    uv_connect_t connect_{};
    uv_shutdown_t shutdown_{};
    ssl_st* ssl_ = nullptr;            ///< wss:// only; freed with the connection
    bool tls_established_ = false;
    bool tls_resumed_ = false;
    bool handshake_only_ = false;
    std::uint64_t started_ns_ = 0;
    std::uint64_t tls_handshake_ns_ = 0;
    std::string tls_cipher_;
    std::string head_;            ///< handshake response bytes until the blank line
    std::string expected_accept_; ///< Sec-WebSocket-Accept the server must send
    std::string detail_;          ///< why the connection ended, for on_closed
    bool close_sent_ = false;     ///< our Close frame is out

    /// Session mode: what the current received message is.
    enum class Part : std::uint8_t { Start, Text, Data, Control };
    Part part_ = Part::Start;
    std::string control_;           ///< the current control message's JSON
    std::uint64_t session_seq_ = 0; ///< seq of the last session message received
    std::uint64_t acked_seq_ = 0;   ///< seq our last `ack` control named
    bool session_closing_ = false;  ///< we sent the `close` control
    bool announced_ = false;        ///< the `session` control arrived
};

} // namespace bench
