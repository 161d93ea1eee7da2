// loadgen: the WebSocket load generator of the wsbridge benchmark (see bench/README.md).
//
//   loadgen echo --url ws://127.0.0.1:PORT/echo [--connections 100] [--size 64]
//                [--duration 10s] [--warmup 2s] [--pipeline 1]
//   loadgen idle --url ws://127.0.0.1:PORT/echo [--connections 8000] [--hold 10s]
//
// One process, one libuv loop. Echo mode keeps `pipeline` messages in flight per connection
// (closed loop: each echo releases the next send), checks every echoed byte against what was
// sent and prints one JSON line with throughput and round-trip latency quantiles. Idle mode
// opens connections, prints "all N open", holds them, closes them and prints JSON.
// Everything is bounded: connection counts, message sizes, and every phase has a deadline.

#include "bench/support/histogram.h"
#include "bench/support/run.h"
#include "bench/support/ws_client.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <uv.h>
#include <vector>

namespace {

using bench::ClientConn;
using bench::Outcome;
namespace ws = proxy::ws;

struct Options {
    std::string mode;
    std::string url;
    std::size_t connections = 0; // 0: the mode's default
    std::size_t size = 64;
    std::uint64_t duration_ms = 10'000;
    std::uint64_t warmup_ms = 2'000;
    std::size_t pipeline = 1;
    std::uint64_t hold_ms = 10'000;
    std::size_t concurrency = 500;          ///< connections opening at once
    std::uint64_t open_timeout_ms = 60'000; ///< deadline for opening all connections
    std::uint64_t close_timeout_ms = 10'000;
};

constexpr std::size_t kMaxConnections = 50'000;
constexpr std::size_t kMaxSize = std::size_t{16} * 1024 * 1024;
constexpr std::size_t kMaxPipeline = 1024;
constexpr std::uint64_t kMaxPhaseMs = 3'600'000;
constexpr std::size_t kSeqBytes = 8; ///< each echo payload starts with its sequence number

void usage() {
    std::fputs("usage: loadgen echo --url ws://127.0.0.1:PORT/PATH [--connections N] [--size B]\n"
               "                    [--duration 10s] [--warmup 2s] [--pipeline K]\n"
               "       loadgen idle --url ws://127.0.0.1:PORT/PATH [--connections N] [--hold 10s]\n"
               "common: [--concurrency 500] [--open-timeout 60s] [--close-timeout 10s]\n",
               stderr);
}

/// "250ms", "10s", "2m" or a bare number of seconds.
std::optional<std::uint64_t> parse_duration_ms(std::string_view text) {
    std::uint64_t value = 0;
    std::size_t i = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
        value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (value > kMaxPhaseMs) {
            return std::nullopt;
        }
    }
    const std::string_view unit = text.substr(i);
    if (i == 0) {
        return std::nullopt;
    }
    if (unit == "ms") {
        return value;
    }
    if (unit.empty() || unit == "s") {
        return value * 1000;
    }
    if (unit == "m") {
        return value * 60'000;
    }
    return std::nullopt;
}

std::optional<std::size_t> parse_count(std::string_view text, std::size_t max) {
    if (text.empty() || text.size() > 9) {
        return std::nullopt;
    }
    std::size_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<std::size_t>(c - '0');
    }
    if (value > max) {
        return std::nullopt;
    }
    return value;
}

std::optional<Options> parse_args(int argc, char** argv) {
    if (argc < 2) {
        return std::nullopt;
    }
    Options o;
    o.mode = argv[1];
    if (o.mode != "echo" && o.mode != "idle") {
        return std::nullopt;
    }
    for (int i = 2; i < argc; i += 2) {
        const std::string_view key = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "loadgen: %s needs a value\n", argv[i]);
            return std::nullopt;
        }
        const std::string_view value = argv[i + 1];
        std::optional<std::uint64_t> ms;
        std::optional<std::size_t> n;
        bool ok = true;
        if (key == "--url") {
            o.url = value;
        } else if (key == "--connections") {
            ok = (n = parse_count(value, kMaxConnections)) && *n > 0 && (o.connections = *n);
        } else if (key == "--size") {
            ok = (n = parse_count(value, kMaxSize)).has_value() && ((o.size = *n), true);
        } else if (key == "--pipeline") {
            ok = (n = parse_count(value, kMaxPipeline)) && *n > 0 && (o.pipeline = *n);
        } else if (key == "--concurrency") {
            ok = (n = parse_count(value, kMaxConnections)) && *n > 0 && (o.concurrency = *n);
        } else if (key == "--duration") {
            ok = (ms = parse_duration_ms(value)) && *ms > 0 && (o.duration_ms = *ms);
        } else if (key == "--warmup") {
            ok = (ms = parse_duration_ms(value)).has_value() && ((o.warmup_ms = *ms), true);
        } else if (key == "--hold") {
            ok = (ms = parse_duration_ms(value)).has_value() && ((o.hold_ms = *ms), true);
        } else if (key == "--open-timeout") {
            ok = (ms = parse_duration_ms(value)) && *ms > 0 && (o.open_timeout_ms = *ms);
        } else if (key == "--close-timeout") {
            ok = (ms = parse_duration_ms(value)) && *ms > 0 && (o.close_timeout_ms = *ms);
        } else {
            std::fprintf(stderr, "loadgen: unknown option %s\n", argv[i]);
            return std::nullopt;
        }
        if (!ok) {
            std::fprintf(stderr, "loadgen: bad value for %s: %s\n", argv[i], argv[i + 1]);
            return std::nullopt;
        }
    }
    if (o.url.empty()) {
        std::fputs("loadgen: --url is required\n", stderr);
        return std::nullopt;
    }
    if (o.connections == 0) {
        o.connections = o.mode == "echo" ? 100 : 8000;
    }
    return o;
}

/// Raises the soft fd limit to the hard limit; returns the resulting soft limit.
rlim_t raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return 0;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

double seconds_between(std::uint64_t from_ns, std::uint64_t to_ns) {
    return static_cast<double>(to_ns - from_ns) / 1e9;
}

bench::RunOptions run_options(const Options& o) {
    bench::RunOptions r;
    r.connections = o.connections;
    r.concurrency = o.concurrency;
    r.open_timeout_ms = o.open_timeout_ms;
    r.close_timeout_ms = o.close_timeout_ms;
    // Echoes longer than sent are caught by the payload check; this only bounds memory.
    r.max_message = std::max<std::uint64_t>(o.size, 1024) + 1;
    return r;
}

/// Closed-loop echo: each connection keeps `pipeline` messages in flight.
class EchoRun final : public bench::Run {
  public:
    EchoRun(uv_loop_t* loop, const Options& options, const bench::Target& target)
        : Run(loop, run_options(options), target), echo_(options), template_(options.size),
          message_(options.size), states_(options.connections) {
        // A fixed, non-trivial pattern after the sequence number, so a relay that reorders,
        // truncates or corrupts bytes is caught.
        for (std::size_t i = 0; i < template_.size(); ++i) {
            template_[i] = static_cast<std::byte>((i * 131 + 17) & 0xFF);
        }
        for (auto& state : states_) {
            state.sent_ns.assign(options.pipeline, 0);
        }
    }

    void print_json() const {
        const double seconds = measure_end_ns_ > measure_begin_ns_
                                   ? seconds_between(measure_begin_ns_, measure_end_ns_)
                                   : 0.0;
        const double rate = seconds > 0 ? static_cast<double>(histogram_.count()) / seconds : 0.0;
        const auto us = [this](double q) {
            return static_cast<double>(histogram_.quantile(q)) / 1000.0;
        };
        std::printf("{\"mode\":\"echo\",\"connections\":%zu,\"opened\":%zu,\"size\":%zu,"
                    "\"pipeline\":%zu,\"messages\":%llu,\"seconds\":%.3f,\"msgs_per_sec\":%.0f,"
                    "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                    "\"max_us\":%.1f,\"sent\":%llu,\"received\":%llu",
                    options_.connections, opened_, echo_.size, echo_.pipeline,
                    static_cast<unsigned long long>(histogram_.count()), seconds, rate, us(0.50),
                    us(0.90), us(0.99), us(0.999), static_cast<double>(histogram_.max()) / 1000.0,
                    static_cast<unsigned long long>(sent_),
                    static_cast<unsigned long long>(received_));
        print_errors_json();
        std::printf("}\n");
        std::fflush(stdout);
    }

  private:
    /// Per-connection echo bookkeeping. Echoes come back in order (one TCP stream each way),
    /// so a ring of send times matches each echo to its message.
    struct EchoState {
        std::vector<std::uint64_t> sent_ns; ///< ring of `pipeline` send times
        std::size_t head = 0;               ///< oldest in-flight message
        std::size_t in_flight = 0;
        std::uint64_t send_seq = 0;
        std::uint64_t recv_seq = 0;
        std::size_t recv_offset = 0; ///< bytes of the current echo seen so far
    };

    static std::byte seq_byte(std::uint64_t seq, std::size_t pos) {
        return static_cast<std::byte>((seq >> (8 * pos)) & 0xFF);
    }

    void on_all_opened() override {
        if (opened_ == 0) {
            close_all();
            return;
        }
        sending_ = true;
        for (auto& conn : conns_) {
            for (std::size_t i = 0; i < echo_.pipeline; ++i) {
                send_next(*conn);
            }
        }
        if (echo_.warmup_ms > 0) {
            phase_ = Phase::Warmup;
            arm(echo_.warmup_ms);
        } else {
            begin_measure();
        }
    }

    void begin_measure() {
        phase_ = Phase::Measuring;
        histogram_.reset();
        measure_begin_ns_ = uv_hrtime();
        arm(echo_.duration_ms);
    }

    void end_measure() {
        if (phase_ == Phase::Measuring) {
            measure_end_ns_ = uv_hrtime();
        }
        sending_ = false;
        close_all(); // Close frames queue behind in-flight messages; their echoes still count
    }

    void on_phase_timer() override {
        if (phase_ == Phase::Warmup) {
            begin_measure();
        } else if (phase_ == Phase::Measuring) {
            end_measure();
        }
    }

    void on_stop_requested() override { end_measure(); }

    void send_next(ClientConn& conn) {
        EchoState& st = states_[conn.id()];
        if (conn.state() != ClientConn::State::Open || st.in_flight == st.sent_ns.size()) {
            return;
        }
        std::copy(template_.begin(), template_.end(), message_.begin());
        for (std::size_t pos = 0; pos < std::min(kSeqBytes, message_.size()); ++pos) {
            message_[pos] = seq_byte(st.send_seq, pos);
        }
        st.sent_ns[(st.head + st.in_flight) % st.sent_ns.size()] = uv_hrtime();
        if (conn.send(ws::Opcode::Binary, message_)) {
            ++st.in_flight;
            ++st.send_seq;
            ++sent_;
        }
    }

    void mismatch(ClientConn& conn, std::string_view kind) {
        conn.abort(Outcome::Aborted, kind); // counted once, in on_closed
    }

    void on_data(ClientConn& conn, std::span<const std::byte> bytes) override {
        EchoState& st = states_[conn.id()];
        if (st.in_flight == 0) {
            mismatch(conn, "unexpected_message");
            return;
        }
        if (st.recv_offset + bytes.size() > template_.size()) {
            mismatch(conn, "echo_too_long");
            return;
        }
        std::size_t i = 0;
        for (; i < bytes.size() && st.recv_offset + i < kSeqBytes; ++i) {
            if (bytes[i] != seq_byte(st.recv_seq, st.recv_offset + i)) {
                mismatch(conn, "echo_out_of_order");
                return;
            }
        }
        if (i < bytes.size() && std::memcmp(bytes.data() + i, template_.data() + st.recv_offset + i,
                                            bytes.size() - i) != 0) {
            mismatch(conn, "echo_corrupt");
            return;
        }
        st.recv_offset += bytes.size();
    }

    void on_message_end(ClientConn& conn) override {
        EchoState& st = states_[conn.id()];
        if (st.in_flight == 0) {
            mismatch(conn, "unexpected_message");
            return;
        }
        if (st.recv_offset != template_.size()) {
            mismatch(conn, "echo_too_short");
            return;
        }
        const std::uint64_t now = uv_hrtime();
        const std::uint64_t sent_at = st.sent_ns[st.head];
        st.head = (st.head + 1) % st.sent_ns.size();
        --st.in_flight;
        ++st.recv_seq;
        st.recv_offset = 0;
        ++received_;
        if (phase_ == Phase::Measuring) {
            histogram_.record(now - sent_at);
        }
        if (sending_) {
            send_next(conn);
        }
    }

    void on_conn_closed(ClientConn& conn, Outcome outcome) override {
        // After a clean closing handshake every message must have come back: the server's
        // Close follows our last echo on the same stream.
        const EchoState& st = states_[conn.id()];
        if (outcome == Outcome::Clean && st.in_flight > 0) {
            count_error("lost_messages", st.in_flight);
        }
    }

    const Options& echo_;
    std::vector<std::byte> template_; ///< the payload pattern (bytes 0-7 become the sequence)
    std::vector<std::byte> message_;
    std::vector<EchoState> states_;
    bench::Histogram histogram_;
    bool sending_ = false;
    std::uint64_t sent_ = 0;
    std::uint64_t received_ = 0;
    std::uint64_t measure_begin_ns_ = 0;
    std::uint64_t measure_end_ns_ = 0;
};

/// Idle connections: open, report, hold, close.
class IdleRun final : public bench::Run {
  public:
    IdleRun(uv_loop_t* loop, const Options& options, const bench::Target& target)
        : Run(loop, run_options(options), target), hold_ms_(options.hold_ms) {}

    void print_json() const {
        const double open_s = open_end_ns_ > 0 ? seconds_between(open_begin_ns_, open_end_ns_) : 0;
        const double hold_s = hold_end_ns_ > 0 ? seconds_between(hold_begin_ns_, hold_end_ns_) : 0;
        std::printf("{\"mode\":\"idle\",\"connections\":%zu,\"opened\":%zu,\"held\":%zu,"
                    "\"open_seconds\":%.3f,\"hold_seconds\":%.3f",
                    options_.connections, opened_, held_, open_s, hold_s);
        print_errors_json();
        std::printf("}\n");
        std::fflush(stdout);
    }

  private:
    void on_all_opened() override {
        if (opened_ == options_.connections && error_count() == 0) {
            std::printf("all %zu open\n", opened_);
        } else {
            std::printf("opened %zu of %zu, %llu errors\n", opened_, options_.connections,
                        static_cast<unsigned long long>(error_count()));
        }
        std::fflush(stdout);
        phase_ = Phase::Holding;
        hold_begin_ns_ = uv_hrtime();
        arm(hold_ms_);
    }

    void end_hold() {
        hold_end_ns_ = uv_hrtime();
        held_ = count_open();
        close_all();
    }

    void on_phase_timer() override { end_hold(); }
    void on_stop_requested() override { end_hold(); }
    void on_data(ClientConn&, std::span<const std::byte>) override {}
    void on_message_end(ClientConn& conn) override {
        conn.abort(Outcome::Aborted, "unexpected_message"); // nobody sends to idle clients
    }

    std::uint64_t hold_ms_;
    std::size_t held_ = 0;
    std::uint64_t hold_begin_ns_ = 0;
    std::uint64_t hold_end_ns_ = 0;
};

template <class R> int run_mode(const Options& options, const bench::Target& target) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    int exit_code = 0;
    {
        R run(&loop, options, target);
        run.start();
        uv_run(&loop, UV_RUN_DEFAULT);
        run.print_json();
        exit_code = run.error_count() == 0 ? 0 : 1;
        run.close_handles();
        uv_run(&loop, UV_RUN_DEFAULT); // close callbacks of the run's own handles
    }
    if (uv_loop_close(&loop) != 0) {
        std::fputs("loadgen: loop not clean at exit\n", stderr);
        return 1;
    }
    return exit_code;
}

} // namespace

int main(int argc, char** argv) {
    const auto options = parse_args(argc, argv);
    if (!options) {
        usage();
        return 2;
    }
    auto target = bench::parse_url(options->url);
    if (!target) {
        std::fprintf(stderr, "loadgen: %s\n", target.error().context.c_str());
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN); // a peer reset must surface as EPIPE, not kill us
    const rlim_t fds = raise_fd_limit();
    if (fds < options->connections + 64) {
        std::fprintf(stderr, "loadgen: fd limit %llu too low for %zu connections\n",
                     static_cast<unsigned long long>(fds), options->connections);
        return 2;
    }
    if (options->mode == "echo") {
        return run_mode<EchoRun>(*options, *target);
    }
    return run_mode<IdleRun>(*options, *target);
}
