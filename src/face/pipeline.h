// FacePipeline: an image → every face with box, score, landmarks, quality and (optionally)
// its template. The public entry point of the `face` module; vault and service use only this.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "face/quality.h"
#include "face/registry.h"

namespace fv::face {

struct PipelineOptions {
  std::string detector = "ultralight-rfb320";
  std::string landmarker = "faceplugin-lm68";
  std::string embedder = "faceplugin-mobilefacenet-512";
  ComponentOptions components;
  QualityThresholds quality;
  size_t max_faces = 200;  // bounds the work one hostile image can cause
};

class FacePipeline {
 public:
  static Result<std::unique_ptr<FacePipeline>> create(const nn::ModelStore& store, const PipelineOptions& options = {},
                                                      const Registry& registry = builtin_registry());

  // rgb: CV_8UC3 RGB. Faces best score first. Templates only when `embed` is true.
  Result<std::vector<Face>> analyze(const cv::Mat& rgb, bool embed);

  Detector& detector() { return *detector_; }
  Landmarker& landmarker() { return *landmarker_; }
  Embedder& embedder() { return *embedder_; }
  const PipelineOptions& options() const { return options_; }

 private:
  FacePipeline() = default;
  std::unique_ptr<Detector> detector_;
  std::unique_ptr<Landmarker> landmarker_;
  std::unique_ptr<Embedder> embedder_;
  PipelineOptions options_;
};

// The face whose box centre is nearest the image centre (the LFW convention), or -1.
int central_face(const std::vector<Face>& faces, cv::Size image);

}  // namespace fv::face
