#include "proxy/front/admin.h"

#include "proxy/core/log.h"
#include "proxy/core/send_batch.h"
#include "proxy/http/response.h"

namespace proxy {
namespace {

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
            std::string body = context_.metrics().render();
            body += "# TYPE wsbridge_client_connections gauge\nwsbridge_client_connections " +
                    std::to_string(context_.client_count()) + "\n";
            // Batched sends (proxy/core/send_batch.h): sends per system call is their ratio.
            if (const core::SendBatch* batch = context_.loop().send_batch()) {
                body += "# TYPE wsbridge_batched_sends_total counter\n"
                        "wsbridge_batched_sends_total " + std::to_string(batch->sends()) +
                        "\n# TYPE wsbridge_send_batches_total counter\n"
                        "wsbridge_send_batches_total " + std::to_string(batch->enters()) + "\n";
            }
            stream_->write(http::build_response(
                200, {{"Content-Type", "text/plain; version=0.0.4"}}, body, !keep));
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
                                            "Admin endpoints: /metrics, /healthz, /readyz.",
                                            !keep));
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
