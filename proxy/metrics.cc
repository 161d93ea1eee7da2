#include "proxy/metrics.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <tuple>
#include <vector>

namespace proxy {
namespace {

using enum MetricType;

// Sorted by name (find_metric bisects; a unit test checks the order). Label lists document the
// series; "" marks the unlabelled families that render() shows from the start, except the
// optional ones (the io_uring counters stay absent when batching is off, as before).
constexpr std::array kRegistry{
    MetricInfo{"wsbridge_backend_pauses_total", Counter, "transport",
               "Times a session stopped reading its backend because its client fell behind."},
    MetricInfo{"wsbridge_batched_sends_total", Counter, "",
               "Writes submitted through the batched send path (io_uring).", 0, true},
    MetricInfo{"wsbridge_bytes_total", Counter, "route,transport,direction",
               "Message payload bytes relayed; direction in = client to backend. Added when a "
               "connection or session ends."},
    MetricInfo{"wsbridge_client_connections", Gauge, "",
               "Client TCP connections currently admitted (all transports)."},
    MetricInfo{"wsbridge_closes_total", Counter, "side,reason",
               "Connections and streams closed by the proxy, by side and reason."},
    MetricInfo{"wsbridge_config_last_reload_successful", Gauge, "",
               "1 if the last configuration reload (SIGHUP) succeeded, else 0.", 1},
    MetricInfo{"wsbridge_config_last_reload_timestamp_seconds", Gauge, "",
               "Unix time of the last configuration load or reload attempt."},
    MetricInfo{"wsbridge_connections", Gauge, "route,transport",
               "Live client connections: WebSocket relays and session WebSockets, SSE streams "
               "and held polls."},
    MetricInfo{"wsbridge_connections_accepted_total", Counter, "",
               "Client TCP connections accepted."},
    MetricInfo{"wsbridge_draining", Gauge, "", "1 while the proxy drains for shutdown."},
    MetricInfo{"wsbridge_messages_total", Counter, "route,transport,direction",
               "Messages relayed; direction in = client to backend."},
    MetricInfo{"wsbridge_protocol_errors_total", Counter, "side,reason",
               "WebSocket protocol violations, by side and reason."},
    MetricInfo{"wsbridge_rejections_total", Counter, "transport,reason,status",
               "Requests and connections refused, by transport, reason and HTTP status."},
    MetricInfo{"wsbridge_reloads_total", Counter, "result",
               "Configuration reloads (SIGHUP), by result (ok, error)."},
    MetricInfo{"wsbridge_replay_evictions_total", Counter, "",
               "Undelivered messages evicted from replay buffers (clients get a gap)."},
    MetricInfo{"wsbridge_send_batches_total", Counter, "",
               "Batches of writes submitted (one system call each).", 0, true},
    MetricInfo{"wsbridge_session_gaps_total", Counter, "route,transport",
               "Resumes and polls whose position was no longer in the replay buffer (explicit "
               "gap sent)."},
    MetricInfo{"wsbridge_session_resets_total", Counter, "route,transport",
               "Requests for an unknown session, answered with a fresh session and a reset."},
    MetricInfo{"wsbridge_session_resumes_total", Counter, "route,transport",
               "Sessions resumed by a reconnecting client."},
    MetricInfo{"wsbridge_sessions", Gauge, "route", "Live sessions."},
    MetricInfo{"wsbridge_sessions_closed_total", Counter, "route,reason",
               "Sessions ended, by reason."},
    MetricInfo{"wsbridge_sessions_opened_total", Counter, "route",
               "Sessions opened (backend connected)."},
    MetricInfo{"wsbridge_systemd_notifications_total", Counter, "state",
               "State notifications sent to systemd (sd_notify), by state: ready, reloading, "
               "stopping, status. None without NOTIFY_SOCKET."},
    MetricInfo{"wsbridge_tls_handshake_failures_total", Counter, "side,reason",
               "Failed TLS handshakes, by side (client, backend) and reason."},
    MetricInfo{"wsbridge_tls_handshakes_total", Counter, "side,version",
               "Completed TLS handshakes, by side and protocol version."},
    MetricInfo{"wsbridge_tls_resumed_total", Counter, "side",
               "TLS handshakes that resumed an earlier session."},
    MetricInfo{"wsbridge_upgrades_total", Counter, "result",
               "WebSocket upgrade requests, by result (accepted, rejected)."},
    MetricInfo{"wsbridge_watchdog_interval_seconds", Gauge, "",
               "systemd's watchdog interval (WATCHDOG_USEC); 0 when not enabled. WATCHDOG=1 "
               "goes out from the event loop every half of it."},
    MetricInfo{"wsbridge_ws_closes_total", Counter, "code,by",
               "WebSocket relays closed, by close code and the side that closed."},
};

[[maybe_unused]] bool registered_as(std::string_view name, MetricType type) {
    const MetricInfo* info = find_metric(name);
    return info != nullptr && info->type == type;
}

// Text format 0.0.4: in a label value, backslash, double quote and line feed are escaped.
void append_escaped(std::string& out, std::string_view value) {
    for (char c : value) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else {
            out.push_back(c);
        }
    }
}

} // namespace

std::span<const MetricInfo> metric_registry() noexcept {
    return kRegistry;
}

const MetricInfo* find_metric(std::string_view name) noexcept {
    const auto it = std::lower_bound(kRegistry.begin(), kRegistry.end(), name,
                                     [](const MetricInfo& m, std::string_view n) {
                                         return m.name < n;
                                     });
    return it != kRegistry.end() && it->name == name ? &*it : nullptr;
}

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
        append_escaped(k, value);
        k.push_back('"');
    }
    k.push_back('}');
    return k;
}

std::string_view Metrics::label_of(std::string_view key, std::string_view label) noexcept {
    // A label starts after '{' or ','; inside an escaped value a '"' is always preceded by a
    // backslash, so `<label>="` found at a separator is a real label.
    std::size_t pos = key.find('{');
    while (pos != std::string_view::npos && pos + 1 < key.size()) {
        const std::string_view rest = key.substr(pos + 1);
        if (rest.starts_with(label) && rest.substr(label.size()).starts_with("=\"")) {
            const std::size_t begin = pos + 1 + label.size() + 2;
            std::size_t end = begin;
            while (end < key.size() && key[end] != '"') {
                end += key[end] == '\\' ? 2 : 1;
            }
            return key.substr(begin, std::min(end, key.size()) - begin);
        }
        // Next separator outside a value.
        std::size_t i = key.find("=\"", pos + 1);
        if (i == std::string_view::npos) {
            break;
        }
        i += 2;
        while (i < key.size() && key[i] != '"') {
            i += key[i] == '\\' ? 2 : 1;
        }
        pos = i + 1 < key.size() && key[i + 1] == ',' ? i + 1 : std::string_view::npos;
    }
    return {};
}

bool Metrics::matches(std::string_view key, std::string_view name, Labels labels) {
    if (family(key) != name) {
        return false;
    }
    std::string escaped;
    for (const auto& [label, value] : labels) {
        escaped.clear();
        append_escaped(escaped, value);
        if (key.find('{') == std::string_view::npos || label_of(key, label) != escaped) {
            return false;
        }
        // label_of returns "" for an absent label: an empty value must really be there.
        if (escaped.empty() && key.find(std::string(label) + "=\"\"") == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

void Metrics::inc(std::string_view name, Labels labels, std::uint64_t n) {
    assert(registered_as(name, Counter) && "metric not in kRegistry (metrics.cc)");
    counters_[key(name, labels)] += n;
}

void Metrics::counter_set(std::string_view name, std::uint64_t value, Labels labels) {
    assert(registered_as(name, Counter) && "metric not in kRegistry (metrics.cc)");
    counters_[key(name, labels)] = value;
}

std::uint64_t& Metrics::cell(std::string_view name, Labels labels) {
    assert(registered_as(name, Counter) && "metric not in kRegistry (metrics.cc)");
    return counters_[key(name, labels)];
}

void Metrics::gauge_add(std::string_view name, std::int64_t delta, Labels labels) {
    assert(registered_as(name, Gauge) && "metric not in kRegistry (metrics.cc)");
    gauges_[key(name, labels)] += delta;
}

void Metrics::gauge_set(std::string_view name, std::int64_t value, Labels labels) {
    assert(registered_as(name, Gauge) && "metric not in kRegistry (metrics.cc)");
    gauges_[key(name, labels)] = value;
}

std::uint64_t Metrics::counter(std::string_view name, Labels labels) const {
    std::uint64_t sum = 0;
    each_counter(name, [&](std::string_view k, std::uint64_t v) {
        if (matches(k, name, labels)) {
            sum += v;
        }
    });
    return sum;
}

std::int64_t Metrics::gauge(std::string_view name, Labels labels) const {
    std::int64_t sum = 0;
    bool any = false;
    each_gauge(name, [&](std::string_view k, std::int64_t v) {
        if (matches(k, name, labels)) {
            sum += v;
            any = true;
        }
    });
    const MetricInfo* info = find_metric(name);
    if (!any && labels.size() == 0 && info != nullptr && info->labels.empty()) {
        return info->initial;
    }
    return sum;
}

std::string Metrics::render() const {
    // One list of every sample, sorted by family name first: in the maps `x{...}` sorts after
    // `x_y` and `xa`, which would split family x around them and give it two TYPE lines
    // (Prometheus rejects the scrape). Unlabelled registered families with no sample yet get
    // their initial value, so a dashboard sees them from the first scrape.
    std::vector<std::tuple<std::string_view, std::string_view, std::string, MetricType>> samples;
    samples.reserve(counters_.size() + gauges_.size() + kRegistry.size());
    for (const auto& [k, v] : counters_) {
        samples.emplace_back(family(k), k, std::to_string(v), Counter);
    }
    for (const auto& [k, v] : gauges_) {
        samples.emplace_back(family(k), k, std::to_string(v), Gauge);
    }
    for (const MetricInfo& info : kRegistry) {
        if (info.labels.empty() && !info.optional && !counters_.contains(info.name) &&
            !gauges_.contains(info.name)) {
            samples.emplace_back(info.name, info.name, std::to_string(info.initial), info.type);
        }
    }
    std::sort(samples.begin(), samples.end());
    std::string out;
    std::string_view last_name;
    for (const auto& [name, key, value, type] : samples) {
        if (name != last_name) {
            const MetricInfo* info = find_metric(name);
            if (info != nullptr) {
                out.append("# HELP ").append(name).append(" ").append(info->help).append("\n");
            }
            const MetricType t = info != nullptr ? info->type : type;
            out.append("# TYPE ").append(name).append(t == Counter ? " counter\n" : " gauge\n");
            last_name = name;
        }
        out.append(key).append(" ").append(value).append("\n");
    }
    return out;
}

} // namespace proxy
