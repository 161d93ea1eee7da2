#include "proxy/core/signal.h"

#include <cstring>
#include <netdb.h>
#include <uv.h>

namespace proxy::core {
namespace {

void signal_cb(uv_signal_t* handle, int /*signum*/) noexcept {
    if (auto* self = static_cast<SignalWatcher*>(handle->data)) {
        self->fire();
    }
}

void signal_closed_cb(uv_handle_t* handle) noexcept {
    delete reinterpret_cast<uv_signal_t*>(handle);
}

} // namespace

SignalWatcher::SignalWatcher(Loop& loop, int signum, std::function<void()> on_signal)
    : HandleOwner(loop), signal_(new uv_signal_t), on_signal_(std::move(on_signal)) {
    uv_signal_init(loop.raw(), signal_);
    signal_->data = this;
    uv_signal_start(signal_, signal_cb, signum);
    uv_unref(reinterpret_cast<uv_handle_t*>(signal_));
}

SignalWatcher::~SignalWatcher() {
    close_handles();
}

void SignalWatcher::close_handles() noexcept {
    if (signal_ == nullptr) {
        return;
    }
    signal_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(signal_), signal_closed_cb);
    signal_ = nullptr;
}

void SignalWatcher::fire() {
    on_signal_();
}

Result<std::string> resolve_host(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int r = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (r != 0 || res == nullptr) {
        return fail(Code::Config, Side::Config,
                    "cannot resolve " + host + ": " + gai_strerror(r));
    }
    std::string found;
    for (int pass = 0; pass < 2 && found.empty(); ++pass) {
        for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
            char ip[INET6_ADDRSTRLEN] = {0};
            if (pass == 0 && a->ai_family == AF_INET) {
                uv_ip4_name(reinterpret_cast<sockaddr_in*>(a->ai_addr), ip, sizeof(ip));
            } else if (pass == 1 && a->ai_family == AF_INET6) {
                uv_ip6_name(reinterpret_cast<sockaddr_in6*>(a->ai_addr), ip, sizeof(ip));
            }
            if (ip[0] != '\0') {
                found = ip;
                break;
            }
        }
    }
    freeaddrinfo(res);
    if (found.empty()) {
        return fail(Code::Config, Side::Config, "no address for " + host);
    }
    return found;
}

} // namespace proxy::core
