#pragma once
// A WHATWG-conformant EventSource stream parser, for tests and the sse_roundtrip fuzz target.
// Header-only and standard-library-only, so any test binary or fuzzer can include it.
//
// It follows "9.2.6 Interpreting an event stream" and "dispatch the event" of the HTML Living
// Standard (https://html.spec.whatwg.org/multipage/server-sent-events.html
// #event-stream-interpretation), as a browser's EventSource applies them:
//   * The bytes are decoded with the WHATWG Encoding "UTF-8 decode": one leading BOM (EF BB BF)
//     is dropped, once, at the start of the stream only; invalid sequences become U+FFFD by the
//     decoder's error-and-reprocess rule (so an invalid byte never swallows a line end).
//   * Lines end at CRLF, LF or CR. A CR that ends one chunk and an LF that starts the next are
//     one line end; CR CR is two.
//   * An empty line dispatches. A line starting with ':' is a comment. Otherwise the field name
//     runs to the first ':' (or the whole line, value empty) and one leading U+0020 is stripped
//     from the value. Fields: `event` sets the event type buffer; `data` appends value + LF to
//     the data buffer; `id` sets the last event ID buffer unless the value contains U+0000;
//     `retry` sets the reconnection time if the value is non-empty ASCII digits. Any other
//     field is ignored.
//   * Dispatch: the last event ID buffer becomes the source's last event ID (even when nothing
//     is dispatched, and it persists); an empty data buffer dispatches nothing; otherwise one
//     trailing LF is removed and an event {type or "message", data, last event ID} is fired.
//     The data and type buffers are then cleared.
//   * An event not yet closed by a blank line when the input ends is never dispatched.
// Beyond the standard it counts fields and comments (FieldCounts), so tests can prove that no
// payload smuggled in a field of its own.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace test_support {

/// Appends code point `cp` (at most U+10FFFF) to `out` in UTF-8. Surrogates are not checked.
inline void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// One dispatched event, as a MessageEvent would show it.
struct SseEvent {
    std::string type;          ///< "message" unless an `event` field set another type.
    std::string data;          ///< The data buffer without its final LF.
    std::string last_event_id; ///< The source's last event ID string at dispatch.
    bool operator==(const SseEvent&) const = default;
};

/// Prints `{type, data, last_event_id}` with C-style escapes for bytes outside printable ASCII,
/// for test failure messages.
inline std::ostream& operator<<(std::ostream& os, const SseEvent& e) {
    const auto quote = [&os](std::string_view s) {
        static constexpr char kHex[] = "0123456789abcdef";
        os << '"';
        for (const char c : s) {
            const auto u = static_cast<unsigned char>(c);
            if (c == '"' || c == '\\') {
                os << '\\' << c;
            } else if (u < 0x20 || u >= 0x7F) {
                os << "\\x" << kHex[u >> 4] << kHex[u & 0xF];
            } else {
                os << c;
            }
        }
        os << '"';
    };
    os << '{';
    quote(e.type);
    os << ", ";
    quote(e.data);
    os << ", ";
    quote(e.last_event_id);
    return os << '}';
}

/// How many of each line the parser has processed (not part of the standard's model).
struct FieldCounts {
    std::size_t data = 0;     ///< `data` fields.
    std::size_t event = 0;    ///< `event` fields.
    std::size_t id = 0;       ///< `id` fields, including those ignored for containing NUL.
    std::size_t retry = 0;    ///< `retry` fields, including those ignored for non-digits.
    std::size_t other = 0;    ///< Lines naming any other field (ignored by the standard).
    std::size_t comments = 0; ///< Lines starting with ':'.
    std::size_t blank = 0;    ///< Empty lines (each one runs the dispatch steps).
    bool operator==(const FieldCounts&) const = default;
};

/// Prints the counts by name, for test failure messages.
inline std::ostream& operator<<(std::ostream& os, const FieldCounts& c) {
    return os << "{data " << c.data << ", event " << c.event << ", id " << c.id << ", retry "
              << c.retry << ", other " << c.other << ", comments " << c.comments << ", blank "
              << c.blank << '}';
}

/// Incremental EventSource parser. feed() may be called with any split of the stream, and the
/// result does not depend on the split. Not thread-safe; never throws except std::bad_alloc.
class EventSourceParser {
  public:
    /// Parses `chunk`, the next bytes of the stream, appending every event it completes to
    /// events(). Bytes of an incomplete line or event are kept for the next call.
    void feed(std::string_view chunk) {
        for (const char c : chunk) {
            on_byte(static_cast<unsigned char>(c));
        }
    }

    /// Every event dispatched so far, in order.
    [[nodiscard]] const std::vector<SseEvent>& events() const noexcept { return events_; }

    /// The reconnection time the stream set with `retry`, if it set one (saturates at 2^64-1).
    [[nodiscard]] std::optional<std::uint64_t> retry() const noexcept { return retry_; }

    /// The source's last event ID string (what a reconnect sends as `Last-Event-ID`; empty means
    /// no header). Updated only when a blank line runs the dispatch steps.
    [[nodiscard]] const std::string& last_event_id() const noexcept { return last_event_id_; }

    /// Line and field counts so far.
    [[nodiscard]] const FieldCounts& counts() const noexcept { return counts_; }

    /// True when the input so far ends exactly after a complete event: no partial code point,
    /// no partial line, empty data and type buffers, and no uncommitted `id`. Every stream the
    /// encoder writes must end in this state. (A trailing CR leaves a pending "skip LF" state
    /// that is not considered here; the encoder never writes CR.)
    [[nodiscard]] bool at_event_boundary() const noexcept {
        return needed_ == 0 && line_.empty() && data_.empty() && type_.empty() &&
               id_buffer_ == last_event_id_;
    }

  private:
    static constexpr std::uint32_t kReplacement = 0xFFFD;

    // WHATWG Encoding, "UTF-8 decoder": lower/upper bound the next continuation byte, so
    // overlong forms, surrogates and values above U+10FFFF are errors at the first bad byte.
    void on_byte(unsigned char b) {
        if (needed_ == 0) {
            if (b < 0x80) {
                on_code_point(b);
            } else if (b >= 0xC2 && b <= 0xDF) {
                needed_ = 1;
                cp_ = b & 0x1Fu;
            } else if (b >= 0xE0 && b <= 0xEF) {
                lower_ = b == 0xE0 ? 0xA0 : 0x80;
                upper_ = b == 0xED ? 0x9F : 0xBF;
                needed_ = 2;
                cp_ = b & 0x0Fu;
            } else if (b >= 0xF0 && b <= 0xF4) {
                lower_ = b == 0xF0 ? 0x90 : 0x80;
                upper_ = b == 0xF4 ? 0x8F : 0xBF;
                needed_ = 3;
                cp_ = b & 0x07u;
            } else {
                on_code_point(kReplacement);
            }
            return;
        }
        if (b < lower_ || b > upper_) {
            // Error: reset, emit U+FFFD, and process `b` again as the start of a sequence.
            reset_decoder();
            on_code_point(kReplacement);
            on_byte(b);
            return;
        }
        lower_ = 0x80;
        upper_ = 0xBF;
        cp_ = (cp_ << 6) | (b & 0x3Fu);
        if (++seen_ == needed_) {
            const std::uint32_t cp = cp_;
            reset_decoder();
            on_code_point(cp);
        }
    }

    void reset_decoder() noexcept {
        cp_ = 0;
        needed_ = 0;
        seen_ = 0;
        lower_ = 0x80;
        upper_ = 0xBF;
    }

    // Line splitting on decoded code points (CRLF, LF, CR), after the one-time BOM check.
    void on_code_point(std::uint32_t cp) {
        if (!started_) {
            started_ = true;
            if (cp == 0xFEFF) {
                return;
            }
        }
        if (skip_lf_) {
            skip_lf_ = false;
            if (cp == '\n') {
                return;
            }
        }
        if (cp == '\r') {
            skip_lf_ = true;
            on_line();
        } else if (cp == '\n') {
            on_line();
        } else {
            append_utf8(line_, cp);
        }
    }

    void on_line() {
        const std::string_view line = line_;
        if (line.empty()) {
            ++counts_.blank;
            dispatch();
        } else if (line.front() == ':') {
            ++counts_.comments;
        } else {
            const std::size_t colon = line.find(':');
            std::string_view value;
            if (colon != std::string_view::npos) {
                value = line.substr(colon + 1);
                if (!value.empty() && value.front() == ' ') {
                    value.remove_prefix(1);
                }
            }
            on_field(line.substr(0, colon), value);
        }
        line_.clear();
    }

    void on_field(std::string_view name, std::string_view value) {
        if (name == "event") {
            ++counts_.event;
            type_.assign(value);
        } else if (name == "data") {
            ++counts_.data;
            data_.append(value);
            data_.push_back('\n');
        } else if (name == "id") {
            ++counts_.id;
            if (value.find('\0') == std::string_view::npos) {
                id_buffer_.assign(value);
            }
        } else if (name == "retry") {
            ++counts_.retry;
            on_retry(value);
        } else {
            ++counts_.other;
        }
    }

    void on_retry(std::string_view value) {
        if (value.empty()) {
            return;
        }
        std::uint64_t ms = 0;
        constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
        for (const char c : value) {
            if (c < '0' || c > '9') {
                return;
            }
            const auto digit = static_cast<std::uint64_t>(c - '0');
            ms = ms > (kMax - digit) / 10 ? kMax : ms * 10 + digit;
        }
        retry_ = ms;
    }

    void dispatch() {
        last_event_id_ = id_buffer_;
        if (data_.empty()) {
            type_.clear();
            return;
        }
        data_.pop_back(); // Every data field appended an LF, so the last character is one.
        events_.push_back(SseEvent{type_.empty() ? "message" : type_, data_, last_event_id_});
        data_.clear();
        type_.clear();
    }

    // UTF-8 decoder state.
    std::uint32_t cp_ = 0;
    int needed_ = 0;
    int seen_ = 0;
    unsigned lower_ = 0x80;
    unsigned upper_ = 0xBF;
    // Line state.
    bool started_ = false; // A code point was decoded (the BOM check is done).
    bool skip_lf_ = false; // The previous code point was CR.
    std::string line_;
    // The standard's buffers and source state.
    std::string data_;
    std::string type_;
    std::string id_buffer_;
    std::string last_event_id_;
    std::optional<std::uint64_t> retry_;
    std::vector<SseEvent> events_;
    FieldCounts counts_;
};

/// Everything observable after parsing a whole stream.
struct ParseResult {
    std::vector<SseEvent> events;
    std::optional<std::uint64_t> retry;
    std::string last_event_id;
    FieldCounts counts;
    bool at_event_boundary = false;
    bool operator==(const ParseResult&) const = default;
};

/// Parses `stream` fed in pieces cut at `cuts` (ascending offsets; out-of-range ones clamp).
[[nodiscard]] inline ParseResult parse_in_chunks(std::string_view stream,
                                                 std::span<const std::size_t> cuts) {
    EventSourceParser parser;
    std::size_t start = 0;
    for (std::size_t cut : cuts) {
        cut = cut < start ? start : (cut > stream.size() ? stream.size() : cut);
        parser.feed(stream.substr(start, cut - start));
        start = cut;
    }
    parser.feed(stream.substr(start));
    return {parser.events(), parser.retry(), parser.last_event_id(), parser.counts(),
            parser.at_event_boundary()};
}

/// Parses `stream` fed in one piece.
[[nodiscard]] inline ParseResult parse_whole(std::string_view stream) {
    return parse_in_chunks(stream, {});
}

/// Parses `stream` whole, then cut in two at every offset, then one byte at a time, and
/// returns "" if all agree, else which split disagreed ("split at 17", "byte by byte").
/// Quadratic: meant for streams of a few KiB.
[[nodiscard]] inline std::string split_mismatch(std::string_view stream) {
    const ParseResult whole = parse_whole(stream);
    for (std::size_t i = 0; i <= stream.size(); ++i) {
        const std::size_t cut[] = {i};
        if (!(parse_in_chunks(stream, cut) == whole)) {
            return "split at " + std::to_string(i);
        }
    }
    std::vector<std::size_t> every(stream.size());
    for (std::size_t i = 0; i < every.size(); ++i) {
        every[i] = i + 1;
    }
    if (!(parse_in_chunks(stream, every) == whole)) {
        return "byte by byte";
    }
    return "";
}

} // namespace test_support
