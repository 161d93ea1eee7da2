#pragma once
// A log-linear latency histogram for the load generator: fixed memory, O(1) record, bounded
// relative error. Values are nanoseconds; reports convert to microseconds.

#include <array>
#include <cstddef>
#include <cstdint>

namespace bench {

/// Counts values in buckets that are exact below 128 and then split every power of two into
/// 64 equal sub-buckets, so any reported quantile is within 1/64 (1.6 %) of a recorded value.
/// Values at or above 2^44 ns (about 4.9 hours) land in the last bucket. Not thread-safe.
class Histogram {
  public:
    /// Adds one value (nanoseconds).
    void record(std::uint64_t value) noexcept;
    /// Forgets every value (used when the warm-up ends).
    void reset() noexcept;
    /// Number of recorded values.
    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    /// Largest recorded value, exact; 0 when empty.
    [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
    /// The value at quantile `q` (0..1): the midpoint of the bucket holding the ceil(q·count)-th
    /// smallest value, clamped to max(). 0 when empty.
    [[nodiscard]] std::uint64_t quantile(double q) const noexcept;

  private:
    static constexpr unsigned kSubBits = 6;                            ///< 64 sub-buckets
    static constexpr unsigned kMaxExponent = 44;                       ///< clamp at 2^44
    static constexpr std::size_t kLinear = std::size_t{2} << kSubBits; ///< exact below 128
    static constexpr std::size_t kBuckets =
        kLinear + (kMaxExponent - kSubBits - 1) * (std::size_t{1} << kSubBits);

    static std::size_t index_of(std::uint64_t value) noexcept;
    static std::uint64_t lower_bound_of(std::size_t index) noexcept;

    std::array<std::uint64_t, kBuckets> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
};

} // namespace bench
