// Embedder: aligned face → FaceTemplate. Each embedder owns its alignment (template and
// crop size), because that is part of what its weights were trained on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "common/status.h"
#include "face/types.h"
#include "nn/model.h"
#include "nn/model_store.h"

namespace fv::face {

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::string model_id() const = 0;
  virtual int model_version() const = 0;
  virtual int dim() const = 0;
  // The crop this embedder expects (RGB u8), from the image and the face's landmarks.
  virtual cv::Mat align(const cv::Mat& rgb, const Landmarks& landmarks) const = 0;
  // Templates for a batch of crops made by align(); L2-normalised.
  virtual Result<std::vector<FaceTemplate>> embed(const std::vector<cv::Mat>& aligned) = 0;
};

// faceplugin fr_feature.onnx: MobileFaceNet, 512-D, 112×112 ArcFace alignment, BGR input
// normalised (x − 127)/128. LFW View-2 99.45 % with this alignment (peers/REPORT.md).
class MobileFaceNetEmbedder final : public Embedder {
 public:
  static constexpr const char* kPackage = "faceplugin-face-recognition-js@0.0.1";
  static constexpr const char* kFile = "model/fr_feature.onnx";
  static constexpr int kSize = 112;

  static Result<std::unique_ptr<MobileFaceNetEmbedder>> create(const nn::ModelStore& store);
  std::string model_id() const override { return "faceplugin-mobilefacenet-512"; }
  int model_version() const override { return 1; }
  int dim() const override { return 512; }
  cv::Mat align(const cv::Mat& rgb, const Landmarks& landmarks) const override;
  Result<std::vector<FaceTemplate>> embed(const std::vector<cv::Mat>& aligned) override;

  // Raw network output (not normalised) for a batch N×3×112×112 BGR tensor (golden tests).
  Result<cv::Mat> forward_raw(const cv::Mat& blob);
  // aligned RGB u8 112×112 → BGR (x − 127)/128 into batch slot i.
  static void fill_input(const cv::Mat& aligned_rgb, cv::Mat& blob, int i);
  size_t flushed_denormals() const { return model_->flushed_denormals(); }

 private:
  explicit MobileFaceNetEmbedder(std::unique_ptr<nn::Model> m) : model_(std::move(m)) {}
  std::unique_ptr<nn::Model> model_;
};

void l2_normalise(std::vector<float>& v);

}  // namespace fv::face
