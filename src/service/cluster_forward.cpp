// ClusterService: use cases on shards this node does not host. The whole call goes to one live
// replica of the subject's shard (a queue group per shard, cluster/rpc.h), which runs it as
// if it had been asked itself: the role check, the audit entry and the write are its own.
#include <algorithm>

#include "cluster/rpc.h"
#include "cluster/shard_map.h"
#include "service/cluster_service.h"
#include "service/service_impl.h"
#include "service/shard_call_wire.h"

namespace fv::service {

Result<ClusterService::Placement> ClusterService::place(const std::string& subject) {
  // As locate(): a reference first (through the directory, which every node reads), then a
  // vault id.
  Placement p;
  FV_ASSIGN_OR_RETURN(p.directory_uid, directory_get(directory_key(subject)));
  const std::optional<std::string> uid = p.directory_uid ? p.directory_uid : is_uid(subject) ? std::optional(subject) : std::nullopt;
  if (uid) {
    const int s = cluster::shard_of(*uid, node_.config().shards);
    if (!shard_service(s)) p.away = s;
  }
  return p;
}

Result<vault::Bytes> ClusterService::forward(int s, const ShardCall& call) {
  const std::string subject = cluster::shard_rpc_subject(s, "call");
  std::vector<cluster::RpcCall> calls{{subject, encode_call(call)}};
  auto sent = cluster::rpc_scatter(node_.connection(), master_, calls, copt_.forward_timeout_ms);
  vault::wipe(calls[0].request);  // a photo, a template
  if (!sent.is_ok()) return Status(sent.status().code(), "shard " + std::to_string(s) + ": " + sent.status().message());
  auto& r = (*sent)[0];
  // The replica's answer, its own refusals included (a role, a missing basis), passes through
  // as it is; only the transport's failures name the shard.
  switch (r.delivery) {
    case cluster::RpcReply::Delivery::kAnswered:
      return std::move(r.result);
    case cluster::RpcReply::Delivery::kNoResponder:
      return unavailable("shard " + std::to_string(s) + ": no live replica (" + r.result.status().message() + ")");
    case cluster::RpcReply::Delivery::kNoReply:
      break;
  }
  return unavailable("shard " + std::to_string(s) + ": " + r.result.status().message() +
                     " (outcome unknown: the replica may still complete the write)");
}

Result<vault::Bytes> ClusterService::serve_shard_call(int s, std::span<const uint8_t> request) {
  FV_ASSIGN_OR_RETURN(ShardCall c, decode_call(request));
  // Run here only what lives here: a call for another shard would be forwarded again.
  if (!shard_service(s)) return unavailable("node " + node_.name() + " no longer hosts shard " + std::to_string(s));
  if (c.op == "add_basis") {
    // The sender claimed the reference for c.subject, a uid of this shard.
    if (!is_uid(c.subject) || cluster::shard_of(c.subject, node_.config().shards) != s)
      return invalid_argument("a forwarded basis names no subject of shard " + std::to_string(s));
    FV_RETURN_IF_ERROR(check_basis_add(c.actor, c.basis));
    FV_ASSIGN_OR_RETURN(auto r, add_basis_claimed(c.actor, c.basis, c.subject, s));
    return encode_result(r);
  }
  if (c.op == "withdraw_basis") {
    FV_ASSIGN_OR_RETURN(auto r, withdraw_basis(c.actor, c.id));
    return encode_result(r);
  }
  if (c.op == "enroll") {
    FV_ASSIGN_OR_RETURN(auto r, enroll(c.actor, c.enroll, std::move(c.image)));
    return encode_result(r);
  }
  if (c.op == "enroll_template") {
    TemplateOrigin origin;
    origin.image_sha256 = c.origin_sha256;
    origin.format = c.origin_format;
    origin.kept_image = std::move(c.image);
    FV_ASSIGN_OR_RETURN(auto r, enroll_template(c.actor, c.enroll, c.tmpl, origin));
    return encode_result(r);
  }
  if (c.op == "erase") {
    FV_ASSIGN_OR_RETURN(auto r, erase(c.actor, c.subject, c.reason));
    return encode_result(r);
  }
  if (c.op == "export_subject") {
    FV_ASSIGN_OR_RETURN(auto r, export_subject(c.actor, c.subject, c.include_templates, std::nullopt));
    return encode_result(r);
  }
  if (c.op == "verify_subject") {
    FV_ASSIGN_OR_RETURN(auto r, verify_subject(c.actor, c.search, c.subject, std::move(c.image)));
    return encode_result(r);
  }
  if (c.op == "optout_shard") {
    FV_ASSIGN_OR_RETURN(auto r, optout_on(s, c.actor, c.tmpl, c.subject));
    return encode_result(r);
  }
  if (c.op == "optout_check") {
    FV_ASSIGN_OR_RETURN(auto r, optout_check_on(s, c.actor));
    return encode_result(r);
  }
  if (c.op == "candidate") {
    FV_ASSIGN_OR_RETURN(auto found, candidate_on_shard(c.subject, c.reason));
    return encode_result(found);
  }
  if (c.op == "reference_image") {
    FV_ASSIGN_OR_RETURN(auto r, reference_crop_on_shard(c.subject, c.reason));
    auto bytes = encode_result(r);
    vault::wipe(r.jpeg);
    return bytes;
  }
  if (c.op == "expire") {
    FV_ASSIGN_OR_RETURN(auto r, expire_on(s, c.actor, c.as_of, c.dry_run));
    return encode_result(r);
  }
  if (c.op == "audit_read") {
    // One page read from the chain, not the whole chain per page.
    constexpr size_t kPageEntries = 1000;
    vault::AuditQuery q = c.audit;
    if (!c.subject.empty()) q.subject = c.subject;
    q.limit = q.limit ? std::min(q.limit, kPageEntries) : kPageEntries;
    FV_ASSIGN_OR_RETURN(auto r, audit_of_shard(s, q, c.audit_counts));
    r.more = r.entries.size() >= q.limit;
    r.selected = true;
    return encode_result(cut_audit_page(std::move(r), copt_.audit_page_bytes));
  }
  if (c.op == "audit_verify") {
    FV_ASSIGN_OR_RETURN(Service * svc, shard(s));
    FV_ASSIGN_OR_RETURN(auto r, svc->audit_verify(c.actor));
    return encode_result(r);
  }
  return corrupt_data("forwarded call: unknown operation '" + c.op + "'");
}

}  // namespace fv::service
