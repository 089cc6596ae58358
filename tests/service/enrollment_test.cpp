// Enrollment of synthetic templates: the lawful basis must exist, belong to the subject, be in
// force and cover the purpose; every refusal is audited; two processes enrolling at once leave
// a consistent vault. Enrollment from photos is in tests/vault/vault_pipeline_test.cpp.
#include <sys/wait.h>
#include <unistd.h>

#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::BasisKind;
using service::EnrollRequest;

class EnrollmentTest : public ServiceTest {};

TEST_F(EnrollmentTest, EnrollmentNeedsAValidBasisCoveringThePurpose) {
  auto t = random_template(rng_);
  auto no_subject = enroll("nobody", 1, t);
  ASSERT_FALSE(no_subject.is_ok());
  EXPECT_EQ(no_subject.status().code(), StatusCode::kNotFound) << no_subject.status().to_string();
  EXPECT_NE(no_subject.status().message().find("lawful basis"), std::string::npos);

  const int64_t a = basis("alice", {"access-control"});
  const int64_t b = basis("bob", {"access-control"});
  EXPECT_FALSE(enroll("alice", b, t).is_ok()) << "bob's basis does not cover alice";
  EXPECT_FALSE(enroll("alice", 999, t).is_ok());
  EnrollRequest req{"alice", a, std::string("marketing")};
  auto wrong_purpose = svc_->enroll_template(actor_, req, t);
  ASSERT_FALSE(wrong_purpose.is_ok());
  EXPECT_NE(wrong_purpose.status().message().find("does not cover the purpose"), std::string::npos);
  req.purpose = "access-control";
  ASSERT_TRUE(svc_->enroll_template(actor_, req, t).is_ok());

  // Expired basis.
  const int64_t c = basis("carol", {"access-control"}, BasisKind::kConsent, vault::add_days(clock_.now, 10));
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());
  clock_.now = vault::add_days(clock_.now, 11);
  auto expired = enroll("carol", c, random_template(rng_));
  ASSERT_FALSE(expired.is_ok());
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos);

  // Withdrawn basis (carol keeps another one, so she is not erased).
  const int64_t c2 = basis("carol", {"access-control"});
  const int64_t c3 = basis("carol", {"payroll"});
  ASSERT_TRUE(svc_->withdraw_basis(actor_, c2).is_ok());
  auto withdrawn = enroll("carol", c2, random_template(rng_));
  ASSERT_FALSE(withdrawn.is_ok());
  EXPECT_NE(withdrawn.status().message().find("withdrawn"), std::string::npos);
  EXPECT_TRUE(enroll("carol", c3, random_template(rng_)).is_ok());

  // Every refusal is in the audit log, with its reason and without biometric data.
  int refusals = 0;
  for (auto& e : audit("enroll"))
    if (e.outcome == "refused") {
      ++refusals;
      EXPECT_TRUE(e.details.contains("reason"));
    }
  EXPECT_EQ(refusals, 6);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 3);
}

TEST_F(EnrollmentTest, TwoProcessesEnrollingAtOnceLeaveAConsistentVault) {
  svc_.reset();
  std::vector<pid_t> pids;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      std::mt19937 rng(p + 100);
      const service::Actor proc{"proc" + std::to_string(p), service::Role::kAdmin};
      auto s = service::Service::open(dir_);
      if (!s.is_ok()) _exit(3);
      for (int i = 0; i < 15; ++i) {
        const std::string ref = "p" + std::to_string(p) + "-" + std::to_string(i);
        auto b = (*s)->add_basis(proc, {ref, BasisKind::kConsent, "f", {"access-control"}, std::nullopt});
        if (!b.is_ok()) _exit(4);
        EnrollRequest req{ref, b->basis_id};
        if (!(*s)->enroll_template(proc, req, random_template(rng)).is_ok()) _exit(5);
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child exit " << WEXITSTATUS(status);
  }
  svc_ = open_service(dir_);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 30);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 30);
  EXPECT_EQ(count("SELECT count(*) FROM audit"), 60);
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
  EXPECT_EQ(**raw_db(*svc_).query_text("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace fv::test
