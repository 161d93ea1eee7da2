#pragma once
// TLS for the load generator's client connections (wss:// targets): one client SSL_CTX per run
// with the benchmark's fixed policy, so that every server under test negotiates the same thing:
// TLS 1.3 only, one cipher suite (TLS_AES_128_GCM_SHA256 unless told otherwise), one key
// exchange group (X25519), SNI "localhost", no certificate verification (the benchmark measures
// the servers, and every one presents the same certificate), SSL_MODE_RELEASE_BUFFERS.
//
// Resumption: the context keeps the most recent session the servers handed out (TLS 1.3
// NewSessionTicket) and, when asked, offers it on new connections (PSK with (EC)DHE).
//
// bench/ only: the benchmark is allowed to include OpenSSL directly (bench/README.md).

#include "proxy/core/result.h"

#include <memory>
#include <string>

struct ssl_ctx_st;
struct ssl_st;
struct ssl_session_st;

namespace bench {

struct TlsOptions {
    std::string ciphersuites = "TLS_AES_128_GCM_SHA256"; ///< TLS 1.3 suites offered
    std::string groups = "X25519";                       ///< key exchange groups offered
    bool resume = false; ///< offer the latest session ticket on new connections
};

class TlsClientContext {
  public:
    static proxy::core::Result<std::unique_ptr<TlsClientContext>> create(const TlsOptions& o);
    ~TlsClientContext();
    TlsClientContext(const TlsClientContext&) = delete;
    TlsClientContext& operator=(const TlsClientContext&) = delete;

    /// A new client SSL object in the connect state, with SNI and (when resuming and a session
    /// is known) the latest session set. Null on allocation failure.
    ssl_st* new_ssl();
    /// How many session tickets the servers handed out so far.
    [[nodiscard]] unsigned long long tickets() const noexcept { return tickets_; }

  private:
    TlsClientContext() = default;
    static int on_new_session(ssl_st* ssl, ssl_session_st* session);

    ssl_ctx_st* ctx_ = nullptr;
    ssl_session_st* latest_ = nullptr;
    bool resume_ = false;
    unsigned long long tickets_ = 0;
};

/// OpenSSL's queued error reasons, oldest first; empties the queue.
std::string tls_errors();

} // namespace bench
