#include "proxy/context.h"

#include "proxy/core/log.h"
#include "proxy/session/session.h"

#include <unordered_set>
#include <vector>

#include "proxy/core/signal.h"

namespace proxy {

Context::Context(core::Loop& loop, std::shared_ptr<const config::Config> config)
    : loop_(loop), config_(std::move(config)) {}

core::Result<void> Context::resolve_backends() {
    auto routes = build_routes(config_, {});
    if (!routes) {
        return core::Unexpected{routes.error()};
    }
    routes_ = std::move(*routes);
    return {};
}

core::Result<std::vector<std::shared_ptr<const RouteRuntime>>> Context::build_routes(
    const std::shared_ptr<const config::Config>& config,
    const std::vector<std::shared_ptr<const RouteRuntime>>& previous) {
    std::unordered_map<std::string_view, const RouteRuntime*> old;
    for (const auto& r : previous) {
        old.emplace(r->route->path, r.get());
    }
    std::vector<std::shared_ptr<const RouteRuntime>> out;
    out.reserve(config->routes.size());
    for (const auto& route : config->routes) {
        auto runtime = std::make_shared<RouteRuntime>();
        runtime->config = config;
        runtime->route = &route;
        const auto it = old.find(route.path);
        if (it != old.end() && *it->second->route == route) {
            // Unchanged: keep what was resolved and built for it (no DNS, no CA store load).
            runtime->backend_ip = it->second->backend_ip;
            runtime->backend_tls = it->second->backend_tls;
            out.push_back(std::move(runtime));
            continue;
        }
        auto ip = core::resolve_host(route.backend.host);
        if (!ip) {
            return core::fail(core::Code::Config, core::Side::Config,
                              "route " + route.path + ": " + ip.error().context);
        }
        runtime->backend_ip = *ip;
        if (route.backend.tls) {
            const config::BackendTls& bt = route.backend_tls;
            tls::ClientOptions options{bt.ca,
                                       bt.server_name.empty() ? route.backend.host : bt.server_name,
                                       bt.cert, bt.key, bt.verify};
            auto ctx = tls::ClientContext::create(options);
            if (!ctx) {
                return core::fail(core::Code::Config, core::Side::Config,
                                  "route " + route.path + ": " + ctx.error().context);
            }
            (*ctx)->set_observer(this);
            runtime->backend_tls = std::move(*ctx);
            if (!bt.verify) {
                core::log(core::LogLevel::Warn, "backend_tls_unverified",
                          {{"route", route.path},
                           {"backend", route.backend.text},
                           {"detail", "backend_tls.verify is false: the backend's certificate "
                                      "and name are not checked"}});
            }
        }
        out.push_back(std::move(runtime));
    }
    return out;
}

core::Result<ReloadSummary> Context::reload(std::shared_ptr<const config::Config> config) {
    auto routes = build_routes(config, routes_);
    if (!routes) {
        return core::Unexpected{routes.error()};
    }
    ReloadSummary summary;
    std::unordered_map<std::string_view, const config::Route*> before;
    for (const auto& r : routes_) {
        before.emplace(r->route->path, r->route);
    }
    for (const auto& route : config->routes) {
        const auto it = before.find(route.path);
        if (it == before.end()) {
            summary.routes_added.push_back(route.path);
        } else {
            if (!(*it->second == route)) {
                summary.routes_changed.push_back(route.path);
            }
            before.erase(it);
        }
    }
    for (const auto& r : routes_) {
        if (before.count(r->route->path) != 0) {
            summary.routes_removed.push_back(r->route->path);
        }
    }
    config_ = std::move(config);
    routes_ = std::move(*routes);
    return summary;
}

const RouteRuntime* Context::match(std::string_view path) const {
    const config::Route* route = config::match_route(*config_, path);
    if (route == nullptr) {
        return nullptr;
    }
    for (const auto& r : routes_) {
        if (r->route == route) {
            return r.get();
        }
    }
    return nullptr;
}

Context::~Context() {
    // Taken out first: a destructor that reaches retire() finds nothing to do.
    auto live = std::move(live_);
    live_.clear();
    live.clear();
}

void Context::adopt_live(std::unique_ptr<core::DeferredDeletable> object, Closable* closable) {
    core::DeferredDeletable* key = object.get();
    live_.emplace(key, Live{std::move(object), closable});
}

void Context::retire(core::DeferredDeletable& object) {
    const auto it = live_.find(&object);
    if (it == live_.end()) {
        return;
    }
    std::unique_ptr<core::DeferredDeletable> owned = std::move(it->second.object);
    live_.erase(it);
    loop_.defer_delete(std::move(owned));
}

std::vector<Closable*> Context::closables(bool drained_only) const {
    // Sessions go first: each answers what its client holds (a held poll gets the close) while
    // that client's HTTP connection is still there; the registry's own order is by address, and
    // a connection ended before its session cancelled the poll unanswered (issue 11). A session
    // is in both maps; it is listed once.
    std::vector<Closable*> all;
    std::unordered_set<const Closable*> seen;
    all.reserve(sessions_.size() + live_.size());
    for (const auto& [id, session] : sessions_) {
        if (seen.insert(session).second) {
            all.push_back(session);
        }
    }
    for (const auto& [key, live] : live_) {
        if (live.closable != nullptr && (!drained_only || live.closable->drained()) &&
            seen.insert(live.closable).second) {
            all.push_back(live.closable);
        }
    }
    return all;
}

void Context::shutdown_all(bool going_away) {
    // Shutting down retires objects (and may end others): iterate over a snapshot, and skip
    // what left the registry meanwhile. Retired objects are only destroyed later, at the
    // loop's check phase, so no snapshot pointer is reused during this loop.
    for (Closable* c : closables(false)) {
        if (is_live(c)) {
            c->shutdown(going_away);
        }
    }
}

std::vector<Closable*> Context::drain_list() const {
    return closables(true);
}

std::size_t Context::drain_remaining() const {
    std::size_t n = 0;
    for (const auto& [key, live] : live_) {
        n += live.closable != nullptr && live.closable->drained() ? 1 : 0;
    }
    return n;
}

Session* Context::find_session(std::string_view id) const {
    const auto it = sessions_.find(std::string(id));
    return it == sessions_.end() ? nullptr : it->second;
}

void Context::add_session(std::string_view id, Session* session) {
    sessions_.emplace(std::string(id), session);
}

void Context::remove_session(std::string_view id) {
    sessions_.erase(std::string(id));
}

std::size_t Context::route_sessions(const std::string& path) const {
    const auto it = route_sessions_.find(path);
    return it == route_sessions_.end() ? 0 : it->second;
}

void Context::count_route_session(const std::string& path, int delta) {
    auto& n = route_sessions_[path];
    n = delta < 0 ? (n > 0 ? n - 1 : 0) : n + 1;
    if (n == 0) {
        route_sessions_.erase(path);
    }
}

bool Context::admit_client(const std::string& ip) {
    const auto& limits = config_->limits;
    if (clients_ >= limits.max_connections) {
        return false;
    }
    auto& n = per_ip_[ip];
    if (n >= limits.max_connections_per_ip) {
        if (n == 0) {
            per_ip_.erase(ip);
        }
        return false;
    }
    ++n;
    ++clients_;
    return true;
}

void Context::release_client(const std::string& ip) {
    const auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && --it->second == 0) {
        per_ip_.erase(it);
    }
    if (clients_ > 0) {
        --clients_;
    }
}

void Context::on_handshake_done(std::string_view version, bool resumed) {
    metrics_.inc("wsbridge_tls_handshakes_total", {{"side", "backend"}, {"version", version}});
    if (resumed) {
        metrics_.inc("wsbridge_tls_resumed_total", {{"side", "backend"}});
    }
}

void Context::on_handshake_failed(std::string_view reason, std::string_view detail) {
    metrics_.inc("wsbridge_tls_handshake_failures_total", {{"side", "backend"}, {"reason", reason}});
    core::log_limited(core::LogLevel::Warn, "tls_handshake_failed",
                      {{"side", "backend"}, {"reason", reason}, {"detail", detail}});
}

} // namespace proxy
