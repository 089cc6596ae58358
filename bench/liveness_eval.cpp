// liveness_eval: scores of fr_liveness.onnx on labelled photos, for the evidence in
// docs/models.md and docs/benchmarks.md (APCER/BPCER, ISO/IEC 30107-3 terms).
//
//   liveness_eval [--order rgb|bgr] [--range 255|1] [--threshold T] [--stride K] [--limit N] [--per-image]
//                 --bona-fide PATH... --attack PATH...
//
// A PATH is an image or a folder (searched recursively, sorted, every --stride-th image, at most
// --limit of each PATH). The face scored is the one 1:1 verification compares
// (face::verification_face). Prints one line per image with --per-image, then per group the
// count scored, the count with no face, and the error rate at the threshold:
// BPCER = bona fide judged attacks / bona fide scored; APCER = attacks judged bona fide / attacks scored.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "face/compare.h"
#include "face/liveness.h"
#include "face/pipeline.h"
#include "image/decode.h"

namespace fs = std::filesystem;
using namespace fv;

namespace {

std::vector<fs::path> images_under(const fs::path& p, size_t limit, size_t stride) {
  std::vector<fs::path> out;
  if (fs::is_regular_file(p)) return {p};
  for (const auto& e : fs::recursive_directory_iterator(p)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (e.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  if (stride > 1) {  // every stride-th image: a spread over many people, not the first names
    std::vector<fs::path> kept;
    for (size_t i = 0; i < out.size(); i += stride) kept.push_back(out[i]);
    out.swap(kept);
  }
  if (limit && out.size() > limit) out.resize(limit);
  return out;
}

struct Group {
  const char* name = "";
  bool attack = false;
  std::vector<fs::path> files;
  size_t scored = 0, no_face = 0, errors = 0;
  std::vector<double> scores;
};

}  // namespace

int main(int argc, char** argv) {
  face::LivenessOptions lo;
  double threshold = 0.5;
  size_t limit = 0, stride = 1;
  bool per_image = false;
  face::PipelineOptions po;  // the detector's box is the liveness crop's reference: measurable here
  std::vector<std::pair<std::string, bool>> paths;
  bool attack = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--order") lo.order = next() == "rgb" ? face::ChannelOrder::kRgb : face::ChannelOrder::kBgr;
    else if (a == "--range") lo.value_scale = next() == "1" ? 1.0f / 255.0f : 1.0f;
    else if (a == "--threshold") threshold = std::stod(next());
    else if (a == "--limit") limit = std::stoul(next());
    else if (a == "--stride") stride = std::stoul(next());
    else if (a == "--per-image") per_image = true;
    else if (a == "--no-tiling") po.components.ultralight.tiling = false;
    else if (a == "--no-flip-tta") po.components.ultralight.flip_tta = false;
    else if (a == "--no-box-voting") po.components.ultralight.box_voting = false;
    else if (a == "--bona-fide") attack = false;
    else if (a == "--attack") attack = true;
    else paths.emplace_back(a, attack);
  }
  nn::ModelStore store;
  auto pipeline = face::FacePipeline::create(store, po);
  auto live = face::MiniFasNetLiveness::create(store);
  if (!pipeline.is_ok() || !live.is_ok()) {
    std::fprintf(stderr, "liveness_eval: %s\n",
                 (!pipeline.is_ok() ? pipeline.status() : live.status()).message().c_str());
    return 1;
  }
  Group groups[2];
  groups[0].name = "bona fide";
  groups[1].name = "attack";
  groups[1].attack = true;
  for (const auto& [p, is_attack] : paths) {
    auto files = images_under(p, limit, stride);
    auto& g = groups[is_attack ? 1 : 0].files;
    g.insert(g.end(), files.begin(), files.end());
  }
  for (Group& g : groups) {
    for (const auto& f : g.files) {
      auto img = image::read_image_file(f);
      if (!img.is_ok()) { ++g.errors; continue; }
      auto faces = (*pipeline)->analyze(img->rgb, true);
      const int k = faces.is_ok() ? face::verification_face(*faces) : -1;
      if (k < 0) { ++g.no_face; continue; }
      auto s = (*live)->score(img->rgb, (*faces)[k].detection.single_view_box(), lo);
      if (!s.is_ok()) { ++g.errors; continue; }
      ++g.scored;
      g.scores.push_back(s->live);
      if (per_image) {
        std::printf("%s\t%s\t%.4f\t%.4f\t%.4f\n", g.name, f.string().c_str(), s->classes[0], s->classes[1], s->classes[2]);
      }
    }
  }
  std::printf("order=%s range=%s threshold=%.3f\n", lo.order == face::ChannelOrder::kBgr ? "bgr" : "rgb",
              lo.value_scale == 1.0f ? "0..255" : "0..1", threshold);
  for (const Group& g : groups) {
    size_t wrong = 0;
    for (double s : g.scores) wrong += g.attack ? (s >= threshold) : (s < threshold);
    std::vector<double> sorted = g.scores;
    std::sort(sorted.begin(), sorted.end());
    auto q = [&](double f) { return sorted.empty() ? 0.0 : sorted[std::min(sorted.size() - 1, size_t(f * sorted.size()))]; };
    std::printf("%-9s scored %zu, no face %zu, unreadable %zu; %s %zu/%zu = %.2f %%; P(live) min %.4f p1 %.4f p5 %.4f median %.4f max %.4f\n",
                g.name, g.scored, g.no_face, g.errors, g.attack ? "APCER" : "BPCER", wrong, g.scored,
                g.scored ? 100.0 * wrong / g.scored : 0.0, sorted.empty() ? 0 : sorted.front(), q(0.01), q(0.05), q(0.5),
                sorted.empty() ? 0 : sorted.back());
  }
  return 0;
}
