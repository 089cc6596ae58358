// The cluster's shape, kept in the JetStream KV bucket `fv-cluster` (docs/cluster.md): the
// shard count and replica count fixed at `cluster init`, and the member nodes. Every node
// reads it at start; nothing in it is secret (keys never go to NATS).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/kv.h"
#include "cluster/nats_connection.h"
#include "common/status.h"

namespace fv::cluster {

inline constexpr const char* kClusterBucket = "fv-cluster";
inline constexpr int kDefaultShards = 16;
inline constexpr int kMaxShards = 1024;

struct ClusterConfig {
  int shards = kDefaultShards;
  int replicas = 3;
  std::string created_at;
};

struct Member {
  std::string name;
  std::string http;  // the node's HTTP base URL, when it serves one
  std::string joined_at;
};

// The reference directory: a keyed hash of each subject reference → the subject's uid.
inline constexpr const char* kRefsBucket = "fv-refs";

// The stream of cluster-wide data (API keys, opt-outs, the audit of searches, review cases).
inline constexpr const char* kMetaStream = "fv-meta";
inline constexpr const char* kMetaPrefix = "fv.meta";

// Creates the bucket, the configuration (once: kAlreadyExists when the cluster exists with
// another shape; the same shape again is fine), one stream per shard and the meta stream, each
// with `replicas` replicas. kFailedPrecondition when NATS cannot place that many replicas.
Result<ClusterConfig> init_cluster(NatsConnection& conn, int shards, int replicas);
// The configuration; kFailedPrecondition when the cluster was never initialised.
Result<ClusterConfig> read_cluster_config(NatsConnection& conn);

// Registers (or refreshes) a member; names: letters, digits, '-' and '_'.
Status register_member(NatsConnection& conn, const Member& m);
Result<std::vector<Member>> read_members(NatsConnection& conn);  // sorted by name
// Removes a member: the operator's word that the node is gone for good. The others then host
// the shards it held (ClusterNode::rebalance). kNotFound when no member has that name.
Status remove_member(NatsConnection& conn, const std::string& name);

bool valid_node_name(const std::string& name);

}  // namespace fv::cluster
