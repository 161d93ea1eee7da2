#include "proxy/core/base64.h"

#include <array>
#include <cstdint>

namespace proxy::core {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xFF;

// Decoding table for the standard alphabet; everything else (including '=') is kInvalid.
constexpr std::array<std::uint8_t, 256> make_decode_table() {
    std::array<std::uint8_t, 256> t{};
    for (auto& v : t) {
        v = kInvalid;
    }
    for (std::uint8_t i = 0; i < 64; ++i) {
        t[static_cast<unsigned char>(kAlphabet[i])] = i;
    }
    return t;
}

constexpr auto kDecode = make_decode_table();

// Encodes with either alphabet; `pad` adds '=' up to a multiple of 4 (RFC 4648 §4 vs §5).
std::string encode(std::span<const std::byte> data, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&data](std::size_t k) { return std::to_integer<std::uint32_t>(data[k]); };
    for (; i + 3 <= data.size(); i += 3) {
        const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(alphabet[(v >> 6) & 63]);
        out.push_back(alphabet[v & 63]);
    }
    const std::size_t rest = data.size() - i;
    if (rest == 1) {
        const std::uint32_t v = at(i) << 16;
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        if (pad) {
            out.append("==");
        }
    } else if (rest == 2) {
        const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8);
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(alphabet[(v >> 6) & 63]);
        if (pad) {
            out.push_back('=');
        }
    }
    return out;
}

} // namespace

std::string base64_encode(std::span<const std::byte> data) { return encode(data, kAlphabet, true); }

std::string base64url_encode(std::span<const std::byte> data) {
    return encode(data, kUrlAlphabet, false);
}

std::optional<std::string> base64_decode(std::string_view text) {
    // Strict RFC 4648 §3: whole 4-character groups, no whitespace or line breaks, '=' only as
    // the last one or two characters, and zero pad bits (§3.5), so each byte string has exactly
    // one accepted encoding.
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=') {
        padding = text[text.size() - 2] == '=' ? 2 : 1;
    }
    const std::size_t body = text.size() - padding;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    std::uint32_t acc = 0;
    for (std::size_t i = 0; i < body; ++i) {
        const std::uint8_t v = kDecode[static_cast<unsigned char>(text[i])];
        if (v == kInvalid) {
            return std::nullopt;
        }
        acc = (acc << 6) | v;
        if (i % 4 == 3) {
            out.push_back(static_cast<char>((acc >> 16) & 0xFF));
            out.push_back(static_cast<char>((acc >> 8) & 0xFF));
            out.push_back(static_cast<char>(acc & 0xFF));
            acc = 0;
        }
    }
    if (padding == 2) {
        // "xx==": 12 bits, of which the low 4 must be zero.
        if ((acc & 0x0F) != 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>((acc >> 4) & 0xFF));
    } else if (padding == 1) {
        // "xxx=": 18 bits, of which the low 2 must be zero.
        if ((acc & 0x03) != 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>((acc >> 10) & 0xFF));
        out.push_back(static_cast<char>((acc >> 2) & 0xFF));
    }
    return out;
}

} // namespace proxy::core
