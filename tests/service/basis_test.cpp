// Lawful basis: recording one (and the subject it creates), validation of its text, and
// withdrawal, which erases what the basis covered and only roles that may erase may do.
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::BasisKind;
using service::EnrollRequest;
using service::Role;

class BasisTest : public ServiceTest {};

TEST_F(BasisTest, BasisIsValidatedAndCreatesTheSubject) {
  auto r = svc_->add_basis(actor_, {"alice", BasisKind::kConsent, "form-17", {"access-control", "payroll"}, std::nullopt});
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->subject_created);
  // Kinds are parsed at the boundary (CLI, HTTP): underscores are accepted, unknown kinds are not.
  const auto law_enforcement = service::parse_basis_kind("law_enforcement");
  ASSERT_EQ(law_enforcement, BasisKind::kLawEnforcement);
  EXPECT_FALSE(service::parse_basis_kind("whim").has_value());
  auto r2 = svc_->add_basis(actor_, {"alice", *law_enforcement, "warrant 5", {"investigation"}, "2099-01-01"});
  ASSERT_TRUE(r2.is_ok()) << r2.status().to_string();
  EXPECT_FALSE(r2->subject_created);
  EXPECT_EQ(r2->subject_uid, r->subject_uid);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM subject_key"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM basis_purpose"), 3);
  EXPECT_FALSE(svc_->add_basis(actor_, {"bob", BasisKind::kConsent, "", {"p"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis(actor_, {"bob", BasisKind::kConsent, "x", {}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis(actor_, {"bob", BasisKind::kConsent, "x", {"bad purpose"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis(actor_, {"bob", BasisKind::kConsent, "x", {"p"}, "2001-01-01"}).is_ok()) << "already expired";
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 1);
}

TEST_F(BasisTest, NonUtf8TextIsRefusedCleanlyWithNoPartialCommit) {
  const int64_t audit_before = count("SELECT count(*) FROM audit");
  // A Latin-1 "café" (not UTF-8): a clear refusal, not an exception from the JSON library.
  auto r = svc_->add_basis(actor_, {"caf\xe9", BasisKind::kConsent, "form-1", {"access-control"}, std::nullopt});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("UTF-8"), std::string::npos) << r.status().message();
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82"})  // overlong, surrogate, > U+10FFFF, cut
    EXPECT_FALSE(svc_->add_basis(actor_, {bad, BasisKind::kConsent, "form-1", {"access-control"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis(actor_, {"carol", BasisKind::kConsent, "form-\xff", {"access-control"}, std::nullopt}).is_ok());
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM lawful_basis") +
                count("SELECT count(*) FROM subject_key"),
            0)
      << "nothing committed";
  EXPECT_EQ(count("SELECT count(*) FROM audit"), audit_before);
  EXPECT_TRUE(svc_->add_basis(actor_, {"caf\xc3\xa9", BasisKind::kConsent, "form-1", {"access-control"}, std::nullopt}).is_ok())
      << "UTF-8 is fine";

  // Actor names, case references and provenance too.
  auto bad_actor = svc_->add_basis({"\xff", Role::kAdmin}, {"dan", BasisKind::kConsent, "form-1", {"access-control"}, std::nullopt});
  ASSERT_FALSE(bad_actor.is_ok());
  EXPECT_NE(bad_actor.status().message().find("UTF-8"), std::string::npos) << bad_actor.status().message();
  EXPECT_EQ(count("SELECT count(*) FROM subject WHERE ref='dan'"), 0);
  auto search = svc_->search_templates(actor_, {"access-control", "case-\xff"}, {random_template(rng_)});
  EXPECT_FALSE(search.is_ok());
  EnrollRequest req{"caf\xc3\xa9", 1};
  req.provenance.source = "scan-\xff.png";
  auto enrolled = svc_->enroll_template(actor_, req, random_template(rng_));
  ASSERT_FALSE(enrolled.is_ok());
  EXPECT_NE(enrolled.status().message().find("UTF-8"), std::string::npos);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 0);
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

TEST_F(BasisTest, WithdrawalErasesWhatTheBasisCovered) {
  const int64_t b1 = basis("alice", {"access-control"});
  const int64_t b2 = basis("alice", {"payroll"});
  ASSERT_TRUE(enroll("alice", b1, random_template(rng_)).is_ok());
  ASSERT_TRUE(enroll("alice", b2, random_template(rng_)).is_ok());
  auto r1 = svc_->withdraw_basis(actor_, b1);
  ASSERT_TRUE(r1.is_ok());
  EXPECT_EQ(r1->faces, 1);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 1);
  auto r2 = svc_->withdraw_basis(actor_, b2);
  ASSERT_TRUE(r2.is_ok());
  EXPECT_TRUE(r2->key_destroyed) << "no basis left: the whole subject goes";
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM face") +
                count("SELECT count(*) FROM subject_key") + count("SELECT count(*) FROM lawful_basis"),
            0);
}

TEST_F(BasisTest, WithdrawingABasisTwiceIsRefusedAndKeepsTheFirstDate) {
  const int64_t b1 = basis("alice", {"access-control"});
  ASSERT_GT(basis("alice", {"payroll"}), 0);
  ASSERT_TRUE(svc_->withdraw_basis(actor_, b1).is_ok());
  const std::string first = **raw_db(*svc_).query_text("SELECT withdrawn_at FROM lawful_basis WHERE id=" + std::to_string(b1));
  clock_.now = vault::add_days(clock_.now, 3);
  auto again = svc_->withdraw_basis(actor_, b1);
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.status().message().find("already withdrawn"), std::string::npos) << again.status().message();
  EXPECT_EQ(**raw_db(*svc_).query_text("SELECT withdrawn_at FROM lawful_basis WHERE id=" + std::to_string(b1)), first);
  EXPECT_EQ(audit("basis_withdraw").size(), 1u);
}

TEST_F(BasisTest, WithdrawalErasesTheSubjectWhenNoOtherBasisIsInForce) {
  // Alice's other basis has expired: withdrawing the one in force leaves her none.
  const int64_t old = basis("alice", {"access-control"}, BasisKind::kConsent, vault::add_days(clock_.now, 5));
  const int64_t cur = basis("alice", {"payroll"});
  ASSERT_TRUE(enroll("alice", old, random_template(rng_)).is_ok());
  ASSERT_TRUE(enroll("alice", cur, random_template(rng_)).is_ok());
  clock_.now = vault::add_days(clock_.now, 6);
  auto r = svc_->withdraw_basis(actor_, cur);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->key_destroyed) << "an expired basis does not keep the subject";
  EXPECT_EQ(r->faces, 2);
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM face") +
                count("SELECT count(*) FROM lawful_basis") + count("SELECT count(*) FROM subject_key"),
            0);
}

TEST_F(BasisTest, OnlyRolesThatMayEraseMayWithdrawABasis) {
  const int64_t b = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", b, random_template(rng_)).is_ok());
  for (Role role : {Role::kEnroller, Role::kInvestigator}) {
    actor_ = {"eve", role};
    auto r = svc_->withdraw_basis(actor_, b);
    ASSERT_FALSE(r.is_ok()) << service::role_name(role);
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().to_string();
    EXPECT_NE(r.status().message().find("may not"), std::string::npos);
  }
  EXPECT_EQ(count("SELECT count(*) FROM face"), 1) << "nothing erased";
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE action='basis_withdraw' AND outcome='denied'"), 2);
  actor_ = kAuditor;
  auto ok = svc_->withdraw_basis(actor_, b);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->key_destroyed);
}

}  // namespace
}  // namespace fv::test
