#include "proxy/front/server.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include "proxy/front/client_slot.h"
#include "proxy/core/log.h"
#include "proxy/http/response.h"
#include "proxy/front/http_connection.h"

namespace proxy {

using core::LogLevel;

Server::Server(core::Loop& loop, std::shared_ptr<const config::Config> config)
    : loop_(loop), context_(loop, std::move(config)) {}

Server::~Server() {
    housekeeping_.reset();
    close_listeners();
    admin_.reset();
}

namespace {

/// `log:` of the config: its format, and its level when set (else WSBRIDGE_LOG_LEVEL / info).
void apply_log_settings(const config::Log& log) {
    core::set_log_format(log.format == "json" ? core::LogFormat::Json : core::LogFormat::Logfmt);
    if (log.level == "debug") {
        core::set_log_level(LogLevel::Debug);
    } else if (log.level == "info") {
        core::set_log_level(LogLevel::Info);
    } else if (log.level == "warn") {
        core::set_log_level(LogLevel::Warn);
    } else if (log.level == "error") {
        core::set_log_level(LogLevel::Error);
    }
}

} // namespace

core::Result<std::shared_ptr<tls::ServerContext>> Server::make_tls(const config::Listener& spec) {
    if (!spec.tls) {
        return std::shared_ptr<tls::ServerContext>();
    }
    tls::ServerOptions options;
    for (const auto& c : spec.tls->certificates) {
        options.certificates.push_back({c.cert, c.key});
    }
    options.tls13_only = spec.tls->min_version == "1.3";
    options.client_ca = spec.tls->client_ca;
    auto ctx = tls::ServerContext::create(options);
    if (!ctx) {
        return core::Unexpected{ctx.error()};
    }
    std::shared_ptr<tls::ServerContext> shared(std::move(*ctx));
    shared->set_observer(this);
    return shared;
}

core::Result<void> Server::bind(Listening& l, core::InheritedListeners* inherited) {
    l.listener = std::make_unique<core::TcpListener>(loop_);
    const Listening* self = &l;
    auto accept = [this, self](std::unique_ptr<core::TcpStream> s) {
        on_accept(std::move(s), *self);
    };
    const int fd = inherited != nullptr ? inherited->take(l.spec.host, l.spec.port) : -1;
    auto r = fd >= 0 ? l.listener->adopt(fd, accept)
                     : l.listener->listen(l.spec.host, l.spec.port, accept);
    if (!r) {
        l.listener.reset();
        return core::fail(core::Code::Io, core::Side::Config,
                          "cannot listen on " + l.spec.host + ":" + std::to_string(l.spec.port) +
                              ": " + r.error().context);
    }
    core::log(LogLevel::Info, "listening",
              {{"address", l.listener->local_address()},
               {"tls", l.tls ? "on" : "off"},
               {"inherited", fd >= 0 ? "yes" : "no"},
               {"send_batch", loop_.send_batch() != nullptr ? "io_uring" : "off"}});
    return {};
}

void Server::close_listeners() noexcept {
    for (auto& l : listeners_) {
        if (l->listener) {
            l->listener->close();
        }
    }
}

core::Result<void> Server::start(core::InheritedListeners* inherited) {
    apply_log_settings(context_.config().log);
    if (auto r = context_.resolve_backends(); !r) {
        return r;
    }
    for (const auto& spec : context_.config().listen) {
        auto l = std::make_unique<Listening>();
        l->spec = spec;
        auto tls = make_tls(spec);
        if (!tls) {
            close_listeners();
            listeners_.clear();
            return core::Unexpected{tls.error()};
        }
        l->tls = std::move(*tls);
        if (auto r = bind(*l, inherited); !r) {
            close_listeners();
            listeners_.clear();
            return r;
        }
        listeners_.push_back(std::move(l));
    }
    if (inherited != nullptr) {
        // A socket unit listening where no `listen` entry does is a misconfiguration.
        for (const auto& s : inherited->close_unclaimed()) {
            core::log(LogLevel::Warn, "unclaimed_socket",
                      {{"fd", s.fd}, {"address", s.address},
                       {"detail", "no listen entry has this address; closed"}});
        }
    }
    context_.metrics().gauge_set("wsbridge_config_last_reload_successful", 1);
    housekeeping_ = std::make_unique<core::Timer>(loop_, [] { core::flush_suppressed_logs(); });
    housekeeping_->unref();
    housekeeping_->start(1000, 1000);
    admin_spec_ = context_.config().admin;
    if (const auto& admin = context_.config().admin) {
        admin_ = std::make_unique<AdminServer>(context_);
        if (auto r = admin_->start(admin->host, admin->port); !r) {
            close_listeners();
            listeners_.clear();
            admin_.reset();
            return r;
        }
    }
    return {};
}

core::Result<void> Server::reload(const std::string& path) {
    const auto began = std::chrono::steady_clock::now();
    auto fail = [this](const core::Error& error) {
        // One line per problem, each `file:line:col: …` as the loader wrote it.
        std::size_t start = 0;
        const std::string& text = error.context;
        while (start <= text.size()) {
            const std::size_t end = std::min(text.find('\n', start), text.size());
            if (end > start) {
                core::log(LogLevel::Error, "reload_failed",
                          {{"error", std::string_view(text).substr(start, end - start)},
                           {"detail", "kept the running configuration"}});
            }
            start = end + 1;
        }
        last_reload_ = "rejected: " + error.context.substr(0, error.context.find('\n'));
        context_.metrics().inc("wsbridge_reloads_total", {{"result", "error"}});
        context_.metrics().gauge_set("wsbridge_config_last_reload_successful", 0);
        context_.metrics().gauge_set("wsbridge_config_last_reload_timestamp_seconds",
                                     std::time(nullptr));
        return core::Unexpected{error};
    };
    if (stopping_) {
        return fail(core::Error{core::Code::Config, core::Side::Config, "draining: not reloaded"});
    }
    auto loaded = config::load_config(path);
    if (!loaded) {
        return fail(loaded.error());
    }
    auto next = std::make_shared<const config::Config>(std::move(*loaded));

    // Everything that can fail comes before anything changes: new TLS contexts for every TLS
    // listener (certificate files are read again even when the entry is unchanged) and new
    // sockets for new entries.
    std::vector<std::unique_ptr<Listening>> added;
    std::vector<std::shared_ptr<tls::ServerContext>> contexts;  // one per next->listen entry
    std::vector<Listening*> kept(next->listen.size(), nullptr);
    std::size_t certificates = 0;
    for (std::size_t i = 0; i < next->listen.size(); ++i) {
        const auto& spec = next->listen[i];
        auto tls = make_tls(spec);
        if (!tls) {
            return fail(tls.error());
        }
        certificates += spec.tls ? spec.tls->certificates.size() : 0;
        contexts.push_back(std::move(*tls));
        for (auto& l : listeners_) {
            // The same socket serves the entry when host and port are as configured before
            // (port 0 entries pair up in order); only its TLS context changes.
            if (l->listener && l->spec.host == spec.host && l->spec.port == spec.port &&
                std::find(kept.begin(), kept.end(), l.get()) == kept.end()) {
                kept[i] = l.get();
                break;
            }
        }
        if (kept[i] == nullptr) {
            auto l = std::make_unique<Listening>();
            l->spec = spec;
            l->tls = contexts.back();
            if (auto r = bind(*l); !r) {
                for (auto& a : added) {
                    a->listener->close();
                }
                return fail(r.error());
            }
            added.push_back(std::move(l));
        }
    }
    auto summary = context_.reload(next);
    if (!summary) {
        for (auto& a : added) {
            a->listener->close();
        }
        return fail(summary.error());
    }

    apply_log_settings(next->log);
    // Commit: kept listeners take their new spec and TLS context; the others stop accepting
    // (their connections are owned by the context and go on).
    std::vector<std::unique_ptr<Listening>> next_listeners;
    std::size_t removed = 0;
    for (auto& l : listeners_) {
        Listening* raw = l.get();
        const auto it = std::find(kept.begin(), kept.end(), raw);
        if (it == kept.end()) {
            if (l->listener) {
                core::log(LogLevel::Info, "listener_closed",
                          {{"address", l->listener->local_address()}, {"reason", "reload"}});
                l->listener->close();
                ++removed;
            }
            continue;  // destroyed with the old list below; its connections live on
        }
        const auto i = static_cast<std::size_t>(it - kept.begin());
        l->spec = next->listen[i];
        l->tls = contexts[i];
        next_listeners.push_back(std::move(l));
    }
    const std::size_t added_count = added.size();
    for (auto& a : added) {
        next_listeners.push_back(std::move(a));
    }
    listeners_ = std::move(next_listeners);

    // The admin listener follows its entry, matched by configured host:port like the others:
    // an unchanged `port: 0` entry keeps the port it got (a scraper that found it keeps it).
    const auto& admin = next->admin;
    const bool admin_same = admin_ && admin && admin_spec_ && admin_spec_->host == admin->host &&
                            admin_spec_->port == admin->port;
    if (!admin_same && (admin_ || admin)) {
        if (admin_) {
            admin_.reset();
        }
        if (admin) {
            auto a = std::make_unique<AdminServer>(context_);
            if (auto r = a->start(admin->host, admin->port); !r) {
                core::log(LogLevel::Error, "admin_not_started", {{"reason", r.error().context}});
            } else {
                admin_ = std::move(a);
            }
        }
    }
    admin_spec_ = admin;

    // Route lists name at most 20 paths, then how many more: a line stays a line.
    auto join = [](const std::vector<std::string>& v) {
        constexpr std::size_t kNamed = 20;
        std::string out;
        for (std::size_t i = 0; i < v.size() && i < kNamed; ++i) {
            out.append(i == 0 ? "" : ",").append(v[i]);
        }
        if (v.size() > kNamed) {
            out.append(",+").append(std::to_string(v.size() - kNamed));
        }
        return out;
    };
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - began);
    last_reload_ = "ok";
    context_.metrics().inc("wsbridge_reloads_total", {{"result", "ok"}});
    context_.metrics().gauge_set("wsbridge_config_last_reload_successful", 1);
    context_.metrics().gauge_set("wsbridge_config_last_reload_timestamp_seconds",
                                 std::time(nullptr));
    core::log(LogLevel::Info, "reloaded",
              {{"config", path},
               {"routes", next->routes.size()},
               {"routes_added", join(summary->routes_added)},
               {"routes_removed", join(summary->routes_removed)},
               {"routes_changed", join(summary->routes_changed)},
               {"listeners", listeners_.size()},
               {"listeners_added", added_count},
               {"listeners_removed", removed},
               {"certificates", certificates},
               {"took_us", static_cast<std::uint64_t>(took.count())}});
    return {};
}

std::string Server::status_line() const {
    std::string out = stopping_ ? "draining: " : "";
    out.append(std::to_string(context_.client_count()))
        .append(" client connection(s), ")
        .append(std::to_string(context_.session_count()))
        .append(" session(s); last reload: ")
        .append(last_reload_);
    return out;
}

std::vector<std::string> Server::addresses() const {
    std::vector<std::string> out;
    for (const auto& l : listeners_) {
        if (l->listener) {
            out.push_back(l->listener->local_address());
        }
    }
    return out;
}

void Server::on_accept(std::unique_ptr<core::TcpStream> stream, const Listening& l) {
    if (l.tls) {
        // TLS runs inside the stream: everything above it reads and writes plain bytes. The
        // handshake counts against header_timeout like the request head it carries.
        stream->set_transform(l.tls->new_transform());
    }
    const std::string scheme = l.tls ? "https" : "http";
    std::string address = stream->peer_address();
    std::string ip = core::ip_of(address);
    if (stopping_ || !context_.admit_client(ip)) {
        const bool draining = stopping_;
        stream->write(http::json_error(503, draining ? "draining" : "overloaded",
                                       draining ? "The proxy is shutting down."
                                                : "Too many connections; retry later.",
                                       true, {{"Retry-After", "1"}}));
        stream->close(core::TcpStream::CloseMode::Flush);
        core::log_limited(LogLevel::Warn, "connection_rejected",
                  {{"client", ip}, {"status", 503u},
                   {"reason", draining ? "draining" : "connection cap reached"}});
        context_.metrics().inc("wsbridge_rejections_total",
                               {{"transport", "tcp"},
                                {"reason", draining ? "draining" : "connection_cap"},
                                {"status", "503"}});
        return;
    }
    context_.metrics().inc("wsbridge_connections_accepted_total");
    context_
        .adopt(std::make_unique<HttpConnection>(context_, std::move(stream),
                                                ClientSlot(context_, ip), scheme,
                                                std::move(address)))
        .start();
}

void Server::on_handshake_done(std::string_view version, bool resumed) {
    auto& m = context_.metrics();
    m.inc("wsbridge_tls_handshakes_total", {{"side", "client"}, {"version", version}});
    if (resumed) {
        m.inc("wsbridge_tls_resumed_total", {{"side", "client"}});
    }
}

void Server::on_handshake_failed(std::string_view reason, std::string_view detail) {
    context_.metrics().inc("wsbridge_tls_handshake_failures_total",
                           {{"side", "client"}, {"reason", reason}});
    core::log_limited(LogLevel::Info, "tls_handshake_failed",
                      {{"side", "client"}, {"reason", reason}, {"detail", detail}});
}

void Server::stop(bool going_away) {
    if (stopping_) {
        // A second SIGTERM: everything ends now.
        drain_tick_.reset();
        drain_timer_.reset();
        context_.shutdown_all(false);
        loop_.stop();
        return;
    }
    stopping_ = true;
    context_.set_draining();  // /readyz answers 503 and new requests get 503 from now on
    if (!going_away) {
        close_listeners();
        admin_.reset();
        context_.shutdown_all(false);
        loop_.stop();
        return;
    }
    const auto& config = context_.config();
    const auto delay = static_cast<std::uint64_t>(config.drain_delay.count());
    const auto timeout = static_cast<std::uint64_t>(config.drain_timeout.count());
    core::log(LogLevel::Info, "draining",
              {{"drain_delay_ms", delay},
               {"drain_timeout_ms", timeout},
               {"connections", context_.drain_remaining()},
               {"sessions", context_.session_count()}});
    context_.metrics().gauge_set("wsbridge_draining", 1);
    // The deadline covers the delay and the spread: whatever is left then is aborted.
    drain_timer_ = std::make_unique<core::Timer>(loop_, [this] {
        core::log(LogLevel::Info, "drain_deadline", {{"aborted", context_.drain_remaining()}});
        drain_tick_.reset();
        drain_timer_->stop();
        context_.shutdown_all(false);
        admin_.reset();
        loop_.stop();
    });
    drain_timer_->start(delay + timeout);
    drain_tick_ = std::make_unique<core::Timer>(loop_, [this] { drain_step(); });
    if (delay > 0) {
        drain_tick_->start(delay);  // load balancers see /readyz 503 meanwhile
    } else {
        drain_step();
    }
}

void Server::drain_step() {
    constexpr std::uint64_t kTickMs = 50;
    if (!drain_started_) {
        drain_started_ = true;
        close_listeners();
        drain_list_ = context_.drain_list();
        drain_closed_ = 0;
        drain_began_ = loop_.now();
        // Closes are spread over 90 % of drain_timeout, so the last ones still have time for
        // their close handshakes before the deadline.
        drain_span_ = static_cast<std::uint64_t>(context_.config().drain_timeout.count()) * 9 / 10;
        drain_tick_->start(kTickMs, kTickMs);
    }
    const std::uint64_t elapsed = loop_.now() - drain_began_;
    const std::size_t n = drain_list_.size();
    const std::size_t due =
        drain_span_ == 0 || elapsed >= drain_span_
            ? n
            : static_cast<std::size_t>(std::ceil(static_cast<double>(n) *
                                                 static_cast<double>(elapsed) /
                                                 static_cast<double>(drain_span_)));
    for (; drain_closed_ < due && drain_closed_ < n; ++drain_closed_) {
        Closable* c = drain_list_[drain_closed_];
        if (context_.is_live(c)) {
            c->shutdown(true);
        }
    }
    if (drain_closed_ < n) {
        return;
    }
    if (elapsed >= drain_span_) {
        // Anything that went live during the spread (or is still closing) is asked again.
        for (Closable* c : context_.drain_list()) {
            c->shutdown(true);
        }
    }
    if (context_.drain_remaining() == 0) {
        core::log(LogLevel::Info, "drained", {{"took_ms", loop_.now() - drain_began_}});
        drain_tick_->stop();  // not reset: this runs inside its callback
        drain_timer_.reset();
        admin_.reset();
        context_.shutdown_all(false);
        loop_.stop();
    }
}

} // namespace proxy
