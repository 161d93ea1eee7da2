#pragma once
// TLS towards wss:// backends: one OpenSSL client context per route, verified like a browser
// verifies a server: the chain against the route's CA bundle (or the system CA store), and the
// host name (RFC 6125) against the backend's name, which is also sent as SNI. Only
// `verify: false` turns verification off (the caller logs a warning at startup). Sessions are
// cached per context and resumed on the next connection to the same backend.
//
// A failed verification fails the handshake with OpenSSL's reason (for example "certificate
// verify failed: certificate has expired"), which reaches the stream's owner as
// on_read_end(Code::Tls).

#include "proxy/core/result.h"
#include "proxy/core/stream_transform.h"
#include "proxy/tls/server_context.h"

#include <memory>
#include <string>

struct ssl_ctx_st;
struct ssl_session_st;

namespace proxy::tls {

/// How to reach one backend.
struct ClientOptions {
    std::string ca_file;     ///< PEM bundle to trust; "" = the system CA store
    std::string server_name; ///< SNI and the name verified (a DNS name or an IP literal)
    std::string cert_file;   ///< client certificate presented to the backend, or ""
    std::string key_file;
    bool verify = true;
};

/// One route's client context.
class ClientContext {
  public:
    /// Builds the context: loads the CA bundle (or the system store) and the client
    /// certificate. Fails with Code::Config and OpenSSL's reason.
    static core::Result<std::unique_ptr<ClientContext>> create(const ClientOptions& options);
    ~ClientContext();
    ClientContext(const ClientContext&) = delete;
    ClientContext& operator=(const ClientContext&) = delete;

    /// A client-side transform for one backend connection (SNI, host name check, resumption).
    std::unique_ptr<core::StreamTransform> new_transform();
    /// Sets who is told of handshakes (null: nobody). It must outlive the transforms.
    void set_observer(HandshakeObserver* observer) noexcept { observer_ = observer; }
    /// Takes a reference to `session`, the newest of this backend (OpenSSL's new-session
    /// callback), for the next connection to resume.
    void remember(ssl_session_st* session) noexcept;

  private:
    ClientContext() = default;

    ssl_ctx_st* ctx_ = nullptr;
    ssl_session_st* session_ = nullptr;
    ClientOptions options_;
    HandshakeObserver* observer_ = nullptr;
};

} // namespace proxy::tls
