#include "face/landmarker.h"

#include <cmath>

#include <opencv2/imgproc.hpp>

namespace fv::face {

FivePoints five_from_68(const std::vector<cv::Point2d>& p) {
  auto mean = [&](std::initializer_list<int> idx) {
    cv::Point2d s(0, 0);
    for (int i : idx) s += p[i];
    return s * (1.0 / idx.size());
  };
  return {mean({37, 38, 40, 41}), mean({43, 44, 46, 47}), p[30], mean({48, 60}), mean({54, 64})};
}

Result<std::unique_ptr<FacepluginLandmarker>> FacepluginLandmarker::create(const nn::ModelStore& store) {
  auto path = store.locate(kPackage, kFile);
  if (!path.is_ok()) return path.status();
  auto model = nn::Model::load_onnx(*path, {1, kSize, kSize}, {"output"});
  if (!model.is_ok()) return model.status();
  return std::unique_ptr<FacepluginLandmarker>(new FacepluginLandmarker(std::move(model).value()));
}

cv::Rect FacepluginLandmarker::crop_rect(const Box& box, cv::Size image) {
  const double s = box.y2 - box.y1;
  const double cx = (box.x1 + box.x2) / 2, cy = (box.y1 + box.y2) / 2;
  const double x1 = std::max(0.0, cx - s / 2), y1 = std::max(0.0, cy - s / 2);
  const double x2 = std::min(image.width - 1.0, cx + s / 2), y2 = std::min(image.height - 1.0, cy + s / 2);
  // The box comes from a network: it can hold any float (huge, inf, NaN), and converting such
  // a value to int is undefined behaviour. No crop then (found by fuzz/face_post_fuzzer).
  constexpr double kLimit = 1 << 30;
  for (double v : {x1, y1, x2, y2})
    if (!(std::fabs(v) < kLimit)) return {};
  const int X = static_cast<int>(std::trunc(x1)), Y = static_cast<int>(std::trunc(y1));
  const int w = std::abs(static_cast<int>(std::trunc(x2)) - X), h = std::abs(static_cast<int>(std::trunc(y2)) - Y);
  return {X, Y, w, h};
}

cv::Mat FacepluginLandmarker::input_tensor(const cv::Mat& rgb, const cv::Rect& crop) {
  cv::Mat resized, grey;
  cv::resize(rgb(crop), resized, cv::Size(kSize, kSize), 0, 0, cv::INTER_LINEAR);
  cv::cvtColor(resized, grey, cv::COLOR_RGB2GRAY);
  int dims[4] = {1, 1, kSize, kSize};
  cv::Mat blob(4, dims, CV_32F);
  float* out = blob.ptr<float>();
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x) out[y * kSize + x] = grey.at<uint8_t>(y, x) / 256.0f;
  return blob;
}

Result<Landmarks> FacepluginLandmarker::locate(const cv::Mat& rgb, const Box& box) {
  const cv::Rect crop = crop_rect(box, rgb.size());
  if (crop.width < 2 || crop.height < 2 || (crop & cv::Rect(0, 0, rgb.cols, rgb.rows)) != crop) {
    return invalid_argument("face box too small or outside the image for landmarks");
  }
  auto out = model_->forward(input_tensor(rgb, crop));
  if (!out.is_ok()) return out.status();
  return from_output((*out)[0].ptr<float>(), crop);
}

Landmarks FacepluginLandmarker::from_output(const float* v, const cv::Rect& crop) {
  Landmarks lm;
  lm.points68.resize(68);
  for (int i = 0; i < 68; ++i) lm.points68[i] = {v[2 * i] * crop.width + crop.x, v[2 * i + 1] * crop.height + crop.y};
  lm.five = five_from_68(lm.points68);
  return lm;
}

}  // namespace fv::face
