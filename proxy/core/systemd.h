#pragma once
// systemd integration through libsystemd (sd-daemon.h, included only by systemd.cc): state
// notifications for Type=notify (READY, RELOADING, STOPPING, STATUS), the watchdog pinged from
// the event loop, and socket activation (LISTEN_FDS). Every part is inert outside systemd: with
// NOTIFY_SOCKET, WATCHDOG_USEC or LISTEN_FDS unset nothing is sent, started or inherited.
//
// The protocol is sd_notify(3), sd_watchdog_enabled(3) and sd_listen_fds(3). The units that
// use it are systemd/wsbridge.service and systemd/wsbridge.socket.

#include "proxy/core/loop.h"
#include "proxy/core/result.h"
#include "proxy/core/timer.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxy::core {

/// Sends state changes to the service manager over $NOTIFY_SOCKET (sd_notify(3)). The socket
/// is looked up once, at construction; without it every method is a no-op that sends nothing.
/// A failed send is logged once (`event=sd_notify_failed`) and otherwise ignored: the manager
/// then times out the start or the watchdog, which is the right outcome. Not thread-safe; one
/// per process is enough (it holds no handle).
class SystemdNotifier {
  public:
    SystemdNotifier();

    /// True when $NOTIFY_SOCKET was set at construction (running under Type=notify).
    bool enabled() const noexcept { return enabled_; }

    /// `READY=1`: start-up, or a reload, is complete. Send it once every listener is bound.
    void ready();
    /// `RELOADING=1` and `MONOTONIC_USEC=<CLOCK_MONOTONIC µs>`: a reload began; ready() ends
    /// it, whether the new configuration was taken or the old one kept.
    void reloading();
    /// `STOPPING=1`: the drain began.
    void stopping();
    /// `STATUS=<text>`: one line for `systemctl status`. Newlines in `text` become spaces.
    void status(std::string_view text);
    /// `WATCHDOG=1`: the process is alive. SystemdWatchdog calls it from its loop timer.
    void watchdog();

  private:
    void send(const std::string& state);

    bool enabled_ = false;
    bool failure_logged_ = false;
};

/// The `RELOADING=1` message for a CLOCK_MONOTONIC time of `monotonic_us` (pure; for tests).
std::string reloading_message(std::uint64_t monotonic_us);
/// The `STATUS=` message for `text`, newlines replaced by spaces (pure; for tests).
std::string status_message(std::string_view text);

/// Pings the service manager's watchdog (`WATCHDOG=1`) from a Timer on `loop`, every half of
/// WATCHDOG_USEC, when sd_watchdog_enabled(3) says the manager expects pings from this process
/// (WATCHDOG_USEC set and WATCHDOG_PID unset or equal to our pid). Because the ping runs on
/// the loop, a loop that is blocked stops pinging and systemd restarts the service: that is
/// the point. The timer is unreferenced, so it never keeps the loop alive by itself.
/// Destroying it, stop(), or Loop::close_all() stops the pings.
class SystemdWatchdog {
  public:
    /// Reads the environment and, when enabled, starts the timer; the first ping goes out half
    /// an interval from now. `notifier` must outlive this object.
    SystemdWatchdog(Loop& loop, SystemdNotifier& notifier);

    /// True when the manager asked for pings and they are running (until stop()).
    bool enabled() const noexcept;
    /// The manager's WATCHDOG_USEC, or 0 when not enabled.
    std::uint64_t interval_us() const noexcept { return interval_us_; }
    /// The ping period in ms (half the interval, at least 1), or 0 when not enabled.
    std::uint64_t period_ms() const noexcept;
    /// Stops pinging (at the end of a drain, right before exit). Idempotent.
    void stop() noexcept;

  private:
    SystemdNotifier& notifier_;
    std::uint64_t interval_us_ = 0;
    std::unique_ptr<Timer> timer_; ///< null when not enabled
};

/// A stall of the loop asked for by WSBRIDGE_TEST_STALL_AFTER_MS=<after>,<block>.
struct LoopStall {
    std::uint64_t after_ms = 0; ///< delay from arming to the stall
    std::uint64_t block_ms = 0; ///< how long the loop thread sleeps, once
};

/// Parses "<after>,<block>" (two decimal millisecond counts, block > 0); nullopt otherwise.
std::optional<LoopStall> parse_loop_stall(std::string_view text);

/// Test hook (for the watchdog tests): when WSBRIDGE_TEST_STALL_AFTER_MS=<a>,<b> is set,
/// returns an unreferenced Timer on `loop` that, `a` ms from now, blocks the loop thread for
/// `b` ms once (a plain sleep inside the timer callback, logged as `event=test_loop_stall`),
/// like a handler stuck in a long computation would. Returns null when the variable is unset
/// and Code::Config when it is malformed. Keep the Timer alive for as long as the hook should
/// stay armed. Never set it in production.
Result<std::unique_ptr<Timer>> arm_loop_stall_for_test(Loop& loop);

/// One listening socket passed by the service manager (socket activation).
struct InheritedSocket {
    int fd = -1;
    /// getsockname() of a TCP listening socket, "127.0.0.1:8080" or "[::1]:8080"; "" for a
    /// socket that is not a listening TCP (stream, AF_INET/AF_INET6) socket.
    std::string address;
};

/// Describes `fd`: its local address when it is a listening TCP socket, else "".
InheritedSocket describe_socket(int fd);

/// The sockets passed by the service manager (sd_listen_fds(3): fds 3… when LISTEN_PID is our
/// pid), each with its local address. The LISTEN_* variables are removed from the environment,
/// so a second call (or a child process) finds none. The fds have FD_CLOEXEC set and belong to
/// the caller. Empty without socket activation or when LISTEN_FDS is malformed.
std::vector<InheritedSocket> inherited_listeners();

/// Owns the inherited sockets until each is claimed by the listener that matches it.
/// Sockets never claimed are closed by close_unclaimed() or the destructor.
class InheritedListeners {
  public:
    /// Takes ownership of `sockets` (usually inherited_listeners()).
    explicit InheritedListeners(std::vector<InheritedSocket> sockets);
    /// Closes whatever was not taken.
    ~InheritedListeners();
    InheritedListeners(const InheritedListeners&) = delete;
    InheritedListeners& operator=(const InheritedListeners&) = delete;

    /// Gives up ownership of the socket bound to `host`:`port` (`host` an IP literal without
    /// brackets, compared by value, so "::1" and "0:0::1" are the same), or returns -1 when
    /// none is. The caller (TcpListener::adopt) owns the returned fd.
    int take(std::string_view host, std::uint16_t port);
    /// Closes every socket not taken and returns them (their fd numbers
    /// no longer valid), so
    /// the caller can log each: a socket unit listening where no `listen` entry does is a
    /// misconfiguration. Idempotent.
    std::vector<InheritedSocket> close_unclaimed();
    /// Sockets still held (not taken, not closed).
    std::size_t size() const noexcept { return sockets_.size(); }

  private:
    std::vector<InheritedSocket> sockets_;
};

/// The canonical "ip:port" / "[ip6]:port" form of `host` (an IP literal) and `port`, as
/// InheritedSocket::address spells it; "" when `host` is not an IP literal.
std::string canonical_address(std::string_view host, std::uint16_t port);

} // namespace proxy::core
