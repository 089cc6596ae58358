// A facevault node of a cluster (docs/cluster.md): its connection to NATS, the shards it
// hosts, and for each of them the local vault (DIR/shards/NN), the replica applying the
// shard's stream into it and the writer that replicates the transactions of that vault. The
// meta stream (cluster-wide data) is hosted by every node, in DIR/meta.
//
// Which shards a node hosts follows from the members registered in the cluster's KV bucket
// (replicas_of, rendezvous hashing). At start it hosts the shards assigned to it; rebalance()
// (run by the cluster facade every few seconds) hosts those assigned to it since, when a member
// left (`cluster leave`), and releases its surplus shards: local vaults an earlier hosting left
// in DIR/shards, applied meanwhile so that nothing erased stays, and overwritten and removed
// once the shard's assigned replicas all applied what its stream holds. A shard assigned to
// another node since this one started (a member joined) stays hosted here until it restarts.
//
// At start, once its shards caught up, a node completes the stream erasures that a previous
// run (its own or another node's) left undone (ShardWriter::sweep_pending_erasures).
//
// A meta-only node (NodeOptions::meta_only) is a client, not a member: it hosts the meta stream
// alone, for CLI commands that write cluster-wide data (an API key, say) from a temporary
// directory. It is not registered, hosts no shard, and does not announce what it applied, so
// its writes are acknowledged once min(2, replicas) members applied them.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/applied_watch.h"
#include "cluster/cluster_config.h"
#include "cluster/nats_connection.h"
#include "cluster/shard_replica.h"
#include "cluster/shard_writer.h"
#include "vault/vault.h"

namespace fv::cluster {

struct NodeOptions {
  std::vector<std::string> servers;  // nats://HOST:PORT of the NATS cluster
  std::string name;                  // this node's name (unique in the cluster)
  std::filesystem::path dir;         // where the node keeps its local vaults
  std::string http;                  // the node's HTTP base URL, registered for others to see
  // For local vaults created on first start; the cluster's policy (cluster_policy.h) replaces
  // all but the node's own settings (key sources, search threads).
  vault::VaultConfig vault_config;
  int write_timeout_ms = 30000;
  // How long start() waits for the hosted shards to catch up before it completes the pending
  // erasures (a shard that did not catch up in time is swept as far as it applied).
  int start_catch_up_ms = 30000;
  // A client hosting only the meta stream (DIR/meta): no member, no shard (above).
  bool meta_only = false;
};

// One hosted stream: a shard's, or the meta stream (shard == -1).
struct HostedStream {
  int shard = -1;
  std::string stream, subject_prefix;
  std::filesystem::path dir;
  std::unique_ptr<vault::Vault> vault;  // the writer's vault: its transactions are replicated
  std::unique_ptr<ShardReplica> replica;
  std::unique_ptr<AppliedWatch> watch;
  std::shared_ptr<ShardWriter> writer;
  int swept_at_start = 0;  // messages of erased subjects that start() found erased (sweep)
};

class ClusterNode {
 public:
  // Needs the cluster master key and audit signing key in the environment
  // (FACEVAULT_MASTER_KEY, FACEVAULT_AUDIT_SIGNING_KEY): every replica of a shard must open
  // the same sealed rows and verify the same signed checkpoints. Connects, reads the
  // cluster's configuration, registers the node, opens (or creates) its local vaults and
  // starts applying every hosted stream; then completes the pending erasures of its shards
  // (an error when one cannot be completed: the node would keep a subject in the stream).
  static Result<std::unique_ptr<ClusterNode>> start(NodeOptions options);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  const ClusterConfig& config() const { return config_; }
  const std::string& name() const { return options_.name; }
  bool meta_only() const { return options_.meta_only; }
  NatsConnection& connection() { return *conn_; }
  // The hosted shards, ascending (surplus ones aside). Safe while rebalance() runs.
  std::vector<int> hosted_shards() const;
  // nullptr when this node does not host the shard (a surplus shard included). A hosted
  // stream stays valid until the node is destroyed.
  HostedStream* shard(int s);
  HostedStream& meta() { return *meta_; }

  // What rebalance() changed: shards hosted since (applying their streams from where their
  // local vault was), surplus shards released (their folders erased), and the surplus shards
  // still kept because their assigned replicas have not all applied their stream yet.
  struct HostingChange {
    std::vector<int> gained, released, surplus;
  };
  // Not thread-safe against itself: one caller (the facade's rebalancing thread).
  Result<HostingChange> rebalance();
  std::vector<int> surplus_shards() const;

  // Waits until every hosted stream has applied what its stream holds now.
  Status catch_up(int timeout_ms);
  // Per stream: its last sequence, what this node applied, the lag; the members.
  Result<nlohmann::json> status();
  // For each hosted shard: the sweep of start() (ShardWriter::sweep_pending_erasures), again.
  // Returns how many messages it found erased.
  Result<int> sweep_pending_erasures();

 private:
  explicit ClusterNode(NodeOptions options) : options_(std::move(options)) {}
  Status sweep_at_start();
  Result<std::unique_ptr<HostedStream>> host(int shard, const std::string& stream, const std::string& prefix,
                                             const std::filesystem::path& dir);
  Result<std::unique_ptr<HostedStream>> host_shard(int s);
  std::filesystem::path shard_dir(int s) const;
  // The members' names, this node's among them whatever the (possibly lagging) listing says.
  Result<std::vector<std::string>> member_names();
  // Whether every replica `names` assign to shard s (this node aside) announced its stream's
  // last sequence.
  Result<bool> assigned_replicas_caught_up(int s, const HostedStream& h, const std::vector<std::string>& names);

  NodeOptions options_;
  ClusterConfig config_;
  std::optional<vault::VaultConfig> policy_;  // the cluster's (cluster_policy.h); none in older clusters
  vault::SecretKey master_;
  std::unique_ptr<NatsConnection> conn_;
  // Hosted shards by number: owned_ holds them, hosted_ publishes them to readers on other
  // threads (set once, never cleared while the node lives).
  std::vector<std::unique_ptr<HostedStream>> owned_;
  std::unique_ptr<std::atomic<HostedStream*>[]> hosted_;
  std::map<int, std::unique_ptr<HostedStream>> surplus_;
  // rebalance(): the members as last read, and the sequence of the bucket's stream then.
  std::vector<std::string> member_cache_;
  uint64_t members_seq_ = 0;
  std::chrono::steady_clock::time_point members_read_at_{};
  mutable std::mutex surplus_mu_;  // surplus_ (status() reads it from other threads)
  std::unique_ptr<HostedStream> meta_;
};

}  // namespace fv::cluster
