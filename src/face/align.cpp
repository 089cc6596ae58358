#include "face/align.h"

#include <opencv2/imgproc.hpp>

namespace fv::face {

const FivePoints kArcFace112 = {cv::Point2d(38.2946, 51.6963), cv::Point2d(73.5318, 51.5014),
                                cv::Point2d(56.0252, 71.7366), cv::Point2d(41.5493, 92.3655),
                                cv::Point2d(70.7299, 92.2041)};

cv::Matx23d similarity_transform(std::span<const cv::Point2d> src, std::span<const cv::Point2d> dst) {
  cv::Point2d ms(0, 0), md(0, 0);
  for (size_t i = 0; i < src.size(); ++i) { ms += src[i]; md += dst[i]; }
  ms *= 1.0 / src.size();
  md *= 1.0 / dst.size();
  double num_a = 0, num_b = 0, den = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const cv::Point2d s = src[i] - ms, d = dst[i] - md;
    num_a += s.x * d.x + s.y * d.y;
    num_b += s.x * d.y - s.y * d.x;
    den += s.x * s.x + s.y * s.y;
  }
  if (den <= 0) return cv::Matx23d(1, 0, md.x - ms.x, 0, 1, md.y - ms.y);
  const double a = num_a / den, b = num_b / den;
  return cv::Matx23d(a, -b, md.x - (a * ms.x - b * ms.y),
                     b, a, md.y - (b * ms.x + a * ms.y));
}

cv::Mat warp_crop(const cv::Mat& rgb, const cv::Matx23d& M, int size) {
  cv::Mat out;
  cv::warpAffine(rgb, out, cv::Mat(M), cv::Size(size, size), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
  return out;
}

}  // namespace fv::face
