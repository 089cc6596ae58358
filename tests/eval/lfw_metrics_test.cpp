// LFW protocol: pairs files (View 1 and View 2), thresholds, accuracy, TAR@FAR, AUC, k-fold.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "support/temp_file.h"
#include "eval/lfw.h"

namespace fv::eval {
namespace {

using test::TempFile;

ScoredPair sp(double score, bool same, int fold = 0, bool missing = false) {
  ScoredPair p;
  p.score = score;
  p.same = same;
  p.fold = fold;
  p.missing = missing;
  return p;
}

// ---------------------------------------------------------------- pairs files

TEST(ReadPairs, ViewOneHasOneFold) {
  TempFile f("3\n"
             "Abel_Pacheco\t1\t4\n"
             "Akhmed_Zakayev\t1\t3\n"
             "Abdel_Madi_Shabneh\t1\tDean_Barker\t1\n");
  auto r = read_pairs(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->folds, 1);
  ASSERT_EQ(r->pairs.size(), 3u);
  const LfwPair& a = r->pairs[0];
  EXPECT_EQ(a.name_a, "Abel_Pacheco");
  EXPECT_EQ(a.name_b, "Abel_Pacheco");
  EXPECT_EQ(a.index_a, 1);
  EXPECT_EQ(a.index_b, 4);
  EXPECT_TRUE(a.same);
  const LfwPair& c = r->pairs[2];
  EXPECT_EQ(c.name_a, "Abdel_Madi_Shabneh");
  EXPECT_EQ(c.index_a, 1);
  EXPECT_EQ(c.name_b, "Dean_Barker");
  EXPECT_EQ(c.index_b, 1);
  EXPECT_FALSE(c.same);
  for (const auto& p : r->pairs) EXPECT_EQ(p.fold, 0);
}

TEST(ReadPairs, ViewTwoAssignsFoldsInBlocksOf600) {
  std::string s = "10\t300\n";
  for (int fold = 0; fold < 10; ++fold) {
    for (int i = 0; i < 300; ++i) s += "Person_" + std::to_string(fold) + "\t" + std::to_string(i + 1) + "\t" +
                                       std::to_string(i + 2) + "\n";
    for (int i = 0; i < 300; ++i) s += "A_" + std::to_string(fold) + "\t1\tB_" + std::to_string(i) + "\t2\n";
  }
  TempFile f(s);
  auto r = read_pairs(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->folds, 10);
  ASSERT_EQ(r->pairs.size(), 6000u);
  EXPECT_EQ(r->pairs[0].fold, 0);
  EXPECT_EQ(r->pairs[599].fold, 0);
  EXPECT_EQ(r->pairs[600].fold, 1);
  EXPECT_EQ(r->pairs[5999].fold, 9);
  std::vector<int> per_fold(10, 0), same_per_fold(10, 0);
  for (size_t i = 0; i < r->pairs.size(); ++i) {
    const auto& p = r->pairs[i];
    ASSERT_GE(p.fold, 0);
    ASSERT_LT(p.fold, 10);
    ++per_fold[p.fold];
    same_per_fold[p.fold] += p.same;
    // The fold recorded in the names must be the one assigned.
    EXPECT_EQ(p.name_a.back() - '0', p.fold) << "pair " << i;
  }
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(per_fold[k], 600);
    EXPECT_EQ(same_per_fold[k], 300);
  }
  EXPECT_EQ(r->pairs[300].name_b, "B_0");
  EXPECT_FALSE(r->pairs[300].same);
}

TEST(ReadPairs, SmallViewTwoHeaderWithSpaces) {
  TempFile f("2 1\nA 1 2\nB 1 C 1\nD 3 4\nE 2 F 5\n");
  auto r = read_pairs(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->folds, 2);
  ASSERT_EQ(r->pairs.size(), 4u);
  EXPECT_EQ(r->pairs[1].fold, 0);
  EXPECT_EQ(r->pairs[2].fold, 1);
  EXPECT_EQ(r->pairs[3].fold, 1);
}

TEST(ReadPairs, WindowsLineEndingsAndBlankLines) {
  TempFile f("2\r\nAnn\t1\t2\r\n\r\nBob\t3\tCid\t4\r\n");
  auto r = read_pairs(f.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->pairs.size(), 2u);
  EXPECT_EQ(r->pairs[0].name_a, "Ann");
  EXPECT_EQ(r->pairs[0].index_b, 2);
  EXPECT_EQ(r->pairs[1].name_b, "Cid");
  EXPECT_EQ(r->pairs[1].index_b, 4);
}

TEST(ReadPairs, WrongFieldCountIsCorruptData) {
  for (const char* bad : {"2\nAnn\t1\t2\nBob\t3\n", "2\nAnn\t1\t2\nBob\t3\tCid\t4\t5\n"}) {
    TempFile f(bad);
    auto r = read_pairs(f.path());
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
    EXPECT_NE(r.status().message().find(":3:"), std::string::npos) << r.status().message();
  }
}

TEST(ReadPairs, NonNumericIndexIsCorruptData) {
  TempFile f("1\nAnn\tone\t2\n");
  auto r = read_pairs(f.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
}

// Regression (was a bug in read_pairs, std::stoi on the index fields): stoi stopped at the
// first non-digit, so "4x" is read as 4 and "2.5" as 2; the malformed line is accepted and names an
// image the file never meant, instead of failing with "image index is not a number".
TEST(ReadPairs, IndexWithTrailingGarbageIsCorruptData) {
  for (const char* bad : {"1\nAnn\t1\t4x\n", "1\nAnn\t2.5\t3\n", "1\nAnn\t1\tBob\t7_\n"}) {
    TempFile f(bad);
    auto r = read_pairs(f.path());
    EXPECT_FALSE(r.is_ok()) << "malformed index accepted in " << bad;
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
    }
  }
}

TEST(ReadPairs, EmptyOrHeaderOnlyIsCorruptAndMissingIsNotFound) {
  TempFile empty("");
  auto e = read_pairs(empty.path());
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().code(), StatusCode::kCorruptData);
  TempFile header_only("10\t300\n");
  auto h = read_pairs(header_only.path());
  ASSERT_FALSE(h.is_ok());
  EXPECT_EQ(h.status().code(), StatusCode::kCorruptData);
  auto m = read_pairs(std::filesystem::temp_directory_path() / "fv_lfw_test_no_such_file.txt");
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
}

TEST(LfwImagePath, FormatsFourDigitIndex) {
  EXPECT_EQ(lfw_image_path("/data/lfw", "Abel_Pacheco", 1),
            std::filesystem::path("/data/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg"));
  EXPECT_EQ(lfw_image_path("lfw", "George_W_Bush", 530).string(), "lfw/George_W_Bush/George_W_Bush_0530.jpg");
  EXPECT_EQ(lfw_image_path("lfw", "X", 12345).filename().string(), "X_12345.jpg");
}

// ---------------------------------------------------------------- thresholds and accuracy

TEST(FitThreshold, SeparableScoresGiveFullAccuracy) {
  std::vector<ScoredPair> v;
  for (int i = 0; i < 50; ++i) v.push_back(sp(0.6 + 0.005 * i, true));
  for (int i = 0; i < 50; ++i) v.push_back(sp(-0.2 + 0.007 * i, false));  // max 0.143
  const double t = fit_threshold(v);
  EXPECT_GT(t, 0.143);
  EXPECT_LE(t, 0.6);
  EXPECT_NEAR(t, (0.143 + 0.6) / 2, 1e-9);  // midpoint of the gap
  EXPECT_DOUBLE_EQ(accuracy_at(v, t), 1.0);
}

TEST(FitThreshold, PicksTheBestOfOverlappingScores) {
  // Sorted: d0.1 d0.2 s0.3 d0.4 s0.5 s0.6. Best: between 0.2 and 0.3 (5/6) or 0.4 and 0.5 (5/6).
  std::vector<ScoredPair> v = {sp(0.1, false), sp(0.2, false), sp(0.3, true),
                               sp(0.4, false), sp(0.5, true),  sp(0.6, true)};
  const double t = fit_threshold(v);
  EXPECT_NEAR(accuracy_at(v, t), 5.0 / 6, 1e-12);
}

TEST(FitThreshold, AllSameOrAllDifferent) {
  std::vector<ScoredPair> same = {sp(0.3, true), sp(0.5, true)};
  EXPECT_DOUBLE_EQ(accuracy_at(same, fit_threshold(same)), 1.0);
  std::vector<ScoredPair> diff = {sp(0.3, false), sp(0.5, false)};
  EXPECT_DOUBLE_EQ(accuracy_at(diff, fit_threshold(diff)), 1.0);
}

TEST(FitThreshold, IgnoresMissingPairs) {
  std::vector<ScoredPair> v = {sp(0.9, true), sp(0.1, false), sp(0.0, true, 0, /*missing=*/true),
                               sp(0.95, false, 0, /*missing=*/true)};
  const double t = fit_threshold(v);
  EXPECT_GT(t, 0.1);
  EXPECT_LT(t, 0.9);
}

TEST(AccuracyAt, MissingPairsCountAsErrors) {
  std::vector<ScoredPair> v = {sp(0.9, true), sp(0.1, false), sp(0.9, true, 0, true), sp(0.1, false, 0, true)};
  // Scores of missing pairs would be "right" at 0.5, but a missing face is an error.
  EXPECT_DOUBLE_EQ(accuracy_at(v, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(accuracy_at({}, 0.5), 0.0);
}

TEST(AccuracyAt, ScoreEqualToThresholdMeansSame) {
  EXPECT_DOUBLE_EQ(accuracy_at({sp(0.5, true)}, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_at({sp(0.5, false)}, 0.5), 0.0);
}

// ---------------------------------------------------------------- TAR@FAR, ROC, AUC

// 1000 impostors 0.000 … 0.999; 12 genuine pairs, 2 of them missing.
std::vector<ScoredPair> tar_fixture() {
  std::vector<ScoredPair> v;
  for (int i = 0; i < 1000; ++i) v.push_back(sp(i / 1000.0, false));
  for (int i = 0; i < 5; ++i) v.push_back(sp(0.995, true));
  for (int i = 0; i < 3; ++i) v.push_back(sp(0.9895, true));
  for (int i = 0; i < 2; ++i) v.push_back(sp(0.5, true));
  for (int i = 0; i < 2; ++i) v.push_back(sp(0.99, true, 0, /*missing=*/true));
  return v;
}

TEST(TarAtFar, ThresholdAdmitsExactlyTheAllowedImpostors) {
  const auto v = tar_fixture();
  const RocPoint r = tar_at_far(v, 1e-2);  // 10 impostors allowed: 0.990 … 0.999
  EXPECT_DOUBLE_EQ(r.far, 0.01);
  EXPECT_GT(r.threshold, 0.989);
  EXPECT_LE(r.threshold, 0.990);
  size_t fa = 0;
  for (const auto& p : v) fa += !p.same && !p.missing && p.score >= r.threshold;
  EXPECT_EQ(fa, 10u);
  EXPECT_NEAR(r.tar, 8.0 / 12, 1e-12);  // 0.995 ×5 and 0.9895 ×3 accepted; missing genuine count
}

TEST(TarAtFar, TighterFarLowersTar) {
  const auto v = tar_fixture();
  const RocPoint r = tar_at_far(v, 5e-3);  // 5 impostors allowed: 0.995 … 0.999; threshold just above 0.994
  EXPECT_DOUBLE_EQ(r.far, 0.005);
  EXPECT_NEAR(r.tar, 5.0 / 12, 1e-12);
  const RocPoint z = tar_at_far(v, 0);  // no impostor allowed: threshold above 0.999
  EXPECT_DOUBLE_EQ(z.far, 0.0);
  EXPECT_DOUBLE_EQ(z.tar, 0.0);
  EXPECT_GT(z.threshold, 0.999);
}

TEST(TarAtFar, FarOfOneAcceptsEveryFoundGenuinePair) {
  const RocPoint r = tar_at_far(tar_fixture(), 1.0);
  EXPECT_DOUBLE_EQ(r.far, 1.0);
  EXPECT_NEAR(r.tar, 10.0 / 12, 1e-12);
}

TEST(TarAtFar, NoImpostorsGivesZero) {
  const RocPoint r = tar_at_far({sp(0.9, true)}, 1e-3);
  EXPECT_DOUBLE_EQ(r.tar, 0.0);
}

TEST(RocCurve, FourPointsWithNonDecreasingTar) {
  const auto roc = roc_curve(tar_fixture());
  ASSERT_EQ(roc.size(), 4u);
  for (size_t i = 1; i < roc.size(); ++i) {
    EXPECT_GE(roc[i].far, roc[i - 1].far);
    EXPECT_GE(roc[i].tar, roc[i - 1].tar);
    EXPECT_LE(roc[i].threshold, roc[i - 1].threshold);
  }
}

TEST(Auc, PerfectSeparationIsOne) {
  std::vector<ScoredPair> v;
  for (int i = 0; i < 100; ++i) v.push_back(sp(0.5 + i * 0.001, true));
  for (int i = 0; i < 100; ++i) v.push_back(sp(0.4 - i * 0.001, false));
  EXPECT_DOUBLE_EQ(auc(v), 1.0);
}

TEST(Auc, ReversedSeparationIsZero) {
  std::vector<ScoredPair> v = {sp(0.1, true), sp(0.2, true), sp(0.8, false), sp(0.9, false)};
  EXPECT_DOUBLE_EQ(auc(v), 0.0);
}

TEST(Auc, IdenticalDistributionsAreAboutOneHalf) {
  std::mt19937 rng(42);
  std::normal_distribution<double> d(0.3, 0.1);
  std::vector<ScoredPair> v;
  for (int i = 0; i < 20000; ++i) v.push_back(sp(d(rng), i % 2 == 0));
  EXPECT_NEAR(auc(v), 0.5, 0.02);
}

TEST(Auc, TiesCountHalf) {
  std::vector<ScoredPair> v = {sp(0.5, true), sp(0.5, false), sp(0.5, true), sp(0.5, false)};
  EXPECT_DOUBLE_EQ(auc(v), 0.5);
  // One genuine above one tied pair: 1 win + 0.5 tie + 1 win + 0 ... computed by hand.
  std::vector<ScoredPair> w = {sp(0.7, true), sp(0.5, true), sp(0.5, false), sp(0.2, false)};
  // pairs (g,i): (0.7,0.5)=1 (0.7,0.2)=1 (0.5,0.5)=0.5 (0.5,0.2)=1 → 3.5/4
  EXPECT_DOUBLE_EQ(auc(w), 3.5 / 4);
}

TEST(Auc, MissingGenuineRanksLowest) {
  std::vector<ScoredPair> v = {sp(0.9, true), sp(0.99, true, 0, /*missing=*/true), sp(0.1, false)};
  EXPECT_DOUBLE_EQ(auc(v), 0.5);
}

// ---------------------------------------------------------------- protocols

// Ten folds of 60 pairs; in every fold same pairs score 0.51 … 0.80 and different 0.10 … 0.39.
std::vector<ScoredPair> ten_separable_folds() {
  std::vector<ScoredPair> v;
  for (int k = 0; k < 10; ++k) {
    for (int i = 0; i < 30; ++i) v.push_back(sp(0.51 + 0.01 * i, true, k));
    for (int i = 0; i < 30; ++i) v.push_back(sp(0.10 + 0.01 * i, false, k));
  }
  return v;
}

TEST(EvaluateFolds, SeparableDataIsPerfect) {
  const auto v = ten_separable_folds();
  const VerificationReport r = evaluate_folds(v, 10);
  EXPECT_EQ(r.pairs, 600u);
  EXPECT_EQ(r.missing, 0u);
  EXPECT_EQ(r.folds, 10);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
  EXPECT_NEAR(r.threshold, 0.45, 1e-9);
  EXPECT_DOUBLE_EQ(r.auc, 1.0);
  EXPECT_DOUBLE_EQ(r.tar_at_far_1e3, 1.0);
  EXPECT_EQ(r.roc.size(), 4u);
}

TEST(EvaluateFolds, OneErrorInOneFold) {
  auto v = ten_separable_folds();
  v[3 * 60].score = 0.05;  // a same pair in fold 3 scoring like an impostor
  v.push_back(sp(0.7, false, 7, /*missing=*/true));  // fold 7 gains a 61st pair, missing
  const VerificationReport r = evaluate_folds(v, 10);
  EXPECT_EQ(r.pairs, 601u);
  EXPECT_EQ(r.missing, 1u);
  std::vector<double> acc(10, 1.0);
  acc[3] = 59.0 / 60;
  acc[7] = 60.0 / 61;
  double mean = 0, var = 0;
  for (double a : acc) mean += a / 10;
  for (double a : acc) var += (a - mean) * (a - mean) / 10;
  EXPECT_NEAR(r.accuracy, mean, 1e-12);
  EXPECT_NEAR(r.accuracy_std, std::sqrt(var), 1e-12);
  EXPECT_GT(r.accuracy_std, 0.0);
  EXPECT_NEAR(r.threshold, 0.45, 1e-9);  // every training set still splits at 0.39 | 0.51
  EXPECT_LT(r.auc, 1.0);
}

TEST(EvaluateFolds, EmptyFoldsAreSkipped) {
  auto v = ten_separable_folds();
  const VerificationReport r = evaluate_folds(v, 12);  // folds 10 and 11 have no pairs
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_EQ(r.folds, 12);
}

TEST(EvaluateTrainTest, ThresholdFromTrainAppliedToTest) {
  std::vector<ScoredPair> train = {sp(0.8, true), sp(0.6, true), sp(0.2, false), sp(0.4, false)};  // t = 0.5
  std::vector<ScoredPair> test = {sp(0.55, true), sp(0.45, true), sp(0.3, false), sp(0.52, false),
                                  sp(0.9, true, 0, /*missing=*/true)};
  const VerificationReport r = evaluate_train_test(train, test);
  EXPECT_NEAR(r.threshold, 0.5, 1e-12);
  EXPECT_EQ(r.pairs, 5u);
  EXPECT_EQ(r.missing, 1u);
  EXPECT_DOUBLE_EQ(r.accuracy, 2.0 / 5);  // 0.55 same ✓, 0.45 same ✗, 0.3 diff ✓, 0.52 diff ✗, missing ✗
  EXPECT_EQ(r.roc.size(), 4u);
}

}  // namespace
}  // namespace fv::eval
