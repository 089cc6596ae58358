// A cluster's shape and its nodes over real nats-server processes: `cluster init` (the KV
// configuration and the streams), three ClusterNodes hosting every shard and the meta stream,
// a write on one node's shard vault reaching the others, `cluster status` (the library call
// and the CLI) showing each replica's position.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cluster/cluster_config.h"
#include "cluster/cluster_policy.h"
#include "cluster/kv.h"
#include "cluster/cluster_status.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "cluster/shard_map.h"
#include "cluster/shard_replica.h"
#include "cluster/stream.h"
#include "service/service.h"
#include "support/nats_servers.h"
#include "support/run.h"
#include "vault/api_keys.h"
#include "vault/audit_checkpoint.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/testing.h"
#include "vault/timeutil.h"
#include "vault/vault.h"

namespace fv {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kMasterHex(64, '3');

cluster::NodeOptions node_options(const std::vector<std::string>& urls, const std::string& name, const fs::path& dir) {
  cluster::NodeOptions o;
  o.servers = urls;
  o.name = name;
  o.dir = dir;
  return o;
}
const std::string kSigningHex(64, '9');
constexpr int kShards = 4;

class NodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    nats_ = new test::NatsTestCluster(3);
    ASSERT_TRUE(nats_->wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
    std::string tmpl = (fs::temp_directory_path() / "fv-node-XXXXXX").string();
    root_ = new fs::path(mkdtemp(tmpl.data()));
  }
  static void TearDownTestSuite() {
    delete nats_;
    nats_ = nullptr;
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete root_;
  }
  void SetUp() override {
    ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
    ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
  }

  static std::unique_ptr<cluster::NatsConnection> connect() {
    auto c = cluster::NatsConnection::connect({nats_->urls(), "test"});
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? std::move(*c) : nullptr;
  }
  static std::string urls() {
    std::string out;
    for (const auto& u : nats_->urls()) {
      if (!out.empty()) out += ',';
      out += u;
    }
    return out;
  }

  // Nodes a, b and c (the same three members in every test, restarted on their own vault dirs
  // when an earlier test ran: they catch up from where they were, and with three members and
  // three replicas every node holds every shard), and on each a service over its vault of
  // `shard`, replicating through that shard's writer.
  static void start_with_services(cluster::NatsConnection& conn, int shard,
                                  std::vector<std::unique_ptr<cluster::ClusterNode>>& nodes,
                                  std::vector<std::unique_ptr<service::Service>>& svcs) {
    ASSERT_TRUE(cluster::init_cluster(conn, kShards, 3).is_ok());
    for (const std::string name : {"a", "b", "c"}) {
      auto n = cluster::ClusterNode::start(node_options(nats_->urls(), name, *root_ / name));
      ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
      ASSERT_NE((*n)->shard(shard), nullptr) << name;
      nodes.push_back(std::move(*n));
    }
    for (auto& n : nodes) {
      service::ServiceOptions o;
      o.commit_interceptor = n->shard(shard)->writer;
      auto svc = service::Service::open(n->shard(shard)->dir, o);
      ASSERT_TRUE(svc.is_ok()) << svc.status().to_string();
      svcs.push_back(std::move(*svc));
    }
  }

  static test::NatsTestCluster* nats_;
  static fs::path* root_;
};
test::NatsTestCluster* NodeTest::nats_ = nullptr;
fs::path* NodeTest::root_ = nullptr;

int64_t count(const fs::path& dir, const std::string& sql) {
  auto db = vault::Db::open(dir / "vault.db", false);
  return db.is_ok() ? db->query_int(sql).value() : -1;
}

TEST_F(NodeTest, InitNodesWriteAndStatus) {
  auto conn = connect();
  ASSERT_TRUE(conn);
  // Before init, a node refuses to start and says what to do.
  auto early = cluster::ClusterNode::start(node_options(nats_->urls(), "a", *root_ / "early"));
  ASSERT_FALSE(early.is_ok());
  EXPECT_EQ(early.status().code(), StatusCode::kFailedPrecondition) << early.status().to_string();
  // ... without creating the configuration's bucket (init creates it, with its replicas).
  auto bucket = cluster::KvBucket::open(*conn, cluster::kClusterBucket);
  EXPECT_EQ(bucket.status().code(), StatusCode::kNotFound);

  auto cfg = cluster::init_cluster(*conn, kShards, 3);
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  EXPECT_EQ(cfg->shards, kShards);
  // The same shape again is fine; another shape is refused (the shard count is fixed for life).
  EXPECT_TRUE(cluster::init_cluster(*conn, kShards, 3).is_ok());
  auto other = cluster::init_cluster(*conn, kShards + 1, 3);
  ASSERT_FALSE(other.is_ok());
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists);
  for (int s = 0; s < kShards; ++s) EXPECT_TRUE(cluster::last_sequence(*conn, cluster::shard_stream_name(s)).is_ok()) << s;
  EXPECT_TRUE(cluster::last_sequence(*conn, cluster::kMetaStream).is_ok());

  // A node needs the cluster's keys from its environment, never from NATS.
  ::unsetenv(vault::kMasterKeyEnv);
  auto keyless = cluster::ClusterNode::start(node_options(nats_->urls(), "a", *root_ / "keyless"));
  ASSERT_FALSE(keyless.is_ok());
  EXPECT_EQ(keyless.status().code(), StatusCode::kFailedPrecondition);
  ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
  EXPECT_FALSE(cluster::ClusterNode::start(node_options(nats_->urls(), "bad name!", *root_ / "bad")).is_ok());

  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  for (const std::string name : {"a", "b", "c"}) {
    auto n = cluster::ClusterNode::start(node_options(nats_->urls(), name, *root_ / name));
    ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
    nodes.push_back(std::move(*n));
  }
  // Three members and three replicas: every node hosts every shard (a node that started
  // before the others were members hosts them too: all of them are among its replicas).
  for (auto& n : nodes) EXPECT_EQ(n->hosted_shards().size(), static_cast<size_t>(kShards)) << n->name();

  // One enrollment-shaped transaction on a's vault of the subject's shard reaches b and c.
  const std::string uid = vault::random_hex(16);
  const int s = cluster::shard_of(uid, kShards);
  cluster::HostedStream* hs = nodes[0]->shard(s);
  ASSERT_NE(hs, nullptr);
  {
    auto txn = hs->vault->begin();
    ASSERT_TRUE(txn.is_ok());
    auto& cat = hs->vault->catalog();
    const std::string now = vault::utc_now();
    auto sid = cat.insert_subject(uid, "ref-node", now, "2099-01-01T00:00:00.000Z");
    ASSERT_TRUE(sid.is_ok());
    ASSERT_TRUE(hs->vault->create_subject_key(*sid).is_ok());
    ASSERT_TRUE(cat.insert_basis({*sid, "consent", "form-1", now, std::nullopt, "tester", {"p"}}).is_ok());
    Status st = txn->commit();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }
  for (auto& n : nodes) {
    ASSERT_TRUE(n->catch_up(30000).is_ok()) << n->name();
    EXPECT_EQ(count(n->shard(s)->dir, "SELECT count(*) FROM subject WHERE uid='" + uid + "'"), 1) << n->name();
    for (int o = 0; o < kShards; ++o) {
      if (o == s) continue;
      EXPECT_EQ(count(n->shard(o)->dir, "SELECT count(*) FROM subject"), 0) << n->name() << " shard " << o;
    }
  }

  // Status from a node, and from NATS alone: every stream, every replica at lag 0.
  auto ns = nodes[1]->status();
  ASSERT_TRUE(ns.is_ok()) << ns.status().to_string();
  EXPECT_EQ((*ns)["streams"].size(), static_cast<size_t>(kShards + 1));
  EXPECT_EQ((*ns)["members"].size(), 3u);
  auto cs = cluster::cluster_status(*conn, 2500);
  ASSERT_TRUE(cs.is_ok()) << cs.status().to_string();
  EXPECT_EQ((*cs)["max_lag"], 0);
  for (const auto& row : (*cs)["streams"]) {
    EXPECT_EQ(row["replicas"].size(), 3u) << row.dump();
    if (row.value("shard", -1) == s) {
      EXPECT_GE(row.value("last_seq", 0), 1) << row.dump();
    }
  }

  // The CLI says the same.
  auto cli = test::run_facevault({"cluster", "status", "--nats", urls(), "--json", "--listen-ms", "2500"});
  ASSERT_EQ(cli.exit_code, 0) << cli.out;
  const json parsed = json::parse(cli.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << cli.out;
  EXPECT_EQ(parsed["shards"], kShards);
  EXPECT_EQ(parsed["members"].size(), 3u);
  auto again = test::run_facevault({"cluster", "init", "--nats", urls(), "--shards", "7", "--replicas", "3"}, true);
  EXPECT_NE(again.exit_code, 0) << "a second init with another shape must fail";
  EXPECT_NE(again.out.find("fixed"), std::string::npos) << again.out;
}

// The service's use cases run unchanged on a node's shard vault, with the shard's writer as the
// vault's commit interceptor: a basis and an enrollment on node a, a search on node b, an
// erasure on node b, each seen by the others through the stream. (Placing each subject on its
// shard and fanning searches out is the cluster facade's job, not this test's: everything here
// lives in shard 0.)
TEST_F(NodeTest, ServiceUseCasesReplicateThroughTheShardWriter) {
  auto conn = connect();
  ASSERT_TRUE(conn);
  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  std::vector<std::unique_ptr<service::Service>> svcs;
  ASSERT_NO_FATAL_FAILURE(start_with_services(*conn, 0, nodes, svcs));
  const service::Actor admin{"tester", service::Role::kAdmin};
  auto basis = svcs[0]->add_basis(admin, {"person-1", service::BasisKind::kConsent, "form-1", {"access-control"}, std::nullopt});
  ASSERT_TRUE(basis.is_ok()) << basis.status().to_string();
  face::FaceTemplate t{"faceplugin-mobilefacenet-512", 1, std::vector<float>(512, 0.f)};
  for (size_t i = 0; i < t.values.size(); ++i) t.values[i] = (i % 7 == 0) ? 0.3f : (i % 11 == 0 ? -0.2f : 0.01f);
  double norm = 0;
  for (float v : t.values) norm += v * v;
  for (auto& v : t.values) v = static_cast<float>(v / std::sqrt(norm));
  auto enrolled = svcs[0]->enroll_template(admin, {"person-1", basis->basis_id}, t);
  ASSERT_TRUE(enrolled.is_ok()) << enrolled.status().to_string();

  // Another holder searches its own replica: the template arrived through the stream.
  ASSERT_TRUE(nodes[1]->catch_up(30000).is_ok());
  auto found = svcs[1]->search_templates(admin, {"access-control", "case-1", 1}, {t});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_EQ(found->faces.size(), 1u);
  ASSERT_FALSE(found->faces[0].candidates.empty());
  EXPECT_EQ(found->faces[0].candidates[0].subject_ref, "person-1");
  EXPECT_NEAR(found->faces[0].candidates[0].similarity, 1.0, 1e-2);

  // Two reviewers confirm the candidate on the third node: the case closes, and keeps its
  // candidate by uid once the subject is erased (an update that unlinks the row from its
  // subject, which the writer must not take for a write of "subject 0").
  ASSERT_TRUE(nodes[2]->catch_up(30000).is_ok());
  auto rcase = svcs[2]->review_show(admin, found->review_case);
  ASSERT_TRUE(rcase.is_ok()) << rcase.status().to_string();
  ASSERT_EQ(rcase->candidates.size(), 1u);
  for (const std::string who : {"rev-1", "rev-2"}) {
    const service::Actor reviewer{who, service::Role::kReviewer};
    auto d = svcs[2]->review_decide(reviewer, found->review_case,
                                    {rcase->candidates[0].id, service::ReviewVerdict::kConfirm, "same person", std::nullopt});
    ASSERT_TRUE(d.is_ok()) << who << ": " << d.status().to_string();
  }
  ASSERT_TRUE(nodes[1]->catch_up(30000).is_ok());
  auto closed = svcs[1]->review_show(admin, found->review_case);
  ASSERT_TRUE(closed.is_ok()) << closed.status().to_string();
  EXPECT_EQ(closed->status, "closed");

  // Erased through the second node; the first no longer finds the subject; every node's audit
  // chain (replicated rows) verifies.
  auto receipt = svcs[1]->erase(admin, "person-1");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  ASSERT_TRUE(nodes[0]->catch_up(30000).is_ok());
  ASSERT_TRUE(nodes[2]->catch_up(30000).is_ok());
  auto after = svcs[0]->search_templates(admin, {"access-control", "case-2", 1}, {t});
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  EXPECT_TRUE(after->faces.empty() || after->faces[0].candidates.empty());
  for (auto& svc : svcs) {
    auto v = svc->audit_verify(admin);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_TRUE(v->ok) << v->problem << ": " << v->message;
  }

}

// Erasure in the stream, and a replica rebuilt after it: the subject's earlier messages leave
// the stream (js_EraseMsg), their audit rows carried forward first, so a replica rebuilt from
// the stream has no trace of the subject but the whole audit chain, which verifies and equals
// the survivors'. (Shard 1, where no search ran: a search's review case in a candidate's
// messages is not rebuilt after the candidate's erasure yet — docs/cluster.md, "Next steps".)
TEST_F(NodeTest, AReplicaRebuiltAfterAnErasureHasTheWholeAuditChain) {
  auto conn = connect();
  ASSERT_TRUE(conn);
  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  std::vector<std::unique_ptr<service::Service>> svcs;
  ASSERT_NO_FATAL_FAILURE(start_with_services(*conn, 1, nodes, svcs));
  const service::Actor admin{"tester", service::Role::kAdmin};
  std::string gone_uid;
  for (const std::string ref : {"kept-1", "gone-1"}) {
    auto basis = svcs[0]->add_basis(admin, {ref, service::BasisKind::kConsent, "form", {"access-control"}, std::nullopt});
    ASSERT_TRUE(basis.is_ok()) << basis.status().to_string();
    face::FaceTemplate t{"faceplugin-mobilefacenet-512", 1, std::vector<float>(512, 0.f)};
    t.values[ref.size() + (ref[0] == 'g' ? 7 : 0)] = 1.f;
    ASSERT_TRUE(svcs[0]->enroll_template(admin, {ref, basis->basis_id}, t).is_ok());
    if (ref == "gone-1") gone_uid = basis->subject_uid;
  }
  ASSERT_TRUE(nodes[1]->catch_up(30000).is_ok());
  ASSERT_TRUE(svcs[1]->erase(admin, "gone-1").is_ok());
  auto erased = nodes[1]->shard(1)->writer->erase_messages_of_subject(gone_uid);
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  EXPECT_EQ(*erased, 2);  // its basis and its enrollment
  for (auto& n : nodes) ASSERT_TRUE(n->catch_up(30000).is_ok());

  const fs::path rebuilt = *root_ / "rebuilt-shard1";
  ASSERT_TRUE(vault::Vault::init(rebuilt).is_ok());
  {
    auto replica = cluster::ShardReplica::open(*conn, rebuilt, *vault::SecretKey::from_hex(kMasterHex),
                                               {cluster::shard_stream_name(1), "rebuilt"});
    ASSERT_TRUE(replica.is_ok()) << replica.status().to_string();
    ASSERT_TRUE((*replica)->start().is_ok());
    ASSERT_TRUE((*replica)->catch_up(30000).is_ok()) << (*replica)->error().to_string();
    (*replica)->stop();
  }
  const fs::path survivor = nodes[0]->shard(1)->dir;
  EXPECT_EQ(count(rebuilt, "SELECT count(*) FROM subject WHERE ref='gone-1'"), 0);
  EXPECT_EQ(count(rebuilt, "SELECT count(*) FROM subject WHERE ref='kept-1'"), 1);
  EXPECT_EQ(count(rebuilt, "SELECT count(*) FROM face"), count(survivor, "SELECT count(*) FROM face"));
  EXPECT_EQ(count(rebuilt, "SELECT count(*) FROM audit"), count(survivor, "SELECT count(*) FROM audit"));
  EXPECT_GE(count(rebuilt, "SELECT count(*) FROM audit"), 5);  // 2 bases, 2 enrollments, the erasure
  auto rebuilt_svc = service::Service::open(rebuilt);
  ASSERT_TRUE(rebuilt_svc.is_ok()) << rebuilt_svc.status().to_string();
  auto v = (*rebuilt_svc)->audit_verify(admin);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->ok) << v->problem << ": " << v->message;
}

// A node that applied an erasure and went down before the subject's messages left the stream
// (the service's erase does not erase them: the facade will, and may die first): the next start
// of the nodes completes it, each node that still records the messages sweeping them.
TEST_F(NodeTest, StartCompletesTheStreamErasuresLeftUndone) {
  constexpr int kShard = 2;
  auto conn = connect();
  ASSERT_TRUE(conn);
  const service::Actor admin{"tester", service::Role::kAdmin};
  std::string uid;
  std::vector<uint64_t> seqs;
  uint64_t before = 0;
  {
    std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
    std::vector<std::unique_ptr<service::Service>> svcs;
    ASSERT_NO_FATAL_FAILURE(start_with_services(*conn, kShard, nodes, svcs));
    auto basis = svcs[0]->add_basis(admin, {"swept-1", service::BasisKind::kConsent, "form", {"access-control"}, std::nullopt});
    ASSERT_TRUE(basis.is_ok()) << basis.status().to_string();
    uid = basis->subject_uid;
    face::FaceTemplate t{"faceplugin-mobilefacenet-512", 1, std::vector<float>(512, 0.f)};
    t.values[3] = 1.f;
    ASSERT_TRUE(svcs[0]->enroll_template(admin, {"swept-1", basis->basis_id}, t).is_ok());
    ASSERT_TRUE(nodes[1]->catch_up(30000).is_ok());
    ASSERT_TRUE(svcs[1]->erase(admin, "swept-1").is_ok());
    for (auto& n : nodes) ASSERT_TRUE(n->catch_up(30000).is_ok());
    auto recorded = nodes[1]->shard(kShard)->replica->messages_of_subject(uid);
    ASSERT_TRUE(recorded.is_ok());
    seqs = *recorded;
    ASSERT_EQ(seqs.size(), 2u);  // its basis and its enrollment
    for (uint64_t s : seqs) EXPECT_TRUE(cluster::get_message(*conn, cluster::shard_stream_name(kShard), s)->has_value());
    before = *cluster::last_sequence(*conn, cluster::shard_stream_name(kShard));
    svcs.clear();  // services before their nodes (docs/cluster.md, "Lifetimes")
  }

  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  for (const std::string name : {"a", "b", "c"}) {
    auto n = cluster::ClusterNode::start(node_options(nats_->urls(), name, *root_ / name));
    ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
    nodes.push_back(std::move(*n));
  }
  for (auto& n : nodes) {
    // The first node erased them, the others found them erased: each counts both.
    EXPECT_EQ(n->shard(kShard)->swept_at_start, 2) << n->name();
    EXPECT_TRUE(n->shard(kShard)->replica->messages_of_subject(uid)->empty()) << n->name();
  }
  for (uint64_t s : seqs) {
    auto m = cluster::get_message(*conn, cluster::shard_stream_name(kShard), s);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    EXPECT_FALSE(m->has_value()) << "message " << s << " is still in the stream";
  }
  // Their audit rows were carried forward first: one carry per erased message.
  const uint64_t after = *cluster::last_sequence(*conn, cluster::shard_stream_name(kShard));
  EXPECT_EQ(after, before + seqs.size());
  for (uint64_t s = before + 1; s <= after; ++s) {
    auto m = cluster::get_message(*conn, cluster::shard_stream_name(kShard), s);
    ASSERT_TRUE(m.is_ok() && m->has_value());
    EXPECT_EQ((*m)->subject, cluster::shard_subject_prefix(kShard) + ".carry");
  }
  // Nothing left to do: sweeping again touches neither stream nor vaults.
  for (auto& n : nodes) EXPECT_EQ(*n->sweep_pending_erasures(), 0);
  EXPECT_EQ(*cluster::last_sequence(*conn, cluster::shard_stream_name(kShard)), after);
}

// A meta-only node (a CLI's, from a temporary directory): it applies the meta stream and its
// writes replicate to the members' meta vaults, but it is no member and hosts no shard.
TEST_F(NodeTest, AMetaOnlyNodeWritesClusterWideDataWithoutBecomingAMember) {
  auto conn = connect();
  ASSERT_TRUE(conn);
  ASSERT_TRUE(cluster::init_cluster(*conn, kShards, 3).is_ok());
  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  for (const std::string name : {"a", "b", "c"}) {
    auto n = cluster::ClusterNode::start(node_options(nats_->urls(), name, *root_ / name));
    ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
    nodes.push_back(std::move(*n));
  }
  const fs::path tmp = *root_ / "cli-tmp";
  auto o = node_options(nats_->urls(), "cli-1", tmp);
  o.meta_only = true;
  auto started = cluster::ClusterNode::start(o);
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  auto& cli = **started;
  EXPECT_TRUE(cli.hosted_shards().empty());
  EXPECT_FALSE(fs::exists(tmp / "shards"));
  ASSERT_TRUE(cli.catch_up(30000).is_ok());
  EXPECT_EQ(cli.meta().replica->applied(), *cluster::last_sequence(*conn, cluster::kMetaStream));

  // Its writer replicates: an API key created on its meta vault reaches every member's.
  vault::Vault& mv = *cli.meta().vault;
  auto key = vault::create_api_key(vault::testing::raw_db(mv), "admin", {}, "bootstrap", "cli", mv.audit_signer().get());
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  for (auto& n : nodes) {
    ASSERT_TRUE(n->catch_up(30000).is_ok()) << n->name();
    auto db = vault::Db::open(n->meta().dir / "vault.db", false);
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    auto keys = vault::list_api_keys(*db);
    ASSERT_TRUE(keys.is_ok()) << keys.status().to_string();
    EXPECT_TRUE(std::any_of(keys->begin(), keys->end(), [&](const vault::ApiKey& k) { return k.id == key->key.id; }))
        << n->name();
  }

  // No member: not in the KV bucket, nor in any status; and it announced nothing, so no
  // writer counted its temporary vault among the replicas that applied a write.
  auto members = cluster::read_members(*conn);
  ASSERT_TRUE(members.is_ok());
  for (const auto& m : *members) EXPECT_NE(m.name, "cli-1");
  for (auto* n : {nodes[0].get(), &cli}) {
    auto st = n->status();
    ASSERT_TRUE(st.is_ok()) << st.status().to_string();
    EXPECT_EQ((*st)["members"].size(), 3u) << st->dump();
    for (const auto& m : (*st)["members"]) EXPECT_NE(m["name"], "cli-1");
    for (const auto& row : (*st)["streams"]) EXPECT_FALSE(row["replicas_heard"].contains("cli-1")) << row.dump();
  }
  auto own = cli.status();
  EXPECT_EQ((*own)["meta_only"], true);
  EXPECT_EQ((*own)["streams"].size(), 1u);
  auto cs = cluster::cluster_status(*conn, 2500);
  ASSERT_TRUE(cs.is_ok()) << cs.status().to_string();
  for (const auto& row : (*cs)["streams"]) {
    EXPECT_FALSE(row["replicas"].contains("cli-1")) << row.dump();
    if (row["stream"] == cluster::kMetaStream) {
      EXPECT_EQ(row["replicas"].size(), 3u) << row.dump();
    }
  }
}

// One policy for the cluster: kept once in its KV bucket, followed by the vaults a node creates,
// and a node whose local vault says otherwise does not start. (Runs last: it leaves the
// cluster without a policy again, as the other tests found it.)
TEST_F(NodeTest, TheClusterPolicyGovernsEveryNodesVaults) {
  auto conn = connect();
  ASSERT_TRUE(conn);
  ASSERT_TRUE(cluster::init_cluster(*conn, kShards, 3).is_ok());
  vault::VaultConfig policy;
  policy.default_retention_days = 30;
  policy.reviewers_required = 3;
  ASSERT_TRUE(cluster::set_cluster_policy(*conn, policy).is_ok());
  struct Cleanup {
    cluster::NatsConnection& c;
    ~Cleanup() {
      auto kv = cluster::KvBucket::open(c, cluster::kClusterBucket);
      if (kv.is_ok()) (void)kv->purge("policy");
    }
  } cleanup{*conn};
  EXPECT_TRUE(cluster::set_cluster_policy(*conn, policy).is_ok()) << "the same policy again is fine";
  vault::VaultConfig other = policy;
  other.default_retention_days = 31;
  const Status refused = cluster::set_cluster_policy(*conn, other);
  EXPECT_EQ(refused.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(refused.message().find("/default_retention_days"), std::string::npos) << refused.message();
  vault::VaultConfig local_only = policy;
  local_only.search_threads = 4;  // a node's own setting, not policy
  EXPECT_FALSE(cluster::policy_difference(local_only, policy).has_value());

  // A node's new vaults follow the policy.
  const fs::path dir = *root_ / "policy-client";
  auto o = node_options(nats_->urls(), "policy-client", dir);
  o.meta_only = true;
  {
    auto node = cluster::ClusterNode::start(o);
    ASSERT_TRUE(node.is_ok()) << node.status().to_string();
    EXPECT_EQ((*node)->meta().vault->config().default_retention_days, 30);
    EXPECT_EQ((*node)->meta().vault->config().reviewers_required, 3);
  }
  // Its config.json edited: the node does not start, and says which setting.
  {
    std::ifstream in(dir / "meta" / "config.json");
    json c = json::parse(in);
    c["oversight"]["reviewers_required"] = 1;
    std::ofstream(dir / "meta" / "config.json") << c.dump(2);
  }
  auto edited = cluster::ClusterNode::start(o);
  ASSERT_FALSE(edited.is_ok());
  EXPECT_EQ(edited.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(edited.status().message().find("/oversight/reviewers_required"), std::string::npos)
      << edited.status().message();
  // So does a member whose vaults were created before, with another retention.
  auto a = cluster::ClusterNode::start(node_options(nats_->urls(), "a", *root_ / "a"));
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("/default_retention_days"), std::string::npos) << a.status().message();

  // The CLI: another policy at a second `cluster init` is refused.
  const fs::path file = *root_ / "policy.json";
  std::ofstream(file) << other.to_json().dump();
  auto cli = test::run_facevault({"cluster", "init", "--nats", urls(), "--shards", std::to_string(kShards), "--replicas",
                                  "3", "--config", file.string()},
                                 true);
  EXPECT_NE(cli.exit_code, 0) << cli.out;
  EXPECT_NE(cli.out.find("fixed at `cluster init`"), std::string::npos) << cli.out;
}

}  // namespace
}  // namespace fv
