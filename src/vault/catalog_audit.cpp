// The catalog's audit chain, API keys and gauges.
#include "vault/catalog.h"

namespace fv::vault {

// Automatic checkpoints are signed inside the transaction that appends the N-th entry: the
// entry and its checkpoint commit together or not at all, so `audit verify` can expect one at
// every multiple of N (a crash between the two cannot leave a gap that looks like a deletion).
Result<std::string> Catalog::append_audit(AuditEntry& e) {
  FV_ASSIGN_OR_RETURN(std::string h, vault::append_audit(*db_, e));
  FV_RETURN_IF_ERROR(checkpoint_if_due(*db_, signer_.get(), e.seq));
  return h;
}

Result<std::string> Catalog::record_audit(AuditEntry& e) {
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(*db_));
  FV_ASSIGN_OR_RETURN(std::string h, append_audit(e));
  FV_RETURN_IF_ERROR(txn.commit());
  return h;
}

Result<std::vector<AuditEntry>> Catalog::read_audit(const AuditQuery& q) { return vault::read_audit(*db_, q); }
Result<int64_t> Catalog::count_audit(const AuditQuery& q) { return vault::count_audit(*db_, q); }

Result<Catalog::AuditPageRows> Catalog::read_audit_page(const AuditQuery& scope, const AuditQuery& filtered) {
  FV_ASSIGN_OR_RETURN(ReadSnapshot snapshot, ReadSnapshot::begin(*db_));
  AuditPageRows r;
  FV_ASSIGN_OR_RETURN(r.total, vault::count_audit(*db_, scope));
  FV_ASSIGN_OR_RETURN(r.matched, vault::count_audit(*db_, filtered));
  FV_ASSIGN_OR_RETURN(r.entries, vault::read_audit(*db_, filtered));
  return r;
}

Result<AuditVerifyReport> Catalog::verify_audit() {
  // The entries, the recorded head and the checkpoints must be read from one state.
  FV_ASSIGN_OR_RETURN(ReadSnapshot snapshot, ReadSnapshot::begin(*db_));
  std::vector<std::string> hashes;
  FV_ASSIGN_OR_RETURN(AuditVerifyReport rep, vault::verify_audit(*db_, &hashes));
  if (!rep.ok || !signer_) return rep;
  FV_RETURN_IF_ERROR(verify_checkpoints(*db_, signer_->public_key(), signer_->every(), hashes, rep));
  return rep;
}

Result<AuditVerifyReport> Catalog::verify_audit_against(const AuditCheckpoint& external) {
  if (!signer_) return failed_precondition("this vault has no audit signing key");
  FV_ASSIGN_OR_RETURN(ReadSnapshot snapshot, ReadSnapshot::begin(*db_));
  std::vector<std::string> hashes;
  FV_ASSIGN_OR_RETURN(AuditVerifyReport rep, vault::verify_audit(*db_, &hashes));
  if (!rep.ok) return rep;
  verify_external_checkpoint(external, signer_->public_key(), hashes, rep);
  if (rep.ok) FV_RETURN_IF_ERROR(verify_checkpoints(*db_, signer_->public_key(), signer_->every(), hashes, rep));
  return rep;
}

Result<AuditCheckpoint> Catalog::checkpoint_audit_head(const std::string& kind) {
  if (!signer_) return failed_precondition("this vault has no audit signing key");
  return vault::checkpoint_audit_head(*db_, *signer_, kind);
}

Result<std::vector<AuditCheckpoint>> Catalog::read_checkpoints() { return vault::read_checkpoints(*db_); }

Status Catalog::ensure_api_key_table() { return vault::ensure_api_key_table(*db_); }

Result<NewApiKey> Catalog::create_api_key(const std::string& role, const std::vector<std::string>& purposes,
                                          const std::string& label, const std::string& actor) {
  return vault::create_api_key(*db_, role, purposes, label, actor, signer_.get());
}

Status Catalog::revoke_api_key(const std::string& id, const std::string& actor) {
  return vault::revoke_api_key(*db_, id, actor, signer_.get());
}

Result<std::vector<ApiKey>> Catalog::list_api_keys() { return vault::list_api_keys(*db_); }

Result<std::optional<ApiKey>> Catalog::authenticate_api_key(const std::string& presented) {
  return vault::authenticate_api_key(*db_, presented);
}

Result<int64_t> Catalog::count_faces() { return db_->query_int("SELECT count(*) FROM face"); }
Result<int64_t> Catalog::count_subjects() { return db_->query_int("SELECT count(*) FROM subject"); }

Status Catalog::ping() {
  auto r = db_->query_int("SELECT 1");
  return r.is_ok() ? Status::ok() : r.status();
}

}  // namespace fv::vault
