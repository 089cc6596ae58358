#include "face/types.h"

#include <algorithm>

namespace fv::face {

double iou(const Box& a, const Box& b) {
  const double ix = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const double iy = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (ix <= 0 || iy <= 0) return 0.0;
  const double inter = ix * iy;
  const double uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

double similarity(const FaceTemplate& a, const FaceTemplate& b) {
  if (a.model_id != b.model_id || a.model_version != b.model_version || a.values.size() != b.values.size()) return -2.0;
  double s = 0;
  for (size_t i = 0; i < a.values.size(); ++i) s += double(a.values[i]) * double(b.values[i]);
  return s;
}

}  // namespace fv::face
