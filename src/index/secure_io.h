// Building blocks shared by the index implementations:
//   SecureBuffer — a growable array that zeroes every buffer it lets go of (std::vector's
//     growth frees the old buffer with the templates still in it; after an erasure those bytes
//     would linger in freed heap memory);
//   TopK — the k best (score, id) pairs;
//   SealedWriter / SealedReader — an index file encrypted and authenticated as one stream
//     (libsodium secretstream, XChaCha20-Poly1305, 1 MiB chunks, truncation detected).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <sodium.h>

#include "index/large_pages.h"
#include "index/vector_index.h"

namespace fv::index {

template <class T>
class SecureBuffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  SecureBuffer() = default;
  ~SecureBuffer() { release(); }
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;
  SecureBuffer(SecureBuffer&& o) noexcept { swap(o); }
  SecureBuffer& operator=(SecureBuffer&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }
  // False while the buffer lives in storage given to place_in.
  bool owns_storage() const { return owned_; }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }

  void reserve(size_t cap) {
    if (cap <= cap_) return;
    T* n = static_cast<T*>(allocate_large(cap * sizeof(T)));  // 2 MiB pages when large
    if (!n) std::abort();  // out of memory: nothing sensible to return to
    if (size_) std::memcpy(n, p_, size_ * sizeof(T));
    const size_t keep = size_;
    release();  // zeroes and frees the old buffer (and resets the size)
    p_ = n;
    cap_ = cap;
    size_ = keep;
  }
  void resize(size_t n) {
    if (n > cap_) reserve(std::max(n, cap_ + cap_ / 2));
    if (n > size_) std::memset(p_ + size_, 0, (n - size_) * sizeof(T));
    else if (n < size_) sodium_memzero(p_ + n, (size_ - n) * sizeof(T));
    size_ = n;
  }
  void append(const T* src, size_t n) {
    if (n == 0) return;  // memcpy from or to a null pointer is undefined even for 0 bytes
    if (size_ + n > cap_) reserve(std::max(size_ + n, cap_ + cap_ / 2 + 16));
    std::memcpy(p_ + size_, src, n * sizeof(T));
    size_ += n;
  }
  void push_back(const T& v) { append(&v, 1); }
  // Shrinks the allocation to the size (wiping the old one): after large erasures.
  void shrink_to_fit() {
    if (cap_ == size_) return;
    SecureBuffer n;
    if (size_) {
      n.reserve(size_);
      n.append(p_, size_);
    }
    swap(n);
  }
  void clear() { resize(0); }
  // Moves the contents to `dst` (room for size() elements, owned by the caller, which must
  // outlive this buffer or call place_in again first) and wipes and frees the old storage. The
  // buffer then lives there until it must grow, when it moves to storage of its own again (the
  // region it leaves is wiped, not freed). Lets many small buffers share one allocation in the
  // order they are read.
  void place_in(T* dst) {
    if (size_) std::memcpy(dst, p_, size_ * sizeof(T));
    const size_t keep = size_;
    release();
    p_ = keep ? dst : nullptr;
    size_ = cap_ = keep;
    owned_ = false;
  }

 private:
  void release() {
    if (p_) {
      sodium_memzero(p_, cap_ * sizeof(T));
      if (owned_) std::free(p_);
    }
    p_ = nullptr;
    size_ = cap_ = 0;
    owned_ = true;
  }
  void swap(SecureBuffer& o) {
    std::swap(owned_, o.owned_);
    std::swap(p_, o.p_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }
  T* p_ = nullptr;
  size_t size_ = 0, cap_ = 0;
  bool owned_ = true;
};

// The k highest scores seen; ties broken by the smaller id so results are deterministic.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k + 1); }
  size_t k() const { return k_; }
  size_t size() const { return heap_.size(); }
  bool full() const { return heap_.size() >= k_; }
  // A candidate scoring `s` can enter only if s > threshold() (or the list is not full).
  float threshold() const { return full() && k_ ? heap_.front().first : -1e30f; }
  bool would_enter(float s, Id id) const {
    if (k_ == 0) return false;
    if (!full()) return true;
    return better(s, id, heap_.front().first, heap_.front().second);
  }
  void push(float s, Id id) {
    if (!would_enter(s, id)) return;
    if (full()) {
      std::pop_heap(heap_.begin(), heap_.end(), cmp);
      heap_.pop_back();
    }
    heap_.emplace_back(s, id);
    std::push_heap(heap_.begin(), heap_.end(), cmp);
  }
  void merge(const TopK& o) {
    for (auto& [s, id] : o.heap_) push(s, id);
  }
  // Best first.
  std::vector<std::pair<float, Id>> sorted() const {
    auto v = heap_;
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return better(a.first, a.second, b.first, b.second); });
    return v;
  }
  SearchResult result() const {
    SearchResult r;
    for (auto& [s, id] : sorted()) {
      r.ids.push_back(id);
      r.scores.push_back(s);
    }
    return r;
  }

 private:
  static bool better(float sa, Id ia, float sb, Id ib) { return sa > sb || (sa == sb && ia < ib); }
  // Min-heap on "better": the front is the worst kept entry.
  static bool cmp(const std::pair<float, Id>& a, const std::pair<float, Id>& b) {
    return better(a.first, a.second, b.first, b.second);
  }
  size_t k_;
  std::vector<std::pair<float, Id>> heap_;
};

// Writes path.tmp, then renames it over path (a crash leaves the old file or the new one).
class SealedWriter {
 public:
  static Result<std::unique_ptr<SealedWriter>> create(const std::filesystem::path& path, const IndexKey& key);
  ~SealedWriter();
  Status write(const void* p, size_t n);
  template <class T>
  Status write_pod(const T& v) { return write(&v, sizeof(T)); }
  template <class T>
  Status write_vec(const T* p, size_t n) {
    FV_RETURN_IF_ERROR(write_pod<uint64_t>(n));
    return write(p, n * sizeof(T));
  }
  Status finish();

 private:
  SealedWriter() = default;
  Status flush(bool final);
  std::filesystem::path path_, tmp_;
  FILE* f_ = nullptr;
  crypto_secretstream_xchacha20poly1305_state st_{};
  std::vector<uint8_t> buf_, out_;
  bool done_ = false;
};

class SealedReader {
 public:
  static Result<std::unique_ptr<SealedReader>> open(const std::filesystem::path& path, const IndexKey& key);
  ~SealedReader();
  Status read(void* p, size_t n);
  template <class T>
  Status read_pod(T& v) { return read(&v, sizeof(T)); }
  // Reads a length-prefixed array written by write_vec; refuses lengths above `max`.
  template <class T, class Buf>
  Status read_vec(Buf& out, size_t max) {
    uint64_t n = 0;
    FV_RETURN_IF_ERROR(read_pod(n));
    if (n > max) return corrupt_data("index file: an array is longer than the header allows");
    // A length the rest of the file cannot hold is refused before anything is allocated
    // (a std::vector would throw, a SecureBuffer abort, on a length near 2^36).
    if (n > bytes_left() / sizeof(T)) return corrupt_data("index file: an array is longer than the file");
    out.resize(n);
    return read(out.data(), n * sizeof(T));
  }
  // The stream must end here (final tag, no trailing bytes).
  Status expect_end();
  // An upper bound on the plaintext still to come: what is buffered plus what is left of the
  // file (ciphertext is never shorter than its plaintext).
  uint64_t bytes_left() const;

 private:
  SealedReader() = default;
  Status next_chunk();
  FILE* f_ = nullptr;
  crypto_secretstream_xchacha20poly1305_state st_{};
  std::vector<uint8_t> buf_, in_;
  size_t pos_ = 0;
  bool final_ = false;
  uint64_t file_size_ = 0;
};

}  // namespace fv::index
