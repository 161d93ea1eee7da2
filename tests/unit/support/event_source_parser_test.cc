// Tests for tests/unit/support/event_source_parser.h against the examples of the HTML Living
// Standard, "9.2 Server-sent events"
// (https://html.spec.whatwg.org/multipage/server-sent-events.html), and the edge cases of its
// "Interpreting an event stream" and "dispatch the event" steps. Every stream is also fed split at
// every offset and byte by byte (split_mismatch()), which must not change what the parser reports.

#include "tests/unit/support/event_source_parser.h"

#include <doctest/doctest.h>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace test_support {
namespace {

using namespace std::string_literals;
using Events = std::vector<SseEvent>;

constexpr std::string_view kFffd = "\xEF\xBF\xBD"; // U+FFFD REPLACEMENT CHARACTER in UTF-8

// Parses `stream` whole and checks that every split of it gives the same result.
ParseResult parse(std::string_view stream) {
    CHECK(split_mismatch(stream) == "");
    return parse_whole(stream);
}

SseEvent message(std::string data, std::string id = "") {
    return SseEvent{"message", std::move(data), std::move(id)};
}

} // namespace

TEST_CASE("EventSource parser: the standard's stock-ticker example is one event") {
    const auto r = parse("data: YHOO\ndata: +2\ndata: 10\n\n");
    CHECK(r.events == Events{message("YHOO\n+2\n10")});
    CHECK(r.at_event_boundary);
}

TEST_CASE("EventSource parser: the standard's four-block example sets and resets the id") {
    const auto r = parse(": test stream\n"
                         "\n"
                         "data: first event\n"
                         "id: 1\n"
                         "\n"
                         "data:second event\n"
                         "id\n"
                         "\n"
                         "data:  third event\n"
                         "\n");
    CHECK(r.events == Events{message("first event", "1"), message("second event", ""),
                             message(" third event", "")});
    CHECK(r.last_event_id.empty());
    CHECK(r.counts.comments == 1);
}

TEST_CASE("EventSource parser: the standard's empty-data example fires two events") {
    // "The first block fires events with the data set to the empty string, [...] The middle
    // block fires an event with the data set to a single newline character. The last block is
    // discarded because it is not followed by a blank line."
    const auto r = parse("data\n\ndata\ndata\n\ndata:");
    CHECK(r.events == Events{message(""), message("\n")});
    CHECK_FALSE(r.at_event_boundary);
}

TEST_CASE("EventSource parser: the standard's space-after-colon example fires equal events") {
    const auto r = parse("data:test\n\ndata: test\n\n");
    CHECK(r.events == Events{message("test"), message("test")});
}

TEST_CASE("EventSource parser: the standard's event-type example sets each type once") {
    const auto r = parse("event: add\ndata: 73857293\n\n"
                         "event: remove\ndata: 2153\n\n"
                         "event: add\ndata: 113411\n\n");
    CHECK(r.events ==
          Events{{"add", "73857293", ""}, {"remove", "2153", ""}, {"add", "113411", ""}});
}

TEST_CASE("EventSource parser: CRLF, LF and CR all end lines, mixed freely") {
    const Events expected{message("a\nb\nc")};
    CHECK(parse("data: a\r\ndata: b\r\ndata: c\r\n\r\n").events == expected);
    CHECK(parse("data: a\rdata: b\rdata: c\r\r").events == expected);
    CHECK(parse("data: a\ndata: b\rdata: c\r\n\n").events == expected);
    CHECK(parse("data: a\r\ndata: b\n\rdata: c\n\r").events ==
          Events{message("a\nb"), message("c")});
}

TEST_CASE(
    "EventSource parser: a CR ending one chunk and an LF starting the next are one line end") {
    // Were CR and LF two line ends, the LF would make a blank line and dispatch "a" early.
    EventSourceParser p;
    p.feed("data: a\r");
    p.feed("\n");
    CHECK(p.events().empty());
    p.feed("data: b\r");
    p.feed("\n");
    CHECK(p.events().empty());
    p.feed("\n");
    CHECK(p.events() == Events{message("a\nb")});
    // CR CR is two line ends: the second is a blank line.
    CHECK(parse("data: x\r\r").events == Events{message("x")});
    CHECK(parse("data: x\r\n\r\n").events == Events{message("x")});
}

TEST_CASE("EventSource parser: one leading BOM is stripped, once, at the start of the stream") {
    CHECK(parse("\xEF\xBB\xBF"
                "data: x\n\n")
              .events == Events{message("x")});
    // A second BOM is part of the first field name, which is then unknown.
    const auto twice = parse("\xEF\xBB\xBF\xEF\xBB\xBF"
                             "data: x\n\n");
    CHECK(twice.events.empty());
    CHECK(twice.counts.other == 1);
    // Later BOMs are ordinary characters.
    const auto later = parse("data: x\n\n\xEF\xBB\xBF"
                             "data: y\n\n");
    CHECK(later.events == Events{message("x")});
    CHECK(parse("data: \xEF\xBB\xBFz\n\n").events == Events{message("\xEF\xBB\xBFz")});
}

TEST_CASE("EventSource parser: an id containing NUL is ignored and ids persist") {
    const auto r = parse("id: a\n\ndata: x\nid: b\0c\n\n"s);
    CHECK(r.events == Events{message("x", "a")});
    CHECK(r.counts.id == 2);
    CHECK(parse("id: 7\ndata: a\n\ndata: b\n\n").events ==
          Events{message("a", "7"), message("b", "7")});
    // An empty id resets it; "id" without a colon does too.
    CHECK(parse("id: 7\n\nid:\ndata: a\n\n").events == Events{message("a", "")});
    // Spaces other than the first belong to the id.
    CHECK(parse("id:  7 \ndata: a\n\n").events == Events{message("a", " 7 ")});
}

TEST_CASE("EventSource parser: the last event id changes only when a blank line dispatches") {
    // An id-only block dispatches nothing but still sets the reconnect id.
    const auto id_only = parse("id: 9\n\n");
    CHECK(id_only.events.empty());
    CHECK(id_only.last_event_id == "9");
    CHECK(id_only.at_event_boundary);
    // Without the blank line the id is never committed.
    const auto open = parse("id: 9\ndata: x\n");
    CHECK(open.events.empty());
    CHECK(open.last_event_id.empty());
    CHECK_FALSE(open.at_event_boundary);
}

TEST_CASE("EventSource parser: retry takes ASCII digits only") {
    CHECK(parse("retry: 1500\n\n").retry == 1500u);
    CHECK(parse("retry:0\n").retry == 0u);
    for (const char* bad : {"retry: 15x\n", "retry: -1\n", "retry: +1\n", "retry:  1\n",
                            "retry: 1.5\n", "retry:\n", "retry\n", "retry: 1 \n"}) {
        CAPTURE(bad);
        const auto r = parse(bad);
        CHECK_FALSE(r.retry.has_value());
        CHECK(r.counts.retry == 1);
    }
    CHECK(parse("retry: 100\nretry: x\n").retry == 100u);
    CHECK(parse("retry: 100\nretry: 7\n").retry == 7u);
    CHECK(parse("retry: 99999999999999999999999\n").retry ==
          std::numeric_limits<std::uint64_t>::max());
    CHECK(parse("retry: 1000\n").events.empty());
}

TEST_CASE("EventSource parser: the event type applies to one event and defaults to message") {
    CHECK(parse("event: foo\n\ndata: x\n\n").events == Events{message("x")});
    CHECK(parse("event: foo\ndata: x\n\n").events == Events{{"foo", "x", ""}});
    CHECK(parse("event\ndata: x\n\n").events == Events{message("x")});
    CHECK(parse("event: a\nevent: b\ndata: x\n\ndata: y\n\n").events ==
          Events{{"b", "x", ""}, message("y")});
    CHECK(parse("event:  a\ndata: x\n\n").events == Events{{" a", "x", ""}});
}

TEST_CASE("EventSource parser: field names are exact and only one space is stripped") {
    CHECK(parse("data:x:y\n\n").events == Events{message("x:y")});
    CHECK(parse("data:\tx\n\n").events == Events{message("\tx")});
    CHECK(parse("data:  x\n\n").events == Events{message(" x")});
    CHECK(parse("data: \n\n").events == Events{message("")});
    const auto ignored = parse("data :x\nDATA: x\n data: x\nfoo: bar\nfoo\n\n");
    CHECK(ignored.events.empty());
    CHECK(ignored.counts.other == 5);
    CHECK(ignored.counts.blank == 1);
}

TEST_CASE("EventSource parser: comments dispatch nothing and keep the buffers") {
    const auto r = parse(":\n: hi\ndata: a\n:\ndata: b\n\n:\n\n");
    CHECK(r.events == Events{message("a\nb")});
    CHECK(r.counts.comments == 4);
    CHECK(r.counts.blank == 2);
}

TEST_CASE("EventSource parser: NUL, U+2028 and U+2029 are ordinary data") {
    CHECK(parse("data: a\0b\n\n"s).events == Events{message("a\0b"s)});
    CHECK(parse("data: \xE2\x80\xA8|\xE2\x80\xA9\n\n").events ==
          Events{message("\xE2\x80\xA8|\xE2\x80\xA9")});
    CHECK(parse("data: \xF0\x9F\x98\x80\n\n").events == Events{message("\xF0\x9F\x98\x80")});
}

TEST_CASE("EventSource parser: invalid UTF-8 becomes U+FFFD as the UTF-8 decoder says") {
    const std::string r1(kFffd);
    CHECK(parse("data: \xFF\n\n").events == Events{message(r1)});
    // A truncated sequence ends at the LF, which is then processed normally.
    CHECK(parse("data: \xE2\x80\n\n").events == Events{message(r1)});
    CHECK(parse("data: \xF0\x9F\x98\n\n").events == Events{message(r1)});
    // Overlong, surrogate and out-of-range forms: one U+FFFD per bad byte after the lead.
    CHECK(parse("data: \xC0\xAF\n\n").events == Events{message(r1 + r1)});
    CHECK(parse("data: \xED\xA0\x80\n\n").events == Events{message(r1 + r1 + r1)});
    CHECK(parse("data: \xF4\x90\x80\x80\n\n").events == Events{message(r1 + r1 + r1 + r1)});
    // A lead byte followed by a line end cannot swallow it.
    CHECK(parse("data: a\xC3\n\ndata: b\n\n").events == Events{message("a" + r1), message("b")});
}

TEST_CASE("EventSource parser: an event cut off by the end of the input is not dispatched") {
    const auto r = parse("data: x\n\ndata: y\n");
    CHECK(r.events == Events{message("x")});
    CHECK_FALSE(r.at_event_boundary);
    CHECK_FALSE(parse("data: x\n\ndata").at_event_boundary);
    CHECK_FALSE(parse("data: x\n\n\xE2").at_event_boundary);
    CHECK(parse("data: x\n\n").at_event_boundary);
}

} // namespace test_support
