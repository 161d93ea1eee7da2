#pragma once
// Admin listener (`admin: {address}`, loopback by default): GET /metrics (Prometheus text),
// GET /status (an HTML status page) and /status.json (its data; status_page.h), GET /healthz
// (200 while the process runs), GET /readyz (200, or 503 once draining).
// Anything else gets a JSON 404/405. One request per connection is enough for scrapers, but
// keep-alive is honoured.

#include <memory>

#include "proxy/context.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "proxy/http/parser.h"

namespace proxy {

/// Serves the admin endpoints on one listener.
class AdminServer {
  public:
    explicit AdminServer(Context& context);
    ~AdminServer();
    /// Binds host:port and logs `event=admin_listening address=…`.
    core::Result<void> start(const std::string& host, std::uint16_t port);
    /// Stops accepting. Open admin connections end on their own (they are short).
    void stop();
    /// The bound address.
    std::string address() const;

  private:
    Context& context_;
    std::unique_ptr<core::TcpListener> listener_;
};

} // namespace proxy
