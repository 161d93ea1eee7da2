#include "bench/support/tls.h"

#include "proxy/tls/errors.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace bench {

namespace {
// The context's ex_data slot holding its TlsClientContext (for the new-session callback).
int context_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}
} // namespace

std::string tls_errors() {
    return proxy::tls::openssl_reasons();
}

proxy::core::Result<std::unique_ptr<TlsClientContext>>
TlsClientContext::create(const TlsOptions& o) {
    using proxy::core::Code;
    using proxy::core::Side;
    std::unique_ptr<TlsClientContext> self(new TlsClientContext);
    self->resume_ = o.resume;
    self->ctx_ = SSL_CTX_new(TLS_client_method());
    if (self->ctx_ == nullptr) {
        return proxy::core::fail(Code::Internal, Side::Internal, "SSL_CTX_new: " + tls_errors());
    }
    SSL_CTX* ctx = self->ctx_;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    if (SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1) {
        return proxy::core::fail(Code::Config, Side::Config,
                                 "bad --tls-ciphersuites " + o.ciphersuites + ": " + tls_errors());
    }
    if (SSL_CTX_set1_groups_list(ctx, o.groups.c_str()) != 1) {
        return proxy::core::fail(Code::Config, Side::Config,
                                 "bad --tls-groups " + o.groups + ": " + tls_errors());
    }
    static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
    // Sessions go to on_new_session only (no internal client cache).
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    SSL_CTX_set_ex_data(ctx, context_index(), self.get());
    return self;
}

TlsClientContext::~TlsClientContext() {
    if (latest_ != nullptr) {
        SSL_SESSION_free(latest_);
    }
    SSL_CTX_free(ctx_);
}

int TlsClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<TlsClientContext*>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
    ++self->tickets_;
    if (!self->resume_) {
        return 0; // not kept: OpenSSL frees it
    }
    if (self->latest_ != nullptr) {
        SSL_SESSION_free(self->latest_);
    }
    self->latest_ = session; // we keep the reference OpenSSL handed us
    return 1;
}

SSL* TlsClientContext::new_ssl() {
    SSL* ssl = SSL_new(ctx_);
    if (ssl == nullptr) {
        return nullptr;
    }
    SSL_set_connect_state(ssl);
    // SSL_set_tlsext_host_name() is a macro with a C-style cast.
    static char kServerName[] = "localhost";
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, kServerName);
    if (resume_ && latest_ != nullptr) {
        SSL_set_session(ssl, latest_);
    }
    return ssl;
}

} // namespace bench
