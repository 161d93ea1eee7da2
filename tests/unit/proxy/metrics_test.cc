// Tests for proxy/metrics.cc: counters, gauges and their Prometheus text exposition (format
// 0.0.4: one `# TYPE` line per metric family, each family's samples in one group).

#include "proxy/metrics.h"

#include <doctest/doctest.h>
#include <set>
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

TEST_CASE("Metrics: counters add up per name and label set, absent ones read 0") {
    Metrics m;
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "accepted"}}) == 0);
    m.inc("wsbridge_upgrades_total", {{"result", "accepted"}});
    m.inc("wsbridge_upgrades_total", {{"result", "accepted"}});
    m.inc("wsbridge_upgrades_total", {{"result", "rejected"}}, 5);
    m.inc("wsbridge_connections_accepted_total");
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "accepted"}}) == 2);
    CHECK(m.counter("wsbridge_upgrades_total", {{"result", "rejected"}}) == 5);
    CHECK(m.counter("wsbridge_upgrades_total") == 0);
    CHECK(m.counter("wsbridge_connections_accepted_total") == 1);
    // A counter is not a gauge.
    CHECK(m.gauge("wsbridge_connections_accepted_total") == 0);
}

TEST_CASE("Metrics: gauges go up and down and may be negative") {
    Metrics m;
    m.gauge_add("wsbridge_connections", 3, {{"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", -1, {{"transport", "websocket"}});
    m.gauge_add("wsbridge_sessions", -2);
    CHECK(m.gauge("wsbridge_connections", {{"transport", "websocket"}}) == 2);
    CHECK(m.gauge("wsbridge_connections", {{"transport", "sse"}}) == 0);
    CHECK(m.gauge("wsbridge_sessions") == -2);
    CHECK(m.counter("wsbridge_sessions") == 0);
}

TEST_CASE("Metrics: labels are keyed in the order given") {
    Metrics m;
    m.inc("wsbridge_bytes_total", {{"transport", "websocket"}, {"direction", "in"}}, 10);
    CHECK(m.counter("wsbridge_bytes_total", {{"transport", "websocket"}, {"direction", "in"}}) ==
          10);
    CHECK(m.render() == "# TYPE wsbridge_bytes_total counter\n"
                        "wsbridge_bytes_total{transport=\"websocket\",direction=\"in\"} 10\n");
}

TEST_CASE("Metrics::render writes the exact Prometheus text, counters then gauges") {
    Metrics m;
    CHECK(m.render().empty());
    m.inc("wsbridge_upgrades_total", {{"result", "rejected"}});
    m.inc("wsbridge_upgrades_total", {{"result", "accepted"}}, 2);
    m.inc("wsbridge_connections_accepted_total", {}, 7);
    m.gauge_add("wsbridge_connections", 2, {{"transport", "websocket"}});
    m.gauge_add("wsbridge_connections", -1, {{"transport", "sse"}});
    m.gauge_add("wsbridge_sessions", 0);
    const std::string text = m.render();
    CHECK(text == "# TYPE wsbridge_connections_accepted_total counter\n"
                  "wsbridge_connections_accepted_total 7\n"
                  "# TYPE wsbridge_upgrades_total counter\n"
                  "wsbridge_upgrades_total{result=\"accepted\"} 2\n"
                  "wsbridge_upgrades_total{result=\"rejected\"} 1\n"
                  "# TYPE wsbridge_connections gauge\n"
                  "wsbridge_connections{transport=\"sse\"} -1\n"
                  "wsbridge_connections{transport=\"websocket\"} 2\n"
                  "# TYPE wsbridge_sessions gauge\n"
                  "wsbridge_sessions 0\n");
    check_well_formed(text);
}

TEST_CASE("Metrics::render escapes quotes, backslashes and newlines in label values") {
    Metrics m;
    m.inc("wsbridge_closes_total", {{"reason", "say \"bye\"\\now\nplease"}});
    CHECK(m.render() == "# TYPE wsbridge_closes_total counter\n"
                        "wsbridge_closes_total{reason=\"say \\\"bye\\\"\\\\now\\nplease\"} 1\n");
    // Lookups use the same escaping.
    CHECK(m.counter("wsbridge_closes_total", {{"reason", "say \"bye\"\\now\nplease"}}) == 1);
}

TEST_CASE("Metrics::render keeps large counter values exact") {
    Metrics m;
    m.inc("wsbridge_bytes_total", {}, 18'446'744'073'709'551'615ULL);
    CHECK(m.render() == "# TYPE wsbridge_bytes_total counter\n"
                        "wsbridge_bytes_total 18446744073709551615\n");
}

// Regression: render() walked the maps in key order, where `x{...}` sorts after every `x_...`
// and `xa...` name, so a family with both an unlabelled and a labelled sample was split around
// another family and got two TYPE lines, which Prometheus rejects for the whole scrape.
TEST_CASE("regression: Metrics::render groups each family under a single TYPE line") {
    Metrics m;
    m.gauge_add("wsbridge_sessions", 3);
    m.gauge_add("wsbridge_sessions", 1, {{"route", "/chat"}});
    m.gauge_add("wsbridge_sessions_replaying", 2);
    m.inc("wsbridge_rejections_total");
    m.inc("wsbridge_rejections_total", {{"reason", "origin"}});
    m.inc("wsbridge_rejections_totals", {}, 4);
    m.inc("wsbridge_rejections_total_x", {}, 5);
    const std::string text = m.render();
    check_well_formed(text);
    CHECK(text == "# TYPE wsbridge_rejections_total counter\n"
                  "wsbridge_rejections_total 1\n"
                  "wsbridge_rejections_total{reason=\"origin\"} 1\n"
                  "# TYPE wsbridge_rejections_total_x counter\n"
                  "wsbridge_rejections_total_x 5\n"
                  "# TYPE wsbridge_rejections_totals counter\n"
                  "wsbridge_rejections_totals 4\n"
                  "# TYPE wsbridge_sessions gauge\n"
                  "wsbridge_sessions 3\n"
                  "wsbridge_sessions{route=\"/chat\"} 1\n"
                  "# TYPE wsbridge_sessions_replaying gauge\n"
                  "wsbridge_sessions_replaying 2\n");
}

} // namespace
} // namespace proxy
