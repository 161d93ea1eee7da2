// Tests for transports/long_polling/codec.cc (SPEC §3 "Long-poll wire format", "Sending"):
// exact bytes of the open and poll bodies, encode→parse round trips, and the batch POST parser:
// valid shapes, every error class with its Code and context, the limits, adversarial inputs
// that must stay linear, and every proper prefix of a valid body rejected cleanly.

#include "proxy/core/base64.h"
#include "transports/json.h"
#include "transports/long_polling/codec.h"

#include <doctest/doctest.h>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace transports::long_polling {
namespace {

using proxy::core::Code;
using proxy::core::Side;
using namespace std::string_literals;

template <class T>
void check_error(const proxy::core::Result<T>& r, Code code, std::string_view context) {
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == code);
    CHECK(r.error().side == Side::Client);
    CHECK(r.error().context == context);
}

void check_bad(std::string_view body, std::string_view context) {
    INFO("body: ", std::string(body));
    check_error(parse_batch(body, 1 << 20, 100), Code::BadRequest, context);
}

std::vector<InMessage> parse_ok(std::string_view body, std::uint64_t max_message = 1 << 20,
                                std::size_t max_count = 100) {
    INFO("body: ", std::string(body));
    auto r = parse_batch(body, max_message, max_count);
    if (!r) {
        FAIL_CHECK("unexpected error: ", r.error().context);
        return {};
    }
    return std::move(r).value();
}

InMessage text(std::string s) { return InMessage{false, std::move(s)}; }
InMessage binary(std::string s) { return InMessage{true, std::move(s)}; }

std::string base64(std::string_view s) {
    return proxy::core::base64_encode(std::as_bytes(std::span{s}));
}

// A batch body built with the project's own writer, as a client library would.
std::string batch_body(const std::vector<InMessage>& messages) {
    std::string out = "[";
    for (const auto& m : messages) {
        if (out.size() > 1) {
            out += ',';
        }
        if (m.binary) {
            out += "{\"binary\":\"" + base64(m.payload) + "\"}";
        } else {
            out += "{\"text\":";
            json::append_string(out, m.payload);
            out += '}';
        }
    }
    return out + "]";
}

// Every proper prefix of a valid body fails (unless only whitespace is cut off) and never
// crashes; the failure is a BadRequest, never a limit.
void check_prefixes(std::string_view body) {
    const auto last = body.find_last_not_of(" \t\r\n");
    for (std::size_t k = 0; k < body.size(); ++k) {
        const auto r = parse_batch(body.substr(0, k), 1 << 20, 100);
        if (last != std::string_view::npos && k > last) {
            CHECK(r.has_value());
        } else if (r.has_value()) {
            FAIL_CHECK("prefix of ", k, " bytes accepted: ", std::string(body.substr(0, k)));
        } else {
            CHECK(r.error().code == Code::BadRequest);
        }
    }
}

TEST_CASE("long_polling codec: poll response bytes, no markers") {
    CHECK(encode_poll_response({}, {}, {}, {}) == R"({"messages":[]})");
    const std::vector<OutMessage> one = {{7, false, "hello"}};
    CHECK(encode_poll_response(one, {}, {}, {}) == R"({"messages":[{"seq":7,"text":"hello"}]})");
    const std::string bytes = "\x00\x01\xfe\xff"s;
    const std::vector<OutMessage> mixed = {
        {7, false, "a \"quoted\"\nline"}, {8, true, bytes}, {9, true, ""}, {10, false, ""}};
    CHECK(encode_poll_response(mixed, {}, {}, {}) ==
          R"({"messages":[{"seq":7,"text":"a \"quoted\"\nline"},{"seq":8,"binary":"AAH+/w=="},)"
          R"({"seq":9,"binary":""},{"seq":10,"text":""}]})");
}

TEST_CASE("long_polling codec: poll response text escaping is RFC 8259 and JavaScript-safe") {
    const std::vector<OutMessage> m = {
        {1, false, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8\xe2\x80\xa9 \x01\t\\ </script>"}};
    CHECK(encode_poll_response(m, {}, {}, {}) ==
          "{\"messages\":[{\"seq\":1,\"text\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \\u2028\\u2029 "
          "\\u0001\\t\\\\ </script>\"}]}");
}

TEST_CASE("long_polling codec: poll response markers in the order reset, gap, messages, close") {
    const std::vector<OutMessage> m = {{6, false, "x"}};
    const Gap gap{1, 5};
    const Reset reset{"a1-Zx_9", "unknown"};
    const Close close{1000, "bye \"now\""};
    CHECK(encode_poll_response(m, gap, {}, {}) ==
          R"({"gap":{"from":1,"to":5},"messages":[{"seq":6,"text":"x"}]})");
    CHECK(encode_poll_response({}, {}, reset, {}) ==
          R"({"reset":{"session":"a1-Zx_9","reason":"unknown"},"messages":[]})");
    CHECK(encode_poll_response({}, {}, {}, close) ==
          R"({"messages":[],"close":{"code":1000,"reason":"bye \"now\""}})");
    CHECK(encode_poll_response(m, gap, reset, Close{4999, ""}) ==
          R"({"reset":{"session":"a1-Zx_9","reason":"unknown"},"gap":{"from":1,"to":5},)"
          R"("messages":[{"seq":6,"text":"x"}],"close":{"code":4999,"reason":""}})");
    const std::vector<OutMessage> big = {{UINT64_MAX, false, "z"}};
    CHECK(encode_poll_response(big, Gap{UINT64_MAX - 1, UINT64_MAX}, {}, Close{65535, ""}) ==
          R"({"gap":{"from":18446744073709551614,"to":18446744073709551615},)"
          R"("messages":[{"seq":18446744073709551615,"text":"z"}],)"
          R"("close":{"code":65535,"reason":""}})");
}

TEST_CASE("long_polling codec: open response bytes") {
    CHECK(encode_open_response("a1-Zx_9", "/ws?session=a1-Zx_9", "/ws?session=a1-Zx_9", 25000, 0) ==
          R"({"session":"a1-Zx_9","send":"/ws?session=a1-Zx_9","poll":"/ws?session=a1-Zx_9",)"
          R"("hold_ms":25000,"last_seq":0})");
    CHECK(encode_open_response("s", "/a\"b", "/c\\d", 0, 42) ==
          R"({"session":"s","send":"/a\"b","poll":"/c\\d","hold_ms":0,"last_seq":42})");
    CHECK(encode_open_response("s", "/a", "/a", 0, 0, "mqtt") ==
          R"({"session":"s","send":"/a","poll":"/a","hold_ms":0,"last_seq":0,"protocol":"mqtt"})");
}

TEST_CASE("long_polling codec: poll responses round-trip through parse_poll_response") {
    std::mt19937 engine(7);
    const auto rng = [&] { return static_cast<std::uint32_t>(engine()); };
    std::string all_bytes;
    for (int c = 0; c < 256; ++c) {
        all_bytes += static_cast<char>(c);
    }
    std::string all_ascii = all_bytes.substr(0, 128);
    const std::vector<std::string> texts = {"", "plain", all_ascii,
                                            "\xe2\x80\xa8\xf0\x9f\x98\x80\xc3\xa9", "\0"s};
    std::vector<std::string> payloads;
    std::vector<OutMessage> out;
    for (std::uint64_t seq = 1; seq <= 40; ++seq) {
        const bool is_binary = seq % 3 == 0;
        if (is_binary) {
            payloads.push_back(all_bytes.substr(rng() % 256));
        } else {
            payloads.push_back(texts[seq % texts.size()]);
        }
    }
    for (std::uint64_t seq = 1; seq <= 40; ++seq) {
        out.push_back({seq + 100, seq % 3 == 0, payloads[seq - 1]});
    }
    const std::optional<Gap> gaps[] = {std::nullopt, Gap{3, 100}};
    const std::optional<Reset> resets[] = {std::nullopt, Reset{"new-\xc3\xa9", "unknown"}};
    const std::optional<Close> closes[] = {std::nullopt, Close{1011, "oops\n\xe2\x80\xa9"}};
    for (std::size_t count : {0u, 1u, 40u}) {
        for (const auto& gap : gaps) {
            for (const auto& reset : resets) {
                for (const auto& close : closes) {
                    const std::span<const OutMessage> m(out.data(), count);
                    const auto body = encode_poll_response(m, gap, reset, close);
                    const auto back = parse_poll_response(body);
                    REQUIRE(back.has_value());
                    REQUIRE(back->messages.size() == count);
                    for (std::size_t i = 0; i < count; ++i) {
                        CHECK(back->messages[i] ==
                              PolledMessage{m[i].seq, m[i].binary, std::string(m[i].payload)});
                    }
                    CHECK(back->gap.has_value() == gap.has_value());
                    if (gap && back->gap) {
                        CHECK(back->gap->from == gap->from);
                        CHECK(back->gap->to == gap->to);
                    }
                    CHECK(back->reset.has_value() == reset.has_value());
                    if (reset && back->reset) {
                        CHECK(back->reset->session == reset->session);
                        CHECK(back->reset->reason == reset->reason);
                    }
                    CHECK(back->close.has_value() == close.has_value());
                    if (close && back->close) {
                        CHECK(back->close->code == close->code);
                        CHECK(back->close->reason == close->reason);
                    }
                }
            }
        }
    }
}

TEST_CASE("long_polling codec: parse_poll_response takes any key order and is strict") {
    const auto r = parse_poll_response(
        R"( { "close" : {"reason":"r","code":1001}, "messages" : [ {"text":"t","seq":2} ] } )");
    REQUIRE(r.has_value());
    CHECK(r->messages == std::vector<PolledMessage>{{2, false, "t"}});
    CHECK(r->close->code == 1001);
    const auto bad = [](std::string_view body, std::string_view context) {
        INFO("body: ", std::string(body));
        check_error(parse_poll_response(body), Code::BadRequest, context);
    };
    bad(R"({})", R"(offset 0: missing key "messages")");
    bad(R"({"messages":[],"messages":[]})", R"(offset 24: duplicate key "messages")");
    bad(R"({"messages":[],"extra":1})", R"(offset 21: unknown key "extra")");
    bad(R"({"messages":[{"seq":1}]})", "offset 13: message needs seq and one of text or binary");
    bad(R"({"messages":[{"text":"a","binary":""}]})",
        "offset 13: message needs seq and one of text or binary");
    bad(R"({"messages":[{"seq":1,"binary":"A"}]})", "item 0: invalid base64");
    bad(R"({"messages":[],"close":{"code":65536,"reason":""}})",
        "offset 31: close code out of range");
    bad(R"({"messages":[],"gap":{"from":1}})", "offset 21: missing key in gap");
    bad(R"({"messages":[]}x)", "offset 15: unexpected data after the document");
}

TEST_CASE("batch: valid bodies") {
    CHECK(parse_ok("[]").empty());
    CHECK(parse_ok(" \t\r\n[ \t\r\n] \t\r\n").empty());
    CHECK(parse_ok(R"([{"text":"hi"}])") == std::vector{text("hi")});
    CHECK(parse_ok(R"([{"binary":"AAH+/w=="}])") == std::vector{binary("\x00\x01\xfe\xff"s)});
    CHECK(parse_ok(R"([{"text":""},{"binary":""}])") == std::vector{text(""), binary("")});
    CHECK(parse_ok(R"([{"text":"a"},{"binary":"Yg=="},{"text":"c"}])") ==
          std::vector{text("a"), binary("b"), text("c")});
    CHECK(parse_ok(R"([{"text":"caf\u00e9 \ud83d\ude00 \u2028 \"q\" \\ \/ \n\u0000"}])") ==
          std::vector{text("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8 \"q\" \\ / \n\0"s)});
    CHECK(parse_ok("[{\"text\":\"raw caf\xc3\xa9 \xf0\x9f\x98\x80\"}]") ==
          std::vector{text("raw caf\xc3\xa9 \xf0\x9f\x98\x80")});
    // Keys compare after unescaping, and escapes are allowed inside base64 strings.
    CHECK(parse_ok(R"([{"t\u0065xt":"k"},{"binary":"\u0041\u0041\u003d\u003d"}])") ==
          std::vector{text("k"), binary("\0"s)});
    CHECK(parse_ok(" [ { \"text\" : \"a\" } , { \"binary\" : \"\" } ] ") ==
          std::vector{text("a"), binary("")});
}

TEST_CASE("batch: syntax errors name the offset") {
    check_bad("", "offset 0: expected '['");
    check_bad("   ", "offset 3: expected '['");
    check_bad("{}", "offset 0: expected '['");
    check_bad("\xef\xbb\xbf[]", "offset 0: expected '['"); // no BOM (RFC 8259 §8.1)
    check_bad("[", "offset 1: expected '{'");
    check_bad("[1]", "offset 1: expected '{'");
    check_bad("[null]", "offset 1: expected '{'");
    check_bad("[\"text\"]", "offset 1: expected '{'");
    check_bad("[[[[", "offset 1: expected '{'");
    check_bad("[/* c */]", "offset 1: expected '{'");
    check_bad("[\f]", "offset 1: expected '{'");
    check_bad(R"([{"text":"a"})", "offset 13: expected ',' or ']'");
    check_bad(R"([{"text":"a"} {"text":"b"}])", "offset 14: expected ',' or ']'");
    check_bad(R"([{"text":"a"},])", "offset 14: expected '{'");
    check_bad(R"([{"text":"a"}]])", "offset 14: unexpected data after the document");
    check_bad(R"([{"text":"a"}][])", "offset 14: unexpected data after the document");
    check_bad(R"([{"text":"a"}]x)", "offset 14: unexpected data after the document");
    check_bad(R"([{"text":"a",}])", "offset 13: expected string key");
    check_bad(R"([{"text":"a" "b"}])", "offset 13: expected ',' or '}'");
    check_bad(R"([{text:"a"}])", "offset 2: expected string key");
    check_bad(R"([{'text':'a'}])", "offset 2: expected string key");
    check_bad(R"([{"text" "a"}])", "offset 9: expected ':'");
    check_bad(R"([{"text"="a"}])", "offset 8: expected ':'");
    check_bad(R"([{"text":1}])", "offset 9: expected string");
    check_bad(R"([{"text":NaN}])", "offset 9: expected string");
    check_bad(R"([{"text":null}])", "offset 9: expected string");
    check_bad(R"([{"text":["a"]}])", "offset 9: expected string");
    check_bad(R"([{"text":{"a":1}}])", "offset 9: expected string");
    check_bad(R"([{"text":1e999999999}])", "offset 9: expected string");
    check_bad(R"([{"binary":true}])", "offset 11: expected string");
    check_bad(R"([{"text":"a\qb"}])", "offset 11: invalid escape");
    check_bad(R"([{"text":"\ud800"}])", "offset 10: lone surrogate");
    check_bad(R"([{"text":"\udc00\ud800"}])", "offset 10: lone surrogate");
    check_bad("[{\"text\":\"a\nb\"}]", "offset 11: unescaped control character in string");
    check_bad("[{\"text\":\"a\xff\"}]", "offset 11: invalid UTF-8");
    check_bad("[{\"text\":\"\xed\xa0\x80\"}]", "offset 11: invalid UTF-8");
    check_bad("[{\"te\xc3\"}]", "offset 6: invalid UTF-8 (truncated sequence)");
    check_bad("[{\"text\":\"a\"}]\xff", "offset 14: unexpected data after the document");
}

TEST_CASE("batch: content errors name the item") {
    check_bad(R"([{}])", R"(item 0: expected "text" or "binary")");
    check_bad(R"([{"text":"a"},{"foo":"a"}])", R"(item 1: unknown key "foo")");
    check_bad(R"([{"Text":"a"}])", R"(item 0: unknown key "Text")");
    check_bad(R"([{"seq":"1"}])", R"(item 0: unknown key "seq")");
    check_bad(R"([{"text":"a","text":"b"}])", R"(item 0: duplicate key "text")");
    check_bad(R"([{"binary":"","binary":""}])", R"(item 0: duplicate key "binary")");
    check_bad(R"([{"text":"a","binary":""}])", "item 0: both text and binary");
    check_bad(R"([{"binary":"","t\u0065xt":"a"}])", "item 0: both text and binary");
    check_bad(R"([{"text":"a"},{"text":"b"},{"binary":"A"}])", "item 2: invalid base64");
    check_bad(R"([{"binary":"AAE"}])", "item 0: invalid base64");
    check_bad(R"([{"binary":"AA E"}])", "item 0: invalid base64");
    check_bad(R"([{"binary":"AAE=\n"}])", "item 0: invalid base64");
    check_bad(R"([{"binary":"AAF="}])", "item 0: invalid base64"); // non-zero pad bits
    check_bad(R"([{"binary":"_-8="}])", "item 0: invalid base64"); // URL-safe alphabet
    // A long unknown key is cut in the context so it cannot flood the log.
    check_bad("[{\"" + std::string(1000, 'k') + "\":\"a\"}]",
              "item 0: unknown key \"" + std::string(32, 'k') + "...\"");
    // The first problem in byte order wins.
    check_bad(R"([{"foo":1}])", R"(item 0: unknown key "foo")");
    check_bad(R"([{"binary":"A","text":1}])", "item 0: invalid base64");
}

TEST_CASE("batch: max_message applies to each decoded message, at and one over") {
    CHECK(parse_ok(R"([{"text":"abcd"}])", 4) == std::vector{text("abcd")});
    check_error(parse_batch(R"([{"text":"abcd"},{"text":"abcde"}])", 4, 100), Code::PayloadTooLarge,
                "item 1: message of 5 bytes exceeds max_message 4");
    // Decoded size counts: "\u00e9" is 2 bytes, the base64 "AAECAw==" is 4.
    CHECK(parse_ok(R"([{"text":"\u00e9\u00e9"}])", 4).size() == 1);
    check_error(parse_batch(R"([{"text":"\u00e9\u00e9a"}])", 4, 100), Code::PayloadTooLarge,
                "item 0: message of 5 bytes exceeds max_message 4");
    CHECK(parse_ok(R"([{"binary":"AAECAw=="}])", 4) == std::vector{binary("\x00\x01\x02\x03"s)});
    check_error(parse_batch(R"([{"binary":"AAECAwQ="}])", 4, 100), Code::PayloadTooLarge,
                "item 0: message of 5 bytes exceeds max_message 4");
    CHECK(parse_ok(R"([{"text":""},{"binary":""}])", 0).size() == 2);
    check_error(parse_batch(R"([{"text":"a"}])", 0, 100), Code::PayloadTooLarge,
                "item 0: message of 1 bytes exceeds max_message 0");
    // Too large is found before a later syntax error in the same item.
    check_error(parse_batch(R"([{"text":"abcde",)", 4, 100), Code::PayloadTooLarge,
                "item 0: message of 5 bytes exceeds max_message 4");
}

TEST_CASE("batch: max_count, at and one over") {
    CHECK(parse_ok(R"([{"text":"a"},{"text":"b"}])", 10, 2).size() == 2);
    check_error(parse_batch(R"([{"text":"a"},{"text":"b"},{"text":"c"}])", 10, 2),
                Code::PayloadTooLarge, "more than 2 messages");
    // Found when the extra item starts, before the rest of the body is parsed.
    check_error(parse_batch(R"([{"text":"a"},{"text":"b"},{)", 10, 2), Code::PayloadTooLarge,
                "more than 2 messages");
    CHECK(parse_ok("[]", 10, 0).empty());
    check_error(parse_batch(R"([{"text":"a"}])", 10, 0), Code::PayloadTooLarge,
                "more than 0 messages");
}

TEST_CASE("batch: round trip of bodies built with the writer") {
    std::mt19937 engine(99);
    const auto rng = [&] { return static_cast<std::uint32_t>(engine()); };
    std::vector<InMessage> messages;
    for (int i = 0; i < 300; ++i) {
        std::string payload;
        const auto len = rng() % 64;
        const bool is_binary = rng() % 2 == 0;
        for (std::uint32_t k = 0; k < len; ++k) {
            // Binary: any byte. Text: ASCII including every control character.
            payload += static_cast<char>(is_binary ? rng() % 256 : rng() % 128);
        }
        messages.push_back({is_binary, payload});
    }
    messages.push_back(text("\xe2\x80\xa8\xe2\x80\xa9\xf0\x9f\x98\x80"));
    CHECK(parse_ok(batch_body(messages), 64, 301) == messages);
}

TEST_CASE("batch: every proper prefix of a valid body is rejected cleanly") {
    const std::vector<std::string> bodies = {
        "[]",
        " [ ] ",
        R"([{"text":"hi"}])",
        R"([{"binary":"AAH+/w=="},{"text":"a\"b\\c\/d\n"}])",
        R"([{"text":"caf\u00e9 \ud83d\ude00"}])",
        "[{\"text\":\"raw \xf0\x9f\x98\x80 \xc3\xa9\"}]\r\n",
        " [ { \"text\" : \"a\" } , { \"binary\" : \"\" } ] ",
    };
    for (const auto& body : bodies) {
        INFO("body: ", body);
        REQUIRE(parse_batch(body, 1 << 20, 100).has_value());
        check_prefixes(body);
    }
}

TEST_CASE("batch: adversarial bodies fail fast or parse in linear time") {
    // Deep nesting: the parser never recurses, the second '[' is simply not a '{'.
    check_bad(std::string(10 * 1024, '['), "offset 1: expected '{'");
    check_bad(std::string(1 << 20, '['), "offset 1: expected '{'");
    check_bad("[" + std::string(1 << 20, '{'), "offset 2: expected string key");
    check_bad("[{\"text\":" + std::string(1 << 20, '['), "offset 9: expected string");
    // Huge numbers are never read at all.
    check_bad("[{\"text\":" + std::string(1 << 20, '9') + "}]", "offset 9: expected string");
    // Long runs of escapes decode in one pass: 1 MiB of them.
    std::string escapes = "[{\"text\":\"";
    for (int i = 0; i < (1 << 20) / 12; ++i) {
        escapes += "\\ud83d\\ude00";
    }
    escapes += "\"}]";
    const auto r = parse_batch(escapes, 1 << 20, 1);
    REQUIRE(r.has_value());
    CHECK((*r)[0].payload.size() == (1u << 20) / 12u * 4u);
    check_error(parse_batch(escapes, 1000, 1), Code::PayloadTooLarge,
                "item 0: message of " + std::to_string((1u << 20) / 12u * 4u) +
                    " bytes exceeds max_message 1000");
    // Many tiny items up to the count limit, and one over it.
    std::string many = "[";
    for (int i = 0; i < 100000; ++i) {
        many += i == 0 ? "{\"text\":\"\"}" : ",{\"text\":\"\"}";
    }
    many += "]";
    CHECK(parse_batch(many, 0, 100000)->size() == 100000);
    check_error(parse_batch(many, 0, 99999), Code::PayloadTooLarge, "more than 99999 messages");
    // Whitespace floods and one huge key.
    check_bad(std::string(1 << 20, ' ') + "x", "offset 1048576: expected '['");
    check_bad("[{\"" + std::string(1 << 20, 'k') + "\":\"a\"}]",
              "item 0: unknown key \"" + std::string(32, 'k') + "...\"");
}

TEST_CASE("batch: a 10 KiB body keeps well under 1 MiB of parsed messages") {
    // The densest bodies: the most items per byte, and one item that is all payload. The
    // retained size bounds the peak too, since the parser holds at most one decoded string
    // and its JSON source besides the vector.
    const auto retained = [](const std::vector<InMessage>& v) {
        std::size_t bytes = v.capacity() * sizeof(InMessage);
        for (const auto& m : v) {
            bytes += m.payload.capacity();
        }
        return bytes;
    };
    std::string tiny = "[";
    while (tiny.size() < 10 * 1024 - 12) {
        tiny += tiny.size() == 1 ? R"({"text":""})" : R"(,{"text":""})";
    }
    tiny += "]";
    const auto many = parse_batch(tiny, 0, 10 * 1024);
    REQUIRE(many.has_value());
    CHECK(many->size() > 800);
    CHECK(retained(*many) < 128 * 1024);
    const auto one =
        parse_batch(R"([{"binary":")" + std::string(10 * 1024 - 16, 'A') + R"("}])", 1 << 20, 1);
    REQUIRE(one.has_value());
    CHECK(retained(*one) < 16 * 1024);
}

TEST_CASE("long_polling codec: decode_text_body accepts UTF-8 only") {
    CHECK(*decode_text_body("") == "");
    CHECK(*decode_text_body("caf\xc3\xa9 {\"not\":\"parsed\"}\n\0"s) ==
          "caf\xc3\xa9 {\"not\":\"parsed\"}\n\0"s);
    check_error(decode_text_body("ab\xff"), Code::BadRequest,
                "body is not valid UTF-8 at offset 2");
    check_error(decode_text_body("ab\xed\xa0\x80"), Code::BadRequest,
                "body is not valid UTF-8 at offset 3");
    check_error(decode_text_body("ab\xe2\x82"), Code::BadRequest,
                "body is not valid UTF-8 at offset 4");
}

} // namespace
} // namespace transports::long_polling
