#include "proxy/http/parser.h"

#include <llhttp.h>
#include <string>

namespace proxy::http {

namespace {

/// Shared between both parsers: the llhttp state plus what the callbacks need.
struct CommonState {
    llhttp_t parser{};
    Message* message = nullptr;
    std::string* first_line_part = nullptr;  ///< request target or response reason
    ParserLimits limits;
    const char* buffer_start = nullptr;
    std::size_t fed_before = 0;              ///< bytes of this message before the buffer
    bool in_value = false;
    bool head_done = false;
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

/// Enforces the head limit from the position of the last byte seen.
int check_head_bytes(llhttp_t* p, const char* at, std::size_t length) {
    auto& s = state_of(p);
    const auto pos = s.fed_before + static_cast<std::size_t>(at - s.buffer_start) + length;
    if (pos > s.limits.max_header_bytes) {
        return user_error(p, core::Code::HeaderTooLarge, "request head too large");
    }
    return 0;
}

int on_first_line_part(llhttp_t* p, const char* at, std::size_t length) {
    if (int r = check_head_bytes(p, at, length); r != 0) {
        return r;
    }
    state_of(p).first_line_part->append(at, length);
    return 0;
}

int on_header_field(llhttp_t* p, const char* at, std::size_t length) {
    if (int r = check_head_bytes(p, at, length); r != 0) {
        return r;
    }
    auto& s = state_of(p);
    auto& headers = s.message->headers;
    if (headers.empty() || s.in_value) {
        if (headers.size() >= s.limits.max_headers) {
            return user_error(p, core::Code::HeaderTooLarge, "too many header fields");
        }
        headers.emplace_back();
        s.in_value = false;
    }
    headers.back().name.append(at, length);
    return 0;
}

int on_header_value(llhttp_t* p, const char* at, std::size_t length) {
    if (int r = check_head_bytes(p, at, length); r != 0) {
        return r;
    }
    auto& s = state_of(p);
    s.in_value = true;
    s.message->headers.back().value.append(at, length);
    return 0;
}

int on_header_value_complete(llhttp_t* p) {
    auto& s = state_of(p);
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
/// head complete), or the mapped error.
core::Result<FeedResult> execute(CommonState& s, std::span<const char> data, bool response) {
    s.buffer_start = data.data();
    const llhttp_errno_t err = llhttp_execute(&s.parser, data.data(), data.size());
    FeedResult out;
    switch (err) {
    case HPE_OK:
        out.consumed = data.size();
        s.fed_before += data.size();
        if (!s.head_done && s.fed_before > s.limits.max_header_bytes) {
            return core::fail(response ? core::Code::BackendBadHandshake
                                       : core::Code::HeaderTooLarge,
                              response ? core::Side::Backend : core::Side::Client,
                              "request head too large");
        }
        return out;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE:
        out.consumed = static_cast<std::size_t>(llhttp_get_error_pos(&s.parser) - data.data());
        s.fed_before += out.consumed;
        out.complete = true;
        return out;
    case HPE_USER:
        if (response) {
            return core::fail(core::Code::BackendBadHandshake, core::Side::Backend,
                              s.user_reason != nullptr ? s.user_reason : "bad response");
        }
        return core::fail(s.user_error, core::Side::Client,
                          s.user_reason != nullptr ? s.user_reason : "bad request");
    case HPE_PAUSED_H2_UPGRADE:
        return core::fail(core::Code::BadRequest, core::Side::Client,
                          "HTTP/2 preface on an HTTP/1.1 port");
    default: {
        std::string why = llhttp_errno_name(err);
        if (const char* reason = llhttp_get_error_reason(&s.parser)) {
            why += ": ";
            why += reason;
        }
        if (response) {
            return core::fail(core::Code::BackendBadHandshake, core::Side::Backend, why);
        }
        return core::fail(core::Code::BadRequest, core::Side::Client, why);
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
    if (r && r->complete) {
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
    }
    return r;
}

} // namespace proxy::http
