// The values that flow through the face pipeline. Coordinates are pixels of the original
// (EXIF-oriented) image.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace fv::face {

struct Box {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  double width() const { return x2 - x1; }
  double height() const { return y2 - y1; }
  double area() const { return width() > 0 && height() > 0 ? width() * height() : 0.0; }
};

double iou(const Box& a, const Box& b);

struct Detection {
  Box box;
  float score = 0;
  // When `box` merges several network views (the pyramid's box voting), the box of the view
  // that scored best. A model fed a crop relative to one detector pass's box (the liveness
  // crop, 2.7× the box) takes this one: its scores move with the crop, and the merged box is
  // not what such a pass gives.
  std::optional<Box> best_view_box = std::nullopt;
  const Box& single_view_box() const { return best_view_box ? *best_view_box : box; }
};

// Left eye, right eye (as seen in the image: left = smaller x), nose tip, left and right mouth corner.
using FivePoints = std::array<cv::Point2d, 5>;

struct Landmarks {
  std::vector<cv::Point2d> points68;  // iBUG-68 order
  FivePoints five{};
};

// A biometric template: an L2-normalised vector and the model that made it. Two templates
// compare only when model_id and version match; similarity is their dot product (cosine).
struct FaceTemplate {
  std::string model_id;
  int model_version = 0;
  std::vector<float> values;
};

// Cosine similarity; -2 when the templates come from different models or dimensions.
double similarity(const FaceTemplate& a, const FaceTemplate& b);

struct Quality {
  double box_height_px = 0;
  double inter_eye_px = 0;
  double sharpness = 0;  // variance of the Laplacian of the aligned grey crop
  double yaw_deg = 0;    // estimated from the 5 points (see quality.h)
  double roll_deg = 0;
  double pitch_ratio = 0;
  bool acceptable = false;                 // passes the enrollment thresholds
  std::vector<std::string> reasons;        // why not, one line each
};

struct Face {
  Detection detection;
  Landmarks landmarks;
  Quality quality;
  std::optional<FaceTemplate> face_template;
};

}  // namespace fv::face
