#include "bench/support/run.h"

#include <algorithm>
#include <csignal>
#include <cstdio>

namespace bench {

namespace {

/// Error samples printed on stderr per run; the JSON has the full counts.
constexpr int kMaxReported = 5;

} // namespace

Run::Run(uv_loop_t* loop, const RunOptions& options, const Target& target)
    : loop_(loop), options_(options), target_(target) {}

void Run::start() {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    for (uv_signal_t* sig : {&sigint_, &sigterm_}) {
        uv_signal_init(loop_, sig);
        sig->data = this;
        uv_signal_start(sig, on_signal_cb, sig == &sigint_ ? SIGINT : SIGTERM);
        uv_unref(reinterpret_cast<uv_handle_t*>(sig)); // never keeps the loop alive
    }
    conns_.reserve(options_.connections);
    was_open_.assign(options_.connections, false);
    for (std::size_t i = 0; i < options_.connections; ++i) {
        conns_.push_back(
            std::make_unique<ClientConn>(loop_, target_, *this, i, options_.max_message));
    }
    open_begin_ns_ = uv_hrtime();
    phase_ = Phase::Opening;
    arm(options_.open_timeout_ms);
    pump();
}

void Run::close_handles() {
    for (auto* h :
         {reinterpret_cast<uv_handle_t*>(&timer_), reinterpret_cast<uv_handle_t*>(&sigint_),
          reinterpret_cast<uv_handle_t*>(&sigterm_)}) {
        if (h->loop != nullptr && !uv_is_closing(h)) {
            uv_close(h, nullptr);
        }
    }
}

std::uint64_t total_errors(const ErrorCounts& errors) {
    std::uint64_t total = 0;
    for (const auto& [kind, count] : errors) {
        total += count;
    }
    return total;
}

void print_errors_json(const ErrorCounts& errors) {
    std::printf(",\"errors\":%llu,\"error_kinds\":{",
                static_cast<unsigned long long>(total_errors(errors)));
    bool first = true;
    for (const auto& [kind, count] : errors) {
        std::printf("%s\"%s\":%llu", first ? "" : ",", kind.c_str(),
                    static_cast<unsigned long long>(count));
        first = false;
    }
    std::printf("}");
}

std::uint64_t Run::error_count() const { return total_errors(errors_); }

void Run::count_error(std::string_view kind, std::uint64_t n) { errors_[std::string(kind)] += n; }

void Run::arm(std::uint64_t ms) { uv_timer_start(&timer_, on_timer_cb, ms, 0); }

void Run::close_all() {
    phase_ = Phase::Closing;
    uv_timer_stop(&timer_);
    for (auto& conn : conns_) {
        if (conn->state() == ClientConn::State::Open) {
            conn->close(proxy::ws::close_code::kNormal);
        } else if (conn->state() != ClientConn::State::Closing) {
            conn->abort(Outcome::Aborted, "closed_before_open");
        }
    }
    arm(options_.close_timeout_ms);
    maybe_done();
}

std::size_t Run::count_open() const {
    return static_cast<std::size_t>(std::count_if(conns_.begin(), conns_.end(), [](auto& c) {
        return c->state() == ClientConn::State::Open;
    }));
}

void Run::print_errors_json() const { bench::print_errors_json(errors_); }

void Run::on_timer_cb(uv_timer_t* timer) noexcept {
    if (auto* self = static_cast<Run*>(timer->data)) {
        self->on_timer();
    }
}

void Run::on_signal_cb(uv_signal_t* sig, int /*signum*/) noexcept {
    if (auto* self = static_cast<Run*>(sig->data)) {
        self->on_signal();
    }
}

void Run::on_timer() {
    if (phase_ == Phase::Opening) {
        // Connections still opening, and those never started, count as open_timeout.
        for (auto& conn : conns_) {
            const auto state = conn->state();
            if (state == ClientConn::State::Connecting || state == ClientConn::State::Handshaking) {
                conn->abort(Outcome::Aborted, "open_timeout");
            }
        }
        if (next_ < conns_.size()) {
            count_error("open_timeout", conns_.size() - next_);
            next_ = conns_.size();
        }
        pump(); // ends the phase now if nothing was still opening
    } else if (phase_ == Phase::Closing) {
        for (auto& conn : conns_) {
            conn->abort(Outcome::Aborted, "close_timeout");
        }
    } else {
        on_phase_timer();
    }
}

void Run::on_signal() {
    if (phase_ == Phase::Closing) { // a second signal: stop waiting for Close replies
        for (auto& conn : conns_) {
            conn->abort(Outcome::Aborted, "");
        }
    } else if (phase_ == Phase::Opening) {
        close_all();
    } else if (phase_ != Phase::Done && phase_ != Phase::Idle) {
        on_stop_requested();
    }
}

void Run::pump() {
    while (phase_ == Phase::Opening && opening_ < options_.concurrency && next_ < conns_.size()) {
        ClientConn& conn = *conns_[next_++];
        if (auto started = conn.start(); !started) {
            count_error("connect_" + started.error().context); // e.g. connect_EMFILE
            continue;
        }
        ++opening_;
        ++live_;
    }
    if (phase_ == Phase::Opening && opening_ == 0 && next_ == conns_.size()) {
        open_end_ns_ = uv_hrtime();
        uv_timer_stop(&timer_);
        on_all_opened();
    }
}

void Run::on_open(ClientConn& conn) {
    --opening_;
    ++opened_;
    was_open_[conn.id()] = true;
    on_conn_open(conn);
    pump();
}

void Run::on_closed(ClientConn& conn, Outcome outcome, std::string_view detail) {
    --live_;
    if (outcome == Outcome::Aborted) {
        if (!detail.empty()) {
            count_error(detail);
        }
    } else if (outcome != Outcome::Clean) {
        count_error(to_string(outcome));
        if (reported_++ < kMaxReported) {
            std::fprintf(stderr, "loadgen: connection %zu: %s %.*s\n", conn.id(),
                         std::string(to_string(outcome)).c_str(), static_cast<int>(detail.size()),
                         detail.data());
        }
    }
    on_conn_closed(conn, outcome);
    if (!was_open_[conn.id()]) { // it failed while opening: make room for the next one
        --opening_;
        pump();
    }
    maybe_done();
}

void Run::maybe_done() {
    if (phase_ == Phase::Closing && live_ == 0) {
        phase_ = Phase::Done;
        uv_timer_stop(&timer_); // nothing else is referenced: uv_run returns
    }
}

} // namespace bench
