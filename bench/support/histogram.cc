#include "bench/support/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace bench {

std::size_t Histogram::index_of(std::uint64_t value) noexcept {
    if (value < kLinear) {
        return static_cast<std::size_t>(value);
    }
    const auto exponent = static_cast<unsigned>(std::bit_width(value) - 1);
    if (exponent >= kMaxExponent) {
        return kBuckets - 1;
    }
    // Keep the top kSubBits+1 bits: `top` is in [64, 128) and picks the sub-bucket.
    const unsigned shift = exponent - kSubBits;
    const std::uint64_t top = value >> shift;
    return kLinear + (shift - 1) * (std::size_t{1} << kSubBits) +
           static_cast<std::size_t>(top - (std::uint64_t{1} << kSubBits));
}

std::uint64_t Histogram::lower_bound_of(std::size_t index) noexcept {
    if (index < kLinear) {
        return index;
    }
    const std::size_t rest = index - kLinear;
    const unsigned shift = static_cast<unsigned>(rest >> kSubBits) + 1;
    const std::uint64_t top = (std::uint64_t{1} << kSubBits) + (rest & ((1U << kSubBits) - 1));
    return top << shift;
}

void Histogram::record(std::uint64_t value) noexcept {
    ++counts_[index_of(value)];
    ++count_;
    max_ = std::max(max_, value);
}

void Histogram::reset() noexcept {
    counts_.fill(0);
    count_ = 0;
    max_ = 0;
}

std::uint64_t Histogram::quantile(double q) const noexcept {
    if (count_ == 0) {
        return 0;
    }
    const double wanted = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_));
    const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(wanted));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            const std::uint64_t low = lower_bound_of(i);
            const std::uint64_t high = i + 1 < kBuckets ? lower_bound_of(i + 1) : low + 1;
            return std::min(max_, low + (high - low - 1) / 2);
        }
    }
    return max_;
}

} // namespace bench
