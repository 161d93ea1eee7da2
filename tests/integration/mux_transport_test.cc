// Integration tests of transports::mux::MuxSseTransport and MuxPollTransport alone
// (docs/protocol.md, "Many sessions on one connection"): a real stream over a loopback socket
// pair, several FakeSessions the test plays, the client's bytes read back with a WHATWG
// EventSource parser. Every test ends with the clean-loop check.

#include "proxy/core/loop.h"
#include "tests/support/fake_session.h"
#include "tests/support/run_until.h"
#include "tests/support/stream_pair.h"
#include "tests/unit/support/event_source_parser.h"
#include "transports/mux/mux_poll_transport.h"
#include "transports/mux/mux_sse_transport.h"

#include <doctest/doctest.h>

namespace proxy::test {
namespace {

using transports::mux::MuxPollTransport;
using transports::mux::MuxSseOptions;
using transports::mux::MuxSseTransport;

constexpr std::uint64_t kWait = 2000;

struct World {
    World() : pair(loop), a("A"), b("B"), c("C") {
        ignore_sigpipe();
        pair.connected->set_handler(&client);
        pair.connected->start_read();
    }
    ~World() {
        if (!finished_) {
            a.gone();
            b.gone();
            c.gone();
            pair.close_all();
            loop.drain_deferred();
        }
    }
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    bool until(const std::function<bool()>& pred, std::uint64_t timeout_ms = kWait) {
        return run_until(loop, pred, timeout_ms);
    }
    /// The events the client parsed so far (the HTTP head skipped), as "type|data".
    std::vector<std::string> events() {
        const auto at = client.got.find("\r\n\r\n");
        if (at == std::string::npos) {
            return {};
        }
        std::vector<std::string> out;
        for (const auto& e : test_support::parse_whole(client.got.substr(at + 4)).events) {
            out.push_back(e.type + "|" + e.data);
        }
        return out;
    }
    std::vector<std::string> wait_events(std::size_t n) {
        CHECK(until([&] { return events().size() >= n; }));
        run_for(loop, 20);
        return events();
    }
    MuxSseTransport& start(const std::vector<std::pair<FakeSession*, std::uint64_t>>& list,
                           bool with_unknown = false) {
        MuxSseOptions o;
        o.send_url = "/chat?transport=mux";
        o.retire = [this](MuxSseTransport& t) {
            for (auto it = streams.begin(); it != streams.end(); ++it) {
                if (it->get() == &t) {
                    loop.defer_delete(std::move(*it));
                    streams.erase(it);
                    return;
                }
            }
        };
        streams.push_back(
            std::make_unique<MuxSseTransport>(loop, std::move(pair.accepted), std::move(o)));
        MuxSseTransport& t = *streams.back();
        for (const auto& [s, after] : list) {
            s->attach(t.add(s, std::string(s->id()), after));
        }
        if (with_unknown) {
            t.add(nullptr, "Z", 0, "unknown session");
        }
        t.start();
        return t;
    }
    void finish() {
        finished_ = true;
        a.gone();
        b.gone();
        c.gone();
        CHECK(until([&] { return client.eof && loop.deferred_count() == 0; }));
        pair.close_all();
        CHECK_MESSAGE(until([&] { return open_handles(loop) == 0; }),
                      "open handles: " << describe_open_handles(loop));
        CHECK(loop.close_all());
    }

    core::Loop loop;
    StreamPair pair;
    ByteSink client;
    FakeSession a;
    FakeSession b;
    FakeSession c;
    std::vector<std::unique_ptr<MuxSseTransport>> streams;

  private:
    bool finished_ = false;
};

struct Responder final : transports::long_polling::PollResponder {
    std::vector<std::string> bodies;
    void respond_poll(std::string body) override { bodies.push_back(std::move(body)); }
};

} // namespace

TEST_CASE("mux sse: the announce, then every session's backlog, interleaved, each named") {
    World w;
    w.a.store("a1");
    w.a.store("a2");
    w.b.store("b1", true);
    w.start({{&w.a, 1}, {&w.b, 0}}, true);
    w.a.push("a3");
    w.b.push("b2\nx");
    const auto got = w.wait_events(5);
    REQUIRE(got.size() == 5);
    CHECK(got[0] ==
          R"(mux|{"send":"/chat?transport=mux","heartbeat_ms":30000,"sessions":[{"session":"A","last_seq":1,"next_seq":1},{"session":"B","last_seq":0,"next_seq":1},{"session":"Z","reset":"unknown session"}]})");
    CHECK(got[1] == "message|A 2 a2");
    CHECK(got[2] == "mb|B 1 YjE=");
    CHECK(got[3] == "message|A 3 a3");
    CHECK(got[4] == "message|B 2 b2\nx");
    CHECK(w.a.delivered_calls().back() == 3);
    CHECK(w.b.delivered_calls().back() == 2);
    w.finish();
}

TEST_CASE("mux sse: one session's close or departure leaves the others flowing; the stream ends "
          "with its last session") {
    World w;
    w.start({{&w.a, 0}, {&w.b, 0}, {&w.c, 0}});
    w.a.push("a1");
    w.a.close(1000, "bye");
    w.b.push("b1");
    // Another transport takes C: the stream says so and C leaves it.
    struct Other final : transports::Transport {
        void on_messages() override {}
        void on_replaced() override {}
        void on_session_gone() override {}
    } other;
    w.c.attach(other);
    w.b.push("b2");
    auto got = w.wait_events(6);
    REQUIRE(got.size() == 6);
    CHECK(got[1] == "message|A 1 a1");
    CHECK(got[2] == R"(close|{"session":"A","code":1000,"reason":"bye"})");
    CHECK(got[3] == "message|B 1 b1");
    CHECK(got[4] == R"(detached|{"session":"C","reason":"replaced"})");
    CHECK(got[5] == "message|B 2 b2");
    CHECK(w.a.detach_calls() == 1);
    CHECK(w.c.detach_calls() == 0);
    CHECK_FALSE(w.client.eof);
    w.b.gone();  // the last session goes: its close, then the stream ends
    CHECK(w.until([&] { return w.client.eof; }));
    w.c.detach(other);
    w.finish();
}

TEST_CASE("mux sse: the client's EOF detaches every session") {
    World w;
    w.start({{&w.a, 0}, {&w.b, 0}});
    (void)w.wait_events(1);
    w.pair.connected->close(core::TcpStream::CloseMode::Abort);
    CHECK(w.until([&] { return w.a.detach_calls() == 1 && w.b.detach_calls() == 1; }));
    w.client.eof = true;  // the client side is gone; nothing more to read
    w.finish();
}

TEST_CASE("mux poll: positions acknowledge; the answer names only sessions with news") {
    core::Loop loop;
    FakeSession a("A");
    FakeSession b("B");
    a.store("a1");
    a.store("a2");
    Responder r;
    {
        auto poll = std::make_unique<MuxPollTransport>(loop, 1000, r);
        a.attach(poll->add(&a, "A", 1, {}));
        b.attach(poll->add(&b, "B", 0, {}));
        poll->add(nullptr, "Z", 0, "unknown session");
        poll->start();
        REQUIRE(r.bodies.size() == 1);
        CHECK(r.bodies[0] ==
              R"({"sessions":[{"session":"A","messages":[{"seq":2,"text":"a2"}]},{"session":"Z","reset":"unknown session"}]})");
        CHECK(a.acknowledged_calls() == std::vector<std::uint64_t>{1});
        CHECK(a.detach_calls() == 1);
        CHECK(b.detach_calls() == 1);
    }
    {
        auto poll = std::make_unique<MuxPollTransport>(loop, 1000, r);
        a.attach(poll->add(&a, "A", 2, {}));
        b.attach(poll->add(&b, "B", 0, {}));
        poll->start();
        CHECK(r.bodies.size() == 1);  // held: nothing new
        b.push("b1");
        REQUIRE(r.bodies.size() == 2);
        CHECK(r.bodies[1] ==
              R"({"sessions":[{"session":"B","messages":[{"seq":1,"text":"b1"}]}]})");
    }
    {
        auto poll = std::make_unique<MuxPollTransport>(loop, 50, r);
        a.attach(poll->add(&a, "A", 2, {}));
        poll->start();
        CHECK(run_until(loop, [&] { return r.bodies.size() == 3; }, 2000));
        CHECK(r.bodies[2] == R"({"sessions":[]})");
    }
    {
        auto poll = std::make_unique<MuxPollTransport>(loop, 1000, r);
        a.attach(poll->add(&a, "A", 2, {}));
        b.attach(poll->add(&b, "B", 1, {}));
        poll->start();
        struct Other final : transports::Transport {
            void on_messages() override {}
            void on_replaced() override {}
            void on_session_gone() override {}
        } other;
        a.attach(other);  // another connection takes A: answered at once, naming it
        REQUIRE(r.bodies.size() == 4);
        CHECK(r.bodies[3] == R"({"sessions":[{"session":"A","detached":"replaced"}]})");
        CHECK(b.detach_calls() == 3);
        a.detach(other);
    }
    {
        auto poll = std::make_unique<MuxPollTransport>(loop, 1000, r);
        b.attach(poll->add(&b, "B", 1, {}));
        poll->start();
        b.close(1011, "down");
        REQUIRE(r.bodies.size() == 5);
        CHECK(r.bodies[4] ==
              R"({"sessions":[{"session":"B","messages":[],"close":{"code":1011,"reason":"down"}}]})");
    }
    loop.drain_deferred();
    CHECK(loop.close_all());
}

} // namespace proxy::test
