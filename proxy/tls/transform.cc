#include "proxy/tls/transform.h"

#include "proxy/core/text.h"
#include "proxy/tls/errors.h"
#include "proxy/tls/server_context.h"

#include <array>
#include <climits>
#include <cstring>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace proxy::tls {

using core::Code;
using core::Error;
using core::Side;

namespace {

/// Largest plaintext read per SSL_read call (one TLS record carries at most 16 KiB).
constexpr int kReadChunk = 16 * 1024;
/// Plain bytes per TLS record (OpenSSL's default max_send_fragment).
constexpr std::size_t kRecordPlain = 16 * 1024;

// The transform's BIO: OpenSSL reads the wire bytes of the current on_wire() call straight
// from the caller's span and writes its records straight into the caller's `wire` string.
// Nothing is buffered in the BIO (a memory BIO pair copied every byte once more and kept a
// handshake-sized buffer per connection); input that does not complete a record waits in
// OpenSSL's own read buffer.

int wire_bio_read(BIO* bio, char* out, int len) {
    auto* io = static_cast<WireIo*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (io->in.empty() || len <= 0) {
        BIO_set_retry_read(bio); // not EOF: SSL_read waits for the next on_wire()
        return -1;
    }
    const std::size_t n = std::min(io->in.size(), static_cast<std::size_t>(len));
    std::memcpy(out, io->in.data(), n);
    if (io->read_count != nullptr) {
        io->read_count->feed(io->in.first(n));
    }
    io->in = io->in.subspan(n);
    return static_cast<int>(n);
}

int wire_bio_write(BIO* bio, const char* bytes, int len) {
    auto* io = static_cast<WireIo*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (io->out == nullptr) {
        BIO_set_retry_write(bio);
        return -1;
    }
    if (len <= 0) {
        return 0;
    }
    io->out->append(bytes, static_cast<std::size_t>(len));
    if (io->write_count != nullptr) {
        io->write_count->feed(
            std::as_bytes(std::span<const char>(bytes, static_cast<std::size_t>(len))));
    }
    return len;
}

long wire_bio_ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return static_cast<long>(static_cast<WireIo*>(BIO_get_data(bio))->in.size());
    default:
        return 0; // no kTLS, no dgram, no EOF state
    }
}

int wire_bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

/// The method, built once for the process (C++ guarantees a thread-safe first call).
BIO_METHOD* wire_bio_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsbridge wire");
        BIO_meth_set_read(m, wire_bio_read);
        BIO_meth_set_write(m, wire_bio_write);
        BIO_meth_set_ctrl(m, wire_bio_ctrl);
        BIO_meth_set_create(m, wire_bio_create);
        return m;
    }();
    return method;
}

/// Points the BIO at one call's input and output for its duration.
class WireScope {
  public:
    WireScope(WireIo& io, std::span<const std::byte> in, std::string& out) noexcept : io_(io) {
        io_.in = in;
        io_.out = &out;
    }
    ~WireScope() {
        io_.in = {};
        io_.out = nullptr;
    }
    WireScope(const WireScope&) = delete;
    WireScope& operator=(const WireScope&) = delete;

  private:
    WireIo& io_;
};

} // namespace

void RecordCounter::feed(std::span<const std::byte> bytes) noexcept {
    while (!bytes.empty()) {
        if (body_left_ == 0) {
            const std::size_t take = std::min(bytes.size(), header_.size() - have_);
            std::memcpy(header_.data() + have_, bytes.data(), take);
            have_ += take;
            bytes = bytes.subspan(take);
            if (have_ < header_.size()) {
                return;
            }
            have_ = 0;
            body_left_ = (std::size_t{header_[3]} << 8) | header_[4];
            if (body_left_ == 0) {
                ++records_;
            }
            continue;
        }
        const std::size_t take = std::min(bytes.size(), body_left_);
        body_left_ -= take;
        bytes = bytes.subspan(take);
        if (body_left_ == 0) {
            ++records_;
        }
    }
}

Transform::Transform(ssl_st* ssl, HandshakeObserver* observer) noexcept
    : ssl_(ssl), observer_(observer) {
    BIO* bio = BIO_new(wire_bio_method());
    BIO_set_data(bio, &io_);
    SSL_set_bio(ssl_, bio, bio); // one BIO both ways: SSL_set_bio takes its one reference
    if (SSL_is_server(ssl_) == 1) {
        // A server connection may leave OpenSSL after its handshake (try_handover).
        handover_ = std::make_unique<Handover>();
        SSL_set_app_data(ssl_, this);
    }
}

Transform::~Transform() {
    give_up_handover();
    SSL_free(ssl_);
}

void Transform::on_keylog(std::string_view line) noexcept {
    // "LABEL <client random, hex> <secret, hex>" (the NSS key log format).
    if (!handover_) {
        return;
    }
    TrafficState* into = nullptr;
    if (line.starts_with("CLIENT_TRAFFIC_SECRET_0 ")) {
        into = &handover_->client;
    } else if (line.starts_with("SERVER_TRAFFIC_SECRET_0 ")) {
        into = &handover_->server;
    } else {
        return;
    }
    const std::size_t space = line.rfind(' ');
    const std::string_view hex = line.substr(space + 1);
    if (hex.size() % 2 != 0 || hex.size() / 2 > into->secret.size()) {
        return;
    }
    for (std::size_t i = 0; i < hex.size() / 2; ++i) {
        const int hi = core::hex_value(hex[2 * i]);
        const int lo = core::hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            into->secret_size = 0;
            return;
        }
        into->secret[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    into->secret_size = hex.size() / 2;
}

void Transform::on_handshake_message() noexcept {
    if (handover_ && established_) {
        handover_->post_handshake_message = true; // a KeyUpdate: OpenSSL's keys moved on
    }
}

void Transform::give_up_handover() noexcept {
    if (handover_) {
        OPENSSL_cleanse(handover_.get(), sizeof(Handover));
        handover_.reset();
    }
    io_.read_count = nullptr;
    io_.write_count = nullptr;
}

void Transform::try_handover() noexcept {
    if (!handover_ || !established_ || failed_ || records_) {
        return;
    }
    Handover& h = *handover_;
    if (SSL_version(ssl_) != TLS1_3_VERSION || h.post_handshake_message ||
        SSL_get_shutdown(ssl_) != 0 || SSL_get_key_update_type(ssl_) != SSL_KEY_UPDATE_NONE ||
        // A client that negotiated smaller records (RFC 6066 max_fragment_length) keeps them.
        SSL_SESSION_get_max_fragment_length(SSL_get_session(ssl_)) !=
            TLSEXT_max_fragment_length_DISABLED ||
        h.client.secret_size == 0 || h.server.secret_size == 0) {
        give_up_handover(); // TLS 1.2, or something this layer does not carry over: OpenSSL stays
        return;
    }
    if (!io_.in.empty() || SSL_has_pending(ssl_) != 0 || !h.read.at_boundary() ||
        !h.written.at_boundary()) {
        return; // part of a record is inside OpenSSL: at the end of a later read
    }
    Suite suite{};
    switch (SSL_CIPHER_get_id(SSL_get_current_cipher(ssl_)) & 0xffff) {
    case 0x1301:
        suite = Suite::Aes128Gcm;
        break;
    case 0x1302:
        suite = Suite::Aes256Gcm;
        break;
    case 0x1303:
        suite = Suite::Chacha20Poly1305;
        break;
    default:
        give_up_handover();
        return;
    }
    h.client.sequence = h.read.records();
    h.server.sequence = h.written.records();
    records_ = RecordLayer::create(suite, h.client, h.server);
    give_up_handover();
    if (records_) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
}

Error Transform::failure(std::string_view what, int ssl_error) {
    failed_ = true;
    std::string why = openssl_reasons();
    if (why.empty()) {
        why = "SSL error " + std::to_string(ssl_error);
    }
    // A failed verification says why (expired, wrong host, unknown issuer...).
    if (const long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK) {
        why.append(" (").append(X509_verify_cert_error_string(verify)).append(")");
    }
    return Error{Code::Tls, Side::Client, std::string(what) + ": " + why};
}

void Transform::clear_stale_errors() noexcept {
    // Failures leave their reasons in the thread's error queue until failure() reads them;
    // SSL_get_error() would blame the next connection for a stale one. Peeking is far cheaper
    // than clearing, and the queue is nearly always empty.
    if (ERR_peek_error() != 0) {
        ERR_clear_error();
    }
}

core::Result<void> Transform::on_connected(std::string& wire) {
    clear_stale_errors();
    const WireScope scope(io_, {}, wire);
    return handshake();
}

core::Result<void> Transform::handshake() {
    if (handover_) {
        // The records this call writes are under the application key if it completes the
        // handshake (the server's tickets): count them from here.
        handover_->written = RecordCounter{};
        io_.write_count = &handover_->written;
    }
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        established_ = true;
        if (handover_) {
            io_.read_count = &handover_->read; // the client's Finished was the last one read
        }
        if (observer_ != nullptr) {
            observer_->on_handshake_done(SSL_get_version(ssl_), SSL_session_reused(ssl_) != 0);
        }
        if (!held_.empty()) {
            std::string held = std::move(held_);
            held_.clear();
            return encrypt(std::as_bytes(std::span<const char>(held.data(), held.size())));
        }
        return {};
    }
    // Handshake messages, or the alert that ends a failed handshake, are already in `wire`.
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return {};
    }
    const unsigned long first = ERR_peek_error();
    const char* reason = first != 0 ? ERR_reason_error_string(first) : nullptr;
    Error e = failure("handshake failed", err);
    if (observer_ != nullptr) {
        observer_->on_handshake_failed(reason != nullptr          ? reason
                                       : err == SSL_ERROR_SYSCALL ? "connection closed"
                                                                  : "unknown",
                                       e.context);
    }
    return core::Unexpected{std::move(e)};
}

core::Result<void> Transform::on_wire(std::span<const std::byte> in, std::string& plain,
                                      std::string& wire) {
    if (records_) {
        return records_->read(in, plain, wire);
    }
    if (failed_) {
        return core::fail(Code::Tls, Side::Client, "input after a TLS failure");
    }
    clear_stale_errors();
    const WireScope scope(io_, in, wire);
    // The handover waits for the connection's next read or write after the one that ends the
    // handshake: a client that closes right after its handshake never pays for it.
    const bool handshake_ends_here = !established_;
    if (!established_) {
        if (auto r = handshake(); !r || !established_) {
            return r;
        }
    }
    // Records are decrypted into a stack buffer and only their bytes are appended, so the
    // caller's string stays as small as the messages it carries. Key updates, session tickets
    // and alerts are answered into `wire` along the way.
    std::array<char, kReadChunk> buf;
    for (;;) {
        const int n = SSL_read(ssl_, buf.data(), kReadChunk);
        if (n > 0) {
            plain.append(buf.data(), static_cast<std::size_t>(n));
            if (io_.in.empty() && SSL_has_pending(ssl_) == 0) {
                if (!handshake_ends_here) {
                    try_handover();
                }
                return {}; // all input consumed: another SSL_read could only want more
            }
            continue;
        }
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (!handshake_ends_here) {
                try_handover();
            }
            return {};
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
            // The peer's close_notify: what follows is its TCP FIN, reported by the stream.
            give_up_handover();
            return {};
        }
        return core::Unexpected{failure("TLS record failed", err)};
    }
}

core::Result<void> Transform::encrypt(std::span<const std::byte> plain) {
    while (!plain.empty()) {
        const auto n = static_cast<int>(std::min<std::size_t>(plain.size(), INT_MAX));
        // The BIO takes every byte, so SSL_write takes everything in one call.
        const int r = SSL_write(ssl_, plain.data(), n);
        if (r <= 0) {
            return core::Unexpected{failure("TLS write failed", SSL_get_error(ssl_, r))};
        }
        plain = plain.subspan(static_cast<std::size_t>(r));
    }
    return {};
}

core::Result<void> Transform::on_plain(std::span<const std::span<const std::byte>> pieces,
                                       std::string& wire) {
    if (failed_) {
        return core::fail(Code::Tls, Side::Internal, "write after a TLS failure");
    }
    if (records_) {
        records_->write(pieces, wire);
        return {};
    }
    if (!established_) {
        for (const auto& piece : pieces) {
            held_.append(reinterpret_cast<const char*>(piece.data()), piece.size());
        }
        return {};
    }
    clear_stale_errors();
    const WireScope scope(io_, {}, wire);
    try_handover();
    if (records_) {
        records_->write(pieces, wire);
        return {};
    }
    return pieces.size() == 1 ? encrypt(pieces[0]) : encrypt_gathered(pieces);
}

core::Result<void> Transform::encrypt_gathered(std::span<const std::span<const std::byte>> pieces) {
    // One write becomes as few records as its size allows, not one record per piece: a relayed
    // frame is a header and a payload, and a record each would double the AEAD work, the
    // record overhead on the wire and the peer's decrypt calls per message. Small pieces are
    // gathered into one record-sized buffer; whole records of a large piece go as they are.
    std::array<std::byte, kRecordPlain> gather;
    std::size_t used = 0;
    for (auto piece : pieces) {
        while (!piece.empty()) {
            if (used == 0 && piece.size() >= kRecordPlain) {
                const std::size_t whole = piece.size() - piece.size() % kRecordPlain;
                if (auto r = encrypt(piece.first(whole)); !r) {
                    return r;
                }
                piece = piece.subspan(whole);
                continue;
            }
            const std::size_t n = std::min(piece.size(), kRecordPlain - used);
            std::memcpy(gather.data() + used, piece.data(), n);
            used += n;
            piece = piece.subspan(n);
            if (used == kRecordPlain) {
                if (auto r = encrypt(std::span(gather.data(), used)); !r) {
                    return r;
                }
                used = 0;
            }
        }
    }
    return used == 0 ? core::Result<void>{} : encrypt(std::span(gather.data(), used));
}

void Transform::on_close(std::string& wire) {
    if (records_) {
        records_->close_notify(wire);
        return;
    }
    if (!established_ || failed_) {
        return;
    }
    clear_stale_errors();
    const WireScope scope(io_, {}, wire);
    if (SSL_shutdown(ssl_) < 0) { // sends close_notify; the peer's answer is not awaited
        ERR_clear_error();        // a peer that is already gone: nothing to report
    }
}

} // namespace proxy::tls
