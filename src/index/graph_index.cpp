#include "index/graph_index.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <random>
#include <unordered_set>

#include "index/kernels.h"
#include "index/parallel.h"

namespace fv::index {
namespace {

constexpr int kMaxLevel = 16;

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
double uniform01(uint64_t& s) { return (double(splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

using MinHeap = std::priority_queue<std::pair<float, uint32_t>, std::vector<std::pair<float, uint32_t>>, std::greater<>>;
using MaxHeap = std::priority_queue<std::pair<float, uint32_t>>;

}  // namespace

struct GraphIndex::Query {
  std::vector<float> rot;        // R·x (D values)
  std::vector<uint64_t> planes;  // 4 × words: bit p of the 4-bit quantised R·x
  float lo = 0, step = 1, total = 0, scale = 1;  // Σ_j q_j ≈ total; scale = 1/√D
  float norm = 1;                // ‖x‖ (the estimator's error scales with it)
};

struct GraphIndex::Visited {
  std::vector<uint8_t, LargePageAllocator<uint8_t>> mark;
  uint8_t epoch = 0;
  void reset(size_t n) {
    if (mark.size() < n) mark.resize(n, 0);
    if (++epoch == 0) {
      std::fill(mark.begin(), mark.end(), 0);
      epoch = 1;
    }
  }
  void prefetch(uint32_t i) const { __builtin_prefetch(mark.data() + i); }
  bool test_and_set(uint32_t i) {
    if (mark[i] == epoch) return true;
    mark[i] = epoch;
    return false;
  }
};

void GraphIndex::prefetch_code(uint32_t node, const Visited& vis) const {
  __builtin_prefetch(bits_.data() + size_t(node) * words_);
  __builtin_prefetch(&a_[node]);
  vis.prefetch(node);
}

GraphIndex::GraphIndex(size_t dim, GraphOptions options) : dim_(dim), words_((dim + 63) / 64), opt_(std::move(options)) {}

GraphIndex::~GraphIndex() = default;

Result<std::unique_ptr<GraphIndex>> GraphIndex::create(size_t dim, GraphOptions o) {
  if (dim == 0 || dim > 4096) return invalid_argument("graph index: dimension must be 1..4096");
  if (o.m < 2 || o.m > 100) return invalid_argument("graph index: m must be 2..100 (level 0 holds 2·m links)");
  if (o.ef_construction < o.m) return invalid_argument("graph index: ef_construction must be at least m");
  std::unique_ptr<GraphIndex> g(new GraphIndex(dim, std::move(o)));
  g->make_rotation();
  FV_ASSIGN_OR_RETURN(g->store_, RecordStore::create(RerankRecord::bytes(dim), g->opt_.store_path));
  return g;
}

// A random orthogonal D × D matrix (Gaussian rows, Gram–Schmidt) from the seed, of which the
// first dim columns are kept: R·x keeps the norm of x and spreads it evenly over D coordinates,
// which is what makes the signs of R·x an unbiased code whatever the templates' own axes.
void GraphIndex::make_rotation() {
  const size_t D = 64 * words_;
  std::vector<float> q(D * D);
  uint64_t s = opt_.seed ^ 0x6A09E667F3BCC909ULL;
  for (size_t i = 0; i < D * D; i += 2) {  // Box–Muller: the same numbers on every platform
    const double u1 = uniform01(s), u2 = uniform01(s), r = std::sqrt(-2.0 * std::log(u1));
    q[i] = static_cast<float>(r * std::cos(2 * M_PI * u2));
    if (i + 1 < D * D) q[i + 1] = static_cast<float>(r * std::sin(2 * M_PI * u2));
  }
  for (size_t j = 0; j < D; ++j) {
    float* r = q.data() + j * D;
    for (int pass = 0; pass < 2; ++pass)  // twice: float Gram–Schmidt loses orthogonality once
      for (size_t p = 0; p < j; ++p) {
        const float* b = q.data() + p * D;
        const float c = kernels::dot_f32(r, b, D);
        for (size_t i = 0; i < D; ++i) r[i] -= c * b[i];
      }
    const float n = std::sqrt(kernels::dot_f32(r, r, D));
    for (size_t i = 0; i < D; ++i) r[i] /= n;
  }
  // Columns dim..D−1 are dropped: x is embedded in R^D with zeros there.
  rot_.resize(D * dim_);
  for (size_t j = 0; j < D; ++j) std::memcpy(rot_.data() + j * dim_, q.data() + j * D, dim_ * sizeof(float));
}

void GraphIndex::prepare(const float* x, Query& q) const {
  const size_t D = 64 * words_;
  q.rot.resize(D);
  for (size_t j = 0; j < D; ++j) q.rot[j] = kernels::dot_f32(rot_.data() + j * dim_, x, dim_);
  const auto [mn, mx] = std::minmax_element(q.rot.begin(), q.rot.end());
  q.lo = *mn;
  q.step = *mx > *mn ? (*mx - *mn) / 15.0f : 1.0f;
  q.planes.assign(4 * words_, 0);
  uint64_t sum = 0;
  for (size_t j = 0; j < D; ++j) {
    const long u = std::clamp<long>(std::lrint((q.rot[j] - q.lo) / q.step), 0, 15);
    sum += static_cast<uint64_t>(u);
    for (int p = 0; p < 4; ++p)
      if (u >> p & 1) q.planes[p * words_ + j / 64] |= uint64_t(1) << (j % 64);
  }
  q.total = q.lo * float(D) + q.step * float(sum);
  q.scale = 1.0f / std::sqrt(float(D));
  double n2 = 0;
  for (float v : q.rot) n2 += double(v) * v;
  q.norm = static_cast<float>(std::sqrt(n2));
}

// −(q·x) estimated from x's code: ⟨Rq, s⟩ = 2·Σ_{s_j=+1} (Rq)_j − Σ_j (Rq)_j, divided by
// √D·a (a = ⟨s/√D, Rx⟩, stored with the code).
float GraphIndex::estimate(const Query& q, uint32_t node) const {
  return estimate_code(q, bits_.data() + size_t(node) * words_, a_[node]);
}
float GraphIndex::estimate_code(const Query& q, const uint64_t* code, float a) const {
  uint32_t c[2];
  kernels::plane_counts(code, q.planes.data(), words_, c);
  const float selected = q.lo * float(c[0]) + q.step * float(c[1]);
  return -(2.0f * selected - q.total) * q.scale / a;
}

// Between two codes: the angle estimate of sign-random-projection hashing, θ ≈ π·h/D.
float GraphIndex::code_distance(uint32_t x, uint32_t y) const {
  const uint32_t h = kernels::hamming(bits_.data() + size_t(x) * words_, bits_.data() + size_t(y) * words_, words_);
  return -std::cos(float(M_PI) * float(h) / float(64 * words_));
}

int GraphIndex::draw_level(uint32_t node) const {
  uint64_t s = opt_.seed * 0x9E3779B97F4A7C15ULL + node;
  const double l = -std::log(uniform01(s)) / std::log(double(opt_.m));
  return std::min(kMaxLevel, static_cast<int>(l));
}

uint32_t* GraphIndex::links(uint32_t node, int level) {
  if (level == 0) return links0_.data() + size_t(node) * 2 * opt_.m;
  return upper_.at(node).data() + size_t(level - 1) * (opt_.m + 1) + 1;
}
const uint32_t* GraphIndex::links(uint32_t node, int level) const {
  if (level == 0) return links0_.data() + size_t(node) * 2 * opt_.m;
  return upper_.at(node).data() + size_t(level - 1) * (opt_.m + 1) + 1;
}
uint32_t GraphIndex::link_count(uint32_t node, int level) const {
  if (level == 0) return count0_[node];
  return upper_.at(node)[size_t(level - 1) * (opt_.m + 1)];
}
void GraphIndex::set_links(uint32_t node, int level, const uint32_t* v, uint32_t n) {
  uint32_t* dst = links(node, level);
  std::memcpy(dst, v, n * sizeof(uint32_t));
  std::fill(dst + n, dst + max_links(level), 0u);
  if (level == 0) count0_[node] = static_cast<uint8_t>(n);
  else upper_.at(node)[size_t(level - 1) * (opt_.m + 1)] = n;
}

std::unique_ptr<GraphIndex::Visited> GraphIndex::take_visited() const {
  std::unique_ptr<Visited> v;
  {
    std::lock_guard<std::mutex> g(pool_lock_);
    if (!pool_.empty()) {
      v = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!v) v = std::make_unique<Visited>();
  v->reset(ids_.size());
  return v;
}
void GraphIndex::give_visited(std::unique_ptr<Visited> v) const {
  std::lock_guard<std::mutex> g(pool_lock_);
  pool_.push_back(std::move(v));
}

uint32_t GraphIndex::descend(const Query& q, uint32_t from, int from_level, int to_level, bool locked) const {
  uint32_t cur = from;
  float d = estimate(q, cur);
  for (int l = from_level; l > to_level; --l) {
    for (bool changed = true; changed;) {
      changed = false;
      uint32_t buf[128];
      uint32_t n;
      {
        std::unique_lock<std::mutex> g(lock_of(cur), std::defer_lock);
        if (locked) g.lock();
        n = link_count(cur, l);
        std::memcpy(buf, links(cur, l), n * sizeof(uint32_t));
      }
      for (uint32_t i = 0; i < n; ++i) {
        const float e = estimate(q, buf[i]);
        if (e < d) {
          d = e;
          cur = buf[i];
          changed = true;
        }
      }
    }
  }
  return cur;
}

std::vector<GraphIndex::Cand> GraphIndex::search_level(const Query& q, const std::vector<uint32_t>& seeds, size_t ef, int level,
                                                       bool locked) const {
  auto vis = take_visited();
  MinHeap cand;
  MaxHeap top;
  for (uint32_t s : seeds) {
    if (vis->test_and_set(s)) continue;
    const float d0 = estimate(q, s);
    cand.emplace(d0, s);
    top.emplace(d0, s);
    if (top.size() > ef) top.pop();
  }
  uint32_t buf[256];
  while (!cand.empty()) {
    const auto [d, c] = cand.top();
    if (d > top.top().first && top.size() >= ef) break;
    cand.pop();
    if (level == 0 && !cand.empty()) prefetch_links0(cand.top().second);
    uint32_t n;
    {
      std::unique_lock<std::mutex> g(lock_of(c), std::defer_lock);
      if (locked) g.lock();
      n = link_count(c, level);
      std::memcpy(buf, links(c, level), n * sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < n; ++i) prefetch_code(buf[i], *vis);
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t nb = buf[i];
      if (vis->test_and_set(nb)) continue;
      const float e = estimate(q, nb);
      if (top.size() < ef || e < top.top().first) {
        cand.emplace(e, nb);
        top.emplace(e, nb);
        if (top.size() > ef) top.pop();
      }
    }
  }
  give_visited(std::move(vis));
  std::vector<Cand> out(top.size());
  for (size_t i = out.size(); i-- > 0; top.pop()) out[i] = top.top();
  return out;
}

void GraphIndex::add_hub(uint32_t node) {
  hubs_.push_back(node);
  hub_bits_.append(bits_.data() + size_t(node) * words_, words_);
  hub_a_.push_back(a_[node]);
}

std::vector<uint32_t> GraphIndex::best_hubs(const Query& q, size_t width) const {
  std::vector<Cand> best;
  best.reserve(width + 1);
  const size_t n = hubs_.size();
  for (size_t i = 0; i < n; ++i) {
    const Cand c(estimate_code(q, hub_bits_.data() + i * words_, hub_a_[i]), hubs_[i]);
    if (best.size() < width) {
      best.push_back(c);
      std::push_heap(best.begin(), best.end());
    } else if (c < best.front()) {  // ties by node: the same hubs in any order (a loaded index)
      std::pop_heap(best.begin(), best.end());
      best.back() = c;
      std::push_heap(best.begin(), best.end());
    }
  }
  std::vector<uint32_t> out;
  for (const auto& [e, x] : best) out.push_back(x);
  return out;
}

std::vector<uint32_t> GraphIndex::level0_seeds(const Query& q, uint32_t from, int from_level, bool locked) const {
  if (from_level < 1 || opt_.entry_width <= 1) return {from};
  std::vector<uint32_t> seeds = best_hubs(q, opt_.entry_width);
  seeds.push_back(from);
  std::vector<uint32_t> out;
  for (const auto& [d, x] : search_level(q, seeds, opt_.entry_width, 1, locked)) out.push_back(x);
  return out;
}

std::vector<uint32_t> GraphIndex::select(const std::vector<Cand>& sorted, size_t m) const {
  std::vector<uint32_t> out;
  for (const auto& [d, e] : sorted) {
    if (out.size() >= m) break;
    bool keep = true;
    for (uint32_t s : out)
      if (code_distance(e, s) < d) {
        keep = false;
        break;
      }
    if (keep) out.push_back(e);
  }
  return out;
}

void GraphIndex::link_back(uint32_t from, uint32_t to, int level) {
  std::lock_guard<std::mutex> g(lock_of(from));
  const uint32_t n = link_count(from, level);
  uint32_t* l = links(from, level);
  for (uint32_t i = 0; i < n; ++i)
    if (l[i] == to) return;
  if (n < max_links(level)) {
    l[n] = to;
    if (level == 0) count0_[from] = static_cast<uint8_t>(n + 1);
    else upper_.at(from)[size_t(level - 1) * (opt_.m + 1)] = n + 1;
    return;
  }
  std::vector<Cand> c;
  c.reserve(n + 1);
  for (uint32_t i = 0; i < n; ++i) c.emplace_back(code_distance(from, l[i]), l[i]);
  c.emplace_back(code_distance(from, to), to);
  std::sort(c.begin(), c.end());
  const auto keep = select(c, max_links(level));
  set_links(from, level, keep.data(), static_cast<uint32_t>(keep.size()));
}

void GraphIndex::insert(uint32_t node, const Query& q) {
  const int level = level_[node];
  std::unique_lock<std::mutex> el(entry_lock_);
  const int top_level = max_level_;
  const uint32_t ep = entry_;
  if (ep == kNone) {
    entry_ = node;
    max_level_ = level;
    return;
  }
  if (level <= top_level) el.unlock();  // only a new top level keeps the entry locked
  const uint32_t cur = descend(q, ep, top_level, level, true);
  std::vector<uint32_t> seeds = level == 0 ? level0_seeds(q, cur, top_level, true) : std::vector<uint32_t>{cur};
  for (int l = std::min(level, top_level); l >= 0; --l) {
    auto w = search_level(q, seeds, opt_.ef_construction, l, true);
    w.erase(std::remove_if(w.begin(), w.end(), [&](const Cand& c) { return c.second == node; }), w.end());
    if (w.empty()) continue;
    const auto sel = select(w, opt_.m);
    {
      std::lock_guard<std::mutex> g(lock_of(node));
      set_links(node, l, sel.data(), static_cast<uint32_t>(sel.size()));
    }
    for (uint32_t s : sel) link_back(s, node, l);
    seeds.clear();  // the next level down starts from everything this one found
    for (const auto& [d, x] : w) seeds.push_back(x);
  }
  if (level > top_level) {
    entry_ = node;
    max_level_ = level;
  }
}

Status GraphIndex::grow(size_t nodes) {
  if (nodes > UINT32_MAX - 1) return resource_exhausted("graph index: more than 2^32 − 2 nodes");
  if (nodes <= ids_.size()) return Status::ok();
  bits_.resize(nodes * words_);
  a_.resize(nodes);
  links0_.resize(nodes * 2 * opt_.m, 0);
  count0_.resize(nodes, 0);
  level_.resize(nodes, 0);
  ids_.resize(nodes, kFree);
  slot_.resize(nodes, 0);
  return Status::ok();
}

void GraphIndex::shrink() {
  bits_.shrink_to_fit();
  a_.shrink_to_fit();
  links0_.shrink_to_fit();
  count0_.shrink_to_fit();
  level_.shrink_to_fit();
  ids_.shrink_to_fit();
  slot_.shrink_to_fit();
  free_.shrink_to_fit();
}

bool GraphIndex::contains(Id id) const { return id != kFree && std::find(ids_.begin(), ids_.end(), id) != ids_.end(); }

Status GraphIndex::add(std::span<const Id> ids, std::span<const float> vectors) {
  if (vectors.size() != ids.size() * dim_) return invalid_argument("add: values do not match ids × dimension");
  if (ids.empty()) return Status::ok();
  std::unordered_set<Id> fresh(ids.begin(), ids.end());
  if (fresh.size() != ids.size()) return invalid_argument("add: an id is repeated");
  if (fresh.count(kFree)) return invalid_argument("add: id out of range");
  for (Id id : ids_)
    if (id != kFree && fresh.count(id)) return invalid_argument("add: id " + std::to_string(id) + " is already in the index");
  // Nodes: freed slots first (removal leaves no hole for long), then new ones at the end.
  std::vector<uint32_t> node(ids.size());
  size_t next = ids_.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!free_.empty()) {
      node[i] = free_.back();
      free_.pop_back();
    } else {
      node[i] = static_cast<uint32_t>(next++);
    }
  }
  if (Status st = grow(next); !st.is_ok()) {
    for (size_t i = ids.size(); i-- > 0;)
      if (node[i] < ids_.size()) free_.push_back(node[i]);
    return st;
  }
  const size_t rb = RerankRecord::values(dim_);
  constexpr size_t kChunk = 16384;
  SecureBuffer<int16_t> recs;
  recs.resize(std::min(kChunk, ids.size()) * rb);
  std::vector<uint32_t> slots(kChunk);
  const int threads = std::max(1, opt_.threads);
  for (size_t c0 = 0; c0 < ids.size(); c0 += kChunk) {
    const size_t m = std::min(kChunk, ids.size() - c0);
    // Codes and re-rank records.
    run_parallel(threads, [&](int t) {
      auto [b, e] = split_range(m, threads, t);
      Query q;
      for (size_t i = b; i < e; ++i) {
        const float* x = vectors.data() + (c0 + i) * dim_;
        const uint32_t nd = node[c0 + i];
        prepare(x, q);
        uint64_t* bits = bits_.data() + size_t(nd) * words_;
        std::fill(bits, bits + words_, 0);
        double l1 = 0, l2 = 0;
        for (size_t j = 0; j < q.rot.size(); ++j) {
          if (q.rot[j] > 0) bits[j / 64] |= uint64_t(1) << (j % 64);
          l1 += std::fabs(q.rot[j]);
          l2 += double(q.rot[j]) * q.rot[j];
        }
        a_[nd] = l2 > 0 ? static_cast<float>(l1 / std::sqrt(double(q.rot.size()) * l2)) : 1.0f;
        RerankRecord::encode(x, dim_, recs.data() + i * rb);
      }
      sodium_memzero(q.rot.data(), q.rot.size() * sizeof(float));
    });
    if (Status st = store_->put(reinterpret_cast<const uint8_t*>(recs.data()), m, slots.data(), threads); !st.is_ok()) {
      // Nothing of this chunk or later ones is linked yet: give their nodes back.
      for (size_t i = c0; i < ids.size(); ++i) {
        std::fill(bits_.data() + size_t(node[i]) * words_, bits_.data() + size_t(node[i] + 1) * words_, 0);
        free_.push_back(node[i]);
      }
      sodium_memzero(recs.data(), recs.size() * sizeof(int16_t));
      return st;
    }
    for (size_t i = 0; i < m; ++i) {
      const uint32_t nd = node[c0 + i];
      slot_[nd] = slots[i];
      ids_[nd] = ids[c0 + i];
      level_[nd] = static_cast<uint8_t>(draw_level(nd));
      count0_[nd] = 0;
      if (level_[nd] > 0) upper_[nd].assign(size_t(level_[nd]) * (opt_.m + 1), 0);
      if (level_[nd] >= kHubLevel) add_hub(nd);  // before the threads start: read-only while they insert
    }
    sodium_memzero(recs.data(), recs.size() * sizeof(int16_t));
    // Linking. The first node of an empty graph is inserted alone (it becomes the entry).
    size_t first = 0;
    if (entry_ == kNone) {
      Query q;
      prepare(vectors.data() + c0 * dim_, q);
      insert(node[c0], q);
      first = 1;
    }
    run_parallel(threads, [&](int t) {
      Query q;
      for (size_t i = first + t; i < m; i += threads) {
        prepare(vectors.data() + (c0 + i) * dim_, q);
        insert(node[c0 + i], q);
      }
      sodium_memzero(q.rot.data(), q.rot.size() * sizeof(float));
    });
    live_ += m;
  }
  if (live_ > ids.size() && ids.size() >= kMinPopulation && is_population(node)) {
    // Its own hubs first, so that the second look's beams start inside it as well.
    if (opt_.population_hubs && ids.size() < kPopulationHubs * opt_.m * opt_.m)
      for (uint32_t nd : node)
        if (level_[nd] == 1) {
          add_hub(nd);
          population_hubs_.push_back(nd);
        }
    run_parallel(threads, [&](int t) {
      Query q;
      for (size_t i = t; i < ids.size(); i += threads) {
        prepare(vectors.data() + i * dim_, q);
        second_look(node[i], q);
      }
      sodium_memzero(q.rot.data(), q.rot.size() * sizeof(float));
    });
    second_looks_ += ids.size();
  }
  return Status::ok();
}

// Whether a batch just linked is a population of its own: its nodes' level-0 links stay
// inside the batch far more often than its share of the graph would give by chance. A batch
// links to itself more than its share even when it is random (its late nodes find its early
// ones, which still have room for links): 600 random templates added to 60,000 keep 0.22-0.25
// of their links inside (share 0.01), 600 faces of a 24-D subspace 0.78 (index_test, m 4, two
// threads). The bar sits between the two, at 0.5, clear of both: a random batch taken for a
// population costs a second look and hubs it does not need.
bool GraphIndex::is_population(std::vector<uint32_t> batch) const {
  std::sort(batch.begin(), batch.end());
  size_t inside = 0, total = 0;
  for (uint32_t nd : batch) {
    const uint32_t n = count0_[nd];
    const uint32_t* l = links(nd, 0);
    total += n;
    for (uint32_t i = 0; i < n; ++i) inside += std::binary_search(batch.begin(), batch.end(), l[i]);
  }
  const double share = double(batch.size()) / double(live_), affinity = total ? double(inside) / double(total) : 0.0;
  return affinity >= 0.5 && affinity >= 4 * share;
}

// A node of a population batch, linked again at level 0 now that its whole batch is in the
// graph: a beam of ef_construction from the entry as at insertion, merged with its links, up
// to 2·m chosen by the heuristic, and linked back.
void GraphIndex::second_look(uint32_t nd, const Query& q) {
  const uint32_t cur = descend(q, entry_, max_level_, 0, true);
  auto w = search_level(q, level0_seeds(q, cur, max_level_, true), opt_.ef_construction, 0, true);
  {
    std::lock_guard<std::mutex> g(lock_of(nd));
    const uint32_t n = count0_[nd];
    const uint32_t* l = links(nd, 0);
    for (uint32_t i = 0; i < n; ++i) w.emplace_back(estimate(q, l[i]), l[i]);
  }
  w.erase(std::remove_if(w.begin(), w.end(), [&](const Cand& c) { return c.second == nd; }), w.end());
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end(), [](const Cand& a, const Cand& b) { return a.second == b.second; }), w.end());
  const auto sel = select(w, max_links(0));
  {
    std::lock_guard<std::mutex> g(lock_of(nd));
    set_links(nd, 0, sel.data(), static_cast<uint32_t>(sel.size()));
  }
  for (uint32_t x : sel) link_back(x, nd, 0);
}

// Re-links `node` on `level` without the removed nodes: its remaining links plus the links of
// the removed nodes it pointed to (they were its neighbours' neighbours), chosen again by the
// heuristic; when that leaves it fewer than m candidates, a graph search from the entry with
// its own code as the query adds more (so that removing a whole neighbourhood does not cut it
// off).
void GraphIndex::relink(uint32_t node, int level, const std::vector<uint8_t>& gone) {
  std::vector<uint32_t> pool;
  const uint32_t n = link_count(node, level);
  const uint32_t* l = links(node, level);
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t x = l[i];
    if (!gone[x]) {
      pool.push_back(x);
      continue;
    }
    const uint32_t nn = link_count(x, level);
    const uint32_t* lx = links(x, level);
    for (uint32_t j = 0; j < nn; ++j)
      if (!gone[lx[j]] && lx[j] != node) pool.push_back(lx[j]);
  }
  std::sort(pool.begin(), pool.end());
  pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
  if (pool.size() < opt_.m && entry_ != kNone) {
    Query q;  // the node's code as a query: signs scaled to a unit vector in R^D
    const size_t D = 64 * words_;
    q.lo = -1.0f / std::sqrt(float(D));
    q.step = 2.0f / std::sqrt(float(D)) / 15.0f;
    q.planes.assign(4 * words_, 0);
    const uint64_t* b = bits_.data() + size_t(node) * words_;
    uint64_t sum = 0;
    for (size_t w = 0; w < words_; ++w)
      for (int p = 0; p < 4; ++p) q.planes[p * words_ + w] = b[w];
    for (size_t w = 0; w < words_; ++w) sum += 15u * static_cast<uint64_t>(__builtin_popcountll(b[w]));
    q.total = q.lo * float(D) + q.step * float(sum);
    q.scale = 1.0f / std::sqrt(float(D));
    const uint32_t start = descend(q, entry_, max_level_, level, false);
    for (const auto& [d, x] : search_level(q, {start}, opt_.ef_construction, level, false))
      if (!gone[x] && x != node && (level == 0 || level_[x] >= level)) pool.push_back(x);
    std::sort(pool.begin(), pool.end());
    pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
  }
  std::vector<Cand> c;
  c.reserve(pool.size());
  for (uint32_t x : pool) c.emplace_back(code_distance(node, x), x);
  std::sort(c.begin(), c.end());
  const auto keep = select(c, max_links(level));
  set_links(node, level, keep.data(), static_cast<uint32_t>(keep.size()));
}

Result<size_t> GraphIndex::remove(std::span<const Id> ids) {
  if (ids.empty() || live_ == 0) return size_t(0);
  std::unordered_set<Id> want(ids.begin(), ids.end());
  want.erase(kFree);
  std::vector<uint32_t> dead;
  for (size_t i = 0; i < ids_.size(); ++i)
    if (ids_[i] != kFree && want.count(ids_[i])) dead.push_back(static_cast<uint32_t>(i));
  if (dead.empty()) return size_t(0);
  std::vector<uint8_t> gone(ids_.size(), 0);
  for (uint32_t d : dead) gone[d] = 1;
  // A new entry first (the highest level among the nodes that stay), so that re-linking
  // searches start from a node that will still be there.
  if (entry_ != kNone && gone[entry_]) {
    uint32_t best = kNone;
    int bl = -1;
    for (const auto& [nd, v] : upper_)
      if (!gone[nd] && (level_[nd] > bl || (level_[nd] == bl && nd < best))) {
        best = nd;
        bl = level_[nd];
      }
    if (best == kNone)
      for (size_t i = 0; i < ids_.size(); ++i)
        if (ids_[i] != kFree && !gone[i]) {
          best = static_cast<uint32_t>(i);
          bl = 0;
          break;
        }
    entry_ = best;
    max_level_ = best == kNone ? -1 : bl;
  }
  // Every node that linked to a removed one, on every level.
  const size_t r0 = 2 * opt_.m;
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (ids_[i] == kFree || gone[i]) continue;
    const uint32_t* l = links0_.data() + i * r0;
    for (uint32_t j = 0; j < count0_[i]; ++j)
      if (gone[l[j]]) {
        relink(static_cast<uint32_t>(i), 0, gone);
        break;
      }
  }
  for (auto& [nd, v] : upper_) {
    if (gone[nd]) continue;
    for (int l = 1; l <= level_[nd]; ++l) {
      const uint32_t n = link_count(nd, l);
      const uint32_t* ls = links(nd, l);
      if (std::any_of(ls, ls + n, [&](uint32_t x) { return gone[x] != 0; })) relink(nd, l, gone);
    }
  }
  // Then the removed nodes themselves: hub entry, code, links, id and record, gone from
  // memory and disk (the hub list in one pass: erasing most of a 10 M gallery must not cost
  // a search of the list per node).
  {  // the hub list and its copy of the codes, compacted together; the tail is wiped by resize
    size_t kept = 0;
    for (size_t i = 0; i < hubs_.size(); ++i) {
      if (gone[hubs_[i]]) continue;
      if (kept != i) {
        hubs_[kept] = hubs_[i];
        std::memcpy(hub_bits_.data() + kept * words_, hub_bits_.data() + i * words_, words_ * sizeof(uint64_t));
        hub_a_[kept] = hub_a_[i];
      }
      ++kept;
    }
    hubs_.resize(kept);
    hub_bits_.resize(kept * words_);
    hub_a_.resize(kept);
  }
  population_hubs_.erase(std::remove_if(population_hubs_.begin(), population_hubs_.end(), [&](uint32_t h) { return gone[h] != 0; }),
                         population_hubs_.end());
  std::vector<uint32_t> slots;
  for (uint32_t d : dead) {
    sodium_memzero(bits_.data() + size_t(d) * words_, words_ * sizeof(uint64_t));
    a_[d] = 0;
    std::fill(links0_.begin() + size_t(d) * r0, links0_.begin() + size_t(d + 1) * r0, 0u);
    count0_[d] = 0;
    level_[d] = 0;
    upper_.erase(d);
    ids_[d] = kFree;
    slots.push_back(slot_[d]);
    slot_[d] = 0;
    free_.push_back(d);
  }
  FV_RETURN_IF_ERROR(store_->erase(slots.data(), slots.size()));
  live_ -= dead.size();
  if (live_ == 0) {
    entry_ = kNone;
    max_level_ = -1;
  }
  return dead.size();
}

Result<SearchResult> GraphIndex::search(std::span<const float> query, size_t k, const IdFilter* filter) const {
  return search_impl(query, k, filter);
}

Result<std::vector<SearchResult>> GraphIndex::search_batch(std::span<const float> queries, size_t k,
                                                           const IdFilter* filter) const {
  return search_each_in_parallel(queries, dim_, opt_.threads, [&](std::span<const float> q) { return search_impl(q, k, filter); });
}

Result<SearchResult> GraphIndex::search_impl(std::span<const float> query, size_t k, const IdFilter* filter) const {
  if (query.size() != dim_) return invalid_argument("search: query dimension does not match the index");
  if (live_ == 0 || k == 0 || entry_ == kNone) return SearchResult{};
  Query q;
  prepare(query.data(), q);
  const size_t ef = std::max(opt_.ef_search, k);
  // The beam on level 0 with the filter inside: every node is walked through, only eligible
  // ones may enter `top`, and the beam does not end before `top` holds ef of them — unless it
  // has walked `budget` nodes, after which a strict filter is better served by the scan below.
  const size_t budget = std::max<size_t>(64 * ef, live_ / 16);
  auto vis = take_visited();
  MinHeap cand;
  MaxHeap top;
  size_t walked = 0;
  auto offer = [&](float e, uint32_t nd) {
    if (top.size() >= ef && !(e < top.top().first)) return;
    if (filter && !filter->allowed(ids_[nd])) return;
    top.emplace(e, nd);
    if (top.size() > ef) top.pop();
  };
  {
    for (uint32_t s : level0_seeds(q, descend(q, entry_, max_level_, std::min(1, max_level_), false), max_level_, false)) {
      if (vis->test_and_set(s)) continue;
      const float d0 = estimate(q, s);
      cand.emplace(d0, s);
      offer(d0, s);
    }
    uint32_t buf[256];
    while (!cand.empty()) {
      const auto [d, c] = cand.top();
      const bool worse = !top.empty() && d > top.top().first;
      if (worse && top.size() >= ef) break;
      if (walked > budget && (top.size() < k || worse)) break;  // the scan below finishes a strict filter
      cand.pop();
      if (!cand.empty()) prefetch_links0(cand.top().second);
      const uint32_t n = count0_[c];
      std::memcpy(buf, links0_.data() + size_t(c) * 2 * opt_.m, n * sizeof(uint32_t));
      for (uint32_t i = 0; i < n; ++i) prefetch_code(buf[i], *vis);
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t nb = buf[i];
        if (vis->test_and_set(nb)) continue;
        ++walked;
        const float e = estimate(q, nb);
        // Walk on through ineligible nodes (they lead to eligible ones); a node worse than
        // the current list is not expanded once the list is full.
        if (top.size() < ef || e < top.top().first) {
          cand.emplace(e, nb);
          offer(e, nb);
        }
      }
    }
  }
  // Fewer than k eligible found (a strict purpose filter, or a part of the graph the beam did
  // not reach): score every other node's code with the filter.
  if (top.size() < k && walked + 1 < live_) {
    for (uint32_t i = 0; i < ids_.size(); ++i) {
      if (ids_[i] == kFree || vis->test_and_set(i)) continue;
      ++walked;
      offer(estimate(q, i), i);
    }
  }
  give_visited(std::move(vis));
  searches_.fetch_add(1, std::memory_order_relaxed);
  visited_.fetch_add(walked + 1, std::memory_order_relaxed);

  std::vector<Cand> cands(top.size());
  for (size_t i = cands.size(); i-- > 0; top.pop()) cands[i] = top.top();
  const size_t R = std::max(k, opt_.rerank ? opt_.rerank : ef);
  if (cands.size() > R) cands.resize(R);
  // Exact re-rank on the full-dimension records, against the float query, best estimate
  // first; once k are in, a candidate whose estimate plus its error bound cannot reach the
  // k-th exact score is not read. The bound: the RaBitQ estimator's standard error for a code
  // with norm factor a is √(1 − a²)/a/√(D − 1) for unit vectors (×‖q‖), and the query's 4-bit
  // rounding adds at most step/(√12·a) in the same units (both in quadrature).
  TopK best(k);
  std::vector<int16_t> rec(RerankRecord::values(dim_));
  const float inv_sqrt_d1 = 1.0f / std::sqrt(float(64 * words_ - 1)), round_err = q.step / std::sqrt(12.0f);
  size_t reread = 0;
  for (const auto& [e, nd] : cands) {
    if (opt_.rerank_confidence > 0 && best.full()) {
      const float a = std::clamp(a_[nd], 0.05f, 1.0f);
      const float code_err = std::sqrt(1.0f - a * a) / a * inv_sqrt_d1 * q.norm, q_err = round_err / a;
      if (-e + opt_.rerank_confidence * std::sqrt(code_err * code_err + q_err * q_err) < best.threshold()) continue;
    }
    ++reread;
    if (Status st = store_->get(slot_[nd], reinterpret_cast<uint8_t*>(rec.data())); !st.is_ok()) {
      sodium_memzero(rec.data(), rec.size() * sizeof(int16_t));
      return st;
    }
    best.push(RerankRecord::score(rec.data(), query.data(), dim_), ids_[nd]);
  }
  sodium_memzero(rec.data(), rec.size() * sizeof(int16_t));
  sodium_memzero(q.rot.data(), q.rot.size() * sizeof(float));
  reranked_.fetch_add(reread, std::memory_order_relaxed);
  return best.result();
}

double GraphIndex::visited_per_search() const {
  const uint64_t s = searches_.load();
  return s ? double(visited_.load()) / double(s) : 0.0;
}
double GraphIndex::reranked_per_search() const {
  const uint64_t s = searches_.load();
  return s ? double(reranked_.load()) / double(s) : 0.0;
}

IndexStats GraphIndex::stats() const {
  IndexStats s;
  s.size = live_;
  size_t mem = bits_.capacity() * sizeof(uint64_t) + a_.capacity() * sizeof(float) + links0_.capacity() * sizeof(uint32_t) +
               count0_.capacity() + level_.capacity() + ids_.capacity() * sizeof(Id) + slot_.capacity() * sizeof(uint32_t) +
               free_.capacity() * sizeof(uint32_t) + rot_.capacity() * sizeof(float) + hubs_.capacity() * sizeof(uint32_t) +
               population_hubs_.capacity() * sizeof(uint32_t) + hub_bits_.capacity() * sizeof(uint64_t) + hub_a_.capacity() * sizeof(float);
  // The hash map of upper levels: its nodes (~2 pointers + key + vector header) and buckets.
  mem += upper_.bucket_count() * sizeof(void*) + upper_.size() * (2 * sizeof(void*) + sizeof(uint32_t) + sizeof(std::vector<uint32_t>));
  for (const auto& [nd, v] : upper_) mem += v.capacity() * sizeof(uint32_t);
  {
    std::lock_guard<std::mutex> g(pool_lock_);
    for (const auto& v : pool_) mem += v->mark.capacity();
  }
  if (store_) mem += store_->memory_bytes();
  s.memory_bytes = mem;
  s.scan_bytes_per_item = words_ * sizeof(uint64_t) + sizeof(float);  // a scored node: its code and a
  s.disk_bytes = store_ ? store_->disk_bytes() : 0;
  return s;
}

Status GraphIndex::check() const {
  const size_t n = ids_.size();
  std::vector<uint8_t> seen(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const bool live = ids_[i] != kFree;
    if (!live && (count0_[i] || upper_.count(static_cast<uint32_t>(i)))) return internal_error("graph: a free slot has links");
    if (!live) continue;
    for (int l = 0; l <= level_[i]; ++l) {
      if (l > 0 && !upper_.count(static_cast<uint32_t>(i))) return internal_error("graph: upper levels missing");
      const uint32_t c = link_count(static_cast<uint32_t>(i), l);
      if (c > max_links(l)) return internal_error("graph: too many links");
      const uint32_t* ls = links(static_cast<uint32_t>(i), l);
      for (uint32_t j = 0; j < c; ++j) {
        if (ls[j] >= n || ids_[ls[j]] == kFree) return internal_error("graph: a link to a free slot");
        if (ls[j] == i) return internal_error("graph: a node links to itself");
        if (level_[ls[j]] < l) return internal_error("graph: a link to a node without that level");
      }
    }
  }
  if (live_ && (entry_ == kNone || ids_[entry_] == kFree || level_[entry_] != max_level_))
    return internal_error("graph: bad entry point");
  // Hubs: every live node on level ≥ kHubLevel and the population hubs (live, level 1), once each.
  std::vector<uint32_t> want;
  for (size_t i = 0; i < n; ++i)
    if (ids_[i] != kFree && level_[i] >= kHubLevel) want.push_back(static_cast<uint32_t>(i));
  for (uint32_t h : population_hubs_) {
    if (h >= n || ids_[h] == kFree || level_[h] != 1) return internal_error("graph: a population hub is not a live level-1 node");
    want.push_back(h);
  }
  std::vector<uint32_t> have = hubs_;
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  if (want != have || std::adjacent_find(have.begin(), have.end()) != have.end())
    return internal_error("graph: the hub list does not match the levels");
  if (hub_bits_.size() != hubs_.size() * words_ || hub_a_.size() != hubs_.size())
    return internal_error("graph: the hubs' codes are not one per hub");
  for (size_t i = 0; i < hubs_.size(); ++i)
    if (std::memcmp(hub_bits_.data() + i * words_, bits_.data() + size_t(hubs_[i]) * words_, words_ * sizeof(uint64_t)) != 0 ||
        hub_a_[i] != a_[hubs_[i]])
      return internal_error("graph: a hub's code differs from its node's");
  return Status::ok();
}

Status GraphIndex::save_body(SealedWriter& out) const {
  const uint64_t hdr[] = {dim_, words_, opt_.m, opt_.ef_construction, opt_.ef_search, opt_.rerank, opt_.seed,
                          ids_.size(), live_, entry_, static_cast<uint64_t>(static_cast<int64_t>(max_level_)), opt_.entry_width};
  FV_RETURN_IF_ERROR(out.write(hdr, sizeof hdr));
  FV_RETURN_IF_ERROR(out.write_vec(bits_.data(), ids_.size() * words_));
  FV_RETURN_IF_ERROR(out.write_vec(a_.data(), ids_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(links0_.data(), links0_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(count0_.data(), count0_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(level_.data(), level_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(ids_.data(), ids_.size()));
  std::vector<uint32_t> up;  // node, then its levels' arrays
  for (size_t i = 0; i < ids_.size(); ++i)
    if (auto it = upper_.find(static_cast<uint32_t>(i)); it != upper_.end()) {
      up.push_back(static_cast<uint32_t>(i));
      up.insert(up.end(), it->second.begin(), it->second.end());
    }
  FV_RETURN_IF_ERROR(out.write_vec(up.data(), up.size()));
  FV_RETURN_IF_ERROR(out.write_vec(population_hubs_.data(), population_hubs_.size()));
  std::vector<uint8_t> rec(RerankRecord::bytes(dim_));
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (ids_[i] == kFree) continue;
    FV_RETURN_IF_ERROR(store_->get(slot_[i], rec.data()));
    FV_RETURN_IF_ERROR(out.write(rec.data(), rec.size()));
  }
  sodium_memzero(rec.data(), rec.size());
  return Status::ok();
}

Status GraphIndex::save(const std::filesystem::path& path, const IndexKey& key) const {
  FV_ASSIGN_OR_RETURN(auto out, SealedWriter::create(path, key));
  const char tag[8] = {'h', 'n', 's', 'w', 0, 0, 0, kFormat};  // 2: 16-bit re-rank records; 3: population hubs
  FV_RETURN_IF_ERROR(out->write(tag, 8));
  FV_RETURN_IF_ERROR(save_body(*out));
  return out->finish();
}

Result<std::unique_ptr<GraphIndex>> GraphIndex::load_body(SealedReader& in, const std::filesystem::path& store_path, int version) {
  if (version != 2 && version != kFormat) return corrupt_data("index file: unknown graph format " + std::to_string(version));
  uint64_t hdr[12];
  FV_RETURN_IF_ERROR(in.read(hdr, sizeof hdr));
  const size_t dim = hdr[0], words = hdr[1], n = hdr[7], live = hdr[8];
  GraphOptions o;
  o.m = hdr[2];
  o.ef_construction = hdr[3];
  o.ef_search = hdr[4];
  o.rerank = hdr[5];
  o.seed = hdr[6];
  o.entry_width = hdr[11];
  o.store_path = store_path;
  if (dim == 0 || dim > 4096 || words != (dim + 63) / 64 || o.m < 2 || o.m > 100 || o.ef_construction < o.m ||
      n >= UINT32_MAX || live > n || o.ef_search > (size_t(1) << 24) || o.rerank > (size_t(1) << 24) || o.entry_width > 4096)
    return corrupt_data("index file: bad graph header");
  const uint32_t entry = static_cast<uint32_t>(hdr[9]);
  const int max_level = static_cast<int>(static_cast<int64_t>(hdr[10]));
  if (hdr[9] > UINT32_MAX || max_level < -1 || max_level > kMaxLevel || (live > 0) != (entry != kNone) || (entry != kNone && entry >= n))
    return corrupt_data("index file: bad graph entry point");
  FV_ASSIGN_OR_RETURN(auto g, create(dim, o));
  const size_t r0 = 2 * o.m;
  FV_RETURN_IF_ERROR((in.read_vec<uint64_t>(g->bits_, n * words)));
  FV_RETURN_IF_ERROR((in.read_vec<float>(g->a_, n)));
  FV_RETURN_IF_ERROR((in.read_vec<uint32_t>(g->links0_, n * r0)));
  FV_RETURN_IF_ERROR((in.read_vec<uint8_t>(g->count0_, n)));
  FV_RETURN_IF_ERROR((in.read_vec<uint8_t>(g->level_, n)));
  FV_RETURN_IF_ERROR((in.read_vec<Id>(g->ids_, n)));
  if (g->bits_.size() != n * words || g->a_.size() != n || g->links0_.size() != n * r0 || g->count0_.size() != n ||
      g->level_.size() != n || g->ids_.size() != n)
    return corrupt_data("index file: inconsistent graph arrays");
  std::vector<uint32_t> up;
  FV_RETURN_IF_ERROR((in.read_vec<uint32_t>(up, n * (1 + size_t(kMaxLevel) * (o.m + 1)))));
  for (size_t p = 0; p < up.size();) {
    const uint32_t nd = up[p++];
    if (nd >= n || g->level_[nd] == 0 || g->level_[nd] > kMaxLevel || g->upper_.count(nd)) return corrupt_data("index file: bad upper level");
    const size_t len = size_t(g->level_[nd]) * (o.m + 1);
    if (p + len > up.size()) return corrupt_data("index file: bad upper level");
    g->upper_[nd].assign(up.begin() + static_cast<std::ptrdiff_t>(p), up.begin() + static_cast<std::ptrdiff_t>(p + len));
    p += len;
  }
  std::vector<uint32_t> pop;
  if (version >= 3) FV_RETURN_IF_ERROR((in.read_vec<uint32_t>(pop, n)));
  g->slot_.assign(n, 0);
  size_t count = 0;
  std::unordered_set<Id> seen;
  std::vector<uint8_t> rec(RerankRecord::bytes(dim));
  for (size_t i = 0; i < n; ++i) {
    if (g->ids_[i] == kFree) {
      g->free_.push_back(static_cast<uint32_t>(i));
      continue;
    }
    if (!seen.insert(g->ids_[i]).second) return corrupt_data("index file: a graph id is repeated");
    if (g->level_[i] > 0 && !g->upper_.count(static_cast<uint32_t>(i))) return corrupt_data("index file: bad upper level");
    if (g->level_[i] >= kHubLevel) g->add_hub(static_cast<uint32_t>(i));
    FV_RETURN_IF_ERROR(in.read(rec.data(), rec.size()));
    FV_RETURN_IF_ERROR(g->store_->put(rec.data(), 1, &g->slot_[i]));
    ++count;
  }
  for (uint32_t h : pop) {  // check() below refuses one that is not a live level-1 node, or repeated
    if (h >= n) return corrupt_data("index file: a population hub out of range");
    g->add_hub(h);
    g->population_hubs_.push_back(h);
  }
  std::reverse(g->free_.begin(), g->free_.end());
  sodium_memzero(rec.data(), rec.size());
  if (count != live) return corrupt_data("index file: graph size does not match its header");
  g->live_ = live;
  g->entry_ = entry;
  g->max_level_ = max_level;
  if (Status st = g->check(); !st.is_ok()) return corrupt_data("index file: " + st.message());
  return g;
}

}  // namespace fv::index
