#include "proxy/http/response.h"

#include "proxy/core/text.h"

namespace proxy::http {

std::string_view reason_phrase(unsigned status) noexcept {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

namespace {

void append_status_and_headers(std::string& out, unsigned status,
                               const std::vector<std::pair<std::string, std::string>>& headers) {
    out.append("HTTP/1.1 ");
    out.append(std::to_string(status));
    out.push_back(' ');
    out.append(reason_phrase(status));
    out.append("\r\n");
    for (const auto& [name, value] : headers) {
        out.append(name);
        out.append(": ");
        out.append(value);
        out.append("\r\n");
    }
}

} // namespace

std::string build_stream_head(unsigned status,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              bool close) {
    std::string out;
    out.reserve(256);
    append_status_and_headers(out, status, headers);
    if (close) {
        out.append("Connection: close\r\n");
    }
    out.append("\r\n");
    return out;
}

std::string build_response(unsigned status,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           std::string_view body, bool close) {
    std::string out;
    out.reserve(128 + body.size());
    append_status_and_headers(out, status, headers);
    out.append("Content-Length: ");
    out.append(std::to_string(body.size()));
    out.append("\r\n");
    if (close) {
        out.append("Connection: close\r\n");
    }
    out.append("\r\n");
    out.append(body);
    return out;
}

std::string json_error(unsigned status, std::string_view code, std::string_view detail,
                       bool close, const std::vector<std::pair<std::string, std::string>>& extra) {
    std::string body = "{\"error\":";
    core::append_json_string(body, code);
    body.append(",\"detail\":");
    core::append_json_string(body, detail);
    body.push_back('}');
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
    headers.insert(headers.end(), extra.begin(), extra.end());
    return build_response(status, headers, body, close);
}

} // namespace proxy::http
