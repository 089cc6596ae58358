// Scale benchmark (issue 4, item 7): the production indexes (exact int8 scan, IVF with
// re-rank) and the FAISS anchors (IndexFlatIP: exact float32; IndexHNSWFlat: ANN) on the same
// synthetic gallery, one configuration per process so that each peak memory is its own.
//
//   index_bench --size 1000000 --kind exact|ivf|hnsw|faiss-flat|faiss-hnsw|hnswlib [--threads 1,2]
//               [--queries 200] [--lfw out/lfw_templates.jsonl] [--lfw-singles nonmated|gallery] [--nonmated N] [--list 50] [--candidate-threshold T] [--gallery isotropic|face] [--lfw-order end|spread]
//               [--nprobe 32] [--rerank 64]
//               [--store FILE] [--nprobe-sweep 16,64,256] [--hnsw-m 32] [--ef-search 64]
//               [--ef-construction 40] [--entry-width 16] [--no-population-hubs] [--rerank-confidence 3.5] [--no-truth]
//               [--save-synthetic FILE | --load-synthetic FILE]   build a gallery once (BenchConfig)
//   index_bench --kind hnswlib --ef-sweep 16,64,256,1024 …   hnswlib HNSW anchor (float32)
//   index_bench --kind faiss-ivf [--faiss-factory IVF4000,PQ128x4fs,RFlat] [--faiss-nprobe 2000]
//               [--faiss-refine 4] [--ef-sweep …: nprobe]   FAISS IVF anchor (trained on the sample)
//   index_bench --vault-start N      start time of a service over a vault of N templates
//
// Prints one JSON object (the same fields as `facevault bench index`).
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include "bench/harness/index_harness.h"
#include "bench/harness/synthetic.h"
#include "index/kernels.h"
#include "index/parallel.h"
#include "index/secure_io.h"
#include "service/service.h"
#include "vault/testing.h"

// hnswlib (Debian 0.7) defines functions and variables in its headers without `inline`;
// ivf_index.cpp, in the library, includes it too, so this second translation unit renames them.
#define cpuid bench_hnswlib_cpuid
#define xgetbv bench_hnswlib_xgetbv
#define AVXCapable bench_hnswlib_AVXCapable
#define AVX512Capable bench_hnswlib_AVX512Capable
#define InnerProductDistanceSIMD16Ext bench_hnswlib_InnerProductDistanceSIMD16Ext
#define InnerProductDistanceSIMD4Ext bench_hnswlib_InnerProductDistanceSIMD4Ext
#define InnerProductSIMD16Ext bench_hnswlib_InnerProductSIMD16Ext
#define InnerProductSIMD4Ext bench_hnswlib_InnerProductSIMD4Ext
#define L2SqrSIMD16Ext bench_hnswlib_L2SqrSIMD16Ext
#define L2SqrSIMD4Ext bench_hnswlib_L2SqrSIMD4Ext
#include <hnswlib/hnswlib.h>
#undef cpuid
#undef xgetbv
#undef AVXCapable
#undef AVX512Capable
#undef InnerProductDistanceSIMD16Ext
#undef InnerProductDistanceSIMD4Ext
#undef InnerProductSIMD16Ext
#undef InnerProductSIMD4Ext
#undef L2SqrSIMD16Ext
#undef L2SqrSIMD4Ext

#ifdef FACEVAULT_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexRefine.h>
#include <faiss/index_factory.h>
#include <omp.h>
#endif

namespace {

using namespace fv;
using namespace fv::index;

size_t hnsw_m = 32, ef_search = 64, ef_construction = 40;
// FAISS's IVF anchor, as its index_factory spells it: 4,000 cells like ours (docs/index.md),
// 4-bit PQ codes of four dimensions each read by the SIMD "fast scan" (64 B per template, as
// ours), then a re-rank on the float32 rows of the best (FAISS's IndexRefineFlat, in memory).
std::string faiss_factory = "IVF4000,PQ128x4fs,RFlat";
size_t faiss_nprobe = 2000, faiss_refine = 4;

#ifdef FACEVAULT_HAVE_FAISS
using fidx = faiss::Index::idx_t;  // FAISS 1.7.3 (Debian 12) spells it here
#endif

#ifdef FACEVAULT_HAVE_FAISS
// A FAISS index behind our interface, so the harness drives it exactly like ours. No filter
// and no removal: the anchors measure speed and recall only.
class FaissAnchor final : public VectorIndex {
 public:
  // An IVF from `factory` (faiss::index_factory), trained on `sample` as ours is.
  FaissAnchor(size_t dim, const std::string& factory, std::span<const float> sample) : dim_(dim), hnsw_(false) {
    inner_ = faiss::index_factory(static_cast<int>(dim), factory.c_str(), faiss::METRIC_INNER_PRODUCT);
    auto* refine = dynamic_cast<faiss::IndexRefine*>(inner_);
    ivf_ = faiss::ivflib::try_extract_index_ivf(refine ? refine->base_index : inner_);  // 1.7.3 does not look inside a refine
    inner_->train(static_cast<fidx>(sample.size() / dim), sample.data());
    set_ef(faiss_nprobe);
    if (refine) refine->k_factor = static_cast<float>(faiss_refine);
    map_ = std::make_unique<faiss::IndexIDMap>(inner_);
    map_->own_fields = true;
  }
  FaissAnchor(size_t dim, bool hnsw) : dim_(dim), hnsw_(hnsw) {
    if (hnsw) {
      auto* h = new faiss::IndexHNSWFlat(static_cast<int>(dim), static_cast<int>(hnsw_m), faiss::METRIC_INNER_PRODUCT);
      h->hnsw.efConstruction = static_cast<int>(ef_construction);
      h->hnsw.efSearch = static_cast<int>(ef_search);
      inner_ = h;
    } else {
      inner_ = new faiss::IndexFlatIP(static_cast<int>(dim));
    }
    map_ = std::make_unique<faiss::IndexIDMap>(inner_);
    map_->own_fields = true;
  }
  std::string kind() const override { return ivf_ ? "faiss-ivf" : hnsw_ ? "faiss-hnsw" : "faiss-flat"; }
  size_t dim() const override { return dim_; }
  size_t size() const override { return static_cast<size_t>(map_->ntotal); }
  bool contains(Id) const override { return false; }
  Status add(std::span<const Id> ids, std::span<const float> v) override {
    try {
      map_->add_with_ids(static_cast<fidx>(ids.size()), v.data(), reinterpret_cast<const fidx*>(ids.data()));
    } catch (const std::exception& e) {
      return internal_error(std::string("faiss: ") + e.what());
    }
    return Status::ok();
  }
  Result<size_t> remove(std::span<const Id>) override { return unsupported("the FAISS anchors are not timed for removal"); }
  Result<SearchResult> search(std::span<const float> q, size_t k, const IdFilter*) const override {
    omp_set_num_threads(threads_);
    std::vector<float> D(k);
    std::vector<fidx> I(k);
    map_->search(1, q.data(), static_cast<fidx>(k), D.data(), I.data());
    SearchResult r;
    for (size_t i = 0; i < k; ++i)
      if (I[i] >= 0) {
        r.ids.push_back(I[i]);
        r.scores.push_back(D[i]);
      }
    return r;
  }
  Result<std::vector<SearchResult>> search_batch(std::span<const float> qs, size_t k, const IdFilter*) const override {
    omp_set_num_threads(threads_);
    const size_t nq = qs.size() / dim_;
    std::vector<float> D(nq * k);
    std::vector<fidx> I(nq * k);
    map_->search(static_cast<fidx>(nq), qs.data(), static_cast<fidx>(k), D.data(), I.data());
    std::vector<SearchResult> out(nq);
    for (size_t j = 0; j < nq; ++j)
      for (size_t i = 0; i < k; ++i)
        if (I[j * k + i] >= 0) {
          out[j].ids.push_back(I[j * k + i]);
          out[j].scores.push_back(D[j * k + i]);
        }
    return out;
  }
  void set_threads(int t) override { threads_ = t; }
  IndexStats stats() const override {
    IndexStats s;
    s.size = size();
    s.scan_bytes_per_item = dim_ * sizeof(float);
    s.memory_bytes = size() * (dim_ * sizeof(float) + sizeof(fidx) + (hnsw_ ? hnsw_m * 2 * sizeof(int) * 1.07 : 0));
    if (ivf_) {  // the codes and ids in the cells, and the float32 rows a refine keeps
      s.scan_bytes_per_item = ivf_->code_size;
      s.memory_bytes = size() * (ivf_->code_size + 2 * sizeof(fidx) +
                                 (dynamic_cast<const faiss::IndexRefine*>(inner_) ? dim_ * sizeof(float) : 0));
    }
    return s;
  }
  Status save(const std::filesystem::path&, const IndexKey&) const override { return unsupported("anchor"); }
  // FAISS HNSW's search width (efSearch), or an IVF's cells read (nprobe), for --ef-sweep
  // after one build.
  bool set_ef(size_t ef) {
    if (ivf_) {
      ivf_->nprobe = ef;
      return true;
    }
    if (!hnsw_) return false;
    static_cast<faiss::IndexHNSW*>(inner_)->hnsw.efSearch = static_cast<int>(ef);
    return true;
  }

 private:
  size_t dim_;
  bool hnsw_;
  int threads_ = 1;
  faiss::Index* inner_ = nullptr;
  faiss::IndexIVF* ivf_ = nullptr;  // inside inner_, for an IVF
  std::unique_ptr<faiss::IndexIDMap> map_;
};
#endif

// hnswlib's HNSW on the full float32 templates, as an anchor: the best a graph index can do
// on this data with exact distances, i.e. an upper bound on recall for any graph over
// compressed codes at the same search width. No filter, no removal (hnswlib only marks
// deleted), ~2.2 KB per template: it is not a candidate for production, it is a yardstick.
struct IpSpace final : public hnswlib::SpaceInterface<float> {
  explicit IpSpace(size_t d) : dim(d) {}
  size_t get_data_size() override { return dim * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &dist; }
  void* get_dist_func_param() override { return &dim; }
  // Through the dispatched kernel (AVX-512 here): hnswlib's own SIMD is fixed at compile time.
  static float dist(const void* a, const void* b, const void* p) {
    return 1.0f - kernels::dot_f32(static_cast<const float*>(a), static_cast<const float*>(b), *static_cast<const size_t*>(p));
  }
  size_t dim;
};

class HnswlibAnchor final : public VectorIndex {
 public:
  HnswlibAnchor(size_t dim, size_t capacity, int threads)
      : dim_(dim), space_(dim), g_(&space_, capacity, hnsw_m, ef_construction, 100), build_threads_(threads) {
    g_.setEf(ef_search);
  }
  std::string kind() const override { return "hnswlib"; }
  size_t dim() const override { return dim_; }
  size_t size() const override { return g_.cur_element_count; }
  bool contains(Id) const override { return false; }
  Status add(std::span<const Id> ids, std::span<const float> v) override {
    try {
      run_parallel(build_threads_, [&](int t) {
        auto [b, e] = split_range(ids.size(), build_threads_, t);
        for (size_t i = b; i < e; ++i) g_.addPoint(v.data() + i * dim_, static_cast<hnswlib::labeltype>(ids[i]));
      });
    } catch (const std::exception& e) {
      return internal_error(std::string("hnswlib: ") + e.what());
    }
    return Status::ok();
  }
  Result<size_t> remove(std::span<const Id>) override { return unsupported("the hnswlib anchor is not timed for removal"); }
  Result<SearchResult> search(std::span<const float> q, size_t k, const IdFilter*) const override {
    auto pq = g_.searchKnn(q.data(), k);
    SearchResult r;
    r.ids.resize(pq.size());
    r.scores.resize(pq.size());
    for (size_t i = pq.size(); i-- > 0; pq.pop()) {
      r.ids[i] = static_cast<Id>(pq.top().second);
      r.scores[i] = 1.0f - pq.top().first;
    }
    return r;
  }
  void set_threads(int) override {}  // one query, one thread
  void set_ef(size_t ef) { g_.setEf(ef); }
  IndexStats stats() const override {
    IndexStats s;
    s.size = size();
    s.scan_bytes_per_item = dim_ * sizeof(float);
    s.memory_bytes = size() * (dim_ * sizeof(float) + (hnsw_m * 2 + 1) * sizeof(int) + sizeof(hnswlib::labeltype));
    return s;
  }
  Status save(const std::filesystem::path&, const IndexKey&) const override { return unsupported("anchor"); }

 private:
  size_t dim_;
  IpSpace space_;
  mutable hnswlib::HierarchicalNSW<float> g_;
  int build_threads_;
};

// Start time of the persistence choice (rebuild from the vault): a vault of n subjects with
// one synthetic template each; a fresh Service's first search decrypts every template with
// its subject key and builds the index; the second search is the steady state.
int vault_start(size_t n, const std::string& dir) {
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  fs::remove_all(dir);
  vault::VaultConfig cfg;
  if (auto st = vault::Vault::init(dir, cfg); !st.is_ok()) {
    std::cerr << st.to_string() << "\n";
    return 2;
  }
  SyntheticGallery gen({n, 512, 0.85f, 42, nullptr});
  std::vector<float> v(512);
  const auto t0 = Clock::now();
  {
    const service::Actor admin{"bench", service::Role::kAdmin};
    auto svc = service::Service::open(dir);
    if (!svc.is_ok()) return 2;
    auto& db = vault::testing::raw_db((*svc)->vault_for_testing());
    (void)db.exec("PRAGMA synchronous=OFF");  // filling is not what is measured
    for (size_t i = 0; i < n; ++i) {
      const std::string ref = "s" + std::to_string(i);
      auto b = (*svc)->add_basis(admin, {ref, service::BasisKind::kConsent, "bench", {"access-control"}, std::nullopt});
      gen.generate(i, i + 1, v.data());
      if (!b.is_ok() || !(*svc)->enroll_template(admin, service::EnrollRequest(ref, b->basis_id), {"faceplugin-mobilefacenet-512", 1, v}).is_ok()) {
        std::cerr << "enrollment failed\n";
        return 2;
      }
    }
    (void)db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  const double fill_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const service::Actor investigator{"bench", service::Role::kInvestigator};
  auto svc = service::Service::open(dir);
  if (!svc.is_ok()) return 2;
  std::vector<float> q(512);
  gen.query(0, q.data());
  service::SearchRequest req("access-control", "bench");
  req.mode = "investigation";
  const auto t1 = Clock::now();
  auto r1 = (*svc)->search_templates(investigator, req, {{"faceplugin-mobilefacenet-512", 1, q}});
  const double first_s = std::chrono::duration<double>(Clock::now() - t1).count();
  const auto t2 = Clock::now();
  auto r2 = (*svc)->search_templates(investigator, req, {{"faceplugin-mobilefacenet-512", 1, q}});
  const double warm_s = std::chrono::duration<double>(Clock::now() - t2).count();
  if (!r1.is_ok() || !r2.is_ok()) return 2;
  nlohmann::json j = {{"kind", "vault-start"}, {"subjects", n}, {"templates", (*svc)->gallery_size()}, {"fill_s", fill_s},
                      {"first_search_s", first_s}, {"warm_search_ms", warm_s * 1e3},
                      {"load_us_per_template", (first_s - warm_s) * 1e6 / double(n)}, {"peak_rss_mib", peak_rss_mib()}};
  std::cout << j.dump() << "\n";
  fs::remove_all(dir);
  return 0;
}

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) out.push_back(std::max(1, std::atoi(t.c_str())));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 2;
  BenchConfig cfg;
  size_t vault_start_n = 0;
  std::vector<std::string> given;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    given.push_back(a);
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "index_bench: " << a << " needs a value\n";
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "--size") cfg.size = std::stoull(next());
    else if (a == "--dim") cfg.dim = std::stoull(next());
    else if (a == "--kind") {
      cfg.kind = next();
      if (cfg.kind == "ann") cfg.kind = "ivf";  // as in `facevault bench index`: the vault's approximate index
    }
    else if (a == "--threads") cfg.threads = parse_threads(next());
    else if (a == "--queries") cfg.queries = std::stoull(next());
    else if (a == "--lfw") cfg.lfw = next();
    else if (a == "--nonmated") cfg.nonmated = std::stoull(next());
    else if (a == "--lfw-singles") cfg.lfw_singles = next();
    else if (a == "--list") cfg.list = std::stoull(next());
    else if (a == "--candidate-threshold") cfg.candidate_threshold = std::stod(next());
    else if (a == "--gallery") cfg.gallery = next();
    else if (a == "--lfw-order") cfg.lfw_order = next();
    else if (a == "--nlist") cfg.ivf.nlist = std::stoull(next());
    else if (a == "--nprobe") cfg.ivf.nprobe = std::stoull(next());
    else if (a == "--code-dim") cfg.ivf.code_dim = std::stoull(next());
    else if (a == "--train-max") cfg.ivf.train_max = std::stoull(next());
    else if (a == "--kmeans-iters") cfg.ivf.kmeans_iters = std::stoi(next());
    else if (a == "--rerank") cfg.ivf.rerank = std::stoull(next());
    else if (a == "--store") cfg.ivf.store_path = next();
    else if (a == "--removals") cfg.removals = std::stoull(next());
    else if (a == "--seed") cfg.seed = std::stoull(next());
    else if (a == "--hnsw-m") hnsw_m = std::stoull(next());
    else if (a == "--ef-search") ef_search = std::stoull(next());
    else if (a == "--ef-construction") ef_construction = std::stoull(next());
    else if (a == "--faiss-factory") faiss_factory = next();
    else if (a == "--faiss-nprobe") faiss_nprobe = std::stoull(next());
    else if (a == "--faiss-refine") faiss_refine = std::stoull(next());
    else if (a == "--no-truth") cfg.ground_truth = false;
    else if (a == "--rerank-confidence") cfg.graph.rerank_confidence = std::stof(next());
    else if (a == "--no-population-hubs") cfg.graph.population_hubs = false;
    else if (a == "--entry-width") cfg.graph.entry_width = std::stoull(next());
    else if (a == "--save-synthetic") cfg.save_synthetic = next();
    else if (a == "--load-synthetic") cfg.load_synthetic = next();
    else if (a == "--vault-start") vault_start_n = std::stoull(next());
    else if (a == "--nprobe-sweep" || a == "--ef-sweep") {
      for (int t : parse_threads(next())) cfg.nprobe_sweep.push_back(static_cast<size_t>(t));
    }
    else {
      std::cerr << "index_bench: unknown argument " << a << "\n";
      return 1;
    }
  }
  if (vault_start_n) return vault_start(vault_start_n, "out/bench/vault-start");
  if (cfg.kind == "hnsw") {  // our graph: the same flags, its own defaults where not given
    for (const auto& a : given) {
      if (a == "--hnsw-m") cfg.graph.m = hnsw_m;
      if (a == "--ef-search") cfg.graph.ef_search = ef_search;
      if (a == "--ef-construction") cfg.graph.ef_construction = ef_construction;
      if (a == "--rerank") cfg.graph.rerank = cfg.ivf.rerank;
      if (a == "--store") cfg.graph.store_path = cfg.ivf.store_path;
    }
  }
  IndexFactory factory = production_factory();
#ifdef FACEVAULT_HAVE_FAISS
  if (cfg.kind == "faiss-flat" || cfg.kind == "faiss-hnsw" || cfg.kind == "faiss-ivf") {
    factory = [](std::span<const float> sample, const BenchConfig& c) -> Result<std::unique_ptr<VectorIndex>> {
      omp_set_num_threads(*std::max_element(c.threads.begin(), c.threads.end()));
      try {
        if (c.kind == "faiss-ivf")
          return std::unique_ptr<VectorIndex>(std::make_unique<FaissAnchor>(c.dim, faiss_factory, sample));
      } catch (const std::exception& e) {
        return invalid_argument(std::string("faiss: ") + e.what());
      }
      return std::unique_ptr<VectorIndex>(std::make_unique<FaissAnchor>(c.dim, c.kind == "faiss-hnsw"));
    };
    cfg.set_search_width = [](VectorIndex& ix, size_t ef) {
      auto* f = dynamic_cast<FaissAnchor*>(&ix);
      return f != nullptr && f->set_ef(ef);
    };
  }
#endif
  if (cfg.kind == "hnswlib") {
    factory = [](std::span<const float>, const BenchConfig& c) -> Result<std::unique_ptr<VectorIndex>> {
      return std::unique_ptr<VectorIndex>(
          std::make_unique<HnswlibAnchor>(c.dim, c.size, *std::max_element(c.threads.begin(), c.threads.end())));
    };
    cfg.set_search_width = [](VectorIndex& ix, size_t ef) {
      auto* h = dynamic_cast<HnswlibAnchor*>(&ix);
      if (h) h->set_ef(ef);
      return h != nullptr;
    };
  }
  auto r = run_index_bench(cfg, factory, [](const std::string& m) { std::cerr << "index_bench: " << m << "\n"; });
  if (!r.is_ok()) {
    std::cerr << "index_bench: " << r.status().to_string() << "\n";
    return 2;
  }
  if (cfg.kind == "faiss-ivf") (*r)["faiss"] = {{"factory", faiss_factory}, {"nprobe", faiss_nprobe}, {"k_factor", faiss_refine}};
  if (cfg.kind == "faiss-hnsw" || cfg.kind == "hnswlib") (*r)["hnsw"] = {{"M", hnsw_m}, {"ef_search", ef_search}, {"ef_construction", ef_construction}};
  std::cout << r->dump() << "\n";
  return 0;
}
