#include "cluster/node.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cluster/cluster_policy.h"
#include "cluster/shard_map.h"
#include "cluster/stream.h"
#include "vault/audit_checkpoint.h"
#include "vault/folder_erase.h"

using nlohmann::json;

namespace fv::cluster {
namespace {

std::string two_digits(int s) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", s);
  return buf;
}

void release(HostedStream& h) {
  // The writer goes first: no transaction may be handed to a replica that is stopping.
  if (h.vault) h.vault->set_commit_interceptor(nullptr);
  h.writer.reset();
  if (h.replica) h.replica->stop();
  h.replica.reset();
  h.watch.reset();
  h.vault.reset();
}

}  // namespace

Result<std::unique_ptr<ClusterNode>> ClusterNode::start(NodeOptions options) {
  if (!valid_node_name(options.name))
    return invalid_argument("node name '" + options.name + "': use 1-64 letters, digits, '-' or '_'");
  if (!std::getenv(vault::kMasterKeyEnv) || !std::getenv(vault::kAuditSigningKeyEnv))
    return failed_precondition(std::string("a cluster node needs the cluster's keys in ") + vault::kMasterKeyEnv + " and " +
                               vault::kAuditSigningKeyEnv + " (the same on every node; never in NATS)");
  FV_ASSIGN_OR_RETURN(const auto master, vault::SecretKey::from_hex(std::getenv(vault::kMasterKeyEnv)));
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options)));
  node->master_ = master;
  FV_ASSIGN_OR_RETURN(node->conn_, NatsConnection::connect({node->options_.servers, node->options_.name}));
  FV_ASSIGN_OR_RETURN(node->config_, read_cluster_config(*node->conn_));
  FV_ASSIGN_OR_RETURN(node->policy_, read_cluster_policy(*node->conn_));
  if (node->policy_) node->options_.vault_config = with_policy(node->options_.vault_config, *node->policy_);
  const int shards = node->config_.shards;
  node->owned_.resize(static_cast<size_t>(shards));
  node->hosted_ = std::make_unique<std::atomic<HostedStream*>[]>(static_cast<size_t>(shards));
  for (int s = 0; s < shards; ++s) node->hosted_[s].store(nullptr);
  if (node->options_.meta_only) {
    FV_ASSIGN_OR_RETURN(node->meta_, node->host(-1, kMetaStream, kMetaPrefix, node->options_.dir / "meta"));
    return node;
  }
  FV_RETURN_IF_ERROR(register_member(*node->conn_, {node->options_.name, node->options_.http, ""}));
  FV_ASSIGN_OR_RETURN(const auto names, node->member_names());
  std::error_code ec;
  std::filesystem::create_directories(node->options_.dir / "shards", ec);
  if (ec) return io_error("cannot create " + (node->options_.dir / "shards").string() + ": " + ec.message());
  FV_ASSIGN_OR_RETURN(node->meta_, node->host(-1, kMetaStream, kMetaPrefix, node->options_.dir / "meta"));
  for (int s = 0; s < shards; ++s) {
    const auto holders = replicas_of(s, names, node->config_.replicas);
    const bool assigned = std::find(holders.begin(), holders.end(), node->options_.name) != holders.end();
    // A local vault of a shard assigned elsewhere now (a hosting before a member joined) is
    // kept applying its stream until it can be released: an erasure must reach it too.
    if (!assigned && !std::filesystem::exists(node->shard_dir(s) / "vault.db")) continue;
    FV_ASSIGN_OR_RETURN(auto h, node->host_shard(s));
    if (assigned) {
      node->hosted_[s].store(h.get());
      node->owned_[static_cast<size_t>(s)] = std::move(h);
    } else {
      node->surplus_.emplace(s, std::move(h));
    }
  }
  FV_RETURN_IF_ERROR(node->sweep_at_start());
  return node;
}

std::filesystem::path ClusterNode::shard_dir(int s) const { return options_.dir / "shards" / two_digits(s); }

Result<std::unique_ptr<HostedStream>> ClusterNode::host_shard(int s) {
  return host(s, shard_stream_name(s), shard_subject_prefix(s), shard_dir(s));
}

Result<std::vector<std::string>> ClusterNode::member_names() {
  FV_ASSIGN_OR_RETURN(const auto members, read_members(*conn_));
  std::vector<std::string> names;
  for (const auto& m : members) names.push_back(m.name);
  // The bucket's key listing may lag a put of a moment ago (it reads through a consumer that
  // can sit on a follower): this node is a member whatever the listing says.
  if (std::find(names.begin(), names.end(), options_.name) == names.end()) names.push_back(options_.name);
  return names;
}

Result<bool> ClusterNode::assigned_replicas_caught_up(int s, const HostedStream& h, const std::vector<std::string>& names) {
  FV_ASSIGN_OR_RETURN(const uint64_t last, last_sequence(*conn_, h.stream));
  const auto positions = h.watch->positions();
  const auto holders = replicas_of(s, names, config_.replicas);
  if (holders.empty()) return false;
  for (const auto& name : holders) {
    if (name == options_.name) return false;  // assigned here again: not surplus
    auto it = positions.find(name);
    if (it == positions.end() || it->second < last) return false;
  }
  return true;
}

Result<ClusterNode::HostingChange> ClusterNode::rebalance() {
  HostingChange change;
  if (options_.meta_only) return change;
  // The member list is read again when the bucket holding it changed (one stream info
  // request), and at least once a minute since a listing can lag a put: listing its keys makes
  // nats.c create and drop a consumer each time, churn for nothing every few seconds.
  FV_ASSIGN_OR_RETURN(const uint64_t bucket_seq, last_sequence(*conn_, std::string("KV_") + kClusterBucket));
  const auto now = std::chrono::steady_clock::now();
  if (bucket_seq != members_seq_ || member_cache_.empty() || now - members_read_at_ > std::chrono::minutes(1)) {
    FV_ASSIGN_OR_RETURN(member_cache_, member_names());
    members_seq_ = bucket_seq;
    members_read_at_ = now;
  }
  const std::vector<std::string> names = member_cache_;
  for (int s = 0; s < config_.shards; ++s) {
    if (hosted_[s].load()) continue;
    const auto holders = replicas_of(s, names, config_.replicas);
    if (std::find(holders.begin(), holders.end(), options_.name) == holders.end()) continue;
    std::unique_ptr<HostedStream> h;
    {
      // A surplus shard assigned here again goes on from where it applied.
      std::lock_guard<std::mutex> l(surplus_mu_);
      auto it = surplus_.find(s);
      if (it != surplus_.end()) {
        h = std::move(it->second);
        surplus_.erase(it);
      }
    }
    if (!h) {
      FV_ASSIGN_OR_RETURN(h, host_shard(s));
    }
    hosted_[s].store(h.get());
    owned_[static_cast<size_t>(s)] = std::move(h);
    change.gained.push_back(s);
  }
  std::vector<int> surplus = surplus_shards();
  for (int s : surplus) {
    HostedStream* h = nullptr;
    {
      std::lock_guard<std::mutex> l(surplus_mu_);
      h = surplus_.at(s).get();
    }
    auto done = assigned_replicas_caught_up(s, *h, names);
    if (!done.is_ok() || !*done) {
      change.surplus.push_back(s);
      continue;
    }
    std::unique_ptr<HostedStream> gone;
    {
      std::lock_guard<std::mutex> l(surplus_mu_);
      gone = std::move(surplus_.at(s));
      surplus_.erase(s);
    }
    const auto dir = gone->dir;
    release(*gone);
    gone.reset();
    if (Status st = vault::erase_folder(dir); !st.is_ok())
      return Status(st.code(), "node " + options_.name + ": release shard " + std::to_string(s) + ": " + st.message());
    change.released.push_back(s);
  }
  return change;
}

std::vector<int> ClusterNode::surplus_shards() const {
  std::lock_guard<std::mutex> l(surplus_mu_);
  std::vector<int> out;
  for (const auto& [s, h] : surplus_) out.push_back(s);
  return out;
}

Status ClusterNode::sweep_at_start() {
  // The sweep is right on any applied prefix (a subject row goes only with its erasure);
  // catching up first finds the erasures this node missed while it was down, too. One
  // deadline for all: the shards apply in parallel, each on its own thread.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.start_catch_up_ms);
  for (int s : hosted_shards()) {
    HostedStream* h = shard(s);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    // Not caught up in time, or diverged: swept as far as it applied (status() shows the lag).
    (void)h->replica->catch_up(static_cast<int>(std::max<int64_t>(0, left.count())));
    auto n = h->writer->sweep_pending_erasures();
    if (!n.is_ok()) return Status(n.status().code(), "node " + options_.name + ": " + n.status().message());
    h->swept_at_start = *n;
  }
  return Status::ok();
}

Result<int> ClusterNode::sweep_pending_erasures() {
  int erased = 0;
  for (int s : hosted_shards()) {
    FV_ASSIGN_OR_RETURN(const int n, shard(s)->writer->sweep_pending_erasures());
    erased += n;
  }
  return erased;
}

Result<std::unique_ptr<HostedStream>> ClusterNode::host(int shard, const std::string& stream, const std::string& prefix,
                                                        const std::filesystem::path& dir) {
  const vault::SecretKey& master = master_;
  auto h = std::make_unique<HostedStream>();
  h->shard = shard;
  h->stream = stream;
  h->subject_prefix = prefix;
  h->dir = dir;
  if (!std::filesystem::exists(dir / "vault.db")) FV_RETURN_IF_ERROR(vault::Vault::init(dir, options_.vault_config));
  FV_ASSIGN_OR_RETURN(h->vault, vault::Vault::open(dir));
  // Every replica decides as every other: a local vault whose config.json says otherwise than
  // the cluster's policy is not served.
  if (policy_) {
    if (auto diff = policy_difference(h->vault->config(), *policy_))
      return failed_precondition("node " + options_.name + ": " + (dir / "config.json").string() + ": " + *diff +
                                 " (every node's vaults follow the policy set at `cluster init`)");
  }
  ReplicaOptions ro{stream, options_.name};
  ro.announce = !options_.meta_only;
  FV_ASSIGN_OR_RETURN(h->replica, ShardReplica::open(*conn_, dir, master, ro));
  FV_ASSIGN_OR_RETURN(h->watch, AppliedWatch::open(*conn_, stream));
  FV_RETURN_IF_ERROR(h->replica->start());
  // Acknowledged once two replicas applied it (or every replica, when the cluster keeps fewer).
  // From the configuration, never from the member list, which may lag (or hold only this node
  // when it is the first to start). A meta-only node does not announce: members only count.
  const int wait_for = std::min(2, std::max(1, config_.replicas));
  h->writer = std::make_shared<ShardWriter>(*conn_, master, *h->replica, *h->watch,
                                            WriterOptions{stream, prefix, wait_for, options_.write_timeout_ms});
  h->vault->set_commit_interceptor(h->writer);
  return h;
}

ClusterNode::~ClusterNode() {
  for (auto& h : owned_)
    if (h) release(*h);
  for (auto& [s, h] : surplus_) release(*h);
  if (meta_) release(*meta_);
}

std::vector<int> ClusterNode::hosted_shards() const {
  std::vector<int> out;
  for (int s = 0; s < config_.shards; ++s)
    if (hosted_ && hosted_[s].load()) out.push_back(s);
  return out;
}

HostedStream* ClusterNode::shard(int s) {
  if (s < 0 || s >= config_.shards || !hosted_) return nullptr;
  return hosted_[s].load();
}

Status ClusterNode::catch_up(int timeout_ms) {
  FV_RETURN_IF_ERROR(meta_->replica->catch_up(timeout_ms));
  for (int s : hosted_shards()) FV_RETURN_IF_ERROR(shard(s)->replica->catch_up(timeout_ms));
  return Status::ok();
}

Result<json> ClusterNode::status() {
  json streams = json::array();
  auto row = [&](HostedStream& h) -> Status {
    FV_ASSIGN_OR_RETURN(const uint64_t last, last_sequence(*conn_, h.stream));
    const uint64_t applied = h.replica->applied();
    const Status err = h.replica->error();
    json r{{"stream", h.stream},
           {"last_seq", last},
           {"applied_seq", applied},
           {"lag", last > applied ? last - applied : 0},
           {"replicas_heard", h.watch->positions()}};
    if (h.shard >= 0) r["shard"] = h.shard;
    if (!err.is_ok()) r["error"] = err.to_string();
    streams.push_back(std::move(r));
    return Status::ok();
  };
  FV_RETURN_IF_ERROR(row(*meta_));
  for (int s : hosted_shards()) FV_RETURN_IF_ERROR(row(*shard(s)));
  {
    std::lock_guard<std::mutex> l(surplus_mu_);
    for (auto& [s, h] : surplus_) {
      FV_RETURN_IF_ERROR(row(*h));
      streams.back()["surplus"] = true;
    }
  }
  FV_ASSIGN_OR_RETURN(const auto members, read_members(*conn_));
  json m = json::array();
  for (const auto& x : members) m.push_back({{"name", x.name}, {"http", x.http}, {"joined_at", x.joined_at}});
  return json{{"node", options_.name},
              {"meta_only", options_.meta_only},
              {"shards", config_.shards},
              {"replicas", config_.replicas},
              {"created_at", config_.created_at},
              {"members", m},
              {"streams", streams}};
}

}  // namespace fv::cluster
