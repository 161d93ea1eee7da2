#include "proxy/tls/transform.h"

#include "proxy/tls/errors.h"
#include "proxy/tls/server_context.h"

#include <array>
#include <climits>
#include <openssl/bio.h>
#include <openssl/buffer.h>
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

} // namespace

namespace {

/// A memory BIO that reports "retry" when empty instead of EOF, so SSL_read waits for more.
BIO* new_mem_bio() {
    BIO* bio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(bio, -1);
    return bio;
}

/// True when `bio` is empty but holds more than kKeepBio bytes of buffer.
bool oversized_and_empty(BIO* bio) {
    constexpr std::size_t kKeepBio = 4 * 1024;
    BUF_MEM* mem = nullptr;
    return BIO_ctrl_pending(bio) == 0 && BIO_get_mem_ptr(bio, &mem) == 1 && mem != nullptr &&
           mem->max > kKeepBio;
}

} // namespace

Transform::Transform(ssl_st* ssl, HandshakeObserver* observer) noexcept
    : ssl_(ssl), observer_(observer) {
    SSL_set_bio(ssl_, new_mem_bio(), new_mem_bio());
}

Transform::~Transform() { SSL_free(ssl_); }

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

void Transform::trim() {
    // A memory BIO keeps the largest buffer it ever needed (the handshake's certificate
    // chain, a large record). Swap an empty, oversized one for a fresh BIO, so that an idle
    // connection holds OpenSSL's state and no buffer.
    if (oversized_and_empty(SSL_get_rbio(ssl_))) {
        SSL_set0_rbio(ssl_, new_mem_bio());
    }
    if (oversized_and_empty(SSL_get_wbio(ssl_))) {
        SSL_set0_wbio(ssl_, new_mem_bio());
    }
}

void Transform::drain(std::string& wire) {
    BIO* out = SSL_get_wbio(ssl_);
    const auto pending = static_cast<std::size_t>(BIO_ctrl_pending(out));
    if (pending == 0) {
        return;
    }
    const std::size_t at = wire.size();
    wire.resize(at + pending);
    const int n = BIO_read(out, wire.data() + at, static_cast<int>(pending));
    wire.resize(at + (n > 0 ? static_cast<std::size_t>(n) : 0));
}

core::Result<void> Transform::on_connected(std::string& wire) { return handshake(wire); }

core::Result<void> Transform::handshake(std::string& wire) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        established_ = true;
        if (observer_ != nullptr) {
            observer_->on_handshake_done(SSL_get_version(ssl_), SSL_session_reused(ssl_) != 0);
        }
        if (!held_.empty()) {
            std::string held = std::move(held_);
            held_.clear();
            if (auto e = encrypt(std::as_bytes(std::span<const char>(held.data(), held.size())));
                !e) {
                drain(wire);
                return e;
            }
        }
        drain(wire);
        return {};
    }
    const int err = SSL_get_error(ssl_, r);
    drain(wire); // handshake messages, or the alert that ends a failed handshake
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
    if (failed_) {
        return core::fail(Code::Tls, Side::Client, "input after a TLS failure");
    }
    BIO* rbio = SSL_get_rbio(ssl_);
    while (!in.empty()) {
        const auto n = static_cast<int>(std::min<std::size_t>(in.size(), INT_MAX));
        BIO_write(rbio, in.data(), n);
        in = in.subspan(static_cast<std::size_t>(n));
    }
    if (!established_) {
        if (auto r = handshake(wire); !r || !established_) {
            return r;
        }
    }
    ERR_clear_error();
    // Records are decrypted into a stack buffer and only their bytes are appended, so the
    // caller's string stays as small as the messages it carries.
    std::array<char, kReadChunk> buf;
    for (;;) {
        const int n = SSL_read(ssl_, buf.data(), kReadChunk);
        if (n > 0) {
            plain.append(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        const int err = SSL_get_error(ssl_, n);
        drain(wire); // key updates, session tickets, alerts
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            trim();
            return {};
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
            // The peer's close_notify: what follows is its TCP FIN, reported by the stream.
            return {};
        }
        return core::Unexpected{failure("TLS record failed", err)};
    }
}

core::Result<void> Transform::encrypt(std::span<const std::byte> plain) {
    ERR_clear_error();
    while (!plain.empty()) {
        const auto n = static_cast<int>(std::min<std::size_t>(plain.size(), INT_MAX));
        // A memory BIO grows as needed, so SSL_write takes everything in one call.
        const int r = SSL_write(ssl_, plain.data(), n);
        if (r <= 0) {
            return core::Unexpected{failure("TLS write failed", SSL_get_error(ssl_, r))};
        }
        plain = plain.subspan(static_cast<std::size_t>(r));
    }
    return {};
}

core::Result<void> Transform::on_plain(std::span<const std::byte> plain, std::string& wire) {
    if (failed_) {
        return core::fail(Code::Tls, Side::Internal, "write after a TLS failure");
    }
    if (!established_) {
        held_.append(reinterpret_cast<const char*>(plain.data()), plain.size());
        return {};
    }
    auto r = encrypt(plain);
    drain(wire);
    trim();
    return r;
}

void Transform::on_close(std::string& wire) {
    if (!established_ || failed_) {
        return;
    }
    ERR_clear_error();
    SSL_shutdown(ssl_); // sends close_notify; the peer's answer is not awaited
    drain(wire);
}

} // namespace proxy::tls
