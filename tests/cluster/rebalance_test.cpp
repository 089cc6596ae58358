// Hosting follows the member list (issue #17, item 4: a node that joins replays its shards; a
// replica lost for good is replaced from the stream). 3 nats-servers, 4 shards with 2 replicas:
//   - node a starts alone and hosts every shard, then b and c join. Restarted, a keeps only its
//     share: the other shards' local vaults go on applying their streams until their assigned
//     replicas caught up, then are overwritten and removed (no file under a's folder holds a
//     template of their subjects), and a still finds every subject through the others;
//   - `cluster leave` refuses a running node; node c, stopped for good, leaves: a and b take
//     over its shards from the streams and serve them once caught up; every subject is found
//     through each, and an erasure afterwards names both new replicas.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/cluster_config.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "cluster/shard_map.h"
#include "cluster/stream.h"
#include "service/cluster_service.h"
#include "support/nats_servers.h"
#include "support/run.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/vault_test_util.h"

namespace fv {
namespace {

namespace fs = std::filesystem;

constexpr int kShards = 4;
constexpr int kReplicas = 2;
constexpr int kSubjects = 24;
const service::Actor kAdmin{"tester", service::Role::kAdmin};

service::SearchRequest investigation() {
  service::SearchRequest r("investigation", "case-rebalance", 5);
  r.mode = "investigation";
  return r;
}

// Polls `done` every 200 ms for at most `seconds`.
template <typename F>
bool eventually(int seconds, F&& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

// Whether any file under `dir` holds one of the 16-byte windows of `bytes`.
bool folder_holds(const fs::path& dir, const std::string& bytes) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t off = 0; off + 16 <= bytes.size(); off += 16)
      if (std::search(data.begin(), data.end(), bytes.begin() + static_cast<std::ptrdiff_t>(off),
                      bytes.begin() + static_cast<std::ptrdiff_t>(off + 16)) != data.end())
        return true;
  }
  return false;
}

std::string float_bytes(const face::FaceTemplate& t) {
  return std::string(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
}

// A subject's template as its vault stores it (sealed) and its wrapped key.
std::vector<std::string> stored_forms(const fs::path& shard_dir, const std::string& uid) {
  std::vector<std::string> out;
  auto db = vault::Db::open(shard_dir / "vault.db", false);
  EXPECT_TRUE(db.is_ok()) << db.status().to_string();
  if (!db.is_ok()) return out;
  auto q = db->prepare("SELECT f.template, k.wrapped FROM face f JOIN subject s ON s.id = f.subject_id "
                       "JOIN subject_key k ON k.subject_id = s.id WHERE s.uid = ?");
  EXPECT_TRUE(q.is_ok()) << q.status().to_string();
  if (!q.is_ok()) return out;
  q->bind(1, uid);
  auto row = q->step();
  EXPECT_TRUE(row.is_ok() && *row) << uid << " is not in " << shard_dir;
  if (!row.is_ok() || !*row) return out;
  for (int c = 0; c < 2; ++c) {
    const auto b = q->blob(c);
    out.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

class RebalanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    ::setenv(vault::kMasterKeyEnv, std::string(64, '6').c_str(), 1);
    ::setenv(vault::kAuditSigningKeyEnv, std::string(64, '7').c_str(), 1);
    nats_ = std::make_unique<test::NatsTestCluster>(3);
    ASSERT_TRUE(nats_->wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
    std::string tmpl = (fs::temp_directory_path() / "fv-rebalance-XXXXXX").string();
    root_ = fs::path(mkdtemp(tmpl.data()));
    auto conn = cluster::NatsConnection::connect({nats_->urls(), "test"});
    ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
    conn_ = std::move(*conn);
    ASSERT_TRUE(cluster::init_cluster(*conn_, kShards, kReplicas).is_ok());
  }
  void TearDown() override {
    svcs_.clear();
    nodes_.clear();
    conn_.reset();
    nats_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void start(const std::string& name) {
    cluster::NodeOptions o;
    o.servers = nats_->urls();
    o.name = name;
    o.dir = root_ / name;
    auto n = cluster::ClusterNode::start(o);
    ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
    service::ClusterServiceOptions co;
    co.rebalance_ms = 200;
    auto cs = service::ClusterService::open(**n, {}, co);
    ASSERT_TRUE(cs.is_ok()) << name << ": " << cs.status().to_string();
    nodes_[name] = std::move(*n);
    svcs_[name] = std::move(*cs);
  }
  void stop(const std::string& name) {
    svcs_.erase(name);  // the service before the node whose writers it holds
    nodes_.erase(name);
  }
  std::string urls() const {
    std::string out;
    for (const auto& u : nats_->urls()) out += (out.empty() ? "" : ",") + u;
    return out;
  }
  // Every subject's own template finds it first through node `name`.
  void expect_every_subject_found(const std::string& name) {
    for (const auto& [ref, t] : templates_) {
      auto r = svcs_[name]->search_templates(kAdmin, investigation(), {t});
      ASSERT_TRUE(r.is_ok()) << name << ": " << r.status().to_string();
      ASSERT_FALSE(r->faces[0].candidates.empty()) << name << ": " << ref;
      EXPECT_EQ(r->faces[0].candidates[0].subject_ref, ref) << "through node " << name;
    }
  }

  std::unique_ptr<test::NatsTestCluster> nats_;
  fs::path root_;
  std::unique_ptr<cluster::NatsConnection> conn_;
  std::map<std::string, std::unique_ptr<cluster::ClusterNode>> nodes_;
  std::map<std::string, std::unique_ptr<service::ClusterService>> svcs_;
  std::map<std::string, face::FaceTemplate> templates_;
  std::map<std::string, std::string> uids_;
};

TEST_F(RebalanceTest, SurplusShardsAreReleasedAndALostNodesShardsAreTakenOver) {
  const std::vector<std::string> all = {"a", "b", "c"};
  std::vector<int> a_share;
  for (int s = 0; s < kShards; ++s) {
    const auto holders = cluster::replicas_of(s, all, kReplicas);
    if (std::find(holders.begin(), holders.end(), "a") != holders.end()) a_share.push_back(s);
  }
  ASSERT_LT(a_share.size(), size_t(kShards)) << "the test needs shards that a, b and c assign away from a";

  start("a");
  ASSERT_EQ(nodes_["a"]->hosted_shards().size(), size_t(kShards)) << "alone, a hosts every shard";
  start("b");
  start("c");
  std::mt19937 rng(5);
  for (int i = 0; i < kSubjects; ++i) {
    const std::string ref = "subject-" + std::to_string(i);
    auto b = svcs_["a"]->add_basis(kAdmin, {ref, service::BasisKind::kConsent, "form", {"investigation"}, std::nullopt});
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    templates_[ref] = test::random_template(rng);
    uids_[ref] = b->subject_uid;
    ASSERT_TRUE(svcs_["a"]->enroll_template(kAdmin, {ref, b->basis_id}, templates_[ref]).is_ok());
  }
  for (auto& [name, n] : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok()) << name;
  // Every form a's copies of the shards it will not keep hold of their subjects.
  std::map<std::string, std::vector<std::string>> forms;
  for (const auto& [ref, uid] : uids_) {
    const int s = cluster::shard_of(uid, kShards);
    if (std::find(a_share.begin(), a_share.end(), s) != a_share.end()) continue;
    forms[ref] = stored_forms(nodes_["a"]->shard(s)->dir, uid);
    forms[ref].push_back(float_bytes(templates_[ref]));
  }
  ASSERT_FALSE(forms.empty());

  // Restarted among three members, a hosts its share; the other shards are surplus.
  stop("a");
  EXPECT_TRUE(folder_holds(root_ / "a", forms.begin()->second[0])) << "control: the scan finds a stored template";
  start("a");
  EXPECT_EQ(nodes_["a"]->hosted_shards(), a_share);
  const auto surplus = nodes_["a"]->surplus_shards();
  EXPECT_EQ(surplus.size() + a_share.size(), size_t(kShards));
  auto status = nodes_["a"]->status();
  ASSERT_TRUE(status.is_ok());
  int surplus_rows = 0;
  for (const auto& row : (*status)["streams"]) surplus_rows += row.value("surplus", false) ? 1 : 0;
  EXPECT_EQ(surplus_rows, static_cast<int>(surplus.size())) << status->dump();
  // Once their assigned replicas (b and c) announced the streams' last sequences, they go.
  // A shard leaves the surplus list before its folder is erased (ClusterNode::rebalance): wait
  // for both, then check each folder.
  char nn[8];
  auto folders_gone = [&] {
    for (int s : surplus) {
      std::snprintf(nn, sizeof nn, "%02d", s);
      if (fs::exists(root_ / "a" / "shards" / nn)) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually(30, [&] { return nodes_["a"]->surplus_shards().empty() && folders_gone(); }))
      << "surplus shards not released within 30 s";
  for (int s : surplus) {
    std::snprintf(nn, sizeof nn, "%02d", s);
    EXPECT_FALSE(fs::exists(root_ / "a" / "shards" / nn)) << "shard " << s;
  }
  for (const auto& [ref, list] : forms)
    for (size_t k = 0; k < list.size(); ++k)
      EXPECT_FALSE(folder_holds(root_ / "a", list[k])) << ref << ": form " << k << " (template, wrapped key, float32)";
  expect_every_subject_found("a");

  // A running node cannot leave; c, stopped for good, can.
  auto refused = test::run_facevault({"cluster", "leave", "--nats", urls(), "--node", "b"}, true);
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_NE(refused.out.find("is running"), std::string::npos) << refused.out;
  stop("c");
  auto left = test::run_facevault({"cluster", "leave", "--nats", urls(), "--node", "c", "--json"}, true);
  ASSERT_EQ(left.exit_code, 0) << left.out;
  EXPECT_NE(left.out.find("\"left\":\"c\""), std::string::npos) << left.out;
  EXPECT_EQ(cluster::remove_member(*conn_, "c").code(), StatusCode::kNotFound);

  // a and b, the only members now, each take over and serve every shard.
  ASSERT_TRUE(eventually(60, [&] {
    for (int s = 0; s < kShards; ++s)
      if (!svcs_["a"]->shard_service(s) || !svcs_["b"]->shard_service(s)) return false;
    return true;
  })) << "a and b did not serve every shard within 60 s";
  for (int s = 0; s < kShards; ++s) {
    auto last = cluster::last_sequence(*conn_, cluster::shard_stream_name(s));
    ASSERT_TRUE(last.is_ok());
    EXPECT_GE(nodes_["a"]->shard(s)->replica->applied(), *last) << "a's copy of shard " << s << " is caught up";
  }
  expect_every_subject_found("a");
  expect_every_subject_found("b");

  // An erasure of a subject on a shard a gained reaches a's new copy.
  std::string gained_ref;
  for (const auto& [ref, uid] : uids_)
    if (std::find(a_share.begin(), a_share.end(), cluster::shard_of(uid, kShards)) == a_share.end()) gained_ref = ref;
  ASSERT_FALSE(gained_ref.empty());
  auto gained_forms = stored_forms(nodes_["a"]->shard(cluster::shard_of(uids_[gained_ref], kShards))->dir, uids_[gained_ref]);
  ASSERT_EQ(gained_forms.size(), 2u) << "a's new copy holds the subject";
  gained_forms.push_back(float_bytes(templates_[gained_ref]));
  auto receipt = svcs_["b"]->erase(kAdmin, gained_ref);
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  std::vector<std::string> replicas = receipt->replicas;
  std::sort(replicas.begin(), replicas.end());
  EXPECT_EQ(replicas, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(nodes_["a"]->catch_up(30000).is_ok());
  for (size_t k = 0; k < gained_forms.size(); ++k)
    EXPECT_FALSE(folder_holds(root_ / "a", gained_forms[k])) << "form " << k << " of the erased subject in a's new copy";
}

}  // namespace
}  // namespace fv
