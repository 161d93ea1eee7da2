#pragma once
// Sans-I/O HTTP/1.1 parsers over llhttp in strict mode (no lenient flag is ever set; llhttp's
// README warns that they enable request smuggling). The only file that includes llhttp.h is
// proxy/http/parser.cc.
//
// RequestParser: one request at a time. feed() stops right after a complete message (llhttp
// is paused in on_message_complete), so keep-alive pipelining and upgrades see exactly which
// bytes belong to the next message or to the WebSocket stream. Limits are enforced from the
// callbacks, before anything more is buffered:
//   - request line + header bytes (the final CRLF included) > max_header_bytes
//     → HeaderTooLarge (431)
//   - header count > max_headers → HeaderTooLarge (431)
//   - body bytes > max_body → PayloadTooLarge (413)
//   - Content-Length with Transfer-Encoding, bad chunking, bad tokens, obs-fold, bare LF,
//     invalid versions… (llhttp strict errors) → BadRequest (400)
//   - HTTP/2 preface → BadRequest (400)
//   - header names that are not tokens, bare LF or CR line ends → BadRequest (400)
// Trailers of chunked bodies are dropped (they could otherwise add headers after the checks).
//
// ResponseParser: parses a backend's response head only; feed() stops right after the
// head, and the bytes after it (the first WebSocket frames of a 101) are left unconsumed.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "proxy/core/result.h"
#include "proxy/http/message.h"

namespace proxy::http {

/// Limits applied while parsing. Defaults match the config defaults.
struct ParserLimits {
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_headers = 100;
    std::size_t max_body = 1024 * 1024;
};

/// How far feed() got.
struct FeedResult {
    std::size_t consumed = 0;  ///< bytes of the input that belong to the current message
    bool complete = false;     ///< the message (request: with body; response: head) is done
};

/// Incremental request parser. Owns its llhttp state (about 100 bytes).
class RequestParser {
  public:
    explicit RequestParser(ParserLimits limits = {});
    ~RequestParser();
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    /// Parses `data` as a continuation of the current request. Returns how many bytes were
    /// consumed; when `complete`, request() holds the whole message and the rest of `data`
    /// is the next message (or WebSocket bytes after an upgrade). After an error the parser
    /// must be reset() or discarded.
    core::Result<FeedResult> feed(std::span<const char> data);
    /// The request being parsed (complete once feed() said so; head fields, the method
    /// included, are set once head_complete(), so an error in the body can name them).
    Request& request() noexcept { return request_; }
    const Request& request() const noexcept { return request_; }
    /// True once any byte of the current request was consumed.
    bool started() const noexcept { return started_; }
    /// True once the head (request line and headers) is complete.
    bool head_complete() const noexcept { return head_complete_; }
    /// Prepares for the next request on the same connection.
    void reset();

    /// Implementation detail for the llhttp callbacks in parser.cc.
    struct State;

  private:
    ParserLimits limits_;
    std::unique_ptr<State> state_;
    Request request_;
    bool started_ = false;
    bool head_complete_ = false;
};

/// Incremental response-head parser for backend handshakes.
class ResponseParser {
  public:
    explicit ResponseParser(ParserLimits limits = {});
    ~ResponseParser();
    ResponseParser(const ResponseParser&) = delete;
    ResponseParser& operator=(const ResponseParser&) = delete;

    /// Parses `data`; stops right after the head. Errors: BackendBadHandshake for malformed
    /// or oversized heads.
    core::Result<FeedResult> feed(std::span<const char> data);
    /// The response head (complete once feed() said so).
    Response& response() noexcept { return response_; }

    /// Implementation detail for the llhttp callbacks in parser.cc.
    struct State;

  private:
    ParserLimits limits_;
    std::unique_ptr<State> state_;
    Response response_;
};

} // namespace proxy::http
