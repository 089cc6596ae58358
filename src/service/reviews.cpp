// Review cases: the two-person review of every search's candidates (EU AI Act Art 14(5): no
// action on an identification unless separately verified and confirmed by at least two
// natural persons; Art 12(3)(d): the log names who verified). Each search opens a case
// (search.cpp); reviewers record decisions here, independently: a reviewer sees the other
// decisions on a candidate only after recording their own. Every decision is an audit entry
// naming the reviewer, written in the decision's transaction; the case closes when every
// candidate has the decisions required, and its probe crops and key are destroyed then.
#include <algorithm>
#include <map>

#include "service/service_impl.h"

namespace fv::service {

using nlohmann::json;
using vault::AuditEntry;

const char* review_verdict_name(ReviewVerdict v) {
  switch (v) {
    case ReviewVerdict::kConfirm: return "confirm";
    case ReviewVerdict::kReject: return "reject";
    case ReviewVerdict::kInconclusive: return "inconclusive";
  }
  return "inconclusive";
}

std::optional<ReviewVerdict> parse_review_verdict(std::string_view name) {
  for (auto v : {ReviewVerdict::kConfirm, ReviewVerdict::kReject, ReviewVerdict::kInconclusive})
    if (name == review_verdict_name(v)) return v;
  return std::nullopt;
}

std::string review_candidate_status(const vault::ReviewCandidateRow& c, int reviewers_required) {
  const int required = std::max(1, reviewers_required);
  int confirm = 0, reject = 0;
  for (const auto& d : c.decisions) {
    confirm += d.decision == "confirm";
    reject += d.decision == "reject";
  }
  const int n = static_cast<int>(c.decisions.size());
  if (n < required) return "pending";
  if (confirm > 0) return confirm == n ? "confirmed" : "disputed";  // n ≥ required confirmations, or disagreement
  return reject == n ? "rejected" : "inconclusive";
}

namespace {

bool decided_by(const vault::ReviewCandidateRow& k, const std::string& who) {
  return std::any_of(k.decisions.begin(), k.decisions.end(), [&](const auto& d) { return d.reviewer == who; });
}

// An investigator sees only the cases they opened; the other roles that may read cases, all.
bool may_see_case(const Actor& a, const vault::ReviewCaseRow& c) {
  return a.role != Role::kInvestigator || c.searcher == a.name;
}

bool in_scope(const PurposeScope& scope, const std::string& purpose) {
  return !scope || std::find(scope->begin(), scope->end(), purpose) != scope->end();
}

// Independence: the decisions on a candidate are shown to auditors, to whoever already decided
// that candidate, and to the searcher once the case is closed. Nobody else — an admin can
// decide, so an admin is blinded like a reviewer.
bool may_see_decisions(const Actor& a, const vault::ReviewCaseRow& c, const vault::ReviewCandidateRow& k) {
  return a.role == Role::kAuditor || decided_by(k, a.name) || (a.name == c.searcher && c.status == "closed");
}

// Whether the caller could record a decision on the candidate now (the "awaiting" queue).
bool may_decide_now(const Actor& a, const vault::ReviewCaseRow& c, const vault::ReviewCandidateRow& k,
                    const vault::VaultConfig& cfg) {
  if (!role_may(a.role, Action::kReviewDecide) || c.status != "open" || decided_by(k, a.name)) return false;
  if (static_cast<int>(k.decisions.size()) >= std::max(1, cfg.reviewers_required)) return false;
  return a.name != c.searcher || (cfg.searcher_may_review && k.decisions.empty());
}

ReviewDecision decision_of(const vault::ReviewDecisionRow& d) {
  ReviewDecision r;
  r.candidate_id = d.candidate_id;
  r.reviewer = d.reviewer;
  r.reviewer_role = d.reviewer_role;
  r.decision = d.decision;
  r.reason = d.reason;
  r.decided_at = d.decided_at;
  r.reference_available = d.reference_available;
  return r;
}

// The case as the caller may see it.
Result<ReviewCase> case_view(vault::Catalog& cat, const Actor& actor, const vault::ReviewCaseRow& r,
                             const vault::VaultConfig& cfg, const std::string& now) {
  ReviewCase c;
  c.id = r.uid;
  c.opened_at = r.opened_at;
  c.searcher = r.searcher;
  c.purpose = r.purpose;
  c.case_ref = r.case_ref;
  c.mode = r.mode;
  c.probe_sha256 = r.probe_sha256;
  c.status = r.status;
  c.closed_at = r.closed_at;
  c.authorisation = r.authorisation_uid;
  c.unusable = r.unusable;
  // A pending authorisation past its deadline makes the case unusable from that moment, not
  // only once the expiry records the lapse.
  if (!c.unusable && r.authorisation_uid) {
    FV_ASSIGN_OR_RETURN(auto a, cat.find_authorisation(*r.authorisation_uid));
    if (a && a->status == "pending" && a->deadline && now >= *a->deadline)
      c.unusable = "authorisation " + a->uid + " passed its deadline " + *a->deadline + " without a grant";
  }
  c.search_audit_seq = r.search_audit_seq;
  c.probe_faces = r.probe_faces;
  std::map<int64_t, bool> has_reference;
  for (const auto& k : r.candidates) {
    ReviewCandidate v;
    v.id = k.id;
    v.face_index = k.face_index;
    v.rank = k.rank;
    v.subject_ref = k.subject_ref;
    v.subject_uid = k.subject_uid;
    v.similarity = k.similarity;
    v.fmr = k.fmr;
    v.fpir = k.fpir;
    v.status = review_candidate_status(k, cfg.reviewers_required);
    v.decisions_recorded = static_cast<int>(k.decisions.size());
    v.decided_by_caller = decided_by(k, actor.name);
    if (k.subject_id) {
      auto it = has_reference.find(*k.subject_id);
      if (it == has_reference.end()) {
        FV_ASSIGN_OR_RETURN(const int64_t n, cat.count_reference_crops(*k.subject_id, r.purpose));
        it = has_reference.emplace(*k.subject_id, n > 0).first;
      }
      v.reference_available = it->second;
    }
    if (may_see_decisions(actor, r, k)) {
      v.decisions.emplace();
      for (const auto& d : k.decisions) v.decisions->push_back(decision_of(d));
    }
    c.candidates.push_back(std::move(v));
  }
  return c;
}

}  // namespace

Result<bool> Service::Impl::close_if_settled(const Actor& actor, const vault::ReviewCaseRow& c) {
  if (c.status != "open") return false;
  const int required = std::max(1, config().reviewers_required);
  int confirmed = 0;
  std::vector<std::string> subjects;
  for (const auto& k : c.candidates) {
    if (static_cast<int>(k.decisions.size()) < required) return false;
    confirmed += review_candidate_status(k, required) == "confirmed";
    if (std::find(subjects.begin(), subjects.end(), k.subject_uid) == subjects.end()) subjects.push_back(k.subject_uid);
  }
  const bool had_crops = c.wrapped_probe_key.has_value() || !c.probe_faces.empty();
  FV_RETURN_IF_ERROR(catalog().close_review_case(c.id, now()));
  // The crops' pages are overwritten after the commit (wipe_free_space); flagged here so that
  // the next open of the vault does it if that cannot run.
  if (had_crops) FV_RETURN_IF_ERROR(vault->mark_wipe_pending());
  AuditEntry e = entry(actor, "review_close");
  e.purpose = c.purpose;
  e.case_ref = c.case_ref;
  e.subjects = subjects;
  e.details = {{"review_case", c.uid}, {"confirmed", confirmed}, {"probe_crops_destroyed", had_crops}};
  FV_RETURN_IF_ERROR(audit_in_txn(e).status());
  return true;
}

Result<bool> Service::Impl::decisions_hidden(const Actor& actor, const std::string& case_uid, int64_t candidate_id) {
  if (!role_may(actor.role, Action::kReviewDecide)) return false;
  FV_ASSIGN_OR_RETURN(auto c, catalog().find_review_case(case_uid));
  if (!c || c->status != "open") return false;
  for (const auto& k : c->candidates)
    if (k.id == candidate_id) return !decided_by(k, actor.name);
  return false;
}

Status Service::Impl::redact_hidden_decisions(const Actor& actor, std::vector<AuditEntry>& entries) {
  if (!role_may(actor.role, Action::kReviewDecide)) return Status::ok();
  std::map<std::pair<std::string, int64_t>, bool> hidden;  // one lookup per candidate
  for (auto& e : entries) {
    if (e.action != "review_decide" || !e.details.is_object()) continue;
    const auto cs = e.details.find("review_case");
    const auto cand = e.details.find("candidate");
    if (cs == e.details.end() || !cs->is_string() || cand == e.details.end() || !cand->is_number_integer()) continue;
    const std::pair<std::string, int64_t> key{cs->get<std::string>(), cand->get<int64_t>()};
    auto it = hidden.find(key);
    if (it == hidden.end()) {
      FV_ASSIGN_OR_RETURN(const bool h, decisions_hidden(actor, key.first, key.second));
      it = hidden.emplace(key, h).first;
    }
    if (!it->second) continue;
    e.details.erase("decision");
    e.details.erase("reason");
    e.details["decision_hidden"] = "until you record your own decision on this candidate or its case closes";
  }
  return Status::ok();
}

Status Service::Impl::settle_cases_after_erasure(const Actor& actor, const std::vector<std::string>& case_uids) {
  for (const auto& uid : case_uids) {
    FV_ASSIGN_OR_RETURN(auto c, catalog().find_review_case(uid));
    if (c) FV_RETURN_IF_ERROR(close_if_settled(actor, *c).status());
  }
  return Status::ok();
}

Result<int64_t> Service::Impl::exclude_from_review(const Actor& actor, const std::string& subject_uid,
                                                const std::vector<std::string>& purposes_kept,
                                                const std::vector<std::string>& purposes_excluded, int64_t shard_seq,
                                                const std::string& cause) {
  for (const auto& p : purposes_excluded)
    FV_RETURN_IF_ERROR(catalog().record_review_exclusion(subject_uid, p, shard_seq).status());
  FV_ASSIGN_OR_RETURN(auto left, catalog().leave_open_cases(subject_uid, purposes_kept));
  // No candidacy left: no audit entry (an exclusion alone touches nobody's data, and settling
  // an erasure again writes nothing at all).
  if (left.candidacies == 0) return int64_t{0};
  AuditEntry e = entry(actor, "review_leave");
  e.subjects = {subject_uid};
  e.details = {{"cause", cause}, {"review_cases", left.case_uids}, {"candidacies", left.candidacies}};
  if (!purposes_kept.empty()) e.details["purposes_kept"] = purposes_kept;
  FV_RETURN_IF_ERROR(audit_in_txn(e).status());
  FV_RETURN_IF_ERROR(settle_cases_after_erasure(actor, left.case_uids));
  return left.candidacies;
}

Result<std::vector<ReviewCase>> Service::review_list(const Actor& actor, const ReviewListFilter& filter) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kReviewRead));
  if (filter.status && *filter.status != "open" && *filter.status != "closed")
    return invalid_argument("a review case's status is open or closed");
  std::vector<ReviewCase> out;
  if (filter.awaiting_caller && filter.status == "closed") return out;  // nothing awaits in a closed case
  vault::ReviewCaseQuery q;
  q.status = filter.awaiting_caller ? std::optional<std::string>("open") : filter.status;
  if (actor.role == Role::kInvestigator) q.searcher = actor.name;
  // The queue and a key's purpose scope are filtered here, then limited.
  q.limit = filter.awaiting_caller || filter.allowed_purposes ? 0 : filter.limit;
  FV_ASSIGN_OR_RETURN(auto rows, m.catalog().list_review_cases(q));
  for (const auto& r : rows) {
    if (filter.limit > 0 && out.size() >= filter.limit) break;
    if (!in_scope(filter.allowed_purposes, r.purpose)) continue;
    if (filter.awaiting_caller &&
        std::none_of(r.candidates.begin(), r.candidates.end(),
                     [&](const auto& k) { return may_decide_now(actor, r, k, m.config()); }))
      continue;
    FV_ASSIGN_OR_RETURN(ReviewCase c, case_view(m.catalog(), actor, r, m.config(), m.now()));
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

// The case a read names, when the caller may see it (an investigator's look at another
// investigator's case is a denial, audited).
Result<vault::ReviewCaseRow> readable_case(Service::Impl& m, const Actor& actor, const std::string& case_id,
                                           const PurposeScope& scope) {
  FV_ASSIGN_OR_RETURN(auto c, m.catalog().find_review_case(case_id));
  if (!c) return not_found("no review case '" + case_id + "'");
  if (!in_scope(scope, c->purpose)) {
    AuditEntry e = m.entry(actor, Action::kReviewRead);
    e.purpose = c->purpose;
    e.case_ref = c->case_ref;
    return m.refuse(std::move(e), "denied", {{"review_case", c->uid}, {"reason", "purpose not allowed for this API key"}},
                    permission_denied("this API key may not read review cases of the purpose '" + c->purpose + "'"));
  }
  if (!may_see_case(actor, *c)) {
    AuditEntry e = m.entry(actor, Action::kReviewRead);
    e.purpose = c->purpose;
    e.case_ref = c->case_ref;
    return m.refuse(std::move(e), "denied", {{"review_case", c->uid}, {"reason", "an investigator sees only the cases they opened"}},
                    permission_denied("an investigator sees only the review cases of their own searches"));
  }
  return std::move(*c);
}

}  // namespace

Result<ReviewCase> Service::review_show(const Actor& actor, const std::string& case_id, const PurposeScope& scope) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kReviewRead));
  FV_ASSIGN_OR_RETURN(vault::ReviewCaseRow c, readable_case(m, actor, case_id, scope));
  return case_view(m.catalog(), actor, c, m.config(), m.now());
}

Result<ReviewDecision> Service::review_decide(const Actor& actor, const std::string& case_id, const ReviewDecisionRequest& req) {
  return impl_->review_decide(actor, case_id, req, std::nullopt);
}

Result<ReviewDecision> Service::Impl::review_decide(const Actor& actor, const std::string& case_id,
                                                    const ReviewDecisionRequest& req, std::optional<bool> known_reference) {
  Impl& m = *this;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kReviewDecide));
  auto& cat = m.catalog();
  const std::string verdict = review_verdict_name(req.verdict);
  // A refusal, audited under the same action with what it was about (never the reason's text:
  // it may be what made the request invalid).
  auto refused = [&](const std::string& outcome, const std::string& why, Status status,
                     const vault::ReviewCaseRow* c = nullptr, const vault::ReviewCandidateRow* k = nullptr) -> Status {
    AuditEntry e = m.entry(actor, Action::kReviewDecide);
    json details = {{"candidate", req.candidate_id}, {"decision", verdict}, {"reason", why}};
    if (c) {
      e.purpose = c->purpose;
      e.case_ref = c->case_ref;
      details["review_case"] = c->uid;
    }
    if (k) e.subjects = {k->subject_uid};
    return m.refuse(std::move(e), outcome, details, std::move(status));
  };
  if (req.reason.empty() || !valid_text(req.reason, 2000))
    return refused("refused", "a decision needs a reason", invalid_argument("a decision needs a reason: 1-2000 bytes of printable text"));

  std::optional<vault::Txn> txn;
  {
    FV_ASSIGN_OR_RETURN(vault::Txn t, cat.begin());
    txn.emplace(std::move(t));
  }
  FV_ASSIGN_OR_RETURN(auto c, cat.find_review_case(case_id));
  if (!c) {
    txn.reset();  // nothing written: released before the refusal is audited in its own transaction
    return refused("refused", "no such review case", not_found("no review case '" + case_id + "'"));
  }
  auto k = std::find_if(c->candidates.begin(), c->candidates.end(), [&](const auto& x) { return x.id == req.candidate_id; });
  // Each refusal is decided inside the transaction (another process may have decided meanwhile).
  std::optional<std::pair<std::string, Status>> no;
  if (!in_scope(req.allowed_purposes, c->purpose))
    no.emplace("denied", permission_denied("this API key may not decide review cases of the purpose '" + c->purpose + "'"));
  else if (k == c->candidates.end())
    no.emplace("refused", not_found("review case " + c->uid + " has no candidate " + std::to_string(req.candidate_id)));
  else if (c->status != "open")
    no.emplace("refused", failed_precondition("review case " + c->uid + " is closed: it takes no more decisions"));
  else if (decided_by(*k, actor.name))
    no.emplace("refused", already_exists("you already decided on candidate " + std::to_string(k->id) +
                                         " (each reviewer decides once)"));
  else if (static_cast<int>(k->decisions.size()) >= std::max(1, m.config().reviewers_required))
    // Its outcome is settled (and shown): a later decision would not be an independent one.
    no.emplace("refused", failed_precondition("candidate " + std::to_string(k->id) + " already has the " +
                                              std::to_string(m.config().reviewers_required) + " decisions required"));
  else if (actor.name == c->searcher && !m.config().searcher_may_review)
    no.emplace("denied", permission_denied("the searcher may not review their own search's candidates"));
  else if (actor.name == c->searcher && !k->decisions.empty())
    no.emplace("denied", permission_denied("the searcher may review their own search's candidate only as its first reviewer"));
  if (no) {
    txn.reset();
    const vault::ReviewCandidateRow* cand = k == c->candidates.end() ? nullptr : &*k;
    return refused(no->first, no->second.message(), no->second, &*c, cand);
  }

  int64_t references = known_reference && *known_reference ? 1 : 0;
  if (k->subject_id) {
    FV_ASSIGN_OR_RETURN(references, cat.count_reference_crops(*k->subject_id, c->purpose));
  }
  AuditEntry e = m.entry(actor, Action::kReviewDecide);
  e.purpose = c->purpose;
  e.case_ref = c->case_ref;
  e.subjects = {k->subject_uid};
  e.details = {{"review_case", c->uid}, {"candidate", k->id}, {"decision", verdict}, {"reason", req.reason},
               {"reference_available", references > 0}};
  ReviewDecision out;
  FV_ASSIGN_OR_RETURN(out.audit_hash, m.audit_in_txn(e));
  vault::ReviewDecisionRow row;
  row.candidate_id = k->id;
  row.reviewer = actor.name;
  row.reviewer_role = role_name(actor.role);
  row.decision = verdict;
  row.reason = req.reason;
  row.decided_at = e.ts;
  row.reference_available = references > 0;
  row.audit_seq = e.seq;
  FV_RETURN_IF_ERROR(cat.insert_review_decision(row).status());
  FV_ASSIGN_OR_RETURN(auto after, cat.find_review_case(case_id));
  bool closed = false;
  if (after) {
    FV_ASSIGN_OR_RETURN(closed, m.close_if_settled(actor, *after));
  }
  FV_RETURN_IF_ERROR(txn->commit());
  // The destroyed crops' pages: overwritten now; a failure leaves the wipe pending (flagged
  // in the transaction) for the next open of the vault, and does not undo the decision.
  if (closed) (void)m.vault->wipe_free_space();
  const std::string hash = out.audit_hash;
  out = decision_of(row);
  out.audit_hash = hash;
  return out;
}

Result<ReviewImage> Service::review_probe_image(const Actor& actor, const std::string& case_id, int face_index,
                                                const PurposeScope& scope) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kReviewRead));
  FV_ASSIGN_OR_RETURN(vault::ReviewCaseRow c, readable_case(m, actor, case_id, scope));
  const bool kept = std::find(c.probe_faces.begin(), c.probe_faces.end(), face_index) != c.probe_faces.end();
  if (!kept || !c.wrapped_probe_key)
    return not_found("no probe face " + std::to_string(face_index) + " is kept for review case " + c.uid +
                     " (a search of templates keeps none; a closed case's are destroyed)");
  FV_ASSIGN_OR_RETURN(auto sealed, m.catalog().sealed_probe_crop(c.id, face_index));
  if (!sealed) return not_found("the probe face of review case " + c.uid + " is no longer kept");
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, m.vault->case_key(c.uid, *c.wrapped_probe_key));
  auto plain = vault::open_sealed(key, *sealed, vault::probe_ad(c.uid, face_index));
  if (!plain.is_ok()) return corrupt_data("the probe face of review case " + c.uid + " does not decrypt");
  AuditEntry e = m.entry(actor, Action::kReviewRead);
  e.purpose = c.purpose;
  e.case_ref = c.case_ref;
  e.details = {{"review_case", c.uid}, {"image", "probe"}, {"face", face_index}};
  auto h = m.audit_now(e);
  if (!h.is_ok()) {
    vault::wipe(*plain);
    return h.status();
  }
  return ReviewImage{std::move(*plain)};
}

Result<ReviewImage> Service::review_reference_image(const Actor& actor, const std::string& case_id, int64_t candidate_id,
                                                    const PurposeScope& scope) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kReviewRead));
  FV_ASSIGN_OR_RETURN(vault::ReviewCaseRow c, readable_case(m, actor, case_id, scope));
  auto k = std::find_if(c.candidates.begin(), c.candidates.end(), [&](const auto& x) { return x.id == candidate_id; });
  if (k == c.candidates.end())
    return not_found("review case " + c.uid + " has no candidate " + std::to_string(candidate_id));
  if (!k->subject_id) return not_found("the candidate's subject was erased: no reference face is kept");
  FV_ASSIGN_OR_RETURN(auto crops, m.catalog().reference_crops(*k->subject_id, c.purpose));
  if (crops.empty())
    return not_found("no reference face is kept for this candidate (the vault keeps none unless enrollment asked): "
                     "compare without one");
  const auto& [face_id, sealed] = crops.front();
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, m.vault->subject_key(*k->subject_id));
  auto plain = vault::open_sealed(key, sealed, vault::reference_ad(*k->subject_id, face_id));
  if (!plain.is_ok()) return corrupt_data("a reference face does not decrypt");
  AuditEntry e = m.entry(actor, Action::kReviewRead);
  e.purpose = c.purpose;
  e.case_ref = c.case_ref;
  e.subjects = {k->subject_uid};
  e.details = {{"review_case", c.uid}, {"image", "reference"}, {"candidate", k->id}};
  auto h = m.audit_now(e);
  if (!h.is_ok()) {
    vault::wipe(*plain);
    return h.status();
  }
  return ReviewImage{std::move(*plain)};
}

}  // namespace fv::service
