#include "proxy/front/admin.h"

#include <chrono>

#include "proxy/core/log.h"
#include "proxy/front/status_page.h"
#include "proxy/core/send_batch.h"
#include "proxy/http/response.h"

namespace proxy {
namespace {

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// One admin connection, owned by the Context's registry; it retires itself when the peer
/// leaves, on error or at shutdown.
class AdminConnection final : public Closable, private core::StreamHandler {
  public:
    AdminConnection(Context& context, std::unique_ptr<core::TcpStream> stream)
        : context_(context),
          stream_(std::move(stream)),
          parser_(http::ParserLimits{8 * 1024, 50, 0}),
          timer_(context.loop(), [this] { shutdown(false); }) {
        stream_->set_handler(this);
    }

    void start() {
        timer_.start(10'000);
        stream_->start_read();
    }

    bool drained() const noexcept override { return false; }

    void shutdown(bool /*going_away*/) override {
        if (done_) {
            return;
        }
        done_ = true;
        timer_.stop();
        stream_->close(core::TcpStream::CloseMode::Flush);
        context_.retire(*this);
    }

  private:
    void on_read(std::span<std::byte> bytes) override {
        std::string_view data(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        while (!done_ && !data.empty()) {
            auto r = parser_.feed(std::span<const char>(data.data(), data.size()));
            if (!r) {
                stream_->write(http::json_error(400, "bad_request", r.error().context, true));
                shutdown(false);
                return;
            }
            if (!r->complete) {
                return;
            }
            const bool keep = parser_.request().keep_alive && !parser_.request().upgrade;
            respond(keep);
            if (!keep) {
                shutdown(false);
                return;
            }
            data = data.substr(r->consumed);
            parser_.reset();
        }
    }

    void respond(bool keep) {
        const http::Request& req = parser_.request();
        const std::string_view path = req.path();
        if (req.method != "GET" && req.method != "HEAD") {
            stream_->write(http::json_error(405, "method_not_allowed", "Use GET.", !keep));
            return;
        }
        if (path == "/metrics") {
            copy_in_figures();
            stream_->write(http::build_response(
                200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                context_.metrics().render(), !keep));
        } else if (path == "/status.json") {
            copy_in_figures();
            stream_->write(http::build_response(
                200, {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}},
                status_json(context_, unix_now()), !keep));
        } else if (path == "/status") {
            // The page is a constant: its own CSP forbids anything but its inline code and
            // fetching status.json from this origin.
            stream_->write(http::build_response(
                200,
                {{"Content-Type", "text/html; charset=utf-8"},
                 {"Cache-Control", "no-store"},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Content-Security-Policy",
                  "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                  "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}},
                std::string(status_html()), !keep));
        } else if (path == "/healthz") {
            stream_->write(http::build_response(200, {{"Content-Type", "text/plain"}}, "ok\n",
                                                !keep));
        } else if (path == "/readyz") {
            const bool ready = !context_.draining();
            stream_->write(http::build_response(ready ? 200 : 503,
                                                {{"Content-Type", "text/plain"}},
                                                ready ? "ready\n" : "draining\n", !keep));
        } else {
            stream_->write(http::json_error(404, "not_found",
                                            "Admin endpoints: /metrics, /status, "
                                            "/status.json, /healthz, /readyz.",
                                            !keep));
        }
    }

    /// Figures kept outside Metrics, copied in before a scrape.
    void copy_in_figures() {
        Metrics& m = context_.metrics();
        m.gauge_set("wsbridge_client_connections",
                    static_cast<std::int64_t>(context_.client_count()));
        // Batched sends (proxy/core/send_batch.h): sends per system call is their ratio.
        if (const core::SendBatch* batch = context_.loop().send_batch()) {
            m.counter_set("wsbridge_batched_sends_total", batch->sends());
            m.counter_set("wsbridge_send_batches_total", batch->enters());
        }
    }

    void on_read_end(const core::Error* /*error*/) override { shutdown(false); }
    void on_write_error(const core::Error& /*error*/) override { shutdown(false); }

    Context& context_;
    std::unique_ptr<core::TcpStream> stream_;
    http::RequestParser parser_;
    core::Timer timer_;
    bool done_ = false;
};

} // namespace

AdminServer::AdminServer(Context& context) : context_(context) {}

AdminServer::~AdminServer() {
    stop();
}

core::Result<void> AdminServer::start(const std::string& host, std::uint16_t port) {
    listener_ = std::make_unique<core::TcpListener>(context_.loop());
    auto r = listener_->listen(host, port, [this](std::unique_ptr<core::TcpStream> s) {
        context_.adopt(std::make_unique<AdminConnection>(context_, std::move(s))).start();
    });
    if (!r) {
        listener_.reset();
        return core::fail(core::Code::Io, core::Side::Config,
                          "cannot listen on admin address " + host + ":" +
                              std::to_string(port) + ": " + r.error().context);
    }
    // The initial load counts as the first (successful) load for the status page; a reload
    // (Server::reload) overwrites it.
    if (context_.metrics().gauge("wsbridge_config_last_reload_timestamp_seconds") == 0) {
        context_.metrics().gauge_set("wsbridge_config_last_reload_timestamp_seconds", unix_now());
    }
    core::log(core::LogLevel::Info, "admin_listening", {{"address", listener_->local_address()}});
    return {};
}

void AdminServer::stop() {
    if (listener_) {
        listener_->close();
    }
}

std::string AdminServer::address() const {
    return listener_ ? listener_->local_address() : std::string();
}

} // namespace proxy
