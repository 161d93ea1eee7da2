#include "tests/support/harness.h"

#include "proxy/core/log.h"

#include <cstdlib>
#include <doctest/doctest.h>

namespace proxy::test {

config::Config base_config(std::uint16_t backend_port) {
    config::Config c;
    c.source = "integration-test";
    c.listen.push_back(config::Listener{"127.0.0.1", 0, std::nullopt});
    config::Route route;
    route.path = "/chat";
    route.prefix = false;
    route.backend.host = "127.0.0.1";
    route.backend.port = backend_port;
    route.backend.path = "/chat";
    route.backend.host_header = "127.0.0.1:" + std::to_string(backend_port);
    route.backend.text = "ws://" + route.backend.host_header + "/chat";
    route.limits = c.limits.route;
    c.routes.push_back(std::move(route));
    return c;
}

namespace {

void quiet_logs() {
    // Keep test output readable; WSBRIDGE_LOG_LEVEL=debug shows the proxy's log lines.
    if (std::getenv("WSBRIDGE_LOG_LEVEL") == nullptr) {
        core::set_log_level(core::LogLevel::Error);
    }
}

} // namespace

Harness::Harness(BackendScript script, NoStart) : backend(loop, std::move(script)) {
    ignore_sigpipe();
    quiet_logs();
}

Harness::Harness(BackendScript script, const std::function<void(config::Config&)>& tweak)
    : Harness(std::move(script), NoStart{}) {
    config::Config c = base_config(backend.port());
    if (tweak) {
        tweak(c);
    }
    start(std::make_shared<const config::Config>(std::move(c)));
}

std::unique_ptr<Harness> Harness::from_yaml(std::string yaml, BackendScript script) {
    std::unique_ptr<Harness> h(new Harness(std::move(script), NoStart{}));
    const std::string port = std::to_string(h->backend.port());
    for (auto at = yaml.find("BACKEND_PORT"); at != std::string::npos;
         at = yaml.find("BACKEND_PORT")) {
        yaml.replace(at, 12, port);
    }
    auto loaded = config::load_config_string(yaml, "test.yaml");
    REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().context));
    h->start(std::make_shared<const config::Config>(std::move(*loaded)));
    return h;
}

void Harness::start(std::shared_ptr<const config::Config> config) {
    config_ = std::move(config);
    server_ = std::make_unique<Server>(loop, config_);
    auto r = server_->start();
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().context));
    const auto addresses = server_->addresses();
    REQUIRE(addresses.size() == 1);
    const std::string& a = addresses.front();
    port_ = static_cast<std::uint16_t>(std::atoi(a.substr(a.rfind(':') + 1).c_str()));
    REQUIRE(port_ != 0);
    REQUIRE(backend.port() != 0);
    started_ = true;
}

Harness::~Harness() {
    if (!finished_ && server_) {
        // A failed test: tear down without asserting, in an order that keeps the Context alive
        // while connections still refer to it.
        server_->stop(false);
        run_until(
            loop, [this] { return server_->context().live_count() == 0; }, 1000);
        for (auto& c : clients_) {
            c->close();
        }
        backend.close();
        run_until(
            loop, [this] { return loop.deferred_count() == 0; }, 1000);
        server_.reset();
    }
    clients_.clear();
    backend.close();
}

RawClient& Harness::connect() {
    clients_.push_back(std::make_unique<RawClient>(loop));
    RawClient& c = *clients_.back();
    REQUIRE(c.connect(port_));
    return c;
}

RawClient& Harness::upgrade(const std::string& path, const std::vector<std::string>& extra,
                            const std::string& then) {
    RawClient& c = connect();
    c.send(upgrade_request(path, extra) + then);
    CHECK(wait_response(c));
    return c;
}

bool Harness::wait_response(RawClient& client, std::uint64_t timeout_ms) {
    return until([&client] { return client.response().has_value(); }, timeout_ms);
}

bool Harness::wait_frames(RawClient& client, std::size_t n, std::uint64_t timeout_ms) {
    return until([&client, n] { return client.frames().size() >= n; }, timeout_ms);
}

bool Harness::wait_backend_frames(std::size_t frames, std::size_t peer, std::uint64_t timeout_ms) {
    return until(
        [this, frames, peer] {
            return backend.connections() > peer && backend.peer(peer).frames().size() >= frames;
        },
        timeout_ms);
}

void Harness::finish() {
    REQUIRE(server_);
    finished_ = true;
    Context& ctx = server_->context();
    server_->stop(false);
    CHECK(until([&] { return ctx.live_count() == 0 && loop.deferred_count() == 0; }));
    CHECK(ctx.live_count() == 0);
    CHECK(ctx.client_count() == 0);
    // The proxy closed everything: every peer saw its connection end and closed in turn.
    const bool peers_done = until([&] {
        for (const auto& c : clients_) {
            if (!c->closed()) {
                return false;
            }
        }
        return backend.all_closed();
    });
    CHECK_MESSAGE(peers_done, "a client or backend connection was left open by the proxy");
    for (auto& c : clients_) {
        c->close();
    }
    backend.close();
    final_metrics_ = ctx.metrics();
    server_.reset();
    const bool no_handles = until([&] { return open_handles(loop) == 0; });
    CHECK_MESSAGE(no_handles, "open handles: " << describe_open_handles(loop));
    CHECK(loop.close_all());
}

} // namespace proxy::test
