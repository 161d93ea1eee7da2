// proxy/tls/transform: a server and a client transform talking to each other in memory, with
// the example's certificate (scripts/example-cert.sh, made by the ctest fixture).

#include "proxy/tls/client_context.h"
#include "proxy/tls/server_context.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace {

using proxy::core::StreamTransform;

const std::string kCert = std::string(WSBRIDGE_SOURCE_DIR) + "/examples/tls/localhost.pem";
const std::string kKey = std::string(WSBRIDGE_SOURCE_DIR) + "/examples/tls/localhost.key";

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

/// TLS 1.3 record overhead for one application-data record: header, content type, AEAD tag.
constexpr std::size_t kRecordOverhead = 5 + 1 + 16;

struct Pair {
    std::unique_ptr<proxy::tls::ServerContext> server_ctx;
    std::unique_ptr<proxy::tls::ClientContext> client_ctx;
    std::unique_ptr<StreamTransform> server;
    std::unique_ptr<StreamTransform> client;
    std::string server_plain; ///< what the server's owner read
    std::string client_plain; ///< what the client's owner read
    std::string to_server;    ///< client wire bytes not yet fed to the server
    std::string to_client;

    Pair() {
        auto s = proxy::tls::ServerContext::create({{{kCert, kKey}}, false, ""});
        REQUIRE(s);
        server_ctx = std::move(*s);
        proxy::tls::ClientOptions options;
        options.ca_file = kCert;
        options.server_name = "localhost";
        auto c = proxy::tls::ClientContext::create(options);
        REQUIRE(c);
        client_ctx = std::move(*c);
        server = server_ctx->new_transform();
        client = client_ctx->new_transform();
        REQUIRE(server);
        REQUIRE(client);
    }

    /// Feeds both directions until neither side has anything to say.
    void pump() {
        for (int i = 0; i < 20 && (!to_server.empty() || !to_client.empty()); ++i) {
            if (!to_server.empty()) {
                const std::string in = std::exchange(to_server, {});
                REQUIRE(server->on_wire(bytes_of(in), server_plain, to_client));
            }
            if (!to_client.empty()) {
                const std::string in = std::exchange(to_client, {});
                REQUIRE(client->on_wire(bytes_of(in), client_plain, to_server));
            }
        }
    }

    void handshake() {
        REQUIRE(client->on_connected(to_server));
        pump();
        REQUIRE(client->ready());
        REQUIRE(server->ready());
    }

    /// The client writes `pieces` as one write; returns the wire bytes it produced.
    std::string client_writes(std::vector<std::string_view> pieces) {
        std::vector<std::span<const std::byte>> spans;
        for (auto p : pieces) {
            spans.push_back(bytes_of(p));
        }
        std::string wire;
        REQUIRE(client->on_plain(spans, wire));
        return wire;
    }
};

} // namespace

TEST_CASE("tls transform: handshake, then plain bytes both ways") {
    Pair p;
    p.handshake();
    const std::string wire = p.client_writes({"hello"});
    REQUIRE(p.server->on_wire(bytes_of(wire), p.server_plain, p.to_client));
    CHECK(p.server_plain == "hello");

    const std::span<const std::byte> one[1] = {bytes_of("world")};
    REQUIRE(p.server->on_plain(one, p.to_client));
    p.pump();
    CHECK(p.client_plain == "world");
}

TEST_CASE("tls transform: bytes written during the handshake are held, then sent in order") {
    Pair p;
    REQUIRE(p.client->on_connected(p.to_server));
    CHECK(p.client_writes({"early"}).empty());
    CHECK(p.client_writes({" bird"}).empty());
    p.pump();
    REQUIRE(p.server->ready());
    CHECK(p.server_plain == "early bird");
}

TEST_CASE("tls transform: one write of several pieces is one record") {
    Pair p;
    p.handshake();
    // A relayed frame: a 2-byte header and its payload.
    const std::string header("\x81\x05", 2);
    const std::string wire = p.client_writes({header, "hello"});
    CHECK(wire.size() == header.size() + 5 + kRecordOverhead);
    REQUIRE(p.server->on_wire(bytes_of(wire), p.server_plain, p.to_client));
    CHECK(p.server_plain == header + "hello");
}

TEST_CASE("tls transform: a large write of pieces arrives whole, in records of at most 16 KiB") {
    Pair p;
    p.handshake();
    std::string big(40 * 1024 + 7, 'x');
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>('a' + i % 26);
    }
    const std::string head("head");
    const std::string wire = p.client_writes({head, std::string_view(big).substr(0, 20000),
                                              std::string_view(big).substr(20000)});
    // 40 KiB + 11 bytes of plain text: three records, each with its overhead.
    CHECK(wire.size() == head.size() + big.size() + 3 * kRecordOverhead);
    REQUIRE(p.server->on_wire(bytes_of(wire), p.server_plain, p.to_client));
    CHECK(p.server_plain == head + big);
}

TEST_CASE("tls transform: records split at every byte offset") {
    Pair p;
    p.handshake();
    std::string expected;
    const std::string first = p.client_writes({"probe"});
    const std::size_t record = first.size();
    REQUIRE(p.server->on_wire(bytes_of(first), p.server_plain, p.to_client));
    expected += "probe";
    for (std::size_t cut = 0; cut <= 2 * record; ++cut) {
        // Two records in one buffer, split once at `cut`.
        const std::string a = "m" + std::to_string(cut);
        const std::string b = "n" + std::to_string(cut);
        std::string wire = p.client_writes({a}); // two statements: records are sequenced
        wire += p.client_writes({b});
        const std::string_view w(wire);
        const std::size_t at = std::min(cut, w.size());
        CAPTURE(at);
        auto r1 = p.server->on_wire(bytes_of(w.substr(0, at)), p.server_plain, p.to_client);
        REQUIRE_MESSAGE(r1, (r1 ? "" : r1.error().context));
        auto r2 = p.server->on_wire(bytes_of(w.substr(at)), p.server_plain, p.to_client);
        REQUIRE_MESSAGE(r2, (r2 ? "" : r2.error().context));
        expected += a + b;
    }
    CHECK(p.server_plain == expected);
    CHECK(p.to_client.empty());
}

TEST_CASE("tls transform: the handshake fed one byte at a time") {
    Pair p;
    REQUIRE(p.client->on_connected(p.to_server));
    for (int round = 0; round < 10 && !(p.client->ready() && p.server->ready()); ++round) {
        const std::string c2s = std::exchange(p.to_server, {});
        for (char ch : c2s) {
            REQUIRE(p.server->on_wire(bytes_of(std::string_view(&ch, 1)), p.server_plain,
                                      p.to_client));
        }
        const std::string s2c = std::exchange(p.to_client, {});
        for (char ch : s2c) {
            REQUIRE(p.client->on_wire(bytes_of(std::string_view(&ch, 1)), p.client_plain,
                                      p.to_server));
        }
    }
    CHECK(p.client->ready());
    CHECK(p.server->ready());
    const std::string wire = p.client_writes({"after"});
    REQUIRE(p.server->on_wire(bytes_of(wire), p.server_plain, p.to_client));
    CHECK(p.server_plain == "after");
}

TEST_CASE("tls transform: close_notify reaches the peer as the end of plain bytes") {
    Pair p;
    p.handshake();
    std::string wire;
    p.client->on_close(wire);
    CHECK(!wire.empty());
    REQUIRE(p.server->on_wire(bytes_of(wire), p.server_plain, p.to_client));
    CHECK(p.server_plain.empty());
}

TEST_CASE("tls transform: garbage fails the handshake with a reason; the next connection is "
          "not blamed for it") {
    {
        Pair p;
        std::string alert;
        auto r = p.server->on_wire(bytes_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), p.server_plain,
                                   alert);
        REQUIRE(!r);
        CHECK(r.error().context.find("handshake failed") != std::string::npos);
        CHECK(p.server_plain.empty());
        // Further input after the failure is refused, not parsed.
        CHECK(!p.server->on_wire(bytes_of("more"), p.server_plain, alert));
    }
    // A tampered record on an established connection.
    Pair q;
    q.handshake();
    std::string wire = q.client_writes({"secret"});
    wire[wire.size() - 1] = static_cast<char>(wire[wire.size() - 1] ^ 0x01);
    auto r = q.server->on_wire(bytes_of(wire), q.server_plain, q.to_client);
    REQUIRE(!r);
    CHECK(q.server_plain.empty());
    // A fresh pair on the same thread completes its handshake and carries data.
    Pair fresh;
    fresh.handshake();
    const std::string ok = fresh.client_writes({"fine"});
    REQUIRE(fresh.server->on_wire(bytes_of(ok), fresh.server_plain, fresh.to_client));
    CHECK(fresh.server_plain == "fine");
}

