#pragma once
// HttpConnection: a client connection in its HTTP/1.1 phase. Parses requests (strict llhttp,
// with the configured limits and header_timeout), routes them, answers plain requests with
// JSON errors (keep-alive when allowed), and hands a valid WebSocket upgrade over to a
// WsRelay together with any bytes pipelined after it. A rejected upgrade always closes the
// connection, so no bytes meant for a WebSocket can be read as a next HTTP request.

#include <memory>
#include <string>

#include "proxy/client_slot.h"
#include "proxy/context.h"
#include "proxy/core/tcp.h"
#include "proxy/core/timer.h"
#include "proxy/http/parser.h"

namespace proxy {

/// See the file comment. Owned by itself (deferred deletion) once start() is called.
class HttpConnection final : public Closable, private core::StreamHandler {
  public:
    HttpConnection(Context& context, std::unique_ptr<core::TcpStream> stream, ClientSlot slot,
                   std::string scheme);
    ~HttpConnection() override;

    /// Starts reading and the header timer.
    void start();
    void shutdown(bool going_away) override;

  private:
    void on_read(std::span<std::byte> bytes) override;
    void on_read_end(const core::Error* error) override;
    void on_write_error(const core::Error& error) override;

    /// Handles one complete request; `rest` is what followed it in the buffer. Returns false
    /// when the connection is finished (closed or handed over).
    bool handle_request(std::string_view rest);
    bool handle_upgrade(const struct RouteRuntime& route, std::string_view rest);
    void on_header_timeout();
    /// Sends an error and closes (Flush) or keeps the connection for the next request.
    void respond_error(unsigned status, std::string_view code, std::string_view detail,
                       bool close, std::string_view reason);
    void end();

    Context& context_;
    std::unique_ptr<core::TcpStream> stream_;
    ClientSlot slot_;
    std::string scheme_;
    std::string client_address_;
    http::RequestParser parser_;
    core::Timer header_timer_;
    std::string leftover_;     ///< bytes after a complete request not yet parsed
    unsigned requests_ = 0;
    bool ended_ = false;
};

} // namespace proxy
