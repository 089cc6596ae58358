// Alignment: a least-squares similarity (rotation, uniform scale, translation; Umeyama,
// no reflection) from the 5 landmarks onto a model's template, then one warpAffine.
// Never a 3-point affine: it lets the shear of a noisy point distort the face (−9.5 points
// of LFW accuracy in the faceplugin package).
#pragma once

#include <opencv2/core.hpp>

#include "face/types.h"

namespace fv::face {

// ArcFace / InsightFace 112×112 template (left eye, right eye, nose, left mouth, right mouth).
extern const FivePoints kArcFace112;

// 2×3 matrix mapping image points onto `dst` in the least-squares sense.
cv::Matx23d similarity_transform(const FivePoints& src, const FivePoints& dst);

// Warp rgb with M into a size×size crop (bilinear, zero border).
cv::Mat warp_crop(const cv::Mat& rgb, const cv::Matx23d& M, int size);

}  // namespace fv::face
