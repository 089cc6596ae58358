// Erasure (on request) and retention (expiry of the subjects due): the rows go in one
// transaction with their audit entry, the templates leave the search index physically, and
// the freed pages are overwritten before the receipt says "wiped".
#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;

Result<EraseReceipt> Service::Impl::erase_in_txn(const Actor& actor, const vault::SubjectRow& s, const std::string& reason,
                                                 ErasureCause cause) {
  EraseReceipt r;
  r.subject_ref = s.ref;
  r.subject_uid = s.uid;
  r.reason = reason;
  r.erased_at = now();
  FV_ASSIGN_OR_RETURN(auto gone, catalog().erase_subject(s.id));
  r.faces = gone.faces;
  r.images = gone.images;
  r.kept_images = gone.kept_images;
  r.bases = gone.bases;
  r.reference_crops = gone.reference_crops;
  r.review_candidates_removed = gone.review_candidates;
  r.key_destroyed = gone.keys > 0;
  FV_RETURN_IF_ERROR(vault->mark_wipe_pending());
  AuditEntry e = entry(actor, Action::kErase);
  e.subjects = {s.uid};
  e.details = {{"reason", reason}, {"cause", erasure_cause_name(cause)}, {"templates", r.faces}, {"source_images", r.images}, {"kept_images", r.kept_images},
               {"lawful_bases", r.bases}, {"subject_key", r.key_destroyed}, {"reference_crops", r.reference_crops},
               {"review_candidates", r.review_candidates_removed}};
  FV_ASSIGN_OR_RETURN(r.audit_hash, audit_in_txn(e));
  r.audit_seq = e.seq;
  // Open review cases the subject left: one with nothing left to decide closes now.
  FV_RETURN_IF_ERROR(settle_cases_after_erasure(actor, gone.open_review_cases));
  return r;
}

void Service::Impl::finish_erasure(EraseReceipt& r) {
  // The erasure is committed: its receipt is returned whatever the wipe does. A wipe that
  // fails stays pending and is finished by the next open of the vault.
  Status w = vault->wipe_free_space();
  r.wiped = w.is_ok();
  if (!w.is_ok()) r.wipe_error = w.message();
}

Result<EraseReceipt> Service::erase(const Actor& actor, const std::string& subject, const std::string& reason) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kErase));
  EraseReceipt r;
  int64_t sid = 0;
  {
    FV_ASSIGN_OR_RETURN(vault::Txn txn, m.catalog().begin());
    FV_ASSIGN_OR_RETURN(auto s, m.catalog().find_subject(subject));
    if (!s) return not_found("no subject '" + subject + "' in the vault (already erased?)");
    sid = s->id;
    FV_ASSIGN_OR_RETURN(r, m.erase_in_txn(actor, *s, reason));
    FV_RETURN_IF_ERROR(txn.commit());
  }
  // Physical removal from the search index before the receipt is issued.
  auto forgotten = m.gallery->forget_subject(sid);
  if (!forgotten.is_ok())
    return failed_precondition("subject erased (audit " + r.audit_hash + ") but the search index failed: " +
                               forgotten.status().message() + "; it was dropped and is rebuilt from the vault");
  r.index_removed = static_cast<int64_t>(*forgotten);
  m.finish_erasure(r);
  return r;
}

Result<ExpireReport> Service::expire(const Actor& actor, const std::optional<std::string>& as_of_in, bool dry_run) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kExpire));
  ExpireReport rep;
  rep.dry_run = dry_run;
  const std::string t = m.now();
  if (as_of_in) {
    FV_ASSIGN_OR_RETURN(rep.as_of, vault::parse_time(*as_of_in));
    // A date in the future would erase, today, subjects that are not due: only a dry run
    // may look ahead.
    if (rep.as_of > t && !dry_run)
      return invalid_argument("--as-of " + rep.as_of + " is in the future: only a dry run (--dry-run) may look ahead");
  } else {
    rep.as_of = t;
  }
  // Due: retention passed, or no basis left that is in force (all withdrawn or expired).
  FV_ASSIGN_OR_RETURN(auto due, m.catalog().due_for_expiry(rep.as_of));
  for (auto& [s, why] : due) {
    if (dry_run) {
      EraseReceipt r;
      r.subject_ref = s.ref;
      r.subject_uid = s.uid;
      r.reason = why;
      rep.erased.push_back(r);
      continue;
    }
    FV_ASSIGN_OR_RETURN(vault::Txn txn, m.catalog().begin());
    // Due when listed, but a write committed since (another node's new basis or renewal on a
    // cluster shard, another expiry run) may have changed that: decided again on this state.
    FV_ASSIGN_OR_RETURN(auto still, m.catalog().due_for_expiry(rep.as_of, s.id));
    if (still.empty()) continue;  // the transaction rolls back
    FV_ASSIGN_OR_RETURN(EraseReceipt r, m.erase_in_txn(actor, still.front().subject, still.front().reason,
                                                       ErasureCause::kRetention));
    FV_RETURN_IF_ERROR(txn.commit());
    auto forgotten = m.gallery->forget_subject(s.id);
    r.index_removed = forgotten.is_ok() ? static_cast<int64_t>(*forgotten) : 0;
    rep.erased.push_back(r);
  }
  // Bases that lapsed while their subject keeps another in force: what each covered goes, as a
  // withdrawal takes it (the subjects due above are gone whole, their bases with them).
  FV_ASSIGN_OR_RETURN(auto lapsed, m.catalog().lapsed_bases_holding_rows(rep.as_of));
  for (const auto& b : lapsed) {
    if (dry_run) {
      EraseReceipt r;
      r.subject_ref = b.subject.ref;
      r.subject_uid = b.subject.uid;
      r.basis_id = b.basis_id;
      r.reason = "basis " + std::to_string(b.basis_id) + " expired";
      rep.bases_lapsed.push_back(r);
      continue;
    }
    FV_ASSIGN_OR_RETURN(vault::Txn txn, m.catalog().begin());
    FV_ASSIGN_OR_RETURN(auto still, m.catalog().lapsed_bases_holding_rows(rep.as_of, b.basis_id));
    if (still.empty()) continue;  // the transaction rolls back
    FV_ASSIGN_OR_RETURN(EraseReceipt r, m.erase_basis_in_txn(actor, still.front().subject, b.basis_id,
                                                             ErasureCause::kRetention));
    FV_RETURN_IF_ERROR(txn.commit());
    r.index_removed = static_cast<int64_t>(m.gallery->templates_of_basis(b.subject.id, b.basis_id));  // the drop below
    rep.bases_lapsed.push_back(r);
  }
  // The index goes whole (its buffers zero themselves); the stayers' other templates come back
  // with its next load.
  if (!dry_run && !rep.bases_lapsed.empty()) m.gallery->drop();
  // Oversight's own expiry: pending authorisations past their deadline, aged-out probe crops.
  if (!dry_run) {
    FV_ASSIGN_OR_RETURN(rep.oversight, m.sweep_oversight(actor, rep.as_of));
  }
  AuditEntry e = m.entry(actor, Action::kExpire);
  for (auto& r : rep.erased) e.subjects.push_back(r.subject_uid);
  for (auto& r : rep.bases_lapsed) e.subjects.push_back(r.subject_uid);
  e.details = {{"as_of", rep.as_of}, {"erased", dry_run ? 0 : rep.erased.size()}, {"dry_run", dry_run},
               {"due", rep.erased.size()}, {"bases_lapsed", rep.bases_lapsed.size()},
               {"authorisations_lapsed", rep.oversight.lapsed.size()},
               {"probe_crops_destroyed", rep.oversight.probe_crops_destroyed}};
  FV_ASSIGN_OR_RETURN(rep.audit_hash, m.audit_now(e));
  if (!dry_run && (!rep.erased.empty() || !rep.bases_lapsed.empty())) {
    Status w = m.vault->wipe_free_space();
    for (auto* list : {&rep.erased, &rep.bases_lapsed})
      for (auto& r : *list) {
        r.wiped = w.is_ok();
        if (!w.is_ok()) r.wipe_error = w.message();
      }
  }
  return rep;
}

}  // namespace fv::service
