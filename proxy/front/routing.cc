#include "proxy/front/routing.h"

#include "proxy/core/text.h"

namespace proxy {

bool is_reserved_query_param(std::string_view name) noexcept {
    return name == "transport" || name == "session" || name == "ack" || name == "seq" ||
           name == "batch" || name == "protocol";
}

std::optional<std::string> decode_query_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c != '%') {
            out.push_back(c);
        } else {
            const auto decoded = core::percent_escape_at(value, i);
            if (!decoded) {
                return std::nullopt;
            }
            out.push_back(*decoded);
            i += 2;
        }
    }
    return out;
}

std::string backend_target(const config::Route& route, const http::Request& request) {
    std::string_view backend(route.backend.path);
    std::string_view backend_query;
    if (const auto q = backend.find('?'); q != std::string_view::npos) {
        backend_query = backend.substr(q + 1);
        backend = backend.substr(0, q);
    }
    std::string out(backend);
    const std::string_view path = request.path();
    if (route.prefix && path.size() > route.path.size()) {
        std::string_view suffix = path.substr(route.path.size());
        while (!suffix.empty() && suffix.front() == '/') {
            suffix.remove_prefix(1);
        }
        if (!suffix.empty()) {
            if (out.empty() || out.back() != '/') {
                out.push_back('/');
            }
            out.append(suffix);
        }
    }
    std::string query(backend_query);
    std::string_view rest = request.query();
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view param = rest.substr(0, amp);
        const std::string_view name = param.substr(0, param.find('='));
        if (!param.empty() && !is_reserved_query_param(name)) {
            if (!query.empty()) {
                query.push_back('&');
            }
            query.append(param);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(amp + 1);
    }
    if (!query.empty()) {
        out.push_back('?');
        out.append(query);
    }
    return out;
}

std::vector<http::Header> forwarded_headers(const config::Route& route,
                                            const http::Request& request) {
    std::vector<http::Header> out;
    for (const auto& h : request.headers) {
        bool forward = http::iequals(h.name, "Cookie") || http::iequals(h.name, "Authorization");
        for (const auto& extra : route.forward_headers) {
            forward = forward || http::iequals(h.name, extra);
        }
        if (forward) {
            out.push_back(h);
        }
    }
    return out;
}

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c + ('a' - 'A'));
        }
    }
    return out;
}

bool matches_entry(std::string_view entry, const std::string& origin) {
    const std::string e = lower(entry);
    if (e == "*") {
        return true;
    }
    if (e == origin) {
        return true;
    }
    // scheme://*.domain[:port] matches strict subdomains only.
    const auto star = e.find("://*.");
    if (star == std::string::npos) {
        return false;
    }
    const std::string scheme = e.substr(0, star + 3);
    const std::string domain = e.substr(star + 4);  // ".domain[:port]"
    if (origin.compare(0, scheme.size(), scheme) != 0) {
        return false;
    }
    const std::string host = origin.substr(scheme.size());
    return host.size() > domain.size() &&
           host.compare(host.size() - domain.size(), domain.size(), domain) == 0 &&
           host.find('/') == std::string::npos;
}

} // namespace

OriginVerdict check_origin(const config::Route& route, const http::Request& request,
                           std::string_view scheme) {
    const std::string* origin_header = request.find("Origin");
    if (origin_header == nullptr) {
        return OriginVerdict::NoOrigin;
    }
    if (request.count("Origin") != 1) {
        return OriginVerdict::Rejected;
    }
    const std::string origin = lower(*origin_header);
    if (!route.origins.empty()) {
        for (const auto& entry : route.origins) {
            if (origin == "null" ? lower(entry) == "null" : matches_entry(entry, origin)) {
                return OriginVerdict::Allowed;
            }
        }
        return OriginVerdict::Rejected;
    }
    const std::string* host = request.find("Host");
    if (host == nullptr || origin == "null") {
        return OriginVerdict::Rejected;
    }
    return origin == lower(std::string(scheme) + "://" + *host) ? OriginVerdict::Allowed
                                                                : OriginVerdict::Rejected;
}

} // namespace proxy
