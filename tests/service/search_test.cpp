// Search of synthetic templates: refused without purpose and case, the purpose filter inside
// the scan (per template, not per subject), the false-match limit a request may only tighten,
// subjects leaving the searches when their basis expires or is withdrawn or another process
// erases them. Search of photos is in tests/vault/vault_pipeline_test.cpp.
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::BasisKind;
using service::SearchRequest;

class SearchTest : public ServiceTest {};

TEST_F(SearchTest, SearchRefusesWithoutPurposeAndCase) {
  for (auto [p, c] : {std::pair{"", "case-1"}, std::pair{"access-control", ""}, std::pair{"", ""}}) {
    auto r = svc_->search_templates(actor_, {p, c}, {random_template(rng_)});
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
    EXPECT_NE(r.status().message().find("purpose"), std::string::npos);
    auto r2 = svc_->search(actor_, {p, c}, {});  // refused before any image work
    ASSERT_FALSE(r2.is_ok());
    EXPECT_EQ(r2.status().code(), StatusCode::kInvalidArgument) << r2.status().to_string();
  }
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE action='search' AND outcome='refused'"), 6);
}

TEST_F(SearchTest, PurposeFilterRunsInsideTheScan) {
  auto probe = random_template(rng_);
  // 30 close subjects enrolled for access control, 3 less close ones for an investigation.
  for (int i = 0; i < 30; ++i) {
    const int64_t b = basis("ac" + std::to_string(i), {"access-control"});
    ASSERT_TRUE(enroll("ac" + std::to_string(i), b, near_template(probe, rng_, 0.3f)).is_ok());
  }
  for (int i = 0; i < 3; ++i) {
    const int64_t b = basis("inv" + std::to_string(i), {"investigation"}, BasisKind::kLawEnforcement);
    ASSERT_TRUE(enroll("inv" + std::to_string(i), b, near_template(probe, rng_, 0.9f)).is_ok());
  }
  SearchRequest inv{"investigation", "case-7", 3};
  auto r = svc_->search_templates(actor_, inv, {probe});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->faces.size(), 1u);
  ASSERT_EQ(r->faces[0].candidates.size(), 3u) << "K eligible candidates, although 30 others score higher";
  for (auto& c : r->faces[0].candidates) {
    EXPECT_EQ(c.subject_ref.rfind("inv", 0), 0u) << c.subject_ref;
    ASSERT_TRUE(c.fmr.has_value());
    EXPECT_LE(*c.fmr, 1e-3);
  }
  EXPECT_EQ(r->eligible_subjects, 3);
  auto ac = svc_->search_templates(actor_, {"access-control", "door-2", 50}, {probe});
  ASSERT_TRUE(ac.is_ok());
  EXPECT_EQ(ac->faces[0].candidates.size(), 30u);
  for (auto& c : ac->faces[0].candidates) EXPECT_EQ(c.subject_ref.rfind("ac", 0), 0u);
  EXPECT_TRUE(svc_->search_templates(actor_, {"marketing", "x"}, {probe})->faces[0].candidates.empty());
  // An unrelated face returns nobody: candidates must clear the false-match-rate threshold.
  EXPECT_TRUE(svc_->search_templates(actor_, {"access-control", "door-2"}, {random_template(rng_)})->faces[0].candidates.empty());
  // The search is audited with purpose, case and candidate ids (opaque uids, no scores).
  auto entries = audit("search");
  ASSERT_FALSE(entries.empty());
  const auto& e = entries[0];
  EXPECT_EQ(e.purpose, "investigation");
  EXPECT_EQ(e.case_ref, "case-7");
  EXPECT_EQ(e.subjects.size(), 3u);
  EXPECT_EQ(e.details["candidates"][0].size(), 3u);
  EXPECT_EQ(e.details.dump().find("similarity"), std::string::npos);
}

// Purpose limitation is per template: a template collected under a consent for access
// control is not searchable for an investigation just because the same subject also has a
// law-enforcement basis (with no template of its own).
TEST_F(SearchTest, PurposeLimitationIsPerTemplateNotPerSubject) {
  auto face = random_template(rng_);
  const int64_t consent = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", consent, face).is_ok());
  ASSERT_GT(basis("alice", {"investigation"}, BasisKind::kLawEnforcement), 0);
  auto inv = svc_->search_templates(actor_, {"investigation", "case-1", 5}, {face});
  ASSERT_TRUE(inv.is_ok()) << inv.status().to_string();
  EXPECT_TRUE(inv->faces[0].candidates.empty()) << "the badge photo was consented for access control only";
  auto ac = svc_->search_templates(actor_, {"access-control", "door-1", 5}, {face});
  ASSERT_TRUE(ac.is_ok());
  ASSERT_EQ(ac->faces[0].candidates.size(), 1u);
  EXPECT_EQ(ac->faces[0].candidates[0].subject_ref, "alice");
}

// A long-lived service (the server) must not keep returning a subject that another process
// erased: the vault's gallery generation tells it to rebuild its index.
TEST_F(SearchTest, ErasureByAnotherProcessTakesTheSubjectOutOfThisProcessesSearches) {
  auto face = random_template(rng_);
  ASSERT_TRUE(enroll("carol", basis("carol", {"access-control"}), random_template(rng_)).is_ok());
  ASSERT_TRUE(enroll("alice", basis("alice", {"access-control"}), face).is_ok());
  auto before = svc_->search_templates(actor_, {"access-control", "door-1", 5}, {face});
  ASSERT_TRUE(before.is_ok());
  ASSERT_EQ(before->faces[0].candidates.size(), 1u) << "the index is loaded and finds alice";
  {
    auto other = open_service(dir_, &clock_);  // a second connection: another process
    ASSERT_TRUE(other->erase(kAdmin, "alice").is_ok());
    ASSERT_TRUE(other->add_basis(kAdmin, {"bob", BasisKind::kConsent, "form-bob", {"access-control"}, std::nullopt}).is_ok());
  }
  auto after = svc_->search_templates(actor_, {"access-control", "door-1", 5}, {face});
  ASSERT_TRUE(after.is_ok());
  EXPECT_TRUE(after->faces[0].candidates.empty()) << "alice was erased elsewhere; this index must not still hold her";
  // And this process's own enrollments still go into its index without a rebuild.
  auto face2 = random_template(rng_);
  ASSERT_TRUE(enroll("dave", basis("dave", {"access-control"}), face2).is_ok());
  auto dave = svc_->search_templates(actor_, {"access-control", "door-1", 5}, {face2});
  ASSERT_TRUE(dave.is_ok());
  ASSERT_EQ(dave->faces[0].candidates.size(), 1u);
  EXPECT_EQ(dave->faces[0].candidates[0].subject_ref, "dave");
}

TEST_F(SearchTest, SearchMayTightenButNotLoosenTheFalseMatchLimit) {
  for (int i = 0; i < 20; ++i) {
    const std::string ref = std::to_string(100 + i);
    ASSERT_TRUE(enroll(ref, basis(ref, {"access-control"}), random_template(rng_)).is_ok());
  }
  actor_ = kInvestigator;
  SearchRequest loose{"access-control", "case-9", 50};
  loose.max_fmr = 1.0;  // "any score": would list every eligible subject
  auto r = svc_->search_templates(actor_, loose, {random_template(rng_)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->faces[0].candidates.empty()) << "a stranger's face returns nobody, whatever max_fmr asks";
  EXPECT_DOUBLE_EQ(r->max_fmr, config_.search_max_fmr);
  auto e = audit("search").back();
  EXPECT_DOUBLE_EQ(e.details["max_fmr"].get<double>(), config_.search_max_fmr) << "the limit used is audited";
  EXPECT_DOUBLE_EQ(e.details["threshold"].get<double>(), r->threshold);
  SearchRequest strict{"access-control", "case-9"};
  strict.max_fmr = 1e-6;
  auto s = svc_->search_templates(actor_, strict, {random_template(rng_)});
  ASSERT_TRUE(s.is_ok());
  EXPECT_DOUBLE_EQ(s->max_fmr, 1e-6) << "tightening is honoured";
  EXPECT_GE(s->threshold, r->threshold);
  EXPECT_DOUBLE_EQ(audit("search").back().details["max_fmr"].get<double>(), 1e-6);
}

TEST_F(SearchTest, ExpiredOrWithdrawnBasisTakesSubjectOutOfSearch) {
  auto probe = random_template(rng_);
  const int64_t b = basis("alice", {"investigation"}, BasisKind::kLawEnforcement, vault::add_days(clock_.now, 5));
  ASSERT_TRUE(enroll("alice", b, near_template(probe, rng_, 0.2f)).is_ok());
  EXPECT_EQ(svc_->search_templates(actor_, {"investigation", "c"}, {probe})->faces[0].candidates.size(), 1u);
  clock_.now = vault::add_days(clock_.now, 6);
  EXPECT_TRUE(svc_->search_templates(actor_, {"investigation", "c"}, {probe})->faces[0].candidates.empty());

  // Withdrawn: Bob's investigation basis goes; he stays enrolled under his payroll basis.
  auto bob_probe = random_template(rng_);
  const int64_t inv = basis("bob", {"investigation"}, BasisKind::kLawEnforcement);
  const int64_t pay = basis("bob", {"payroll"});
  ASSERT_TRUE(enroll("bob", inv, near_template(bob_probe, rng_, 0.2f)).is_ok());
  ASSERT_TRUE(enroll("bob", pay, near_template(bob_probe, rng_, 0.2f)).is_ok());
  EXPECT_EQ(svc_->search_templates(actor_, {"investigation", "c"}, {bob_probe})->faces[0].candidates.size(), 1u);
  auto w = svc_->withdraw_basis(actor_, inv);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_FALSE(w->key_destroyed) << "the payroll basis is still in force";
  EXPECT_EQ(w->faces, 1);
  EXPECT_TRUE(svc_->search_templates(actor_, {"investigation", "c"}, {bob_probe})->faces[0].candidates.empty())
      << "no basis in force covers the purpose any more";
  EXPECT_EQ(svc_->search_templates(actor_, {"payroll", "c"}, {bob_probe})->faces[0].candidates.size(), 1u);
  svc_.reset();  // and in a new process
  svc_ = open_service(dir_, &clock_);
  EXPECT_TRUE(svc_->search_templates(actor_, {"investigation", "c"}, {bob_probe})->faces[0].candidates.empty());
}

}  // namespace
}  // namespace fv::test
