// Audit log (verify, show with filters), the master key's rotation, API keys, the caller
// behind a presented key, refusals and events recorded for the adapters, health and gauges.
// Key checks, door denials, events and gauges use the second connection (aux), so they never
// wait behind a long search on the main one.
#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;

Result<vault::AuditVerifyReport> Service::audit_verify(const Actor& actor) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuditVerify));
  return m.catalog().verify_audit();
}

Result<vault::AuditVerifyReport> Service::audit_verify_against(const Actor& actor,
                                                               const vault::AuditCheckpoint& external) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuditVerify));
  return m.catalog().verify_audit_against(external);
}

// Reuses audit verify's roles (admin, auditor): signing the head asserts nothing new about the
// log, it only fixes what verify would check. The entry names "audit_checkpoint" as its action.
Result<vault::AuditCheckpoint> Service::audit_checkpoint(const Actor& actor) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuditVerify));
  FV_ASSIGN_OR_RETURN(vault::Txn txn, m.vault->begin());
  AuditEntry e = m.entry(actor, "audit_checkpoint");
  e.details = {{"public_key", m.vault->audit_public_key()}};
  FV_RETURN_IF_ERROR(m.audit_in_txn(e).status());
  // The N-th entry was signed already by the append: the same checkpoint is returned.
  FV_ASSIGN_OR_RETURN(vault::AuditCheckpoint c, m.catalog().checkpoint_audit_head("manual"));
  FV_RETURN_IF_ERROR(txn.commit());
  return c;
}

vault::AuditQuery audit_page_query(const vault::AuditQuery& scope, const AuditFilter& filter) {
  vault::AuditQuery q = scope;
  q.action = filter.action;
  q.outcome = filter.outcome;
  q.actor = filter.actor;
  q.limit = filter.limit;
  q.newest_first = filter.newest_first;
  return q;
}

Result<AuditPage> Service::audit_show(const Actor& actor, const AuditFilter& filter) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kAuditShow));
  vault::AuditQuery q;
  if (filter.since) {
    FV_ASSIGN_OR_RETURN(auto t, vault::parse_time(*filter.since));
    q.since = t;
  }
  bool known = false;
  if (filter.subject) {
    FV_ASSIGN_OR_RETURN(auto s, m.catalog().find_subject(*filter.subject));
    // An erased subject is only known by the id on its receipt.
    q.subject = s ? s->uid : *filter.subject;
    known = s.has_value();
  }
  // SQLite filters, counts and cuts the page from one state of the log: only the page's rows
  // are read into memory and decoded under the service's lock.
  FV_ASSIGN_OR_RETURN(auto rows, m.catalog().read_audit_page(q, audit_page_query(q, filter)));
  AuditPage page;
  page.entries = std::move(rows.entries);
  page.total = static_cast<size_t>(rows.total);
  page.matched = static_cast<size_t>(rows.matched);
  // An admin may also review: the decisions of cases they may still decide stay hidden here.
  FV_RETURN_IF_ERROR(m.redact_hidden_decisions(actor, page.entries));
  AuditEntry e = m.entry(actor, Action::kAuditShow);
  // Only a vault id goes into the log: a subject of the vault, or one the log names (an
  // erased subject's id). Anything else may be an external reference: not recorded.
  if (q.subject && (known || page.total > 0)) e.subjects = {*q.subject};
  else if (q.subject) e.details["subject"] = "unknown subject";
  e.details["entries"] = page.entries.size();
  if (filter.since) e.details["since"] = *q.since;
  if (auto h = m.audit_now(e); !h.is_ok()) return h.status();
  return page;
}

Result<vault::Vault::RotateReport> Service::rotate_key(const Actor& actor, const std::function<void()>& after_commit) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kKeyRotate));
  return m.vault->rotate_master_key(
      [&](const vault::Vault::RotateReport& r) -> Status {
        AuditEntry e = m.entry(actor, Action::kKeyRotate);
        e.details = {{"old_key_id", r.old_key_id}, {"new_key_id", r.new_key_id}, {"subject_keys", r.subject_keys},
                     {"optout_key", r.optout_key}};
        auto h = m.audit_in_txn(e);
        return h.is_ok() ? Status::ok() : h.status();
      },
      after_commit);
}

Result<vault::NewApiKey> Service::create_api_key(const Actor& actor, Role role, const std::vector<std::string>& purposes,
                                                 const std::string& label) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kKeyManage));
  FV_RETURN_IF_ERROR(m.catalog().ensure_api_key_table());
  return m.catalog().create_api_key(role_name(role), purposes, label, actor.name);
}

Status Service::revoke_api_key(const Actor& actor, const std::string& key_id) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kKeyManage));
  return m.catalog().revoke_api_key(key_id, actor.name);
}

Result<std::vector<vault::ApiKey>> Service::list_api_keys(const Actor& actor) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kKeyManage));
  return m.catalog().list_api_keys();
}

Result<std::pair<Actor, vault::ApiKey>> Service::authenticate_key(const std::string& presented) {
  Impl& m = *impl_;
  std::optional<vault::ApiKey> key;
  {
    std::lock_guard<std::mutex> l(m.aux_mu);
    FV_ASSIGN_OR_RETURN(vault::Catalog * aux, m.aux_catalog());
    FV_ASSIGN_OR_RETURN(key, aux->authenticate_api_key(presented));
  }
  if (!key) return unauthenticated("unknown or revoked API key");
  const auto role = parse_role(key->role);
  if (!role) return unauthenticated("unknown or revoked API key");
  Actor a{"key:" + key->id, *role};
  return std::pair<Actor, vault::ApiKey>(std::move(a), std::move(*key));
}

Status Service::record_denial(const Actor& actor, Action action, const std::string& reason, const nlohmann::json& details,
                              const std::string& purpose, const std::string& case_ref) {
  Impl& m = *impl_;
  AuditEntry e = m.entry(actor, action);
  e.outcome = "denied";
  e.purpose = purpose;
  e.case_ref = case_ref;
  e.details = {{"reason", reason}};
  if (details.is_object())
    for (auto& [k, v] : details.items()) e.details[k] = v;
  auto h = m.audit_aux(e);
  return h.is_ok() ? Status::ok() : h.status();
}

Result<std::string> Service::record_event(const Actor& actor, Action action, const nlohmann::json& details) {
  Impl& m = *impl_;
  AuditEntry e = m.entry(actor, action);
  if (details.is_object()) e.details = details;
  return m.audit_aux(e);
}

Status Service::health() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.aux_mu);
  auto aux = m.aux_catalog();
  Status st = aux.is_ok() ? (*aux)->ping() : aux.status();
  if (!st.is_ok()) return unavailable("the vault database does not answer: " + st.message());
  return Status::ok();
}

ServiceStats Service::stats() {
  Impl& m = *impl_;
  ServiceStats s;
  {
    std::lock_guard<std::mutex> l(m.aux_mu);
    if (auto aux = m.aux_catalog(); aux.is_ok()) {
      if (auto n = (*aux)->count_faces(); n.is_ok()) s.templates = *n;
      if (auto n = (*aux)->count_subjects(); n.is_ok()) s.subjects = *n;
    }
  }
  s.templates_in_memory = m.gallery->held();
  s.pipelines = m.pool->capacity();
  s.audit_write_failures = m.audit_write_failures.load();
  s.calibration = m.calibration() ? m.calibration()->source() : "";
  return s;
}

// The pipelines, and the gallery: loaded on the first search otherwise, inside that request
// (37 s for 1 M templates on three cluster nodes: docs/benchmarks.md, "The 1 M run").
Status Service::warm_up() {
  FV_RETURN_IF_ERROR(impl_->pool->warm_up());
  return impl_->warm_gallery();
}

Status Service::Impl::warm_gallery() {
  std::lock_guard<std::mutex> l(mu);
  return load_gallery();
}

Status init_vault(const std::filesystem::path& dir, const vault::VaultConfig& config, const Actor& actor) {
  if (actor.name.empty()) return invalid_argument("an actor name is required");
  if (!valid_ref(actor.name)) return invalid_argument("the actor name must be 1-200 printable UTF-8 characters");
  if (!role_may(actor.role, Action::kKeyManage))
    return permission_denied(std::string("role '") + role_name(actor.role) + "' may not create a vault");
  FV_RETURN_IF_ERROR(vault::Vault::init(dir, config));
  // Written on the vault's own catalog: creating a vault is the one use case that runs before a
  // service can be opened on it.
  FV_ASSIGN_OR_RETURN(auto v, vault::Vault::open(dir));
  vault::AuditEntry e;
  e.ts = vault::utc_now();
  e.actor = actor.name;
  e.role = role_name(actor.role);
  e.action = "init";
  e.details = {{"schema_version", vault::kSchemaVersion}, {"master_key", v->config().master_key},
               {"master_key_id", v->master_key_id()}};
  return v->catalog().record_audit(e).status();
}

}  // namespace fv::service
