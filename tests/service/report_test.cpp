// The transparency report: on a scripted history (the use cases through the Service API with
// synthetic templates: enrolments, searches, review decisions, an authorisation that lapses,
// erasures of every cause, denials, an opt-out, an export), its
// counts equal both the numbers the script made and the counts taken independently from the
// audit entries of the same period (read through audit_show); it names no subject, reference,
// case, actor or free text; its period is half-open with a date `to` including its day; only
// admin and auditor may ask for it, and the request is audited.
//
// Everything in the history is made by the use cases themselves (reviews.cpp and
// authorisations.cpp included): nothing is written to the audit log by hand.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>

#include "service/render.h"
#include "service/service_test_util.h"

namespace fv::test {
namespace {

using nlohmann::json;
using service::Actor;
using service::BasisKind;
using service::Role;
using service::SearchRequest;
using service::SearchResult;
using vault::AuditEntry;

// Names chosen so that a scan for them cannot hit an ordinary word of the page.
const Actor kAdm{"adm-Qx7", Role::kAdmin};
const Actor kInv{"inv-Qx7", Role::kInvestigator};
const Actor kAud{"aud-Qx7", Role::kAuditor};
const Actor kEnr{"enr-Qx7", Role::kEnroller};
const Actor kRev{"rev-Qx7", Role::kReviewer};
const Actor kRev2{"rev2-Qx7", Role::kReviewer};

constexpr const char* kDay0 = "2031-03-09T12:00:00.000Z";       // before the period
constexpr const char* kJustBefore = "2031-03-09T23:59:59.999Z";
constexpr const char* kDay1 = "2031-03-10T08:00:00.000Z";       // in the period
constexpr const char* kDay2 = "2031-03-11T09:00:00.000Z";
constexpr const char* kLastMs = "2031-03-11T23:59:59.999Z";     // the period's last millisecond
constexpr const char* kAfter = "2031-03-12T00:00:00.000Z";      // the first instant after it
constexpr const char* kFrom = "2031-03-10";
constexpr const char* kTo = "2031-03-11";                        // a date: includes the 11th

class ReportTest : public ServiceTest {
 protected:
  // Everything that must never appear in the report.
  std::set<std::string> secrets_ = {kAdm.name, kInv.name, kAud.name, kEnr.name, kRev.name, kRev2.name};

  int64_t basis_as(const std::string& ref, std::vector<std::string> purposes, BasisKind kind = BasisKind::kConsent,
                   std::optional<std::string> expires = std::nullopt) {
    auto r = svc_->add_basis(kAdm, {ref, kind, "form-" + ref, purposes, expires});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok()) return 0;
    secrets_.insert(ref);
    secrets_.insert("form-" + ref);
    secrets_.insert(r->subject_uid);
    uid_[ref] = r->subject_uid;
    return r->basis_id;
  }
  void enroll_as(const std::string& ref, int64_t b, const face::FaceTemplate& t) {
    auto r = svc_->enroll_template(kAdm, {ref, b}, t);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  size_t search_as(const Actor& a, SearchRequest req, const std::vector<face::FaceTemplate>& probes,
                   SearchResult* out = nullptr) {
    secrets_.insert(req.case_ref);
    auto r = svc_->search_templates(a, req, probes);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok()) return 0;
    secrets_.insert(r->review_case);
    size_t n = 0;
    for (auto& f : r->faces) n += f.candidates.size();
    if (out) *out = *r;
    return n;
  }
  void deny_search(const Actor& a, SearchRequest req) {
    secrets_.insert(req.case_ref);
    auto r = svc_->search_templates(a, req, {random_template(rng_)});
    ASSERT_FALSE(r.is_ok());
    ASSERT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().to_string();
  }
  // The scripted history. Expected counts for [kFrom, kTo] are in ExpectScriptedCounts.
  void script() {
    const auto probe_ac = random_template(rng_), probe_inv = random_template(rng_);
    // Before the period: the gallery (3 subjects for access control, 2 for investigation),
    // and a search in the last millisecond before it.
    clock_.now = kDay0;
    for (int i = 1; i <= 3; ++i) {
      const std::string ref = "subj-Qx7-a" + std::to_string(i);
      ASSERT_NO_FATAL_FAILURE(enroll_as(ref, basis_as(ref, {"access-control"}), near_template(probe_ac, rng_, 0.3f)));
    }
    for (int i = 1; i <= 2; ++i) {
      const std::string ref = "subj-Qx7-i" + std::to_string(i);
      ASSERT_NO_FATAL_FAILURE(enroll_as(ref, basis_as(ref, {"investigation"}, BasisKind::kLawEnforcement),
                                        near_template(probe_inv, rng_, 0.3f)));
    }
    clock_.now = kJustBefore;
    ASSERT_EQ(search_as(kInv, {"access-control", "case-Qx7-before"}, {probe_ac}), 3u);

    // The period, day 1: five enrolments, three searches, denials, an opt-out, an export.
    clock_.now = kDay1;
    const int64_t b1 = basis_as("subj-Qx7-e1", {"access-control"});
    const int64_t b2 = basis_as("subj-Qx7-e2", {"access-control"});
    const int64_t b3 = basis_as("subj-Qx7-e3", {"access-control"});
    const int64_t b4 = basis_as("subj-Qx7-e4", {"access-control"});
    ASSERT_GT(basis_as("subj-Qx7-e4", {"access-control"}), 0);  // a second basis: stays in force
    const int64_t b5 = basis_as("subj-Qx7-e5", {"access-control"}, BasisKind::kConsent, "2031-03-10T12:00:00.000Z");
    for (auto& [ref, b] : std::vector<std::pair<std::string, int64_t>>{
             {"subj-Qx7-e1", b1}, {"subj-Qx7-e2", b2}, {"subj-Qx7-e3", b3}, {"subj-Qx7-e4", b4}, {"subj-Qx7-e5", b5}})
      ASSERT_NO_FATAL_FAILURE(enroll_as(ref, b, random_template(rng_)));
    // A pending authorisation for investigations, which lapses on day 2 without a grant.
    service::AuthorisationRequest ar;
    ar.authority = "Court Qx7 of Somewhere";
    ar.reference = "warrant-Qx7-0042";
    ar.purposes = {"investigation", "border-control"};
    ar.valid_from = "2031-03-01";
    ar.valid_until = "2031-12-31";
    ar.pending = true;
    ar.deadline = "2031-03-10T20:00:00.000Z";
    ar.note = "note Qx7 of the requester";
    auto au = svc_->authorisation_add(kAdm, ar);
    ASSERT_TRUE(au.is_ok()) << au.status().to_string();
    for (auto& s : {au->id, ar.authority, ar.reference, ar.note}) secrets_.insert(s);
    SearchResult s1, s3;
    ASSERT_EQ(search_as(kAdm, {"access-control", "case-Qx7-1"}, {probe_ac}, &s1), 3u);
    ASSERT_EQ(search_as(kAdm, {"access-control", "case-Qx7-2"}, {random_template(rng_)}), 0u);
    SearchRequest cited{"investigation", "case-Qx7-3"};
    cited.authorisation = au->id;
    ASSERT_EQ(search_as(kInv, cited, {probe_inv, random_template(rng_)}, &s3), 2u);
    ASSERT_TRUE(s3.authorisation_pending);
    // A refused search (no case) is not a search, nor a denial: a refusal.
    ASSERT_EQ(svc_->search_templates(kInv, {"access-control", ""}, {probe_ac}).status().code(),
              StatusCode::kInvalidArgument);
    // Denials: by role without a purpose, by role and by key scope under a purpose, and two
    // under purposes the operator never defined (one of them free text): "(other)".
    ASSERT_EQ(svc_->erase(kInv, "subj-Qx7-a1").status().code(), StatusCode::kPermissionDenied);
    ASSERT_NO_FATAL_FAILURE(deny_search(kEnr, {"investigation", "case-Qx7-4"}));
    SearchRequest scoped{"investigation", "case-Qx7-5"};
    scoped.allowed_purposes = std::vector<std::string>{"access-control"};
    ASSERT_NO_FATAL_FAILURE(deny_search(kAdm, scoped));
    secrets_.insert("Jane Qx7 Doe");
    secrets_.insert("janeqx7doe");
    ASSERT_NO_FATAL_FAILURE(deny_search(kEnr, {"Jane Qx7 Doe", "case-Qx7-6"}));
    ASSERT_NO_FATAL_FAILURE(deny_search(kEnr, {"janeqx7doe", "case-Qx7-7"}));
    ASSERT_TRUE(svc_->optout_add_template(kAdm, random_template(rng_)).is_ok());
    ASSERT_TRUE(svc_->export_subject(kAud, "subj-Qx7-a1", false, std::nullopt).is_ok());
    // Review: two confirmations and a rejection of the investigation's candidates, an
    // inconclusive one in access control; a second decision by the same reviewer (refused:
    // a refusal, not a decision), the searcher deciding on their own search (denied under its purpose), an
    // investigator deciding at all (denied by role, no purpose).
    auto cases = [&](const SearchResult& r) {
      secrets_.insert(r.review_case);
      auto c = svc_->review_show(kRev, r.review_case);
      EXPECT_TRUE(c.is_ok()) << c.status().to_string();
      return c.is_ok() ? *c : service::ReviewCase{};
    };
    const service::ReviewCase c1 = cases(s1), c3 = cases(s3);
    ASSERT_EQ(c1.candidates.size(), 3u);
    ASSERT_EQ(c3.candidates.size(), 2u);
    const std::string why = "Qx7 free text of a reviewer";
    secrets_.insert(why);
    auto decide = [&](const Actor& a, const service::ReviewCase& c, size_t k, service::ReviewVerdict v) {
      return svc_->review_decide(a, c.id, {c.candidates[k].id, v, why, {}}).status().code();
    };
    ASSERT_EQ(decide(kRev, c3, 0, service::ReviewVerdict::kConfirm), StatusCode::kOk);
    ASSERT_EQ(decide(kRev2, c3, 0, service::ReviewVerdict::kConfirm), StatusCode::kOk);
    ASSERT_EQ(decide(kRev, c3, 1, service::ReviewVerdict::kReject), StatusCode::kOk);
    ASSERT_EQ(decide(kRev, c1, 0, service::ReviewVerdict::kInconclusive), StatusCode::kOk);
    ASSERT_EQ(decide(kRev, c3, 0, service::ReviewVerdict::kReject), StatusCode::kAlreadyExists);
    ASSERT_EQ(decide(kAdm, c1, 1, service::ReviewVerdict::kConfirm), StatusCode::kPermissionDenied);
    ASSERT_EQ(decide(kInv, c3, 1, service::ReviewVerdict::kConfirm), StatusCode::kPermissionDenied);

    // Day 2: five erasures (two on request, two by withdrawal, one by retention).
    clock_.now = kDay2;
    ASSERT_TRUE(svc_->erase(kAdm, "subj-Qx7-e1").is_ok());
    secrets_.insert("court order Qx7-771");
    ASSERT_TRUE(svc_->erase(kAdm, "subj-Qx7-e2", "court order Qx7-771").is_ok());
    auto w3 = svc_->withdraw_basis(kAdm, b3);  // the only basis: the subject is erased
    ASSERT_TRUE(w3.is_ok()) << w3.status().to_string();
    auto w4 = svc_->withdraw_basis(kAdm, b4);  // another basis stays in force: basis_withdraw
    ASSERT_TRUE(w4.is_ok()) << w4.status().to_string();
    ASSERT_EQ(audit("basis_withdraw").size(), 1u);
    auto ex = svc_->expire(kAdm, std::nullopt, false);
    ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
    ASSERT_EQ(ex->erased.size(), 1u);
    ASSERT_EQ(ex->erased[0].reason, "no lawful basis in force");
    ASSERT_EQ(ex->oversight.lapsed, std::vector<std::string>{au->id});

    // The period's last millisecond counts; the first instant after it does not.
    clock_.now = kLastMs;
    ASSERT_EQ(search_as(kInv, {"access-control", "case-Qx7-8"}, {probe_ac}), 3u);
    clock_.now = kAfter;
    ASSERT_EQ(search_as(kInv, {"access-control", "case-Qx7-9"}, {probe_ac}), 3u);
    ASSERT_EQ(svc_->erase(kInv, "subj-Qx7-a2").status().code(), StatusCode::kPermissionDenied);
    ASSERT_TRUE(svc_->optout_add_template(kAdm, random_template(rng_)).is_ok());
  }

  json report(const Actor& a, const std::string& from, const std::string& to) {
    auto r = svc_->transparency_report(a, from, to);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : json();
  }

  void expect_no_secret(const std::string& text, const std::string& what) {
    for (auto& s : secrets_) EXPECT_EQ(text.find(s), std::string::npos) << what << " holds '" << s << "'";
  }

  std::map<std::string, std::string> uid_;
};

// The counts the script made, by hand.
void ExpectScriptedCounts(const json& r) {
  auto purpose = [](int64_t s, int64_t c, int64_t conf, int64_t rej, int64_t inc, int64_t den, int64_t ref,
                    int64_t cited, int64_t lapsed) {
    return json{{"searches", s},
                {"candidates_shown", c},
                {"decisions", {{"confirm", conf}, {"reject", rej}, {"inconclusive", inc}}},
                {"denials", den},
                {"refusals", ref},
                {"authorisations_cited", cited},
                {"authorisations_lapsed", lapsed}};
  };
  // Refusals: the search without a case (access control), the reviewer deciding twice (investigation).
  json per = {{"access-control", purpose(3, 6, 0, 0, 1, 1, 1, 0, 0)},
              {"investigation", purpose(1, 2, 2, 1, 0, 2, 1, 1, 1)},
              {"border-control", purpose(0, 0, 0, 0, 0, 0, 0, 0, 1)},
              {"(none)", purpose(0, 0, 0, 0, 0, 2, 0, 0, 0)},
              {"(other)", purpose(0, 0, 0, 0, 0, 2, 0, 0, 0)}};
  EXPECT_EQ(r["per_purpose"], per) << r["per_purpose"].dump(1);
  json totals = purpose(4, 8, 2, 1, 1, 7, 2, 1, 1);
  totals["enrolments"] = 5;
  totals["erasures"] = {{"request", 2}, {"withdrawal", 2}, {"retention", 1}};
  totals["optouts"] = 1;
  totals["access_exports"] = 1;
  EXPECT_EQ(r["totals"], totals) << r["totals"].dump(1);
}

// The same counts taken from the audit entries, written differently from the service: one
// pass per number, each a predicate over the entries of the period.
json CountFromEntries(const std::vector<AuditEntry>& all, const std::string& from, const std::string& to_excl,
                      const std::set<std::string>& operator_purposes) {
  std::vector<AuditEntry> es;
  std::copy_if(all.begin(), all.end(), std::back_inserter(es),
               [&](const AuditEntry& e) { return e.ts >= from && e.ts < to_excl; });
  auto bucket = [&](const std::string& p) -> std::string {
    return p.empty() ? "(none)" : operator_purposes.count(p) ? p : "(other)";
  };
  auto sum = [&](const std::function<int64_t(const AuditEntry&)>& f) {
    int64_t n = 0;
    for (auto& e : es) n += f(e);
    return n;
  };
  auto ok = [](const AuditEntry& e, const char* action) { return e.outcome == "ok" && e.action == action; };
  auto list = [](const AuditEntry& e, const char* key) { return e.details.value(key, json::array()); };
  auto shown = [&](const AuditEntry& e) {
    int64_t n = 0;
    for (auto& f : list(e, "candidates")) n += static_cast<int64_t>(f.size());
    return n;
  };
  auto lapsed_under = [&](const AuditEntry& e, const std::string& p) {
    for (auto& q : list(e, "purposes"))
      if (q == p) return true;
    return false;
  };
  // in(p): the entry counts under purpose p (every purpose when p is null: the totals).
  auto counts = [&](const std::optional<std::string>& p) {
    auto in = [&](const AuditEntry& e) { return !p || bucket(e.purpose) == *p; };
    auto decided = [&](const char* d) {
      return sum([&](const AuditEntry& e) { return ok(e, "review_decide") && in(e) && e.details.value("decision", "") == d; });
    };
    return json{
        {"searches", sum([&](const AuditEntry& e) { return ok(e, "search") && in(e); })},
        {"candidates_shown", sum([&](const AuditEntry& e) { return ok(e, "search") && in(e) ? shown(e) : 0; })},
        {"decisions", {{"confirm", decided("confirm")}, {"reject", decided("reject")}, {"inconclusive", decided("inconclusive")}}},
        {"denials", sum([&](const AuditEntry& e) { return e.outcome == "denied" && in(e); })},
        {"refusals", sum([&](const AuditEntry& e) { return e.outcome == "refused" && in(e); })},
        {"authorisations_cited",
         sum([&](const AuditEntry& e) { return ok(e, "search") && in(e) && e.details.contains("authorisation"); })},
        {"authorisations_lapsed", sum([&](const AuditEntry& e) {
           return e.action == "authorisation_lapsed" && (!p || lapsed_under(e, *p));
         })}};
  };
  std::set<std::string> purposes;
  for (auto& e : es) {
    if (e.outcome == "denied" || e.outcome == "refused" || ok(e, "search") || ok(e, "review_decide")) purposes.insert(bucket(e.purpose));
    if (e.action == "authorisation_lapsed")
      for (auto& q : list(e, "purposes")) purposes.insert(q.get<std::string>());
  }
  json per = json::object();
  for (auto& p : purposes) per[p] = counts(p);
  json totals = counts(std::nullopt);
  totals["enrolments"] = sum([&](const AuditEntry& e) { return ok(e, "enroll"); });
  auto reason = [](const AuditEntry& e) { return e.details.value("reason", std::string()); };
  auto retention = [&](const AuditEntry& e) {
    return reason(e) == "retention period ended" || reason(e) == "no lawful basis in force";
  };
  auto withdrawal = [&](const AuditEntry& e) { return reason(e).starts_with("consent withdrawn"); };
  totals["erasures"] = {
      {"request", sum([&](const AuditEntry& e) { return ok(e, "erase") && !retention(e) && !withdrawal(e); })},
      {"withdrawal", sum([&](const AuditEntry& e) { return (ok(e, "erase") && withdrawal(e)) || ok(e, "basis_withdraw"); })},
      {"retention", sum([&](const AuditEntry& e) { return ok(e, "erase") && retention(e); })}};
  totals["optouts"] = sum([&](const AuditEntry& e) { return ok(e, "optout_add"); });
  totals["access_exports"] = sum([&](const AuditEntry& e) { return ok(e, "export"); });
  return {{"per_purpose", per}, {"totals", totals}};
}

TEST_F(ReportTest, CountsEqualTheScriptAndTheAuditEntriesOfThePeriod) {
  ASSERT_NO_FATAL_FAILURE(script());
  const json r = report(kAud, kFrom, kTo);
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["from"], "2031-03-10T00:00:00.000Z");
  EXPECT_EQ(r["to"], "2031-03-12T00:00:00.000Z") << "a date 'to' includes its day: the bound is the next day";
  EXPECT_EQ(r["generated_at"], kAfter);
  ExpectScriptedCounts(r);

  service::AuditFilter f;
  f.since = kFrom;
  auto page = svc_->audit_show(kAud, f);
  ASSERT_TRUE(page.is_ok()) << page.status().to_string();
  const json independent =
      CountFromEntries(page->entries, r["from"], r["to"], {"access-control", "investigation", "border-control"});
  EXPECT_EQ(r["per_purpose"], independent["per_purpose"]);
  EXPECT_EQ(r["totals"], independent["totals"]);
  EXPECT_TRUE(svc_->audit_verify(kAud)->ok);
}

TEST_F(ReportTest, HoldsNoSubjectReferenceCaseActorOrFreeText) {
  ASSERT_NO_FATAL_FAILURE(script());
  // The whole history, not only the period.
  const json r = report(kAdm, "2031-01-01", "2031-12-31");
  ASSERT_TRUE(r.is_object());
  ASSERT_GT(r["totals"]["searches"].get<int64_t>(), 0);
  ASSERT_GE(secrets_.size(), 30u);
  ASSERT_TRUE(secrets_.count(uid_["subj-Qx7-i1"]));
  expect_no_secret(r.dump(), "the report's JSON");
  const std::string html = service::render::report_html(r);
  expect_no_secret(html, "the report's HTML");
  // And the scan itself finds what it looks for.
  EXPECT_NE(service::render::report_html({{"per_purpose", {{"subj-Qx7-a1", json::object()}}}}).find("subj-Qx7-a1"),
            std::string::npos);
  // Only keys of the contract: the period, the purposes and counts.
  std::set<std::string> keys;
  for (auto& [k, v] : r.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"from", "to", "generated_at", "per_purpose", "totals"}));
  for (auto& [p, c] : r["per_purpose"].items())
    for (auto& [k, v] : c.items())
      EXPECT_TRUE(v.is_number_integer() || (k == "decisions" && v.is_object())) << p << "." << k;
}

TEST_F(ReportTest, PeriodBoundsAreHalfOpenAndADateToIncludesItsDay) {
  ASSERT_NO_FATAL_FAILURE(script());
  // The last millisecond of the 11th alone: the search made then.
  json r = report(kAud, kLastMs, kAfter);
  EXPECT_EQ(r["totals"]["searches"], 1);
  EXPECT_EQ(r["totals"]["candidates_shown"], 3);
  EXPECT_EQ(r["to"], kAfter) << "a timestamp 'to' is the bound itself, excluded";
  // The 12th as a date, from and to: the search made at its first instant and the denial.
  r = report(kAud, "2031-03-12", "2031-03-12");
  EXPECT_EQ(r["totals"]["searches"], 1);
  EXPECT_EQ(r["totals"]["denials"], 1);
  EXPECT_EQ(r["totals"]["optouts"], 1);
  EXPECT_EQ(r["per_purpose"]["(none)"]["denials"], 1);
  // The 9th: the gallery's enrolments and the search in its last millisecond, nothing of the period.
  r = report(kAud, "2031-03-09", "2031-03-09");
  EXPECT_EQ(r["totals"]["searches"], 1);
  EXPECT_EQ(r["totals"]["enrolments"], 5);
  EXPECT_EQ(r["totals"]["denials"], 0);
  // from after to, an empty period, a malformed date: kInvalidArgument.
  for (auto [from, to] : {std::pair{"2031-03-11", "2031-03-10"}, std::pair{kAfter, kAfter},
                          std::pair{"2031-13-01", "2031-03-10"}, std::pair{"2031-03-01", "yesterday"}}) {
    auto bad = svc_->transparency_report(kAud, from, to);
    ASSERT_FALSE(bad.is_ok()) << from << " " << to;
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().to_string();
  }
}

TEST_F(ReportTest, OnlyAdminAndAuditorMayAskAndEveryRequestIsAudited) {
  clock_.now = kDay1;
  for (const Actor& a : {kInv, kEnr, kRev}) {
    auto r = svc_->transparency_report(a, kFrom, kTo);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << service::role_name(a.role);
  }
  auto entries = audit("report");
  ASSERT_EQ(entries.size(), 3u);
  for (auto& e : entries) EXPECT_EQ(e.outcome, "denied");
  EXPECT_EQ(entries[0].actor, kInv.name);
  EXPECT_EQ(entries[0].role, "investigator");

  ASSERT_TRUE(report(kAud, kFrom, kTo).is_object());
  ASSERT_TRUE(report(kAdm, kFrom, kTo).is_object());
  entries = audit("report");
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[3].outcome, "ok");
  EXPECT_EQ(entries[3].actor, kAud.name);
  EXPECT_EQ(entries[3].details, (json{{"from", "2031-03-10T00:00:00.000Z"}, {"to", "2031-03-12T00:00:00.000Z"}}));
  EXPECT_TRUE(entries[3].subjects.empty());
  // The three refusals are denials of the period (no purpose); the reports themselves count
  // as nothing, so a second report over the same period gives the same numbers.
  const json a = report(kAud, kFrom, kTo), b = report(kAud, kFrom, kTo);
  EXPECT_EQ(a["totals"]["denials"], 3);
  EXPECT_EQ(a["per_purpose"]["(none)"]["denials"], 3);
  EXPECT_EQ(a["totals"]["searches"], 0);
  EXPECT_EQ(a["per_purpose"], b["per_purpose"]);
  EXPECT_EQ(a["totals"], b["totals"]);
}

TEST_F(ReportTest, HtmlIsStandaloneEscapedAndShowsEveryPurpose) {
  ASSERT_NO_FATAL_FAILURE(script());
  const json r = report(kAud, kFrom, kTo);
  const std::string html = service::render::report_html(r);
  if (const char* out = std::getenv("FACEVAULT_REPORT_HTML")) std::ofstream(out) << html;  // for a screenshot
  EXPECT_EQ(html.rfind("<!doctype html>", 0), 0u);
  for (const char* forbidden : {"<script", "src=", "href=", "<link", "url(", "http:", "https:", "@import"})
    EXPECT_EQ(html.find(forbidden), std::string::npos) << forbidden;
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(html.find("2031-03-10 00:00 UTC"), std::string::npos);
  EXPECT_NE(html.find("2031-03-12 00:00 UTC"), std::string::npos);
  // A chart and a table per purpose, a chart's title giving its numbers.
  for (const char* p : {"access-control", "investigation", "border-control"})
    EXPECT_NE(html.find("<h3>" + std::string(p) + "</h3>"), std::string::npos) << p;
  size_t charts = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) ++charts;
  EXPECT_EQ(charts, r["per_purpose"].size());
  EXPECT_NE(html.find("access-control: Searches 3, Candidates shown 6, Confirmed 0, Rejected 0, Inconclusive 1, "
                      "Denials 1"),
            std::string::npos);
  EXPECT_NE(html.find("<th scope=\"row\">Erasures on request</th><td>2</td>"), std::string::npos);
  // Text is escaped, and a malformed report does not throw.
  const std::string odd = service::render::report_html(
      {{"from", "<b>"}, {"per_purpose", {{"x<script>&'\"", {{"searches", "many"}}}}}, {"totals", 3}});
  EXPECT_EQ(odd.find("<script"), std::string::npos);
  EXPECT_NE(odd.find("x&lt;script&gt;&amp;&#39;&quot;"), std::string::npos);
  EXPECT_EQ(odd.find("<b>"), std::string::npos);
  EXPECT_NE(service::render::report_html(json()).find("No search"), std::string::npos);
}

}  // namespace
}  // namespace fv::test
