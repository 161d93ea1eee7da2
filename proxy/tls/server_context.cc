#include "proxy/tls/server_context.h"

#include "proxy/tls/errors.h"
#include "proxy/tls/transform.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace proxy::tls {

namespace {

/// TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites all qualify).
constexpr const char* kTls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// ALPN (RFC 7301): select http/1.1 when offered; otherwise select nothing and go on, as nginx
// does, rather than fail clients that offer only protocols this version does not speak.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* /*arg*/) {
    static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
    for (unsigned int i = 0; i < inlen;) {
        const unsigned int len = in[i];
        if (i + 1 + len > inlen) {
            break;
        }
        if (len == sizeof(kHttp11) && std::equal(kHttp11, kHttp11 + sizeof(kHttp11), in + i + 1)) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(len);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/// SNI (RFC 6066): switch to the context whose certificate covers the requested name.
int select_certificate(SSL* ssl, int* /*alert*/, void* arg) {
    const auto* self = static_cast<const ServerContext*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name != nullptr) {
        if (SSL_CTX* ctx = self->context_for(name)) {
            SSL_set_SSL_CTX(ssl, ctx);
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

// OpenSSL's key log and message callbacks feed a server connection's handover from OpenSSL
// to the RecordLayer (transform.h): the application traffic secrets as they are derived, and
// any post-handshake message, which would move the keys on inside OpenSSL.
void log_key(const SSL* ssl, const char* line) {
    if (auto* transform = static_cast<Transform*>(SSL_get_app_data(ssl))) {
        transform->on_keylog(line);
    }
}

void watch_messages(int /*write_p*/, int /*version*/, int content_type, const void* /*buf*/,
                    std::size_t /*len*/, SSL* ssl, void* /*arg*/) {
    if (content_type == SSL3_RT_HANDSHAKE) {
        if (auto* transform = static_cast<Transform*>(SSL_get_app_data(ssl))) {
            transform->on_handshake_message();
        }
    }
}

/// One context with the listener's policy and one certificate.
core::Result<SSL_CTX*> make_context(const CertificateFiles& files, const ServerOptions& options) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
        return core::fail(core::Code::Internal, core::Side::Internal,
                          "SSL_CTX_new: " + openssl_reasons());
    }
    auto fail = [ctx](std::string why) {
        SSL_CTX_free(ctx);
        return core::fail(core::Code::Config, core::Side::Config,
                          std::move(why) + openssl_reasons());
    };
    SSL_CTX_set_min_proto_version(ctx, options.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Record buffers are freed whenever they are empty, the handshake's included: measured,
    // this costs no instructions per handshake worth seeing and leaves fewer holes in the heap
    // after a burst of handshakes than keeping them until the handshake ends.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // Resumption through stateless tickets only (TLS 1.2 tickets, TLS 1.3 PSK), as nginx's
    // default: OpenSSL's server-side session cache would hold every session (up to 20,480)
    // in memory, and with it TLS 1.3 tickets become single-use, so clients that resume in
    // parallel from one ticket fall back to full handshakes.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    // One TLS 1.3 ticket per connection (OpenSSL sends two): every new connection brings a
    // fresh ticket for the next, and each ticket costs a session encoding, an encryption and a
    // MAC on the server and a decryption on the client.
    SSL_CTX_set_num_tickets(ctx, 1);
    static constexpr unsigned char kSessionContext[] = "wsbridge";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    SSL_CTX_set_keylog_callback(ctx, log_key);
    SSL_CTX_set_msg_callback(ctx, watch_messages);
    if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
        return fail("cipher list: ");
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
        return fail("TLS certificate " + files.cert_file + ": ");
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        return fail("TLS key " + files.key_file + ": ");
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return fail("TLS key " + files.key_file + " does not match certificate " + files.cert_file +
                    ": ");
    }
    if (!options.client_ca.empty()) {
        // Client certificates (mutual TLS): required, and signed by this CA bundle.
        if (SSL_CTX_load_verify_locations(ctx, options.client_ca.c_str(), nullptr) != 1) {
            return fail("TLS client_ca " + options.client_ca + ": ");
        }
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca.c_str());
        if (names == nullptr) {
            return fail("TLS client_ca " + options.client_ca + ": ");
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return ctx;
}

} // namespace

core::Result<std::unique_ptr<ServerContext>> ServerContext::create(const ServerOptions& options) {
    if (options.certificates.empty()) {
        return core::fail(core::Code::Config, core::Side::Config, "TLS: no certificate");
    }
    std::unique_ptr<ServerContext> self(new ServerContext);
    for (const auto& files : options.certificates) {
        auto ctx = make_context(files, options);
        if (!ctx) {
            return core::Unexpected{ctx.error()};
        }
        self->contexts_.push_back(*ctx);
    }
    if (self->contexts_.size() > 1) {
        // SSL_CTX_set_tlsext_servername_callback() is a macro with a C-style cast.
        SSL_CTX_callback_ctrl(self->contexts_[0], SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                              reinterpret_cast<void (*)()>(select_certificate));
        SSL_CTX_set_tlsext_servername_arg(self->contexts_[0], self.get());
    }
    return self;
}

ServerContext::~ServerContext() {
    for (SSL_CTX* ctx : contexts_) {
        SSL_CTX_free(ctx);
    }
}

SSL_CTX* ServerContext::context_for(const char* server_name) const noexcept {
    for (SSL_CTX* ctx : contexts_) {
        X509* cert = SSL_CTX_get0_certificate(ctx);
        if (cert != nullptr && X509_check_host(cert, server_name, 0, 0, nullptr) == 1) {
            return ctx;
        }
    }
    return nullptr;
}

std::unique_ptr<core::StreamTransform> ServerContext::new_transform() {
    SSL* ssl = SSL_new(contexts_[0]);
    if (ssl == nullptr) {
        return nullptr;
    }
    SSL_set_accept_state(ssl);
    auto transform = std::make_unique<Transform>(ssl, observer_);
    transform->hold(weak_from_this().lock());
    return transform;
}

} // namespace proxy::tls
