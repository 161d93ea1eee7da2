// The service manager's side of proxy/core/systemd.h, played against a real process: the test
// binds an AF_UNIX datagram socket and passes it as NOTIFY_SOCKET, sets WATCHDOG_USEC and
// WATCHDOG_PID, and hands listening TCP sockets on 127.0.0.1 (ports chosen by the OS) to the
// child as fds 3… with LISTEN_FDS and LISTEN_PID, the pid being the child's own (set after
// fork, as systemd does). It then checks every notification, its order and its sender's pid
// (NotifyAccess=main accepts only the main process), and that the inherited socket accepts.
//
// The program under test is $SYSTEMD_TEST_BIN (tests/e2e/systemd/probe.cc by default, see
// tests/CMakeLists.txt) with the arguments in $SYSTEMD_TEST_ARGS, "{0}" standing for the first
// inherited socket's address.

#include "tests/support/loopback_socket.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

using proxy::test::LoopbackListener;
using Clock = std::chrono::steady_clock;

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

std::uint64_t monotonic_us() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000U +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000U;
}

/// One datagram from the child: its text, the sender's pid (SCM_CREDENTIALS) and arrival time.
struct Message {
    std::string text;
    pid_t pid = 0;
    Clock::time_point at;
};

/// The manager's notification socket, in the abstract namespace (nothing to clean up).
class NotifySocket {
  public:
    NotifySocket() {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        const int on = 1;
        REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
        static int serial = 0;
        name_ =
            "@wsbridge-systemd-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    }
    ~NotifySocket() { ::close(fd_); }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    /// The NOTIFY_SOCKET value ("@…" for an abstract address, as sd_notify(3) accepts).
    const std::string& name() const { return name_; }

    /// The next datagram, or nullopt after `timeout_ms` without one.
    std::optional<Message> next(int timeout_ms) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) {
            return std::nullopt;
        }
        char buf[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{buf, sizeof(buf)};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
        REQUIRE(n >= 0);
        Message m{std::string(buf, static_cast<std::size_t>(n)), 0, Clock::now()};
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                ucred cred{};
                std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                m.pid = cred.pid;
            }
        }
        return m;
    }

    /// Every datagram arriving within the next `ms` milliseconds.
    std::vector<Message> collect_for(int ms) {
        std::vector<Message> out;
        const auto end = Clock::now() + std::chrono::milliseconds(ms);
        for (auto now = Clock::now(); now < end; now = Clock::now()) {
            if (auto m = next(static_cast<int>(ms_between(now, end)) + 1)) {
                out.push_back(std::move(*m));
            }
        }
        return out;
    }

    /// Datagrams until one equal to `text` (inclusive), or until `timeout_ms` passed.
    std::vector<Message> collect_until(const std::string& text, int timeout_ms) {
        std::vector<Message> out;
        const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
        for (auto now = Clock::now(); now < end; now = Clock::now()) {
            auto m = next(static_cast<int>(ms_between(now, end)) + 1);
            if (m) {
                out.push_back(std::move(*m));
                if (out.back().text == text) {
                    break;
                }
            }
        }
        return out;
    }

  private:
    int fd_ = -1;
    std::string name_;
};

/// Connects to 127.0.0.1:`port` and reads until EOF. nullopt when the connection is refused.
std::optional<std::string> fetch(std::uint16_t port) {
    const int fd = proxy::test::connect_loopback(port);
    if (fd < 0) {
        REQUIRE_MESSAGE(fd == -ECONNREFUSED, "connect: ", std::strerror(-fd));
        return std::nullopt;
    }
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) {
        got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got;
}

/// Writes the decimal `value` into `out` (async-signal-safe, for the child after fork).
void format_pid(char* out, pid_t value) {
    char digits[16];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value > 0);
    while (n > 0) {
        *out++ = digits[--n];
    }
    *out = '\0';
}

/// How the child is started: what the manager would put in its environment.
struct Launch {
    std::vector<int> listen_fds;       ///< become fds 3…, LISTEN_FDS=<count>
    bool listen_pid_is_child = true;   ///< LISTEN_PID = child's pid, else the test's pid
    std::string notify_socket;         ///< NOTIFY_SOCKET
    std::string watchdog_usec;         ///< WATCHDOG_USEC, unset when empty
    bool watchdog_pid_is_child = true; ///< WATCHDOG_PID = child's pid, else the test's pid
    std::string stall;                 ///< WSBRIDGE_TEST_STALL_AFTER_MS, unset when empty
    std::vector<std::string> args;     ///< "{0}" becomes the first listen fd's address
    std::string bin;                   ///< the program; empty: $SYSTEMD_TEST_BIN
};

/// Replaces every "{0}" in `text` with `address`.
std::string substitute(std::string text, const std::string& address) {
    for (auto at = text.find("{0}"); at != std::string::npos; at = text.find("{0}")) {
        text.replace(at, 3, address);
    }
    return text;
}

/// $SYSTEMD_TEST_BIN, the launch's arguments, then the words of $SYSTEMD_TEST_ARGS.
std::vector<std::string> child_argv(const Launch& launch, const std::string& first_address) {
    const char* bin = std::getenv("SYSTEMD_TEST_BIN");
    REQUIRE_MESSAGE((bin != nullptr || !launch.bin.empty()),
                    "SYSTEMD_TEST_BIN is not set (run through ctest)");
    std::vector<std::string> out{launch.bin.empty() ? std::string(bin) : launch.bin};
    for (const auto& a : launch.args) {
        out.push_back(substitute(a, first_address));
    }
    if (!launch.bin.empty()) {
        return out;  // the wsbridge cases: their own arguments only
    }
    const char* extra = std::getenv("SYSTEMD_TEST_ARGS");
    const std::string rest = substitute(extra != nullptr ? extra : "", first_address);
    for (std::size_t start = 0; start < rest.size();) {
        auto end = rest.find(' ', start);
        end = end == std::string::npos ? rest.size() : end;
        if (end > start) {
            out.push_back(rest.substr(start, end - start));
        }
        start = end + 1;
    }
    return out;
}

/// The test's environment without any systemd variable, plus the launch's (but the pids).
std::vector<std::string> child_env(const Launch& launch) {
    std::vector<std::string> out;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v(*e);
        if (!v.starts_with("LISTEN_") && !v.starts_with("NOTIFY_SOCKET=") &&
            !v.starts_with("WATCHDOG_") && !v.starts_with("WSBRIDGE_TEST_STALL")) {
            out.emplace_back(v);
        }
    }
    out.push_back("LISTEN_FDS=" + std::to_string(launch.listen_fds.size()));
    out.push_back("NOTIFY_SOCKET=" + launch.notify_socket);
    if (!launch.watchdog_usec.empty()) {
        out.push_back("WATCHDOG_USEC=" + launch.watchdog_usec);
    }
    if (!launch.stall.empty()) {
        out.push_back("WSBRIDGE_TEST_STALL_AFTER_MS=" + launch.stall);
    }
    return out;
}

/// Pointers into `strings`, for execve (no terminating null).
std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 2);
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    return out;
}

/// The program under test, running; its stderr is collected through a pipe. Killed with
/// SIGKILL by pid if still running when the test ends.
class Child {
  public:
    explicit Child(const Launch& launch, const std::string& first_address) {
        auto argv_s = child_argv(launch, first_address);
        auto env_s = child_env(launch);
        // The pids are filled in by the child, after fork.
        char listen_pid[32] = "LISTEN_PID=";
        char watchdog_pid[32] = "WATCHDOG_PID=";
        auto argv = pointers(argv_s);
        argv.push_back(nullptr);
        auto envp = pointers(env_s);
        envp.push_back(listen_pid);
        if (!launch.watchdog_usec.empty()) {
            envp.push_back(watchdog_pid);
        }
        envp.push_back(nullptr);

        std::vector<int> fds = launch.listen_fds; // rewritten in place by the child
        int err_pipe[2];
        REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            // Child: only async-signal-safe calls from here to execve.
            const pid_t self = ::getpid();
            format_pid(listen_pid + 11, launch.listen_pid_is_child ? self : parent);
            format_pid(watchdog_pid + 13, launch.watchdog_pid_is_child ? self : parent);
            ::dup2(err_pipe[1], STDERR_FILENO);
            // Move the sockets out of the way first, so placing one at 3+i never overwrites
            // another still to be placed; dup2 clears FD_CLOEXEC on the copy the child keeps.
            for (int& fd : fds) {
                fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
            }
            for (std::size_t i = 0; i < fds.size(); ++i) {
                ::dup2(fds[i], 3 + static_cast<int>(i));
            }
            ::execve(argv[0], argv.data(), envp.data());
            ::_exit(127);
        }
        ::close(err_pipe[1]);
        err_fd_ = err_pipe[0];
        // Reads must never block: log() is called while the child runs.
        REQUIRE(::fcntl(err_fd_, F_SETFL, O_NONBLOCK) == 0);
    }

    ~Child() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        ::close(err_fd_);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int signum) const { REQUIRE(::kill(pid_, signum) == 0); }

    /// Waits up to `timeout_ms` for the exit; returns the exit code, or -1 on a timeout or a
    /// death by signal.
    int wait_exit(int timeout_ms) {
        const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
        int status = 0;
        while (Clock::now() < end) {
            drain_stderr();
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                drain_stderr();
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            pollfd p{err_fd_, POLLIN, 0};
            ::poll(&p, 1, 20);
        }
        return -1;
    }

    /// What the child wrote on stderr so far (its log lines).
    const std::string& log() {
        drain_stderr();
        return log_;
    }

  private:
    void drain_stderr() {
        char buf[4096];
        for (ssize_t n; (n = ::read(err_fd_, buf, sizeof(buf))) > 0;) {
            log_.append(buf, static_cast<std::size_t>(n));
        }
    }

    pid_t pid_ = -1;
    int err_fd_ = -1;
    bool exited_ = false;
    std::string log_;
};

std::vector<Message> only(const std::vector<Message>& all, const std::string& text) {
    std::vector<Message> out;
    for (const auto& m : all) {
        if (m.text == text) {
            out.push_back(m);
        }
    }
    return out;
}

bool has_text(const std::vector<Message>& all, const std::string& text) {
    return !only(all, text).empty();
}

std::string describe(const std::vector<Message>& all) {
    std::string out;
    for (const auto& m : all) {
        out += "[" + m.text + "] ";
    }
    return out;
}

/// Waits for READY=1 (the first notification of all, from the child itself) and returns it.
void expect_ready_first(NotifySocket& notify, const Child& child) {
    auto first = notify.next(10000);
    REQUIRE_MESSAGE(first.has_value(), "no notification within 10 s");
    CHECK(first->text == "READY=1");
    CHECK(first->pid == child.pid());
}

/// SIGTERM: STOPPING=1 comes next (after any pings in flight) and nothing follows it; the
/// process exits 0.
void expect_clean_stop(NotifySocket& notify, Child& child) {
    child.signal(SIGTERM);
    const auto before = notify.collect_until("STOPPING=1", 5000);
    REQUIRE_MESSAGE(has_text(before, "STOPPING=1"),
                    "no STOPPING=1 after SIGTERM: ", describe(before));
    CHECK(before.back().pid == child.pid());
    CHECK(child.wait_exit(5000) == 0);
    const auto after = notify.collect_for(100);
    CHECK_MESSAGE(after.empty(), "sent after STOPPING=1: ", describe(after));
}

} // namespace

TEST_CASE("systemd: READY after the inherited listener, watchdog pings, STATUS, STOPPING") {
    NotifySocket notify;
    LoopbackListener claimed;
    LoopbackListener unclaimed;
    REQUIRE(claimed.ok());
    REQUIRE(unclaimed.ok());
    Launch launch;
    launch.listen_fds = {claimed.fd(), unclaimed.fd()};
    launch.notify_socket = notify.name();
    launch.watchdog_usec = "600000"; // pings every 300 ms
    launch.args = {"{0}"};
    Child child(launch, claimed.address());
    // Only the child holds the sockets now, as under systemd once the socket unit is stopped.
    claimed.close();
    unclaimed.close();

    expect_ready_first(notify, child);
    // The child logs before it notifies, so what it logged before READY=1 is in the pipe now:
    // the listener was adopted and the other socket closed first.
    const std::string log_at_ready = child.log();
    CHECK(log_at_ready.find("event=listening address=" + claimed.address()) != std::string::npos);
    CHECK(log_at_ready.find("event=unclaimed_socket fd=4 address=" + unclaimed.address()) !=
          std::string::npos);
    // The named socket accepts; the other one is closed.
    CHECK(fetch(claimed.port()) == std::optional<std::string>("ok\n"));
    CHECK_FALSE(fetch(unclaimed.port()).has_value());

    const auto during = notify.collect_for(1600);
    for (const auto& m : during) {
        CHECK(m.pid == child.pid());
    }
    CHECK(has_text(during, "STATUS=listening on 1 inherited socket(s), 1 connection(s) accepted"));
    const auto pings = only(during, "WATCHDOG=1");
    CHECK_MESSAGE(pings.size() >= 4, describe(during));
    for (std::size_t i = 1; i < pings.size(); ++i) {
        const auto gap = ms_between(pings[i - 1].at, pings[i].at);
        CHECK_MESSAGE(gap >= 150, "pings too often: ", gap, " ms");
        CHECK_MESSAGE(gap < 600, "gap over WATCHDOG_USEC: ", gap, " ms");
    }
    expect_clean_stop(notify, child);
}

TEST_CASE("systemd: a stalled loop stops the watchdog pings until it runs again") {
    NotifySocket notify;
    Launch launch;
    launch.notify_socket = notify.name();
    launch.watchdog_usec = "400000"; // pings every 200 ms
    launch.stall = "700,1500";       // at 700 ms the loop blocks for 1.5 s
    Child child(launch, "");

    expect_ready_first(notify, child);
    const auto start = Clock::now();
    const auto all = notify.collect_for(3200);
    const auto pings = only(all, "WATCHDOG=1");
    REQUIRE_MESSAGE(pings.size() >= 5, describe(all));
    // Exactly one gap is the stall: over the whole WATCHDOG_USEC (systemd would have killed
    // the service), about block_ms long; every other gap stays well under the interval.
    std::size_t stalls = 0;
    std::size_t stall_at = 0;
    for (std::size_t i = 1; i < pings.size(); ++i) {
        const auto gap = ms_between(pings[i - 1].at, pings[i].at);
        if (gap >= 1400) {
            ++stalls;
            stall_at = i;
        } else {
            CHECK_MESSAGE(gap < 400, "gap over WATCHDOG_USEC outside the stall: ", gap, " ms");
        }
    }
    REQUIRE_MESSAGE(stalls == 1, describe(all));
    CHECK(stall_at >= 2);                // pings before the stall...
    CHECK(pings.size() - stall_at >= 2); // ...and after it
    CHECK(ms_between(start, pings[stall_at].at) >= 1400);
    CHECK(child.log().find("event=test_loop_stall block_ms=1500") != std::string::npos);
    expect_clean_stop(notify, child);
}

TEST_CASE("systemd: SIGHUP sends RELOADING=1 with MONOTONIC_USEC, then READY=1") {
    NotifySocket notify;
    Launch launch;
    launch.notify_socket = notify.name();
    Child child(launch, "");
    expect_ready_first(notify, child);
    notify.collect_for(100); // the STATUS after READY

    const std::uint64_t before = monotonic_us();
    child.signal(SIGHUP);
    const auto reload = notify.collect_until("READY=1", 5000);
    const std::uint64_t after = monotonic_us();
    REQUIRE_MESSAGE(reload.size() >= 2, describe(reload));
    const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
    REQUIRE(reload.front().text.starts_with(prefix));
    const auto stamp = std::stoull(reload.front().text.substr(prefix.size()));
    CHECK(stamp >= before);
    CHECK(stamp <= after);
    CHECK(reload.back().text == "READY=1");
    expect_clean_stop(notify, child);
}

TEST_CASE("systemd: LISTEN_PID and WATCHDOG_PID of another process are not ours") {
    NotifySocket notify;
    LoopbackListener socket;
    REQUIRE(socket.ok());
    Launch launch;
    launch.listen_fds = {socket.fd()};
    launch.listen_pid_is_child = false;
    launch.notify_socket = notify.name();
    launch.watchdog_usec = "200000";
    launch.watchdog_pid_is_child = false;
    Child child(launch, "");
    expect_ready_first(notify, child);
    const auto all = notify.collect_for(600); // six ping periods
    CHECK_MESSAGE(!has_text(all, "WATCHDOG=1"), describe(all));
    CHECK(child.log().find("event=inherited count=0") != std::string::npos);
    CHECK(child.log().find("watchdog_enabled") == std::string::npos);
    expect_clean_stop(notify, child);
}

// ---- wsbridge itself (proxy/main.cc) under the same fake manager ------------------------------

namespace {

/// $WSBRIDGE_BIN (set by ctest).
std::string wsbridge_bin() {
    const char* bin = std::getenv("WSBRIDGE_BIN");
    REQUIRE_MESSAGE(bin != nullptr, "WSBRIDGE_BIN is not set (run through ctest)");
    return bin;
}

/// A config file listening on `address` (the inherited socket's), one route; removed at the end.
class ConfigFile {
  public:
    explicit ConfigFile(const std::string& address) {
        char dir[] = "/tmp/wsbridge-systemd-XXXXXX";
        REQUIRE(::mkdtemp(dir) != nullptr);
        dir_ = dir;
        path_ = dir_ + "/wsbridge.yaml";
        std::FILE* f = std::fopen(path_.c_str(), "w");
        REQUIRE(f != nullptr);
        const std::string text = "listen:\n  - address: " + address +
                                 "\nadmin: { address: 127.0.0.1:0 }"
                                 "\nroutes:\n  - path: /echo\n    backend: ws://127.0.0.1:9/echo\n";
        std::fwrite(text.data(), 1, text.size(), f);
        std::fclose(f);
    }
    ~ConfigFile() {
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
    }
    ConfigFile(const ConfigFile&) = delete;
    ConfigFile& operator=(const ConfigFile&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string dir_;
    std::string path_;
};

/// Sends `request` to 127.0.0.1:`port` and returns everything read until the peer closes.
std::string fetch_http(std::uint16_t port, const std::string& request) {
    const int fd = proxy::test::connect_loopback(port);
    REQUIRE_MESSAGE(fd >= 0, "connect: ", std::strerror(-fd));
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    std::string got;
    char buf[1024];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) {
        got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got;
}

/// SIGTERM: STOPPING=1 comes, then at most watchdog pings (systemd stops watching once the
/// service is stopping; wsbridge keeps pinging through a long drain); exit 0.
void expect_wsbridge_stop(NotifySocket& notify, Child& child) {
    child.signal(SIGTERM);
    const auto before = notify.collect_until("STOPPING=1", 5000);
    REQUIRE_MESSAGE(has_text(before, "STOPPING=1"), "no STOPPING=1: ", describe(before));
    CHECK(child.wait_exit(5000) == 0);
    for (const auto& m : notify.collect_for(100)) {
        CHECK_MESSAGE((m.text == "WATCHDOG=1" || m.text.starts_with("STATUS=")),
                      "after STOPPING=1: ", m.text);
    }
}

} // namespace

TEST_CASE("wsbridge under systemd: READY once its inherited listener accepts, pings, STATUS, "
          "RELOADING/READY on SIGHUP, STOPPING") {
    NotifySocket notify;
    LoopbackListener claimed;
    LoopbackListener unclaimed;
    REQUIRE(claimed.ok());
    REQUIRE(unclaimed.ok());
    ConfigFile config(claimed.address());
    Launch launch;
    launch.bin = wsbridge_bin();
    launch.args = {"-c", config.path()};
    launch.listen_fds = {claimed.fd(), unclaimed.fd()};
    launch.notify_socket = notify.name();
    launch.watchdog_usec = "600000";  // pings every 300 ms
    Child child(launch, claimed.address());
    claimed.close();
    unclaimed.close();

    expect_ready_first(notify, child);
    const std::string log_at_ready = child.log();
    CHECK(log_at_ready.find("event=listening address=" + claimed.address() +
                            " tls=off inherited=yes") != std::string::npos);
    CHECK(log_at_ready.find("event=unclaimed_socket fd=4 address=" + unclaimed.address()) !=
          std::string::npos);
    // The inherited socket is wsbridge's listener: an HTTP request gets wsbridge's 404.
    const auto answer = fetch_http(claimed.port(), "GET /nope HTTP/1.1\r\nHost: x\r\n"
                                                   "Connection: close\r\n\r\n");
    CHECK(answer.rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK_FALSE(fetch(unclaimed.port()).has_value());

    const auto during = notify.collect_for(1300);
    CHECK_MESSAGE(has_text(during, "STATUS=0 client connection(s), 0 session(s); last reload: none"),
                  describe(during));
    const auto pings = only(during, "WATCHDOG=1");
    CHECK_MESSAGE(pings.size() >= 3, describe(during));
    for (std::size_t i = 1; i < pings.size(); ++i) {
        const auto gap = ms_between(pings[i - 1].at, pings[i].at);
        CHECK_MESSAGE(gap < 600, "gap over WATCHDOG_USEC: ", gap, " ms");
    }

    child.signal(SIGHUP);
    auto reload = notify.collect_until("READY=1", 5000);
    std::erase_if(reload, [](const Message& m) { return m.text == "WATCHDOG=1"; });
    REQUIRE_MESSAGE(reload.size() == 3, describe(reload));
    CHECK(reload[0].text.starts_with("RELOADING=1\nMONOTONIC_USEC="));
    CHECK(reload[1].text == "STATUS=0 client connection(s), 0 session(s); last reload: ok");
    CHECK(reload[2].text == "READY=1");
    // The notifications are counted in /metrics.
    const std::string& log = child.log();
    const auto at = log.find("event=admin_listening address=127.0.0.1:");
    REQUIRE(at != std::string::npos);
    const auto admin = static_cast<std::uint16_t>(
        std::stoi(log.substr(at + std::string("event=admin_listening address=127.0.0.1:").size())));
    const auto metrics = fetch_http(admin, "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                           "Connection: close\r\n\r\n");
    CHECK(metrics.find("wsbridge_systemd_notifications_total{state=\"ready\"} 2\n") !=
          std::string::npos);
    CHECK(metrics.find("wsbridge_systemd_notifications_total{state=\"reloading\"} 1\n") !=
          std::string::npos);
    expect_wsbridge_stop(notify, child);
}

TEST_CASE("wsbridge under systemd: a stalled loop stops the watchdog pings") {
    NotifySocket notify;
    LoopbackListener socket;
    REQUIRE(socket.ok());
    ConfigFile config(socket.address());
    Launch launch;
    launch.bin = wsbridge_bin();
    launch.args = {"-c", config.path()};
    launch.listen_fds = {socket.fd()};
    launch.notify_socket = notify.name();
    launch.watchdog_usec = "400000";  // pings every 200 ms
    launch.stall = "700,1500";        // at 700 ms the loop blocks for 1.5 s
    Child child(launch, socket.address());
    socket.close();

    expect_ready_first(notify, child);
    const auto all = notify.collect_for(3200);
    const auto pings = only(all, "WATCHDOG=1");
    REQUIRE_MESSAGE(pings.size() >= 5, describe(all));
    std::size_t stalls = 0;
    for (std::size_t i = 1; i < pings.size(); ++i) {
        const auto gap = ms_between(pings[i - 1].at, pings[i].at);
        if (gap >= 1400) {
            ++stalls;
        } else {
            CHECK_MESSAGE(gap < 400, "gap over WATCHDOG_USEC outside the stall: ", gap, " ms");
        }
    }
    CHECK_MESSAGE(stalls == 1, describe(all));
    CHECK(child.log().find("event=test_loop_stall block_ms=1500") != std::string::npos);
    expect_wsbridge_stop(notify, child);
}
