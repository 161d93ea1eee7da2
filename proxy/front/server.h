#pragma once
// Server: one worker's listeners and its Context. Accepts client connections, applies the
// connection caps, and starts an HttpConnection for each. Owns the graceful shutdown.

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/front/admin.h"
#include "proxy/context.h"
#include "proxy/core/loop.h"
#include "proxy/core/tcp.h"
#include "proxy/tls/server_context.h"
#include "proxy/core/timer.h"

namespace proxy {

/// See the file comment.
class Server final : private tls::HandshakeObserver {
  public:
    Server(core::Loop& loop, std::shared_ptr<const config::Config> config);
    ~Server();

    /// Resolves backends and binds every listener; logs `event=listening address=…` for each.
    /// Fails (Code::Config / Code::Io) without leaving anything bound.
    core::Result<void> start();
    /// Stops accepting, asks every connection to close (1001 when `going_away`) and arms a
    /// deadline (drain_timeout) after which the rest is aborted. Idempotent.
    void stop(bool going_away);

    /// Bound addresses, in config order ("127.0.0.1:43210").
    std::vector<std::string> addresses() const;
    Context& context() noexcept { return context_; }
    /// The admin listener's bound address, or "" without one.
    std::string admin_address() const { return admin_ ? admin_->address() : std::string(); }

  private:
    // tls::HandshakeObserver (client hop): metrics and a rate-limited log line.
    void on_handshake_done(std::string_view version, bool resumed) override;
    void on_handshake_failed(std::string_view reason, std::string_view detail) override;
    /// `tls` is the listener's TLS context, or null for a plain listener.
    void on_accept(std::unique_ptr<core::TcpStream> stream, const std::string& scheme,
                   tls::ServerContext* tls);

    core::Loop& loop_;
    Context context_;
    std::vector<std::unique_ptr<core::TcpListener>> listeners_;
    std::vector<std::unique_ptr<tls::ServerContext>> tls_contexts_;  ///< one per TLS listener
    std::unique_ptr<AdminServer> admin_;
    std::unique_ptr<core::Timer> drain_timer_;
    std::unique_ptr<core::Timer> housekeeping_;  ///< 1 s: suppressed-log summaries
    bool stopping_ = false;
};

} // namespace proxy
