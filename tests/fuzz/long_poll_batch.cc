// Fuzz target long_poll_batch: the long-poll wire format (transports/long_polling/codec.h),
// the only JSON the proxy reads from clients.
//
// Input: [settings] [body] (no chunk plan: these parsers take a complete body).
//   settings bits 0-1   max_message: 0, 1, 16, 1 MiB
//   settings bits 2-3   max_count: 0, 1, 3, 1000
//
// The body goes through parse_batch, parse_poll_response and decode_text_body. Invariants:
//   - parse_batch: success ⇒ at most max_count messages, each at most max_message bytes, text
//     payloads UTF-8; the messages written back as a batch body (json::append_string, standard
//     base64) parse to the same messages; failures are BadRequest ("offset N: ..." or
//     "item I: ...") or PayloadTooLarge ("more than N messages" or "item I: ...") from the
//     client;
//   - limits only add PayloadTooLarge: with unlimited limits the verdict is the same success,
//     or the same BadRequest (errors are reported in byte order);
//   - the batch's messages sent back through encode_poll_response (with seqs 1..n) parse with
//     parse_poll_response to the same payloads;
//   - parse_poll_response: success ⇒ its strings are UTF-8 and re-encoding it gives a body
//     that parses to the same response;
//   - decode_text_body succeeds exactly on UTF-8, returning the body unchanged.

#include "proxy/core/result.h"
#include "tests/fuzz/fuzz_support.h"
#include "transports/json.h"
#include "transports/long_polling/codec.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace lp = transports::long_polling;
using proxy::core::Code;
using proxy::core::Side;

constexpr std::array<std::uint64_t, 4> kMaxMessage{0, 1, 16, std::uint64_t{1} << 20};
constexpr std::array<std::size_t, 4> kMaxCount{0, 1, 3, 1000};

std::string batch_body(const std::vector<lp::InMessage>& messages) {
    std::string out = "[";
    for (std::size_t i = 0; i < messages.size(); ++i) {
        out += i == 0 ? "{" : ",{";
        if (messages[i].binary) {
            out += R"("binary":")" + fuzz::base64(messages[i].payload) + "\"";
        } else {
            out += "\"text\":";
            transports::json::append_string(out, messages[i].payload);
        }
        out += "}";
    }
    return out + "]";
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.starts_with(prefix); }

void check_batch_error(const proxy::core::Error& e) {
    FUZZ_CHECK(e.side == Side::Client);
    if (e.code == Code::BadRequest) {
        FUZZ_CHECK_MSG(starts_with(e.context, "offset ") || starts_with(e.context, "item "),
                       e.context);
    } else {
        FUZZ_CHECK_MSG(e.code == Code::PayloadTooLarge, e.context);
        FUZZ_CHECK_MSG(starts_with(e.context, "more than ") || starts_with(e.context, "item "),
                       e.context);
    }
}

bool same_gap(const std::optional<lp::Gap>& a, const std::optional<lp::Gap>& b) {
    return a.has_value() == b.has_value() && (!a || (a->from == b->from && a->to == b->to));
}

bool same_response(const lp::PollResponse& a, const lp::PollResponse& b) {
    const bool reset =
        a.reset.has_value() == b.reset.has_value() &&
        (!a.reset || (a.reset->session == b.reset->session && a.reset->reason == b.reset->reason));
    const bool close =
        a.close.has_value() == b.close.has_value() &&
        (!a.close || (a.close->code == b.close->code && a.close->reason == b.close->reason));
    return a.messages == b.messages && same_gap(a.gap, b.gap) && reset && close;
}

std::string encode(const lp::PollResponse& r) {
    std::vector<lp::OutMessage> out;
    for (const auto& m : r.messages) {
        out.push_back({m.seq, m.binary, m.payload});
    }
    return lp::encode_poll_response(out, r.gap, r.reset, r.close);
}

void check_batch(std::string_view body, std::uint64_t max_message, std::size_t max_count) {
    const auto limited = lp::parse_batch(body, max_message, max_count);
    const auto unlimited = lp::parse_batch(body, std::numeric_limits<std::uint64_t>::max(),
                                           std::numeric_limits<std::size_t>::max());
    if (!unlimited) {
        check_batch_error(unlimited.error());
        FUZZ_CHECK(unlimited.error().code == Code::BadRequest);
    }
    if (!limited) {
        check_batch_error(limited.error());
        if (limited.error().code == Code::BadRequest) {
            FUZZ_CHECK(!unlimited && unlimited.error().context == limited.error().context);
        }
        return;
    }
    FUZZ_CHECK(unlimited && *unlimited == *limited);
    const std::vector<lp::InMessage>& messages = *limited;
    FUZZ_CHECK(messages.size() <= max_count);
    for (const auto& m : messages) {
        FUZZ_CHECK(m.payload.size() <= max_message);
        FUZZ_CHECK(m.binary || fuzz::valid_utf8(m.payload));
    }
    const std::string again = batch_body(messages);
    const auto reparsed = lp::parse_batch(again, max_message, max_count);
    FUZZ_CHECK_MSG(reparsed && *reparsed == messages, fuzz::escape(again));

    // The same messages the other way, as a poll response.
    lp::PollResponse sent;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        sent.messages.push_back({i + 1, messages[i].binary, messages[i].payload});
    }
    const std::string poll = encode(sent);
    const auto polled = lp::parse_poll_response(poll);
    FUZZ_CHECK_MSG(polled && same_response(*polled, sent), fuzz::escape(poll));
}

void check_poll_response(std::string_view body) {
    const auto r = lp::parse_poll_response(body);
    if (!r) {
        FUZZ_CHECK(r.error().code == Code::BadRequest && !r.error().context.empty());
        return;
    }
    for (const auto& m : r->messages) {
        FUZZ_CHECK(m.binary || fuzz::valid_utf8(m.payload));
    }
    if (r->reset) {
        FUZZ_CHECK(fuzz::valid_utf8(r->reset->session) && fuzz::valid_utf8(r->reset->reason));
    }
    if (r->close) {
        FUZZ_CHECK(fuzz::valid_utf8(r->close->reason));
    }
    const std::string again = encode(*r);
    const auto reparsed = lp::parse_poll_response(again);
    FUZZ_CHECK_MSG(reparsed && same_response(*reparsed, *r), fuzz::escape(again));
}

void check_text_body(std::string_view body) {
    const auto r = lp::decode_text_body(body);
    FUZZ_CHECK(r.has_value() == fuzz::valid_utf8(body));
    if (r) {
        FUZZ_CHECK(*r == body);
    } else {
        FUZZ_CHECK(r.error().code == Code::BadRequest && r.error().side == Side::Client);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > std::size_t{256} * 1024) {
        return 0;
    }
    fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    const std::string_view body = in.rest();
    check_batch(body, kMaxMessage[settings & 3u], kMaxCount[(settings >> 2) & 3u]);
    check_poll_response(body);
    check_text_body(body);
    return 0;
}
