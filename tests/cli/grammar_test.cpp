// The one CLI grammar (src/cli/README.md): every command's --help has an example, every
// command takes --json, the face commands accept --json, the shell completion is valid bash
// and knows every command. The commands are discovered by walking `facevault --help` (no list
// here that could go stale) and checked against `facevault completion --json`.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/paths.h"
#include "support/run.h"

namespace fv {
namespace {

using nlohmann::json;
using test::run_facevault;

std::filesystem::path scratch(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("fv-grammar-" + std::to_string(getpid()) + "-" + name);
}

std::vector<std::string> words(const std::string& path) {
  std::vector<std::string> w;
  std::istringstream in(path);
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// The names under "Subcommands:" in a CLI11 help text.
std::vector<std::string> subcommands_in_help(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream in(help);
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "Subcommands:") { in_section = true; continue; }
    if (!in_section) continue;
    if (line.empty()) break;
    std::istringstream l(line);
    std::string name;
    if (l >> name) names.push_back(name);
  }
  return names;
}

struct HelpPage {
  std::string path;  // "" for facevault itself, else e.g. "basis add"
  int exit_code;
  std::string text;
};

// Every command reachable from `facevault --help`, depth first.
void walk_help(const std::string& path, std::vector<HelpPage>& out, int depth = 0) {
  ASSERT_LT(depth, 4) << "command tree deeper than expected at '" << path << "'";
  auto args = words(path);
  args.push_back("--help");
  const auto r = run_facevault(args);
  out.push_back({path, r.exit_code, r.out});
  for (const auto& sub : subcommands_in_help(r.out)) walk_help(path.empty() ? sub : path + " " + sub, out, depth + 1);
}

// Runs a bash script (written to a file); returns its stdout and exit code.
test::RunResult run_bash(const std::string& script) {
  const auto file = scratch("script.sh");
  std::ofstream(file) << script;
  test::RunResult r;
  FILE* p = popen(("bash " + test::shell_quote(file.string()) + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(file);
  return r;
}

class Grammar : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    walk_help("", pages_);
    const auto tree = run_facevault({"completion", "--json"});
    ASSERT_EQ(tree.exit_code, 0);
    tree_ = json::parse(tree.out);
  }
  static std::vector<HelpPage> pages_;
  static json tree_;
};
std::vector<HelpPage> Grammar::pages_;
json Grammar::tree_;

TEST_F(Grammar, HelpWalkFindsTheCommandTreeTheCompletionIsWrittenFrom) {
  std::set<std::string> from_help, from_tree;
  for (const auto& p : pages_) from_help.insert(p.path);
  for (const auto& c : tree_["commands"]) from_tree.insert(c["command"].get<std::string>());
  EXPECT_EQ(from_help, from_tree);
  // Nested commands are walked too (basis add, key create, eval lfw, bench index, ...).
  EXPECT_GT(std::count_if(from_help.begin(), from_help.end(), [](const std::string& s) { return s.find(' ') != std::string::npos; }), 5);
}

TEST_F(Grammar, EveryCommandsHelpExitsZeroAndShowsAnExampleOfThatCommand) {
  ASSERT_GT(pages_.size(), 10u);
  for (const auto& p : pages_) {
    SCOPED_TRACE("facevault " + p.path + " --help");
    EXPECT_EQ(p.exit_code, 0);
    const auto at = p.text.find("\nExample");
    ASSERT_NE(at, std::string::npos) << p.text;
    // An example line invokes this very command.
    const std::string invocation = p.path.empty() ? "facevault " : "facevault " + p.path + " ";
    EXPECT_NE(p.text.find(invocation, at), std::string::npos) << p.text.substr(at);
    EXPECT_NE(p.text.find("Exit codes"), std::string::npos);
  }
}

TEST_F(Grammar, EveryCommandThatRunsTakesJson) {
  size_t leaves = 0;
  for (const auto& c : tree_["commands"]) {
    if (!c["subcommands"].empty()) continue;  // a group: it only names its subcommands
    ++leaves;
    bool has_json = false;
    for (const auto& o : c["options"])
      for (const auto& n : o["names"]) has_json |= n == "--json";
    EXPECT_TRUE(has_json) << "facevault " << c["command"].get<std::string>() << " has no --json";
  }
  EXPECT_GT(leaves, 10u);
}

TEST_F(Grammar, CompletionScriptIsValidBashAndCompletesEveryCommand) {
  const auto bash = run_facevault({"completion", "bash"});
  ASSERT_EQ(bash.exit_code, 0);
  EXPECT_EQ(run_facevault({"completion", "bash"}).out, bash.out) << "the script must be deterministic";
  const auto script = scratch("completion.bash");
  std::ofstream(script) << bash.out;
  const auto syntax = run_bash(std::string("bash -n ") + test::shell_quote(script.string()));
  EXPECT_EQ(syntax.exit_code, 0) << syntax.out;
  // The script names every top-level command of `facevault --help`.
  const std::string root_line = "    \"\") echo \"";
  const auto at = bash.out.find(root_line);
  ASSERT_NE(at, std::string::npos);
  const auto end = bash.out.find('"', at + root_line.size());
  const auto named = words(bash.out.substr(at + root_line.size(), end - at - root_line.size()));
  EXPECT_EQ(named, subcommands_in_help(pages_.front().text));
  // Completing after each command lists exactly its subcommands, and an option's choices.
  for (const auto& c : tree_["commands"]) {
    if (c["subcommands"].empty()) continue;
    const std::string path = c["command"];
    std::string expected;
    for (const auto& s : c["subcommands"]) {
      if (!expected.empty()) expected += ' ';
      expected += s.get<std::string>();
    }
    const auto r = run_bash(std::string("source ") + test::shell_quote(script.string()) + "\nCOMP_WORDS=(facevault " + path +
                            " '')\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_facevault\necho \"${COMPREPLY[*]}\"\n");
    EXPECT_EQ(r.out, expected + "\n") << "facevault " << path;
  }
  const auto mode = run_bash(std::string("source ") + test::shell_quote(script.string()) +
                             "\nCOMP_WORDS=(facevault search p.jpg --mode i)\nCOMP_CWORD=4\n_facevault\necho \"${COMPREPLY[*]}\"\n");
  EXPECT_EQ(mode.out, "identification investigation\n");
  const auto shells = run_bash(std::string("source ") + test::shell_quote(script.string()) +
                               "\nCOMP_WORDS=(facevault completion '')\nCOMP_CWORD=2\n_facevault\necho \"${COMPREPLY[*]}\"\n");
  EXPECT_EQ(shells.out, "bash zsh\n") << "a positional's fixed values";
  const auto zsh = run_facevault({"completion", "zsh"});
  ASSERT_EQ(zsh.exit_code, 0);
  EXPECT_EQ(zsh.out.rfind("#compdef facevault\n", 0), 0u);
  EXPECT_NE(zsh.out.find(bash.out), std::string::npos) << "zsh runs the same script through bashcompinit";
  EXPECT_EQ(run_facevault({"completion"}).exit_code, 1) << "a shell (or --json) is required";
  std::filesystem::remove(script);
}

TEST_F(Grammar, VaultCommandsAcceptTheConsistentNames) {
  const auto dir = scratch("vault");
  std::filesystem::remove_all(dir);
  const auto init = run_facevault({"init", dir.string(), "--json"});
  ASSERT_EQ(init.exit_code, 0);
  EXPECT_EQ(json::parse(init.out)["vault"], dir.string());
  ASSERT_EQ(run_facevault({"basis", "add", "--vault", dir.string(), "--subject", "s-1", "--kind", "consent", "--reference",
                           "f", "--purpose", "p"}).exit_code, 0);
  // erase and export take the subject as a positional or, as basis add does, as --subject.
  const auto exported = run_facevault({"export", "--subject", "s-1", "--vault", dir.string(), "--json"});
  ASSERT_EQ(exported.exit_code, 0);
  const auto erased = run_facevault({"erase", "--subject", "s-1", "--vault", dir.string(), "--json"});
  ASSERT_EQ(erased.exit_code, 0);
  EXPECT_EQ(json::parse(erased.out)["subject"], "s-1");
  // key list takes --actor like every vault command; key generate takes --json.
  EXPECT_EQ(run_facevault({"key", "list", "--vault", dir.string(), "--actor", "ops", "--json"}).exit_code, 0);
  const auto key = run_facevault({"key", "generate", "--json"});
  ASSERT_EQ(key.exit_code, 0);
  EXPECT_EQ(json::parse(key.out)["master_key"].get<std::string>().size(), 64u);
  std::filesystem::remove_all(dir);
}

TEST_F(Grammar, ServeJsonAnnouncesItsAddress) {
  FV_REQUIRE_MODELS();  // serve builds its face pipelines before it listens
  const auto dir = scratch("serve-vault");
  std::filesystem::remove_all(dir);
  ASSERT_EQ(run_facevault({"init", dir.string()}).exit_code, 0);
  const auto out = scratch("serve.out");
  // Started in the background, stopped by its pid; the wait for its first line is bounded.
  const auto r = run_bash(test::shell_quote(FACEVAULT_BINARY) + " serve --vault " + test::shell_quote(dir.string()) +
                          " --listen 127.0.0.1:0 --quiet --json > " + test::shell_quote(out.string()) +
                          " 2>/dev/null &\npid=$!\nfor i in $(seq 300); do [ -s " + test::shell_quote(out.string()) +
                          " ] && break; sleep 0.1; done\nkill $pid\nwait $pid\necho \"exit=$?\"\n");
  EXPECT_EQ(r.out, "exit=0\n");
  std::ifstream in(out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line)) << "serve printed nothing";
  const auto j = json::parse(line);
  EXPECT_EQ(j["host"], "127.0.0.1");
  EXPECT_GT(j["port"].get<int>(), 0);
  EXPECT_EQ(j["url"], "http://127.0.0.1:" + std::to_string(j["port"].get<int>()) + "/");
  EXPECT_FALSE(j["tls"].get<bool>());
  std::filesystem::remove(out);
  std::filesystem::remove_all(dir);
}

// A photo with a face: the golden one of ../shared, else a demo photo `make models` fetches
// (demo-photos.lock), so that a clone without ../shared runs these tests too.
std::filesystem::path face_photo() {
  const auto golden = test::golden_dir() / "obama_small/source.jpg";
  if (std::filesystem::exists(golden)) return golden;
  const char* env = std::getenv("FACEVAULT_DEMO_PHOTOS");
  const char* home = std::getenv("HOME");
  const std::filesystem::path demo = env && *env ? std::filesystem::path(env)
                                     : home      ? std::filesystem::path(home) / ".cache/facevault/demo-photos"
                                                 : std::filesystem::path();
  return demo / "@vladmandic/face-api@1.7.15/demo/sample1.jpg";
}

class FaceCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    photo_ = face_photo();
    FV_REQUIRE_PATH(photo_);
  }
  std::filesystem::path photo_;
};

TEST_F(FaceCommands, EmbedJsonPrintsATemplateLine) {
  const auto r = run_facevault({"embed", "--json", "--no-progress", photo_.string()});
  ASSERT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.lines().size(), 1u);
  const auto j = json::parse(r.lines()[0]);
  EXPECT_EQ(j["file"], photo_.string());
  ASSERT_FALSE(j["faces"].empty());
  for (const auto& f : j["faces"]) EXPECT_EQ(f["template"].size(), 512u);
  EXPECT_EQ(r.out, run_facevault({"embed", "--no-progress", photo_.string()}).out) << "--json changes nothing";
}

TEST_F(FaceCommands, DetectJsonPrintsFacesWithoutTemplates) {
  const auto r = run_facevault({"detect", "--json", "--no-progress", photo_.string()});
  ASSERT_EQ(r.exit_code, 0);
  const auto j = json::parse(r.out);
  ASSERT_FALSE(j["faces"].empty());
  for (const auto& f : j["faces"]) {
    EXPECT_EQ(f["keypoints"].size(), 5u);
    EXPECT_FALSE(f.contains("template"));
  }
}

TEST_F(FaceCommands, VerifyTakesMaxFmrAndItsOldNameFmr) {
  for (const char* name : {"--max-fmr", "--fmr"}) {
    const auto r = run_facevault({"verify", "--json", name, "1e-5", photo_.string(), photo_.string()});
    ASSERT_EQ(r.exit_code, 0) << name;
    EXPECT_DOUBLE_EQ(json::parse(r.out)["threshold_fmr"].get<double>(), 1e-5) << name;
  }
}

}  // namespace
}  // namespace fv
