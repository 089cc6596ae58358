#include "cli/cluster_client.h"

#include <sstream>

#include "vault/crypto.h"
#include "vault/folder_erase.h"

namespace fs = std::filesystem;

namespace fv::cli {

std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> out;
  std::stringstream ss(urls);
  for (std::string u; std::getline(ss, u, ',');)
    if (!u.empty()) out.push_back(u);
  return out;
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::open(const std::string& nats, service::ServiceOptions options) {
  std::unique_ptr<ClusterClient> c(new ClusterClient());
  c->dir_ = fs::temp_directory_path() / ("facevault-cluster-client-" + vault::random_hex(6));
  cluster::NodeOptions no;
  no.servers = split_urls(nats);
  if (no.servers.empty()) return invalid_argument("--cluster needs the NATS servers (nats://HOST:PORT[,…])");
  no.name = "cli-" + vault::random_hex(4);
  no.dir = c->dir_;
  no.meta_only = true;
  FV_ASSIGN_OR_RETURN(c->node_, cluster::ClusterNode::start(no));
  FV_ASSIGN_OR_RETURN(c->service_, service::ClusterService::open(*c->node_, options));
  return c;
}

ClusterClient::~ClusterClient() {
  service_.reset();  // before the node whose writers it holds
  node_.reset();
  if (!dir_.empty()) (void)vault::erase_folder(dir_);  // best effort: a destructor reports nothing
}

}  // namespace fv::cli
