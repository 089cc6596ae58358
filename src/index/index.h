// Choosing and building an index: exact below a configurable size, IVF above it;
// the HNSW graph (graph_index.h) when a vault asks for it.
#pragma once

#include "index/exact_index.h"
#include "index/graph_index.h"
#include "index/ivf_index.h"

namespace fv::index {

struct IndexOptions {
  std::string kind = "auto";       // auto | exact | ivf | hnsw
  size_t ann_min_size = 16000000;  // auto: IVF from this many templates on (see docs/index.md)
  int threads = 1;
  IvfOptions ivf;
  GraphOptions graph;
};

// An index holding (ids, vectors), trained on them when it is an IVF.
// kind "hnsw": a GraphIndex (the re-rank store path of options.graph; threads from options).
Result<std::unique_ptr<VectorIndex>> build_index(const IndexOptions& options, size_t dim, std::span<const Id> ids,
                                                 std::span<const float> vectors);

}  // namespace fv::index
