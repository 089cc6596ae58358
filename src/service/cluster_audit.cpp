// ClusterService's audit: one log across the node's vaults. Each vault keeps its own hash
// chain (the meta vault's: searches, review cases, keys, authorisations; a shard's: its
// subjects' bases, enrollments and erasures); `audit show` and the transparency report read
// them all, and `audit verify` verifies every chain.
#include <algorithm>
#include <set>

#include "service/cluster_service.h"
#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;

Result<AuditPage> ClusterService::audit_show(const Actor& actor, const AuditFilter& filter) {
  auto& meta = *meta_->impl_;
  {
    std::lock_guard<std::mutex> l(meta.mu);
    FV_RETURN_IF_ERROR(meta.authorize(actor, Action::kAuditShow));
  }
  vault::AuditQuery q;
  if (filter.since) {
    FV_ASSIGN_OR_RETURN(auto t, vault::parse_time(*filter.since));
    q.since = t;
  }
  bool known = false;
  if (filter.subject) {
    FV_ASSIGN_OR_RETURN(auto at, locate(*filter.subject));
    // An erased subject is only known by the id on its receipt.
    q.subject = at ? at->uid : *filter.subject;
    known = at.has_value();
  }
  std::vector<AuditEntry> entries;
  auto read = [&](Service& svc, bool redact) -> Status {
    auto& m = *svc.impl_;
    std::lock_guard<std::mutex> l(m.mu);
    FV_ASSIGN_OR_RETURN(auto part, m.catalog().read_audit(q));
    // Review decisions live in the meta vault: a reviewer's undecided candidates stay hidden.
    if (redact) FV_RETURN_IF_ERROR(m.redact_hidden_decisions(actor, part));
    for (auto& e : part) entries.push_back(std::move(e));
    return Status::ok();
  };
  FV_RETURN_IF_ERROR(read(*meta_, true));
  for (auto& [s, svc] : shards_) FV_RETURN_IF_ERROR(read(*svc, false));
  std::stable_sort(entries.begin(), entries.end(), [](const AuditEntry& a, const AuditEntry& b) { return a.ts < b.ts; });

  const AuditPage page = audit_page(entries, filter);
  // The reading is audited once, in the meta vault.
  auto h = write_on(-1, [&](Service& svc) -> Result<std::string> {
    auto& m = *svc.impl_;
    std::lock_guard<std::mutex> l(m.mu);
    AuditEntry e = m.entry(actor, Action::kAuditShow);
    if (q.subject && (known || !entries.empty())) e.subjects = {*q.subject};
    else if (q.subject) e.details["subject"] = "unknown subject";
    e.details["entries"] = page.entries.size();
    if (filter.since) e.details["since"] = *q.since;
    return m.audit_now(e);
  });
  if (!h.is_ok()) return h.status();
  return page;
}

Result<nlohmann::json> ClusterService::transparency_report(const Actor& actor, const std::string& from_text,
                                                          const std::string& to_text) {
  auto& meta = *meta_->impl_;
  {
    std::lock_guard<std::mutex> l(meta.mu);
    FV_RETURN_IF_ERROR(meta.authorize(actor, Action::kReport));
  }
  FV_ASSIGN_OR_RETURN(const ReportPeriod period, report_period(from_text, to_text));
  // Every chain the node holds: searches and decisions are in the meta vault's, enrollments,
  // erasures and the bases that define the purposes in the shards'.
  std::set<std::string> known;
  std::vector<AuditEntry> entries;
  vault::AuditQuery q;
  q.since = period.from;
  auto read = [&](Service& svc) -> Status {
    auto& m = *svc.impl_;
    std::lock_guard<std::mutex> l(m.mu);
    FV_ASSIGN_OR_RETURN(auto purposes, operator_purposes(m.catalog(), m.config()));
    known.insert(purposes.begin(), purposes.end());
    FV_ASSIGN_OR_RETURN(auto part, m.catalog().read_audit(q));
    for (auto& e : part) entries.push_back(std::move(e));
    return Status::ok();
  };
  FV_RETURN_IF_ERROR(read(*meta_));
  for (auto& [s, svc] : shards_) FV_RETURN_IF_ERROR(read(*svc));
  nlohmann::json report = count_report(entries, std::move(known), period, now());
  auto h = write_on(-1, [&](Service& svc) -> Result<std::string> {
    auto& m = *svc.impl_;
    std::lock_guard<std::mutex> l(m.mu);
    AuditEntry e = m.entry(actor, Action::kReport);
    e.details = {{"from", period.from}, {"to", period.to}};
    return m.audit_now(e);
  });
  if (!h.is_ok()) return h.status();
  return report;
}

Result<vault::AuditVerifyReport> ClusterService::audit_verify(const Actor& actor) {
  // The meta chain first, then every hosted shard's: the first that does not verify is the answer.
  FV_ASSIGN_OR_RETURN(auto report, meta_->audit_verify(actor));
  if (!report.ok) return report;
  for (auto& [s, svc] : shards_) {
    FV_ASSIGN_OR_RETURN(auto part, svc->audit_verify(actor));
    if (!part.ok) return part;
  }
  return report;
}

}  // namespace fv::service
