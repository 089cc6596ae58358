#include "cluster/node.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cluster/shard_map.h"
#include "cluster/stream.h"
#include "vault/audit_checkpoint.h"

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
  FV_ASSIGN_OR_RETURN(node->conn_, NatsConnection::connect({node->options_.servers, node->options_.name}));
  FV_ASSIGN_OR_RETURN(node->config_, read_cluster_config(*node->conn_));
  if (node->options_.meta_only) {
    FV_ASSIGN_OR_RETURN(node->meta_, node->host(-1, kMetaStream, kMetaPrefix, node->options_.dir / "meta", master));
    return node;
  }
  FV_RETURN_IF_ERROR(register_member(*node->conn_, {node->options_.name, node->options_.http, ""}));
  FV_ASSIGN_OR_RETURN(const auto members, read_members(*node->conn_));
  std::vector<std::string> names;
  for (const auto& m : members) names.push_back(m.name);
  // The bucket's key listing may lag a put of a moment ago (it reads through a consumer that
  // can sit on a follower): this node is a member whatever the listing says.
  if (std::find(names.begin(), names.end(), node->options_.name) == names.end()) names.push_back(node->options_.name);
  std::error_code ec;
  std::filesystem::create_directories(node->options_.dir / "shards", ec);
  if (ec) return io_error("cannot create " + (node->options_.dir / "shards").string() + ": " + ec.message());
  FV_ASSIGN_OR_RETURN(node->meta_, node->host(-1, kMetaStream, kMetaPrefix, node->options_.dir / "meta", master));
  for (int s = 0; s < node->config_.shards; ++s) {
    const auto holders = replicas_of(s, names, node->config_.replicas);
    if (std::find(holders.begin(), holders.end(), node->options_.name) == holders.end()) continue;
    FV_ASSIGN_OR_RETURN(auto h, node->host(s, shard_stream_name(s), shard_subject_prefix(s),
                                           node->options_.dir / "shards" / two_digits(s), master));
    node->shards_.emplace(s, std::move(h));
  }
  FV_RETURN_IF_ERROR(node->sweep_at_start());
  return node;
}

Status ClusterNode::sweep_at_start() {
  // The sweep is right on any applied prefix (a subject row goes only with its erasure);
  // catching up first finds the erasures this node missed while it was down, too. One
  // deadline for all: the shards apply in parallel, each on its own thread.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.start_catch_up_ms);
  for (auto& [s, h] : shards_) {
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
  for (auto& [s, h] : shards_) {
    FV_ASSIGN_OR_RETURN(const int n, h->writer->sweep_pending_erasures());
    erased += n;
  }
  return erased;
}

Result<std::unique_ptr<HostedStream>> ClusterNode::host(int shard, const std::string& stream, const std::string& prefix,
                                                        const std::filesystem::path& dir,
                                                        const vault::SecretKey& master) {
  auto h = std::make_unique<HostedStream>();
  h->shard = shard;
  h->stream = stream;
  h->subject_prefix = prefix;
  h->dir = dir;
  if (!std::filesystem::exists(dir / "vault.db")) FV_RETURN_IF_ERROR(vault::Vault::init(dir, options_.vault_config));
  FV_ASSIGN_OR_RETURN(h->vault, vault::Vault::open(dir));
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
  for (auto& [s, h] : shards_) release(*h);
  if (meta_) release(*meta_);
}

std::vector<int> ClusterNode::hosted_shards() const {
  std::vector<int> out;
  for (const auto& [s, h] : shards_) out.push_back(s);
  return out;
}

HostedStream* ClusterNode::shard(int s) {
  auto it = shards_.find(s);
  return it == shards_.end() ? nullptr : it->second.get();
}

Status ClusterNode::catch_up(int timeout_ms) {
  FV_RETURN_IF_ERROR(meta_->replica->catch_up(timeout_ms));
  for (auto& [s, h] : shards_) FV_RETURN_IF_ERROR(h->replica->catch_up(timeout_ms));
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
  for (auto& [s, h] : shards_) FV_RETURN_IF_ERROR(row(*h));
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
