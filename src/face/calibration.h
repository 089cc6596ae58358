// Calibration: a similarity score → the false-match rate (FMR) it corresponds to, measured on
// impostor pairs (different people), so users see "1 in 10,000" instead of a bare cosine.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace fv::face {

struct CalibrationPoint {
  double fmr = 0;        // fraction of impostor pairs scoring >= threshold
  double threshold = 0;  // cosine similarity
};

class Calibration {
 public:
  // Points at FMR 10^-1 … 10^-k from impostor scores (k limited by how many scores there are).
  static Calibration from_impostor_scores(std::vector<float> scores, std::string source);
  // The table measured for an embedder model (see docs/models.md for how it was made).
  static Result<Calibration> builtin(const std::string& model_id);

  Calibration() = default;
  Calibration(std::vector<CalibrationPoint> points, std::string source, size_t impostor_pairs);

  // FMR at a score: log-linear interpolation between points. Below the first point it is the
  // first point's FMR or more; above the last it is reported as the last point's FMR (an
  // upper bound: "at most 1 in N").
  double fmr_at(double score) const;
  // The threshold whose FMR is `fmr` (interpolated), for choosing operating points.
  double threshold_at(double fmr) const;
  // False-positive identification rate of a 1:N search against `gallery_size` independent
  // templates: 1 − (1 − FMR)^N.
  double fpir_at(double score, size_t gallery_size) const;

  const std::vector<CalibrationPoint>& points() const { return points_; }
  const std::string& source() const { return source_; }
  size_t impostor_pairs() const { return impostor_pairs_; }

 private:
  std::vector<CalibrationPoint> points_;  // fmr strictly decreasing, threshold increasing
  std::string source_;
  size_t impostor_pairs_ = 0;
};

}  // namespace fv::face
