// Fuzz target ws_decoder: proxy::ws::Decoder in both roles (proxy/ws/decoder.h).
//
// Input: [settings] [chunk plan] [frames] (layout in fuzz_support.h).
//   settings bit 0      role: 0 = Server (decodes masked client frames), 1 = Client
//   settings bits 1-3   max_message: 0, 1, 125, 126, 65535, 65536, 1 MiB, 2^64-1
//   settings bits 4-7   the handler calls Decoder::stop() after every Nth callback (0: never)
//
// The frames are decoded three times: whole, cut by the chunk plan (with stop() as set), and
// byte by byte. Invariants:
//   - the three runs give the same events (adjacent payload pieces merged) and the same error;
//   - feed() consumes at most its input, all of it unless stop() was called in that feed;
//   - after an error every later feed fails with the same error; after a Close frame every
//     later feed consumes everything and fires nothing;
//   - every event respects the header's rules: data frames carry exactly their length, messages
//     stay within max_message, text messages and close reasons are UTF-8, control payloads are
//     at most 125 bytes, close codes are valid;
//   - canonical re-encoding: encode_frame() of each complete frame (with the frame's own mask
//     key) gives back exactly the input bytes it came from, so the events describe everything
//     the decoder accepted and it accepts only minimal encodings;
//   - mid_message() is true exactly when a frame is partly received or a message unfinished.

#include "proxy/core/result.h"
#include "proxy/ws/decoder.h"
#include "proxy/ws/frame.h"
#include "tests/fuzz/fuzz_support.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using proxy::ws::Decoder;
using proxy::ws::FrameHeader;
using proxy::ws::Opcode;
using proxy::ws::Role;

enum class Kind : std::uint8_t { Begin, Payload, End, Ping, Pong, Close };

struct Event {
    Kind kind = Kind::Begin;
    bool fin = false;                     // Begin: header FIN; End: message_end
    Opcode opcode = Opcode::Continuation; // Begin: header opcode
    Opcode message = Opcode::Text;        // Begin: message opcode
    std::uint64_t length = 0;             // Begin: header length; Close: code
    std::string bytes;                    // Payload, Ping, Pong; Close: reason
    bool operator==(const Event&) const = default;
};

struct Outcome {
    std::vector<Event> events;
    std::optional<proxy::core::Error> error;
    bool closed = false;
    bool mid_message = false;
};

std::string text_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Records events, merging adjacent payload pieces so that any split compares equal, and calls
// stop() after every `stop_every`-th callback when non-zero.
class Recorder final : public proxy::ws::DecoderHandler {
  public:
    explicit Recorder(unsigned stop_every) : stop_every_(stop_every) {}
    void attach(Decoder& decoder) { decoder_ = &decoder; }

    std::vector<Event> events;
    unsigned callbacks = 0; // total, so a stopped feed can prove it made progress

    void on_data_frame_begin(const FrameHeader& header, Opcode message) override {
        events.push_back(Event{Kind::Begin, header.fin, header.opcode, message, header.length, {}});
        after();
    }
    void on_data_frame_payload(std::span<const std::byte> bytes) override {
        if (!events.empty() && events.back().kind == Kind::Payload) {
            events.back().bytes += text_of(bytes);
        } else {
            events.push_back(Event{Kind::Payload, false, {}, {}, 0, text_of(bytes)});
        }
        after();
    }
    void on_data_frame_end(bool message_end) override {
        events.push_back(Event{Kind::End, message_end, {}, {}, 0, {}});
        after();
    }
    void on_ping(std::span<const std::byte> payload) override {
        events.push_back(Event{Kind::Ping, true, Opcode::Ping, {}, 0, text_of(payload)});
        after();
    }
    void on_pong(std::span<const std::byte> payload) override {
        events.push_back(Event{Kind::Pong, true, Opcode::Pong, {}, 0, text_of(payload)});
        after();
    }
    void on_close(std::uint16_t code, std::string_view reason) override {
        events.push_back(Event{Kind::Close, true, Opcode::Close, {}, code, std::string(reason)});
        after();
    }

  private:
    void after() {
        ++callbacks;
        if (stop_every_ != 0 && callbacks % stop_every_ == 0) {
            decoder_->stop();
        }
    }

    unsigned stop_every_;
    Decoder* decoder_ = nullptr;
};

bool same_error(const proxy::core::Error& a, const proxy::core::Error& b) {
    return a.code == b.code && a.side == b.side && a.context == b.context;
}

// Decodes a private copy of `input` (the decoder unmasks in place) fed as `plan` cuts it.
Outcome decode(std::string_view input, const proxy::ws::DecoderOptions& options,
               const fuzz::ChunkPlan& plan, unsigned stop_every) {
    std::vector<std::byte> buffer(input.size());
    if (!input.empty()) {
        std::memcpy(buffer.data(), input.data(), input.size());
    }
    Recorder recorder(stop_every);
    Decoder decoder(options, recorder);
    recorder.attach(decoder);
    Outcome out;
    // Feeds `chunk` until it is consumed, as the proxy's read loops do after a stop(). False
    // once the decoder failed (out.error is then set).
    auto feed_all = [&](std::span<std::byte> chunk) {
        for (;;) {
            const bool was_closed = decoder.closed();
            const std::size_t events_before = recorder.events.size();
            const unsigned callbacks_before = recorder.callbacks;
            auto r = decoder.feed(chunk);
            if (!r) {
                out.error = r.error();
                // A failed decoder stays failed with the same error, whatever it is fed.
                std::array<std::byte, 3> more{std::byte{0x81}, std::byte{0x80}, std::byte{0}};
                auto again = decoder.feed(more);
                FUZZ_CHECK(!again && same_error(again.error(), *out.error));
                auto empty = decoder.feed({});
                FUZZ_CHECK(!empty && same_error(empty.error(), *out.error));
                return false;
            }
            FUZZ_CHECK(*r <= chunk.size());
            if (was_closed) {
                // Everything after a Close frame is consumed without events.
                FUZZ_CHECK(*r == chunk.size() && recorder.events.size() == events_before);
            }
            if (stop_every == 0 || recorder.callbacks == callbacks_before) {
                // Without stop(), feed() consumes everything.
                FUZZ_CHECK(*r == chunk.size());
            }
            if (*r == chunk.size()) {
                return true;
            }
            // Only stop() leaves bytes unconsumed, and it made progress (one callback at least,
            // maybe without consuming: the end of a zero-length frame).
            chunk = chunk.subspan(*r);
        }
    };
    bool ok = true;
    for (const auto& [offset, length] : plan.cut(buffer.size())) {
        ok = feed_all(std::span<std::byte>(buffer.data() + offset, length));
        if (!ok) {
            break;
        }
    }
    // A stop() on the last byte of a feed can leave the end of a frame whose payload is
    // complete (a zero-length frame, or the last payload chunk) pending until the next feed;
    // empty feeds deliver it.
    for (unsigned before = ~0u; ok && stop_every != 0 && before != recorder.callbacks;) {
        before = recorder.callbacks;
        ok = feed_all({});
    }
    out.events = std::move(recorder.events);
    out.closed = decoder.closed();
    out.mid_message = decoder.mid_message();
    return out;
}

bool is_valid_close(std::uint64_t code) {
    return code == proxy::ws::close_code::kNoStatus ||
           (code <= 0xFFFF && proxy::ws::is_valid_close_code(static_cast<std::uint16_t>(code)));
}

// Re-encodes one complete frame with encode_frame() (and, in the server role, the frame's own
// mask key read from the input) and requires exactly the input bytes at `offset`; returns the
// offset of the next frame.
std::size_t check_canonical(std::string_view input, std::size_t offset, Role role, bool fin,
                            Opcode op, std::string_view payload) {
    const std::array<std::byte, 4>* no_mask = nullptr;
    std::array<std::byte, 4> key{};
    const std::size_t ext = payload.size() < 126 ? 0 : payload.size() < 65536 ? 2 : 8;
    const bool masked = role == Role::Server;
    const std::size_t header = 2 + ext + (masked ? 4 : 0);
    FUZZ_CHECK(offset + header <= input.size());
    if (masked) {
        std::memcpy(key.data(), input.data() + offset + header - 4, 4);
    }
    const std::string wire = proxy::ws::encode_frame(
        fin, op, std::as_bytes(std::span(payload.data(), payload.size())), masked ? &key : no_mask);
    FUZZ_CHECK_MSG(input.substr(offset, wire.size()) == wire,
                   "frame at offset " + std::to_string(offset) + " is not canonical");
    return offset + wire.size();
}

// The Close frame payload an on_close event stands for, after checking the event.
std::string close_payload_of(const Event& e) {
    FUZZ_CHECK(is_valid_close(e.length) && fuzz::valid_utf8(e.bytes));
    std::string payload;
    if (e.length != proxy::ws::close_code::kNoStatus) {
        payload.push_back(static_cast<char>(e.length >> 8));
        payload.push_back(static_cast<char>(e.length & 0xFF));
        payload += e.bytes;
    } else {
        FUZZ_CHECK(e.bytes.empty());
    }
    FUZZ_CHECK(payload.size() <= proxy::ws::kMaxControlPayload);
    return payload;
}

void check_error(const proxy::core::Error& error, Role role) {
    const auto code = error.code;
    FUZZ_CHECK(code == proxy::core::Code::ProtocolError || code == proxy::core::Code::InvalidUtf8 ||
               code == proxy::core::Code::MessageTooBig);
    FUZZ_CHECK(error.side ==
               (role == Role::Server ? proxy::core::Side::Client : proxy::core::Side::Backend));
    FUZZ_CHECK(!error.context.empty());
}

// Checks the events against the decoder.h rules, and that every complete frame re-encodes to
// the input bytes it was decoded from.
void check_events(const Outcome& out, std::string_view input,
                  const proxy::ws::DecoderOptions& options) {
    std::size_t offset = 0;        // input offset of the next frame
    bool in_message = false;       // a fragmented message is unfinished
    Opcode message = Opcode::Text; // its opcode
    std::string message_bytes;     // its payload so far
    bool in_frame = false;         // a data frame is open
    FrameHeader frame;
    std::string frame_bytes;
    for (const Event& e : out.events) {
        FUZZ_CHECK(in_frame == (e.kind == Kind::Payload || e.kind == Kind::End));
        switch (e.kind) {
        case Kind::Begin:
            FUZZ_CHECK(e.message == Opcode::Text || e.message == Opcode::Binary);
            if (e.opcode == Opcode::Continuation) {
                FUZZ_CHECK(in_message && e.message == message);
            } else {
                FUZZ_CHECK(!in_message && e.opcode == e.message);
                message = e.message;
                message_bytes.clear();
            }
            FUZZ_CHECK(message_bytes.size() + e.length <= options.max_message);
            in_message = true;
            in_frame = true;
            frame = FrameHeader{e.fin, e.opcode, e.length};
            frame_bytes.clear();
            break;
        case Kind::Payload:
            frame_bytes += e.bytes;
            message_bytes += e.bytes;
            FUZZ_CHECK(frame_bytes.size() <= frame.length);
            break;
        case Kind::End:
            FUZZ_CHECK(frame_bytes.size() == frame.length && e.fin == frame.fin);
            if (e.fin) {
                FUZZ_CHECK(message != Opcode::Text || fuzz::valid_utf8(message_bytes));
                in_message = false;
            }
            offset =
                check_canonical(input, offset, options.role, frame.fin, frame.opcode, frame_bytes);
            in_frame = false;
            break;
        case Kind::Ping:
        case Kind::Pong:
            FUZZ_CHECK(e.bytes.size() <= proxy::ws::kMaxControlPayload);
            offset = check_canonical(input, offset, options.role, true, e.opcode, e.bytes);
            break;
        case Kind::Close:
            offset = check_canonical(input, offset, options.role, true, Opcode::Close,
                                     close_payload_of(e));
            FUZZ_CHECK(&e == &out.events.back()); // nothing after a Close
            break;
        }
    }
    if (out.error) {
        check_error(*out.error, options.role);
    } else if (!out.closed) {
        // Unfinished bytes remain exactly when a frame is partial (or a message unfinished).
        FUZZ_CHECK(offset <= input.size());
        FUZZ_CHECK(out.mid_message == (offset < input.size() || in_message));
    }
}

void check_same(const Outcome& a, const Outcome& b, const char* what) {
    FUZZ_CHECK_MSG(a.events == b.events, std::string("events differ: ") + what);
    FUZZ_CHECK_MSG(a.error.has_value() == b.error.has_value(),
                   std::string("verdicts differ: ") + what);
    if (a.error) {
        FUZZ_CHECK_MSG(same_error(*a.error, *b.error), std::string("errors differ: ") + what +
                                                           ": " + a.error->context + " / " +
                                                           b.error->context);
    } else {
        FUZZ_CHECK(a.closed == b.closed && a.mid_message == b.mid_message);
    }
}

constexpr std::array<std::uint64_t, 8> kMaxMessage{0,
                                                   1,
                                                   125,
                                                   126,
                                                   65535,
                                                   65536,
                                                   std::uint64_t{1} << 20,
                                                   std::numeric_limits<std::uint64_t>::max()};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > std::size_t{64} * 1024) {
        return 0; // three runs, one of them byte by byte: keep each input cheap
    }
    fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    proxy::ws::DecoderOptions options;
    options.role = (settings & 1u) != 0 ? Role::Client : Role::Server;
    options.max_message = kMaxMessage[(settings >> 1) & 7u];
    const unsigned stop_every = settings >> 4;
    const fuzz::ChunkPlan plan = in.plan();
    const std::string_view frames = in.rest();

    const Outcome whole = decode(frames, options, fuzz::ChunkPlan(), 0);
    check_events(whole, frames, options);
    check_same(whole, decode(frames, options, plan, stop_every), "chunk plan");
    check_same(whole, decode(frames, options, fuzz::ChunkPlan::bytewise(), 0), "byte by byte");
    return 0;
}
