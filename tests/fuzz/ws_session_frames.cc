// Fuzz target ws_session_frames: the client side of the session framing over WebSocket
// (transports/ws_session/codec.h) behind the real frame decoder, as WsSessionTransport reads it.
//
// Input: [settings] [chunk plan] [frames] (layout in fuzz_support.h).
//   settings bits 0-1   max_message: 0, 1, 64, 1 MiB
//
// The frames (masked client frames) are decoded whole and cut by the chunk plan; every whole
// WebSocket message goes through the MessageAssembler and, when it is a control, through
// parse_client_control. Invariants:
//   - both runs give the same messages, controls and verdicts, and the same decoder error;
//   - a text message is UTF-8, a binary session message is what followed its kind byte 0x00,
//     an assembler failure is a ProtocolError from the client;
//   - parse_client_control: success ⇒ an ack (any seq) or a close with code 1000 or 3000-4999
//     and a UTF-8 reason of at most 123 bytes; written back as JSON it parses to the same
//     control; failure ⇒ a ProtocolError from the client whose context names the control.

#include "proxy/core/result.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/utf8.h"
#include "tests/fuzz/fuzz_support.h"
#include "transports/json.h"
#include "transports/ws_session/codec.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace ws = proxy::ws;
namespace wss = transports::ws_session;
using proxy::core::Code;
using proxy::core::Side;

constexpr std::array<std::uint64_t, 4> kMaxMessage{0, 1, 64, std::uint64_t{1} << 20};

std::string render_control(const wss::ClientControl& c) {
    std::string out = c.type == wss::ClientControl::Type::Ack ? R"({"type":"ack","seq":)"
                                                              : R"({"type":"close","code":)";
    if (c.type == wss::ClientControl::Type::Ack) {
        transports::json::append_uint(out, c.seq);
    } else {
        transports::json::append_uint(out, c.code);
        out += ",\"reason\":";
        transports::json::append_string(out, c.reason);
    }
    out += '}';
    return out;
}

/// Checks one parsed control and returns its rendering for the run comparison.
std::string check_control(const std::string& json) {
    auto c = wss::parse_client_control(json);
    if (!c) {
        FUZZ_CHECK(c.error().code == Code::ProtocolError);
        FUZZ_CHECK(c.error().side == Side::Client);
        FUZZ_CHECK(c.error().context.rfind("session control: ", 0) == 0);
        return "bad-control";
    }
    if (c->type == wss::ClientControl::Type::Close) {
        FUZZ_CHECK(c->code == 1000 || (c->code >= 3000 && c->code <= 4999));
        FUZZ_CHECK(c->reason.size() <= 123);
        FUZZ_CHECK(ws::is_valid_utf8(
            std::as_bytes(std::span<const char>(c->reason.data(), c->reason.size()))));
    }
    const std::string again = render_control(*c);
    auto d = wss::parse_client_control(again);
    FUZZ_CHECK_MSG(d.has_value(), again);
    FUZZ_CHECK(d->type == c->type && d->seq == c->seq && d->code == c->code &&
               d->reason == c->reason);
    return "control:" + again;
}

class Handler final : public ws::DecoderHandler {
  public:
    std::vector<std::string> events;
    void on_data_frame_begin(const ws::FrameHeader& h, ws::Opcode message) override {
        if (h.opcode != ws::Opcode::Continuation) {
            FUZZ_CHECK(!assembler.active());
            assembler.begin(message == ws::Opcode::Binary);
            text = message == ws::Opcode::Text;
        }
    }
    void on_data_frame_payload(std::span<const std::byte> bytes) override {
        assembler.append(bytes);
    }
    void on_data_frame_end(bool end) override {
        if (!end) {
            return;
        }
        auto f = assembler.finish();
        if (!f) {
            FUZZ_CHECK(f.error().code == Code::ProtocolError);
            FUZZ_CHECK(f.error().side == Side::Client);
            FUZZ_CHECK(!text);
            events.push_back("bad-kind");
            return;
        }
        switch (f->type) {
        case wss::ClientFrame::Type::Text:
            FUZZ_CHECK(text);
            FUZZ_CHECK(ws::is_valid_utf8(
                std::as_bytes(std::span<const char>(f->payload.data(), f->payload.size()))));
            events.push_back("text:" + f->payload);
            break;
        case wss::ClientFrame::Type::Binary:
            FUZZ_CHECK(!text);
            events.push_back("binary:" + f->payload);
            break;
        case wss::ClientFrame::Type::Control:
            FUZZ_CHECK(!text);
            events.push_back(check_control(f->payload));
            break;
        }
    }
    void on_ping(std::span<const std::byte> /*payload*/) override { events.emplace_back("ping"); }
    void on_pong(std::span<const std::byte> /*payload*/) override { events.emplace_back("pong"); }
    void on_close(std::uint16_t code, std::string_view /*reason*/) override {
        events.push_back("close:" + std::to_string(code));
    }
    wss::MessageAssembler assembler;
    bool text = false;
};

struct Run {
    std::vector<std::string> events;
    std::string error;
};

Run run(std::string data, std::uint64_t max_message, const fuzz::ChunkPlan& plan) {
    Handler h;
    ws::Decoder d(ws::DecoderOptions{ws::Role::Server, max_message}, h);
    Run out;
    for (const auto& [at, n] : plan.cut(data.size())) {
        auto r = d.feed(std::as_writable_bytes(std::span<char>(data.data() + at, n)));
        if (!r) {
            out.error = std::string(proxy::core::to_string(r.error().code));
            break;
        }
        FUZZ_CHECK(*r == n);
    }
    out.events = std::move(h.events);
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    const std::uint64_t max_message = kMaxMessage[settings & 0x03u];
    const fuzz::ChunkPlan plan = in.plan();
    const std::string frames(in.rest());
    const Run whole = run(frames, max_message, fuzz::ChunkPlan());
    const Run cut = run(frames, max_message, plan);
    FUZZ_CHECK(whole.error == cut.error);
    FUZZ_CHECK(whole.events == cut.events);
    return 0;
}
