#pragma once
// TLS for client connections (listen[].tls): one OpenSSL server context per TLS listener and
// the StreamTransform that each accepted connection's TcpStream runs (proxy/core/
// stream_transform.h), so the HTTP front, the relay and the session transports never see TLS.
//
// Policy: TLS 1.2 and 1.3 only; forward-secret ciphers only (ECDHE with AES-GCM or
// ChaCha20-Poly1305 for TLS 1.2, every TLS 1.3 suite); no renegotiation, no compression; ALPN
// "http/1.1" (a client that offers only other protocols gets none selected, as nginx does);
// session resumption through stateless tickets and TLS 1.3 PSK (one ticket per handshake);
// connections release their OpenSSL buffers whenever empty (SSL_MODE_RELEASE_BUFFERS). Algorithms are fetched
// once, when the context is built, and every connection reuses the context (OpenSSL 3.0 takes
// shared locks on every fetch).
//
// Only proxy/tls/ includes <openssl/*> (STYLE §1).

#include "proxy/core/result.h"
#include "proxy/core/stream_transform.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;

namespace proxy::tls {

/// One certificate chain and its key (PEM files).
struct CertificateFiles {
    std::string cert_file; ///< PEM certificate chain (leaf first)
    std::string key_file;  ///< PEM private key of the leaf
};

/// What a TLS listener serves.
struct ServerOptions {
    /// Chosen by SNI: the first whose names (SAN, RFC 6125 matching with wildcards) cover the
    /// requested name; the first is the default (no SNI, or no match). At least one.
    std::vector<CertificateFiles> certificates;
    bool tls13_only = false; ///< min_version 1.3 (default minimum: 1.2)
    std::string client_ca; ///< PEM CA bundle: when set, a client certificate it signed is required
};

/// Told of every handshake a context's transforms finish (metrics and logs, in the caller's
/// terms). Called synchronously from the stream's read or connect callback.
class HandshakeObserver {
  public:
    virtual ~HandshakeObserver() = default;
    /// A handshake completed: `version` is "TLSv1.2" or "TLSv1.3".
    virtual void on_handshake_done(std::string_view version, bool resumed) = 0;
    /// A handshake failed: `reason` is OpenSSL's short reason ("wrong version number",
    /// "http request", "certificate verify failed", ...), `detail` the whole error text.
    virtual void on_handshake_failed(std::string_view reason, std::string_view detail) = 0;
};

/// One listener's TLS context. A reload replaces it for new connections; held by a shared_ptr,
/// it lives on until the last transform it made (which holds it) is gone.
class ServerContext : public std::enable_shared_from_this<ServerContext> {
  public:
    /// Builds the context: loads and checks the certificate chain and key. Fails with
    /// Code::Config and OpenSSL's reason (file names included).
    static core::Result<std::unique_ptr<ServerContext>> create(const ServerOptions& options);
    ~ServerContext();
    ServerContext(const ServerContext&) = delete;
    ServerContext& operator=(const ServerContext&) = delete;

    /// A server-side transform for one accepted connection.
    std::unique_ptr<core::StreamTransform> new_transform();
    /// Sets who is told of handshakes (null: nobody). It must outlive the transforms.
    void set_observer(HandshakeObserver* observer) noexcept { observer_ = observer; }

    /// The context whose certificate covers `server_name` (SNI callback), or null for the
    /// default.
    ssl_ctx_st* context_for(const char* server_name) const noexcept;

  private:
    ServerContext() = default;

    std::vector<ssl_ctx_st*> contexts_; ///< one per certificate; [0] is the default
    HandshakeObserver* observer_ = nullptr;
};

} // namespace proxy::tls
