// `facevault search --json` and POST /v1/search render the same fields for the same probe on
// the same vault (one renderer, service/render.h): the same field names at every level, the
// same candidates with the same similarities, boxes and thresholds. Only the audit hash
// differs (each search is its own audit entry).
// Needs the models, the samples and the facevault binary; skips without them, or when the
// binary's `search` does not take the same inputs (--purpose, --case, --json).
#include <set>

#include "photo_test_env.h"
#include "support/run.h"

namespace fv::test::photo {
namespace {

std::set<std::string> keys(const json& j) {
  std::set<std::string> k;
  if (j.is_object())
    for (auto& [name, _] : j.items()) k.insert(name);
  return k;
}

TEST(SearchParity, CliJsonAndHttpRenderTheSameFields) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(samples());
  ASSERT_NE(env()->srv, nullptr);
  if (!fs::exists(FACEVAULT_BINARY)) GTEST_SKIP() << "the facevault binary is not built: " << FACEVAULT_BINARY;
  const auto help = run_facevault({"search", "--help"}, true);
  for (const char* flag : {"--purpose", "--case", "--json", "--vault", "--role"})
    if (help.out.find(flag) == std::string::npos)
      GTEST_SKIP() << "`facevault search` does not take " << flag << ": not the same inputs as POST /v1/search";

  enrolled_subject("parity-howard", photo("howard", 1));
  enrolled_subject("parity-bernadette", photo("bernadette", 1));
  const fs::path probe = photo("howard", 2);
  auto http = post_form("/v1/search", "investigator",
                        {img("image", probe), text("purpose", "access-control"), text("case", "parity-1")});
  ASSERT_EQ(http.status, 200) << http.raw;
  auto cli_run = run_facevault({"search", probe.string(), "--purpose", "access-control", "--case", "parity-1", "--vault",
                                env()->dir.string(), "--role", "investigator", "--actor", "parity-test", "--json"},
                               false);
  ASSERT_EQ(cli_run.exit_code, 0) << cli_run.out;
  ASSERT_FALSE(cli_run.lines().empty());
  const json cli = json::parse(cli_run.lines().back(), nullptr, false);
  ASSERT_TRUE(cli.is_object()) << cli_run.out;
  const json& web = http.body;

  // The same field names, at every level.
  EXPECT_EQ(keys(cli), keys(web));
  for (const char* k : {"faces", "purpose", "case", "eligible_subjects", "max_fmr", "threshold", "calibration", "audit_hash",
                        "notice"})
    EXPECT_TRUE(web.contains(k)) << k;
  ASSERT_EQ(cli["faces"].size(), web["faces"].size());
  ASSERT_EQ(web["faces"].size(), 1u) << web.dump();
  for (size_t i = 0; i < web["faces"].size(); ++i) {
    const json &cf = cli["faces"][i], &wf = web["faces"][i];
    EXPECT_EQ(keys(cf), keys(wf)) << "face " << i;
    EXPECT_EQ(cf["box"], wf["box"]) << "face " << i;
    EXPECT_EQ(cf["quality_ok"], wf["quality_ok"]) << "face " << i;
    ASSERT_EQ(cf["candidates"].size(), wf["candidates"].size()) << "face " << i;
    for (size_t j = 0; j < wf["candidates"].size(); ++j) {
      EXPECT_EQ(keys(cf["candidates"][j]), keys(wf["candidates"][j]));
      EXPECT_EQ(cf["candidates"][j]["subject"], wf["candidates"][j]["subject"]);
      EXPECT_EQ(cf["candidates"][j]["similarity"], wf["candidates"][j]["similarity"]);
      EXPECT_EQ(cf["candidates"][j]["fmr"], wf["candidates"][j]["fmr"]);
    }
  }
  ASSERT_FALSE(web["faces"][0]["candidates"].empty());
  EXPECT_EQ(web["faces"][0]["candidates"][0]["subject"], "parity-howard");
  // The same policy inputs and outputs; a search is audited each time (different entries).
  for (const char* k : {"purpose", "case", "eligible_subjects", "max_fmr", "threshold", "calibration"})
    EXPECT_EQ(cli[k], web[k]) << k;
  EXPECT_NE(cli["audit_hash"], web["audit_hash"]);
  // Each search opens its own review case, which the notice names: the same text otherwise.
  ASSERT_NE(cli.value("review_case", ""), web.value("review_case", ""));
  auto notice_of = [](const json& r) {
    std::string n = r.value("notice", ""), id = r.value("review_case", "");
    if (auto at = n.find(id); !id.empty() && at != std::string::npos) n.replace(at, id.size(), "CASE");
    return n;
  };
  EXPECT_EQ(notice_of(cli), notice_of(web));
}

}  // namespace
}  // namespace fv::test::photo
