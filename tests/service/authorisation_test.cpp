// Authorisations of searches (EU AI Act Art 26(10)): a purpose configured to need one is
// searched only citing an authorisation that is granted and valid for it, or pending within its
// deadline; a pending one that lapses without a grant marks the review cases of its searches
// unusable, and the audit says so. Synthetic templates: no models.
#include "service/service_test_util.h"
#include "vault/timeutil.h"

namespace fv::test {
namespace {

using service::AuthorisationRequest;
using service::SearchRequest;

class AuthorisationTest : public ServiceTest {
 protected:
  void SetUp() override {
    config_.authorisation_required = {"investigation"};
    ServiceTest::SetUp();
    probe_ = random_template(rng_);
    const int64_t b = basis("suspect-1", {"investigation", "access-control"}, service::BasisKind::kLawEnforcement);
    ASSERT_TRUE(enroll("suspect-1", b, near_template(probe_, rng_, 0.3f)).is_ok());
  }
  AuthorisationRequest request(bool pending = false) {
    AuthorisationRequest r;
    r.authority = "Investigating judge, Court of Example";
    r.reference = "ORD-2026-114";
    r.purposes = {"investigation"};
    r.valid_from = vault::add_days(clock_.now, -1);
    r.valid_until = vault::add_days(clock_.now, 30);
    r.pending = pending;
    return r;
  }
  std::string add(const AuthorisationRequest& r) {
    auto a = svc_->authorisation_add(kAuditor, r);
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    return a.is_ok() ? a->id : "";
  }
  Result<service::SearchResult> search(std::optional<std::string> authorisation, const std::string& purpose = "investigation") {
    SearchRequest req{purpose, "case-42", 5};
    req.authorisation = std::move(authorisation);
    return svc_->search_templates(kInvestigator, req, {probe_});
  }
  std::string status_of(const std::string& id) {
    auto all = svc_->authorisation_list(kAuditor);
    EXPECT_TRUE(all.is_ok());
    for (auto& a : *all)
      if (a.id == id) return a.status;
    return "";
  }
  face::FaceTemplate probe_;
};

TEST_F(AuthorisationTest, SearchWithoutAuthorisationIsRefusedWhenThePurposeNeedsOne) {
  auto r = search(std::nullopt);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().to_string();
  EXPECT_NE(r.status().message().find("authorisation"), std::string::npos);
  auto refused = audit("search");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].outcome, "refused");
  EXPECT_EQ(refused[0].purpose, "investigation");
  // A purpose that needs none is searched as before.
  auto ok = search(std::nullopt, "access-control");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_FALSE(ok->authorisation.has_value());
}

TEST_F(AuthorisationTest, SearchCitingAGrantedAuthorisationIsAllowedAndRecorded) {
  const std::string id = add(request());
  ASSERT_EQ(id.rfind("au_", 0), 0u) << id;
  EXPECT_EQ(status_of(id), "granted");
  auto r = search(id);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r->authorisation.has_value());
  EXPECT_EQ(*r->authorisation, id);
  EXPECT_FALSE(r->authorisation_pending);
  ASSERT_EQ(r->faces.size(), 1u);
  EXPECT_EQ(r->faces[0].candidates.size(), 1u);
  auto list = svc_->authorisation_list(kInvestigator);  // an investigator may read them
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].cases_citing, 1) << "the search's review case cites the authorisation";
  auto manage = audit("authorisation_manage");
  ASSERT_EQ(manage.size(), 1u);
  EXPECT_EQ(manage[0].actor, kAuditor.name);
  EXPECT_EQ(manage[0].details.value("authorisation", ""), id);
  EXPECT_EQ(manage[0].details.value("op", ""), "add");
}

TEST_F(AuthorisationTest, AnAuthorisationThatDoesNotFitIsRefused) {
  auto other_purpose = request();
  other_purpose.purposes = {"access-control"};
  auto not_yet = request();
  not_yet.valid_from = vault::add_days(clock_.now, 2);
  auto ended = request();
  ended.valid_from = vault::add_days(clock_.now, -30);
  ended.valid_until = vault::add_days(clock_.now, -2);
  const std::string refused = add(request());
  ASSERT_TRUE(svc_->authorisation_refuse(kAdmin, refused, "quashed on appeal").is_ok());
  for (const std::string& id : {add(other_purpose), add(not_yet), add(ended), refused, std::string("au_000000000000")}) {
    auto r = search(id);
    ASSERT_FALSE(r.is_ok()) << id;
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().to_string();
  }
  for (auto& e : audit("search")) {
    EXPECT_EQ(e.outcome, "refused");
    EXPECT_FALSE(e.details.value("reason", "").empty());
  }
  EXPECT_EQ(audit("search").size(), 5u);
}

TEST_F(AuthorisationTest, APendingAuthorisationAllowsSearchesUntilItsDeadlineThenLapses) {
  const std::string id = add(request(/*pending=*/true));
  EXPECT_EQ(status_of(id), "pending");
  auto r = search(id);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->authorisation_pending) << "a search under a pending authorisation is flagged";
  const std::string review_case = r->review_case;
  ASSERT_FALSE(review_case.empty());
  // 48 hours (the default window) pass without a grant: the case is unusable from then on,
  // before the expiry records the lapse.
  clock_.now = vault::add_days(clock_.now, 2.01);
  {
    auto c = svc_->review_show(kAuditor, review_case);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    ASSERT_TRUE(c->unusable.has_value()) << "unusable once the deadline passed, whether or not the sweep ran";
  }
  auto late = search(id);
  ASSERT_FALSE(late.is_ok());
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition);
  auto grant = svc_->authorisation_grant(kAuditor, id, "granted too late");
  ASSERT_FALSE(grant.is_ok()) << "a grant after the deadline cannot make the searches usable";
  EXPECT_EQ(grant.status().code(), StatusCode::kFailedPrecondition);
  // Expiry (as the server's scheduler runs it) lapses the authorisation and flags the case.
  auto rep = svc_->expire(kAuditor, std::nullopt, false);
  ASSERT_TRUE(rep.is_ok()) << rep.status().to_string();
  ASSERT_EQ(rep->oversight.lapsed.size(), 1u);
  EXPECT_EQ(rep->oversight.lapsed[0], id);
  EXPECT_EQ(rep->oversight.cases_marked_unusable, 1);
  EXPECT_EQ(status_of(id), "lapsed");
  auto c = svc_->review_show(kAuditor, review_case);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  ASSERT_TRUE(c->unusable.has_value()) << "the results of a search under a lapsed authorisation are unusable";
  EXPECT_NE(c->unusable->find(id), std::string::npos) << *c->unusable;
  auto lapsed = audit("authorisation_lapsed");
  ASSERT_EQ(lapsed.size(), 1u);
  EXPECT_EQ(lapsed[0].details.value("authorisation", ""), id);
  EXPECT_EQ(lapsed[0].details.value("cases_unusable", -1), 1);
  // A second sweep finds nothing more to lapse.
  auto again = svc_->oversight_sweep(kAuditor, std::nullopt);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->lapsed.empty());
}

TEST_F(AuthorisationTest, APendingAuthorisationGrantedInTimeStaysUsable) {
  const std::string id = add(request(true));
  auto r = search(id);
  ASSERT_TRUE(r.is_ok());
  clock_.now = vault::add_days(clock_.now, 1);
  auto g = svc_->authorisation_grant(kAdmin, id, "order signed");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->status, "granted");
  ASSERT_TRUE(g->decided_by.has_value());
  EXPECT_EQ(*g->decided_by, kAdmin.name);
  EXPECT_EQ(g->note, "order signed");
  clock_.now = vault::add_days(clock_.now, 2);
  EXPECT_TRUE(svc_->expire(kAuditor, std::nullopt, false)->oversight.lapsed.empty());
  auto c = svc_->review_show(kAuditor, r->review_case);
  ASSERT_TRUE(c.is_ok());
  EXPECT_FALSE(c->unusable.has_value());
  EXPECT_TRUE(search(id).is_ok());
  EXPECT_FALSE(svc_->authorisation_grant(kAdmin, id, "").is_ok()) << "granted once";
}

TEST_F(AuthorisationTest, RefusingAnAuthorisationMarksItsCasesUnusable) {
  const std::string id = add(request());
  auto r = search(id);
  ASSERT_TRUE(r.is_ok());
  auto refused = svc_->authorisation_refuse(kAuditor, id, "the court revoked the order");
  ASSERT_TRUE(refused.is_ok()) << refused.status().to_string();
  EXPECT_EQ(refused->status, "refused");
  auto c = svc_->review_show(kAuditor, r->review_case);
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE(c->unusable.has_value());
  EXPECT_FALSE(search(id).is_ok());
}

TEST_F(AuthorisationTest, APendingDeadlineMayShortenTheWindowNeverLengthenIt) {
  auto too_late = request(true);
  too_late.deadline = vault::add_days(clock_.now, 3);  // the window is 48 hours
  auto past = request(true);
  past.deadline = vault::add_days(clock_.now, -0.5);
  for (auto& r : {too_late, past}) {
    auto a = svc_->authorisation_add(kAuditor, r);
    ASSERT_FALSE(a.is_ok());
    EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument) << a.status().to_string();
  }
  auto shorter = request(true);
  shorter.deadline = vault::add_days(clock_.now, 0.5);
  auto a = svc_->authorisation_add(kAuditor, shorter);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE(a->deadline.has_value());
  EXPECT_EQ(*a->deadline, *shorter.deadline);
}

TEST_F(AuthorisationTest, AVerificationAgainstASubjectRecordsTheAuthorisationItCited) {
  const std::string id = add(request());
  SearchRequest req{"investigation", "case-43"};
  req.authorisation = id;
  auto v = svc_->verify_subject_template(kInvestigator, req, "suspect-1", probe_);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  auto entries = audit("verify_subject");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].details.value("authorisation", ""), id);
  SearchRequest without{"investigation", "case-44"};
  EXPECT_EQ(svc_->verify_subject_template(kInvestigator, without, "suspect-1", probe_).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(AuthorisationTest, TheAccessExportMarksACandidacyWhoseAuthorisationWasRefused) {
  const std::string id = add(request());
  ASSERT_TRUE(search(id).is_ok());
  ASSERT_TRUE(svc_->authorisation_refuse(kAuditor, id, "revoked").is_ok());
  auto exported = svc_->export_subject(kAuditor, "suspect-1", false, std::nullopt);
  ASSERT_TRUE(exported.is_ok()) << exported.status().to_string();
  const auto& cases = (*exported)["review_cases"];
  ASSERT_EQ(cases.size(), 1u);
  ASSERT_TRUE(cases[0].contains("unusable")) << cases[0].dump();
  EXPECT_NE(cases[0]["unusable"].get<std::string>().find(id), std::string::npos);
  // The export names the authorisation the search cited.
  ASSERT_TRUE(cases[0].contains("authorisation")) << cases[0].dump();
  EXPECT_EQ(cases[0]["authorisation"]["id"], id);
  EXPECT_EQ(cases[0]["authorisation"]["reference"], "ORD-2026-114");
}

TEST_F(AuthorisationTest, OnlyAdminsAndAuditorsRecordThem) {
  for (const auto& who : {kInvestigator, kEnroller}) {
    auto r = svc_->authorisation_add(who, request());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  }
  EXPECT_EQ(svc_->authorisation_list(kEnroller).status().code(), StatusCode::kPermissionDenied);
  const std::string id = add(request(true));
  EXPECT_EQ(svc_->authorisation_grant(kInvestigator, id, "").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status_of(id), "pending");
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE action='authorisation_manage' AND outcome='denied'"), 3);
}

TEST_F(AuthorisationTest, MalformedRequestsAreRefusedAndNothingIsRecorded) {
  auto backwards = request();
  std::swap(backwards.valid_from, backwards.valid_until);
  auto no_purpose = request();
  no_purpose.purposes.clear();
  auto deadline_granted = request();
  deadline_granted.deadline = vault::add_days(clock_.now, 1);
  auto bad_date = request();
  bad_date.valid_until = "next tuesday";
  auto no_authority = request();
  no_authority.authority = "";
  for (auto& r : {backwards, no_purpose, deadline_granted, bad_date, no_authority}) {
    auto a = svc_->authorisation_add(kAuditor, r);
    ASSERT_FALSE(a.is_ok());
    EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument) << a.status().to_string();
  }
  EXPECT_EQ(count("SELECT count(*) FROM authorisation"), 0);
  EXPECT_EQ(svc_->authorisation_grant(kAuditor, "au_nosuchthing", "").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace fv::test
