// facevault eval lfw | detect | calibrate | cohorts: the measurements behind docs/benchmarks.md
// and docs/quality.md.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <opencv2/core.hpp>

#include "bench/harness/synthetic.h"
#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/json_out.h"
#include "eval/cohorts.h"
#include "eval/detection_eval.h"
#include "eval/lfw.h"
#include "face/calibration.h"

namespace fv::cli {
namespace {

// Runs the pipeline over `files` and keeps the template of the face nearest the image centre
// (the LFW convention). Files without a face have no entry.
Result<std::map<std::string, face::FaceTemplate>> central_templates(const std::vector<std::string>& files,
                                                                    const PipelineFlags& flags, size_t& failed) {
  std::map<std::string, face::FaceTemplate> out;
  failed = 0;
  auto st = run_batch(files, flags.to_batch(true), [&](const ImageResult& r) {
    const int k = r.status.is_ok() ? face::central_face(r.faces, {r.width, r.height}) : -1;
    if (k < 0 || !r.faces[k].face_template) { ++failed; return; }
    out[r.file] = *r.faces[k].face_template;
  });
  if (!st.is_ok()) return st;
  return out;
}

struct LfwArgs {
  std::string root, pairs, train, roc_csv;
  bool json = false;
  PipelineFlags flags;
};

int run_lfw(const LfwArgs& a) {
  auto test = eval::read_pairs(a.pairs);
  if (!test.is_ok()) { std::cerr << "facevault: " << test.status().to_string() << "\n"; return kExitFailure; }
  std::optional<eval::PairsFile> train;
  if (!a.train.empty()) {
    auto t = eval::read_pairs(a.train);
    if (!t.is_ok()) { std::cerr << "facevault: " << t.status().to_string() << "\n"; return kExitFailure; }
    train = std::move(t).value();
  }
  std::set<std::string> unique;
  auto collect = [&](const eval::PairsFile& pf) {
    for (const auto& p : pf.pairs) {
      unique.insert(eval::lfw_image_path(a.root, p.name_a, p.index_a).string());
      unique.insert(eval::lfw_image_path(a.root, p.name_b, p.index_b).string());
    }
  };
  collect(*test);
  if (train) collect(*train);
  size_t no_face = 0;
  auto templates = central_templates({unique.begin(), unique.end()}, a.flags, no_face);
  if (!templates.is_ok()) { std::cerr << "facevault: " << templates.status().to_string() << "\n"; return kExitFailure; }
  auto score = [&](const eval::PairsFile& pf) {
    std::vector<eval::ScoredPair> out;
    for (const auto& p : pf.pairs) {
      auto ia = templates->find(eval::lfw_image_path(a.root, p.name_a, p.index_a).string());
      auto ib = templates->find(eval::lfw_image_path(a.root, p.name_b, p.index_b).string());
      eval::ScoredPair s;
      s.same = p.same;
      s.fold = p.fold;
      s.missing = ia == templates->end() || ib == templates->end();
      if (!s.missing) s.score = face::similarity(ia->second, ib->second);
      out.push_back(s);
    }
    return out;
  };
  const auto test_scores = score(*test);
  eval::VerificationReport rep;
  std::string protocol;
  if (train) {
    rep = eval::evaluate_train_test(score(*train), test_scores);
    protocol = "threshold fitted on " + a.train + ", accuracy on " + a.pairs;
  } else if (test->folds > 1) {
    rep = eval::evaluate_folds(test_scores, test->folds);
    protocol = std::to_string(test->folds) + "-fold cross-validation";
  } else {
    rep = eval::evaluate_train_test(test_scores, test_scores);
    protocol = "threshold fitted on the test pairs themselves (optimistic; pass --train)";
  }
  if (!a.roc_csv.empty()) {
    std::ofstream csv(a.roc_csv);
    csv << "far,tar,threshold\n";
    for (const auto& p : rep.roc) csv << p.far << "," << p.tar << "," << p.threshold << "\n";
  }
  if (a.json) {
    auto j = verification_json(rep);
    j["protocol"] = protocol;
    j["images"] = unique.size();
    j["images_without_face"] = no_face;
    std::cout << j.dump() << "\n";
  } else {
    std::printf("LFW verification (%s)\n", protocol.c_str());
    std::printf("  images %zu (no face found: %zu), pairs %zu (with a missing face: %zu, counted as errors)\n",
                unique.size(), no_face, rep.pairs, rep.missing);
    if (rep.folds > 1) std::printf("  accuracy    %.2f %% ± %.2f\n", 100 * rep.accuracy, 100 * rep.accuracy_std);
    else std::printf("  accuracy    %.2f %%\n", 100 * rep.accuracy);
    std::printf("  threshold   %.4f (cosine)\n  TAR@FAR=1e-3 %.2f %%\n  AUC         %.5f\n", rep.threshold,
                100 * rep.tar_at_far_1e3, rep.auc);
    for (const auto& p : rep.roc) std::printf("  ROC: FAR %.0e → TAR %.2f %% (threshold %.4f)\n", p.far, 100 * p.tar, p.threshold);
  }
  return kExitOk;
}

struct DetectArgs {
  std::string root, gt;
  double min_height = 32;
  bool json = false;
  // The pyramid's evidence mechanisms, switchable to measure each one (docs/models.md).
  bool no_flip_tta = false;
  bool no_box_voting = false;
  int evidence_scales = face::UltraLightOptions{}.evidence_scales;
  double level_step = face::UltraLightOptions{}.level_step;
  PipelineFlags flags;
};

int run_detect_eval(const DetectArgs& a) {
  auto gt = eval::read_wider_gt(a.gt);
  if (!gt.is_ok()) { std::cerr << "facevault: " << gt.status().to_string() << "\n"; return kExitFailure; }
  std::vector<std::string> files;
  for (const auto& g : *gt) files.push_back((std::filesystem::path(a.root) / g.name).string());
  std::vector<std::vector<eval::PredBox>> preds;
  size_t failed = 0;
  BatchOptions batch = a.flags.to_batch(false);
  batch.pipeline.components.ultralight.flip_tta = !a.no_flip_tta;
  batch.pipeline.components.ultralight.box_voting = !a.no_box_voting;
  batch.pipeline.components.ultralight.evidence_scales = a.evidence_scales;
  batch.pipeline.components.ultralight.level_step = a.level_step;
  auto st = run_batch(files, batch, [&](const ImageResult& r) {
    std::vector<eval::PredBox> p;
    if (!r.status.is_ok()) { ++failed; std::cerr << "facevault: " << r.file << ": " << r.status.to_string() << "\n"; }
    for (const auto& f : r.faces) {
      const auto& b = f.detection.box;
      p.push_back({b.x1, b.y1, b.x2, b.y2, f.detection.score});
    }
    preds.push_back(std::move(p));
  });
  if (!st.is_ok()) { std::cerr << "facevault: " << st.to_string() << "\n"; return kExitFailure; }
  nlohmann::json rows = nlohmann::json::array();
  // Greedy score-ordered NMS makes "filter at a higher threshold" equal "run at it". The first
  // row is the detector's own operating point: the lower of its two thresholds (one pass, pyramid).
  const auto& detector = batch.pipeline.components.ultralight;
  const double lowest = detector.tiling ? std::min<double>(detector.score_threshold, detector.pyramid_score_threshold)
                                        : detector.score_threshold;
  std::vector<double> thresholds;
  for (double t : {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95}) if (t >= lowest - 1e-6) thresholds.push_back(t);
  if (thresholds.empty() || thresholds.front() > lowest + 1e-6) thresholds.insert(thresholds.begin(), lowest);
  for (double t : thresholds) {
    std::vector<std::vector<eval::PredBox>> filtered;
    for (const auto& p : preds) {
      std::vector<eval::PredBox> f;
      for (const auto& b : p) if (b.score >= t) f.push_back(b);
      filtered.push_back(std::move(f));
    }
    auto rep = eval::evaluate_detections(*gt, filtered, a.min_height);
    nlohmann::json buckets = nlohmann::json::array();
    for (const auto& b : rep.buckets)
      buckets.push_back({{"height", b.label}, {"faces", b.faces}, {"found", b.found},
                         {"recall", b.faces ? double(b.found) / b.faces : 0.0}});
    rows.push_back({{"score_threshold", t}, {"recall", rep.recall}, {"faces", rep.faces_evaluated},
                    {"found", rep.found}, {"false_positives", rep.false_positives},
                    {"fp_per_image", rep.fp_per_image}, {"ap", rep.average_precision}, {"by_height", buckets}});
  }
  if (a.json) {
    std::cout << nlohmann::json{{"images", gt->size()}, {"unreadable", failed}, {"min_height", a.min_height},
                                {"tiling", !a.flags.no_tiling},
                                {"flip_tta", !a.no_flip_tta}, {"box_voting", !a.no_box_voting},
                                {"evidence_scales", a.evidence_scales}, {"level_step", a.level_step}, {"rows", rows}}.dump() << "\n";
  } else {
    std::printf("Detection on %zu images (faces >= %.0f px tall, IoU >= 0.5; FP = IoU < 0.3 with every face)\n",
                gt->size(), a.min_height);
    std::printf("  %-6s %-8s %-10s %-8s %s\n", "score", "recall", "FP/image", "AP", "recall by height (<16 16-32 32-64 64-128 >=128)");
    for (const auto& r : rows) {
      std::printf("  %-6.2f %-8.4f %-10.3f %-8.4f", r["score_threshold"].get<double>(), r["recall"].get<double>(),
                  r["fp_per_image"].get<double>(), r["ap"].get<double>());
      for (const auto& b : r["by_height"]) std::printf(" %.3f", b["recall"].get<double>());
      std::printf("\n");
    }
  }
  return failed ? kExitPartial : kExitOk;
}

struct CalibrateArgs {
  std::string root, templates;
  bool json = false;  // one line instead of the indented document
  PipelineFlags flags;
};

// Impostor statistics: every pair of images of different people in an LFW-layout folder.
int run_calibrate(const CalibrateArgs& a) {
  std::vector<std::string> files;
  std::vector<int> identity;
  std::error_code ec;
  std::vector<std::filesystem::path> dirs;
  for (const auto& d : std::filesystem::directory_iterator(a.root, ec)) if (d.is_directory()) dirs.push_back(d.path());
  if (ec || dirs.empty()) { std::cerr << "facevault: no identity folders under " << a.root << "\n"; return kExitFailure; }
  std::sort(dirs.begin(), dirs.end());
  for (size_t i = 0; i < dirs.size(); ++i) {
    std::vector<std::string> imgs;
    for (const auto& f : std::filesystem::directory_iterator(dirs[i])) if (f.is_regular_file()) imgs.push_back(f.path().string());
    std::sort(imgs.begin(), imgs.end());
    for (auto& f : imgs) { files.push_back(f); identity.push_back(static_cast<int>(i)); }
  }
  size_t no_face = 0;
  std::vector<int> ids;
  std::string model;
  cv::Mat m;
  if (!a.templates.empty()) {
    // Cached `facevault embed` output of the same folder (the face nearest the centre).
    auto set = index::read_template_jsonl(a.templates);
    if (!set.is_ok()) { std::cerr << "facevault: " << set.status().to_string() << "\n"; return kExitFailure; }
    std::map<std::string, size_t> row;
    for (size_t i = 0; i < set->files.size(); ++i) row[std::filesystem::weakly_canonical(set->files[i]).string()] = i;
    model = set->model;
    for (size_t i = 0; i < files.size(); ++i) {
      auto it = row.find(std::filesystem::weakly_canonical(files[i]).string());
      if (it == row.end()) { ++no_face; continue; }
      m.push_back(cv::Mat(1, static_cast<int>(set->dim), CV_32F, set->values.data() + it->second * set->dim).clone());
      ids.push_back(identity[i]);
    }
  } else {
    auto templates = central_templates(files, a.flags, no_face);
    if (!templates.is_ok()) { std::cerr << "facevault: " << templates.status().to_string() << "\n"; return kExitFailure; }
    for (size_t i = 0; i < files.size(); ++i) {
      auto it = templates->find(files[i]);
      if (it == templates->end()) continue;
      model = it->second.model_id;
      m.push_back(cv::Mat(1, static_cast<int>(it->second.values.size()), CV_32F, it->second.values.data()).clone());
      ids.push_back(identity[i]);
    }
  }
  if (m.rows < 2) { std::cerr << "facevault: fewer than two templates\n"; return kExitFailure; }
  std::vector<float> impostor;
  impostor.reserve(size_t(m.rows) * m.rows / 2);
  const int block = 1024;
  for (int r0 = 0; r0 < m.rows; r0 += block) {
    const int r1 = std::min(m.rows, r0 + block);
    cv::Mat s = m.rowRange(r0, r1) * m.t();
    for (int i = r0; i < r1; ++i) {
      const float* row = s.ptr<float>(i - r0);
      for (int j = i + 1; j < m.rows; ++j) if (ids[i] != ids[j]) impostor.push_back(row[j]);
    }
  }
  const size_t n = impostor.size();
  auto cal = face::Calibration::from_impostor_scores(std::move(impostor), "LFW impostor pairs");
  nlohmann::json pts = nlohmann::json::array();
  for (const auto& p : cal.points()) pts.push_back({{"fmr", p.fmr}, {"threshold", p.threshold}});
  std::cout << nlohmann::json{{"model", model}, {"images", files.size()}, {"no_face", no_face},
                              {"impostor_pairs", n}, {"points", pts}}.dump(a.json ? -1 : 1) << "\n";
  return kExitOk;
}

struct CohortsArgs {
  std::string root, pairs, cohorts, fmr = "1e-3,1e-4", html, png, templates;
  size_t min_trials = 30;
  bool json = false;
  PipelineFlags flags;
};

// FNMR and FMR per evaluator-labelled cohort at the vault's operating thresholds (docs/quality.md).
int run_cohorts(const CohortsArgs& a) {
  auto fail = [](const std::string& m) { std::cerr << "facevault: " << m << "\n"; return kExitFailure; };
  std::vector<double> targets;
  for (size_t start = 0; start <= a.fmr.size();) {
    const size_t comma = std::min(a.fmr.find(',', start), a.fmr.size());
    const std::string item = a.fmr.substr(start, comma - start);
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !(v > 0 && v < 1))
      return fail("--fmr: '" + item + "' is not a false-match rate in (0, 1) (e.g. --fmr 1e-3,1e-4)");
    targets.push_back(v);
    start = comma + 1;
  }
  auto pf = eval::read_pairs(a.pairs);
  if (!pf.is_ok()) return fail(pf.status().to_string());
  auto labels = eval::read_cohort_labels(a.cohorts);
  if (!labels.is_ok()) return fail(labels.status().to_string());

  // Templates by canonical image path: cached `facevault embed` lines or the pipeline now.
  std::map<std::string, std::vector<float>> tmpl;
  std::string model;
  std::set<std::string> unique;
  for (const auto& p : pf->pairs) {
    unique.insert(eval::lfw_image_path(a.root, p.name_a, p.index_a).string());
    unique.insert(eval::lfw_image_path(a.root, p.name_b, p.index_b).string());
  }
  auto key = [](const std::string& f) { return std::filesystem::weakly_canonical(f).string(); };
  if (!a.templates.empty()) {
    auto set = index::read_template_jsonl(a.templates);
    if (!set.is_ok()) return fail(set.status().to_string());
    model = set->model;
    for (size_t i = 0; i < set->files.size(); ++i)
      tmpl[key(set->files[i])] = std::vector<float>(set->values.begin() + i * set->dim, set->values.begin() + (i + 1) * set->dim);
  } else {
    size_t failed = 0;
    auto t = central_templates({unique.begin(), unique.end()}, a.flags, failed);
    if (!t.is_ok()) return fail(t.status().to_string());
    for (auto& [file, ft] : *t) { model = ft.model_id; tmpl[key(file)] = ft.values; }
  }
  // The thresholds a search uses: the vault's FMR setting through the model's calibration table.
  auto cal = face::Calibration::builtin(model);
  if (!cal.is_ok()) return fail(cal.status().to_string() + " (the operating thresholds come from it)");
  eval::CohortReport rep;
  for (double t : targets) rep.ops.push_back({t, cal->threshold_at(t)});
  rep.model = model;
  rep.calibration = cal->source();
  rep.pairs_file = a.pairs;
  rep.labels_file = a.cohorts;
  rep.pairs = pf->pairs.size();
  rep.images = unique.size();
  rep.options.min_trials = a.min_trials;
  rep.command = "facevault eval cohorts --root " + a.root + " --pairs " + a.pairs + " --cohorts " + a.cohorts + " --fmr " + a.fmr +
                (a.templates.empty() ? "" : " --templates " + a.templates);
  std::map<std::string, const std::vector<float>*> by_file;
  for (const auto& f : unique) {
    auto it = tmpl.find(key(f));
    if (it == tmpl.end()) ++rep.images_without_face;
    else by_file[f] = &it->second;
  }
  std::vector<std::vector<eval::CohortRecord>> records(labels->attributes.size());
  size_t labelled = 0;
  for (const auto& p : pf->pairs) {
    const auto fa = eval::lfw_image_path(a.root, p.name_a, p.index_a), fb = eval::lfw_image_path(a.root, p.name_b, p.index_b);
    auto ia = by_file.find(fa.string()), ib = by_file.find(fb.string());
    eval::CohortRecord r;
    r.same = p.same;
    r.missing = ia == by_file.end() || ib == by_file.end() || ia->second->size() != ib->second->size();
    if (!r.missing) {
      double dot = 0, na = 0, nb = 0;
      const auto& va = *ia->second;
      const auto& vb = *ib->second;
      for (size_t i = 0; i < va.size(); ++i) { dot += double(va[i]) * vb[i]; na += double(va[i]) * va[i]; nb += double(vb[i]) * vb[i]; }
      r.score = na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0;
    }
    bool any = false;
    for (size_t i = 0; i < records.size(); ++i) {
      r.cohort_a = labels->label(i, p.name_a, fa.filename().string());
      r.cohort_b = labels->label(i, p.name_b, fb.filename().string());
      any = any || !r.cohort_a.empty() || !r.cohort_b.empty();
      records[i].push_back(r);
    }
    labelled += any;
  }
  if (labelled == 0)
    return fail(std::string("no image of the pairs has a label in ") + a.cohorts + " (its keys are " +
                (labels->by_image ? "image file names such as Name_0001.jpg" : "identities (folder names)") + ")");
  for (size_t i = 0; i < records.size(); ++i)
    rep.attributes.push_back(eval::analyse_attribute(labels->attributes[i], records[i], rep.ops, rep.options));
  if (!a.html.empty()) {
    std::ofstream out(a.html, std::ios::binary);
    out << eval::cohort_report_html(rep);
    if (!out) return fail("cannot write " + a.html);
  }
  if (!a.png.empty()) {
    auto st = eval::write_cohort_png(rep, a.png);
    if (!st.is_ok()) return fail(st.to_string());
  }
  if (a.json) { std::cout << eval::cohort_report_json(rep).dump() << "\n"; return kExitOk; }
  std::printf("Accuracy per cohort: %s, %zu pairs, %zu images (%zu without a face)\n", model.c_str(), rep.pairs, rep.images,
              rep.images_without_face);
  std::printf("  95 %% Clopper-Pearson intervals; flag: Fisher's exact test vs the other cohorts, Holm-adjusted, p < 0.05\n");
  for (const auto& at : rep.attributes) {
    std::printf("%s\n  %-5s %-6s %-24s %13s %9s  %-22s %-9s %s\n", at.attribute.c_str(), "", "FMR", "cohort", "errors/trials", "rate",
                "95 % CI", "p (Holm)", "status");
    for (const auto& r : at.rows) {
      const std::string counts = std::to_string(r.errors) + "/" + std::to_string(r.trials);
      char p[32] = "";
      if (r.tested) std::snprintf(p, sizeof p, "%.3g", r.p_adjusted);
      std::printf("  %-5s %-6.0e %-24s %13s %8.2f%%  [%6.2f%%, %6.2f%%]  %-9s %s\n", r.metric.c_str(), r.target_fmr, r.cohort.c_str(),
                  counts.c_str(), 100 * r.rate, 100 * r.ci.low, 100 * r.ci.high, p,
                  r.too_small ? "n too small" : r.significant ? ("differs: " + r.direction).c_str()
                                : r.tested ? "no significant difference" : r.kind.c_str());
    }
  }
  return kExitOk;
}

}  // namespace

void add_eval_commands(CLI::App& app, int& exit_code) {
  auto* eval = app.add_subcommand("eval", "measure accuracy: LFW verification, detection recall, calibration, accuracy per cohort");
  eval->require_subcommand(1);
  set_examples(eval, {"facevault eval lfw --root lfw/images --pairs lfw/pairsDevTest.txt --train lfw/pairsDevTrain.txt",
                      "facevault eval ident --root lfw/images --json"});

  auto lfw = std::make_shared<LfwArgs>();
  auto* l = eval->add_subcommand("lfw", "LFW pairs protocol: accuracy, TAR@FAR=1e-3, ROC points");
  l->add_option("--root", lfw->root, "LFW images folder (<Name>/<Name>_NNNN.jpg)")->required();
  l->add_option("--pairs", lfw->pairs, "pairs file to report on (View-1 pairsDevTest.txt or View-2 pairs.txt)")->required();
  l->add_option("--train", lfw->train, "pairs file to fit the threshold on (View-1 pairsDevTrain.txt)");
  l->add_option("--roc-csv", lfw->roc_csv, "write the ROC points as CSV");
  l->add_flag("--json", lfw->json, "one JSON object instead of text");
  add_pipeline_flags(l, lfw->flags);
  set_examples(l, {"facevault eval lfw --root lfw/images --pairs lfw/pairsDevTest.txt --train lfw/pairsDevTrain.txt --json"});
  l->callback([lfw, &exit_code] { exit_code = run_lfw(*lfw); });

  auto det = std::make_shared<DetectArgs>();
  auto* d = eval->add_subcommand("detect", "detection recall, false positives and AP on WIDER FACE-format boxes");
  d->add_option("--root", det->root, "folder the image names in the ground truth are relative to")->required();
  d->add_option("--gt", det->gt, "ground-truth file (wider_face_*_bbx_gt.txt format)")->required();
  d->add_option("--min-height", det->min_height, "evaluate faces at least this tall (px)");
  d->add_flag("--json", det->json, "one JSON object instead of text");
  d->add_flag("--no-flip-tta", det->no_flip_tta, "pyramid tiles without their mirrored pass");
  d->add_flag("--no-box-voting", det->no_box_voting, "a pyramid face's box is its best candidate's, not the score-weighted mean");
  d->add_option("--evidence-scales", det->evidence_scales, "a pyramid face's score is the mean of its best N scales (default 2)")
      ->check(CLI::Range(1, 8));
  d->add_option("--level-step", det->level_step, "each pyramid level's tiles are this many times larger than the last (default 2)")
      ->check(CLI::Range(1.1, 4.0));
  add_pipeline_flags(d, det->flags);
  set_examples(d, {"facevault eval detect --root wider/images --gt wider/wider_face_val_bbx_gt.txt --json"});
  d->callback([det, &exit_code] { exit_code = run_detect_eval(*det); });

  auto cal = std::make_shared<CalibrateArgs>();
  auto* c = eval->add_subcommand("calibrate", "false-match-rate table from impostor pairs of an LFW-layout folder");
  c->add_option("--root", cal->root, "folder of <identity>/<image> files")->required();
  c->add_option("--templates", cal->templates, "cached `facevault embed` JSON lines of that folder (instead of running the pipeline)");
  c->add_flag("--json", cal->json, "the same JSON document on one line (default: indented)");
  add_pipeline_flags(c, cal->flags);
  set_examples(c, {"facevault eval calibrate --root lfw/images --threads 2",
                   "facevault eval calibrate --root lfw/images --templates lfw.jsonl --json"});
  c->callback([cal, &exit_code] { exit_code = run_calibrate(*cal); });

  auto co = std::make_shared<CohortsArgs>();
  auto* k = eval->add_subcommand("cohorts",
                                 "FNMR and FMR per cohort (labels you supply: facevault never infers sex, age or any attribute) "
                                 "at the vault's operating thresholds, with confidence intervals and a significance flag");
  k->add_option("--root", co->root, "images folder (<Name>/<Name>_NNNN.jpg)")->required();
  k->add_option("--pairs", co->pairs, "LFW-format pairs file (e.g. View-1 pairsDevTest.txt, or your own pairs)")->required();
  k->add_option("--cohorts", co->cohorts,
                "labels CSV given by the evaluator: header identity,<attribute>,... (or image,<attribute>,... with file names "
                "such as Name_0001.jpg), one row per identity or image; an empty cell = not labelled")->required();
  k->add_option("--fmr", co->fmr, "operating points as false-match rates, comma-separated (default 1e-3,1e-4: the vault's "
                                  "search_max_fmr default and a stricter one), turned into thresholds by the model's calibration table");
  k->add_option("--min-trials", co->min_trials, "below this many pairs a cohort's rate is marked \"n too small\" and not tested (default 30)");
  k->add_option("--html", co->html, "write a standalone HTML report (charts with intervals, counts, definitions)");
  k->add_option("--png", co->png, "write the charts as PNG");
  k->add_option("--templates", co->templates, "templates from `facevault embed --list` (JSON lines) instead of running the pipeline");
  k->add_flag("--json", co->json, "one JSON object instead of text (field names: docs/quality.md)");
  add_pipeline_flags(k, co->flags);
  set_examples(k, {"facevault eval cohorts --root lfw/images --pairs lfw/pairsDevTest.txt --cohorts sex.csv --html cohorts.html",
                   "facevault eval cohorts --root photos --pairs my-pairs.txt --cohorts labels.csv --fmr 1e-3 --json"});
  k->callback([co, &exit_code] { exit_code = run_cohorts(*co); });
}

}  // namespace fv::cli
