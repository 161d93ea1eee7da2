// push_backend: the WebSocket backend of the session benchmark (see bench/SESSIONS.md).
//
//   push_backend --port 0 [--messages 10000000] [--size 64] [--rate 0] [--watermark 65536]
//                [--max-connections 50000] [--skip-every K] [--corrupt-every K]
//
// Listens on 127.0.0.1 and prints `push_backend listening on 127.0.0.1:PORT`. Every connection
// that completes the RFC 6455 handshake is sent `messages` text messages of exactly `size`
// bytes, as fast as the socket takes them: a write is issued only while the connection's
// writes not yet completed (libuv's queue plus those written whose callback has not run) hold
// less than `watermark` bytes, so a slow reader (the proxy pausing its backend socket) slows
// the sender down instead of growing its memory. `--messages 0` sends
// nothing: idle sessions for the memory measurement. `--rate R` (messages per second per
// connection) paces the stream instead, for latency below saturation: a 1 ms timer releases
// what is due (rate × time since the handshake).
//
// Payload: "<send time, CLOCK_MONOTONIC ns> <seq> " then the ASCII padding 'a' + (i % 26) at
// every later position i. seq starts at 1 on every connection, like the proxy's session
// sequence numbers. --skip-every and --corrupt-every inject faults (a missing seq, a changed
// padding byte) so that the load generator's checks can be shown to work.
//
// Pings are answered with pongs, a client Close with the same code, and the connection is
// closed once that Close is written (RFC 6455 §7.1.1: the server closes TCP first). Anything
// else the client sends is decoded (and so checked) and ignored. SIGINT/SIGTERM print the
// totals on stderr and stop; every handle is closed before exit.
//
// Like loadgen, this drives libuv directly (a stated exception to STYLE §1 for bench/) and
// reuses the proxy's sans-I/O codecs: proxy/http/parser.h for the upgrade request,
// proxy/ws/handshake.h to validate it, proxy/ws/decoder.h + frame.h for frames and
// proxy/ws/handshake.h for Sec-WebSocket-Accept.

#include "proxy/http/parser.h"
#include "proxy/core/crypto.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/frame.h"
#include "proxy/ws/handshake.h"

#include <array>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <uv.h>

namespace {

namespace ws = proxy::ws;

struct Options {
    int port = -1;
    std::uint64_t messages = 10'000'000;
    std::size_t size = 64;
    std::uint64_t rate = 0; ///< messages per second per connection; 0: as fast as possible
    std::size_t watermark = std::size_t{64} * 1024;
    std::size_t max_connections = 50'000;
    std::uint64_t skip_every = 0;
    std::uint64_t corrupt_every = 0;
};

constexpr std::size_t kMinSize = 48; ///< room for two 20-digit numbers and two spaces
constexpr std::size_t kMaxSize = std::size_t{1} << 20;
constexpr std::size_t kBatchBytes = std::size_t{16} * 1024; ///< frames gathered into one write

std::uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

struct Totals {
    std::uint64_t accepted = 0;
    std::uint64_t handshakes = 0;
    std::uint64_t rejected = 0;
    std::uint64_t messages = 0;
    std::uint64_t pings = 0;
    std::uint64_t closes = 0;
    std::uint64_t protocol_errors = 0;
    std::uint64_t received = 0; ///< data messages from clients (ignored)
};

// One loop, one thread: each read is consumed (parsed or decoded in place) before the next.
std::array<char, std::size_t{64} * 1024> read_buffer;

class Conn;

/// A queued write: owns its bytes until the callback, then deletes itself.
struct WriteReq {
    uv_write_t req{};
    Conn* owner = nullptr;
    std::string bytes;
    bool close_after = false; ///< the Close frame: close the socket once it is written
};

class Server {
  public:
    Server(uv_loop_t* loop, const Options& options) : loop_(loop), options_(options) {}
    int listen(int port); ///< returns the bound port, or a negative libuv error
    void stop();
    /// Paced mode: lets every connection send what is due (1 ms timer).
    void tick();
    Totals totals;
    std::list<Conn*> conns;

  private:
    static void on_connection_cb(uv_stream_t* s, int status) noexcept;
    static void on_signal_cb(uv_signal_t* sig, int) noexcept;
    static void on_tick_cb(uv_timer_t* timer) noexcept;
    void on_connection(int status);

    uv_loop_t* loop_;
    const Options& options_;
    uv_tcp_t listener_{};
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    uv_timer_t tick_{};
    bool stopping_ = false;
};

/// One accepted connection. Deleted in its close callback, never earlier (STYLE §2.1).
class Conn final : private ws::DecoderHandler {
  public:
    Conn(Server& server, const Options& options);
    uv_tcp_t* tcp() { return &tcp_; }
    /// Remembers the connection's place in Server::conns (erased in the close callback).
    void track(std::list<Conn*>::iterator self) { self_ = self; }
    void start();
    void close_now();
    void pump();

  private:
    static void on_alloc_cb(uv_handle_t*, std::size_t, uv_buf_t* buf) noexcept;
    // NOLINTNEXTLINE(bugprone-exception-escape): see on_read_cb below.
    static void on_read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t*) noexcept;
    static void on_write_cb(uv_write_t* req, int status) noexcept;
    static void on_close_cb(uv_handle_t* h) noexcept;

    void on_read(ssize_t n);
    void on_handshake_bytes(std::span<char> bytes);
    void feed_frames(std::span<char> bytes);
    void send_close(std::uint16_t code);
    void write(std::string bytes, bool close_after = false);
    void append_message(std::string& out);

    void on_data_frame_begin(const ws::FrameHeader&, ws::Opcode) override {}
    void on_data_frame_payload(std::span<const std::byte>) override {}
    void on_data_frame_end(bool message_end) override;
    void on_ping(std::span<const std::byte> payload) override;
    void on_pong(std::span<const std::byte>) override {}
    void on_close(std::uint16_t code, std::string_view reason) override;

    enum class State : std::uint8_t { Handshake, Open, Closing, Closed };
    Server& server_;
    const Options& options_;
    uv_tcp_t tcp_{};
    proxy::http::RequestParser parser_;
    ws::Decoder decoder_;
    State state_ = State::Handshake;
    std::uint64_t next_seq_ = 1;
    std::uint64_t built_ = 0;   ///< messages built on this connection
    std::uint64_t open_ns_ = 0; ///< when the handshake completed (paced mode)
    std::uint64_t allowed_ = 0; ///< messages this connection may have built by now
    std::size_t in_flight_ = 0; ///< bytes of writes whose callback has not run yet
    std::string padding_;       ///< the payload template
    std::list<Conn*>::iterator self_;
};

Conn::Conn(Server& server, const Options& options)
    : server_(server), options_(options),
      decoder_(ws::DecoderOptions{ws::Role::Server, std::uint64_t{64} * 1024}, *this),
      padding_(options.size, 'a') {
    for (std::size_t i = 0; i < padding_.size(); ++i) {
        padding_[i] = static_cast<char>('a' + i % 26);
    }
    tcp_.data = this;
}

void Conn::start() {
    uv_tcp_nodelay(&tcp_, 1);
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc_cb, on_read_cb) != 0) {
        close_now();
    }
}

void Conn::close_now() {
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    decoder_.stop();
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close_cb);
}

void Conn::on_close_cb(uv_handle_t* h) noexcept {
    auto* self = static_cast<Conn*>(h->data);
    self->server_.conns.erase(self->self_);
    delete self;
}

void Conn::on_alloc_cb(uv_handle_t*, std::size_t, uv_buf_t* buf) noexcept {
    buf->base = read_buffer.data();
    buf->len = read_buffer.size();
}

// Result's accessors use std::get, which throws only on a bug (the wrong alternative); noexcept
// turns that into the crash STYLE §5 asks for. clang-tidy cannot know the alternative is right.
// NOLINTNEXTLINE(bugprone-exception-escape)
void Conn::on_read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t*) noexcept {
    static_cast<Conn*>(s->data)->on_read(n);
}

void Conn::on_read(ssize_t n) {
    if (state_ == State::Closed || n == 0) {
        return;
    }
    if (n < 0) { // EOF or reset: nothing more to say to this peer
        close_now();
        return;
    }
    const std::span bytes(read_buffer.data(), static_cast<std::size_t>(n));
    if (state_ == State::Handshake) {
        on_handshake_bytes(bytes);
    } else {
        feed_frames(bytes);
    }
}

void Conn::on_handshake_bytes(std::span<char> bytes) {
    auto fed = parser_.feed(bytes);
    std::optional<ws::ClientHandshake> hs;
    if (fed && fed->complete) {
        if (auto checked = ws::validate_client_handshake(parser_.request())) {
            hs = std::move(*checked);
        }
    } else if (fed) {
        return; // the request head is not complete yet
    }
    if (!hs) {
        ++server_.totals.rejected;
        write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", true);
        state_ = State::Closing;
        return;
    }
    ++server_.totals.handshakes;
    write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: " +
          proxy::ws::websocket_accept(hs->key) + "\r\n\r\n");
    state_ = State::Open;
    open_ns_ = mono_ns();
    // Frames the client may have sent right behind its request.
    feed_frames(bytes.subspan(fed->consumed));
    pump();
}

void Conn::feed_frames(std::span<char> bytes) {
    if (bytes.empty() || state_ == State::Closed) {
        return;
    }
    auto r = decoder_.feed(std::as_writable_bytes(bytes));
    if (!r && state_ == State::Open) {
        ++server_.totals.protocol_errors;
        send_close(ws::close_code_for(r.error().code));
    }
}

void Conn::send_close(std::uint16_t code) {
    const std::string payload = ws::close_payload(code, "");
    write(ws::encode_frame(true, ws::Opcode::Close, std::as_bytes(std::span(payload)), nullptr),
          true);
    state_ = State::Closing;
}

void Conn::write(std::string bytes, bool close_after) {
    auto* w = new WriteReq;
    w->owner = this;
    w->req.data = w;
    w->bytes = std::move(bytes);
    w->close_after = close_after;
    in_flight_ += w->bytes.size();
    uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, on_write_cb) != 0) {
        delete w;
        close_now();
    }
}

void Conn::on_write_cb(uv_write_t* req, int status) noexcept {
    auto* w = static_cast<WriteReq*>(req->data);
    Conn* owner = w->owner; // alive: cancelled writes call back before the close callback
    const bool close_after = w->close_after;
    owner->in_flight_ -= w->bytes.size();
    delete w;
    if (owner->state_ == State::Closed) {
        return;
    }
    if (status < 0 || close_after) {
        owner->close_now();
        return;
    }
    owner->pump();
}

void Conn::append_message(std::string& out) {
    const std::size_t size = options_.size;
    std::array<std::byte, ws::kMaxHeaderSize> header{};
    const std::size_t header_size =
        ws::encode_header(header, true, ws::Opcode::Text, size, nullptr);
    out.append(reinterpret_cast<const char*>(header.data()), header_size);
    const std::size_t at = out.size();
    out.append(padding_);
    std::array<char, kMinSize> prefix{};
    const int n = std::snprintf(prefix.data(), prefix.size(), "%llu %llu ",
                                static_cast<unsigned long long>(mono_ns()),
                                static_cast<unsigned long long>(next_seq_));
    std::memcpy(out.data() + at, prefix.data(), static_cast<std::size_t>(n));
    ++built_;
    if (options_.corrupt_every != 0 && built_ % options_.corrupt_every == 0) {
        out[at + size - 1] = 'Z'; // still valid UTF-8: only the padding check catches it
    }
    ++next_seq_;
    if (options_.skip_every != 0 && built_ % options_.skip_every == 0) {
        ++next_seq_; // this sequence number is never sent: a "lost" message
    }
    ++server_.totals.messages;
}

void Conn::pump() {
    allowed_ = options_.messages;
    if (options_.rate != 0 && state_ == State::Open) {
        const std::uint64_t elapsed_us = (mono_ns() - open_ns_) / 1000;
        allowed_ = std::min(allowed_, elapsed_us * options_.rate / 1'000'000 + 1);
    }
    // Count every write until its callback, not only libuv's write_queue_size: uv_write
    // completes at once when the kernel takes the bytes, but the callback (which calls pump()
    // again) runs on the next loop iteration. Refilling from each callback by write_queue_size
    // alone fans out: every callback queues more writes that complete at once, the callbacks of
    // one iteration multiply, iterations grow long, and reads (a client's Close) wait.
    while (state_ == State::Open && built_ < allowed_ && in_flight_ < options_.watermark) {
        std::string out;
        out.reserve(kBatchBytes + options_.size + ws::kMaxHeaderSize);
        while (out.size() < kBatchBytes && built_ < allowed_) {
            append_message(out);
        }
        write(std::move(out));
    }
    // The callbacks of these writes call pump() again on the next loop iteration.
}

void Conn::on_data_frame_end(bool message_end) {
    if (message_end) {
        ++server_.totals.received;
    }
}

void Conn::on_ping(std::span<const std::byte> payload) {
    ++server_.totals.pings;
    if (state_ == State::Open) {
        write(ws::encode_frame(true, ws::Opcode::Pong, payload, nullptr)); // RFC 6455 §5.5.3
    }
}

void Conn::on_close(std::uint16_t code, std::string_view /*reason*/) {
    ++server_.totals.closes;
    if (state_ == State::Open) {
        // Echo the code (RFC 6455 §5.5.1); 1005 means the Close had none, so answer with none.
        send_close(code);
    }
}

int Server::listen(int port) {
    uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", port, &addr);
    int rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc == 0) {
        rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4096, on_connection_cb);
    }
    if (rc != 0) {
        return rc;
    }
    sockaddr_storage bound{};
    int len = sizeof(bound);
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    for (uv_signal_t* sig : {&sigint_, &sigterm_}) {
        uv_signal_init(loop_, sig);
        sig->data = this;
        uv_signal_start(sig, on_signal_cb, sig == &sigint_ ? SIGINT : SIGTERM);
    }
    uv_timer_init(loop_, &tick_);
    tick_.data = this;
    if (options_.rate != 0) {
        uv_timer_start(&tick_, on_tick_cb, 1, 1);
    }
    return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void Server::on_connection_cb(uv_stream_t* s, int status) noexcept {
    static_cast<Server*>(s->data)->on_connection(status);
}

void Server::on_connection(int status) {
    if (status != 0 || stopping_) {
        return;
    }
    auto* conn = new Conn(*this, options_);
    uv_tcp_init(loop_, conn->tcp());
    conn->track(conns.insert(conns.end(), conn));
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                  reinterpret_cast<uv_stream_t*>(conn->tcp())) != 0 ||
        conns.size() > options_.max_connections) {
        conn->close_now();
        ++totals.rejected;
        return;
    }
    ++totals.accepted;
    conn->start();
}

void Server::on_tick_cb(uv_timer_t* timer) noexcept { static_cast<Server*>(timer->data)->tick(); }

void Server::tick() {
    for (Conn* conn : conns) {
        conn->pump(); // never closes synchronously: the list stays valid
    }
}

void Server::on_signal_cb(uv_signal_t* sig, int) noexcept {
    static_cast<Server*>(sig->data)->stop();
}

void Server::stop() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    for (uv_handle_t* h :
         {reinterpret_cast<uv_handle_t*>(&listener_), reinterpret_cast<uv_handle_t*>(&sigint_),
          reinterpret_cast<uv_handle_t*>(&sigterm_), reinterpret_cast<uv_handle_t*>(&tick_)}) {
        uv_close(h, nullptr);
    }
    // close_now() only schedules uv_close; the list shrinks in the close callbacks.
    for (Conn* conn : std::list<Conn*>(conns)) {
        conn->close_now();
    }
}

std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t max) {
    std::uint64_t value = 0;
    if (text.empty() || text.size() > 12) {
        return std::nullopt;
    }
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value <= max ? std::optional(value) : std::nullopt;
}

std::optional<Options> parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view key = argv[i];
        if (i + 1 >= argc) {
            return std::nullopt;
        }
        const std::string_view value = argv[i + 1];
        std::optional<std::uint64_t> n;
        if (key == "--port" && (n = parse_number(value, 65535))) {
            o.port = static_cast<int>(*n);
        } else if (key == "--messages" && (n = parse_number(value, 1'000'000'000'000ULL))) {
            o.messages = *n;
        } else if (key == "--size" && (n = parse_number(value, kMaxSize)) && *n >= kMinSize) {
            o.size = static_cast<std::size_t>(*n);
        } else if (key == "--rate" && (n = parse_number(value, 100'000'000))) {
            o.rate = *n;
        } else if (key == "--watermark" && (n = parse_number(value, 64 << 20)) && *n > 0) {
            o.watermark = static_cast<std::size_t>(*n);
        } else if (key == "--max-connections" && (n = parse_number(value, 1'000'000)) && *n > 0) {
            o.max_connections = static_cast<std::size_t>(*n);
        } else if (key == "--skip-every" && (n = parse_number(value, 1'000'000'000))) {
            o.skip_every = *n;
        } else if (key == "--corrupt-every" && (n = parse_number(value, 1'000'000'000))) {
            o.corrupt_every = *n;
        } else {
            std::fprintf(stderr, "push_backend: bad option %s %s\n", argv[i], argv[i + 1]);
            return std::nullopt;
        }
    }
    if (o.port < 0) {
        std::fputs("push_backend: --port is required (0 picks a free port)\n", stderr);
        return std::nullopt;
    }
    return o;
}

} // namespace

int main(int argc, char** argv) {
    const auto options = parse_args(argc, argv);
    if (!options) {
        std::fputs("usage: push_backend --port P [--messages N] [--size S] [--rate R]\n"
                   "       [--watermark B] [--max-connections C] [--skip-every K]\n"
                   "       [--corrupt-every K]\n",
                   stderr);
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN); // a peer reset must surface as EPIPE, not kill us
    uv_loop_t loop;
    uv_loop_init(&loop);
    int rc = 0;
    {
        Server server(&loop, *options);
        const int port = server.listen(options->port);
        if (port < 0) {
            std::fprintf(stderr, "push_backend: listen: %s\n", uv_err_name(port));
            return 1;
        }
        std::printf("push_backend listening on 127.0.0.1:%d\n", port);
        std::fflush(stdout);
        uv_run(&loop, UV_RUN_DEFAULT);
        const Totals& t = server.totals;
        std::fprintf(
            stderr,
            "push_backend: accepted=%llu handshakes=%llu rejected=%llu messages=%llu "
            "pings=%llu closes=%llu received=%llu protocol_errors=%llu\n",
            static_cast<unsigned long long>(t.accepted),
            static_cast<unsigned long long>(t.handshakes),
            static_cast<unsigned long long>(t.rejected),
            static_cast<unsigned long long>(t.messages), static_cast<unsigned long long>(t.pings),
            static_cast<unsigned long long>(t.closes), static_cast<unsigned long long>(t.received),
            static_cast<unsigned long long>(t.protocol_errors));
    }
    if (uv_loop_close(&loop) != 0) {
        std::fputs("push_backend: loop not clean at exit\n", stderr);
        rc = 1;
    }
    return rc;
}
