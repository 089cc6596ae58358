#include "face/pipeline.h"

#include <cmath>

namespace fv::face {

Result<std::unique_ptr<FacePipeline>> FacePipeline::create(const nn::ModelStore& store, const PipelineOptions& options,
                                                           const Registry& registry) {
  std::unique_ptr<FacePipeline> p(new FacePipeline());
  p->options_ = options;
  auto d = registry.detectors.find(options.detector);
  if (d == registry.detectors.end()) return not_found("unknown detector '" + options.detector + "'");
  auto l = registry.landmarkers.find(options.landmarker);
  if (l == registry.landmarkers.end()) return not_found("unknown landmarker '" + options.landmarker + "'");
  auto e = registry.embedders.find(options.embedder);
  if (e == registry.embedders.end()) return not_found("unknown embedder '" + options.embedder + "'");
  auto det = d->second(store, options.components);
  if (!det.is_ok()) return det.status();
  auto lm = l->second(store);
  if (!lm.is_ok()) return lm.status();
  auto emb = e->second(store);
  if (!emb.is_ok()) return emb.status();
  p->detector_ = std::move(det).value();
  p->landmarker_ = std::move(lm).value();
  p->embedder_ = std::move(emb).value();
  return p;
}

Result<std::vector<Face>> FacePipeline::analyze(const cv::Mat& rgb, bool embed) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return invalid_argument("pipeline input must be a non-empty RGB8 image");
  auto dets = detector_->detect(rgb);
  if (!dets.is_ok()) return dets.status();
  if (dets->size() > options_.max_faces) dets->resize(options_.max_faces);
  std::vector<Face> faces;
  std::vector<cv::Mat> crops;
  for (const auto& d : *dets) {
    auto lm = landmarker_->locate(rgb, d.box);
    if (!lm.is_ok()) continue;  // a sliver of a box at the image edge: no face to align
    Face f;
    f.detection = d;
    f.landmarks = std::move(lm).value();
    cv::Mat crop = embedder_->align(rgb, f.landmarks);
    f.quality = assess_quality(d, f.landmarks, crop, options_.quality);
    faces.push_back(std::move(f));
    crops.push_back(std::move(crop));
  }
  if (embed && !faces.empty()) {
    // Batches of 16 keep memory flat for crowd photos and still amortise the forward call.
    for (size_t start = 0; start < faces.size(); start += 16) {
      const size_t end = std::min(faces.size(), start + 16);
      std::vector<Landmarks> batch;
      for (size_t i = start; i < end; ++i) batch.push_back(faces[i].landmarks);
      const std::vector<cv::Mat> batch_crops(crops.begin() + start, crops.begin() + end);
      auto t = embedder_->embed_faces(rgb, batch, &batch_crops);
      if (!t.is_ok()) return t.status();
      for (size_t i = 0; i < t->size(); ++i) faces[start + i].face_template = std::move((*t)[i]);
    }
  }
  return faces;
}

int central_face(const std::vector<Face>& faces, cv::Size image) {
  int best = -1;
  double best_d = 0;
  for (size_t i = 0; i < faces.size(); ++i) {
    const auto& b = faces[i].detection.box;
    const double d = std::hypot((b.x1 + b.x2) / 2 - image.width / 2.0, (b.y1 + b.y2) / 2 - image.height / 2.0);
    if (best < 0 || d < best_d) { best = static_cast<int>(i); best_d = d; }
  }
  return best;
}

}  // namespace fv::face
