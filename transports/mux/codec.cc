#include "transports/mux/codec.h"

#include "proxy/core/base64.h"
#include "transports/json.h"
#include "transports/sse/encoder.h"

#include <algorithm>

namespace transports::mux {

using json::append_string;
using json::append_uint;
using proxy::core::Code;
using proxy::core::Result;
using proxy::core::Side;
using proxy::core::Unexpected;
using proxy::core::fail;

namespace {

template <class T> Unexpected error_of(Result<T>& r) { return Unexpected{std::move(r).error()}; }

Unexpected entry_error(Code code, std::size_t index, std::string_view what) {
    std::string context = "entry ";
    append_uint(context, index);
    context.append(": ");
    context.append(what);
    return fail(code, Side::Client, std::move(context));
}

void begin_event(std::string& out, std::string_view type) {
    out.append("event: ");
    out.append(type);
    out.append("\ndata: ");
}

void end_event(std::string& out) { out.append("\n\n"); }

void session_member(std::string& out, std::string_view session) {
    out.append(R"({"session":)");
    append_string(out, session);
}

} // namespace

Result<std::vector<Position>> parse_positions(std::string_view query) {
    std::vector<Position> out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (param.rfind("session=", 0) == 0) {
            if (out.size() == kMaxSessions) {
                return fail(Code::BadRequest, Side::Client,
                            "more than 100 sessions in one request");
            }
            const auto id = sse::parse_last_event_id(param.substr(8));
            if (!id) {
                return fail(Code::BadRequest, Side::Client,
                            "session must be <id>.<last seen seq>, got " +
                                json::quote_for_log(param.substr(8)));
            }
            for (const Position& p : out) {
                if (p.session == id->session) {
                    return fail(Code::BadRequest, Side::Client,
                                "session " + json::quote_for_log(id->session) +
                                    " listed twice");
                }
            }
            out.push_back(Position{std::string(id->session), id->seq});
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query.remove_prefix(amp + 1);
    }
    if (out.empty()) {
        return fail(Code::BadRequest, Side::Client, "no session=<id>.<seq> listed");
    }
    return out;
}

void append_announce(std::string& out, std::string_view send_url, std::uint64_t heartbeat_ms,
                     std::uint64_t retry_ms, std::span<const AnnounceEntry> sessions) {
    out.append("retry: ");
    append_uint(out, retry_ms);
    out.push_back('\n');
    begin_event(out, "mux");
    out.append(R"({"send":)");
    append_string(out, send_url);
    out.append(R"(,"heartbeat_ms":)");
    append_uint(out, heartbeat_ms);
    out.append(R"(,"sessions":[)");
    bool first = true;
    for (const AnnounceEntry& e : sessions) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        session_member(out, e.session);
        if (!e.reset.empty()) {
            out.append(R"(,"reset":)");
            append_string(out, e.reset);
        } else {
            out.append(R"(,"last_seq":)");
            append_uint(out, e.last_seq);
            out.append(R"(,"next_seq":)");
            append_uint(out, e.next_seq);
            if (!e.protocol.empty()) {
                out.append(R"(,"protocol":)");
                append_string(out, e.protocol);
            }
        }
        out.push_back('}');
    }
    out.append("]}");
    end_event(out);
}

void append_message(std::string& out, std::string_view session, std::uint64_t seq, bool binary,
                    std::string_view payload) {
    // One line for the common case: `data: <id> <seq> <text>`, the default event type.
    const std::size_t mark = out.size();
    out.append(binary ? "event: mb\ndata: " : "data: ");
    out.append(session);
    out.push_back(' ');
    append_uint(out, seq);
    out.push_back(' ');
    if (binary) {
        out.append(proxy::core::base64_encode(
            std::as_bytes(std::span<const char>(payload.data(), payload.size()))));
        out.append("\n\n");
        return;
    }
    if (sse::append_data_lines(out, payload, true)) {
        out.push_back('\n');
        return;
    }
    // A CR: the text travels as a JSON string on the one line.
    out.resize(mark);
    out.append("event: mt\ndata: ");
    out.append(session);
    out.push_back(' ');
    append_uint(out, seq);
    out.push_back(' ');
    append_string(out, payload);
    out.append("\n\n");
}

void append_gap(std::string& out, std::string_view session, std::uint64_t from, std::uint64_t to) {
    begin_event(out, "gap");
    session_member(out, session);
    out.append(R"(,"from":)");
    append_uint(out, from);
    out.append(R"(,"to":)");
    append_uint(out, to);
    out.push_back('}');
    end_event(out);
}

void append_close(std::string& out, std::string_view session, std::uint16_t code,
                  std::string_view reason) {
    begin_event(out, "close");
    session_member(out, session);
    out.append(R"(,"code":)");
    append_uint(out, code);
    out.append(R"(,"reason":)");
    append_string(out, reason);
    out.push_back('}');
    end_event(out);
}

void append_detached(std::string& out, std::string_view session, std::string_view reason) {
    begin_event(out, "detached");
    session_member(out, session);
    out.append(R"(,"reason":)");
    append_string(out, reason);
    out.push_back('}');
    end_event(out);
}

std::string encode_poll(std::span<const PollEntry> entries) {
    std::string out = R"({"sessions":[)";
    bool first = true;
    for (const PollEntry& e : entries) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        session_member(out, e.session);
        if (!e.reset.empty()) {
            out.append(R"(,"reset":)");
            append_string(out, e.reset);
            out.push_back('}');
            continue;
        }
        if (!e.detached.empty()) {
            out.append(R"(,"detached":)");
            append_string(out, e.detached);
            out.push_back('}');
            continue;
        }
        if (e.gap) {
            out.append(R"(,"gap":{"from":)");
            append_uint(out, e.gap->from);
            out.append(R"(,"to":)");
            append_uint(out, e.gap->to);
            out.push_back('}');
        }
        // The per-message JSON is the single-session poll's: reuse its encoder and splice.
        const std::string one = long_polling::encode_poll_response(e.messages, std::nullopt,
                                                                   std::nullopt, e.close);
        // one = {"messages":[…][,"close":{…}]}
        out.push_back(',');
        out.append(one, 1, one.size() - 1);  // drops its '{', keeps its closing '}'
    }
    out.append("]}");
    return out;
}

Result<std::vector<SendEntry>> parse_send(std::string_view body, std::uint64_t max_message,
                                          std::size_t max_messages) {
    json::Reader reader(body);
    std::vector<SendEntry> out;
    if (auto open = reader.expect('['); !open) {
        return error_of(open);
    }
    if (!reader.try_consume(']')) {
        for (;;) {
            if (out.size() == kMaxSessions) {
                return fail(Code::BadRequest, Side::Client, "more than 100 entries");
            }
            const std::size_t index = out.size();
            if (auto brace = reader.expect('{'); !brace) {
                return error_of(brace);
            }
            SendEntry entry;
            bool have_session = false;
            bool have_seq = false;
            bool have_messages = false;
            if (reader.try_consume('}')) {
                return entry_error(Code::BadRequest, index, R"(missing key "session")");
            }
            for (;;) {
                auto key = reader.read_string("string key");
                if (!key) {
                    return error_of(key);
                }
                if (auto colon = reader.expect(':'); !colon) {
                    return error_of(colon);
                }
                bool* seen = *key == "session" ? &have_session
                             : *key == "seq"   ? &have_seq
                             : *key == "messages" ? &have_messages
                                                   : nullptr;
                if (seen == nullptr) {
                    return entry_error(Code::BadRequest, index,
                                       "unknown key " + json::quote_for_log(*key));
                }
                if (*seen) {
                    return entry_error(Code::BadRequest, index,
                                       "duplicate key " + json::quote_for_log(*key));
                }
                *seen = true;
                if (seen == &have_session) {
                    auto v = reader.read_string();
                    if (!v) {
                        return error_of(v);
                    }
                    if (!sse::is_session_id(*v)) {
                        return entry_error(Code::BadRequest, index, "not a session id");
                    }
                    entry.session = std::move(*v);
                } else if (seen == &have_seq) {
                    auto v = reader.read_uint();
                    if (!v) {
                        return error_of(v);
                    }
                    if (*v == 0) {
                        return entry_error(Code::BadRequest, index, "seq starts at 1");
                    }
                    entry.seq = *v;
                } else {
                    auto v = long_polling::read_batch(reader, max_message, max_messages);
                    if (!v) {
                        auto e = std::move(v).error();
                        return entry_error(e.code, index, e.context);
                    }
                    entry.messages = std::move(*v);
                }
                auto next = reader.expect_either(',', '}');
                if (!next) {
                    return error_of(next);
                }
                if (*next == '}') {
                    break;
                }
            }
            if (!have_session || !have_seq || !have_messages) {
                return entry_error(Code::BadRequest, index,
                                   !have_session ? R"(missing key "session")"
                                   : !have_seq   ? R"(missing key "seq")"
                                                 : R"(missing key "messages")");
            }
            for (const SendEntry& e : out) {
                if (e.session == entry.session) {
                    return entry_error(Code::BadRequest, index, "session listed twice");
                }
            }
            out.push_back(std::move(entry));
            auto next = reader.expect_either(',', ']');
            if (!next) {
                return error_of(next);
            }
            if (*next == ']') {
                break;
            }
        }
    }
    if (auto end = reader.expect_end(); !end) {
        return error_of(end);
    }
    return out;
}

std::string encode_send_results(std::span<const SendResult> results) {
    std::string out = R"({"results":[)";
    bool first = true;
    for (const SendResult& r : results) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        session_member(out, r.session);
        if (r.error.empty()) {
            out.append(R"(,"next_seq":)");
            append_uint(out, r.next_seq);
        } else {
            out.append(R"(,"error":)");
            append_string(out, r.error);
            if (r.expected_seq != 0) {
                out.append(R"(,"expected_seq":)");
                append_uint(out, r.expected_seq);
            }
            if (r.retry_after != 0) {
                out.append(R"(,"retry_after":)");
                append_uint(out, r.retry_after);
            }
        }
        out.push_back('}');
    }
    out.append("]}");
    return out;
}

} // namespace transports::mux
