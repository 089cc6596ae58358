#include <cmath>
#include <cstdio>

#include "face/embedder.h"

namespace fv::face {

FusionEmbedder::FusionEmbedder(std::unique_ptr<Embedder> a, std::unique_ptr<Embedder> b, double weight_b)
    : a_(std::move(a)), b_(std::move(b)), weight_b_(weight_b), model_id_(id_for(a_->model_id(), b_->model_id(), weight_b)) {}

std::string FusionEmbedder::id_for(const std::string& a, const std::string& b, double weight_b) {
  char w[32];
  std::snprintf(w, sizeof w, "%g", weight_b);
  return "fusion(" + a + "+" + w + "*" + b + ")";
}

Result<std::vector<FaceTemplate>> FusionEmbedder::embed(const std::vector<cv::Mat>&) {
  return invalid_argument("a fused template needs the image and landmarks: use embed_faces()");
}

Result<std::vector<FaceTemplate>> FusionEmbedder::embed_faces(const cv::Mat& rgb, const std::vector<Landmarks>& faces,
                                                               const std::vector<cv::Mat>* crops) {
  auto ta = a_->embed_faces(rgb, faces, crops);  // align() returns the first model's crop
  if (!ta.is_ok()) return ta.status();
  auto tb = b_->embed_faces(rgb, faces);
  if (!tb.is_ok()) return tb.status();
  std::vector<FaceTemplate> out;
  const float sb = static_cast<float>(std::sqrt(weight_b_)), norm = static_cast<float>(1.0 / std::sqrt(1.0 + weight_b_));
  for (size_t i = 0; i < faces.size(); ++i) {
    FaceTemplate t{model_id_, model_version(), {}};
    t.values.reserve(dim());
    for (float v : (*ta)[i].values) t.values.push_back(v * norm);
    for (float v : (*tb)[i].values) t.values.push_back(v * sb * norm);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace fv::face
