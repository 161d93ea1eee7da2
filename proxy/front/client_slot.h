#pragma once
// ClientSlot: the admission ticket of one client connection (global and per-IP caps). Moves
// with the connection from the HTTP phase to the relay; releasing is automatic and once.

#include <string>
#include <utility>

#include "proxy/context.h"

namespace proxy {

/// RAII holder of one admitted client connection.
class ClientSlot {
  public:
    ClientSlot() = default;
    ClientSlot(Context& context, std::string ip) : context_(&context), ip_(std::move(ip)) {}
    ClientSlot(ClientSlot&& other) noexcept
        : context_(std::exchange(other.context_, nullptr)), ip_(std::move(other.ip_)) {}
    ClientSlot& operator=(ClientSlot&& other) noexcept {
        if (this != &other) {
            release();
            context_ = std::exchange(other.context_, nullptr);
            ip_ = std::move(other.ip_);
        }
        return *this;
    }
    ClientSlot(const ClientSlot&) = delete;
    ClientSlot& operator=(const ClientSlot&) = delete;
    ~ClientSlot() { release(); }

    /// The client's IP address.
    const std::string& ip() const noexcept { return ip_; }
    /// Gives the slot back (idempotent).
    void release() {
        if (context_ != nullptr) {
            context_->release_client(ip_);
            context_ = nullptr;
        }
    }

  private:
    Context* context_ = nullptr;
    std::string ip_;
};

} // namespace proxy
