// The scale benchmark behind `facevault bench index` and bench/index_bench: builds a synthetic
// gallery (synthetic.h, optionally with real LFW templates mixed in as the mated pairs),
// streams it into an index through the production add/search/remove code, computes float32
// exact ground truth in the same pass, and reports one JSON object.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "index/graph_index.h"
#include "index/ivf_index.h"
#include "index/vector_index.h"

namespace fv::index {

struct BenchConfig {
  size_t size = 100000;
  size_t dim = 512;
  std::string kind = "exact";    // exact | ivf | hnsw (`facevault bench index --kind ann` is ivf; bench/index_bench adds faiss-flat, faiss-hnsw, hnswlib)
  std::vector<int> threads = {1, 2};  // single-query latency is measured with each
  size_t queries = 200;
  size_t k = 10;
  // embed JSONL: LFW mixed in as in `facevault eval ident`: the first image of each identity
  // with >= 2 images joins the gallery, its other images are the mated queries, and the
  // identities with one image are non-mated searches (up to `nonmated` of them).
  std::string lfw;
  size_t nonmated = SIZE_MAX;
  // "nonmated" (as above) or "gallery": single-image identities join the gallery as
  // distractors and there are no non-mated searches (the layout of the figures made before
  // the identification figures existed).
  std::string lfw_singles = "nonmated";
  // Identification figures (identification.h) with LFW: candidate list length, as an
  // investigation list, and the vault's search threshold (< 0: none) whose candidates must
  // all be in it.
  size_t list = 50;
  double candidate_threshold = -1;
  // Shape of the random templates (synthetic.h): "isotropic" (uniform on the sphere) or "face"
  // (Gaussian with the mean and covariance of the templates in `lfw`, which it then needs).
  std::string gallery = "isotropic";
  // Where the LFW gallery enters the stream: "end" (after every synthetic template) or
  // "spread" (evenly through it, as enrollments of real people would arrive).
  std::string lfw_order = "end";
  IvfOptions ivf;
  GraphOptions graph;
  uint64_t seed = 42;
  size_t removals = 1000;
  bool ground_truth = true;      // float32 exact top-k for recall (costs Q·N·D multiply-adds)
  // A cache for galleries that take hours to build (the graph at 10 M: ~2 h here). save_synthetic:
  // once the synthetic templates are in (before any LFW template, so lfw_order "end"), the
  // index is saved to this file, sealed with a random key written beside it (FILE.json, with
  // the settings that made the gallery). load_synthetic: the index starts from such a file
  // instead of being built; the synthetic templates are still generated, for the ground truth.
  // Only synthetic (random) templates are ever in the file: no biometric data.
  std::filesystem::path save_synthetic, load_synthetic;
  std::vector<size_t> nprobe_sweep;  // IVF: recall/latency at each nprobe after one build (1 thread)
  // Other indexes: sets their search width (e.g. HNSW ef) for the same sweep; false if it cannot.
  std::function<bool(VectorIndex&, size_t)> set_search_width;
};

// Makes the empty (trained, when it needs training) index under test from a training sample.
using IndexFactory = std::function<Result<std::unique_ptr<VectorIndex>>(std::span<const float> sample, const BenchConfig&)>;

// The factory for the production kinds (exact, ivf, hnsw).
IndexFactory production_factory();

Result<nlohmann::json> run_index_bench(const BenchConfig& config, const IndexFactory& factory,
                                       const std::function<void(const std::string&)>& log = {});

// Peak resident memory of this process so far (MiB).
double peak_rss_mib();

}  // namespace fv::index
