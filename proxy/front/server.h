#pragma once
// Server: one worker's listeners and its Context. Accepts client connections, applies the
// connection caps, and starts an HttpConnection for each. Owns the graceful shutdown.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/front/admin.h"
#include "proxy/context.h"
#include "proxy/core/loop.h"
#include "proxy/core/systemd.h"
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
    /// A listen entry whose address matches a socket in `inherited` (systemd socket
    /// activation) takes that socket instead of binding; the rest are logged and closed.
    /// Fails (Code::Config / Code::Io) without leaving anything bound.
    core::Result<void> start(core::InheritedListeners* inherited = nullptr);
    /// One line for `systemctl status`: live connections and sessions, the last reload.
    std::string status_line() const;
    /// Stops accepting, asks every connection to close (1001 when `going_away`) and arms a
    /// deadline (drain_timeout) after which the rest is aborted. Idempotent.
    void stop(bool going_away);
    /// Reload in place (SIGHUP): reads `path`; on any error keeps the running config, logs
    /// each problem (`reload_failed`) and returns it. Otherwise new requests get the new
    /// routes, limits and certificates at once, listeners added are bound and those removed
    /// stop accepting (their connections stay), and every live relay and session keeps the
    /// snapshot it started with. Logs `reloaded` with what changed.
    core::Result<void> reload(const std::string& path);

    /// Bound addresses, in config order ("127.0.0.1:43210").
    std::vector<std::string> addresses() const;
    Context& context() noexcept { return context_; }
    /// The admin listener's bound address, or "" without one.
    std::string admin_address() const { return admin_ ? admin_->address() : std::string(); }

  private:
    // tls::HandshakeObserver (client hop): metrics and a rate-limited log line.
    void on_handshake_done(std::string_view version, bool resumed) override;
    void on_handshake_failed(std::string_view reason, std::string_view detail) override;
    /// One `listen` entry and its socket. Its TLS context is looked up at each accept, so a
    /// reload that replaces it serves the new certificates to the next connection.
    struct Listening {
        config::Listener spec;  ///< as configured (port 0 stays 0)
        std::unique_ptr<core::TcpListener> listener;
        std::shared_ptr<tls::ServerContext> tls;  ///< null for a plain listener
    };
    /// Builds the TLS context of a listen entry (null without `tls`).
    core::Result<std::shared_ptr<tls::ServerContext>> make_tls(const config::Listener& spec);
    /// Binds `l->spec` (or adopts its inherited socket) and starts accepting into on_accept.
    core::Result<void> bind(Listening& l, core::InheritedListeners* inherited = nullptr);
    void on_accept(std::unique_ptr<core::TcpStream> stream, const Listening& l);
    void close_listeners() noexcept;
    /// One step of a drain: closes the listeners at its first call, then the clients due by
    /// now (spread evenly over drain_timeout); stops the loop once none is left.
    void drain_step();

    core::Loop& loop_;
    Context context_;
    std::vector<std::unique_ptr<Listening>> listeners_;
    std::unique_ptr<AdminServer> admin_;
    std::optional<config::Admin> admin_spec_;  ///< the entry admin_ was started for
    std::unique_ptr<core::Timer> drain_timer_;  ///< the drain's deadline
    std::unique_ptr<core::Timer> drain_tick_;   ///< drain_delay, then every 50 ms
    std::vector<Closable*> drain_list_;         ///< what the spread closes, in order
    std::size_t drain_closed_ = 0;
    std::uint64_t drain_began_ = 0;
    std::uint64_t drain_span_ = 0;
    bool drain_started_ = false;
    std::string last_reload_ = "none";  ///< for status_line()
    std::unique_ptr<core::Timer> housekeeping_;  ///< 1 s: suppressed-log summaries
    bool stopping_ = false;
};

} // namespace proxy
