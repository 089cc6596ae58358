// A cluster as one CLI command sees it: a client node hosting only the meta stream (no
// member, no shard: cluster::NodeOptions::meta_only) in a temporary folder, and the cluster
// facade over it, so the command runs every use case as a node would (those on shards go to
// their replicas over NATS). The folder (a copy of the meta vault: key hashes, sealed review
// crops, the audit) is overwritten and removed when the client closes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cluster/node.h"
#include "common/status.h"
#include "service/cluster_service.h"

namespace fv::cli {

class ClusterClient {
 public:
  // `nats`: the NATS servers, comma-separated. Needs FACEVAULT_MASTER_KEY and
  // FACEVAULT_AUDIT_SIGNING_KEY (as every node) and running member nodes: a write is
  // acknowledged once two replicas applied it.
  static Result<std::unique_ptr<ClusterClient>> open(const std::string& nats, service::ServiceOptions options = {});
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  service::ClusterService& service() { return *service_; }

 private:
  ClusterClient() = default;
  std::filesystem::path dir_;
  std::unique_ptr<cluster::ClusterNode> node_;
  std::unique_ptr<service::ClusterService> service_;
};

// "nats://a:4222,nats://b:4222" → its URLs (empty items dropped).
std::vector<std::string> split_urls(const std::string& urls);

}  // namespace fv::cli
