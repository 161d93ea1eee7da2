// Integration tests of transports::long_polling::PollTransport alone (SPEC §3 "Long-poll wire
// format", docs/protocol.md "Long-polling"): held polls on a real loop (its hold timer is
// real), the session a FakeSession the test plays, the HTTP connection a responder that keeps
// every answer. Bodies are compared byte for byte. Every test ends with the clean-loop check.

#include "proxy/core/loop.h"
#include "transports/long_polling/poll_transport.h"
#include "tests/support/fake_session.h"
#include "tests/support/run_until.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

using transports::long_polling::PollResponder;
using transports::long_polling::PollTransport;
using transports::long_polling::Reset;

constexpr std::uint64_t kWait = 2000;
/// A hold longer than any test waits: an answer before it is not the hold's.
constexpr std::uint64_t kLongHold = 60'000;

/// One held poll: the transport and the answers it gave (the HTTP connection's part).
struct Poll final : PollResponder {
    explicit Poll(core::Loop& l) : loop(l) {}
    void respond_poll(std::string body) override {
        bodies.push_back(std::move(body));
        answered_at = loop.now();
    }
    bool answered() const { return !bodies.empty(); }

    core::Loop& loop;
    std::unique_ptr<PollTransport> transport;
    std::vector<std::string> bodies;
    std::uint64_t answered_at = 0;
};

/// One test's world: a loop and the FakeSession. finish() is the clean-loop check.
struct PollWorld {
    /// `replay_messages`: the fake session's buffer bound.
    explicit PollWorld(std::uint32_t replay_messages = 10'000)
        : session("sess_A-1", 1024 * 1024, replay_messages) {}

    bool until(const std::function<bool()>& pred, std::uint64_t timeout_ms = kWait) {
        return run_until(loop, pred, timeout_ms);
    }

    /// The one place that creates a PollTransport: attached to the fake session and started,
    /// as the HTTP connection does. Its answer may come from start() already.
    Poll& poll(std::uint64_t ack, std::uint64_t hold_ms = kLongHold,
               std::optional<Reset> reset = std::nullopt) {
        polls.push_back(std::make_unique<Poll>(loop));
        Poll& p = *polls.back();
        p.transport = std::make_unique<PollTransport>(loop, session, ack, std::move(reset),
                                                      hold_ms, p);
        session.attach(*p.transport);
        p.transport->start();
        return p;
    }

    /// Cancels what is still held (its client went away), destroys every poll, and checks
    /// that no transport called back wrongly and that the loop closes clean.
    void finish() {
        for (auto& p : polls) {
            p->transport->cancel();
        }
        CHECK(session.stray_detach_calls() == 0);
        CHECK(session.attached() == nullptr);
        polls.clear();
        CHECK_MESSAGE(until([&] { return open_handles(loop) == 0; }),
                      "open handles: " << describe_open_handles(loop));
        CHECK(loop.close_all());
    }

    core::Loop loop;
    FakeSession session;
    std::vector<std::unique_ptr<Poll>> polls;
};

} // namespace

TEST_CASE("poll: a held poll is answered as soon as a message exists, and detaches") {
    PollWorld w;
    Poll& p = w.poll(0);
    CHECK(w.session.acknowledged_calls() == std::vector<std::uint64_t>{0});
    run_for(w.loop, 30);
    CHECK_FALSE(p.answered());
    CHECK_FALSE(p.transport->done());
    w.session.push("hi");
    REQUIRE(p.bodies.size() == 1);  // answered from inside the session's callback
    CHECK(p.bodies[0] == R"({"messages":[{"seq":1,"text":"hi"}]})");
    CHECK(p.transport->done());
    CHECK(w.session.detach_calls() == 1);
    CHECK(w.session.attached() == nullptr);
    // Sent is not delivered: only the next ack proves receipt.
    CHECK(w.session.replay().messages().size() == 1);
    w.session.push("later");
    CHECK(p.bodies.size() == 1);
    w.finish();
}

TEST_CASE("poll: a backlog is answered at once with every message after ack, and again to a "
          "poll with the same ack") {
    PollWorld w;
    w.session.store("one");
    w.session.store(std::string("\x00\x01", 2), true);
    w.session.store("a\"b\nc\xE2\x80\xA8");
    Poll& p = w.poll(1);
    CHECK(w.session.acknowledged_calls() == std::vector<std::uint64_t>{1});
    CHECK(w.session.replay().first_seq() == 2);  // the ack trimmed the buffer
    const std::string want =
        R"({"messages":[{"seq":2,"binary":"AAE="},{"seq":3,"text":"a\"b\nc\u2028"}]})";
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] == want);
    // The answer was lost: the client polls again with the same ack and gets the same.
    Poll& again = w.poll(1);
    REQUIRE(again.bodies.size() == 1);
    CHECK(again.bodies[0] == want);
    CHECK(w.session.detach_calls() == 2);
    w.finish();
}

TEST_CASE("poll: with nothing to send the answer comes after the hold time, empty") {
    PollWorld w;
    w.session.store("seen");
    const std::uint64_t started = now_ms(w.loop);
    Poll& p = w.poll(1, 60);
    CHECK_FALSE(p.answered());
    REQUIRE(w.until([&] { return p.answered(); }));
    CHECK(p.answered_at - started >= 60);
    CHECK(p.bodies == std::vector<std::string>{R"({"messages":[]})"});
    CHECK(w.session.detach_calls() == 1);
    CHECK(w.session.replay().empty());
    w.finish();
}

TEST_CASE("poll: a newer poll answers the older one at once, empty; the older one does not "
          "detach and its hold timer is gone") {
    PollWorld w;
    Poll& older = w.poll(0, 80);
    run_for(w.loop, 20);
    Poll& newer = w.poll(0);
    REQUIRE(older.bodies.size() == 1);
    CHECK(older.bodies[0] == R"({"messages":[]})");
    CHECK(older.transport->done());
    CHECK_FALSE(newer.answered());
    CHECK(w.session.attached() == newer.transport.get());
    CHECK(w.session.detach_calls() == 0);
    CHECK(w.session.stray_detach_calls() == 0);
    run_for(w.loop, 120);  // past the older poll's hold time
    CHECK(older.bodies.size() == 1);
    CHECK_FALSE(newer.answered());
    w.session.push("m");
    REQUIRE(newer.bodies.size() == 1);
    CHECK(newer.bodies[0] == R"({"messages":[{"seq":1,"text":"m"}]})");
    CHECK(older.bodies.size() == 1);
    w.finish();
}

TEST_CASE("poll: the close marker follows the messages after ack, at once on a closed session") {
    PollWorld w;
    w.session.store("a");
    w.session.store("b");
    w.session.close(4000, "x \"y\"", false);
    Poll& p = w.poll(1);
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] ==
          R"({"messages":[{"seq":2,"text":"b"}],"close":{"code":4000,"reason":"x \"y\""}})");
    // Every poll of a closed session answers at once, whatever its ack.
    Poll& all_seen = w.poll(2);
    REQUIRE(all_seen.bodies.size() == 1);
    CHECK(all_seen.bodies[0] == R"({"messages":[],"close":{"code":4000,"reason":"x \"y\""}})");
    w.finish();
}

TEST_CASE("poll: a held poll gets the close as soon as the backend closes") {
    PollWorld w;
    Poll& p = w.poll(0);
    CHECK_FALSE(p.answered());
    w.session.close(1000, "bye");
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] == R"({"messages":[],"close":{"code":1000,"reason":"bye"}})");
    CHECK(w.session.detach_calls() == 1);
    w.finish();
}

TEST_CASE("poll: a gap marker names the messages evicted before they were acknowledged") {
    PollWorld w(2);  // the buffer keeps 2 messages
    for (int i = 1; i <= 4; ++i) {
        w.session.store("m" + std::to_string(i));
    }
    Poll& p = w.poll(0);
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] ==
          R"({"gap":{"from":1,"to":2},"messages":[{"seq":3,"text":"m3"},{"seq":4,"text":"m4"}]})");
    // A client that acknowledged before the evicted range sees no gap.
    Poll& caught_up = w.poll(3);
    REQUIRE(caught_up.bodies.size() == 1);
    CHECK(caught_up.bodies[0] == R"({"messages":[{"seq":4,"text":"m4"}]})");
    w.finish();
}

TEST_CASE("poll: a reset marker comes first and is answered at once") {
    PollWorld w;
    Poll& p = w.poll(0, kLongHold, Reset{"sess_A-1", "unknown session"});
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] ==
          R"({"reset":{"session":"sess_A-1","reason":"unknown session"},"messages":[]})");
    w.finish();
}

TEST_CASE("poll: an ack beyond the last message is clamped, so no later message is skipped") {
    PollWorld w;
    w.session.store("a");
    w.session.store("b");
    Poll& p = w.poll(10);
    CHECK(w.session.acknowledged_calls() == std::vector<std::uint64_t>{2});
    CHECK_FALSE(p.answered());
    w.session.push("c");
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] == R"({"messages":[{"seq":3,"text":"c"}]})");
    w.finish();
}

TEST_CASE("poll: a cancelled poll detaches without answering, and its hold timer is gone") {
    PollWorld w;
    Poll& p = w.poll(0, 50);
    p.transport->cancel();
    CHECK(p.transport->done());
    CHECK(w.session.detach_calls() == 1);
    p.transport->cancel();  // idempotent
    CHECK(w.session.detach_calls() == 1);
    w.session.push("x");
    run_for(w.loop, 100);
    CHECK_FALSE(p.answered());
    w.finish();
}

TEST_CASE("poll: a session that goes answers the held poll with what it has, without a "
          "detach") {
    PollWorld w;
    Poll& p = w.poll(0);
    w.session.store("last");
    w.session.close(1001, "proxy shutting down", false);
    w.session.gone();
    REQUIRE(p.bodies.size() == 1);
    CHECK(p.bodies[0] == R"({"messages":[{"seq":1,"text":"last"}],"close":{"code":1001,)"
                         R"("reason":"proxy shutting down"}})");
    CHECK(w.session.detach_calls() == 0);
    w.finish();
}

} // namespace proxy::test
