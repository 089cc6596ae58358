// facevault cluster init|status: create a cluster's shape on NATS JetStream (shard streams,
// the meta stream, the KV bucket with the configuration) and show its state (docs/cluster.md).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/cluster_client.h"
#include "cli/commands.h"
#include "cli/grammar.h"
#include "cluster/cluster_config.h"
#include "cluster/cluster_policy.h"
#include "cluster/cluster_status.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "service/cluster_service.h"
#include "vault/crypto.h"

using nlohmann::json;

namespace fv::cli {
namespace {

int report(const Status& st) {
  std::fprintf(stderr, "facevault: %s\n", st.to_string().c_str());
  return kExitFailure;
}

std::string status_text(const json& s) {
  std::ostringstream out;
  out << "cluster: " << s.value("shards", 0) << " shards, " << s.value("replicas", 0) << " replicas, created "
      << s.value("created_at", "") << "\nmembers:";
  for (const auto& m : s["members"]) out << " " << m.value("name", "") << (m.value("http", "").empty() ? "" : " (" + m.value("http", "") + ")");
  out << "\n";
  for (const auto& r : s["streams"]) {
    out << "  " << r.value("stream", "") << "  last " << r.value("last_seq", uint64_t{0}) << "  ";
    if (r["replicas"].empty()) out << "no replica heard";
    for (const auto& [node, p] : r["replicas"].items()) out << node << "@" << p.value("applied_seq", uint64_t{0}) << " (lag " << p.value("lag", int64_t{0}) << ") ";
    out << "\n";
  }
  out << "max lag: " << s.value("max_lag", int64_t{0}) << "\n";
  return out.str();
}

}  // namespace

void add_cluster_commands(CLI::App& app, int& exit_code) {
  auto* cluster = app.add_subcommand("cluster", "cluster mode on NATS JetStream: create the cluster, show its state (docs/cluster.md)");
  cluster->require_subcommand(1);
  set_examples(cluster, {"facevault cluster init --nats nats://127.0.0.1:4222 --shards 16 --replicas 1",
                         "facevault cluster status --nats nats://127.0.0.1:4222"});

  struct Init { std::string nats, config; int shards = cluster::kDefaultShards; int replicas = 3; bool json = false; };
  auto in = std::make_shared<Init>();
  auto* init = cluster->add_subcommand("init", "create the cluster's streams (one per shard and the meta stream) and its configuration");
  init->add_option("--nats", in->nats, "NATS servers, comma-separated (nats://HOST:PORT,…)")->required();
  init->add_option("--shards", in->shards, "shards, fixed for the cluster's life (default 16)")->check(CLI::Range(1, cluster::kMaxShards));
  init->add_option("--replicas", in->replicas, "replicas of every stream (default 3; at most the NATS servers)")->check(CLI::Range(1, 5));
  init->add_option("--config", in->config,
                   "a config.json whose policy every node's vaults follow (retention, operating points, models, "
                   "index, oversight; default: the defaults of `facevault init`)")
      ->check(CLI::ExistingFile);
  init->add_flag("--json", in->json, "print the configuration as JSON");
  set_examples(init, {"facevault cluster init --nats nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"});
  init->callback([in, &exit_code] {
    auto conn = cluster::NatsConnection::connect({split_urls(in->nats), "facevault-cli"});
    if (!conn.is_ok()) { exit_code = report(conn.status()); return; }
    vault::VaultConfig policy;
    if (!in->config.empty()) {
      std::ifstream file(in->config);
      const json j = json::parse(file, nullptr, false);
      if (j.is_discarded()) { exit_code = report(invalid_argument(in->config + " is not JSON")); return; }
      auto parsed = vault::VaultConfig::from_json(j);
      if (!parsed.is_ok()) { exit_code = report(parsed.status()); return; }
      policy = *parsed;
    }
    auto c = cluster::init_cluster(**conn, in->shards, in->replicas);
    if (!c.is_ok()) { exit_code = report(c.status()); return; }
    if (Status st = cluster::set_cluster_policy(**conn, policy); !st.is_ok()) { exit_code = report(st); return; }
    if (in->json) std::cout << json{{"shards", c->shards}, {"replicas", c->replicas}, {"created_at", c->created_at}}.dump() << "\n";
    else std::cout << "cluster ready: " << c->shards << " shards, " << c->replicas << " replicas (created " << c->created_at << ")\n";
    exit_code = kExitOk;
  });

  struct Stat { std::string nats; int listen_ms = 1500; bool json = false; };
  auto st = std::make_shared<Stat>();
  auto* status = cluster->add_subcommand("status", "the configuration, the members, and per stream the replicas' applied sequence and lag");
  status->add_option("--nats", st->nats, "NATS servers, comma-separated")->required();
  status->add_option("--listen-ms", st->listen_ms, "how long to listen for the replicas' announcements (default 1500)")->check(CLI::Range(100, 60000));
  status->add_flag("--json", st->json, "print JSON");
  set_examples(status, {"facevault cluster status --nats nats://127.0.0.1:4222 --json"});
  status->callback([st, &exit_code] {
    auto conn = cluster::NatsConnection::connect({split_urls(st->nats), "facevault-cli"});
    if (!conn.is_ok()) { exit_code = report(conn.status()); return; }
    auto s = cluster::cluster_status(**conn, st->listen_ms);
    if (!s.is_ok()) { exit_code = report(s.status()); return; }
    std::cout << (st->json ? s->dump() + "\n" : status_text(*s));
    exit_code = kExitOk;
  });

  // A node lost for good leaves the member list; the others then host its shards
  // (ClusterNode::rebalance). A node still announcing is refused: stop it first.
  struct Leave { std::string nats, node; int listen_ms = 2500; bool json = false; };
  auto lv = std::make_shared<Leave>();
  auto* leave = cluster->add_subcommand("leave", "remove a node lost for good from the members: the others take over its "
                                                 "shards from the streams (the node must be stopped)");
  leave->add_option("--nats", lv->nats, "NATS servers, comma-separated")->required();
  leave->add_option("--node", lv->node, "the node's name")->required();
  leave->add_option("--listen-ms", lv->listen_ms, "how long to listen for the node's announcements first (default 2500)")
      ->check(CLI::Range(100, 60000));
  leave->add_flag("--json", lv->json, "print the members left as JSON");
  set_examples(leave, {"facevault cluster leave --nats nats://127.0.0.1:4222 --node n3"});
  leave->callback([lv, &exit_code] {
    auto conn = cluster::NatsConnection::connect({split_urls(lv->nats), "facevault-cli"});
    if (!conn.is_ok()) { exit_code = report(conn.status()); return; }
    auto s = cluster::cluster_status(**conn, lv->listen_ms);
    if (!s.is_ok()) { exit_code = report(s.status()); return; }
    for (const auto& row : (*s)["streams"])
      if (row.contains("replicas") && row["replicas"].contains(lv->node)) {
        exit_code = report(failed_precondition("node " + lv->node + " is running (it announced what it applied of " +
                                               row.value("stream", std::string()) + "): stop it before it leaves"));
        return;
      }
    if (Status st = cluster::remove_member(**conn, lv->node); !st.is_ok()) { exit_code = report(st); return; }
    auto members = cluster::read_members(**conn);
    if (!members.is_ok()) { exit_code = report(members.status()); return; }
    json names = json::array();
    for (const auto& m : *members)
      if (m.name != lv->node) names.push_back(m.name);
    if (lv->json) std::cout << json{{"left", lv->node}, {"members", names}}.dump() << "\n";
    else std::cout << lv->node << " left the cluster; members: " << names.dump() << "\n";
    exit_code = kExitOk;
  });

  // API keys are cluster-wide (the meta stream). The first admin key cannot come through the
  // HTTP API (that needs a key): this command writes it as a client node would, from a
  // temporary copy of the meta vault that it deletes afterwards.
  struct Key { std::string nats, role, label, actor = "cluster-admin"; std::vector<std::string> purposes; bool json = false; };
  auto k = std::make_shared<Key>();
  auto* key = cluster->add_subcommand("key", "API keys of the cluster (held in its meta stream)");
  key->require_subcommand(1);
  set_examples(key, {"facevault cluster key create --nats nats://127.0.0.1:4222 --role admin --label ops"});
  auto* create = key->add_subcommand("create", "create an API key valid on every node (needs FACEVAULT_MASTER_KEY and "
                                                "FACEVAULT_AUDIT_SIGNING_KEY, as a node does, and running nodes)");
  create->add_option("--nats", k->nats, "NATS servers, comma-separated")->required();
  create->add_option("--role", k->role, "admin, enroller, investigator, reviewer or auditor")->required();
  create->add_option("--purpose", k->purposes, "a purpose this key may search for (repeat for several)");
  create->add_option("--label", k->label, "who holds the key (free text)");
  create->add_option("--actor", k->actor, "who creates it, recorded in the audit log (default cluster-admin)");
  create->add_flag("--json", k->json, "the key's record and the key as JSON");
  set_examples(create, {"facevault cluster key create --nats nats://127.0.0.1:4222 --role admin --label ops"});
  create->callback([k, &exit_code] {
    const auto role = service::parse_role(k->role);
    if (!role) { exit_code = report(invalid_argument("unknown role '" + k->role + "'")); return; }
    // A temporary client node (cli/cluster_client.h): its copy of the meta vault is
    // overwritten and removed when it closes.
    auto client = ClusterClient::open(k->nats);
    if (!client.is_ok()) { exit_code = report(client.status()); return; }
    {
      auto* svc = &(*client)->service();
      auto made = svc->create_api_key({k->actor, service::Role::kAdmin}, *role, k->purposes, k->label);
      if (!made.is_ok()) { exit_code = report(made.status()); return; }
      if (k->json) {
        json j = made->key.to_json();
        j["key"] = made->secret;
        std::cout << j.dump() << "\n";
      } else {
        std::cout << made->secret << "\n";
      }
    }
    exit_code = kExitOk;
  });
}

}  // namespace fv::cli
