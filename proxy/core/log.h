#pragma once
// Structured logging: one line per event on stderr, logfmt
// (`ts=… level=info event=ws_closed client=… route=/chat …`) or JSON, so operators can grep
// and ship it, and tests can parse it. Not thread-safe across loops yet (one loop per process).

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace proxy::core {

/// Severity, lowest first. Lines below the configured level are not formatted at all.
enum class LogLevel : std::uint8_t { Debug, Info, Warn, Error };

/// One key=value pair of a log line. Values are quoted when they contain spaces, quotes,
/// '=' or control bytes; control bytes are escaped so a client cannot forge log lines.
struct LogField {
    std::string_view key;
    std::string value;
    bool numeric = false;  ///< written as a JSON number in the JSON format
    LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
    LogField(std::string_view k, const char* v) : key(k), value(v) {}
    LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
    LogField(std::string_view k, std::uint64_t v) : key(k), value(std::to_string(v)), numeric(true) {}
    LogField(std::string_view k, std::int64_t v) : key(k), value(std::to_string(v)), numeric(true) {}
    LogField(std::string_view k, unsigned v) : key(k), value(std::to_string(v)), numeric(true) {}
    LogField(std::string_view k, int v) : key(k), value(std::to_string(v)), numeric(true) {}
};

/// Line format (`log.format` in the config): logfmt (default) or one JSON object per line,
/// `{"ts":…,"level":…,"event":…,<fields>}`, numbers as numbers, for log shippers.
enum class LogFormat : std::uint8_t { Logfmt, Json };

/// Sets the minimum level written (default Info; WSBRIDGE_LOG_LEVEL=debug|info|warn|error).
void set_log_level(LogLevel level) noexcept;
/// Sets the line format (default logfmt).
void set_log_format(LogFormat format) noexcept;
/// True when lines of `level` are written.
bool log_enabled(LogLevel level) noexcept;
/// Writes one line: `ts=<RFC 3339 UTC> level=<level> event=<event> <fields…>`.
void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields);

/// Like log(), but at most `kLimitedPerSecond` lines per second per `event` name: the rest are
/// counted and reported once per second as `event=log_suppressed name=<event> count=<n>`, so a
/// flood of bad requests cannot fill the disk. For rejection and error lines.
void log_limited(LogLevel level, std::string_view event, std::initializer_list<LogField> fields);
/// Writes the pending `log_suppressed` summaries of past seconds. Called once per second by
/// the server's housekeeping timer, so a summary appears even when the flood stopped.
void flush_suppressed_logs();
/// Lines per second and event name that log_limited() writes before suppressing.
inline constexpr unsigned kLimitedPerSecond = 50;

/// Appends `value` to `out` in logfmt form (quoted and escaped when needed). For tests.
void append_logfmt_value(std::string& out, std::string_view value);

} // namespace proxy::core
