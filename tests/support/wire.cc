#include "tests/support/wire.h"

#include "proxy/ws/handshake.h"

#include <cctype>
#include <cstdlib>

namespace proxy::test {
namespace {

std::uint8_t byte_at(std::string_view s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto x = static_cast<unsigned char>(a[i]);
        const auto y = static_cast<unsigned char>(b[i]);
        if (std::tolower(x) != std::tolower(y)) {
            return false;
        }
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace

std::uint16_t Frame::close_code() const {
    if (payload.size() < 2) {
        return 1005;
    }
    return static_cast<std::uint16_t>((byte_at(payload, 0) << 8) | byte_at(payload, 1));
}

std::string Frame::close_reason() const {
    return payload.size() <= 2 ? std::string() : payload.substr(2);
}

std::vector<Frame> FrameParser::parse(std::string_view bytes) {
    std::vector<Frame> out;
    for (;;) {
        std::size_t p = offset_;
        if (bytes.size() < p + 2) {
            return out;
        }
        const std::uint8_t b0 = byte_at(bytes, p);
        const std::uint8_t b1 = byte_at(bytes, p + 1);
        p += 2;
        Frame f;
        f.fin = (b0 & 0x80) != 0;
        f.rsv = static_cast<std::uint8_t>((b0 >> 4) & 0x7);
        f.opcode = static_cast<std::uint8_t>(b0 & 0x0F);
        f.masked = (b1 & 0x80) != 0;
        std::uint64_t length = b1 & 0x7F;
        const std::size_t ext = length == 126 ? 2 : length == 127 ? 8 : 0;
        if (bytes.size() < p + ext + (f.masked ? 4 : 0)) {
            return out;
        }
        if (ext != 0) {
            length = 0;
            for (std::size_t i = 0; i < ext; ++i) {
                length = (length << 8) | byte_at(bytes, p + i);
            }
            p += ext;
        }
        if (f.masked) {
            for (std::size_t i = 0; i < 4; ++i) {
                f.mask[i] = byte_at(bytes, p + i);
            }
            p += 4;
        }
        if (length > bytes.size() - p) {
            return out;
        }
        const auto n = static_cast<std::size_t>(length);
        f.payload.assign(bytes.substr(p, n));
        if (f.masked) {
            for (std::size_t i = 0; i < n; ++i) {
                f.payload[i] = static_cast<char>(byte_at(f.payload, i) ^ f.mask[i % 4]);
            }
        }
        offset_ = p + n;
        out.push_back(std::move(f));
    }
}

std::vector<Message> messages_of(const std::vector<Frame>& frames) {
    std::vector<Message> out;
    Message current;
    bool in_message = false;
    for (const auto& f : frames) {
        if ((f.opcode & 0x8) != 0) {
            continue;
        }
        if (!in_message) {
            current = Message{f.opcode, {}, 0};
            in_message = true;
        }
        current.payload += f.payload;
        ++current.frames;
        if (f.fin) {
            out.push_back(std::move(current));
            in_message = false;
        }
    }
    return out;
}

std::string raw_frame(std::uint8_t opcode, std::string_view payload, bool fin, bool masked,
                      std::array<std::uint8_t, 4> mask, std::uint8_t rsv) {
    std::string out;
    out.push_back(static_cast<char>((fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0x0F)));
    const std::uint8_t mask_bit = masked ? 0x80 : 0;
    const std::size_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(mask_bit | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>((n >> 8) & 0xFF));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF));
        }
    }
    if (masked) {
        for (std::uint8_t m : mask) {
            out.push_back(static_cast<char>(m));
        }
    }
    const std::size_t start = out.size();
    out.append(payload);
    if (masked) {
        for (std::size_t i = 0; i < n; ++i) {
            out[start + i] = static_cast<char>(byte_at(out, start + i) ^ mask[i % 4]);
        }
    }
    return out;
}

std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin,
                         std::array<std::uint8_t, 4> mask, std::uint8_t rsv) {
    return raw_frame(opcode, payload, fin, true, mask, rsv);
}

std::string server_frame(std::uint8_t opcode, std::string_view payload, bool fin) {
    return raw_frame(opcode, payload, fin, false, {}, 0);
}

std::string close_body(std::uint16_t code, std::string_view reason) {
    if (code == 1005) {
        return {};
    }
    std::string out;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason);
    return out;
}

const std::string* HttpResponse::header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
        if (iequal(n, name)) {
            return &v;
        }
    }
    return nullptr;
}

std::size_t HttpResponse::count(std::string_view name) const {
    std::size_t c = 0;
    for (const auto& h : headers) {
        c += iequal(h.first, name) ? 1 : 0;
    }
    return c;
}

std::optional<HttpResponse> parse_response(std::string_view bytes) {
    const auto end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view head = bytes.substr(0, end);
    HttpResponse r;
    const auto line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    if (status_line.substr(0, 9) != "HTTP/1.1 " || status_line.size() < 12) {
        return std::nullopt;
    }
    r.status = static_cast<unsigned>(std::atoi(std::string(status_line.substr(9, 3)).c_str()));
    r.reason = std::string(status_line.size() > 13 ? status_line.substr(13) : "");
    std::string_view rest =
        line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
    while (!rest.empty()) {
        const auto eol = rest.find("\r\n");
        const std::string_view line = rest.substr(0, eol);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        r.headers.emplace_back(std::string(line.substr(0, colon)),
                               std::string(trim(line.substr(colon + 1))));
        if (eol == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(eol + 2);
    }
    r.size = end + 4;
    if (r.status != 101) {
        std::size_t length = 0;
        if (const std::string* cl = r.header("Content-Length")) {
            length = static_cast<std::size_t>(std::strtoull(cl->c_str(), nullptr, 10));
        }
        if (bytes.size() < r.size + length) {
            return std::nullopt;
        }
        r.body = std::string(bytes.substr(r.size, length));
        r.size += length;
    }
    return r;
}

std::vector<HttpResponse> parse_responses(std::string_view bytes) {
    std::vector<HttpResponse> out;
    while (auto r = parse_response(bytes)) {
        bytes.remove_prefix(r->size);
        out.push_back(std::move(*r));
    }
    return out;
}

std::string upgrade_request(std::string_view path, const std::vector<std::string>& extra,
                            std::string_view key) {
    std::string out = "GET ";
    out.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    if (!key.empty()) {
        out.append("Sec-WebSocket-Key: ").append(key).append("\r\n");
    }
    for (const auto& h : extra) {
        out.append(h).append("\r\n");
    }
    out.append("\r\n");
    return out;
}

std::string get_request(std::string_view path, const std::vector<std::string>& extra) {
    std::string out = "GET ";
    out.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (const auto& h : extra) {
        out.append(h).append("\r\n");
    }
    out.append("\r\n");
    return out;
}

std::string accept_for(std::string_view key) { return ws::websocket_accept(key); }

std::string pattern_bytes(std::size_t n, std::uint32_t seed) {
    std::string out(n, '\0');
    std::uint32_t x = seed * 2654435761u + 1u;
    for (auto& c : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x & 0xFF);
    }
    return out;
}

} // namespace proxy::test
