#include "face/calibration.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace fv::face {

Calibration::Calibration(std::vector<CalibrationPoint> points, std::string source, size_t impostor_pairs)
    : points_(std::move(points)), source_(std::move(source)), impostor_pairs_(impostor_pairs) {}

Calibration Calibration::from_impostor_scores(std::vector<float> scores, std::string source) {
  std::sort(scores.rbegin(), scores.rend());
  std::vector<CalibrationPoint> pts;
  const size_t n = scores.size();
  // Points near 10^-k and 5·10^-(k+1), each keeping at least 10 impostors above it so the
  // FMR is measured, not extrapolated. A point's FMR is the fraction of impostors actually
  // scoring >= its threshold: with tied scores the threshold moves just above the tie, so the
  // table never understates the FMR at a threshold.
  auto at_least = [&](double t) {  // scores are sorted descending
    return static_cast<size_t>(std::upper_bound(scores.begin(), scores.end(), t, std::greater<double>()) - scores.begin());
  };
  // Every impostor scores at least the lowest score: the FMR-1 anchor.
  if (n >= 10) pts.push_back({1.0, scores.back()});
  for (int k = 0; n; ++k) {
    bool any = false;
    for (double nominal : {5 * std::pow(10.0, -k - 1), std::pow(10.0, -k - 1)}) {
      if (nominal * n < 10) continue;
      any = true;
      const size_t idx = static_cast<size_t>(std::llround(nominal * n));
      double t = scores[idx - 1];
      if (idx < n && scores[idx] == t) t = std::nextafter(static_cast<float>(t), 2.0f);
      const size_t count = at_least(t);
      if (count == 0) continue;
      const double fmr = double(count) / n;
      if (!pts.empty() && (pts.back().fmr <= fmr || pts.back().threshold >= t)) continue;
      pts.push_back({fmr, t});
    }
    if (!any) break;
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
