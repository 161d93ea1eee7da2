#pragma once
// Base64 (RFC 4648): the standard alphabet with padding for long-poll and SSE binary payloads
// and the WebSocket accept key, the URL-safe one without padding for session ids. Pure code.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace proxy::core {

/// Standard base64 with padding (RFC 4648 §4).
std::string base64_encode(std::span<const std::byte> data);
/// Standard base64 with padding; nullopt on any invalid character or bad padding.
std::optional<std::string> base64_decode(std::string_view text);
/// URL-safe base64 without padding (RFC 4648 §5), for session ids.
std::string base64url_encode(std::span<const std::byte> data);

} // namespace proxy::core
