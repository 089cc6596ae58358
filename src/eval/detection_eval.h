// Detection evaluation on WIDER FACE-format ground truth: recall and false positives at
// IoU 0.5, by face size, and average precision.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::eval {

struct GtBox {
  double x = 0, y = 0, w = 0, h = 0;
  bool invalid = false;
};

struct GtImage {
  std::string name;  // relative path, e.g. "20--Family_Group/20_Family_Group_Family_Group_20_1026.jpg"
  std::vector<GtBox> faces;
};

// The WIDER format: a name line, a count line, then one line per face
// "x y w h blur expression illumination invalid occlusion pose" (a count of 0 has one dummy line).
Result<std::vector<GtImage>> read_wider_gt(const std::filesystem::path& path);

struct PredBox {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  double score = 0;
};

struct SizeBucket {
  std::string label;  // e.g. "32-64"
  double min_h = 0, max_h = 0;
  size_t faces = 0, found = 0;
};

struct DetectionReport {
  size_t images = 0;
  size_t faces_evaluated = 0;  // valid faces at least min_height tall
  size_t found = 0;            // of those, matched at IoU >= 0.5
  double recall = 0;
  size_t false_positives = 0;  // detections with IoU < fp_iou against every annotated face
  double fp_per_image = 0;
  double average_precision = 0;  // over the evaluated faces; other annotated faces are ignored
  std::vector<SizeBucket> buckets;  // recall of all valid faces by height
};

// `predictions[i]` belongs to `gt[i]`. Faces shorter than min_height or marked invalid are
// "don't care": a detection on them is neither a hit nor a false positive.
DetectionReport evaluate_detections(const std::vector<GtImage>& gt, const std::vector<std::vector<PredBox>>& predictions,
                                    double min_height = 32, double match_iou = 0.5, double fp_iou = 0.3);

}  // namespace fv::eval
