#include "transports/long_polling/codec.h"

#include "proxy/core/base64.h"
#include "proxy/ws/utf8.h"
#include "transports/json.h"

#include <array>

namespace transports::long_polling {

using json::append_string;
using json::append_uint;
using proxy::core::Code;
using proxy::core::fail;
using proxy::core::Result;
using proxy::core::Side;
using proxy::core::Unexpected;

namespace {

// The failure of `r`, moved out, to return from a function with another Result type.
template <class T> Unexpected error_of(Result<T>& r) { return Unexpected{std::move(r).error()}; }

Unexpected item_error(Code code, std::size_t index, std::string_view what) {
    std::string context = "item ";
    append_uint(context, index);
    context.append(": ");
    context.append(what);
    return fail(code, Side::Client, std::move(context));
}

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span{s}); }

void append_message(std::string& out, const OutMessage& m) {
    out.append(R"({"seq":)");
    append_uint(out, m.seq);
    if (m.binary) {
        out.append(R"(,"binary":")");
        out.append(proxy::core::base64_encode(as_bytes(m.payload)));
        out.push_back('"');
    } else {
        out.append(R"(,"text":)");
        append_string(out, m.payload);
    }
    out.push_back('}');
}

// Reads the value of a "binary" key: a JSON string holding padded base64.
Result<std::string> read_base64(json::Reader& reader, std::size_t index) {
    auto text = reader.read_string();
    if (!text) {
        return error_of(text);
    }
    auto bytes = proxy::core::base64_decode(*text);
    if (!bytes) {
        return item_error(Code::BadRequest, index, "invalid base64");
    }
    return std::move(*bytes);
}

// One batch item: `{"text":"..."}` or `{"binary":"..."}`, reader just past '{'.
Result<InMessage> parse_item(json::Reader& reader, std::size_t index, std::uint64_t max_message) {
    std::optional<InMessage> message;
    if (reader.try_consume('}')) {
        return item_error(Code::BadRequest, index, R"(expected "text" or "binary")");
    }
    while (true) {
        auto key = reader.read_string("string key");
        if (!key) {
            return error_of(key);
        }
        const bool binary = *key == "binary";
        if (!binary && *key != "text") {
            return item_error(Code::BadRequest, index, "unknown key " + json::quote_for_log(*key));
        }
        if (message) {
            return item_error(Code::BadRequest, index,
                              message->binary == binary
                                  ? "duplicate key " + json::quote_for_log(*key)
                                  : std::string("both text and binary"));
        }
        auto colon = reader.expect(':');
        if (!colon) {
            return error_of(colon);
        }
        Result<std::string> payload = binary ? read_base64(reader, index) : reader.read_string();
        if (!payload) {
            return Unexpected{std::move(payload).error()};
        }
        if (payload->size() > max_message) {
            std::string what = "message of ";
            append_uint(what, payload->size());
            what.append(" bytes exceeds max_message ");
            append_uint(what, max_message);
            return item_error(Code::PayloadTooLarge, index, what);
        }
        message = InMessage{binary, std::move(*payload)};
        auto next = reader.expect_either(',', '}');
        if (!next) {
            return error_of(next);
        }
        if (*next == '}') {
            break;
        }
    }
    return std::move(*message);
}

// Reads one object whose keys must come from `keys`, each at most once, in any order. The
// reader is just before '{'. `on_value(i)` reads the value of keys[i]. Returns the bit set of
// the keys seen, so the caller can check which are required.
template <std::size_t N, class OnValue>
Result<unsigned> read_object(json::Reader& reader, const std::array<std::string_view, N>& keys,
                             OnValue&& on_value) {
    static_assert(N < 32);
    auto open = reader.expect('{');
    if (!open) {
        return error_of(open);
    }
    unsigned seen = 0;
    if (reader.try_consume('}')) {
        return seen;
    }
    while (true) {
        auto key = reader.read_string("string key");
        if (!key) {
            return error_of(key);
        }
        const std::size_t at = reader.offset() - 1; // the key's closing quote
        std::size_t i = 0;
        while (i < N && keys[i] != *key) {
            ++i;
        }
        if (i == N) {
            return json::Reader::error_at(at, "unknown key " + json::quote_for_log(*key));
        }
        if ((seen & (1u << i)) != 0) {
            return json::Reader::error_at(at, "duplicate key " + json::quote_for_log(*key));
        }
        seen |= 1u << i;
        auto colon = reader.expect(':');
        if (!colon) {
            return error_of(colon);
        }
        auto value = on_value(i);
        if (!value) {
            return error_of(value);
        }
        auto next = reader.expect_either(',', '}');
        if (!next) {
            return error_of(next);
        }
        if (*next == '}') {
            return seen;
        }
    }
}

// `[{"seq":7,"text":"..."},{"seq":8,"binary":"..."}]`, reader just before '['.
Result<void> read_polled_messages(json::Reader& reader, std::vector<PolledMessage>& out) {
    auto open = reader.expect('[');
    if (!open) {
        return error_of(open);
    }
    if (reader.try_consume(']')) {
        return {};
    }
    while (true) {
        const std::size_t at = reader.offset();
        PolledMessage m;
        constexpr std::array<std::string_view, 3> kKeys = {"seq", "text", "binary"};
        auto seen = read_object(reader, kKeys, [&](std::size_t i) -> Result<void> {
            if (i == 0) {
                auto seq = reader.read_uint();
                if (!seq) {
                    return error_of(seq);
                }
                m.seq = *seq;
                return {};
            }
            m.binary = i == 2;
            auto payload = m.binary ? read_base64(reader, out.size()) : reader.read_string();
            if (!payload) {
                return error_of(payload);
            }
            m.payload = std::move(*payload);
            return {};
        });
        if (!seen) {
            return error_of(seen);
        }
        if (*seen != 0b011 && *seen != 0b101) {
            return json::Reader::error_at(at, "message needs seq and one of text or binary");
        }
        out.push_back(std::move(m));
        auto next = reader.expect_either(',', ']');
        if (!next) {
            return error_of(next);
        }
        if (*next == ']') {
            return {};
        }
    }
}

// The value of a key whose value is a string, e.g. "reason".
Result<void> read_string_into(json::Reader& reader, std::string& out) {
    auto value = reader.read_string();
    if (!value) {
        return error_of(value);
    }
    out = std::move(*value);
    return {};
}

// The outcome of a marker object read at `at`: its failure, or a failure unless both of its
// two keys were present (every marker key is required).
Result<void> both_keys(Result<unsigned>& seen, std::size_t at, std::string_view name) {
    if (!seen) {
        return error_of(seen);
    }
    if (*seen != 0b11) {
        return json::Reader::error_at(at, "missing key in " + std::string(name));
    }
    return {};
}

// `{"from":1,"to":5}`, reader just before '{'.
Result<void> read_gap(json::Reader& reader, Gap& gap) {
    const std::size_t at = reader.offset();
    auto seen = read_object(reader, std::array<std::string_view, 2>{"from", "to"},
                            [&](std::size_t i) -> Result<void> {
                                auto n = reader.read_uint();
                                if (!n) {
                                    return error_of(n);
                                }
                                (i == 0 ? gap.from : gap.to) = *n;
                                return {};
                            });
    return both_keys(seen, at, "gap");
}

// `{"session":"S","reason":"R"}`, reader just before '{'.
Result<void> read_reset(json::Reader& reader, Reset& reset) {
    const std::size_t at = reader.offset();
    auto seen = read_object(
        reader, std::array<std::string_view, 2>{"session", "reason"}, [&](std::size_t i) {
            return read_string_into(reader, i == 0 ? reset.session : reset.reason);
        });
    return both_keys(seen, at, "reset");
}

// `{"code":1000,"reason":"R"}`, reader just before '{'.
Result<void> read_close(json::Reader& reader, Close& close) {
    const std::size_t at = reader.offset();
    auto seen =
        read_object(reader, std::array<std::string_view, 2>{"code", "reason"},
                    [&](std::size_t i) -> Result<void> {
                        if (i == 1) {
                            return read_string_into(reader, close.reason);
                        }
                        const std::size_t code_at = reader.offset();
                        auto code = reader.read_uint();
                        if (!code) {
                            return error_of(code);
                        }
                        if (*code > 0xFFFF) {
                            return json::Reader::error_at(code_at, "close code out of range");
                        }
                        close.code = static_cast<std::uint16_t>(*code);
                        return {};
                    });
    return both_keys(seen, at, "close");
}

} // namespace

std::string encode_poll_response(std::span<const OutMessage> messages,
                                 const std::optional<Gap>& gap, const std::optional<Reset>& reset,
                                 const std::optional<Close>& close) {
    std::string out;
    std::size_t estimate = 64;
    for (const auto& m : messages) {
        estimate += 40 + (m.binary ? (m.payload.size() + 2) / 3 * 4 : m.payload.size());
    }
    out.reserve(estimate);
    out.push_back('{');
    if (reset) {
        out.append(R"("reset":{"session":)");
        append_string(out, reset->session);
        out.append(R"(,"reason":)");
        append_string(out, reset->reason);
        out.append("},");
    }
    if (gap) {
        out.append(R"("gap":{"from":)");
        append_uint(out, gap->from);
        out.append(R"(,"to":)");
        append_uint(out, gap->to);
        out.append("},");
    }
    out.append(R"("messages":[)");
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (i > 0) {
            out.push_back(',');
        }
        append_message(out, messages[i]);
    }
    out.push_back(']');
    if (close) {
        out.append(R"(,"close":{"code":)");
        append_uint(out, close->code);
        out.append(R"(,"reason":)");
        append_string(out, close->reason);
        out.push_back('}');
    }
    out.push_back('}');
    return out;
}

std::string encode_open_response(std::string_view session, std::string_view send_url,
                                 std::string_view poll_url, std::uint64_t hold_ms,
                                 std::uint64_t last_seq, std::string_view protocol) {
    std::string out = R"({"session":)";
    append_string(out, session);
    out.append(R"(,"send":)");
    append_string(out, send_url);
    out.append(R"(,"poll":)");
    append_string(out, poll_url);
    out.append(R"(,"hold_ms":)");
    append_uint(out, hold_ms);
    out.append(R"(,"last_seq":)");
    append_uint(out, last_seq);
    if (!protocol.empty()) {
        out.append(R"(,"protocol":)");
        append_string(out, protocol);
    }
    out.push_back('}');
    return out;
}

Result<std::vector<InMessage>> parse_batch(std::string_view body, std::uint64_t max_message,
                                           std::size_t max_count) {
    // No recursion and no generic value parser: the shape is fixed (depth 2), so anything else,
    // "[[[[..." included, fails at its first unexpected byte. Every string is decoded once.
    json::Reader reader(body);
    auto messages = read_batch(reader, max_message, max_count);
    if (!messages) {
        return messages;
    }
    auto end = reader.expect_end();
    if (!end) {
        return error_of(end);
    }
    return messages;
}

Result<std::vector<InMessage>> read_batch(json::Reader& reader, std::uint64_t max_message,
                                          std::size_t max_count) {
    auto open = reader.expect('[');
    if (!open) {
        return error_of(open);
    }
    std::vector<InMessage> messages;
    if (!reader.try_consume(']')) {
        while (true) {
            auto brace = reader.expect('{');
            if (!brace) {
                return error_of(brace);
            }
            // Counted once the item starts, so the check costs no parsing beyond the limit.
            if (messages.size() >= max_count) {
                std::string what = "more than ";
                append_uint(what, max_count);
                what.append(" messages");
                return fail(Code::PayloadTooLarge, Side::Client, std::move(what));
            }
            auto message = parse_item(reader, messages.size(), max_message);
            if (!message) {
                return error_of(message);
            }
            messages.push_back(std::move(*message));
            auto next = reader.expect_either(',', ']');
            if (!next) {
                return error_of(next);
            }
            if (*next == ']') {
                break;
            }
        }
    }
    return messages;
}

Result<std::string> decode_text_body(std::string_view body) {
    proxy::ws::Utf8Validator validator;
    if (validator.feed(as_bytes(body)) && validator.complete()) {
        return std::string(body);
    }
    // Error path only: locate the first byte that cannot be part of valid UTF-8.
    proxy::ws::Utf8Validator again;
    std::size_t k = 0;
    while (k < body.size() && again.feed(as_bytes(body.substr(k, 1)))) {
        ++k;
    }
    std::string what = "body is not valid UTF-8 at offset ";
    append_uint(what, k);
    return fail(Code::BadRequest, Side::Client, std::move(what));
}

Result<PollResponse> parse_poll_response(std::string_view body) {
    json::Reader reader(body);
    PollResponse response;
    constexpr std::array<std::string_view, 4> kKeys = {"messages", "reset", "gap", "close"};
    auto seen = read_object(reader, kKeys, [&](std::size_t i) {
        switch (i) {
        case 0: return read_polled_messages(reader, response.messages);
        case 1: return read_reset(reader, response.reset.emplace());
        case 2: return read_gap(reader, response.gap.emplace());
        default: return read_close(reader, response.close.emplace());
        }
    });
    if (!seen) {
        return error_of(seen);
    }
    if ((*seen & 1u) == 0) {
        return json::Reader::error_at(0, R"(missing key "messages")");
    }
    auto end = reader.expect_end();
    if (!end) {
        return error_of(end);
    }
    return response;
}

} // namespace transports::long_polling
