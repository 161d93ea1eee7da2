#include "proxy/tls/server_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/tls/transform.h"

namespace proxy::tls {

namespace {

/// TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites all qualify).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string reasons() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        if (!out.empty()) {
            out.append("; ");
        }
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        out.append(buf);
    }
    return out;
}

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
        if (len == sizeof(kHttp11) &&
            std::equal(kHttp11, kHttp11 + sizeof(kHttp11), in + i + 1)) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(len);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

} // namespace

core::Result<std::unique_ptr<ServerContext>> ServerContext::create(const ServerOptions& options) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
        return core::fail(core::Code::Internal, core::Side::Internal,
                          "SSL_CTX_new: " + reasons());
    }
    std::unique_ptr<ServerContext> self(new ServerContext(ctx));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    static constexpr unsigned char kSessionContext[] = "wsbridge";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
        return core::fail(core::Code::Internal, core::Side::Internal,
                          "cipher list: " + reasons());
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
        return core::fail(core::Code::Config, core::Side::Config,
                          "TLS certificate " + options.cert_file + ": " + reasons());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        return core::fail(core::Code::Config, core::Side::Config,
                          "TLS key " + options.key_file + ": " + reasons());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return core::fail(core::Code::Config, core::Side::Config,
                          "TLS key " + options.key_file + " does not match certificate " +
                              options.cert_file + ": " + reasons());
    }
    return self;
}

ServerContext::~ServerContext() {
    SSL_CTX_free(ctx_);
}

std::unique_ptr<core::StreamTransform> ServerContext::new_transform() {
    SSL* ssl = SSL_new(ctx_);
    if (ssl == nullptr) {
        return nullptr;
    }
    SSL_set_accept_state(ssl);
    return std::make_unique<Transform>(ssl, &stats_);
}

} // namespace proxy::tls
