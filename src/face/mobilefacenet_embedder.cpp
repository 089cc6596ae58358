#include <cmath>

#include "face/align.h"
#include "face/embedder.h"

namespace fv::face {

void l2_normalise(std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  const double n = std::sqrt(s);
  if (n > 0) for (float& x : v) x = static_cast<float>(x / n);
}

Result<std::vector<FaceTemplate>> Embedder::embed_faces(const cv::Mat& rgb, const std::vector<Landmarks>& faces,
                                                         const std::vector<cv::Mat>* crops) {
  if (crops && crops->size() == faces.size()) return embed(*crops);
  std::vector<cv::Mat> made;
  for (const auto& f : faces) made.push_back(align(rgb, f));
  return embed(made);
}

Result<std::unique_ptr<MobileFaceNetEmbedder>> MobileFaceNetEmbedder::create(const nn::ModelStore& store) {
  auto path = store.locate(kPackage, kFile);
  if (!path.is_ok()) return path.status();
  auto model = nn::Model::load_onnx(*path, {3, kSize, kSize}, {"output"});
  if (!model.is_ok()) return model.status();
  return std::unique_ptr<MobileFaceNetEmbedder>(new MobileFaceNetEmbedder(std::move(model).value()));
}

cv::Mat MobileFaceNetEmbedder::crop(const cv::Mat& rgb, const Landmarks& landmarks) {
  return warp_crop(rgb, similarity_transform(landmarks.five, kArcFace112), kSize);
}

void MobileFaceNetEmbedder::fill_input(const cv::Mat& aligned_rgb, cv::Mat& blob, int i) {
  const int plane = kSize * kSize;
  float* base = blob.ptr<float>(i);
  for (int y = 0; y < kSize; ++y) {
    const uint8_t* row = aligned_rgb.ptr<uint8_t>(y);
    for (int x = 0; x < kSize; ++x) {
      // Channel 0 of the network is blue: the weights were trained on OpenCV's BGR images.
      for (int c = 0; c < 3; ++c) base[c * plane + y * kSize + x] = (float(row[3 * x + (2 - c)]) - 127.0f) / 128.0f;
    }
  }
}

Result<cv::Mat> MobileFaceNetEmbedder::forward_raw(const cv::Mat& blob) {
  auto out = model_->forward(blob);
  if (!out.is_ok()) return out.status();
  return (*out)[0];
}

Result<std::vector<FaceTemplate>> MobileFaceNetEmbedder::embed(const std::vector<cv::Mat>& aligned) {
  return embed_crops(*model_, aligned, kSize, &fill_input, *this);
}

Result<std::vector<FaceTemplate>> embed_crops(nn::Model& model, const std::vector<cv::Mat>& crops, int size, FillInput fill,
                                              const Embedder& who) {
  std::vector<FaceTemplate> out;
  if (crops.empty()) return out;
  int dims[4] = {static_cast<int>(crops.size()), 3, size, size};
  cv::Mat blob(4, dims, CV_32F);
  for (size_t i = 0; i < crops.size(); ++i) {
    if (crops[i].rows != size || crops[i].cols != size || crops[i].type() != CV_8UC3)
      return invalid_argument(who.model_id() + ": input must be " + std::to_string(size) + "×" + std::to_string(size) +
                              " RGB8 crops from align()");
    fill(crops[i], blob, static_cast<int>(i));
  }
  auto raw = model.forward(blob);
  if (!raw.is_ok()) return raw.status();
  const cv::Mat m = (*raw)[0].reshape(1, static_cast<int>(crops.size()));
  for (int i = 0; i < m.rows; ++i) {
    FaceTemplate t{who.model_id(), who.model_version(), std::vector<float>(m.ptr<float>(i), m.ptr<float>(i) + m.cols)};
    if (static_cast<int>(t.values.size()) != who.dim()) return internal_error(who.model_id() + " produced an unexpected dimension");
    l2_normalise(t.values);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace fv::face
