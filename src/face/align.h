// Alignment: a least-squares similarity (rotation, uniform scale, translation; Umeyama,
// no reflection) from the 5 landmarks onto a model's template, then one warpAffine.
// Never a 3-point affine: it lets the shear of a noisy point distort the face (−9.5 points
// of LFW accuracy in the faceplugin package).
#pragma once

#include <span>

#include <opencv2/core.hpp>

#include "face/types.h"

namespace fv::face {

// ArcFace / InsightFace 112×112 template (left eye, right eye, nose, left mouth, right mouth).
extern const FivePoints kArcFace112;

// 2×3 matrix mapping `src` points onto `dst` (same count) in the least-squares sense. The one
// fit of the project: the 5-point alignment here and dlib's 68-point chip use it alike.
// Coincident `src` points give the translation between the centroids.
cv::Matx23d similarity_transform(std::span<const cv::Point2d> src, std::span<const cv::Point2d> dst);

// Warp rgb with M into a size×size crop (bilinear, zero border).
cv::Mat warp_crop(const cv::Mat& rgb, const cv::Matx23d& M, int size);

}  // namespace fv::face
