#include <opencv2/core.hpp>

#include "face/embedder.h"

namespace fv::face {

Result<std::vector<FaceTemplate>> FlipAveragedEmbedder::embed(const std::vector<cv::Mat>& aligned) {
  // One batch of 2N crops: the N crops, then their mirrors.
  std::vector<cv::Mat> both(aligned.begin(), aligned.end());
  for (const auto& c : aligned) {
    cv::Mat m;
    if (!c.empty()) cv::flip(c, m, 1);
    both.push_back(m);
  }
  auto t = inner_->embed(both);
  if (!t.is_ok()) return t.status();
  if (t->size() != both.size()) return internal_error(model_id_ + ": inner embedder returned a different batch size");
  std::vector<FaceTemplate> out;
  out.reserve(aligned.size());
  for (size_t i = 0; i < aligned.size(); ++i) {
    FaceTemplate f{model_id_, model_version(), std::move((*t)[i].values)};
    const auto& mirror = (*t)[i + aligned.size()].values;
    for (size_t d = 0; d < f.values.size(); ++d) f.values[d] += mirror[d];
    l2_normalise(f.values);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace fv::face
