#include "cluster/cluster_config.h"

#include <algorithm>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "cluster/shard_map.h"
#include "cluster/stream.h"
#include "vault/timeutil.h"

using nlohmann::json;

namespace fv::cluster {
namespace {

constexpr const char* kConfigKey = "config";
constexpr const char* kMemberPrefix = "member.";

std::string config_json(const ClusterConfig& c) {
  return json{{"format", 1}, {"shards", c.shards}, {"replicas", c.replicas}, {"created_at", c.created_at}}.dump();
}

// A field of the given JSON type, or the fallback (json::value throws on a wrong type, and the
// bucket's contents are input like any other).
template <class T>
T field(const json& j, const char* key, T fallback) {
  if (!j.is_object() || !j.contains(key)) return fallback;
  const json& v = j[key];
  if constexpr (std::is_same_v<T, std::string>) {
    return v.is_string() ? v.get<std::string>() : fallback;
  } else {
    return v.is_number_integer() ? v.get<T>() : fallback;
  }
}

Result<ClusterConfig> parse_config(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || field(j, "format", 0) != 1)
    return corrupt_data("the cluster configuration in " + std::string(kClusterBucket) + " is not one this version reads");
  ClusterConfig c;
  c.shards = field(j, "shards", 0);
  c.replicas = field(j, "replicas", 0);
  c.created_at = field(j, "created_at", std::string());
  if (c.shards < 1 || c.shards > kMaxShards || c.replicas < 1)
    return corrupt_data("the cluster configuration names " + std::to_string(c.shards) + " shards and " +
                        std::to_string(c.replicas) + " replicas");
  return c;
}

Status ensure_streams(NatsConnection& conn, const ClusterConfig& c) {
  for (int s = 0; s < c.shards; ++s)
    FV_RETURN_IF_ERROR(ensure_stream(conn, {shard_stream_name(s), {shard_subject_prefix(s) + ".>"}, c.replicas}));
  return ensure_stream(conn, {kMetaStream, {std::string(kMetaPrefix) + ".>"}, c.replicas});
}

// The bucket of an initialised cluster; reading never creates it (init does, with its replicas).
Result<KvBucket> open_bucket(NatsConnection& conn) {
  auto kv = KvBucket::open(conn, kClusterBucket);
  if (!kv.is_ok() && kv.status().code() == StatusCode::kNotFound)
    return failed_precondition("no facevault cluster on these NATS servers: run `facevault cluster init` first");
  return kv;
}

}  // namespace

bool valid_node_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
  });
}

Result<ClusterConfig> init_cluster(NatsConnection& conn, int shards, int replicas) {
  if (shards < 1 || shards > kMaxShards)
    return invalid_argument("shards must be between 1 and " + std::to_string(kMaxShards));
  if (replicas < 1 || replicas > 5) return invalid_argument("replicas must be between 1 and 5");
  FV_ASSIGN_OR_RETURN(auto kv, KvBucket::open_or_create(conn, kClusterBucket, replicas));
  ClusterConfig want{shards, replicas, vault::utc_now()};
  auto created = kv.create(kConfigKey, config_json(want));
  if (!created.is_ok() && created.status().code() != StatusCode::kAlreadyExists) return created.status();
  FV_ASSIGN_OR_RETURN(auto stored, kv.get(kConfigKey));
  if (!stored) return internal_error("the cluster configuration vanished right after it was written");
  FV_ASSIGN_OR_RETURN(ClusterConfig have, parse_config(*stored));
  if (have.shards != shards || have.replicas != replicas)
    return already_exists("the cluster exists with " + std::to_string(have.shards) + " shards and " +
                          std::to_string(have.replicas) + " replicas (created " + have.created_at +
                          "); its shape is fixed for its life");
  FV_RETURN_IF_ERROR(ensure_streams(conn, have));
  // The reference directory of the cluster facade (service/cluster_service.h), created here so
  // that nodes starting together only open it.
  FV_RETURN_IF_ERROR(KvBucket::open_or_create(conn, kRefsBucket, have.replicas).status());
  return have;
}

Result<ClusterConfig> read_cluster_config(NatsConnection& conn) {
  FV_ASSIGN_OR_RETURN(auto kv, open_bucket(conn));
  FV_ASSIGN_OR_RETURN(auto stored, kv.get(kConfigKey));
  if (!stored) return failed_precondition("no facevault cluster on these NATS servers: run `facevault cluster init` first");
  return parse_config(*stored);
}

Status register_member(NatsConnection& conn, const Member& m) {
  if (!valid_node_name(m.name))
    return invalid_argument("node name '" + m.name + "': use 1-64 letters, digits, '-' or '_'");
  FV_ASSIGN_OR_RETURN(auto kv, open_bucket(conn));
  FV_ASSIGN_OR_RETURN(auto old, kv.get(kMemberPrefix + m.name));
  json j{{"name", m.name}, {"http", m.http}, {"joined_at", m.joined_at.empty() ? vault::utc_now() : m.joined_at}};
  if (old) {
    const json prev = json::parse(*old, nullptr, false);
    if (!prev.is_discarded()) {
      const std::string joined = field(prev, "joined_at", std::string());
      if (!joined.empty()) j["joined_at"] = joined;
    }
  }
  FV_ASSIGN_OR_RETURN(const uint64_t rev, kv.put(kMemberPrefix + m.name, j.dump()));
  (void)rev;
  return Status::ok();
}

Status remove_member(NatsConnection& conn, const std::string& name) {
  if (!valid_node_name(name)) return invalid_argument("node name '" + name + "': use 1-64 letters, digits, '-' or '_'");
  FV_ASSIGN_OR_RETURN(auto kv, open_bucket(conn));
  FV_ASSIGN_OR_RETURN(auto old, kv.get(kMemberPrefix + name));
  if (!old) return not_found("no member named '" + name + "'");
  return kv.purge(kMemberPrefix + name);
}

Result<std::vector<Member>> read_members(NatsConnection& conn) {
  FV_ASSIGN_OR_RETURN(auto kv, open_bucket(conn));
  FV_ASSIGN_OR_RETURN(auto keys, kv.keys());
  std::vector<Member> out;
  for (const auto& k : keys) {
    if (k.rfind(kMemberPrefix, 0) != 0) continue;
    FV_ASSIGN_OR_RETURN(auto v, kv.get(k));
    if (!v) continue;
    const json j = json::parse(*v, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    out.push_back({field(j, "name", std::string()), field(j, "http", std::string()), field(j, "joined_at", std::string())});
  }
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) { return a.name < b.name; });
  return out;
}

}  // namespace fv::cluster
