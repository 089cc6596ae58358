// Searches reach shards a node does not host (issue #17, item 2): 3 nats-servers, 3 nodes, 8
// shards with 2 replicas each, so every node hosts only some shards and asks the others over
// NATS request/reply (a queue group per shard, cluster/rpc.h).
//   - Every node returns the same top 10 (references and scores) as one vault holding the same
//     templates, with the same operating point.
//   - A shard with no live replica fails the search with kUnavailable naming it; with partial
//     results allowed, the others' candidates come back and the result and the audit entry
//     name the missing shard. A replica that takes the request and never answers is the same,
//     after the node's deadline.
// And the seam itself: a reply carries the responder's Status; a request sealed under another
// master key gets no answer; the wire format refuses malformed messages.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <chrono>
#include <ctime>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "cluster/cluster_config.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "cluster/rpc.h"
#include "cluster/shard_map.h"
#include "service/cluster_service.h"
#include "service/render.h"
#include "service/service.h"
#include "service/shard_call_wire.h"
#include "service/shard_search_wire.h"
#include "server/sample_photos.h"
#include "support/nats_servers.h"
#include "vault/vault_test_util.h"
#include "support/paths.h"
#include "support/run.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/vault.h"

namespace fv {
namespace {

namespace fs = std::filesystem;

const std::string kMasterHex(64, '5');
const std::string kSigningHex(64, '9');
constexpr int kShards = 8;
constexpr int kReplicas = 2;
constexpr int kSubjects = 40;
const std::vector<std::string> kNodes = {"a", "b", "c"};

using test::random_template;
// `t` with noise of standard deviation `sigma` per value, normalised again.
face::FaceTemplate near(const face::FaceTemplate& t, std::mt19937& rng, float sigma) {
  return test::near_template(t, rng, sigma * std::sqrt(512.f));
}

const service::Actor kAdmin{"tester", service::Role::kAdmin};

service::BasisRequest consent(const std::string& ref) {
  return {ref, service::BasisKind::kConsent, "form-" + ref, {"investigation"}, std::nullopt};
}

service::SearchRequest investigation() {
  service::SearchRequest r("investigation", "case-fanout", 10);
  r.mode = "investigation";
  return r;
}

class ClusterFanOutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
    ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
    nats_ = new test::NatsTestCluster(3);
    ASSERT_TRUE(nats_->wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
    std::string tmpl = (fs::temp_directory_path() / "fv-fanout-XXXXXX").string();
    root_ = new fs::path(mkdtemp(tmpl.data()));
    auto conn = cluster::NatsConnection::connect({nats_->urls(), "test"});
    ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
    ASSERT_TRUE(cluster::init_cluster(**conn, kShards, kReplicas).is_ok());
    // A node hosts its shards among the members registered when it starts: the first ones
    // started alone would host every shard. Started again, each sees all three and hosts its share.
    for (int round = 0; round < 2; ++round) {
      nodes_.clear();
      for (const std::string& name : kNodes) {
        cluster::NodeOptions o;
        o.servers = nats_->urls();
        o.name = name;
        o.dir = *root_ / name;
        auto n = cluster::ClusterNode::start(o);
        ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
        nodes_.push_back(std::move(*n));
      }
    }
    for (auto& n : nodes_) {
      service::ClusterServiceOptions co;
      co.shard_timeout_ms = 3000;
      co.rebalance_ms = 0;  // rebalanced below, then the hosting stays as it is
      co.audit_page_bytes = 2048;  // a few entries per page: a shard's chain takes several
      auto cs = service::ClusterService::open(*n, {}, co);
      ASSERT_TRUE(cs.is_ok()) << cs.status().to_string();
      svcs_.push_back(std::move(*cs));
    }
    // The shards the first round hosted beyond each node's share are released once their
    // replicas caught up: receipts then name exactly the shards' assigned replicas.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (size_t k = 0; k < nodes_.size(); ++k) {
      while (!nodes_[k]->surplus_shards().empty() && std::chrono::steady_clock::now() < deadline) {
        auto change = svcs_[k]->rebalance();
        ASSERT_TRUE(change.is_ok()) << change.status().to_string();
        if (!change->surplus.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      ASSERT_TRUE(nodes_[k]->surplus_shards().empty()) << kNodes[k] << ": surplus shards not released in 60 s";
    }
    ASSERT_TRUE(vault::Vault::init(*root_ / "single", {}).is_ok());
    auto single = service::Service::open(*root_ / "single");
    ASSERT_TRUE(single.is_ok()) << single.status().to_string();
    single_ = std::move(*single).release();
  }
  static void TearDownTestSuite() {
    delete single_;
    svcs_.clear();  // services before the nodes whose writers they hold
    nodes_.clear();
    delete nats_;
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete root_;
  }

  // Enrolls through node `via`, whether it hosts the subject's shard or forwards the use case
  // to a replica that does. The same subject and template go into the single vault.
  static void enroll_everywhere(const std::string& ref, const face::FaceTemplate& t, size_t via) {
    auto& node = *svcs_[via % svcs_.size()];
    auto b = node.add_basis(kAdmin, consent(ref));
    ASSERT_TRUE(b.is_ok()) << ref << ": " << b.status().to_string();
    (*uids_)[ref] = b->subject_uid;
    EXPECT_EQ(b->basis_id % cluster::kMaxShards, cluster::shard_of(b->subject_uid, kShards)) << "a basis id carries its shard";
    auto e = node.enroll_template(kAdmin, {ref, b->basis_id}, t);
    ASSERT_TRUE(e.is_ok()) << ref << ": " << e.status().to_string();
    EXPECT_EQ(e->subject_uid, b->subject_uid);
    auto sb = single_->add_basis(kAdmin, consent(ref));
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    ASSERT_TRUE(single_->enroll_template(kAdmin, {ref, sb->basis_id}, t).is_ok());
  }

  static test::NatsTestCluster* nats_;
  static fs::path* root_;
  static std::vector<std::unique_ptr<cluster::ClusterNode>> nodes_;
  static std::vector<std::unique_ptr<service::ClusterService>> svcs_;
  static service::Service* single_;
  static std::vector<face::FaceTemplate>* gallery_;
  static std::map<std::string, std::string>* uids_;  // reference → the cluster's subject uid
};
test::NatsTestCluster* ClusterFanOutTest::nats_ = nullptr;
fs::path* ClusterFanOutTest::root_ = nullptr;
std::vector<std::unique_ptr<cluster::ClusterNode>> ClusterFanOutTest::nodes_;
std::vector<std::unique_ptr<service::ClusterService>> ClusterFanOutTest::svcs_;
service::Service* ClusterFanOutTest::single_ = nullptr;
std::vector<face::FaceTemplate>* ClusterFanOutTest::gallery_ = new std::vector<face::FaceTemplate>;
std::map<std::string, std::string>* ClusterFanOutTest::uids_ = new std::map<std::string, std::string>;

TEST_F(ClusterFanOutTest, EveryNodeSearchesShardsItDoesNotHostAndMatchesOneVault) {
  for (auto& n : nodes_) EXPECT_LT(n->hosted_shards().size(), size_t(kShards)) << n->name() << " hosts every shard";
  std::mt19937 rng(20261205);
  for (int i = 0; i < kSubjects; ++i) {
    gallery_->push_back(random_template(rng));
    enroll_everywhere("person-" + std::to_string(i), gallery_->back(), static_cast<size_t>(i));
  }
  for (int q = 0; q < 6; ++q) {
    const auto probe = near((*gallery_)[static_cast<size_t>(q * 5)], rng, 0.04f);
    auto want = single_->search_templates(kAdmin, investigation(), {probe});
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    ASSERT_EQ(want->faces[0].candidates.size(), 10u);
    for (size_t k = 0; k < svcs_.size(); ++k) {
      auto got = svcs_[k]->search_templates(kAdmin, investigation(), {probe});
      ASSERT_TRUE(got.is_ok()) << kNodes[k] << ": " << got.status().to_string();
      EXPECT_TRUE(got->shards_missing.empty());
      EXPECT_EQ(got->eligible_subjects, want->eligible_subjects);
      EXPECT_EQ(got->eligible_templates, want->eligible_templates);
      EXPECT_DOUBLE_EQ(got->threshold, want->threshold);
      const auto& g = got->faces[0].candidates;
      const auto& w = want->faces[0].candidates;
      ASSERT_EQ(g.size(), w.size()) << kNodes[k];
      for (size_t c = 0; c < w.size(); ++c) {
        EXPECT_EQ(g[c].subject_ref, w[c].subject_ref) << kNodes[k] << " rank " << c;
        EXPECT_NEAR(g[c].similarity, w[c].similarity, 1e-6) << kNodes[k] << " rank " << c;
      }
      EXPECT_EQ(g[0].subject_ref, "person-" + std::to_string(q * 5));
    }
  }

  // Identification: the operating point rises with the whole gallery's size, which no shard
  // knows. Shards answer at the loosest point and the node cuts at the final one: a subject
  // scored just under the final threshold is left out, as one vault leaves it out.
  service::SearchRequest ident("investigation", "case-fanout-ident");
  ident.mode = "identification";
  const auto probe = near((*gallery_)[7], rng, 0.04f);
  auto before = single_->search_templates(kAdmin, ident, {probe});
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  const double below = before->threshold - 0.02;  // a larger gallery only raises the threshold
  face::FaceTemplate edge = random_template(rng);
  double along = 0, norm = 0;
  for (size_t i = 0; i < edge.values.size(); ++i) along += double(edge.values[i]) * probe.values[i];
  for (size_t i = 0; i < edge.values.size(); ++i) edge.values[i] -= static_cast<float>(along * probe.values[i]);
  for (float v : edge.values) norm += double(v) * v;
  const double side = std::sqrt(1 - below * below) / std::sqrt(norm);
  for (size_t i = 0; i < edge.values.size(); ++i)
    edge.values[i] = static_cast<float>(below * probe.values[i] + side * edge.values[i]);
  enroll_everywhere("person-edge", edge, 1);
  uids_->erase("person-edge");  // the later tests pick among person-N, whose template is gallery_[N]
  auto all = single_->search_templates(kAdmin, investigation(), {probe});
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_GE(all->faces[0].candidates.size(), 2u);
  EXPECT_EQ(all->faces[0].candidates[1].subject_ref, "person-edge") << "the edge subject is the probe's second best";
  auto want = single_->search_templates(kAdmin, ident, {probe});
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  ASSERT_EQ(want->faces[0].candidates.size(), 1u) << "one vault keeps the mate only";
  for (size_t k = 0; k < svcs_.size(); ++k) {
    auto got = svcs_[k]->search_templates(kAdmin, ident, {probe});
    ASSERT_TRUE(got.is_ok()) << kNodes[k] << ": " << got.status().to_string();
    EXPECT_DOUBLE_EQ(got->threshold, want->threshold) << kNodes[k];
    EXPECT_EQ(got->eligible_templates, want->eligible_templates) << kNodes[k];
    ASSERT_EQ(got->faces[0].candidates.size(), 1u) << kNodes[k] << ": the edge subject is cut at the final threshold";
    const auto& g = got->faces[0].candidates[0];
    const auto& w = want->faces[0].candidates[0];
    EXPECT_EQ(g.subject_ref, "person-7") << kNodes[k];
    ASSERT_TRUE(g.fpir.has_value() && w.fpir.has_value()) << kNodes[k];
    EXPECT_NEAR(*g.fpir, *w.fpir, 1e-12) << kNodes[k] << ": FPIR for the whole gallery, not a shard";
  }
}

// The seam alone: the responder's Status reaches the caller; a caller without the cluster's
// master key gets no answer (nothing sealed under its key opens), only its deadline.
TEST_F(ClusterFanOutTest, RpcCarriesTheRespondersStatusAndIgnoresAForeignKey) {
  auto master = vault::SecretKey::from_hex(kMasterHex);
  ASSERT_TRUE(master.is_ok());
  auto& conn = nodes_[0]->connection();
  const std::string subject = "fv.rpc.test.echo";
  auto server = cluster::RpcServer::open(conn, *master, subject, "fv-test", [](std::span<const uint8_t> req) -> Result<vault::Bytes> {
    if (req.empty()) return invalid_argument("empty request");
    if (req.size() == 1 && req[0] == 0xBB) return vault::Bytes(1500000, 0xBB);  // more than NATS carries
    vault::Bytes out(req.rbegin(), req.rend());
    return out;
  });
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  auto r = cluster::rpc_scatter(conn, *master, {{subject, {1, 2, 3}}, {subject, {}}, {"fv.rpc.test.nobody", {1}}}, 3000);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 3u);
  using Delivery = cluster::RpcReply::Delivery;
  const auto& ok = (*r)[0];
  EXPECT_EQ(ok.delivery, Delivery::kAnswered);
  ASSERT_TRUE(ok.result.is_ok()) << ok.result.status().to_string();
  EXPECT_EQ(*ok.result, (vault::Bytes{3, 2, 1}));
  const auto& refused = (*r)[1];  // the responder's own error, answered
  EXPECT_EQ(refused.delivery, Delivery::kAnswered);
  EXPECT_EQ(refused.result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.result.status().message(), "empty request");
  EXPECT_EQ((*r)[2].delivery, Delivery::kNoResponder);
  EXPECT_EQ((*r)[2].result.status().code(), StatusCode::kUnavailable);

  // Over the servers' max_payload (1 MB here): a request is not sent, and an answer is replaced
  // by the reason, both at once rather than at the deadline.
  auto big = cluster::rpc_scatter(conn, *master, {{subject, vault::Bytes(1500000, 1)}, {subject, {0xBB}}}, 60000);
  ASSERT_TRUE(big.is_ok()) << big.status().to_string();
  for (const auto& b : *big) {
    EXPECT_EQ(b.delivery, Delivery::kAnswered);
    EXPECT_EQ(b.result.status().code(), StatusCode::kResourceExhausted) << b.result.status().to_string();
    EXPECT_NE(b.result.status().message().find("max_payload"), std::string::npos) << b.result.status().to_string();
  }

  auto foreign = vault::SecretKey::from_hex(std::string(64, '6'));
  ASSERT_TRUE(foreign.is_ok());
  auto f = cluster::rpc_scatter(conn, *foreign, {{subject, {1, 2, 3}}}, 500);
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ((*f)[0].delivery, Delivery::kNoReply);
  EXPECT_EQ((*f)[0].result.status().code(), StatusCode::kUnavailable);
}

// A forwarded basis carries the uid its sender claimed the reference for; the replica writes
// no subject that is not of its shard, nor one whose uid is missing.
TEST_F(ClusterFanOutTest, AForwardedBasisMustNameASubjectOfTheShard) {
  auto master = vault::SecretKey::from_hex(kMasterHex);
  ASSERT_TRUE(master.is_ok());
  const int s = nodes_[0]->hosted_shards().front();
  std::string elsewhere;
  while (elsewhere.empty() || cluster::shard_of(elsewhere, kShards) == s) elsewhere = vault::random_hex(8);
  for (const std::string& uid : {std::string(), std::string("not-a-uid"), elsewhere}) {
    service::ShardCall call{.op = "add_basis", .actor = kAdmin, .basis = consent("forged-" + uid), .subject = uid};
    auto r = cluster::rpc_scatter(nodes_[0]->connection(), *master,
                                  {{cluster::shard_rpc_subject(s, "call"), service::encode_call(call)}}, 5000);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ((*r)[0].result.status().code(), StatusCode::kInvalidArgument) << "uid '" << uid << "'";
  }
  auto found = svcs_[0]->export_subject(kAdmin, "forged-" + elsewhere, false, std::nullopt);
  EXPECT_EQ(found.status().code(), StatusCode::kNotFound) << "nothing was written";
}

// A use case on a subject whose shard the node does not host runs on one of the shard's
// replicas: its result, its refusals and its receipt come back as if it had run here.
TEST_F(ClusterFanOutTest, UseCasesOnSubjectsOfUnhostedShardsAreForwarded) {
  ASSERT_EQ(gallery_->size(), size_t(kSubjects)) << "needs the gallery of the first test";
  auto& a = *svcs_[0];
  const auto hosted = nodes_[0]->hosted_shards();
  std::string ref;
  for (const auto& [r, uid] : *uids_)
    if (std::find(hosted.begin(), hosted.end(), cluster::shard_of(uid, kShards)) == hosted.end()) ref = r;
  ASSERT_FALSE(ref.empty()) << "every subject is on a shard node a hosts";
  const std::string uid = (*uids_)[ref];
  const int s = cluster::shard_of(uid, kShards);

  auto x = a.export_subject(kAdmin, ref, false, std::nullopt);
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  EXPECT_EQ((*x)["subject"]["reference"], ref) << x->dump();
  EXPECT_EQ((*x)["lawful_bases"].size(), 1u);
  EXPECT_EQ((*x)["lawful_bases"][0]["id"].get<int64_t>() % cluster::kMaxShards, s) << "ids are the cluster's";
  EXPECT_EQ(a.export_subject(kAdmin, ref, false, fs::path("/tmp")).status().code(), StatusCode::kUnavailable)
      << "images to a folder of this node cannot be written from another";

  // A second basis, withdrawn again: the subject stays.
  auto b2 = a.add_basis(kAdmin, {ref, service::BasisKind::kConsent, "form-2", {"investigation"}, std::nullopt});
  ASSERT_TRUE(b2.is_ok()) << b2.status().to_string();
  EXPECT_FALSE(b2->subject_created);
  EXPECT_EQ(b2->subject_uid, uid);
  auto w = a.withdraw_basis(kAdmin, b2->basis_id);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_FALSE(w->key_destroyed);

  // A review case names candidates of every shard by uid; node a resolves their references on
  // the shards it does not host too.
  std::mt19937 rng(11);
  const face::FaceTemplate mine = (*gallery_)[std::stoul(ref.substr(7))];
  auto found = a.search_templates(kAdmin, investigation(), {near(mine, rng, 0.04f)});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(nodes_[0]->catch_up(30000).is_ok());
  auto rc = a.review_show(kAdmin, found->review_case);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  ASSERT_EQ(rc->candidates.size(), 10u);
  EXPECT_EQ(rc->candidates[0].subject_ref, ref);
  for (const auto& k : rc->candidates) EXPECT_FALSE(k.subject_ref.empty()) << k.subject_uid;

  // An opt-out reaches every shard, hosted here or not; the check lists the enrolled match.
  auto o = a.optout_add_template(kAdmin, near(mine, rng, 0.01f));
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->enrolled_match_count, 1);
  auto check = a.optout_check(kAdmin);
  ASSERT_TRUE(check.is_ok()) << check.status().to_string();
  ASSERT_EQ(check->matches.size(), 1u);
  EXPECT_EQ(check->matches[0].subject_ref, ref);
  // Every shard refuses the face: a new subject on each, enrolled through node a.
  std::set<int> refused_on;
  for (int i = 0; i < 64 && refused_on.size() < size_t(kShards); ++i) {
    const std::string r = "optout-probe-" + std::to_string(i);
    auto nb = a.add_basis(kAdmin, consent(r));
    ASSERT_TRUE(nb.is_ok()) << nb.status().to_string();
    const int shard = cluster::shard_of(nb->subject_uid, kShards);
    if (refused_on.count(shard)) continue;
    auto refused = a.enroll_template(kAdmin, {r, nb->basis_id}, near(mine, rng, 0.01f));
    ASSERT_FALSE(refused.is_ok()) << r << " on shard " << shard;
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().to_string();
    refused_on.insert(shard);
  }
  EXPECT_EQ(refused_on.size(), size_t(kShards));

  // A photo larger than NATS carries in one message (the test servers keep the 1 MB default)
  // is refused at once, saying why, and nothing is written.
  const std::vector<uint8_t> large(1500000, 0x42);
  auto too_large = a.enroll(kAdmin, {ref, (*x)["lawful_bases"][0]["id"].get<int64_t>()}, large);
  EXPECT_EQ(too_large.status().code(), StatusCode::kResourceExhausted) << too_large.status().to_string();
  EXPECT_NE(too_large.status().message().find("max_payload"), std::string::npos) << too_large.status().to_string();

  // The replica's refusals come back with their codes.
  const service::Actor enroller{"enroller", service::Role::kEnroller};
  EXPECT_EQ(a.erase(enroller, ref).status().code(), StatusCode::kPermissionDenied);

  auto r = a.erase(kAdmin, ref, "forwarded erasure");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->subject_uid, uid);
  EXPECT_TRUE(r->key_destroyed);
  EXPECT_EQ(r->replicas.size(), size_t(kReplicas)) << "the receipt names the shard's replicas";
  EXPECT_EQ(std::count(r->replicas.begin(), r->replicas.end(), "a"), 0);
  EXPECT_GE(r->stream_messages_erased, 2);
  for (size_t k = 0; k < svcs_.size(); ++k) {
    auto again = svcs_[k]->search_templates(kAdmin, investigation(), {(*gallery_)[std::stoul(ref.substr(7))]});
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    for (const auto& c : again->faces[0].candidates) EXPECT_NE(c.subject_ref, ref) << kNodes[k];
  }
  ASSERT_TRUE(single_->erase(kAdmin, ref).is_ok());  // the anchor of the last test follows
  uids_->erase(ref);
  // The reference is free again, under a new uid.
  auto again = a.add_basis(kAdmin, consent(ref));
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_TRUE(again->subject_created);
  EXPECT_NE(again->subject_uid, uid);
}

// A photo travels with the forwarded call: enrolled and compared 1:1 on the shard's replica.
TEST_F(ClusterFanOutTest, PhotosOfSubjectsOnUnhostedShardsAreEnrolledAndComparedThere) {
  FV_REQUIRE_MODELS();
  const auto photo = test::sample_photos::photo("sheldon", 1);
  FV_REQUIRE_PATH(photo);
  auto& a = *svcs_[0];
  const auto hosted = nodes_[0]->hosted_shards();
  std::string ref;
  int64_t basis = 0;
  for (int i = 0; i < 40 && ref.empty(); ++i) {  // a new subject on a shard node a does not host
    const std::string r = "photo-" + std::to_string(i);
    auto b = a.add_basis(kAdmin, consent(r));
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    if (std::find(hosted.begin(), hosted.end(), cluster::shard_of(b->subject_uid, kShards)) == hosted.end()) {
      ref = r;
      basis = b->basis_id;
    }
  }
  ASSERT_FALSE(ref.empty());
  const auto bytes = test::file_bytes(photo);
  service::EnrollRequest er{ref, basis};
  er.keep_reference = true;
  auto e = a.enroll(kAdmin, er, bytes);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_TRUE(e->reference_kept);
  EXPECT_EQ(e->face_id % cluster::kMaxShards, basis % cluster::kMaxShards) << "ids are the cluster's";
  auto v = a.verify_subject(kAdmin, {"investigation", "case-1to1"}, ref, bytes);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->same);
  EXPECT_GT(v->similarity, 0.99);
  EXPECT_GT(v->box.width(), 0);
  // Unknown subjects are refused here, as on one vault.
  EXPECT_FALSE(a.verify_subject(kAdmin, {"investigation", "case-1to1"}, "nobody-at-all", bytes).is_ok());

  // A reviewer working through node a sees the reference face kept on the other node's shard.
  auto found = a.search(kAdmin, investigation(), bytes);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(nodes_[0]->catch_up(30000).is_ok());
  auto rc = a.review_show(kAdmin, found->review_case);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  ASSERT_FALSE(rc->candidates.empty());
  EXPECT_EQ(rc->candidates[0].subject_ref, ref);
  EXPECT_TRUE(rc->candidates[0].reference_available);
  auto crop = a.review_reference_image(kAdmin, found->review_case, rc->candidates[0].id);
  ASSERT_TRUE(crop.is_ok()) << crop.status().to_string();
  ASSERT_GT(crop->jpeg.size(), 100u);
  EXPECT_EQ(crop->jpeg[0], 0xFF);
  EXPECT_EQ(crop->jpeg[1], 0xD8) << "a JPEG";
  ASSERT_GT(rc->candidates.size(), 1u);
  EXPECT_EQ(a.review_reference_image(kAdmin, found->review_case, rc->candidates[1].id).status().code(),
            StatusCode::kNotFound)
      << "a candidate enrolled without a reference crop has none, on whichever shard";
}

// The reads over every chain and the retention run cover the shards a node does not host:
// their replicas read, verify and expire them for it.
TEST_F(ClusterFanOutTest, AuditReportAndRetentionCoverShardsTheNodeDoesNotHost) {
  ASSERT_GE(uids_->size(), size_t(kSubjects) - 1) << "needs the gallery of the first test";
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto& a = *svcs_[0];
  const auto hosted = nodes_[0]->hosted_shards();
  ASSERT_LT(hosted.size(), size_t(kShards)) << "node a must miss some shards for this test";
  // A subject of the unhosted shard holding the most subjects: uids are random, and the chain
  // asserted long below is that shard's (its basis_add and enroll entries).
  std::map<int, int> subjects_on;
  for (const auto& [r, uid] : *uids_) ++subjects_on[cluster::shard_of(uid, kShards)];
  std::string away_ref;
  int most = 0;
  for (const auto& [r, uid] : *uids_) {
    const int sh = cluster::shard_of(uid, kShards);
    if (std::find(hosted.begin(), hosted.end(), sh) == hosted.end() && subjects_on[sh] > most) {
      most = subjects_on[sh];
      away_ref = r;
    }
  }
  ASSERT_FALSE(away_ref.empty());

  // audit show of a subject on an unhosted shard: its basis and enrollment, from its shard's chain.
  service::AuditFilter f;
  f.subject = away_ref;
  f.limit = 100;
  auto page = a.audit_show(kAdmin, f);
  ASSERT_TRUE(page.is_ok()) << page.status().to_string();
  std::set<std::string> actions;
  for (const auto& e : page->entries) actions.insert(e.action);
  // The whole chain of that shard, read in pages of ~2 kB through node a, is the chain its
  // replica holds, entry for entry.
  const int away_shard = cluster::shard_of((*uids_)[away_ref], kShards);
  service::AuditFilter every;
  auto all_via_a = a.audit_show(kAdmin, every);
  ASSERT_TRUE(all_via_a.is_ok()) << all_via_a.status().to_string();
  size_t holder = 1;
  while (holder < nodes_.size() && !nodes_[holder]->shard(away_shard)) ++holder;
  ASSERT_LT(holder, nodes_.size());
  auto db = vault::Db::open(nodes_[holder]->shard(away_shard)->dir / "vault.db", false);
  ASSERT_TRUE(db.is_ok());
  auto hashes = db->prepare("SELECT hash FROM audit ORDER BY seq");
  ASSERT_TRUE(hashes.is_ok());
  std::set<std::string> via_a;
  for (const auto& e : all_via_a->entries) via_a.insert(e.hash);
  size_t chain = 0;
  while (*hashes->step()) {
    ++chain;
    EXPECT_TRUE(via_a.count(hashes->text(0))) << "entry " << chain << " of shard " << away_shard << "'s chain";
  }
  EXPECT_GT(chain, 10u) << "a chain long enough for several pages";
  EXPECT_TRUE(actions.count("basis_add")) << "the basis is in the chain of a shard node a does not host";
  EXPECT_TRUE(actions.count("enroll"));

  // A filtered, limited page is each chain's own page merged by time: the same entries, in
  // the same order, and the same counts as filtering the whole log (each page read by node a
  // through the others in pages of ~2 kB, after the last entry of the page before).
  ASSERT_GT(std::count_if(all_via_a->entries.begin(), all_via_a->entries.end(),
                          [](const auto& e) { return e.action == "enroll"; }),
            40)
      << "the first filter's limit cuts the page";
  std::vector<service::AuditFilter> filters(4);
  filters[0].action = "enroll";
  filters[0].limit = 40;
  filters[1].action = "enroll";
  filters[1].limit = 7;
  filters[1].newest_first = true;
  filters[2].action = "basis_add";
  filters[2].actor = kAdmin.name;
  filters[2].limit = 25;
  filters[2].newest_first = true;
  filters[3].action = "enroll";
  filters[3].subject = away_ref;
  for (const auto& f : filters) {
    // Reading is audited (of the subject, when one is asked for): the page counts one more.
    service::AuditFilter of_subject;
    of_subject.subject = f.subject;
    auto scope = a.audit_show(kAdmin, of_subject);
    ASSERT_TRUE(scope.is_ok()) << scope.status().to_string();
    std::vector<vault::AuditEntry> matched;
    for (const auto& e : scope->entries)
      if (e.action == *f.action && (!f.actor || e.actor == *f.actor)) matched.push_back(e);
    const size_t matched_all = matched.size();
    if (f.newest_first)
      std::stable_sort(matched.begin(), matched.end(), [](const auto& x, const auto& y) { return y.ts < x.ts; });
    auto got = a.audit_show(kAdmin, f);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_EQ(got->total, scope->total + 1);
    EXPECT_EQ(got->matched, matched_all);
    ASSERT_EQ(got->entries.size(), f.limit ? std::min(f.limit, matched_all) : matched_all);
    std::set<std::string> allowed, seen_hashes;
    for (const auto& e : matched) allowed.insert(e.hash);
    for (size_t k = 0; k < got->entries.size(); ++k) {
      // Entries of one instant in several chains may come in either order; their times may not.
      EXPECT_EQ(got->entries[k].ts, matched[k].ts) << "entry " << k << " of " << *f.action;
      EXPECT_TRUE(allowed.count(got->entries[k].hash)) << "entry " << k;
      EXPECT_TRUE(seen_hashes.insert(got->entries[k].hash).second) << "entry " << k << " twice";
    }
  }

  // Every node verifies every chain, and counts the same entries and enrolments. (Verifying
  // writes nothing; a report is audited in the meta chain, so the reports come after.)
  std::vector<int64_t> verified, enrolments;
  for (size_t k = 0; k < svcs_.size(); ++k) {
    auto v = svcs_[k]->audit_verify(kAdmin);
    ASSERT_TRUE(v.is_ok()) << kNodes[k] << ": " << v.status().to_string();
    EXPECT_TRUE(v->ok) << kNodes[k] << ": " << v->message;
    verified.push_back(v->entries);
  }
  for (size_t k = 0; k < svcs_.size(); ++k) {
    auto report = svcs_[k]->transparency_report(kAdmin, "2000-01-01", "2200-01-01");
    ASSERT_TRUE(report.is_ok()) << kNodes[k] << ": " << report.status().to_string();
    enrolments.push_back(report->at("totals").at("enrolments").get<int64_t>());
  }
  EXPECT_EQ(verified[0], verified[1]);
  EXPECT_EQ(verified[0], verified[2]);
  EXPECT_EQ(enrolments[0], enrolments[1]);
  EXPECT_EQ(enrolments[0], enrolments[2]);
  EXPECT_GE(enrolments[0], static_cast<int64_t>(kSubjects)) << "every shard's enrolments, hosted or not";
  // A chain altered on the replicas of an unhosted shard is found through node a, and named.
  const int away = cluster::shard_of((*uids_)[away_ref], kShards);
  auto tamper = [&](const char* actor_sql) {
    for (size_t k = 1; k < nodes_.size(); ++k) {
      auto* h = nodes_[k]->shard(away);
      if (!h) continue;
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open((h->dir / "vault.db").c_str(), &db), SQLITE_OK);
      sqlite3_busy_timeout(db, 10000);
      const std::string sql = std::string("DROP TRIGGER audit_append_only_update; UPDATE audit SET actor=") + actor_sql +
                              " WHERE seq=1; CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit "
                              "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";
      EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
      sqlite3_close(db);
    }
  };
  tamper("actor || '-mallory'");
  auto bad = a.audit_verify(kAdmin);
  ASSERT_TRUE(bad.is_ok()) << bad.status().to_string();
  EXPECT_FALSE(bad->ok);
  EXPECT_EQ(bad->problem, "altered");
  EXPECT_EQ(bad->first_bad_seq, 1);
  EXPECT_NE(bad->message.find("shard " + std::to_string(away) + ":"), std::string::npos) << bad->message;
  tamper("substr(actor, 1, length(actor) - 8)");
  auto good = a.audit_verify(kAdmin);
  ASSERT_TRUE(good.is_ok()) << good.status().to_string();
  EXPECT_TRUE(good->ok) << good->message;
  const service::Actor enroller{"enroller", service::Role::kEnroller};
  EXPECT_EQ(a.audit_verify(enroller).status().code(), StatusCode::kPermissionDenied);

  // A dry run looking far ahead lists the subjects of every shard.
  auto dry = a.expire(kAdmin, std::string("2200-01-01T00:00:00Z"), true);
  ASSERT_TRUE(dry.is_ok()) << dry.status().to_string();
  std::set<std::string> due;
  for (const auto& r : dry->erased) due.insert(r.subject_ref);
  for (const auto& [r, uid] : *uids_) EXPECT_TRUE(due.count(r)) << r << " on shard " << cluster::shard_of(uid, kShards);

  // A basis that expires in five seconds, of a new subject on a shard node a does not host: the
  // retention run through node a erases it there, stream messages and replicas included.
  std::string ref;
  std::mt19937 rng(77);
  for (int i = 0; i < 40 && ref.empty(); ++i) {
    const std::string r = "expiring-" + std::to_string(i);
    auto when = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + std::chrono::seconds(5));
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&when));
    auto b = a.add_basis(kAdmin, {r, service::BasisKind::kConsent, "form-" + r, {"investigation"}, std::string(buf)});
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    const int s = cluster::shard_of(b->subject_uid, kShards);
    if (std::find(hosted.begin(), hosted.end(), s) != hosted.end()) {
      ASSERT_TRUE(a.erase(kAdmin, r).is_ok());
      continue;
    }
    ASSERT_TRUE(a.enroll_template(kAdmin, {r, b->basis_id}, random_template(rng)).is_ok());
    ref = r;
  }
  ASSERT_FALSE(ref.empty());
  std::this_thread::sleep_for(std::chrono::seconds(7));  // the basis expires (whole seconds, rounded down)
  auto run = a.expire(kAdmin, std::nullopt, false);
  ASSERT_TRUE(run.is_ok()) << run.status().to_string();
  auto it = std::find_if(run->erased.begin(), run->erased.end(), [&](const auto& r) { return r.subject_ref == ref; });
  ASSERT_NE(it, run->erased.end()) << "the expired subject of an unhosted shard was not erased";
  EXPECT_TRUE(it->key_destroyed);
  EXPECT_EQ(it->replicas.size(), size_t(kReplicas)) << "the receipt names the shard's replicas";
  EXPECT_GE(it->stream_messages_erased, 2);
  auto gone = a.export_subject(kAdmin, ref, false, std::nullopt);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound) << gone.status().to_string();
}

// The vault commands of the CLI run on a cluster with --cluster: a temporary client node
// (cli/cluster_client.h) that hosts no shard, so every use case goes to the shards' replicas.
TEST_F(ClusterFanOutTest, VaultCommandsRunOnTheClusterThroughAClientNode) {
  std::string urls;
  for (const auto& u : nats_->urls()) urls += (urls.empty() ? "" : ",") + u;
  auto cli = [&](std::vector<std::string> args) {
    args.push_back("--cluster");
    args.push_back(urls);
    return test::run_facevault(args, true);
  };
  auto last_json = [](const test::RunResult& r) {
    const auto lines = r.lines();
    return lines.empty() ? nlohmann::json() : nlohmann::json::parse(lines.back(), nullptr, false);
  };

  auto basis = cli({"basis", "add", "--subject", "cli-subject", "--kind", "consent", "--reference", "form-cli",
                    "--purpose", "investigation", "--json"});
  ASSERT_EQ(basis.exit_code, 0) << basis.out;
  const auto b = last_json(basis);
  ASSERT_TRUE(b.is_object()) << basis.out;
  const int64_t basis_id = b.at("id").get<int64_t>();

  // What the client wrote is on the cluster: node a exports it, wherever its shard is.
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto x = svcs_[0]->export_subject(kAdmin, "cli-subject", false, std::nullopt);
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  EXPECT_EQ((*x)["lawful_bases"][0]["id"].get<int64_t>(), basis_id);

  auto shown = cli({"audit", "show", "--subject", "cli-subject", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_NE(shown.out.find("\"basis_add\""), std::string::npos) << shown.out;
  auto verified = cli({"audit", "verify", "--json"});
  ASSERT_EQ(verified.exit_code, 0) << verified.out;
  EXPECT_EQ(last_json(verified).value("ok", false), true) << verified.out;

  // What one vault alone offers is refused with a reason, not run on an empty vault.
  auto rotate = cli({"key", "rotate"});
  EXPECT_NE(rotate.exit_code, 0);
  EXPECT_NE(rotate.out.find("not on a cluster"), std::string::npos) << rotate.out;
  auto both = test::run_facevault({"audit", "verify", "--vault", "/nonexistent", "--cluster", urls}, true);
  EXPECT_NE(both.exit_code, 0) << "--vault and --cluster exclude each other";
  auto denied = cli({"erase", "cli-subject", "--role", "investigator"});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.out.find("investigator"), std::string::npos) << denied.out;

  const auto photo = test::sample_photos::photo("sheldon", 1);
  if (test::models_present() && fs::exists(photo)) {
    auto enrolled = cli({"enroll", "--subject", "cli-subject", "--basis", std::to_string(basis_id), photo.string(), "--json"});
    ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out;
    // A manifest runs row by row on a cluster: the good row enrolled, the missing photo reported (exit 3).
    const fs::path manifest = *root_ / "cli-manifest.csv";
    std::ofstream(manifest) << photo.string() << ",cli-subject," << basis_id << "\n"
                            << (*root_ / "no-such-photo.jpg").string() << ",cli-subject," << basis_id << "\n";
    auto rows = cli({"enroll", "--manifest", manifest.string(), "--json", "--no-progress"});
    EXPECT_EQ(rows.exit_code, 3) << rows.out;
    EXPECT_NE(rows.out.find("no-such-photo.jpg"), std::string::npos) << rows.out;
    auto found = cli({"search", photo.string(), "--purpose", "investigation", "--case", "case-cli", "--json"});
    ASSERT_EQ(found.exit_code, 0) << found.out;
    const auto f = last_json(found);
    ASSERT_TRUE(f.is_object()) << found.out;
    ASSERT_FALSE(f["faces"].empty()) << found.out;
    // The same photo was enrolled for photo-N by an earlier test: the two tie at the top.
    const auto& cands = f["faces"][0]["candidates"];
    EXPECT_TRUE(std::any_of(cands.begin(), cands.end(), [](const auto& c) { return c["subject"] == "cli-subject"; }))
        << found.out;
  } else {
    std::cout << "[ note ] models or sample photos absent: the CLI's enroll and search on a cluster are not run\n";
  }

  auto erased = cli({"erase", "cli-subject", "--json"});
  ASSERT_EQ(erased.exit_code, 0) << erased.out;
  const auto receipt = last_json(erased);
  ASSERT_TRUE(receipt.is_object()) << erased.out;
  EXPECT_EQ(receipt["replicas"].size(), size_t(kReplicas)) << erased.out;
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  EXPECT_EQ(svcs_[0]->export_subject(kAdmin, "cli-subject", false, std::nullopt).status().code(), StatusCode::kNotFound);
  // The client's temporary folder is gone.
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_EQ(e.path().filename().string().rfind("facevault-cluster-client-", 0), std::string::npos) << e.path();
}

// Runs last: closes the services of nodes b and c, so only node a answers searches. Their
// replicas keep applying the streams, so node a's writes (the search's audit entry in the meta
// stream) are still acknowledged by two replicas.
TEST_F(ClusterFanOutTest, ShardsWithoutALiveReplicaFailTheSearchOrAreNamedWhenPartialIsAllowed) {
  ASSERT_EQ(gallery_->size(), size_t(kSubjects)) << "needs the gallery of the first test";
  auto& a = *svcs_[0];
  const auto hosted = nodes_[0]->hosted_shards();
  std::set<int> orphaned;  // shards whose replicas are b and c
  for (int s = 0; s < kShards; ++s)
    if (std::find(hosted.begin(), hosted.end(), s) == hosted.end()) orphaned.insert(s);
  ASSERT_FALSE(orphaned.empty()) << "node a hosts every shard";

  svcs_[2].reset();
  svcs_[1].reset();
  // One orphaned shard gets a subscriber in its queue group that takes requests and never
  // answers: that shard fails at the deadline, the others at once (no node serves them).
  const int silent = *orphaned.begin();
  char queue[16];
  std::snprintf(queue, sizeof queue, "fv-shard-%02d", silent);
  natsSubscription* mute = nullptr;
  ASSERT_EQ(natsConnection_QueueSubscribeSync(&mute, nodes_[0]->connection().raw(),
                                              cluster::shard_rpc_subject(silent, "search").c_str(), queue),
            NATS_OK);
  // No replica of `orphaned` answers: no node serves them.
  std::mt19937 rng(7);
  const auto probe = near((*gallery_)[0], rng, 0.04f);
  auto strict = a.search_templates(kAdmin, investigation(), {probe});
  ASSERT_FALSE(strict.is_ok());
  EXPECT_EQ(strict.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(strict.status().message().find("shard " + std::to_string(silent) + ": no reply"), std::string::npos)
      << strict.status().message();

  auto req = investigation();
  req.allow_partial = true;
  auto partial = a.search_templates(kAdmin, req, {probe});
  ASSERT_TRUE(partial.is_ok()) << partial.status().to_string();
  EXPECT_EQ(std::set<int>(partial->shards_missing.begin(), partial->shards_missing.end()), orphaned);
  // What came back is the single vault's ranking without the subjects of the missing shards.
  auto everyone = investigation();
  everyone.top_k = kSubjects;
  auto all = single_->search_templates(kAdmin, everyone, {probe});
  ASSERT_TRUE(all.is_ok());
  std::vector<service::Candidate> hosted_only;
  for (const auto& c : all->faces[0].candidates)
    if (!orphaned.count(cluster::shard_of((*uids_)[c.subject_ref], kShards))) hosted_only.push_back(c);
  ASSERT_FALSE(partial->faces[0].candidates.empty());
  std::vector<service::Candidate> got;  // the subjects the single vault holds too (earlier tests added others)
  for (const auto& c : partial->faces[0].candidates) {
    EXPECT_EQ(orphaned.count(cluster::shard_of(c.subject_uid, kShards)), 0u) << c.subject_ref << " is on a missing shard";
    if (uids_->count(c.subject_ref) && (*uids_)[c.subject_ref] == c.subject_uid) got.push_back(c);
  }
  ASSERT_GE(got.size(), 5u);
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].subject_ref, hosted_only[k].subject_ref) << "rank " << k;
    EXPECT_NEAR(got[k].similarity, hosted_only[k].similarity, 1e-6) << "rank " << k;
  }
  // The audit entry says what was not searched. It is in the meta chain: `audit show` over
  // every chain fails while a shard has no live replica (never silently incomplete).
  service::AuditFilter af;
  af.action = "search";
  af.limit = 1;
  af.newest_first = true;
  EXPECT_EQ(a.audit_show(kAdmin, af).status().code(), StatusCode::kUnavailable);
  auto page = a.meta_service().audit_show(kAdmin, af);
  ASSERT_TRUE(page.is_ok()) << page.status().to_string();
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].details.value("partial", false), true);
  EXPECT_EQ(page->entries[0].details["shards_missing"].size(), orphaned.size());

  natsSubscription_Unsubscribe(mute);
  natsSubscription_Destroy(mute);

  // A retention run through node a runs on every shard it can reach and names the others,
  // instead of stopping at the first that fails.
  auto run = a.expire(kAdmin, std::nullopt, true);
  ASSERT_TRUE(run.is_ok()) << run.status().to_string();
  std::set<int> failed;
  for (const auto& [s, why] : run->failed_shards) {
    failed.insert(s);
    EXPECT_NE(why.find("unavailable"), std::string::npos) << "shard " << s << ": " << why;
  }
  EXPECT_EQ(failed, orphaned);
  EXPECT_TRUE(run->deferred_shards.empty());
  EXPECT_EQ(service::render::expire_report(*run)["failed_shards"].size(), orphaned.size());

  // An opt-out reaches every shard it can and names the others; sent again, it adds nothing
  // where it is already recorded.
  auto optouts_on_a = [&] {
    int64_t n = 0;
    for (int s : hosted) n += *test::raw_db(*a.shard_service(s)).query_int("SELECT count(*) FROM optout");
    return n;
  };
  // The placement puts a served shard after the first orphaned one: a run that stopped at the
  // first failure would leave it out.
  ASSERT_GT(*std::max_element(hosted.begin(), hosted.end()), *orphaned.begin());
  const int64_t before = optouts_on_a();
  const auto face = random_template(rng);
  auto opt = a.optout_add_template(kAdmin, face);
  ASSERT_FALSE(opt.is_ok());
  EXPECT_EQ(opt.status().code(), StatusCode::kUnavailable) << opt.status().to_string();
  EXPECT_NE(opt.status().message().find("every shard but " + std::to_string(*orphaned.begin())), std::string::npos)
      << opt.status().message();
  EXPECT_EQ(optouts_on_a(), before + static_cast<int64_t>(hosted.size()));
  ASSERT_FALSE(a.optout_add_template(kAdmin, face).is_ok());
  EXPECT_EQ(optouts_on_a(), before + static_cast<int64_t>(hosted.size())) << "the retry added a second entry";
}

TEST(ShardSearchWire, RoundTripsExactlyAndRefusesWhatIsMalformed) {
  service::SearchPlan plan;
  plan.threshold = 0.3141592653589793;
  plan.templates = 123456789;
  plan.top = 17;
  std::mt19937 rng(3);
  const auto t = random_template(rng);
  auto req = service::decode_shard_request(service::encode_search_request("p", plan, {&t, nullptr}));
  ASSERT_TRUE(req.is_ok()) << req.status().to_string();
  EXPECT_EQ(req->purpose, "p");
  EXPECT_EQ(req->plan.threshold, plan.threshold);
  EXPECT_EQ(req->plan.templates, plan.templates);
  EXPECT_EQ(req->plan.top, plan.top);
  ASSERT_EQ(req->probes.size(), 1u);
  EXPECT_EQ(req->probes[0].values, t.values);  // bit for bit
  EXPECT_EQ(req->probes[0].model_id, t.model_id);

  service::ShardAnswer answer;
  answer.count = {41, 43};
  answer.faces.resize(2);
  answer.faces[1].push_back({"ref", "0123456789abcdef", 0.1 + 0.2, 1e-7, std::nullopt});
  auto back = service::decode_shard_answer(service::encode_shard_answer(answer), 2);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->count.subjects, 41);
  EXPECT_EQ(back->count.templates, 43);
  ASSERT_EQ(back->faces[1].size(), 1u);
  EXPECT_EQ(back->faces[1][0].similarity, 0.1 + 0.2);
  EXPECT_EQ(back->faces[1][0].fmr, 1e-7);
  EXPECT_FALSE(back->faces[1][0].fpir.has_value());
  EXPECT_EQ(service::decode_shard_answer(service::encode_shard_answer(answer), 3).status().code(), StatusCode::kCorruptData);

  for (std::string bad : {"", "[]", "{\"op\":\"search\",\"purpose\":\"p\"}", "{\"op\":\"drop\",\"purpose\":\"p\"}",
                          "{\"op\":\"search\",\"purpose\":\"p\",\"threshold\":0,\"templates\":1,\"top\":1,\"probes\":[{\"model\":\"m\",\"version\":1,\"values\":[]}]}",
                          "{\"op\":\"count\",\"purpose\":\"p\"}", "{\"op\":"}) {
    auto r = service::decode_shard_request(vault::as_bytes(bad));
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << bad;
  }
  EXPECT_EQ(service::decode_shard_answer(vault::as_bytes(std::string("{\"subjects\":-1,\"templates\":0,\"faces\":[]}")), 0)
                .status().code(),
            StatusCode::kCorruptData);
  EXPECT_EQ(service::decode_shard_answer(vault::as_bytes(std::string("{\"faces\":[[]]}")), 1).status().code(),
            StatusCode::kCorruptData);
}

// The forwarded calls of the reads over every chain and of retention: what a replica answers
// round-trips, and a truncated answer is refused, never read as a shorter one.
TEST(ShardCallWire, RetentionAuditAndReferenceAnswersRoundTripAndTruncationsAreRefused) {
  service::ShardCall c;
  c.op = "expire";
  c.actor = {"ops", service::Role::kAuditor};
  c.as_of = "2026-12-06T10:00:00.000Z";
  c.dry_run = true;
  c.audit.since = "2026-01-01T00:00:00.000Z";
  c.audit.action = "enroll";
  c.audit.actor = "ops";
  c.audit.limit = 25;
  c.audit.newest_first = true;
  c.audit.by_time = true;
  c.audit.after_seq = 12;
  c.audit.after_ts = "2026-03-01T00:00:00.000Z";
  c.audit_counts = true;
  c.subject = "0123456789abcdef";
  auto call = service::decode_call(service::encode_call(c));
  ASSERT_TRUE(call.is_ok()) << call.status().to_string();
  EXPECT_EQ(call->op, "expire");
  EXPECT_EQ(call->actor.role, service::Role::kAuditor);
  EXPECT_EQ(call->as_of, c.as_of);
  EXPECT_TRUE(call->dry_run);
  EXPECT_EQ(call->audit.since, c.audit.since);
  EXPECT_EQ(call->audit.action, c.audit.action);
  EXPECT_FALSE(call->audit.outcome.has_value());
  EXPECT_EQ(call->audit.actor, c.audit.actor);
  EXPECT_EQ(call->audit.limit, 25u);
  EXPECT_TRUE(call->audit.newest_first);
  EXPECT_TRUE(call->audit.by_time);
  EXPECT_EQ(call->audit.after_seq, 12);
  EXPECT_EQ(call->audit.after_ts, c.audit.after_ts);
  EXPECT_TRUE(call->audit_counts);
  EXPECT_EQ(call->subject, c.subject);
  // A sender of an earlier version sends no "audit" object: its read is the whole chain in
  // seq order, after `after_seq`.
  auto older_call = nlohmann::json::from_cbor(service::encode_call(c));
  older_call.erase("audit");
  const auto older_call_bytes = nlohmann::json::to_cbor(older_call);
  auto call3 = service::decode_call(std::span<const uint8_t>(older_call_bytes.data(), older_call_bytes.size()));
  ASSERT_TRUE(call3.is_ok()) << call3.status().to_string();
  EXPECT_EQ(call3->audit.since, c.audit.since);
  EXPECT_EQ(call3->audit.after_seq, 12);
  EXPECT_FALSE(call3->audit.by_time);
  EXPECT_FALSE(call3->audit.action.has_value());
  EXPECT_EQ(call3->audit.limit, 0u);
  EXPECT_FALSE(call3->audit_counts);

  service::ExpireReport rep;
  rep.as_of = c.as_of;
  service::EraseReceipt r;
  r.subject_ref = "s-1";
  r.subject_uid = "0123456789abcdef";
  r.reason = "retention";
  r.key_destroyed = true;
  r.replicas = {"b", "c"};
  r.stream_messages_erased = 3;
  rep.erased = {r, r};
  service::EraseReceipt lapse = r;
  lapse.key_destroyed = false;
  lapse.basis_id = 5 * 1024 + 3;
  lapse.completion_error = "unavailable: the stream did not answer";
  rep.bases_lapsed = {lapse};
  rep.failed_shards = {{2, "unavailable: no replica answered"}};
  auto rep2 = service::decode_expire_report(service::encode_result(rep));
  ASSERT_TRUE(rep2.is_ok()) << rep2.status().to_string();
  ASSERT_EQ(rep2->erased.size(), 2u);
  EXPECT_EQ(rep2->erased[1].replicas, r.replicas);
  EXPECT_EQ(rep2->erased[1].stream_messages_erased, 3);
  EXPECT_TRUE(rep2->erased[0].key_destroyed);
  EXPECT_FALSE(rep2->erased[0].basis_id.has_value());
  ASSERT_EQ(rep2->bases_lapsed.size(), 1u);
  EXPECT_EQ(rep2->bases_lapsed[0].basis_id, lapse.basis_id);
  EXPECT_FALSE(rep2->bases_lapsed[0].key_destroyed);
  EXPECT_EQ(rep2->failed_shards, rep.failed_shards);
  EXPECT_EQ(rep2->bases_lapsed[0].completion_error, lapse.completion_error);
  EXPECT_EQ(service::render::erase_receipt(rep2->bases_lapsed[0])["incomplete"], lapse.completion_error);
  // A report from a node of the release before (no lapsed bases, failures or basis ids) reads.
  nlohmann::json older = nlohmann::json::from_cbor(service::encode_result(rep));
  older.erase("bases_lapsed");
  older.erase("failed");
  for (auto& e : older["erased"]) {
    e.erase("basis_id");
    e.erase("completion_error");
  }
  const auto older_bytes = nlohmann::json::to_cbor(older);
  auto rep3 = service::decode_expire_report(std::span<const uint8_t>(older_bytes.data(), older_bytes.size()));
  ASSERT_TRUE(rep3.is_ok()) << rep3.status().to_string();
  EXPECT_EQ(rep3->erased.size(), 2u);
  EXPECT_TRUE(rep3->bases_lapsed.empty());

  service::ShardAudit audit;
  vault::AuditEntry e;
  e.seq = 7;
  e.ts = "2026-12-06T10:00:00.000Z";
  e.actor = "ops";
  e.role = "admin";
  e.action = "enroll";
  e.subjects = {"0123456789abcdef"};
  e.details = {{"face_id", 3}, {"note", "é"}};
  e.prev_hash = std::string(64, 'a');
  e.hash = std::string(64, 'b');
  audit.entries = {e};
  audit.purposes = {"investigation"};
  auto audit2 = service::decode_shard_audit(service::encode_result(audit));
  ASSERT_TRUE(audit2.is_ok()) << audit2.status().to_string();
  ASSERT_EQ(audit2->entries.size(), 1u);
  EXPECT_EQ(audit2->entries[0].canonical(), e.canonical()) << "what is hashed comes back unchanged";
  EXPECT_EQ(audit2->entries[0].hash, e.hash);
  EXPECT_EQ(audit2->entries[0].seq, 7);
  EXPECT_EQ(audit2->purposes, audit.purposes);

  vault::AuditVerifyReport v;
  v.ok = false;
  v.entries = 12;
  v.first_bad_seq = 4;
  v.problem = "altered";
  v.message = "entry 4 was altered";
  auto v2 = service::decode_verify_report(service::encode_result(v));
  ASSERT_TRUE(v2.is_ok()) << v2.status().to_string();
  EXPECT_FALSE(v2->ok);
  EXPECT_EQ(v2->first_bad_seq, 4);
  EXPECT_EQ(v2->problem, "altered");

  const service::ReviewImage img{{0xFF, 0xD8, 0xFF, 0x00, 0x01}};
  auto img2 = service::decode_review_image(service::encode_result(img));
  ASSERT_TRUE(img2.is_ok()) << img2.status().to_string();
  EXPECT_EQ(img2->jpeg, img.jpeg);

  // Pages: each about the size asked (at least one entry), in the order read, none lost.
  service::ShardAudit chain;
  for (int i = 1; i <= 50; ++i) {
    vault::AuditEntry x = e;
    x.seq = i;
    x.details = {{"n", std::string(100, 'x')}};
    chain.entries.push_back(x);
  }
  chain.total = 70;
  chain.matched = 50;
  std::vector<int64_t> seen;
  int pages = 0;
  for (service::ShardAudit rest = chain;; ++pages) {
    auto p = service::cut_audit_page(rest, 1000);
    ASSERT_FALSE(p.entries.empty());
    EXPECT_EQ(p.total, 70) << "the counts travel with the page";
    EXPECT_EQ(p.matched, 50);
    for (const auto& x : p.entries) seen.push_back(x.seq);
    if (!p.more) break;
    rest.entries.erase(rest.entries.begin(), rest.entries.begin() + static_cast<std::ptrdiff_t>(p.entries.size()));
    ASSERT_LT(pages, 60);
  }
  EXPECT_GT(pages, 3);
  ASSERT_EQ(seen.size(), 50u);
  for (size_t k = 0; k < seen.size(); ++k) EXPECT_EQ(seen[k], static_cast<int64_t>(k + 1));
  EXPECT_EQ(service::cut_audit_page(chain, 1).entries.size(), 1u) << "at least one entry per page";
  chain.more = true;
  EXPECT_TRUE(service::cut_audit_page(chain, 1 << 20).more) << "a page the reader cut short says more follow";
  chain.selected = true;
  auto counted = service::decode_shard_audit(service::encode_result(chain));
  ASSERT_TRUE(counted.is_ok());
  EXPECT_EQ(counted->total, 70);
  EXPECT_EQ(counted->matched, 50);
  EXPECT_TRUE(counted->selected);
  EXPECT_TRUE(service::cut_audit_page(chain, 1).selected);
  EXPECT_FALSE(audit2->total.has_value()) << "no counts unless asked";
  // A page from a node of the release before: no counts, not marked as selected.
  auto legacy = nlohmann::json::from_cbor(service::encode_result(chain));
  for (const char* k : {"total", "matched", "selected"}) legacy.erase(k);
  const auto legacy_bytes = nlohmann::json::to_cbor(legacy);
  auto old_page = service::decode_shard_audit(std::span<const uint8_t>(legacy_bytes.data(), legacy_bytes.size()));
  ASSERT_TRUE(old_page.is_ok()) << old_page.status().to_string();
  EXPECT_FALSE(old_page->selected);
  EXPECT_FALSE(old_page->total.has_value());

  // Every truncation of every answer is refused.
  const std::vector<vault::Bytes> answers = {service::encode_result(rep), service::encode_result(audit),
                                             service::encode_result(v), service::encode_result(img)};
  for (size_t k = 0; k < answers.size(); ++k) {
    for (size_t n = 0; n < answers[k].size(); ++n) {
      const std::span<const uint8_t> cut(answers[k].data(), n);
      const StatusCode code = k == 0   ? service::decode_expire_report(cut).status().code()
                              : k == 1 ? service::decode_shard_audit(cut).status().code()
                              : k == 2 ? service::decode_verify_report(cut).status().code()
                                       : service::decode_review_image(cut).status().code();
      EXPECT_EQ(code, StatusCode::kCorruptData) << "answer " << k << " cut at " << n;
    }
  }
}

}  // namespace
}  // namespace fv
