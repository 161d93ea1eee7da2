// Tests for proxy/metrics.cc: counters, gauges, the registry of metric families and their
// Prometheus text exposition (format 0.0.4: `# HELP` and `# TYPE` once per family, before its
// samples, each family's samples in one group). tests/e2e/metrics.test.mjs runs
// `promtool check metrics` on a live proxy's /metrics.

#include "proxy/metrics.h"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace proxy {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto nl = text.find('\n', start);
        REQUIRE(nl != std::string::npos);  // every line ends in '\n'
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

std::string family_of(const std::string& sample_line) {
    return sample_line.substr(0, sample_line.find_first_of("{ "));
}

// Checks the exposition rules Prometheus enforces on a scrape: a family's TYPE line comes
// once, before its samples, and its samples are contiguous.
void check_well_formed(const std::string& text) {
    std::set<std::string> typed;
    std::set<std::string> finished;
    std::string current;
    for (const auto& line : lines_of(text)) {
        INFO("line: ", line);
        if (line.starts_with("# HELP ")) {
            const std::string rest = line.substr(7);
            const std::string name = rest.substr(0, rest.find(' '));
            CHECK(find_metric(name) != nullptr);
            CHECK(typed.count(name) == 0);  // HELP comes before TYPE
            continue;
        }
        if (line.starts_with("# TYPE ")) {
            const std::string rest = line.substr(7);
            const std::string name = rest.substr(0, rest.find(' '));
            CHECK(typed.insert(name).second);  // a second TYPE line for a name is an error
            if (!current.empty()) {
                finished.insert(current);
            }
            current = name;
            continue;
        }
        CHECK(family_of(line) == current);     // a sample belongs to the family just typed
        CHECK(finished.count(current) == 0);
    }
}


/// The render() of an empty Metrics: every unlabelled family at its initial value.
std::string baseline() {
    return Metrics().render();
}

/// `text` without the lines of the unlabelled families render() always shows.
std::string without_baseline(const std::string& text) {
    std::set<std::string> unlabelled;
    for (const MetricInfo& info : metric_registry()) {
        if (info.labels.empty() && !info.optional) {
            unlabelled.insert(std::string(info.name));
        }
    }
    std::string out;
    for (const auto& line : lines_of(text)) {
        std::string name = line.starts_with("# ") ? line.substr(7, line.find(' ', 7) - 7)
                                                  : family_of(line);
        if (unlabelled.count(name) == 0) {
            out.append(line).append("\n");
        }
    }
    return out;
}

TEST_CASE("Metrics: counters add up per name and label set, absent ones read 0") {
    Metrics m;
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "accepted"}}) == 0);
    m.inc("wsbridge_upgrades_total", {{"result", "accepted"}});
    m.inc("wsbridge_upgrades_total", {{"result", "accepted"}});
    m.inc("wsbridge_upgrades_total", {{"result", "rejected"}}, 5);
    m.inc("wsbridge_connections_accepted_total");
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "accepted"}}) == 2);
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "rejected"}}) == 5);
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "other"}}) == 0);
    // No labels: the whole family.
    CHECK(m.counter("wsbridge_upgrades_total") == 7);
    CHECK(m.counter("wsbridge_connections_accepted_total") == 1);
    // A counter is not a gauge.
    CHECK(m.gauge("wsbridge_connections_accepted_total") == 0);
}

TEST_CASE("Metrics: lookups sum every series whose labels include the given ones") {
    Metrics m;
    m.gauge_add("wsbridge_connections", 2, {{"route", "/a"}, {"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", 3, {{"route", "/b"}, {"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", 4, {{"route", "/b"}, {"transport", "sse"}});
    m.gauge_add("wsbridge_connections", 5, {{"route", "/b,transport=\"sse\""}, {"transport", "x"}});
    CHECK(m.gauge("wsbridge_connections", {{"transport", "websocket"}}) == 5);
    CHECK(m.gauge("wsbridge_connections", {{"route", "/b"}}) == 7);
    CHECK(m.gauge("wsbridge_connections", {{"transport", "sse"}}) == 4);
    CHECK(m.gauge("wsbridge_connections", {{"route", "/b,transport=\"sse\""}}) == 5);
    CHECK(m.gauge("wsbridge_connections", {{"route", ""}}) == 0);
    CHECK(m.gauge("wsbridge_connections") == 14);
    CHECK(Metrics::label_of("x{a=\"1\",b=\"q\\\"r\",c=\"3\"}", "c") == "3");
    CHECK(Metrics::label_of("x{a=\"1\",b=\"q\\\"r\",c=\"3\"}", "b") == "q\\\"r");
    CHECK(Metrics::label_of("x{a=\"1\"}", "b").empty());
}

TEST_CASE("Metrics: a cell is the live counter a connection adds to") {
    Metrics m;
    std::uint64_t& cell = m.cell("wsbridge_messages_total", {{"route", "/a"}, {"direction", "in"}});
    ++cell;
    m.inc("wsbridge_messages_total", {{"route", "/b"}, {"direction", "in"}});  // may rebalance
    cell += 2;
    CHECK(m.counter("wsbridge_messages_total", {{"route", "/a"}}) == 3);
}

TEST_CASE("Metrics: gauges go up and down and may be negative") {
    Metrics m;
    m.gauge_add("wsbridge_connections", 3, {{"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", -1, {{"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", -1, {{"transport", "sse"}});
    CHECK(m.gauge("wsbridge_connections", {{"transport", "websocket"}}) == 2);
    CHECK(m.gauge("wsbridge_connections", {{"transport", "sse"}}) == -1);
    m.gauge_set("wsbridge_draining", 1);
    CHECK(m.gauge("wsbridge_draining") == 1);
    // Unlabelled families read their initial value until set.
    CHECK(Metrics().gauge("wsbridge_config_last_reload_successful") == 1);
}

TEST_CASE("metric registry: sorted, unique, counters end in _total, gauges do not") {
    std::string_view last;
    for (const MetricInfo& info : metric_registry()) {
        INFO(info.name);
        CHECK(info.name > last);
        last = info.name;
        CHECK(info.name.starts_with("wsbridge_"));
        CHECK(std::regex_match(std::string(info.name), std::regex("[a-z_]+")));
        CHECK(info.name.ends_with("_total") == (info.type == MetricType::Counter));
        CHECK(!info.help.empty());
        CHECK(info.help.find_first_of("\\\n") == std::string_view::npos);
        CHECK(find_metric(info.name) == &info);
    }
    CHECK(find_metric("wsbridge_nope_total") == nullptr);
}

// Every metric name the proxy's code passes to Metrics must be registered with the type its
// call implies, or it would be rendered without HELP (or with the wrong TYPE). This reads the
// sources, so a new name cannot slip past it the way a debug-only assert could in a release
// build.
TEST_CASE("metric registry: every name used in proxy/ and transports/ is registered") {
    namespace fs = std::filesystem;
    const fs::path root(WSBRIDGE_SOURCE_DIR);
    const std::regex literal("\"(wsbridge_[a-z0-9_]*)\"");
    const std::regex call(
        R"((inc|counter_set|cell|gauge_add|gauge_set)\(\s*"(wsbridge_[a-z0-9_]*)\")");
    std::size_t names = 0;
    std::size_t calls = 0;
    for (const char* dir : {"proxy", "transports"}) {
        for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
            const auto ext = entry.path().extension();
            if (!entry.is_regular_file() || (ext != ".cc" && ext != ".h")) {
                continue;
            }
            if (entry.path().filename() == "metrics.cc") {
                continue;  // the registry itself
            }
            std::ifstream in(entry.path());
            std::stringstream buffer;
            buffer << in.rdbuf();
            const std::string text = buffer.str();
            for (std::sregex_iterator it(text.begin(), text.end(), literal), end; it != end;
                 ++it) {
                INFO(entry.path().string(), ": ", (*it)[1].str());
                CHECK(find_metric((*it)[1].str()) != nullptr);
                ++names;
            }
            for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it) {
                const std::string fn = (*it)[1].str();
                const MetricInfo* info = find_metric((*it)[2].str());
                INFO(entry.path().string(), ": ", fn, "(", (*it)[2].str(), ")");
                REQUIRE(info != nullptr);
                CHECK((info->type == MetricType::Gauge) == fn.starts_with("gauge"));
                ++calls;
            }
        }
    }
    // The scan found the code (a wrong root would pass vacuously).
    CHECK(names >= 40);
    CHECK(calls >= 30);
}

TEST_CASE("Metrics: labels are keyed in the order given") {
    Metrics m;
    m.inc("wsbridge_bytes_total", {{"transport", "websocket"}, {"direction", "in"}}, 10);
    CHECK(m.counter("wsbridge_bytes_total", {{"transport", "websocket"}, {"direction", "in"}}) ==
          10);
    CHECK(without_baseline(m.render()) ==
          "# HELP wsbridge_bytes_total Message payload bytes relayed; direction in = client to "
          "backend. Added when a connection or session ends.\n"
          "# TYPE wsbridge_bytes_total counter\n"
          "wsbridge_bytes_total{transport=\"websocket\",direction=\"in\"} 10\n");
}

TEST_CASE("Metrics::render writes HELP and TYPE once per family, then its samples") {
    const std::string empty = baseline();
    check_well_formed(empty);
    // Every unlabelled family shows from the start, at its initial value.
    CHECK(empty.find("\nwsbridge_draining 0\n") != std::string::npos);
    CHECK(empty.find("\nwsbridge_config_last_reload_successful 1\n") != std::string::npos);
    CHECK(empty.find("wsbridge_connections{") == std::string::npos);
    // Optional families stay absent until set (io_uring batching off).
    CHECK(empty.find("wsbridge_batched_sends_total") == std::string::npos);

    Metrics m;
    m.inc("wsbridge_upgrades_total", {{"result", "rejected"}});
    m.inc("wsbridge_upgrades_total", {{"result", "accepted"}}, 2);
    m.inc("wsbridge_connections_accepted_total", {}, 7);
    m.gauge_add("wsbridge_connections", 2, {{"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", -1, {{"transport", "sse"}});
    const std::string text = m.render();
    check_well_formed(text);
    CHECK(text.find("# HELP wsbridge_connections_accepted_total Client TCP connections "
                    "accepted.\n"
                    "# TYPE wsbridge_connections_accepted_total counter\n"
                    "wsbridge_connections_accepted_total 7\n") != std::string::npos);
    CHECK(without_baseline(text) ==
          "# HELP wsbridge_connections Live client connections: WebSocket relays and session "
          "WebSockets, SSE streams and held polls.\n"
          "# TYPE wsbridge_connections gauge\n"
          "wsbridge_connections{transport=\"sse\"} -1\n"
          "wsbridge_connections{transport=\"websocket\"} 2\n"
          "# HELP wsbridge_upgrades_total WebSocket upgrade requests, by result (accepted, "
          "rejected).\n"
          "# TYPE wsbridge_upgrades_total counter\n"
          "wsbridge_upgrades_total{result=\"accepted\"} 2\n"
          "wsbridge_upgrades_total{result=\"rejected\"} 1\n");
}

TEST_CASE("Metrics::render escapes quotes, backslashes and newlines in label values") {
    Metrics m;
    m.inc("wsbridge_closes_total", {{"reason", "say \"bye\"\\now\nplease"}});
    CHECK(without_baseline(m.render()).ends_with(
        "# TYPE wsbridge_closes_total counter\n"
        "wsbridge_closes_total{reason=\"say \\\"bye\\\"\\\\now\\nplease\"} 1\n"));
    // Lookups use the same escaping.
    CHECK(m.counter("wsbridge_closes_total", {{"reason", "say \"bye\"\\now\nplease"}}) == 1);
}

TEST_CASE("Metrics::render keeps large counter values exact") {
    Metrics m;
    m.inc("wsbridge_bytes_total", {}, 18'446'744'073'709'551'615ULL);
    CHECK(without_baseline(m.render()).ends_with("# TYPE wsbridge_bytes_total counter\n"
                                                 "wsbridge_bytes_total 18446744073709551615\n"));
}

// Regression: render() walked the maps in key order, where `x{...}` sorts after every `x_...`
// and `xa...` name, so a family with both an unlabelled and a labelled sample was split around
// another family and got two TYPE lines, which Prometheus rejects for the whole scrape.
TEST_CASE("regression: Metrics::render groups each family under a single TYPE line") {
    Metrics m;
    m.gauge_add("wsbridge_sessions", 3);
    m.gauge_add("wsbridge_sessions", 1, {{"route", "/chat"}});
    m.inc("wsbridge_sessions_closed_total", {}, 2);
    m.inc("wsbridge_session_resets_total");
    m.inc("wsbridge_session_resets_total", {{"reason", "origin"}});
    m.inc("wsbridge_session_resumes_total", {}, 4);
    const std::string text = without_baseline(m.render());
    check_well_formed(text);
    auto pos = [&text](std::string_view s) { return text.find(s); };
    CHECK(pos("wsbridge_session_resets_total 1\nwsbridge_session_resets_total{reason=\"origin\"} "
              "1\n") != std::string::npos);
    CHECK(pos("wsbridge_sessions 3\nwsbridge_sessions{route=\"/chat\"} 1\n# HELP "
              "wsbridge_sessions_closed_total") != std::string::npos);
}

} // namespace
} // namespace proxy
