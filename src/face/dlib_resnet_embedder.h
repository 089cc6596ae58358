// DlibResNetEmbedder: dlib's face recognition ResNet (29 conv layers, 128-D) with the
// uint8-quantised weights face-api.js ships (@vladmandic/face-api, face_recognition_model).
// The graph is built here as a cv::dnn::Net from the TF.js weights manifest, following
// face-api's FaceRecognitionNet; each conv's scale layer is folded into its weights.
// Alignment is dlib's face chip: 150×150, padding 0.25, similarity fit of 40 landmarks onto
// dlib's mean face.
#pragma once

#include <memory>

#include "face/embedder.h"
#include "nn/tfjs_weights.h"

namespace fv::face {

// Chip pixel → image point affine (2×3) of dlib's get_face_chip_details(…, size, padding).
cv::Matx23d dlib_chip_transform(const std::vector<cv::Point2d>& points68, int size = 150, double padding = 0.25);

class DlibResNetEmbedder final : public Embedder {
 public:
  static constexpr const char* kPackage = "@vladmandic/face-api@1.7.15";
  static constexpr const char* kManifest = "model/face_recognition_model-weights_manifest.json";
  static constexpr const char* kShard = "model/face_recognition_model.bin";
  static constexpr int kSize = 150;

  static Result<std::unique_ptr<DlibResNetEmbedder>> create(const nn::ModelStore& store);
  // From already-loaded weights (tests, fuzzing of the loader).
  static Result<std::unique_ptr<DlibResNetEmbedder>> from_weights(const nn::TfjsWeights& w);

  std::string model_id() const override { return "faceapi-dlib-resnet-128"; }
  int model_version() const override { return 1; }
  int dim() const override { return 128; }
  cv::Mat align(const cv::Mat& rgb, const Landmarks& landmarks) const override;
  // align() without a loaded model (fuzzing).
  static cv::Mat chip(const cv::Mat& rgb, const Landmarks& landmarks);
  Result<std::vector<FaceTemplate>> embed(const std::vector<cv::Mat>& aligned) override;

  // Raw (not normalised) descriptors for an N×3×150×150 input (golden tests).
  Result<cv::Mat> forward_raw(const cv::Mat& blob);
  // RGB u8 150×150 chip → (x − mean_rgb)/255 into batch slot i.
  static void fill_input(const cv::Mat& chip_rgb, cv::Mat& blob, int i);

 private:
  DlibResNetEmbedder() = default;
  std::unique_ptr<nn::Model> model_;
};

}  // namespace fv::face
