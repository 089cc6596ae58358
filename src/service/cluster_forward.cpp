// ClusterService: use cases on shards this node does not host. The whole call goes to one live
// replica of the subject's shard (a queue group per shard, cluster/rpc.h), which runs it as
// if it had been asked itself: the role check, the audit entry and the write are its own.
#include "cluster/rpc.h"
#include "cluster/shard_map.h"
#include "service/cluster_service.h"
#include "service/service_impl.h"
#include "service/shard_call_wire.h"

namespace fv::service {

Result<std::optional<int>> ClusterService::unhosted_shard_of(const std::string& subject) {
  // As locate(): a reference first (through the directory, which every node reads), then a
  // vault id.
  FV_ASSIGN_OR_RETURN(auto uid, directory_get(directory_key(subject)));
  if (!uid && is_uid(subject)) uid = subject;
  if (!uid) return std::optional<int>();
  const int s = cluster::shard_of(*uid, node_.config().shards);
  if (shard_service(s)) return std::optional<int>();
  return std::optional<int>(s);
}

Result<std::optional<int>> ClusterService::unhosted_enrollment_shard(const EnrollRequest& req) {
  // The subject's shard when the subject exists; else the basis's (an id carries its shard),
  // which refuses an unknown subject as one vault does.
  FV_ASSIGN_OR_RETURN(auto at, unhosted_shard_of(req.subject_ref));
  if (at) return at;
  FV_ASSIGN_OR_RETURN(auto uid, directory_get(directory_key(req.subject_ref)));
  if (uid) return std::optional<int>();  // the subject's shard is hosted here
  const int64_t shards = node_.config().shards;
  const int s = static_cast<int>(req.basis_id % cluster::kMaxShards);
  if (req.basis_id <= 0 || s >= shards || shard_service(s)) return std::optional<int>();
  return std::optional<int>(s);
}

Result<vault::Bytes> ClusterService::forward(int s, const ShardCall& call) {
  const std::string subject = cluster::shard_rpc_subject(s, "call");
  std::vector<cluster::RpcCall> calls{{subject, encode_call(call)}};
  auto sent = cluster::rpc_scatter(node_.connection(), master_, calls, copt_.forward_timeout_ms);
  vault::wipe(calls[0].request);  // a photo, a template
  if (!sent.is_ok()) return Status(sent.status().code(), "shard " + std::to_string(s) + ": " + sent.status().message());
  auto& r = (*sent)[0];
  if (r.is_ok()) return std::move(*r);
  // The replica's own refusals (a role, a missing basis) pass through as they are; only the
  // transport's failures name the shard. A write whose reply did not come may still be done.
  if (r.status().code() == StatusCode::kUnavailable && r.status().message().rfind("no reply from", 0) == 0)
    return unavailable("shard " + std::to_string(s) + ": " + r.status().message() +
                       " (outcome unknown: the replica may still complete the write)");
  if (r.status().code() == StatusCode::kUnavailable && r.status().message().rfind("no node serves", 0) == 0)
    return unavailable("shard " + std::to_string(s) + ": no live replica (" + r.status().message() + ")");
  return r.status();
}

Result<vault::Bytes> ClusterService::serve_shard_call(int s, std::span<const uint8_t> request) {
  FV_ASSIGN_OR_RETURN(ShardCall c, decode_call(request));
  // Run here only what lives here: a call for another shard would be forwarded again.
  if (!shard_service(s)) return unavailable("node " + node_.name() + " no longer hosts shard " + std::to_string(s));
  if (c.op == "add_basis") {
    FV_ASSIGN_OR_RETURN(auto r, add_basis(c.actor, c.basis));
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
    return encode_result(found ? nlohmann::json{{"ref", found->first}, {"reference", found->second}} : nlohmann::json(nullptr));
  }
  return corrupt_data("forwarded call: unknown operation '" + c.op + "'");
}

}  // namespace fv::service
