#include <algorithm>
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

}  // namespace fv::face
