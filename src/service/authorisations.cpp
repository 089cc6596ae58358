// Authorisations of searches (EU AI Act Art 26(10)): a purpose in the vault's
// oversight.authorisation_required may be searched only citing an authorisation by a judicial
// or administrative authority — granted and valid now for that purpose, or pending and within
// its deadline (requested, the grant not yet recorded). A pending one that reaches its deadline
// without a grant lapses: the review cases of the searches that cited it are marked unusable and
// the audit says so. Authorisations are recorded by admins and auditors.
#include <algorithm>

#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;
using nlohmann::json;

namespace {

Authorisation to_authorisation(const vault::AuthorisationRow& r) {
  Authorisation a;
  a.id = r.uid;
  a.authority = r.authority;
  a.reference = r.reference;
  a.purposes = r.purposes;
  a.valid_from = r.valid_from;
  a.valid_until = r.valid_until;
  a.status = r.status;
  a.requested_at = r.requested_at;
  a.deadline = r.deadline;
  a.decided_at = r.decided_at;
  a.decided_by = r.decided_by;
  a.recorded_by = r.recorded_by;
  a.note = r.note;
  a.cases_citing = r.cases_citing;
  return a;
}

bool covers(const vault::AuthorisationRow& a, const std::string& purpose) {
  return std::find(a.purposes.begin(), a.purposes.end(), purpose) != a.purposes.end();
}

}  // namespace

std::string Service::Impl::authorisation_unusable(const vault::AuthorisationRow& a, const std::string& purpose,
                                                  const std::string& now) {
  if (a.status == "refused") return "authorisation " + a.uid + " was refused";
  if (a.status == "lapsed") return "authorisation " + a.uid + " lapsed without a grant";
  if (a.status == "pending" && a.deadline && now >= *a.deadline)
    return "authorisation " + a.uid + " is still pending after its deadline " + *a.deadline;
  if (!covers(a, purpose)) return "authorisation " + a.uid + " does not cover the purpose '" + purpose + "'";
  if (now < a.valid_from) return "authorisation " + a.uid + " is valid only from " + a.valid_from;
  if (now >= a.valid_until) return "authorisation " + a.uid + " ended at " + a.valid_until;
  return "";
}

Result<CitedAuthorisation> Service::Impl::check_authorisation(const Actor& actor, const SearchRequest& req, AuditVia via) {
  const auto& needing = config().authorisation_required;
  const bool required = std::find(needing.begin(), needing.end(), req.purpose) != needing.end();
  AuditEntry e = entry(actor, Action::kSearch);
  e.purpose = req.purpose;
  e.case_ref = req.case_ref;
  if (!req.authorisation || req.authorisation->empty()) {
    if (!required) return CitedAuthorisation{};
    return refuse(std::move(e), "refused", {{"reason", "the purpose needs an authorisation and none was cited"}},
                  failed_precondition("searches for the purpose '" + req.purpose +
                                      "' need an authorisation: cite a granted or pending one by its id (au_…)"),
                  via);
  }
  const std::string& uid = *req.authorisation;
  if (!valid_token(uid))
    return refuse(std::move(e), "refused", {{"reason", "malformed authorisation id"}},
                  invalid_argument("the authorisation id is malformed"), via);
  Result<std::optional<vault::AuthorisationRow>> found = std::optional<vault::AuthorisationRow>();
  if (via == AuditVia::kAux) {
    std::lock_guard<std::mutex> l(aux_mu);
    FV_ASSIGN_OR_RETURN(vault::Catalog * c, aux_catalog());
    found = c->find_authorisation(uid);
  } else {
    found = catalog().find_authorisation(uid);
  }
  FV_RETURN_IF_ERROR(found.status());
  if (!*found)
    return refuse(std::move(e), "refused", {{"reason", "unknown authorisation"}, {"authorisation", uid}},
                  failed_precondition("no authorisation " + uid + " is recorded"), via);
  const vault::AuthorisationRow& a = **found;
  const std::string why = authorisation_unusable(a, req.purpose, now());
  if (!why.empty())
    return refuse(std::move(e), "refused", {{"reason", why}, {"authorisation", uid}}, failed_precondition(why), via);
  return CitedAuthorisation{a.id, a.uid, a.status == "pending"};
}

Result<Authorisation> Service::authorisation_add(const Actor& actor, const AuthorisationRequest& req) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuthorisationManage));
  if (!valid_ref(req.authority)) return invalid_argument("the issuing authority must be 1-200 printable UTF-8 characters");
  if (!valid_ref(req.reference)) return invalid_argument("the authorisation's reference must be 1-200 printable UTF-8 characters");
  if (req.purposes.empty()) return invalid_argument("an authorisation covers at least one purpose");
  for (auto& p : req.purposes)
    if (!valid_token(p)) return invalid_argument("purpose '" + p + "': letters, digits and . _ : / - only, at most 64");
  if (!req.note.empty() && !valid_text(req.note, 2000)) return invalid_argument("the note must be printable UTF-8, at most 2000 bytes");
  vault::AuthorisationRow a;
  FV_ASSIGN_OR_RETURN(a.valid_from, vault::parse_time(req.valid_from));
  FV_ASSIGN_OR_RETURN(a.valid_until, vault::parse_time(req.valid_until, /*end_of_day=*/true));
  if (a.valid_until <= a.valid_from) return invalid_argument("valid_until must be after valid_from");
  const std::string t = m.now();
  for (auto& p : req.purposes)
    if (std::find(a.purposes.begin(), a.purposes.end(), p) == a.purposes.end()) a.purposes.push_back(p);
  a.uid = "au_" + vault::random_hex(6);
  a.authority = req.authority;
  a.reference = req.reference;
  a.requested_at = t;
  a.recorded_by = actor.name;
  a.note = req.note;
  if (req.pending) {
    a.status = "pending";
    // Art 26(10): the request must be granted within a window (48 h by default); a deadline
    // given with the request may shorten that window, never lengthen it.
    const std::string latest = vault::add_days(t, m.config().authorisation_pending_hours / 24.0);
    if (req.deadline) {
      FV_ASSIGN_OR_RETURN(std::string d, vault::parse_time(*req.deadline));
      if (d <= t) return invalid_argument("the deadline of a pending authorisation must be in the future");
      if (d > latest)
        return invalid_argument("the deadline of a pending authorisation may be at most " +
                                std::to_string(m.config().authorisation_pending_hours) +
                                " hours after the request (oversight.authorisation_pending_hours): " + latest);
      a.deadline = d;
    } else {
      a.deadline = latest;
    }
  } else {
    if (req.deadline) return invalid_argument("a deadline is for a pending authorisation (--pending)");
    a.status = "granted";
    a.decided_at = t;
    a.decided_by = actor.name;
  }
  FV_ASSIGN_OR_RETURN(vault::Txn txn, m.catalog().begin());
  FV_ASSIGN_OR_RETURN(a.id, m.catalog().insert_authorisation(a));
  AuditEntry e = m.entry(actor, Action::kAuthorisationManage);
  e.details = {{"authorisation", a.uid}, {"op", "add"}, {"status", a.status}, {"authority", a.authority},
               {"purposes", a.purposes}, {"valid_from", a.valid_from}, {"valid_until", a.valid_until}};
  if (a.deadline) e.details["deadline"] = *a.deadline;
  Authorisation out = to_authorisation(a);
  FV_ASSIGN_OR_RETURN(out.audit_hash, m.audit_in_txn(e));
  FV_RETURN_IF_ERROR(txn.commit());
  return out;
}

namespace {

// grant or refuse: one decision on a recorded authorisation.
Result<Authorisation> decide(Service::Impl& m, const Actor& actor, const std::string& uid, const std::string& note,
                             bool grant) {
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuthorisationManage));
  if (!note.empty() && !valid_text(note, 2000)) return invalid_argument("the note must be printable UTF-8, at most 2000 bytes");
  FV_ASSIGN_OR_RETURN(vault::Txn txn, m.catalog().begin());
  FV_ASSIGN_OR_RETURN(auto found, m.catalog().find_authorisation(uid));
  if (!found) return not_found("no authorisation " + uid + " is recorded");
  vault::AuthorisationRow a = *found;
  const std::string t = m.now();
  if (grant) {
    if (a.status != "pending")
      return failed_precondition("authorisation " + uid + " is " + a.status + ": only a pending one can be granted");
    // A grant recorded after the deadline cannot make the searches made meanwhile usable:
    // the sweep lapses it; a new authorisation must be recorded.
    if (a.deadline && t >= *a.deadline)
      return failed_precondition("authorisation " + uid + " passed its deadline " + *a.deadline +
                                 " without a grant: record a new authorisation");
  } else if (a.status != "pending" && a.status != "granted") {
    return failed_precondition("authorisation " + uid + " is already " + a.status);
  }
  a.status = grant ? "granted" : "refused";
  FV_RETURN_IF_ERROR(m.catalog().update_authorisation_status(a.id, a.status, t, actor.name, note));
  int64_t unusable = 0;
  if (!grant) {
    // Art 26(10): a refused authorisation stops the use of what the searches found.
    FV_RETURN_IF_ERROR(m.catalog().mark_cases_unusable(a.id, "authorisation " + uid + " was refused"));
    unusable = a.cases_citing;
  }
  AuditEntry e = m.entry(actor, Action::kAuthorisationManage);
  e.details = {{"authorisation", uid}, {"op", grant ? "grant" : "refuse"}, {"status", a.status}};
  if (!grant) e.details["cases_unusable"] = unusable;
  FV_ASSIGN_OR_RETURN(auto updated, m.catalog().find_authorisation(uid));
  Authorisation out = to_authorisation(updated ? *updated : a);
  FV_ASSIGN_OR_RETURN(out.audit_hash, m.audit_in_txn(e));
  FV_RETURN_IF_ERROR(txn.commit());
  return out;
}

}  // namespace

Result<Authorisation> Service::authorisation_grant(const Actor& actor, const std::string& id, const std::string& note) {
  std::lock_guard<std::mutex> l(impl_->mu);
  return decide(*impl_, actor, id, note, true);
}

Result<Authorisation> Service::authorisation_refuse(const Actor& actor, const std::string& id, const std::string& note) {
  std::lock_guard<std::mutex> l(impl_->mu);
  return decide(*impl_, actor, id, note, false);
}

Result<std::vector<Authorisation>> Service::authorisation_list(const Actor& actor) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuthorisationRead));
  FV_ASSIGN_OR_RETURN(auto rows, m.catalog().list_authorisations());
  std::vector<Authorisation> out;
  for (auto& r : rows) out.push_back(to_authorisation(r));
  return out;
}

Result<LapseReport> Service::Impl::sweep_oversight(const Actor& actor, const std::string& as_of) {
  LapseReport rep;
  FV_ASSIGN_OR_RETURN(auto overdue, catalog().lapsed_pending(as_of));
  for (auto& listed : overdue) {
    FV_ASSIGN_OR_RETURN(vault::Txn txn, catalog().begin());
    // A grant or refusal committed since the list was read (on a cluster, by another node)
    // wins: only what is still pending past its deadline lapses, with its counts of now.
    FV_ASSIGN_OR_RETURN(auto still, catalog().lapsed_pending(as_of, listed.id));
    if (still.empty()) continue;  // the transaction rolls back
    const vault::AuthorisationRow& a = still.front();
    const std::string why = "authorisation " + a.uid + " lapsed: no grant recorded by its deadline " + a.deadline.value_or("");
    FV_RETURN_IF_ERROR(catalog().update_authorisation_status(a.id, "lapsed", as_of, actor.name, ""));
    FV_RETURN_IF_ERROR(catalog().mark_cases_unusable(a.id, why));
    AuditEntry e = entry(actor, "authorisation_lapsed");
    e.details = {{"authorisation", a.uid}, {"purposes", a.purposes}, {"cases_unusable", a.cases_citing},
                 {"deadline", a.deadline.value_or("")}};
    FV_RETURN_IF_ERROR(audit_in_txn(e).status());
    FV_RETURN_IF_ERROR(txn.commit());
    rep.lapsed.push_back(a.uid);
    rep.cases_marked_unusable += a.cases_citing;
  }
  // Probe crops of cases still open after oversight.probe_crop_days (0: kept until closure).
  if (config().probe_crop_days > 0) {
    FV_ASSIGN_OR_RETURN(vault::Txn txn, catalog().begin());
    FV_ASSIGN_OR_RETURN(rep.probe_crops_destroyed,
                        catalog().destroy_probe_crops_before(vault::add_days(as_of, -config().probe_crop_days)));
    if (rep.probe_crops_destroyed > 0) {
      FV_RETURN_IF_ERROR(vault->mark_wipe_pending());
      AuditEntry e = entry(actor, "review_probe_expire");
      e.details = {{"cases", rep.probe_crops_destroyed}, {"probe_crop_days", config().probe_crop_days}};
      FV_RETURN_IF_ERROR(audit_in_txn(e).status());
    }
    FV_RETURN_IF_ERROR(txn.commit());
    if (rep.probe_crops_destroyed > 0) (void)vault->wipe_free_space();  // a failure leaves the wipe pending
  }
  return rep;
}

Result<LapseReport> Service::oversight_sweep(const Actor& actor, const std::optional<std::string>& as_of_in) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kExpire));
  const std::string t = m.now();
  std::string as_of = t;
  if (as_of_in) {
    FV_ASSIGN_OR_RETURN(as_of, vault::parse_time(*as_of_in));
    if (as_of > t) return invalid_argument("--as-of " + as_of + " is in the future");
  }
  return m.sweep_oversight(actor, as_of);
}

}  // namespace fv::service
