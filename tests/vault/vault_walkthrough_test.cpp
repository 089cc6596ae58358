// Runs docs/vault-walkthrough.md (every ```sh block, in order, as one bash script) so the
// walkthrough cannot rot; and checks the vault CLI's contract: exit codes, one-line reasons
// on stderr, --json shapes.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "support/paths.h"
#include "vault_test_util.h"

namespace fv::test {
namespace {

std::filesystem::path samples() { return data_dir() / "samples" / "face-api-js" / "images"; }

struct ShellRun {
  int rc = -1;
  std::string out, err;
};

// Runs a shell command in `cwd`, capturing stdout and stderr.
ShellRun sh(const std::string& cmd, const std::filesystem::path& cwd) {
  const auto out = cwd / ".stdout", err = cwd / ".stderr";
  const std::string full = "cd '" + cwd.string() + "' && ( " + cmd + " ) >'" + out.string() + "' 2>'" + err.string() + "'";
  const int st = std::system(full.c_str());
  ShellRun r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

std::string env_prefix(const std::filesystem::path& vault) {
  return "unset FACEVAULT_MASTER_KEY; export PATH='" + std::filesystem::path(FACEVAULT_BINARY).parent_path().string() +
         "':\"$PATH\" FACEVAULT_VAULT='" + vault.string() + "' SAMPLES='" + samples().string() + "'; ";
}

TEST(VaultWalkthrough, EveryShellBlockOfTheWalkthroughRuns) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(samples());
  if (std::system("command -v jq >/dev/null && command -v sqlite3 >/dev/null") != 0)
    GTEST_SKIP() << "the walkthrough uses jq and sqlite3 (Debian packages jq, sqlite3): not installed";
  const auto doc = std::filesystem::path(FACEVAULT_SOURCE_DIR) / "docs" / "vault-walkthrough.md";
  std::ifstream in(doc);
  ASSERT_TRUE(in) << doc;
  std::string script = "set -euo pipefail\n", line;
  bool in_block = false;
  int blocks = 0;
  while (std::getline(in, line)) {
    if (!in_block && line == "```sh") { in_block = true; ++blocks; continue; }
    if (in_block && line == "```") { in_block = false; continue; }
    if (in_block) script += line + "\n";
  }
  ASSERT_GE(blocks, 8);
  TempDir tmp;
  std::ofstream(tmp.path() / "walkthrough.sh") << script;
  auto r = sh(env_prefix(tmp.path() / "unused") + "bash walkthrough.sh", tmp.path());
  EXPECT_EQ(r.rc, 0) << "walkthrough failed\n--- stdout\n" << r.out << "\n--- stderr\n" << r.err;
  EXPECT_NE(r.out.find("ERASURE RECEIPT"), std::string::npos);
  EXPECT_NE(r.out.find("audit chain intact"), std::string::npos);
}

class VaultCli : public ::testing::Test {
 protected:
  void SetUp() override {
    vault_ = tmp_.path() / "v";
    ASSERT_EQ(run("facevault init").rc, 0);
  }
  ShellRun run(const std::string& cmd) { return sh(env_prefix(vault_) + cmd, tmp_.path()); }
  static void one_line_reason(const ShellRun& r) {
    EXPECT_NE(r.rc, 0);
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.rfind("facevault: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  TempDir tmp_;
  std::filesystem::path vault_;
};

TEST_F(VaultCli, ErrorsExitNonZeroWithOneLineReason) {
  auto r = run("facevault audit verify --vault nowhere");
  one_line_reason(r);
  EXPECT_NE(r.err.find("no vault"), std::string::npos);
  one_line_reason(run("facevault init"));  // already a vault
  one_line_reason(run("facevault erase nobody"));
  one_line_reason(run("facevault basis add --subject a --kind whim --reference x --purpose p"));
  // A readable image, so that the refusal is the policy's, not a missing file's.
  {
    std::ofstream ppm(tmp_.path() / "probe.ppm", std::ios::binary);
    ppm << "P6\n2 2\n255\n" << std::string(12, '\x80');
  }
  r = run("facevault search probe.ppm --purpose p --case c --role enroller");
  one_line_reason(r);
  EXPECT_NE(r.err.find("may not search"), std::string::npos) << r.err;
  r = run("facevault search probe.ppm --role investigator");
  one_line_reason(r);
  EXPECT_NE(r.err.find("purpose"), std::string::npos) << r.err;
  {
    auto log = run("facevault audit show --json --role auditor");
    ASSERT_EQ(log.rc, 0) << log.err;
    int denied = 0, refused = 0;
    std::istringstream lines(log.out);
    for (std::string l; std::getline(lines, l);) {
      auto e = nlohmann::json::parse(l);
      if (e["action"] != "search") continue;
      if (e["outcome"] == "denied" && e["role"] == "enroller") ++denied;
      if (e["outcome"] == "refused" && e["role"] == "investigator") ++refused;
    }
    EXPECT_EQ(denied, 1) << "the role refusal is audited";
    EXPECT_EQ(refused, 1) << "the missing purpose and case are audited";
  }
  one_line_reason(run("facevault enroll --subject a --basis 1 missing.png"));
  one_line_reason(run("facevault audit show --role investigator"));
  one_line_reason(run("facevault export a --role nobody"));
  // Text that is not UTF-8 gets a reason, not an abort from the JSON library.
  r = run("facevault basis add --subject \"$(printf 'caf\\351')\" --kind consent --reference f --purpose p");
  one_line_reason(r);
  EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  one_line_reason(run("facevault audit verify --actor \"$(printf '\\377')\""));
  ASSERT_EQ(run("facevault basis add --subject u8 --kind consent --reference f --purpose p").rc, 0);
  auto erased = run("facevault erase u8 --reason \"$(printf 'asked by letter \\377')\" --json");
  ASSERT_EQ(erased.rc, 0) << erased.err;
  EXPECT_EQ(nlohmann::json::parse(erased.out)["erased"]["lawful_bases"], 1);
  EXPECT_EQ(run("facevault audit verify").rc, 0);
  // Missing and wrong master keys.
  std::filesystem::rename(vault_ / "master.key", tmp_.path() / "saved.key");
  r = run("facevault audit verify");
  one_line_reason(r);
  EXPECT_NE(r.err.find("no master key"), std::string::npos);
  r = run("FACEVAULT_MASTER_KEY=$(facevault key generate) facevault audit verify");
  one_line_reason(r);
  EXPECT_NE(r.err.find("wrong master key"), std::string::npos);
  std::filesystem::rename(tmp_.path() / "saved.key", vault_ / "master.key");
  EXPECT_EQ(run("facevault audit verify").rc, 0);
}

TEST_F(VaultCli, JsonShapes) {
  auto b = run("facevault basis add --subject a --kind consent --reference f --purpose p --json");
  ASSERT_EQ(b.rc, 0) << b.err;
  auto bj = nlohmann::json::parse(b.out);
  EXPECT_EQ(bj["basis"], 1);
  EXPECT_EQ(bj["subject"], "a");
  auto plain = run("facevault basis add --subject a --kind public_task --reference statute-9 --purpose p --purpose q");
  ASSERT_EQ(plain.rc, 0) << plain.err;
  EXPECT_EQ(plain.out, "2\n") << "prints just the basis id";
  auto v = run("facevault audit verify --json");
  ASSERT_EQ(v.rc, 0);
  auto vj = nlohmann::json::parse(v.out);
  EXPECT_EQ(vj["ok"], true);
  EXPECT_EQ(vj["entries"], 3);
  auto show = run("facevault audit show --json --subject a");
  ASSERT_EQ(show.rc, 0);
  std::istringstream lines(show.out);
  int n = 0;
  for (std::string l; std::getline(lines, l); ++n) {
    auto e = nlohmann::json::parse(l);
    EXPECT_EQ(e["action"], "basis_add");
    EXPECT_EQ(e["role"], "admin");
    EXPECT_TRUE(e.contains("hash") && e.contains("prev_hash") && e.contains("actor"));
  }
  EXPECT_EQ(n, 2);
  // A date in the future would erase subjects that are not due: only a dry run may look ahead.
  one_line_reason(run("facevault expire --json --as-of 2099-01-01"));
  auto ahead = run("facevault expire --json --dry-run --as-of 2099-01-01");
  ASSERT_EQ(ahead.rc, 0) << ahead.err;
  EXPECT_EQ(nlohmann::json::parse(ahead.out)["erased"].size(), 1u);
  // Make the subject due now (its retention ended), then expire for real.
  {
    auto db = vault::Db::open(vault_ / "vault.db", false);
    ASSERT_TRUE(db.is_ok());
    ASSERT_TRUE(db->exec("UPDATE subject SET retention_until='2001-01-01T00:00:00.000Z'").is_ok());
  }
  auto ex = run("facevault expire --json");
  ASSERT_EQ(ex.rc, 0) << ex.err;
  auto exj = nlohmann::json::parse(ex.out);
  ASSERT_EQ(exj["erased"].size(), 1u);
  EXPECT_EQ(exj["erased"][0]["subject"], "a");
  EXPECT_EQ(exj["erased"][0]["erased"]["lawful_bases"], 2);
  auto rot = run("facevault key rotate --json --actor ops --role admin");
  ASSERT_EQ(rot.rc, 0) << rot.err;
  EXPECT_TRUE(nlohmann::json::parse(rot.out).contains("new_key_id"));
  auto last = run("facevault audit show --json --since 2020-01-01 | tail -n 1");
  EXPECT_EQ(nlohmann::json::parse(last.out)["actor"], "ops");
}

}  // namespace
}  // namespace fv::test
