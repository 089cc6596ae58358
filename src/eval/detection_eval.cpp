#include "eval/detection_eval.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace fv::eval {
namespace {

double box_iou(const PredBox& p, const GtBox& g) {
  const double ix = std::min(p.x2, g.x + g.w) - std::max(p.x1, g.x);
  const double iy = std::min(p.y2, g.y + g.h) - std::max(p.y1, g.y);
  if (ix <= 0 || iy <= 0) return 0;
  const double inter = ix * iy;
  return inter / ((p.x2 - p.x1) * (p.y2 - p.y1) + g.w * g.h - inter);
}

}  // namespace

Result<std::vector<GtImage>> read_wider_gt(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open ground truth " + path.string());
  std::vector<GtImage> out;
  std::string line;
  int lineno = 0;
  auto fail = [&](const std::string& what) {
    return corrupt_data(path.string() + ":" + std::to_string(lineno) + ": " + what);
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    GtImage img;
    img.name = line;
    if (!std::getline(in, line)) return fail("missing face count");
    ++lineno;
    int count = 0;
    try { count = std::stoi(line); } catch (const std::exception&) { return fail("face count is not a number"); }
    if (count < 0 || count > 100000) return fail("implausible face count");
    const int rows = std::max(count, 1);
    for (int i = 0; i < rows; ++i) {
      if (!std::getline(in, line)) return fail("file ends inside a face list");
      ++lineno;
      if (count == 0) break;
      std::istringstream f(line);
      double v[10] = {0};
      int n = 0;
      while (n < 10 && f >> v[n]) ++n;
      if (n < 4) return fail("expected x y w h ...");
      GtBox b{v[0], v[1], v[2], v[3], n >= 8 && v[7] != 0};
      img.faces.push_back(b);
    }
    out.push_back(std::move(img));
  }
  return out;
}

DetectionReport evaluate_detections(const std::vector<GtImage>& gt, const std::vector<std::vector<PredBox>>& predictions,
                                    double min_height, double match_iou, double fp_iou) {
  DetectionReport r;
  r.images = gt.size();
  r.buckets = {{"<16", 0, 16}, {"16-32", 16, 32}, {"32-64", 32, 64}, {"64-128", 64, 128}, {">=128", 128, 1e18}};
  struct Scored { double score; int kind; };  // kind: 1 TP, 0 FP, -1 ignored
  std::vector<Scored> scored;
  for (size_t i = 0; i < gt.size(); ++i) {
    const auto& faces = gt[i].faces;
    std::vector<PredBox> preds = i < predictions.size() ? predictions[i] : std::vector<PredBox>{};
    std::sort(preds.begin(), preds.end(), [](const PredBox& a, const PredBox& b) { return a.score > b.score; });
    auto evaluated = [&](const GtBox& g) { return !g.invalid && g.h >= min_height; };
    std::vector<bool> taken(faces.size(), false);
    for (const auto& p : preds) {
      // Prefer the best-overlapping untaken evaluated face, then any other annotated face.
      int best = -1;
      double best_iou = match_iou;
      bool best_eval = false;
      double max_any = 0;
      bool duplicate = false;  // overlaps an evaluated face that an earlier detection took
      for (size_t j = 0; j < faces.size(); ++j) {
        const double o = box_iou(p, faces[j]);
        max_any = std::max(max_any, o);
        if (taken[j] && o >= match_iou && evaluated(faces[j])) duplicate = true;
        if (taken[j] || o < match_iou) continue;
        const bool ev = evaluated(faces[j]);
        if (best < 0 || (ev && !best_eval) || (ev == best_eval && o > best_iou)) {
          best = static_cast<int>(j); best_iou = o; best_eval = ev;
        }
      }
      if (best >= 0) {
        taken[best] = true;
        scored.push_back({p.score, best_eval ? 1 : -1});
      } else if (duplicate) {
        // A second box on a found face: not a false positive by the FP/image definition
        // (it overlaps a face), but it costs precision, as in the WIDER protocol.
        scored.push_back({p.score, 0});
      } else if (max_any >= fp_iou) {
        scored.push_back({p.score, -1});
      } else {
        ++r.false_positives;
        scored.push_back({p.score, 0});
      }
    }
    for (size_t j = 0; j < faces.size(); ++j) {
      if (faces[j].invalid) continue;
      for (auto& b : r.buckets) {
        if (faces[j].h >= b.min_h && faces[j].h < b.max_h) { ++b.faces; b.found += taken[j]; }
      }
      if (evaluated(faces[j])) { ++r.faces_evaluated; r.found += taken[j]; }
    }
  }
  r.recall = r.faces_evaluated ? double(r.found) / r.faces_evaluated : 0;
  r.fp_per_image = r.images ? double(r.false_positives) / r.images : 0;
  // AP: all-point interpolated area under precision/recall, detections in score order.
  std::sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
  std::vector<double> prec, rec;
  size_t tp = 0, fp = 0;
  for (const auto& s : scored) {
    if (s.kind < 0) continue;
    (s.kind ? tp : fp) += 1;
    prec.push_back(double(tp) / (tp + fp));
    rec.push_back(r.faces_evaluated ? double(tp) / r.faces_evaluated : 0);
  }
  for (size_t i = prec.size(); i-- > 1;) prec[i - 1] = std::max(prec[i - 1], prec[i]);
  double ap = 0, last_r = 0;
  for (size_t i = 0; i < prec.size(); ++i) { ap += (rec[i] - last_r) * prec[i]; last_r = rec[i]; }
  r.average_precision = ap;
  return r;
}

}  // namespace fv::eval
