// facevault verify A B: are these two photos of the same person?
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/json_out.h"
#include "face/calibration.h"
#include "face/compare.h"
#include "face/liveness.h"
#include "image/decode.h"
#include "nn/model_store.h"

namespace fv::cli {
namespace {

struct VerifyArgs {
  std::string a, b;
  double fmr = 1e-4;
  bool json = false;
  bool liveness = false;
  double liveness_threshold = face::kDefaultLivenessThreshold;
  PipelineFlags flags;
};

// The presentation-attack check of photo a (the probe presented live), on the face that is
// compared. run_batch keeps no pixels, so the probe is decoded once more here.
Result<face::LivenessScore> probe_liveness(const std::string& file, const face::Box& box) {
  auto img = image::read_image_file(file);
  if (!img.is_ok()) return img.status();
  auto model = face::MiniFasNetLiveness::create(nn::ModelStore());
  if (!model.is_ok()) return model.status();
  return (*model)->score(img->rgb, box);
}

int run_verify(const VerifyArgs& a) {
  std::vector<ImageResult> results;
  auto batch = a.flags.to_batch(true);
  batch.progress = false;
  auto st = run_batch({a.a, a.b}, batch, [&](const ImageResult& r) { results.push_back(r); });
  if (!st.is_ok()) { std::cerr << "facevault: " << st.to_string() << "\n"; return kExitFailure; }
  const face::FaceTemplate* t[2] = {nullptr, nullptr};
  for (int i = 0; i < 2; ++i) {
    if (!results[i].status.is_ok()) {
      std::cerr << "facevault: " << results[i].file << ": " << results[i].status.to_string() << "\n";
      return kExitFailure;
    }
    const int k = face::verification_face(results[i].faces);
    if (k < 0) { std::cerr << "facevault: " << results[i].file << ": no face found\n"; return kExitFailure; }
    t[i] = &*results[i].faces[k].face_template;
  }
  std::optional<face::LivenessScore> live;
  if (a.liveness) {
    auto s = probe_liveness(a.a, results[0].faces[face::verification_face(results[0].faces)].detection.single_view_box());
    if (!s.is_ok()) { std::cerr << "facevault: " << a.a << ": " << s.status().to_string() << "\n"; return kExitFailure; }
    live = *s;
    if (live->live < a.liveness_threshold) {
      std::fprintf(stderr, "facevault: %s: presentation attack suspected in photo a (liveness score %.4f < threshold %.2f)\n",
                   a.a.c_str(), live->live, a.liveness_threshold);
      return kExitFailure;
    }
  }
  auto cal = face::Calibration::builtin(t[0]->model_id);
  if (!cal.is_ok()) { std::cerr << "facevault: " << cal.status().to_string() << "\n"; return kExitFailure; }
  const face::Comparison c = face::compare(*t[0], *t[1], &*cal, a.fmr);
  const double sim = c.similarity, threshold = *c.threshold, fmr_at_score = *c.score_fmr;
  const bool same = c.same;
  if (a.json) {
    nlohmann::json j = {{"a", a.a}, {"b", a.b}, {"similarity", sim}, {"same", same}, {"threshold", threshold},
                        {"threshold_fmr", a.fmr}, {"score_fmr", fmr_at_score}, {"model", t[0]->model_id},
                        {"faces_a", results[0].faces.size()}, {"faces_b", results[1].faces.size()},
                        {"calibration", cal->source()}};
    if (live) {
      j["liveness"] = {{"checked", true}, {"score", live->live}, {"threshold", a.liveness_threshold}, {"live", true}};
    }
    std::cout << j.dump() << "\n";
  } else {
    std::printf("similarity %.4f → %s\n", sim, same ? "SAME person" : "DIFFERENT people");
    std::printf("threshold  %.4f, calibrated to a false-match rate of 1 in %.0f (%s)\n", threshold, 1.0 / a.fmr,
                cal->source().c_str());
    std::printf("a score this high occurs for %s of pairs of different people\n",
                fmr_at_score <= cal->points().back().fmr
                    ? ("at most 1 in " + std::to_string(std::lround(1.0 / fmr_at_score))).c_str()
                    : ("1 in " + std::to_string(std::lround(1.0 / fmr_at_score))).c_str());
    if (live) std::printf("liveness   %.4f ≥ %.2f: photo a was not judged a presentation attack\n", live->live, a.liveness_threshold);
    for (int i = 0; i < 2; ++i) {
      if (results[i].faces.size() > 1)
        std::printf("note: %s has %zu faces; the largest was compared\n", results[i].file.c_str(), results[i].faces.size());
    }
  }
  return kExitOk;
}

}  // namespace

void add_verify_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<VerifyArgs>();
  auto* cmd = app.add_subcommand("verify", "1:1 verification: similarity of the largest face in two photos");
  cmd->add_option("a", args->a, "first image")->required();
  cmd->add_option("b", args->b, "second image")->required();
  // --max-fmr as in `search` (the same limit: a match only when its false-match rate is at most
  // this); --fmr, the name of the HTTP field and of the Python argument, stays.
  cmd->add_option("--max-fmr,--fmr", args->fmr, "false-match rate the decision threshold is set to (default 1e-4)")
      ->check(CLI::Range(1e-7, 0.5));
  cmd->add_flag("--json", args->json, "one JSON object instead of text");
  cmd->add_flag("--liveness", args->liveness,
                "check photo a (the probe presented live) for a presentation attack first and refuse it when judged "
                "one (a weak model: docs/models.md)");
  cmd->add_option("--liveness-threshold", args->liveness_threshold, "P(live) below which --liveness refuses (default 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  add_pipeline_flags(cmd, args->flags);
  set_examples(cmd, {"facevault verify --json id-card.jpg selfie.jpg", "facevault verify a.jpg b.jpg --max-fmr 1e-5",
                "facevault verify --liveness selfie.jpg id-card.jpg"});
  cmd->callback([args, &exit_code] { exit_code = run_verify(*args); });
}

}  // namespace fv::cli
