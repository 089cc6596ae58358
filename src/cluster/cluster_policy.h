// One policy for the whole cluster: the settings of config.json that decide what the vault
// does (retention, operating points, models, the index, human oversight, erasure), kept in
// the cluster's KV bucket (`fv-cluster`, key `policy`) by `cluster init`. Every node creates
// its local vaults with it and refuses to start when one of them says otherwise, so a use
// case forwarded to any replica decides as it would on the node that took the request.
// What stays each node's own: where its keys come from and how many threads a search uses.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/nats_connection.h"
#include "common/status.h"
#include "vault/vault.h"

namespace fv::cluster {

// The policy part of a vault configuration (VaultConfig::to_json without the node's own
// settings: master_key, audit_signing_key, index.search_threads).
nlohmann::json policy_of(const vault::VaultConfig& c);

// Stores the cluster's policy, once: the same policy again is fine; another is
// kAlreadyExists naming the first setting that differs.
Status set_cluster_policy(NatsConnection& conn, const vault::VaultConfig& policy);
// The cluster's policy; nullopt for a cluster initialised before policies were kept.
Result<std::optional<vault::VaultConfig>> read_cluster_policy(NatsConnection& conn);

// `local` with the policy's settings and its own node settings: what a node creates a local
// vault with.
vault::VaultConfig with_policy(const vault::VaultConfig& local, const vault::VaultConfig& policy);
// The first setting (a JSON pointer, "/oversight/reviewers_required") where `c`'s policy
// differs from `policy`, with both values; nullopt when they agree.
std::optional<std::string> policy_difference(const vault::VaultConfig& c, const vault::VaultConfig& policy);

}  // namespace fv::cluster
