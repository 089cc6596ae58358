// Retention: expire erases the subjects whose basis or retention period has ended, a dry run
// erases nothing, a date in the future is refused unless it is a dry run; all of it audited.
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::BasisKind;

class RetentionTest : public ServiceTest {};

TEST_F(RetentionTest, ExpireErasesWhatIsDueAndAuditsIt) {
  const std::string t0 = clock_.now;
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
  const int64_t b = basis("bob", {"access-control"}, BasisKind::kConsent, vault::add_days(t0, 30));
  ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  const int64_t c = basis("carol", {"access-control"});
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());
  // Carol comes back after 200 days: her retention is renewed by the new enrollment.
  clock_.now = vault::add_days(t0, 200);
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());

  auto r = svc_->expire(actor_, vault::add_days(t0, 10), false);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->erased.empty());
  auto dry = svc_->expire(actor_, vault::add_days(t0, 31), true);
  ASSERT_EQ(dry->erased.size(), 1u);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 3) << "a dry run erases nothing";
  r = svc_->expire(actor_, vault::add_days(t0, 31), false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "bob");
  EXPECT_EQ(r->erased[0].reason, "no lawful basis in force");
  // A date in the future erases nothing: it is refused unless it is a dry run.
  auto ahead = svc_->expire(actor_, vault::add_days(t0, 366), false);
  ASSERT_FALSE(ahead.is_ok());
  EXPECT_NE(ahead.status().message().find("--dry-run"), std::string::npos) << ahead.status().message();
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 2);
  dry = svc_->expire(actor_, vault::add_days(t0, 566), true);
  ASSERT_TRUE(dry.is_ok());
  EXPECT_EQ(dry->erased.size(), 2u);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 2);
  clock_.now = vault::add_days(t0, 366);
  r = svc_->expire(actor_, vault::add_days(t0, 366), false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "alice");
  EXPECT_EQ(r->erased[0].reason, "retention period ended");
  clock_.now = vault::add_days(t0, 566);
  r = svc_->expire(actor_, std::nullopt, false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "carol");
  EXPECT_EQ(audit("erase").size(), 3u);
  EXPECT_EQ(audit("expire").size(), 6u);
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

}  // namespace
}  // namespace fv::test
