#include "face/quality.h"

#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

namespace fv::face {
namespace {

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

}  // namespace

Quality assess_quality(const Detection& det, const Landmarks& lm, const cv::Mat& aligned_rgb,
                       const QualityThresholds& t) {
  Quality q;
  const auto& p = lm.five;
  q.box_height_px = det.box.height();
  const cv::Point2d eye_vec = p[1] - p[0];
  q.inter_eye_px = std::hypot(eye_vec.x, eye_vec.y);
  q.roll_deg = std::atan2(eye_vec.y, eye_vec.x) * 180.0 / CV_PI;
  if (q.inter_eye_px > 0) {
    // Rotate into the eye-line frame so roll does not read as yaw or pitch.
    const cv::Point2d ux = eye_vec * (1.0 / q.inter_eye_px), uy(-ux.y, ux.x);
    const cv::Point2d eye_mid = (p[0] + p[1]) * 0.5, mouth_mid = (p[3] + p[4]) * 0.5;
    const cv::Point2d nose = p[2] - eye_mid, mouth = mouth_mid - eye_mid;
    q.yaw_deg = std::atan((nose.dot(ux) - mouth.dot(ux) * nose.dot(uy) / std::max(1e-9, mouth.dot(uy))) /
                          (0.6 * q.inter_eye_px)) * 180.0 / CV_PI;
    q.pitch_ratio = mouth.dot(uy) > 0 ? nose.dot(uy) / mouth.dot(uy) : 0;
  }
  if (!aligned_rgb.empty()) {
    cv::Mat grey, lap;
    cv::cvtColor(aligned_rgb, grey, cv::COLOR_RGB2GRAY);
    cv::Laplacian(grey, lap, CV_64F);
    cv::Scalar mean, stddev;
    cv::meanStdDev(lap, mean, stddev);
    q.sharpness = stddev[0] * stddev[0];
  }
  if (q.inter_eye_px < t.min_inter_eye_px)
    q.reasons.push_back(fmt("face too small: %.0f px between the eyes, need %.0f", q.inter_eye_px, t.min_inter_eye_px));
  if (q.sharpness < t.min_sharpness)
    q.reasons.push_back(fmt("face too blurred: sharpness %.0f, need %.0f", q.sharpness, t.min_sharpness));
  if (std::fabs(q.yaw_deg) > t.max_abs_yaw_deg)
    q.reasons.push_back(fmt("head turned too far: yaw %.0f°, limit %.0f°", q.yaw_deg, t.max_abs_yaw_deg));
  if (std::fabs(q.roll_deg) > t.max_abs_roll_deg)
    q.reasons.push_back(fmt("head tilted too far: roll %.0f°, limit %.0f°", q.roll_deg, t.max_abs_roll_deg));
  if (q.pitch_ratio < t.min_pitch_ratio || q.pitch_ratio > t.max_pitch_ratio)
    q.reasons.push_back(fmt("head tipped up or down: nose at %.2f of eye-to-mouth, limit %.2f", q.pitch_ratio,
                            q.pitch_ratio < t.min_pitch_ratio ? t.min_pitch_ratio : t.max_pitch_ratio));
  q.acceptable = q.reasons.empty();
  return q;
}

}  // namespace fv::face
