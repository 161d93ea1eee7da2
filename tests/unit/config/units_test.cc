// Duration and size literals (config/units.cc).

#include <doctest/doctest.h>

#include <limits>

#include "config/config.h"

namespace {

using config::Duration;
using config::format_duration;
using config::format_size;
using config::parse_duration;
using config::parse_size;

TEST_CASE("parse_duration: every unit") {
    CHECK(parse_duration("250ms") == Duration{250});
    CHECK(parse_duration("30s") == Duration{30'000});
    CHECK(parse_duration("5m") == Duration{300'000});
    CHECK(parse_duration("1h") == Duration{3'600'000});
    CHECK(parse_duration("0") == Duration{0});
    CHECK(parse_duration("0s") == Duration{0});
    CHECK(parse_duration("0ms") == Duration{0});
    CHECK(parse_duration("007s") == Duration{7'000});
}

TEST_CASE("parse_duration: exact fractions only") {
    CHECK(parse_duration("1.5s") == Duration{1'500});
    CHECK(parse_duration("0.25s") == Duration{250});
    CHECK(parse_duration("1.5m") == Duration{90'000});
    CHECK(parse_duration("0.001s") == Duration{1});
    CHECK(parse_duration("2.50000000000000000000s") == Duration{2'500}); // trailing zeros
    CHECK_FALSE(parse_duration("0.0005s"));                               // half a millisecond
    CHECK_FALSE(parse_duration("1.5ms"));
    CHECK_FALSE(parse_duration("1.0000000000001h"));
    CHECK_FALSE(parse_duration(".5s"));
    CHECK_FALSE(parse_duration("1.s"));
    CHECK_FALSE(parse_duration("1..5s"));
}

TEST_CASE("parse_duration: rejects anything else") {
    for (const char* text : {"", "5", "60", "s", "ms", "10parsecs", "10S", "10 s", " 10s", "10s ",
                             "-5s", "+5s", "1e3ms", "1m30s", "5d", "5sec", "0x10s", "1_000ms",
                             "10\xC2\xB5s", "10us", "1hr"}) {
        CAPTURE(text);
        CHECK_FALSE(parse_duration(text));
    }
}

TEST_CASE("parse_duration: overflow is detected") {
    const auto max = std::numeric_limits<Duration::rep>::max();
    CHECK(parse_duration(std::to_string(max) + "ms") == Duration{max});
    CHECK_FALSE(parse_duration("9223372036854775808ms"));
    CHECK_FALSE(parse_duration("99999999999999999999ms")); // beyond 64 bits while reading
    CHECK_FALSE(parse_duration("9223372036854776s"));
    CHECK_FALSE(parse_duration("2562047788016h"));
    CHECK(parse_duration("2562047788015h") == Duration{2562047788015LL * 3'600'000});
}

TEST_CASE("parse_size: suffixes are binary and case-insensitive") {
    CHECK(parse_size("0") == 0U);
    CHECK(parse_size("512") == 512U);
    CHECK(parse_size("16k") == 16U * 1024);
    CHECK(parse_size("16K") == 16U * 1024);
    CHECK(parse_size("1m") == 1024U * 1024);
    CHECK(parse_size("1M") == 1024U * 1024);
    CHECK(parse_size("1g") == 1024ULL * 1024 * 1024);
    CHECK(parse_size("2G") == 2ULL * 1024 * 1024 * 1024);
    CHECK(parse_size("0k") == 0U);
}

TEST_CASE("parse_size: rejects anything else") {
    for (const char* text : {"", "k", "-1", "+1", "1.5k", "16kb", "16KiB", "1t", "16 k", " 16",
                             "16k ", "0x10", "1_024", "1e3", "abc"}) {
        CAPTURE(text);
        CHECK_FALSE(parse_size(text));
    }
}

TEST_CASE("parse_size: overflow is detected") {
    CHECK(parse_size("18446744073709551615") == std::numeric_limits<std::uint64_t>::max());
    CHECK_FALSE(parse_size("18446744073709551616"));
    CHECK(parse_size("17179869183g") == 17179869183ULL << 30);
    CHECK_FALSE(parse_size("17179869184g"));
    CHECK(parse_size("16777215t").has_value() == false);
    CHECK_FALSE(parse_size("18014398509481984k"));
}

TEST_CASE("format_duration and format_size pick the largest exact unit") {
    CHECK(format_duration(Duration{0}) == "0");
    CHECK(format_duration(Duration{250}) == "250ms");
    CHECK(format_duration(Duration{1'500}) == "1500ms");
    CHECK(format_duration(Duration{30'000}) == "30s");
    CHECK(format_duration(Duration{90'000}) == "90s");
    CHECK(format_duration(Duration{300'000}) == "5m");
    CHECK(format_duration(Duration{7'200'000}) == "2h");
    CHECK(format_size(0) == "0");
    CHECK(format_size(1000) == "1000");
    CHECK(format_size(65536) == "64k");
    CHECK(format_size(1024 * 1024) == "1m");
    CHECK(format_size(3ULL << 30) == "3g");
    CHECK(format_size(1536 * 1024) == "1536k");
    for (const std::uint64_t value : {1ULL, 1023ULL, 4096ULL, 5ULL << 20, 7ULL << 30}) {
        CHECK(parse_size(format_size(value)) == value);
    }
}

} // namespace
