#include "index/index.h"

#include <algorithm>
#include <cstring>

#include "index/parallel.h"

namespace fv::index {

Result<std::vector<SearchResult>> VectorIndex::search_batch(std::span<const float> queries, size_t k,
                                                            const IdFilter* filter) const {
  if (dim() == 0 || queries.size() % dim() != 0) return invalid_argument("search_batch: queries are not a multiple of the dimension");
  std::vector<SearchResult> out;
  for (size_t q = 0; q < queries.size() / dim(); ++q) {
    FV_ASSIGN_OR_RETURN(auto r, search(queries.subspan(q * dim(), dim()), k, filter));
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<SearchResult>> search_each_in_parallel(std::span<const float> queries, size_t dim, int threads,
                                                          const std::function<Result<SearchResult>(std::span<const float>)>& one) {
  if (dim == 0 || queries.size() % dim != 0) return invalid_argument("search_batch: queries are not a multiple of the dimension");
  const size_t nq = queries.size() / dim;
  threads = std::max(1, threads);
  std::vector<SearchResult> out(nq);
  std::vector<Status> errs(threads);
  run_parallel(threads, [&](int t) {
    for (size_t q = t; q < nq; q += threads) {
      auto r = one(queries.subspan(q * dim, dim));
      if (!r.is_ok()) {
        errs[t] = r.status();
        return;
      }
      out[q] = std::move(r).value();
    }
  });
  for (auto& e : errs) FV_RETURN_IF_ERROR(e);
  return out;
}

Result<std::unique_ptr<VectorIndex>> load_index(const std::filesystem::path& path, const IndexKey& key,
                                                const std::filesystem::path& store_path) {
  FV_ASSIGN_OR_RETURN(auto in, SealedReader::open(path, key));
  char tag[8];
  FV_RETURN_IF_ERROR(in->read(tag, 8));
  std::unique_ptr<VectorIndex> idx;
  if (std::memcmp(tag, "exact\0\0\1", 8) == 0) {
    FV_ASSIGN_OR_RETURN(idx, ExactIndex::load_body(*in));
  } else if (std::memcmp(tag, "ivf\0\0\0\0\2", 8) == 0) {
    FV_ASSIGN_OR_RETURN(idx, IvfIndex::load_body(*in, store_path));
  } else if (std::memcmp(tag, "hnsw\0\0\0", 7) == 0 && (tag[7] == 2 || tag[7] == GraphIndex::kFormat)) {
    FV_ASSIGN_OR_RETURN(idx, GraphIndex::load_body(*in, store_path, tag[7]));
  } else if (std::memcmp(tag, "ivf\0\0\0\0\1", 8) == 0 || std::memcmp(tag, "hnsw\0\0\0\1", 8) == 0) {
    // Version 1 kept int8 re-rank records; the index is a cache of the vault: rebuild it.
    return corrupt_data(path.string() + ": an index saved by an older facevault (8-bit re-rank records): rebuild it");
  } else {
    return corrupt_data(path.string() + ": unknown index kind");
  }
  FV_RETURN_IF_ERROR(in->expect_end());
  return idx;
}

Result<std::unique_ptr<VectorIndex>> build_index(const IndexOptions& options, size_t dim, std::span<const Id> ids,
                                                 std::span<const float> vectors) {
  const bool ivf = options.kind == "ivf" || (options.kind == "auto" && ids.size() >= options.ann_min_size);
  if (options.kind != "auto" && options.kind != "exact" && options.kind != "ivf" && options.kind != "hnsw")
    return invalid_argument("unknown index kind '" + options.kind + "' (auto, exact, ivf, hnsw)");
  if (options.kind == "hnsw") {
    GraphOptions g = options.graph;
    g.threads = options.threads;
    FV_ASSIGN_OR_RETURN(auto idx, GraphIndex::create(dim, g));
    FV_RETURN_IF_ERROR(idx->add(ids, vectors));
    idx->shrink();
    return std::unique_ptr<VectorIndex>(std::move(idx));
  }
  if (!ivf) {
    auto idx = std::make_unique<ExactIndex>(dim);
    idx->set_threads(options.threads);
    FV_RETURN_IF_ERROR(idx->add(ids, vectors));
    return std::unique_ptr<VectorIndex>(std::move(idx));
  }
  IvfOptions o = options.ivf;
  o.threads = options.threads;
  if (!o.expected_size) o.expected_size = ids.size();
  auto idx = std::make_unique<IvfIndex>(dim, o);
  FV_RETURN_IF_ERROR(idx->train(vectors));
  FV_RETURN_IF_ERROR(idx->add(ids, vectors));
  idx->shrink();
  return std::unique_ptr<VectorIndex>(std::move(idx));
}

}  // namespace fv::index
