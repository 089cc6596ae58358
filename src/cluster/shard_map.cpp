#include "cluster/shard_map.h"

#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <utility>

namespace fv::cluster {
namespace {

uint64_t hash64(std::string_view a, std::string_view b = {}) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  if (!b.empty()) {
    const unsigned char sep = 0;  // "ab"+"c" and "a"+"bc" must not collide
    crypto_hash_sha256_update(&st, &sep, 1);
    crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(b.data()), b.size());
  }
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, out);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | out[i];
  return v;
}

}  // namespace

int shard_of(std::string_view subject_uid, int shards) {
  if (shards <= 1) return 0;
  return static_cast<int>(hash64(subject_uid) % static_cast<uint64_t>(shards));
}

std::vector<std::string> replicas_of(int shard, const std::vector<std::string>& nodes, int replicas) {
  std::vector<std::pair<uint64_t, std::string>> scored;
  scored.reserve(nodes.size());
  const std::string s = std::to_string(shard);
  for (const auto& n : nodes) scored.emplace_back(hash64(n, s), n);
  // Ties (practically impossible) fall back to the name, so the order never depends on input order.
  std::sort(scored.begin(), scored.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  scored.erase(std::unique(scored.begin(), scored.end(),
                           [](const auto& x, const auto& y) { return x.second == y.second; }),
               scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && static_cast<int>(i) < replicas; ++i) out.push_back(scored[i].second);
  return out;
}

std::string shard_stream_name(int shard) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fv-shard-%02d", shard);
  return buf;
}

std::string shard_subject_prefix(int shard) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fv.shard.%02d", shard);
  return buf;
}

}  // namespace fv::cluster
