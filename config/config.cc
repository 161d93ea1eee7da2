// YAML loading and validation. yaml-cpp is used only here: it builds a node tree (and throws on
// syntax errors), then a Loader walks the tree once, in file order, converting every value and
// collecting every problem as `file:line:col: key.path: reason`. Nothing stops at the first
// problem; the problems are sorted by position at the end so that they read in file order.
//
// Positions: a value's own mark when it has one; for an empty value (`key:`) the key's mark,
// because yaml-cpp marks an empty value at the start of the next token; for a missing key the
// mark of the map that should hold it. yaml-cpp marks are 0-based, messages are 1-based.
//
// Size: this file is over STYLE §9's 800 lines because the Loader is one walk over the whole
// schema, with one short member per block; the pure string parsers live in units.cc and url.cc.

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <utility>

#include "config/config.h"
#include "proxy/core/text.h"

namespace config {
namespace {

using proxy::core::Code;
using proxy::core::Result;
using proxy::core::Side;
using Keys = std::span<const std::string_view>;

constexpr Duration kMaxDuration = std::chrono::hours(168);
constexpr Duration kMinIdleTimeout{100};
constexpr std::size_t kMaxReported = 100;
// Aliases can make a small file expand into very many values: keep memory bounded.
constexpr std::size_t kMaxStored = 10'000;
constexpr std::uint64_t kU32 = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kU64 = std::numeric_limits<std::uint64_t>::max();

constexpr std::array<std::string_view, 8> kTopKeys{"instance", "listen",        "admin",
                                                   "limits",   "drain_timeout", "drain_delay",
                                                   "log",      "routes"};
constexpr std::array<std::string_view, 2> kLogKeys{"format", "level"};
constexpr std::array<std::string_view, 2> kListenKeys{"address", "tls"};
constexpr std::array<std::string_view, 5> kTlsKeys{"cert", "key", "certificates", "min_version",
                                                   "client_ca"};
constexpr std::array<std::string_view, 2> kCertificateKeys{"cert", "key"};
constexpr std::array<std::string_view, 5> kBackendTlsKeys{"ca", "server_name", "cert", "key",
                                                          "verify"};
constexpr std::array<std::string_view, 1> kAdminKeys{"address"};
constexpr std::array<std::string_view, 2> kRateKeys{"messages_per_second", "burst"};
constexpr std::array<std::string_view, 3> kTransportNames{"websocket", "sse", "longpoll"};
constexpr std::array<std::string_view, 19> kLimitsKeys{
    "max_connections", "max_connections_per_ip", "max_header_bytes", "max_headers",
    "header_timeout", "idle_timeout", "backend_idle_timeout", "backend_connect_timeout",
    "backend_handshake_timeout", "close_timeout", "message_timeout", "max_message",
    "max_post_body", "rate", "max_sessions", "outbound_queue", "resume_window", "replay_buffer",
    "replay_messages"};
constexpr std::array<std::string_view, 22> kRouteKeys{
    "path", "backend", "transports", "origins", "require_origin", "subprotocols",
    "forward_headers", "backend_tls", "idle_timeout", "backend_idle_timeout", "backend_connect_timeout",
    "backend_handshake_timeout", "close_timeout", "message_timeout", "max_message",
    "max_post_body", "rate", "max_sessions", "outbound_queue", "resume_window", "replay_buffer",
    "replay_messages"};

// RFC 7230 §6.1 hop-by-hop headers, plus the ones the proxy writes itself (SPEC §2).
constexpr std::array<std::string_view, 9> kHopByHop{
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade"};
constexpr std::array<std::string_view, 5> kProxyOwned{"host", "content-length",
                                                      "x-forwarded-for", "x-forwarded-proto",
                                                      "x-forwarded-host"};

/// One value in the file: its node, where to point at it, and its key path for messages.
struct Field {
    YAML::Node value;
    YAML::Mark mark;
    std::string path;
};

using Entries = std::vector<std::pair<std::string, Field>>;
/// Route-overridable keys set in one block, for messages about combinations.
using SetKeys = std::map<std::string, Field, std::less<>>;

struct Problem {
    int line;
    int column;
    std::string text;
};

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

/// A user string for a message: quoted, control bytes shown as '?', long text shortened.
std::string quote(std::string_view text) {
    std::string out = "\"";
    for (const char c : text.substr(0, 80)) {
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
    return out + (text.size() > 80 ? "...\"" : "\"");
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Map:
        return "a map";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Scalar:
        return quote(node.Scalar());
    default:
        return "an empty value";
    }
}

std::string join(std::string_view parent, std::string_view key) {
    return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

std::string join_keys(Keys keys) {
    std::string out;
    for (const auto key : keys) {
        out += out.empty() ? "" : ", ";
        out += key;
    }
    return out;
}

bool contains(Keys keys, std::string_view key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                               diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// RFC 7230 §3.2.6 token (header names, subprotocol names).
bool is_token(std::string_view text) {
    constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
    if (text.empty()) {
        return false;
    }
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               kSymbols.find(c) != std::string_view::npos;
    });
}

/// True when a path holds a "." or ".." segment, counting %2e as '.' and %2f, %5c and '\'
/// as separators: backends and the servers behind them commonly decode these.
bool has_dot_segment(std::string_view path) {
    std::size_t length = 0;
    bool only_dots = true;
    for (std::size_t i = 0; i <= path.size(); ++i) {
        char c = i < path.size() ? path[i] : '/';
        if (const auto decoded = proxy::core::percent_escape_at(path, i);
            decoded && (*decoded == '.' || *decoded == '/' || *decoded == '\\')) {
            c = *decoded;
            i += 2;
        }
        if (c == '/' || c == '\\') {
            if (only_dots && (length == 1 || length == 2)) {
                return true;
            }
            length = 0;
            only_dots = true;
        } else {
            ++length;
            only_dots = only_dots && c == '.';
        }
    }
    return false;
}

/// True for text shaped like a duration ("12s", "1.5m"), whether or not its value is valid.
bool duration_shaped(std::string_view text) {
    constexpr std::string_view kDigits = "0123456789";
    const auto whole = text.find_first_not_of(kDigits);
    if (whole == 0 || whole == std::string_view::npos) {
        return false;
    }
    text.remove_prefix(whole);
    if (text.front() == '.') {
        text.remove_prefix(1);
        const auto fraction = text.find_first_not_of(kDigits);
        if (fraction == 0 || fraction == std::string_view::npos) {
            return false;
        }
        text.remove_prefix(fraction);
    }
    return text == "ms" || text == "s" || text == "m" || text == "h";
}

/// A listen/admin address: an IP literal (IPv4, or IPv6 in brackets) and a port 0-65535.
/// Host names are refused: a listener binds an address, and resolving at bind time would make
/// the socket depend on DNS. The host comes back normalised (inet_ntop) without brackets.
std::optional<std::pair<std::string, std::uint16_t>> parse_bind_address(std::string_view text,
                                                                        std::string& why) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        why = "expected host:port or [v6]:port, like 127.0.0.1:8080";
        return std::nullopt;
    }
    std::string_view host = text.substr(0, colon);
    const std::string_view port_text = text.substr(colon + 1);
    int family = AF_INET;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        family = AF_INET6;
    } else if (host.find(':') != std::string_view::npos) {
        why = "IPv6 addresses must be written in brackets, like [::1]:8080";
        return std::nullopt;
    }
    unsigned char binary[16];
    const std::string host_copy(host);
    if (host.empty() || inet_pton(family, host_copy.c_str(), binary) != 1) {
        why = "host " + quote(host) + " is not an " + (family == AF_INET ? "IPv4" : "IPv6") +
              " address (listeners bind IP addresses, like 0.0.0.0 or [::])";
        return std::nullopt;
    }
    std::uint32_t port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(),
                                           port);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
        port > 65535 || port_text.front() == '+') {
        why = "invalid port " + quote(port_text) + " (use 0-65535; 0 picks a free port)";
        return std::nullopt;
    }
    char normal[INET6_ADDRSTRLEN];
    inet_ntop(family, binary, normal, sizeof normal);
    return std::make_pair(std::string(normal), static_cast<std::uint16_t>(port));
}

/// Walks one YAML tree into a Config, recording problems instead of stopping.
class Loader {
  public:
    Loader(std::string name, std::filesystem::path base_dir)
        : name_(std::move(name)), base_dir_(std::move(base_dir)) {}

    Config run(const YAML::Node& root);

    void report(const YAML::Mark& mark, std::string_view path, std::string_view reason) {
        if (++total_ > kMaxStored) {
            return;
        }
        const int line = std::max(mark.line, 0);
        const int column = std::max(mark.column, 0);
        std::string text = name_ + ":" + std::to_string(line + 1) + ":" +
                           std::to_string(column + 1) + ": ";
        if (!path.empty()) {
            text += std::string(path) + ": ";
        }
        text += reason;
        // Keys in the path and text in the reason (hosts, ports, origins) come from the file:
        // a control character (a quoted "\n") would split the problem over two lines, so it
        // becomes '?' as in quote() (found by the config_load fuzz target, issue 5).
        for (char& c : text) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                c = '?';
            }
        }
        problems_.push_back(Problem{line, column, std::move(text)});
    }

    /// Every problem in file order, one per line; empty when the file is valid.
    std::string summary() {
        std::stable_sort(problems_.begin(), problems_.end(), [](const auto& a, const auto& b) {
            return std::tie(a.line, a.column) < std::tie(b.line, b.column);
        });
        std::string out;
        for (std::size_t i = 0; i < problems_.size() && i < kMaxReported; ++i) {
            out += (i == 0 ? "" : "\n") + problems_[i].text;
        }
        if (total_ > kMaxReported) {
            out += "\n" + name_ + ": " + std::to_string(total_ - kMaxReported) +
                   " more problems not shown";
        }
        return out;
    }

  private:
    void report(const Field& field, std::string_view reason) {
        report(field.mark, field.path, reason);
    }

    Entries entries(const Field& map, Keys allowed);
    void require(const Field& map, const Entries& entries, Keys required);
    std::vector<Field> list_of(const Field& field);

    std::optional<std::string> string_of(const Field& field);
    std::optional<bool> bool_of(const Field& field);
    std::optional<std::uint64_t> integer_of(const Field& field, std::uint64_t min,
                                            std::uint64_t max);
    std::optional<std::uint64_t> size_of(const Field& field, std::uint64_t min,
                                         std::uint64_t max);
    std::optional<Duration> duration_of(const Field& field, Duration min);
    std::optional<double> rate_of(const Field& field);
    std::optional<std::string> file_of(const Field& field);
    Tls parse_tls(const Field& field);
    void parse_backend_tls(const Field& field, BackendTls& tls);

    void parse_listen(const Field& field, Config& config);
    void parse_admin(const Field& field, Config& config);
    void parse_log(const Field& field, Log& log);
    void parse_limits(const Field& field, Limits& limits, SetKeys& set);
    bool parse_route_limit(const std::string& name, const Field& field, RouteLimits& limits,
                           SetKeys& set);
    void parse_rate(const Field& field, Rate& rate);
    void check_combinations(const RouteLimits& limits, const SetKeys& set);
    void parse_routes(const Field& field, Config& config);
    Route parse_route(const Field& field, const RouteLimits& defaults);
    void parse_route_path(const Field& field, Route& route);
    void parse_transports(const Field& field, Transports& transports);
    std::vector<std::string> parse_origins(const Field& field);
    std::vector<std::string> parse_tokens(const Field& field, bool header_names);
    void check_addresses(const Config& config);

    std::string name_;
    std::filesystem::path base_dir_;
    std::vector<Problem> problems_;
    std::size_t total_ = 0; ///< problems found, including those past kMaxStored
    std::vector<Field> listen_fields_; ///< `address` of each config.listen entry
    std::optional<Field> admin_field_; ///< `address` of config.admin
};

Field child(const Field& parent, const YAML::Node& key, const YAML::Node& value) {
    const bool own_mark = value.IsDefined() && !value.IsNull() && value.Mark().line >= 0;
    return Field{value, own_mark ? value.Mark() : key.Mark(), join(parent.path, key.Scalar())};
}

Entries Loader::entries(const Field& map, Keys allowed) {
    Entries out;
    if (!map.value.IsMap()) {
        report(map, "expected a map with keys (" + join_keys(allowed) + "), got " +
                        describe(map.value));
        return out;
    }
    std::map<std::string, int, std::less<>> seen;
    for (auto it = map.value.begin(); it != map.value.end(); ++it) {
        // A copy: yaml-cpp iterators return a proxy, and `it->first` dies with it.
        const YAML::Node key = it->first;
        if (!key.IsScalar()) {
            report(key.Mark(), map.path, "keys must be plain strings, got " + describe(key));
            continue;
        }
        const std::string& name = key.Scalar();
        if (!contains(allowed, name)) {
            std::string hint;
            for (const auto candidate : allowed) {
                if (candidate.size() > 3 && edit_distance(name, candidate) <= 2) {
                    hint = "did you mean \"" + std::string(candidate) + "\"? ";
                    break;
                }
            }
            report(key.Mark(), join(map.path, name),
                   "unknown key; " + hint + "allowed: " + join_keys(allowed));
            continue;
        }
        if (const auto first = seen.find(name); first != seen.end()) {
            report(key.Mark(), join(map.path, name),
                   "duplicate key (first set on line " + std::to_string(first->second) + ")");
            continue;
        }
        seen.emplace(name, key.Mark().line + 1);
        out.emplace_back(name, child(map, key, it->second));
    }
    return out;
}

void Loader::require(const Field& map, const Entries& entries, Keys required) {
    if (!map.value.IsMap()) {
        return; // already reported by entries()
    }
    for (const auto key : required) {
        const bool present = std::any_of(entries.begin(), entries.end(),
                                         [&](const auto& entry) { return entry.first == key; });
        if (!present) {
            report(map.mark, join(map.path, key), "required key is missing");
        }
    }
}

std::vector<Field> Loader::list_of(const Field& field) {
    std::vector<Field> out;
    if (!field.value.IsSequence()) {
        report(field, "expected a list, got " + describe(field.value));
        return out;
    }
    std::size_t index = 0;
    for (const auto& item : field.value) {
        const bool own_mark = !item.IsNull() && item.Mark().line >= 0;
        out.push_back(Field{item, own_mark ? item.Mark() : field.mark,
                            field.path + "[" + std::to_string(index++) + "]"});
    }
    return out;
}

std::optional<std::string> Loader::string_of(const Field& field) {
    if (!field.value.IsScalar()) {
        report(field, "expected a string, got " + describe(field.value));
        return std::nullopt;
    }
    return field.value.Scalar();
}

std::optional<bool> Loader::bool_of(const Field& field) {
    if (field.value.IsScalar()) {
        const std::string text = lower(field.value.Scalar());
        if (text == "true" || text == "false") {
            return text == "true";
        }
    }
    report(field, "expected true or false, got " + describe(field.value));
    return std::nullopt;
}

std::optional<std::uint64_t> Loader::integer_of(const Field& field, std::uint64_t min,
                                                std::uint64_t max) {
    const std::string text = field.value.IsScalar() ? field.value.Scalar() : std::string();
    const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
    });
    if (!digits) {
        if (text.size() > 1 && text.front() == '-') {
            report(field, "must not be negative (got " + text + ")");
        } else {
            report(field, "expected a non-negative integer, got " + describe(field.value));
        }
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > max) {
        report(field, "must be at most " + std::to_string(max));
        return std::nullopt;
    }
    if (value < min) {
        report(field, min == 1 ? std::string("must be greater than 0")
                               : "must be at least " + std::to_string(min));
        return std::nullopt;
    }
    return value;
}

std::optional<std::uint64_t> Loader::size_of(const Field& field, std::uint64_t min,
                                             std::uint64_t max) {
    const std::string text = field.value.IsScalar() ? field.value.Scalar() : std::string();
    const auto value = parse_size(text);
    if (!value) {
        const bool well_formed =
            !text.empty() && text.front() >= '0' && text.front() <= '9' &&
            text.find_first_not_of("0123456789") >= text.size() - 1 &&
            std::string_view("0123456789kKmMgG").find(text.back()) != std::string_view::npos;
        if (well_formed) {
            report(field, "must be at most " + format_size(max));
        } else if (text.size() > 1 && text.front() == '-') {
            report(field, "must not be negative (got " + text + ")");
        } else {
            report(field, "invalid size " + describe(field.value) + " (use 512, 16k, 1m, 1g)");
        }
        return std::nullopt;
    }
    if (*value > max) {
        report(field, "must be at most " + format_size(max));
        return std::nullopt;
    }
    if (*value < min) {
        report(field, min == 1 ? std::string("must be greater than 0")
                               : "must be at least " + format_size(min));
        return std::nullopt;
    }
    return value;
}

std::optional<Duration> Loader::duration_of(const Field& field, Duration min) {
    const std::string text = field.value.IsScalar() ? field.value.Scalar() : std::string();
    const auto value = parse_duration(text);
    if (!value) {
        const bool bare_number =
            !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (bare_number) {
            report(field, "invalid duration " + quote(text) +
                              ": a unit is required (use 250ms, 30s, 5m, 1h)");
        } else if (text.size() > 1 && text.front() == '-') {
            report(field, "must not be negative (got " + text + ")");
        } else if (duration_shaped(text) && text.find('.') != std::string::npos) {
            report(field, "invalid duration " + quote(text) +
                              ": not a whole number of milliseconds");
        } else if (duration_shaped(text)) {
            report(field, "must be at most " + format_duration(kMaxDuration));
        } else {
            report(field,
                   "invalid duration " + describe(field.value) + " (use 250ms, 30s, 5m, 1h)");
        }
        return std::nullopt;
    }
    if (*value > kMaxDuration) {
        report(field, "must be at most " + format_duration(kMaxDuration));
        return std::nullopt;
    }
    if (*value < min) {
        report(field, min == Duration{1} ? std::string("must be greater than 0")
                                         : "must be at least " + format_duration(min));
        return std::nullopt;
    }
    return value;
}

std::optional<double> Loader::rate_of(const Field& field) {
    const std::string text = field.value.IsScalar() ? field.value.Scalar() : std::string();
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
        !std::isfinite(value)) {
        report(field, "expected a number, got " + describe(field.value));
        return std::nullopt;
    }
    if (value <= 0) {
        report(field, "must be greater than 0");
        return std::nullopt;
    }
    return value;
}

/// A TLS file path: relative paths are taken from the configuration file's directory, so that
/// `--check-config` gives the same answer from any working directory.
std::optional<std::string> Loader::file_of(const Field& field) {
    const auto text = string_of(field);
    if (!text) {
        return std::nullopt;
    }
    if (text->empty()) {
        report(field, "must not be empty");
        return std::nullopt;
    }
    std::filesystem::path path(*text);
    if (path.is_relative() && !base_dir_.empty()) {
        path = base_dir_ / path;
    }
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) {
        report(field, "cannot read " + quote(path.string()) + ": " + std::strerror(ENOENT));
        return std::nullopt;
    }
    if (!std::filesystem::is_regular_file(status)) {
        report(field, quote(path.string()) + " is not a regular file");
        return std::nullopt;
    }
    if (access(path.c_str(), R_OK) != 0) {
        report(field, "cannot read " + quote(path.string()) + ": " + std::strerror(errno));
        return std::nullopt;
    }
    return path.string();
}

Config Loader::run(const YAML::Node& root) {
    Config config;
    config.source = name_;
    const Field top{root, root.Mark(), ""};
    if (root.IsNull()) {
        report(YAML::Mark{}, "", "the configuration is empty; it needs at least listen and routes");
        return config;
    }
    if (!root.IsMap()) {
        report(root.Mark(), "", "expected a map with keys (" + join_keys(kTopKeys) + "), got " +
                                    describe(root));
        return config;
    }
    const Entries top_entries = entries(top, kTopKeys);
    require(top, top_entries, std::array<std::string_view, 2>{"listen", "routes"});

    // `limits` first, wherever it is in the file: routes inherit from it.
    SetKeys global_set;
    for (const auto& [name, field] : top_entries) {
        if (name == "limits") {
            parse_limits(field, config.limits, global_set);
        }
    }
    for (const auto& [name, field] : top_entries) {
        if (name == "instance") {
            const auto text = string_of(field);
            const bool valid =
                text && !text->empty() && text->size() <= 32 &&
                std::all_of(text->begin(), text->end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '_' || c == '-';
                });
            if (valid) {
                config.instance = *text;
            } else if (text) {
                report(field, "must be 1-32 characters from A-Z a-z 0-9 _ - (got " +
                                  quote(*text) + ")");
            }
        } else if (name == "listen") {
            parse_listen(field, config);
        } else if (name == "admin") {
            parse_admin(field, config);
        } else if (name == "drain_timeout") {
            if (const auto value = duration_of(field, Duration{0})) {
                config.drain_timeout = *value;
            }
        } else if (name == "drain_delay") {
            if (const auto value = duration_of(field, Duration{0})) {
                config.drain_delay = *value;
            }
        } else if (name == "log") {
            parse_log(field, config.log);
        } else if (name == "routes") {
            parse_routes(field, config);
        }
    }
    check_addresses(config);
    return config;
}

void Loader::parse_listen(const Field& field, Config& config) {
    const auto items = list_of(field);
    if (field.value.IsSequence() && items.empty()) {
        report(field, "at least one listener is required");
    }
    for (const Field& item : items) {
        const Entries keys = entries(item, kListenKeys);
        require(item, keys, std::array<std::string_view, 1>{"address"});
        Listener listener;
        bool valid = item.value.IsMap();
        Field address_field;
        for (const auto& [name, value] : keys) {
            if (name == "address") {
                address_field = value;
                std::string why;
                const auto text = string_of(value);
                const auto parsed = text ? parse_bind_address(*text, why) : std::nullopt;
                if (parsed) {
                    listener.host = parsed->first;
                    listener.port = parsed->second;
                } else {
                    if (text) {
                        report(value, why);
                    }
                    valid = false;
                }
            } else if (name == "tls") {
                listener.tls = parse_tls(value);
            }
        }
        const bool has_address = std::any_of(keys.begin(), keys.end(),
                                             [](const auto& k) { return k.first == "address"; });
        if (valid && has_address) {
            config.listen.push_back(listener);
            listen_fields_.push_back(address_field);
        }
    }
}

/// `listen[].tls`: the one-certificate short form `{cert, key}` or `certificates: [...]`, not
/// both; `min_version` "1.2" (default) or "1.3"; `client_ca` a readable PEM file.
Tls Loader::parse_tls(const Field& field) {
    Tls tls;
    const Entries keys = entries(field, kTlsKeys);
    const auto has = [&keys](std::string_view k) {
        return std::any_of(keys.begin(), keys.end(), [k](const auto& e) { return e.first == k; });
    };
    const bool short_form = has("cert") || has("key");
    if (short_form && has("certificates")) {
        report(field, "give either cert and key or certificates, not both");
    } else if (!has("certificates")) {
        require(field, keys, kCertificateKeys);
    }
    Certificate single;
    for (const auto& [name, value] : keys) {
        if (name == "cert" || name == "key") {
            (name == "cert" ? single.cert : single.key) = file_of(value).value_or("");
        } else if (name == "certificates") {
            const auto items = list_of(value);
            if (value.value.IsSequence() && items.empty()) {
                report(value, "must list at least one {cert, key}");
            }
            for (const auto& item : items) {
                const Entries pair = entries(item, kCertificateKeys);
                require(item, pair, kCertificateKeys);
                Certificate c;
                for (const auto& [k, v] : pair) {
                    (k == "cert" ? c.cert : c.key) = file_of(v).value_or("");
                }
                tls.certificates.push_back(std::move(c));
            }
        } else if (name == "min_version") {
            const auto text = string_of(value);
            if (text && *text != "1.2" && *text != "1.3") {
                report(value, "must be \"1.2\" or \"1.3\" (TLS versions below 1.2 are not offered)");
            } else if (text) {
                tls.min_version = *text;
            }
        } else if (name == "client_ca") {
            tls.client_ca = file_of(value).value_or("");
        }
    }
    if (short_form) {
        tls.certificates.insert(tls.certificates.begin(), std::move(single));
    }
    return tls;
}

/// "host:port", with brackets around an IPv6 host.
std::string show_address(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

/// Two sockets cannot bind the same address and port, nor an IPv4 address and 0.0.0.0 on the
/// same port (nor an IPv6 one and [::]). Port 0 asks the kernel for a free port: no conflict.
bool collide(const std::string& a, std::uint16_t a_port, const std::string& b,
             std::uint16_t b_port) {
    if (a_port == 0 || a_port != b_port) {
        return false;
    }
    const bool v6 = a.find(':') != std::string::npos;
    if (v6 != (b.find(':') != std::string::npos)) {
        return false;
    }
    const std::string any = v6 ? "::" : "0.0.0.0";
    return a == b || a == any || b == any;
}

/// Reports each listener, and the admin listener, that collides with an earlier listener.
void Loader::check_addresses(const Config& config) {
    for (std::size_t j = 0; j < config.listen.size(); ++j) {
        const Listener& b = config.listen[j];
        for (std::size_t i = 0; i < j; ++i) {
            const Listener& a = config.listen[i];
            if (collide(a.host, a.port, b.host, b.port)) {
                report(listen_fields_[j], show_address(b.host, b.port) + " conflicts with " +
                                              show_address(a.host, a.port) + " (" +
                                              listen_fields_[i].path + ")");
                break;
            }
        }
    }
    if (!config.admin || !admin_field_) {
        return;
    }
    for (std::size_t i = 0; i < config.listen.size(); ++i) {
        const Listener& a = config.listen[i];
        if (collide(a.host, a.port, config.admin->host, config.admin->port)) {
            report(*admin_field_, show_address(config.admin->host, config.admin->port) +
                                      " conflicts with " + show_address(a.host, a.port) + " (" +
                                      listen_fields_[i].path + ")");
            break;
        }
    }
}

void Loader::parse_log(const Field& field, Log& log) {
    for (const auto& [name, value] : entries(field, kLogKeys)) {
        const auto text = string_of(value);
        if (!text) {
            continue;
        }
        if (name == "format") {
            if (*text == "logfmt" || *text == "json") {
                log.format = *text;
            } else {
                report(value, "must be logfmt or json (got " + quote(*text) + ")");
            }
        } else if (*text == "debug" || *text == "info" || *text == "warn" || *text == "error") {
            log.level = *text;
        } else {
            report(value, "must be debug, info, warn or error (got " + quote(*text) + ")");
        }
    }
}

void Loader::parse_admin(const Field& field, Config& config) {
    const Entries keys = entries(field, kAdminKeys);
    require(field, keys, kAdminKeys);
    for (const auto& [name, value] : keys) {
        const auto text = string_of(value);
        std::string why;
        if (const auto parsed = text ? parse_bind_address(*text, why) : std::nullopt) {
            config.admin = Admin{parsed->first, parsed->second};
            admin_field_ = value;
        } else if (text) {
            report(value, why);
        }
    }
}

void Loader::parse_limits(const Field& field, Limits& limits, SetKeys& set) {
    for (const auto& [name, value] : entries(field, kLimitsKeys)) {
        if (name == "max_connections") {
            if (const auto v = integer_of(value, 1, kU32)) {
                limits.max_connections = static_cast<std::uint32_t>(*v);
            }
        } else if (name == "max_connections_per_ip") {
            if (const auto v = integer_of(value, 1, kU32)) {
                limits.max_connections_per_ip = static_cast<std::uint32_t>(*v);
            }
        } else if (name == "max_header_bytes") {
            // Below 1 KiB a browser's WebSocket handshake (cookies aside) does not fit.
            if (const auto v = size_of(value, 1024, kU32)) {
                limits.max_header_bytes = static_cast<std::uint32_t>(*v);
            }
        } else if (name == "max_headers") {
            if (const auto v = integer_of(value, 1, kU32)) {
                limits.max_headers = static_cast<std::uint32_t>(*v);
            }
        } else if (name == "header_timeout") {
            if (const auto v = duration_of(value, Duration{1})) {
                limits.header_timeout = *v;
            }
        } else {
            parse_route_limit(name, value, limits.route, set);
        }
    }
    check_combinations(limits.route, set);
}

bool Loader::parse_route_limit(const std::string& name, const Field& field, RouteLimits& limits,
                               SetKeys& set) {
    struct DurationKey {
        std::string_view name;
        Duration RouteLimits::*member;
        Duration min;
    };
    // Idle timeouts drive heartbeats (SPEC §4): below 100 ms they would be all pings.
    // A zero resume window would end every long-poll session between two polls.
    static constexpr std::array<DurationKey, 7> kDurations{{
        {"idle_timeout", &RouteLimits::idle_timeout, kMinIdleTimeout},
        {"backend_idle_timeout", &RouteLimits::backend_idle_timeout, kMinIdleTimeout},
        {"backend_connect_timeout", &RouteLimits::backend_connect_timeout, Duration{1}},
        {"backend_handshake_timeout", &RouteLimits::backend_handshake_timeout, Duration{1}},
        {"close_timeout", &RouteLimits::close_timeout, Duration{1}},
        {"message_timeout", &RouteLimits::message_timeout, kMinIdleTimeout},
        {"resume_window", &RouteLimits::resume_window, Duration{1000}},
    }};
    struct SizeKey {
        std::string_view name;
        std::uint64_t RouteLimits::*member;
    };
    static constexpr std::array<SizeKey, 4> kSizes{{
        {"max_message", &RouteLimits::max_message},
        {"max_post_body", &RouteLimits::max_post_body},
        {"outbound_queue", &RouteLimits::outbound_queue},
        {"replay_buffer", &RouteLimits::replay_buffer},
    }};
    struct CountKey {
        std::string_view name;
        std::uint32_t RouteLimits::*member;
    };
    static constexpr std::array<CountKey, 2> kCounts{{
        {"max_sessions", &RouteLimits::max_sessions},
        {"replay_messages", &RouteLimits::replay_messages},
    }};
    for (const auto& key : kDurations) {
        if (key.name == name) {
            if (const auto v = duration_of(field, key.min)) {
                limits.*key.member = *v;
                set.emplace(name, field);
            }
            return true;
        }
    }
    for (const auto& key : kSizes) {
        if (key.name == name) {
            if (const auto v = size_of(field, 1, kU64)) {
                limits.*key.member = *v;
                set.emplace(name, field);
            }
            return true;
        }
    }
    for (const auto& key : kCounts) {
        if (key.name == name) {
            if (const auto v = integer_of(field, 1, kU32)) {
                limits.*key.member = static_cast<std::uint32_t>(*v);
                set.emplace(name, field);
            }
            return true;
        }
    }
    if (name == "rate") {
        parse_rate(field, limits.rate);
        return true;
    }
    return false;
}

/// `rate` keys override one by one: a route may change `burst` and inherit the rate.
void Loader::parse_rate(const Field& field, Rate& rate) {
    for (const auto& [name, value] : entries(field, kRateKeys)) {
        if (name == "messages_per_second") {
            if (const auto v = rate_of(value)) {
                rate.messages_per_second = *v;
            }
        } else if (const auto v = integer_of(value, 1, kU32)) {
            rate.burst = static_cast<std::uint32_t>(*v);
        }
    }
}

/// Queues must hold one whole message: a single max_message message would otherwise overflow
/// the outbound queue (the session would be dropped for one legal message) or never fit in the
/// replay buffer (every resume would report a gap). A route is only blamed for values it sets.
void Loader::check_combinations(const RouteLimits& limits, const SetKeys& set) {
    const std::array<std::pair<std::string_view, std::uint64_t>, 2> queues{{
        {"outbound_queue", limits.outbound_queue},
        {"replay_buffer", limits.replay_buffer},
    }};
    const auto message = set.find("max_message");
    for (const auto& [queue_name, queue_size] : queues) {
        if (queue_size >= limits.max_message) {
            continue;
        }
        const auto queue = set.find(queue_name);
        if (queue != set.end()) {
            report(queue->second, format_size(queue_size) + " is smaller than max_message (" +
                                      format_size(limits.max_message) +
                                      "); it must hold at least one whole message");
        } else if (message != set.end()) {
            report(message->second, format_size(limits.max_message) + " is larger than " +
                                        std::string(queue_name) + " (" +
                                        format_size(queue_size) + "); raise " +
                                        std::string(queue_name) + " too");
        }
        // Neither set here: a route inherits both values from `limits`, which reported them;
        // in `limits` itself, two defaults are always consistent.
    }
}

void Loader::parse_routes(const Field& field, Config& config) {
    const auto items = list_of(field);
    if (field.value.IsSequence() && items.empty()) {
        report(field, "at least one route is required");
    }
    std::map<std::string, std::string, std::less<>> paths; // path -> first route's key path
    for (const Field& item : items) {
        Route route = parse_route(item, config.limits.route);
        // An empty path is missing or invalid, and already reported.
        const auto [first, inserted] = route.path.empty()
                                           ? std::make_pair(paths.end(), true)
                                           : paths.emplace(route.path, item.path);
        if (!inserted) {
            // Point at the duplicate's `path` value.
            for (auto it = item.value.begin(); it != item.value.end(); ++it) {
                if (it->first.Scalar() == "path") {
                    report(child(item, it->first, it->second),
                           "duplicate route path " + quote(route.path) + " (also " +
                               first->second + ")");
                    break;
                }
            }
            continue;
        }
        config.routes.push_back(std::move(route));
    }
}

Route Loader::parse_route(const Field& field, const RouteLimits& defaults) {
    const Entries keys = entries(field, kRouteKeys);
    require(field, keys, std::array<std::string_view, 2>{"path", "backend"});
    Route route;
    route.limits = defaults;
    SetKeys set;
    std::optional<Field> backend_tls;
    for (const auto& [name, value] : keys) {
        if (name == "path") {
            parse_route_path(value, route);
        } else if (name == "backend") {
            if (const auto text = string_of(value)) {
                std::string why;
                if (auto url = parse_backend_url(*text, why)) {
                    route.backend = std::move(*url);
                } else {
                    report(value, "invalid URL " + quote(*text) + ": " + why);
                }
            }
        } else if (name == "transports") {
            parse_transports(value, route.transports);
        } else if (name == "origins") {
            route.origins = parse_origins(value);
        } else if (name == "require_origin") {
            route.require_origin = bool_of(value).value_or(false);
        } else if (name == "subprotocols") {
            route.subprotocols = parse_tokens(value, false);
        } else if (name == "forward_headers") {
            route.forward_headers = parse_tokens(value, true);
        } else if (name == "backend_tls") {
            backend_tls = value;
            parse_backend_tls(value, route.backend_tls);
        } else {
            parse_route_limit(name, value, route.limits, set);
        }
    }
    if (backend_tls && !route.backend.text.empty() && !route.backend.tls) {
        report(*backend_tls, "applies to wss:// backends only (backend is " +
                                 quote(route.backend.text) + ")");
    }
    check_combinations(route.limits, set);
    return route;
}

void Loader::parse_backend_tls(const Field& field, BackendTls& tls) {
    const Entries keys = entries(field, kBackendTlsKeys);
    bool has_cert = false;
    bool has_key = false;
    for (const auto& [name, value] : keys) {
        if (name == "ca") {
            tls.ca = file_of(value).value_or("");
        } else if (name == "server_name") {
            if (const auto text = string_of(value)) {
                if (text->empty() || text->find_first_of(" /:@[]") != std::string::npos) {
                    report(value, "must be a host name (got " + quote(*text) + ")");
                } else {
                    tls.server_name = *text;
                }
            }
        } else if (name == "cert") {
            has_cert = true;
            tls.cert = file_of(value).value_or("");
        } else if (name == "key") {
            has_key = true;
            tls.key = file_of(value).value_or("");
        } else if (name == "verify") {
            tls.verify = bool_of(value).value_or(true);
        }
    }
    if (has_cert != has_key) {
        report(field, "cert and key go together");
    }
}

void Loader::parse_route_path(const Field& field, Route& route) {
    const auto text = string_of(field);
    if (!text) {
        return;
    }
    std::string why;
    if (text->empty() || text->front() != '/') {
        why = "must start with '/' (got " + quote(*text) + ")";
    } else if (text->find_first_of("?#") != std::string::npos) {
        why = "a route path has no query or fragment";
    } else if (has_dot_segment(*text)) {
        why = "must not contain \".\" or \"..\" segments";
    } else {
        // Same character rules as a backend URL's path.
        const auto url = parse_backend_url("ws://x" + *text, why);
        if (url) {
            why.clear();
        }
    }
    if (!why.empty()) {
        report(field, why);
        return;
    }
    route.path = *text;
    route.prefix = text->back() == '/';
}

void Loader::parse_transports(const Field& field, Transports& transports) {
    const auto items = list_of(field);
    if (!field.value.IsSequence()) {
        return;
    }
    if (items.empty()) {
        report(field, "at least one transport is required (websocket, sse, longpoll)");
        return;
    }
    Transports chosen{false, false, false};
    for (const Field& item : items) {
        const auto name = string_of(item);
        if (!name) {
            continue;
        }
        bool* flag = *name == "websocket" ? &chosen.websocket
                     : *name == "sse"     ? &chosen.sse
                     : *name == "longpoll" ? &chosen.longpoll
                                          : nullptr;
        if (flag == nullptr) {
            report(item, "unknown transport " + quote(*name) + " (use " +
                             join_keys(kTransportNames) + ")");
        } else if (*flag) {
            report(item, "duplicate transport " + quote(*name));
        } else {
            *flag = true;
        }
    }
    transports = chosen;
}

std::vector<std::string> Loader::parse_origins(const Field& field) {
    std::vector<std::string> out;
    for (const Field& item : list_of(field)) {
        const auto text = string_of(item);
        if (!text) {
            continue;
        }
        std::string why;
        if (auto origin = parse_origin(*text, why)) {
            out.push_back(std::move(*origin));
        } else {
            report(item, "invalid origin " + quote(*text) + ": " + why);
        }
    }
    return out;
}

/// Subprotocol names or header names: RFC 7230 tokens, no duplicates (header names compare
/// case-insensitively). Header names must not be hop-by-hop or written by the proxy itself.
std::vector<std::string> Loader::parse_tokens(const Field& field, bool header_names) {
    std::vector<std::string> out;
    std::vector<std::string> seen;
    for (const Field& item : list_of(field)) {
        const auto text = string_of(item);
        if (!text) {
            continue;
        }
        const std::string key = header_names ? lower(*text) : *text;
        if (!is_token(*text)) {
            report(item, quote(*text) + " is not a valid " +
                             (header_names ? "header name" : "subprotocol") +
                             " (RFC 7230 token)");
        } else if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
            report(item, "duplicate entry " + quote(*text));
        } else if (header_names && contains(kHopByHop, key)) {
            report(item, quote(*text) + " is a hop-by-hop header and cannot be forwarded");
        } else if (header_names &&
                   (contains(kProxyOwned, key) || key.starts_with("sec-websocket-"))) {
            report(item, quote(*text) + " is set by the proxy and cannot be forwarded");
        } else {
            seen.push_back(key);
            out.push_back(*text);
        }
    }
    return out;
}

/// Records where documents start, and nothing else. yaml-cpp 0.7's LoadAll() loops forever,
/// allocating, on input such as a lone "," (jbeder/yaml-cpp#1040, fixed upstream by #1319), so
/// the document count is taken with at most two HandleNextDocument() calls instead.
class DocumentStarts final : public YAML::EventHandler {
  public:
    std::vector<YAML::Mark> starts;

    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

Result<Config> load_parsed(std::string_view text, const std::string& name,
                           const std::filesystem::path& base_dir) {
    Loader loader(name, base_dir);
    Config config;
    try {
        const std::string copy(text);
        std::istringstream stream(copy);
        YAML::Parser parser(stream);
        DocumentStarts documents;
        if (parser.HandleNextDocument(documents) && parser.HandleNextDocument(documents) &&
            documents.starts.size() > 1) {
            const YAML::Mark& second = documents.starts[1];
            if (second.pos == documents.starts[0].pos) {
                // The parser is stuck on a token it cannot place (the #1040 case).
                const auto at = static_cast<std::size_t>(std::max(second.pos, 0));
                loader.report(second, "", "invalid YAML: unexpected " +
                                              quote(std::string_view(copy).substr(at, 1)));
                return proxy::core::fail(Code::Config, Side::Config, loader.summary());
            }
            loader.report(second, "", "only one YAML document is allowed per file");
        }
        config = loader.run(YAML::Load(copy));
    } catch (const YAML::Exception& e) {
        loader.report(e.mark, "", "invalid YAML: " + e.msg);
    } catch (const std::exception& e) {
        loader.report(YAML::Mark{}, "", std::string("cannot load: ") + e.what());
    }
    std::string problems = loader.summary();
    if (!problems.empty()) {
        return proxy::core::fail(Code::Config, Side::Config, std::move(problems));
    }
    return config;
}

} // namespace

Result<Config> load_config(const std::string& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
        return proxy::core::fail(Code::Config, Side::Config,
                                 path + ": cannot read configuration file: not a regular file");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return proxy::core::fail(Code::Config, Side::Config,
                                 path + ": cannot read configuration file: " +
                                     std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        return proxy::core::fail(Code::Config, Side::Config,
                                 path + ": cannot read configuration file: read error");
    }
    return load_parsed(text.str(), path, std::filesystem::path(path).parent_path());
}

Result<Config> load_config_string(std::string_view text, const std::string& name) {
    return load_parsed(text, name, {});
}

const Route* match_route(const Config& config, std::string_view path) {
    if (path.empty() || path.front() != '/' || has_dot_segment(path)) {
        return nullptr;
    }
    const Route* best = nullptr;
    for (const Route& route : config.routes) {
        const bool hit = route.prefix ? path.starts_with(route.path) : path == route.path;
        if (hit && (best == nullptr || route.path.size() > best->path.size())) {
            best = &route;
        }
    }
    return best;
}

} // namespace config
