// Review cases (EU AI Act Art 14(5)): every search opens one in the transaction of its audit
// entry; a candidate is a confirmed identification only after `reviewers_required` distinct
// reviewers confirmed it and nobody disagreed; reviewers decide independently (the others'
// decisions are hidden until one's own is recorded); the searcher reviews only when configured
// and then only first; decisions are audited naming the reviewer and appear in the subject's
// export; erasure takes the subject out of open cases and keeps closed cases' records by uid.
// Synthetic templates: no models (the crops are tested in tests/vault/vault_pipeline_test.cpp).
#include "service/render.h"
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::Actor;
using service::ReviewCase;
using service::ReviewDecisionRequest;
using service::ReviewVerdict;
using service::Role;
using service::SearchRequest;

const Actor kRita{"rita", Role::kReviewer};
const Actor kRavi{"ravi", Role::kReviewer};
const Actor kRosa{"rosa", Role::kReviewer};
const Actor kIan{"ian", Role::kInvestigator};  // another investigator than ivan

class ReviewTest : public ServiceTest {
 protected:
  // Enrolls `ref` (purpose "investigation") and returns its template.
  face::FaceTemplate enrolled(const std::string& ref) {
    auto t = random_template(rng_);
    const int64_t b = basis(ref, {"investigation"}, service::BasisKind::kLawEnforcement);
    auto r = enroll(ref, b, t);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return t;
  }
  // A search by `who` for each probe; returns the review case it opened.
  std::string search(const std::vector<face::FaceTemplate>& probes, const Actor& who = kInvestigator,
                     const std::string& case_ref = "case-1") {
    auto r = svc_->search_templates(who, SearchRequest{"investigation", case_ref, 5}, probes);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->review_case : "";
  }
  ReviewCase show(const std::string& id, const Actor& who = kAuditor) {
    auto c = svc_->review_show(who, id);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? *c : ReviewCase{};
  }
  // The id of the (first) candidate of `ref` in a case.
  int64_t candidate(const std::string& id, const std::string& ref) {
    for (auto& k : show(id).candidates)
      if (k.subject_ref == ref) return k.id;
    ADD_FAILURE() << ref << " is no candidate of " << id;
    return 0;
  }
  const service::ReviewCandidate* find(const ReviewCase& c, int64_t candidate_id) {
    for (auto& k : c.candidates)
      if (k.id == candidate_id) return &k;
    return nullptr;
  }
  Result<service::ReviewDecision> decide(const Actor& who, const std::string& id, int64_t cand, ReviewVerdict v,
                                         const std::string& reason = "same face shape, same scar") {
    ReviewDecisionRequest req;
    req.candidate_id = cand;
    req.verdict = v;
    req.reason = reason;
    return svc_->review_decide(who, id, req);
  }
  size_t outcomes(const std::string& action, const std::string& outcome) {
    size_t n = 0;
    for (auto& e : audit(action)) n += e.outcome == outcome;
    return n;
  }
};

TEST_F(ReviewTest, EverySearchOpensACaseInTheTransactionOfItsAuditEntry) {
  auto alice = enrolled("alice");
  auto r = svc_->search_templates(kInvestigator, SearchRequest{"investigation", "case-9", 5}, {near_template(alice, rng_, 0.3f)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->review_case.rfind("rv_", 0), 0u) << r->review_case;
  EXPECT_FALSE(r->authorisation.has_value());
  EXPECT_FALSE(r->authorisation_pending);
  auto entries = audit("search");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].details["review_case"], r->review_case);
  EXPECT_EQ(entries[0].details["authorisation_pending"], false);
  EXPECT_FALSE(entries[0].details.contains("authorisation"));
  auto c = show(r->review_case);
  EXPECT_EQ(c.search_audit_seq, entries[0].seq);
  EXPECT_EQ(c.status, "open");
  EXPECT_EQ(c.searcher, kInvestigator.name);
  EXPECT_EQ(c.purpose, "investigation");
  EXPECT_EQ(c.case_ref, "case-9");
  EXPECT_EQ(c.probe_sha256, "");  // templates: no photo
  EXPECT_TRUE(c.probe_faces.empty());
  ASSERT_EQ(c.candidates.size(), 1u);
  EXPECT_EQ(c.candidates[0].subject_ref, "alice");
  EXPECT_EQ(c.candidates[0].subject_uid, r->faces[0].candidates[0].subject_uid);
  EXPECT_DOUBLE_EQ(c.candidates[0].similarity, r->faces[0].candidates[0].similarity);
  EXPECT_EQ(c.candidates[0].rank, 1);
  EXPECT_EQ(c.candidates[0].status, "pending");
  // The search's JSON: no candidate is confirmed, and the notice names the case.
  auto j = service::render::search(*r);
  EXPECT_EQ(j["review_case"], r->review_case);
  EXPECT_TRUE(j["authorisation"].is_null());
  EXPECT_EQ(j["faces"][0]["candidates"][0]["confirmed"], false);
  EXPECT_NE(j["notice"].get<std::string>().find(r->review_case), std::string::npos);
  // A search with no candidate opens its case closed: nothing to review.
  auto none = svc_->search_templates(kInvestigator, SearchRequest{"investigation", "case-9", 5}, {random_template(rng_)});
  ASSERT_TRUE(none.is_ok());
  auto nc = show(none->review_case);
  EXPECT_EQ(nc.status, "closed");
  ASSERT_TRUE(nc.closed_at.has_value());
  EXPECT_EQ(*nc.closed_at, nc.opened_at);
}

TEST_F(ReviewTest, OneConfirmationIsNotAConfirmedIdentificationTwoAre) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm).is_ok());
  auto c = show(id);
  EXPECT_EQ(find(c, k)->status, "pending");
  EXPECT_EQ(service::render::review_case(c, 2)["candidates"][0]["confirmed"], false);
  EXPECT_EQ(c.status, "open");
  ASSERT_TRUE(decide(kRavi, id, k, ReviewVerdict::kConfirm).is_ok());
  c = show(id);
  EXPECT_EQ(find(c, k)->status, "confirmed");
  EXPECT_EQ(service::render::review_case(c, 2)["candidates"][0]["confirmed"], true);
  // Every candidate has its two decisions: the case closed, audited with the count confirmed.
  EXPECT_EQ(c.status, "closed");
  auto closes = audit("review_close");
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_EQ(closes[0].details["review_case"], id);
  EXPECT_EQ(closes[0].details["confirmed"], 1);
  EXPECT_EQ(closes[0].details["probe_crops_destroyed"], false);  // templates: none kept
}

class ThreeReviewersTest : public ReviewTest {
 protected:
  void SetUp() override {
    config_.reviewers_required = 3;
    ReviewTest::SetUp();
  }
};

TEST_F(ThreeReviewersTest, ThreeConfirmationsAreNeeded) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm).is_ok());
  ASSERT_TRUE(decide(kRavi, id, k, ReviewVerdict::kConfirm).is_ok());
  EXPECT_EQ(find(show(id), k)->status, "pending");
  EXPECT_EQ(show(id).status, "open");
  ASSERT_TRUE(decide(kRosa, id, k, ReviewVerdict::kConfirm).is_ok());
  EXPECT_EQ(find(show(id), k)->status, "confirmed");
  EXPECT_EQ(show(id).status, "closed");
}

TEST_F(ReviewTest, TheSameReviewerDecidesOnce) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm).is_ok());
  auto again = decide(kRita, id, k, ReviewVerdict::kConfirm, "still sure");
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists) << again.status().to_string();
  EXPECT_EQ(find(show(id), k)->decisions_recorded, 1);
  EXPECT_EQ(find(show(id), k)->status, "pending");
  EXPECT_EQ(outcomes("review_decide", "refused"), 1u);
  EXPECT_EQ(outcomes("review_decide", "ok"), 1u);
}

TEST_F(ReviewTest, TheSearcherIsNoReviewerUnlessConfigured) {
  auto alice = enrolled("alice");
  // An admin may decide, but not on the candidates of their own search.
  const std::string id = search({near_template(alice, rng_, 0.3f)}, kAdmin);
  const int64_t k = candidate(id, "alice");
  auto own = decide(kAdmin, id, k, ReviewVerdict::kConfirm);
  ASSERT_FALSE(own.is_ok());
  EXPECT_EQ(own.status().code(), StatusCode::kPermissionDenied) << own.status().to_string();
  EXPECT_EQ(outcomes("review_decide", "denied"), 1u);
  EXPECT_EQ(find(show(id), k)->decisions_recorded, 0);
  // An investigator may not decide at all (role), and a reviewer may.
  EXPECT_EQ(decide(kInvestigator, id, k, ReviewVerdict::kConfirm).status().code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm).is_ok());
}

class SearcherMayReviewTest : public ReviewTest {
 protected:
  void SetUp() override {
    config_.searcher_may_review = true;
    ReviewTest::SetUp();
  }
};

TEST_F(SearcherMayReviewTest, TheSearcherMayBeTheFirstReviewerOnly) {
  auto alice = enrolled("alice");
  auto bob = enrolled("bob");
  const std::string id = search({near_template(alice, rng_, 0.3f), near_template(bob, rng_, 0.3f)}, kAdmin);
  const int64_t ka = candidate(id, "alice"), kb = candidate(id, "bob");
  // First on alice: allowed.
  auto first = decide(kAdmin, id, ka, ReviewVerdict::kConfirm);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(first->reviewer, kAdmin.name);
  // Second on bob, after a reviewer: denied.
  ASSERT_TRUE(decide(kRita, id, kb, ReviewVerdict::kConfirm).is_ok());
  auto second = decide(kAdmin, id, kb, ReviewVerdict::kConfirm);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kPermissionDenied) << second.status().to_string();
  EXPECT_EQ(outcomes("review_decide", "denied"), 1u);
  // Alice still needs a second reviewer other than the searcher.
  ASSERT_TRUE(decide(kRavi, id, ka, ReviewVerdict::kConfirm).is_ok());
  EXPECT_EQ(find(show(id), ka)->status, "confirmed");
}

TEST_F(ReviewTest, TheSecondReviewerCannotReadTheFirstDecisionBeforeRecordingTheirs) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  const std::string secret_reason = "ear shape matches the custody photo";
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kReject, secret_reason).is_ok());
  // Ravi, the admin (who could decide) and the searcher (while open) see that one decision
  // exists, not what it was.
  for (const Actor& who : {kRavi, kAdmin, kInvestigator}) {
    auto c = show(id, who);
    ASSERT_EQ(c.candidates.size(), 1u);
    EXPECT_EQ(c.candidates[0].decisions_recorded, 1) << who.name;
    EXPECT_FALSE(c.candidates[0].decisions.has_value()) << who.name;
    const std::string text = service::render::review_case(c, 2).dump();
    EXPECT_EQ(text.find(secret_reason), std::string::npos) << who.name << ": " << text;
    EXPECT_EQ(text.find("\"reject\""), std::string::npos) << who.name << ": " << text;
    EXPECT_FALSE(service::render::review_case(c, 2)["candidates"][0].contains("decisions")) << who.name;
  }
  // Nor in the list of cases.
  auto listed = svc_->review_list(kRavi, {});
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_FALSE((*listed)[0].candidates[0].decisions.has_value());
  // The auditor sees it; Rita sees her own.
  ASSERT_TRUE(show(id, kAuditor).candidates[0].decisions.has_value());
  EXPECT_TRUE(show(id, kRita).candidates[0].decided_by_caller);
  ASSERT_TRUE(show(id, kRita).candidates[0].decisions.has_value());
  // Once Ravi recorded his, he sees both, disagreement included.
  ASSERT_TRUE(decide(kRavi, id, k, ReviewVerdict::kConfirm).is_ok());
  auto after = show(id, kRavi);
  ASSERT_TRUE(after.candidates[0].decisions.has_value());
  ASSERT_EQ(after.candidates[0].decisions->size(), 2u);
  EXPECT_EQ((*after.candidates[0].decisions)[0].reason, secret_reason);
  EXPECT_EQ((*after.candidates[0].decisions)[0].reviewer, kRita.name);
  EXPECT_EQ(after.candidates[0].status, "disputed");
  // The case closed: the searcher sees them now; the admin, who did not decide, still does not.
  EXPECT_TRUE(show(id, kInvestigator).candidates[0].decisions.has_value());
  EXPECT_FALSE(show(id, kAdmin).candidates[0].decisions.has_value());
}

TEST_F(ReviewTest, AnAdminWhoMayStillDecideReadsNoDecisionInTheAuditOrTheExport) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  const std::string secret_reason = "the mole under the left eye";
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm, secret_reason).is_ok());
  auto decision_entries = [&](const Actor& who) {
    service::AuditFilter f;
    f.action = "review_decide";
    auto page = svc_->audit_show(who, f);
    EXPECT_TRUE(page.is_ok()) << page.status().to_string();
    return page.is_ok() ? page->entries : std::vector<vault::AuditEntry>{};
  };
  auto admin_view = decision_entries(kAdmin);
  ASSERT_EQ(admin_view.size(), 1u);
  EXPECT_FALSE(admin_view[0].details.contains("decision")) << admin_view[0].details.dump();
  EXPECT_FALSE(admin_view[0].details.contains("reason"));
  EXPECT_TRUE(admin_view[0].details.contains("decision_hidden"));
  EXPECT_EQ(admin_view[0].actor, kRita.name) << "who decided stays visible; what they decided does not";
  auto exported = svc_->export_subject(kAdmin, "alice", false, std::nullopt);
  ASSERT_TRUE(exported.is_ok()) << exported.status().to_string();
  EXPECT_EQ(exported->dump().find(secret_reason), std::string::npos);
  EXPECT_TRUE((*exported)["review_cases"][0].contains("decisions_hidden"));
  // The auditor, who cannot decide, reads everything.
  auto auditor_view = decision_entries(kAuditor);
  ASSERT_EQ(auditor_view.size(), 1u);
  EXPECT_EQ(auditor_view[0].details.value("reason", ""), secret_reason);
  auto audited = svc_->export_subject(kAuditor, "alice", false, std::nullopt);
  ASSERT_TRUE(audited.is_ok());
  EXPECT_NE(audited->dump().find(secret_reason), std::string::npos);
  // Once the admin decided, the admin reads them too.
  ASSERT_TRUE(decide(kAdmin, id, k, ReviewVerdict::kConfirm, "agree").is_ok());
  EXPECT_EQ(decision_entries(kAdmin)[0].details.value("reason", ""), secret_reason);
}

TEST_F(ReviewTest, AKeysPurposeScopeHoldsForReviewCases) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  const service::PurposeScope border = std::vector<std::string>{"border-control"};
  const service::PurposeScope inv = std::vector<std::string>{"investigation"};
  auto shown = svc_->review_show(kRita, id, border);
  ASSERT_FALSE(shown.is_ok());
  EXPECT_EQ(shown.status().code(), StatusCode::kPermissionDenied);
  service::ReviewListFilter f;
  f.allowed_purposes = border;
  EXPECT_TRUE(svc_->review_list(kRita, f)->empty());
  f.allowed_purposes = inv;
  EXPECT_EQ(svc_->review_list(kRita, f)->size(), 1u);
  ReviewDecisionRequest req;
  req.candidate_id = k;
  req.verdict = ReviewVerdict::kConfirm;
  req.reason = "same face";
  req.allowed_purposes = border;
  auto refused = svc_->review_decide(kRita, id, req);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(svc_->review_probe_image(kRita, id, 0, border).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(find(show(id), k)->decisions_recorded, 0);
  req.allowed_purposes = inv;
  EXPECT_TRUE(svc_->review_decide(kRita, id, req).is_ok());
  EXPECT_EQ(outcomes("review_read", "denied"), 2u);
  EXPECT_EQ(outcomes("review_decide", "denied"), 1u);
}

TEST_F(ReviewTest, WithdrawingTheBasisOfACasesPurposeTakesTheSubjectOutOfItsOpenCases) {
  auto t = random_template(rng_);
  const int64_t police = basis("alice", {"investigation"}, service::BasisKind::kLawEnforcement);
  ASSERT_TRUE(enroll("alice", police, t).is_ok());
  const int64_t work = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", work, t).is_ok());
  auto bob = enrolled("bob");
  const std::string id = search({near_template(t, rng_, 0.3f), near_template(bob, rng_, 0.3f)});
  ASSERT_EQ(show(id).candidates.size(), 2u);
  const int64_t kb = candidate(id, "bob");
  // The access-control basis is withdrawn: alice stays a candidate for investigations.
  ASSERT_TRUE(svc_->withdraw_basis(kAuditor, work).is_ok());
  EXPECT_EQ(show(id).candidates.size(), 2u);
  // The investigation basis is withdrawn too: alice leaves the investigation's open case.
  ASSERT_TRUE(svc_->add_basis(kAdmin, {"alice", service::BasisKind::kConsent, "f", {"access-control"}, std::nullopt}).is_ok());
  ASSERT_TRUE(svc_->withdraw_basis(kAuditor, police).is_ok());
  auto after = show(id);
  ASSERT_EQ(after.candidates.size(), 1u);
  EXPECT_EQ(after.candidates[0].id, kb);
  EXPECT_EQ(after.status, "open");
  EXPECT_EQ(audit("basis_withdraw").back().details.value("review_cases_left", 0), 1);
}

TEST_F(ReviewTest, ACandidateWithTheDecisionsRequiredTakesNoMore) {
  auto alice = enrolled("alice");
  auto bob = enrolled("bob");
  const std::string id = search({near_template(alice, rng_, 0.3f), near_template(bob, rng_, 0.3f)});
  const int64_t ka = candidate(id, "alice");
  ASSERT_TRUE(decide(kRita, id, ka, ReviewVerdict::kConfirm).is_ok());
  ASSERT_TRUE(decide(kRavi, id, ka, ReviewVerdict::kConfirm).is_ok());
  ASSERT_EQ(show(id).status, "open") << "bob is still pending";
  // A third reviewer, who can see that alice is confirmed, cannot add a decision to her.
  auto third = decide(kRosa, id, ka, ReviewVerdict::kReject);
  ASSERT_FALSE(third.is_ok());
  EXPECT_EQ(third.status().code(), StatusCode::kFailedPrecondition) << third.status().to_string();
  EXPECT_EQ(find(show(id), ka)->status, "confirmed");
  EXPECT_EQ(outcomes("review_decide", "refused"), 1u);
}

TEST_F(ReviewTest, DisagreementIsDisputedAndStaysVisible) {
  auto alice = enrolled("alice");
  auto bob = enrolled("bob");
  const std::string id = search({near_template(alice, rng_, 0.3f), near_template(bob, rng_, 0.3f)});
  const int64_t ka = candidate(id, "alice"), kb = candidate(id, "bob");
  ASSERT_TRUE(decide(kRita, id, ka, ReviewVerdict::kConfirm).is_ok());
  ASSERT_TRUE(decide(kRavi, id, ka, ReviewVerdict::kReject).is_ok());
  ASSERT_TRUE(decide(kRita, id, kb, ReviewVerdict::kReject).is_ok());
  ASSERT_TRUE(decide(kRavi, id, kb, ReviewVerdict::kInconclusive).is_ok());
  auto c = show(id);
  EXPECT_EQ(find(c, ka)->status, "disputed");
  EXPECT_EQ(find(c, kb)->status, "inconclusive");
  EXPECT_EQ(c.status, "closed");
  auto j = service::render::review_case(c, 2);
  for (auto& k : j["candidates"]) {
    EXPECT_EQ(k["confirmed"], false);
    EXPECT_EQ(k["decisions"].size(), 2u);
  }
  EXPECT_EQ(audit("review_close")[0].details["confirmed"], 0);
}

TEST_F(ReviewTest, AClosedCaseRefusesDecisions) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice");
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kReject).is_ok());
  ASSERT_TRUE(decide(kRavi, id, k, ReviewVerdict::kReject).is_ok());
  ASSERT_EQ(show(id).status, "closed");
  auto late = decide(kRosa, id, k, ReviewVerdict::kConfirm);
  ASSERT_FALSE(late.is_ok());
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition) << late.status().to_string();
  EXPECT_EQ(find(show(id), k)->status, "rejected");
  EXPECT_EQ(outcomes("review_decide", "refused"), 1u);
}

TEST_F(ReviewTest, AnUnusableCaseStillTakesDecisionsAndStaysMarked) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  ASSERT_TRUE(raw_db(*svc_).exec("UPDATE review_case SET unusable='authorisation lapsed' WHERE uid='" + id + "'").is_ok());
  const int64_t k = candidate(id, "alice");
  ASSERT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm).is_ok());
  ASSERT_TRUE(decide(kRavi, id, k, ReviewVerdict::kConfirm).is_ok());
  auto c = show(id);
  EXPECT_EQ(c.status, "closed");
  ASSERT_TRUE(c.unusable.has_value());
  EXPECT_EQ(*c.unusable, "authorisation lapsed");
  auto j = service::render::review_case(c, 2);
  EXPECT_EQ(j["unusable"], "authorisation lapsed");
  EXPECT_NE(j["notice"].get<std::string>().find("may not be used"), std::string::npos);
}

TEST_F(ReviewTest, ADecisionNeedsAReasonAndACandidateOfTheCase) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  const std::string other = search({near_template(alice, rng_, 0.3f)});
  const int64_t k = candidate(id, "alice"), k_other = candidate(other, "alice");
  EXPECT_EQ(decide(kRita, id, k, ReviewVerdict::kConfirm, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decide(kRita, id, k, ReviewVerdict::kConfirm, "bad\ncontrol").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decide(kRita, id, k, ReviewVerdict::kConfirm, std::string(2001, 'x')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(decide(kRita, id, k_other, ReviewVerdict::kConfirm).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(decide(kRita, "rv_0000000000000000", k, ReviewVerdict::kConfirm).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(find(show(id), k)->decisions_recorded, 0);
  EXPECT_TRUE(decide(kRita, id, k, ReviewVerdict::kConfirm, std::string(2000, 'x')).is_ok());
}

TEST_F(ReviewTest, AnInvestigatorSeesOnlyTheCasesTheyOpened) {
  auto alice = enrolled("alice");
  const std::string mine = search({near_template(alice, rng_, 0.3f)}, kInvestigator);
  const std::string theirs = search({near_template(alice, rng_, 0.3f)}, kIan);
  auto denied = svc_->review_show(kIan, mine);
  ASSERT_FALSE(denied.is_ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied) << denied.status().to_string();
  EXPECT_EQ(outcomes("review_read", "denied"), 1u);
  EXPECT_EQ(svc_->review_probe_image(kIan, mine, 0).status().code(), StatusCode::kPermissionDenied);
  auto ian = svc_->review_list(kIan, {});
  ASSERT_TRUE(ian.is_ok());
  ASSERT_EQ(ian->size(), 1u);
  EXPECT_EQ((*ian)[0].id, theirs);
  EXPECT_TRUE(svc_->review_show(kIan, theirs).is_ok());
  // Reviewers and auditors see both; an enroller none.
  EXPECT_EQ(svc_->review_list(kRita, {})->size(), 2u);
  EXPECT_EQ(svc_->review_list(kAuditor, {})->size(), 2u);
  EXPECT_EQ(svc_->review_list(kEnroller, {}).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ReviewTest, TheQueueListsWhatTheCallerMayStillDecide) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  service::ReviewListFilter awaiting;
  awaiting.awaiting_caller = true;
  ASSERT_EQ(svc_->review_list(kRita, awaiting)->size(), 1u);
  ASSERT_TRUE(decide(kRita, id, candidate(id, "alice"), ReviewVerdict::kConfirm).is_ok());
  EXPECT_EQ(svc_->review_list(kRita, awaiting)->size(), 0u);
  EXPECT_EQ(svc_->review_list(kRavi, awaiting)->size(), 1u);
  EXPECT_EQ(svc_->review_list(kInvestigator, awaiting)->size(), 0u);  // may not decide
  service::ReviewListFilter closed;
  closed.status = "closed";
  EXPECT_EQ(svc_->review_list(kRita, closed)->size(), 0u);
  closed.status = "shut";
  EXPECT_EQ(svc_->review_list(kRita, closed).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ReviewTest, DecisionsAreAuditedNamingTheReviewerAndExported) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)}, kInvestigator, "case-42");
  const int64_t k = candidate(id, "alice");
  auto d = decide(kRita, id, k, ReviewVerdict::kConfirm, "same birthmark");
  ASSERT_TRUE(d.is_ok());
  EXPECT_FALSE(d->audit_hash.empty());
  EXPECT_FALSE(d->reference_available);  // no reference crop kept: recorded as compared without one
  auto entries = audit("review_decide");
  ASSERT_EQ(entries.size(), 1u);
  const auto& e = entries[0];
  EXPECT_EQ(e.actor, kRita.name);
  EXPECT_EQ(e.role, "reviewer");
  EXPECT_EQ(e.outcome, "ok");
  EXPECT_EQ(e.purpose, "investigation");
  EXPECT_EQ(e.case_ref, "case-42");
  EXPECT_EQ(e.hash, d->audit_hash);
  ASSERT_EQ(e.subjects.size(), 1u);
  EXPECT_EQ(e.details["review_case"], id);
  EXPECT_EQ(e.details["candidate"], k);
  EXPECT_EQ(e.details["decision"], "confirm");
  EXPECT_EQ(e.details["reason"], "same birthmark");
  EXPECT_EQ(e.details["reference_available"], false);
  ASSERT_TRUE(decide(kRavi, id, k, ReviewVerdict::kConfirm, "same earlobe").is_ok());
  // The subject's access export lists both decisions and says the candidacy is confirmed.
  auto x = svc_->export_subject(kAuditor, "alice", false, std::nullopt);
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  const auto& cases = (*x)["review_cases"];
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_EQ(cases[0]["review_case"], id);
  EXPECT_EQ(cases[0]["status"], "confirmed");
  EXPECT_EQ(cases[0]["confirmed"], true);
  ASSERT_EQ(cases[0]["decisions"].size(), 2u);
  EXPECT_EQ(cases[0]["decisions"][0]["reviewer"], kRita.name);
  EXPECT_EQ(cases[0]["decisions"][0]["decision"], "confirm");
  EXPECT_EQ(cases[0]["decisions"][0]["reason"], "same birthmark");
  EXPECT_FALSE(cases[0]["decisions"][0]["decided_at"].get<std::string>().empty());
  EXPECT_EQ(cases[0]["decisions"][1]["reviewer"], kRavi.name);
  EXPECT_EQ((*x)["review_summary"]["confirmed_identifications"], 1);
  EXPECT_EQ((*x)["reference_crops"]["count"], 0);
  size_t decide_entries = 0;
  for (auto& a : (*x)["audit"]) decide_entries += a["action"] == "review_decide";
  EXPECT_EQ(decide_entries, 2u);
}

TEST_F(ReviewTest, ErasureRemovesTheSubjectFromOpenCasesAndKeepsTheRecordOfClosedOnes) {
  auto alice = enrolled("alice");
  auto bob = enrolled("bob");
  const std::string uid = show(search({near_template(alice, rng_, 0.3f)})).candidates[0].subject_uid;
  // A closed case about alice (two rejections), an open one with alice and bob, and an open
  // one with alice only (decided once).
  const std::string closed = search({near_template(alice, rng_, 0.3f)});
  const int64_t kc = candidate(closed, "alice");
  ASSERT_TRUE(decide(kRita, closed, kc, ReviewVerdict::kReject, "different nose").is_ok());
  ASSERT_TRUE(decide(kRavi, closed, kc, ReviewVerdict::kReject, "different chin").is_ok());
  ASSERT_EQ(show(closed).status, "closed");
  const std::string both = search({near_template(alice, rng_, 0.3f), near_template(bob, rng_, 0.3f)});
  ASSERT_TRUE(decide(kRita, both, candidate(both, "alice"), ReviewVerdict::kConfirm).is_ok());
  const std::string only = search({near_template(alice, rng_, 0.3f)});
  ASSERT_TRUE(decide(kRita, only, candidate(only, "alice"), ReviewVerdict::kConfirm).is_ok());
  const size_t decisions_before = audit("review_decide").size();

  auto receipt = svc_->erase(kAuditor, "alice");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->review_candidates_removed, 3);  // the first search's case, `both` and `only`
  EXPECT_EQ(service::render::erase_receipt(*receipt)["erased"]["review_candidates"], 3);

  // Open cases: alice is gone with her decisions; bob stays.
  auto b = show(both);
  ASSERT_EQ(b.candidates.size(), 1u);
  EXPECT_EQ(b.candidates[0].subject_ref, "bob");
  EXPECT_EQ(b.status, "open");
  // A case left with nothing to decide closes.
  auto o = show(only);
  EXPECT_TRUE(o.candidates.empty());
  EXPECT_EQ(o.status, "closed");
  EXPECT_EQ(count("SELECT count(*) FROM review_decision d JOIN review_candidate c ON c.id=d.candidate_id "
                  "WHERE c.subject_uid='" + uid + "'"),
            2);  // only the closed case's two
  // The closed case keeps what was decided, by the opaque uid, without the reference.
  auto c = show(closed);
  ASSERT_EQ(c.candidates.size(), 1u);
  EXPECT_EQ(c.candidates[0].subject_uid, uid);
  EXPECT_EQ(c.candidates[0].subject_ref, "");
  EXPECT_EQ(c.candidates[0].status, "rejected");
  ASSERT_TRUE(c.candidates[0].decisions.has_value());
  EXPECT_EQ(c.candidates[0].decisions->size(), 2u);
  EXPECT_TRUE(service::render::review_case(c, 2)["candidates"][0]["subject"].is_null());
  EXPECT_EQ(count("SELECT count(*) FROM review_candidate WHERE subject_id IS NULL"), 1);
  // The audit entries stay (append-only), without biometric data.
  EXPECT_EQ(audit("review_decide").size(), decisions_before);
  const std::string log = audit_table_text(raw_db(*svc_));
  EXPECT_EQ(log.find("alice"), std::string::npos) << "the log names subjects by their opaque uid only";
  for (const auto* t : {&alice, &bob}) {
    const auto bytes = float_bytes(t->values);
    const std::string as_hex = vault::to_hex(bytes.subspan(0, 16));
    EXPECT_EQ(log.find(as_hex), std::string::npos);
    EXPECT_EQ(log.find(std::string(reinterpret_cast<const char*>(bytes.data()), 16)), std::string::npos);
    char first[32];
    std::snprintf(first, sizeof first, "%.6f", t->values[0]);
    EXPECT_EQ(log.find(first), std::string::npos) << "a template value in the log";
  }
  EXPECT_EQ(log.find("similarity"), std::string::npos);
}

TEST_F(ReviewTest, ImagesAreNotFoundWhenNoneIsKept) {
  auto alice = enrolled("alice");
  const std::string id = search({near_template(alice, rng_, 0.3f)});
  auto probe = svc_->review_probe_image(kRita, id, 0);
  EXPECT_EQ(probe.status().code(), StatusCode::kNotFound) << probe.status().to_string();
  auto ref = svc_->review_reference_image(kRita, id, candidate(id, "alice"));
  EXPECT_EQ(ref.status().code(), StatusCode::kNotFound) << ref.status().to_string();
  EXPECT_FALSE(show(id).candidates[0].reference_available);
}

TEST(ReviewVerdict, NamesRoundTrip) {
  for (auto v : {ReviewVerdict::kConfirm, ReviewVerdict::kReject, ReviewVerdict::kInconclusive})
    EXPECT_EQ(service::parse_review_verdict(service::review_verdict_name(v)), v);
  EXPECT_FALSE(service::parse_review_verdict("maybe").has_value());
}

}  // namespace
}  // namespace fv::test
