#pragma once
// Per-worker context shared by every connection of one event loop: the loop, the config
// snapshot, resolved backend addresses, counters, and the registry that owns the worker's live
// connection objects (loop.h, the ownership rule 2) and shuts them down.

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "proxy/core/loop.h"
#include "proxy/metrics.h"
#include "proxy/tls/client_context.h"
#include "proxy/core/crypto.h"

namespace proxy {

class Session;

/// A connection object the worker can ask to go away (shutdown, drain). Owned by the Context's
/// registry; it ends by calling Context::retire on itself.
class Closable : public core::DeferredDeletable {
  public:
    /// Starts closing: `going_away` sends close 1001 / ends streams politely; otherwise abort.
    virtual void shutdown(bool going_away) = 0;
    /// False for what a drain leaves to the end (the admin port's connections: /readyz keeps
    /// answering 503 while clients are closed).
    virtual bool drained() const noexcept { return true; }
};

/// A route plus what was resolved for it at load time: an immutable snapshot. A relay or a
/// session holds the snapshot it started with (route.shared_from_this()) and runs on it until
/// it ends, whatever reloads happen meanwhile; `config` keeps `route` alive.
struct RouteRuntime : std::enable_shared_from_this<RouteRuntime> {
    std::shared_ptr<const config::Config> config;
    const config::Route* route = nullptr;
    std::string backend_ip;  ///< numeric address of the backend host (resolved at load)
    /// TLS towards a wss:// backend (verification per backend_tls), built at load; else null.
    std::shared_ptr<tls::ClientContext> backend_tls;
};

/// What a reload changed, for its log line.
struct ReloadSummary {
    std::vector<std::string> routes_added;
    std::vector<std::string> routes_removed;
    std::vector<std::string> routes_changed;
};

/// Everything one worker's connections share. Lives as long as the worker's loop.
class Context final : private tls::HandshakeObserver {
  public:
    Context(core::Loop& loop, std::shared_ptr<const config::Config> config);
    /// Destroys the objects still live (a loop stopped before they ended) while the rest of
    /// the context is intact.
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    core::Loop& loop() noexcept { return loop_; }
    const config::Config& config() const noexcept { return *config_; }
    core::MaskSource& masks() noexcept { return masks_; }
    Metrics& metrics() noexcept { return metrics_; }

    /// Resolves every route's backend host. Errors name the route.
    core::Result<void> resolve_backends();
    /// Switches new requests to `config` (SIGHUP): resolves its routes' backends and builds
    /// their TLS contexts first, reusing the current route snapshot of every route that did not
    /// change. On failure nothing changes. Live relays and sessions keep their snapshots.
    core::Result<ReloadSummary> reload(std::shared_ptr<const config::Config> config);
    /// The runtime of the route matching `path` (path without query), or nullptr.
    const RouteRuntime* match(std::string_view path) const;

    /// Registry of live connection objects (loop.h, rule 2): takes ownership of `object` (an
    /// HTTP connection, a relay, a session, an SSE stream, an admin connection) and keeps it
    /// until retire(). Returns the object, for its start(). Closable objects are shut down by
    /// shutdown_all().
    template <class T>
    T& adopt(std::unique_ptr<T> object) {
        static_assert(std::is_base_of_v<core::DeferredDeletable, T>);
        T& ref = *object;
        Closable* closable = nullptr;
        if constexpr (std::is_base_of_v<Closable, T>) {
            closable = &ref;
        }
        adopt_live(std::move(object), closable);
        return ref;
    }
    /// Ends a live object's life: its owner moves from the registry into the loop's deferred
    /// deletions, so it is destroyed at the next check phase, after the callback stack that
    /// ended it has unwound (STYLE §2.5). Safe from the object's own callbacks. A no-op for an
    /// object the registry does not hold (retired already, or never adopted).
    void retire(core::DeferredDeletable& object);
    /// Live (adopted, not yet retired) objects.
    std::size_t live_count() const noexcept { return live_.size(); }
    /// Asks every live Closable to shut down (each retires itself, now or later).
    void shutdown_all(bool going_away);
    /// The live Closables a drain closes, sessions first (shutdown_all's order).
    std::vector<Closable*> drain_list() const;
    /// True while `c` is live (adopted and not retired).
    bool is_live(const Closable* c) const {
        return live_.count(const_cast<Closable*>(c)) != 0;
    }
    /// Live Closables a drain still has to close.
    std::size_t drain_remaining() const;

    /// Admission control for client connections (SPEC §5): returns false when the global or
    /// per-IP cap is reached. On true, release_client(ip) must be called exactly once later.
    bool admit_client(const std::string& ip);
    void release_client(const std::string& ip);
    std::size_t client_count() const noexcept { return clients_; }

    /// Session index (SSE and long-poll sessions of this worker), keyed by id. Not owning: a
    /// session is owned by the registry above; it adds itself here and removes itself when it
    /// ends.
    Session* find_session(std::string_view id) const;
    void add_session(std::string_view id, Session* session);
    void remove_session(std::string_view id);
    std::size_t session_count() const noexcept { return sessions_.size(); }
    /// Live sessions of one route path (for its max_sessions cap; counted by path, so the
    /// sessions a route had before a reload count against it after).
    std::size_t route_sessions(const std::string& path) const;
    void count_route_session(const std::string& path, int delta);

    /// True once shutdown started: new requests get 503.
    bool draining() const noexcept { return draining_; }
    void set_draining() noexcept { draining_ = true; }

  private:
    // tls::HandshakeObserver for the backend hop (wss:// routes): metrics and a log line.
    void on_handshake_done(std::string_view version, bool resumed) override;
    void on_handshake_failed(std::string_view reason, std::string_view detail) override;

    /// One live object: its owner, and the same object as a Closable (null when it is not).
    struct Live {
        std::unique_ptr<core::DeferredDeletable> object;
        Closable* closable = nullptr;
    };
    void adopt_live(std::unique_ptr<core::DeferredDeletable> object, Closable* closable);
    /// Snapshot of the live Closables, sessions first, each once; `drained_only` leaves out
    /// those a drain keeps to the end (Closable::drained()).
    std::vector<Closable*> closables(bool drained_only) const;

    core::Loop& loop_;
    std::shared_ptr<const config::Config> config_;
    core::MaskSource masks_;
    Metrics metrics_;
    /// Builds the snapshots of `config`'s routes, reusing those of `previous` that match.
    core::Result<std::vector<std::shared_ptr<const RouteRuntime>>> build_routes(
        const std::shared_ptr<const config::Config>& config,
        const std::vector<std::shared_ptr<const RouteRuntime>>& previous);

    std::vector<std::shared_ptr<const RouteRuntime>> routes_;
    std::unordered_map<std::string, Session*> sessions_;
    std::unordered_map<std::string, std::size_t> route_sessions_;
    std::unordered_map<std::string, std::uint32_t> per_ip_;
    std::size_t clients_ = 0;
    bool draining_ = false;
    /// Last, so it goes first: live objects' destructors still find the members above.
    std::unordered_map<core::DeferredDeletable*, Live> live_;
};

} // namespace proxy
