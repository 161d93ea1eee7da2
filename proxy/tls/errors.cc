#include "proxy/tls/errors.h"

#include <openssl/err.h>

namespace proxy::tls {

std::string openssl_reasons() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        if (!out.empty()) {
            out.append("; ");
        }
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        out.append(buf);
    }
    return out;
}

} // namespace proxy::tls
