// session_load: the client side of the session benchmark (see bench/SESSIONS.md).
//
//   session_load ws|sse|longpoll --url http://127.0.0.1:PORT/push [--connections 50]
//                [--duration 10s] [--warmup 2s] [--size 64]
//   session_load idle-sse --url http://127.0.0.1:PORT/push [--connections 4000] [--hold 10s]
//   session_load mux-sse --url http://127.0.0.1:PORT/push [--connections 1000] [--per-stream 100]
//                [--duration 10s] [--warmup 2s] [--size 64]
//   session_load idle-mux-sse --url http://127.0.0.1:PORT/push [--connections 4000]
//                [--per-stream 100] [--hold 10s]
//   session_load selftest
//   common: [--concurrency 200] [--open-timeout 60s] [--close-timeout 10s]
//
// N sessions on one libuv loop receive the stream of bench/push_backend.cc through the proxy,
// over a WebSocket (bench/support/ws_client.h), an SSE stream (GET with Accept:
// text/event-stream) or long-polling (open, then one outstanding `?session=S&ack=N` poll per
// session), following docs/protocol.md. Every message is checked: its sequence number must be
// the next one of the session (and equal to the proxy's SSE id or long-poll seq), its size and
// padding exact. Latency is the receive time minus the send time in the payload (both
// CLOCK_MONOTONIC on this machine). One JSON line reports the measured window after warm-up.
// Sessions end cleanly: WebSocket Close handshake; SSE and long-poll `DELETE ?session=S`.
// idle-sse opens N SSE sessions (at most --concurrency at a time), prints "all N open", holds
// them until --hold passes or SIGINT/SIGTERM, closes them and prints JSON.
// mux-sse and idle-mux-sse do the same with the sessions carried --per-stream at a time on
// multiplexed SSE streams (docs/protocol.md "Many sessions on one connection"): each session
// is opened with `GET ?transport=longpoll` on a connection of its own (closed after the
// answer), then every group of --per-stream sessions is listed on one `GET ?transport=mux&
// session=S.0&…` stream; each message event's seq is checked against the payload's, and after its
// DELETE each session's `close` event must come on its stream.
//
// About 1,400 lines, past STYLE §9's 800, for a stated reason: bench/CMakeLists.txt builds
// every bench/*.cc as a program and bench/support/ was being changed for loadgen while this was
// written, so the HTTP client, the SSE and poll parsers and the runner live here. They split
// cleanly (HttpConn, SseParser, parse_poll, Runner) should they move to bench/support/ later.

#include "bench/support/histogram.h"
#include "bench/support/ws_client.h"
#include "proxy/http/parser.h"

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <unordered_map>
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
using proxy::http::Response;

enum class Mode : std::uint8_t { Ws, Sse, LongPoll, IdleSse, MuxSse, IdleMuxSse };

bool idle_mode(Mode m) { return m == Mode::IdleSse || m == Mode::IdleMuxSse; }
bool mux_mode(Mode m) { return m == Mode::MuxSse || m == Mode::IdleMuxSse; }

struct Options {
    Mode mode = Mode::Ws;
    std::string mode_name;
    std::string url;
    std::size_t connections = 0; // 0: the mode's default
    std::size_t size = 64;
    std::uint64_t duration_ms = 10'000;
    std::uint64_t warmup_ms = 2'000;
    std::uint64_t hold_ms = 10'000;
    std::size_t concurrency = 200;
    std::size_t per_stream = 100; ///< sessions per multiplexed stream (mux modes)
    std::uint64_t open_timeout_ms = 60'000;
    std::uint64_t close_timeout_ms = 10'000;
};

constexpr std::size_t kMaxConnections = 50'000;
constexpr std::size_t kMaxBody = std::size_t{64} << 20; ///< largest poll answer accepted
constexpr std::size_t kMaxLine = std::size_t{1} << 20;  ///< longest SSE line accepted
constexpr int kMaxReported = 5;                         ///< error samples printed on stderr

std::uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Decimal digits at the start of `text` (at most 19); advances `text` past them.
std::optional<std::uint64_t> take_number(std::string_view& text) {
    std::uint64_t value = 0;
    std::size_t i = 0;
    for (; i < text.size() && i < 19 && text[i] >= '0' && text[i] <= '9'; ++i) {
        value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    }
    if (i == 0) {
        return std::nullopt;
    }
    text.remove_prefix(i);
    return value;
}

/// What a push_backend payload says about itself: "<send ns> <seq> " then padding.
struct Stamp {
    std::uint64_t sent_ns = 0;
    std::uint64_t seq = 0;
    std::size_t padding_at = 0;
};

std::optional<Stamp> parse_stamp(std::string_view text) {
    std::string_view rest = text;
    Stamp s;
    const auto ts = take_number(rest);
    if (!ts || rest.empty() || rest[0] != ' ') {
        return std::nullopt;
    }
    rest.remove_prefix(1);
    const auto seq = take_number(rest);
    if (!seq || rest.empty() || rest[0] != ' ') {
        return std::nullopt;
    }
    s.sent_ns = *ts;
    s.seq = *seq;
    s.padding_at = text.size() - rest.size() + 1;
    return s;
}

/// The JSON string value after `"key":"` in `text` (no escapes expected: ids and URLs).
std::optional<std::string_view> json_string(std::string_view text, std::string_view key) {
    const std::string pattern = "\"" + std::string(key) + "\":\"";
    const std::size_t at = text.find(pattern);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t begin = at + pattern.size();
    const std::size_t end = text.find('"', begin);
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    return text.substr(begin, end - begin);
}

// ---- SSE ---------------------------------------------------------------------------------

/// One dispatched event. Views are valid during the callback only.
struct SseEvent {
    std::string_view type; ///< "message" unless an `event:` field said otherwise
    std::string_view data; ///< data lines joined by LF, the final LF removed
    std::string_view id;   ///< the `id:` field of this event ("" when none)
};

/// Incremental parser for the WHATWG event stream (HTML "event stream interpretation"), cut to
/// what the benchmark needs: lines end in LF or CRLF (the proxy writes LF only, and never a
/// bare CR), fields `event`, `data`, `id`; `retry` and unknown fields are ignored; comment
/// lines are counted. Any split of the input gives the same events (checked by selftest).
class SseParser {
  public:
    using Sink = std::function<void(const SseEvent&)>;
    /// Feeds bytes; returns false when a line exceeds kMaxLine (the stream is then unusable).
    bool feed(std::string_view bytes, const Sink& sink) {
        while (!bytes.empty()) {
            const std::size_t lf = bytes.find('\n');
            if (lf == std::string_view::npos) {
                partial_.append(bytes);
                return partial_.size() <= kMaxLine;
            }
            if (partial_.empty()) {
                line(bytes.substr(0, lf), sink);
            } else {
                partial_.append(bytes.substr(0, lf));
                line(partial_, sink);
                partial_.clear();
            }
            bytes.remove_prefix(lf + 1);
        }
        return true;
    }
    [[nodiscard]] std::uint64_t comments() const { return comments_; }

  private:
    void line(std::string_view l, const Sink& sink) {
        if (!l.empty() && l.back() == '\r') {
            l.remove_suffix(1);
        }
        if (l.empty()) {
            if (has_data_) {
                SseEvent e{type_.empty() ? std::string_view("message") : type_, data_, id_};
                if (!e.data.empty() && e.data.back() == '\n') {
                    e.data.remove_suffix(1);
                }
                sink(e);
            }
            type_.clear();
            data_.clear();
            id_.clear();
            has_data_ = false;
            return;
        }
        if (l[0] == ':') {
            ++comments_;
            return;
        }
        const std::size_t colon = l.find(':');
        const std::string_view field = l.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') {
            value.remove_prefix(1);
        }
        if (field == "data") {
            data_.append(value).push_back('\n');
            has_data_ = true;
        } else if (field == "event") {
            type_ = value;
        } else if (field == "id" && value.find('\0') == std::string_view::npos) {
            id_ = value;
        }
    }

    std::string partial_;
    std::string type_;
    std::string data_;
    std::string id_;
    bool has_data_ = false;
    std::uint64_t comments_ = 0;
};

// ---- long-poll answers -------------------------------------------------------------------

/// A poll answer as docs/protocol.md writes it: {"reset":..,"gap":..,"messages":[..],"close":..}
/// with keys in that order and no whitespace. Text views point into the body.
struct PollAnswer {
    bool malformed = false;
    bool reset = false;
    bool gap = false;
    bool close = false;
    std::uint64_t binary = 0;
    std::vector<std::pair<std::uint64_t, std::string_view>> texts;
};

PollAnswer parse_poll(std::string_view body) {
    PollAnswer a;
    const std::size_t list = body.find("\"messages\":[");
    if (list == std::string_view::npos) {
        a.malformed = true;
        return a;
    }
    a.reset = body.substr(0, list).find("\"reset\":") != std::string_view::npos;
    a.gap = body.substr(0, list).find("\"gap\":") != std::string_view::npos;
    std::string_view rest = body.substr(list + 12);
    auto eat = [&rest](std::string_view token) {
        if (rest.substr(0, token.size()) != token) {
            return false;
        }
        rest.remove_prefix(token.size());
        return true;
    };
    while (!rest.empty() && rest[0] != ']') {
        std::optional<std::uint64_t> seq;
        if (!eat("{\"seq\":") || !(seq = take_number(rest))) {
            a.malformed = true;
            return a;
        }
        const bool text = eat(",\"text\":\"");
        if (!text && !eat(",\"binary\":\"")) {
            a.malformed = true;
            return a;
        }
        std::size_t end = 0; // the closing quote: skip escaped characters
        while (end < rest.size() && rest[end] != '"') {
            end += rest[end] == '\\' ? 2 : 1;
        }
        if (end >= rest.size()) {
            a.malformed = true;
            return a;
        }
        if (text) {
            a.texts.emplace_back(*seq, rest.substr(0, end));
        } else {
            ++a.binary;
        }
        rest.remove_prefix(end + 1);
        if (!eat("}")) {
            a.malformed = true;
            return a;
        }
        eat(",");
    }
    if (!eat("]")) {
        a.malformed = true;
        return a;
    }
    a.close = rest.substr(0, 9) == ",\"close\":";
    return a;
}

// ---- a minimal HTTP/1.1 client connection -------------------------------------------------

class HttpConn;

/// Events of one HttpConn; all fire on the loop, never inside an HttpConn call by the owner.
class HttpHandler {
  public:
    virtual ~HttpHandler() = default;
    virtual void on_http_connected(HttpConn& conn) = 0;
    /// The response head (validated by proxy::http::ResponseParser, strict llhttp).
    virtual void on_http_head(HttpConn& conn, const Response& head) = 0;
    virtual void on_http_body(HttpConn& conn, std::string_view bytes) = 0;
    /// A Content-Length body is complete (keep-alive: the next request may follow).
    virtual void on_http_end(HttpConn& conn) = 0;
    /// The socket is closed; `error` is "" after close() or EOF between responses or at the
    /// end of a body delimited by the close, else an error kind.
    virtual void on_http_closed(HttpConn& conn, std::string_view error) = 0;
};

// One loop, one thread: every read is consumed before the next one is allocated.
std::array<char, std::size_t{64} * 1024> http_read_buffer;

/// One TCP connection carrying sequential requests. Must outlive its handle (close callback).
class HttpConn {
  public:
    HttpConn(uv_loop_t* loop, const bench::Target& target, HttpHandler& handler)
        : loop_(loop), target_(target), handler_(handler) {}
    ~HttpConn() {
        if (handle_open_) {
            std::fputs("session_load: HttpConn destroyed with an open handle\n", stderr);
            std::abort();
        }
    }
    HttpConn(const HttpConn&) = delete;
    HttpConn& operator=(const HttpConn&) = delete;

    /// Starts connecting. False when that failed at once; no callback fires then.
    bool start() {
        if (uv_tcp_init(loop_, &tcp_) != 0) {
            return false;
        }
        handle_open_ = true;
        tcp_.data = this;
        connect_.data = this;
        if (uv_tcp_connect(&connect_, &tcp_, reinterpret_cast<const sockaddr*>(&target_.address),
                           on_connect_cb) != 0) {
            notify_ = false;
            finish("");
            return false;
        }
        return true;
    }
    /// Sends a request; its response is parsed next.
    void send(const std::string& request) {
        if (closed_) {
            return;
        }
        parser_ = std::make_unique<proxy::http::ResponseParser>();
        in_body_ = false;
        auto* w = new WriteReq{uv_write_t{}, this, request};
        w->req.data = w;
        uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
        if (uv_write(&w->req, stream(), &buf, 1, on_write_cb) != 0) {
            delete w;
            finish("io_error");
        }
    }
    void close() { finish(""); }
    void fail(std::string_view kind) { finish(kind); }
    [[nodiscard]] bool closed() const { return closed_; }

  private:
    struct WriteReq {
        uv_write_t req;
        HttpConn* owner;
        std::string bytes;
    };
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    static void on_connect_cb(uv_connect_t* req, int status) noexcept {
        auto* self = static_cast<HttpConn*>(req->data);
        if (self->closed_) {
            return;
        }
        if (status != 0) {
            self->finish("connect_error");
            return;
        }
        uv_tcp_nodelay(&self->tcp_, 1);
        if (uv_read_start(self->stream(), on_alloc_cb, on_read_cb) != 0) {
            self->finish("io_error");
            return;
        }
        self->handler_.on_http_connected(*self);
    }
    static void on_alloc_cb(uv_handle_t*, std::size_t, uv_buf_t* buf) noexcept {
        buf->base = http_read_buffer.data();
        buf->len = http_read_buffer.size();
    }
    // Result's accessors use std::get, which throws only on a bug (the wrong alternative);
    // noexcept turns that into the crash STYLE §5 asks for.
    // NOLINTNEXTLINE(bugprone-exception-escape)
    static void on_read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t*) noexcept {
        auto* self = static_cast<HttpConn*>(s->data);
        if (self->closed_ || n == 0) {
            return;
        }
        if (n < 0) {
            // EOF ends a body delimited by the close, or an idle keep-alive connection.
            const bool clean = n == UV_EOF && (parser_idle(*self) || self->until_close_);
            self->finish(clean ? "" : (n == UV_EOF ? "eof" : "io_error"));
            return;
        }
        self->on_bytes(std::string_view(http_read_buffer.data(), static_cast<std::size_t>(n)));
    }
    static bool parser_idle(const HttpConn& c) { return !c.parser_ && !c.in_body_; }
    static void on_write_cb(uv_write_t* req, int status) noexcept {
        auto* w = static_cast<WriteReq*>(req->data);
        HttpConn* owner = w->owner; // alive: cancelled writes call back before the close cb
        delete w;
        if (status < 0 && !owner->closed_) {
            owner->finish("io_error");
        }
    }
    static void on_close_cb(uv_handle_t* h) noexcept {
        auto* self = static_cast<HttpConn*>(h->data);
        self->handle_open_ = false;
        if (self->notify_) {
            self->handler_.on_http_closed(*self, self->error_);
        }
    }

    void on_bytes(std::string_view bytes) {
        while (!bytes.empty() && !closed_) {
            if (!in_body_) {
                if (!parser_) {
                    finish("unexpected_bytes");
                    return;
                }
                auto fed = parser_->feed(std::span<const char>(bytes.data(), bytes.size()));
                if (!fed) {
                    finish("bad_response");
                    return;
                }
                bytes.remove_prefix(fed->consumed);
                if (!fed->complete) {
                    return;
                }
                if (!begin_body()) {
                    return;
                }
                continue;
            }
            const std::size_t take =
                until_close_ ? bytes.size() : std::min<std::size_t>(bytes.size(), body_left_);
            handler_.on_http_body(*this, bytes.substr(0, take));
            bytes.remove_prefix(take);
            body_left_ -= until_close_ ? 0 : take;
            if (!until_close_ && body_left_ == 0 && !closed_) {
                end_response();
            }
        }
    }
    bool begin_body() {
        const Response& head = parser_->response();
        if (head.find("Transfer-Encoding") != nullptr) {
            finish("chunked_response"); // the proxy never chunks (docs/protocol.md)
            return false;
        }
        const std::string* length = head.find("Content-Length");
        std::string_view text = length != nullptr ? std::string_view(*length) : "";
        const auto n = take_number(text);
        until_close_ = length == nullptr && head.status != 204;
        body_left_ = n ? *n : 0;
        if ((length != nullptr && (!n || !text.empty())) || body_left_ > kMaxBody) {
            finish("bad_content_length");
            return false;
        }
        in_body_ = true;
        handler_.on_http_head(*this, head);
        if (!closed_ && !until_close_ && body_left_ == 0) {
            end_response();
        }
        return !closed_;
    }
    void end_response() {
        in_body_ = false;
        parser_.reset();
        handler_.on_http_end(*this);
    }
    void finish(std::string_view error) {
        if (closed_) {
            return;
        }
        closed_ = true;
        error_ = error;
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close_cb);
    }

    uv_loop_t* loop_;
    const bench::Target& target_;
    HttpHandler& handler_;
    uv_tcp_t tcp_{};
    uv_connect_t connect_{};
    std::unique_ptr<proxy::http::ResponseParser> parser_;
    bool in_body_ = false;
    bool until_close_ = false;
    std::uint64_t body_left_ = 0;
    bool handle_open_ = false;
    bool notify_ = true;
    bool closed_ = false;
    std::string error_;
};

// ---- sessions and the runner --------------------------------------------------------------

class Runner;
class MuxStream;

/// One session of any transport. Lives in Runner::clients_ until the loop has finished.
class Client {
  public:
    enum class State : std::uint8_t { Idle, Opening, Open, Closing, Done };
    Client(Runner& runner, std::size_t id) : runner_(runner), id_(id) {}
    virtual ~Client() = default;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Starts opening. False when that failed at once (the error is counted, nothing fires).
    virtual bool start() = 0;
    /// Ends the session cleanly (Close handshake or DELETE); Runner::done() follows.
    virtual void begin_close() = 0;
    /// Closes every socket now and counts `kind` (when not empty); Runner::done() follows.
    virtual void abort(std::string_view kind) = 0;

    State state = State::Idle;
    bool was_open = false;
    std::uint64_t next_seq = 1; ///< the backend's next sequence number on this session

  protected:
    Runner& runner_;
    std::size_t id_;
};

/// Opens the sessions with bounded concurrency, runs the phases, checks and counts messages,
/// closes the sessions (also with bounded concurrency) and reports.
class Runner {
  public:
    enum class Phase : std::uint8_t { Idle, Opening, Warmup, Measuring, Holding, Closing, Done };
    Runner(uv_loop_t* loop, const Options& options, const bench::Target& target);
    void start();
    void close_handles();
    void print_json() const;
    [[nodiscard]] std::uint64_t error_count() const;

    // For clients.
    [[nodiscard]] uv_loop_t* loop() const { return loop_; }
    [[nodiscard]] const bench::Target& target() const { return target_; }
    [[nodiscard]] Phase phase() const { return phase_; }
    void opened(Client& c);
    void message(Client& c, std::string_view text, std::uint64_t proxy_seq);
    /// Counts `n` errors of `kind`; the first few are printed on stderr with `detail`.
    void error(std::string_view kind, std::uint64_t n = 1, std::string_view detail = {});
    void error(std::string_view kind, std::string_view detail) { error(kind, 1, detail); }
    void done(Client& c);
    std::uint64_t polls = 0;
    std::uint64_t heartbeats = 0;

  private:
    static void on_timer_cb(uv_timer_t* t) noexcept;
    static void on_signal_cb(uv_signal_t* s, int) noexcept;
    void on_timer();
    void on_signal();
    void arm(std::uint64_t ms) { uv_timer_start(&timer_, on_timer_cb, ms, 0); }
    void pump_open();
    void all_opened();
    void begin_measure();
    void close_all();
    void pump_close();

    uv_loop_t* loop_;
    const Options& options_;
    const bench::Target& target_;
    Phase phase_ = Phase::Idle;
    std::vector<std::unique_ptr<Client>> clients_;
    std::vector<std::unique_ptr<MuxStream>> streams_; ///< mux modes: one per group of sessions
    std::string padding_;
    bench::Histogram histogram_;
    std::map<std::string, std::uint64_t, std::less<>> errors_;
    uv_timer_t timer_{};
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    std::size_t next_ = 0;       ///< next client to start
    std::size_t opening_ = 0;    ///< started, not yet open or done
    std::size_t live_ = 0;       ///< started, not yet done
    std::size_t opened_ = 0;     ///< ever opened
    std::size_t close_next_ = 0; ///< next client to close
    std::size_t closing_ = 0;    ///< closes in flight
    std::size_t held_ = 0;       ///< open at the end of the hold
    std::uint64_t received_ = 0;
    std::uint64_t open_begin_ns_ = 0;
    std::uint64_t open_end_ns_ = 0;
    std::uint64_t window_begin_ns_ = 0; ///< measuring window, or the hold
    std::uint64_t window_end_ns_ = 0;
    std::uint64_t close_begin_ns_ = 0;
    std::uint64_t close_end_ns_ = 0;
    int reported_ = 0;
};

/// WebSocket through the proxy: bench::ClientConn does the handshake, framing and checks.
class WsClient final : public Client, public bench::ClientHandler {
  public:
    using Client::Client;
    bool start() override {
        conn_ = std::make_unique<ClientConn>(runner_.loop(), runner_.target(), *this, id_,
                                             std::uint64_t{16} << 20);
        if (auto r = conn_->start(); !r) {
            runner_.error("connect_" + r.error().context);
            return false;
        }
        return true;
    }
    void begin_close() override { conn_->close(proxy::ws::close_code::kNormal); }
    void abort(std::string_view kind) override { conn_->abort(Outcome::Aborted, kind); }

  private:
    void on_open(ClientConn&) override { runner_.opened(*this); }
    void on_data(ClientConn&, std::span<const std::byte> bytes) override {
        message_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    void on_message_end(ClientConn&) override {
        runner_.message(*this, message_, 0);
        message_.clear();
    }
    void on_closed(ClientConn&, Outcome outcome, std::string_view detail) override {
        if (outcome == Outcome::Aborted) {
            if (!detail.empty()) {
                runner_.error(detail);
            }
        } else if (outcome != Outcome::Clean) {
            runner_.error(bench::to_string(outcome), detail);
        }
        runner_.done(*this);
    }
    std::unique_ptr<ClientConn> conn_;
    std::string message_;
};

/// What SSE and long-poll sessions share: the stream/poll connection, the DELETE connection.
class HttpClient : public Client, public HttpHandler {
  public:
    using Client::Client;
    bool start() override {
        main_ = std::make_unique<HttpConn>(runner_.loop(), runner_.target(), *this);
        if (!main_->start()) {
            runner_.error("connect_error");
            return false;
        }
        return true;
    }
    void abort(std::string_view kind) override {
        aborted_ = true;
        if (!kind.empty()) {
            runner_.error(kind);
        }
        main_->close();
        if (delete_) {
            delete_->close();
        }
    }

  protected:
    /// DELETE ?session=S on a connection of its own (docs/protocol.md "Close").
    void send_delete() {
        delete_ = std::make_unique<HttpConn>(runner_.loop(), runner_.target(), *this);
        if (!delete_->start()) {
            runner_.error("delete_connect_error");
            delete_.reset();
        }
    }
    [[nodiscard]] std::string request(std::string_view method, std::string_view query,
                                      std::string_view extra = "") const {
        std::string r(method);
        r.append(" ").append(runner_.target().path).append(query).append(" HTTP/1.1\r\nHost: ");
        r.append(runner_.target().host).append("\r\n").append(extra).append("\r\n");
        return r;
    }
    /// The DELETE connection's events; true when `conn` was it.
    bool delete_event(HttpConn& conn, const Response* head, bool ended) {
        if (!delete_ || &conn != delete_.get()) {
            return false;
        }
        if (head != nullptr && head->status != 204) {
            runner_.error("delete_http_" + std::to_string(head->status));
        }
        if (ended) {
            delete_->close();
        }
        return true;
    }
    void on_http_connected(HttpConn& conn) override {
        if (&conn == delete_.get()) {
            conn.send(request("DELETE", "?session=" + session_, "Connection: close\r\n"));
        } else {
            on_main_connected();
        }
    }
    void on_http_closed(HttpConn& conn, std::string_view error) override {
        if (&conn == main_.get()) {
            main_done_ = true;
            if (!aborted_ && (!error.empty() || !expect_main_end())) {
                runner_.error(error.empty() ? unexpected_end() : error);
            }
        } else if (!error.empty() && !aborted_) {
            runner_.error("delete_" + std::string(error));
        }
        if (main_done_ && (!delete_ || delete_->closed()) && !reported_done_) {
            reported_done_ = true;
            runner_.done(*this);
        }
    }
    virtual void on_main_connected() = 0;
    /// True when the main connection may end now without an error.
    [[nodiscard]] virtual bool expect_main_end() const = 0;
    /// The error kind of an unexpected clean end of the main connection.
    [[nodiscard]] virtual std::string_view unexpected_end() const { return "eof"; }
    /// Reports a bad status and closes the main connection; true when the status was not 200.
    bool bad_status(const Response& head) {
        if (head.status == 200) {
            return false;
        }
        runner_.error("http_" + std::to_string(head.status));
        aborted_ = true;
        main_->close();
        return true;
    }

    std::unique_ptr<HttpConn> main_;
    std::unique_ptr<HttpConn> delete_;
    std::string session_;
    bool closing_ = false;
    bool aborted_ = false;
    bool main_done_ = false;
    bool reported_done_ = false;
};

/// An SSE session: one stream; events parsed incrementally.
class SseClient final : public HttpClient {
  public:
    using HttpClient::HttpClient;
    void begin_close() override {
        closing_ = true;
        send_delete(); // the proxy ends the stream with a close event
        if (!delete_) {
            main_->close();
        }
    }

  private:
    void on_main_connected() override {
        main_->send(request("GET", "", "Accept: text/event-stream\r\n"));
    }
    [[nodiscard]] bool expect_main_end() const override { return closing_ && close_seen_; }
    [[nodiscard]] std::string_view unexpected_end() const override {
        return closing_ ? "sse_no_close_event" : "eof";
    }
    void on_http_head(HttpConn& conn, const Response& head) override {
        if (delete_event(conn, &head, false) || bad_status(head)) {
            return;
        }
        const std::string* type = head.find("Content-Type");
        if (type == nullptr || type->find("text/event-stream") == std::string::npos) {
            runner_.error("not_event_stream");
            aborted_ = true;
            main_->close();
        }
    }
    void on_http_body(HttpConn& conn, std::string_view bytes) override {
        if (&conn != main_.get()) {
            return;
        }
        const std::uint64_t before = parser_.comments();
        if (!parser_.feed(bytes, [this](const SseEvent& e) { on_event(e); })) {
            abort("sse_line_too_long");
        }
        runner_.heartbeats += parser_.comments() - before;
    }
    void on_http_end(HttpConn& conn) override {
        if (!delete_event(conn, nullptr, true)) {
            abort("sse_body_ended"); // an SSE answer has no Content-Length
        }
    }
    /// The seq of an event id `<session>.<seq>`; 0 (and an error) when it is not one.
    std::uint64_t id_seq(std::string_view id) {
        if (id.size() > session_.size() + 1 && id.substr(0, session_.size()) == session_ &&
            id[session_.size()] == '.') {
            std::string_view rest = id.substr(session_.size() + 1);
            if (const auto seq = take_number(rest); seq && rest.empty()) {
                return *seq;
            }
        }
        runner_.error("sse_bad_id", id);
        return 0;
    }
    void on_event(const SseEvent& e) {
        if (e.type == "message") {
            runner_.message(*this, e.data, id_seq(e.id));
        } else if (e.type == "session" && session_.empty()) {
            const auto id = json_string(e.data, "session");
            session_ = id.value_or("");
            if (session_.empty()) {
                abort("sse_bad_announce");
                return;
            }
            runner_.opened(*this);
        } else if (e.type == "close") {
            close_seen_ = true;
            if (!closing_) {
                runner_.error("sse_close");
            }
        } else {
            runner_.error("sse_event_" + std::string(e.type)); // gap, reset, binary, ...
        }
    }
    SseParser parser_;
    bool close_seen_ = false;
};

/// A long-poll session: open, then one outstanding poll acknowledging what was received.
class PollClient final : public HttpClient {
  public:
    using HttpClient::HttpClient;
    void begin_close() override {
        // Stop polling; the answer to the outstanding poll triggers the DELETE. (A DELETE
        // before that answer would let the proxy read our poll after the session is gone,
        // and an unknown session's poll opens a fresh session with a reset.)
        closing_ = true;
    }

  private:
    void on_main_connected() override { main_->send(request("GET", "?transport=longpoll")); }
    [[nodiscard]] bool expect_main_end() const override { return closing_; }
    void poll() {
        main_->send(request("GET", "?session=" + session_ + "&ack=" + std::to_string(ack_)));
    }
    void on_http_head(HttpConn& conn, const Response& head) override {
        if (!delete_event(conn, &head, false) && !bad_status(head)) {
            body_.clear();
        }
    }
    void on_http_body(HttpConn& conn, std::string_view bytes) override {
        if (&conn == main_.get()) {
            body_.append(bytes);
        }
    }
    void on_http_end(HttpConn& conn) override {
        if (delete_event(conn, nullptr, true)) {
            return;
        }
        if (session_.empty()) {
            session_ = json_string(body_, "session").value_or("");
            if (session_.empty()) {
                abort("poll_bad_open");
                return;
            }
            runner_.opened(*this);
            poll();
            return;
        }
        ++runner_.polls;
        const PollAnswer a = parse_poll(body_);
        if (a.malformed || a.reset || a.gap || a.binary != 0 || (a.close && !closing_)) {
            runner_.error(a.malformed ? "poll_malformed"
                          : a.reset   ? "poll_reset"
                          : a.gap     ? "poll_gap"
                          : a.close   ? "poll_close"
                                      : "poll_binary");
        }
        for (const auto& [seq, text] : a.texts) {
            runner_.message(*this, text, seq);
            ack_ = seq;
        }
        if (a.close || a.malformed || a.reset) {
            aborted_ = !closing_; // the session is gone (or unusable): nothing to DELETE
            main_->close();
        } else if (closing_) {
            main_->close();
            send_delete();
        } else {
            poll();
        }
    }
    std::string body_;
    std::uint64_t ack_ = 0;
};

// ---- many sessions on one SSE stream (docs/protocol.md "Many sessions on one connection") ---

/// A session carried by a multiplexed SSE stream: opened with `GET ?transport=longpoll` on a
/// connection of its own (closed after the answer), listed on its group's MuxStream, closed
/// with `DELETE ?session=S`, after which its `close` event must come on the stream. It counts
/// as open once the stream's `mux` announce listed it.
class MuxSession final : public Client, public HttpHandler {
  public:
    MuxSession(Runner& runner, std::size_t id, MuxStream& stream)
        : Client(runner, id), stream_(stream) {}
    bool start() override;
    void begin_close() override;
    void abort(std::string_view kind) override;

    // For the stream.
    [[nodiscard]] const std::string& session() const { return session_; }
    [[nodiscard]] bool has_session() const { return !session_.empty(); }
    [[nodiscard]] bool closing() const { return closing_; }
    /// The stream announced this session.
    void announced() { runner_.opened(*this); }
    void on_message(std::string_view text, std::uint64_t seq) { runner_.message(*this, text, seq); }
    void on_close_event() {
        close_seen_ = true;
        if (!closing_) {
            runner_.error("mux_close");
        }
        maybe_done();
    }
    /// The stream ended (or never started): no close event can come any more.
    void on_stream_gone() {
        stream_gone_ = true;
        if (!close_seen_ && !aborted_ && state != State::Done) {
            runner_.error(closing_ ? "mux_no_close_event" : "mux_stream_ended");
            aborted_ = true;
        }
        maybe_done();
    }

  private:
    [[nodiscard]] std::string request(std::string_view method, std::string_view query) const {
        std::string r(method);
        r.append(" ").append(runner_.target().path).append(query).append(" HTTP/1.1\r\nHost: ");
        r.append(runner_.target().host).append("\r\nConnection: close\r\n\r\n");
        return r;
    }
    void on_http_connected(HttpConn& conn) override {
        conn.send(&conn == open_.get() ? request("GET", "?transport=longpoll")
                                       : request("DELETE", "?session=" + session_));
    }
    void on_http_head(HttpConn& conn, const Response& head) override {
        const unsigned want = &conn == open_.get() ? 200 : 204;
        if (head.status != want) {
            runner_.error((&conn == open_.get() ? "mux_open_http_" : "delete_http_") +
                          std::to_string(head.status));
            aborted_ = true;
            conn.close();
        }
        body_.clear();
    }
    void on_http_body(HttpConn& conn, std::string_view bytes) override {
        if (&conn == open_.get()) {
            body_.append(bytes);
        }
    }
    void on_http_end(HttpConn& conn) override;
    void on_http_closed(HttpConn& conn, std::string_view error) override {
        if (!error.empty() && !aborted_) {
            runner_.error((&conn == open_.get() ? "mux_open_" : "delete_") + std::string(error));
            aborted_ = true;
        }
        if (&conn == open_.get()) {
            open_done_ = true;
        } else {
            delete_done_ = true;
        }
        maybe_done();
    }
    void maybe_done();
    /// Tells the stream, once, whether this member has a session to list.
    void tell_ready(bool ok);

    MuxStream& stream_;
    std::unique_ptr<HttpConn> open_;
    std::unique_ptr<HttpConn> delete_;
    std::string session_;
    std::string body_;
    bool open_done_ = false;
    bool delete_done_ = true; // until a DELETE starts
    bool closing_ = false;
    bool close_seen_ = false;
    bool stream_gone_ = false;
    bool aborted_ = false;
    bool reported_done_ = false;
    bool told_ready_ = false;
};

/// One multiplexed SSE stream for a group of MuxSessions: started once every member has its
/// session id (or failed), `GET ?transport=mux&session=S.0&…`; routes each message event to its
/// session and checks its seq against the payload's. The proxy ends it when its last session
/// closed.
class MuxStream final : public HttpHandler {
  public:
    MuxStream(Runner& runner, std::size_t expected) : runner_(runner), expected_(expected) {}
    ~MuxStream() override = default;
    MuxStream(const MuxStream&) = delete;
    MuxStream& operator=(const MuxStream&) = delete;

    /// A member has its session id (`ok`) or failed to get one.
    void member_ready(MuxSession& s, bool ok) {
        if (ok) {
            members_.push_back(&s);
        }
        if (++ready_ == expected_) {
            begin();
        }
    }
    /// Every member is done: make sure the connection is closed.
    void member_done() {
        if (++done_ == expected_ && conn_ && !conn_->closed()) {
            conn_->close();
        }
    }
    [[nodiscard]] bool ended() const { return ended_; }
    [[nodiscard]] std::size_t members() const { return members_.size(); }

  private:
    void begin() {
        if (members_.empty()) {
            ended_ = true;
            return;
        }
        for (MuxSession* s : members_) {
            by_id_.emplace(s->session(), s);
        }
        conn_ = std::make_unique<HttpConn>(runner_.loop(), runner_.target(), *this);
        if (!conn_->start()) {
            runner_.error("mux_connect_error");
            conn_.reset();
            gone();
        }
    }
    void gone() {
        if (ended_) {
            return;
        }
        ended_ = true;
        const auto members = members_; // a member's done() may not change the list, but be safe
        for (MuxSession* s : members) {
            s->on_stream_gone();
        }
    }
    void on_http_connected(HttpConn& conn) override {
        std::string r = "GET ";
        r.append(runner_.target().path).append("?transport=mux");
        for (const MuxSession* s : members_) {
            r.append("&session=").append(s->session()).append(".0");
        }
        r.append(" HTTP/1.1\r\nHost: ").append(runner_.target().host);
        r.append("\r\nAccept: text/event-stream\r\n\r\n");
        conn.send(r);
    }
    void on_http_head(HttpConn& conn, const Response& head) override {
        const std::string* type = head.find("Content-Type");
        if (head.status != 200 || type == nullptr ||
            type->find("text/event-stream") == std::string::npos) {
            runner_.error("mux_http_" + std::to_string(head.status));
            conn.close();
        }
    }
    void on_http_body(HttpConn&, std::string_view bytes) override {
        const std::uint64_t before = parser_.comments();
        if (!parser_.feed(bytes, [this](const SseEvent& e) { on_event(e); })) {
            runner_.error("sse_line_too_long");
            conn_->close();
        }
        runner_.heartbeats += parser_.comments() - before;
    }
    void on_http_end(HttpConn& conn) override {
        runner_.error("sse_body_ended");
        conn.close();
    }
    void on_http_closed(HttpConn&, std::string_view error) override {
        if (!error.empty()) {
            runner_.error("mux_" + std::string(error));
        }
        gone();
    }
    MuxSession* member(std::string_view id) {
        const auto it = by_id_.find(id);
        if (it == by_id_.end()) {
            runner_.error("mux_unknown_session", id);
            return nullptr;
        }
        return it->second;
    }
    void on_event(const SseEvent& e) {
        if (e.type == "message") {
            // "<id> <seq> <text>"
            const std::size_t sp = e.data.find(' ');
            const std::size_t lf = sp == std::string_view::npos ? sp : e.data.find(' ', sp + 1);
            std::string_view digits =
                sp < lf && lf != std::string_view::npos ? e.data.substr(sp + 1, lf - sp - 1) : "";
            const auto seq = take_number(digits);
            if (!seq || !digits.empty()) {
                runner_.error("mux_bad_message", e.data.substr(0, 80));
                return;
            }
            if (MuxSession* s = member(e.data.substr(0, sp))) {
                s->on_message(e.data.substr(lf + 1), *seq);
            }
        } else if (e.type == "mux" && !announced_) {
            announced_ = true;
            if (e.data.find("\"reset\"") != std::string_view::npos) {
                runner_.error("mux_reset", e.data.substr(0, 200));
            }
            const auto members = members_;
            for (MuxSession* s : members) {
                s->announced();
            }
        } else if (e.type == "close") {
            const auto id = json_string(e.data, "session");
            if (MuxSession* s = id ? member(*id) : nullptr) {
                s->on_close_event();
            }
        } else {
            runner_.error("mux_event_" + std::string(e.type), e.data.substr(0, 120));
        }
    }

    Runner& runner_;
    std::size_t expected_;
    std::size_t ready_ = 0;
    std::size_t done_ = 0;
    std::vector<MuxSession*> members_;
    std::unordered_map<std::string_view, MuxSession*> by_id_;
    std::unique_ptr<HttpConn> conn_;
    SseParser parser_;
    bool announced_ = false;
    bool ended_ = false;
};

bool MuxSession::start() {
    open_ = std::make_unique<HttpConn>(runner_.loop(), runner_.target(), *this);
    if (!open_->start()) {
        runner_.error("connect_error");
        open_.reset();
        tell_ready(false);
        stream_.member_done(); // the Runner counts it done without calling done()
        return false;
    }
    return true;
}

void MuxSession::tell_ready(bool ok) {
    if (!told_ready_) {
        told_ready_ = true;
        stream_.member_ready(*this, ok);
    }
}

void MuxSession::on_http_end(HttpConn& conn) {
    if (&conn != open_.get()) {
        conn.close(); // the DELETE's 204
        return;
    }
    conn.close();
    if (aborted_) {
        return;
    }
    session_ = json_string(body_, "session").value_or("");
    if (session_.empty()) {
        runner_.error("poll_bad_open");
        aborted_ = true;
    }
    tell_ready(!session_.empty());
}

void MuxSession::begin_close() {
    closing_ = true;
    if (stream_gone_) {
        runner_.error("mux_no_close_event");
        aborted_ = true;
        maybe_done();
        return;
    }
    delete_ = std::make_unique<HttpConn>(runner_.loop(), runner_.target(), *this);
    delete_done_ = false;
    if (!delete_->start()) {
        runner_.error("delete_connect_error");
        delete_done_ = true;
        aborted_ = true;
        maybe_done();
    }
}

void MuxSession::abort(std::string_view kind) {
    if (!kind.empty()) {
        runner_.error(kind);
    }
    aborted_ = true;
    if (open_ && !open_->closed()) {
        open_->close();
    }
    if (delete_ && !delete_->closed()) {
        delete_->close();
    }
    maybe_done();
}

void MuxSession::maybe_done() {
    // Done once nothing of ours is in flight and the stream has said all it will say of us.
    const bool open_over = !open_ || open_done_;
    const bool stream_over = close_seen_ || stream_gone_ || aborted_;
    if (reported_done_ || !open_over || !delete_done_ || !stream_over) {
        return;
    }
    tell_ready(false); // failed before the stream knew of it (no-op when it did)
    reported_done_ = true;
    runner_.done(*this);
    stream_.member_done();
}

Runner::Runner(uv_loop_t* loop, const Options& options, const bench::Target& target)
    : loop_(loop), options_(options), target_(target), padding_(options.size, 'a') {
    for (std::size_t i = 0; i < padding_.size(); ++i) {
        padding_[i] = static_cast<char>('a' + i % 26);
    }
}

void Runner::start() {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    for (uv_signal_t* sig : {&sigint_, &sigterm_}) {
        uv_signal_init(loop_, sig);
        sig->data = this;
        uv_signal_start(sig, on_signal_cb, sig == &sigint_ ? SIGINT : SIGTERM);
        uv_unref(reinterpret_cast<uv_handle_t*>(sig)); // never keeps the loop alive
    }
    clients_.reserve(options_.connections);
    for (std::size_t i = 0; i < options_.connections; ++i) {
        if (mux_mode(options_.mode)) {
            if (i % options_.per_stream == 0) {
                streams_.push_back(std::make_unique<MuxStream>(
                    *this, std::min(options_.per_stream, options_.connections - i)));
            }
            clients_.push_back(std::make_unique<MuxSession>(*this, i, *streams_.back()));
        } else if (options_.mode == Mode::Ws) {
            clients_.push_back(std::make_unique<WsClient>(*this, i));
        } else if (options_.mode == Mode::LongPoll) {
            clients_.push_back(std::make_unique<PollClient>(*this, i));
        } else {
            clients_.push_back(std::make_unique<SseClient>(*this, i));
        }
    }
    open_begin_ns_ = mono_ns();
    phase_ = Phase::Opening;
    arm(options_.open_timeout_ms);
    pump_open();
}

void Runner::close_handles() {
    for (auto* h :
         {reinterpret_cast<uv_handle_t*>(&timer_), reinterpret_cast<uv_handle_t*>(&sigint_),
          reinterpret_cast<uv_handle_t*>(&sigterm_)}) {
        if (h->loop != nullptr && !uv_is_closing(h)) {
            uv_close(h, nullptr);
        }
    }
}

std::uint64_t Runner::error_count() const {
    std::uint64_t total = 0;
    for (const auto& [kind, n] : errors_) {
        total += n;
    }
    return total;
}

void Runner::error(std::string_view kind, std::uint64_t n, std::string_view detail) {
    auto it = errors_.find(kind);
    if (it == errors_.end()) {
        it = errors_.emplace(std::string(kind), 0).first;
    }
    it->second += n;
    if (reported_++ < kMaxReported) {
        std::fprintf(stderr, "session_load: error %.*s %.*s\n", static_cast<int>(kind.size()),
                     kind.data(), static_cast<int>(detail.size()), detail.data());
    }
}

void Runner::pump_open() {
    while (phase_ == Phase::Opening && opening_ < options_.concurrency && next_ < clients_.size()) {
        Client& c = *clients_[next_++];
        if (!c.start()) {
            c.state = Client::State::Done;
            continue;
        }
        c.state = Client::State::Opening;
        ++opening_;
        ++live_;
    }
    if (phase_ == Phase::Opening && opening_ == 0 && next_ == clients_.size()) {
        all_opened();
    }
}

void Runner::opened(Client& c) {
    if (c.state != Client::State::Opening) {
        return;
    }
    c.state = Client::State::Open;
    c.was_open = true;
    --opening_;
    ++opened_;
    pump_open();
}

void Runner::done(Client& c) {
    const Client::State was = c.state;
    c.state = Client::State::Done;
    --live_;
    if (was == Client::State::Opening) {
        --opening_;
        pump_open();
    } else if (was == Client::State::Closing) {
        --closing_;
    }
    if (phase_ == Phase::Closing) {
        pump_close();
    } else if (live_ == 0 && (phase_ == Phase::Warmup || phase_ == Phase::Measuring ||
                              phase_ == Phase::Holding)) {
        close_all(); // every session is gone (errors counted): nothing left to measure
    }
}

void Runner::all_opened() {
    open_end_ns_ = mono_ns();
    uv_timer_stop(&timer_);
    if (idle_mode(options_.mode)) {
        if (opened_ == clients_.size() && error_count() == 0) {
            std::printf("all %zu open\n", opened_);
        } else {
            std::printf("opened %zu of %zu, %llu errors\n", opened_, clients_.size(),
                        static_cast<unsigned long long>(error_count()));
        }
        std::fflush(stdout);
        phase_ = Phase::Holding;
        window_begin_ns_ = mono_ns();
        arm(options_.hold_ms);
    } else if (opened_ == 0) {
        close_all();
    } else if (options_.warmup_ms > 0) {
        phase_ = Phase::Warmup;
        arm(options_.warmup_ms);
    } else {
        begin_measure();
    }
}

void Runner::begin_measure() {
    phase_ = Phase::Measuring;
    histogram_.reset();
    window_begin_ns_ = mono_ns();
    arm(options_.duration_ms);
}

void Runner::message(Client& c, std::string_view text, std::uint64_t proxy_seq) {
    const std::uint64_t now = mono_ns();
    ++received_;
    if (idle_mode(options_.mode)) {
        error("unexpected_message");
        return;
    }
    const auto stamp = parse_stamp(text);
    if (!stamp) {
        error("bad_payload");
        return;
    }
    if (stamp->seq > c.next_seq) {
        error("lost_messages", stamp->seq - c.next_seq);
    } else if (stamp->seq < c.next_seq) {
        error("duplicate_or_reordered");
    }
    c.next_seq = stamp->seq + 1;
    if (proxy_seq != 0 && proxy_seq != stamp->seq) {
        error("seq_mismatch");
    }
    if (text.size() != padding_.size()) {
        error("wrong_size");
    } else if (std::memcmp(text.data() + stamp->padding_at, padding_.data() + stamp->padding_at,
                           text.size() - stamp->padding_at) != 0) {
        error("corrupt");
    }
    if (phase_ == Phase::Measuring) {
        histogram_.record(now > stamp->sent_ns ? now - stamp->sent_ns : 0);
    }
}

void Runner::close_all() {
    if (phase_ == Phase::Measuring) {
        window_end_ns_ = mono_ns();
    } else if (phase_ == Phase::Holding) {
        window_end_ns_ = mono_ns();
        held_ =
            static_cast<std::size_t>(std::count_if(clients_.begin(), clients_.end(), [](auto& c) {
                return c->state == Client::State::Open;
            }));
    }
    phase_ = Phase::Closing;
    close_begin_ns_ = mono_ns();
    uv_timer_stop(&timer_);
    arm(options_.close_timeout_ms);
    pump_close();
}

void Runner::pump_close() {
    while (closing_ < options_.concurrency && close_next_ < clients_.size()) {
        Client& c = *clients_[close_next_++];
        if (c.state == Client::State::Open) {
            c.state = Client::State::Closing;
            ++closing_;
            c.begin_close();
        } else if (c.state == Client::State::Opening) {
            c.abort("closed_before_open");
        }
    }
    if (live_ == 0 && close_next_ == clients_.size()) {
        phase_ = Phase::Done;
        close_end_ns_ = mono_ns();
        uv_timer_stop(&timer_); // nothing else is referenced: uv_run returns
    }
}

void Runner::on_timer_cb(uv_timer_t* t) noexcept { static_cast<Runner*>(t->data)->on_timer(); }

void Runner::on_signal_cb(uv_signal_t* s, int) noexcept {
    static_cast<Runner*>(s->data)->on_signal();
}

void Runner::on_timer() {
    switch (phase_) {
    case Phase::Opening:
        if (next_ < clients_.size()) {
            error("open_timeout", clients_.size() - next_);
            next_ = clients_.size();
        }
        for (auto& c : clients_) {
            if (c->state == Client::State::Opening) {
                c->abort("open_timeout");
            }
        }
        pump_open(); // ends the phase now if nothing was still opening
        break;
    case Phase::Warmup: begin_measure(); break;
    case Phase::Measuring:
    case Phase::Holding: close_all(); break;
    case Phase::Closing:
        close_next_ = clients_.size();
        for (auto& c : clients_) {
            if (c->state == Client::State::Opening || c->state == Client::State::Open ||
                c->state == Client::State::Closing) {
                c->abort("close_timeout");
            }
        }
        break;
    case Phase::Idle:
    case Phase::Done: break;
    }
}

void Runner::on_signal() {
    if (phase_ == Phase::Closing) { // a second signal: stop waiting
        close_next_ = clients_.size();
        for (auto& c : clients_) {
            if (c->state != Client::State::Done && c->state != Client::State::Idle) {
                c->abort("");
            }
        }
    } else if (phase_ == Phase::Warmup) {
        begin_measure(); // an empty window; the JSON then says 0 messages
        close_all();
    } else if (phase_ != Phase::Idle && phase_ != Phase::Done) {
        close_all();
    }
}

void Runner::print_json() const {
    const double seconds = window_end_ns_ > window_begin_ns_
                               ? static_cast<double>(window_end_ns_ - window_begin_ns_) / 1e9
                               : 0.0;
    if (idle_mode(options_.mode)) {
        const double open_s =
            open_end_ns_ > 0 ? static_cast<double>(open_end_ns_ - open_begin_ns_) / 1e9 : 0.0;
        std::printf("{\"mode\":\"%s\",\"connections\":%zu,\"opened\":%zu,\"held\":%zu,"
                    "\"open_seconds\":%.3f,\"hold_seconds\":%.3f,\"heartbeats\":%llu",
                    options_.mode_name.c_str(), clients_.size(), opened_, held_, open_s, seconds,
                    static_cast<unsigned long long>(heartbeats));
    } else {
        const auto us = [this](double q) {
            return static_cast<double>(histogram_.quantile(q)) / 1000.0;
        };
        const std::uint64_t n = histogram_.count();
        std::printf("{\"mode\":\"%s\",\"connections\":%zu,\"opened\":%zu,\"size\":%zu,"
                    "\"messages\":%llu,\"seconds\":%.3f,\"msgs_per_sec\":%.0f,\"p50_us\":%.1f,"
                    "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
                    "\"received\":%llu,\"polls\":%llu,\"heartbeats\":%llu",
                    options_.mode_name.c_str(), clients_.size(), opened_, options_.size,
                    static_cast<unsigned long long>(n), seconds,
                    seconds > 0 ? static_cast<double>(n) / seconds : 0.0, us(0.5), us(0.9),
                    us(0.99), us(0.999), static_cast<double>(histogram_.max()) / 1000.0,
                    static_cast<unsigned long long>(received_),
                    static_cast<unsigned long long>(polls),
                    static_cast<unsigned long long>(heartbeats));
    }
    if (mux_mode(options_.mode)) {
        std::printf(",\"streams\":%zu,\"per_stream\":%zu", streams_.size(), options_.per_stream);
    }
    std::printf(",\"close_seconds\":%.3f,\"errors\":%llu,\"error_kinds\":{",
                close_end_ns_ > close_begin_ns_
                    ? static_cast<double>(close_end_ns_ - close_begin_ns_) / 1e9
                    : 0.0,
                static_cast<unsigned long long>(error_count()));
    const char* sep = "";
    for (const auto& [kind, count] : errors_) {
        std::printf("%s\"%s\":%llu", sep, kind.c_str(), static_cast<unsigned long long>(count));
        sep = ",";
    }
    std::printf("}}\n");
    std::fflush(stdout);
}

// ---- selftest: the parsers against canned input, split at every byte ------------------------

std::vector<std::string> sse_events(const std::vector<std::string_view>& pieces) {
    SseParser parser;
    std::vector<std::string> out;
    for (std::string_view piece : pieces) {
        parser.feed(piece, [&out](const SseEvent& e) {
            out.push_back(std::string(e.type) + "|" + std::string(e.id) + "|" +
                          std::string(e.data));
        });
    }
    out.push_back("comments=" + std::to_string(parser.comments()));
    return out;
}

int selftest() {
    int failures = 0;
    const std::string_view stream =
        "retry: 1000\nevent: session\nid: S.0\ndata: {\"session\":\"S\",\"last_seq\":0}\n\n"
        "id: S.1\ndata: 1 1 abc\n\n:\n\nid: S.2\ndata:two\ndata: lines\n\n"
        "event: close\r\ndata: {\"code\":1000}\r\n\r\nid: S.3\n\ndata\n\n";
    const std::vector<std::string> expected = {"session|S.0|{\"session\":\"S\",\"last_seq\":0}",
                                               "message|S.1|1 1 abc",
                                               "message|S.2|two\nlines",
                                               "close||{\"code\":1000}",
                                               "message||",
                                               "comments=1"};
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        for (std::size_t cut2 = cut; cut2 <= stream.size(); cut2 += 7) {
            if (sse_events({stream.substr(0, cut), stream.substr(cut, cut2 - cut),
                            stream.substr(cut2)}) != expected) {
                std::fprintf(stderr, "selftest: SSE split at %zu/%zu differs\n", cut, cut2);
                ++failures;
            }
        }
    }
    const PollAnswer a =
        parse_poll("{\"gap\":{\"from\":1,\"to\":2},\"messages\":[{\"seq\":3,\"text\":\"x \\\"y\"},"
                   "{\"seq\":4,\"binary\":\"AAE=\"}],\"close\":{\"code\":1000,\"reason\":\"\"}}");
    if (a.malformed || !a.gap || a.reset || !a.close || a.binary != 1 || a.texts.size() != 1 ||
        a.texts[0].first != 3 || a.texts[0].second != "x \\\"y") {
        std::fputs("selftest: poll answer parsed wrongly\n", stderr);
        ++failures;
    }
    if (!parse_poll("{\"messages\":[{\"seq\":1,\"text\":\"a\"}").malformed ||
        parse_poll("{\"messages\":[]}").malformed) {
        std::fputs("selftest: poll malformed detection wrong\n", stderr);
        ++failures;
    }
    const auto s = parse_stamp("123 45 abcdef");
    if (!s || s->sent_ns != 123 || s->seq != 45 || s->padding_at != 7 || parse_stamp("12 x ")) {
        std::fputs("selftest: payload stamp parsed wrongly\n", stderr);
        ++failures;
    }
    std::printf(failures == 0 ? "selftest ok\n" : "selftest: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}

// ---- arguments ----------------------------------------------------------------------------

std::optional<std::uint64_t> parse_duration_ms(std::string_view text) {
    std::string_view rest = text;
    const auto value = take_number(rest);
    if (!value || *value > 3'600'000) {
        return std::nullopt;
    }
    if (rest == "ms") {
        return *value;
    }
    if (rest.empty() || rest == "s") {
        return *value * 1000;
    }
    if (rest == "m") {
        return *value * 60'000;
    }
    return std::nullopt;
}

std::optional<std::size_t> parse_count(std::string_view text, std::size_t max) {
    std::string_view rest = text;
    const auto value = take_number(rest);
    if (!value || !rest.empty() || *value == 0 || *value > max) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(*value);
}

std::optional<Options> parse_args(int argc, char** argv) {
    if (argc < 2) {
        return std::nullopt;
    }
    Options o;
    o.mode_name = argv[1];
    static const std::map<std::string_view, Mode> kModes = {{"ws", Mode::Ws},
                                                            {"sse", Mode::Sse},
                                                            {"longpoll", Mode::LongPoll},
                                                            {"idle-sse", Mode::IdleSse},
                                                            {"mux-sse", Mode::MuxSse},
                                                            {"idle-mux-sse", Mode::IdleMuxSse}};
    const auto mode = kModes.find(o.mode_name);
    if (mode == kModes.end()) {
        return std::nullopt;
    }
    o.mode = mode->second;
    for (int i = 2; i < argc; i += 2) {
        const std::string_view key = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "session_load: %s needs a value\n", argv[i]);
            return std::nullopt;
        }
        const std::string_view value = argv[i + 1];
        std::optional<std::uint64_t> ms;
        std::optional<std::size_t> n;
        bool ok = true;
        if (key == "--url") {
            o.url = value;
        } else if (key == "--connections") {
            ok = (n = parse_count(value, kMaxConnections)) && (o.connections = *n);
        } else if (key == "--size") {
            ok = (n = parse_count(value, std::size_t{1} << 20)) && (o.size = *n);
        } else if (key == "--per-stream") {
            ok = (n = parse_count(value, 100)) && (o.per_stream = *n);
        } else if (key == "--concurrency") {
            ok = (n = parse_count(value, kMaxConnections)) && (o.concurrency = *n);
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
            std::fprintf(stderr, "session_load: unknown option %s\n", argv[i]);
            return std::nullopt;
        }
        if (!ok) {
            std::fprintf(stderr, "session_load: bad value for %s: %s\n", argv[i], argv[i + 1]);
            return std::nullopt;
        }
    }
    if (o.connections == 0) {
        o.connections = idle_mode(o.mode) ? 4000 : 50;
    }
    // A session counts as opening until its stream's announce, which needs its whole group
    // open: the groups must fit in the opening window.
    if (mux_mode(o.mode)) {
        o.concurrency = std::max(o.concurrency, o.per_stream);
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

} // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::string_view(argv[1]) == "selftest") {
        return selftest();
    }
    const auto options = parse_args(argc, argv);
    if (!options || options->url.rfind("http://", 0) != 0) {
        std::fputs(
            "usage: session_load ws|sse|longpoll|mux-sse --url http://127.0.0.1:PORT/PATH\n"
            "         [--connections N] [--duration 10s] [--warmup 2s] [--size 64]\n"
            "       session_load idle-sse|idle-mux-sse --url URL [--connections N] [--hold 10s]\n"
            "       session_load selftest\n"
            "common: [--concurrency 200] [--open-timeout 60s] [--close-timeout 10s]\n"
            "mux-sse, idle-mux-sse: [--per-stream 100]\n",
            stderr);
        return 2;
    }
    // bench::parse_url checks the loopback-only rule; it speaks ws://, the same authority.
    auto target = bench::parse_url("ws://" + options->url.substr(7));
    if (!target) {
        std::fprintf(stderr, "session_load: %s\n", target.error().context.c_str());
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN); // a peer reset must surface as EPIPE, not kill us
    const rlim_t fds = raise_fd_limit();
    if (fds < options->connections + options->concurrency + 64) {
        std::fprintf(stderr, "session_load: fd limit %llu too low for %zu sessions\n",
                     static_cast<unsigned long long>(fds), options->connections);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    int exit_code = 0;
    {
        Runner runner(&loop, *options, *target);
        runner.start();
        uv_run(&loop, UV_RUN_DEFAULT);
        runner.print_json();
        exit_code = runner.error_count() == 0 ? 0 : 1;
        runner.close_handles();
        uv_run(&loop, UV_RUN_DEFAULT); // close callbacks of the runner's own handles
    }
    if (uv_loop_close(&loop) != 0) {
        std::fputs("session_load: loop not clean at exit\n", stderr);
        return 1;
    }
    return exit_code;
}
