// loadgen: the WebSocket load generator of the wsbridge benchmark (see bench/README.md).
//
//   loadgen echo --url ws://127.0.0.1:PORT/echo [--connections 100] [--size 64]
//                [--duration 10s] [--warmup 2s] [--pipeline 1] [--session 0|1]
//   loadgen idle --url ws://127.0.0.1:PORT/echo [--connections 8000] [--hold 10s] [--echo 0|1]
//                [--session 0|1]
//   loadgen handshake --url wss://127.0.0.1:PORT/ [--connections 4] [--duration 10s]
//                [--warmup 2s] [--resume 0|1]
//   wss:// URLs: [--tls-ciphersuites TLS_AES_128_GCM_SHA256] [--tls-groups X25519]
//
// One process, one libuv loop. Echo mode keeps `pipeline` messages in flight per connection
// (closed loop: each echo releases the next send), checks every echoed byte against what was
// sent and prints one JSON line with throughput and round-trip latency quantiles. Idle mode
// opens connections (with --echo 1, each then echoes one message), prints "all N open", holds
// them, closes them and prints JSON. Handshake mode (wss:// only) keeps `connections` TLS
// handshakes in flight, each connection closing (close_notify, FIN) right after its handshake,
// and prints handshakes per second; with --resume 1 every connection offers the latest session
// ticket (TLS 1.3 PSK resumption).
// With --session 1 (echo and idle) every connection is a wsbridge session over WebSocket
// (subprotocol wsbridge.session.v1, bench/support/ws_client.h): the kind byte is added and
// stripped, control messages are consumed, an `ack` goes out every 64 messages, and the end of
// the run closes the sessions with the `close` control (echo: once each connection's messages
// in flight came back).
// Everything is bounded: connection counts, message sizes, and every phase has a deadline.

#include "bench/support/histogram.h"
#include "bench/support/run.h"
#include "bench/support/tls.h"
#include "bench/support/ws_client.h"

#include <algorithm>
#include <array>
#include <map>
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
    bool echo_once = false; ///< idle: each connection echoes one message before the hold
    bool resume = false;    ///< handshake: offer the latest session ticket
    bool session = false;   ///< echo, idle: wsbridge sessions over WebSocket
    bench::TlsOptions tls;
};

constexpr std::size_t kMaxConnections = 50'000;
constexpr std::size_t kMaxSize = std::size_t{16} * 1024 * 1024;
constexpr std::size_t kMaxPipeline = 1024;
constexpr std::uint64_t kMaxPhaseMs = 3'600'000;
constexpr std::size_t kSeqBytes = 8; ///< each echo payload starts with its sequence number

void usage() {
    std::fputs("usage: loadgen echo --url ws://127.0.0.1:PORT/PATH [--connections N] [--size B]\n"
               "                    [--duration 10s] [--warmup 2s] [--pipeline K] [--session 0|1]\n"
               "       loadgen idle --url ws://127.0.0.1:PORT/PATH [--connections N] [--hold 10s]\n"
               "                    [--echo 0|1] [--session 0|1]\n"
               "       loadgen handshake --url wss://127.0.0.1:PORT/ [--connections 4]\n"
               "                    [--duration 10s] [--warmup 2s] [--resume 0|1]\n"
               "common: [--concurrency 500] [--open-timeout 60s] [--close-timeout 10s]\n"
               "wss://: [--tls-ciphersuites TLS_AES_128_GCM_SHA256] [--tls-groups X25519]\n",
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
    if (o.mode != "echo" && o.mode != "idle" && o.mode != "handshake") {
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
        } else if (key == "--echo" || key == "--resume") {
            ok = value == "0" || value == "1";
            (key == "--echo" ? o.echo_once : o.resume) = value == "1";
        } else if (key == "--session") {
            ok = (value == "0" || value == "1") && o.mode != "handshake";
            o.session = value == "1";
        } else if (key == "--tls-ciphersuites") {
            o.tls.ciphersuites = value;
        } else if (key == "--tls-groups") {
            o.tls.groups = value;
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
        o.connections = o.mode == "echo" ? 100 : o.mode == "idle" ? 8000 : 4;
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
                    "\"max_us\":%.1f,\"sent\":%llu,\"received\":%llu,\"session\":%s",
                    options_.connections, opened_, echo_.size, echo_.pipeline,
                    static_cast<unsigned long long>(histogram_.count()), seconds, rate, us(0.50),
                    us(0.90), us(0.99), us(0.999), static_cast<double>(histogram_.max()) / 1000.0,
                    static_cast<unsigned long long>(sent_),
                    static_cast<unsigned long long>(received_), echo_.session ? "true" : "false");
        if (!conns_.empty() && !conns_[0]->tls_cipher().empty()) {
            std::printf(",\"tls_cipher\":\"%s\"", conns_[0]->tls_cipher().c_str());
        }
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
        if (echo_.session) {
            // The `close` control ends the session, and the proxy need not deliver what the
            // backend echoes after it: wait (at most close_timeout) for the echoes in flight.
            draining_ = true;
            phase_ = Phase::Holding;
            arm(options_.close_timeout_ms);
            maybe_drained();
            return;
        }
        close_all(); // Close frames queue behind in-flight messages; their echoes still count
    }

    void maybe_drained() {
        for (const auto& conn : conns_) {
            if (conn->state() == ClientConn::State::Open && states_[conn->id()].in_flight > 0) {
                return;
            }
        }
        draining_ = false;
        close_all();
    }

    void on_phase_timer() override {
        if (phase_ == Phase::Warmup) {
            begin_measure();
        } else if (phase_ == Phase::Measuring) {
            end_measure();
        } else if (draining_) {
            draining_ = false;
            close_all(); // what is still in flight counts as lost_messages
        }
    }

    void on_stop_requested() override {
        if (draining_) {
            draining_ = false;
            close_all();
        } else {
            end_measure();
        }
    }

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
        } else if (draining_ && st.in_flight == 0) {
            maybe_drained();
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
    bool draining_ = false; ///< session mode: waiting for the last echoes before closing
    std::uint64_t sent_ = 0;
    std::uint64_t received_ = 0;
    std::uint64_t measure_begin_ns_ = 0;
    std::uint64_t measure_end_ns_ = 0;
};

/// Idle connections: open, report, hold, close.
class IdleRun final : public bench::Run {
  public:
    IdleRun(uv_loop_t* loop, const Options& options, const bench::Target& target)
        : Run(loop, run_options(options), target), hold_ms_(options.hold_ms),
          echo_once_(options.echo_once), awaiting_(options.connections, false) {}

    void print_json() const {
        const double open_s = open_end_ns_ > 0 ? seconds_between(open_begin_ns_, open_end_ns_) : 0;
        const double hold_s = hold_end_ns_ > 0 ? seconds_between(hold_begin_ns_, hold_end_ns_) : 0;
        std::printf("{\"mode\":\"idle\",\"connections\":%zu,\"opened\":%zu,\"held\":%zu,"
                    "\"open_seconds\":%.3f,\"hold_seconds\":%.3f,\"session\":%s",
                    options_.connections, opened_, held_, open_s, hold_s,
                    target_.session ? "true" : "false");
        if (echo_once_) {
            std::printf(",\"echoed\":%zu", echoed_);
        }
        if (!conns_.empty() && !conns_[0]->tls_cipher().empty()) {
            std::printf(",\"tls_cipher\":\"%s\"", conns_[0]->tls_cipher().c_str());
        }
        print_errors_json();
        std::printf("}\n");
        std::fflush(stdout);
    }

  private:
    void on_all_opened() override {
        if (!echo_once_) {
            begin_hold();
            return;
        }
        // One echo per connection (the proxy allocates what a message needs), then the hold.
        phase_ = Phase::Warmup;
        static const std::array<std::byte, 64> kMessage{};
        for (auto& conn : conns_) {
            if (conn->state() == ClientConn::State::Open &&
                conn->send(ws::Opcode::Binary, kMessage)) {
                awaiting_[conn->id()] = true;
                ++pending_;
            }
        }
        if (pending_ == 0) {
            begin_hold();
        } else {
            arm(options_.open_timeout_ms);
        }
    }

    void echoed(ClientConn& conn) {
        if (!awaiting_[conn.id()]) {
            return;
        }
        awaiting_[conn.id()] = false;
        --pending_;
        if (pending_ == 0 && phase_ == Phase::Warmup) {
            begin_hold();
        }
    }

    void on_conn_closed(ClientConn& conn, Outcome) override { echoed(conn); }

    void begin_hold() {
        if (opened_ == options_.connections && error_count() == 0 &&
            (!echo_once_ || echoed_ == opened_)) {
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

    void on_phase_timer() override {
        if (phase_ == Phase::Warmup) {
            count_error("echo_timeout", pending_);
            begin_hold();
        } else {
            end_hold();
        }
    }
    void on_stop_requested() override { end_hold(); }
    void on_data(ClientConn&, std::span<const std::byte>) override {}
    void on_message_end(ClientConn& conn) override {
        if (!awaiting_[conn.id()]) {
            conn.abort(Outcome::Aborted, "unexpected_message"); // nobody else sends to idle clients
            return;
        }
        ++echoed_;
        echoed(conn);
    }

    std::uint64_t hold_ms_;
    bool echo_once_;
    std::vector<bool> awaiting_; ///< by connection id: its one echo is due
    std::size_t pending_ = 0;
    std::size_t echoed_ = 0;
    std::size_t held_ = 0;
    std::uint64_t hold_begin_ns_ = 0;
    std::uint64_t hold_end_ns_ = 0;
};

/// TLS handshakes back to back: `connections` in flight, each closing right after its handshake
/// (close_notify and FIN, then reading the session tickets until the server's EOF) and replaced
/// at once by a new one. Counts completed handshakes, and resumed ones, in the measurement
/// window; latency is from the TCP connect to the completed handshake.
class HandshakeRun final : public bench::ClientHandler {
  public:
    HandshakeRun(uv_loop_t* loop, const Options& options, const bench::Target& target)
        : loop_(loop), options_(options), target_(target), slots_(options.connections) {}

    void start() {
        uv_timer_init(loop_, &timer_);
        timer_.data = this;
        uv_signal_init(loop_, &sigint_);
        sigint_.data = this;
        uv_signal_start(&sigint_, on_signal_cb, SIGINT);
        uv_unref(reinterpret_cast<uv_handle_t*>(&sigint_));
        running_ = true;
        for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
            launch(slot);
        }
        if (options_.warmup_ms > 0) {
            phase_ = Phase::Warmup;
            uv_timer_start(&timer_, on_timer_cb, options_.warmup_ms, 0);
        } else {
            begin_measure();
        }
    }

    void close_handles() {
        uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
    }


    [[nodiscard]] std::uint64_t error_count() const { return bench::total_errors(errors_); }

    void print_json() const {
        const double seconds = end_ns_ > begin_ns_ ? seconds_between(begin_ns_, end_ns_) : 0.0;
        const auto us = [this](double q) {
            return static_cast<double>(histogram_.quantile(q)) / 1000.0;
        };
        std::printf("{\"mode\":\"handshake\",\"connections\":%zu,\"resume\":%d,"
                    "\"handshakes\":%llu,\"resumed\":%llu,\"seconds\":%.3f,"
                    "\"handshakes_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                    "\"tickets\":%llu,\"tls_cipher\":\"%s\"",
                    options_.connections, options_.resume ? 1 : 0,
                    static_cast<unsigned long long>(done_),
                    static_cast<unsigned long long>(resumed_), seconds,
                    seconds > 0 ? static_cast<double>(done_) / seconds : 0.0, us(0.5), us(0.99),
                    target_.tls->tickets(), cipher_.c_str());
        bench::print_errors_json(errors_);
        std::printf("}\n");
        std::fflush(stdout);
    }

  private:
    enum class Phase : std::uint8_t { Warmup, Measuring, Draining };

    static void on_timer_cb(uv_timer_t* timer) noexcept {
        static_cast<HandshakeRun*>(timer->data)->on_timer();
    }
    static void on_signal_cb(uv_signal_t* sig, int) noexcept {
        static_cast<HandshakeRun*>(sig->data)->end_measure();
    }

    void launch(std::size_t slot) {
        auto conn = std::make_unique<ClientConn>(loop_, target_, *this, slot, 1024);
        conn->set_handshake_only();
        if (auto r = conn->start(); !r) {
            ++errors_["start_" + r.error().context];
            graveyard_.push_back(std::move(conn)); // closes on the loop; no callback
            return;
        }
        slots_[slot] = std::move(conn);
        ++live_;
    }

    void begin_measure() {
        phase_ = Phase::Measuring;
        done_ = 0;
        resumed_ = 0;
        histogram_.reset();
        begin_ns_ = uv_hrtime();
        uv_timer_start(&timer_, on_timer_cb, options_.duration_ms, 0);
    }

    void end_measure() {
        if (phase_ == Phase::Draining) {
            return;
        }
        if (phase_ == Phase::Measuring) {
            end_ns_ = uv_hrtime();
        }
        phase_ = Phase::Draining;
        running_ = false;
        uv_signal_stop(&sigint_);
        if (live_ == 0) {
            uv_timer_stop(&timer_);
        } else {
            uv_timer_start(&timer_, on_timer_cb, options_.close_timeout_ms, 0);
        }
    }

    void on_timer() {
        if (phase_ == Phase::Warmup) {
            begin_measure();
        } else if (phase_ == Phase::Measuring) {
            end_measure();
        } else {
            for (auto& conn : slots_) {
                if (conn && conn->state() != ClientConn::State::Closed) {
                    conn->abort(Outcome::Aborted, "close_timeout");
                }
            }
        }
    }

    void on_open(ClientConn&) override {}
    void on_data(ClientConn&, std::span<const std::byte>) override {}
    void on_message_end(ClientConn&) override {}

    void on_closed(ClientConn& conn, Outcome outcome, std::string_view detail) override {
        graveyard_.clear(); // earlier connections, past their last callback
        const std::size_t slot = conn.id();
        --live_;
        if (outcome == Outcome::Clean && conn.tls_established()) {
            if (phase_ == Phase::Measuring) {
                ++done_;
                resumed_ += conn.tls_resumed() ? 1 : 0;
                histogram_.record(conn.tls_handshake_ns());
            }
            if (cipher_.empty()) {
                cipher_ = conn.tls_cipher();
            }
        } else if (phase_ != Phase::Draining || outcome != Outcome::Aborted) {
            std::string kind(bench::to_string(outcome));
            if (outcome == Outcome::Aborted && !detail.empty()) {
                kind = detail;
            }
            if (reported_ < 5) {
                ++reported_;
                std::fprintf(stderr, "loadgen: handshake connection %zu: %s %.*s\n", slot,
                             kind.c_str(), static_cast<int>(detail.size()), detail.data());
            }
            ++errors_[kind];
        }
        graveyard_.push_back(std::move(slots_[slot])); // still inside its callback
        if (running_) {
            launch(slot);
        } else if (live_ == 0) {
            uv_timer_stop(&timer_);
        }
    }

    uv_loop_t* loop_;
    const Options& options_;
    const bench::Target& target_;
    std::vector<std::unique_ptr<ClientConn>> slots_;
    std::vector<std::unique_ptr<ClientConn>> graveyard_;
    uv_timer_t timer_{};
    uv_signal_t sigint_{};
    Phase phase_ = Phase::Warmup;
    bool running_ = false;
    std::size_t live_ = 0;
    std::uint64_t done_ = 0;
    std::uint64_t resumed_ = 0;
    std::uint64_t begin_ns_ = 0;
    std::uint64_t end_ns_ = 0;
    bench::Histogram histogram_;
    std::string cipher_;
    bench::ErrorCounts errors_;
    int reported_ = 0;
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
    auto options = parse_args(argc, argv);
    if (!options) {
        usage();
        return 2;
    }
    auto target = bench::parse_url(options->url);
    if (!target) {
        std::fprintf(stderr, "loadgen: %s\n", target.error().context.c_str());
        return 2;
    }
    std::unique_ptr<bench::TlsClientContext> tls;
    if (target->wss) {
        options->tls.resume = options->resume;
        auto created = bench::TlsClientContext::create(options->tls);
        if (!created) {
            std::fprintf(stderr, "loadgen: %s\n", created.error().context.c_str());
            return 2;
        }
        tls = std::move(*created);
        target->tls = tls.get();
    } else if (options->mode == "handshake") {
        std::fputs("loadgen: handshake mode needs a wss:// url\n", stderr);
        return 2;
    }
    target->session = options->session;
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
    if (options->mode == "handshake") {
        return run_mode<HandshakeRun>(*options, *target);
    }
    return run_mode<IdleRun>(*options, *target);
}
