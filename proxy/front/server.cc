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
        if (listen.tls) {
            return core::fail(core::Code::Config, core::Side::Config,
                              "TLS listeners are not available in this version");
        }
        auto listener = std::make_unique<core::TcpListener>(loop_);
        const std::string scheme = listen.tls ? "https" : "http";
        auto r = listener->listen(listen.host, listen.port,
                                  [this, scheme](std::unique_ptr<core::TcpStream> s) {
                                      on_accept(std::move(s), scheme);
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

void Server::on_accept(std::unique_ptr<core::TcpStream> stream, const std::string& scheme) {
    std::string ip = stream->peer_ip();
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
                                                ClientSlot(context_, ip), scheme))
        .start();
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
