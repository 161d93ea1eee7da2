#include "proxy/core/systemd.h"

#include "proxy/core/log.h"
#include "proxy/core/tcp.h"

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <systemd/sd-daemon.h>
#include <thread>
#include <unistd.h>
#include <uv.h>

namespace proxy::core {

namespace {

std::uint64_t monotonic_us() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000U +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000U;
}

bool parse_ms(std::string_view text, std::uint64_t& out) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return !text.empty() && ec == std::errc() && ptr == end;
}

} // namespace

// ---------------------------------------------------------------------------------------

SystemdNotifier::SystemdNotifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && socket[0] != '\0';
}

void SystemdNotifier::send(const std::string& state) {
    if (!enabled_) {
        return;
    }
    // unset_environment = 0: a reload and the watchdog keep sending on the same socket.
    const int r = sd_notify(0, state.c_str());
    if (r < 0 && !failure_logged_) {
        failure_logged_ = true;
        log(LogLevel::Warn, "sd_notify_failed",
            {{"state", state.substr(0, state.find('\n'))}, {"errno", -r}});
    }
}

void SystemdNotifier::ready() { send("READY=1"); }

void SystemdNotifier::reloading() { send(reloading_message(monotonic_us())); }

void SystemdNotifier::stopping() { send("STOPPING=1"); }

void SystemdNotifier::status(std::string_view text) { send(status_message(text)); }

void SystemdNotifier::watchdog() { send("WATCHDOG=1"); }

std::string reloading_message(std::uint64_t monotonic) {
    // systemd ≥ 253 (Type=notify-reload) requires MONOTONIC_USEC with RELOADING=1 to tell
    // this reload from an earlier one; older managers ignore the field.
    return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic);
}

std::string status_message(std::string_view text) {
    std::string out = "STATUS=";
    out.append(text);
    for (std::size_t i = 7; i < out.size(); ++i) {
        if (out[i] == '\n' || out[i] == '\r') {
            out[i] = ' ';
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------

SystemdWatchdog::SystemdWatchdog(Loop& loop, SystemdNotifier& notifier) : notifier_(notifier) {
    std::uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID is unset or ours.
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return;
    }
    interval_us_ = usec;
    timer_ = std::make_unique<Timer>(loop, [this] { notifier_.watchdog(); });
    timer_->start(period_ms(), period_ms());
    timer_->unref();
    log(LogLevel::Info, "watchdog_enabled",
        {{"interval_ms", interval_us_ / 1000}, {"ping_ms", period_ms()}});
}

bool SystemdWatchdog::enabled() const noexcept { return timer_ != nullptr && timer_->active(); }

std::uint64_t SystemdWatchdog::period_ms() const noexcept {
    if (interval_us_ == 0) {
        return 0;
    }
    const std::uint64_t half = interval_us_ / 2000;
    return half == 0 ? 1 : half;
}

void SystemdWatchdog::stop() noexcept {
    if (timer_ != nullptr) {
        timer_->stop();
    }
}

// ---------------------------------------------------------------------------------------

std::optional<LoopStall> parse_loop_stall(std::string_view text) {
    const auto comma = text.find(',');
    if (comma == std::string_view::npos) {
        return std::nullopt;
    }
    LoopStall stall;
    if (!parse_ms(text.substr(0, comma), stall.after_ms) ||
        !parse_ms(text.substr(comma + 1), stall.block_ms) || stall.block_ms == 0) {
        return std::nullopt;
    }
    return stall;
}

Result<std::unique_ptr<Timer>> arm_loop_stall_for_test(Loop& loop) {
    const char* value = std::getenv("WSBRIDGE_TEST_STALL_AFTER_MS");
    if (value == nullptr) {
        return std::unique_ptr<Timer>();
    }
    const auto stall = parse_loop_stall(value);
    if (!stall) {
        return fail(Code::Config, Side::Config,
                    std::string("WSBRIDGE_TEST_STALL_AFTER_MS: expected <after_ms>,<block_ms>: ") +
                        value);
    }
    const std::uint64_t block_ms = stall->block_ms;
    auto timer = std::make_unique<Timer>(loop, [block_ms] {
        log(LogLevel::Warn, "test_loop_stall", {{"block_ms", block_ms}});
        // Deliberately blocks the loop thread: nothing else on this loop runs meanwhile.
        std::this_thread::sleep_for(std::chrono::milliseconds(block_ms));
    });
    timer->start(stall->after_ms);
    timer->unref();
    return timer;
}

// ---------------------------------------------------------------------------------------

InheritedSocket describe_socket(int fd) {
    // systemd may pass datagram, AF_UNIX or FIFO fds if the socket unit says so; none of them
    // can serve a `listen` entry, so they get no address and are never taken.
    if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
        return {fd, ""};
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return {fd, ""};
    }
    return {fd, format_address(&addr)};
}

std::vector<InheritedSocket> inherited_listeners() {
    // unset_environment = 1: the fds are ours alone, and a reload must not take them twice.
    const int n = sd_listen_fds(1);
    std::vector<InheritedSocket> out;
    if (n <= 0) {
        return out;
    }
    out.reserve(static_cast<std::size_t>(n));
    for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
        out.push_back(describe_socket(fd));
    }
    return out;
}

std::string canonical_address(std::string_view host, std::uint16_t port) {
    const std::string ip(host);
    sockaddr_storage addr{};
    if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
        uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
        return "";
    }
    return format_address(&addr);
}

InheritedListeners::InheritedListeners(std::vector<InheritedSocket> sockets)
    : sockets_(std::move(sockets)) {}

InheritedListeners::~InheritedListeners() { close_unclaimed(); }

int InheritedListeners::take(std::string_view host, std::uint16_t port) {
    const std::string wanted = canonical_address(host, port);
    if (wanted.empty()) {
        return -1;
    }
    for (auto it = sockets_.begin(); it != sockets_.end(); ++it) {
        if (it->address == wanted) {
            const int fd = it->fd;
            sockets_.erase(it);
            return fd;
        }
    }
    return -1;
}

std::vector<InheritedSocket> InheritedListeners::close_unclaimed() {
    std::vector<InheritedSocket> closed = std::move(sockets_);
    sockets_.clear();
    for (auto& s : closed) {
        ::close(s.fd);
    }
    return closed;
}

} // namespace proxy::core
