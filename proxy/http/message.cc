#include "proxy/http/message.h"

namespace proxy::http {
namespace {

char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

const std::string* Message::find(std::string_view name) const noexcept {
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            return &h.value;
        }
    }
    return nullptr;
}

std::size_t Message::count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            ++n;
        }
    }
    return n;
}

bool Message::has_token(std::string_view name, std::string_view token) const noexcept {
    for (const auto& h : headers) {
        if (!iequals(h.name, name)) {
            continue;
        }
        for (auto element : split_list(h.value)) {
            if (iequals(element, token)) {
                return true;
            }
        }
    }
    return false;
}

std::string_view Request::path() const noexcept {
    std::string_view t(target);
    return t.substr(0, t.find('?'));
}

std::string_view Request::query() const noexcept {
    std::string_view t(target);
    const auto q = t.find('?');
    return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::vector<std::string_view> split_list(std::string_view value) {
    std::vector<std::string_view> out;
    while (!value.empty()) {
        const auto comma = value.find(',');
        auto element = trim(value.substr(0, comma));
        if (!element.empty()) {
            out.push_back(element);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        value.remove_prefix(comma + 1);
    }
    return out;
}

bool is_token(std::string_view s) noexcept {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

} // namespace proxy::http
