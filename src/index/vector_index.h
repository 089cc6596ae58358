// VectorIndex: the one interface the service searches through (shaped like FAISS's Index):
// add(ids, vectors), remove(ids), search(query, k, filter) → (ids, scores), size(), save/load.
//
// Contract every implementation keeps (tests/index checks each):
//   - scores are inner products of L2-normalised vectors (cosine), best first;
//   - `filter` is applied inside the search: a candidate the filter refuses never takes a place
//     in the top-k, so a search returns min(k, eligible) results even when every one of the
//     nearest vectors is ineligible (purpose limitation);
//   - remove() is physical: when it returns, the removed vectors' bytes are overwritten in every
//     memory structure the index holds (and in its scratch files), not merely marked deleted;
//   - save() writes nothing in plaintext: the file is encrypted and authenticated with a key
//     the caller holds (the service wraps it with the vault's master key);
//   - no exception leaves the module: errors are Status / Result;
//   - searches may run concurrently with each other; add() and remove() need the index to
//     themselves (the service serialises them).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"


namespace fv::index {

using Id = int64_t;

// Which ids a search may return. Implementations call it only for candidates that would
// enter the current top list, so an expensive predicate costs little.
class IdFilter {
 public:
  virtual ~IdFilter() = default;
  virtual bool allowed(Id id) const = 0;
};

// A filter from a function (tests, the service's purpose filter).
class FunctionFilter final : public IdFilter {
 public:
  explicit FunctionFilter(std::function<bool(Id)> f) : f_(std::move(f)) {}
  bool allowed(Id id) const override { return f_(id); }

 private:
  std::function<bool(Id)> f_;
};

struct SearchResult {
  std::vector<Id> ids;       // best first
  std::vector<float> scores;  // cosine similarity, same order
};

// 256-bit key for saved index files and scratch files. Zeroed on destruction.
struct IndexKey {
  std::array<uint8_t, 32> bytes{};
  static IndexKey random();
  ~IndexKey();
};

struct IndexStats {
  size_t size = 0;
  size_t memory_bytes = 0;        // heap held by the index (codes, ids, lists, centroids, maps)
  size_t scan_bytes_per_item = 0;  // bytes the search reads for each template it scores
  size_t disk_bytes = 0;          // encrypted scratch files (re-rank store), 0 if none
};

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;

  virtual std::string kind() const = 0;  // "exact", "ivf" or "hnsw"
  virtual size_t dim() const = 0;
  virtual size_t size() const = 0;
  virtual bool contains(Id id) const = 0;

  // vectors: ids.size() × dim() floats, L2-normalised. An id already present, or repeated,
  // is kInvalidArgument and nothing is added.
  virtual Status add(std::span<const Id> ids, std::span<const float> vectors) = 0;
  // Physically removes the ids that are present; returns how many were. Unknown ids are
  // ignored (erasure is idempotent).
  virtual Result<size_t> remove(std::span<const Id> ids) = 0;
  // Top min(k, eligible) by cosine, best first; `filter` may be null (everything eligible).
  virtual Result<SearchResult> search(std::span<const float> query, size_t k, const IdFilter* filter = nullptr) const = 0;
  // nq = queries.size() / dim() queries; the default runs them one by one.
  virtual Result<std::vector<SearchResult>> search_batch(std::span<const float> queries, size_t k,
                                                         const IdFilter* filter = nullptr) const;

  // Threads one search may use (>= 1).
  virtual void set_threads(int threads) = 0;
  virtual IndexStats stats() const = 0;

  virtual Status save(const std::filesystem::path& path, const IndexKey& key) const = 0;
};

// Runs `one` on each query (dim values each), queries spread over `threads` threads, each
// query on one thread: search_batch for indexes whose single search does not split well.
Result<std::vector<SearchResult>> search_each_in_parallel(std::span<const float> queries, size_t dim, int threads,
                                                          const std::function<Result<SearchResult>(std::span<const float>)>& one);

// Reads a file written by any implementation's save(). store_path: where an approximate
// index keeps its re-rank records once loaded (empty: memory; else a new encrypted file, as
// GraphOptions::store_path) — at 10 M they are ~10 GB, more than memory should hold.
Result<std::unique_ptr<VectorIndex>> load_index(const std::filesystem::path& path, const IndexKey& key,
                                                const std::filesystem::path& store_path = {});

}  // namespace fv::index
