// The identification figures the index benchmark reports (bench/harness/identification.h):
// known lists give known rates, and a benchmark run with LFW-shaped templates reports them for
// the index and for the exact lists of the same gallery.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "bench/harness/identification.h"
#include "bench/harness/index_harness.h"

namespace fv::index {
namespace {

namespace fs = std::filesystem;

CandidateList list(std::vector<Id> ids, std::vector<float> scores) { return {std::move(ids), std::move(scores)}; }

TEST(IdentificationFigures, KnownListsGiveKnownRates) {
  // Mates 1, 2, 3, 4: first, first, second, absent.
  const std::vector<CandidateList> mated = {list({1, 9}, {0.9f, 0.3f}), list({2, 9}, {0.5f, 0.2f}),
                                            list({9, 3}, {0.8f, 0.7f}), list({8, 9}, {0.6f, 0.5f})};
  const std::vector<Id> mates = {1, 2, 3, 4};
  // Ten non-mated searches whose best scores are 0.05, 0.15, ..., 0.95.
  std::vector<CandidateList> nonmated;
  for (int i = 0; i < 10; ++i) nonmated.push_back(list({100 + i}, {0.05f + 0.1f * i}));
  const auto f = identification_figures(mated, mates, nonmated, {0.1, 0.0});
  EXPECT_EQ(f.mated, 4u);
  EXPECT_EQ(f.nonmated, 10u);
  EXPECT_DOUBLE_EQ(f.mate_rank1, 0.5);
  EXPECT_DOUBLE_EQ(f.mate_in_list, 0.75);
  ASSERT_EQ(f.points.size(), 2u);
  // FPIR 10 %: one false positive allowed, so the threshold sits just above the second best
  // non-mated score (0.85); mates at 0.9 pass, 0.5 and 0.7 do not, the absent one never does.
  EXPECT_NEAR(f.points[0].threshold, 0.85, 1e-6);
  EXPECT_GT(f.points[0].threshold, 0.85f);
  EXPECT_DOUBLE_EQ(f.points[0].fpir, 0.1);
  EXPECT_DOUBLE_EQ(f.points[0].fnir, 0.75);
  // FPIR 0: above the best non-mated score (0.95): every mate is missed.
  EXPECT_GT(f.points[1].threshold, 0.95f);
  EXPECT_DOUBLE_EQ(f.points[1].fpir, 0.0);
  EXPECT_DOUBLE_EQ(f.points[1].fnir, 1.0);
}

TEST(IdentificationFigures, NoNonMatedSearchesMeansNoThreshold) {
  const auto f = identification_figures({list({1}, {0.2f})}, {1}, {}, {0.01});
  ASSERT_EQ(f.points.size(), 1u);
  EXPECT_DOUBLE_EQ(f.points[0].threshold, -1.0);
  EXPECT_DOUBLE_EQ(f.points[0].fnir, 0.0);
  EXPECT_DOUBLE_EQ(f.mate_rank1, 1.0);
}

TEST(IdentificationFigures, RecallAboveThresholdCountsOnlyStrongExactCandidates) {
  const std::vector<CandidateList> truth = {list({1, 2, 3}, {0.9f, 0.6f, 0.2f}), list({4, 5}, {0.7f, 0.1f})};
  const std::vector<CandidateList> got = {list({1, 3}, {0.9f, 0.2f}), list({4, 6}, {0.7f, 0.6f})};
  size_t counted = 0;
  // Above 0.5: ids 1, 2 and 4; the index returns 1 and 4.
  EXPECT_DOUBLE_EQ(recall_above_threshold(truth, got, 0.5, &counted), 2.0 / 3.0);
  EXPECT_EQ(counted, 3u);
  EXPECT_DOUBLE_EQ(recall_above_threshold(truth, got, 0.95, &counted), 1.0);
  EXPECT_EQ(counted, 0u);
}

// A benchmark run with LFW-layout templates: identities with two or more images give the
// gallery and the mated searches, single-image identities the non-mated ones; the exact index
// reports the same figures as the exact lists.
TEST(IdentificationFigures, BenchReportsTheIndexAndTheExactScanSideBySide) {
  const fs::path dir = fs::temp_directory_path() / ("fv_ident_fig_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path jsonl = dir / "templates.jsonl";
  {
    std::mt19937 rng(5);
    std::normal_distribution<float> g(0, 1);
    std::ofstream out(jsonl);
    constexpr int kDim = 32;
    auto write = [&](const std::string& who, int photo, const std::vector<float>& centre, float noise) {
      std::vector<float> v(kDim);
      double n = 0;
      for (int i = 0; i < kDim; ++i) { v[i] = centre[i] + noise * g(rng); n += v[i] * v[i]; }
      out << "{\"file\":\"/lfw/" << who << "/" << who << "_" << photo << ".jpg\",\"width\":100,\"height\":100,\"faces\":[{\"box\":[40,40,20,20],"
          << "\"model\":\"test-model\",\"template\":[";
      for (int i = 0; i < kDim; ++i) out << (i ? "," : "") << v[i] / std::sqrt(n);
      out << "]}]}\n";
    };
    for (int p = 0; p < 60; ++p) {
      std::vector<float> c(kDim);
      for (auto& x : c) x = g(rng);
      const int photos = p < 40 ? 3 : 1;  // 40 identities with mates, 20 single-image ones
      for (int k = 0; k < photos; ++k) write(std::to_string(p).insert(0, 1, 'P'), k, c, 0.3f);
    }
  }
  BenchConfig c;
  c.size = 2000;
  c.dim = 32;
  c.kind = "exact";
  c.threads = {1};
  c.queries = 1000;
  c.removals = 0;
  c.lfw = jsonl.string();
  c.list = 20;
  c.candidate_threshold = 0.5;
  auto r = run_index_bench(c, production_factory());
  fs::remove_all(dir);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r->contains("identification"));
  const auto& id = (*r)["identification"];
  EXPECT_EQ(id["mated"], 80u);     // 40 identities × 2 probes
  EXPECT_EQ((*r)["queries"], 80u) << "the timed searches are the mated ones alone";
  EXPECT_EQ(id["nonmated"], 20u);  // the single-image identities, kept out of the gallery
  EXPECT_EQ(id["list"], 20u);
  EXPECT_GT(id["exact_float32"]["mate_at_rank1"].get<double>(), 0.9);
  // The exact int8 scan returns what the float32 lists hold, to int8 rounding.
  EXPECT_NEAR(id["index"]["mate_at_rank1"].get<double>(), id["exact_float32"]["mate_at_rank1"].get<double>(), 0.03);
  EXPECT_GT(id["candidates_above_threshold"].get<size_t>(), 0u);
  EXPECT_GT(id["recall_above_threshold"].get<double>(), 0.95);
  ASSERT_EQ(id["exact_float32"]["operating_points"].size(), 2u);
  EXPECT_DOUBLE_EQ(id["exact_float32"]["operating_points"][0]["fpir_target"].get<double>(), 0.01);
}

}  // namespace
}  // namespace fv::index
