// `facevault eval cohorts` end to end on a crafted template set: every pair's cosine is chosen
// (image a = e0, image b = c·e0 + sqrt(1-c²)·e1, so cos = c exactly up to float rounding), with
// c = 0.9 (a match) or 0.05 (a non-match) — far on either side of the operating thresholds
// (about 0.34 at FMR 1e-3 and 0.42 at 1e-4 for the model named), so the known error counts per
// cohort must come out as known rates and Clopper-Pearson intervals. --templates avoids the
// pipeline, so no model is needed; the thresholds come from the built-in calibration table.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eval/lfw.h"
#include "support/run.h"

namespace fv {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kModel = "faceplugin-mobilefacenet-512";
constexpr double kMatch = 0.9, kNonMatch = 0.05;

std::string person(char group, int i) { return std::string(1, group) + "_Person_" + std::to_string(10 + i % 10); }

// Two-sided Fisher p-value of [[k, n-k], [0, n]] (equal group sizes, all errors in one group):
// only the two extreme tables (k errors in one group or the other) are no more likely than the
// observed one, so p = 2·C(n, k)·C(n, 0) / C(2n, k).
double fisher_all_in_one(int k, int n) {
  double p = 2;
  for (int i = 0; i < k; ++i) p *= double(n - i) / double(2 * n - i);
  return p;
}

class EvalCohorts : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fv-eval-cohorts-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    root_ = dir_ / "images";  // never created: --templates stands for the images
    std::ostringstream pairs, templates;
    std::map<std::string, int> next;  // image index per identity: every pair uses two fresh images
    size_t count = 0;
    auto line = [&](const std::string& name, int index, double c, double s, bool face) {
      json j = {{"file", eval::lfw_image_path(root_, name, index).string()}, {"width", 100}, {"height", 100}};
      j["faces"] = json::array();
      if (face) {
        std::vector<float> t(512, 0.0f);
        t[0] = float(c);
        t[1] = float(s);
        j["faces"].push_back({{"box", {25, 25, 50, 50}}, {"model", kModel}, {"template", t}});
      }
      templates << j.dump() << "\n";
    };
    // face_b = false: image b has no face (a line with "faces": [] as `facevault embed` writes).
    auto add = [&](const std::string& a, const std::string& b, double cos, bool face_b = true) {
      const int ia = ++next[a], ib = ++next[b];
      if (a == b) pairs << a << "\t" << ia << "\t" << ib << "\n";
      else pairs << a << "\t" << ia << "\t" << b << "\t" << ib << "\n";
      line(a, ia, 1, 0, true);
      line(b, ib, cos, std::sqrt(1 - cos * cos), face_b);
      ++count;
    };
    // Group A genuine: 40 pairs, 3 scored below the threshold + 1 with no face = 4 false non-matches.
    for (int i = 0; i < 40; ++i) add(person('A', i), person('A', i), i < 3 ? kNonMatch : kMatch, i != 3);
    // Group B genuine: 40 pairs, none rejected.
    for (int i = 0; i < 40; ++i) add(person('B', i), person('B', i), kMatch);
    // Group A impostors: 61 pairs, 3 false matches, 1 with no face (left out of the FMR) → 3/60.
    for (int i = 0; i < 61; ++i) add(person('A', i), person('A', i + 1 + (i / 10) % 9), i < 3 ? kMatch : kNonMatch, i != 3);
    // Group B impostors: 60 pairs, no false match.
    for (int i = 0; i < 60; ++i) add(person('B', i), person('B', i + 1 + (i / 10) % 9), kNonMatch);
    // A vs B impostors (the cross-cohort row): 20 pairs, 2 false matches.
    for (int i = 0; i < 20; ++i) add(person('A', i), person('B', i), i < 2 ? kMatch : kNonMatch);
    // An identity the labels file does not name: 2 genuine pairs, accepted.
    for (int i = 0; i < 2; ++i) add("Nobody_Labelled", "Nobody_Labelled", kMatch);
    pairs_count_ = count;
    std::ofstream(dir_ / "pairs.txt") << count << "\n" << pairs.str();
    std::ofstream(dir_ / "templates.jsonl") << templates.str();
    std::string labels = "identity,group\n";
    for (int i = 0; i < 10; ++i) labels += person('A', i) + ",A\n" + person('B', i) + ",B\n";
    std::ofstream(dir_ / "labels.csv") << labels;
    std::ofstream(dir_ / "conflict.csv") << labels << person('A', 3) << ",B\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  test::RunResult run(const std::string& labels, std::vector<std::string> extra = {}, bool keep_stderr = false) {
    std::vector<std::string> args = {"eval", "cohorts", "--root", root_.string(), "--pairs", (dir_ / "pairs.txt").string(),
                                     "--cohorts", labels, "--templates", (dir_ / "templates.jsonl").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_facevault(args, keep_stderr);
  }

  fs::path dir_, root_;
  size_t pairs_count_ = 0;
};

struct Expected {
  const char* metric;
  const char* cohort;
  const char* kind;
  size_t errors, trials, no_face;
  double ci_low, ci_high;  // 95 % Clopper-Pearson
};

// Intervals from python3 + mpmath (30 digits): bisection on the regularized incomplete beta,
// low = BetaInv(0.025; k, n-k+1) (0 when k = 0), high = BetaInv(0.975; k+1, n-k) (1 when k = n);
// for k = 0 the upper bound is also the closed form 1 - 0.025^(1/n), checked below.
const Expected kExpected[] = {
    {"fnmr", "A", "cohort", 4, 40, 1, 0.027925415294219309, 0.2366373998760999},
    {"fnmr", "B", "cohort", 0, 40, 0, 0, 0.088097302878802391},
    {"fnmr", "unlabelled", "unlabelled", 0, 2, 0, 0, 0.84188611699158103},
    {"fmr", "A", "cohort", 3, 60, 1, 0.010432329644348223, 0.13924324672107279},
    {"fmr", "B", "cohort", 0, 60, 0, 0, 0.059629492286166927},
    {"fmr", "A vs B", "cross", 2, 20, 0, 0.012348527170294802, 0.31698271401908235},
};

TEST_F(EvalCohorts, KnownErrorCountsGiveKnownRatesAndIntervals) {
  const fs::path html = dir_ / "report.html", png = dir_ / "report.png";
  auto r = run((dir_ / "labels.csv").string(), {"--json", "--html", html.string(), "--png", png.string()}, false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["model"], kModel);
  EXPECT_EQ(j["pairs"].get<size_t>(), pairs_count_);
  EXPECT_EQ(j["images"].get<size_t>(), 2 * pairs_count_);
  EXPECT_EQ(j["images_without_face"].get<size_t>(), 2u);
  EXPECT_EQ(j["interval"], "clopper-pearson");
  // Default operating points; the crafted cosines must straddle each threshold widely.
  ASSERT_EQ(j["operating_points"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["operating_points"][0]["target_fmr"].get<double>(), 1e-3);
  EXPECT_DOUBLE_EQ(j["operating_points"][1]["target_fmr"].get<double>(), 1e-4);
  for (const auto& op : j["operating_points"]) {
    EXPECT_GT(op["threshold"].get<double>(), kNonMatch + 0.1);
    EXPECT_LT(op["threshold"].get<double>(), kMatch - 0.1);
  }
  ASSERT_EQ(j["attributes"].size(), 1u);
  const json& at = j["attributes"][0];
  EXPECT_EQ(at["attribute"], "group");
  EXPECT_EQ(at["cohorts"], json::array({"A", "B"}));
  // Per operating point: fnmr A, B, unlabelled (no cross-cohort genuine pair), fmr A, B, A vs B.
  ASSERT_EQ(at["rows"].size(), 12u) << at["rows"].dump(1);
  for (double target : {1e-3, 1e-4}) {
    for (const auto& e : kExpected) {
      SCOPED_TRACE(std::string(e.metric) + " " + e.cohort + " at " + std::to_string(target));
      const json* row = nullptr;
      for (const auto& x : at["rows"])
        if (x["metric"] == e.metric && x["cohort"] == e.cohort && x["target_fmr"].get<double>() == target) row = &x;
      ASSERT_NE(row, nullptr);
      EXPECT_EQ((*row)["kind"], e.kind);
      EXPECT_EQ((*row)["errors"].get<size_t>(), e.errors);
      EXPECT_EQ((*row)["trials"].get<size_t>(), e.trials);
      EXPECT_EQ((*row)["no_face"].get<size_t>(), e.no_face);
      EXPECT_DOUBLE_EQ((*row)["rate"].get<double>(), double(e.errors) / e.trials);
      EXPECT_NEAR((*row)["ci_low"].get<double>(), e.ci_low, 1e-9);
      EXPECT_NEAR((*row)["ci_high"].get<double>(), e.ci_high, 1e-9);
      if (e.errors == 0) { EXPECT_NEAR(e.ci_high, 1 - std::pow(0.025, 1.0 / e.trials), 1e-12); }
      EXPECT_EQ((*row)["n_too_small"].get<bool>(), e.trials < 30);
      if (std::string(e.kind) != "cohort") {
        EXPECT_FALSE((*row)["tested"].get<bool>());
        EXPECT_FALSE(row->contains("rest"));
        continue;
      }
      // Each cohort against the other: the errors are all in A, the 2×2 table is the same for both.
      const int k = std::string(e.metric) == "fnmr" ? 4 : 3, n = std::string(e.metric) == "fnmr" ? 40 : 60;
      EXPECT_TRUE((*row)["tested"].get<bool>());
      EXPECT_NEAR((*row)["p_value"].get<double>(), fisher_all_in_one(k, n), 1e-9);
      EXPECT_NEAR((*row)["p_holm"].get<double>(), fisher_all_in_one(k, n), 1e-9);
      EXPECT_FALSE((*row)["significant"].get<bool>());  // 0.116 (fnmr) and 0.244 (fmr)
      EXPECT_EQ((*row)["rest"]["errors"].get<size_t>(), size_t(k) - e.errors);
      EXPECT_EQ((*row)["rest"]["trials"].get<size_t>(), size_t(n));
    }
  }
  // The reports: both written, the HTML standalone and naming the cross-cohort row.
  ASSERT_TRUE(fs::exists(html));
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(html), 0u);
  EXPECT_GT(fs::file_size(png), 0u);
  std::ifstream in(png, std::ios::binary);
  std::string magic(8, '\0');
  in.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
  std::stringstream page;
  page << std::ifstream(html).rdbuf();
  EXPECT_NE(page.str().find("A vs B"), std::string::npos);
  EXPECT_EQ(page.str().find("<script"), std::string::npos);
}

TEST_F(EvalCohorts, TextOutputListsTheCounts) {
  auto r = run((dir_ / "labels.csv").string(), {"--fmr", "1e-3"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(std::to_string(pairs_count_) + " pairs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4/40"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2/20"), std::string::npos) << r.out;
}

TEST_F(EvalCohorts, AMissingLabelsFileFailsClearly) {
  const std::string missing = (dir_ / "no-such-labels.csv").string();
  auto r = run(missing, {"--json"}, true);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("cannot open labels file " + missing), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"attributes\""), std::string::npos) << "no report on failure: " << r.out;
}

TEST_F(EvalCohorts, AConflictingDuplicateLabelFailsClearly) {
  auto r = run((dir_ / "conflict.csv").string(), {"--json"}, true);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("conflict.csv:22: `" + person('A', 3) + "` is listed again with a different label"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("\"attributes\""), std::string::npos) << "no report on failure: " << r.out;
}

}  // namespace
}  // namespace fv
