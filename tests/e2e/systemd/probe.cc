// systemd_probe: the smallest program that uses proxy/core/systemd.h the way wsbridge's main
// should, so tests/e2e/systemd/manager_test.cc can check the module under a fake service
// manager before (and independently of) main.cc's wiring.
//
//   systemd_probe [ADDRESS...]
//
// Takes the inherited socket bound to each ADDRESS ("127.0.0.1:8080", "[::1]:8080") and
// answers every connection on it with "ok\n"; closes (and logs) the inherited sockets no
// ADDRESS names; then READY=1 and a STATUS line. Pings the watchdog from the loop, honours
// WSBRIDGE_TEST_STALL_AFTER_MS. SIGHUP: RELOADING=1, then READY=1. SIGTERM: STOPPING=1,
// closes the listeners and exits 0 once the loop is clean. Exit 1: an ADDRESS has no
// inherited socket; 2: a bad argument or hook value; 3: the loop did not close cleanly.

#include "proxy/core/log.h"
#include "proxy/core/loop.h"
#include "proxy/core/signal.h"
#include "proxy/core/systemd.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"

#include <charconv>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace {

using proxy::core::log;
using proxy::core::LogLevel;

/// Accepted streams only receive "ok\n" and are closed; their events need no handling.
struct IgnoreEvents final : proxy::core::StreamHandler {
    void on_read(std::span<std::byte> /*bytes*/) override {}
    void on_read_end(const proxy::core::Error* /*error*/) override {}
    void on_write_error(const proxy::core::Error& /*error*/) override {}
};

bool split_address(const std::string& address, std::string& host, std::uint16_t& port) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) {
        return false;
    }
    const char* first = address.data() + colon + 1;
    const char* last = address.data() + address.size();
    auto [ptr, ec] = std::from_chars(first, last, port);
    host = proxy::core::ip_of(address);
    return ec == std::errc() && ptr == last && first != last;
}

std::string status_text(std::size_t listeners, std::uint64_t accepted) {
    return "listening on " + std::to_string(listeners) + " inherited socket(s), " +
           std::to_string(accepted) + " connection(s) accepted";
}

int run(const std::vector<std::string>& addresses) {
    proxy::core::Loop loop;
    proxy::core::SystemdNotifier notifier;
    proxy::core::SystemdWatchdog watchdog(loop, notifier);
    auto stall = proxy::core::arm_loop_stall_for_test(loop);
    if (!stall) {
        log(LogLevel::Error, "bad_hook", {{"reason", stall.error().context}});
        return 2;
    }

    IgnoreEvents ignore;
    std::uint64_t accepted = 0;
    std::vector<std::unique_ptr<proxy::core::TcpListener>> listeners;
    auto on_accept = [&](std::unique_ptr<proxy::core::TcpStream> stream) {
        stream->set_handler(&ignore);
        stream->write(std::string_view("ok\n"));
        stream->close(proxy::core::TcpStream::CloseMode::Flush);
        ++accepted;
        notifier.status(status_text(listeners.size(), accepted));
    };

    proxy::core::InheritedListeners inherited(proxy::core::inherited_listeners());
    log(LogLevel::Info, "inherited", {{"count", static_cast<std::uint64_t>(inherited.size())}});
    for (const auto& address : addresses) {
        std::string host;
        std::uint16_t port = 0;
        if (!split_address(address, host, port)) {
            log(LogLevel::Error, "bad_address", {{"address", address}});
            return 2;
        }
        const int fd = inherited.take(host, port);
        if (fd < 0) {
            log(LogLevel::Error, "not_inherited", {{"address", address}});
            return 1;
        }
        auto listener = std::make_unique<proxy::core::TcpListener>(loop);
        if (auto r = listener->adopt(fd, on_accept); !r) {
            log(LogLevel::Error, "adopt_failed", {{"reason", r.error().context}});
            return 1;
        }
        log(LogLevel::Info, "listening", {{"address", listener->local_address()}});
        listeners.push_back(std::move(listener));
    }
    for (const auto& s : inherited.close_unclaimed()) {
        log(LogLevel::Warn, "unclaimed_socket", {{"fd", s.fd}, {"address", s.address}});
    }

    // Every listener is accepting: only now may the manager consider the service started.
    notifier.ready();
    notifier.status(status_text(listeners.size(), accepted));

    // Signal watchers are unreferenced; without a listener nothing else would keep the loop
    // running until SIGTERM.
    proxy::core::Timer keep_running(loop, [] {});
    keep_running.start(3600 * 1000, 3600 * 1000);

    proxy::core::SignalWatcher sighup(loop, SIGHUP, [&] {
        notifier.reloading();
        notifier.status("reloaded (nothing to reload in the probe)");
        notifier.ready();
    });
    proxy::core::SignalWatcher sigterm(loop, SIGTERM, [&] {
        notifier.stopping();
        watchdog.stop();
        keep_running.stop();
        for (auto& l : listeners) {
            l->close();
        }
    });
    loop.run();
    listeners.clear();
    if (!loop.close_all()) {
        log(LogLevel::Error, "loop_not_clean", {});
        return 3;
    }
    log(LogLevel::Info, "stopped", {});
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> addresses(argv + 1, argv + argc);
    return run(addresses);
}
