#include "face/liveness.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace fv::face {

cv::Rect liveness_crop_rect(cv::Size image, const Box& box, double scale_wanted) {
  const double src_w = image.width, src_h = image.height;
  const double w = box.width(), h = box.height();
  if (!(w > 0) || !(h > 0) || src_w < 2 || src_h < 2 || !std::isfinite(w + h + box.x1 + box.y1)) return {};
  // Never larger than the image: the crop keeps the face at the scale the model was trained on
  // as far as the image allows, and is shifted inside rather than padded with black.
  const double scale = std::min({(src_h - 1) / h, (src_w - 1) / w, scale_wanted});
  const double nw = w * scale, nh = h * scale;
  const double cx = box.x1 + w / 2, cy = box.y1 + h / 2;
  double x1 = cx - nw / 2, y1 = cy - nh / 2, x2 = cx + nw / 2, y2 = cy + nh / 2;
  if (x1 < 0) { x2 -= x1; x1 = 0; }
  if (y1 < 0) { y2 -= y1; y1 = 0; }
  if (x2 > src_w - 1) { x1 -= x2 - src_w + 1; x2 = src_w - 1; }
  if (y2 > src_h - 1) { y1 -= y2 - src_h + 1; y2 = src_h - 1; }
  // org_img[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1] in the original code.
  const int ix1 = std::max(0, static_cast<int>(x1)), iy1 = std::max(0, static_cast<int>(y1));
  const int ix2 = std::min(image.width - 1, static_cast<int>(x2)), iy2 = std::min(image.height - 1, static_cast<int>(y2));
  if (ix2 < ix1 || iy2 < iy1) return {};
  return {ix1, iy1, ix2 - ix1 + 1, iy2 - iy1 + 1};
}

Result<std::unique_ptr<MiniFasNetLiveness>> MiniFasNetLiveness::create(const nn::ModelStore& store) {
  auto path = store.locate(kPackage, kFile);
  if (!path.is_ok()) return path.status();
  auto model = nn::Model::load_onnx(*path, {3, kSize, kSize}, {"output"});
  if (!model.is_ok()) return model.status();
  return std::unique_ptr<MiniFasNetLiveness>(new MiniFasNetLiveness(std::move(model).value()));
}

Result<LivenessScore> MiniFasNetLiveness::score(const cv::Mat& rgb, const Box& box, const LivenessOptions& options) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return invalid_argument("liveness: image must be 8-bit RGB");
  if (!(options.crop_scale > 0) || !(options.value_scale > 0)) return invalid_argument("liveness: bad options");
  LivenessScore s;
  s.crop = liveness_crop_rect(rgb.size(), box, options.crop_scale);
  if (s.crop.empty()) return invalid_argument("liveness: the face box lies outside the image");
  cv::Mat resized;
  cv::resize(rgb(s.crop), resized, cv::Size(kSize, kSize), 0, 0, cv::INTER_LINEAR);  // cv2.resize's default
  cv::Mat blob(std::vector<int>{1, 3, kSize, kSize}, CV_32F);
  float* base = blob.ptr<float>(0);
  const int plane = kSize * kSize;
  const bool bgr = options.order == ChannelOrder::kBgr;
  for (int y = 0; y < kSize; ++y) {
    const uint8_t* row = resized.ptr<uint8_t>(y);
    for (int x = 0; x < kSize; ++x) {
      for (int c = 0; c < 3; ++c) {
        base[c * plane + y * kSize + x] = float(row[3 * x + (bgr ? 2 - c : c)]) * options.value_scale;
      }
    }
  }
  auto out = model_->forward(blob);
  if (!out.is_ok()) return out.status();
  const cv::Mat& logits = (*out)[0];
  if (logits.total() != 3) return internal_error("liveness: expected 3 outputs, got " + std::to_string(logits.total()));
  const float* l = logits.ptr<float>();
  const double m = std::max({l[0], l[1], l[2]});
  double sum = 0;
  for (int i = 0; i < 3; ++i) sum += (s.classes[i] = std::exp(double(l[i]) - m));
  for (double& p : s.classes) p /= sum;
  s.live = s.classes[0];
  return s;
}

}  // namespace fv::face
