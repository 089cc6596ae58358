// Choosing and building an index: exact below a configurable size, IVF above it (DESIGN §2).
#pragma once

#include "index/exact_index.h"
#include "index/ivf_index.h"

namespace fv::index {

struct IndexOptions {
  std::string kind = "auto";       // auto | exact | ivf
  size_t ann_min_size = 16000000;  // auto: IVF from this many templates on (see docs/index.md)
  int threads = 1;
  IvfOptions ivf;
};

// An index holding (ids, vectors), trained on them when it is an IVF.
Result<std::unique_ptr<VectorIndex>> build_index(const IndexOptions& options, size_t dim, std::span<const Id> ids,
                                                 std::span<const float> vectors);

}  // namespace fv::index
