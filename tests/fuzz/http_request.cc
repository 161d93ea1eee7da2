// Fuzz target http_request: the HTTP head path (proxy/http/parser.h) in both directions, plus
// what the proxy does with a parsed head (proxy/ws/handshake.h).
//
// Input: [settings] [chunk plan] [bytes] (layout in fuzz_support.h).
//   settings bit 0      0 = RequestParser (client side), 1 = ResponseParser (backend side)
//   settings bits 1-2   max_header_bytes: 64, 256, 1024, 8192
//   settings bits 3-4   max_headers: 1, 4, 16, 100
//   settings bits 5-6   max_body: 0, 16, 1024, 1 MiB
//
// Requests are parsed like HttpConnection::process does: feed; on completion reset() and go on
// with the rest (keep-alive pipelining) unless the request upgrades; stop at the first error.
// A response is parsed up to its head, like BackendConnection's handshake.
// The bytes are parsed whole, cut by the chunk plan, and byte by byte. Invariants:
//   - the same verdict for any split: the same messages ending at the same stream offsets,
//     then the same error (code and side) or the same "needs more input";
//   - feed(): consumed ≤ size; a feed that does not complete consumes everything;
//   - every complete request is within its limits (head bytes, header count, body), has a
//     method and a target, token header names and values without CR, LF, NUL or surrounding
//     whitespace;
//   - a complete response has a status in 100..599;
//   - errors use the documented codes and sides (request: 400/413/431 codes from the client;
//     response: BackendBadHandshake from the backend);
//   - validate_client_handshake / validate_backend_response accept only what they promise.

#include "proxy/core/result.h"
#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/ws/handshake.h"
#include "tests/fuzz/fuzz_support.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using proxy::core::Code;
using proxy::core::Side;

struct Verdict {
    std::vector<std::string> messages; // one description per complete message, with its end
    std::optional<proxy::core::Error> error;
    bool operator==(const Verdict& o) const {
        if (messages != o.messages || error.has_value() != o.error.has_value()) {
            return false;
        }
        // Code and side make the verdict (status, metric label). The context may name a
        // different detail: the HTTP/2 preface whole is "HTTP/2 preface on an HTTP/1.1 port",
        // cut after its first empty line "head end not recognised" (both 400).
        return !error || (error->code == o.error->code && error->side == o.error->side);
    }
};

std::string show(const Verdict& v) {
    std::string out;
    for (const auto& m : v.messages) {
        out += "[" + fuzz::escape(m) + "] ";
    }
    return out + (v.error ? "error " + std::string(proxy::core::to_string(v.error->code)) + ": " +
                                v.error->context
                          : "no error");
}

std::string describe(const proxy::http::Message& m) {
    std::string out = std::to_string(m.http_major) + "." + std::to_string(m.http_minor) +
                      (m.keep_alive ? " keep-alive" : " close") + (m.upgrade ? " upgrade" : "") +
                      "\n";
    for (const auto& h : m.headers) {
        out += h.name + ": " + h.value + "\n";
    }
    return out + "body " + std::to_string(m.body.size()) + ": " + m.body;
}

bool is_ws(char c) { return c == ' ' || c == '\t'; }

void check_headers(const proxy::http::Message& m, const proxy::http::ParserLimits& limits) {
    FUZZ_CHECK(m.headers.size() <= limits.max_headers);
    for (const auto& h : m.headers) {
        FUZZ_CHECK_MSG(proxy::http::is_token(h.name), fuzz::escape(h.name));
        FUZZ_CHECK(h.value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
        FUZZ_CHECK(h.value.empty() || (!is_ws(h.value.front()) && !is_ws(h.value.back())));
    }
}

// Head bytes of a request that starts at `start` of `stream`: from there (leading empty lines
// included, as the parser counts them) to the end of the first empty line after the request
// line.
std::size_t head_bytes(std::string_view stream, std::size_t start) {
    std::size_t line = start;
    while (line < stream.size() && (stream[line] == '\r' || stream[line] == '\n')) {
        ++line;
    }
    const std::size_t end = stream.find("\r\n\r\n", line);
    FUZZ_CHECK(end != std::string_view::npos);
    return end + 4 - start;
}

void check_request(const proxy::http::Request& r, const proxy::http::ParserLimits& limits,
                   std::string_view stream, std::size_t start) {
    check_headers(r, limits);
    FUZZ_CHECK(!r.method.empty() && !r.target.empty());
    FUZZ_CHECK(r.body.size() <= limits.max_body);
    FUZZ_CHECK(head_bytes(stream, start) <= limits.max_header_bytes);
    FUZZ_CHECK(r.path().size() + r.query().size() <= r.target.size());
    // What HttpConnection does next with a request that wants a WebSocket.
    if (proxy::ws::wants_websocket(r)) {
        auto hs = proxy::ws::validate_client_handshake(r);
        if (hs) {
            FUZZ_CHECK(r.method == "GET" && r.body.empty() && hs->key.size() == 24);
            for (const auto& p : hs->protocols) {
                FUZZ_CHECK(proxy::http::is_token(p));
            }
        } else {
            FUZZ_CHECK(hs.error().side == Side::Client);
            FUZZ_CHECK(hs.error().code == Code::BadRequest ||
                       hs.error().code == Code::UpgradeRequired);
        }
    }
}

Verdict parse_requests(std::string_view stream, const proxy::http::ParserLimits& limits,
                       const fuzz::ChunkPlan& plan) {
    Verdict v;
    proxy::http::RequestParser parser(limits);
    std::size_t start = 0; // stream offset where the current request began
    for (const auto& [offset, length] : plan.cut(stream.size())) {
        std::string_view chunk = stream.substr(offset, length);
        std::size_t chunk_start = offset;
        for (;;) {
            auto r = parser.feed(std::span<const char>(chunk.data(), chunk.size()));
            if (!r) {
                v.error = r.error();
                const Code c = r.error().code;
                FUZZ_CHECK(r.error().side == Side::Client);
                FUZZ_CHECK(c == Code::BadRequest || c == Code::HeaderTooLarge ||
                           c == Code::PayloadTooLarge);
                FUZZ_CHECK(!r.error().context.empty());
                return v;
            }
            FUZZ_CHECK(r->consumed <= chunk.size());
            FUZZ_CHECK(!chunk.empty() ? parser.started() : true);
            if (!r->complete) {
                FUZZ_CHECK(r->consumed == chunk.size());
                break;
            }
            FUZZ_CHECK(parser.head_complete());
            const std::size_t end = chunk_start + r->consumed;
            const proxy::http::Request& req = parser.request();
            check_request(req, limits, stream, start);
            v.messages.push_back(std::to_string(end) + " " + req.method + " " + req.target + " " +
                                 describe(req));
            if (req.upgrade || req.method == "CONNECT") {
                return v; // the rest of the stream is not HTTP
            }
            parser.reset();
            FUZZ_CHECK(!parser.started() && !parser.head_complete());
            start = end;
            chunk.remove_prefix(r->consumed);
            chunk_start = end;
            if (chunk.empty()) {
                break;
            }
        }
    }
    return v;
}

Verdict parse_response(std::string_view stream, const proxy::http::ParserLimits& limits,
                       const fuzz::ChunkPlan& plan) {
    Verdict v;
    proxy::http::ResponseParser parser(limits);
    for (const auto& [offset, length] : plan.cut(stream.size())) {
        auto r = parser.feed(std::span<const char>(stream.data() + offset, length));
        if (!r) {
            v.error = r.error();
            FUZZ_CHECK(r.error().code == Code::BackendBadHandshake);
            FUZZ_CHECK(r.error().side == Side::Backend && !r.error().context.empty());
            return v;
        }
        FUZZ_CHECK(r->consumed <= length);
        if (!r->complete) {
            FUZZ_CHECK(r->consumed == length);
            continue;
        }
        const proxy::http::Response& res = parser.response();
        FUZZ_CHECK(res.status >= 100 && res.status <= 599);
        check_headers(res, limits);
        FUZZ_CHECK(head_bytes(stream, 0) <= limits.max_header_bytes);
        v.messages.push_back(std::to_string(offset + r->consumed) + " " +
                             std::to_string(res.status) + " " + res.reason + " " + describe(res));
        // What BackendConnection does next (the key is the RFC 6455 §1.3 example).
        const std::vector<std::string> offered{"chat", "superchat"};
        auto selected =
            proxy::ws::validate_backend_response(res, "dGhlIHNhbXBsZSBub25jZQ==", offered);
        if (selected) {
            FUZZ_CHECK(res.status == 101);
            FUZZ_CHECK(selected->empty() || *selected == "chat" || *selected == "superchat");
        } else {
            FUZZ_CHECK(selected.error().side == Side::Backend);
            FUZZ_CHECK(selected.error().code ==
                       (res.status == 101 ? Code::BackendBadHandshake : Code::BackendRejected));
        }
        return v;
    }
    return v;
}

constexpr std::array<std::size_t, 4> kHeaderBytes{64, 256, 1024, 8192};
constexpr std::array<std::size_t, 4> kHeaders{1, 4, 16, 100};
constexpr std::array<std::size_t, 4> kBody{0, 16, 1024, std::size_t{1} << 20};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > std::size_t{64} * 1024) {
        return 0; // three runs, one of them byte by byte: keep each input cheap
    }
    fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    const bool response = (settings & 1u) != 0;
    proxy::http::ParserLimits limits;
    limits.max_header_bytes = kHeaderBytes[(settings >> 1) & 3u];
    limits.max_headers = kHeaders[(settings >> 3) & 3u];
    limits.max_body = kBody[(settings >> 5) & 3u];
    const fuzz::ChunkPlan plan = in.plan();
    const std::string_view stream = in.rest();

    auto parse = response ? parse_response : parse_requests;
    const Verdict whole = parse(stream, limits, fuzz::ChunkPlan());
    const Verdict split = parse(stream, limits, plan);
    FUZZ_CHECK_MSG(whole == split, show(whole) + "\n  split: " + show(split));
    const Verdict bytewise = parse(stream, limits, fuzz::ChunkPlan::bytewise());
    FUZZ_CHECK_MSG(whole == bytewise, show(whole) + "\n  byte by byte: " + show(bytewise));
    return 0;
}
