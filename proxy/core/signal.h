#pragma once
// POSIX signal watcher over uv_signal_t (SIGINT/SIGTERM/SIGHUP handling in main).

#include <functional>

#include <string>

#include "proxy/core/loop.h"
#include "proxy/core/result.h"

struct uv_signal_s;

namespace proxy::core {

/// Calls `on_signal` on the loop each time `signum` arrives. Unreferenced: it does not keep the
/// loop alive by itself. Destroying it, or Loop::close_all(), stops watching.
class SignalWatcher : private HandleOwner {
  public:
    SignalWatcher(Loop& loop, int signum, std::function<void()> on_signal);
    ~SignalWatcher();
    SignalWatcher(const SignalWatcher&) = delete;
    SignalWatcher& operator=(const SignalWatcher&) = delete;

    // Trampoline target.
    void fire();

  private:
    void close_handles() noexcept override;

    uv_signal_s* signal_;  ///< null once closed
    std::function<void()> on_signal_;
};

/// Resolves `host` to a numeric IP (first result, IPv4 preferred) synchronously with
/// getaddrinfo. Used at startup/config time only, never on the data path.
Result<std::string> resolve_host(const std::string& host);

} // namespace proxy::core
