// ClusterService's audit: one log across the cluster's vaults. Each vault keeps its own hash
// chain (the meta vault's: searches, review cases, keys, authorisations; a shard's: its
// subjects' bases, enrollments and erasures); `audit show` and the transparency report read
// them all, and `audit verify` verifies every chain. A shard this node does not host is read
// and verified by one of its replicas (a forwarded call, cluster_forward.cpp).
#include <algorithm>
#include <set>

#include "service/cluster_service.h"
#include "service/service_impl.h"
#include "service/shard_call_wire.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;

namespace {

// What `audit show` counts as its total: the entries since the instant, of the subject.
vault::AuditQuery audit_scope(const vault::AuditQuery& q) {
  vault::AuditQuery scope;
  scope.since = q.since;
  scope.subject = q.subject;
  return scope;
}

// Whether `e` comes after the cursor of q (its last page's last entry) in q's order.
bool after_cursor(const AuditEntry& e, const vault::AuditQuery& q) {
  if (q.after_seq == 0) return true;
  const auto key = [&](const std::string& ts, int64_t seq) { return std::make_pair(q.by_time ? ts : std::string(), seq); };
  return q.newest_first ? key(e.ts, e.seq) < key(q.after_ts, q.after_seq) : key(q.after_ts, q.after_seq) < key(e.ts, e.seq);
}

}  // namespace

Result<ShardAudit> ClusterService::audit_of_shard(int s, const vault::AuditQuery& q, bool counts) {
  if (Service* svc = shard_service(s)) {
    auto& m = *svc->impl_;
    std::lock_guard<std::mutex> l(m.mu);
    ShardAudit out;
    if (counts) {
      FV_ASSIGN_OR_RETURN(auto rows, m.catalog().read_audit_page(audit_scope(q), q));
      out.entries = std::move(rows.entries);
      out.total = rows.total;
      out.matched = rows.matched;
    } else {
      FV_ASSIGN_OR_RETURN(out.entries, m.catalog().read_audit(q));
    }
    FV_ASSIGN_OR_RETURN(auto purposes, operator_purposes(m.catalog(), m.config()));
    out.purposes.assign(purposes.begin(), purposes.end());
    return out;
  }
  // A read between nodes for a use case the caller's node authorised and audits, page by page
  // (one NATS message carries 1 MB by default), each page after the last entry of the one before.
  const Actor self{"cluster:" + node_.name(), Role::kAuditor};
  const bool plain = !q.by_time && !q.newest_first && !q.action && !q.outcome && !q.actor;
  ShardAudit all;
  vault::AuditQuery page_q = q;
  for (bool first = true;; first = false) {
    if (q.limit) page_q.limit = q.limit - all.entries.size();
    FV_ASSIGN_OR_RETURN(auto reply, forward(s, {.op = "audit_read", .actor = self, .subject = q.subject.value_or(""),
                                                .audit = page_q, .audit_counts = counts && first}));
    FV_ASSIGN_OR_RETURN(auto page, decode_shard_audit(reply));
    if (!plain && !page.selected)
      return unavailable("shard " + std::to_string(s) +
                         ": its replica runs an earlier release that cannot select an audit page (upgrade every node)");
    all.purposes = std::move(page.purposes);
    if (first && counts) {
      if (!page.total || !page.matched) return corrupt_data("shard " + std::to_string(s) + ": an audit page without its counts");
      all.total = page.total;
      all.matched = page.matched;
    }
    if (page.more && page.entries.empty())
      return corrupt_data("shard " + std::to_string(s) + ": an audit page that does not move on");
    // Each entry after the one before it (the first after the cursor): a page can neither
    // repeat nor go back, so the reading ends.
    for (const auto& e : page.entries) {
      if (!after_cursor(e, page_q))
        return corrupt_data("shard " + std::to_string(s) + ": an audit page out of order or repeating entries");
      page_q.after_seq = e.seq;
      page_q.after_ts = e.ts;
    }
    if (q.limit && all.entries.size() + page.entries.size() > q.limit)
      return corrupt_data("shard " + std::to_string(s) + ": an audit page longer than asked");
    for (auto& e : page.entries) all.entries.push_back(std::move(e));
    if (!page.more || (q.limit && all.entries.size() == q.limit)) return all;
  }
}

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
    FV_ASSIGN_OR_RETURN(const Placement placed, place(*filter.subject));
    if (placed.away) {
      // Its shard is elsewhere: the directory knows the reference; a vault id stands for itself.
      q.subject = placed.directory_uid.value_or(*filter.subject);
      known = placed.directory_uid.has_value();
    } else {
      FV_ASSIGN_OR_RETURN(auto at, locate(*filter.subject, placed));
      // An erased subject is only known by the id on its receipt.
      q.subject = at ? at->uid : *filter.subject;
      known = at.has_value();
    }
  }
  // Each chain filters, counts and cuts its own page; the pages merge by time. A chain's first
  // `limit` entries in time order hold every one of its entries that the merged page can.
  vault::AuditQuery filtered = audit_page_query(q, filter);
  filtered.by_time = true;
  AuditPage page;
  {
    auto& m = *meta_->impl_;
    std::lock_guard<std::mutex> l(m.mu);
    FV_ASSIGN_OR_RETURN(auto rows, m.catalog().read_audit_page(q, filtered));
    // Review decisions live in the meta vault: a reviewer's undecided candidates stay hidden.
    FV_RETURN_IF_ERROR(m.redact_hidden_decisions(actor, rows.entries));
    page.entries = std::move(rows.entries);
    page.total = static_cast<size_t>(rows.total);
    page.matched = static_cast<size_t>(rows.matched);
  }
  for (int s = 0; s < node_.config().shards; ++s) {
    FV_ASSIGN_OR_RETURN(auto part, audit_of_shard(s, filtered, true));
    page.total += static_cast<size_t>(part.total.value_or(0));
    page.matched += static_cast<size_t>(part.matched.value_or(0));
    for (auto& e : part.entries) page.entries.push_back(std::move(e));
  }
  std::stable_sort(page.entries.begin(), page.entries.end(), [&](const AuditEntry& a, const AuditEntry& b) {
    return filter.newest_first ? b.ts < a.ts : a.ts < b.ts;
  });
  if (filter.limit && page.entries.size() > filter.limit) page.entries.resize(filter.limit);

  // The reading is audited once, in the meta vault.
  auto h = write_on(-1, [&](Service& svc) -> Result<std::string> {
    auto& m = *svc.impl_;
    std::lock_guard<std::mutex> l(m.mu);
    AuditEntry e = m.entry(actor, Action::kAuditShow);
    if (q.subject && (known || page.total > 0)) e.subjects = {*q.subject};
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
  // Every chain: searches and decisions are in the meta vault's, enrollments, erasures and the
  // bases that define the purposes in the shards'.
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
  for (int s = 0; s < node_.config().shards; ++s) {
    FV_ASSIGN_OR_RETURN(auto part, audit_of_shard(s, q));
    known.insert(part.purposes.begin(), part.purposes.end());
    for (auto& e : part.entries) entries.push_back(std::move(e));
  }
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
  // The meta chain first, then every shard's: the first that does not verify is the answer,
  // its message naming the shard.
  FV_ASSIGN_OR_RETURN(auto report, meta_->audit_verify(actor));
  if (!report.ok) return report;
  for (int s = 0; s < node_.config().shards; ++s) {
    Result<vault::AuditVerifyReport> part = vault::AuditVerifyReport{};
    if (Service* svc = shard_service(s)) {
      part = svc->audit_verify(actor);
    } else {
      FV_ASSIGN_OR_RETURN(auto reply, forward(s, {.op = "audit_verify", .actor = actor}));
      part = decode_verify_report(reply);
    }
    FV_RETURN_IF_ERROR(part.status());
    if (!part->ok) {
      part->message = "shard " + std::to_string(s) + ": " + part->message;
      return *part;
    }
    report.entries += part->entries;
    report.checkpoints += part->checkpoints;
  }
  return report;  // its head is the meta chain's
}

}  // namespace fv::service
