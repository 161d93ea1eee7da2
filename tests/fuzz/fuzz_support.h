#pragma once
// Helpers shared by the fuzz harnesses in tests/fuzz/ (STYLE §10). Header-only and standard-
// library-only, so a harness builds the same way as a libFuzzer target (PROXY_FUZZ) and with
// replay_main.cc in every other build.
//
// Input layout used by the harnesses that feed a codec incrementally:
//
//   [settings bytes, harness-specific] [chunk plan] [data]
//
//   chunk plan: one byte n, then (n & 0x0F) size bytes. Each size byte b gives a chunk of
//   (b & 0x7F) bytes, times 64 when its top bit is set. A size of 0 is an empty feed. The data
//   is cut into chunks of these sizes, cycling through the list, until it is used up.
//   An empty plan (or one of zeros only) feeds the data whole.
//
// tests/fuzz/make_seeds.py writes seeds in this layout, and its docstring repeats it.
//
// Invariants are checked with FUZZ_CHECK, which prints the failed condition and aborts, so
// libFuzzer reports a crash with the input and the ctest replay fails.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fuzz {

/// Prints the failed check (and `detail` when non-empty) to stderr and aborts.
[[noreturn]] inline void check_failed(const char* what, const char* file, int line,
                                      std::string_view detail = {}) {
    std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
    if (!detail.empty()) {
        std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size()), detail.data());
    }
    std::abort();
}

} // namespace fuzz

/// Aborts with the condition's text when `cond` is false. Active in every build type.
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ::fuzz::check_failed(#cond, __FILE__, __LINE__);                                       \
        }                                                                                          \
    } while (false)

/// FUZZ_CHECK with a detail string (built only on failure).
#define FUZZ_CHECK_MSG(cond, detail)                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ::fuzz::check_failed(#cond, __FILE__, __LINE__, (detail));                             \
        }                                                                                          \
    } while (false)

namespace fuzz {

/// A list of chunk sizes that cuts data into feeds (see the layout above).
class ChunkPlan {
  public:
    /// Feeds the data whole, in one call.
    ChunkPlan() = default;
    /// Cycles through `sizes`; whole when it holds no non-zero size.
    explicit ChunkPlan(std::vector<std::size_t> sizes) : sizes_(std::move(sizes)) {}

    /// One byte per feed.
    static ChunkPlan bytewise() { return ChunkPlan({1}); }

    /// The (offset, length) of each feed for `total` bytes, in order. Lengths may be 0 (empty
    /// feeds) but the chunks always cover [0, total) exactly. Never more than
    /// 16 * (total + 1) chunks.
    [[nodiscard]] std::vector<std::pair<std::size_t, std::size_t>> cut(std::size_t total) const {
        std::vector<std::pair<std::size_t, std::size_t>> out;
        bool any = false;
        for (const std::size_t s : sizes_) {
            any = any || s > 0;
        }
        if (!any) {
            for (std::size_t i = 0; i < sizes_.size(); ++i) {
                out.emplace_back(0, 0);
            }
            out.emplace_back(0, total);
            return out;
        }
        std::size_t pos = 0;
        for (std::size_t i = 0; pos < total; i = (i + 1) % sizes_.size()) {
            const std::size_t n = sizes_[i] < total - pos ? sizes_[i] : total - pos;
            out.emplace_back(pos, n);
            pos += n;
        }
        return out;
    }

  private:
    std::vector<std::size_t> sizes_;
};

/// Reads settings and the chunk plan from the front of a fuzz input; the rest is the data.
/// Reading past the end yields zeros, so every input is usable.
class Input {
  public:
    Input(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

    /// The next byte, or 0 when the input is used up.
    std::uint8_t byte() noexcept { return pos_ < size_ ? data_[pos_++] : 0; }

    /// The next 8 bytes as a big-endian integer (missing bytes read as 0).
    std::uint64_t u64() noexcept {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v = (v << 8) | byte();
        }
        return v;
    }

    /// Up to `n` next bytes as text (fewer when the input ends).
    std::string_view take(std::size_t n) noexcept {
        const std::size_t k = n < size_ - pos_ ? n : size_ - pos_;
        const std::string_view out(reinterpret_cast<const char*>(data_) + pos_, k);
        pos_ += k;
        return out;
    }

    /// Reads a chunk plan (layout in the header comment).
    ChunkPlan plan() {
        const std::size_t n = byte() & 0x0Fu;
        std::vector<std::size_t> sizes;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint8_t b = byte();
            const std::size_t base = b & 0x7Fu;
            sizes.push_back((b & 0x80u) != 0 ? base * 64 : base);
        }
        return ChunkPlan(std::move(sizes));
    }

    /// Everything not read yet.
    [[nodiscard]] std::string_view rest() const noexcept {
        return {reinterpret_cast<const char*>(data_) + pos_, size_ - pos_};
    }
    /// True once every byte was read.
    [[nodiscard]] bool empty() const noexcept { return pos_ >= size_; }

  private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

/// Strict UTF-8 check (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF),
/// written independently of proxy/ws/utf8.cc so the harnesses do not check the code against
/// itself.
[[nodiscard]] inline bool valid_utf8(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        std::uint32_t cp = 0;
        std::uint32_t min = 0;
        if (b < 0x80) {
            ++i;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            n = 1;
            cp = b & 0x1Fu;
            min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 2;
            cp = b & 0x0Fu;
            min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 3;
            cp = b & 0x07u;
            min = 0x10000;
        } else {
            return false;
        }
        if (s.size() - i <= n) {
            return false;
        }
        for (std::size_t k = 1; k <= n; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (c & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

/// Standard base64 with padding (RFC 4648 §4), independent of proxy/core/base64.cc.
[[nodiscard]] inline std::string base64(std::string_view s) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= s.size(); i += 3) {
        const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(s[i])} << 16) |
                                (std::uint32_t{static_cast<unsigned char>(s[i + 1])} << 8) |
                                static_cast<unsigned char>(s[i + 2]);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    if (s.size() - i == 1) {
        const std::uint32_t v = std::uint32_t{static_cast<unsigned char>(s[i])} << 16;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.append("==");
    } else if (s.size() - i == 2) {
        const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(s[i])} << 16) |
                                (std::uint32_t{static_cast<unsigned char>(s[i + 1])} << 8);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back('=');
    }
    return out;
}

/// Printable ASCII as is, anything else as \xHH: for failure details.
[[nodiscard]] inline std::string escape(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F && c != '\\') {
            out.push_back(c);
        } else {
            out += "\\x";
            out.push_back(kHex[u >> 4]);
            out.push_back(kHex[u & 0xF]);
        }
    }
    return out;
}

} // namespace fuzz

/// The libFuzzer entry point every harness defines.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
