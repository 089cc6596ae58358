// `facevault verify --liveness` end to end: a staged presentation attack as photo a (the probe)
// is refused with the reason, a live photo passes, and without the flag the result is exactly
// what it was (same JSON, no "liveness" field).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/paths.h"
#include "support/run.h"

namespace fv {
namespace {

std::string staged(const char* name) { return (test::data_dir() / "spoof" / "silent-face" / name).string(); }

#define FV_REQUIRE_SPOOF_DATA()                                                                    \
  do {                                                                                             \
    FV_REQUIRE_MODELS();                                                                           \
    if (!std::filesystem::exists(staged("image_F1.jpg")))                                          \
      GTEST_SKIP() << staged("") << " is absent (../shared/data/README.md: spoof/)";               \
  } while (0)

TEST(VerifyLiveness, RefusesAStagedAttackAsTheProbe) {
  FV_REQUIRE_SPOOF_DATA();
  for (const char* attack : {"image_F1.jpg", "image_F2.jpg"}) {
    auto r = test::run_facevault({"verify", "--liveness", "--json", staged(attack), staged("image_T1.jpg")}, true);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("presentation attack suspected in photo a (liveness score 0.0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("< threshold 0.50)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\"similarity\""), std::string::npos) << "a refused probe is never compared: " << r.out;
  }
}

TEST(VerifyLiveness, PassesALivePhotoAndSaysSo) {
  FV_REQUIRE_SPOOF_DATA();
  auto r = test::run_facevault({"verify", "--liveness", "--json", staged("image_T1.jpg"), staged("image_T2.jpg")});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("liveness"));
  EXPECT_TRUE(j["liveness"]["checked"].get<bool>());
  EXPECT_TRUE(j["liveness"]["live"].get<bool>());
  EXPECT_GT(j["liveness"]["score"].get<double>(), 0.7);  // measured 0.786 (docs/models.md, liveness card)
  EXPECT_DOUBLE_EQ(j["liveness"]["threshold"].get<double>(), 0.5);
}

// Only photo a is checked: an attack as photo b (the reference, e.g. an ID photo) is compared.
TEST(VerifyLiveness, ChecksOnlyTheProbe) {
  FV_REQUIRE_SPOOF_DATA();
  auto r = test::run_facevault({"verify", "--liveness", "--json", staged("image_T1.jpg"), staged("image_F1.jpg")});
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST(VerifyLiveness, WithoutTheFlagNothingChanges) {
  FV_REQUIRE_SPOOF_DATA();
  // An attack as the probe is compared as before.
  auto off = test::run_facevault({"verify", "--json", staged("image_F1.jpg"), staged("image_T1.jpg")});
  ASSERT_EQ(off.exit_code, 0) << off.out;
  EXPECT_FALSE(nlohmann::json::parse(off.out).contains("liveness"));
  // A live probe: the result with the check is the result without it plus the "liveness" field.
  auto plain = test::run_facevault({"verify", "--json", staged("image_T1.jpg"), staged("image_T2.jpg")});
  auto checked = test::run_facevault({"verify", "--liveness", "--json", staged("image_T1.jpg"), staged("image_T2.jpg")});
  ASSERT_EQ(plain.exit_code, 0);
  ASSERT_EQ(checked.exit_code, 0);
  auto a = nlohmann::json::parse(plain.out), b = nlohmann::json::parse(checked.out);
  EXPECT_FALSE(a.contains("liveness"));
  ASSERT_TRUE(b.contains("liveness"));
  b.erase("liveness");
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace fv
