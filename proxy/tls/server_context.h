#pragma once
// TLS for client connections (listen[].tls): one OpenSSL server context per TLS listener and
// the StreamTransform that each accepted connection's TcpStream runs (proxy/core/
// stream_transform.h), so the HTTP front, the relay and the session transports never see TLS.
//
// Policy: TLS 1.2 and 1.3 only; forward-secret ciphers only (ECDHE with AES-GCM or
// ChaCha20-Poly1305 for TLS 1.2, every TLS 1.3 suite); no renegotiation, no compression; ALPN
// "http/1.1" (a client that offers only other protocols gets none selected, as nginx does);
// session resumption through tickets and TLS 1.3 PSK with OpenSSL's defaults; idle
// connections release their OpenSSL buffers (SSL_MODE_RELEASE_BUFFERS). Algorithms are fetched
// once, when the context is built, and every connection reuses the context (OpenSSL 3.0 takes
// shared locks on every fetch).
//
// Only proxy/tls/ includes <openssl/*> (STYLE §1).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/core/result.h"
#include "proxy/core/stream_transform.h"

struct ssl_ctx_st;

namespace proxy::tls {

/// One certificate chain and its key (PEM files).
struct CertificateFiles {
    std::string cert_file;  ///< PEM certificate chain (leaf first)
    std::string key_file;   ///< PEM private key of the leaf
};

/// What a TLS listener serves.
struct ServerOptions {
    /// Chosen by SNI: the first whose names (SAN, RFC 6125 matching with wildcards) cover the
    /// requested name; the first is the default (no SNI, or no match). At least one.
    std::vector<CertificateFiles> certificates;
    bool tls13_only = false;  ///< min_version 1.3 (default minimum: 1.2)
    std::string client_ca;    ///< PEM CA bundle: when set, a client certificate it signed is required
};

/// Counts of one context's handshakes (read by the metrics endpoint).
struct HandshakeStats {
    std::uint64_t completed_tls12 = 0;
    std::uint64_t completed_tls13 = 0;
    std::uint64_t resumed = 0;   ///< completed handshakes that resumed a session
    std::uint64_t failed = 0;
};

/// One listener's TLS context. Lives as long as the listener; transforms it made hold no
/// pointer to it beyond the stats, which outlive them (the Server keeps contexts to the end).
class ServerContext {
  public:
    /// Builds the context: loads and checks the certificate chain and key. Fails with
    /// Code::Config and OpenSSL's reason (file names included).
    static core::Result<std::unique_ptr<ServerContext>> create(const ServerOptions& options);
    ~ServerContext();
    ServerContext(const ServerContext&) = delete;
    ServerContext& operator=(const ServerContext&) = delete;

    /// A server-side transform for one accepted connection.
    std::unique_ptr<core::StreamTransform> new_transform();
    /// Handshakes so far.
    const HandshakeStats& stats() const noexcept { return stats_; }

    /// The context whose certificate covers `server_name` (SNI callback), or null for the
    /// default.
    ssl_ctx_st* context_for(const char* server_name) const noexcept;

  private:
    ServerContext() = default;

    std::vector<ssl_ctx_st*> contexts_;  ///< one per certificate; [0] is the default
    HandshakeStats stats_;
};

} // namespace proxy::tls
