#pragma once
// The skeleton shared by the load generator's modes: a set of client WebSocket connections on
// one uv loop, opened with bounded concurrency, driven through timed phases, closed with the
// closing handshake, and errors counted by kind.

#include "bench/support/ws_client.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <uv.h>
#include <vector>

namespace bench {

/// Bounds shared by every mode. Every phase has a deadline, so a run always ends.
struct RunOptions {
    std::size_t connections = 100;
    std::size_t concurrency = 500;           ///< connections opening at once
    std::uint64_t open_timeout_ms = 60'000;  ///< deadline for opening all connections
    std::uint64_t close_timeout_ms = 10'000; ///< deadline for every closing handshake
    std::uint64_t max_message = 1024 * 1024; ///< largest message a connection accepts
};

/// Opens `connections` connections to a target, at most `concurrency` at a time, then hands
/// over to the mode (on_all_opened) and, when the mode calls close_all(), closes them all.
/// One timer serves every phase. SIGINT/SIGTERM end the current phase early; a second signal
/// during closing stops waiting for Close replies. Neither signal handle keeps the loop alive,
/// so uv_run returns once every connection is closed and the timer is stopped.
///
/// Errors are counted by kind: an Outcome name for connections that end other than Clean, the
/// `detail` of connections the run or the mode aborted (Outcome::Aborted with a non-empty
/// detail), and whatever the mode passes to count_error().
///
/// Must outlive uv_run: the connections' uv handles live inside it. Call close_handles() and
/// run the loop again before destroying it.
/// Errors counted by kind ("connect", "handshake", ...).
using ErrorCounts = std::map<std::string, std::uint64_t>;
/// Their sum.
[[nodiscard]] std::uint64_t total_errors(const ErrorCounts& errors);
/// Appends `,"errors":N,"error_kinds":{...}` to stdout.
void print_errors_json(const ErrorCounts& errors);

class Run : public ClientHandler {
  public:
    Run(uv_loop_t* loop, const RunOptions& options, const Target& target);
    ~Run() override = default;
    Run(const Run&) = delete;
    Run& operator=(const Run&) = delete;

    /// Installs the timer and signal handlers and starts opening. Callbacks follow on the loop
    /// (on_all_opened may run synchronously only if every connect fails synchronously).
    void start();
    /// Closes the run's own timer and signal handles; call once uv_run has returned.
    void close_handles();
    /// Total errors of every kind so far.
    [[nodiscard]] std::uint64_t error_count() const;

  protected:
    enum class Phase : std::uint8_t { Idle, Opening, Warmup, Measuring, Holding, Closing, Done };

    /// Every connection is open or has failed (or timed out).
    virtual void on_all_opened() = 0;
    /// The phase timer armed by the mode fired (Opening and Closing deadlines are handled here).
    virtual void on_phase_timer() = 0;
    /// SIGINT or SIGTERM after opening: end the current phase early.
    virtual void on_stop_requested() = 0;
    /// A connection opened (after the run's bookkeeping).
    virtual void on_conn_open(ClientConn& /*conn*/) {}
    /// A connection closed (after its error, if any, was counted).
    virtual void on_conn_closed(ClientConn& /*conn*/, Outcome /*outcome*/) {}

    /// Adds `n` errors of `kind` (a JSON key: snake_case).
    void count_error(std::string_view kind, std::uint64_t n = 1);
    /// (Re)starts the phase timer.
    void arm(std::uint64_t ms);
    /// Enters Closing: sends Close (1000) on every open connection, aborts the unopened ones and
    /// waits at most close_timeout for the rest; then the loop ends.
    void close_all();
    /// Connections currently Open.
    [[nodiscard]] std::size_t count_open() const;
    /// Appends `,"errors":N,"error_kinds":{...}` to stdout.
    void print_errors_json() const;

    uv_loop_t* loop_;
    const RunOptions options_;
    const Target& target_;
    Phase phase_ = Phase::Idle;
    std::vector<std::unique_ptr<ClientConn>> conns_;
    std::size_t opened_ = 0;
    std::uint64_t open_begin_ns_ = 0;
    std::uint64_t open_end_ns_ = 0; ///< 0 until the opening phase ended

  private:
    static void on_timer_cb(uv_timer_t* timer) noexcept;
    static void on_signal_cb(uv_signal_t* sig, int signum) noexcept;
    void on_timer();
    void on_signal();
    void pump();
    void maybe_done();
    void on_open(ClientConn& conn) final;
    void on_closed(ClientConn& conn, Outcome outcome, std::string_view detail) final;

    uv_timer_t timer_{};
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    ErrorCounts errors_;
    std::size_t next_ = 0;       ///< next connection to start
    std::size_t opening_ = 0;    ///< started and not yet open or failed
    std::size_t live_ = 0;       ///< started and not yet closed
    std::vector<bool> was_open_; ///< by connection id: on_open has fired
    int reported_ = 0;           ///< error samples printed on stderr
};

} // namespace bench
