#include "proxy/ws/utf8.h"

#include <array>
#include <cstring>

namespace proxy::ws {

namespace {

// A deterministic automaton over byte classes, in the spirit of Bjoern Hoehrmann's decoder but
// with its own tables. The classes split the continuation range (80..BF) into the three
// sub-ranges that the second byte of E0, ED, F0 and F4 sequences is restricted to (RFC 3629 §4):
// E0 needs A0..BF (no overlongs), ED needs 80..9F (no surrogates), F0 needs 90..BF (no
// overlongs), F4 needs 80..8F (nothing above U+10FFFF). C0, C1 and F5..FF never appear, so they
// reject at once; every other failure is found at the first byte that cannot follow.
enum Class : std::uint8_t {
    kAscii,   // 00..7F
    kCont80,  // 80..8F
    kCont90,  // 90..9F
    kContA0,  // A0..BF
    kLead2,   // C2..DF
    kLeadE0,  // E0
    kLead3,   // E1..EC, EE..EF
    kLeadED,  // ED
    kLeadF0,  // F0
    kLead4,   // F1..F3
    kLeadF4,  // F4
    kInvalid, // C0, C1, F5..FF
    kClassCount,
};

// States. kAccept and kReject are fixed by the header; the others count missing bytes.
enum State : std::uint8_t {
    kAcceptState = Utf8Validator::kAccept,
    kRejectState = Utf8Validator::kReject,
    kNeed1,   // one continuation byte (any) left
    kNeed2,   // two left, the next one unrestricted
    kNeed2E0, // after E0: next byte A0..BF
    kNeed2ED, // after ED: next byte 80..9F
    kNeed3,   // three left, the next one unrestricted
    kNeed3F0, // after F0: next byte 90..BF
    kNeed3F4, // after F4: next byte 80..8F
    kStateCount,
};

constexpr std::array<std::uint8_t, 256> make_classes() {
    std::array<std::uint8_t, 256> c{};
    for (unsigned b = 0; b < 256; ++b) {
        Class k = kInvalid;
        if (b < 0x80) {
            k = kAscii;
        } else if (b < 0x90) {
            k = kCont80;
        } else if (b < 0xA0) {
            k = kCont90;
        } else if (b < 0xC0) {
            k = kContA0;
        } else if (b < 0xC2) {
            k = kInvalid;
        } else if (b < 0xE0) {
            k = kLead2;
        } else if (b == 0xE0) {
            k = kLeadE0;
        } else if (b == 0xED) {
            k = kLeadED;
        } else if (b < 0xF0) {
            k = kLead3;
        } else if (b == 0xF0) {
            k = kLeadF0;
        } else if (b < 0xF4) {
            k = kLead4;
        } else if (b == 0xF4) {
            k = kLeadF4;
        }
        c[b] = k;
    }
    return c;
}

constexpr std::size_t kStride = 16; // row width; a power of two keeps the index a shift

constexpr std::array<std::uint8_t, kStateCount * kStride> make_transitions() {
    std::array<std::uint8_t, kStateCount * kStride> t{};
    for (auto& v : t) {
        v = kRejectState;
    }
    auto set = [&t](State from, Class on, State to) { t[from * kStride + on] = to; };
    set(kAcceptState, kAscii, kAcceptState);
    set(kAcceptState, kLead2, kNeed1);
    set(kAcceptState, kLeadE0, kNeed2E0);
    set(kAcceptState, kLead3, kNeed2);
    set(kAcceptState, kLeadED, kNeed2ED);
    set(kAcceptState, kLeadF0, kNeed3F0);
    set(kAcceptState, kLead4, kNeed3);
    set(kAcceptState, kLeadF4, kNeed3F4);
    for (Class cont : {kCont80, kCont90, kContA0}) {
        set(kNeed1, cont, kAcceptState);
        set(kNeed2, cont, kNeed1);
        set(kNeed3, cont, kNeed2);
    }
    set(kNeed2E0, kContA0, kNeed1);
    set(kNeed2ED, kCont80, kNeed1);
    set(kNeed2ED, kCont90, kNeed1);
    set(kNeed3F0, kCont90, kNeed2);
    set(kNeed3F0, kContA0, kNeed2);
    set(kNeed3F4, kCont80, kNeed2);
    return t;
}

constexpr auto kClasses = make_classes();
constexpr auto kTransitions = make_transitions();

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

} // namespace

bool Utf8Validator::feed(std::span<const std::byte> bytes) noexcept {
    if (state_ == kReject) {
        return false;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto* const end = p + bytes.size();
    std::uint8_t state = state_;
    while (p != end) {
        if (state == kAccept) {
            // Fast path: on a code point boundary, skip pure-ASCII 8-byte words, then single
            // ASCII bytes, and enter the automaton only at the next lead byte.
            while (end - p >= 8) {
                std::uint64_t word = 0;
                std::memcpy(&word, p, sizeof(word));
                if ((word & kHighBits) != 0) {
                    break;
                }
                p += 8;
            }
            while (p != end && *p < 0x80) {
                ++p;
            }
            if (p == end) {
                break;
            }
        }
        // Run the automaton to the end of this code point. States above kReject are inside a
        // sequence, so one comparison per byte covers both "done" and "failed".
        do {
            state = kTransitions[state * kStride + kClasses[*p++]];
        } while (p != end && state > kReject);
        if (state == kReject) {
            break;
        }
    }
    state_ = state;
    return state != kReject;
}

bool is_valid_utf8(std::span<const std::byte> bytes) noexcept {
    Utf8Validator v;
    return v.feed(bytes) && v.complete();
}

} // namespace proxy::ws
