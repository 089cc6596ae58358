// Detector: image → face boxes with scores. One small interface, several implementations.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "common/status.h"
#include "face/types.h"

namespace fv::face {

class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string name() const = 0;
  // rgb: CV_8UC3 RGB. Boxes in pixels of rgb, highest score first, after NMS.
  virtual Result<std::vector<Detection>> detect(const cv::Mat& rgb) = 0;
};

// Greedy NMS in descending score order (ties: earlier index first); a box is kept when its
// IoU with every kept box is below iou_threshold. Returns the kept detections, best first.
std::vector<Detection> nms(std::vector<Detection> dets, double iou_threshold, size_t top_k = 0);

}  // namespace fv::face
