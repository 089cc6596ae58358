// Quality: is this face good enough to enroll? Size, sharpness and pose, each with a
// threshold and a human-readable reason when it fails. Thresholds and their rationale are
// documented in docs/quality.md.
#pragma once

#include <opencv2/core.hpp>

#include "face/types.h"

namespace fv::face {

struct QualityThresholds {
  double min_inter_eye_px = 24;  // below this the 112 px crop is an upscale: detail is invented
  double min_sharpness = 30;     // variance of the Laplacian of the 112×112 grey crop
  double max_abs_yaw_deg = 40;
  double max_abs_roll_deg = 35;
  double min_pitch_ratio = 0.2, max_pitch_ratio = 0.82;  // nose between eye and mouth lines
};

// Pose is estimated from the 5 points: roll from the eye line; yaw from how far the nose tip
// sits off the eyes' midline once roll is removed (atan(offset / (0.6 · eye distance)), the
// nose tip standing ~0.6 eye distances in front of the eyes); pitch as the nose's relative
// height between the eye line (0) and the mouth line (1), frontal ≈ 0.5.
Quality assess_quality(const Detection& det, const Landmarks& lm, const cv::Mat& aligned_rgb,
                       const QualityThresholds& t = {});

}  // namespace fv::face
