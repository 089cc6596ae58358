// Box IoU, greedy NMS, the least-squares similarity used for alignment, warp_crop and
// template similarity.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "face/align.h"
#include "face/detector.h"
#include "face/types.h"

namespace fv::face {
namespace {

Detection det(double x1, double y1, double x2, double y2, float score) { Detection d; d.box = Box{x1, y1, x2, y2}; d.score = score; return d; }

// ---------------------------------------------------------------- iou

TEST(Iou, KnownValues) {
  const Box a{0, 0, 10, 10};
  EXPECT_DOUBLE_EQ(iou(a, a), 1.0);
  EXPECT_DOUBLE_EQ(iou(a, Box{5, 0, 15, 10}), 50.0 / 150);   // half overlap
  EXPECT_DOUBLE_EQ(iou(a, Box{0, 0, 5, 5}), 25.0 / 100);     // contained
  EXPECT_DOUBLE_EQ(iou(a, Box{1, 1, 11, 11}), 81.0 / 119);
  EXPECT_DOUBLE_EQ(iou(a, Box{5, 5, 15, 15}), 25.0 / 175);
  EXPECT_DOUBLE_EQ(iou(Box{5, 0, 15, 10}, a), iou(a, Box{5, 0, 15, 10}));  // symmetric
}

TEST(Iou, DisjointTouchingAndDegenerate) {
  const Box a{0, 0, 10, 10};
  EXPECT_DOUBLE_EQ(iou(a, Box{20, 20, 30, 30}), 0.0);
  EXPECT_DOUBLE_EQ(iou(a, Box{10, 0, 20, 10}), 0.0);  // shares an edge only
  EXPECT_DOUBLE_EQ(iou(a, Box{3, 3, 3, 3}), 0.0);     // a point
  EXPECT_DOUBLE_EQ(iou(Box{}, Box{}), 0.0);
  EXPECT_DOUBLE_EQ(Box({10, 10, 0, 0}).area(), 0.0);  // inverted box has no area
}

// ---------------------------------------------------------------- nms

TEST(Nms, SuppressesOverlappingLowerScoresAndKeepsDisjoint) {
  std::vector<Detection> in = {
      det(1, 1, 11, 11, 0.80f),      // IoU 0.68 with the 0.9 box: suppressed
      det(20, 20, 30, 30, 0.70f),    // disjoint: kept
      det(0, 0, 10, 10, 0.90f),      // best
      det(21, 20, 31, 30, 0.60f),    // IoU 0.82 with the 0.7 box: suppressed
      det(100, 0, 110, 10, 0.10f),   // disjoint, low score: kept
  };
  const auto out = nms(in, 0.4);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FLOAT_EQ(out[0].score, 0.90f);
  EXPECT_DOUBLE_EQ(out[0].box.x1, 0);
  EXPECT_FLOAT_EQ(out[1].score, 0.70f);
  EXPECT_DOUBLE_EQ(out[1].box.x1, 20);
  EXPECT_FLOAT_EQ(out[2].score, 0.10f);
  EXPECT_DOUBLE_EQ(out[2].box.x1, 100);
}

TEST(Nms, OutputIsSortedByScore) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> pos(0, 500), size(5, 60);
  std::uniform_real_distribution<float> score(0, 1);
  std::vector<Detection> in;
  for (int i = 0; i < 300; ++i) {
    const double x = pos(rng), y = pos(rng), s = size(rng);
    in.push_back(det(x, y, x + s, y + s, score(rng)));
  }
  const auto out = nms(in, 0.3);
  ASSERT_FALSE(out.empty());
  ASSERT_LT(out.size(), in.size());
  for (size_t i = 1; i < out.size(); ++i) EXPECT_GE(out[i - 1].score, out[i].score);
  // Every pair of survivors overlaps less than the threshold.
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = i + 1; j < out.size(); ++j) EXPECT_LT(iou(out[i].box, out[j].box), 0.3);
  // Every suppressed box overlaps a higher- or equal-scored survivor at >= the threshold.
  for (const auto& d : in) {
    bool kept = false, covered = false;
    for (const auto& k : out) {
      kept |= k.score == d.score && k.box.x1 == d.box.x1 && k.box.y1 == d.box.y1;
      covered |= k.score >= d.score && iou(k.box, d.box) >= 0.3;
    }
    EXPECT_TRUE(kept || covered);
  }
}

TEST(Nms, IouEqualToThresholdSuppresses) {
  // IoU exactly 1/3.
  const auto out = nms({det(0, 0, 10, 10, 0.9f), det(5, 0, 15, 10, 0.8f)}, 1.0 / 3);
  EXPECT_EQ(out.size(), 1u);
  const auto out2 = nms({det(0, 0, 10, 10, 0.9f), det(5, 0, 15, 10, 0.8f)}, 0.34);
  EXPECT_EQ(out2.size(), 2u);
}

TEST(Nms, EqualScoresKeepInputOrder) {
  const auto out = nms({det(50, 0, 60, 10, 0.5f), det(0, 0, 10, 10, 0.5f), det(1, 0, 11, 10, 0.5f)}, 0.4);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_DOUBLE_EQ(out[0].box.x1, 50);
  EXPECT_DOUBLE_EQ(out[1].box.x1, 0);  // earlier index wins the tie over x1 = 1
}

TEST(Nms, TopKLimitsTheCandidatesBeforeSuppression) {
  // docs/models.md: sort by score, keep the top 750, then NMS.
  std::vector<Detection> in = {det(0, 0, 10, 10, 0.9f), det(1, 1, 11, 11, 0.8f), det(20, 20, 30, 30, 0.7f),
                               det(40, 40, 50, 50, 0.6f)};
  EXPECT_EQ(nms(in, 0.4, 0).size(), 3u);  // 0: no limit
  const auto k3 = nms(in, 0.4, 3);        // candidates 0.9, 0.8, 0.7 → 0.9, 0.7
  ASSERT_EQ(k3.size(), 2u);
  EXPECT_FLOAT_EQ(k3[0].score, 0.9f);
  EXPECT_FLOAT_EQ(k3[1].score, 0.7f);
  const auto k1 = nms(in, 0.4, 1);
  ASSERT_EQ(k1.size(), 1u);
  EXPECT_FLOAT_EQ(k1[0].score, 0.9f);
  for (size_t k = 1; k <= 5; ++k) EXPECT_LE(nms(in, 0.4, k).size(), k);
}

TEST(Nms, EmptyInput) { EXPECT_TRUE(nms({}, 0.4, 10).empty()); }

// ---------------------------------------------------------------- merge_views

ViewCandidate view(double x1, double y1, double x2, double y2, float score, int tile, int scale, bool mirrored = false) {
  return ViewCandidate{det(x1, y1, x2, y2, score), tile, scale, mirrored};
}

// A lead whose box is degenerate (inverted, as the stretched pass can give) has IoU 0 even
// with itself; it still forms its own group instead of vanishing.
TEST(MergeViews, DegenerateLeadStillFormsItsGroup) {
  EvidenceOptions o;
  o.scales = 1;
  o.average_mirrored = false;
  const auto out = merge_views({view(10, 10, 5, 5, 0.8f, 0, 0), view(20, 20, 30, 30, 0.6f, 1, 1)}, o);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FLOAT_EQ(out[0].score, 0.8f);
  EXPECT_FLOAT_EQ(out[1].score, 0.6f);
}

TEST(MergeViews, BoxIsTheScoreWeightedMeanOfTheCluster) {
  EvidenceOptions o;
  o.scales = 1;
  o.average_mirrored = false;
  // IoU of the two boxes is 81/119 = 0.68: one face.
  const auto out = merge_views({view(0, 0, 10, 10, 0.9f, 0, 0), view(1, 1, 11, 11, 0.3f, 1, 1)}, o);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].box.x1, (0.9 * 0 + 0.3 * 1) / 1.2, 1e-6);  // 0.25
  EXPECT_NEAR(out[0].box.y2, (0.9 * 10 + 0.3 * 11) / 1.2, 1e-6);  // 10.25
  EXPECT_FLOAT_EQ(out[0].score, 0.9f);
  ASSERT_TRUE(out[0].best_view_box.has_value()) << "the best view's own box is kept beside the voted one";
  EXPECT_DOUBLE_EQ(out[0].single_view_box().x1, 0.0);
  EXPECT_DOUBLE_EQ(out[0].single_view_box().y2, 10.0);
  o.vote_boxes = false;
  const auto best = merge_views({view(0, 0, 10, 10, 0.9f, 0, 0), view(1, 1, 11, 11, 0.3f, 1, 1)}, o);
  ASSERT_EQ(best.size(), 1u);
  EXPECT_DOUBLE_EQ(best[0].box.x1, 0.0) << "without voting the best candidate's box";
}

TEST(MergeViews, ScoreIsTheMeanOfTheBestScalesAndAMissingSecondScaleCountsZero) {
  EvidenceOptions o;
  o.average_mirrored = false;  // scales = 2
  // Scale 1 has two tiles (its best tile counts, once); scale 2 one tile; scale 3 one tile.
  const auto out = merge_views({view(0, 0, 10, 10, 0.9f, 1, 1), view(0, 0, 10, 10, 0.8f, 2, 1), view(1, 0, 11, 10, 0.7f, 3, 2),
                                view(0, 1, 10, 11, 0.5f, 4, 3)}, o);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].score, (0.9 + 0.7) / 2, 1e-6);
  // One confident scale alone, however many of its tiles agree, is half the evidence.
  const auto alone = merge_views({view(0, 0, 10, 10, 0.98f, 5, 4), view(0, 0, 10, 10, 0.97f, 6, 4)}, o);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_NEAR(alone[0].score, 0.49, 1e-6);
}

TEST(MergeViews, MirroredPassIsAveragedWithThePlainOneOfItsTile) {
  EvidenceOptions o;
  o.scales = 1;
  const auto out = merge_views({view(0, 0, 10, 10, 0.9f, 0, 0), view(0, 0, 10, 10, 0.5f, 0, 0, true)}, o);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].score, 0.7, 1e-6);
  // A tile seen only mirrored has a plain score of 0.
  const auto mirrored_only = merge_views({view(0, 0, 10, 10, 0.8f, 4, 2, true)}, o);
  ASSERT_EQ(mirrored_only.size(), 1u);
  EXPECT_NEAR(mirrored_only[0].score, 0.4, 1e-6);
}

TEST(MergeViews, SeparateFacesStaySeparateBestEvidenceFirst) {
  EvidenceOptions o;
  o.scales = 1;
  o.average_mirrored = false;
  const auto out = merge_views({view(0, 0, 10, 10, 0.6f, 0, 0), view(50, 0, 60, 10, 0.95f, 0, 0), view(5, 0, 15, 10, 0.99f, 1, 1)}, o);
  // The 0.99 box (IoU 1/3 with the 0.6 box) leads its own cluster; the 0.6 box stays apart.
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FLOAT_EQ(out[0].score, 0.99f);
  EXPECT_FLOAT_EQ(out[1].score, 0.95f);
  EXPECT_FLOAT_EQ(out[2].score, 0.6f);
  EXPECT_TRUE(merge_views({}, o).empty());
}

// ---------------------------------------------------------------- similarity_transform

cv::Point2d apply(const cv::Matx23d& M, const cv::Point2d& p) {
  return {M(0, 0) * p.x + M(0, 1) * p.y + M(0, 2), M(1, 0) * p.x + M(1, 1) * p.y + M(1, 2)};
}

cv::Matx23d make_similarity(double scale, double angle, double tx, double ty) {
  const double a = scale * std::cos(angle), b = scale * std::sin(angle);
  return cv::Matx23d(a, -b, tx, b, a, ty);
}

FivePoints transformed(const FivePoints& p, const cv::Matx23d& M) {
  FivePoints out;
  for (size_t i = 0; i < p.size(); ++i) out[i] = apply(M, p[i]);
  return out;
}

void expect_similarity_form(const cv::Matx23d& M) {
  EXPECT_NEAR(M(0, 0), M(1, 1), 1e-12);
  EXPECT_NEAR(M(0, 1), -M(1, 0), 1e-12);
  EXPECT_GT(M(0, 0) * M(1, 1) - M(0, 1) * M(1, 0), 0.0) << "reflection";
}

TEST(SimilarityTransform, RecoversAKnownSimilarityExactly) {
  const double scale = 2.35, angle = 0.4, tx = 311.5, ty = -42.25;
  const cv::Matx23d T = make_similarity(scale, angle, tx, ty);
  const FivePoints image_pts = transformed(kArcFace112, T);
  const cv::Matx23d M = similarity_transform(image_pts, kArcFace112);
  expect_similarity_form(M);
  for (size_t i = 0; i < 5; ++i) {
    const cv::Point2d q = apply(M, image_pts[i]);
    EXPECT_NEAR(q.x, kArcFace112[i].x, 1e-9) << i;
    EXPECT_NEAR(q.y, kArcFace112[i].y, 1e-9) << i;
  }
  // M is T⁻¹: scale 1/2.35, angle −0.4.
  EXPECT_NEAR(std::hypot(M(0, 0), M(1, 0)), 1 / scale, 1e-12);
  EXPECT_NEAR(std::atan2(M(1, 0), M(0, 0)), -angle, 1e-12);
  // And the other way round gives T itself.
  const cv::Matx23d F = similarity_transform(kArcFace112, image_pts);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(F(r, c), T(r, c), 1e-9) << r << "," << c;
}

TEST(SimilarityTransform, ManyRandomSimilarities) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> sc(0.1, 10), ang(-3.1, 3.1), tr(-1000, 1000);
  for (int k = 0; k < 200; ++k) {
    const cv::Matx23d T = make_similarity(sc(rng), ang(rng), tr(rng), tr(rng));
    const FivePoints src = transformed(kArcFace112, T);
    const cv::Matx23d M = similarity_transform(src, kArcFace112);
    for (size_t i = 0; i < 5; ++i) {
      const cv::Point2d q = apply(M, src[i]);
      ASSERT_NEAR(q.x, kArcFace112[i].x, 1e-9) << k;
      ASSERT_NEAR(q.y, kArcFace112[i].y, 1e-9) << k;
    }
  }
}

TEST(SimilarityTransform, IdentityOnTheTemplate) {
  const cv::Matx23d M = similarity_transform(kArcFace112, kArcFace112);
  const cv::Matx23d I(1, 0, 0, 0, 1, 0);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(M(r, c), I(r, c), 1e-12);
}

TEST(SimilarityTransform, MirroredInputGivesNoReflection) {
  // A mirror image of the template (x → −x): the best similarity cannot reproduce it, but it
  // must still be a rotation + scale, never a flip.
  FivePoints mirrored;
  for (size_t i = 0; i < 5; ++i) mirrored[i] = cv::Point2d(300 - kArcFace112[i].x, kArcFace112[i].y + 20);
  const cv::Matx23d M = similarity_transform(mirrored, kArcFace112);
  expect_similarity_form(M);
}

TEST(SimilarityTransform, NoisyPointsGiveTheLeastSquaresOptimum) {
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0, 1.5);
  FivePoints src = transformed(kArcFace112, make_similarity(1.8, -0.2, 140, 90));
  for (auto& p : src) p += cv::Point2d(noise(rng), noise(rng));
  const cv::Matx23d M = similarity_transform(src, kArcFace112);
  expect_similarity_form(M);
  auto residual = [&](double a, double b, double tx, double ty) {
    const cv::Matx23d X(a, -b, tx, b, a, ty);
    double e = 0;
    for (size_t i = 0; i < 5; ++i) {
      const cv::Point2d d = apply(X, src[i]) - kArcFace112[i];
      e += d.dot(d);
    }
    return e;
  };
  const double a = M(0, 0), b = M(1, 0), tx = M(0, 2), ty = M(1, 2);
  const double best = residual(a, b, tx, ty);
  EXPECT_GT(best, 0.0);
  for (double eps : {1e-3, 1e-4}) {
    EXPECT_GE(residual(a + eps, b, tx, ty), best);
    EXPECT_GE(residual(a - eps, b, tx, ty), best);
    EXPECT_GE(residual(a, b + eps, tx, ty), best);
    EXPECT_GE(residual(a, b - eps, tx, ty), best);
    EXPECT_GE(residual(a, b, tx + eps, ty), best);
    EXPECT_GE(residual(a, b, tx - eps, ty), best);
    EXPECT_GE(residual(a, b, tx, ty + eps), best);
    EXPECT_GE(residual(a, b, tx, ty - eps), best);
  }
}

TEST(SimilarityTransform, CoincidentSourcePointsFallBackToTranslation) {
  FivePoints same;
  same.fill(cv::Point2d(10, 20));
  const cv::Matx23d M = similarity_transform(same, kArcFace112);
  for (int c : {0, 1, 2}) EXPECT_TRUE(std::isfinite(M(0, c)) && std::isfinite(M(1, c)));
  EXPECT_DOUBLE_EQ(M(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(M(1, 1), 1.0);
}

// ---------------------------------------------------------------- warp_crop

TEST(WarpCrop, TranslationMovesPixels) {
  cv::Mat img(200, 200, CV_8UC3, cv::Scalar(0, 0, 0));
  img.at<cv::Vec3b>(60, 50) = cv::Vec3b(255, 10, 20);
  const cv::Matx23d M(1, 0, -40, 0, 1, -30);  // image (50, 60) → crop (10, 30)
  const cv::Mat crop = warp_crop(img, M, 112);
  ASSERT_EQ(crop.size(), cv::Size(112, 112));
  ASSERT_EQ(crop.type(), CV_8UC3);
  EXPECT_EQ(crop.at<cv::Vec3b>(30, 10), cv::Vec3b(255, 10, 20));
  EXPECT_EQ(cv::countNonZero(crop.reshape(1)), 3);
}

TEST(WarpCrop, OutsideTheImageIsBlack) {
  cv::Mat img(50, 50, CV_8UC3, cv::Scalar(200, 200, 200));
  const cv::Mat crop = warp_crop(img, cv::Matx23d(1, 0, 0, 0, 1, 0), 112);
  EXPECT_EQ(crop.at<cv::Vec3b>(10, 10), cv::Vec3b(200, 200, 200));
  EXPECT_EQ(crop.at<cv::Vec3b>(100, 100), cv::Vec3b(0, 0, 0));
}

// ---------------------------------------------------------------- template similarity

TEST(TemplateSimilarity, DotProductOfMatchingTemplates) {
  const FaceTemplate a{"mobilefacenet", 1, {0.6f, 0.8f, 0.0f}};
  const FaceTemplate b{"mobilefacenet", 1, {0.0f, 0.6f, 0.8f}};
  EXPECT_NEAR(similarity(a, a), 1.0, 1e-6);
  EXPECT_NEAR(similarity(a, b), 0.48, 1e-6);
  EXPECT_NEAR(similarity(a, b), similarity(b, a), 1e-12);
  const FaceTemplate c{"mobilefacenet", 1, {-0.6f, -0.8f, 0.0f}};
  EXPECT_NEAR(similarity(a, c), -1.0, 1e-6);
}

TEST(TemplateSimilarity, MismatchedModelsGiveMinusTwo) {
  const FaceTemplate a{"mobilefacenet", 1, {0.6f, 0.8f}};
  EXPECT_DOUBLE_EQ(similarity(a, FaceTemplate{"arcface-r100", 1, {0.6f, 0.8f}}), -2.0);
  EXPECT_DOUBLE_EQ(similarity(a, FaceTemplate{"mobilefacenet", 2, {0.6f, 0.8f}}), -2.0);
  EXPECT_DOUBLE_EQ(similarity(a, FaceTemplate{"mobilefacenet", 1, {0.6f, 0.8f, 0.0f}}), -2.0);
  EXPECT_DOUBLE_EQ(similarity(a, FaceTemplate{}), -2.0);
}

}  // namespace
}  // namespace fv::face
