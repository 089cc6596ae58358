// ClusterService: which shards this node serves. At open, those its node hosts; then, every
// rebalance_ms, those the node hosts since (ClusterNode::rebalance: a member left), each once
// its replica applied what its stream holds. Serving a shard is its Service here and its two
// queue-group RPC servers (searches, forwarded calls) for the other nodes.
#include <cstdio>

#include "cluster/rpc.h"
#include "service/cluster_service.h"

namespace fv::service {

Status ClusterService::serve_shard(int s) {
  cluster::HostedStream* h = node_.shard(s);
  if (!h) return internal_error("shard " + std::to_string(s) + " is not hosted on node " + node_.name());
  std::lock_guard<std::mutex> l(hosting_mu_);
  if (!shard_service(s)) {
    ServiceOptions so = shard_options_;
    so.commit_interceptor = h->writer;
    so.catch_up = [h, ms = copt_.catch_up_ms] { return h->replica->catch_up(ms); };
    FV_ASSIGN_OR_RETURN(auto svc, Service::open(h->dir, so));
    serving_[s].store(svc.get());
    owned_shards_[static_cast<size_t>(s)] = std::move(svc);
    // A deletion of templates applied here, whichever node wrote it (an erasure, a withdrawal,
    // a retention run), takes the shard's decrypted templates out of this node's memory soon
    // after, not at its next search.
    const int listener = h->replica->add_on_applied([ev = evictor_.get(), s](const cluster::AppliedMessage& m) {
      if (!m.summary.face_ids_deleted.empty() || !m.summary.subject_ids_deleted.empty()) ev->request(s);
    });
    listeners_.emplace_back(h->replica.get(), listener);
  }
  if (answering_[static_cast<size_t>(s)]) return Status::ok();
  // Searches and calls from nodes that do not host the shard reach it here: one queue group
  // per shard, so one of its live replicas answers each request. Opened after the service, so
  // that no request finds the shard unserved; a failure here is tried again at the next round.
  char queue[16];
  std::snprintf(queue, sizeof queue, "fv-shard-%02d", s);
  auto* self = this;
  FV_ASSIGN_OR_RETURN(auto server, cluster::RpcServer::open(node_.connection(), master_, cluster::shard_rpc_subject(s, "search"), queue,
                                                           [self, s](std::span<const uint8_t> req) {
                                                             return self->serve_shard_search(s, req);
                                                           }));
  FV_ASSIGN_OR_RETURN(auto calls, cluster::RpcServer::open(node_.connection(), master_, cluster::shard_rpc_subject(s, "call"), queue,
                                                          [self, s](std::span<const uint8_t> req) {
                                                            return self->serve_shard_call(s, req);
                                                          }));
  shard_servers_.push_back(std::move(server));
  shard_servers_.push_back(std::move(calls));
  answering_[static_cast<size_t>(s)] = 1;
  return Status::ok();
}

Result<cluster::ClusterNode::HostingChange> ClusterService::rebalance() {
  std::lock_guard<std::mutex> one_at_a_time(rebalance_call_mu_);  // the thread, or a caller
  FV_ASSIGN_OR_RETURN(auto change, node_.rebalance());
  // A shard hosted here but not served yet (gained now or earlier) is served once its replica
  // applied what its stream holds: until then other nodes' replicas answer for it.
  for (int s : node_.hosted_shards()) {
    bool whole;
    {
      std::lock_guard<std::mutex> l(hosting_mu_);
      whole = answering_[static_cast<size_t>(s)];
    }
    if (whole) continue;
    if (!shard_service(s) && !node_.shard(s)->replica->catch_up(100).is_ok()) continue;
    FV_RETURN_IF_ERROR(serve_shard(s));
  }
  return change;
}

void ClusterService::rebalance_loop() {
  std::unique_lock<std::mutex> l(rebalance_mu_);
  while (!rebalance_cv_.wait_for(l, std::chrono::milliseconds(copt_.rebalance_ms), [this] { return stopping_; })) {
    l.unlock();
    auto change = rebalance();  // what fails is tried again at the next round
    if (!change.is_ok())
      std::fprintf(stderr, "facevault: node %s: rebalancing: %s\n", node_.name().c_str(), change.status().message().c_str());
    l.lock();
  }
}

}  // namespace fv::service
