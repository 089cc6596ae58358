// The CLI contract: one JSON object per image per line, in input order, errors per file,
// documented exit codes. Runs the real binary.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/paths.h"
#include "support/run.h"

namespace fv {
namespace {

using nlohmann::json;
using test::run_facevault;

std::filesystem::path tmp(const std::string& name) { return std::filesystem::temp_directory_path() / ("fv-cli-" + name); }

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    obama_ = test::golden_dir() / "obama_small/source.jpg";
    two_ = test::golden_dir() / "two_people/source.jpg";
    FV_REQUIRE_PATH(obama_);
    std::ofstream(tmp("text.jpg")) << "this is not an image";
  }
  std::filesystem::path obama_, two_;
};

TEST_F(Cli, DetectPrintsOneLinePerImageInOrderAndGoesOnAfterErrors) {
  auto r = run_facevault({"detect", "--no-progress", obama_.string(), "/nonexistent.jpg", tmp("text.jpg").string(), two_.string()});
  EXPECT_EQ(r.exit_code, 3) << "some inputs failed";
  auto lines = r.lines();
  ASSERT_EQ(lines.size(), 4u);
  auto a = json::parse(lines[0]), missing = json::parse(lines[1]), text = json::parse(lines[2]), b = json::parse(lines[3]);
  EXPECT_EQ(a["file"], obama_.string());
  EXPECT_EQ(a["width"], 320);
  EXPECT_EQ(a["height"], 240);
  ASSERT_EQ(a["faces"].size(), 1u);
  const auto& f = a["faces"][0];
  EXPECT_EQ(f["box"].size(), 4u);
  EXPECT_EQ(f["keypoints"].size(), 5u);
  EXPECT_TRUE(f["quality"].contains("acceptable"));
  EXPECT_FALSE(f.contains("template")) << "detect prints no template";
  EXPECT_NE(missing["error"].get<std::string>().find("no such file"), std::string::npos);
  EXPECT_NE(text["error"].get<std::string>().find("not a recognised image"), std::string::npos);
  EXPECT_EQ(b["faces"].size(), 2u);
}

TEST_F(Cli, EmbedGivesNormalisedTemplatesAndSameOrderWithTwoThreads) {
  std::ofstream(tmp("list.txt")) << obama_.string() << "\n\n# comment\n" << two_.string() << "\n";
  auto r1 = run_facevault({"embed", "--no-progress", "--list", tmp("list.txt").string()});
  auto r2 = run_facevault({"embed", "--no-progress", "--threads", "2", "--list", tmp("list.txt").string()});
  ASSERT_EQ(r1.exit_code, 0);
  ASSERT_EQ(r2.exit_code, 0);
  EXPECT_EQ(r1.out, r2.out) << "output must not depend on the thread count";
  auto lines = r1.lines();
  ASSERT_EQ(lines.size(), 2u);
  auto t = json::parse(lines[0])["faces"][0]["template"].get<std::vector<double>>();
  ASSERT_EQ(t.size(), 512u);
  double n = 0;
  for (double v : t) n += v * v;
  EXPECT_NEAR(n, 1.0, 1e-5);
}

TEST_F(Cli, VerifySamePhotoIsSameAndReportsCalibratedRate) {
  auto r = run_facevault({"verify", "--json", obama_.string(), obama_.string()});
  ASSERT_EQ(r.exit_code, 0);
  auto j = json::parse(r.out);
  EXPECT_NEAR(j["similarity"].get<double>(), 1.0, 1e-5);
  EXPECT_TRUE(j["same"].get<bool>());
  EXPECT_DOUBLE_EQ(j["threshold_fmr"].get<double>(), 1e-4);
  EXPECT_GT(j["threshold"].get<double>(), 0.3);
}

TEST_F(Cli, VerifyDifferentPeopleIsDifferent) {
  auto r = run_facevault({"verify", "--json", obama_.string(), (test::golden_dir() / "Abel_Pacheco_0001/source.jpg").string()});
  ASSERT_EQ(r.exit_code, 0);
  auto j = json::parse(r.out);
  EXPECT_FALSE(j["same"].get<bool>());
  EXPECT_GT(j["score_fmr"].get<double>(), 1e-3);
}

TEST_F(Cli, VerifyWithoutAFaceOrFileFailsWithExitCode2) {
  EXPECT_EQ(run_facevault({"verify", obama_.string(), "/nonexistent.jpg"}).exit_code, 2);
  EXPECT_EQ(run_facevault({"verify", obama_.string(), tmp("text.jpg").string()}).exit_code, 2);
}

TEST_F(Cli, UsageErrorsExitWith1AndHelpDocumentsExitCodes) {
  EXPECT_EQ(run_facevault({"detect", "--threads", "0", obama_.string()}).exit_code, 1);
  EXPECT_EQ(run_facevault({"no-such-command"}).exit_code, 1);
  EXPECT_EQ(run_facevault({"detect"}).exit_code, 1) << "no images";
  auto help = run_facevault({"--help"}, true);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
}

TEST_F(Cli, EvalLfwOnATinyPairsFile) {
  const auto root = test::data_dir() / "lfw/images";
  FV_REQUIRE_PATH(root / "Abel_Pacheco");
  std::ofstream(tmp("pairs.txt")) << "2\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\n";
  auto r = run_facevault({"eval", "lfw", "--json", "--no-progress", "--root", root.string(), "--pairs", tmp("pairs.txt").string()});
  ASSERT_EQ(r.exit_code, 0);
  auto j = json::parse(r.out);
  EXPECT_EQ(j["pairs"], 2);
  EXPECT_EQ(j["missing"], 0);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 1.0);
}

TEST_F(Cli, EvalWithMalformedPairsFileFails) {
  std::ofstream(tmp("bad-pairs.txt")) << "1\nonly-one-field\n";
  auto r = run_facevault({"eval", "lfw", "--root", "/tmp", "--pairs", tmp("bad-pairs.txt").string()});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace fv
