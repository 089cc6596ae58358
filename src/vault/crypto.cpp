#include "vault/crypto.h"

#include <sodium.h>

#include <cctype>

namespace fv::vault {

Status ensure_sodium() {
  if (sodium_init() < 0) return internal_error("libsodium failed to initialise");
  return Status::ok();
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }
SecretKey::SecretKey(SecretKey&& o) noexcept : bytes_(o.bytes_) { sodium_memzero(o.bytes_.data(), kSize); }
SecretKey& SecretKey::operator=(SecretKey&& o) noexcept {
  if (this != &o) {
    bytes_ = o.bytes_;
    sodium_memzero(o.bytes_.data(), kSize);
  }
  return *this;
}

SecretKey SecretKey::random() {
  SecretKey k;
  randombytes_buf(k.bytes_.data(), kSize);
  return k;
}

Result<SecretKey> SecretKey::from_bytes(std::span<const uint8_t> b) {
  if (b.size() != kSize) return invalid_argument("a key must be 32 bytes, got " + std::to_string(b.size()));
  SecretKey k;
  std::copy(b.begin(), b.end(), k.bytes_.begin());
  return k;
}

Result<SecretKey> SecretKey::from_hex(std::string_view hex) {
  while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.back()))) hex.remove_suffix(1);
  while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.front()))) hex.remove_prefix(1);
  if (hex.size() != 2 * kSize) return invalid_argument("a key must be 64 hex digits");
  SecretKey k;
  size_t len = 0;
  if (sodium_hex2bin(k.bytes_.data(), kSize, hex.data(), hex.size(), nullptr, &len, nullptr) != 0 || len != kSize)
    return invalid_argument("a key must be 64 hex digits");
  return k;
}

std::string SecretKey::to_hex() const { return vault::to_hex(span()); }

std::string SecretKey::id() const {
  static constexpr std::string_view kLabel = "facevault master key id v1";
  uint8_t out[8];
  crypto_generichash(out, sizeof out, reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size(), bytes_.data(),
                     kSize);
  return vault::to_hex({out, sizeof out});
}

Bytes seal(const SecretKey& key, std::span<const uint8_t> plain, std::string_view ad) {
  constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  Bytes out(kNonce + plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  randombytes_buf(out.data(), kNonce);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kNonce, &clen, plain.data(), plain.size(),
                                             reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), nullptr,
                                             out.data(), key.data());
  out.resize(kNonce + clen);
  return out;
}

Result<Bytes> open_sealed(const SecretKey& key, std::span<const uint8_t> sealed, std::string_view ad) {
  constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (sealed.size() < kNonce + kTag) return corrupt_data("sealed blob too short");
  Bytes out(sealed.size() - kNonce - kTag);
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &mlen, nullptr, sealed.data() + kNonce,
                                                 sealed.size() - kNonce, reinterpret_cast<const uint8_t*>(ad.data()),
                                                 ad.size(), sealed.data(), key.data()) != 0)
    return corrupt_data("decryption failed (wrong key or altered data)");
  out.resize(mlen);
  return out;
}

Bytes wrap_key(const SecretKey& kek, const SecretKey& key, std::string_view ad) { return seal(kek, key.span(), ad); }

Result<SecretKey> unwrap_key(const SecretKey& kek, std::span<const uint8_t> wrapped, std::string_view ad) {
  auto plain = open_sealed(kek, wrapped, ad);
  if (!plain.is_ok()) return plain.status();
  auto k = SecretKey::from_bytes(*plain);
  wipe(*plain);
  return k;
}

std::array<uint8_t, 32> blake2b_256(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::array<uint8_t, 32> out;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, out.size());
  crypto_generichash_update(&st, a.data(), a.size());
  crypto_generichash_update(&st, b.data(), b.size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::string sha256_hex(std::span<const uint8_t> bytes) {
  uint8_t out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, bytes.data(), bytes.size());
  return to_hex({out, sizeof out});
}

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string s(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(s.data(), s.size(), bytes.data(), bytes.size());
  s.pop_back();
  return s;
}

Result<Bytes> from_hex(std::string_view hex) {
  // An empty string is zero bytes; sodium_hex2bin's buffer arguments must not be null, which an
  // empty vector's data() is (UBSan; found by fuzz/vault_open_fuzzer on a damaged vault).
  if (hex.empty()) return Bytes{};
  Bytes out(hex.size() / 2);
  size_t len = 0;
  if (hex.size() % 2 || sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, nullptr) != 0)
    return invalid_argument("not hex");
  out.resize(len);
  return out;
}

std::string random_hex(size_t n) {
  Bytes b(n);
  randombytes_buf(b.data(), n);
  return to_hex(b);
}

void wipe(void* p, size_t n) {
  if (p && n) sodium_memzero(p, n);
}

}  // namespace fv::vault
