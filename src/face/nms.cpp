#include <algorithm>
#include <map>
#include <numeric>

#include "face/detector.h"

namespace fv::face {

std::vector<Detection> nms(std::vector<Detection> dets, double iou_threshold, size_t top_k) {
  std::vector<size_t> order(dets.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dets[a].score > dets[b].score; });
  if (top_k && order.size() > top_k) order.resize(top_k);
  std::vector<Detection> kept;
  for (size_t i : order) {
    bool keep = true;
    for (const auto& k : kept) {
      if (iou(dets[i].box, k.box) >= iou_threshold) { keep = false; break; }
    }
    if (keep) kept.push_back(dets[i]);
  }
  return kept;
}

std::vector<Detection> merge_views(std::vector<ViewCandidate> candidates, const EvidenceOptions& options) {
  std::vector<size_t> order(candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return candidates[a].detection.score > candidates[b].detection.score; });
  std::vector<bool> claimed(candidates.size(), false);
  std::vector<Detection> out;
  const int scales = std::max(1, options.scales);
  for (size_t lead : order) {
    if (claimed[lead]) continue;
    const Box& lead_box = candidates[lead].detection.box;
    struct TileBest { int scale = 0; float plain = 0, mirrored = 0; };
    std::map<int, TileBest> tiles;
    double wsum = 0, x1 = 0, y1 = 0, x2 = 0, y2 = 0;
    for (size_t i : order) {
      // The lead always belongs to its own group, even when its box is degenerate (IoU 0 with itself).
      if (claimed[i] || (i != lead && iou(lead_box, candidates[i].detection.box) < options.cluster_iou)) continue;
      claimed[i] = true;
      const auto& c = candidates[i];
      auto& t = tiles[c.tile];
      t.scale = c.scale;
      float& slot = c.mirrored ? t.mirrored : t.plain;
      slot = std::max(slot, c.detection.score);
      const double w = c.detection.score;
      wsum += w;
      x1 += w * c.detection.box.x1; y1 += w * c.detection.box.y1;
      x2 += w * c.detection.box.x2; y2 += w * c.detection.box.y2;
    }
    std::map<int, float> scale_best;
    for (const auto& [tile, t] : tiles) {
      const float s = options.average_mirrored ? (t.plain + t.mirrored) / 2 : t.plain;
      scale_best[t.scale] = std::max(scale_best[t.scale], s);
    }
    std::vector<float> scale_scores;
    for (const auto& [scale, s] : scale_best) scale_scores.push_back(s);
    std::sort(scale_scores.begin(), scale_scores.end(), std::greater<>());
    double evidence = 0;
    for (int k = 0; k < scales && k < static_cast<int>(scale_scores.size()); ++k) evidence += scale_scores[k];
    Detection d;
    d.score = static_cast<float>(evidence / scales);
    d.box = options.vote_boxes && wsum > 0 ? Box{x1 / wsum, y1 / wsum, x2 / wsum, y2 / wsum} : lead_box;
    d.best_view_box = lead_box;
    out.push_back(d);
  }
  std::stable_sort(out.begin(), out.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
  return out;
}

}  // namespace fv::face
