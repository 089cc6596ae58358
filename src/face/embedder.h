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
  // Templates for faces of one image. `crops`, when given, are this embedder's align() of
  // each face (the pipeline already made them for quality). The default embeds the crops in
  // one batch; an embedder that needs more than one crop per face (fusion) overrides it.
  virtual Result<std::vector<FaceTemplate>> embed_faces(const cv::Mat& rgb, const std::vector<Landmarks>& faces,
                                                        const std::vector<cv::Mat>* crops = nullptr);
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
  cv::Mat align(const cv::Mat& rgb, const Landmarks& landmarks) const override { return crop(rgb, landmarks); }
  // align() without a loaded model (fuzzing).
  static cv::Mat crop(const cv::Mat& rgb, const Landmarks& landmarks);
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

// The batch step every single-network embedder shares: checks each crop is size×size RGB8,
// fills one N×3×size×size tensor with `fill`, runs `model` and L2-normalises each row.
using FillInput = void (*)(const cv::Mat& crop, cv::Mat& blob, int slot);
Result<std::vector<FaceTemplate>> embed_crops(nn::Model& model, const std::vector<cv::Mat>& crops, int size, FillInput fill,
                                              const Embedder& who);

// FusionEmbedder: MobileFaceNet (512-D) and the dlib ResNet (128-D) in one template,
// [m, √w·d] / √(1+w) with m, d unit vectors, so one cosine compares two fused templates:
// cos = (m₁·m₂ + w·d₁·d₂) / (1 + w). A named model choice, never a hidden default.
class FusionEmbedder final : public Embedder {
 public:
  FusionEmbedder(std::unique_ptr<Embedder> a, std::unique_ptr<Embedder> b, double weight_b);
  // The model id of a fusion of models `a` and `b` (the weight is part of it: templates fused
  // with different weights never compare).
  static std::string id_for(const std::string& a, const std::string& b, double weight_b);
  std::string model_id() const override { return model_id_; }
  int model_version() const override { return 1; }
  int dim() const override { return a_->dim() + b_->dim(); }
  // The first model's crop (what quality is measured on).
  cv::Mat align(const cv::Mat& rgb, const Landmarks& landmarks) const override { return a_->align(rgb, landmarks); }
  Result<std::vector<FaceTemplate>> embed(const std::vector<cv::Mat>& aligned) override;
  Result<std::vector<FaceTemplate>> embed_faces(const cv::Mat& rgb, const std::vector<Landmarks>& faces,
                                                const std::vector<cv::Mat>* crops = nullptr) override;

 private:
  std::unique_ptr<Embedder> a_, b_;
  double weight_b_;
  std::string model_id_;
};

// FlipAveragedEmbedder: the template of a crop and of its mirror image, summed and
// L2-normalised (test-time augmentation; the ArcFace 112 template is left-right symmetric, so
// the mirrored crop is still an aligned face). Costs two network passes per face; the model id
// says so, because flip-averaged templates do not compare with the inner model's.
class FlipAveragedEmbedder final : public Embedder {
 public:
  explicit FlipAveragedEmbedder(std::unique_ptr<Embedder> inner)
      : inner_(std::move(inner)), model_id_(id_for(inner_->model_id())) {}
  static std::string id_for(const std::string& inner) { return inner + "+flip"; }
  std::string model_id() const override { return model_id_; }
  int model_version() const override { return inner_->model_version(); }
  int dim() const override { return inner_->dim(); }
  cv::Mat align(const cv::Mat& rgb, const Landmarks& landmarks) const override { return inner_->align(rgb, landmarks); }
  Result<std::vector<FaceTemplate>> embed(const std::vector<cv::Mat>& aligned) override;

 private:
  std::unique_ptr<Embedder> inner_;
  std::string model_id_;
};

}  // namespace fv::face
