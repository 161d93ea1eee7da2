#include "proxy/front/server.h"

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
    for (auto& l : listeners_) {
        l->close();
    }
    admin_.reset();
}

core::Result<void> Server::start() {
    if (auto r = context_.resolve_backends(); !r) {
        return r;
    }
    for (const auto& listen : context_.config().listen) {
        tls::ServerContext* tls = nullptr;
        if (listen.tls) {
            tls::ServerOptions options;
            for (const auto& c : listen.tls->certificates) {
                options.certificates.push_back({c.cert, c.key});
            }
            options.tls13_only = listen.tls->min_version == "1.3";
            options.client_ca = listen.tls->client_ca;
            auto ctx = tls::ServerContext::create(options);
            if (!ctx) {
                return core::Unexpected{ctx.error()};
            }
            tls = ctx->get();
            tls->set_observer(this);
            tls_contexts_.push_back(std::move(*ctx));
        }
        auto listener = std::make_unique<core::TcpListener>(loop_);
        const std::string scheme = listen.tls ? "https" : "http";
        auto r = listener->listen(listen.host, listen.port,
                                  [this, scheme, tls](std::unique_ptr<core::TcpStream> s) {
                                      on_accept(std::move(s), scheme, tls);
                                  });
        if (!r) {
            for (auto& l : listeners_) {
                l->close();
            }
            listeners_.clear();
            return core::fail(core::Code::Io, core::Side::Config,
                              "cannot listen on " + listen.host + ":" +
                                  std::to_string(listen.port) + ": " + r.error().context);
        }
        core::log(LogLevel::Info, "listening",
                  {{"address", listener->local_address()},
                   {"tls", tls != nullptr ? "on" : "off"},
                   {"send_batch", loop_.send_batch() != nullptr ? "io_uring" : "off"}});
        listeners_.push_back(std::move(listener));
    }
    housekeeping_ = std::make_unique<core::Timer>(loop_, [] { core::flush_suppressed_logs(); });
    housekeeping_->unref();
    housekeeping_->start(1000, 1000);
    if (const auto& admin = context_.config().admin) {
        admin_ = std::make_unique<AdminServer>(context_);
        if (auto r = admin_->start(admin->host, admin->port); !r) {
            for (auto& l : listeners_) {
                l->close();
            }
            listeners_.clear();
            admin_.reset();
            return r;
        }
    }
    return {};
}

std::vector<std::string> Server::addresses() const {
    std::vector<std::string> out;
    for (const auto& l : listeners_) {
        out.push_back(l->local_address());
    }
    return out;
}

void Server::on_accept(std::unique_ptr<core::TcpStream> stream, const std::string& scheme,
                       tls::ServerContext* tls) {
    if (tls != nullptr) {
        // TLS runs inside the stream: everything above it reads and writes plain bytes. The
        // handshake counts against header_timeout like the request head it carries.
        stream->set_transform(tls->new_transform());
    }
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
        return;
    }
    stopping_ = true;
    context_.set_draining();
    for (auto& l : listeners_) {
        l->close();
    }
    if (admin_) {
        admin_->stop();
    }
    context_.shutdown_all(going_away);
    const auto deadline = static_cast<std::uint64_t>(context_.config().drain_timeout.count());
    drain_timer_ = std::make_unique<core::Timer>(loop_, [this] {
        context_.shutdown_all(false);
        loop_.stop();
    });
    drain_timer_->unref();
    drain_timer_->start(deadline);
}

} // namespace proxy
