#pragma once
// Labelled counters and gauges, rendered in the Prometheus text format. Updated per
// connection event (accept, reject, close), never per byte: per-message figures are summed on
// the connection and added when it ends.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace proxy {

/// A label set, e.g. {{"reason", "origin"}, {"transport", "websocket"}}.
using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/// Counter/gauge registry of one worker. Keys are `name{label="value",...}` in insertion
/// order of the labels; names follow Prometheus conventions (`wsbridge_*_total`).
class Metrics {
  public:
    /// Adds `n` to counter `name` with `labels`.
    void inc(std::string_view name, Labels labels = {}, std::uint64_t n = 1);
    /// Adds `delta` (may be negative) to gauge `name`.
    void gauge_add(std::string_view name, std::int64_t delta, Labels labels = {});
    /// Sets gauge `name` to `value`.
    void gauge_set(std::string_view name, std::int64_t value, Labels labels = {});
    /// Current value of a counter (0 when absent). For tests and the admin endpoint.
    std::uint64_t counter(std::string_view name, Labels labels = {}) const;
    /// Current value of a gauge.
    std::int64_t gauge(std::string_view name, Labels labels = {}) const;
    /// Prometheus text exposition (version 0.0.4) of everything.
    std::string render() const;

  private:
    static std::string key(std::string_view name, Labels labels);
    std::map<std::string, std::uint64_t> counters_;
    std::map<std::string, std::int64_t> gauges_;
};

} // namespace proxy
