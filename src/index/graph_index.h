// GraphIndex: the approximate index for large galleries — an HNSW graph (Malkov & Yashunin;
// the construction, neighbour heuristic and layer structure of hnswlib) over 1-bit codes,
// re-ranked at full precision.
//
//   codes:   a template x is rotated by a random orthogonal matrix R (seeded) and kept as the
//            signs of Rx (dim bits: 64 bytes at 512-D) plus one float a = ‖Rx‖₁/√D. For a
//            query q, q·x ≈ ⟨Rq, sign(Rx)⟩ / (√D·a) (the RaBitQ estimator, error ~0.03 at 512-D);
//            ⟨Rq, sign⟩ is summed with popcounts over four bit-planes of the 4-bit quantised
//            Rq. Between two codes (graph construction) the Hamming distance estimates the angle.
//   graph:   level 0 holds up to 2·M links per node, upper levels M; a node's level is drawn
//            from (seed, node) as in hnswlib (exponential with scale 1/ln M).
//   search:  greedy descent through the upper levels, a narrow beam on level 1 whose best
//            nodes seed a beam of width ef on level 0.
//            The purpose filter acts inside the beam: every node is walked through, only
//            eligible ones enter the result list, and the beam does not stop before it holds
//            ef eligible ones (or has walked a bounded part of the graph, after which the codes
//            of every node are scanned with the filter: k eligible results always come back).
//            The best `rerank` by estimate are re-scored exactly from the RecordStore (16-bit
//            full-dimension records, RerankRecord; in memory or encrypted on disk).
//   batches: a batch whose links stay inside it far more than chance (a population enrolled
//            after the rest and unlike it) is linked a second time once it is all in.
//   remove:  physical at once. Every node that linked to a removed one is re-linked (its other
//            links plus the removed node's links, chosen again by the heuristic), the removed
//            node's code, links and id are zeroed, its re-rank record erased, and its slot is
//            reused by the next add.
//
// Why not hnswlib itself (Debian's 0.6.2): it cannot filter inside a search nor remove a
// node physically, and its per-node mutex and id hash map alone cost ~80 bytes against the
// issue's 256-byte budget. Memory here: 64 (code) + 4 (a) + 8·M + 1 (links) + 8 (id) + 4
// (re-rank slot) + 1 (level) bytes per node, plus the upper levels (~8·M/M bytes).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "index/record_store.h"
#include "index/secure_io.h"
#include "index/vector_index.h"

namespace fv::index {

struct GraphOptions {
  size_t m = 16;                // links per node on the upper levels; 2·m on level 0
  size_t ef_construction = 200;  // beam width while inserting (100 lost recall at 1 M: docs/benchmarks.md)
  size_t ef_search = 128;        // beam width of a search (raised to k when smaller)
  size_t rerank = 0;             // candidates re-scored at full precision; 0: the beam width
  // Of those, a candidate is re-scored only if its estimate could still reach the k-th exact
  // score: estimate + rerank_confidence · σ ≥ k-th, σ the estimator's standard error for that
  // code (RaBitQ: √(1 − a²)/a/√(D − 1), a the code's norm factor, plus the query's 4-bit
  // rounding). Re-scoring a record means reading and decrypting it from the store (~2 µs),
  // the largest part of a search. 0: re-score all `rerank` candidates.
  float rerank_confidence = 3.5f;
  // Level 0 is entered from the best `entry_width` nodes of a beam on level 1, not from the
  // single node a greedy descent ends on: on near-isotropic data a query's neighbourhood is
  // a small region the greedy path rarely ends next to.
  size_t entry_width = 128;
  std::filesystem::path store_path;  // re-rank records: empty = memory, else an encrypted file
  // A small late population gets hubs of its own (GraphIndex::kPopulationHubs); off only to
  // measure what they bring (index_bench --no-population-hubs).
  bool population_hubs = true;
  uint64_t seed = 1234;
  int threads = 1;
};

class GraphIndex final : public VectorIndex {
 public:
  // dim: the template dimension (codes are dim rounded up to 64 bits).
  static Result<std::unique_ptr<GraphIndex>> create(size_t dim, GraphOptions options);
  ~GraphIndex() override;

  std::string kind() const override { return "hnsw"; }
  size_t dim() const override { return dim_; }
  size_t size() const override { return live_; }
  bool contains(Id id) const override;

  Status add(std::span<const Id> ids, std::span<const float> vectors) override;
  Result<size_t> remove(std::span<const Id> ids) override;
  Result<SearchResult> search(std::span<const float> query, size_t k, const IdFilter* filter = nullptr) const override;
  Result<std::vector<SearchResult>> search_batch(std::span<const float> queries, size_t k,
                                                 const IdFilter* filter = nullptr) const override;
  void set_threads(int threads) override { opt_.threads = threads < 1 ? 1 : threads; }
  IndexStats stats() const override;
  Status save(const std::filesystem::path& path, const IndexKey& key) const override;

  // Gives back the slack of the node arrays (after a bulk load).
  void shrink();
  // The codes as they sit in memory (nodes × words 64-bit words), for the tests that check
  // that a removal overwrites them.
  std::span<const uint64_t> code_memory() const { return {bits_.data(), bits_.size()}; }
  size_t code_words() const { return words_; }
  // The copy of the hubs' codes (hubs × words), for the same tests.
  std::span<const uint64_t> hub_code_memory() const { return {hub_bits_.data(), hub_bits_.size()}; }
  void set_ef(size_t ef) { opt_.ef_search = ef; }
  void set_rerank(size_t r) { opt_.rerank = r; }
  void set_population_hubs(bool on) { opt_.population_hubs = on; }
  void set_entry_width(size_t w) { opt_.entry_width = w; }
  const GraphOptions& options() const { return opt_; }
  // Mean number of nodes a search scored, and of records it re-scored (diagnostics).
  double visited_per_search() const;
  double reranked_per_search() const;
  void set_rerank_confidence(float c) { opt_.rerank_confidence = c < 0 ? 0 : c; }
  // Nodes that took a second look because their batch was a population of its own.
  size_t second_looks() const { return second_looks_; }
  // Hubs: in all, and those given to small late populations.
  size_t hub_count() const { return hubs_.size(); }
  size_t population_hub_count() const { return population_hubs_.size(); }
  // Checks the graph's invariants (links in range, no link to a free slot or to itself,
  // every live node reachable from the entry point); the tests call it after removals.
  Status check() const;

  // version: the file format after the "hnsw" tag (2: no population hubs; 3: the current one).
  static constexpr int kFormat = 3;
  static Result<std::unique_ptr<GraphIndex>> load_body(SealedReader& in, const std::filesystem::path& store_path = {},
                                                       int version = kFormat);
  Status save_body(SealedWriter& out) const;

 private:
  struct Query;         // a prepared query (rotated, quantised to bit-planes)
  struct Visited;       // per-search visited marks
  struct Scratch;
  GraphIndex(size_t dim, GraphOptions options);
  void make_rotation();
  void prepare(const float* x, Query& q) const;
  float estimate(const Query& q, uint32_t node) const;      // lower = closer (−cosine estimate)
  float estimate_code(const Query& q, const uint64_t* code, float a) const;
  float code_distance(uint32_t a, uint32_t b) const;       // between two stored codes
  int draw_level(uint32_t node) const;
  uint32_t* links(uint32_t node, int level);
  const uint32_t* links(uint32_t node, int level) const;
  uint32_t link_count(uint32_t node, int level) const;
  void set_links(uint32_t node, int level, const uint32_t* v, uint32_t n);
  size_t max_links(int level) const { return level == 0 ? 2 * opt_.m : opt_.m; }
  // Beam search on one level from `entry`; returns up to ef (distance, node) best first.
  using Cand = std::pair<float, uint32_t>;
  std::vector<Cand> search_level(const Query& q, const std::vector<uint32_t>& seeds, size_t ef, int level, bool locked) const;
  // The seeds of the level-0 beam: the best entry_width nodes of a beam on level 1 that starts
  // from a greedy descent's end and from the best entry_width hubs.
  std::vector<uint32_t> level0_seeds(const Query& q, uint32_t from, int from_level, bool locked) const;
  // The best `width` hubs for q, every hub's code scored.
  std::vector<uint32_t> best_hubs(const Query& q, size_t width) const;
  // Greedy from `from` (a node on from_level) down to a node on to_level + 1.
  uint32_t descend(const Query& q, uint32_t from, int from_level, int to_level, bool locked) const;
  // hnswlib's getNeighborsByHeuristic2: from candidates sorted by distance to the base, keep
  // one unless an already kept neighbour is closer to it than the base is.
  std::vector<uint32_t> select(const std::vector<Cand>& sorted, size_t m) const;
  void insert(uint32_t node, const Query& q);
  // A batch whose members are each other's neighbours (a gallery imported after the rest,
  // unlike it) gets a second look: nodes inserted early in the batch chose their links before
  // most of their neighbours existed, and at 3 M a late LFW batch stayed reachable only in part
  // (recall@10 levelled off at 0.97; with the second look 0.997 at ef 256: benchmarks.md).
  static constexpr size_t kMinPopulation = 32;
  bool is_population(std::vector<uint32_t> batch) const;
  void second_look(uint32_t node, const Query& q);
  void link_back(uint32_t from, uint32_t to, int level);
  void relink(uint32_t node, int level, const std::vector<uint8_t>& gone);
  Result<SearchResult> search_impl(std::span<const float> query, size_t k, const IdFilter* filter) const;
  Status grow(size_t nodes);
  std::mutex& lock_of(uint32_t node) const { return locks_[node % locks_.size()]; }
  // A search is a chain of cache misses (a node's code, its norm factor, its visited mark;
  // the next candidate's link count and links): these start them before they are needed.
  void prefetch_code(uint32_t node, const Visited& vis) const;
  void prefetch_links0(uint32_t node) const {
    __builtin_prefetch(&count0_[node]);
    __builtin_prefetch(links0_.data() + size_t(node) * 2 * opt_.m);
    __builtin_prefetch(links0_.data() + size_t(node) * 2 * opt_.m + 16);  // 2·m links span two lines at m 16
  }
  std::unique_ptr<Visited> take_visited() const;
  void give_visited(std::unique_ptr<Visited> v) const;

  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr Id kFree = INT64_MIN;
  size_t dim_, words_;         // words_: 64-bit words per code (code bits D = 64·words_)
  GraphOptions opt_;
  std::vector<float> rot_;     // D × dim, orthonormal rows (columns when D > dim)
  SecureBuffer<uint64_t> bits_;   // nodes × words_
  SecureBuffer<float> a_;         // nodes
  std::vector<uint32_t, LargePageAllocator<uint32_t>> links0_;  // nodes × 2m
  std::vector<uint8_t, LargePageAllocator<uint8_t>> count0_;    // links on level 0
  std::vector<uint8_t> level_;    // nodes
  // Upper levels of the nodes that have them (~1/m of all): per level, a count and m links.
  std::unordered_map<uint32_t, std::vector<uint32_t>> upper_;
  // Hubs: the nodes on level ≥ kHubLevel (1 in m², 39 k at 10 M), all scored at the start of a
  // search. Greedy routing from the top enters a region of the gallery only through the few
  // links that lead into it; a small population that differs from the rest (a batch enrolled
  // late, a region the top levels barely cover) is reached more reliably from the best hubs.
  static constexpr int kHubLevel = 2;
  std::vector<uint32_t> hubs_;
  // A population (above) of fewer than kPopulationHubs·m² nodes would bring fewer than
  // kPopulationHubs hubs of its own (LFW's 5,749 at 10 M: ~22 among 39 k, and a probe's best
  // LFW hub ranked ~146th by estimate, outside the 128 seeds for 1 probe in 5): its level-1
  // nodes become hubs too (~360 for LFW), listed here because the levels alone do not say it.
  static constexpr size_t kPopulationHubs = 256;
  std::vector<uint32_t> population_hubs_;
  // A copy of the hubs' codes and norm factors, in hub order: every search scores all of them
  // (39 k at 10 M), and read in a stream they cost a fraction of 39 k scattered cache misses
  // (~0.27 bytes per template). Kept equal to the nodes' codes by add_hub / remove; check()
  // verifies it.
  SecureBuffer<uint64_t> hub_bits_;
  SecureBuffer<float> hub_a_;
  void add_hub(uint32_t node);
  std::vector<Id> ids_;           // kFree for a free slot
  std::vector<uint32_t> slot_;    // re-rank record of each node
  std::vector<uint32_t> free_;
  std::unique_ptr<RecordStore> store_;
  uint32_t entry_ = kNone;
  int max_level_ = -1;
  size_t live_ = 0;
  mutable std::array<std::mutex, 4096> locks_;  // striped node locks (insertion with threads)
  std::mutex entry_lock_;
  mutable std::mutex pool_lock_;
  mutable std::vector<std::unique_ptr<Visited>> pool_;
  mutable std::atomic<uint64_t> searches_{0}, visited_{0}, reranked_{0};
  size_t second_looks_ = 0;
};

}  // namespace fv::index
