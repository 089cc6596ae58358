// The detector's image pyramid: tiles cover the image, overlap, and find a small face that the
// whole-frame pass cannot see.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "face/ultralight_detector.h"
#include "image/decode.h"
#include "support/paths.h"

namespace fv::face {
namespace {

UltraLightDetector& detector(bool tiling) {
  static std::unique_ptr<UltraLightDetector> tiled, untiled;
  auto& d = tiling ? tiled : untiled;
  if (!d) {
    UltraLightOptions o;
    o.tiling = tiling;
    auto r = UltraLightDetector::create(nn::ModelStore(), o);
    if (r.is_ok()) d = std::move(r).value();
  }
  return *d;
}

const std::filesystem::path& golden_face_path() {
  static const auto path = test::golden_dir() / "obama_small/source.jpg";
  return path;
}

// The golden photo's face (~150 px tall in 320×240) shrunk by k and pasted at `at` on a flat
// scene of `size`; empty when the photo cannot be read.
cv::Mat scene_with_golden_face(double k, cv::Size size, cv::Point at) {
  auto img = image::read_image_file(golden_face_path());
  if (!img.is_ok()) return {};
  cv::Mat small;
  cv::resize(img->rgb, small, {}, k, k, cv::INTER_AREA);
  cv::Mat scene(size, CV_8UC3, cv::Scalar(90, 110, 100));
  small.copyTo(scene(cv::Rect(at, small.size())));
  return scene;
}

TEST(Tiling, PlanCoversEveryPixelAtEveryLevel) {
  FV_REQUIRE_MODELS();
  for (cv::Size size : {cv::Size(640, 480), cv::Size(1920, 1080), cv::Size(768, 1024), cv::Size(5000, 300)}) {
    auto tiles = detector(true).plan_tiles(size);
    ASSERT_FALSE(tiles.empty());
    EXPECT_TRUE(tiles.front().stretch) << "the reference whole-frame pass comes first";
    std::map<double, cv::Mat> coverage;
    for (const auto& t : tiles) {
      if (t.stretch) continue;
      EXPECT_NEAR(double(t.rect.width) / t.rect.height, 4.0 / 3.0, 0.02) << "tiles keep the network's aspect";
      auto& m = coverage[t.level];
      if (m.empty()) m = cv::Mat::zeros(size, CV_8U);
      m(t.rect & cv::Rect({0, 0}, size)).setTo(1);
    }
    ASSERT_FALSE(coverage.empty());
    for (auto& [level, m] : coverage) EXPECT_EQ(cv::countNonZero(m), size.area()) << size << " level " << level;
    // The coarsest level sees the whole image in one tile.
    const double top = coverage.rbegin()->first;
    int top_tiles = 0;
    for (const auto& t : tiles) top_tiles += !t.stretch && t.level == top;
    EXPECT_EQ(top_tiles, 1) << size;
  }
}

TEST(Tiling, SmallImageNeedsOnlyTheWholeFramePass) {
  FV_REQUIRE_MODELS();
  // 250×250 (LFW): one letterboxed pass, already finer than the finest pyramid level.
  auto tiles = detector(true).plan_tiles({250, 250});
  ASSERT_EQ(tiles.size(), 1u);
  EXPECT_FALSE(tiles[0].stretch) << "letterboxed, keeping the face's aspect";
  EXPECT_EQ(tiles[0].rect & cv::Rect(0, 0, 250, 250), cv::Rect(0, 0, 250, 250));
  // A small but very wide image is stretched too much by the whole-frame pass: tiles too.
  EXPECT_GT(detector(true).plan_tiles({400, 100}).size(), 1u);
}

TEST(Tiling, NeighbouringTilesOverlapByAQuarter) {
  FV_REQUIRE_MODELS();
  auto tiles = detector(true).plan_tiles({1920, 1080});
  const double finest = tiles[1].level;
  std::vector<cv::Rect> row;
  for (const auto& t : tiles) if (!t.stretch && t.level == finest && t.rect.y == 0) row.push_back(t.rect);
  ASSERT_GE(row.size(), 2u);
  for (size_t i = 1; i < row.size(); ++i) {
    const int overlap = row[i - 1].x + row[i - 1].width - row[i].x;
    EXPECT_GE(overlap, row[i].width / 4 - 1);
  }
}

TEST(Tiling, LevelStepSetsTheRatioOfNeighbouringLevels) {
  for (double step : {2.0, std::sqrt(2.0)}) {
    UltraLightOptions o;
    o.level_step = step;
    std::vector<double> levels;
    std::map<double, cv::Mat> coverage;
    for (const auto& t : plan_tiles({1920, 1080}, o)) {
      if (t.stretch) continue;
      if (levels.empty() || t.level != levels.back()) levels.push_back(t.level);
      auto& m = coverage[t.level];
      if (m.empty()) m = cv::Mat::zeros(1080, 1920, CV_8U);
      m(t.rect & cv::Rect(0, 0, 1920, 1080)).setTo(1);
    }
    for (auto& [level, m] : coverage) EXPECT_EQ(cv::countNonZero(m), 1920 * 1080) << "step " << step << " level " << level;
    ASSERT_GE(levels.size(), 3u) << step;
    EXPECT_DOUBLE_EQ(levels.front(), o.min_face / 16.0);
    for (size_t i = 1; i < levels.size(); ++i) EXPECT_NEAR(levels[i] / levels[i - 1], step, 1e-9) << step;
  }
  EXPECT_EQ(UltraLightOptions{}.level_step, 2.0) << "the default pyramid doubles per level";
  for (double bad : {std::nan(""), 1.0, 0.0, -3.0, 100.0}) {
    UltraLightOptions o;
    o.level_step = bad;
    UltraLightOptions def;
    EXPECT_EQ(plan_tiles({1920, 1080}, o).size(), plan_tiles({1920, 1080}, def).size()) << "step " << bad << " means the default";
  }
}

TEST(Tiling, FindsASmallFaceTheWholeFramePassMisses) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(golden_face_path());
  // The face shrunk to ~26 px and placed in a 1920×1080 scene.
  const cv::Point at(1400, 700);
  const cv::Mat scene = scene_with_golden_face(0.175, {1920, 1080}, at);
  ASSERT_FALSE(scene.empty());
  const Box face{at.x + 104.8 * 0.175, at.y + 37.3 * 0.175, at.x + 211.4 * 0.175, at.y + 186.1 * 0.175};

  auto untiled = detector(false).detect(scene);
  ASSERT_TRUE(untiled.is_ok());
  for (const auto& d : *untiled) EXPECT_LT(iou(d.box, face), 0.3) << "the whole-frame pass should not see a 26 px face";

  auto tiled = detector(true).detect(scene);
  ASSERT_TRUE(tiled.is_ok());
  double best = 0;
  for (const auto& d : *tiled) best = std::max(best, iou(d.box, face));
  EXPECT_GT(best, 0.5) << "the pyramid must find the small face at its place";
  EXPECT_LE(tiled->size(), 2u) << "and not much else on a flat background";
}

TEST(Tiling, MirroredPassBoxesMapBackToTheTile) {
  float boxes[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.0f, 0.0f, 1.0f, 1.0f};
  UltraLightDetector::unmirror_boxes(boxes, 2);
  EXPECT_FLOAT_EQ(boxes[0], 0.7f);
  EXPECT_FLOAT_EQ(boxes[1], 0.2f);
  EXPECT_FLOAT_EQ(boxes[2], 0.9f);
  EXPECT_FLOAT_EQ(boxes[3], 0.4f);
  EXPECT_FLOAT_EQ(boxes[4], 0.0f);
  EXPECT_FLOAT_EQ(boxes[6], 1.0f);
}

// Hostile input can make the network emit NaN or infinite values: no candidate comes of them.
TEST(Tiling, DecodeSkipsNonFiniteScoresAndBoxes) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // [bg, face] per prior; boxes in 0..1 of the tile.
  const float scores[8] = {0.0f, nan, 0.0f, inf, 0.1f, 0.9f, 0.1f, 0.9f};
  const float boxes[16] = {0.1f, 0.1f, 0.3f, 0.3f, 0.1f, 0.1f, 0.3f, 0.3f, nan, 0.1f, 0.3f, 0.3f, 0.4f, 0.4f, 0.6f, 0.6f};
  Tile tile;
  tile.rect = cv::Rect(0, 0, 320, 240);
  std::vector<Detection> out;
  UltraLightDetector::decode_outputs(scores, boxes, 4, tile, cv::Size(320, 240), 0.3f, out);
  ASSERT_EQ(out.size(), 1u) << "only the last prior is finite throughout";
  EXPECT_NEAR(out[0].box.x1, 0.4 * 320, 1e-3);
}

TEST(Tiling, KeepBestKeepsTheHighestScores) {
  std::vector<Detection> found;
  for (float s : {0.4f, 0.9f, 0.5f, 0.7f, 0.3f}) {
    Detection d;
    d.box = Box{0, 0, 10, 10};
    d.score = s;
    found.push_back(d);
  }
  UltraLightDetector::keep_best(found, 2);
  ASSERT_EQ(found.size(), 2u);
  std::vector<float> kept = {found[0].score, found[1].score};
  std::sort(kept.begin(), kept.end());
  EXPECT_FLOAT_EQ(kept[0], 0.7f);
  EXPECT_FLOAT_EQ(kept[1], 0.9f);
  UltraLightDetector::keep_best(found, 0);
  EXPECT_EQ(found.size(), 2u) << "0 means no bound";
}

TEST(Tiling, EvidenceAcrossViewsFindsTheSameFacesWithAndWithoutTheMirroredPass) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(golden_face_path());
  auto img = image::read_image_file(golden_face_path());
  ASSERT_TRUE(img.is_ok());
  // Two copies of the face, one mirrored, in a scene large enough for a pyramid.
  constexpr double k = 0.25;
  cv::Mat small, mirrored;
  cv::resize(img->rgb, small, {}, k, k, cv::INTER_AREA);
  cv::flip(small, mirrored, 1);
  cv::Mat scene(720, 1280, CV_8UC3, cv::Scalar(90, 110, 100));
  const cv::Point a(200, 300), b(900, 300);
  small.copyTo(scene(cv::Rect(a, small.size())));
  mirrored.copyTo(scene(cv::Rect(b, mirrored.size())));
  const double w = img->rgb.cols;
  const Box face_a{a.x + 104.8 * k, a.y + 37.3 * k, a.x + 211.4 * k, a.y + 186.1 * k};
  const Box face_b{b.x + (w - 211.4) * k, b.y + 37.3 * k, b.x + (w - 104.8) * k, b.y + 186.1 * k};
  for (bool flip : {true, false}) {
    UltraLightOptions o;
    o.flip_tta = flip;
    auto d = UltraLightDetector::create(nn::ModelStore(), o);
    ASSERT_TRUE(d.is_ok());
    auto found = (*d)->detect(scene);
    ASSERT_TRUE(found.is_ok());
    ASSERT_EQ(found->size(), 2u) << "flip " << flip;
    double best_a = 0, best_b = 0;
    for (const auto& f : *found) {
      EXPECT_GE(f.score, o.pyramid_score_threshold);
      best_a = std::max(best_a, iou(f.box, face_a));
      best_b = std::max(best_b, iou(f.box, face_b));
    }
    EXPECT_GT(best_a, 0.5) << "flip " << flip;
    EXPECT_GT(best_b, 0.5) << "flip " << flip;
  }
}

// bench/detect_views and scripts/detect-replay.py measure scoring rules on collect_views()'s
// output: the faces detect() returns must be exactly what scoring those views gives.
TEST(Tiling, DetectScoresExactlyTheViewsCollectViewsReturns) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(golden_face_path());
  const cv::Mat scene = scene_with_golden_face(0.3, {1280, 720}, {500, 200});
  ASSERT_FALSE(scene.empty());
  auto& d = detector(true);
  const auto tiles = d.plan_tiles(scene.size());
  ASSERT_GT(tiles.size(), 1u);
  const auto& o = d.options();
  auto views = d.collect_views(scene, tiles, o.candidate_score, o.flip_tta, o.top_k);
  ASSERT_TRUE(views.is_ok());
  size_t plain = 0, mirrored = 0;
  for (const auto& v : *views) {
    EXPECT_GE(v.detection.score, o.candidate_score);
    ASSERT_GE(v.tile, 0);
    ASSERT_LT(v.tile, static_cast<int>(tiles.size()));
    (v.mirrored ? mirrored : plain) += 1;
  }
  EXPECT_GT(plain, 0u);
  EXPECT_GT(mirrored, 0u) << "every tile is run mirrored as well";
  EvidenceOptions evidence;
  evidence.cluster_iou = o.nms_iou;
  evidence.scales = o.evidence_scales;
  evidence.average_mirrored = o.flip_tta;
  evidence.vote_boxes = o.box_voting;
  ASSERT_LE(views->size(), UltraLightDetector::kMaxViewsPerTopK * o.top_k) << "below the bound detect() applies";
  std::vector<Detection> kept;
  for (auto& c : merge_views(*views, evidence))
    if (c.score >= o.pyramid_score_threshold) kept.push_back(c);
  const auto replayed = drop_contained(nms(kept, o.nms_iou, o.top_k), o.containment);
  auto found = d.detect(scene);
  ASSERT_TRUE(found.is_ok());
  ASSERT_EQ(found->size(), replayed.size());
  ASSERT_GE(found->size(), 1u);
  for (size_t i = 0; i < found->size(); ++i) {
    EXPECT_FLOAT_EQ((*found)[i].score, replayed[i].score);
    EXPECT_DOUBLE_EQ((*found)[i].box.x1, replayed[i].box.x1);
    EXPECT_DOUBLE_EQ((*found)[i].box.y1, replayed[i].box.y1);
    EXPECT_DOUBLE_EQ((*found)[i].box.x2, replayed[i].box.x2);
    EXPECT_DOUBLE_EQ((*found)[i].box.y2, replayed[i].box.y2);
  }
  EXPECT_FALSE(d.collect_views(cv::Mat(), tiles, 0.3f, true, 0).is_ok()) << "an empty image is refused";
}

TEST(Tiling, PartOfAFaceInsideALargerDetectionIsDropped) {
  std::vector<Detection> d = {{{100, 100, 300, 340}, 0.999f}, {{150, 250, 260, 330}, 0.95f}, {{400, 100, 500, 220}, 0.9f}};
  auto kept = drop_contained(d, 0.6);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].box.x1, 100);
  EXPECT_EQ(kept[1].box.x1, 400);
  // A small box that outscores the large one is a face in its own right: kept.
  d[1].score = 0.9999f;
  EXPECT_EQ(drop_contained(d, 0.6).size(), 3u);
}

}  // namespace
}  // namespace fv::face
