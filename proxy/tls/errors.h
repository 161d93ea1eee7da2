#pragma once
// OpenSSL's error queue as text, for Error contexts and log lines (proxy/tls only).

#include <string>

namespace proxy::tls {

/// Every error queued in this thread's OpenSSL error queue, oldest first, joined by "; ";
/// empties the queue. "" when it was empty.
std::string openssl_reasons();

} // namespace proxy::tls
