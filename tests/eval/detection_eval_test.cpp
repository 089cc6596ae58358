// WIDER FACE ground truth parsing and detection metrics (recall, false positives, AP, size buckets).
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "support/temp_file.h"
#include "eval/detection_eval.h"

namespace fv::eval {
namespace {

using test::TempFile;

GtBox gt(double x, double y, double w, double h, bool invalid = false) { return GtBox{x, y, w, h, invalid}; }
PredBox on(const GtBox& g, double score) { return PredBox{g.x, g.y, g.x + g.w, g.y + g.h, score}; }
PredBox pred(double x1, double y1, double x2, double y2, double score) { return PredBox{x1, y1, x2, y2, score}; }

const SizeBucket& bucket(const DetectionReport& r, const std::string& label) {
  for (const auto& b : r.buckets) {
    if (b.label == label) return b;
  }
  ADD_FAILURE() << "no bucket " << label;
  static SizeBucket none;
  return none;
}

// ---------------------------------------------------------------- read_wider_gt

const char* kGt =
    "0--Parade/0_Parade_marchingband_1_849.jpg\n"
    "1\n"
    "449 330 122 149 0 0 0 0 0 0 \n"
    "0--Parade/0_Parade_marchingband_1_799.jpg\n"
    "0\n"
    "0 0 0 0 0 0 0 0 0 0 \n"
    "0--Parade/0_Parade_marchingband_1_117.jpg\n"
    "3\n"
    "69 359 50 36 1 0 0 0 0 1 \n"
    "227 382 56 43 1 0 1 0 0 1 \n"
    "296 305 44 26 1 0 0 1 0 0 \n";

TEST(ReadWiderGt, ParsesImagesFacesAndInvalidFlag) {
  TempFile f(kGt);
  auto r = read_wider_gt(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 3u);
  const auto& a = (*r)[0];
  EXPECT_EQ(a.name, "0--Parade/0_Parade_marchingband_1_849.jpg");
  ASSERT_EQ(a.faces.size(), 1u);
  EXPECT_DOUBLE_EQ(a.faces[0].x, 449);
  EXPECT_DOUBLE_EQ(a.faces[0].y, 330);
  EXPECT_DOUBLE_EQ(a.faces[0].w, 122);
  EXPECT_DOUBLE_EQ(a.faces[0].h, 149);
  EXPECT_FALSE(a.faces[0].invalid);
  // A count of 0 is followed by one dummy line, which must not become a face or an image name.
  EXPECT_EQ((*r)[1].name, "0--Parade/0_Parade_marchingband_1_799.jpg");
  EXPECT_TRUE((*r)[1].faces.empty());
  const auto& c = (*r)[2];
  EXPECT_EQ(c.name, "0--Parade/0_Parade_marchingband_1_117.jpg");
  ASSERT_EQ(c.faces.size(), 3u);
  EXPECT_FALSE(c.faces[0].invalid);
  EXPECT_FALSE(c.faces[1].invalid);
  EXPECT_TRUE(c.faces[2].invalid);  // 8th field
  EXPECT_DOUBLE_EQ(c.faces[2].w, 44);
}

TEST(ReadWiderGt, CountZeroAsLastImage) {
  TempFile f("a.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n");
  auto r = read_wider_gt(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_TRUE((*r)[0].faces.empty());
}

TEST(ReadWiderGt, CrLfAndShortFaceLines) {
  TempFile f("x/a.jpg\r\n2\r\n1 2 3 4\r\n5 6 7 8 0 0 0 1 0 0\r\n");
  auto r = read_wider_gt(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "x/a.jpg");
  ASSERT_EQ((*r)[0].faces.size(), 2u);
  EXPECT_FALSE((*r)[0].faces[0].invalid);  // no flag given
  EXPECT_DOUBLE_EQ((*r)[0].faces[0].h, 4);
  EXPECT_TRUE((*r)[0].faces[1].invalid);
}

TEST(ReadWiderGt, TruncatedFilesAreCorruptData) {
  const std::string full = kGt;
  const std::vector<std::string> bad = {
      full.substr(0, full.rfind("296 305")),           // ends inside the last face list
      "a.jpg\n",                                       // name without count
      "a.jpg\n0\n",                                    // count 0 without its dummy line
      "a.jpg\nthree\n1 2 3 4\n",                       // count is not a number
      "a.jpg\n-1\n",                                   // negative count
      "a.jpg\n1\n1 2 3\n",                             // fewer than 4 numbers
  };
  for (const auto& s : bad) {
    TempFile f(s);
    auto r = read_wider_gt(f.path());
    ASSERT_FALSE(r.is_ok()) << s;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << s;
  }
}

TEST(ReadWiderGt, MissingFileIsNotFound) {
  auto r = read_wider_gt(std::filesystem::temp_directory_path() / "fv_wider_test_no_such_file.txt");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------- evaluate_detections

TEST(EvaluateDetections, PerfectPredictions) {
  std::vector<GtImage> g = {{"a", {gt(10, 10, 40, 50), gt(100, 10, 80, 100)}}, {"b", {gt(0, 0, 200, 220)}}};
  std::vector<std::vector<PredBox>> p = {{on(g[0].faces[0], 0.9), on(g[0].faces[1], 0.8)}, {on(g[1].faces[0], 0.7)}};
  const DetectionReport r = evaluate_detections(g, p);
  EXPECT_EQ(r.images, 2u);
  EXPECT_EQ(r.faces_evaluated, 3u);
  EXPECT_EQ(r.found, 3u);
  EXPECT_DOUBLE_EQ(r.recall, 1.0);
  EXPECT_EQ(r.false_positives, 0u);
  EXPECT_DOUBLE_EQ(r.fp_per_image, 0.0);
  EXPECT_DOUBLE_EQ(r.average_precision, 1.0);
}

TEST(EvaluateDetections, SlightlyOffBoxStillMatchesAtIou05) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100)}}};
  // IoU of [10,110]×[0,100] with [0,100]² = 90·100 / (2·10000 − 9000) = 0.818.
  const DetectionReport r = evaluate_detections(g, {{pred(10, 0, 110, 100, 0.5)}});
  EXPECT_EQ(r.found, 1u);
  EXPECT_EQ(r.false_positives, 0u);
}

TEST(EvaluateDetections, DetectionsOnInvalidOrSmallFacesAreDontCare) {
  std::vector<GtImage> g = {{"a",
                             {gt(0, 0, 100, 100),                       // evaluated
                              gt(200, 0, 100, 100, /*invalid=*/true),  // invalid
                              gt(400, 0, 20, 20)}}};                   // shorter than min_height 32
  std::vector<std::vector<PredBox>> p = {
      {on(g[0].faces[1], 0.99), on(g[0].faces[2], 0.98), on(g[0].faces[0], 0.5)}};
  const DetectionReport r = evaluate_detections(g, p);
  EXPECT_EQ(r.faces_evaluated, 1u);
  EXPECT_EQ(r.found, 1u);
  EXPECT_EQ(r.false_positives, 0u);
  // The two higher-scored don't-care detections must not lower the precision.
  EXPECT_DOUBLE_EQ(r.average_precision, 1.0);
}

TEST(EvaluateDetections, MissingTheSmallFaceDoesNotHurtRecall) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100), gt(400, 0, 20, 20), gt(200, 0, 50, 50, true)}}};
  const DetectionReport r = evaluate_detections(g, {{on(g[0].faces[0], 0.9)}});
  EXPECT_EQ(r.faces_evaluated, 1u);
  EXPECT_DOUBLE_EQ(r.recall, 1.0);
  // With min_height 10 the small face is evaluated too, and missed.
  const DetectionReport r10 = evaluate_detections(g, {{on(g[0].faces[0], 0.9)}}, /*min_height=*/10);
  EXPECT_EQ(r10.faces_evaluated, 2u);
  EXPECT_DOUBLE_EQ(r10.recall, 0.5);
}

TEST(EvaluateDetections, FarAwayDetectionIsAFalsePositive) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100)}}, {"b", {}}};
  std::vector<std::vector<PredBox>> p = {{on(g[0].faces[0], 0.8), pred(500, 500, 600, 600, 0.9)},
                                         {pred(0, 0, 50, 50, 0.4)}};
  const DetectionReport r = evaluate_detections(g, p);
  EXPECT_EQ(r.found, 1u);
  EXPECT_EQ(r.false_positives, 2u);
  EXPECT_DOUBLE_EQ(r.fp_per_image, 1.0);
  // Score order: FP 0.9, TP 0.8, FP 0.4 → precision 0, 1/2, (1/3): AP = 1 · max(1/2, 1/3) = 0.5.
  EXPECT_DOUBLE_EQ(r.average_precision, 0.5);
}

TEST(EvaluateDetections, LowerScoredFalsePositiveDoesNotLowerAp) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100)}}};
  const DetectionReport r = evaluate_detections(g, {{on(g[0].faces[0], 0.9), pred(500, 500, 600, 600, 0.1)}});
  EXPECT_EQ(r.false_positives, 1u);
  EXPECT_DOUBLE_EQ(r.average_precision, 1.0);
}

TEST(EvaluateDetections, LooseBoxBetweenFpIouAndMatchIouIsNeitherHitNorFalsePositive) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100)}}};
  // [40,140]×[0,100]: IoU = 6000 / 14000 = 0.43, under 0.5 but over fp_iou 0.3.
  const DetectionReport r = evaluate_detections(g, {{pred(40, 0, 140, 100, 0.9)}});
  EXPECT_EQ(r.found, 0u);
  EXPECT_EQ(r.false_positives, 0u);
  // [70,170]×[0,100]: IoU = 3000 / 17000 = 0.18, under fp_iou: a false positive.
  const DetectionReport r2 = evaluate_detections(g, {{pred(70, 0, 170, 100, 0.9)}});
  EXPECT_EQ(r2.false_positives, 1u);
}

TEST(EvaluateDetections, MissedFaceHalvesRecallAndAp) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100), gt(300, 0, 100, 100)}}};
  const DetectionReport r = evaluate_detections(g, {{on(g[0].faces[0], 0.9)}});
  EXPECT_EQ(r.faces_evaluated, 2u);
  EXPECT_EQ(r.found, 1u);
  EXPECT_DOUBLE_EQ(r.recall, 0.5);
  EXPECT_DOUBLE_EQ(r.average_precision, 0.5);
}

TEST(EvaluateDetections, EachFaceMatchesAtMostOnce) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100), gt(300, 0, 100, 100)}}};
  // Two detections on the first face: only one can be its hit; the second face stays missed.
  const DetectionReport r = evaluate_detections(g, {{on(g[0].faces[0], 0.9), pred(2, 2, 102, 102, 0.8)}});
  EXPECT_EQ(r.found, 1u);
  EXPECT_DOUBLE_EQ(r.recall, 0.5);
  // The duplicate overlaps an annotated face, so it is not counted as a false positive (header).
  EXPECT_EQ(r.false_positives, 0u);
}

// Average precision in the WIDER FACE / PASCAL VOC sense: a second detection of a face that is
// already found does not find anything new, so it lowers precision. (Official WIDER evaluation:
// a proposal over a recalled face stays a proposal and counts in the precision denominator.)
// Regression (was a bug in evaluate_detections): a
// duplicate on an already-matched evaluated face is scored kind -1 ("ignored") and dropped from the
// precision/recall sweep, so a detector that emits every box twice keeps AP = 1. The header says
// only detections on *other* (don't-care) annotated faces are ignored. The duplicate not counting
// in `false_positives` is as documented; only its exclusion from AP is at issue.
TEST(EvaluateDetections, DuplicateDetectionLowersAveragePrecision) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100), gt(300, 0, 100, 100)}}};
  const DetectionReport r = evaluate_detections(
      g, {{on(g[0].faces[0], 0.9), pred(1, 1, 101, 101, 0.8), on(g[0].faces[1], 0.7)}});
  EXPECT_EQ(r.found, 2u);
  // Score order: TP (p 1, r .5), duplicate (p 1/2), TP (p 2/3, r 1) → AP = .5·1 + .5·(2/3) = 5/6.
  EXPECT_NEAR(r.average_precision, 5.0 / 6, 1e-12) << "duplicate detection ignored in AP";
}

TEST(EvaluateDetections, PrefersAnEvaluatedFaceOverADontCareOne) {
  // An invalid face and a valid face overlapping the same detection; the valid one must get the hit.
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100, /*invalid=*/true), gt(10, 0, 100, 100)}}};
  const DetectionReport r = evaluate_detections(g, {{pred(0, 0, 100, 100, 0.9)}});
  EXPECT_EQ(r.faces_evaluated, 1u);
  EXPECT_EQ(r.found, 1u);
  EXPECT_DOUBLE_EQ(r.average_precision, 1.0);
}

TEST(EvaluateDetections, FewerPredictionListsThanImages) {
  std::vector<GtImage> g = {{"a", {gt(0, 0, 100, 100)}}, {"b", {gt(0, 0, 100, 100)}}};
  const DetectionReport r = evaluate_detections(g, {{on(g[0].faces[0], 0.9)}});
  EXPECT_EQ(r.images, 2u);
  EXPECT_EQ(r.found, 1u);
  EXPECT_DOUBLE_EQ(r.recall, 0.5);
}

TEST(EvaluateDetections, EmptyInputs) {
  const DetectionReport r = evaluate_detections({}, {});
  EXPECT_EQ(r.images, 0u);
  EXPECT_DOUBLE_EQ(r.recall, 0.0);
  EXPECT_DOUBLE_EQ(r.fp_per_image, 0.0);
  EXPECT_DOUBLE_EQ(r.average_precision, 0.0);
}

TEST(EvaluateDetections, SizeBuckets) {
  // Heights 10, 16, 20, 40, 64, 100, 200, and an invalid 50; laid out side by side.
  const double hs[] = {10, 16, 20, 40, 64, 100, 200};
  GtImage img{"a", {}};
  double x = 0;
  for (double h : hs) { img.faces.push_back(gt(x, 0, h, h)); x += h + 50; }
  img.faces.push_back(gt(x, 0, 50, 50, /*invalid=*/true));
  std::vector<PredBox> p = {on(img.faces[0], 0.9), on(img.faces[2], 0.8), on(img.faces[5], 0.7),
                            on(img.faces[7], 0.6)};
  const DetectionReport r = evaluate_detections({img}, {p});
  ASSERT_EQ(r.buckets.size(), 5u);
  EXPECT_EQ(bucket(r, "<16").faces, 1u);
  EXPECT_EQ(bucket(r, "<16").found, 1u);
  EXPECT_EQ(bucket(r, "16-32").faces, 2u);  // 16 belongs to 16-32, not <16
  EXPECT_EQ(bucket(r, "16-32").found, 1u);
  EXPECT_EQ(bucket(r, "32-64").faces, 1u);  // the invalid 50 is not counted
  EXPECT_EQ(bucket(r, "32-64").found, 0u);
  EXPECT_EQ(bucket(r, "64-128").faces, 2u);  // 64 and 100
  EXPECT_EQ(bucket(r, "64-128").found, 1u);
  EXPECT_EQ(bucket(r, ">=128").faces, 1u);
  EXPECT_EQ(bucket(r, ">=128").found, 0u);
  size_t total = 0;
  for (const auto& b : r.buckets) total += b.faces;
  EXPECT_EQ(total, 7u);
  EXPECT_EQ(r.faces_evaluated, 4u);  // 40, 64, 100, 200
  EXPECT_EQ(r.found, 1u);
  EXPECT_DOUBLE_EQ(r.recall, 0.25);
  EXPECT_EQ(r.false_positives, 0u);
}

}  // namespace
}  // namespace fv::eval
