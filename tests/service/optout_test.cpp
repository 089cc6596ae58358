// The opt-out registry: an entry blocks enrollment of the same face and flags subjects enrolled
// before it (the adder learns only how many; the auditor's check lists them); entries of another
// model are compared with nothing, and the check counts and audits them.
#include "service/service_test_util.h"

namespace fv::test {
namespace {

class OptoutTest : public ServiceTest {};

TEST_F(OptoutTest, OptOutBlocksEnrollmentAndFlagsEnrolledMatches) {
  const double thr = svc_->optout_threshold();
  auto cal = face::Calibration::builtin("faceplugin-mobilefacenet-512");
  if (cal.is_ok()) {
    EXPECT_DOUBLE_EQ(thr, cal->threshold_at(1e-5));
  }
  auto person = random_template(rng_), early = random_template(rng_);
  const int64_t e = basis("early", {"access-control"});
  ASSERT_TRUE(enroll("early", e, early).is_ok());
  auto r = svc_->optout_add_template(actor_, person);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->enrolled_match_count, 0);
  EXPECT_TRUE(files_holding(dir_, float_bytes(person.values)).empty()) << "only an encrypted template is stored";
  EXPECT_EQ(count("SELECT count(*) FROM pragma_table_info('optout')"), 6) << "nothing but id, uid, model, template, time";

  const int64_t a = basis("again", {"access-control"});
  auto refused = enroll("again", a, near_template(person, rng_, 0.3f));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("opt-out"), std::string::npos);
  auto last = audit("enroll").back();
  EXPECT_EQ(last.outcome, "refused");
  EXPECT_EQ(last.details["optout"], r->optout_uid);
  EXPECT_TRUE(enroll("again", a, random_template(rng_)).is_ok()) << "someone else is not blocked";

  // A person enrolled before they opted out. Whoever adds the opt-out (an enroller may) learns
  // only how many enrolled subjects match, not who: adding an opt-out is not a search. The
  // audit entry records the number and the subjects' vault ids.
  actor_ = kEnroller;
  auto r2 = svc_->optout_add_template(actor_, near_template(early, rng_, 0.3f));
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ(r2->enrolled_match_count, 1);
  const std::string early_uid = **raw_db(*svc_).query_text("SELECT uid FROM subject WHERE ref='early'");
  auto added = audit("optout_add").back();
  EXPECT_EQ(added.details["optout"], r2->optout_uid);
  EXPECT_EQ(added.details["enrolled_matches"], 1);
  EXPECT_EQ(added.subjects, std::vector<std::string>{early_uid});
  EXPECT_EQ(added.canonical().find("early\""), std::string::npos) << "no external reference in the log";
  // Listing them is the auditor's optout_check, itself audited with their ids.
  actor_ = kAuditor;
  auto check = svc_->optout_check(actor_);
  ASSERT_TRUE(check.is_ok());
  ASSERT_EQ(check->matches.size(), 1u);
  EXPECT_EQ(check->matches[0].subject_ref, "early");
  EXPECT_EQ(check->matches[0].optout_uid, r2->optout_uid);
  EXPECT_EQ(check->incomparable_optouts, 0);
  EXPECT_EQ(audit("optout_check").back().subjects, std::vector<std::string>{early_uid});
}

TEST_F(OptoutTest, OptOutsOfAnotherModelAreCountedAndAudited) {
  // Opt-outs are compared only with templates of their own model: after a model change the
  // old entries block nothing, and `optout check` must say so instead of staying silent.
  ASSERT_TRUE(enroll("alice", basis("alice", {"access-control"}), random_template(rng_)).is_ok());
  auto old_model = random_template(rng_, "some-older-embedder");
  ASSERT_TRUE(svc_->optout_add_template(actor_, old_model).is_ok());
  ASSERT_TRUE(svc_->optout_add_template(actor_, random_template(rng_)).is_ok());
  auto other_version = random_template(rng_);
  other_version.model_version = 2;
  ASSERT_TRUE(svc_->optout_add_template(actor_, other_version).is_ok());
  actor_ = kAuditor;
  auto check = svc_->optout_check(actor_);
  ASSERT_TRUE(check.is_ok()) << check.status().to_string();
  EXPECT_EQ(check->incomparable_optouts, 2);
  EXPECT_EQ(audit("optout_check").back().details["incomparable_optouts"], 2);
  // An enrollment of the old model's face is not blocked by it (the documented limitation).
  actor_ = kAdmin;
  auto again = near_template(old_model, rng_, 0.2f);
  again.model_id = "faceplugin-mobilefacenet-512";
  EXPECT_TRUE(enroll("bob", basis("bob", {"access-control"}), again).is_ok());
}

}  // namespace
}  // namespace fv::test
