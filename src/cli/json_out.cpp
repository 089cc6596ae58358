#include "cli/json_out.h"

#include <cmath>

namespace fv::cli {
namespace {

// Rounds to a decimal step given as its inverse, e.g. 100 → 0.01 (v·k then ÷k, so the result
// is the double nearest the decimal and prints without binary noise).
double round_to(double v, double inverse_step) { return std::round(v * inverse_step) / inverse_step; }

}  // namespace

nlohmann::ordered_json quality_json(const face::Quality& q) {
  return {{"acceptable", q.acceptable},
          {"reasons", q.reasons},
          {"box_height_px", round_to(q.box_height_px, 10)},
          {"inter_eye_px", round_to(q.inter_eye_px, 10)},
          {"sharpness", round_to(q.sharpness, 10)},
          {"yaw_deg", round_to(q.yaw_deg, 10)},
          {"roll_deg", round_to(q.roll_deg, 10)},
          {"pitch_ratio", round_to(q.pitch_ratio, 1000)}};
}

nlohmann::ordered_json face_json(const face::Face& f, bool with_template) {
  const auto& b = f.detection.box;
  nlohmann::ordered_json kp = nlohmann::ordered_json::array();
  for (const auto& p : f.landmarks.five) kp.push_back({round_to(p.x, 100), round_to(p.y, 100)});
  nlohmann::ordered_json j = {{"box", {round_to(b.x1, 100), round_to(b.y1, 100), round_to(b.width(), 100), round_to(b.height(), 100)}},
                      {"score", round_to(f.detection.score, 1e5)},
                      {"keypoints", kp},
                      {"quality", quality_json(f.quality)}};
  if (with_template && f.face_template) {
    j["model"] = f.face_template->model_id;
    j["template"] = f.face_template->values;
  }
  return j;
}

nlohmann::ordered_json image_result_json(const ImageResult& r, bool with_template) {
  if (!r.status.is_ok()) return {{"file", r.file}, {"error", r.status.to_string()}};
  nlohmann::ordered_json faces = nlohmann::ordered_json::array();
  for (const auto& f : r.faces) faces.push_back(face_json(f, with_template));
  return {{"file", r.file}, {"width", r.width}, {"height", r.height}, {"faces", faces}};
}

nlohmann::ordered_json verification_json(const eval::VerificationReport& r) {
  nlohmann::ordered_json roc = nlohmann::ordered_json::array();
  for (const auto& p : r.roc) roc.push_back({{"far", p.far}, {"tar", p.tar}, {"threshold", p.threshold}});
  return {{"pairs", r.pairs}, {"missing", r.missing}, {"folds", r.folds}, {"threshold", r.threshold},
          {"accuracy", r.accuracy}, {"accuracy_std", r.accuracy_std}, {"tar_at_far_1e-3", r.tar_at_far_1e3},
          {"auc", r.auc}, {"roc", roc}};
}

}  // namespace fv::cli
