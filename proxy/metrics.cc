#include "proxy/metrics.h"

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

std::uint64_t Metrics::counter(std::string_view name, Labels labels) const {
    const auto it = counters_.find(key(name, labels));
    return it == counters_.end() ? 0 : it->second;
}

std::int64_t Metrics::gauge(std::string_view name, Labels labels) const {
    const auto it = gauges_.find(key(name, labels));
    return it == gauges_.end() ? 0 : it->second;
}

std::string Metrics::render() const {
    std::string out;
    std::string last_name;
    auto emit = [&](const std::string& k, const std::string& value, const char* type) {
        const std::string name = k.substr(0, k.find('{'));
        if (name != last_name) {
            out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
            last_name = name;
        }
        out.append(k).append(" ").append(value).append("\n");
    };
    for (const auto& [k, v] : counters_) {
        emit(k, std::to_string(v), "counter");
    }
    last_name.clear();
    for (const auto& [k, v] : gauges_) {
        emit(k, std::to_string(v), "gauge");
    }
    return out;
}

} // namespace proxy
