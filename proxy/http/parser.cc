#include "proxy/http/parser.h"

#include <algorithm>
#include <llhttp.h>
#include <string>
#include <utility>

namespace proxy::http {

namespace {

/// Byte checks that llhttp 8 does not make, run over the head before llhttp sees it: every
/// line ends in CRLF (no bare CR or LF) and no header line starts with whitespace (obs-fold).
/// It also finds where the head ends, so the head limit counts exactly the head's bytes
/// whatever the split of the input.
struct HeadScanner {
    enum class Stop { More, HeadEnd, Violation };
    bool prev_cr = false;
    bool done = false;
    std::size_t line_length = 0;  ///< bytes of the current line before its CR
    std::size_t lines = 0;        ///< non-empty lines seen (leading empty lines are skipped)

    /// Scans until the head ends (returns the offset after its final LF), a violation (the
    /// offset of the offending byte) or the end of `data` (its size).
    std::pair<std::size_t, Stop> scan(std::span<const char> data) noexcept {
        for (std::size_t i = 0; i < data.size(); ++i) {
            const char c = data[i];
            if (prev_cr) {
                if (c != '\n') {
                    return {i, Stop::Violation};
                }
                prev_cr = false;
                if (line_length == 0 && lines > 0) {
                    done = true;
                    return {i + 1, Stop::HeadEnd};
                }
                lines += line_length > 0 ? 1 : 0;
                line_length = 0;
            } else if (c == '\r') {
                prev_cr = true;
            } else if (c == '\n' || (line_length == 0 && lines > 0 && (c == ' ' || c == '\t'))) {
                return {i, Stop::Violation};
            } else {
                ++line_length;
            }
        }
        return {data.size(), Stop::More};
    }
};

/// Shared between both parsers: the llhttp state plus what the callbacks need.
struct CommonState {
    llhttp_t parser{};
    Message* message = nullptr;
    std::string* first_line_part = nullptr;  ///< request target or response reason
    ParserLimits limits;
    std::size_t fed_before = 0;              ///< bytes of this message before the buffer
    bool in_value = false;
    bool head_done = false;
    HeadScanner scanner;
    bool pause_at_head = false;
    core::Code user_error = core::Code::Ok;
    const char* user_reason = nullptr;
};

CommonState& state_of(llhttp_t* p) {
    return *static_cast<CommonState*>(p->data);
}

int user_error(llhttp_t* p, core::Code code, const char* reason) {
    auto& s = state_of(p);
    s.user_error = code;
    s.user_reason = reason;
    llhttp_set_error_reason(p, reason);
    return HPE_USER;
}

int on_first_line_part(llhttp_t* p, const char* at, std::size_t length) {
    state_of(p).first_line_part->append(at, length);
    return 0;
}

// Fields after the head are chunked-body trailers: llhttp checks them, the parser drops them
// (they must not pass for header fields, and the head limit does not bound them).
int on_header_field(llhttp_t* p, const char* at, std::size_t length) {
    auto& s = state_of(p);
    if (s.head_done) {
        return 0;
    }
    auto& headers = s.message->headers;
    if (headers.empty() || s.in_value) {
        headers.emplace_back();
        s.in_value = false;
    }
    headers.back().name.append(at, length);
    return 0;
}

// Checked once the name is complete (at its ':'), so the verdict does not depend on how the
// input was split.
int on_header_field_complete(llhttp_t* p) {
    auto& s = state_of(p);
    if (s.head_done) {
        return 0;
    }
    const auto& headers = s.message->headers;
    if (headers.empty() || s.in_value || !is_token(headers.back().name)) {
        return user_error(p, core::Code::BadRequest, "header field name is not a token");
    }
    if (headers.size() > s.limits.max_headers) {
        return user_error(p, core::Code::HeaderTooLarge, "too many header fields");
    }
    return 0;
}

int on_header_value(llhttp_t* p, const char* at, std::size_t length) {
    auto& s = state_of(p);
    if (s.head_done) {
        return 0;
    }
    s.in_value = true;
    s.message->headers.back().value.append(at, length);
    return 0;
}

int on_header_value_complete(llhttp_t* p) {
    auto& s = state_of(p);
    if (s.head_done) {
        return 0;
    }
    s.in_value = true;  // also for an empty value, which may come without on_header_value
    // Field values exclude surrounding whitespace (RFC 9110 §5.5); llhttp strips the leading
    // part, trailing spaces may remain.
    auto& v = s.message->headers.back().value;
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.pop_back();
    }
    return 0;
}

int on_headers_complete(llhttp_t* p) {
    auto& s = state_of(p);
    s.head_done = true;
    s.message->http_major = llhttp_get_http_major(p);
    s.message->http_minor = llhttp_get_http_minor(p);
    s.message->keep_alive = llhttp_should_keep_alive(p) != 0;
    s.message->upgrade = llhttp_get_upgrade(p) != 0;
    // llhttp 8 takes a request line without a version ("GET /") as HTTP/0.9, and for CONNECT
    // even an empty target ("CONNECT "). HTTP/1.1 has no such request line (RFC 9112 §3), so
    // it is an invalid version (found by the http_request fuzz target, issue 5).
    if (llhttp_get_type(p) == HTTP_REQUEST && s.message->http_major != 1) {
        return user_error(p, core::Code::BadRequest, "request line without an HTTP version");
    }
    if (s.pause_at_head) {
        return HPE_PAUSED;
    }
    return 0;
}

int on_body(llhttp_t* p, const char* at, std::size_t length) {
    auto& s = state_of(p);
    if (s.message->body.size() + length > s.limits.max_body) {
        return user_error(p, core::Code::PayloadTooLarge, "request body too large");
    }
    s.message->body.append(at, length);
    return 0;
}

int on_message_complete(llhttp_t* p) {
    // Stop after each message: the caller decides what the following bytes are.
    (void)p;
    return HPE_PAUSED;
}

llhttp_settings_t make_settings(bool response) {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    if (response) {
        s.on_status = on_first_line_part;
    } else {
        s.on_url = on_first_line_part;
    }
    s.on_header_field = on_header_field;
    s.on_header_field_complete = on_header_field_complete;
    s.on_header_value = on_header_value;
    s.on_header_value_complete = on_header_value_complete;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    return s;
}

const llhttp_settings_t kRequestSettings = make_settings(false);
const llhttp_settings_t kResponseSettings = make_settings(true);

/// Runs llhttp over `data`. Returns consumed bytes and whether the parser paused (message or
/// head complete), or the mapped error. While the head is incomplete, llhttp sees at most the
/// head's remaining byte budget and nothing past a HeadScanner violation.
core::Result<FeedResult> execute(CommonState& s, std::span<const char> data, bool response) {
    auto failure = [response](core::Code code, std::string why) {
        if (response) {
            return core::fail(core::Code::BackendBadHandshake, core::Side::Backend, std::move(why));
        }
        return core::fail(code, core::Side::Client, std::move(why));
    };
    std::size_t length = data.size();
    core::Code stop = core::Code::Ok;
    if (!s.head_done && !s.scanner.done) {
        const std::size_t max = s.limits.max_header_bytes;
        const std::size_t room = max - std::min(s.fed_before, max);
        const auto [pos, verdict] = s.scanner.scan(data);
        if (verdict != HeadScanner::Stop::HeadEnd || pos > room) {
            length = std::min(pos, room);
            if (length < data.size()) {
                stop = length == room ? core::Code::HeaderTooLarge : core::Code::BadRequest;
            }
        }
    }
    const llhttp_errno_t err = llhttp_execute(&s.parser, data.data(), length);
    FeedResult out;
    switch (err) {
    case HPE_OK:
        out.consumed = length;
        s.fed_before += length;
        if (stop == core::Code::HeaderTooLarge) {
            return failure(stop, response ? "response head too large" : "request head too large");
        }
        if (stop != core::Code::Ok) {
            return failure(stop, "bare CR or LF, or obs-fold, in the head");
        }
        if (s.scanner.done && !s.head_done) {
            // The head ended (empty line) but llhttp wants more, as after the first part of the
            // HTTP/2 preface: refuse rather than read on past the head limit.
            return failure(core::Code::BadRequest, "head end not recognised");
        }
        return out;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE:
        out.consumed = static_cast<std::size_t>(llhttp_get_error_pos(&s.parser) - data.data());
        s.fed_before += out.consumed;
        out.complete = true;
        return out;
    case HPE_PAUSED_H2_UPGRADE:
        return core::fail(core::Code::BadRequest, core::Side::Client,
                          "HTTP/2 preface on an HTTP/1.1 port");
    default: {
        // A callback's own error: HPE_USER from span callbacks, HPE_CB_*_COMPLETE from the
        // *_complete ones (llhttp replaces their return value).
        if (s.user_error != core::Code::Ok) {
            return failure(s.user_error, s.user_reason);
        }
        std::string why = llhttp_errno_name(err);
        if (const char* reason = llhttp_get_error_reason(&s.parser)) {
            why += ": ";
            why += reason;
        }
        return failure(core::Code::BadRequest, std::move(why));
    }
    }
}

} // namespace

struct RequestParser::State : CommonState {};
struct ResponseParser::State : CommonState {};

RequestParser::RequestParser(ParserLimits limits) : limits_(limits), state_(new State) {
    reset();
}

RequestParser::~RequestParser() = default;

void RequestParser::reset() {
    request_ = Request{};
    *static_cast<CommonState*>(state_.get()) = CommonState{};
    llhttp_init(&state_->parser, HTTP_REQUEST, &kRequestSettings);
    state_->parser.data = static_cast<CommonState*>(state_.get());
    state_->message = &request_;
    state_->first_line_part = &request_.target;
    state_->limits = limits_;
    started_ = false;
    head_complete_ = false;
}

core::Result<FeedResult> RequestParser::feed(std::span<const char> data) {
    if (!data.empty()) {
        started_ = true;
    }
    auto r = execute(*state_, data, false);
    head_complete_ = state_->head_done;
    if (head_complete_ && request_.method.empty()) {
        // Known from the head on, so an error in the body (413) can still name it.
        request_.method = llhttp_method_name(static_cast<llhttp_method_t>(state_->parser.method));
    }
    return r;
}

ResponseParser::ResponseParser(ParserLimits limits) : limits_(limits), state_(new State) {
    llhttp_init(&state_->parser, HTTP_RESPONSE, &kResponseSettings);
    state_->parser.data = static_cast<CommonState*>(state_.get());
    state_->message = &response_;
    state_->first_line_part = &response_.reason;
    state_->limits = limits_;
    state_->pause_at_head = true;
}

ResponseParser::~ResponseParser() = default;

core::Result<FeedResult> ResponseParser::feed(std::span<const char> data) {
    auto r = execute(*state_, data, true);
    if (r && r->complete) {
        response_.status = static_cast<unsigned>(llhttp_get_status_code(&state_->parser));
        // llhttp 8 takes "HTTP/1.1 10 x" as status 10, and "HTTP/1.1  101" as status 0.
        if (response_.status < 100 || response_.status > 599) {
            return core::fail(core::Code::BackendBadHandshake, core::Side::Backend,
                              "invalid status code " + std::to_string(response_.status));
        }
    }
    return r;
}

} // namespace proxy::http
