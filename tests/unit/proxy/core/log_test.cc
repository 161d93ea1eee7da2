// proxy/core/log: the JSON line format. Lines go to stderr, so the test points fd 2 at a file
// while it logs and reads the lines back.

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "proxy/core/log.h"

namespace {

using proxy::core::LogFormat;
using proxy::core::LogLevel;

/// Runs `body` with stderr redirected to a temporary file; returns what it wrote.
template <class F>
std::string capture_stderr(F body) {
    char name[] = "/tmp/wsbridge-log-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    std::fflush(stderr);
    const int saved = dup(2);
    dup2(fd, 2);
    body();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    std::ifstream in(name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    unlink(name);
    return text.str();
}

} // namespace

TEST_CASE("log: JSON lines escape every value and write numbers as numbers") {
    const std::string out = capture_stderr([] {
        proxy::core::set_log_format(LogFormat::Json);
        proxy::core::log(LogLevel::Warn, "test_event",
                         {{"text", "a \"quoted\" \\ line\nnext\x01"},
                          {"bytes", std::string("ok\xff\xc3(\xe2\x82\xac", 8)},
                          {"count", std::uint64_t{42}},
                          {"delta", -7},
                          {"digits", "123"}});
        proxy::core::set_log_format(LogFormat::Logfmt);
        proxy::core::log(LogLevel::Warn, "back_to_logfmt", {{"count", 1}});
    });
    const auto nl = out.find('\n');
    REQUIRE(nl != std::string::npos);
    const std::string json = out.substr(0, nl);
    const std::string ts_prefix = "{\"ts\":\"";
    REQUIRE(json.rfind(ts_prefix, 0) == 0);
    const auto after_ts = json.find("\",\"level\"");
    REQUIRE(after_ts != std::string::npos);
    CHECK(after_ts - ts_prefix.size() == 24);  // 2026-12-07T20:59:37.168Z
    CHECK(json.substr(after_ts) ==
          "\",\"level\":\"warn\",\"event\":\"test_event\","
          "\"text\":\"a \\\"quoted\\\" \\\\ line\\nnext\\u0001\","
          "\"bytes\":\"ok\xEF\xBF\xBD\xEF\xBF\xBD(\xE2\x82\xAC\","
          "\"count\":42,\"delta\":-7,\"digits\":\"123\"}");
    const std::string rest = out.substr(nl + 1);
    CHECK(rest.rfind("ts=", 0) == 0);
    CHECK(rest.find(" level=warn event=back_to_logfmt count=1\n") != std::string::npos);
}
