#include "proxy/core/tcp.h"

#include "proxy/core/send_batch.h"

#include <array>
#include <cstring>
#include <unistd.h>
#include <uv.h>
#include <vector>

namespace proxy::core {

namespace {
constexpr std::size_t kMaxIov = 16;
/// How long a Flush close may take (drain, FIN, wait for the peer's FIN) before an abort.
constexpr std::uint64_t kFlushDeadlineMs = 5000;
/// Writes up to this size wait for the loop's batched send (send_batch.h); bigger ones, and
/// anything behind bytes the kernel did not take, go out at once as before.
constexpr std::size_t kBatchMaxBytes = 16 * 1024;
/// A read callback that leaves this many streams waiting in the batch sends them at once.
constexpr std::size_t kEarlyFlushSenders = 8;
/// Transform scratch strings keep at most this much capacity between reads and writes.
constexpr std::size_t kKeepScratch = 4 * 1024;
} // namespace

/// All state lives here so that a Flush close can continue after the TcpStream is destroyed:
/// the Impl deletes itself in the handle's close callback. As a HandleOwner it lets
/// Loop::close_all() abort such a close at shutdown.
struct TcpStream::Impl final : HandleOwner, BatchedSender {
    uv_tcp_t tcp{};
    uv_timer_t* flush_timer = nullptr;  ///< only during a Flush close (saves idle memory)
    uv_timer_t* error_timer = nullptr;  ///< only to report a write error on the next turn
    int write_error = 0;                ///< the uv error error_timer reports
    Loop& loop;
    StreamHandler* handler = nullptr;
    std::unique_ptr<StreamTransform> transform;  ///< TLS between socket and handler, or null
    std::string plain_in;   ///< transform output for the handler (reused)
    std::string wire_out;   ///< transform output for the socket (reused)
    std::vector<std::string> queue;    ///< owned bytes not yet handed to uv_write (FIFO)
    struct WriteReq* in_flight = nullptr;
    struct ConnectReq* connecting = nullptr;
    std::size_t queued_bytes = 0;
    std::size_t high = 1024 * 1024;
    std::uint8_t pause_bits = 0;
    bool want_read = false;
    bool is_reading = false;
    bool above_high = false;
    bool write_failed = false;
    bool read_failed = false;     ///< a read reported an error (ECONNRESET...): the peer is gone
    bool closing = false;         ///< close() called: no more handler callbacks
    bool handle_closing = false;  ///< uv_close() called
    bool flushing = false;        ///< Flush close in progress
    bool peer_eof = false;        ///< the peer's FIN arrived (nothing more to read)
    bool shutdown_pending = false;
    bool shutdown_sent = false;
    bool owner_gone = false;
    int handles_open = 1;

    explicit Impl(Loop& l) : HandleOwner(l), loop(l) {
        uv_tcp_init(loop.raw(), &tcp);
        tcp.data = this;
    }
    ~Impl() override { unbatch(); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    void close_handles() noexcept override { close_handle(); }

    // BatchedSender: while batched, the queue holds exactly one chunk, not yet tried.
    int batch_fd() const noexcept override {
        uv_os_fd_t fd = -1;
        uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp), &fd);
        return fd;
    }
    std::span<const std::byte> batch_bytes() const noexcept override {
        return std::as_bytes(std::span<const char>(queue.front().data(), queue.front().size()));
    }
    void batch_done(int result) noexcept override;
    /// Takes this stream out of the loop's batch (its bytes stay queued).
    void unbatch() noexcept {
        if (SendBatch::queued(this)) {
            loop.send_batch()->remove(this);
        }
    }
    /// True when a write of `bytes` may wait for the batch.
    bool can_batch(std::size_t bytes) const noexcept;

    void update_reading() noexcept;
    void flush_queue();
    void on_written(std::size_t bytes);
    void maybe_finish_flush();
    void start_shutdown();
    void close_handle() noexcept;
    void fail_read(int status);
    void fail_write(int status);
    /// Wire bytes read: through the transform to the handler (and its answers to the socket).
    void read_through_transform(std::span<const std::byte> wire);
    /// Queues what the transform produced in wire_out. `batch`: may wait for the loop's
    /// batched send; false for handshake flights, which follow expensive work and go out at
    /// once so the peer starts on them while this loop does the next connection's work.
    void write_wire_out(bool batch = true);
    /// Frees a transform scratch string that grew past kKeepScratch.
    static void release_if_large(std::string& scratch) noexcept;
    bool try_write_now(std::span<const std::span<const std::byte>> pieces, bool batch = true);
};

struct WriteReq {
    uv_write_t req{};
    std::vector<std::string> chunks;
    TcpStream::Impl* owner = nullptr;
    std::size_t bytes = 0;
};

struct ConnectReq {
    uv_connect_t req{};
    TcpStream::Impl* owner = nullptr;
    std::function<void(Result<void>)> done;
};

namespace {

void handle_closed_cb(uv_handle_t* handle) noexcept {
    auto* impl = static_cast<TcpStream::Impl*>(handle->data);
    if (handle->type == UV_TIMER) {
        delete reinterpret_cast<uv_timer_t*>(handle);
    }
    // While the TcpStream lives it still reads its Impl (destructor, accessors), so only an
    // orphaned Impl is freed here; otherwise ~TcpStream frees it.
    if (--impl->handles_open == 0 && impl->owner_gone) {
        delete impl;
    }
}

void alloc_cb(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) noexcept {
    auto* impl = static_cast<TcpStream::Impl*>(handle->data);
    buf->base = reinterpret_cast<char*>(impl->loop.buffers().take());
    buf->len = kReadChunkSize;
}

void read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* impl = static_cast<TcpStream::Impl*>(stream->data);
    auto* chunk = reinterpret_cast<std::byte*>(buf->base);
    BufferPool& pool = impl->loop.buffers();
    if (impl->closing) {
        // Flush close: discard input until the peer's FIN (lingering close), or until it
        // resets, which ends the close at once as well (issue 10).
        if (nread < 0) {
            impl->close_handle();
        }
        pool.give_back(chunk);
        return;
    }
    if (nread > 0) {
        if (impl->transform) {
            impl->read_through_transform({chunk, static_cast<std::size_t>(nread)});
        } else if (impl->handler != nullptr) {
            impl->handler->on_read({chunk, static_cast<std::size_t>(nread)});
        }
    } else if (nread == UV_EOF) {
        impl->peer_eof = true;
        impl->is_reading = false;
        uv_read_stop(stream);
        impl->want_read = false;
        if (impl->handler != nullptr) {
            impl->handler->on_read_end(nullptr);
        }
    } else if (nread < 0) {
        impl->fail_read(static_cast<int>(nread));
    }
    pool.give_back(chunk);
    // Send early when the iteration has queued many sends: peers on other cores start on the
    // first messages while this loop still reads (and decrypts) the rest.
    Loop& loop = impl->loop;
    if (const SendBatch* batch = loop.send_batch();
        batch != nullptr && batch->pending() >= kEarlyFlushSenders) {
        loop.flush_sends();
    }
}

void write_cb(uv_write_t* req, int status) noexcept {
    std::unique_ptr<WriteReq> w(reinterpret_cast<WriteReq*>(req));
    TcpStream::Impl* impl = w->owner;
    if (impl == nullptr) {
        return;
    }
    impl->in_flight = nullptr;
    if (status < 0) {
        impl->fail_write(status);
        return;
    }
    impl->on_written(w->bytes);
}

void shutdown_cb(uv_shutdown_t* req, int /*status*/) noexcept {
    delete req;
}

void connect_cb(uv_connect_t* req, int status) noexcept {
    std::unique_ptr<ConnectReq> c(reinterpret_cast<ConnectReq*>(req));
    if (c->owner == nullptr) {
        return;
    }
    TcpStream::Impl* impl = c->owner;
    impl->connecting = nullptr;
    if (status < 0) {
        c->done(fail(Code::BackendUnreachable, Side::Backend, uv_err_name(status)));
        return;
    }
    if (impl->transform) {
        // The transform speaks first (a TLS ClientHello); the owner's first writes are held
        // by it until it is ready.
        impl->wire_out.clear();
        auto r = impl->transform->on_connected(impl->wire_out);
        if (!r) {
            c->done(Unexpected{r.error()});
            return;
        }
        impl->write_wire_out(false);
    }
    c->done(Result<void>{});
}

void error_timer_cb(uv_timer_t* timer) noexcept {
    auto* impl = static_cast<TcpStream::Impl*>(timer->data);
    impl->fail_write(impl->write_error);
}

void flush_timer_cb(uv_timer_t* timer) noexcept {
    auto* impl = static_cast<TcpStream::Impl*>(timer->data);
    impl->close_handle();
}

} // namespace

void TcpStream::Impl::update_reading() noexcept {
    const bool should = (want_read && pause_bits == 0 && !closing) || (closing && flushing);
    if (should == is_reading || handle_closing) {
        return;
    }
    if (should) {
        is_reading = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp), alloc_cb, read_cb) == 0;
    } else {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
        is_reading = false;
    }
}

// A failed connection (reset, broken pipe) never sends the FIN that a Flush close waits for,
// and libuv may not deliver any further read on it: holding the socket until the flush
// deadline cost one fd per reset client for 5 s (issue 10). So a failure closes the socket at
// once, after the owner was told; a close() the owner makes later finds it closed.
void TcpStream::Impl::fail_read(int status) {
    is_reading = false;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
    want_read = false;
    read_failed = true;
    if (handler != nullptr) {
        Error e{Code::Io, Side::Internal, uv_err_name(status)};
        handler->on_read_end(&e);
    }
    close_handle();  // the owner may have destroyed the TcpStream: the Impl lives on (owner_gone)
}

void TcpStream::Impl::fail_write(int status) {
    write_failed = true;
    queue.clear();
    queued_bytes = 0;
    if (handler != nullptr && !closing) {
        Error e{Code::Io, Side::Internal, uv_err_name(status)};
        handler->on_write_error(e);
    }
    close_handle();
}

void TcpStream::Impl::read_through_transform(std::span<const std::byte> wire) {
    plain_in.clear();
    wire_out.clear();
    auto r = transform->on_wire(wire, plain_in, wire_out);
    write_wire_out(false);  // handshake answers, or the alert that explains a failure
    if (!r) {
        // The peer broke the transform's protocol: nothing more is read. The owner decides how
        // to close; a Flush close still sends the alert queued above.
        is_reading = false;
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
        want_read = false;
        if (handler != nullptr) {
            handler->on_read_end(&r.error());
        }
        return;
    }
    if (!plain_in.empty() && handler != nullptr) {
        handler->on_read(std::as_writable_bytes(std::span<char>(plain_in.data(), plain_in.size())));
    }
    release_if_large(plain_in);
}

void TcpStream::Impl::write_wire_out(bool batch) {
    if (wire_out.empty() || handle_closing || write_failed) {
        return;
    }
    const std::span<const std::byte> one[1] = {
        std::as_bytes(std::span<const char>(wire_out.data(), wire_out.size()))};
    try_write_now(one, batch);
    wire_out.clear();
    release_if_large(wire_out);
}

void TcpStream::Impl::release_if_large(std::string& scratch) noexcept {
    // An idle connection keeps no large scratch buffer (memory per idle TLS connection).
    if (scratch.capacity() > kKeepScratch) {
        std::string().swap(scratch);
    }
}

bool TcpStream::Impl::try_write_now(std::span<const std::span<const std::byte>> pieces,
                                    bool batch) {
    std::array<uv_buf_t, 4> bufs{};
    std::size_t total = 0;
    std::size_t n = 0;
    for (const auto& p : pieces) {
        if (p.empty()) {
            continue;
        }
        bufs[n++] = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(p.data())),
                                static_cast<unsigned>(p.size()));
        total += p.size();
    }
    if (total == 0) {
        return true;
    }
    if (batch && can_batch(total)) {
        // Small write: queue it for the loop's single send after this I/O phase.
        if (queue.empty()) {
            queue.emplace_back();
            queue.back().reserve(total);
            loop.send_batch()->add(this);
        }
        for (const auto& p : pieces) {
            queue.back().append(reinterpret_cast<const char*>(p.data()), p.size());
        }
        queued_bytes += total;
        if (!above_high && queued_bytes > high) {
            above_high = true;
            if (handler != nullptr) {
                handler->on_write_high();
            }
        }
        return true;
    }
    std::size_t written = 0;
    if (queue.empty() && in_flight == nullptr) {
        const int r = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp), bufs.data(),
                                   static_cast<unsigned>(n));
        if (r > 0) {
            written = static_cast<std::size_t>(r);
        }
        // Errors other than EAGAIN surface through the uv_write below, asynchronously.
    }
    if (written == total) {
        return true;
    }
    // Copy what the kernel did not take into one owned chunk.
    std::string rest;
    rest.reserve(total - written);
    std::size_t skip = written;
    for (const auto& p : pieces) {
        if (skip >= p.size()) {
            skip -= p.size();
            continue;
        }
        rest.append(reinterpret_cast<const char*>(p.data()) + skip, p.size() - skip);
        skip = 0;
    }
    const std::size_t added = rest.size();
    // Chunks handed to uv_write live in the WriteReq, so the queue's tail is never in flight.
    if (!queue.empty() && queue.back().size() + added <= 16 * 1024) {
        queue.back().append(rest);
    } else {
        queue.push_back(std::move(rest));
    }
    queued_bytes += added;
    flush_queue();
    if (!above_high && queued_bytes > high) {
        above_high = true;
        if (handler != nullptr) {
            handler->on_write_high();
        }
    }
    return true;
}

bool TcpStream::Impl::can_batch(std::size_t bytes) const noexcept {
    SendBatch* batch = loop.send_batch();
    if (batch == nullptr || !batch->healthy() || in_flight != nullptr || connecting != nullptr ||
        handle_closing) {
        return false;
    }
    if (queue.empty()) {
        return bytes <= kBatchMaxBytes && batch_fd() >= 0;
    }
    // Already batched: grow the one chunk while it stays small.
    return SendBatch::queued(this) && queue.size() == 1 &&
           queue.front().size() + bytes <= kBatchMaxBytes;
}

void TcpStream::Impl::batch_done(int result) noexcept {
    const std::size_t sent = result > 0 ? static_cast<std::size_t>(result) : 0;
    if (sent > 0 && !queue.empty()) {
        if (sent >= queue.front().size()) {
            queue.erase(queue.begin());
        } else {
            queue.front().erase(0, sent);
        }
    }
    if (queue.empty()) {
        queue.shrink_to_fit();  // an idle stream keeps no queue storage (memory per connection)
    }
    // The rest (none, a partial send, EAGAIN or an error) takes the ordinary path: uv_write
    // writes it when the socket is writable, or reports the error through write_cb.
    on_written(sent);
}

void TcpStream::Impl::flush_queue() {
    if (in_flight != nullptr || queue.empty() || handle_closing) {
        return;
    }
    unbatch();  // a batched chunk goes with the rest, in order
    auto* w = new WriteReq;
    w->owner = this;
    const std::size_t n = std::min(queue.size(), kMaxIov);
    w->chunks.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        w->bytes += queue[i].size();
        w->chunks.push_back(std::move(queue[i]));
    }
    queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(n));
    std::array<uv_buf_t, kMaxIov> bufs{};
    for (std::size_t i = 0; i < n; ++i) {
        bufs[i] = uv_buf_init(w->chunks[i].data(), static_cast<unsigned>(w->chunks[i].size()));
    }
    in_flight = w;
    const int r = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp), bufs.data(),
                           static_cast<unsigned>(n), write_cb);
    if (r < 0) {
        // uv_write refused at once (the socket is unusable): no write callback will come, so
        // the owner is told through on_write_error on the next loop turn (never from inside the
        // write() call that got here, STYLE §2.7), and the socket closes then, as after any
        // write error.
        in_flight = nullptr;
        delete w;
        write_failed = true;
        queue.clear();
        queued_bytes = 0;
        if (closing) {
            close_handle();  // a Flush close has nothing left to drain
            return;
        }
        write_error = r;
        if (error_timer == nullptr) {
            error_timer = new uv_timer_t;
            uv_timer_init(loop.raw(), error_timer);
            error_timer->data = this;
            ++handles_open;
        }
        uv_timer_start(error_timer, error_timer_cb, 0, 0);
    }
}

void TcpStream::Impl::on_written(std::size_t bytes) {
    queued_bytes -= std::min(bytes, queued_bytes);
    if (above_high && queued_bytes <= high / 2) {
        above_high = false;
        if (handler != nullptr && !closing) {
            handler->on_write_low();
        }
    }
    flush_queue();
    maybe_finish_flush();
}

void TcpStream::Impl::start_shutdown() {
    if (shutdown_sent || handle_closing) {
        return;
    }
    shutdown_sent = true;
    auto* req = new uv_shutdown_t;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp), shutdown_cb) != 0) {
        delete req;
    }
}

void TcpStream::Impl::maybe_finish_flush() {
    if (in_flight != nullptr || !queue.empty()) {
        return;
    }
    if (flushing && peer_eof) {
        // Everything is written and the peer's FIN was read already: close() sends our FIN,
        // and no unread input is left to turn it into a reset.
        close_handle();
        return;
    }
    if (shutdown_pending || flushing) {
        start_shutdown();
    }
    // A flushing close now waits for the peer's FIN (read_cb) or the flush deadline.
}

void TcpStream::Impl::close_handle() noexcept {
    if (handle_closing) {
        return;
    }
    handle_closing = true;
    closing = true;
    handler = nullptr;
    if (SendBatch::queued(this)) {
        // Bytes waiting for the batch would have been written at write() time without it:
        // give them the same chance before the socket goes.
        unbatch();
        if (!write_failed && !queue.empty()) {
            uv_buf_t buf = uv_buf_init(queue.front().data(),
                                       static_cast<unsigned>(queue.front().size()));
            uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1);
        }
    }
    if (in_flight != nullptr) {
        in_flight->owner = nullptr;  // uv cancels it; its callback frees it
        in_flight = nullptr;
    }
    if (connecting != nullptr) {
        connecting->owner = nullptr;
        connecting = nullptr;
    }
    if (flush_timer != nullptr) {
        uv_timer_stop(flush_timer);
        uv_close(reinterpret_cast<uv_handle_t*>(flush_timer), handle_closed_cb);
        flush_timer = nullptr;
    }
    if (error_timer != nullptr) {
        uv_timer_stop(error_timer);
        uv_close(reinterpret_cast<uv_handle_t*>(error_timer), handle_closed_cb);
        error_timer = nullptr;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), handle_closed_cb);
}

TcpStream::TcpStream(Loop& loop) : impl_(new Impl(loop)) {}

TcpStream::~TcpStream() {
    impl_->owner_gone = true;
    if (!impl_->closing) {
        close(CloseMode::Abort);
    }
    // The close already completed on an earlier loop iteration: the close callback left the
    // Impl to us (destroying a stream long after close() was a use-after-free).
    if (impl_->handles_open == 0) {
        delete impl_;
    }
}

void TcpStream::set_handler(StreamHandler* handler) noexcept {
    impl_->handler = handler;
}

uv_tcp_s* TcpStream::raw() noexcept {
    return &impl_->tcp;
}

Result<void> TcpStream::connect(const std::string& ip, std::uint16_t port,
                                std::function<void(Result<void>)> done) {
    sockaddr_storage addr{};
    if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
        uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
        return fail(Code::BackendUnreachable, Side::Internal, "not a numeric address: " + ip);
    }
    auto* c = new ConnectReq;
    c->owner = impl_;
    c->done = std::move(done);
    const int r = uv_tcp_connect(&c->req, &impl_->tcp, reinterpret_cast<sockaddr*>(&addr),
                                 connect_cb);
    if (r != 0) {
        delete c;
        return fail(Code::BackendUnreachable, Side::Backend, uv_err_name(r));
    }
    impl_->connecting = c;
    return {};
}

void TcpStream::pause(PauseReason reason) noexcept {
    impl_->pause_bits = static_cast<std::uint8_t>(impl_->pause_bits | reason);
    impl_->update_reading();
}

void TcpStream::resume(PauseReason reason) noexcept {
    impl_->pause_bits = static_cast<std::uint8_t>(impl_->pause_bits & ~reason);
    impl_->update_reading();
}

bool TcpStream::reading() const noexcept {
    return impl_->is_reading;
}

void TcpStream::start_read() noexcept {
    impl_->want_read = true;
    impl_->update_reading();
}

bool TcpStream::write(std::span<const std::byte> bytes) {
    const std::span<const std::byte> one[1] = {bytes};
    return writev(one);
}

bool TcpStream::writev(std::span<const std::span<const std::byte>> pieces) {
    Impl* impl = impl_;
    if (impl->closing || impl->write_failed || impl->read_failed || impl->shutdown_pending) {
        return false;
    }
    if (impl->transform) {
        impl->wire_out.clear();
        if (!impl->transform->on_plain(pieces, impl->wire_out)) {
            impl->wire_out.clear();
            return false;
        }
        impl->write_wire_out();
        return true;
    }
    return impl->try_write_now(pieces);
}

void TcpStream::set_transform(std::unique_ptr<StreamTransform> transform) noexcept {
    impl_->transform = std::move(transform);
}

std::size_t TcpStream::queued_bytes() const noexcept {
    return impl_->queued_bytes;
}

void TcpStream::set_watermarks(std::size_t high) noexcept {
    impl_->high = high;
}

bool TcpStream::above_high() const noexcept {
    return impl_->above_high;
}

bool TcpStream::closing() const noexcept {
    return impl_->closing;
}

bool TcpStream::handshaking() const noexcept {
    return impl_->transform && !impl_->transform->ready();
}

void TcpStream::shutdown_write() {
    if (impl_->closing) {
        return;
    }
    impl_->shutdown_pending = true;
    impl_->maybe_finish_flush();
}

void TcpStream::close(CloseMode mode) {
    Impl* impl = impl_;
    if (impl->closing) {
        if (mode == CloseMode::Abort) {
            impl->close_handle();
        }
        return;
    }
    impl->closing = true;
    impl->handler = nullptr;
    // A stream still connecting has nothing to flush: cancel the connect so that its callback
    // never runs after close() (libuv reports a Flush-closed connecting stream as connected at
    // once) and no half-open socket lingers until the flush deadline. A failed stream has no
    // peer left to flush to (issue 10).
    if (mode == CloseMode::Abort || impl->write_failed || impl->read_failed ||
        impl->connecting != nullptr) {
        impl->close_handle();
        return;
    }
    // Flush: write what is queued (and the transform's closing bytes), send FIN, then discard
    // input until the peer's FIN so the kernel does not answer unread bytes with a RST that
    // would destroy our last response.
    if (impl->transform) {
        impl->wire_out.clear();
        impl->transform->on_close(impl->wire_out);
        impl->write_wire_out(false);
    }
    impl->flushing = true;
    impl->flush_timer = new uv_timer_t;
    uv_timer_init(impl->loop.raw(), impl->flush_timer);
    impl->flush_timer->data = impl;
    ++impl->handles_open;
    uv_timer_start(impl->flush_timer, flush_timer_cb, kFlushDeadlineMs, 0);
    impl->update_reading();
    impl->maybe_finish_flush();
}

std::string format_address(const void* storage) {
    const auto* sa = static_cast<const sockaddr*>(storage);
    char ip[INET6_ADDRSTRLEN] = {0};
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const auto* in = static_cast<const sockaddr_in*>(storage);
        uv_ip4_name(in, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        return std::string(ip) + ":" + std::to_string(port);
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = static_cast<const sockaddr_in6*>(storage);
        uv_ip6_name(in6, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        return "[" + std::string(ip) + "]:" + std::to_string(port);
    }
    return "";
}

std::string TcpStream::peer_address() const {
    sockaddr_storage addr{};
    int len = sizeof(addr);
    if (uv_tcp_getpeername(&impl_->tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return "";
    }
    return format_address(&addr);
}

std::string TcpStream::peer_ip() const {
    return ip_of(peer_address());
}

std::string ip_of(std::string a) {
    const auto colon = a.rfind(':');
    if (colon == std::string::npos) {
        return a;
    }
    a.resize(colon);
    if (a.size() >= 2 && a.front() == '[') {
        a = a.substr(1, a.size() - 2);
    }
    return a;
}

void TcpStream::set_nodelay(bool on) noexcept {
    uv_tcp_nodelay(&impl_->tcp, on ? 1 : 0);
}

// ---------------------------------------------------------------------------------------

namespace {

void listener_closed_cb(uv_handle_t* handle) noexcept {
    delete reinterpret_cast<uv_tcp_t*>(handle);
}

void connection_cb(uv_stream_t* server, int status) noexcept {
    if (auto* self = static_cast<TcpListener*>(server->data)) {
        self->on_connection_cb(status);
    }
}

} // namespace

TcpListener::TcpListener(Loop& loop) : HandleOwner(loop), loop_(loop), tcp_(new uv_tcp_t) {
    uv_tcp_init(loop_.raw(), tcp_);
    tcp_->data = this;
}

TcpListener::~TcpListener() {
    close();
}

Result<void> TcpListener::listen(const std::string& host, std::uint16_t port,
                                 std::function<void(std::unique_ptr<TcpStream>)> on_accept) {
    if (tcp_ == nullptr) {
        return fail(Code::Io, Side::Internal, "listener closed");
    }
    sockaddr_storage addr{};
    if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
        uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
        return fail(Code::Io, Side::Config, "listen address is not a numeric IP: " + host);
    }
    int r = uv_tcp_bind(tcp_, reinterpret_cast<sockaddr*>(&addr), 0);
    if (r == 0) {
        r = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), 1024, connection_cb);
    }
    if (r != 0) {
        return fail(Code::Io, Side::Config,
                    std::string(uv_err_name(r)) + " (" + uv_strerror(r) + ")");
    }
    on_accept_ = std::move(on_accept);
    return {};
}

Result<void> TcpListener::adopt(int fd, std::function<void(std::unique_ptr<TcpStream>)> on_accept) {
    if (tcp_ == nullptr) {
        ::close(fd);
        return fail(Code::Io, Side::Internal, "listener closed");
    }
    // uv_tcp_open() takes the fd only when it succeeds; after that, closing the handle closes
    // it. Either way the caller is done with `fd` (tcp.h).
    int r = uv_tcp_open(tcp_, fd);
    if (r != 0) {
        ::close(fd);
    } else {
        r = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), 1024, connection_cb);
    }
    if (r != 0) {
        close_handles();
        return fail(Code::Io, Side::Config,
                    "cannot adopt fd " + std::to_string(fd) + ": " + uv_err_name(r) + " (" +
                        uv_strerror(r) + ")");
    }
    on_accept_ = std::move(on_accept);
    return {};
}

std::string TcpListener::local_address() const {
    sockaddr_storage addr{};
    int len = sizeof(addr);
    if (tcp_ == nullptr || uv_tcp_getsockname(tcp_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return "";
    }
    return format_address(&addr);
}

std::uint16_t TcpListener::local_port() const {
    sockaddr_storage addr{};
    int len = sizeof(addr);
    if (tcp_ == nullptr || uv_tcp_getsockname(tcp_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return 0;
    }
    if (addr.ss_family == AF_INET6) {
        return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void TcpListener::close() {
    close_handles();
}

void TcpListener::close_handles() noexcept {
    if (tcp_ == nullptr) {
        return;
    }
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), listener_closed_cb);
    tcp_ = nullptr;
}

void TcpListener::on_connection_cb(int status) {
    if (status < 0 || tcp_ == nullptr) {
        return;
    }
    auto stream = std::make_unique<TcpStream>(loop_);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(tcp_),
                  reinterpret_cast<uv_stream_t*>(stream->raw())) != 0) {
        return;
    }
    on_accept_(std::move(stream));
}

} // namespace proxy::core
