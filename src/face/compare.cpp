#include "face/compare.h"

namespace fv::face {

int verification_face(const std::vector<Face>& faces) {
  int best = -1;
  for (size_t i = 0; i < faces.size(); ++i) {
    if (!faces[i].face_template) continue;  // a face without a template cannot be compared
    if (best < 0 || faces[i].detection.box.area() > faces[best].detection.box.area()) best = static_cast<int>(i);
  }
  return best;
}

Comparison compare(const FaceTemplate& a, const FaceTemplate& b, const Calibration* cal, double fmr) {
  Comparison c;
  c.similarity = similarity(a, b);
  c.threshold_fmr = fmr;
  if (cal == nullptr) return c;
  c.threshold = cal->threshold_at(fmr);
  c.score_fmr = cal->fmr_at(c.similarity);
  c.same = c.similarity >= *c.threshold;
  c.calibration = cal->source();
  return c;
}

}  // namespace fv::face
