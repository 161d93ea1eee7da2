#include "proxy/core/log.h"

#include "proxy/core/text.h"

#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <cstdlib>
#include <ctime>
#include <sys/time.h>

namespace proxy::core {
namespace {

LogLevel g_level = [] {
    const char* env = std::getenv("WSBRIDGE_LOG_LEVEL");
    if (env == nullptr) {
        return LogLevel::Info;
    }
    std::string_view v(env);
    if (v == "debug") {
        return LogLevel::Debug;
    }
    if (v == "warn") {
        return LogLevel::Warn;
    }
    if (v == "error") {
        return LogLevel::Error;
    }
    return LogLevel::Info;
}();

std::string_view level_name(LogLevel level) {
    switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
    }
    return "info";
}

void append_timestamp(std::string& out) {
    timeval tv{};
    gettimeofday(&tv, nullptr);
    std::tm tm{};
    gmtime_r(&tv.tv_sec, &tm);
    char buf[40];
    const int n = std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000));
    out.append(buf, static_cast<std::size_t>(n));
}

LogFormat g_format = LogFormat::Logfmt;

/// Length of the well-formed UTF-8 sequence at `i` (Unicode Table 3-7), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    if (c < 0x80) {
        return 1;
    }
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (i + n > s.size() || b(1) < lo || b(1) > hi) {
        return 0;
    }
    for (std::size_t k = 2; k < n; ++k) {
        if (b(k) < 0x80 || b(k) > 0xBF) {
            return 0;
        }
    }
    return n;
}

/// `value` as a JSON string; bytes that are not UTF-8 (a client's header, say) become U+FFFD,
/// so every line stays valid JSON.
void append_json_value(std::string& out, std::string_view value) {
    std::string clean;
    std::string_view text = value;
    for (std::size_t i = 0; i < value.size();) {
        const std::size_t n = utf8_sequence(value, i);
        if (n == 0 && clean.empty()) {
            clean.assign(value.substr(0, i));
        }
        if (n == 0) {
            clean.append("\xEF\xBF\xBD");
            ++i;
            continue;
        }
        if (!clean.empty()) {
            clean.append(value.substr(i, n));
        }
        i += n;
    }
    if (!clean.empty()) {
        text = clean;
    }
    append_json_string(out, text);
}

/// Digits only (what the numeric LogField constructors produce): written as a JSON number.
bool is_number(std::string_view v) noexcept {
    if (v.empty() || v.size() > 19) {
        return false;
    }
    std::size_t i = v[0] == '-' ? 1 : 0;
    if (i == v.size()) {
        return false;
    }
    for (; i < v.size(); ++i) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
    }
    return true;
}

} // namespace

void set_log_level(LogLevel level) noexcept {
    g_level = level;
}

void set_log_format(LogFormat format) noexcept {
    g_format = format;
}

bool log_enabled(LogLevel level) noexcept {
    return level >= g_level;
}

void append_logfmt_value(std::string& out, std::string_view value) {
    bool quote = value.empty();
    for (char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || c == '"' || c == '=' || c == '\\' || u == 0x7f) {
            quote = true;
            break;
        }
    }
    if (!quote) {
        out.append(value);
        return;
    }
    out.push_back('"');
    for (char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else if (c == '\r') {
            out.append("\\r");
        } else if (u < 0x20 || u == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", u);
            out.append(buf);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

namespace {

struct LimitState {
    std::int64_t second = 0;
    unsigned written = 0;
    std::uint64_t suppressed = 0;
};

std::map<std::string, LimitState, std::less<>>& limit_states() {
    static std::map<std::string, LimitState, std::less<>> states;
    return states;
}

std::int64_t monotonic_second() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::int64_t>(ts.tv_sec);
}

} // namespace

void log_limited(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
    if (!log_enabled(level)) {
        return;
    }
    auto& states = limit_states();
    auto it = states.find(event);
    if (it == states.end()) {
        it = states.emplace(std::string(event), LimitState{}).first;
    }
    LimitState& st = it->second;
    const std::int64_t now = monotonic_second();
    if (now != st.second) {
        if (st.suppressed != 0) {
            log(LogLevel::Warn, "log_suppressed", {{"name", event}, {"count", st.suppressed}});
        }
        st = LimitState{now, 0, 0};
    }
    if (st.written >= kLimitedPerSecond) {
        ++st.suppressed;
        return;
    }
    ++st.written;
    log(level, event, fields);
}

void flush_suppressed_logs() {
    const std::int64_t now = monotonic_second();
    for (auto& [name, st] : limit_states()) {
        if (st.second != now && st.suppressed != 0) {
            log(LogLevel::Warn, "log_suppressed", {{"name", name}, {"count", st.suppressed}});
            st = LimitState{now, 0, 0};
        }
    }
}

void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
    if (!log_enabled(level)) {
        return;
    }
    std::string line;
    line.reserve(256);
    if (g_format == LogFormat::Json) {
        line.append("{\"ts\":\"");
        append_timestamp(line);
        line.append("\",\"level\":\"");
        line.append(level_name(level));
        line.append("\",\"event\":");
        append_json_value(line, event);
        for (const auto& f : fields) {
            line.push_back(',');
            append_json_value(line, f.key);
            line.push_back(':');
            if (f.numeric && is_number(f.value)) {
                line.append(f.value);
            } else {
                append_json_value(line, f.value);
            }
        }
        line.append("}\n");
        std::fwrite(line.data(), 1, line.size(), stderr);
        std::fflush(stderr);
        return;
    }
    line.append("ts=");
    append_timestamp(line);
    line.append(" level=");
    line.append(level_name(level));
    line.append(" event=");
    line.append(event);
    for (const auto& f : fields) {
        line.push_back(' ');
        line.append(f.key);
        line.push_back('=');
        append_logfmt_value(line, f.value);
    }
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

} // namespace proxy::core
