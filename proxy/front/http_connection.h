#pragma once
// HttpConnection: a client connection in its HTTP/1.1 phase. Parses requests (strict llhttp,
// with the configured limits and header_timeout), routes them (SPEC §1), and:
//  - hands a valid WebSocket upgrade over to a WsRelay with any bytes pipelined after it;
//  - opens or resumes SSE sessions and hands the socket over to an SseTransport, and WebSocket
//    sessions (subprotocol wsbridge.session.v1) to a WsSessionTransport;
//  - opens long-poll sessions, holds polls (PollTransport), takes POSTed messages and DELETEs,
//    answers CORS preflights, all with keep-alive;
//  - answers everything else with a JSON error.
// A rejected upgrade always closes the connection, so no bytes meant for a WebSocket can be
// read as a next HTTP request. While a request waits (backend handshake of a new session, a
// held poll) reading pauses and bytes already read are kept for afterwards.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/front/client_slot.h"
#include "proxy/context.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "proxy/http/parser.h"
#include "proxy/session/session.h"
#include "proxy/ws/handshake.h"
#include "transports/long_polling/poll_transport.h"
#include "transports/mux/mux_poll_transport.h"

namespace proxy {

/// See the file comment. Owned by the Context's registry (adopted by Server before start());
/// it retires itself when it ends or hands its socket over (to a WsRelay or an SseTransport).
class HttpConnection final : public Closable,
                             private core::StreamHandler,
                             private SessionOpener,
                             private transports::long_polling::PollResponder {
  public:
    /// `client_address` is the peer's "ip:port" as the Server read it at accept.
    HttpConnection(Context& context, std::unique_ptr<core::TcpStream> stream, ClientSlot slot,
                   std::string scheme, std::string client_address);
    ~HttpConnection() override;

    /// Starts reading and the header timer.
    void start();
    void shutdown(bool going_away) override;

  private:
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_error(const core::Error& error) override;

    /// What handling one request did to the connection.
    enum class Next : std::uint8_t { Continue, Wait, Stop };

    /// Parses and handles requests in `data` until it is used up, a request waits, or the
    /// connection ends. Bytes after a waiting request are kept in leftover_.
    void process(std::string_view data);
    /// Handles one complete request; `rest` is what followed it in the buffer.
    Next handle_request(std::string_view rest);
    Next handle_upgrade(const struct RouteRuntime& route, std::string_view rest);
    void on_header_timeout();
    /// For a parse error after the head (a body over max_post_body): true when the request goes
    /// to a route's session endpoints (no upgrade), so the rejection counts as
    /// transport="session", like the session's own (issue 10).
    bool targets_session() const;
    /// Sends an error and closes (Flush) or keeps the connection for the next request.
    void respond_error(unsigned status, std::string_view code, std::string_view detail,
                       bool close, std::string_view reason,
                       std::vector<std::pair<std::string, std::string>> extra = {});
    /// Sends a non-error response; closes when `close`.
    void respond(unsigned status, std::vector<std::pair<std::string, std::string>> headers,
                 std::string_view body, bool close);
    /// After a response on a kept-alive connection: re-arm the head timer.
    void next_request();
    /// A waiting request was answered: continue with the kept bytes, then read again.
    void resume_after_wait();
    void end();

    // Session requests (proxy/session_requests.cc).
    Next handle_session_request(const RouteRuntime& route);
    Next open_session(const RouteRuntime& route, int kind, std::string reset_reason);
    Next handle_sse(const RouteRuntime& route);
    Next handle_poll(const RouteRuntime& route, std::string_view session_id);
    Next handle_send(const RouteRuntime& route, std::string_view session_id);
    Next handle_preflight(const RouteRuntime& route);
    /// A WebSocket upgrade offering `wsbridge.session.v1`: opens, resumes or resets a session
    /// and hands the socket to a WsSessionTransport (docs/protocol.md, WebSocket sessions).
    Next handle_ws_session(const RouteRuntime& route, std::string_view rest,
                           const ws::ClientHandshake& handshake);
    void start_ws_session(Session& session, std::uint64_t after,
                          std::optional<std::string> reset, std::string pending);
    /// Many sessions on one connection (docs/protocol.md): `?transport=mux`.
    Next handle_mux(const RouteRuntime& route);
    Next handle_mux_sse(const RouteRuntime& route);
    Next handle_mux_poll(const RouteRuntime& route);
    Next handle_mux_send(const RouteRuntime& route);
    /// CORS headers for the current request's Origin (empty when there is none).
    std::vector<std::pair<std::string, std::string>> cors_headers() const;
    /// The path clients use for this route's session requests.
    std::string session_url(std::string_view id) const;
    void start_sse(Session& session, std::uint64_t after, std::optional<std::string> reset);
    void start_poll(Session& session, std::uint64_t ack,
                    std::optional<transports::long_polling::Reset> reset);
    /// Ends the held poll's (or multiplexed poll's) life here (answered or abandoned): uncounts
    /// it from wsbridge_connections{transport="longpoll"} and deletes it at a safe point.
    /// Idempotent.
    void drop_poll();
    // SessionOpener
    void on_session_open() override;
    void on_session_failed(const core::Error& error, unsigned status) override;
    // PollResponder
    void respond_poll(std::string body) override;

    Context& context_;
    std::unique_ptr<core::TcpStream> stream_;
    ClientSlot slot_;
    std::string scheme_;
    std::string client_address_;
    http::RequestParser parser_;
    core::Timer header_timer_;     ///< header_timeout for a head, message_timeout for a body
    std::string leftover_;     ///< bytes read after a waiting request, parsed afterwards
    Session* opening_ = nullptr;       ///< session whose backend handshake we wait for
    int opening_kind_ = 0;             ///< what to do once it opens (session_requests.cc)
    std::string opening_reset_;        ///< reset reason to announce ("" for none)
    std::string ws_key_;               ///< a WebSocket session's Sec-WebSocket-Key (for its 101)
    std::optional<std::uint64_t> ws_first_seq_;  ///< its `seq` query parameter
    std::unique_ptr<transports::long_polling::PollTransport> poll_;  ///< held poll
    std::unique_ptr<transports::mux::MuxPollTransport> mux_poll_;    ///< held multiplexed poll
    bool poll_close_ = false;          ///< close the connection after the poll answer
    std::vector<std::pair<std::string, std::string>> poll_cors_;
    /// Route path of the held poll, for its wsbridge_connections{route,transport} gauge.
    std::string poll_route_;
    bool waiting_ = false;
    unsigned requests_ = 0;
    bool ended_ = false;
    bool body_clock_ = false;          ///< header_timer_ runs message_timeout for a body
    bool session_request_ = false;     ///< the request went to the session endpoints
};

} // namespace proxy
