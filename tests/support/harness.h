#pragma once
// Harness: one integration test's world: a Loop, a FakeBackend, the proxy's Server configured
// to point at it, and RawClients. finish() is the clean-loop check every test ends with
// (STYLE §2.10, §10): stop the server and the peers, wait until the proxy holds no live
// connection and no handle is left open, then Loop::close_all() must succeed.

#include "config/config.h"
#include "proxy/core/loop.h"
#include "proxy/front/server.h"
#include "tests/support/fake_backend.h"
#include "tests/support/raw_client.h"
#include "tests/support/run_until.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace proxy::test {

/// A config with one listener on 127.0.0.1:0 and one route `/chat` → ws://127.0.0.1:port/chat,
/// with the library defaults for every limit.
config::Config base_config(std::uint16_t backend_port);

/// Default bound for waits in tests, ms.
inline constexpr std::uint64_t kWait = 2000;

/// See the file comment.
class Harness {
  public:
    /// Starts a FakeBackend with `script` and a Server with base_config() adjusted by `tweak`.
    explicit Harness(BackendScript script = {},
                     const std::function<void(config::Config&)>& tweak = {});
    /// Same, from YAML text; "BACKEND_PORT" in it is replaced by the backend's port.
    static std::unique_ptr<Harness> from_yaml(std::string yaml, BackendScript script = {});
    ~Harness();
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;

    /// True when the server started (the constructor does not throw).
    bool started() const noexcept { return started_; }
    /// The proxy's listening port.
    std::uint16_t port() const noexcept { return port_; }
    /// The server's context (only before finish()).
    Context& context() { return server_->context(); }
    /// The proxy's metrics (a snapshot taken at finish() once the server is gone).
    const Metrics& metrics() const {
        return server_ ? server_->context().metrics() : final_metrics_;
    }
    /// A counter of the proxy's metrics.
    std::uint64_t counter(std::string_view name, Labels labels = {}) const {
        return metrics().counter(name, labels);
    }

    /// A new client connected to the proxy (owned by the harness).
    RawClient& connect();
    /// A new client that sent an upgrade for `path` (+ `extra` headers and `then` bytes right
    /// behind it) and waited (bounded) for a complete response head.
    RawClient& upgrade(const std::string& path = "/chat",
                       const std::vector<std::string>& extra = {}, const std::string& then = "");
    /// Waits (bounded) until the client has a complete response.
    bool wait_response(RawClient& client, std::uint64_t timeout_ms = kWait);
    /// Waits (bounded) until the client has `n` frames.
    bool wait_frames(RawClient& client, std::size_t n, std::uint64_t timeout_ms = kWait);
    /// Waits (bounded) until the backend has `n` connections and peer(0) has `frames` frames.
    bool wait_backend_frames(std::size_t frames, std::size_t peer = 0,
                             std::uint64_t timeout_ms = kWait);
    /// run_until on this loop.
    bool until(const std::function<bool()>& pred, std::uint64_t timeout_ms = kWait) {
        return run_until(loop, pred, timeout_ms);
    }

    /// Server::stop(true), as SIGTERM does: stop listening, close sessions and relays with
    /// 1001, end connections. finish() still follows.
    void drain() { server_->stop(true); }

    /// The clean-loop check (CHECKs inside): Server::stop(), then every proxy connection is
    /// gone (live_count() == 0), every client and backend peer saw its connection end and
    /// closed, no handle is left open, and Loop::close_all() returns true.
    void finish();

    // Declared first: destroyed last.
    core::Loop loop;
    FakeBackend backend;

  private:
    struct NoStart {};
    Harness(BackendScript script, NoStart);
    void start(std::shared_ptr<const config::Config> config);

    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<Server> server_;
    std::vector<std::unique_ptr<RawClient>> clients_;
    Metrics final_metrics_;
    std::uint16_t port_ = 0;
    bool started_ = false;
    bool finished_ = false;
};

} // namespace proxy::test
