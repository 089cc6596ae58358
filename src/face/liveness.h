// Liveness: presentation-attack detection (ISO/IEC 30107) for one face of a photo: the
// probability that the face was presented live rather than as a print or a screen. One small
// interface, per-call options; used only by the opt-in check of 1:1 verification, never on
// enrolment photos (docs/models.md, "Model card: liveness").
#pragma once

#include <array>
#include <memory>
#include <string>

#include <opencv2/core.hpp>

#include "common/status.h"
#include "face/types.h"
#include "nn/model.h"
#include "nn/model_store.h"

namespace fv::face {

// P(live) below which a probe is judged an attack, unless configured otherwise
// (VaultConfig::liveness_threshold, `verify --liveness-threshold`): the model's own decision,
// class "live" most probable; not fitted to evidence, which is too thin (docs/models.md).
inline constexpr double kDefaultLivenessThreshold = 0.5;

// The order of the network's three input planes.
enum class ChannelOrder { kRgb, kBgr };

struct LivenessOptions {
  // Measured on the staged attacks and live faces (docs/models.md): BGR separates all four;
  // RGB (what the package feeds) scores the second live face as an attack (0.010).
  ChannelOrder order = ChannelOrder::kBgr;
  // Input values are pixel · value_scale: 1 gives 0..255, the range the package feeds and the
  // one the measurements support.
  float value_scale = 1.0f;
  double crop_scale = 2.7;  // the crop is the detection box scaled by this (MiniFASNet "2.7_")
};

struct LivenessScore {
  double live = 0;                   // P(live) = softmax class 0
  std::array<double, 3> classes{};   // softmax of the three outputs (1 = attack, 2 unused)
  cv::Rect crop;                     // the image region the network saw
};

class LivenessChecker {
 public:
  virtual ~LivenessChecker() = default;
  virtual std::string model_id() const = 0;
  // rgb: CV_8UC3 RGB; box: the face's detection box in pixels of rgb.
  virtual Result<LivenessScore> score(const cv::Mat& rgb, const Box& box, const LivenessOptions& options = {}) = 0;
};

// The region Silent-Face-Anti-Spoofing's CropImage (and the package's alignLivenessImage)
// cuts: the box scaled about its centre by min(scale, (H−1)/h, (W−1)/w), keeping its aspect,
// then shifted (not padded) back inside the image; pixel bounds truncated as Python's int().
// Empty when the box is degenerate or lies outside the image.
cv::Rect liveness_crop_rect(cv::Size image, const Box& box, double scale);

// faceplugin fr_liveness.onnx: a MiniFASNet-style classifier, 1×3×128×128 → 3 logits.
class MiniFasNetLiveness final : public LivenessChecker {
 public:
  static constexpr const char* kPackage = "faceplugin-face-recognition-js@0.0.1";
  static constexpr const char* kFile = "model/fr_liveness.onnx";
  static constexpr int kSize = 128;

  static Result<std::unique_ptr<MiniFasNetLiveness>> create(const nn::ModelStore& store);
  std::string model_id() const override { return "faceplugin-minifasnet-128"; }
  Result<LivenessScore> score(const cv::Mat& rgb, const Box& box, const LivenessOptions& options = {}) override;

 private:
  explicit MiniFasNetLiveness(std::unique_ptr<nn::Model> m) : model_(std::move(m)) {}
  std::unique_ptr<nn::Model> model_;
};

}  // namespace fv::face
