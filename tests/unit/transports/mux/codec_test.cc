// Tests for transports/mux/codec.cc (docs/protocol.md, "Many sessions on one connection"): the
// listed positions, the multiplexed SSE events read back by a WHATWG EventSource parser whole,
// split at every offset and byte by byte, the poll answer and the multiplexed send.

#include "transports/mux/codec.h"

#include <doctest/doctest.h>
#include <string>
#include <vector>

#include "tests/unit/support/event_source_parser.h"

namespace transports::mux {
namespace {

using test_support::SseEvent;

std::vector<SseEvent> events_of(const std::string& stream) {
    CHECK(test_support::split_mismatch(stream).empty());
    const auto r = test_support::parse_whole(stream);
    CHECK(r.at_event_boundary);
    CHECK(r.last_event_id.empty());  // a multiplexed stream has no id: lines
    return r.events;
}

} // namespace

TEST_CASE("mux: positions are session=<id>.<n>, in order, each once, at most 100") {
    auto p = parse_positions("transport=mux&session=A-1.5&x=1&session=b_2.0");
    REQUIRE(p);
    REQUIRE(p->size() == 2);
    CHECK((*p)[0].session == "A-1");
    CHECK((*p)[0].seq == 5);
    CHECK((*p)[1].session == "b_2");
    CHECK((*p)[1].seq == 0);
    std::string many = "transport=mux";
    for (int i = 0; i < 100; ++i) {
        many += "&session=s" + std::to_string(i) + ".1";
    }
    CHECK(parse_positions(many));
    CHECK_FALSE(parse_positions(many + "&session=extra.1"));
    const std::vector<std::string> bad = {
        "transport=mux", "session=a", "session=a.", "session=a.01", "session=a.-1",
        "session=a.1.2", "session=.1", "session=a%2Eb.1", "session=a.1&session=a.2",
        "session=a.18446744073709551616"};
    for (const auto& q : bad) {
        CAPTURE(q);
        auto r = parse_positions(q);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == proxy::core::Code::BadRequest);
    }
}

TEST_CASE("mux: the stream's events read back exactly, whatever the split") {
    std::string s;
    const AnnounceEntry entries[] = {{"A", 5, 3, "", ""}, {"B", 0, 1, "chat.v2", ""},
                                     {"C", 0, 0, "", "unknown session"}};
    append_announce(s, "/chat?transport=mux", 30000, 1000, entries);
    append_message(s, "A", 6, false, "hello");
    append_message(s, "B", 1, false, "two\nlines\n");
    append_message(s, "A", 7, false, "");
    append_message(s, "B", 2, false, "cr\r\nhere");
    append_message(s, "A", 8, true, std::string("\x00\x01\x02", 3));
    append_message(s, "B", 3, true, "");
    append_message(s, "A", 9, false, "data: evil\nevent: close\n\nid: 1");
    append_gap(s, "B", 4, 9);
    append_close(s, "A", 1000, "bye \"x\"");
    append_detached(s, "B", "replaced");
    const auto ev = events_of(s);
    CHECK(test_support::parse_whole(s).retry == 1000);
    REQUIRE(ev.size() == 11);
    CHECK(ev[0].type == "mux");
    CHECK(ev[0].data ==
          R"({"send":"/chat?transport=mux","heartbeat_ms":30000,"sessions":[{"session":"A","last_seq":5,"next_seq":3},{"session":"B","last_seq":0,"next_seq":1,"protocol":"chat.v2"},{"session":"C","reset":"unknown session"}]})");
    CHECK(ev[1].type == "message");
    CHECK(ev[1].data == "A 6 hello");
    CHECK(ev[2].data == "B 1 two\nlines\n");
    CHECK(ev[3].data == "A 7 ");
    CHECK(ev[4].type == "mt");
    CHECK(ev[4].data == "B 2 \"cr\\r\\nhere\"");
    CHECK(ev[5].type == "mb");
    CHECK(ev[5].data == "A 8 AAEC");
    CHECK(ev[6].type == "mb");
    CHECK(ev[6].data == "B 3 ");
    CHECK(ev[7].type == "message");
    CHECK(ev[7].data == "A 9 data: evil\nevent: close\n\nid: 1");  // no field smuggled
    CHECK(ev[8].type == "gap");
    CHECK(ev[8].data == R"({"session":"B","from":4,"to":9})");
    CHECK(ev[9].type == "close");
    CHECK(ev[9].data == R"({"session":"A","code":1000,"reason":"bye \"x\""})");
    CHECK(ev[10].type == "detached");
    CHECK(ev[10].data == R"({"session":"B","reason":"replaced"})");
    const auto whole = test_support::parse_whole(s);
    CHECK(whole.counts.event == 7);  // none for the 4 text messages: nothing smuggled one in
    CHECK(whole.counts.id == 0);
}

TEST_CASE("mux: poll answers") {
    std::vector<PollEntry> entries(4);
    entries[0].session = "A";
    entries[0].messages = {{7, false, "hi"}, {8, true, std::string_view("\x00\x01", 2)}};
    entries[1].session = "B";
    entries[1].gap = Gap{2, 3};
    entries[1].close = long_polling::Close{1011, "down"};
    entries[2].session = "C";
    entries[2].reset = "unknown session";
    entries[3].session = "D";
    entries[3].detached = "replaced";
    CHECK(encode_poll(entries) ==
          R"({"sessions":[{"session":"A","messages":[{"seq":7,"text":"hi"},{"seq":8,"binary":"AAE="}]},)"
          R"({"session":"B","gap":{"from":2,"to":3},"messages":[],"close":{"code":1011,"reason":"down"}},)"
          R"({"session":"C","reset":"unknown session"},{"session":"D","detached":"replaced"}]})");
    CHECK(encode_poll({}) == R"({"sessions":[]})");
}

TEST_CASE("mux: sends") {
    auto r = parse_send(
        R"([{"session":"A","seq":4,"messages":[{"text":"a"},{"binary":"AAE="}]},)"
        R"( {"messages":[],"seq":1,"session":"B"}])",
        1024, 100);
    REQUIRE(r);
    REQUIRE(r->size() == 2);
    CHECK((*r)[0].session == "A");
    CHECK((*r)[0].seq == 4);
    REQUIRE((*r)[0].messages.size() == 2);
    CHECK((*r)[0].messages[1].binary);
    CHECK((*r)[0].messages[1].payload == std::string("\x00\x01", 2));
    CHECK((*r)[1].messages.empty());
    CHECK(parse_send("[]", 1, 1));
    const std::vector<std::string> bad = {
        "", "{}", "[1]", R"([{}])", R"([{"session":"A","seq":1}])",
        R"([{"session":"A","messages":[]}])", R"([{"seq":1,"messages":[]}])",
        R"([{"session":"A","seq":0,"messages":[]}])",
        R"([{"session":"A.1","seq":1,"messages":[]}])",
        R"([{"session":"A","seq":1,"messages":[],"x":1}])",
        R"([{"session":"A","seq":1,"seq":2,"messages":[]}])",
        R"([{"session":"A","seq":1,"messages":[]},{"session":"A","seq":2,"messages":[]}])",
        R"([{"session":"A","seq":1,"messages":[{"text":1}]}])",
        R"([{"session":"A","seq":1,"messages":[]}] x)",
    };
    for (const auto& b : bad) {
        CAPTURE(b);
        auto e = parse_send(b, 1024, 100);
        REQUIRE_FALSE(e);
        CHECK(e.error().code == proxy::core::Code::BadRequest);
    }
    auto big = parse_send(R"([{"session":"A","seq":1,"messages":[{"text":"12345"}]}])", 4, 100);
    REQUIRE_FALSE(big);
    CHECK(big.error().code == proxy::core::Code::PayloadTooLarge);
    CHECK(big.error().context.rfind("entry 0: ", 0) == 0);
    const SendResult results[] = {{"A", 6, "", 0, 0}, {"B", 0, "seq_gap", 3, 0},
                                  {"C", 0, "rate_limited", 0, 2}};
    CHECK(encode_send_results(results) ==
          R"({"results":[{"session":"A","next_seq":6},{"session":"B","error":"seq_gap","expected_seq":3},{"session":"C","error":"rate_limited","retry_after":2}]})");
}

} // namespace transports::mux
