// facevault eval ident (open-set 1:N identification on an LFW-layout folder) and
// facevault bench index (the scale benchmark on a synthetic gallery).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "bench/harness/identification.h"
#include "bench/harness/index_harness.h"
#include "bench/harness/synthetic.h"
#include "cli/commands.h"
#include "cli/grammar.h"
#include "face/calibration.h"
#include "index/index.h"
#include "index/kernels.h"
#include "vault/vault.h"

namespace fv::cli {
namespace {

struct IdentArgs {
  std::string root, templates, index = "exact", det_csv, det_png, misses;
  size_t list = 50;
  bool json = false;
  PipelineFlags flags;
};

// Brute force on float32: the reference the int8 index's accuracy cost is measured against.
class FloatIndex final : public index::VectorIndex {
 public:
  explicit FloatIndex(size_t dim) : dim_(dim) {}
  std::string kind() const override { return "float"; }
  size_t dim() const override { return dim_; }
  size_t size() const override { return ids_.size(); }
  bool contains(index::Id id) const override { return std::find(ids_.begin(), ids_.end(), id) != ids_.end(); }
  Status add(std::span<const index::Id> ids, std::span<const float> v) override {
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    v_.insert(v_.end(), v.begin(), v.end());
    return Status::ok();
  }
  Result<size_t> remove(std::span<const index::Id>) override { return unsupported("float reference index"); }
  Result<index::SearchResult> search(std::span<const float> q, size_t k, const index::IdFilter* f) const override {
    index::TopK top(k);
    for (size_t i = 0; i < ids_.size(); ++i) {
      const float s = index::kernels::dot_f32_ref(v_.data() + i * dim_, q.data(), dim_);
      if (top.would_enter(s, ids_[i]) && (!f || f->allowed(ids_[i]))) top.push(s, ids_[i]);
    }
    return top.result();
  }
  void set_threads(int) override {}
  index::IndexStats stats() const override { return {ids_.size(), v_.size() * 4, dim_ * 4, 0}; }
  Status save(const std::filesystem::path&, const index::IndexKey&) const override { return unsupported("float reference index"); }

 private:
  size_t dim_;
  std::vector<index::Id> ids_;
  std::vector<float> v_;
};

struct OperatingPoint {
  double target = 0, threshold = 0, fpir = 0, fnir = 0, predicted_fpir = -1;
};

// A DET plot (log FPIR × log FNIR) drawn with OpenCV, which is already a dependency.
void draw_det(const std::string& path, const std::vector<std::pair<double, double>>& det, const std::string& title) {
  const int W = 640, H = 480, L = 70, R = 20, T = 40, B = 60;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const double x0 = -4, x1 = 0, y0 = -4, y1 = 0;  // log10 ranges
  auto px = [&](double fpir, double fnir) {
    const double lx = std::log10(std::max(fpir, 1e-4)), ly = std::log10(std::max(fnir, 1e-4));
    return cv::Point(static_cast<int>(L + (lx - x0) / (x1 - x0) * (W - L - R)), static_cast<int>(H - B - (ly - y0) / (y1 - y0) * (H - T - B)));
  };
  for (int e = -4; e <= 0; ++e) {
    cv::line(img, px(std::pow(10, e), 1e-4), px(std::pow(10, e), 1), cv::Scalar(220, 220, 220));
    cv::line(img, px(1e-4, std::pow(10, e)), px(1, std::pow(10, e)), cv::Scalar(220, 220, 220));
    const std::string lab = "1e" + std::to_string(e);
    cv::putText(img, lab, px(std::pow(10, e), 1e-4) + cv::Point(-15, 20), cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0));
    cv::putText(img, lab, px(1e-4, std::pow(10, e)) + cv::Point(-50, 4), cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0));
  }
  for (size_t i = 1; i < det.size(); ++i)
    if (det[i - 1].first > 0 && det[i].first > 0) cv::line(img, px(det[i - 1].first, det[i - 1].second), px(det[i].first, det[i].second), cv::Scalar(200, 60, 0), 2);
  cv::putText(img, "FPIR", cv::Point(W / 2, H - 15), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 0));
  cv::putText(img, "FNIR", cv::Point(5, H / 2), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 0));
  cv::putText(img, title, cv::Point(L, 25), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 0));
  cv::imwrite(path, img);
}

int run_ident(const IdentArgs& a) {
  // Identities and their images, sorted (the "first image" of the protocol is the first name).
  std::vector<std::pair<std::string, std::vector<std::string>>> people;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(a.root, ec)) {
    if (!d.is_directory()) continue;
    std::vector<std::string> imgs;
    for (const auto& f : std::filesystem::directory_iterator(d.path())) if (f.is_regular_file()) imgs.push_back(f.path().string());
    std::sort(imgs.begin(), imgs.end());
    if (!imgs.empty()) people.emplace_back(d.path().filename().string(), std::move(imgs));
  }
  if (ec || people.empty()) { std::cerr << "facevault: no identity folders under " << a.root << "\n"; return kExitFailure; }
  std::sort(people.begin(), people.end());

  // Templates: from a cached `facevault embed` JSONL (same pipeline) or computed now.
  std::map<std::string, std::vector<float>> tmpl;
  size_t dim = 0;
  std::string model = "faceplugin-mobilefacenet-512";
  if (!a.templates.empty()) {
    auto set = index::read_template_jsonl(a.templates);
    if (!set.is_ok()) { std::cerr << "facevault: " << set.status().to_string() << "\n"; return kExitFailure; }
    dim = set->dim;
    model = set->model;  // the calibration table is the model's own, or none
    for (size_t i = 0; i < set->files.size(); ++i)
      tmpl[std::filesystem::weakly_canonical(set->files[i]).string()] =
          std::vector<float>(set->values.begin() + i * dim, set->values.begin() + (i + 1) * dim);
  } else {
    std::vector<std::string> files;
    for (auto& p : people) files.insert(files.end(), p.second.begin(), p.second.end());
    auto st = run_batch(files, a.flags.to_batch(true), [&](const ImageResult& r) {
      const int k = r.status.is_ok() ? face::central_face(r.faces, {r.width, r.height}) : -1;
      if (k < 0 || !r.faces[k].face_template) return;
      dim = r.faces[k].face_template->values.size();
      model = r.faces[k].face_template->model_id;
      tmpl[std::filesystem::weakly_canonical(r.file).string()] = r.faces[k].face_template->values;
    });
    if (!st.is_ok()) { std::cerr << "facevault: " << st.to_string() << "\n"; return kExitFailure; }
  }
  if (dim == 0) { std::cerr << "facevault: no templates\n"; return kExitFailure; }
  auto find = [&](const std::string& f) -> const std::vector<float>* {
    auto it = tmpl.find(std::filesystem::weakly_canonical(f).string());
    return it == tmpl.end() ? nullptr : &it->second;
  };

  // Gallery: the first image of every identity with >= 2 images; mated probes: the others;
  // non-mated probes: every single-image identity.
  std::vector<index::Id> gids;
  std::vector<float> gvec;
  struct Probe { const std::vector<float>* v; index::Id mate; std::string file; };
  std::vector<Probe> mated, nonmated;
  size_t gallery_no_face = 0, mated_no_face = 0, nonmated_no_face = 0;
  for (size_t p = 0; p < people.size(); ++p) {
    const auto& imgs = people[p].second;
    if (imgs.size() == 1) {
      if (const auto* v = find(imgs[0])) nonmated.push_back({v, -1, imgs[0]});
      else ++nonmated_no_face;
      continue;
    }
    const auto* g = find(imgs[0]);
    if (!g) ++gallery_no_face;
    else {
      gids.push_back(static_cast<index::Id>(p));
      gvec.insert(gvec.end(), g->begin(), g->end());
    }
    for (size_t i = 1; i < imgs.size(); ++i) {
      const auto* v = find(imgs[i]);
      if (v) mated.push_back({v, static_cast<index::Id>(p), imgs[i]});
      else ++mated_no_face;  // counted below as a miss: the system failed this search
    }
  }

  std::unique_ptr<index::VectorIndex> idx;
  if (a.index == "float") {
    idx = std::make_unique<FloatIndex>(dim);
    (void)idx->add(gids, gvec);
  } else {
    index::IndexOptions o;
    o.kind = a.index == "ivf" || a.index == "hnsw" ? a.index : "exact";
    o.threads = std::max(1, a.flags.threads);
    auto b = index::build_index(o, dim, gids, gvec);
    if (!b.is_ok()) { std::cerr << "facevault: " << b.status().to_string() << "\n"; return kExitFailure; }
    idx = std::move(b).value();
  }

  // Searches: the mate's rank and score in a list of `list` candidates; the top score of
  // each non-mated search.
  const size_t total_mated = mated.size() + mated_no_face;
  std::vector<double> mate_score;  // score of the mate when it is in the list, else -inf
  size_t rank1 = 0, rank10 = 0;
  std::ofstream misses;
  if (!a.misses.empty()) {
    misses.open(a.misses);
    misses << "probe,mate,mate_rank,mate_score,top,top_score\n";
  }
  std::vector<index::CandidateList> index_mated_lists;  // kept for the side-by-side below
  for (const auto& pr : mated) {
    auto r = idx->search(*pr.v, a.list);
    if (!r.is_ok()) { std::cerr << "facevault: " << r.status().to_string() << "\n"; return kExitFailure; }
    if (misses.is_open() && !r->ids.empty() && r->ids[0] != pr.mate) {
      const auto it = std::find(r->ids.begin(), r->ids.end(), pr.mate);
      const long rank = it == r->ids.end() ? -1 : static_cast<long>(it - r->ids.begin()) + 1;
      misses << pr.file << "," << people[pr.mate].first << "," << rank << "," << (rank > 0 ? r->scores[rank - 1] : -1.0) << ","
             << people[r->ids[0]].first << "," << r->scores[0] << "\n";
    }
    double s = -1e9;
    for (size_t i = 0; i < r->ids.size(); ++i)
      if (r->ids[i] == pr.mate) {
        s = r->scores[i];
        if (i == 0) ++rank1;
        if (i < 10) ++rank10;
        break;
      }
    mate_score.push_back(s);
    index_mated_lists.push_back({std::move(r->ids), std::move(r->scores)});
  }
  std::vector<double> nonmated_top;
  for (const auto& pr : nonmated) {
    auto r = idx->search(*pr.v, 1);
    if (!r.is_ok()) { std::cerr << "facevault: " << r.status().to_string() << "\n"; return kExitFailure; }
    nonmated_top.push_back(r->scores.empty() ? -1e9 : r->scores[0]);
  }
  std::sort(nonmated_top.begin(), nonmated_top.end(), std::greater<>());
  auto fpir_at = [&](double t) {
    return double(std::upper_bound(nonmated_top.begin(), nonmated_top.end(), t, std::greater<>()) - nonmated_top.begin()) /
           std::max<size_t>(1, nonmated_top.size());
  };
  // FNIR (NIST FRTE): a mated search fails when the mate is not among the candidates scoring
  // >= T; searches with no face in the probe count as failures.
  auto fnir_at = [&](double t) {
    size_t miss = mated_no_face;
    for (double s : mate_score) if (s < t) ++miss;
    return double(miss) / std::max<size_t>(1, total_mated);
  };
  auto cal = face::Calibration::builtin(model);
  auto point = [&](double target) {
    // The lowest threshold whose FPIR is <= target: just above the (⌊target·n⌋+1)-th best
    // non-mated score.
    const size_t allowed = static_cast<size_t>(std::floor(target * nonmated_top.size()));
    OperatingPoint op;
    op.target = target;
    op.threshold = allowed < nonmated_top.size() ? std::nextafter(nonmated_top[allowed], 2.0) : -1.0;
    op.fpir = fpir_at(op.threshold);
    op.fnir = fnir_at(op.threshold);
    if (cal.is_ok()) op.predicted_fpir = cal->fpir_at(op.threshold, gids.size());
    return op;
  };
  const OperatingPoint p1 = point(0.01), p01 = point(0.001);

  // An approximate index beside the exact scan of the same gallery and probes: the FRTE
  // figures of both, and whether every candidate the exact scan puts above the vault's search
  // threshold is in the approximate list too.
  nlohmann::json side_by_side;
  if (a.index == "ivf" || a.index == "hnsw") {
    index::IndexOptions eo;
    eo.kind = "exact";
    auto exact = index::build_index(eo, dim, gids, gvec);
    if (!exact.is_ok()) { std::cerr << "facevault: " << exact.status().to_string() << "\n"; return kExitFailure; }
    std::vector<index::CandidateList> got_n, ex_m, ex_n;
    const std::vector<index::CandidateList>& got_m = index_mated_lists;
    std::vector<index::Id> mate_of;
    auto lists = [&](const index::VectorIndex& x, const std::vector<Probe>& probes, std::vector<index::CandidateList>& out) -> Status {
      for (const auto& pr : probes) {
        FV_ASSIGN_OR_RETURN(auto r, x.search(*pr.v, a.list));
        out.push_back({std::move(r.ids), std::move(r.scores)});
      }
      return Status::ok();
    };
    for (const auto& pr : mated) mate_of.push_back(pr.mate);
    for (auto st : {lists(*idx, nonmated, got_n), lists(**exact, mated, ex_m), lists(**exact, nonmated, ex_n)})
      if (!st.is_ok()) { std::cerr << "facevault: " << st.to_string() << "\n"; return kExitFailure; }
    auto figures = [](const index::IdentificationFigures& f) {
      nlohmann::json j = {{"rank1", f.mate_rank1}, {"mate_in_list", f.mate_in_list}};
      for (const auto& p : f.points) j[p.fpir_target == 0.01 ? "fpir_1e-2" : "fpir_1e-3"] = {{"threshold", p.threshold}, {"fpir", p.fpir}, {"fnir", p.fnir}};
      return j;
    };
    side_by_side = {{"probes_with_a_face", {{"mated", mated.size()}, {"nonmated", nonmated.size()}}},
                    {a.index, figures(index::identification_figures(got_m, mate_of, got_n))},
                    {"exact_int8", figures(index::identification_figures(ex_m, mate_of, ex_n))}};
    if (auto cal = face::Calibration::builtin(model); cal.is_ok()) {
      const double t = cal->threshold_at(vault::VaultConfig{}.search_max_fmr);
      std::vector<index::CandidateList> ex_all(ex_m), got_all(got_m);
      ex_all.insert(ex_all.end(), ex_n.begin(), ex_n.end());
      got_all.insert(got_all.end(), got_n.begin(), got_n.end());
      size_t above = 0;
      side_by_side["candidate_threshold"] = t;
      side_by_side["recall_above_threshold"] = index::recall_above_threshold(ex_all, got_all, t, &above);
      side_by_side["candidates_above_threshold"] = above;
    }
  }

  std::vector<std::pair<double, double>> det;
  std::vector<std::array<double, 3>> det_rows;
  for (double t = 1.0; t >= -0.2; t -= 0.0025) {
    det_rows.push_back({t, fpir_at(t), fnir_at(t)});
    det.emplace_back(fpir_at(t), fnir_at(t));
  }
  if (!a.det_csv.empty()) {
    std::ofstream csv(a.det_csv);
    csv << "threshold,fpir,fnir\n";
    for (auto& r : det_rows) csv << r[0] << "," << r[1] << "," << r[2] << "\n";
  }
  if (!a.det_png.empty())
    draw_det(a.det_png, det, "open-set identification, LFW (gallery " + std::to_string(gids.size()) + ")");

  const double r1 = double(rank1) / std::max<size_t>(1, total_mated), r10 = double(rank10) / std::max<size_t>(1, total_mated);
  auto op_json = [](const OperatingPoint& o) {
    nlohmann::json j = {{"fpir_target", o.target}, {"threshold", o.threshold}, {"fpir", o.fpir}, {"fnir", o.fnir}};
    if (o.predicted_fpir >= 0) j["calibrated_fpir"] = o.predicted_fpir;
    return j;
  };
  if (a.json) {
    std::cout << nlohmann::json{{"index", idx->kind()}, {"isa", index::kernels::isa_name(index::kernels::active_isa())},
                                {"gallery", gids.size()}, {"mated_probes", total_mated}, {"nonmated_probes", nonmated.size()},
                                {"no_face", {{"gallery", gallery_no_face}, {"mated", mated_no_face}, {"nonmated", nonmated_no_face}}},
                                {"rank1", r1}, {"rank10", r10}, {"candidate_list", a.list},
                                {"fpir_1e-2", op_json(p1)}, {"fpir_1e-3", op_json(p01)},
                                {"side_by_side", side_by_side}}.dump() << "\n";
  } else {
    std::printf("Open-set identification on %s (index: %s)\n", a.root.c_str(), idx->kind().c_str());
    std::printf("  gallery %zu (first image of each identity with >= 2 images; %zu without a face)\n", gids.size(), gallery_no_face);
    std::printf("  mated probes %zu (%zu without a face, counted as misses), non-mated probes %zu (%zu without a face, left out)\n",
                total_mated, mated_no_face, nonmated.size(), nonmated_no_face);
    std::printf("  rank-1   %.2f %%\n  rank-10  %.2f %%\n", 100 * r1, 100 * r10);
    for (const auto* o : {&p1, &p01}) {
      std::printf("  FNIR at FPIR %.1f %%: %.2f %% (threshold %.4f, measured FPIR %.2f %%", 100 * o->target, 100 * o->fnir,
                  o->threshold, 100 * o->fpir);
      if (o->predicted_fpir >= 0) std::printf(", calibration predicts %.2f %%", 100 * o->predicted_fpir);
      std::printf(")\n");
    }
    if (!side_by_side.is_null()) {
      std::printf("  the same probes with a face, %s beside the exact scan of the same gallery (list %zu):\n", a.index.c_str(), a.list);
      for (const std::string& k : {a.index, std::string("exact_int8")}) {
        const auto& f = side_by_side[k];
        std::printf("    %-6s rank-1 %.2f %%, FNIR at FPIR 1 %% %.2f %%, at 0.1 %% %.2f %%\n", k.c_str(), 100 * f["rank1"].get<double>(),
                    100 * f["fpir_1e-2"]["fnir"].get<double>(), 100 * f["fpir_1e-3"]["fnir"].get<double>());
      }
      if (side_by_side.contains("recall_above_threshold"))
        std::printf("    exact candidates above the search threshold %.4f also in the %s list: %.2f %% of %zu\n",
                    side_by_side["candidate_threshold"].get<double>(), a.index.c_str(),
                    100 * side_by_side["recall_above_threshold"].get<double>(), side_by_side["candidates_above_threshold"].get<size_t>());
    }
  }
  return kExitOk;
}

struct BenchArgs {
  index::BenchConfig cfg;
  int threads = 1;
  std::string kind = "exact";
  bool both_threads = false;
};

int run_bench(BenchArgs& a) {
  // "ann": the approximate index a vault switches to above index.ann_min_size (the IVF). The
  // graph (hnsw) stays measurable by name; on face-shaped galleries it loses about a fifth of
  // the identifications the IVF keeps (docs/benchmarks.md).
  a.cfg.kind = a.kind == "ann" ? "ivf" : a.kind;
  if (!a.cfg.lfw.empty() && a.cfg.candidate_threshold < 0) {
    // The vault's own search threshold for these templates' model: the candidates a default
    // search returns, which an approximate index must not lose.
    auto set = index::read_template_jsonl(a.cfg.lfw);
    if (!set.is_ok()) { std::cerr << "facevault: " << set.status().to_string() << "\n"; return kExitFailure; }
    auto cal = face::Calibration::builtin(set->model);
    if (cal.is_ok()) a.cfg.candidate_threshold = cal->threshold_at(vault::VaultConfig{}.search_max_fmr);
  }
  a.cfg.threads = a.both_threads ? std::vector<int>{1, 2} : std::vector<int>{a.threads};
  auto r = index::run_index_bench(a.cfg, index::production_factory(), [](const std::string& m) { std::cerr << "bench: " << m << "\n"; });
  if (!r.is_ok()) { std::cerr << "facevault: " << r.status().to_string() << "\n"; return kExitFailure; }
  std::cout << r->dump() << "\n";
  return kExitOk;
}

}  // namespace

void add_index_commands(CLI::App& app, int& exit_code) {
  CLI::App* eval = nullptr;
  for (auto* s : app.get_subcommands([](CLI::App* s) { return s->get_name() == "eval"; })) eval = s;
  if (!eval) eval = app.add_subcommand("eval", "measure accuracy");
  auto id = std::make_shared<IdentArgs>();
  auto* c = eval->add_subcommand("ident", "open-set 1:N identification on an LFW-layout folder: rank-1/10, FNIR at FPIR, DET");
  c->add_option("--root", id->root, "folder of <identity>/<image> files")->required();
  c->add_option("--templates", id->templates, "templates from `facevault embed --list` (JSON lines) instead of running the pipeline");
  c->add_option("--index", id->index, "exact (int8, default), float (float32 reference), ivf, hnsw")->check(CLI::IsMember({"exact", "float", "ivf", "hnsw"}));
  // --top as in `search` (candidates per probe); --list, its first name, stays.
  c->add_option("--top,--list", id->list, "candidate list length (investigation mode, default 50)")->check(CLI::Range(1, 1000));
  c->add_option("--det-csv", id->det_csv, "write the DET curve (threshold, FPIR, FNIR) as CSV");
  c->add_option("--det-png", id->det_png, "draw the DET curve as PNG");
  c->add_option("--misses", id->misses, "write the mated searches whose first candidate is wrong (CSV) for inspection");
  c->add_flag("--json", id->json, "one JSON object instead of text");
  add_pipeline_flags(c, id->flags);
  set_examples(c, {"facevault eval ident --root lfw/images --templates lfw.jsonl --index hnsw --json",
                   "facevault eval ident --root lfw/images --det-png det.png"});
  c->callback([id, &exit_code] { exit_code = run_ident(*id); });

  auto* bench = app.add_subcommand("bench", "reproducible speed measurements");
  bench->require_subcommand(1);
  set_examples(bench, {"facevault bench index --size 100000 --index ann"});
  auto b = std::make_shared<BenchArgs>();
  auto* bi = bench->add_subcommand("index", "search a synthetic gallery through the production index; one JSON object");
  bi->add_option("--size", b->cfg.size, "gallery templates")->required()->check(CLI::Range(size_t(1000), size_t(1) << 32));
  bi->add_option("--dim", b->cfg.dim, "dimension")->check(CLI::Range(64, 4096));
  // --index as in `eval ident` (the index kind); --kind, its first name, stays.
  bi->add_option("--index,--kind", b->kind, "exact | ann (= ivf: the vault's approximate index) | ivf | hnsw (graph over 1-bit codes)")->check(CLI::IsMember({"exact", "ann", "ivf", "hnsw"}));
  bi->add_option("--ef-search", b->cfg.graph.ef_search, "graph: beam width of a search");
  bi->add_option("--ef-construction", b->cfg.graph.ef_construction, "graph: beam width while inserting");
  bi->add_option("--hnsw-m", b->cfg.graph.m, "graph: links per node (2·m on level 0)")->check(CLI::Range(2, 100));
  bi->add_option("--threads", b->threads, "threads per search (and for batch QPS)")->check(CLI::Range(1, 256));
  bi->add_flag("--both-threads", b->both_threads, "measure latency with 1 and with 2 threads");
  bi->add_option("--queries", b->cfg.queries, "queries to time");
  bi->add_option("--lfw", b->cfg.lfw, "templates JSONL: LFW gallery mixed in, its mated probes as the queries");
  bi->add_option("--lfw-singles", b->cfg.lfw_singles, "with --lfw: single-image identities are non-mated searches (nonmated, default) or gallery distractors (gallery)")
      ->check(CLI::IsMember({"nonmated", "gallery"}));
  bi->add_option("--nonmated", b->cfg.nonmated, "with --lfw: at most this many non-mated searches (LFW identities with one image; default all)");
  bi->add_option("--top,--list", b->cfg.list, "with --lfw: candidate list length of the identification figures (default 50)")
      ->check(CLI::Range(1, 1000));
  bi->add_option("--candidate-threshold", b->cfg.candidate_threshold,
                 "with --lfw: score above which every exact candidate must be returned (default: the vault's search threshold for the model)");
  bi->add_option("--gallery", b->cfg.gallery, "random templates: isotropic (uniform on the sphere) | face (Gaussian fitted to the --lfw templates)")
      ->check(CLI::IsMember({"isotropic", "face"}));
  bi->add_option("--lfw-order", b->cfg.lfw_order, "where the --lfw gallery enters the stream: end | spread (evenly through it)")
      ->check(CLI::IsMember({"end", "spread"}));
  bi->add_option("--nlist", b->cfg.ivf.nlist, "IVF cells (default 4·√size)");
  bi->add_option("--nprobe", b->cfg.ivf.nprobe, "IVF cells scanned per query (default half of them)");
  bi->add_option("--rerank", b->cfg.ivf.rerank, "candidates re-scored at full precision");
  bi->add_option("--code-dim", b->cfg.ivf.code_dim, "IVF: PCA dimensions kept in the 4-bit codes (a multiple of 64; default: the axes holding 97 % of the variance, at most dim·7/8)");
  bi->add_option("--store", b->cfg.ivf.store_path, "re-rank records in this encrypted file (default: memory)");
  bi->add_option("--removals", b->cfg.removals, "templates removed (timed) at the end");
  bi->add_option("--seed", b->cfg.seed, "synthetic gallery seed");
  add_json_noop_flag(bi, "one JSON object");
  set_examples(bi, {"facevault bench index --size 100000 --index exact --threads 2",
                    "facevault bench index --size 1000000 --index ann --lfw lfw.jsonl --gallery face"});
  bi->callback([b, &exit_code] { exit_code = run_bench(*b); });
}

}  // namespace fv::cli
