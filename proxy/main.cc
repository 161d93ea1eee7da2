// wsbridge: command line entry point. See README.md ("Command line").

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "config/config.h"
#include "proxy/core/heap_trim.h"
#include "proxy/core/log.h"
#include "proxy/core/loop.h"
#include "proxy/core/signal.h"
#include "proxy/core/systemd.h"
#include "proxy/core/timer.h"
#include "proxy/front/server.h"

namespace {

/// How often free pages inside the heap are given back (proxy/core/heap_trim.h).
constexpr std::uint64_t kHeapTrimIntervalMs = 10000;

constexpr const char* kUsage =
    "usage: wsbridge -c FILE            run the proxy in the foreground\n"
    "       wsbridge --check-config FILE  validate FILE; print every error as\n"
    "                                   file:line:col: message and exit 1 if any\n"
    "       wsbridge --version          print the version\n"
    "       wsbridge --help             print this help\n"
    "\n"
    "Logs go to stderr, one logfmt line per event (WSBRIDGE_LOG_LEVEL=debug|info|warn|error).\n"
    "SIGINT/SIGTERM: stop accepting, close WebSockets with 1001, exit within drain_timeout.\n"
    "SIGHUP: reload FILE in place; live connections and sessions keep their configuration, and\n"
    "a file with errors changes nothing (each error is logged as reload_failed).\n";

int check_config(const std::string& path) {
    auto config = config::load_config(path);
    if (!config) {
        std::fprintf(stderr, "%s\n", config.error().context.c_str());
        return 1;
    }
    std::printf("%s: OK (%zu listener(s), %zu route(s))\n", path.c_str(),
                config->listen.size(), config->routes.size());
    return 0;
}

int run(const std::string& path) {
    auto loaded = config::load_config(path);
    if (!loaded) {
        std::fprintf(stderr, "%s\n", loaded.error().context.c_str());
        return 1;
    }
    auto config = std::make_shared<const config::Config>(std::move(*loaded));
    std::signal(SIGPIPE, SIG_IGN);

    proxy::core::Loop loop;
    int exit_code = 0;
    {
        // systemd (Type=notify): inert without NOTIFY_SOCKET, WATCHDOG_USEC and LISTEN_FDS.
        proxy::core::SystemdNotifier notifier;
        proxy::core::SystemdWatchdog watchdog(loop, notifier);
        auto stall = proxy::core::arm_loop_stall_for_test(loop);
        if (!stall) {
            proxy::core::log(proxy::core::LogLevel::Error, "startup_failed",
                             {{"reason", stall.error().context}});
            return 1;
        }
        proxy::core::InheritedListeners inherited(proxy::core::inherited_listeners());
        proxy::Server server(loop, config);
        if (auto r = server.start(&inherited); !r) {
            proxy::core::log(proxy::core::LogLevel::Error, "startup_failed",
                             {{"reason", r.error().context}});
            return 1;
        }
        auto& metrics = server.context().metrics();
        metrics.gauge_set("wsbridge_watchdog_interval_seconds",
                          static_cast<std::int64_t>(watchdog.interval_us() / 1'000'000));
        // Every state notification is counted in /metrics (none without NOTIFY_SOCKET).
        auto notify = [&](std::string_view state) {
            if (!notifier.enabled()) {
                return;
            }
            if (state == "ready") {
                notifier.ready();
            } else if (state == "reloading") {
                notifier.reloading();
            } else if (state == "stopping") {
                notifier.stopping();
            } else {
                notifier.status(server.status_line());
            }
            metrics.inc("wsbridge_systemd_notifications_total", {{"state", state}});
        };
        auto on_stop = [&](const char* name) {
            proxy::core::log(proxy::core::LogLevel::Info, "stopping", {{"signal", name}});
            notify("status");
            notify("stopping");
            server.stop(true);
        };
        proxy::core::SignalWatcher sigint(loop, SIGINT, [&] { on_stop("SIGINT"); });
        proxy::core::SignalWatcher sigterm(loop, SIGTERM, [&] { on_stop("SIGTERM"); });
        proxy::core::SignalWatcher sighup(loop, SIGHUP, [&] {
            notify("reloading");
            (void)server.reload(path);
            notify("status");
            notify("ready");  // also after a rejected file: the old configuration runs on
        });
        // STATUS= for `systemctl status`, refreshed every 10 s (unreferenced: it never keeps
        // the loop alive).
        proxy::core::Timer status_timer(loop, [&] { notify("status"); });
        if (notifier.enabled()) {
            status_timer.unref();
            status_timer.start(10'000, 10'000);
        }
        // Only now: a script that signals on this line finds the handlers in place, and the
        // manager hears READY=1 once every listener accepts.
        proxy::core::log(proxy::core::LogLevel::Info, "started",
                         {{"version", WSBRIDGE_VERSION},
                          {"config", path},
                          {"systemd", notifier.enabled() ? "notify" : "off"},
                          {"watchdog_ms", watchdog.period_ms()}});
        notify("ready");
        notify("status");
        proxy::core::HeapTrimmer heap_trimmer(loop, kHeapTrimIntervalMs);
        loop.run();
        server.context().shutdown_all(false);
        loop.drain_deferred();
    }
    if (!loop.close_all()) {
        proxy::core::log(proxy::core::LogLevel::Warn, "loop_not_clean", {});
        exit_code = 0;
    }
    proxy::core::log(proxy::core::LogLevel::Info, "stopped", {});
    return exit_code;
}

} // namespace

int main(int argc, char** argv) {
    if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
        std::printf("wsbridge %s\n", WSBRIDGE_VERSION);
        return 0;
    }
    if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) {
        return check_config(argv[2]);
    }
    if (argc == 3 && (std::strcmp(argv[1], "-c") == 0 || std::strcmp(argv[1], "--config") == 0)) {
        return run(argv[2]);
    }
    std::fputs(kUsage, stderr);
    return 2;
}
