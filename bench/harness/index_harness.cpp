#include "bench/harness/index_harness.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <unordered_set>

#include "bench/harness/identification.h"
#include "bench/harness/synthetic.h"
#include "index/exact_index.h"
#include "index/kernels.h"
#include "index/parallel.h"
#include "index/secure_io.h"

namespace fv::index {
namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(std::ceil(p * v.size())) - (p > 0 ? 1 : 0));
  return v[i];
}

// What must match for a saved synthetic gallery to stand in for building it again.
nlohmann::json cache_settings(const BenchConfig& c, size_t n_syn) {
  return {{"kind", c.kind}, {"synthetic", n_syn}, {"dim", c.dim}, {"seed", c.seed}, {"gallery", c.gallery},
          {"lfw", c.lfw}, {"lfw_singles", c.lfw_singles}};
}

Status save_cache(const VectorIndex& index, const BenchConfig& c, size_t n_syn) {
  const IndexKey key = IndexKey::random();
  FV_RETURN_IF_ERROR(index.save(c.save_synthetic, key));
  nlohmann::json side = cache_settings(c, n_syn);
  char hex[2 * sizeof key.bytes + 1];
  side["key"] = std::string(sodium_bin2hex(hex, sizeof hex, key.bytes.data(), key.bytes.size()));
  sodium_memzero(hex, sizeof hex);
  const auto side_path = c.save_synthetic.string() + ".json";
  std::ofstream out(side_path, std::ios::trunc);
  out << side.dump() << "\n";
  out.close();
  if (!out) return io_error("bench: cannot write " + side_path);
  std::error_code ec;
  std::filesystem::permissions(side_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace, ec);
  return Status::ok();
}

Result<std::unique_ptr<VectorIndex>> load_cache(const BenchConfig& c, size_t n_syn) {
  const auto side_path = c.load_synthetic.string() + ".json";
  std::ifstream in(side_path);
  if (!in) return not_found("bench: no " + side_path + " beside the saved gallery");
  const nlohmann::json side = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  IndexKey key;
  const std::string hex = side.is_object() && side.contains("key") && side["key"].is_string() ? side["key"].get<std::string>() : "";
  size_t got = 0;
  if (sodium_hex2bin(key.bytes.data(), key.bytes.size(), hex.data(), hex.size(), nullptr, &got, nullptr) != 0 ||
      got != key.bytes.size() || hex.size() != 2 * key.bytes.size())
    return corrupt_data("bench: " + side_path + " is not a saved gallery's settings");
  const nlohmann::json want = cache_settings(c, n_syn);  // named: items() would outlive a temporary
  for (const auto& [name, value] : want.items())
    if (side.value(name, nlohmann::json()) != value)
      return invalid_argument("bench: the saved gallery was made with " + name + " " + side.value(name, nlohmann::json()).dump() +
                              ", this run asks for " + value.dump());
  const auto& store = c.kind == "ivf" ? c.ivf.store_path : c.graph.store_path;
  FV_ASSIGN_OR_RETURN(auto idx, load_index(c.load_synthetic, key, store));
  if (idx->size() != n_syn || idx->dim() != c.dim) return corrupt_data("bench: the saved gallery does not hold the synthetic templates");
  return idx;
}

}  // namespace

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

IndexFactory production_factory() {
  return [](std::span<const float> sample, const BenchConfig& c) -> Result<std::unique_ptr<VectorIndex>> {
    if (c.kind == "exact") return std::unique_ptr<VectorIndex>(std::make_unique<ExactIndex>(c.dim));
    if (c.kind == "ivf") {
      IvfOptions o = c.ivf;
      if (!o.expected_size) o.expected_size = c.size;
      o.threads = *std::max_element(c.threads.begin(), c.threads.end());
      auto idx = std::make_unique<IvfIndex>(c.dim, o);
      FV_RETURN_IF_ERROR(idx->train(sample));
      return std::unique_ptr<VectorIndex>(std::move(idx));
    }
    if (c.kind == "hnsw") {
      GraphOptions g = c.graph;
      g.threads = *std::max_element(c.threads.begin(), c.threads.end());
      FV_ASSIGN_OR_RETURN(auto idx, GraphIndex::create(c.dim, g));
      return std::unique_ptr<VectorIndex>(std::move(idx));
    }
    return invalid_argument("unknown index kind '" + c.kind + "' (exact, ivf, hnsw)");
  };
}

Result<nlohmann::json> run_index_bench(const BenchConfig& cfg, const IndexFactory& factory,
                                       const std::function<void(const std::string&)>& log_fn) {
  auto log = [&](const std::string& m) {
    if (log_fn) log_fn(m);
  };
  if (cfg.threads.empty() || cfg.size == 0 || cfg.dim == 0) return invalid_argument("bench: empty configuration");
  const size_t d = cfg.dim;
  const int max_threads = *std::max_element(cfg.threads.begin(), cfg.threads.end());

  // ---- LFW templates: gallery = first image of each identity (the rest of an identity's
  // images are the probes), as in `facevault eval ident`.
  TemplateSet lfw;
  std::vector<size_t> lfw_gallery, lfw_probes, lfw_nonmated;  // rows of lfw
  std::map<std::string, size_t> lfw_gallery_row;
  if (!cfg.lfw.empty()) {
    FV_ASSIGN_OR_RETURN(lfw, read_template_jsonl(cfg.lfw));
    if (lfw.dim != d) return invalid_argument("bench: LFW templates have dimension " + std::to_string(lfw.dim));
    std::map<std::string, size_t> images;
    for (const auto& who : lfw.identity) ++images[who];
    for (size_t i = 0; i < lfw.files.size(); ++i) {
      if (images[lfw.identity[i]] == 1 && cfg.lfw_singles == "nonmated") {
        lfw_nonmated.push_back(i);
        continue;
      }
      auto [it, fresh] = lfw_gallery_row.emplace(lfw.identity[i], i);
      if (fresh) lfw_gallery.push_back(i);
      else lfw_probes.push_back(i);
    }
    if (cfg.lfw_singles != "nonmated" && cfg.lfw_singles != "gallery")
      return invalid_argument("bench: unknown place for single-image LFW identities '" + cfg.lfw_singles + "' (nonmated, gallery)");
    if (lfw_probes.empty()) return invalid_argument("bench: no identity in the LFW templates has two images");
    if (lfw_gallery.size() >= cfg.size) return invalid_argument("bench: --size must exceed the LFW gallery");
  }
  const size_t n_syn = cfg.size - lfw_gallery.size();
  SyntheticSpec spec{n_syn, d, 0.85f, cfg.seed, nullptr};
  if (cfg.gallery == "face") {
    if (lfw.files.empty()) return invalid_argument("bench: --gallery face is fitted to real templates: give them with --lfw");
    FV_ASSIGN_OR_RETURN(spec.shape, TemplateDistribution::fit(lfw.values, d));
  } else if (cfg.gallery != "isotropic") {
    return invalid_argument("bench: unknown gallery shape '" + cfg.gallery + "' (isotropic, face)");
  }
  SyntheticGallery gen(spec);

  // ---- queries and what counts as their mate
  // Mated queries first (rows 0..nq), then the non-mated ones (nq..nq+nn): every query gets an
  // exact list, the timed passes use the mated ones.
  const size_t nq = cfg.lfw.empty() ? cfg.queries : std::min(cfg.queries, lfw_probes.size());
  const size_t nn = std::min(cfg.nonmated, lfw_nonmated.size());
  const size_t n_all = nq + nn;
  std::vector<float> queries(n_all * d);
  for (size_t j = 0; j < nn; ++j)
    std::memcpy(queries.data() + (nq + j) * d, lfw.values.data() + lfw_nonmated[j * lfw_nonmated.size() / nn] * d,
                d * sizeof(float));
  std::vector<std::vector<Id>> mates(nq);
  for (size_t j = 0; j < nq; ++j) {
    if (cfg.lfw.empty()) {
      std::vector<size_t> m;
      gen.query(j, queries.data() + j * d, &m);
      mates[j].assign(m.begin(), m.end());
    } else {
      const size_t row = lfw_probes[j * lfw_probes.size() / nq];
      std::memcpy(queries.data() + j * d, lfw.values.data() + row * d, d * sizeof(float));
      const size_t g = lfw_gallery_row[lfw.identity[row]];
      const size_t gi = std::find(lfw_gallery.begin(), lfw_gallery.end(), g) - lfw_gallery.begin();
      mates[j].push_back(static_cast<Id>(n_syn + gi));
    }
  }

  if ((!cfg.save_synthetic.empty() || !cfg.load_synthetic.empty()) && cfg.lfw_order != "end")
    return invalid_argument("bench: a saved gallery holds the synthetic templates alone: LFW order must be 'end'");
  if (!cfg.save_synthetic.empty() && !cfg.load_synthetic.empty())
    return invalid_argument("bench: save a gallery or load one, not both");

  // ---- training sample (IVF): the first templates of the gallery (they are as mixed as any).
  double build_s = 0, load_s = 0;
  std::unique_ptr<VectorIndex> index;
  {
    const size_t nlist = cfg.ivf.nlist ? cfg.ivf.nlist : std::clamp<size_t>(size_t(4 * std::sqrt(double(cfg.size))), 16, 65536);
    const bool trains = (cfg.kind == "ivf" || cfg.kind == "faiss-ivf") && cfg.load_synthetic.empty();  // only an IVF learns from a sample
    const size_t ns = !trains ? 0
                      : std::min(n_syn, cfg.ivf.train_max ? cfg.ivf.train_max : IvfIndex::default_train_rows(nlist));
    std::vector<float> sample(ns * d);
    run_parallel(max_threads, [&](int t) {
      auto [b, e] = split_range(ns, max_threads, t);
      gen.generate(b, e, sample.data() + b * d);
    });
    const auto t0 = Clock::now();
    if (!cfg.load_synthetic.empty()) {
      log("loading the synthetic gallery from " + cfg.load_synthetic.string());
      FV_ASSIGN_OR_RETURN(index, load_cache(cfg, n_syn));
      if (auto* g = dynamic_cast<GraphIndex*>(index.get())) {  // search settings are this run's, not the saved ones
        g->set_population_hubs(cfg.graph.population_hubs);
        g->set_ef(cfg.graph.ef_search);
        g->set_rerank(cfg.graph.rerank);
        g->set_rerank_confidence(cfg.graph.rerank_confidence);
        g->set_entry_width(cfg.graph.entry_width);
      }
      if (auto* ivf = dynamic_cast<IvfIndex*>(index.get())) {
        ivf->set_nprobe(cfg.ivf.nprobe);
        ivf->set_rerank(cfg.ivf.rerank);
      }
      index->set_threads(max_threads);
      load_s = secs(t0, Clock::now());
    } else {
      log("training on " + std::to_string(ns) + " templates");
      FV_ASSIGN_OR_RETURN(index, factory(sample, cfg));
      build_s += secs(t0, Clock::now());
    }
  }
  const double train_s = build_s;

  // ---- stream the gallery: generate, ground truth, add
  const size_t truth_k = cfg.lfw.empty() ? cfg.k : std::max(cfg.k, cfg.list);
  std::vector<TopK> truth(n_all, TopK(truth_k));
  auto ground_truth = [&](const float* rows, size_t m, Id first) {
    if (!cfg.ground_truth) return;
    run_parallel(max_threads, [&](int t) {
      for (size_t j = t; j < n_all; j += max_threads) {
        const float* q = queries.data() + j * d;
        for (size_t i = 0; i < m; ++i) truth[j].push(kernels::dot_f32(rows + i * d, q, d), first + static_cast<Id>(i));
      }
    });
  };
  // The LFW gallery, ground truth computed once. LFW template i enters once (i + 1)·n_syn /
  // (n_lfw + 1) synthetic ones are in ("spread"), or after the last of them ("end").
  if (cfg.lfw_order != "end" && cfg.lfw_order != "spread")
    return invalid_argument("bench: unknown LFW order '" + cfg.lfw_order + "' (end, spread)");
  std::vector<float> lfw_rows(lfw_gallery.size() * d);
  for (size_t i = 0; i < lfw_gallery.size(); ++i)
    std::memcpy(lfw_rows.data() + i * d, lfw.values.data() + lfw_gallery[i] * d, d * sizeof(float));
  ground_truth(lfw_rows.data(), lfw_gallery.size(), static_cast<Id>(n_syn));
  size_t lfw_next = 0;
  auto add_lfw_due = [&](size_t synthetic_added) -> Status {  // every LFW template due by then
    size_t end = lfw_next;
    while (end < lfw_gallery.size() &&
           (cfg.lfw_order == "spread" ? (end + 1) * n_syn / (lfw_gallery.size() + 1) : n_syn) <= synthetic_added)
      ++end;
    if (end == lfw_next) return Status();
    std::vector<Id> gid(end - lfw_next);
    std::iota(gid.begin(), gid.end(), static_cast<Id>(n_syn + lfw_next));
    const auto t0 = Clock::now();
    FV_RETURN_IF_ERROR(index->add(gid, std::span<const float>(lfw_rows.data() + lfw_next * d, gid.size() * d)));
    build_s += secs(t0, Clock::now());
    lfw_next = end;
    return Status();
  };
  constexpr size_t kChunk = 131072;
  std::vector<float> chunk(kChunk * d);
  std::vector<Id> ids(kChunk);
  for (size_t c0 = 0; c0 < n_syn; c0 += kChunk) {
    const size_t m = std::min(kChunk, n_syn - c0);
    run_parallel(max_threads, [&](int t) {
      auto [b, e] = split_range(m, max_threads, t);
      gen.generate(c0 + b, c0 + e, chunk.data() + b * d);
    });
    ground_truth(chunk.data(), m, static_cast<Id>(c0));
    if (cfg.load_synthetic.empty()) {
      for (size_t i = 0; i < m; ++i) ids[i] = static_cast<Id>(c0 + i);
      const auto t0 = Clock::now();
      FV_RETURN_IF_ERROR(index->add(std::span<const Id>(ids.data(), m), std::span<const float>(chunk.data(), m * d)));
      build_s += secs(t0, Clock::now());
    }
    if (c0 + m == n_syn && !cfg.save_synthetic.empty()) {
      const auto t0 = Clock::now();
      FV_RETURN_IF_ERROR(save_cache(*index, cfg, n_syn));
      log("saved the synthetic gallery to " + cfg.save_synthetic.string() + " in " + std::to_string(secs(t0, Clock::now())) + " s");
    }
    FV_RETURN_IF_ERROR(add_lfw_due(c0 + m));
    if ((c0 / kChunk) % 8 == 7) log("added " + std::to_string(c0 + m) + " / " + std::to_string(cfg.size));
  }
  FV_RETURN_IF_ERROR(add_lfw_due(n_syn));
  sodium_memzero(lfw_rows.data(), lfw_rows.size() * sizeof(float));
  if (auto* ivf = dynamic_cast<IvfIndex*>(index.get())) {
    const auto t0 = Clock::now();
    ivf->shrink();
    build_s += secs(t0, Clock::now());
  } else if (auto* graph = dynamic_cast<GraphIndex*>(index.get())) {
    graph->shrink();
  }
  sodium_memzero(chunk.data(), chunk.size() * sizeof(float));
  log("built in " + std::to_string(build_s) + " s");

  // ---- single-query latency with each thread count
  nlohmann::json j;
  nlohmann::json by_threads = nlohmann::json::object();
  std::vector<SearchResult> results(nq);
  for (size_t ti = 0; ti < cfg.threads.size(); ++ti) {
    const int t = cfg.threads[ti];
    index->set_threads(t);
    for (size_t w = 0; w < std::min<size_t>(nq, 5); ++w) (void)index->search(std::span<const float>(queries.data() + w * d, d), cfg.k);
    std::vector<double> ms;
    for (size_t q = 0; q < nq; ++q) {
      const auto t0 = Clock::now();
      FV_ASSIGN_OR_RETURN(auto r, index->search(std::span<const float>(queries.data() + q * d, d), cfg.k));
      ms.push_back(secs(t0, Clock::now()) * 1e3);
      if (ti == 0) results[q] = std::move(r);
    }
    by_threads[std::to_string(t)] = {{"p50_ms", percentile(ms, 0.5)}, {"p99_ms", percentile(ms, 0.99)},
                                     {"mean_ms", std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size()}};
    log("threads " + std::to_string(t) + ": p50 " + std::to_string(percentile(ms, 0.5)) + " ms");
  }
  // ---- batch throughput with the most threads
  index->set_threads(max_threads);
  double qps = 0;
  {
    const auto t0 = Clock::now();
    FV_ASSIGN_OR_RETURN(auto rs, index->search_batch(std::span<const float>(queries.data(), nq * d), cfg.k));
    qps = nq / secs(t0, Clock::now());
  }
  // ---- recall against float32 exact search, and whether the mate came first
  // Also what the true neighbours are: the share that are real (LFW) templates, and how close
  // the k-th is — a graph that misses real neighbours and one that misses chance matches in
  // the random gallery need different fixes.
  double r1 = 0, r10 = 0, mate1 = 0, kth_score = 0;
  size_t truth_n = 0, truth_real = 0;
  for (size_t q = 0; q < nq; ++q) {
    const auto gt = truth[q].sorted();
    const auto& got = results[q].ids;
    if (!got.empty() && std::find(mates[q].begin(), mates[q].end(), got[0]) != mates[q].end()) mate1 += 1;
    if (!gt.empty() && !got.empty() && got[0] == gt[0].second) r1 += 1;
    const size_t kq = std::min(cfg.k, gt.size());
    if (kq == 0) continue;  // no ground truth (--no-truth)
    kth_score += gt[kq - 1].first;
    size_t hit = 0;
    for (size_t i = 0; i < kq; ++i) {
      truth_real += gt[i].second >= static_cast<Id>(n_syn);  // LFW ids follow the synthetic ones
      if (std::find(got.begin(), got.end(), gt[i].second) != got.end()) ++hit;
    }
    truth_n += kq;
    r10 += double(hit) / kq;
  }
  const IndexStats st = index->stats();
  const auto& lat = by_threads[std::to_string(cfg.threads[0])];
  j["kind"] = cfg.kind;
  j["size"] = index->size();
  j["dim"] = d;
  j["queries"] = nq;
  j["query_source"] = cfg.lfw.empty() ? "synthetic near-duplicates" : "LFW mated probes";
  j["gallery"] = cfg.gallery;
  if (!lfw_gallery.empty()) j["lfw_order"] = cfg.lfw_order;
  if (spec.shape) j["gallery_effective_dim"] = spec.shape->effective_dim();
  j["threads"] = cfg.threads[0];
  j["p50_ms"] = lat["p50_ms"];
  j["p99_ms"] = lat["p99_ms"];
  j["latency_by_threads"] = by_threads;
  j["qps"] = qps;
  j["qps_threads"] = max_threads;
  if (cfg.ground_truth) {
    j["recall_at_1"] = r1 / nq;
    j["recall_at_10"] = r10 / nq;
    j["truth_kth_score"] = kth_score / nq;
    if (!lfw_gallery.empty()) j["truth_lfw_fraction"] = double(truth_real) / std::max<size_t>(1, truth_n);
  }
  j["mate_at_rank1"] = mate1 / nq;
  j["bytes_per_template"] = st.scan_bytes_per_item;
  j["memory_bytes_per_template"] = double(st.memory_bytes) / std::max<size_t>(1, st.size);
  j["disk_bytes_per_template"] = double(st.disk_bytes) / std::max<size_t>(1, st.size);
  j["build_s"] = build_s;
  j["train_s"] = train_s;
  if (!cfg.load_synthetic.empty()) {
    j["loaded_synthetic"] = cfg.load_synthetic.string();  // build_s: the LFW templates alone
    j["load_s"] = load_s;
  }
  j["isa"] = kernels::isa_name(kernels::active_isa());
  if (cfg.kind == "exact") {
    const double p50 = lat["p50_ms"].get<double>();
    j["scan_gb_per_s"] = p50 > 0 ? double(st.scan_bytes_per_item) * index->size() / (p50 * 1e-3) / 1e9 : 0;
  }
  if (auto* ivf = dynamic_cast<IvfIndex*>(index.get())) {
    j["nlist"] = ivf->nlist();
    j["nprobe"] = ivf->nprobe();
    j["rerank"] = ivf->options().rerank;
    j["scanned_fraction"] = ivf->scanned_fraction();
  }
  auto* graph = dynamic_cast<GraphIndex*>(index.get());
  if (graph) {
    j["m"] = graph->options().m;
    j["ef_construction"] = graph->options().ef_construction;
    j["ef_search"] = graph->options().ef_search;
    j["rerank"] = graph->options().rerank ? graph->options().rerank : graph->options().ef_search;
    j["entry_width"] = graph->options().entry_width;
    j["visited_per_search"] = graph->visited_per_search();
    j["reranked_per_search"] = graph->reranked_per_search();
    j["rerank_confidence"] = graph->options().rerank_confidence;
    j["second_looks"] = graph->second_looks();
    j["hubs"] = graph->hub_count();
    j["population_hubs"] = graph->population_hub_count();
  }
  // ---- identification (LFW): the figures an investigator lives by, for the index under test
  // and for the exact float32 lists of the same gallery, from lists of `list` candidates.
  // Run after the per-search counters above are read: these searches (non-mated ones, and a
  // longer list) would weigh on their averages.
  if (!cfg.lfw.empty() && cfg.ground_truth) {
    nlohmann::json identification;
    index->set_threads(max_threads);
    std::vector<CandidateList> got(n_all), exact(n_all);
    for (size_t q = 0; q < n_all; ++q) {
      FV_ASSIGN_OR_RETURN(auto r, index->search(std::span<const float>(queries.data() + q * d, d), cfg.list));
      got[q].ids = std::move(r.ids);
      got[q].scores = std::move(r.scores);
      for (const auto& [score, id] : truth[q].sorted()) {
        if (exact[q].ids.size() == cfg.list) break;
        exact[q].ids.push_back(id);
        exact[q].scores.push_back(score);
      }
    }
    const std::vector<CandidateList> got_m(got.begin(), got.begin() + nq), got_n(got.begin() + nq, got.end());
    const std::vector<CandidateList> exact_m(exact.begin(), exact.begin() + nq), exact_n(exact.begin() + nq, exact.end());
    std::vector<Id> mate_of(nq);
    for (size_t q = 0; q < nq; ++q) mate_of[q] = mates[q].front();
    auto figures_json = [](const IdentificationFigures& f) {
      nlohmann::json points = nlohmann::json::array();
      for (const auto& p : f.points)
        points.push_back({{"fpir_target", p.fpir_target}, {"threshold", p.threshold}, {"fpir", p.fpir}, {"fnir", p.fnir}});
      return nlohmann::json{{"mate_at_rank1", f.mate_rank1}, {"mate_in_list", f.mate_in_list}, {"operating_points", points}};
    };
    identification = {{"list", cfg.list}, {"mated", nq}, {"nonmated", nn},
                      {"index", figures_json(identification_figures(got_m, mate_of, got_n))},
                      {"exact_float32", figures_json(identification_figures(exact_m, mate_of, exact_n))}};
    if (cfg.candidate_threshold >= 0) {
      size_t above = 0;
      const double r = recall_above_threshold(exact, got, cfg.candidate_threshold, &above);
      identification["candidate_threshold"] = cfg.candidate_threshold;
      identification["candidates_above_threshold"] = above;
      identification["recall_above_threshold"] = r;
    }
    j["identification"] = identification;
  }
  // ---- operating points from one build: recall against latency as nprobe (IVF) or the
  // beam width ef (graph) grows.
  auto* ivf = dynamic_cast<IvfIndex*>(index.get());
  if ((ivf || graph || cfg.set_search_width) && !cfg.nprobe_sweep.empty()) {
    const size_t keep = ivf ? ivf->options().nprobe : graph ? graph->options().ef_search : 0;
    nlohmann::json sweep = nlohmann::json::array();
    index->set_threads(1);
    for (size_t np : cfg.nprobe_sweep) {
      if (ivf) ivf->set_nprobe(np);
      else if (graph) graph->set_ef(np);
      else if (!cfg.set_search_width(*index, np)) return invalid_argument("bench: this index has no search width to sweep");
      std::vector<double> ms;
      double s1 = 0, s10 = 0, m1 = 0;
      for (size_t q = 0; q < nq; ++q) {
        const auto t0 = Clock::now();
        FV_ASSIGN_OR_RETURN(auto r, index->search(std::span<const float>(queries.data() + q * d, d), cfg.k));
        ms.push_back(secs(t0, Clock::now()) * 1e3);
        const auto gt = truth[q].sorted();
        if (!gt.empty() && !r.ids.empty() && r.ids[0] == gt[0].second) s1 += 1;
        size_t hit = 0;
        for (size_t i = 0; i < std::min(cfg.k, gt.size()); ++i)
          if (std::find(r.ids.begin(), r.ids.end(), gt[i].second) != r.ids.end()) ++hit;
        s10 += gt.empty() ? 0 : double(hit) / std::min(cfg.k, gt.size());
        if (!r.ids.empty() && std::find(mates[q].begin(), mates[q].end(), r.ids[0]) != mates[q].end()) m1 += 1;
      }
      sweep.push_back({{"nprobe", np}, {"p50_ms", percentile(ms, 0.5)}, {"p99_ms", percentile(ms, 0.99)},
                       {"recall_at_1", s1 / nq}, {"recall_at_10", s10 / nq}, {"mate_at_rank1", m1 / nq},
                       {"scanned_fraction", ivf ? double(np) / double(ivf->nlist()) : -1.0}});
      log("nprobe " + std::to_string(np) + ": p50 " + std::to_string(percentile(ms, 0.5)) + " ms, recall@10 " +
          std::to_string(s10 / nq));
    }
    j["nprobe_sweep"] = sweep;
    if (ivf) ivf->set_nprobe(keep);
    if (graph) graph->set_ef(keep);
  }
  // ---- removal: a batch of random ids, timed; then each removed template, searched for
  // with its own vector, must not come back.
  if (cfg.removals > 0 && n_syn > cfg.removals) {
    std::mt19937_64 rng(cfg.seed + 7);
    std::unordered_set<Id> pick;
    while (pick.size() < cfg.removals) pick.insert(static_cast<Id>(rng() % n_syn));
    std::vector<Id> gone(pick.begin(), pick.end());
    const auto t0 = Clock::now();
    auto rm = index->remove(std::span<const Id>(gone.data(), gone.size() - 1));
    const double batch_ms = secs(t0, Clock::now()) * 1e3;
    if (!rm.is_ok() && rm.status().code() == StatusCode::kUnsupported) {
      j["removal"] = "unsupported";
      j["peak_rss_mib"] = peak_rss_mib();
      return j;
    }
    FV_ASSIGN_OR_RETURN(size_t removed, std::move(rm));
    const auto t1 = Clock::now();
    FV_ASSIGN_OR_RETURN(size_t one, index->remove(std::span<const Id>(&gone.back(), 1)));
    const double one_ms = secs(t1, Clock::now()) * 1e3;
    size_t found = 0;
    std::vector<float> v(d);
    for (size_t i = 0; i < std::min<size_t>(gone.size(), 50); ++i) {
      gen.generate(static_cast<size_t>(gone[i]), static_cast<size_t>(gone[i]) + 1, v.data());
      FV_ASSIGN_OR_RETURN(auto r, index->search(v, cfg.k));
      for (Id id : r.ids) found += pick.count(id);
    }
    j["removal"] = {{"batch", removed}, {"batch_ms", batch_ms}, {"single_ms", one_ms}, {"single_removed", one},
                    {"removed_returned_by_search", found}};
  }
  j["peak_rss_mib"] = peak_rss_mib();
  return j;
}

}  // namespace fv::index
