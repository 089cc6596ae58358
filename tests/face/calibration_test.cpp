// Calibration: impostor scores → (FMR, threshold) points, and the interpolation between them.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "face/calibration.h"
#include "face/registry.h"

namespace fv::face {
namespace {

// 1,000,000 impostor scores uniform in [-1, 1], from a fixed seed.
const std::vector<float>& uniform_scores() {
  static const std::vector<float> v = [] {
    std::mt19937 rng(20240501);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> s(1'000'000);
    for (auto& x : s) x = d(rng);
    return s;
  }();
  return v;
}

const Calibration& uniform_calibration() {
  static const Calibration c = Calibration::from_impostor_scores(uniform_scores(), "uniform test scores");
  return c;
}

double empirical_fmr(const std::vector<float>& scores, double threshold) {
  size_t n = 0;
  for (float s : scores) n += s >= threshold;
  return double(n) / scores.size();
}

TEST(Calibration, PointsFromAMillionScores) {
  const Calibration& c = uniform_calibration();
  EXPECT_EQ(c.impostor_pairs(), 1'000'000u);
  EXPECT_EQ(c.source(), "uniform test scores");
  // The FMR-1 anchor at the lowest score, then 5e-1, 1e-1, 5e-2, … down to 1e-5 (10 impostors
  // above it); 5e-6 would rest on 5 impostors.
  ASSERT_EQ(c.points().size(), 11u);
  EXPECT_NEAR(c.points().front().fmr, 1.0, 1e-12);
  EXPECT_NEAR(c.points()[1].fmr, 0.5, 1e-12);
  EXPECT_NEAR(c.points().back().fmr, 1e-5, 1e-17);
  for (size_t i = 1; i < c.points().size(); ++i) {
    EXPECT_LT(c.points()[i].fmr, c.points()[i - 1].fmr) << i;
    EXPECT_GE(c.points()[i].threshold, c.points()[i - 1].threshold) << i;
  }
}

TEST(Calibration, EachPointIsTheMeasuredFractionAboveItsThreshold) {
  const Calibration& c = uniform_calibration();
  for (const auto& p : c.points()) {
    EXPECT_NEAR(empirical_fmr(uniform_scores(), p.threshold), p.fmr, p.fmr * 1e-9 + 1e-12) << p.fmr;
    // Uniform on [-1, 1]: P(s >= t) = (1 - t) / 2, so t ≈ 1 - 2·fmr.
    EXPECT_NEAR(p.threshold, 1 - 2 * p.fmr, 6 * std::sqrt(p.fmr / 1e6) * 2 + 1e-6) << p.fmr;
  }
}

TEST(Calibration, ThresholdAtOneInAThousandRoundTrips) {
  const Calibration& c = uniform_calibration();
  const double t = c.threshold_at(1e-3);
  EXPECT_NEAR(t, 0.998, 0.0005);
  EXPECT_NEAR(c.fmr_at(t), 1e-3, 1e-3 * 1e-6);
  EXPECT_NEAR(empirical_fmr(uniform_scores(), t), 1e-3, 1e-4);
}

TEST(Calibration, FmrAtInvertsThresholdAtBetweenPoints) {
  const Calibration& c = uniform_calibration();
  for (double fmr : {0.3, 0.07, 0.02, 2e-3, 7e-4, 3e-4, 2e-5}) {
    const double t = c.threshold_at(fmr);
    EXPECT_NEAR(c.fmr_at(t), fmr, fmr * 1e-6) << fmr;
    // Log-linear interpolation of a (locally) linear tail: within a factor of 2 of the truth.
    const double measured = empirical_fmr(uniform_scores(), t);
    EXPECT_GT(measured, fmr / 2) << fmr;
    EXPECT_LT(measured, fmr * 2) << fmr;
  }
}

TEST(Calibration, FmrAtIsMonotonic) {
  const Calibration& c = uniform_calibration();
  double prev = 2;
  for (double s = -1.2; s <= 1.2; s += 0.0005) {
    const double f = c.fmr_at(s);
    EXPECT_LE(f, prev) << s;
    EXPECT_GT(f, 0) << s;
    prev = f;
  }
  // Dense in the tail, where the points are.
  prev = 2;
  for (double s = 0.99; s <= 1.0; s += 1e-6) {
    const double f = c.fmr_at(s);
    ASSERT_LE(f, prev) << s;
    prev = f;
  }
}

TEST(Calibration, ThresholdAtIsMonotonic) {
  const Calibration& c = uniform_calibration();
  double prev = -2;
  for (double fmr = 0.9; fmr > 1e-7; fmr *= 0.93) {
    const double t = c.threshold_at(fmr);
    EXPECT_GE(t, prev) << fmr;
    prev = t;
  }
}

TEST(Calibration, OutsideThePointsClampsToTheEnds) {
  const Calibration& c = uniform_calibration();
  const auto& last = c.points().back();
  const auto& first = c.points().front();
  EXPECT_DOUBLE_EQ(c.fmr_at(last.threshold), last.fmr);
  EXPECT_DOUBLE_EQ(c.fmr_at(last.threshold + 1e-4), last.fmr);
  EXPECT_DOUBLE_EQ(c.fmr_at(1.0), last.fmr);
  EXPECT_DOUBLE_EQ(c.fmr_at(5.0), last.fmr);
  EXPECT_DOUBLE_EQ(c.fmr_at(first.threshold), first.fmr);
  EXPECT_DOUBLE_EQ(c.fmr_at(-1.0), first.fmr);
  EXPECT_DOUBLE_EQ(c.threshold_at(1e-9), last.threshold);
  EXPECT_DOUBLE_EQ(c.threshold_at(1.5), first.threshold);
}

TEST(Calibration, FpirGrowsWithGallerySize) {
  const Calibration& c = uniform_calibration();
  const double s = c.threshold_at(1e-3);
  EXPECT_NEAR(c.fpir_at(s, 1), c.fmr_at(s), 1e-15);
  EXPECT_DOUBLE_EQ(c.fpir_at(s, 0), 0.0);
  double prev = 0;
  for (size_t n : {1, 10, 100, 1000, 10000, 100000}) {
    const double f = c.fpir_at(s, n);
    EXPECT_GT(f, prev) << n;
    EXPECT_LE(f, 1.0) << n;
    EXPECT_NEAR(f, 1 - std::pow(1 - 1e-3, double(n)), 1e-6) << n;
    prev = f;
  }
  EXPECT_NEAR(c.fpir_at(s, 1000), 1 - std::exp(-1.0), 1e-3);  // ≈ 0.632
}

TEST(Calibration, FewScoresGiveFewPoints) {
  std::vector<float> s100(100);
  for (int i = 0; i < 100; ++i) s100[i] = float(i) / 100;
  const Calibration c100 = Calibration::from_impostor_scores(s100, "100");
  ASSERT_EQ(c100.points().size(), 3u);  // anchor 1.0 (all 100), 0.5 (50 above), 0.1 (10 above)
  EXPECT_NEAR(c100.points()[0].fmr, 1.0, 1e-12);
  EXPECT_NEAR(c100.points()[1].fmr, 0.5, 1e-12);
  EXPECT_FLOAT_EQ(float(c100.points()[1].threshold), 0.50f);  // the 50th highest of 0.00 … 0.99
  EXPECT_NEAR(c100.points()[2].fmr, 0.1, 1e-12);
  EXPECT_FLOAT_EQ(float(c100.points()[2].threshold), 0.90f);

  const Calibration c5 = Calibration::from_impostor_scores({0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, "5");
  EXPECT_TRUE(c5.points().empty());
  EXPECT_EQ(c5.impostor_pairs(), 5u);
  EXPECT_DOUBLE_EQ(c5.fmr_at(0.9), 1.0);  // nothing measured: no claim better than "always"

  const Calibration none = Calibration::from_impostor_scores({}, "none");
  EXPECT_TRUE(none.points().empty());
  EXPECT_DOUBLE_EQ(none.fmr_at(0.5), 1.0);
}

TEST(Calibration, HandBuiltTableInterpolatesLogLinearly) {
  const Calibration c({{1e-2, 0.3}, {1e-4, 0.5}}, "hand", 1000000);
  EXPECT_NEAR(c.fmr_at(0.4), 1e-3, 1e-15);   // halfway in score = geometric mean in FMR
  EXPECT_NEAR(c.threshold_at(1e-3), 0.4, 1e-12);
  EXPECT_NEAR(c.fmr_at(0.35), std::pow(10.0, -2.5), 1e-15);
}

// Every embedder the registry offers has a measured table (else identification mode cannot
// set its FPIR threshold, nor the opt-out check its FMR), and each table is a proper one: FMR
// falling as the threshold rises.
TEST(Calibration, EveryEmbedderHasAMonotoneBuiltinTable) {
  for (const auto& [name, factory] : face::builtin_registry().embedders) {
    const std::string model = face::builtin_embedder_model_id(name);
    auto r = Calibration::builtin(model);
    ASSERT_TRUE(r.is_ok()) << model;
    const auto& pts = r->points();
    ASSERT_GE(pts.size(), 10u) << model;
    for (size_t i = 1; i < pts.size(); ++i) {
      EXPECT_LT(pts[i].fmr, pts[i - 1].fmr) << model;
      EXPECT_GT(pts[i].threshold, pts[i - 1].threshold) << model;
    }
    EXPECT_NEAR(r->fmr_at(r->threshold_at(1e-3)), 1e-3, 1e-9) << model;
  }
}

TEST(Calibration, BuiltinWithoutTableIsNotFound) {
  auto r = Calibration::builtin("no-such-model");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

// Regression (was a bug in from_impostor_scores): a point's threshold is the k-th highest score, so when impostor scores tie (quantised scores, or a constant score given to pairs
// with a face not found) more than k impostors score >= that threshold, and the point's `fmr`
// understates the documented "fraction of impostor pairs scoring >= threshold".
// Here 900 of 1000 impostors score exactly 0: the 0.5 point claims FMR 0.5 at threshold 0, where
// every impostor (FMR 1.0) is accepted; fmr_at(0) reports 0.5.
TEST(Calibration, TiedScoresDoNotUnderstateFmr) {
  std::vector<float> s(1000, 0.0f);
  for (int i = 0; i < 100; ++i) s[i] = 0.5f + 0.001f * i;
  const Calibration c = Calibration::from_impostor_scores(s, "ties");
  for (const auto& p : c.points()) {
    EXPECT_GE(p.fmr, empirical_fmr(s, p.threshold))
        << "point claims FMR " << p.fmr << " at threshold " << p.threshold;
  }
  EXPECT_GE(c.fmr_at(0.0), 1.0) << "every impostor scores >= 0";
}

}  // namespace
}  // namespace fv::face
