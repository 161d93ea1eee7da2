// proxy/tls/transform and proxy/tls/record_layer: a server and a client transform talking to
// each other in memory, and a server transform against OpenSSL as the client, with the
// example's certificate (scripts/example-cert.sh, made by the ctest fixture).

#include "proxy/tls/client_context.h"
#include "proxy/tls/server_context.h"
#include "proxy/tls/transform.h"

#include <doctest/doctest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

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
    // A quiet TLS 1.3 server connection left OpenSSL for the record layer; the client did not.
    CHECK(dynamic_cast<proxy::tls::Transform&>(*p.server).handed_over());
    CHECK_FALSE(dynamic_cast<proxy::tls::Transform&>(*p.client).handed_over());
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


// ---- the record layer a server connection is handed over to, against OpenSSL as the client ----

namespace {

/// An OpenSSL TLS 1.3 client over memory BIOs, talking to a server transform.
struct RawClient {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = nullptr;
    BIO* in = BIO_new(BIO_s_mem());  // server → client
    BIO* out = BIO_new(BIO_s_mem()); // client → server
    std::unique_ptr<proxy::tls::ServerContext> server_ctx;
    std::unique_ptr<StreamTransform> server;
    std::string server_plain;

    explicit RawClient(const char* suites) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        REQUIRE(SSL_CTX_set_ciphersuites(ctx, suites) == 1);
        ssl = SSL_new(ctx);
        BIO_set_mem_eof_return(in, -1);
        SSL_set_bio(ssl, in, out);
        SSL_set_connect_state(ssl);
        auto s = proxy::tls::ServerContext::create({{{kCert, kKey}}, false, ""});
        REQUIRE(s);
        server_ctx = std::move(*s);
        server = server_ctx->new_transform();
    }
    ~RawClient() {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    std::string take_out() {
        std::string bytes(static_cast<std::size_t>(BIO_ctrl_pending(out)), '\0');
        if (!bytes.empty()) {
            BIO_read(out, bytes.data(), static_cast<int>(bytes.size()));
        }
        return bytes;
    }
    /// Feeds the client's output to the server; what the server answers goes to the client.
    proxy::core::Result<void> to_server() {
        const std::string bytes = take_out();
        std::string answer;
        auto r = server->on_wire(bytes_of(bytes), server_plain, answer);
        BIO_write(in, answer.data(), static_cast<int>(answer.size()));
        return r;
    }
    void handshake() {
        for (int i = 0; i < 10 && SSL_do_handshake(ssl) != 1; ++i) {
            REQUIRE(to_server());
        }
        REQUIRE(SSL_is_init_finished(ssl) == 1);
        REQUIRE(to_server()); // the client's Finished, on its own
        CHECK_FALSE(handed_over()); // not in the read that ends the handshake
    }
    void send(std::string_view text) {
        REQUIRE(SSL_write(ssl, text.data(), static_cast<int>(text.size())) ==
                static_cast<int>(text.size()));
    }
    /// Everything the client can read now.
    std::string receive() {
        std::string got;
        char buf[4096];
        for (;;) {
            const int n = SSL_read(ssl, buf, sizeof(buf));
            if (n <= 0) {
                return got;
            }
            got.append(buf, static_cast<std::size_t>(n));
        }
    }
    void server_writes(std::string_view text) {
        const std::span<const std::byte> one[1] = {bytes_of(text)};
        std::string wire;
        REQUIRE(server->on_plain(one, wire));
        BIO_write(in, wire.data(), static_cast<int>(wire.size()));
    }
    bool handed_over() { return dynamic_cast<proxy::tls::Transform&>(*server).handed_over(); }
    /// Handshake, one record to the server ("a"), and the handover done.
    void establish() {
        handshake();
        send("a");
        REQUIRE(to_server());
        REQUIRE(handed_over());
    }
};

} // namespace

TEST_CASE("tls record layer: every TLS 1.3 suite, both ways, after the handover") {
    for (const char* suite :
         {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
        CAPTURE(suite);
        RawClient c(suite);
        c.handshake();
        c.send("GET / HTTP/1.1\r\n\r\n");
        REQUIRE(c.to_server());
        CHECK(c.server_plain == "GET / HTTP/1.1\r\n\r\n");
        CHECK(c.handed_over());
        c.server_writes("HTTP/1.1 101 Switching Protocols\r\n\r\n");
        CHECK(c.receive() == "HTTP/1.1 101 Switching Protocols\r\n\r\n");
        // More than one record's worth from the server: OpenSSL rejects records over 16 KiB.
        const std::string big(40000, 'b');
        c.server_writes(big);
        CHECK(c.receive() == big);
        c.send(big);
        c.server_plain.clear();
        REQUIRE(c.to_server());
        CHECK(c.server_plain == big);
    }
}

TEST_CASE("tls record layer: KeyUpdate from the client, requested and not") {
    RawClient c("TLS_AES_128_GCM_SHA256");
    c.establish();
    // Not requested: only the client's key moves on.
    REQUIRE(SSL_key_update(c.ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
    c.send("two");
    REQUIRE(c.to_server());
    c.server_writes("back1");
    CHECK(c.receive() == "back1");
    // Requested: the server answers with its own KeyUpdate and moves its key on.
    REQUIRE(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
    c.send("three");
    REQUIRE(c.to_server());
    c.server_writes("back2");
    CHECK(c.receive() == "back2");
    c.send("four");
    REQUIRE(c.to_server());
    CHECK(c.server_plain == "atwothreefour");
}

TEST_CASE("tls record layer: close_notify, then nothing more is read") {
    RawClient c("TLS_AES_128_GCM_SHA256");
    c.establish();
    SSL_shutdown(c.ssl);
    REQUIRE(c.to_server());
    CHECK(c.server_plain == "a");
    std::string wire;
    c.server->on_close(wire);
    BIO_write(c.in, wire.data(), static_cast<int>(wire.size()));
    c.receive();
    CHECK((SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN) != 0);
}

TEST_CASE("tls record layer: a tampered, oversized or unexpected record fails with an alert") {
    SUBCASE("tampered: bad_record_mac") {
        RawClient c("TLS_AES_128_GCM_SHA256");
        c.establish();
        c.send("secret");
        std::string bytes = c.take_out();
        bytes[7] = static_cast<char>(bytes[7] ^ 0x20);
        std::string answer;
        auto r = c.server->on_wire(bytes_of(bytes), c.server_plain, answer);
        REQUIRE(!r);
        CHECK(r.error().context.find("bad record mac") != std::string::npos);
        CHECK(c.server_plain == "a");
        BIO_write(c.in, answer.data(), static_cast<int>(answer.size()));
        char buf[16];
        CHECK(SSL_read(c.ssl, buf, sizeof(buf)) <= 0);
        CHECK(SSL_get_error(c.ssl, -1) == SSL_ERROR_SSL); // the client got our fatal alert
        // Input after the failure is refused.
        CHECK(!c.server->on_wire(bytes_of("more"), c.server_plain, answer));
    }
    SUBCASE("oversized: record_overflow") {
        RawClient c("TLS_AES_128_GCM_SHA256");
        c.establish();
        const std::string header("\x17\x03\x03\x41\x01", 5); // 16641 > 16384 + 256
        std::string answer;
        auto r = c.server->on_wire(bytes_of(header), c.server_plain, answer);
        REQUIRE(!r);
        CHECK(r.error().context.find("record over") != std::string::npos);
        CHECK(!answer.empty());
    }
    SUBCASE("change_cipher_spec after the handshake: unexpected_message") {
        RawClient c("TLS_AES_128_GCM_SHA256");
        c.establish();
        std::string answer;
        auto r = c.server->on_wire(bytes_of(std::string("\x14\x03\x03\x00\x01\x01", 6)),
                                   c.server_plain, answer);
        REQUIRE(!r);
        CHECK(r.error().context.find("change_cipher_spec") != std::string::npos);
    }
}

TEST_CASE("tls record layer: a client that negotiated smaller records stays with OpenSSL") {
    RawClient c("TLS_AES_128_GCM_SHA256");
    REQUIRE(SSL_set_tlsext_max_fragment_length(c.ssl, TLSEXT_max_fragment_length_512) == 1);
    c.handshake();
    c.send("a");
    REQUIRE(c.to_server());
    CHECK_FALSE(c.handed_over());
    const std::string big(3000, 'm');
    c.server_writes(big); // in records of at most 512 bytes, which the client accepts
    CHECK(c.receive() == big);
}
