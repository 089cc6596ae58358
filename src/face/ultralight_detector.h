// UltraLightDetector: Linzaer's Ultra-Light-Fast-Generic-Face-Detector RFB-320 (fr_detect.onnx).
// The network has a fixed 320×240 input with its priors baked in, so a face must be at least
// ~10 px tall *in that input* to be found. A 20 px face in a 1920×1080 photo is 4 px after a
// whole-frame resize. We therefore run an image pyramid of tiles: at level t a tile covers
// 320t×240t image pixels (t = min_face/16 · level_step^k, level_step 2 by default), tiles
// overlap by 25 % so every face that the level is responsible for lies wholly inside one tile,
// and the whole frame is run as well.
// Candidates of all tiles (and their mirrored passes) are merged by face, scored by the
// evidence of several views and scales, and their boxes averaged (merge_views in detector.h).
// A small image (LFW 250×250) gets one letterboxed pass instead, scored as the reference does.
#pragma once

#include <memory>

#include "face/detector.h"
#include "nn/model.h"
#include "nn/model_store.h"

namespace fv::face {

struct UltraLightOptions {
  float score_threshold = 0.65f;       // one whole-frame pass: the reference pipeline's threshold
  // The pyramid sees every background patch in many tiles at several scales, and one view's
  // confident mistake (a hand, a knee, a pattern) is its typical false positive. So a pyramid
  // face is scored by the evidence of several views, not by its best candidate: a tile's score
  // is the mean of its plain and mirrored passes, a scale's score is its best tile's (the
  // whole-frame pass is a scale of its own), and a face's score is the mean of its best
  // `evidence_scales` scales. The face is kept when that mean probability is 0.6 or more: even
  // odds (0.5) let a sleeve through in a plain two-person photo. docs/models.md has the
  // measurements of each mechanism and threshold.
  float pyramid_score_threshold = 0.6f;
  int evidence_scales = 2;
  bool flip_tta = true;     // run every pyramid tile mirrored as well (twice the network time)
  bool box_voting = true;   // a pyramid face's box is the score-weighted mean of its candidates' boxes
  // Pyramid candidates below this raw score are not collected: they bound the clustering work
  // (lower floors measured no better, docs/models.md).
  float candidate_score = 0.3f;
  double nms_iou = 0.4;
  size_t top_k = 750;
  bool tiling = true;             // false: one whole-frame pass, exactly the reference pipeline
  double min_face = 20;           // smallest face height (image px) the pyramid looks for
  double tile_overlap = 0.25;
  // Each pyramid level's tiles are this many times as wide and tall as the level below's
  // (1.1 to 4; anything else means 2).
  double level_step = 2.0;
  // A finer pyramid level can see a chin or an eye region of a large face as a small face.
  // Such a box lies mostly inside the large face's box: drop a box when this fraction of it is
  // covered by a larger detection that scores at least as high.
  double containment = 0.6;
  int batch = 1;  // tiles per forward(): the graph reshapes its priors for batch 1 only
};

struct Tile {
  cv::Rect rect;       // image region; may extend past the image (zero padding)
  bool stretch = false;  // whole frame resized to 320×240 ignoring aspect (the reference pass)
  double level = 0;      // t: image pixels per input pixel
};

// Drops each detection whose area is covered to at least `containment` by a larger one with
// a score at least as high.
std::vector<Detection> drop_contained(std::vector<Detection> dets, double containment);

// The tiles UltraLightDetector::detect() runs for an image of this size (no network needed).
std::vector<Tile> plan_tiles(cv::Size image, const UltraLightOptions& options);

class UltraLightDetector final : public Detector {
 public:
  static constexpr const char* kPackage = "faceplugin-face-recognition-js@0.0.1";
  static constexpr const char* kFile = "model/fr_detect.onnx";
  static constexpr int kWidth = 320, kHeight = 240;

  static Result<std::unique_ptr<UltraLightDetector>> create(const nn::ModelStore& store,
                                                            UltraLightOptions options = {});

  std::string name() const override { return "ultralight-rfb320"; }
  Result<std::vector<Detection>> detect(const cv::Mat& rgb) override;

  // One whole-frame pass, no tiling: the reference pipeline, exact to golden/faceplugin.
  Result<std::vector<Detection>> detect_frame(const cv::Mat& rgb);

  // The tiles detect() runs for an image of this size (exposed for tests and benchmarks).
  std::vector<Tile> plan_tiles(cv::Size image) const { return face::plan_tiles(image, options_); }
  // A tile as the network sees it: 320×240 RGB u8 (INTER_LINEAR resize, zero padding).
  static cv::Mat tile_pixels(const cv::Mat& rgb, const Tile& tile);
  // u8 RGB 320×240 → (x − 127)/128 written into batch slot i of an N×3×240×320 blob.
  static void fill_input(const cv::Mat& tile_rgb, cv::Mat& blob, int i);

  const UltraLightOptions& options() const { return options_; }

  // One tile's raw network outputs (`priors` rows of scores [bg, face] and boxes
  // [x1, y1, x2, y2] in 0..1 of the tile) → candidates in image pixels, appended to `out`.
  // A free-standing step so the code after the net can be tested and fuzzed without it.
  static void decode_outputs(const float* scores, const float* boxes, int priors, const Tile& tile, cv::Size image,
                             float threshold, std::vector<Detection>& out);
  // Boxes of a pass over the mirrored tile → boxes of the tile itself (x ↦ 1 − x), in place.
  static void unmirror_boxes(float* boxes, int priors);
  // The k best-scoring candidates of one pass (all when k is 0 or they are fewer).
  static void keep_best(std::vector<Detection>& found, size_t k);
  // Every candidate of the passes over `tiles` (each tile also mirrored when `mirrored`), raw
  // score >= floor, the best `top_k` of each pass (all when 0), boxes in image pixels; before
  // any grouping or scoring. detect() scores these (merge_views); exposed so the scoring rules
  // can be measured offline on the network's raw output (bench/detect_views).
  Result<std::vector<ViewCandidate>> collect_views(const cv::Mat& rgb, const std::vector<Tile>& tiles, float floor,
                                                   bool mirrored, size_t top_k);
  // Views grouped at most, as a multiple of top_k (see run_tiles).
  static constexpr size_t kMaxViewsPerTopK = 16;

 private:
  UltraLightDetector(std::unique_ptr<nn::Model> model, UltraLightOptions options)
      : model_(std::move(model)), options_(options) {}
  Result<std::vector<Detection>> run_tiles(const cv::Mat& rgb, const std::vector<Tile>& tiles);

  std::unique_ptr<nn::Model> model_;
  UltraLightOptions options_;
};

}  // namespace fv::face
