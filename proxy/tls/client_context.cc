#include "proxy/tls/client_context.h"

#include "proxy/tls/errors.h"
#include "proxy/tls/transform.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace proxy::tls {

namespace {

// Keeps the newest session of the backend, to resume it on the next connection (RFC 8446 §2.2,
// RFC 5077). Returns 1: the context took a reference.
int remember_session(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<ClientContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    self->remember(session);
    return 1;
}

bool is_ip_literal(const std::string& name) {
    unsigned char buf[16];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

} // namespace

core::Result<std::unique_ptr<ClientContext>> ClientContext::create(const ClientOptions& options) {
    ERR_clear_error();
    std::unique_ptr<ClientContext> self(new ClientContext);
    self->options_ = options;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr) {
        return core::fail(core::Code::Internal, core::Side::Internal,
                          "SSL_CTX_new: " + openssl_reasons());
    }
    self->ctx_ = ctx;
    auto fail = [](std::string why) {
        return core::fail(core::Code::Config, core::Side::Config,
                          std::move(why) + openssl_reasons());
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_app_data(ctx, self.get());
    SSL_CTX_sess_set_new_cb(ctx, remember_session);
    static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
    if (options.verify) {
        const int loaded =
            options.ca_file.empty()
                ? SSL_CTX_set_default_verify_paths(ctx)
                : SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
        if (loaded != 1) {
            return fail(
                "backend_tls.ca " +
                (options.ca_file.empty() ? std::string("(system store)") : options.ca_file) + ": ");
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!options.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            return fail("backend_tls.cert " + options.cert_file + ": ");
        }
    }
    return self;
}

ClientContext::~ClientContext() {
    SSL_SESSION_free(session_);
    SSL_CTX_free(ctx_);
}

void ClientContext::remember(ssl_session_st* session) noexcept {
    SSL_SESSION_free(session_);
    session_ = session;
}

std::unique_ptr<core::StreamTransform> ClientContext::new_transform() {
    SSL* ssl = SSL_new(ctx_);
    if (ssl == nullptr) {
        return nullptr;
    }
    const std::string& name = options_.server_name;
    const bool ip = is_ip_literal(name);
    if (!ip) {
        // SNI carries DNS names only (RFC 6066). SSL_set_tlsext_host_name() is a macro with a
        // C-style cast.
        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(name.c_str()));
    }
    if (options_.verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ip) {
            X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
        } else {
            SSL_set1_host(ssl, name.c_str());
        }
    }
    if (session_ != nullptr && SSL_SESSION_is_resumable(session_) == 1) {
        SSL_set_session(ssl, session_);
    }
    SSL_set_connect_state(ssl);
    return std::make_unique<Transform>(ssl, observer_);
}

} // namespace proxy::tls
