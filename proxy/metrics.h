#pragma once
// Labelled counters and gauges, rendered in the Prometheus text format. Every metric family the
// proxy emits is declared once in the registry (metrics.cc, `kRegistry`) with its type and HELP
// text; render() writes `# HELP` and `# TYPE` once per family, before its samples. Updated per
// connection event (accept, reject, close) or through a cell a connection looked up once
// (cell()), never with a name lookup per byte or per message.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace proxy {

/// A label set, e.g. {{"reason", "origin"}, {"transport", "websocket"}}.
using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/// Prometheus metric types the proxy uses.
enum class MetricType {
    Counter,  ///< monotonic; the name ends in `_total`
    Gauge,    ///< goes up and down
};

/// One registered metric family.
struct MetricInfo {
    std::string_view name;    ///< `wsbridge_…`; counters end in `_total`
    MetricType type;          ///< what render() writes on the TYPE line
    std::string_view labels;  ///< label names, comma-separated ("" = unlabelled: rendered as 0
                              ///< until first set, so dashboards see the series at once)
    std::string_view help;    ///< the HELP text (no backslash, no newline)
    std::int64_t initial = 0; ///< value of an unlabelled family before anything sets it
    bool optional = false;    ///< rendered only once set: absent means the feature is off
};

/// Every metric family the proxy emits, sorted by name. tests/unit/proxy/metrics_test.cc checks
/// that every `"wsbridge_…"` literal in proxy/ and transports/ is here with the type its call
/// site implies.
std::span<const MetricInfo> metric_registry() noexcept;

/// The registry entry for `name`, or nullptr.
const MetricInfo* find_metric(std::string_view name) noexcept;

/// Counter/gauge registry of one worker. Keys are `name{label="value",...}` in the order the
/// labels are given; label values are escaped per the text format (`\\`, `\"`, `\n`).
/// Names must be registered (find_metric) with the matching type: debug builds assert it, and
/// release builds render an unregistered family without HELP (so `promtool check metrics`, run
/// by tests/e2e/metrics.test.mjs, fails on it).
class Metrics {
  public:
    /// Adds `n` to counter `name` with `labels`.
    void inc(std::string_view name, Labels labels = {}, std::uint64_t n = 1);
    /// Sets counter `name` to `value`: for counts kept elsewhere (core::SendBatch), copied in
    /// at scrape time. `value` must not go down.
    void counter_set(std::string_view name, std::uint64_t value, Labels labels = {});
    /// Adds `delta` (may be negative) to gauge `name`.
    void gauge_add(std::string_view name, std::int64_t delta, Labels labels = {});
    /// Sets gauge `name` to `value`.
    void gauge_set(std::string_view name, std::int64_t value, Labels labels = {});
    /// The cell of counter `name` with `labels`, created at 0: a connection looks it up once and
    /// then adds to it per message. The reference stays valid as long as this Metrics.
    std::uint64_t& cell(std::string_view name, Labels labels = {});

    /// Sum of counter `name` over every series whose labels include all of `labels` (so no
    /// labels sums the family). 0 when none. For tests and the admin endpoints.
    std::uint64_t counter(std::string_view name, Labels labels = {}) const;
    /// Sum of gauge `name` over every series whose labels include all of `labels`.
    std::int64_t gauge(std::string_view name, Labels labels = {}) const;
    /// Calls `fn(key, value)` for every series of counter `name` (key as in the class comment).
    template <class Fn>
    void each_counter(std::string_view name, Fn&& fn) const {
        each(counters_, name, fn);
    }
    /// Same for gauge `name`.
    template <class Fn>
    void each_gauge(std::string_view name, Fn&& fn) const {
        each(gauges_, name, fn);
    }
    /// Prometheus text exposition (version 0.0.4) of everything: per family (sorted by name)
    /// `# HELP`, `# TYPE`, then its samples.
    std::string render() const;

    /// The family name of a key (`x{a="b"}` → `x`).
    static std::string_view family(std::string_view key) noexcept {
        return key.substr(0, key.find('{'));
    }
    /// The (escaped) value of label `label` in `key`, or "" when absent.
    static std::string_view label_of(std::string_view key, std::string_view label) noexcept;

  private:
    // The keys of family `name` are contiguous in the sorted map, between other families that
    // share its prefix (`name_x…`).
    template <class Map, class Fn>
    static void each(const Map& series, std::string_view name, Fn& fn) {
        for (auto it = series.lower_bound(name); it != series.end(); ++it) {
            if (!std::string_view(it->first).starts_with(name)) {
                break;
            }
            if (family(it->first) == name) {
                fn(std::string_view(it->first), it->second);
            }
        }
    }
    static std::string key(std::string_view name, Labels labels);
    static bool matches(std::string_view key, std::string_view name, Labels labels);
    std::map<std::string, std::uint64_t, std::less<>> counters_;
    std::map<std::string, std::int64_t, std::less<>> gauges_;
};

} // namespace proxy
