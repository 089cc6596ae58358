// The transparency report (EU AI Act Art 26(6), (10)): what the vault was used for over a
// period, counted from its audit log and from nothing else, so that every number can be
// checked against the entries it summarises (`audit show --since`). It names no subject,
// reference, case, person or free text: only purposes, counts and the period.
//
// What is counted (the audit vocabulary of docs and the oversight contract):
//   searches                ok "search" entries; candidates_shown: the total length of their
//                           details.candidates (one array of subject ids per probe face);
//                           authorisations_cited: those whose details name an authorisation
//   decisions               ok "review_decide" entries, by details.decision
//   denials                 every entry with outcome "denied" (a role or a key's scope did not
//                           allow it), whatever its action (no purpose: under "(none)")
//   refusals                every entry with outcome "refused" (the request broke a rule: a
//                           search without a case or without the authorisation its purpose
//                           needs, a reviewer deciding twice, ...), likewise
//   authorisations_lapsed   "authorisation_lapsed" entries, under each purpose they covered
//                           (details.purposes) and once in the totals
//   enrolments, optouts, access_exports   ok "enroll", "optout_add", "export"
//   erasures                ok "erase" entries by details.cause (request, withdrawal,
//                           retention), and ok "basis_withdraw" (a withdrawal that left other
//                           bases in force) as withdrawals. Entries written before the cause
//                           was recorded are told by their reason: "retention period ended" and
//                           "no lawful basis in force" (expiry), "consent withdrawn (basis N)"
//                           (withdrawal), any other (request).
//
// Purposes: a denied request records the purpose its caller typed, which may be anything (a
// name, a sentence). Only purposes the operator defined reach the report: those named by a
// lawful basis (ok "basis_add" entries, whenever written), by oversight.authorisation_required
// or by a lapsed authorisation. Anything else is counted under "(other)".
//
// The period is half-open, [from, to): a date `from` starts at 00:00 UTC, a date `to` includes
// that whole day (the bound is the next day's start), a timestamp `to` is excluded. The report
// is itself audited ("report", details {"from","to"}) after it is computed: it does not count
// itself, and a later report whose period covers it does not count it either (a report is none
// of the things counted; only a denied one is, as a denial).
#include <map>
#include <set>

#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using nlohmann::json;
using vault::AuditEntry;

namespace {

constexpr const char* kNoPurpose = "(none)";
constexpr const char* kOtherPurpose = "(other)";

struct PurposeCounts {
  int64_t searches = 0, candidates_shown = 0, confirm = 0, reject = 0, inconclusive = 0, denials = 0, refusals = 0,
          authorisations_cited = 0, authorisations_lapsed = 0;
};

struct Totals {
  PurposeCounts all;
  int64_t enrolments = 0, erasure_request = 0, erasure_withdrawal = 0, erasure_retention = 0, optouts = 0,
          access_exports = 0;
};

json purpose_json(const PurposeCounts& c) {
  return {{"searches", c.searches},
          {"candidates_shown", c.candidates_shown},
          {"decisions", {{"confirm", c.confirm}, {"reject", c.reject}, {"inconclusive", c.inconclusive}}},
          {"denials", c.denials},
          {"refusals", c.refusals},
          {"authorisations_cited", c.authorisations_cited},
          {"authorisations_lapsed", c.authorisations_lapsed}};
}

std::string text_field(const json& details, const char* key) {
  if (!details.is_object()) return "";
  auto it = details.find(key);
  return it != details.end() && it->is_string() ? it->get<std::string>() : "";
}

// Total length of details.candidates (an array per probe face of subject ids).
int64_t candidates_in(const json& details) {
  if (!details.is_object()) return 0;
  auto it = details.find("candidates");
  if (it == details.end() || !it->is_array()) return 0;
  int64_t n = 0;
  for (auto& face : *it)
    if (face.is_array()) n += static_cast<int64_t>(face.size());
  return n;
}

// details.cause (written since schema 8); entries written before it are told by their reason.
ErasureCause erasure_cause(const std::string& cause, const std::string& reason) {
  if (cause == "request") return ErasureCause::kRequest;
  if (cause == "withdrawal") return ErasureCause::kWithdrawal;
  if (cause == "retention") return ErasureCause::kRetention;
  if (reason == "retention period ended" || reason == "no lawful basis in force") return ErasureCause::kRetention;
  // The reason withdraw_basis gives an erasure (basis.cpp) when no other basis is left.
  if (reason.rfind("consent withdrawn (basis ", 0) == 0) return ErasureCause::kWithdrawal;
  return ErasureCause::kRequest;
}

class Counter {
 public:
  explicit Counter(std::set<std::string> known) : known_(std::move(known)) {}

  void add(const AuditEntry& e) {
    const bool ok = e.outcome == "ok";
    if (e.outcome == "denied") {
      ++bucket(e.purpose).denials;
      ++t_.all.denials;
      return;
    }
    if (e.outcome == "refused") {
      ++bucket(e.purpose).refusals;
      ++t_.all.refusals;
      return;
    }
    if (!ok) return;  // failures: nothing happened to count
    if (e.action == "search") {
      const int64_t shown = candidates_in(e.details);
      const bool cited = !text_field(e.details, "authorisation").empty();
      PurposeCounts& p = bucket(e.purpose);
      for (PurposeCounts* c : {&p, &t_.all}) {
        ++c->searches;
        c->candidates_shown += shown;
        if (cited) ++c->authorisations_cited;
      }
    } else if (e.action == "review_decide") {
      const std::string d = text_field(e.details, "decision");
      int64_t PurposeCounts::*field = d == "confirm" ? &PurposeCounts::confirm
                                      : d == "reject" ? &PurposeCounts::reject
                                      : d == "inconclusive" ? &PurposeCounts::inconclusive
                                                            : nullptr;
      if (!field) return;
      ++(bucket(e.purpose).*field);
      ++(t_.all.*field);
    } else if (e.action == "authorisation_lapsed") {
      ++t_.all.authorisations_lapsed;
      auto it = e.details.is_object() ? e.details.find("purposes") : e.details.end();
      if (it == e.details.end() || !it->is_array()) return;
      std::set<std::string> seen;  // a purpose listed twice is one lapse under it
      for (auto& p : *it)
        if (p.is_string() && seen.insert(p.get<std::string>()).second) ++bucket(p.get<std::string>()).authorisations_lapsed;
    } else if (e.action == "enroll") {
      ++t_.enrolments;
    } else if (e.action == "erase") {
      switch (erasure_cause(text_field(e.details, "cause"), text_field(e.details, "reason"))) {
        case ErasureCause::kRequest: ++t_.erasure_request; break;
        case ErasureCause::kWithdrawal: ++t_.erasure_withdrawal; break;
        case ErasureCause::kRetention: ++t_.erasure_retention; break;
      }
    } else if (e.action == "basis_withdraw") {
      ++t_.erasure_withdrawal;
    } else if (e.action == "optout_add") {
      // One registry entry, however many vaults record it (a cluster writes it to every shard).
      const std::string uid = text_field(e.details, "optout");
      if (uid.empty() || optout_uids_.insert(uid).second) ++t_.optouts;
    } else if (e.action == "export") {
      ++t_.access_exports;
    }
  }

  json per_purpose() const {
    json j = json::object();
    for (auto& [p, c] : per_) j[p] = purpose_json(c);
    return j;
  }

  json totals() const {
    json j = purpose_json(t_.all);
    j["enrolments"] = t_.enrolments;
    j["erasures"] = {{"request", t_.erasure_request}, {"withdrawal", t_.erasure_withdrawal},
                     {"retention", t_.erasure_retention}};
    j["optouts"] = t_.optouts;
    j["access_exports"] = t_.access_exports;
    return j;
  }

 private:
  PurposeCounts& bucket(const std::string& purpose) {
    if (purpose.empty()) return per_[kNoPurpose];
    return per_[known_.count(purpose) ? purpose : kOtherPurpose];
  }

  std::set<std::string> known_;
  std::set<std::string> optout_uids_;
  std::map<std::string, PurposeCounts> per_;
  Totals t_;
};

}  // namespace

// The purposes the operator defined (see the top of the file); only valid tokens, so that a
// damaged entry cannot bring text into the report either.
Result<std::set<std::string>> operator_purposes(vault::Catalog& cat, const vault::VaultConfig& config) {
  std::set<std::string> known;
  auto add = [&](const json& list) {
    if (!list.is_array()) return;
    for (auto& p : list)
      if (p.is_string() && valid_token(p.get<std::string>())) known.insert(p.get<std::string>());
  };
  for (const char* action : {"basis_add", "authorisation_lapsed"}) {
    vault::AuditQuery q;
    q.action = action;
    FV_ASSIGN_OR_RETURN(auto entries, cat.read_audit(q));
    for (auto& e : entries)
      if (e.outcome == "ok" && e.details.is_object() && e.details.contains("purposes")) add(e.details["purposes"]);
  }
  add(json(config.authorisation_required));
  return known;
}

Result<ReportPeriod> report_period(const std::string& from_text, const std::string& to_text) {
  ReportPeriod p;
  FV_ASSIGN_OR_RETURN(p.from, vault::parse_time(from_text));
  FV_ASSIGN_OR_RETURN(p.to, vault::parse_time(to_text));
  // parse_time takes a date only as exactly "YYYY-MM-DD": such a `to` includes its day.
  if (to_text.size() == 10) p.to = vault::add_days(p.to, 1);
  if (p.from >= p.to)
    return invalid_argument("the report's period is empty: 'from' (" + p.from + ") must be before 'to' (" + p.to +
                            ", excluded)");
  return p;
}

json count_report(const std::vector<AuditEntry>& entries, std::set<std::string> known, const ReportPeriod& period,
                  const std::string& now) {
  Counter counter(std::move(known));
  // Entries are in chain order; their timestamps come from the clock of whoever wrote them, so
  // every entry is tested rather than stopping at the first one past `to`.
  for (auto& e : entries)
    if (e.ts >= period.from && e.ts < period.to) counter.add(e);
  return {{"from", period.from},
          {"to", period.to},
          {"generated_at", now},
          {"per_purpose", counter.per_purpose()},
          {"totals", counter.totals()}};
}

Result<json> Service::transparency_report(const Actor& actor, const std::string& from_text, const std::string& to_text) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kReport));
  FV_ASSIGN_OR_RETURN(const ReportPeriod period, report_period(from_text, to_text));
  FV_ASSIGN_OR_RETURN(auto known, operator_purposes(m.catalog(), m.config()));
  vault::AuditQuery q;
  q.since = period.from;
  FV_ASSIGN_OR_RETURN(auto entries, m.catalog().read_audit(q));
  json report = count_report(entries, std::move(known), period, m.now());
  AuditEntry e = m.entry(actor, Action::kReport);
  e.details = {{"from", period.from}, {"to", period.to}};
  FV_RETURN_IF_ERROR(m.audit_now(e).status());
  return report;
}

}  // namespace fv::service
