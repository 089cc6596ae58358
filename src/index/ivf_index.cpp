#include "index/ivf_index.h"

#include <hnswlib/hnswlib.h>

#include <cmath>
#include <climits>
#include <numeric>
#include <random>
#include <unordered_set>
#include <utility>

#include <opencv2/core.hpp>

#include "index/kernels.h"
#include "index/parallel.h"

namespace fv::index {

// L2 distance for hnswlib through our dispatched float kernel (hnswlib's own SIMD is chosen
// at compile time, and this binary is built for any x86-64). Vectors carry |v|² as an extra
// last value: |a − b|² = |a|² + |b|² − 2 a·b costs one dot product.
struct L2NormSpace : public hnswlib::SpaceInterface<float> {
  explicit L2NormSpace(size_t d) : dim(d) {}
  size_t get_data_size() override { return (dim + 1) * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &dist; }
  void* get_dist_func_param() override { return &dim; }
  static float dist(const void* a, const void* b, const void* p) {
    const size_t d = *static_cast<const size_t*>(p);
    const float* x = static_cast<const float*>(a);
    const float* y = static_cast<const float*>(b);
    return x[d] + y[d] - 2.0f * kernels::dot_f32(x, y, d);
  }
  size_t dim;
};

namespace {

// 4-bit cells span mean ± 4σ per PCA dimension. A narrower range (2.8σ, Lloyd-Max for a
// Gaussian) clips ~1 % of the coordinates, and those are the ones that matter: a template's
// large coordinates are where its mate's are too, so clipping them loses the mates that score
// just above the strangers (1 M face-shaped gallery, every cell scanned: mate first for 94.6 %
// of LFW probes at 2.8σ, the exact scan's 96.2 % at 4σ; docs/benchmarks.md).
constexpr float kRange = 4.0f;

// The default code dimension: the fewest multiple-of-64 principal axes that hold
// kCodeVariance of the sample's variance, and never more than dim·7/8. Face templates live on
// few axes (MobileFaceNet on LFW: 97.2 % on 128 of 512, 71 % on 64), and codes of those 128
// give the exact scan's identification figures on a 1 M face-shaped gallery while 64 do not
// (docs/benchmarks.md); isotropic data keeps dim·7/8.
constexpr double kCodeVariance = 0.97;

// The share of cells a search scans unless told otherwise (IvfOptions::nprobe 0). 1 M
// face-shaped gallery + LFW (docs/benchmarks.md, "Closing the gap", second round): half of
// the cells give recall@10 0.98–0.99 and the exact scan's mate at rank 1 less 0.1–0.3 points;
// 3/8 lose 0.25–0.5 points of the mates, which is what an approximate index must not do by
// default. A deployer may trade accuracy for time with an explicit nprobe.
constexpr std::pair<size_t, size_t> kDefaultProbeShare{1, 2};

// Training rows per cell for k-means: FAISS warns below 39. 16 per cell (the earlier cap of
// 65,536 rows at 4,000 cells) left cells that scanning half of them reached recall@10 0.985
// with; 64 per cell reach 0.987–0.991 at the same share (mates at rank 1 the same within a
// probe or two). Capped so that the projected sample stays a few hundred MB at 10 M; a vault
// trains on its first load chunk (service/gallery.cpp), which caps it lower.
constexpr size_t kTrainRowsPerCell = 64, kTrainRowsMax = size_t(1) << 19;

// Re-rank records read (and held decrypted) at a time per thread.
constexpr size_t kRerankBlock = 128;

size_t code_dim_for_variance(const cv::Mat& eigenvalues) {
  std::vector<double> ev;
  for (int i = 0; i < eigenvalues.rows * eigenvalues.cols; ++i) ev.push_back(std::max(0.0, double(eigenvalues.at<float>(i))));
  const double total = std::accumulate(ev.begin(), ev.end(), 0.0);
  if (!(total > 0)) return SIZE_MAX;
  double held = 0;
  for (size_t j = 0; j < ev.size(); ++j) {
    held += ev[j];
    if (held >= kCodeVariance * total) return (j / 64 + 1) * 64;
  }
  return SIZE_MAX;
}

size_t pick_nlist(const IvfOptions& o, size_t sample_rows) {
  if (o.nlist) return o.nlist;
  const double n = o.expected_size ? double(o.expected_size) : double(sample_rows) * double(sample_rows);
  return std::clamp<size_t>(static_cast<size_t>(4 * std::sqrt(n)), 16, 65536);
}

}  // namespace

IvfIndex::IvfIndex(size_t dim, IvfOptions options) : dim_(dim), opt_(std::move(options)) {
  cd_ = opt_.code_dim ? opt_.code_dim : (dim_ - dim_ / 8) / 64 * 64;
  if (cd_ == 0) cd_ = 64;
}

IvfIndex::~IvfIndex() = default;

void IvfIndex::project(const float* x, float* y) const {
  float xc[4096];
  for (size_t i = 0; i < dim_; ++i) xc[i] = x[i] - mean_[i];
  for (size_t j = 0; j < cd_; ++j) y[j] = kernels::dot_f32(pca_.data() + j * dim_, xc, dim_);
}

void IvfIndex::encode(const float* y, uint8_t* packed) const {
  uint8_t v[4096];
  for (size_t j = 0; j < cd_; ++j)
    v[j] = static_cast<uint8_t>(std::clamp<long>(std::lrint((y[j] - lo_[j]) / step_[j]), 0, 15));
  kernels::pack_u4(v, cd_, packed);
}

Status IvfIndex::build_quantizer(const float* centroids, size_t n) {
  centroids_.assign(n * (cd_ + 1), 0.0f);
  for (size_t c = 0; c < n; ++c) {
    float* dst = centroids_.data() + c * (cd_ + 1);
    std::memcpy(dst, centroids + c * cd_, cd_ * sizeof(float));
    // Spherical cells: unit-norm centroids, so |y − c|² = |y|² + 1 − 2·y·c ranks cells by
    // y·c. Plain L2 k-means on near-isotropic data lets the shortest centroid (the mean of
    // the most vectors) swallow most of the gallery; a cell then holds 20 % of it.
    const float nrm = std::sqrt(kernels::dot_f32(dst, dst, cd_));
    if (nrm > 0)
      for (size_t j = 0; j < cd_; ++j) dst[j] /= nrm;
    dst[cd_] = 1.0f;
  }
  if (opt_.hnsw_m < 2 || opt_.hnsw_m > 10000) return invalid_argument("IVF: hnsw_m must be 2..10000");
  try {
    space_ = std::make_unique<L2NormSpace>(cd_);
    hnsw_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), n, opt_.hnsw_m, opt_.hnsw_ef_construction, opt_.seed);
    // The graph is built from one thread so that it is identical run to run: a template's
    // cell (found again through this graph) must not depend on thread timing.
    for (size_t c = 0; c < n; ++c) hnsw_->addPoint(centroids_.data() + c * (cd_ + 1), c);
  } catch (const std::exception& e) {
    return internal_error(std::string("hnswlib: ") + e.what());
  }
  apply_ef();
  pm_.resize(cd_);
  for (size_t j = 0; j < cd_; ++j) pm_[j] = kernels::dot_f32(pca_.data() + j * dim_, mean_.data(), dim_);
  return Status::ok();
}

// One search width for everything after training (hnswlib keeps it in the graph object, so
// it is not changed per query: concurrent searches only read it).
void IvfIndex::apply_ef() {
  if (!hnsw_) return;
  const size_t ef = opt_.hnsw_ef_search ? opt_.hnsw_ef_search : 2 * nprobe();
  hnsw_->setEf(std::max<size_t>({ef, nprobe(), 16}));
}

size_t IvfIndex::nearest_list(const float* y) const {
  float q[4097];
  std::memcpy(q, y, cd_ * sizeof(float));
  q[cd_] = kernels::dot_f32(y, y, cd_);
  auto r = hnsw_->searchKnn(q, 1);
  return r.empty() ? 0 : static_cast<size_t>(r.top().second);
}

// The n cells nearest y, nearest first (graph search; exact ranking when n is most cells).
std::vector<size_t> IvfIndex::probe_order(const float* y, size_t n, bool ranked) const {
  const size_t nl = lists_.size();
  n = std::min(n, nl);
  std::vector<size_t> out;
  float q[4097];
  std::memcpy(q, y, cd_ * sizeof(float));
  q[cd_] = kernels::dot_f32(y, y, cd_);
  if (n * 4 < nl && n <= hnsw_->ef_) {
    auto r = hnsw_->searchKnn(q, n);
    out.resize(r.size());
    for (size_t i = r.size(); i-- > 0;) {
      out[i] = static_cast<size_t>(r.top().second);
      r.pop();
    }
    return out;
  }
  std::vector<std::pair<float, size_t>> d(nl);
  for (size_t c = 0; c < nl; ++c) d[c] = {L2NormSpace::dist(q, centroids_.data() + c * (cd_ + 1), &cd_), c};
  if (ranked) std::partial_sort(d.begin(), d.begin() + n, d.end());
  else if (n < nl) std::nth_element(d.begin(), d.begin() + n, d.end());
  for (size_t i = 0; i < n; ++i) out.push_back(d[i].second);
  return out;
}

size_t IvfIndex::default_train_rows(size_t nlist) {
  return std::max<size_t>(65536, std::min(kTrainRowsPerCell * nlist, kTrainRowsMax));
}

Status IvfIndex::train(std::span<const float> sample) {
  if (sample.size() % dim_ != 0 || sample.empty()) return invalid_argument("train: sample is not rows of the dimension");
  if (cd_ % 64 != 0 || cd_ > dim_) return invalid_argument("train: code_dim must be a multiple of 64 and at most dim");
  const size_t rows = sample.size() / dim_;
  const size_t nlist = pick_nlist(opt_, rows);
  if (rows < nlist) return invalid_argument("train: need at least nlist (" + std::to_string(nlist) + ") training vectors");
  std::mt19937_64 rng(opt_.seed);
  const size_t cap = opt_.train_max ? opt_.train_max : default_train_rows(nlist);
  std::vector<size_t> pick(rows);
  std::iota(pick.begin(), pick.end(), 0);
  std::shuffle(pick.begin(), pick.end(), rng);
  pick.resize(std::min(rows, cap));
  const size_t ns = pick.size();

  // PCA on up to 50k rows: the leading cd_ directions keep most of the energy of real
  // templates (and, on isotropic synthetic data, a fixed 7/8 of it).
  {
    const size_t np = std::min<size_t>(ns, 50000);
    cv::Mat m(static_cast<int>(np), static_cast<int>(dim_), CV_32F);
    for (size_t i = 0; i < np; ++i) std::memcpy(m.ptr<float>(static_cast<int>(i)), sample.data() + pick[i] * dim_, dim_ * sizeof(float));
    // A sample of fewer than 2·dim rows cannot tell how many axes the data fills (its
    // covariance has at most `rows` non-zero eigenvalues): it keeps dim·7/8.
    const bool by_variance = !opt_.code_dim && np >= 2 * dim_;
    cv::PCA pca(m, cv::noArray(), cv::PCA::DATA_AS_ROW, by_variance ? 0 : static_cast<int>(cd_));
    if (by_variance) cd_ = std::min(cd_, code_dim_for_variance(pca.eigenvalues));
    mean_.assign(pca.mean.ptr<float>(0), pca.mean.ptr<float>(0) + dim_);
    pca_.assign(cd_ * dim_, 0.0f);
    const size_t got = std::min<size_t>(cd_, static_cast<size_t>(pca.eigenvectors.rows));
    for (size_t j = 0; j < got; ++j) std::memcpy(pca_.data() + j * dim_, pca.eigenvectors.ptr<float>(static_cast<int>(j)), dim_ * sizeof(float));
    // A sample with fewer rows than code dimensions (a small gallery forced to IVF) spans
    // fewer directions: complete the basis with random orthonormal ones (Gram–Schmidt).
    std::normal_distribution<float> gauss;
    for (size_t j = got; j < cd_; ++j) {
      float* r = pca_.data() + j * dim_;
      for (int attempt = 0; attempt < 8; ++attempt) {
        for (size_t i = 0; i < dim_; ++i) r[i] = gauss(rng);
        for (size_t p = 0; p < j; ++p) {
          const float* b = pca_.data() + p * dim_;
          const float c = kernels::dot_f32(r, b, dim_);
          for (size_t i = 0; i < dim_; ++i) r[i] -= c * b[i];
        }
        const float nrm = std::sqrt(kernels::dot_f32(r, r, dim_));
        if (nrm > 1e-3f) {
          for (size_t i = 0; i < dim_; ++i) r[i] /= nrm;
          break;
        }
      }
    }
  }
  std::vector<float> y(ns * cd_);
  run_parallel(opt_.threads, [&](int t) {
    auto [b, e] = split_range(ns, opt_.threads, t);
    for (size_t i = b; i < e; ++i) project(sample.data() + pick[i] * dim_, y.data() + i * cd_);
  });
  // 4-bit ranges per dimension from the sample's spread.
  lo_.assign(cd_, 0);
  step_.assign(cd_, 1);
  for (size_t j = 0; j < cd_; ++j) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < ns; ++i) {
      s += y[i * cd_ + j];
      s2 += double(y[i * cd_ + j]) * y[i * cd_ + j];
    }
    const double mu = s / ns, sd = std::sqrt(std::max(1e-12, s2 / ns - mu * mu));
    lo_[j] = static_cast<float>(mu - kRange * sd);
    step_[j] = static_cast<float>(2 * kRange * sd / 15);
  }
  // k-means (L2 in PCA space), assignments through an HNSW graph of the current centroids.
  std::vector<float> cent(nlist * cd_);
  for (size_t c = 0; c < nlist; ++c) std::memcpy(cent.data() + c * cd_, y.data() + c * cd_, cd_ * sizeof(float));
  std::vector<uint32_t> assign(ns);
  for (int it = 0; it < opt_.kmeans_iters; ++it) {
    FV_RETURN_IF_ERROR(build_quantizer(cent.data(), nlist));
    hnsw_->setEf(opt_.hnsw_ef_add);
    run_parallel(opt_.threads, [&](int t) {
      auto [b, e] = split_range(ns, opt_.threads, t);
      for (size_t i = b; i < e; ++i) assign[i] = static_cast<uint32_t>(nearest_list(y.data() + i * cd_));
    });
    std::vector<double> sum(nlist * cd_, 0.0);
    std::vector<size_t> cnt(nlist, 0);
    for (size_t i = 0; i < ns; ++i) {
      ++cnt[assign[i]];
      for (size_t j = 0; j < cd_; ++j) sum[assign[i] * cd_ + j] += y[i * cd_ + j];
    }
    std::uniform_int_distribution<size_t> any(0, ns - 1);
    for (size_t c = 0; c < nlist; ++c) {
      if (cnt[c] == 0) {  // empty cell: reseed on a random sample
        std::memcpy(cent.data() + c * cd_, y.data() + any(rng) * cd_, cd_ * sizeof(float));
        continue;
      }
      for (size_t j = 0; j < cd_; ++j) cent[c * cd_ + j] = static_cast<float>(sum[c * cd_ + j] / cnt[c]);
    }
  }
  FV_RETURN_IF_ERROR(build_quantizer(cent.data(), nlist));
  sodium_memzero(y.data(), y.size() * sizeof(float));
  lists_.clear();
  lists_.resize(nlist);
  apply_ef();  // the default nprobe is a share of the cells, known only now
  FV_ASSIGN_OR_RETURN(store_, RecordStore::create(RerankRecord::bytes(dim_), opt_.store_path));
  trained_ = true;
  return Status::ok();
}

bool IvfIndex::contains(Id id) const {
  for (const auto& l : lists_)
    if (std::find(l.ids.begin(), l.ids.end(), id) != l.ids.end()) return true;
  return false;
}

Status IvfIndex::add(std::span<const Id> ids, std::span<const float> vectors) {
  if (!trained_) return failed_precondition("add: the IVF index is not trained");
  if (vectors.size() != ids.size() * dim_) return invalid_argument("add: values do not match ids × dimension");
  std::unordered_set<Id> fresh(ids.begin(), ids.end());
  if (fresh.size() != ids.size()) return invalid_argument("add: an id is repeated");
  for (const auto& l : lists_)
    for (Id id : l.ids)
      if (fresh.count(id)) return invalid_argument("add: id " + std::to_string(id) + " is already in the index");
  const size_t cb = cd_ / 2, rb = RerankRecord::values(dim_);  // rb in int16 slots
  constexpr size_t kChunk = 16384;
  // Cell assignment needs only the nearest centroid: a narrower graph search than queries
  // use (adds and removals are not concurrent with searches, see vector_index.h).
  hnsw_->setEf(opt_.hnsw_ef_add);
  struct RestoreEf {
    IvfIndex* self;
    ~RestoreEf() { self->apply_ef(); }
  } restore{this};
  std::vector<uint32_t> cell(kChunk), slots(kChunk);
  std::vector<uint8_t> codes(kChunk * cb);
  SecureBuffer<int16_t> recs;
  recs.resize(kChunk * rb);
  for (size_t c0 = 0; c0 < ids.size(); c0 += kChunk) {
    const size_t m = std::min(kChunk, ids.size() - c0);
    run_parallel(opt_.threads, [&](int t) {
      auto [b, e] = split_range(m, opt_.threads, t);
      float y[4096];
      for (size_t i = b; i < e; ++i) {
        const float* x = vectors.data() + (c0 + i) * dim_;
        project(x, y);
        cell[i] = static_cast<uint32_t>(nearest_list(y));
        encode(y, codes.data() + i * cb);
        RerankRecord::encode(x, dim_, recs.data() + i * rb);
      }
    });
    FV_RETURN_IF_ERROR(store_->put(reinterpret_cast<const uint8_t*>(recs.data()), m, slots.data(), opt_.threads));
    for (size_t i = 0; i < m; ++i) {
      List& l = lists_[cell[i]];
      l.codes.append(codes.data() + i * cb, cb);
      l.ids.push_back(ids[c0 + i]);
      l.recs.push_back(slots[i]);
    }
    sodium_memzero(codes.data(), codes.size());
    sodium_memzero(recs.data(), recs.size() * sizeof(int16_t));
  }
  size_ += ids.size();
  return Status::ok();
}

void IvfIndex::shrink() {
  // The codes of all cells in one allocation, in cell order (2 MiB pages when large). Cells
  // grown by appends end up scattered over the heap between the buffers they outgrew, and a
  // search reads half of them in address order: packed, it strides forward through one
  // region instead of jumping across the heap (docs/benchmarks.md, "third round"). A cell
  // that grows later moves back to a buffer of its own (SecureBuffer::place_in).
  size_t total = 0;
  for (const auto& l : lists_) total += l.codes.size();
  SecureBuffer<uint8_t> arena;
  arena.resize(total);
  size_t off = 0;
  for (auto& l : lists_) {
    l.codes.place_in(arena.data() + off);
    off += l.codes.size();
  }
  arena_ = std::move(arena);  // wipes and frees the previous one, which every cell has left
  for (auto& l : lists_) {
    l.ids.shrink_to_fit();
    l.recs.shrink_to_fit();
  }
}

Result<size_t> IvfIndex::remove(std::span<const Id> ids) {
  if (ids.empty() || size_ == 0) return size_t(0);
  // No id → cell map is kept (it would cost 16+ bytes per template against a 256-byte
  // budget); removal scans the ids instead: 80 MB at 10 M, a few ms, and erasure is rare.
  std::unordered_set<Id> gone(ids.begin(), ids.end());
  const size_t cb = cd_ / 2;
  std::vector<uint32_t> freed;
  for (auto& l : lists_) {
    for (size_t p = 0; p < l.ids.size();) {
      if (!gone.count(l.ids[p])) {
        ++p;
        continue;
      }
      freed.push_back(l.recs[p]);
      const size_t last = l.ids.size() - 1;
      if (p != last) {
        std::memcpy(l.codes.data() + p * cb, l.codes.data() + last * cb, cb);
        l.ids[p] = l.ids[last];
        l.recs[p] = l.recs[last];
      }
      l.ids.pop_back();
      l.recs.pop_back();
      l.codes.resize(last * cb);  // zeroes the vacated code
    }
  }
  FV_RETURN_IF_ERROR(store_->erase(freed.data(), freed.size()));
  size_ -= freed.size();
  return freed.size();
}

Result<SearchResult> IvfIndex::search(std::span<const float> query, size_t k, const IdFilter* filter) const {
  return search_impl(query, k, filter, opt_.threads);
}

Result<std::vector<SearchResult>> IvfIndex::search_batch(std::span<const float> queries, size_t k,
                                                         const IdFilter* filter) const {
  // Queries in parallel, each on one thread: cells are too small to split one query well.
  return search_each_in_parallel(queries, dim_, opt_.threads,
                                 [&](std::span<const float> q) { return search_impl(q, k, filter, 1); });
}

Result<SearchResult> IvfIndex::search_impl(std::span<const float> query, size_t k, const IdFilter* filter, int threads) const {
  if (query.size() != dim_) return invalid_argument("search: query dimension does not match the index");
  if (!trained_ || size_ == 0 || k == 0) return SearchResult{};
  float yq[4096], w[4096];
  project(query.data(), yq);
  // Scan query: Σ_j w_j·(lo_j + step_j·c_j) ranks like Σ_j (w_j·step_j)·c_j, where w = P·q
  // (the query is not centred: q·x = q·mean + q·(x − mean)).
  for (size_t j = 0; j < cd_; ++j) w[j] = (yq[j] + pm_[j]) * step_[j];
  int8_t v8[4096];
  kernels::quantize_s8(w, cd_, v8);
  // Re-ranking more candidates than the index holds changes nothing; the clamp keeps a huge
  // rerank (from options or a loaded file) from sizing the candidate heap (bad_alloc).
  const size_t R = std::max(k, std::min(opt_.rerank, size_));
  const size_t cb = cd_ / 2;
  threads = std::max(1, threads);
  std::vector<TopK> tops(threads, TopK(R));
  std::vector<size_t> scanned(threads, 0);
  auto scan = [&](size_t li, TopK& top) {
    const List& l = lists_[li];
    int32_t raw[512];
    for (size_t p0 = 0; p0 < l.ids.size(); p0 += 512) {
      const size_t m = std::min<size_t>(512, l.ids.size() - p0);
      kernels::dot_u4s8_rows(l.codes.data() + p0 * cb, m, cd_, v8, raw);
      // Most codes score below the candidate list's worst: one integer compare skips them.
      int32_t worst = top.full() ? static_cast<int32_t>(std::floor(top.threshold())) : INT32_MIN;
      for (size_t i = 0; i < m; ++i) {
        if (raw[i] < worst) continue;
        const Id code = static_cast<Id>((uint64_t(li) << 32) | (p0 + i));
        const float s = static_cast<float>(raw[i]);
        if (top.would_enter(s, code) && (!filter || filter->allowed(l.ids[p0 + i]))) {
          top.push(s, code);
          if (top.full()) worst = static_cast<int32_t>(std::floor(top.threshold()));
        }
      }
    }
    return l.ids.size();
  };
  std::vector<size_t> order = probe_order(yq, nprobe(), /*ranked=*/false);
  // The cells are read in the order they sit in memory rather than nearest first: the scan
  // keeps every eligible candidate that beats the list whatever the order (ties go by id), and
  // the hardware prefetcher follows ascending addresses (~20 % faster when a third of the cells
  // or more are probed).
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::less<const uint8_t*>()(lists_[a].codes.data(), lists_[b].codes.data()); });
  run_parallel(std::min<int>(threads, static_cast<int>(order.size())), [&](int t) {
    for (size_t i = t; i < order.size(); i += threads) {
      // A cell's codes are a few KB at a random place, too short for the hardware prefetcher
      // to get going: the next cell's are asked for while this one is scored.
      if (i + threads < order.size()) {
        const List& nx = lists_[order[i + threads]];
        const auto* b = reinterpret_cast<const char*>(nx.codes.data());
        for (size_t o = 0; o < nx.codes.size(); o += 64) __builtin_prefetch(b + o);
      }
      scanned[t] += scan(order[i], tops[t]);
    }
  });
  for (int t = 1; t < threads; ++t) tops[0].merge(tops[t]);
  TopK& cand = tops[0];
  // Fewer than k eligible candidates in the probed cells (a strict purpose filter): keep
  // scanning further cells, nearest first, until k are found or every cell has been read.
  if (cand.size() < k && order.size() < lists_.size()) {
    std::vector<size_t> all = probe_order(yq, lists_.size());
    std::unordered_set<size_t> done(order.begin(), order.end());
    for (size_t li : all) {
      if (cand.size() >= k) break;
      if (!done.count(li)) scanned[0] += scan(li, cand);
    }
  }
  searches_.fetch_add(1, std::memory_order_relaxed);
  scanned_.fetch_add(std::accumulate(scanned.begin(), scanned.end(), size_t(0)), std::memory_order_relaxed);

  // Exact re-rank on the full-dimension records.
  const auto cands = cand.sorted();
  const int rt = cands.size() >= 64 ? threads : 1;
  std::vector<TopK> best(rt, TopK(k));
  std::vector<Status> errs(rt);
  run_parallel(rt, [&](int t) {
    auto [b, e] = split_range(cands.size(), rt, t);
    // Records are read a block at a time: a block's reads go to the device together, and a
    // huge rerank (from options or a loaded file) never sizes one buffer.
    const size_t vals = RerankRecord::values(dim_);
    SecureBuffer<int16_t> recs;
    recs.resize(std::min(e - b, kRerankBlock) * vals);
    uint32_t slots[kRerankBlock];
    for (size_t b0 = b; b0 < e; b0 += kRerankBlock) {
      const size_t m = std::min(kRerankBlock, e - b0);
      for (size_t i = 0; i < m; ++i) {
        const uint64_t code = static_cast<uint64_t>(cands[b0 + i].second);
        slots[i] = lists_[code >> 32].recs[code & 0xffffffffu];
      }
      errs[t] = store_->get_many(slots, m, reinterpret_cast<uint8_t*>(recs.data()));
      if (!errs[t].is_ok()) return;
      for (size_t i = 0; i < m; ++i) {
        const uint64_t code = static_cast<uint64_t>(cands[b0 + i].second);
        best[t].push(RerankRecord::score(recs.data() + i * vals, query.data(), dim_), lists_[code >> 32].ids[code & 0xffffffffu]);
      }
    }
  });
  for (auto& e : errs) FV_RETURN_IF_ERROR(e);
  for (int t = 1; t < rt; ++t) best[0].merge(best[t]);
  return best[0].result();
}

size_t IvfIndex::nprobe() const {
  return opt_.nprobe ? opt_.nprobe : std::max<size_t>(1, lists_.size() * kDefaultProbeShare.first / kDefaultProbeShare.second);
}

double IvfIndex::scanned_fraction() const {
  const uint64_t s = searches_.load();
  return s && size_ ? double(scanned_.load()) / double(s) / double(size_) : 0.0;
}

IndexStats IvfIndex::stats() const {
  IndexStats s;
  s.size = size_;
  size_t mem = centroids_.capacity() * sizeof(float) + pca_.capacity() * sizeof(float) + lists_.capacity() * sizeof(List);
  mem += arena_.capacity();  // all of it, also what cells that grew out of it left behind
  for (const auto& l : lists_)
    mem += (l.codes.owns_storage() ? l.codes.capacity() : 0) + l.ids.capacity() * sizeof(Id) + l.recs.capacity() * sizeof(uint32_t);
  if (hnsw_) mem += hnsw_->max_elements_ * (hnsw_->size_data_per_element_ + sizeof(void*) + sizeof(int));
  if (store_) mem += store_->memory_bytes();
  s.memory_bytes = mem;
  s.scan_bytes_per_item = cd_ / 2;
  s.disk_bytes = store_ ? store_->disk_bytes() : 0;
  return s;
}

Status IvfIndex::save_body(SealedWriter& out) const {
  if (!trained_) return failed_precondition("save: the IVF index is not trained");
  const uint64_t hdr[] = {dim_, cd_, lists_.size(), opt_.nprobe, opt_.rerank, opt_.hnsw_m, opt_.hnsw_ef_construction,
                          opt_.hnsw_ef_search, opt_.seed, size_};
  FV_RETURN_IF_ERROR(out.write(hdr, sizeof hdr));
  FV_RETURN_IF_ERROR(out.write_vec(mean_.data(), mean_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(pca_.data(), pca_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(lo_.data(), lo_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(step_.data(), step_.size()));
  std::vector<float> cent(lists_.size() * cd_);
  for (size_t c = 0; c < lists_.size(); ++c) std::memcpy(cent.data() + c * cd_, centroids_.data() + c * (cd_ + 1), cd_ * sizeof(float));
  FV_RETURN_IF_ERROR(out.write_vec(cent.data(), cent.size()));
  std::vector<uint8_t> rec(RerankRecord::bytes(dim_));
  for (const auto& l : lists_) {
    FV_RETURN_IF_ERROR(out.write_vec(l.ids.data(), l.ids.size()));
    FV_RETURN_IF_ERROR(out.write_vec(l.codes.data(), l.codes.size()));
    for (uint32_t r : l.recs) {
      FV_RETURN_IF_ERROR(store_->get(r, rec.data()));
      FV_RETURN_IF_ERROR(out.write(rec.data(), rec.size()));
    }
  }
  sodium_memzero(rec.data(), rec.size());
  return Status::ok();
}

Status IvfIndex::save(const std::filesystem::path& path, const IndexKey& key) const {
  FV_ASSIGN_OR_RETURN(auto out, SealedWriter::create(path, key));
  const char tag[8] = {'i', 'v', 'f', 0, 0, 0, 0, 2};  // 2: 16-bit re-rank records
  FV_RETURN_IF_ERROR(out->write(tag, 8));
  FV_RETURN_IF_ERROR(save_body(*out));
  return out->finish();
}

Result<std::unique_ptr<IvfIndex>> IvfIndex::load_body(SealedReader& in, const std::filesystem::path& store_path) {
  uint64_t hdr[10];
  FV_RETURN_IF_ERROR(in.read(hdr, sizeof hdr));
  const size_t dim = hdr[0], cd = hdr[1], nlist = hdr[2];
  if (dim == 0 || dim > 4096 || cd == 0 || cd % 64 || cd > dim || nlist == 0 || nlist > (1u << 24))
    return corrupt_data("index file: bad IVF header");
  // The cell graph's degree: hnswlib divides by log(M) and crashes on M < 2 (a file sealed
  // with the right key but a damaged header reached it: tests/fault/index_corruption_test).
  if (hdr[5] < 2 || hdr[5] > 10000) return corrupt_data("index file: bad IVF graph degree");
  IvfOptions o;
  o.code_dim = cd;
  o.nlist = nlist;
  o.nprobe = hdr[3];
  o.rerank = hdr[4];
  o.hnsw_m = hdr[5];
  o.hnsw_ef_construction = hdr[6];
  o.hnsw_ef_search = hdr[7];
  o.seed = hdr[8];
  o.store_path = store_path;
  auto idx = std::make_unique<IvfIndex>(dim, o);
  constexpr size_t kMax = size_t(1) << 36;
  FV_RETURN_IF_ERROR((in.read_vec<float>(idx->mean_, dim)));
  FV_RETURN_IF_ERROR((in.read_vec<float>(idx->pca_, cd * dim)));
  FV_RETURN_IF_ERROR((in.read_vec<float>(idx->lo_, cd)));
  FV_RETURN_IF_ERROR((in.read_vec<float>(idx->step_, cd)));
  std::vector<float> cent;
  FV_RETURN_IF_ERROR((in.read_vec<float>(cent, nlist * cd)));
  if (idx->mean_.size() != dim || idx->pca_.size() != cd * dim || idx->lo_.size() != cd || idx->step_.size() != cd ||
      cent.size() != nlist * cd)
    return corrupt_data("index file: inconsistent IVF arrays");
  FV_RETURN_IF_ERROR(idx->build_quantizer(cent.data(), nlist));
  FV_ASSIGN_OR_RETURN(idx->store_, RecordStore::create(RerankRecord::bytes(dim), store_path));
  idx->lists_.resize(nlist);
  idx->apply_ef();  // the default nprobe is a share of the cells, known only now
  std::vector<uint8_t> rec(RerankRecord::bytes(dim));
  for (auto& l : idx->lists_) {
    FV_RETURN_IF_ERROR((in.read_vec<Id>(l.ids, kMax)));
    FV_RETURN_IF_ERROR((in.read_vec<uint8_t>(l.codes, kMax)));
    if (l.codes.size() != l.ids.size() * (cd / 2)) return corrupt_data("index file: inconsistent IVF cell");
    l.recs.resize(l.ids.size());
    for (size_t i = 0; i < l.ids.size(); ++i) {
      FV_RETURN_IF_ERROR(in.read(rec.data(), rec.size()));
      FV_RETURN_IF_ERROR(idx->store_->put(rec.data(), 1, &l.recs[i]));
    }
    idx->size_ += l.ids.size();
  }
  sodium_memzero(rec.data(), rec.size());
  if (idx->size_ != hdr[9]) return corrupt_data("index file: IVF size does not match its header");
  idx->shrink();  // the cells were read into buffers of their own: pack them for the scan
  idx->trained_ = true;
  return idx;
}

}  // namespace fv::index
