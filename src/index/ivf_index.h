// IvfIndex: the approximate index for large galleries (IVF over compact codes, re-ranked).
//
//   train:  PCA to `code_dim` dimensions (by default the fewest multiple-of-64 axes holding 97 %
//           of the sample's variance, at most dim·7/8: 128 for face templates, 448 for
//           isotropic 512-D data or a sample of fewer than 2·dim rows), then k-means into `nlist`
//           cells; the cell centroids are held in an HNSW graph (hnswlib) so that assigning a
//           template or finding a query's nearest cells costs ~log(nlist) distances, not nlist.
//   codes:  each template as 4-bit per PCA dimension (per-dimension ranges of ±4σ from the
//           training sample): 64 bytes for face templates (224 at 448 dimensions), + 8 bytes id
//           + 4 bytes re-rank slot in memory.
//   search: the query's `nprobe` nearest cells are scanned with the 4-bit kernel, keeping the
//           best `rerank` eligible candidates (filter applied while scanning; more cells are
//           scanned when fewer than k eligible ones were found); those are re-scored exactly
//           from their 16-bit records (RerankRecord) in the RecordStore (in memory, or
//           encrypted on disk), and the best k returned.
//   remove: swap-remove inside the cell (the moved code overwrites the removed one, the
//           vacated tail is zeroed) and erase of the re-rank record: physical at once.
#pragma once

#include <atomic>
#include <memory>

#include "index/record_store.h"
#include "index/secure_io.h"
#include "index/vector_index.h"

namespace hnswlib {
template <typename T>
class HierarchicalNSW;
}

namespace fv::index {

struct IvfOptions {
  size_t nlist = 0;        // 0: 4·√expected_size (or √ of the training rows), within [16, 65536]
  size_t expected_size = 0;
  // Cells scanned per query; 0: half of them (kDefaultProbeShare). On face-shaped galleries
  // cells do not gather a probe's neighbours, and about half of them must be read to keep
  // the exact scan's identifications (docs/benchmarks.md, "Closing the gap").
  size_t nprobe = 0;
  size_t code_dim = 0;     // 0: chosen at training (97 % of the variance, ≤ dim·7/8); else a multiple of 64
  size_t rerank = 100;     // candidates re-scored at full precision (≥ k is enforced)
  size_t train_max = 0;    // training sample cap; 0: max(65536, min(64·nlist, 2^19))
  int kmeans_iters = 8;
  size_t hnsw_m = 16, hnsw_ef_construction = 80, hnsw_ef_search = 0;  // 0: 2·nprobe
  size_t hnsw_ef_add = 16;  // graph search width for assigning templates to cells
  std::filesystem::path store_path;  // re-rank records: empty = memory, else an encrypted file
  uint64_t seed = 1234;
  int threads = 1;
};

class IvfIndex final : public VectorIndex {
 public:
  IvfIndex(size_t dim, IvfOptions options);
  ~IvfIndex() override;

  // The training rows used (at most) for nlist cells when IvfOptions::train_max is 0.
  static size_t default_train_rows(size_t nlist);
  // Learns the projection, the quantiser ranges and the cells from a sample (rows × dim).
  Status train(std::span<const float> sample);
  bool trained() const { return trained_; }

  std::string kind() const override { return "ivf"; }
  size_t dim() const override { return dim_; }
  size_t size() const override { return size_; }
  bool contains(Id id) const override;

  Status add(std::span<const Id> ids, std::span<const float> vectors) override;
  Result<size_t> remove(std::span<const Id> ids) override;
  Result<SearchResult> search(std::span<const float> query, size_t k, const IdFilter* filter = nullptr) const override;
  Result<std::vector<SearchResult>> search_batch(std::span<const float> queries, size_t k,
                                                 const IdFilter* filter = nullptr) const override;
  void set_threads(int threads) override { opt_.threads = threads < 1 ? 1 : threads; }
  IndexStats stats() const override;
  Status save(const std::filesystem::path& path, const IndexKey& key) const override;

  // Gives back the slack of the cells' arrays and packs every cell's codes into one allocation
  // in cell order (after a bulk load or a large erasure).
  void shrink();
  void set_nprobe(size_t nprobe) {
    opt_.nprobe = nprobe;
    apply_ef();
  }
  void set_rerank(size_t rerank) { opt_.rerank = rerank; }
  const IvfOptions& options() const { return opt_; }
  // The cells a search scans: options().nprobe, or the default share of nlist() when it is 0.
  size_t nprobe() const;
  size_t nlist() const { return lists_.size(); }
  // Mean fraction of the gallery the last searches scanned (diagnostics for the benchmark).
  double scanned_fraction() const;

  static Result<std::unique_ptr<IvfIndex>> load_body(SealedReader& in, const std::filesystem::path& store_path = {});
  Status save_body(SealedWriter& out) const;

 private:
  struct List {
    SecureBuffer<uint8_t> codes;  // size × code_dim/2 (packed 4-bit)
    std::vector<Id> ids;
    std::vector<uint32_t> recs;   // re-rank store slot
  };
  Result<SearchResult> search_impl(std::span<const float> query, size_t k, const IdFilter* filter, int threads) const;
  void project(const float* x, float* y) const;  // y = P (x − mean), code_dim values
  void encode(const float* y, uint8_t* packed) const;
  Status build_quantizer(const float* centroids, size_t n);
  size_t nearest_list(const float* y) const;
  void apply_ef();
  // The n cells nearest y; nearest first when `ranked`, else in no particular order (cheaper
  // when n is a large share of the cells: the scan reads them in address order anyway).
  std::vector<size_t> probe_order(const float* y, size_t n, bool ranked = true) const;

  size_t dim_;
  IvfOptions opt_;
  bool trained_ = false;
  size_t cd_ = 0;                 // code_dim
  std::vector<float> mean_;       // dim
  std::vector<float> pca_;        // cd × dim, orthonormal rows
  std::vector<float> lo_, step_;  // per code dimension
  std::vector<float> pm_;         // P·mean (un-centres the query's projection)
  std::vector<float> centroids_;  // nlist × (cd + 1): the last value is |c|² (for L2 in the graph)
  std::unique_ptr<struct L2NormSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw_;
  // Every cell's codes after shrink(), in cell order; declared before lists_ so that the cells
  // (which wipe their part of it when they go) are destroyed first.
  SecureBuffer<uint8_t> arena_;
  std::vector<List> lists_;
  std::unique_ptr<RecordStore> store_;
  size_t size_ = 0;
  mutable std::atomic<uint64_t> searches_{0}, scanned_{0};
};

}  // namespace fv::index
