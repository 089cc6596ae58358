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

// A raw candidate of a detector that looks at an image through several views: tiles at
// several scales (pyramid levels), each tile also mirrored.
struct ViewCandidate {
  Detection detection;
  int tile = 0;    // tiles with the same index are the same pixels (plain and mirrored)
  int scale = 0;   // tiles with the same scale see the image at the same resolution
  bool mirrored = false;
};

struct EvidenceOptions {
  double cluster_iou = 0.4;  // candidates overlapping a cluster's best one by this IoU belong to it
  // A tile's score is the mean of its plain and mirrored passes' best scores (flip test-time
  // augmentation); false: the plain pass's best score only.
  bool average_mirrored = true;
  // A scale's score is its best tile's. A cluster's score is the mean of its best `scales`
  // scale scores (a scale missing counts 0): a face looks like a face at neighbouring
  // resolutions, a hand or a knee that fools one scale rarely fools two.
  int scales = 2;
  // true: the box is the score-weighted mean of the cluster's boxes (box voting); false: the
  // box of its best candidate.
  bool vote_boxes = true;
};

// Groups candidates greedily (best raw score first; a cluster takes every unclaimed candidate
// with IoU >= cluster_iou against its best one) and scores each cluster by the evidence of its
// views as EvidenceOptions describes. Returns every cluster, highest evidence first.
std::vector<Detection> merge_views(std::vector<ViewCandidate> candidates, const EvidenceOptions& options);

}  // namespace fv::face
