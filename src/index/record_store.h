// RecordStore: the full-precision copy the approximate index re-ranks from (one RerankRecord
// per template), in one of two places:
//   memory — a SecureBuffer (fastest; counts toward the index's memory);
//   file   — fixed-size records sealed one by one (XChaCha20-Poly1305, random nonce, the slot
//            number as associated data so records cannot be moved), read with pread: the
//            full-precision templates live on disk, encrypted with a key that exists only in
//            this process's memory, so the file is useless once the process ends.
// erase() overwrites the slot (zeros in memory; zeros on disk followed by fdatasync) before it
// returns: removal is physical, not a tombstone.
#pragma once

#include <filesystem>
#include <mutex>
#include <vector>

#include "index/secure_io.h"

namespace fv::index {

// The re-rank record: a template at 16 bits (int16 per dimension, s = max|x| / 32767) and its
// scale, 2·dim + 4 bytes. Why not the exact scan's int8: its ranking error (~4e-4 in cosine)
// exceeds the gap between a probe's 10th and 11th neighbours often enough that an int8
// re-rank caps recall@10 against float32 at 0.9945 on LFW probes (measured: docs/index.md);
// at 16 bits the error is ~1e-6 and the float32 order is kept, at half float32's bytes.
struct RerankRecord {
  static size_t bytes(size_t dim) { return 2 * dim + sizeof(float); }
  // The record in int16 slots: dim values, then the scale's bytes in the last two.
  static size_t values(size_t dim) { return bytes(dim) / sizeof(int16_t); }
  // out: values(dim) slots.
  static void encode(const float* x, size_t dim, int16_t* out);
  // ≈ q·x, with the query at full precision.
  static float score(const int16_t* rec, const float* q, size_t dim);
};

class RecordStore {
 public:
  // record_bytes: plaintext size of one record. path empty: memory mode.
  static Result<std::unique_ptr<RecordStore>> create(size_t record_bytes, const std::filesystem::path& path);
  ~RecordStore();

  size_t record_bytes() const { return rec_; }
  bool on_disk() const { return fd_ >= 0; }
  // Writes n records (plain: n × record_bytes) and returns their slots in `slots`.
  Status put(const uint8_t* plain, size_t n, uint32_t* slots, int threads = 1);
  // Reads (and, on disk, decrypts and authenticates) one record into `plain`.
  Status get(uint32_t slot, uint8_t* plain) const;
  // Reads n records into plain (n × record_bytes), as get() each. On disk, the records not in
  // the page cache are all requested from the device before the first is waited for, so a
  // re-rank of R records costs about one device read, not R of them in a row.
  Status get_many(const uint32_t* slots, size_t n, uint8_t* plain) const;
  Status erase(const uint32_t* slots, size_t n);
  size_t live() const { return live_; }
  size_t memory_bytes() const { return mem_.capacity() + free_.capacity() * sizeof(uint32_t); }
  size_t disk_bytes() const { return on_disk() ? size_t(slots_) * sealed_bytes() : 0; }

 private:
  RecordStore() = default;
  Status open_sealed(uint32_t slot, const uint8_t* sealed, uint8_t* plain) const;
  size_t sealed_bytes() const { return rec_ + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES; }
  size_t rec_ = 0;
  int fd_ = -1;
  std::filesystem::path path_;
  IndexKey key_ = IndexKey::random();
  SecureBuffer<uint8_t> mem_;
  std::vector<uint32_t> free_;
  uint32_t slots_ = 0;
  size_t live_ = 0;
};

}  // namespace fv::index
