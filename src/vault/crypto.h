// Crypto for the vault, all from libsodium: random keys that zero themselves, XChaCha20-Poly1305
// sealing with associated data, BLAKE2b for the audit chain, SHA-256 for provenance.
// Callers must have called sodium_init() (main() does; tests call ensure_sodium()).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fv::vault {

using Bytes = std::vector<uint8_t>;

Status ensure_sodium();

// A 256-bit secret key. Zeroed when destroyed or moved from; never printed by accident.
class SecretKey {
 public:
  static constexpr size_t kSize = 32;
  SecretKey() { bytes_.fill(0); }
  ~SecretKey();
  SecretKey(const SecretKey& o) : bytes_(o.bytes_) {}
  SecretKey& operator=(const SecretKey& o) { bytes_ = o.bytes_; return *this; }
  SecretKey(SecretKey&& o) noexcept;
  SecretKey& operator=(SecretKey&& o) noexcept;

  static SecretKey random();
  static Result<SecretKey> from_bytes(std::span<const uint8_t> b);
  static Result<SecretKey> from_hex(std::string_view hex);  // 64 hex digits, surrounding space ignored
  std::string to_hex() const;
  // A public, non-secret identifier of the key (keyed BLAKE2b of a constant), 16 hex digits.
  std::string id() const;
  const uint8_t* data() const { return bytes_.data(); }
  std::span<const uint8_t> span() const { return {bytes_.data(), kSize}; }

 private:
  std::array<uint8_t, kSize> bytes_;
};

// XChaCha20-Poly1305 (IETF): returns nonce(24) ‖ ciphertext ‖ tag(16). `ad` binds the blob to
// its place (table, row owner) so a blob copied elsewhere does not open.
Bytes seal(const SecretKey& key, std::span<const uint8_t> plain, std::string_view ad);
// kCorruptData when the key, the AD or the bytes are wrong.
Result<Bytes> open_sealed(const SecretKey& key, std::span<const uint8_t> sealed, std::string_view ad);

// A key wrapped (sealed) by another key, and unwrapped.
Bytes wrap_key(const SecretKey& kek, const SecretKey& key, std::string_view ad);
Result<SecretKey> unwrap_key(const SecretKey& kek, std::span<const uint8_t> wrapped, std::string_view ad);

std::array<uint8_t, 32> blake2b_256(std::span<const uint8_t> a, std::span<const uint8_t> b = {});
std::string sha256_hex(std::span<const uint8_t> bytes);
std::string to_hex(std::span<const uint8_t> bytes);
Result<Bytes> from_hex(std::string_view hex);
// n random bytes as 2n lower-case hex digits.
std::string random_hex(size_t n);

inline std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
template <class T>
std::span<const uint8_t> as_bytes(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

// Overwrites a buffer with zeros in a way the compiler cannot drop.
void wipe(void* p, size_t n);
template <class T>
void wipe(std::vector<T>& v) { wipe(v.data(), v.size() * sizeof(T)); v.clear(); }
inline void wipe(std::string& s) { wipe(s.data(), s.size()); s.clear(); }

}  // namespace fv::vault
