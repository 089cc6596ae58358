// Lawful basis: recorded before any enrollment (creating the subject and its data key when the
// reference is new), and withdrawn — which erases what it covered.
#include <set>

#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;

Result<BasisResult> Service::add_basis(const Actor& actor, const BasisRequest& req) {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->add_basis(actor, req, std::nullopt);
}

Result<BasisResult> Service::Impl::add_basis(const Actor& actor, const BasisRequest& req,
                                             const std::optional<std::string>& new_uid) {
  Impl& m = *this;
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kBasisAdd));
  if (!valid_ref(req.subject_ref)) return invalid_argument("a subject reference is required (1-200 printable UTF-8 characters)");
  if (!valid_ref(req.reference)) return invalid_argument("a basis reference is required (consent form id, warrant number, ...; 1-200 printable UTF-8 characters)");
  if (req.purposes.empty()) return invalid_argument("a basis must name at least one purpose");
  for (auto& p : req.purposes)
    if (!valid_token(p)) return invalid_argument("invalid purpose '" + p + "' (letters, digits, . _ : / -)");
  const std::string kind = basis_kind_name(req.kind);
  const std::string t = m.now();
  std::optional<std::string> expires;
  if (req.expires) {
    FV_ASSIGN_OR_RETURN(std::string e, vault::parse_time(*req.expires, true));
    if (e <= t) return invalid_argument("the basis would already have expired (" + e + ")");
    expires = e;
  }
  auto& cat = m.catalog();
  FV_ASSIGN_OR_RETURN(vault::Txn txn, cat.begin());
  BasisResult res;
  res.subject_ref = req.subject_ref;
  FV_ASSIGN_OR_RETURN(auto subj, cat.find_subject(req.subject_ref));
  int64_t sid;
  if (subj && subj->ref == req.subject_ref) {
    sid = subj->id;
    res.subject_uid = subj->uid;
    res.retention_until = subj->retention_until;
  } else {
    res.subject_uid = new_uid ? *new_uid : vault::random_hex(8);
    res.retention_until = vault::add_days(t, m.config().default_retention_days);
    FV_ASSIGN_OR_RETURN(sid, cat.insert_subject(res.subject_uid, req.subject_ref, t, res.retention_until));
    FV_ASSIGN_OR_RETURN(vault::SecretKey k, m.vault->create_subject_key(sid));
    (void)k;  // created and stored wrapped; sealing uses it later
    res.subject_created = true;
  }
  const std::set<std::string> uniq(req.purposes.begin(), req.purposes.end());
  vault::NewBasis nb{sid, kind, req.reference, t, expires, actor.name, std::vector<std::string>(uniq.begin(), uniq.end())};
  FV_ASSIGN_OR_RETURN(res.basis_id, cat.insert_basis(nb));
  AuditEntry e = m.entry(actor, Action::kBasisAdd);
  e.subjects = {res.subject_uid};
  e.details = {{"basis_id", res.basis_id}, {"kind", kind}, {"purposes", nb.purposes},
               {"subject_created", res.subject_created}};
  if (expires) e.details["expires_at"] = *expires;
  FV_ASSIGN_OR_RETURN(res.audit_hash, m.audit_in_txn(e));
  FV_RETURN_IF_ERROR(txn.commit());
  return res;
}

Result<EraseReceipt> Service::withdraw_basis(const Actor& actor, int64_t basis_id) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kBasisWithdraw));
  auto& cat = m.catalog();
  EraseReceipt r;
  int64_t sid = 0;
  int64_t remaining = 0;
  {
    FV_ASSIGN_OR_RETURN(vault::Txn txn, cat.begin());
    FV_ASSIGN_OR_RETURN(auto owner, cat.basis_owner(basis_id));
    if (!owner) return not_found("no lawful basis " + std::to_string(basis_id));
    const vault::SubjectRow& s = owner->subject;
    sid = s.id;
    if (owner->withdrawn_at)
      return already_exists("lawful basis " + std::to_string(basis_id) + " was already withdrawn on " + *owner->withdrawn_at);
    // The subject stays only if another basis is in force (neither withdrawn nor expired).
    FV_ASSIGN_OR_RETURN(remaining, cat.other_bases_in_force(s.id, basis_id, m.now()));
    if (remaining == 0) {
      FV_ASSIGN_OR_RETURN(r, m.erase_in_txn(actor, s, "consent withdrawn (basis " + std::to_string(basis_id) + ")",
                                                 ErasureCause::kWithdrawal));
    } else {
      FV_ASSIGN_OR_RETURN(r, m.erase_basis_in_txn(actor, s, basis_id, ErasureCause::kWithdrawal));
    }
    FV_RETURN_IF_ERROR(txn.commit());
  }
  // Out of the index at once; a staying subject's other templates come back with the next
  // load, so the receipt counts only those the withdrawal took.
  const auto of_basis = static_cast<int64_t>(m.gallery->templates_of_basis(sid, basis_id));
  auto forgotten = m.gallery->forget_subject(sid);
  m.gallery->drop();
  if (!forgotten.is_ok())
    r.index_removed = 0;
  else
    r.index_removed = remaining > 0 ? of_basis : static_cast<int64_t>(*forgotten);
  m.finish_erasure(r);
  return r;
}

Result<EraseReceipt> Service::Impl::erase_basis_in_txn(const Actor& actor, const vault::SubjectRow& s, int64_t basis_id,
                                                      ErasureCause cause) {
  const bool withdrawal = cause == ErasureCause::kWithdrawal;
  EraseReceipt r;
  r.subject_ref = s.ref;
  r.subject_uid = s.uid;
  r.basis_id = basis_id;
  r.reason = "basis " + std::to_string(basis_id) + (withdrawal ? " withdrawn" : " expired");
  r.erased_at = now();
  auto& cat = catalog();
  FV_ASSIGN_OR_RETURN(auto gone, withdrawal ? cat.withdraw_basis_rows(basis_id, r.erased_at)
                                            : cat.erase_lapsed_basis_rows(basis_id, r.erased_at));
  r.faces = gone.faces;
  r.images = gone.images;
  r.kept_images = gone.kept_images;
  FV_RETURN_IF_ERROR(vault->mark_wipe_pending());
  AuditEntry e = entry(actor, withdrawal ? Action::kBasisWithdraw : Action::kErase);
  e.subjects = {s.uid};
  e.details = {{"basis_id", basis_id}, {"templates", r.faces}, {"source_images", r.images},
               {"kept_images", r.kept_images}, {"subject_erased", false}};
  if (!withdrawal) {
    e.details["reason"] = r.reason;
    e.details["cause"] = erasure_cause_name(cause);
  }
  FV_ASSIGN_OR_RETURN(auto cases, cat.drop_candidacies_without_basis(s.id, r.erased_at));
  if (!cases.empty()) e.details["review_cases_left"] = cases.size();
  FV_ASSIGN_OR_RETURN(r.audit_hash, audit_in_txn(e));
  r.audit_seq = e.seq;
  // An open case left with nothing to decide closes now.
  FV_RETURN_IF_ERROR(settle_cases_after_erasure(actor, cases));
  return r;
}

}  // namespace fv::service
