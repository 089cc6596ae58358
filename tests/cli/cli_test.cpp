// The CLI contract: one JSON object per image per line, in input order, errors per file,
// documented exit codes. Runs the real binary.
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/paths.h"
#include "support/run.h"

namespace fv {
namespace {

using nlohmann::json;
using test::run_facevault;

std::filesystem::path tmp(const std::string& name) { return std::filesystem::temp_directory_path() / ("fv-cli-" + name); }

// The scratch files the tests below write, removed once they have all run.
class RemoveScratchFiles : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    for (const char* name : {"text.jpg", "list.txt", "pairs.txt", "bad-pairs.txt"}) std::filesystem::remove(tmp(name), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveScratchFiles = ::testing::AddGlobalTestEnvironment(new RemoveScratchFiles);

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

// Human oversight through the CLI (issue #18): a search opens a review case; two reviewers
// decide with `review decide`, the second seeing no decision before recording theirs; a purpose
// that needs an authorisation is searched only citing one (`authorisation add|grant|list`);
// `report` as text, JSON and an HTML file, with no subject in any of them.
class CliOversight : public ::testing::Test {
 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    samples_ = test::data_dir() / "samples/face-api-js/images";
    FV_REQUIRE_PATH(samples_ / "amy");
    vault_ = tmp("oversight-vault-" + std::to_string(::getpid()));
    std::filesystem::remove_all(vault_);
    ASSERT_EQ(run_facevault({"init", vault_.string()}).exit_code, 0);
    // config.json's oversight section, before any command opens the vault.
    const auto cfg_path = vault_ / "config.json";
    json cfg = json::parse(std::ifstream(cfg_path));
    cfg["oversight"]["authorisation_required"] = {"investigation"};
    std::ofstream(cfg_path) << cfg.dump(2);
  }
  void TearDown() override { std::filesystem::remove_all(vault_); }
  // `facevault ARGS --vault V --actor ACTOR --role ROLE`
  test::RunResult as(const std::string& actor, const std::string& role, std::vector<std::string> args) {
    for (const auto& a : {std::string("--vault"), vault_.string(), std::string("--actor"), actor, std::string("--role"), role})
      args.push_back(a);
    return run_facevault(args);
  }
  std::string amy(int n) const { return (samples_ / "amy" / ("amy" + std::to_string(n) + ".png")).string(); }
  std::filesystem::path samples_, vault_;
};

TEST_F(CliOversight, ReviewAuthorisationAndReport) {
  auto basis = as("eve", "enroller", {"basis", "add", "--subject", "cli-amy", "--kind", "consent", "--reference", "F-1",
                                      "--purpose", "access-control", "--purpose", "investigation"});
  ASSERT_EQ(basis.exit_code, 0);
  const std::string basis_id = basis.lines().at(0);
  auto enrolled = as("eve", "enroller", {"enroll", "--subject", "cli-amy", "--basis", basis_id, "--keep-reference", amy(1)});
  ASSERT_EQ(enrolled.exit_code, 0);
  EXPECT_NE(enrolled.out.find("reference crop kept"), std::string::npos) << enrolled.out;
  EXPECT_EQ(as("eve", "enroller", {"enroll", "--manifest", "x.csv", "--keep-reference"}).exit_code, 1)
      << "a manifest follows the vault's setting";

  // A search opens a case; its candidates are not confirmed.
  auto s = as("ivan", "investigator", {"search", amy(2), "--purpose", "access-control", "--case", "C-1", "--json"});
  ASSERT_EQ(s.exit_code, 0);
  const json sj = json::parse(s.out);
  const std::string id = sj.value("review_case", "");
  ASSERT_EQ(id.rfind("rv_", 0), 0u) << s.out;
  ASSERT_FALSE(sj["faces"][0]["candidates"].empty()) << s.out;
  EXPECT_EQ(sj["faces"][0]["candidates"][0]["confirmed"], false);
  auto text = as("ivan", "investigator", {"search", amy(2), "--purpose", "access-control", "--case", "C-1b"});
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("review case rv_"), std::string::npos) << text.out;

  // review list: one case per line, as GET /v1/reviews/{id} renders it.
  auto list = as("rita", "reviewer", {"review", "list", "--status", "open", "--json"});
  ASSERT_EQ(list.exit_code, 0);
  bool listed = false;
  for (const auto& line : list.lines()) listed |= json::parse(line).value("id", "") == id;
  EXPECT_TRUE(listed) << list.out;

  auto shown = as("rita", "reviewer", {"review", "show", id, "--json"});
  ASSERT_EQ(shown.exit_code, 0);
  const json cand = json::parse(shown.out)["candidates"].at(0);
  EXPECT_EQ(cand["subject"], "cli-amy");
  EXPECT_EQ(cand["reference_available"], true);
  const std::string cid = std::to_string(cand["id"].get<int64_t>());
  auto shown_text = as("rita", "reviewer", {"review", "show", id});
  ASSERT_EQ(shown_text.exit_code, 0);
  EXPECT_NE(shown_text.out.find("hidden until you record your own decision"), std::string::npos) << shown_text.out;
  EXPECT_EQ(shown_text.out.find("CONFIRMED"), std::string::npos) << shown_text.out;

  auto d1 = as("rita", "reviewer", {"review", "decide", id, "--candidate", cid, "--decision", "confirm", "--reason", "ears", "--json"});
  ASSERT_EQ(d1.exit_code, 0);
  const json dj = json::parse(d1.out);
  EXPECT_EQ(dj["decision"], "confirm");
  EXPECT_EQ(dj["reviewer"], "rita");
  EXPECT_EQ(as("rita", "reviewer", {"review", "decide", id, "--candidate", cid, "--decision", "reject", "--reason", "again"}).exit_code, 2)
      << "each reviewer decides once";
  EXPECT_EQ(as("ivan", "reviewer", {"review", "decide", id, "--candidate", cid, "--decision", "confirm", "--reason", "mine"}).exit_code, 2)
      << "the searcher may not review their own search";
  EXPECT_EQ(as("rolf", "reviewer", {"review", "decide", id, "--candidate", cid, "--decision", "maybe", "--reason", "x"}).exit_code, 1);

  // The second reviewer sees one decision recorded but not what it was.
  auto before = as("rolf", "reviewer", {"review", "show", id, "--json"});
  ASSERT_EQ(before.exit_code, 0);
  const json b = json::parse(before.out)["candidates"].at(0);
  EXPECT_EQ(b["decisions_recorded"], 1);
  EXPECT_FALSE(b.contains("decisions")) << before.out;
  EXPECT_EQ(b["confirmed"], false);
  ASSERT_EQ(as("rolf", "reviewer", {"review", "decide", id, "--candidate", cid, "--decision", "confirm", "--reason", "jaw"}).exit_code, 0);
  auto after = as("rolf", "reviewer", {"review", "show", id});
  ASSERT_EQ(after.exit_code, 0);
  EXPECT_NE(after.out.find("CONFIRMED identification"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("\"ears\""), std::string::npos) << "the first decision, once the caller's own is recorded";

  // A purpose that needs an authorisation.
  EXPECT_EQ(as("ivan", "investigator", {"search", amy(3), "--purpose", "investigation", "--case", "C-2"}).exit_code, 2);
  auto granted = as("dora", "auditor", {"authorisation", "add", "--authority", "District Court", "--reference", "W-17",
                                        "--purpose", "investigation", "--valid-from", "2000-01-01", "--valid-until", "2099-12-31"});
  ASSERT_EQ(granted.exit_code, 0);
  const std::string au = granted.lines().at(0);
  EXPECT_EQ(au.rfind("au_", 0), 0u) << granted.out;
  EXPECT_EQ(as("ivan", "investigator", {"authorisation", "add", "--authority", "X", "--reference", "Y", "--purpose", "investigation",
                                        "--valid-from", "2000-01-01", "--valid-until", "2099-12-31"}).exit_code, 2)
      << "investigators do not record authorisations";
  auto cited = as("ivan", "investigator", {"search", amy(3), "--purpose", "investigation", "--case", "C-2", "--authorisation", au, "--json"});
  ASSERT_EQ(cited.exit_code, 0);
  EXPECT_EQ(json::parse(cited.out)["authorisation"], au);
  auto pending = as("dora", "auditor", {"authorisation", "add", "--authority", "Prosecutor", "--reference", "R-9", "--purpose",
                                        "investigation", "--valid-from", "2000-01-01", "--valid-until", "2099-12-31", "--pending", "--json"});
  ASSERT_EQ(pending.exit_code, 0);
  const json pj = json::parse(pending.out);
  EXPECT_EQ(pj["status"], "pending");
  const std::string pau = pj.value("id", "");
  auto under_pending = as("ivan", "investigator", {"search", amy(3), "--purpose", "investigation", "--case", "C-3", "--authorisation", pau, "--json"});
  ASSERT_EQ(under_pending.exit_code, 0);
  EXPECT_EQ(json::parse(under_pending.out)["authorisation_pending"], true);
  auto grant = as("dora", "auditor", {"authorisation", "grant", pau, "--note", "letter of 2 Jan", "--json"});
  ASSERT_EQ(grant.exit_code, 0);
  EXPECT_EQ(json::parse(grant.out)["status"], "granted");
  auto listed_auth = as("ivan", "investigator", {"authorisation", "list", "--json"});
  ASSERT_EQ(listed_auth.exit_code, 0);
  std::map<std::string, std::string> status;
  for (const auto& line : listed_auth.lines()) status[json::parse(line).value("id", "")] = json::parse(line).value("status", "");
  EXPECT_EQ(status, (std::map<std::string, std::string>{{au, "granted"}, {pau, "granted"}}));

  // The report: counts, and no subject anywhere.
  auto rj = as("dora", "auditor", {"report", "--from", "2000-01-01", "--to", "2099-12-31", "--format", "json"});
  ASSERT_EQ(rj.exit_code, 0);
  const json report = json::parse(rj.out);
  EXPECT_EQ(report["per_purpose"]["access-control"]["searches"], 2);
  EXPECT_EQ(report["per_purpose"]["access-control"]["decisions"]["confirm"], 2);
  EXPECT_EQ(report["per_purpose"]["investigation"]["authorisations_cited"], 2);
  EXPECT_EQ(report["totals"]["enrolments"], 1);
  const auto html = tmp("oversight-report-" + std::to_string(::getpid()) + ".html");
  ASSERT_EQ(as("dora", "auditor", {"report", "--from", "2000-01-01", "--to", "2099-12-31", "--format", "html", "--output", html.string()}).exit_code, 0);
  std::stringstream page;
  page << std::ifstream(html).rdbuf();
  std::filesystem::remove(html);
  EXPECT_NE(page.str().find("<html"), std::string::npos);
  auto rt = as("dora", "auditor", {"report", "--from", "2000-01-01", "--to", "2099-12-31"});
  ASSERT_EQ(rt.exit_code, 0);
  EXPECT_NE(rt.out.find("access-control"), std::string::npos) << rt.out;
  for (const std::string& out : {rj.out, page.str(), rt.out}) EXPECT_EQ(out.find("cli-amy"), std::string::npos);
  EXPECT_EQ(as("ivan", "investigator", {"report", "--from", "2000-01-01", "--to", "2099-12-31"}).exit_code, 2);
}

}  // namespace
}  // namespace fv
