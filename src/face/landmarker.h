// Landmarker: a face box → 68 iBUG points and the 5 alignment points.
// fr_landmark.onnx (faceplugin) sees a 64×64 grey crop of the box squared to its height.
#pragma once

#include <memory>

#include "face/types.h"
#include "nn/model.h"
#include "nn/model_store.h"

namespace fv::face {

class Landmarker {
 public:
  virtual ~Landmarker() = default;
  virtual std::string name() const = 0;
  virtual Result<Landmarks> locate(const cv::Mat& rgb, const Box& box) = 0;
};

// The 5 points from 68: eye centres = mean of the 4 eyelid points (37,38,40,41 / 43,44,46,47),
// nose tip = 30, mouth corners = mean of outer and inner corner (48,60 / 54,64); 0-based.
FivePoints five_from_68(const std::vector<cv::Point2d>& p68);

class FacepluginLandmarker final : public Landmarker {
 public:
  static constexpr const char* kPackage = "faceplugin-face-recognition-js@0.0.1";
  static constexpr const char* kFile = "model/fr_landmark.onnx";
  static constexpr int kSize = 64;

  static Result<std::unique_ptr<FacepluginLandmarker>> create(const nn::ModelStore& store);
  std::string name() const override { return "faceplugin-lm68"; }
  Result<Landmarks> locate(const cv::Mat& rgb, const Box& box) override;

  // The crop the network sees: the box squared to its height about its centre, clipped to
  // the image, truncated to integers (golden/faceplugin step 2).
  static cv::Rect crop_rect(const Box& box, cv::Size image);
  // 1×1×64×64 float: grey(resize(crop, 64×64)) / 256.
  static cv::Mat input_tensor(const cv::Mat& rgb, const cv::Rect& crop);
  // The network's 136 outputs (x, y in 0..1 of the crop) → points in image pixels.
  static Landmarks from_output(const float* v, const cv::Rect& crop);

 private:
  explicit FacepluginLandmarker(std::unique_ptr<nn::Model> m) : model_(std::move(m)) {}
  std::unique_ptr<nn::Model> model_;
};

}  // namespace fv::face
