// The catalog's audit chain, API keys and gauges.
#include "vault/catalog.h"

namespace fv::vault {

Result<std::string> Catalog::append_audit(AuditEntry& e) { return vault::append_audit(*db_, e); }

Result<std::string> Catalog::record_audit(AuditEntry& e) {
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(*db_));
  FV_ASSIGN_OR_RETURN(std::string h, vault::append_audit(*db_, e));
  FV_RETURN_IF_ERROR(txn.commit());
  return h;
}

Result<std::vector<AuditEntry>> Catalog::read_audit(const AuditQuery& q) { return vault::read_audit(*db_, q); }

Result<AuditVerifyReport> Catalog::verify_audit() { return vault::verify_audit(*db_); }

Status Catalog::ensure_api_key_table() { return vault::ensure_api_key_table(*db_); }

Result<NewApiKey> Catalog::create_api_key(const std::string& role, const std::vector<std::string>& purposes,
                                          const std::string& label, const std::string& actor) {
  return vault::create_api_key(*db_, role, purposes, label, actor);
}

Status Catalog::revoke_api_key(const std::string& id, const std::string& actor) {
  return vault::revoke_api_key(*db_, id, actor);
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
