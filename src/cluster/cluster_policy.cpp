#include "cluster/cluster_policy.h"

#include "cluster/cluster_config.h"
#include "cluster/kv.h"

using nlohmann::json;

namespace fv::cluster {
namespace {

constexpr const char* kPolicyKey = "policy";

std::optional<std::string> first_difference(const json& mine, const json& theirs) {
  const json patch = json::diff(theirs, mine);
  if (patch.empty()) return std::nullopt;
  const std::string path = patch[0].value("path", std::string());
  const json::json_pointer p(path);
  const std::string a = mine.contains(p) ? mine.at(p).dump() : "nothing";
  const std::string b = theirs.contains(p) ? theirs.at(p).dump() : "nothing";
  return path + " is " + a + ", the cluster's policy says " + b;
}

}  // namespace

json policy_of(const vault::VaultConfig& c) {
  json j = c.to_json();
  j.erase("master_key");
  j.erase("audit_signing_key");
  if (j.contains("index") && j["index"].is_object()) j["index"].erase("search_threads");
  return j;
}

vault::VaultConfig with_policy(const vault::VaultConfig& local, const vault::VaultConfig& policy) {
  vault::VaultConfig c = policy;
  c.master_key = local.master_key;
  c.audit_signing_key = local.audit_signing_key;
  c.search_threads = local.search_threads;
  return c;
}

std::optional<std::string> policy_difference(const vault::VaultConfig& c, const vault::VaultConfig& policy) {
  return first_difference(policy_of(c), policy_of(policy));
}

Status set_cluster_policy(NatsConnection& conn, const vault::VaultConfig& policy) {
  FV_ASSIGN_OR_RETURN(auto kv, KvBucket::open(conn, kClusterBucket));
  const json mine = policy_of(policy);
  auto created = kv.create(kPolicyKey, mine.dump());
  if (created.is_ok()) return Status::ok();
  if (created.status().code() != StatusCode::kAlreadyExists) return created.status();
  // Already set (or a create whose answer was lost): the same policy is fine.
  FV_ASSIGN_OR_RETURN(auto stored, read_cluster_policy(conn));
  if (!stored) return internal_error("the cluster's policy exists but cannot be read back");
  if (auto diff = first_difference(mine, policy_of(*stored)))
    return already_exists("the cluster's policy is fixed at `cluster init`: " + *diff);
  return Status::ok();
}

Result<std::optional<vault::VaultConfig>> read_cluster_policy(NatsConnection& conn) {
  FV_ASSIGN_OR_RETURN(auto kv, KvBucket::open(conn, kClusterBucket));
  FV_ASSIGN_OR_RETURN(auto text, kv.get(kPolicyKey));
  if (!text) return std::optional<vault::VaultConfig>();
  const json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return corrupt_data("the cluster's policy in " + std::string(kClusterBucket) + " is not JSON");
  auto c = vault::VaultConfig::from_json(j);
  if (!c.is_ok()) return corrupt_data("the cluster's policy: " + c.status().message());
  return std::optional<vault::VaultConfig>(*c);
}

}  // namespace fv::cluster
