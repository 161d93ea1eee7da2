#pragma once
// Result<T>: the expected-like return type of every fallible function on the data path.
// It implements only the subset of std::expected's API that the project uses, so that
// under C++23 it can become `template <class T> using Result = std::expected<T, Error>`.

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace proxy::core {

/// What went wrong. Each value maps to one log reason and one HTTP status or close code.
enum class Code : std::uint8_t {
    Ok,                 ///< Not an error; the default of a value-initialised Error.
    BadRequest,         ///< Malformed HTTP request or handshake (400).
    NotFound,           ///< No route matches the request path (404).
    UpgradeRequired,    ///< WebSocket handshake without a supported version (426).
    Forbidden,          ///< Origin not allowed (403).
    HeaderTooLarge,     ///< Header bytes or header count over the limit (431).
    HeaderTimeout,      ///< Request head not complete within header_timeout (408).
    PayloadTooLarge,    ///< Body over its limit (413).
    NotImplemented,     ///< Method or feature the proxy does not support (501).
    Overloaded,         ///< Connection or session cap reached (503).
    ProtocolError,      ///< RFC 6455 framing violation (close 1002).
    InvalidUtf8,        ///< Text payload or close reason is not UTF-8 (close 1007).
    MessageTooBig,      ///< WebSocket message over max_message (close 1009).
    PolicyViolation,    ///< Rate or queue policy broken (close 1008).
    BackendUnreachable, ///< TCP connect to the backend failed (502).
    BackendTimeout,     ///< Backend connect or handshake did not finish in time (504).
    BackendRejected,    ///< Backend answered the upgrade with a status other than 101.
    BackendBadHandshake, ///< Backend's 101 failed validation (502).
    PeerTimeout,        ///< A peer did not answer a ping or close in time.
    Io,                 ///< Socket error reported by libuv (context holds uv_err_name).
    Tls,                ///< TLS handshake or record failure (context holds OpenSSL's reason).
    Config,             ///< Invalid configuration (context holds file:line:col lines).
    Internal,           ///< Impossible state or resource failure inside the proxy.
};

/// Which party caused the error; picks the log level and whom to blame in metrics.
enum class Side : std::uint8_t { Client, Backend, Internal, Config };

/// One error: a code, who caused it, and a human-readable context for the log line.
struct Error {
    Code code = Code::Ok;
    Side side = Side::Internal;
    std::string context;
};

/// Stable, lower-case, snake_case name of a code, used in logs and metric labels.
std::string_view to_string(Code code) noexcept;
/// Stable name of a side ("client", "backend", "internal", "config").
std::string_view to_string(Side side) noexcept;

/// Wrapper that marks an Error as the failure value when constructing a Result.
struct Unexpected {
    Error error;
};

/// Shorthand: `return fail(Code::BadRequest, Side::Client, "no Host header");`.
inline Unexpected fail(Code code, Side side, std::string context = {}) {
    return Unexpected{Error{code, side, std::move(context)}};
}

/// Holds either a T or an Error. Accessing the wrong alternative is a bug (asserted by
/// std::get). `[[nodiscard]]` so that ignored failures do not compile silently.
template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Unexpected u) : v_(std::in_place_index<1>, std::move(u.error)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

  private:
    std::variant<T, Error> v_;
};

/// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Unexpected u) : error_(std::move(u.error)), ok_(false) {}

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const Error& error() const& { return error_; }
    Error&& error() && { return std::move(error_); }

  private:
    Error error_;
    bool ok_ = true;
};

} // namespace proxy::core
