#pragma once
// WsRelay: one WebSocket client bridged transparently to one backend WebSocket connection
// (SPEC §2). Backend first: the client's 101 is sent only after the backend's valid 101, and
// client bytes pipelined behind the upgrade request are held until then.
//
// After both 101s, frames are relayed as they arrive, in order, streaming (a frame's payload is
// forwarded before the frame is complete), text/binary and fragmentation kept, client frames
// unmasked and re-masked with fresh keys. Ping/pong are per hop. Close frames are relayed and
// each close handshake completes (or times out after close_timeout). Backpressure: when one
// side's write queue passes its high watermark, reading from the other side pauses until it
// drains to the low watermark. A client message (or frame) still incomplete message_timeout
// after its first byte arrived is a slow drip: close 1008 (checked on the heartbeat tick). A
// client whose queue stays over outbound_queue without draining for idle_timeout / 2 is a
// slow consumer: close 1008.
//
// Lifetime (loop.h, the ownership rule): created by HttpConnection and adopted by the Context's
// registry, which owns it; finish() (or a refused backend handshake) logs one line, updates
// metrics and retires it from the registry (destroyed at the loop's next check phase). Its
// client stream, backend connection and timers are parts.

#include <cstdint>
#include <memory>
#include <string>

#include "proxy/backend/backend_connection.h"
#include "proxy/front/client_slot.h"
#include "proxy/context.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "proxy/rate_limiter.h"
#include "proxy/http/message.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/handshake.h"
#include "proxy/ws/writer.h"
#include "transports/stall_clock.h"

namespace proxy {

/// See the file comment.
class WsRelay final : public Closable,
                      private core::StreamHandler,
                      private ws::DecoderHandler,
                      private BackendHandler {
  public:
    /// Takes the client stream (reading paused) and the request; `pending` holds client bytes
    /// already read after the request head.
    WsRelay(Context& context, const RouteRuntime& route, std::unique_ptr<core::TcpStream> client,
            ClientSlot slot, const http::Request& request, ws::ClientHandshake handshake,
            std::string pending);
    ~WsRelay() override;

    /// Starts the backend connection. Must be called once, right after the Context adopted the
    /// relay: it retires itself from the registry when done.
    void start(const http::Request& request, std::string_view scheme);

    /// Shutdown/drain: close 1001 both ways (going_away) or abort.
    void shutdown(bool going_away) override;

  private:
    enum class Phase : std::uint8_t { Connecting, Open, Done };

    // Client stream.
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_high() override;
    void on_write_low() override;
    void on_write_error(const core::Error& error) override;
    // Client decoder.
    void on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode message) override;
    void on_data_frame_payload(std::span<const std::byte> bytes) override;
    void on_data_frame_end(bool message_end) override;
    void on_ping(std::span<const std::byte> payload) override;
    void on_pong(std::span<const std::byte> payload) override;
    void on_close(std::uint16_t code, std::string_view reason) override;
    // Backend life cycle.
    void on_backend_open(std::string_view protocol, const http::Response& response) override;
    void on_backend_failed(const core::Error& error, unsigned status,
                           const http::Response* response) override;
    void on_backend_read_done() override;
    void on_backend_gone(const core::Error* error) override;
    void on_backend_write_high() override;
    void on_backend_write_low() override;
    // Backend frames (through backend_frames_).
    void on_backend_frame_begin(const ws::FrameHeader& header);
    void on_backend_frame_payload(std::span<const std::byte> bytes);
    void on_backend_frame_end(bool message_end);
    void on_backend_close(std::uint16_t code, std::string_view reason);

    /// The backend decoder's handler: the relay implements ws::DecoderHandler for its client
    /// decoder already, so backend frames come through this adapter, one direct call each.
    class BackendFrames final : public ws::DecoderHandler {
      public:
        explicit BackendFrames(WsRelay& relay) noexcept : relay_(relay) {}
        void on_data_frame_begin(const ws::FrameHeader& header, ws::Opcode /*message*/) override {
            relay_.on_backend_frame_begin(header);
        }
        void on_data_frame_payload(std::span<const std::byte> bytes) override {
            relay_.on_backend_frame_payload(bytes);
        }
        void on_data_frame_end(bool message_end) override {
            relay_.on_backend_frame_end(message_end);
        }
        /// Never called: the BackendConnection answers pings itself (ping/pong are per hop).
        void on_ping(std::span<const std::byte> /*payload*/) override {}
        void on_pong(std::span<const std::byte> /*payload*/) override {}
        void on_close(std::uint16_t code, std::string_view reason) override {
            relay_.on_backend_close(code, reason);
        }

      private:
        WsRelay& relay_;
    };

    void process_client_bytes(std::span<std::byte> bytes);
    void flush_client();
    void flush_all();
    /// The client broke the protocol (or a policy): log and count it, send the backend a Close
    /// with the violation's code and relay what the backend still sends until its Close
    /// answer (bounded by close_timeout), then end_failed_client().
    void fail_client(const core::Error& error);
    /// Closes the client with the violation's code (after the frame being relayed) and ends.
    void end_failed_client();
    void client_gone(std::string_view why);
    void on_tick();
    void on_close_timeout();
    /// The client's queue stayed over outbound_queue without draining: close 1008.
    void close_slow_consumer();
    void send_slow_consumer_close();
    void maybe_finish_handshakes();
    /// Ends the relay: closes both streams (Flush), logs, counts, defers deletion.
    void finish(std::uint16_t code, std::string_view reason, std::string_view by);

    Context& context_;
    /// The route as it was when this started: reloads leave it alone (it keeps its config).
    std::shared_ptr<const RouteRuntime> snapshot_;
    const RouteRuntime& route_;
    const config::RouteLimits& limits_;
    std::unique_ptr<core::TcpStream> client_;
    ClientSlot slot_;
    ws::ClientHandshake handshake_;
    std::string pending_;          ///< client bytes held until both 101s
    std::string client_address_;
    ws::Decoder decoder_;
    ws::FrameWriter client_writer_;
    BackendFrames backend_frames_{*this};
    std::unique_ptr<BackendConnection> backend_;  ///< a part: opened by start()
    std::unique_ptr<core::Timer> tick_timer_;
    std::unique_ptr<core::Timer> close_timer_;
    Phase phase_ = Phase::Connecting;
    bool client_close_sent_ = false;
    bool client_close_received_ = false;
    bool backend_close_sent_ = false;
    bool backend_close_received_ = false;
    std::uint16_t client_close_code_ = 0;    ///< code the client sent
    std::string client_close_reason_;
    std::uint16_t backend_close_code_ = 0;   ///< code the backend sent
    std::string backend_close_reason_;
    std::string closed_by_;                  ///< who started closing: client, backend, proxy
    std::uint16_t failing_code_ = 0;         ///< client violation's close code, once failing
    std::string failing_reason_;
    std::uint64_t started_at_ = 0;
    std::uint64_t last_client_read_ = 0;
    std::uint64_t last_client_write_ = 0;
    std::uint64_t client_ping_sent_at_ = 0;
    std::uint64_t message_started_at_ = 0;   ///< a client frame or message is incomplete since
    bool in_data_message_ = false;           ///< between a data message's first and last frame
    transports::StallClock stall_;           ///< slow consumer: no drain while paused
    bool slow_closing_ = false;              ///< finishing a half-relayed frame before a 1008
    std::uint64_t msgs_in_ = 0;    ///< client → backend
    /// wsbridge_messages_total{route,transport="websocket",direction} cells (Metrics::cell),
    /// counted per message so rates show while the relay lives.
    std::uint64_t* msgs_in_cell_ = nullptr;
    std::uint64_t* msgs_out_cell_ = nullptr;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t msgs_out_ = 0;   ///< backend → client
    std::uint64_t bytes_out_ = 0;
    bool backend_paused_by_client_queue_ = false;
    bool client_paused_by_backend_queue_ = false;  ///< heartbeat: client pongs wait unread
    bool finished_ = false;
    bool client_tls_ = false;     ///< the client reached us over TLS (logs)
    bool rate_exceeded_ = false;
    RateLimiter rate_;               ///< client → backend messages (close 1008 when over)
};

} // namespace proxy
