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
        proxy::Server server(loop, config);
        if (auto r = server.start(); !r) {
            proxy::core::log(proxy::core::LogLevel::Error, "startup_failed",
                             {{"reason", r.error().context}});
            return 1;
        }
        auto on_stop = [&server](const char* name) {
            proxy::core::log(proxy::core::LogLevel::Info, "stopping", {{"signal", name}});
            server.stop(true);
        };
        proxy::core::SignalWatcher sigint(loop, SIGINT, [&] { on_stop("SIGINT"); });
        proxy::core::SignalWatcher sigterm(loop, SIGTERM, [&] { on_stop("SIGTERM"); });
        proxy::core::SignalWatcher sighup(loop, SIGHUP, [&] { (void)server.reload(path); });
        // Only now: a script that signals on this line finds the handlers in place.
        proxy::core::log(proxy::core::LogLevel::Info, "started",
                         {{"version", WSBRIDGE_VERSION}, {"config", path}});
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
