// Fuzz target config_load: config::load_config_string (config/config.h) and the value parsers
// it is built from. The input is the YAML text itself (no settings prefix), at most 4 KiB:
// yaml-cpp is not ours to fuzz, and bigger documents only slow it down (inputs above the cap
// are skipped; scripts/fuzz.sh also passes -max_len=4096). load_config_string never uses
// yaml-cpp 0.7's LoadAll, which loops forever on some malformed flow input
// (jbeder/yaml-cpp#1040); a hang here would be reported by libFuzzer's -timeout.
//
// Invariants:
//   - loading is deterministic: two loads give the same config or the same error text;
//   - a failure is Code::Config from Side::Config, every line naming the file
//     ("fuzz.yaml:line:col: ..." or "fuzz.yaml: N more problems not shown");
//   - a loaded config is usable: at least one listener and route, each route path starts with
//     '/', `prefix` is "ends with '/'", match_route finds each route by its own path, the
//     backend URL re-parses to the same fields, origins are normalised (parse_origin is
//     idempotent on them), and every duration and size survives format_*/parse_*;
//   - on the whole text and on each line (and each value after "key: "): parse_duration and
//     parse_size round-trip through format_*, parse_backend_url gives a usable URL or a reason,
//     parse_origin is idempotent, and match_route only returns a route whose path prefixes the
//     (query-free) path.

#include "config/config.h"
#include "proxy/core/result.h"
#include "tests/fuzz/fuzz_support.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t kMaxInput = 4096;
const std::string kName = "fuzz.yaml";

void check_duration(config::Duration d) {
    FUZZ_CHECK(d.count() >= 0);
    const std::string text = config::format_duration(d);
    const auto back = config::parse_duration(text);
    FUZZ_CHECK_MSG(back && *back == d, text);
}

void check_size(std::uint64_t v) {
    const std::string text = config::format_size(v);
    const auto back = config::parse_size(text);
    FUZZ_CHECK_MSG(back && *back == v, text);
}

void check_url(const config::BackendUrl& u) {
    FUZZ_CHECK(!u.host.empty() && u.port != 0);
    FUZZ_CHECK(!u.path.empty() && u.path.front() == '/');
    FUZZ_CHECK(!u.host_header.empty());
    std::string why;
    const auto again = config::parse_backend_url(u.text, why);
    FUZZ_CHECK_MSG(again.has_value(), u.text + ": " + why);
    FUZZ_CHECK(again->tls == u.tls && again->host == u.host && again->port == u.port &&
               again->path == u.path && again->host_header == u.host_header);
}

void check_origin_normalised(const std::string& origin) {
    std::string why;
    const auto again = config::parse_origin(origin, why);
    FUZZ_CHECK_MSG(again && *again == origin, fuzz::escape(origin) + ": " + why);
}

void check_route_limits(const config::RouteLimits& l) {
    for (const config::Duration d :
         {l.idle_timeout, l.backend_idle_timeout, l.backend_connect_timeout,
          l.backend_handshake_timeout, l.close_timeout, l.resume_window}) {
        check_duration(d);
    }
    for (const std::uint64_t v :
         {l.max_message, l.max_post_body, l.outbound_queue, l.replay_buffer}) {
        check_size(v);
    }
}

void check_config(const config::Config& c) {
    FUZZ_CHECK(!c.listen.empty() && !c.routes.empty());
    FUZZ_CHECK(c.source == kName);
    check_duration(c.drain_timeout);
    check_duration(c.limits.header_timeout);
    check_route_limits(c.limits.route);
    for (const auto& route : c.routes) {
        FUZZ_CHECK(!route.path.empty() && route.path.front() == '/');
        FUZZ_CHECK(route.prefix == (route.path.back() == '/'));
        const config::Route* found = config::match_route(c, route.path);
        FUZZ_CHECK_MSG(found != nullptr && found->path == route.path, fuzz::escape(route.path));
        check_url(route.backend);
        for (const auto& origin : route.origins) {
            check_origin_normalised(origin);
        }
        check_route_limits(route.limits);
    }
}

std::string describe(const proxy::core::Result<config::Config>& r) {
    if (!r) {
        return "error: " + r.error().context;
    }
    std::string out = std::to_string(r->listen.size()) + " listeners";
    for (const auto& route : r->routes) {
        out += "\n" + route.path + " -> " + route.backend.text;
    }
    return out;
}

// Checks the value parsers on one candidate string, and match_route on it as a path.
void check_value(std::string_view text, const config::Config* loaded) {
    if (const auto d = config::parse_duration(text)) {
        check_duration(*d);
    }
    if (const auto v = config::parse_size(text)) {
        check_size(*v);
    }
    std::string why;
    if (const auto u = config::parse_backend_url(text, why)) {
        FUZZ_CHECK(u->text == text);
        check_url(*u);
    } else {
        FUZZ_CHECK(!why.empty());
    }
    why.clear();
    if (const auto o = config::parse_origin(text, why)) {
        check_origin_normalised(*o);
    } else {
        FUZZ_CHECK(!why.empty());
    }
    if (loaded != nullptr) {
        const std::string_view path = text.substr(0, text.find('?'));
        if (const config::Route* r = config::match_route(*loaded, path)) {
            FUZZ_CHECK(r->prefix ? path.starts_with(r->path) : path == r->path);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > kMaxInput) {
        return 0;
    }
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto first = config::load_config_string(text, kName);
    const auto second = config::load_config_string(text, kName);
    FUZZ_CHECK_MSG(describe(first) == describe(second), "loading is not deterministic");
    if (first) {
        check_config(*first);
    } else {
        FUZZ_CHECK(first.error().code == proxy::core::Code::Config);
        FUZZ_CHECK(first.error().side == proxy::core::Side::Config);
        const std::string& context = first.error().context;
        FUZZ_CHECK(!context.empty());
        for (std::size_t line = 0; line < context.size();) {
            FUZZ_CHECK_MSG(context.compare(line, kName.size() + 1, kName + ":") == 0,
                           fuzz::escape(context));
            const std::size_t next = context.find('\n', line);
            line = next == std::string::npos ? context.size() : next + 1;
        }
    }

    const config::Config* loaded = first ? &*first : nullptr;
    check_value(text, loaded);
    std::size_t lines = 0;
    for (std::size_t start = 0; start < text.size() && lines < 64; ++lines) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        const std::string_view line = text.substr(start, end - start);
        check_value(line, loaded);
        if (const std::size_t colon = line.find(": "); colon != std::string_view::npos) {
            check_value(line.substr(colon + 2), loaded);
        }
        start = end + 1;
    }
    return 0;
}
