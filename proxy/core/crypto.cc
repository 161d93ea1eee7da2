#include "proxy/core/crypto.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace proxy::core {

namespace {

// A failure here means the process cannot do what it promised (unpredictable ids, a
// handshake digest), so it stops rather than continue insecurely (STYLE.md §5).
[[noreturn]] void crash(const char* what) {
    std::fprintf(stderr, "fatal: %s failed\n", what);
    std::abort();
}

} // namespace

void random_bytes(std::span<std::byte> out) {
    // RAND_bytes takes an int length, so very large requests go in slices.
    while (!out.empty()) {
        const std::size_t n = std::min<std::size_t>(out.size(), INT_MAX);
        if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
            crash("RAND_bytes");
        }
        out = out.subspan(n);
    }
}

std::array<std::byte, 4> MaskSource::next() {
    std::array<std::byte, 4> key{};
    if (pool_.size() - used_ < key.size()) {
        random_bytes(pool_);
        used_ = 0;
    }
    std::memcpy(key.data(), pool_.data() + used_, key.size());
    used_ += key.size();
    return key;
}

std::array<std::uint8_t, 20> sha1(std::string_view data) {
    std::array<std::uint8_t, 20> digest{};
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha1(), nullptr) != 1 ||
        size != digest.size()) {
        crash("EVP_Digest(SHA-1)");
    }
    return digest;
}

} // namespace proxy::core
