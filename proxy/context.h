#pragma once
// Per-worker context shared by every connection of one event loop: the loop, the config
// snapshot, resolved backend addresses, counters, and the registry used for shutdown.

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/config.h"
#include "proxy/core/loop.h"
#include "proxy/metrics.h"
#include "proxy/core/crypto.h"

namespace proxy {

class Session;

/// Something the worker can ask to go away (shutdown, drain).
class Closable : public core::DeferredDeletable {
  public:
    /// Starts closing: `going_away` sends close 1001 / ends streams politely; otherwise abort.
    virtual void shutdown(bool going_away) = 0;
};

/// A route plus what was resolved for it at load time.
struct RouteRuntime {
    const config::Route* route = nullptr;
    std::string backend_ip;  ///< numeric address of the backend host (resolved at load)
};

/// Everything one worker's connections share. Lives as long as the worker's loop.
class Context {
  public:
    Context(core::Loop& loop, std::shared_ptr<const config::Config> config);

    core::Loop& loop() noexcept { return loop_; }
    const config::Config& config() const noexcept { return *config_; }
    /// Keeps the config snapshot alive for a connection that started under it.
    std::shared_ptr<const config::Config> config_ptr() const noexcept { return config_; }
    core::MaskSource& masks() noexcept { return masks_; }
    Metrics& metrics() noexcept { return metrics_; }

    /// Resolves every route's backend host. Errors name the route.
    core::Result<void> resolve_backends();
    /// The runtime of the route matching `path` (path without query), or nullptr.
    const RouteRuntime* match(std::string_view path) const;

    /// Registry of live connections (for shutdown).
    void add(Closable* c) { live_.insert(c); }
    void remove(Closable* c) { live_.erase(c); }
    std::size_t live_count() const noexcept { return live_.size(); }
    /// Asks every live connection to shut down.
    void shutdown_all(bool going_away);

    /// Admission control for client connections (SPEC §5): returns false when the global or
    /// per-IP cap is reached. On true, release_client(ip) must be called exactly once later.
    bool admit_client(const std::string& ip);
    void release_client(const std::string& ip);
    std::size_t client_count() const noexcept { return clients_; }

    /// Session registry (SSE and long-poll sessions of this worker), keyed by id.
    Session* find_session(std::string_view id) const;
    void add_session(std::string_view id, Session* session);
    void remove_session(std::string_view id);
    std::size_t session_count() const noexcept { return sessions_.size(); }
    /// Live sessions of one route (for its max_sessions cap).
    std::size_t route_sessions(const config::Route* route) const;
    void count_route_session(const config::Route* route, int delta);

    /// True once shutdown started: new requests get 503.
    bool draining() const noexcept { return draining_; }
    void set_draining() noexcept { draining_ = true; }

  private:
    core::Loop& loop_;
    std::shared_ptr<const config::Config> config_;
    core::MaskSource masks_;
    Metrics metrics_;
    std::vector<RouteRuntime> routes_;
    std::unordered_set<Closable*> live_;
    std::unordered_map<std::string, Session*> sessions_;
    std::unordered_map<const config::Route*, std::size_t> route_sessions_;
    std::unordered_map<std::string, std::uint32_t> per_ip_;
    std::size_t clients_ = 0;
    bool draining_ = false;
};

} // namespace proxy
