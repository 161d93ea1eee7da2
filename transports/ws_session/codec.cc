#include "transports/ws_session/codec.h"

#include "transports/json.h"

namespace transports::ws_session {

using proxy::core::Code;
using proxy::core::Result;
using proxy::core::Side;
using proxy::core::fail;

namespace {

constexpr std::size_t kMaxReason = 123;  // a Close frame's reason (RFC 6455 §5.5)

void begin_control(std::string& out, std::string_view type) {
    out.push_back(static_cast<char>(Kind::Control));
    out.append("{\"type\":\"");
    out.append(type);  // one of ours: plain ASCII, nothing to escape
    out.push_back('"');
}

void member_uint(std::string& out, std::string_view name, std::uint64_t value) {
    out.append(",\"");
    out.append(name);
    out.append("\":");
    json::append_uint(out, value);
}

void member_string(std::string& out, std::string_view name, std::string_view value) {
    out.append(",\"");
    out.append(name);
    out.append("\":");
    json::append_string(out, value);
}

proxy::core::Unexpected protocol_error(std::string what) {
    return fail(Code::ProtocolError, Side::Client, "session control: " + std::move(what));
}

} // namespace

void MessageAssembler::begin(bool binary) {
    frame_ = ClientFrame{};
    frame_.type = binary ? ClientFrame::Type::Binary : ClientFrame::Type::Text;
    active_ = true;
    binary_ = binary;
    have_kind_ = false;
    kind_ = 0;
}

void MessageAssembler::append(std::span<const std::byte> bytes) {
    if (bytes.empty()) {
        return;
    }
    if (binary_ && !have_kind_) {
        kind_ = static_cast<std::uint8_t>(bytes[0]);
        have_kind_ = true;
        bytes = bytes.subspan(1);
    }
    frame_.payload.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<ClientFrame> MessageAssembler::finish() {
    active_ = false;
    if (binary_) {
        if (!have_kind_) {
            return fail(Code::ProtocolError, Side::Client,
                        "empty binary message (no kind byte)");
        }
        if (kind_ == static_cast<std::uint8_t>(Kind::Control)) {
            frame_.type = ClientFrame::Type::Control;
        } else if (kind_ != static_cast<std::uint8_t>(Kind::Binary)) {
            return fail(Code::ProtocolError, Side::Client,
                        "unknown kind byte " + std::to_string(kind_) + " in a binary message");
        }
    }
    return std::move(frame_);
}

Result<ClientControl> parse_client_control(std::string_view text) {
    json::Reader r(text);
    ClientControl control;
    std::optional<std::string> type;
    std::optional<std::uint64_t> seq;
    std::optional<std::uint64_t> code;
    std::optional<std::string> reason;
    if (auto e = r.expect('{'); !e) {
        return protocol_error(e.error().context);
    }
    if (!r.try_consume('}')) {
        for (;;) {
            const std::size_t at = r.offset();
            auto key = r.read_string("member name");
            if (!key) {
                return protocol_error(key.error().context);
            }
            if (auto e = r.expect(':'); !e) {
                return protocol_error(e.error().context);
            }
            auto repeated = [&] {
                return protocol_error("offset " + std::to_string(at) + ": repeated member " +
                                      json::quote_for_log(*key));
            };
            if (*key == "type") {
                if (type) {
                    return repeated();
                }
                auto v = r.read_string("a string type");
                if (!v) {
                    return protocol_error(v.error().context);
                }
                type = std::move(*v);
            } else if (*key == "seq" || *key == "code") {
                auto& slot = *key == "seq" ? seq : code;
                if (slot) {
                    return repeated();
                }
                auto v = r.read_uint();
                if (!v) {
                    return protocol_error(v.error().context);
                }
                slot = *v;
            } else if (*key == "reason") {
                if (reason) {
                    return repeated();
                }
                auto v = r.read_string("a string reason");
                if (!v) {
                    return protocol_error(v.error().context);
                }
                reason = std::move(*v);
            } else {
                return protocol_error("offset " + std::to_string(at) + ": unknown member " +
                                      json::quote_for_log(*key));
            }
            auto next = r.expect_either(',', '}');
            if (!next) {
                return protocol_error(next.error().context);
            }
            if (*next == '}') {
                break;
            }
        }
    }
    if (auto e = r.expect_end(); !e) {
        return protocol_error(e.error().context);
    }
    if (!type) {
        return protocol_error("no \"type\"");
    }
    if (*type == "ack") {
        if (!seq || code || reason) {
            return protocol_error("an ack has exactly a \"seq\"");
        }
        control.type = ClientControl::Type::Ack;
        control.seq = *seq;
        return control;
    }
    if (*type == "close") {
        if (seq) {
            return protocol_error("a close has no \"seq\"");
        }
        control.type = ClientControl::Type::Close;
        if (code) {
            if (*code != 1000 && (*code < 3000 || *code > 4999)) {
                return protocol_error("close code must be 1000 or 3000-4999");
            }
            control.code = static_cast<std::uint16_t>(*code);
        }
        if (reason) {
            if (reason->size() > kMaxReason) {
                return protocol_error("close reason over 123 bytes");
            }
            control.reason = std::move(*reason);  // read_string() returns valid UTF-8 only
        }
        return control;
    }
    return protocol_error("unknown type " + json::quote_for_log(*type));
}

void append_session(std::string& out, const SessionAnnounce& a) {
    begin_control(out, "session");
    member_string(out, "session", a.session);
    member_uint(out, "last_seq", a.last_seq);
    member_uint(out, "next_seq", a.next_seq);
    member_uint(out, "heartbeat_ms", a.heartbeat_ms);
    if (!a.protocol.empty()) {
        member_string(out, "protocol", a.protocol);
    }
    out.push_back('}');
}

void append_reset(std::string& out, std::string_view new_session, std::string_view reason) {
    begin_control(out, "reset");
    member_string(out, "session", new_session);
    member_string(out, "reason", reason);
    out.push_back('}');
}

void append_gap(std::string& out, std::uint64_t from, std::uint64_t to) {
    begin_control(out, "gap");
    member_uint(out, "from", from);
    member_uint(out, "to", to);
    out.push_back('}');
}

void append_ack(std::string& out, std::uint64_t next_seq) {
    begin_control(out, "ack");
    member_uint(out, "next_seq", next_seq);
    out.push_back('}');
}

void append_close(std::string& out, std::uint16_t code, std::string_view reason) {
    begin_control(out, "close");
    member_uint(out, "code", code);
    member_string(out, "reason", reason);
    out.push_back('}');
}

void append_replaced(std::string& out) {
    begin_control(out, "replaced");
    out.push_back('}');
}

void append_error(std::string& out, std::string_view error, std::string_view detail,
                  std::uint64_t expected_seq) {
    begin_control(out, "error");
    member_string(out, "error", error);
    member_string(out, "detail", detail);
    if (expected_seq != 0) {
        member_uint(out, "expected_seq", expected_seq);
    }
    out.push_back('}');
}

} // namespace transports::ws_session
