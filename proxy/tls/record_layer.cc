#include "proxy/tls/record_layer.h"

#include <algorithm>
#include <cstring>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string_view>

namespace proxy::tls {

namespace {

constexpr std::size_t kHeader = 5;
constexpr std::size_t kTag = 16;
constexpr std::size_t kMaxPlain = 16 * 1024;        // RFC 8446 §5.1
constexpr std::size_t kMaxCipher = kMaxPlain + 256; // §5.2
constexpr std::size_t kMaxHandshakeMessage = 64 * 1024;

// Content types (§5.1) and alerts (§6).
constexpr std::uint8_t kChangeCipherSpec = 20;
constexpr std::uint8_t kAlert = 21;
constexpr std::uint8_t kHandshake = 22;
constexpr std::uint8_t kApplicationData = 23;
constexpr std::uint8_t kCloseNotify = 0;
constexpr std::uint8_t kUnexpectedMessage = 10;
constexpr std::uint8_t kBadRecordMac = 20;
constexpr std::uint8_t kRecordOverflow = 22;
constexpr std::uint8_t kIllegalParameter = 47;
constexpr std::uint8_t kDecodeError = 50;
constexpr std::uint8_t kProtocolVersion = 70;
constexpr std::uint8_t kInternalError = 80;
constexpr std::uint8_t kUserCanceled = 90;
constexpr std::uint8_t kKeyUpdate = 24;

struct SuiteInfo {
    std::size_t key_size;
    std::size_t hash_size;
};

SuiteInfo info_of(Suite suite) {
    switch (suite) {
    case Suite::Aes128Gcm:
        return {16, 32};
    case Suite::Aes256Gcm:
        return {32, 48};
    case Suite::Chacha20Poly1305:
        break;
    }
    return {32, 32};
}

/// The suite's AEAD, fetched once for the process (OpenSSL 3.0 locks on every fetch).
const EVP_CIPHER* cipher_of(Suite suite) {
    static EVP_CIPHER* const aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    static EVP_CIPHER* const aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    static EVP_CIPHER* const chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    switch (suite) {
    case Suite::Aes128Gcm:
        return aes128;
    case Suite::Aes256Gcm:
        return aes256;
    case Suite::Chacha20Poly1305:
        break;
    }
    return chacha;
}

/// The suite's hash, fetched once for the process.
const EVP_MD* digest_of(Suite suite) {
    static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    static EVP_MD* const sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
    return suite == Suite::Aes256Gcm ? sha384 : sha256;
}

/// HMAC (RFC 2104) with a fetched digest: EVP_Q_mac and EVP_MAC_init would look the HMAC
/// and the digest up by name on every call, which costs more than the hashing itself here.
bool hmac(const EVP_MD* md, std::span<const std::uint8_t> key,
          std::span<const std::uint8_t> data, std::span<std::uint8_t> out) {
    const auto block = static_cast<std::size_t>(EVP_MD_get_block_size(md));
    const auto size = static_cast<std::size_t>(EVP_MD_get_size(md));
    std::array<std::uint8_t, 128> pad{};
    std::array<std::uint8_t, 64> inner{};
    if (md == nullptr || key.size() > block || block > pad.size() || size > inner.size() ||
        out.size() != size) {
        return false;
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    auto with_pad = [&](std::uint8_t byte) {
        pad.fill(byte);
        for (std::size_t i = 0; i < key.size(); ++i) {
            pad[i] = static_cast<std::uint8_t>(key[i] ^ byte);
        }
        return EVP_DigestInit_ex2(ctx, md, nullptr) == 1 &&
               EVP_DigestUpdate(ctx, pad.data(), block) == 1;
    };
    unsigned int n = 0;
    const bool ok = ctx != nullptr && with_pad(0x36) &&
                    EVP_DigestUpdate(ctx, data.data(), data.size()) == 1 &&
                    EVP_DigestFinal_ex(ctx, inner.data(), &n) == 1 && with_pad(0x5c) &&
                    EVP_DigestUpdate(ctx, inner.data(), size) == 1 &&
                    EVP_DigestFinal_ex(ctx, out.data(), &n) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(pad.data(), pad.size());
    OPENSSL_cleanse(inner.data(), inner.size());
    return ok;
}

/// HKDF-Expand-Label(secret, label, "", out.size()) (§7.1) for outputs up to one hash long.
bool expand_label(Suite suite, std::span<const std::uint8_t> secret, std::string_view label,
                  std::span<std::uint8_t> out) {
    constexpr std::string_view kPrefix = "tls13 ";
    std::array<std::uint8_t, 2 + 1 + 32 + 1 + 1> hkdf_label{};
    std::size_t n = 0;
    hkdf_label[n++] = static_cast<std::uint8_t>(out.size() >> 8);
    hkdf_label[n++] = static_cast<std::uint8_t>(out.size() & 0xff);
    hkdf_label[n++] = static_cast<std::uint8_t>(kPrefix.size() + label.size());
    std::memcpy(hkdf_label.data() + n, kPrefix.data(), kPrefix.size());
    n += kPrefix.size();
    std::memcpy(hkdf_label.data() + n, label.data(), label.size());
    n += label.size();
    hkdf_label[n++] = 0; // empty context
    hkdf_label[n++] = 1; // T(1): one block is enough for out.size() <= hash size
    const EVP_MD* md = digest_of(suite);
    std::array<std::uint8_t, 64> block{};
    const auto size = static_cast<std::size_t>(EVP_MD_get_size(md));
    const bool ok = out.size() <= size &&
                    hmac(md, secret, std::span(hkdf_label.data(), n), std::span(block.data(), size));
    if (ok) {
        std::memcpy(out.data(), block.data(), out.size());
    }
    OPENSSL_cleanse(block.data(), block.size());
    return ok;
}

/// The per-record nonce: the IV XOR the sequence number (§5.3).
std::array<std::uint8_t, 12> nonce_of(const std::array<std::uint8_t, 12>& iv, std::uint64_t seq) {
    std::array<std::uint8_t, 12> nonce = iv;
    for (int i = 0; i < 8; ++i) {
        nonce[static_cast<std::size_t>(11 - i)] ^= static_cast<std::uint8_t>(seq >> (8 * i));
    }
    return nonce;
}

auto as_uchar(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }

/// Encrypts one record into a string sized for it beforehand.
class Sealer {
  public:
    Sealer(EVP_CIPHER_CTX* aead, unsigned char* out) noexcept : aead_(aead), out_(out) {}
    bool feed(const unsigned char* bytes, std::size_t size) {
        int n = 0;
        if (size == 0) {
            return true;
        }
        if (EVP_EncryptUpdate(aead_, out_ + done_, &n, bytes, static_cast<int>(size)) != 1) {
            return false;
        }
        done_ += static_cast<std::size_t>(n);
        return true;
    }
    bool finish() {
        int n = 0;
        if (EVP_EncryptFinal_ex(aead_, out_ + done_, &n) != 1) {
            return false;
        }
        done_ += static_cast<std::size_t>(n);
        return EVP_CIPHER_CTX_ctrl(aead_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTag),
                                   out_ + done_) == 1;
    }
    std::size_t done() const noexcept { return done_; }

  private:
    EVP_CIPHER_CTX* aead_;
    unsigned char* out_;
    std::size_t done_ = 0;
};

} // namespace

std::unique_ptr<RecordLayer> RecordLayer::create(Suite suite, const TrafficState& read,
                                                 const TrafficState& write) {
    if (cipher_of(suite) == nullptr) {
        return nullptr;
    }
    std::unique_ptr<RecordLayer> self(new RecordLayer(suite));
    self->read_.traffic = read;
    self->write_.traffic = write;
    if (!self->install(self->read_, false) || !self->install(self->write_, true)) {
        return nullptr;
    }
    return self;
}

RecordLayer::~RecordLayer() {
    EVP_CIPHER_CTX_free(read_.aead);
    EVP_CIPHER_CTX_free(write_.aead);
    OPENSSL_cleanse(read_.traffic.secret.data(), read_.traffic.secret.size());
    OPENSSL_cleanse(write_.traffic.secret.data(), write_.traffic.secret.size());
}

bool RecordLayer::install(Direction& d, bool encrypt) {
    const SuiteInfo info = info_of(suite_);
    if (d.traffic.secret_size != info.hash_size) {
        return false;
    }
    const std::span<const std::uint8_t> secret(d.traffic.secret.data(), d.traffic.secret_size);
    std::array<std::uint8_t, 32> key{};
    bool ok = expand_label(suite_, secret, "key", std::span(key.data(), info.key_size)) &&
              expand_label(suite_, secret, "iv", d.iv);
    if (ok && d.aead == nullptr) {
        d.aead = EVP_CIPHER_CTX_new();
        ok = d.aead != nullptr;
    }
    if (ok) {
        ok = (encrypt ? EVP_EncryptInit_ex2(d.aead, cipher_of(suite_), key.data(), nullptr, nullptr)
                      : EVP_DecryptInit_ex2(d.aead, cipher_of(suite_), key.data(), nullptr,
                                            nullptr)) == 1;
    }
    OPENSSL_cleanse(key.data(), key.size());
    return ok;
}

bool RecordLayer::update(Direction& d, bool encrypt) {
    const SuiteInfo info = info_of(suite_);
    std::array<std::uint8_t, 48> next{};
    const std::span<const std::uint8_t> secret(d.traffic.secret.data(), d.traffic.secret_size);
    if (!expand_label(suite_, secret, "traffic upd", std::span(next.data(), info.hash_size))) {
        return false;
    }
    d.traffic.secret = next;
    d.traffic.sequence = 0;
    OPENSSL_cleanse(next.data(), next.size());
    return install(d, encrypt);
}

void RecordLayer::seal(std::uint8_t type, std::span<const std::span<const std::byte>> pieces,
                       std::size_t size, std::string& wire) {
    const std::size_t body = size + 1 + kTag;
    const std::size_t at = wire.size();
    wire.resize(at + kHeader + body);
    auto* record = reinterpret_cast<unsigned char*>(wire.data() + at);
    record[0] = kApplicationData;
    record[1] = 3;
    record[2] = 3;
    record[3] = static_cast<unsigned char>(body >> 8);
    record[4] = static_cast<unsigned char>(body & 0xff);
    const auto nonce = nonce_of(write_.iv, write_.traffic.sequence++);
    int n = 0;
    Sealer sealer(write_.aead, record + kHeader);
    bool ok = EVP_EncryptInit_ex2(write_.aead, nullptr, nullptr, nonce.data(), nullptr) == 1 &&
              EVP_EncryptUpdate(write_.aead, nullptr, &n, record, kHeader) == 1;
    for (const auto& piece : pieces) {
        ok = ok && sealer.feed(as_uchar(piece.data()), piece.size());
    }
    ok = ok && sealer.feed(&type, 1) && sealer.finish() && sealer.done() == size + 1;
    if (!ok) {
        // OpenSSL refused a key it accepted before: nothing sane can be sent any more.
        wire.resize(at);
        failed_ = true;
    }
}

void RecordLayer::write(std::span<const std::span<const std::byte>> pieces, std::string& wire) {
    if (failed_) {
        return;
    }
    // Records of at most kMaxPlain plain bytes, each gathering what it can of the pieces.
    std::array<std::span<const std::byte>, 16> parts;
    std::size_t count = 0;
    std::size_t size = 0;
    for (auto piece : pieces) {
        while (!piece.empty()) {
            const std::size_t take = std::min(piece.size(), kMaxPlain - size);
            parts[count++] = piece.first(take);
            size += take;
            piece = piece.subspan(take);
            if (size == kMaxPlain || count == parts.size()) {
                seal(kApplicationData, std::span(parts.data(), count), size, wire);
                count = 0;
                size = 0;
            }
        }
    }
    if (count > 0) {
        seal(kApplicationData, std::span(parts.data(), count), size, wire);
    }
}

void RecordLayer::close_notify(std::string& wire) {
    if (failed_) {
        return;
    }
    static constexpr std::byte kBody[2] = {std::byte{1}, std::byte{kCloseNotify}};
    const std::span<const std::byte> one[1] = {kBody};
    seal(kAlert, one, sizeof(kBody), wire);
}

core::Unexpected RecordLayer::fail(std::uint8_t alert, std::string_view why,
                                                std::string& wire) {
    if (!failed_ && alert != 0) {
        const std::byte body[2] = {std::byte{2}, std::byte{alert}};
        const std::span<const std::byte> one[1] = {body};
        seal(kAlert, one, sizeof(body), wire);
    }
    failed_ = true;
    return core::Unexpected{core::Error{core::Code::Tls, core::Side::Client,
                                        "TLS record failed: " + std::string(why)}};
}

std::uint8_t RecordLayer::open(std::span<const std::byte> record, std::string& plain) {
    const std::size_t cipher_size = record.size() - kHeader - kTag;
    const std::size_t at = plain.size();
    plain.resize(at + cipher_size);
    auto* out = reinterpret_cast<unsigned char*>(plain.data() + at);
    const auto nonce = nonce_of(read_.iv, read_.traffic.sequence);
    int n = 0;
    int last = 0;
    std::array<unsigned char, kTag> tag;
    std::memcpy(tag.data(), record.data() + kHeader + cipher_size, kTag);
    const bool ok =
        EVP_DecryptInit_ex2(read_.aead, nullptr, nullptr, nonce.data(), nullptr) == 1 &&
        EVP_DecryptUpdate(read_.aead, nullptr, &n, as_uchar(record.data()), kHeader) == 1 &&
        EVP_DecryptUpdate(read_.aead, out, &n, as_uchar(record.data() + kHeader),
                          static_cast<int>(cipher_size)) == 1 &&
        EVP_CIPHER_CTX_ctrl(read_.aead, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTag),
                            tag.data()) == 1 &&
        EVP_DecryptFinal_ex(read_.aead, out + n, &last) == 1;
    if (!ok) {
        plain.resize(at);
        return 0;
    }
    ++read_.traffic.sequence;
    // TLSInnerPlaintext: content, its type, zero padding (§5.2).
    std::size_t end = at + static_cast<std::size_t>(n + last);
    while (end > at && plain[end - 1] == '\0') {
        --end;
    }
    if (end == at) {
        plain.resize(at);
        return 0xff; // no content type at all
    }
    const auto type = static_cast<std::uint8_t>(plain[end - 1]);
    plain.resize(end - 1);
    return type;
}

std::uint8_t RecordLayer::on_handshake(std::string_view bytes, std::string& wire) {
    handshake_.append(bytes);
    while (handshake_.size() >= 4) {
        const auto* h = reinterpret_cast<const unsigned char*>(handshake_.data());
        const std::size_t size = (std::size_t{h[1]} << 16) | (std::size_t{h[2]} << 8) | h[3];
        if (h[0] != kKeyUpdate) {
            return kUnexpectedMessage; // a server receives no other post-handshake message
        }
        if (size != 1) {
            return kDecodeError;
        }
        if (handshake_.size() < 4 + size) {
            return 0;
        }
        const std::uint8_t request = h[4];
        if (request > 1) {
            return kIllegalParameter;
        }
        if (handshake_.size() > 5) {
            return kUnexpectedMessage; // nothing may follow a KeyUpdate under the old key (§5.1)
        }
        std::string().swap(handshake_);
        if (!update(read_, false)) {
            return kInternalError;
        }
        if (request == 1) {
            // update_requested: answer with our own KeyUpdate (update_not_requested) under the
            // current key, then move our key on (§4.6.3).
            static constexpr std::byte kAnswer[5] = {std::byte{kKeyUpdate}, std::byte{0},
                                                     std::byte{0}, std::byte{1}, std::byte{0}};
            const std::span<const std::byte> one[1] = {kAnswer};
            seal(kHandshake, one, sizeof(kAnswer), wire);
            if (!update(write_, true)) {
                return kInternalError;
            }
        }
        return 0;
    }
    return handshake_.size() > kMaxHandshakeMessage ? kDecodeError : 0;
}

core::Result<void> RecordLayer::read(std::span<const std::byte> in, std::string& plain,
                                     std::string& wire) {
    if (failed_) {
        return core::fail(core::Code::Tls, core::Side::Client, "input after a TLS failure");
    }
    while (!in.empty() && !peer_closed_) {
        std::span<const std::byte> record;
        if (!partial_.empty() || in.size() < kHeader) {
            // A record split over reads: collect it (rare with loopback and LAN peers).
            const std::size_t want_header = partial_.size() < kHeader ? kHeader - partial_.size() : 0;
            std::size_t take = std::min(want_header, in.size());
            partial_.append(reinterpret_cast<const char*>(in.data()), take);
            in = in.subspan(take);
            if (partial_.size() < kHeader) {
                return {};
            }
            const auto* h = reinterpret_cast<const unsigned char*>(partial_.data());
            const std::size_t size = (std::size_t{h[3]} << 8) | h[4];
            if (size > kMaxCipher) {
                return fail(kRecordOverflow, "record over 16 KiB + 256", wire);
            }
            take = std::min(kHeader + size - partial_.size(), in.size());
            partial_.append(reinterpret_cast<const char*>(in.data()), take);
            in = in.subspan(take);
            if (partial_.size() < kHeader + size) {
                return {};
            }
            record = std::as_bytes(std::span(partial_.data(), partial_.size()));
        } else {
            const auto* h = reinterpret_cast<const unsigned char*>(in.data());
            const std::size_t size = (std::size_t{h[3]} << 8) | h[4];
            if (size > kMaxCipher) {
                return fail(kRecordOverflow, "record over 16 KiB + 256", wire);
            }
            if (in.size() < kHeader + size) {
                partial_.assign(reinterpret_cast<const char*>(in.data()), in.size());
                return {};
            }
            record = in.first(kHeader + size);
            in = in.subspan(kHeader + size);
        }
        const auto* h = reinterpret_cast<const unsigned char*>(record.data());
        if (h[1] != 3 || h[2] != 3) {
            return fail(kProtocolVersion, "record version is not TLS 1.2's 0x0303", wire);
        }
        if (h[0] != kApplicationData) {
            return fail(kUnexpectedMessage,
                        h[0] == kChangeCipherSpec ? "change_cipher_spec after the handshake"
                                                  : "unprotected record after the handshake",
                        wire);
        }
        if (record.size() < kHeader + 1 + kTag) {
            return fail(kBadRecordMac, "record too short to be authentic", wire);
        }
        const std::size_t before = plain.size();
        const std::uint8_t type = open(record, plain);
        if (!partial_.empty()) {
            std::string().swap(partial_); // an idle connection keeps no record buffer
        }
        if (type == 0) {
            return fail(kBadRecordMac, "decryption failed or bad record mac", wire);
        }
        if (plain.size() - before > kMaxPlain) {
            plain.resize(before);
            return fail(kRecordOverflow, "plain text over 16 KiB", wire);
        }
        if (type == kApplicationData) {
            continue;
        }
        const std::string content = plain.substr(before);
        plain.resize(before);
        if (type == kAlert) {
            if (content.size() != 2) {
                return fail(kDecodeError, "malformed alert", wire);
            }
            const auto level = static_cast<std::uint8_t>(content[0]);
            const auto what = static_cast<std::uint8_t>(content[1]);
            if (what == kCloseNotify) {
                peer_closed_ = true; // what follows is the peer's FIN
            } else if (!(level == 1 && what == kUserCanceled)) {
                failed_ = true;
                return core::fail(core::Code::Tls, core::Side::Client,
                                  "TLS record failed: the peer sent alert " + std::to_string(what));
            }
        } else if (type == kHandshake && !content.empty()) {
            if (const std::uint8_t alert = on_handshake(content, wire); alert != 0) {
                return fail(alert, "unexpected post-handshake message", wire);
            }
        } else {
            return fail(kUnexpectedMessage, "unexpected record content type", wire);
        }
    }
    return {};
}

} // namespace proxy::tls
