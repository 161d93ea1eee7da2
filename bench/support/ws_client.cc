#include "bench/support/ws_client.h"

#include "proxy/core/base64.h"
#include "proxy/core/crypto.h"
#include "proxy/ws/handshake.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <climits>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace bench {

namespace {

namespace ws = proxy::ws;
using proxy::core::Code;
using proxy::core::Side;

/// Largest handshake response we accept before giving up on the connection.
constexpr std::size_t kMaxHead = std::size_t{16} * 1024;
/// Session mode: largest control message we accept, and how often we acknowledge.
constexpr std::size_t kMaxControl = 4096;
constexpr std::uint64_t kAckEvery = 64;
constexpr std::byte kKindBinary{0x00};
constexpr std::byte kKindControl{0x01};

/// The string value of `"key":"…"` in a flat JSON object, or "" (controls are small and flat).
std::string_view json_string(std::string_view json, std::string_view key) {
    std::string needle(1, '"');
    needle.append(key).append("\":\"");
    const std::size_t at = json.find(needle);
    if (at == std::string_view::npos) {
        return {};
    }
    const std::size_t begin = at + needle.size();
    const std::size_t end = json.find('"', begin);
    return end == std::string_view::npos ? std::string_view{} : json.substr(begin, end - begin);
}

/// The unsigned value of `"key":N` in a flat JSON object, or 0.
std::uint64_t json_number(std::string_view json, std::string_view key) {
    std::string needle(1, '"');
    needle.append(key).append("\":");
    const std::size_t at = json.find(needle);
    std::uint64_t value = 0;
    for (std::size_t i = at == std::string_view::npos ? json.size() : at + needle.size();
         i < json.size() && json[i] >= '0' && json[i] <= '9'; ++i) {
        value = value * 10 + static_cast<std::uint64_t>(json[i] - '0');
    }
    return value;
}

// One loop, one thread: every read lands in this buffer and is consumed (decoded in place)
// before the next read is allocated, so 8000 idle connections cost no read memory.
std::array<char, std::size_t{64} * 1024> read_buffer;
// Frames are assembled here; whatever the kernel does not take at once is copied into a
// WriteReq.
std::vector<std::byte> frame_scratch;
// wss://: decrypted bytes of one read, and encrypted bytes on their way to the socket.
std::array<std::byte, std::size_t{64} * 1024> plain_buffer;
std::vector<std::byte> wire_scratch;
proxy::core::MaskSource mask_source;

/// A queued write: owns its bytes until the write callback, then deletes itself.
struct WriteReq {
    uv_write_t req{};
    ClientConn* owner = nullptr;
    std::vector<std::byte> bytes;
};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

/// True when the comma-separated header value `list` contains `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        if (iequals(trim(list.substr(0, comma)), token)) {
            return true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        list.remove_prefix(comma + 1);
    }
    return false;
}

} // namespace

proxy::core::Result<Target> parse_url(std::string_view url) {
    const bool wss = url.substr(0, 6) == "wss://";
    if (!wss && url.substr(0, 5) != "ws://") {
        return proxy::core::fail(Code::Config, Side::Config, "url must start with ws:// or wss://");
    }
    url.remove_prefix(wss ? 6 : 5);
    const std::size_t slash = url.find('/');
    const std::string_view authority = url.substr(0, slash);
    const std::string path(slash == std::string_view::npos ? "/" : url.substr(slash));
    const std::size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) {
        return proxy::core::fail(Code::Config, Side::Config, "url needs an explicit port");
    }
    const std::string_view host = authority.substr(0, colon);
    if (host != "127.0.0.1" && host != "localhost") {
        return proxy::core::fail(Code::Config, Side::Config,
                                 "only 127.0.0.1 targets are allowed, got " + std::string(host));
    }
    const std::string port_text(authority.substr(colon + 1));
    char* end = nullptr;
    const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || port == 0 || port > 65535) {
        return proxy::core::fail(Code::Config, Side::Config, "bad port " + port_text);
    }
    Target target;
    if (uv_ip4_addr("127.0.0.1", static_cast<int>(port), &target.address) != 0) {
        return proxy::core::fail(Code::Config, Side::Config, "uv_ip4_addr failed");
    }
    target.host = "127.0.0.1:" + port_text;
    target.path = path;
    target.wss = wss;
    return target;
}

std::string_view to_string(Outcome outcome) noexcept {
    switch (outcome) {
    case Outcome::Clean: return "clean";
    case Outcome::PeerClose: return "peer_close";
    case Outcome::Eof: return "eof";
    case Outcome::ConnectError: return "connect_error";
    case Outcome::HandshakeError: return "handshake_error";
    case Outcome::ProtocolError: return "protocol_error";
    case Outcome::IoError: return "io_error";
    case Outcome::Aborted: return "aborted";
    }
    return "unknown";
}

ClientConn::ClientConn(uv_loop_t* loop, const Target& target, ClientHandler& handler,
                       std::size_t id, std::uint64_t max_message)
    : decoder_(ws::DecoderOptions{ws::Role::Client, max_message}, *this), loop_(loop),
      target_(&target), handler_(&handler), id_(id) {}

ClientConn::~ClientConn() {
    if (handle_open_) {
        // The uv_tcp_t lives inside this object (STYLE §2.1): freeing it now would corrupt the
        // loop. The load generator never does this; crash loudly if it ever does.
        std::fputs("loadgen: ClientConn destroyed with an open handle\n", stderr);
        std::abort();
    }
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
    }
}

proxy::core::Result<void> ClientConn::start() {
    if (state_ != State::Idle) {
        return proxy::core::fail(Code::Internal, Side::Internal, "start() called twice");
    }
    int rc = uv_tcp_init(loop_, &tcp_);
    if (rc != 0) {
        state_ = State::Closed;
        return proxy::core::fail(Code::Io, Side::Internal, uv_err_name(rc));
    }
    handle_open_ = true;
    started_ns_ = uv_hrtime();
    tcp_.data = this;
    connect_.data = this;
    rc = uv_tcp_connect(&connect_, &tcp_, reinterpret_cast<const sockaddr*>(&target_->address),
                        on_connect_cb);
    if (rc != 0) {
        // Fail synchronously (STYLE §2.7): release the handle without telling the handler.
        notify_closed_ = false;
        finish(Outcome::ConnectError, uv_err_name(rc));
        return proxy::core::fail(Code::Io, Side::Internal, uv_err_name(rc));
    }
    state_ = State::Connecting;
    return {};
}

void ClientConn::on_connect_cb(uv_connect_t* req, int status) noexcept {
    if (auto* self = static_cast<ClientConn*>(req->data)) {
        self->on_connect(status);
    }
}

void ClientConn::on_connect(int status) {
    if (state_ != State::Connecting) {
        return; // aborted meanwhile; status is UV_ECANCELED
    }
    if (status != 0) {
        finish(Outcome::ConnectError, uv_err_name(status));
        return;
    }
    uv_tcp_nodelay(&tcp_, 1);
    state_ = State::Handshaking;
    const int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc_cb, on_read_cb);
    if (rc != 0) {
        finish(Outcome::IoError, uv_err_name(rc));
        return;
    }
    if (target_->wss) {
        ssl_ = target_->tls != nullptr ? target_->tls->new_ssl() : nullptr;
        if (ssl_ == nullptr) {
            finish(Outcome::HandshakeError, "tls: no client context");
            return;
        }
        BIO* in = BIO_new(BIO_s_mem());
        BIO* out = BIO_new(BIO_s_mem());
        BIO_set_mem_eof_return(in, -1);
        BIO_set_mem_eof_return(out, -1);
        SSL_set_bio(ssl_, in, out);
        on_tls_wire({}); // ClientHello
        return;
    }
    send_upgrade();
}

void ClientConn::send_upgrade() {
    std::array<std::byte, 16> nonce{};
    proxy::core::random_bytes(nonce);
    const std::string key = proxy::core::base64_encode(nonce);
    expected_accept_ = proxy::ws::websocket_accept(key);
    const std::string request = "GET " + target_->path + " HTTP/1.1\r\nHost: " + target_->host +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: " +
                                key + "\r\nSec-WebSocket-Version: 13\r\n" +
                                (target_->session ? "Sec-WebSocket-Protocol: " +
                                                        std::string(kSessionSubprotocol) + "\r\n"
                                                  : std::string()) +
                                "\r\n";
    write_bytes(std::as_bytes(std::span(request)));
}

void ClientConn::on_tls_wire(std::span<const std::byte> bytes) {
    BIO* rbio = SSL_get_rbio(ssl_);
    if (!bytes.empty()) {
        BIO_write(rbio, bytes.data(), static_cast<int>(bytes.size()));
    }
    if (!tls_established_) {
        ERR_clear_error();
        const int r = SSL_do_handshake(ssl_);
        if (r != 1) {
            const int err = SSL_get_error(ssl_, r);
            if (!flush_tls()) {
                return;
            }
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                finish(Outcome::HandshakeError, "tls: " + tls_errors());
            }
            return;
        }
        on_tls_established();
        if (state_ == State::Closed) {
            return;
        }
    }
    // Application data, and post-handshake messages (session tickets) consumed on the way.
    for (;;) {
        const int n = SSL_read(ssl_, plain_buffer.data(), static_cast<int>(plain_buffer.size()));
        if (n > 0) {
            on_plain(std::span(plain_buffer.data(), static_cast<std::size_t>(n)));
            if (state_ == State::Closed) {
                return;
            }
            continue;
        }
        const int err = SSL_get_error(ssl_, n);
        if (!flush_tls()) {
            return;
        }
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
            err == SSL_ERROR_ZERO_RETURN) {
            return; // close_notify: the server's EOF follows
        }
        finish(Outcome::ProtocolError, "tls: " + tls_errors());
        return;
    }
}

void ClientConn::on_tls_established() {
    tls_established_ = true;
    tls_resumed_ = SSL_session_reused(ssl_) != 0;
    tls_handshake_ns_ = uv_hrtime() - started_ns_;
    tls_cipher_ = SSL_get_cipher_name(ssl_);
    if (!handshake_only_) {
        if (flush_tls()) {
            send_upgrade();
        }
        return;
    }
    // Handshake only: close_notify, then FIN; the server's EOF ends the connection (Clean).
    SSL_shutdown(ssl_);
    state_ = State::Closing;
    if (!flush_tls()) {
        return;
    }
    shutdown_.data = this;
    const int rc = uv_shutdown(&shutdown_, reinterpret_cast<uv_stream_t*>(&tcp_), on_shutdown_cb);
    if (rc != 0) {
        finish(Outcome::IoError, uv_err_name(rc));
    }
}

void ClientConn::on_shutdown_cb(uv_shutdown_t*, int) noexcept {}

bool ClientConn::flush_tls() {
    BIO* out = SSL_get_wbio(ssl_);
    const auto pending = static_cast<std::size_t>(BIO_ctrl_pending(out));
    if (pending == 0) {
        return true;
    }
    wire_scratch.resize(pending);
    const int n = BIO_read(out, wire_scratch.data(), static_cast<int>(pending));
    if (n <= 0) {
        return true;
    }
    return write_raw(std::span(wire_scratch.data(), static_cast<std::size_t>(n)));
}

void ClientConn::on_plain(std::span<std::byte> bytes) {
    if (handshake_only_) {
        return; // no request was sent: whatever a server says before its EOF is not ours to check
    }
    if (state_ == State::Handshaking) {
        on_handshake_bytes(bytes);
    } else {
        feed(bytes);
    }
}

void ClientConn::on_alloc_cb(uv_handle_t*, std::size_t, uv_buf_t* buf) noexcept {
    buf->base = read_buffer.data();
    buf->len = read_buffer.size();
}

void ClientConn::on_read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
    if (auto* self = static_cast<ClientConn*>(stream->data)) {
        self->on_read(nread, buf);
    }
}

void ClientConn::on_read(ssize_t nread, const uv_buf_t* buf) {
    if (state_ == State::Closed || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (handshake_only_ && tls_established_ && nread == UV_EOF) {
            finish(Outcome::Clean, "");
        } else if (nread == UV_EOF) {
            finish(Outcome::Eof, "eof");
        } else {
            finish(Outcome::IoError, uv_err_name(static_cast<int>(nread)));
        }
        return;
    }
    const std::span bytes(reinterpret_cast<std::byte*>(buf->base), static_cast<std::size_t>(nread));
    if (ssl_ != nullptr) {
        on_tls_wire(bytes);
    } else {
        on_plain(bytes);
    }
}

void ClientConn::on_handshake_bytes(std::span<const std::byte> bytes) {
    head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const std::size_t end = head_.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (head_.size() > kMaxHead) {
            finish(Outcome::HandshakeError, "response head too large");
        }
        return;
    }
    if (const std::string_view problem = check_handshake(std::string_view(head_).substr(0, end));
        !problem.empty()) {
        finish(Outcome::HandshakeError, problem);
        return;
    }
    // Frames may follow the 101 in the same read (RFC 6455 §4.1: the server may send at once).
    std::string rest = head_.substr(end + 4);
    std::string().swap(head_);
    std::string().swap(expected_accept_);
    state_ = State::Open;
    handler_->on_open(*this);
    if (!rest.empty() && state_ != State::Closed) {
        feed(std::as_writable_bytes(std::span(rest)));
    }
}

std::string_view ClientConn::check_handshake(std::string_view head) const {
    // RFC 6455 §4.1, client requirements 1-6 on the server's response.
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status = head.substr(0, line_end);
    if (status.substr(0, 13) != "HTTP/1.1 101 " && status != "HTTP/1.1 101") {
        return "status is not 101";
    }
    bool upgrade = false;
    bool connection = false;
    bool accept = false;
    bool protocol = false;
    std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
    while (!rest.empty()) {
        const std::size_t eol = rest.find("\r\n");
        const std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? "" : rest.substr(eol + 2);
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            return "malformed header line";
        }
        const std::string_view name = line.substr(0, colon);
        const std::string_view value = trim(line.substr(colon + 1));
        if (iequals(name, "upgrade")) {
            upgrade = iequals(value, "websocket");
        } else if (iequals(name, "connection")) {
            connection = has_token(value, "upgrade");
        } else if (iequals(name, "sec-websocket-accept")) {
            accept = value == expected_accept_;
            if (!accept) {
                return "wrong Sec-WebSocket-Accept";
            }
        } else if (target_->session && iequals(name, "sec-websocket-protocol") &&
                   value == kSessionSubprotocol) {
            protocol = true;
        } else if (iequals(name, "sec-websocket-extensions") ||
                   iequals(name, "sec-websocket-protocol")) {
            return "server selected an extension or subprotocol we did not offer";
        }
    }
    if (!upgrade) {
        return "missing Upgrade: websocket";
    }
    if (!connection) {
        return "missing Connection: Upgrade";
    }
    if (!accept) {
        return "missing Sec-WebSocket-Accept";
    }
    if (target_->session && !protocol) {
        return "the server did not select wsbridge.session.v1";
    }
    return {};
}

void ClientConn::feed(std::span<std::byte> bytes) {
    auto consumed = decoder_.feed(bytes);
    if (!consumed && state_ != State::Closed) {
        finish(Outcome::ProtocolError, std::string(proxy::core::to_string(consumed.error().code)) +
                                           ": " + consumed.error().context);
    }
}

bool ClientConn::send(ws::Opcode opcode, std::span<const std::byte> payload) {
    if (target_->session && opcode == ws::Opcode::Binary) {
        const std::array<std::byte, 1> kind{kKindBinary};
        return send_frame(opcode, kind, payload);
    }
    return send_frame(opcode, {}, payload);
}

bool ClientConn::send_control(std::string_view json) {
    const std::array<std::byte, 1> kind{kKindControl};
    return send_frame(ws::Opcode::Binary, kind, std::as_bytes(std::span(json)));
}

bool ClientConn::send_frame(ws::Opcode opcode, std::span<const std::byte> prefix,
                            std::span<const std::byte> payload) {
    if (state_ != State::Open) {
        return false;
    }
    const std::size_t size = prefix.size() + payload.size();
    const std::array<std::byte, 4> mask = mask_source.next();
    std::array<std::byte, ws::kMaxHeaderSize> header{};
    const std::size_t header_size = ws::encode_header(header, true, opcode, size, &mask);
    frame_scratch.resize(header_size + size);
    std::memcpy(frame_scratch.data(), header.data(), header_size);
    if (!prefix.empty()) {
        std::memcpy(frame_scratch.data() + header_size, prefix.data(), prefix.size());
    }
    if (!payload.empty()) {
        std::memcpy(frame_scratch.data() + header_size + prefix.size(), payload.data(),
                    payload.size());
    }
    ws::apply_mask(std::span(frame_scratch).subspan(header_size), mask, 0);
    if (opcode == ws::Opcode::Close) {
        close_sent_ = true;
    }
    return write_bytes(frame_scratch);
}

bool ClientConn::write_bytes(std::span<const std::byte> bytes) {
    if (ssl_ == nullptr) {
        return write_raw(bytes);
    }
    ERR_clear_error();
    // A memory BIO grows as needed, so SSL_write takes everything at once.
    const int r = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
    if (r <= 0) {
        finish(Outcome::IoError, "tls write: " + tls_errors());
        return false;
    }
    return flush_tls();
}

bool ClientConn::write_raw(std::span<const std::byte> bytes) {
    auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
    std::size_t written = 0;
    // uv_try_write refuses (UV_EAGAIN) while earlier writes are queued, so order is kept.
    if (stream->write_queue_size == 0) {
        uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())),
                                   static_cast<unsigned>(bytes.size()));
        const int rc = uv_try_write(stream, &buf, 1);
        if (rc >= 0) {
            written = static_cast<std::size_t>(rc);
        } else if (rc != UV_EAGAIN) {
            finish(Outcome::IoError, uv_err_name(rc));
            return false;
        }
    }
    if (written == bytes.size()) {
        return true;
    }
    auto* req = new WriteReq;
    req->owner = this;
    req->req.data = req;
    req->bytes.assign(bytes.begin() + static_cast<std::ptrdiff_t>(written), bytes.end());
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(req->bytes.data()),
                               static_cast<unsigned>(req->bytes.size()));
    const int rc = uv_write(&req->req, stream, &buf, 1, on_write_cb);
    if (rc != 0) {
        delete req;
        finish(Outcome::IoError, uv_err_name(rc));
        return false;
    }
    return true;
}

void ClientConn::on_write_cb(uv_write_t* req, int status) noexcept {
    auto* write = static_cast<WriteReq*>(req->data);
    ClientConn* owner = write->owner;
    delete write;
    // UV_ECANCELED means the handle is closing: the owner already knows.
    if (status < 0 && status != UV_ECANCELED && owner->state_ != State::Closed) {
        owner->finish(Outcome::IoError, uv_err_name(status));
    }
}

void ClientConn::close(std::uint16_t code) {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    if (state_ != State::Open) {
        abort(Outcome::Aborted, "closed before open");
        return;
    }
    if (target_->session) {
        // End the session, not only this connection (a Close would leave the session waiting
        // resume_window for a resume): the proxy answers with the `close` control and Close.
        session_closing_ = true;
        send_control(R"({"type":"close"})");
        if (state_ == State::Open) {
            state_ = State::Closing;
        }
        return;
    }
    const std::string payload = ws::close_payload(code, "");
    send(ws::Opcode::Close, std::as_bytes(std::span(payload)));
    if (state_ == State::Open) {
        state_ = State::Closing;
    }
}

void ClientConn::abort(Outcome outcome, std::string_view detail) { finish(outcome, detail); }

void ClientConn::finish(Outcome outcome, std::string_view detail) {
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    outcome_ = outcome;
    detail_ = detail;
    decoder_.stop();
    if (handle_open_) {
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close_cb);
    }
}

void ClientConn::on_close_cb(uv_handle_t* handle) noexcept {
    auto* self = static_cast<ClientConn*>(handle->data);
    self->handle_open_ = false;
    if (self->notify_closed_) {
        self->handler_->on_closed(*self, self->outcome_, self->detail_);
    }
}

void ClientConn::on_data_frame_begin(const ws::FrameHeader&, ws::Opcode message_opcode) {
    if (target_->session && part_ == Part::Start && message_opcode == ws::Opcode::Text) {
        part_ = Part::Text; // text messages are session messages as they are
    }
}

void ClientConn::on_data_frame_payload(std::span<const std::byte> bytes) {
    if (state_ != State::Open && state_ != State::Closing) {
        return;
    }
    if (target_->session && part_ == Part::Start && !bytes.empty()) {
        if (bytes[0] == kKindBinary) {
            part_ = Part::Data;
        } else if (bytes[0] == kKindControl) {
            part_ = Part::Control;
        } else {
            finish(Outcome::ProtocolError, "session: bad kind byte");
            return;
        }
        bytes = bytes.subspan(1);
    }
    if (part_ == Part::Control) {
        if (control_.size() + bytes.size() > kMaxControl) {
            finish(Outcome::ProtocolError, "session: control message too large");
            return;
        }
        control_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return;
    }
    if (!bytes.empty()) {
        handler_->on_data(*this, bytes);
    }
}

void ClientConn::on_data_frame_end(bool message_end) {
    if (!message_end || (state_ != State::Open && state_ != State::Closing)) {
        return;
    }
    if (!target_->session) {
        handler_->on_message_end(*this);
        return;
    }
    const Part part = std::exchange(part_, Part::Start);
    if (part == Part::Start) {
        finish(Outcome::ProtocolError, "session: empty binary message");
        return;
    }
    if (part == Part::Control) {
        on_control();
        return;
    }
    if (!announced_) {
        // Every connection starts with the `session` control: a message before it means the
        // proxy relayed the connection instead (and the backend picked our subprotocol).
        finish(Outcome::ProtocolError, "session: a message before the session control");
        return;
    }
    ++session_seq_;
    handler_->on_message_end(*this);
    // Acknowledge every kAckEvery messages, so the proxy can drop them from its replay buffer.
    if (state_ == State::Open && session_seq_ - acked_seq_ >= kAckEvery) {
        acked_seq_ = session_seq_;
        send_control(R"({"type":"ack","seq":)" + std::to_string(session_seq_) + "}");
    }
}

void ClientConn::on_control() {
    const std::string json = std::exchange(control_, {});
    const std::string_view type = json_string(json, "type");
    if (type == "session") {
        announced_ = true;
        session_seq_ = json_number(json, "last_seq");
        acked_seq_ = session_seq_;
    } else if (type == "ack" || (type == "close" && session_closing_)) {
        // ack: our messages were forwarded; close: the answer to ours, Close 1000 follows.
    } else {
        finish(Outcome::Aborted, "session_control_" + std::string(type.empty() ? "bad" : type));
    }
}

void ClientConn::on_ping(std::span<const std::byte> payload) {
    send(ws::Opcode::Pong, payload); // RFC 6455 §5.5.3; no-op unless Open
}

void ClientConn::on_pong(std::span<const std::byte>) {}

void ClientConn::on_close(std::uint16_t code, std::string_view reason) {
    if (state_ == State::Closing) {
        if (!close_sent_) {
            // Session mode: the proxy closes after our `close` control; answer its Close.
            state_ = State::Open; // send() sends only while Open
            const std::string payload = ws::close_payload(code, "");
            send(ws::Opcode::Close, std::as_bytes(std::span(payload)));
        }
        finish(Outcome::Clean, "");
        return;
    }
    // The server started the closing handshake: answer with its code (RFC 6455 §5.5.1).
    const std::string payload = ws::close_payload(code, "");
    send(ws::Opcode::Close, std::as_bytes(std::span(payload)));
    finish(Outcome::PeerClose, "code " + std::to_string(code) + " " + std::string(reason));
}

} // namespace bench
