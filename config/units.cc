// Duration and size literals of the configuration file. Both are parsed with integer
// arithmetic only, so that a value is either represented exactly or rejected: "1.5s" is 1500 ms,
// "1.0005s" is rejected rather than rounded, and any overflow of 64 bits is rejected.

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace config {
namespace {

constexpr std::uint64_t kMaxMillis =
    static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/// Consumes a run of decimal digits from the front of `text` into `out`. Returns the number of
/// digits read, or nullopt when the value does not fit in 64 bits.
std::optional<std::size_t> take_digits(std::string_view text, std::uint64_t& out) {
    std::size_t n = 0;
    out = 0;
    while (n < text.size() && is_digit(text[n])) {
        const auto digit = static_cast<std::uint64_t>(text[n] - '0');
        if (out > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
            return std::nullopt;
        }
        out = out * 10 + digit;
        ++n;
    }
    return n;
}

/// Milliseconds per duration unit, or 0 for an unknown unit. Units are lower case only: "M"
/// could be read as months, and one spelling per unit keeps files greppable.
std::uint64_t millis_per_unit(std::string_view unit) {
    if (unit == "ms") {
        return 1;
    }
    if (unit == "s") {
        return 1000;
    }
    if (unit == "m") {
        return 60 * 1000;
    }
    if (unit == "h") {
        return 60 * 60 * 1000;
    }
    return 0;
}

} // namespace

std::optional<Duration> parse_duration(std::string_view text) {
    if (text == "0") {
        return Duration{0};
    }
    std::uint64_t whole = 0;
    const auto whole_digits = take_digits(text, whole);
    if (!whole_digits || *whole_digits == 0) {
        return std::nullopt;
    }
    text.remove_prefix(*whole_digits);

    // Optional fraction: at least one digit after the point. Trailing zeros carry no value;
    // twelve significant digits are more than any exact millisecond count needs, and keep
    // fraction * 3'600'000 below 2^64.
    std::uint64_t fraction = 0;
    std::uint64_t scale = 1;
    if (!text.empty() && text.front() == '.') {
        text.remove_prefix(1);
        std::size_t n = 0;
        while (n < text.size() && is_digit(text[n])) {
            ++n;
        }
        if (n == 0) {
            return std::nullopt;
        }
        std::string_view digits = text.substr(0, n);
        text.remove_prefix(n);
        while (!digits.empty() && digits.back() == '0') {
            digits.remove_suffix(1);
        }
        if (digits.size() > 12) {
            return std::nullopt;
        }
        for (const char c : digits) {
            fraction = fraction * 10 + static_cast<std::uint64_t>(c - '0');
            scale *= 10;
        }
    }

    const std::uint64_t unit = millis_per_unit(text);
    if (unit == 0) {
        return std::nullopt;
    }
    if (whole > kMaxMillis / unit) {
        return std::nullopt;
    }
    const std::uint64_t fraction_units = fraction * unit;
    if (fraction_units % scale != 0) {
        return std::nullopt; // not a whole number of milliseconds
    }
    const std::uint64_t total = whole * unit;
    const std::uint64_t extra = fraction_units / scale;
    if (total > kMaxMillis - extra) {
        return std::nullopt;
    }
    return Duration{static_cast<Duration::rep>(total + extra)};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t value = 0;
    const auto digits = take_digits(text, value);
    if (!digits || *digits == 0) {
        return std::nullopt;
    }
    text.remove_prefix(*digits);
    if (text.empty()) {
        return value;
    }
    if (text.size() != 1) {
        return std::nullopt;
    }
    unsigned shift = 0;
    switch (text.front()) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return std::nullopt;
    }
    if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
        return std::nullopt;
    }
    return value << shift;
}

std::string format_duration(Duration value) {
    const auto ms = value.count();
    if (ms == 0) {
        return "0";
    }
    struct Unit {
        Duration::rep millis;
        const char* suffix;
    };
    constexpr std::array<Unit, 3> kUnits{{{3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}}};
    for (const Unit& unit : kUnits) {
        if (ms % unit.millis == 0) {
            return std::to_string(ms / unit.millis) + unit.suffix;
        }
    }
    return std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t value) {
    if (value == 0) {
        return "0";
    }
    struct Unit {
        unsigned shift;
        const char* suffix;
    };
    constexpr std::array<Unit, 3> kUnits{{{30, "g"}, {20, "m"}, {10, "k"}}};
    for (const Unit& unit : kUnits) {
        const std::uint64_t mask = (std::uint64_t{1} << unit.shift) - 1;
        if ((value & mask) == 0) {
            return std::to_string(value >> unit.shift) + unit.suffix;
        }
    }
    return std::to_string(value);
}

} // namespace config
