#include "proxy/metrics.h"

#include <algorithm>
#include <tuple>
#include <vector>

namespace proxy {

std::string Metrics::key(std::string_view name, Labels labels) {
    std::string k(name);
    if (labels.size() == 0) {
        return k;
    }
    k.push_back('{');
    bool first = true;
    for (const auto& [label, value] : labels) {
        if (!first) {
            k.push_back(',');
        }
        first = false;
        k.append(label);
        k.append("=\"");
        for (char c : value) {
            if (c == '"' || c == '\\') {
                k.push_back('\\');
                k.push_back(c);
            } else if (c == '\n') {
                k.append("\\n");
            } else {
                k.push_back(c);
            }
        }
        k.push_back('"');
    }
    k.push_back('}');
    return k;
}

void Metrics::inc(std::string_view name, Labels labels, std::uint64_t n) {
    counters_[key(name, labels)] += n;
}

void Metrics::gauge_add(std::string_view name, std::int64_t delta, Labels labels) {
    gauges_[key(name, labels)] += delta;
}

void Metrics::gauge_set(std::string_view name, std::int64_t value, Labels labels) {
    gauges_[key(name, labels)] = value;
}

std::uint64_t Metrics::counter(std::string_view name, Labels labels) const {
    const auto it = counters_.find(key(name, labels));
    return it == counters_.end() ? 0 : it->second;
}

std::int64_t Metrics::gauge(std::string_view name, Labels labels) const {
    const auto it = gauges_.find(key(name, labels));
    return it == gauges_.end() ? 0 : it->second;
}

std::string Metrics::render() const {
    // Sorted by family name first: in the maps `x{...}` sorts after `x_y` and `xa`, which would
    // split family x around them and give it two TYPE lines (Prometheus rejects the scrape).
    std::string out;
    auto section = [&out](const auto& series, const char* type) {
        std::vector<std::tuple<std::string_view, std::string_view, std::string>> samples;
        samples.reserve(series.size());
        for (const auto& [k, v] : series) {
            const std::string_view key(k);
            samples.emplace_back(key.substr(0, key.find('{')), key, std::to_string(v));
        }
        std::sort(samples.begin(), samples.end());
        std::string_view last_name;
        for (const auto& [name, key, value] : samples) {
            if (name != last_name) {
                out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
                last_name = name;
            }
            out.append(key).append(" ").append(value).append("\n");
        }
    };
    section(counters_, "counter");
    section(gauges_, "gauge");
    return out;
}

} // namespace proxy
