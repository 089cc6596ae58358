#include "face/calibration.h"

#include <algorithm>
#include <cmath>

namespace fv::face {

Calibration::Calibration(std::vector<CalibrationPoint> points, std::string source, size_t impostor_pairs)
    : points_(std::move(points)), source_(std::move(source)), impostor_pairs_(impostor_pairs) {}

Calibration Calibration::from_impostor_scores(std::vector<float> scores, std::string source) {
  std::sort(scores.rbegin(), scores.rend());
  std::vector<CalibrationPoint> pts;
  const size_t n = scores.size();
  // Keep points with at least 10 impostors above them so each FMR is measured, not guessed.
  for (double fmr = 1e-1; n && fmr * n >= 10; fmr /= 10) {
    const size_t k = static_cast<size_t>(std::llround(fmr * n));
    pts.push_back({fmr, scores[k - 1]});
  }
  for (double fmr = 5e-1; n && fmr * n >= 10; fmr /= 10) {
    const size_t k = static_cast<size_t>(std::llround(fmr * n));
    pts.push_back({fmr, scores[k - 1]});
  }
  std::sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.fmr > b.fmr; });
  return Calibration(std::move(pts), std::move(source), n);
}

double Calibration::fmr_at(double score) const {
  if (points_.empty()) return 1.0;
  if (score <= points_.front().threshold) return points_.front().fmr;
  if (score >= points_.back().threshold) return points_.back().fmr;
  for (size_t i = 1; i < points_.size(); ++i) {
    const auto& a = points_[i - 1];
    const auto& b = points_[i];
    if (score <= b.threshold) {
      const double f = (score - a.threshold) / std::max(1e-12, b.threshold - a.threshold);
      return std::exp(std::log(a.fmr) + f * (std::log(b.fmr) - std::log(a.fmr)));
    }
  }
  return points_.back().fmr;
}

double Calibration::threshold_at(double fmr) const {
  if (points_.empty()) return 1.0;
  if (fmr >= points_.front().fmr) return points_.front().threshold;
  if (fmr <= points_.back().fmr) return points_.back().threshold;
  for (size_t i = 1; i < points_.size(); ++i) {
    const auto& a = points_[i - 1];
    const auto& b = points_[i];
    if (fmr >= b.fmr) {
      const double f = (std::log(fmr) - std::log(a.fmr)) / (std::log(b.fmr) - std::log(a.fmr));
      return a.threshold + f * (b.threshold - a.threshold);
    }
  }
  return points_.back().threshold;
}

double Calibration::fpir_at(double score, size_t gallery_size) const {
  return 1.0 - std::pow(1.0 - fmr_at(score), static_cast<double>(gallery_size));
}

}  // namespace fv::face
