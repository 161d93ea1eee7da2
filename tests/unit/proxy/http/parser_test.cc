// Tests for proxy/http/parser.cc (RequestParser, ResponseParser) and the helpers of
// proxy/http/message.cc. Every input goes through parse_every_split(), which feeds it whole,
// split in two at every byte offset, and byte by byte, and requires the same outcome each time:
// the same parsed fields, the same consumed count relative to the whole input, the same error.

#include "proxy/http/parser.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/result.h"
#include "proxy/http/message.h"

namespace proxy::http {
namespace {

using core::Code;
using namespace std::string_literals;

// What one parse produced. `fields` describes the message so that two outcomes compare with ==.
struct Outcome {
    bool complete = false;
    std::size_t consumed = 0;  // relative to the whole input
    Code error = Code::Ok;
    std::string fields;

    bool operator==(const Outcome&) const = default;
};

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F && c != '\\') {
            out.push_back(c);
        } else {
            char hex[5];
            std::snprintf(hex, sizeof(hex), "\\x%02X", u);
            out.append(hex);
        }
    }
    return out;
}

std::string describe_message(const Message& m) {
    std::string out = "HTTP/" + std::to_string(m.http_major) + "." + std::to_string(m.http_minor) +
                      " keep_alive=" + (m.keep_alive ? "1" : "0") +
                      " upgrade=" + (m.upgrade ? "1" : "0") + "\n";
    for (const auto& h : m.headers) {
        out += "[" + escape(h.name) + "]=[" + escape(h.value) + "]\n";
    }
    out += "body=[" + escape(m.body) + "]";
    return out;
}

std::string describe(RequestParser& p) {
    const Request& r = p.request();
    return escape(r.method) + " " + escape(r.target) + " " + describe_message(r);
}

std::string describe(ResponseParser& p) {
    const Response& r = p.response();
    return std::to_string(r.status) + " [" + escape(r.reason) + "] " + describe_message(r);
}

std::string describe(const Outcome& o) {
    if (o.error != Code::Ok) {
        return "error " + std::string(core::to_string(o.error));
    }
    return std::string(o.complete ? "complete" : "incomplete") + " consumed=" +
           std::to_string(o.consumed) + "\n" + o.fields;
}

// Feeds `input` in the pieces given by the ascending `cuts`. Stops at the first error or at
// completion; the fields are only described once the message is complete.
template <class Parser>
Outcome run(std::string_view input, const std::vector<std::size_t>& cuts, ParserLimits limits) {
    Parser parser(limits);
    Outcome out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t end = i < cuts.size() ? cuts[i] : input.size();
        const std::span<const char> part{input.data() + start, end - start};
        auto r = parser.feed(part);
        if (!r) {
            return Outcome{false, 0, r.error().code, {}};
        }
        out.consumed = start + r->consumed;
        if (r->complete) {
            out.complete = true;
            out.fields = describe(parser);
            return out;
        }
        if (r->consumed != part.size()) {
            out.fields = "short consume without completion: " + std::to_string(r->consumed) +
                         " of " + std::to_string(part.size());
            return out;
        }
        start = end;
    }
    return out;
}

// Runs `input` whole, split in two at every offset, and byte by byte; every outcome must equal
// the whole-input one, which is returned for the caller's own checks.
template <class Parser>
Outcome parse_every_split(std::string_view input, ParserLimits limits = {}) {
    const Outcome whole = run<Parser>(input, {}, limits);
    for (std::size_t k = 0; k <= input.size(); ++k) {
        const Outcome split = run<Parser>(input, {k}, limits);
        INFO("split at byte ", k, " of ", input.size());
        REQUIRE_MESSAGE(split == whole, describe(split), "\n--- whole input gave ---\n",
                        describe(whole));
    }
    std::vector<std::size_t> bytewise;
    for (std::size_t k = 1; k < input.size(); ++k) {
        bytewise.push_back(k);
    }
    const Outcome bytes = run<Parser>(input, bytewise, limits);
    INFO("byte by byte");
    REQUIRE_MESSAGE(bytes == whole, describe(bytes), "\n--- whole input gave ---\n",
                    describe(whole));
    return whole;
}

Outcome parse_request(std::string_view input, ParserLimits limits = {}) {
    return parse_every_split<RequestParser>(input, limits);
}

Outcome parse_response(std::string_view input, ParserLimits limits = {}) {
    return parse_every_split<ResponseParser>(input, limits);
}

// The request itself, for field checks (parse_every_split already proved splits agree).
void parse_whole(RequestParser& parser, std::string_view input) {
    auto r = parser.feed(std::span<const char>(input.data(), input.size()));
    REQUIRE(r);
    REQUIRE(r->complete);
}

void check_error(std::string_view input, Code code, ParserLimits limits = {}) {
    INFO("input: ", escape(input));
    const Outcome o = parse_request(input, limits);
    CHECK_MESSAGE(o.error == code, describe(o));
}

std::string header_block(std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        out += "X-H" + std::to_string(i) + ": v\r\n";
    }
    return out;
}

constexpr std::string_view kSimpleGet =
    "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";

// ---- requests: well-formed -----------------------------------------------------------------

TEST_CASE("RequestParser: simple GET is complete with all its fields, every split") {
    const Outcome o = parse_request(kSimpleGet);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == kSimpleGet.size());

    RequestParser parser;
    CHECK_FALSE(parser.started());
    parse_whole(parser, kSimpleGet);
    const Request& r = parser.request();
    CHECK(parser.started());
    CHECK(parser.head_complete());
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat?room=1");
    CHECK(r.path() == "/chat");
    CHECK(r.query() == "room=1");
    CHECK(r.http_major == 1);
    CHECK(r.http_minor == 1);
    CHECK(r.keep_alive);
    CHECK_FALSE(r.upgrade);
    REQUIRE(r.headers.size() == 2);
    CHECK(r.headers[0].name == "Host");
    CHECK(r.headers[0].value == "example.com");
    REQUIRE(r.find("HOST") != nullptr);
    CHECK(*r.find("host") == "example.com");
    CHECK(r.count("accept") == 1);
    CHECK(r.body.empty());
}

TEST_CASE("RequestParser: incomplete head reports all bytes consumed and not complete") {
    constexpr std::string_view partial = "GET / HTTP/1.1\r\nHost: a\r\n";
    const Outcome o = parse_request(partial);
    CHECK(o.error == Code::Ok);
    CHECK_FALSE(o.complete);
    CHECK(o.consumed == partial.size());

    RequestParser parser;
    auto r = parser.feed(std::span<const char>(partial.data(), partial.size()));
    REQUIRE(r);
    CHECK(parser.started());
    CHECK_FALSE(parser.head_complete());
}

TEST_CASE("RequestParser: keep-alive pipelining stops exactly at the end of the first request") {
    const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string second = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
    const std::string both = first + second;

    const Outcome o = parse_request(both);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == first.size());

    // The same parser, reset, takes the rest of the buffer as the next request.
    RequestParser parser;
    auto r1 = parser.feed(std::span<const char>(both.data(), both.size()));
    REQUIRE(r1);
    REQUIRE(r1->complete);
    REQUIRE(r1->consumed == first.size());
    CHECK(parser.request().target == "/a");
    parser.reset();
    CHECK_FALSE(parser.started());
    CHECK_FALSE(parser.head_complete());
    const std::string_view rest = std::string_view(both).substr(r1->consumed);
    auto r2 = parser.feed(std::span<const char>(rest.data(), rest.size()));
    REQUIRE(r2);
    CHECK(r2->complete);
    CHECK(r2->consumed == second.size());
    CHECK(parser.request().method == "POST");
    CHECK(parser.request().target == "/b");
    CHECK(parser.request().body == "hi");
    CHECK(parser.request().headers.size() == 2);  // nothing left over from the first request

    const Outcome o2 = parse_request(rest);
    CHECK(o2.complete);
    CHECK(o2.consumed == second.size());
}

TEST_CASE("RequestParser: upgrade request stops exactly at the end of the head, before the "
          "pipelined WebSocket bytes") {
    const std::string head =
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // A masked text frame "Hello" (RFC 6455 §5.7), then the start of a second frame.
    const std::string frames =
        "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
        "\x81\x85";
    const std::string input = head + frames;

    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size());

    RequestParser parser;
    auto r = parser.feed(std::span<const char>(input.data(), input.size()));
    REQUIRE(r);
    REQUIRE(r->complete);
    CHECK(r->consumed == head.size());
    CHECK(input.substr(r->consumed) == frames);
    CHECK(parser.request().upgrade);
    CHECK(parser.request().method == "GET");
    CHECK(parser.request().body.empty());

    // Head alone: complete with every byte consumed.
    const Outcome alone = parse_request(head);
    CHECK(alone.complete);
    CHECK(alone.consumed == head.size());
}

TEST_CASE("RequestParser: upgrade request followed by bytes that look like HTTP still stops "
          "at the end of the head") {
    const std::string head =
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    const std::string input = head + "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size());
}

TEST_CASE("RequestParser: POST with Content-Length body") {
    const std::string head = "POST /send?session=s HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
    const std::string input = head + "hello world" + "GET / HTTP/1.1\r\n";
    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size() + 11);

    RequestParser parser;
    parse_whole(parser, input);
    CHECK(parser.request().method == "POST");
    CHECK(parser.request().body == "hello world");
}

TEST_CASE("RequestParser: POST with a chunked body is decoded and ends after the last chunk") {
    const std::string message =
        "POST /send HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const std::string input = message + "GET / HTTP/1.1\r\n";
    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == message.size());

    RequestParser parser;
    parse_whole(parser, input);
    CHECK(parser.request().body == "hello world");
}

TEST_CASE("RequestParser: HTTP/1.0 request is not keep-alive unless it asks") {
    RequestParser parser;
    parse_whole(parser, "GET / HTTP/1.0\r\nHost: h\r\n\r\n");
    CHECK(parser.request().http_major == 1);
    CHECK(parser.request().http_minor == 0);
    CHECK_FALSE(parser.request().keep_alive);

    RequestParser asks;
    parse_whole(asks, "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
    CHECK(asks.request().keep_alive);

    RequestParser closes;
    parse_whole(closes, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    CHECK_FALSE(closes.request().keep_alive);

    CHECK(parse_request("GET / HTTP/1.0\r\nHost: h\r\n\r\n").complete);
}

TEST_CASE("RequestParser: header values lose leading and trailing whitespace") {
    const std::string input =
        "GET / HTTP/1.1\r\nHost:   h  \r\nX-Tabs:\t a b \t \r\nX-Empty:\r\nX-Spaces:   \r\n\r\n";
    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);
    REQUIRE(o.complete);

    RequestParser parser;
    parse_whole(parser, input);
    const auto& h = parser.request().headers;
    REQUIRE(h.size() == 4);
    CHECK(h[0].name == "Host");
    CHECK(h[0].value == "h");
    CHECK(h[1].name == "X-Tabs");
    CHECK(h[1].value == "a b");
    CHECK(h[2].name == "X-Empty");
    CHECK(h[2].value.empty());
    CHECK(h[3].name == "X-Spaces");
    CHECK(h[3].value.empty());
}

TEST_CASE("RequestParser: a header with an empty value does not swallow the next header's name") {
    const std::string input = "GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\nX-Blank: \r\nX-Last: 1\r\n\r\n";
    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);

    RequestParser parser;
    parse_whole(parser, input);
    const auto& h = parser.request().headers;
    REQUIRE(h.size() == 4);
    CHECK(h[0].name == "X-Empty");
    CHECK(h[1].name == "Host");
    CHECK(h[1].value == "h");
    CHECK(h[2].name == "X-Blank");
    CHECK(h[3].name == "X-Last");
    CHECK(parser.request().count("host") == 1);
}

TEST_CASE("RequestParser: reset() forgets the previous request entirely") {
    RequestParser parser;
    parse_whole(parser, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz");
    parser.reset();
    parse_whole(parser, "GET /y HTTP/1.1\r\nHost: h2\r\n\r\n");
    CHECK(parser.request().method == "GET");
    CHECK(parser.request().target == "/y");
    CHECK(parser.request().body.empty());
    REQUIRE(parser.request().headers.size() == 1);
    CHECK(parser.request().headers[0].value == "h2");
}

// ---- requests: limits ----------------------------------------------------------------------

TEST_CASE("RequestParser: head over max_header_bytes is HeaderTooLarge") {
    ParserLimits limits;
    limits.max_header_bytes = 64;
    check_error("GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n",
                Code::HeaderTooLarge, limits);
    // A long request target counts too.
    check_error("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
                Code::HeaderTooLarge, limits);
    // A long header name.
    check_error("GET / HTTP/1.1\r\nX-" + std::string(100, 'n') + ": v\r\n\r\n",
                Code::HeaderTooLarge, limits);
    // Whitespace that is not part of any field (before a value) counts as well.
    check_error("GET / HTTP/1.1\r\nX:" + std::string(100, ' ') + "v\r\n\r\n",
                Code::HeaderTooLarge, limits);
    // A head that never ends is cut off at the limit, not buffered.
    check_error("GET / HTTP/1.1\r\nX: " + std::string(100, 'a'), Code::HeaderTooLarge, limits);
}

TEST_CASE("RequestParser: the head limit gives the same verdict for every split, at every "
          "limit around the head's size") {
    const std::string head = "GET /p HTTP/1.1\r\nHost: h\r\nX-A: 1234\r\n\r\n";
    for (std::size_t limit = head.size() - 12; limit <= head.size() + 2; ++limit) {
        ParserLimits limits;
        limits.max_header_bytes = limit;
        INFO("max_header_bytes = ", limit, ", head size = ", head.size());
        const Outcome o = parse_request(head + "GET", limits);
        if (limit >= head.size()) {
            CHECK_MESSAGE(o.error == Code::Ok, describe(o));
            CHECK(o.consumed == head.size());
        }
    }
    // A head exactly at the limit passes; one byte over fails.
    ParserLimits exact;
    exact.max_header_bytes = head.size();
    CHECK(parse_request(head, exact).complete);
    ParserLimits under;
    under.max_header_bytes = head.size() - 1;
    CHECK(parse_request(head, under).error == Code::HeaderTooLarge);
}

TEST_CASE("RequestParser: more than max_headers fields is HeaderTooLarge") {
    ParserLimits limits;
    limits.max_headers = 3;
    const Outcome ok = parse_request("GET / HTTP/1.1\r\n" + header_block(3) + "\r\n", limits);
    CHECK(ok.complete);
    check_error("GET / HTTP/1.1\r\n" + header_block(4) + "\r\n", Code::HeaderTooLarge, limits);
    // Empty-valued fields count like any other.
    check_error("GET / HTTP/1.1\r\nA:\r\nB:\r\nC:\r\nD:\r\n\r\n", Code::HeaderTooLarge, limits);
}

TEST_CASE("RequestParser: body over max_body is PayloadTooLarge") {
    ParserLimits limits;
    limits.max_body = 10;
    const Outcome ok = parse_request(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", limits);
    CHECK(ok.complete);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n0123456789a",
                Code::PayloadTooLarge, limits);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n",
                Code::PayloadTooLarge, limits);
    const Outcome chunked_ok = parse_request(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n",
        limits);
    CHECK(chunked_ok.complete);
}

// ---- requests: malformed (llhttp strict) ---------------------------------------------------

TEST_CASE("RequestParser: Content-Length together with Transfer-Encoding is BadRequest") {
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                "Content-Length: 5\r\n\r\n0\r\n\r\n",
                Code::BadRequest);
}

TEST_CASE("RequestParser: Transfer-Encoding not ending in chunked is BadRequest") {
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc",
                Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
                Code::BadRequest);
}

TEST_CASE("RequestParser: duplicate or invalid Content-Length is BadRequest") {
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
                Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\nab", Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,1\r\n\r\na", Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Code::BadRequest);
}

TEST_CASE("RequestParser: bad chunk framing is BadRequest") {
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "zz\r\nhello\r\n0\r\n\r\n",
                Code::BadRequest);
    // Chunk data longer than its size.
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "2\r\nhello\r\n0\r\n\r\n",
                Code::BadRequest);
}

TEST_CASE("RequestParser: obs-fold (a continuation line) is BadRequest") {
    check_error("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n\tb\r\n\r\n", Code::BadRequest);
}

TEST_CASE("RequestParser: bare LF and bare CR line endings are BadRequest") {
    check_error("GET / HTTP/1.1\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\r\n\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\rHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\r\n\rX", Code::BadRequest);
}

TEST_CASE("RequestParser: whitespace before the colon is BadRequest") {
    check_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", Code::BadRequest);
    // A line starting with whitespace right after the request line.
    check_error("GET / HTTP/1.1\r\n Host: h\r\n\r\n", Code::BadRequest);
}

TEST_CASE("RequestParser: invalid characters in header names and values are BadRequest") {
    check_error("GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHo\"st: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHo/st: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\n: h\r\n\r\n", Code::BadRequest);
    check_error(std::string("GET / HTTP/1.1\r\nHost: a\x01" "b\r\n\r\n"), Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"s, Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: a\x7F" "b\r\n\r\n", Code::BadRequest);
}

TEST_CASE("RequestParser: invalid characters in the request target are BadRequest") {
    check_error("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET /a\x7F HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
}

TEST_CASE("RequestParser: invalid method or version is BadRequest") {
    check_error("FOO / HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("get / HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.x\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTX/1.1\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", Code::BadRequest);
}

TEST_CASE("RequestParser: the HTTP/2 connection preface is BadRequest") {
    check_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Code::BadRequest);
    check_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04", Code::BadRequest);
    // llhttp waits for the preface's "SM" line, but the parser does not wait: the empty line
    // ends a head that llhttp did not take as one.
    check_error("PRI * HTTP/2.0\r\n\r\n", Code::BadRequest);
    check_error("PRI * HTTP/2.0\r\n", Code::Ok);
}

TEST_CASE("RequestParser: chunk data must be followed by CRLF (needs llhttp's strict mode)") {
    // llhttp.c is two parsers; only the LLHTTP_STRICT_MODE=1 one checks these bytes.
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhelloXX0\r\n\r\n",
                Code::BadRequest);
    check_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\nhello\r\n0\r\n\r\n",
                Code::BadRequest);
}

TEST_CASE("RequestParser: an empty line before the request line is skipped and counted") {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a request-line.
    const std::string input = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    const Outcome o = parse_request(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == input.size());
    // The empty lines count towards the head limit, so they cannot be sent forever.
    ParserLimits limits;
    limits.max_header_bytes = 32;
    std::string many;
    for (int i = 0; i < 20; ++i) {
        many += "\r\n";
    }
    check_error(many + "GET / HTTP/1.1\r\n\r\n", Code::HeaderTooLarge, limits);
}

// Regression: llhttp 8 accepts bare LF line endings and obs-fold even in its strict mode, and
// the parser promised to reject them (parser.h). Found by these tests; fixed in parser.cc with
// a byte scan of the head before llhttp sees it.
TEST_CASE("regression: bare LF, bare CR and obs-fold are rejected whatever llhttp's mode") {
    check_error("GET / HTTP/1.1\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\r\n\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nA: a\r\n b\r\n\r\n", Code::BadRequest);
    // A bare LF in a body is data, not a line ending.
    const Outcome body = parse_request(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na\nb");
    CHECK(body.complete);
}

// Regression: the head limit was checked from callback positions, plus a check at the end of
// each buffer, so a head whose final CRLFs crossed the limit passed whole and failed when
// split. The limit now counts every byte of the head, final CRLF included, for every split.
TEST_CASE("regression: the head limit counts the final CRLF the same way for every split") {
    const std::string head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for (std::size_t limit = head.size() - 4; limit <= head.size(); ++limit) {
        ParserLimits limits;
        limits.max_header_bytes = limit;
        INFO("max_header_bytes = ", limit);
        const Outcome o = parse_request(head, limits);
        CHECK(o.error == (limit == head.size() ? Code::Ok : Code::HeaderTooLarge));
    }
}

// Regression: the header count was checked when a field began, so with the input split inside
// an invalid field name the verdict was HeaderTooLarge instead of BadRequest. It is now
// checked at the field's ':'. The empty name (": v") was also accepted.
TEST_CASE("regression: header count and name checks do not depend on the split") {
    ParserLimits limits;
    limits.max_headers = 2;
    check_error("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC(: 3\r\n\r\n", Code::BadRequest, limits);
    check_error("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", Code::HeaderTooLarge, limits);
    check_error("GET / HTTP/1.1\r\n: v\r\n\r\n", Code::BadRequest);
    check_error("GET / HTTP/1.1\r\nA: 1\r\n: v\r\n\r\n", Code::BadRequest);
}

// Regression (issue 5, found by the http_request fuzz target): llhttp 8 takes a request line
// without a version as HTTP/0.9, and for CONNECT accepted an empty target ("CONNECT \r\n"),
// or the version as the target ("CONNECT  HTTP/1.1"). Both are invalid versions now.
TEST_CASE("regression: request lines without an HTTP version are rejected") {
    check_error("GET /\r\n\r\n", Code::BadRequest);
    check_error("GET /\r\nHost: h\r\n\r\n", Code::BadRequest);
    check_error("CONNECT \r\n\r\n", Code::BadRequest);
    check_error("CONNECT  HTTP/1.1\r\n\r\n", Code::BadRequest);
    check_error("CONNECT a:443\r\n\r\n", Code::BadRequest);
    const Outcome ok = parse_request("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n");
    CHECK(ok.complete);
}

// Regression: chunked-body trailer fields went into Request::headers (a trailer could supply
// an Origin the head did not have) and, once the head limit stopped covering them, could grow
// without bound. Trailers are now parsed by llhttp and dropped.
TEST_CASE("regression: chunked trailers are not added to the request headers") {
    const std::string message =
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nOrigin: https://evil.example\r\nX-Trailer: " +
        std::string(64 * 1024, 't') + "\r\n\r\n";
    RequestParser parser;
    parse_whole(parser, message);
    const Request& r = parser.request();
    CHECK(r.body == "abc");
    CHECK(r.find("Origin") == nullptr);
    CHECK(r.find("X-Trailer") == nullptr);
    REQUIRE(r.headers.size() == 2);
    CHECK(r.headers[1].value == "chunked");

    const std::string small =
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET";
    const Outcome o = parse_request(small);
    CHECK(o.complete);
    CHECK(o.consumed == small.size() - 3);
}

TEST_CASE("RequestParser: an error is reported again by the next feed") {
    RequestParser parser;
    constexpr std::string_view bad = "GET / HTTP/1.1\r\nHost : h\r\n\r\n";
    auto r1 = parser.feed(std::span<const char>(bad.data(), bad.size()));
    REQUIRE_FALSE(r1);
    CHECK(r1.error().code == Code::BadRequest);
    CHECK(r1.error().side == core::Side::Client);
    CHECK_FALSE(r1.error().context.empty());
    parser.reset();
    parse_whole(parser, kSimpleGet);
    CHECK(parser.request().target == "/chat?room=1");
}

// ---- message helpers -----------------------------------------------------------------------

TEST_CASE("Request::path and Request::query split the target at the first '?'") {
    Request r;
    r.target = "/a/b?x=1&y=2?z";
    CHECK(r.path() == "/a/b");
    CHECK(r.query() == "x=1&y=2?z");
    r.target = "/a";
    CHECK(r.path() == "/a");
    CHECK(r.query().empty());
    r.target = "/a?";
    CHECK(r.path() == "/a");
    CHECK(r.query().empty());
    r.target = "*";
    CHECK(r.path() == "*");
    CHECK(r.query().empty());
}

TEST_CASE("Message::has_token matches list elements case-insensitively across headers") {
    RequestParser parser;
    parse_whole(parser, "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, UPGRADE\r\n"
                        "Upgrade: WebSocket\r\nX-List: a,,  b ,c\r\nX-List: D\r\n\r\n");
    const Request& r = parser.request();
    CHECK(r.has_token("connection", "upgrade"));
    CHECK(r.has_token("CONNECTION", "Keep-Alive"));
    CHECK(r.has_token("Upgrade", "websocket"));
    CHECK_FALSE(r.has_token("Connection", "close"));
    CHECK_FALSE(r.has_token("Connection", "upgrad"));
    CHECK_FALSE(r.has_token("Connection", "keep-alive, upgrade"));
    CHECK(r.has_token("x-list", "b"));
    CHECK(r.has_token("x-list", "d"));  // second header of the same name
    CHECK_FALSE(r.has_token("x-list", ""));
    CHECK_FALSE(r.has_token("Missing", "a"));
    CHECK(r.upgrade);
}

TEST_CASE("split_list trims elements and drops empty ones") {
    const auto parts = split_list(" a , b,,\tc\t, ");
    REQUIRE(parts.size() == 3);
    CHECK(parts[0] == "a");
    CHECK(parts[1] == "b");
    CHECK(parts[2] == "c");
    CHECK(split_list("").empty());
    CHECK(split_list(" , ,").empty());
}

TEST_CASE("is_token accepts RFC 9110 tchar only") {
    CHECK(is_token("chat.v2"));
    CHECK(is_token("!#$%&'*+-.^_`|~09azAZ"));
    CHECK_FALSE(is_token(""));
    CHECK_FALSE(is_token("a b"));
    CHECK_FALSE(is_token("a,b"));
    CHECK_FALSE(is_token("a/b"));
    CHECK_FALSE(is_token("\"a\""));
    CHECK_FALSE(is_token("a\x80"));
}

TEST_CASE("iequals compares ASCII case-insensitively and exactly otherwise") {
    CHECK(iequals("Sec-WebSocket-Key", "sec-websocket-key"));
    CHECK_FALSE(iequals("abc", "abcd"));
    CHECK_FALSE(iequals("a-b", "a_b"));
    CHECK(iequals("", ""));
}

// ---- responses -----------------------------------------------------------------------------

TEST_CASE("ResponseParser: a 101 followed by frame bytes stops right after the head's final "
          "CRLF") {
    const std::string head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    const std::string frames = "\x81\x05Hello\x89\x00"s;
    const std::string input = head + frames;

    const Outcome o = parse_response(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size());

    ResponseParser parser;
    auto r = parser.feed(std::span<const char>(input.data(), input.size()));
    REQUIRE(r);
    REQUIRE(r->complete);
    CHECK(r->consumed == head.size());
    CHECK(input.substr(r->consumed) == frames);
    const Response& resp = parser.response();
    CHECK(resp.status == 101);
    CHECK(resp.reason == "Switching Protocols");
    CHECK(resp.upgrade);
    REQUIRE(resp.headers.size() == 3);
    CHECK(*resp.find("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    // The head alone: complete, every byte consumed.
    const Outcome alone = parse_response(head);
    CHECK(alone.complete);
    CHECK(alone.consumed == head.size());
}

TEST_CASE("ResponseParser: a 101 whose first frame starts with LF is not eaten") {
    // The first frame byte after the head is 0x0A: a parser that stops one byte early and
    // skips "the rest of the CRLF" later would corrupt the stream.
    const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    const std::string input = head + "\x0A\x00"s;
    const Outcome o = parse_response(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size());
}

TEST_CASE("ResponseParser: a 403 with a body completes at the head and leaves the body") {
    const std::string head =
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\n";
    const std::string input = head + "nope!\n";
    const Outcome o = parse_response(input);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size());

    ResponseParser parser;
    auto r = parser.feed(std::span<const char>(input.data(), input.size()));
    REQUIRE(r);
    CHECK(r->complete);
    CHECK(parser.response().status == 403);
    CHECK(parser.response().reason == "Forbidden");
    CHECK(parser.response().body.empty());
}

TEST_CASE("ResponseParser: a status line without a reason phrase is accepted") {
    const std::string head = "HTTP/1.1 101 \r\nUpgrade: websocket\r\n\r\n";
    const Outcome o = parse_response(head);
    REQUIRE(o.error == Code::Ok);
    CHECK(o.complete);
    CHECK(o.consumed == head.size());
}

TEST_CASE("ResponseParser: a malformed status line is BackendBadHandshake") {
    for (std::string_view bad : {
             "HTTP/1.1 abc OK\r\n\r\n",
             "HTTP/1.1 1011 Nope\r\n\r\n",
             "HTTP/1.1 10 Nope\r\n\r\n",
             "HTTX/1.1 101 Switching Protocols\r\n\r\n",
             "HTTP/1.x 101 Switching Protocols\r\n\r\n",
             "HTTP/1.1  101 Switching Protocols\r\n\r\n",
             "SSH-2.0-OpenSSH_9.2\r\n",
             "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\r\n\r\n",
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade : websocket\r\n\r\n",
         }) {
        INFO("input: ", escape(bad));
        const Outcome o = parse_response(bad);
        CHECK_MESSAGE(o.error == Code::BackendBadHandshake, describe(o));
    }
}

TEST_CASE("ResponseParser: an oversized head is BackendBadHandshake") {
    ParserLimits limits;
    limits.max_header_bytes = 64;
    const std::string big = "HTTP/1.1 101 Switching Protocols\r\nX-Long: " +
                            std::string(100, 'a') + "\r\n\r\n";
    CHECK(parse_response(big, limits).error == Code::BackendBadHandshake);
    // Cut off before the head ends too.
    CHECK(parse_response(big.substr(0, 90), limits).error == Code::BackendBadHandshake);

    ParserLimits few;
    few.max_headers = 2;
    CHECK(parse_response("HTTP/1.1 101 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", few).error ==
          Code::BackendBadHandshake);

    ResponseParser parser(limits);
    auto r = parser.feed(std::span<const char>(big.data(), big.size()));
    REQUIRE_FALSE(r);
    CHECK(r.error().side == core::Side::Backend);
}

} // namespace
} // namespace proxy::http
