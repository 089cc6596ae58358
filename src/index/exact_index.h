// ExactIndex: every template scored against the query (brute force), on int8 codes.
//
// Each vector is stored as `dim` int8 codes (offset binary, see kernels.h) and one float
// scale: 512 + 4 bytes for a 512-D template, a quarter of float32. On LFW the quantisation
// costs nothing measurable (docs/benchmarks.md, `facevault eval ident --index float|exact`).
// The scan is memory-bound: it reads dim + 4 bytes per template, split across threads by
// rows; batched queries read each row once for the whole batch.
//
// This is the default index below IndexOptions::ann_min_size templates.
#pragma once

#include <unordered_map>

#include "index/secure_io.h"
#include "index/vector_index.h"

namespace fv::index {

class SealedReader;

class ExactIndex final : public VectorIndex {
 public:
  explicit ExactIndex(size_t dim);

  std::string kind() const override { return "exact"; }
  size_t dim() const override { return dim_; }
  size_t size() const override { return ids_.size(); }
  bool contains(Id id) const override { return slot_.count(id) > 0; }

  Status add(std::span<const Id> ids, std::span<const float> vectors) override;
  Result<size_t> remove(std::span<const Id> ids) override;
  Result<SearchResult> search(std::span<const float> query, size_t k, const IdFilter* filter = nullptr) const override;
  Result<std::vector<SearchResult>> search_batch(std::span<const float> queries, size_t k,
                                                 const IdFilter* filter = nullptr) const override;
  void set_threads(int threads) override { threads_ = threads < 1 ? 1 : threads; }
  IndexStats stats() const override;
  Status save(const std::filesystem::path& path, const IndexKey& key) const override;

  // The body of a saved file after the kind tag (load_index dispatches here).
  static Result<std::unique_ptr<ExactIndex>> load_body(SealedReader& in);
  Status save_body(SealedWriter& out) const;

  // The stored code of an id (tests check that removal overwrote it).
  const uint8_t* code_data() const { return codes_.data(); }
  size_t code_capacity_bytes() const { return codes_.capacity(); }

 private:
  size_t dim_;
  int threads_ = 1;
  SecureBuffer<uint8_t> codes_;  // size() × dim_, offset-binary int8
  SecureBuffer<float> scales_;   // per vector: value = (code − 128) × scale
  std::vector<Id> ids_;
  std::unordered_map<Id, size_t> slot_;
};

}  // namespace fv::index
