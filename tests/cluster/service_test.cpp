// ClusterService over three real nodes (3 nats-servers, 4 shards, 3 replicas): subjects placed
// on their shards through any node, the same top 10 (references and scores) as one vault
// holding the same templates, FPIR calibrated on the whole gallery, one audit entry and review
// case per search in the meta vault, and an erasure whose receipt names every replica and
// which no node's search returns afterwards.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/cluster_config.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "cluster/shard_map.h"
#include "service/cluster_service.h"
#include "service/service.h"
#include "server/sample_photos.h"
#include "support/nats_servers.h"
#include "vault/vault_test_util.h"
#include "support/paths.h"
#include "vault/crypto.h"
#include "vault/vault.h"

namespace fv {
namespace {

namespace fs = std::filesystem;

const std::string kMasterHex(64, '4');
const std::string kSigningHex(64, '8');
constexpr int kShards = 4;
constexpr int kSubjects = 48;

using test::random_template;
// `t` with noise of standard deviation `sigma` per value, normalised again.
face::FaceTemplate near(const face::FaceTemplate& t, std::mt19937& rng, float sigma) {
  return test::near_template(t, rng, sigma * std::sqrt(512.f));
}

class ClusterServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
    ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
    nats_ = new test::NatsTestCluster(3);
    ASSERT_TRUE(nats_->wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
    std::string tmpl = (fs::temp_directory_path() / "fv-csvc-XXXXXX").string();
    root_ = new fs::path(mkdtemp(tmpl.data()));
    auto conn = cluster::NatsConnection::connect({nats_->urls(), "test"});
    ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
    ASSERT_TRUE(cluster::init_cluster(**conn, kShards, 3).is_ok());
    for (const std::string name : {"a", "b", "c"}) {
      cluster::NodeOptions o;
      o.servers = nats_->urls();
      o.name = name;
      o.dir = *root_ / name;
      auto n = cluster::ClusterNode::start(o);
      ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
      nodes_.push_back(std::move(*n));
    }
    for (auto& n : nodes_) {
      auto cs = service::ClusterService::open(*n, {});
      ASSERT_TRUE(cs.is_ok()) << cs.status().to_string();
      svcs_.push_back(std::move(*cs));
    }
    // The single-node anchor: one vault with the same configuration.
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

  static test::NatsTestCluster* nats_;
  static fs::path* root_;
  static std::vector<std::unique_ptr<cluster::ClusterNode>> nodes_;
  static std::vector<std::unique_ptr<service::ClusterService>> svcs_;
  static service::Service* single_;
};
test::NatsTestCluster* ClusterServiceTest::nats_ = nullptr;
fs::path* ClusterServiceTest::root_ = nullptr;
std::vector<std::unique_ptr<cluster::ClusterNode>> ClusterServiceTest::nodes_;
std::vector<std::unique_ptr<service::ClusterService>> ClusterServiceTest::svcs_;
service::Service* ClusterServiceTest::single_ = nullptr;

const service::Actor kAdmin{"tester", service::Role::kAdmin};

service::BasisRequest consent(const std::string& ref) {
  return {ref, service::BasisKind::kConsent, "form-" + ref, {"investigation"}, std::nullopt};
}

TEST_F(ClusterServiceTest, SubjectsSpreadSearchMatchesOneVaultAndErasureReachesEveryReplica) {
  std::mt19937 rng(20261205);
  std::vector<face::FaceTemplate> gallery;
  std::set<int> shards_used;
  for (int i = 0; i < kSubjects; ++i) {
    const std::string ref = "person-" + std::to_string(i);
    auto& node = *svcs_[static_cast<size_t>(i % 3)];  // written through every node in turn
    auto b = node.add_basis(kAdmin, consent(ref));
    ASSERT_TRUE(b.is_ok()) << ref << ": " << b.status().to_string();
    EXPECT_TRUE(b->subject_created);
    const int shard = cluster::shard_of(b->subject_uid, kShards);
    EXPECT_EQ(b->basis_id % cluster::kMaxShards, shard) << "a basis id carries its shard";
    shards_used.insert(shard);
    gallery.push_back(random_template(rng));
    auto e = node.enroll_template(kAdmin, {ref, b->basis_id}, gallery.back());
    ASSERT_TRUE(e.is_ok()) << ref << ": " << e.status().to_string();
    // Only the shard's vaults hold the subject.
    EXPECT_NE(node.shard_service(shard), nullptr);

    auto sb = single_->add_basis(kAdmin, consent(ref));
    ASSERT_TRUE(sb.is_ok());
    ASSERT_TRUE(single_->enroll_template(kAdmin, {ref, sb->basis_id}, gallery.back()).is_ok());
  }
  EXPECT_GE(shards_used.size(), 3u) << "48 random uids fall on at least 3 of 4 shards";

  // A known reference through another node: the same subject, on the same shard.
  {
    auto again = svcs_[2]->add_basis(kAdmin, consent("person-0"));
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    EXPECT_FALSE(again->subject_created);
  }
  // Every node has applied every shard: each serves the whole gallery.
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  int64_t held = 0;
  for (int s = 0; s < kShards; ++s) held += svcs_[1]->shard_service(s)->vault_for_testing().catalog().count_faces().value();
  EXPECT_EQ(held, kSubjects);

  // The same probes give the same top 10 from every node as from the one vault.
  std::vector<face::FaceTemplate> probes = {near(gallery[3], rng, 0.03f), near(gallery[17], rng, 0.05f),
                                            random_template(rng)};
  service::SearchRequest req{"investigation", "case-1", 10};
  req.mode = "investigation";
  auto expected = single_->search_templates(kAdmin, req, probes);
  ASSERT_TRUE(expected.is_ok()) << expected.status().to_string();
  for (size_t n = 0; n < svcs_.size(); ++n) {
    auto got = svcs_[n]->search_templates(kAdmin, req, probes);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_EQ(got->eligible_templates, kSubjects);
    EXPECT_EQ(got->eligible_subjects, kSubjects);
    ASSERT_EQ(got->faces.size(), probes.size());
    for (size_t f = 0; f < probes.size(); ++f) {
      const auto& want = expected->faces[f].candidates;
      const auto& have = got->faces[f].candidates;
      ASSERT_EQ(have.size(), want.size()) << "node " << n << " face " << f;
      for (size_t k = 0; k < want.size(); ++k) {
        EXPECT_EQ(have[k].subject_ref, want[k].subject_ref) << "node " << n << " face " << f << " rank " << k;
        EXPECT_NEAR(have[k].similarity, want[k].similarity, 1e-6);
      }
    }
    EXPECT_EQ(got->faces[0].candidates[0].subject_ref, "person-3");
    EXPECT_FALSE(got->review_case.empty());
  }
  // Identification mode: the operating point is the one of the whole gallery, not of a shard.
  service::SearchRequest ident{"investigation", "case-2", 10};
  ident.mode = "identification";
  auto one = single_->search_templates(kAdmin, ident, probes);
  auto many = svcs_[0]->search_templates(kAdmin, ident, probes);
  ASSERT_TRUE(one.is_ok() && many.is_ok());
  EXPECT_DOUBLE_EQ(many->threshold, one->threshold);
  EXPECT_DOUBLE_EQ(many->max_fmr, one->max_fmr);
  ASSERT_FALSE(many->faces[0].candidates.empty());
  ASSERT_TRUE(many->faces[0].candidates[0].fpir.has_value());
  EXPECT_DOUBLE_EQ(*many->faces[0].candidates[0].fpir, *one->faces[0].candidates[0].fpir);

  // Each search is audited once, in the meta vault, which every node holds.
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  service::AuditFilter filter;
  filter.action = "search";
  auto audited = svcs_[2]->audit_show(kAdmin, filter);
  ASSERT_TRUE(audited.is_ok()) << audited.status().to_string();
  EXPECT_EQ(audited->matched, svcs_.size() + 1) << "three investigation searches and one identification";
  // ... and the shards' chains hold the enrollments: one log, read across the node's vaults.
  filter.action = "enroll";
  auto enrolled = svcs_[2]->audit_show(kAdmin, filter);
  ASSERT_TRUE(enrolled.is_ok()) << enrolled.status().to_string();
  EXPECT_EQ(enrolled->matched, static_cast<size_t>(kSubjects));
  service::AuditFilter about;
  about.subject = "person-3";
  auto history = svcs_[0]->audit_show(kAdmin, about);
  ASSERT_TRUE(history.is_ok()) << history.status().to_string();
  std::set<std::string> actions;
  for (const auto& e : history->entries) actions.insert(e.action);
  EXPECT_TRUE(actions.count("basis_add") && actions.count("enroll") && actions.count("search")) << history->entries.size();
  auto rc = svcs_[1]->review_show(kAdmin, many->review_case);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  EXPECT_EQ(rc->candidates.size(), many->faces[0].candidates.size() + many->faces[1].candidates.size() +
                                        many->faces[2].candidates.size());

  // Erasure through node b: the receipt names every replica of the shard, the subject's
  // messages are erased from its stream, and no node finds the subject any more.
  auto receipt = svcs_[1]->erase(kAdmin, "person-3", "test");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_TRUE(receipt->key_destroyed);
  EXPECT_EQ(receipt->replicas, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_GE(receipt->stream_messages_erased, 2) << "its basis and its enrollment";
  // The subject left the open review cases, which live in the meta vault: each of the four
  // searches above had it as the first candidate of its first probe.
  EXPECT_GE(receipt->review_candidates_removed, 4);
  size_t person3_in_case = 0;
  for (const auto& k : rc->candidates) person3_in_case += k.subject_uid == receipt->subject_uid ? 1 : 0;
  EXPECT_GE(person3_in_case, 1u);
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  for (auto& svc : svcs_) {
    auto left = svc->review_show(kAdmin, many->review_case);
    ASSERT_TRUE(left.is_ok()) << left.status().to_string();
    EXPECT_EQ(left->status, "open");
    EXPECT_EQ(left->candidates.size(), rc->candidates.size() - person3_in_case);
    for (const auto& k : left->candidates) EXPECT_NE(k.subject_uid, receipt->subject_uid);
  }
  {
    service::AuditFilter left_cases;
    left_cases.action = "review_leave";
    auto entries = svcs_[0]->audit_show(kAdmin, left_cases);
    ASSERT_TRUE(entries.is_ok()) << entries.status().to_string();
    ASSERT_EQ(entries->matched, 1u) << "one entry in the meta chain for the cases the erasure left";
    EXPECT_EQ(entries->entries[0].details["candidacies"].get<int64_t>(), receipt->review_candidates_removed);
  }
  // No explicit catch-up here: a node's search first applies what its shard streams hold.
  service::SearchRequest after{"investigation", "case-3", 10};
  after.mode = "investigation";
  for (auto& svc : svcs_) {
    auto got = svc->search_templates(kAdmin, after, {probes[0]});
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_EQ(got->eligible_templates, kSubjects - 1);
    for (const auto& c : got->faces[0].candidates) EXPECT_NE(c.subject_ref, "person-3");
  }
  auto gone = svcs_[0]->erase(kAdmin, "person-3", "again");
  ASSERT_FALSE(gone.is_ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  // The reference directory forgot the reference: a new subject under it is a new uid.
  auto reborn = svcs_[2]->add_basis(kAdmin, consent("person-3"));
  ASSERT_TRUE(reborn.is_ok()) << reborn.status().to_string();
  EXPECT_TRUE(reborn->subject_created);
  EXPECT_NE(reborn->subject_uid, receipt->subject_uid);

  // Withdrawal by the id the client got (it carries the shard) through yet another node.
  auto b5 = svcs_[0]->add_basis(kAdmin, consent("person-5"));
  ASSERT_TRUE(b5.is_ok());
  auto w = svcs_[2]->withdraw_basis(kAdmin, b5->basis_id);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_FALSE(w->key_destroyed) << "the first basis is still in force";
  auto unknown = svcs_[2]->withdraw_basis(kAdmin, 999999 * cluster::kMaxShards + 1);
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);

  // The access export of a subject, found from any node.
  auto exported = svcs_[2]->export_subject(kAdmin, "person-7", false, std::nullopt);
  ASSERT_TRUE(exported.is_ok()) << exported.status().to_string();
  EXPECT_EQ(exported->dump().find("person-7") != std::string::npos, true);
  // Its ids are the cluster's: a basis id from the export withdraws that subject's basis.
  ASSERT_TRUE((*exported)["lawful_bases"].is_array() && !(*exported)["lawful_bases"].empty()) << exported->dump();
  const int64_t exported_basis = (*exported)["lawful_bases"][0]["id"].get<int64_t>();
  const int home = cluster::shard_of((*exported)["subject"]["id"].get<std::string>(), kShards);
  EXPECT_EQ(exported_basis % cluster::kMaxShards, home);
  ASSERT_FALSE((*exported)["templates"].empty());
  EXPECT_EQ((*exported)["templates"][0]["basis_id"].get<int64_t>(), exported_basis);

  // The transparency report counts over every chain: enrollments (shards) and searches (meta).
  auto report = svcs_[1]->transparency_report(kAdmin, "2000-01-01", "2100-01-01");
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_EQ((*report)["totals"]["enrolments"].get<int64_t>(), kSubjects);
  EXPECT_EQ((*report)["totals"]["searches"].get<int64_t>(), 7) << "3 + 1 before the erasure, 3 after: " << report->dump();
  EXPECT_EQ((*report)["totals"]["erasures"]["request"].get<int64_t>(), 1);
  EXPECT_TRUE((*report)["per_purpose"].contains("investigation")) << "a purpose the bases define: " << report->dump();

  // The audit chains of every vault the node holds verify.
  auto verified = svcs_[0]->audit_verify(kAdmin);
  ASSERT_TRUE(verified.is_ok()) << verified.status().to_string();
  EXPECT_TRUE(verified->ok) << verified->to_json().dump();
}

TEST_F(ClusterServiceTest, ApiKeysAreClusterWide) {
  auto key = svcs_[0]->create_api_key(kAdmin, service::Role::kInvestigator, {"investigation"}, "inv");
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  for (auto& svc : svcs_) {
    auto who = svc->authenticate_key(key->secret);
    ASSERT_TRUE(who.is_ok()) << who.status().to_string();
    EXPECT_EQ(who->first.role, service::Role::kInvestigator);
  }
  // Refused on every node from the revocation's acknowledgement on, whether or not that node's
  // replica had applied it yet (no catch-up here: the check reads fresh).
  ASSERT_TRUE(svcs_[1]->revoke_api_key(kAdmin, key->key.id).is_ok());
  for (size_t k = 0; k < svcs_.size(); ++k)
    EXPECT_EQ(svcs_[k]->authenticate_key(key->secret).status().code(), StatusCode::kUnauthenticated) << "node " << k;
}

TEST_F(ClusterServiceTest, TheOptoutRegistryAndReviewCasesSpanTheShards) {
  std::mt19937 rng(7);
  // An enrolled subject, then an opt-out of the same face through another node: counted as a
  // match, listed by optout_check, and a new enrollment of that face on any shard is refused.
  auto b = svcs_[0]->add_basis(kAdmin, consent("optout-enrolled"));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  const auto face = random_template(rng);
  ASSERT_TRUE(svcs_[0]->enroll_template(kAdmin, {"optout-enrolled", b->basis_id}, face).is_ok());
  auto o = svcs_[1]->optout_add_template(kAdmin, near(face, rng, 0.01f));
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->enrolled_match_count, 1);
  // The same opt-out again completes nothing new and keeps its uid.
  auto again = svcs_[2]->optout_add_template(kAdmin, near(face, rng, 0.0f));
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto check = svcs_[2]->optout_check(kAdmin);
  ASSERT_TRUE(check.is_ok()) << check.status().to_string();
  bool listed = false;
  for (const auto& m : check->matches) listed = listed || m.subject_ref == "optout-enrolled";
  EXPECT_TRUE(listed);
  for (int i = 0; i < 6; ++i) {  // new subjects land on several shards: each refuses the face
    const std::string ref = "optout-new-" + std::to_string(i);
    auto nb = svcs_[static_cast<size_t>(i % 3)]->add_basis(kAdmin, consent(ref));
    ASSERT_TRUE(nb.is_ok()) << nb.status().to_string();
    auto refused = svcs_[static_cast<size_t>(i % 3)]->enroll_template(kAdmin, {ref, nb->basis_id}, near(face, rng, 0.01f));
    ASSERT_FALSE(refused.is_ok()) << ref;
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().to_string();
  }

  // A search's review case lives in the meta vault; every node shows its candidates with their
  // references, resolved on their shards, and two reviewers on two nodes close it.
  service::SearchRequest req{"investigation", "case-review", 3};
  req.mode = "investigation";
  auto found = svcs_[0]->search_templates(kAdmin, req, {face});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_FALSE(found->faces[0].candidates.empty());
  EXPECT_EQ(found->faces[0].candidates[0].subject_ref, "optout-enrolled");
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto rc = svcs_[2]->review_show(kAdmin, found->review_case);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  ASSERT_EQ(rc->candidates.size(), found->faces[0].candidates.size());
  EXPECT_EQ(rc->candidates[0].subject_ref, "optout-enrolled");
  size_t n = 0;
  for (const std::string who : {"rev-1", "rev-2"}) {
    const service::Actor reviewer{who, service::Role::kReviewer};
    for (const auto& k : rc->candidates) {
      auto d = svcs_[n % 3]->review_decide(reviewer, found->review_case,
                                           {k.id, service::ReviewVerdict::kReject, "not the same", std::nullopt});
      ASSERT_TRUE(d.is_ok()) << who << ": " << d.status().to_string();
    }
    ++n;
    for (auto& node : nodes_) ASSERT_TRUE(node->catch_up(30000).is_ok());
  }
  auto closed = svcs_[1]->review_show(kAdmin, found->review_case);
  ASSERT_TRUE(closed.is_ok()) << closed.status().to_string();
  EXPECT_EQ(closed->status, "closed");
  // The subject's access export, from any node, lists the candidacy and the search that
  // returned it (both in the meta vault, the subject on its shard).
  auto x = svcs_[0]->export_subject(kAdmin, "optout-enrolled", false, std::nullopt);
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  ASSERT_FALSE((*x)["review_cases"].empty()) << x->dump();
  EXPECT_EQ((*x)["review_cases"][0]["review_case"], found->review_case);
  EXPECT_EQ((*x)["review_cases"][0]["status"], "rejected");
  bool search_listed = false;
  for (const auto& e : (*x)["audit"]) search_listed = search_listed || (e["action"] == "search" && e["details"]["returned_as_candidate"] == true);
  EXPECT_TRUE(search_listed) << (*x)["audit"].dump();
  // No reference crop was kept at enrollment: the page is told so, not an error.
  auto ref = svcs_[1]->review_reference_image(kAdmin, found->review_case, rc->candidates[0].id);
  EXPECT_EQ(ref.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ref.status().message().find("no reference face is kept"), std::string::npos) << ref.status().to_string();
}

// Audited reads through all three nodes at once: each writes its audit entry to the same shard
// stream, so most lose races to the others; the service writes the entry again after catching
// up instead of failing the read.
TEST_F(ClusterServiceTest, ConcurrentAuditedReadsOnOneShardAllSucceed) {
  auto b = svcs_[0]->add_basis(kAdmin, consent("read-often"));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  std::mt19937 rng(3);
  ASSERT_TRUE(svcs_[0]->enroll_template(kAdmin, {"read-often", b->basis_id}, random_template(rng)).is_ok());
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  constexpr int kReads = 12;
  std::vector<std::thread> threads;
  std::vector<int> ok(svcs_.size(), 0);
  std::vector<std::string> errors(svcs_.size());
  for (size_t n = 0; n < svcs_.size(); ++n)
    threads.emplace_back([&, n] {
      for (int i = 0; i < kReads; ++i) {
        auto x = svcs_[n]->export_subject(kAdmin, "read-often", false, std::nullopt);
        if (x.is_ok()) ++ok[n];
        else errors[n] = x.status().to_string();
      }
    });
  for (auto& t : threads) t.join();
  for (size_t n = 0; n < svcs_.size(); ++n) EXPECT_EQ(ok[n], kReads) << "node " << n << ": " << errors[n];
  service::AuditFilter f;
  f.action = "export";
  f.subject = "read-often";
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto entries = svcs_[2]->audit_show(kAdmin, f);
  ASSERT_TRUE(entries.is_ok()) << entries.status().to_string();
  EXPECT_EQ(entries->matched, static_cast<size_t>(kReads) * svcs_.size()) << "each read audited once";
}

// A reviewer's decision records whether a reference crop existed to compare with. The case is
// in the meta vault, the crop on the candidate's shard: the node looks it up there, as the
// case view does.
TEST_F(ClusterServiceTest, AReviewDecisionRecordsTheReferenceCropKeptOnTheCandidatesShard) {
  FV_REQUIRE_MODELS();
  const auto photo = test::sample_photos::photo("sheldon", 1);
  FV_REQUIRE_PATH(photo);
  const auto bytes = test::file_bytes(photo);
  auto b = svcs_[1]->add_basis(kAdmin, consent("with-reference"));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  service::EnrollRequest er{"with-reference", b->basis_id};
  er.keep_reference = true;
  auto e = svcs_[1]->enroll(kAdmin, er, bytes);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  service::SearchRequest req{"investigation", "case-reference", 1};
  req.mode = "investigation";
  auto found = svcs_[2]->search(kAdmin, req, bytes);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_EQ(found->faces.size(), 1u);
  ASSERT_EQ(found->faces[0].candidates.size(), 1u);
  EXPECT_EQ(found->faces[0].candidates[0].subject_ref, "with-reference");
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto rc = svcs_[0]->review_show(kAdmin, found->review_case);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  ASSERT_EQ(rc->candidates.size(), 1u);
  EXPECT_TRUE(rc->candidates[0].reference_available);
  const service::Actor reviewer{"rev-ref", service::Role::kReviewer};
  // The probe crop of the search made through node c opens on node a: the case's key reached
  // a's meta replica outside the stream (docs/cluster.md, "Probe crops stay out of NATS").
  auto probe = svcs_[0]->review_probe_image(reviewer, found->review_case, 0);
  ASSERT_TRUE(probe.is_ok()) << probe.status().to_string();
  EXPECT_GT(probe->jpeg.size(), 100u);
  auto d = svcs_[0]->review_decide(reviewer, found->review_case,
                                   {rc->candidates[0].id, service::ReviewVerdict::kConfirm, "same person", std::nullopt});
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_TRUE(d->reference_available) << "the crop is on the subject's shard";
}

bool lists(const service::ReviewCase& c, const std::string& uid) {
  for (const auto& k : c.candidates)
    if (k.subject_uid == uid) return true;
  return false;
}

// A withdrawal the subject outlives: its candidacies leave the open cases of the purposes no
// basis of theirs in force covers any more (in the meta vault), and stay in the others.
TEST_F(ClusterServiceTest, AWithdrawalLeavesTheCasesOfThePurposesItNoLongerCovers) {
  std::mt19937 rng(31);
  auto inv = svcs_[0]->add_basis(kAdmin, consent("two-bases"));
  ASSERT_TRUE(inv.is_ok()) << inv.status().to_string();
  auto mp = svcs_[1]->add_basis(kAdmin, {"two-bases", service::BasisKind::kConsent, "form-mp", {"missing-persons"}, std::nullopt});
  ASSERT_TRUE(mp.is_ok()) << mp.status().to_string();
  const auto face = random_template(rng);
  ASSERT_TRUE(svcs_[2]->enroll_template(kAdmin, {"two-bases", inv->basis_id}, face).is_ok());
  ASSERT_TRUE(svcs_[2]->enroll_template(kAdmin, {"two-bases", mp->basis_id}, near(face, rng, 0.01f)).is_ok());
  std::string cases[2];
  const char* purposes[2] = {"investigation", "missing-persons"};
  for (int i = 0; i < 2; ++i) {
    service::SearchRequest req{purposes[i], std::string("case-") + purposes[i], 3};
    req.mode = "investigation";
    auto found = svcs_[static_cast<size_t>(i)]->search_templates(kAdmin, req, {face});
    ASSERT_TRUE(found.is_ok()) << found.status().to_string();
    ASSERT_FALSE(found->faces[0].candidates.empty());
    EXPECT_EQ(found->faces[0].candidates[0].subject_ref, "two-bases");
    cases[i] = found->review_case;
  }
  auto w = svcs_[2]->withdraw_basis(kAdmin, mp->basis_id);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_FALSE(w->key_destroyed) << "the investigation basis is still in force";
  EXPECT_EQ(w->review_candidates_removed, 1) << "its one candidacy in the missing-persons case";
  // The basis's one enrollment left the shard's stream; the receipt names the replicas.
  EXPECT_EQ(w->stream_messages_erased, 1);
  EXPECT_EQ(w->replicas.size(), 3u);
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto kept = svcs_[0]->review_show(kAdmin, cases[0]);
  ASSERT_TRUE(kept.is_ok()) << kept.status().to_string();
  EXPECT_TRUE(lists(*kept, inv->subject_uid)) << "a basis in force still covers investigations";
  auto left = svcs_[1]->review_show(kAdmin, cases[1]);
  ASSERT_TRUE(left.is_ok()) << left.status().to_string();
  EXPECT_FALSE(lists(*left, inv->subject_uid));
  EXPECT_EQ(left->status, "closed") << "nothing was left to decide in it";
}

// A basis that expires while its subject keeps another: the retention run erases what it
// covered in every replica's vault, takes its enrollment out of the shard's stream, and the
// subject out of the open cases of the purpose no basis of theirs covers any more.
TEST_F(ClusterServiceTest, ARetentionRunErasesWhatAnExpiredBasisCoveredOnEveryReplica) {
  std::mt19937 rng(47);
  auto inv = svcs_[0]->add_basis(kAdmin, consent("lapse-later"));
  ASSERT_TRUE(inv.is_ok()) << inv.status().to_string();
  // Three seconds: the cluster's services read the real clock.
  const std::string expires = vault::add_days(vault::utc_now(), 3.0 / 86400);
  auto mp = svcs_[1]->add_basis(kAdmin, {"lapse-later", service::BasisKind::kConsent, "form-mp", {"missing-persons"}, expires});
  ASSERT_TRUE(mp.is_ok()) << mp.status().to_string();
  const auto face = random_template(rng);
  ASSERT_TRUE(svcs_[2]->enroll_template(kAdmin, {"lapse-later", inv->basis_id}, face).is_ok());
  ASSERT_TRUE(svcs_[2]->enroll_template(kAdmin, {"lapse-later", mp->basis_id}, near(face, rng, 0.01f)).is_ok());
  service::SearchRequest req{"missing-persons", "case-lapse", 3};
  req.mode = "investigation";
  auto found = svcs_[0]->search_templates(kAdmin, req, {face});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_FALSE(found->faces[0].candidates.empty());
  ASSERT_EQ(found->faces[0].candidates[0].subject_ref, "lapse-later");
  for (int i = 0; i < 100 && vault::utc_now() <= expires; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GT(vault::utc_now(), expires);

  auto r = svcs_[1]->expire(kAdmin, std::nullopt, false);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->failed_shards.empty());
  for (const auto& e : r->erased) EXPECT_NE(e.subject_ref, "lapse-later") << "the investigation basis is in force";
  const service::EraseReceipt* lapse = nullptr;
  for (const auto& e : r->bases_lapsed)
    if (e.subject_ref == "lapse-later") lapse = &e;
  ASSERT_NE(lapse, nullptr);
  EXPECT_EQ(lapse->basis_id, mp->basis_id) << "the cluster's id of the basis";
  EXPECT_EQ(lapse->faces, 1);
  EXPECT_EQ(lapse->stream_messages_erased, 1) << "the basis's one enrollment left the stream";
  EXPECT_EQ(lapse->replicas.size(), 3u);
  EXPECT_EQ(lapse->review_candidates_removed, 1) << "its candidacy in the missing-persons case";
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  for (auto& svc : svcs_) {
    auto x = svc->export_subject(kAdmin, "lapse-later", false, std::nullopt);
    ASSERT_TRUE(x.is_ok()) << x.status().to_string();
    EXPECT_EQ((*x)["templates"].size(), 1u) << "the investigation basis's template stays";
    for (const auto& b : (*x)["lawful_bases"])
      if (b["id"] == mp->basis_id) {
        EXPECT_FALSE(b["rows_erased_at"].is_null());
      }
    auto left = svc->review_show(kAdmin, found->review_case);
    ASSERT_TRUE(left.is_ok()) << left.status().to_string();
    EXPECT_FALSE(lists(*left, inv->subject_uid));
  }
  // The node that ran it knows the messages erased; the others find them so at their next sweep.
  const int s = cluster::shard_of(inv->subject_uid, kShards);
  for (auto& n : nodes_) {
    if (n.get() != nodes_[1].get()) (void)n->sweep_pending_erasures();
    auto pending = n->shard(s)->replica->withdrawals_unerased_in_stream();
    ASSERT_TRUE(pending.is_ok()) << pending.status().to_string();
    EXPECT_TRUE(pending->empty()) << n->name() << " lists the expired basis's messages as still in the stream";
  }
  // Once: the next run finds nothing of it left.
  auto again = svcs_[2]->expire(kAdmin, std::nullopt, false);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  for (const auto& e : again->bases_lapsed) EXPECT_NE(e.subject_ref, "lapse-later");
}

// An erasure through one node takes the subject's decrypted templates out of the memory of the
// other nodes hosting the shard soon after their replicas apply it, not at their next search.
TEST_F(ClusterServiceTest, AnErasureThroughOneNodeEvictsTheShardsGalleryOnTheOthers) {
  std::mt19937 rng(53);
  auto b = svcs_[0]->add_basis(kAdmin, consent("evicted-elsewhere"));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  ASSERT_TRUE(svcs_[0]->enroll_template(kAdmin, {"evicted-elsewhere", b->basis_id}, random_template(rng)).is_ok());
  const int s = cluster::shard_of(b->subject_uid, kShards);
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  service::Service& on_c = *svcs_[2]->shard_service(s);
  ASSERT_TRUE(on_c.warm_up().is_ok());
  ASSERT_GT(on_c.stats().templates_in_memory, 0u) << "node c holds the shard's templates in memory";

  ASSERT_TRUE(svcs_[0]->erase(kAdmin, "evicted-elsewhere", "request").is_ok());
  ASSERT_TRUE(nodes_[2]->catch_up(30000).is_ok());
  // Node c's replica applied the erasure; its evictor drops the gallery on its own thread. No
  // search runs on node c meanwhile (that would reload it without the subject anyway).
  for (int i = 0; i < 200 && on_c.stats().templates_in_memory > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(on_c.stats().templates_in_memory, 0u) << "node c still holds the shard's templates, the erased one's among them";
  // The next search there loads the shard afresh, without the erased subject.
  ASSERT_TRUE(on_c.warm_up().is_ok());
  EXPECT_EQ(on_c.stats().templates_in_memory,
            static_cast<size_t>(on_c.vault_for_testing().catalog().count_faces().value()));
}

// An erasure written past the ClusterService (here the shard's own Service; in production a
// node that died between its shard write and its meta write) leaves the subject in the open
// cases until a node settles it (the next erasure, retention run or service start), once.
TEST_F(ClusterServiceTest, AnErasureTheMetaVaultMissedIsSettledLaterAndOnce) {
  std::mt19937 rng(99);
  auto b = svcs_[0]->add_basis(kAdmin, consent("settle-later"));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  const auto face = random_template(rng);
  ASSERT_TRUE(svcs_[0]->enroll_template(kAdmin, {"settle-later", b->basis_id}, face).is_ok());
  service::SearchRequest req{"investigation", "case-settle", 3};
  req.mode = "investigation";
  auto found = svcs_[1]->search_templates(kAdmin, req, {face});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_FALSE(found->faces[0].candidates.empty());
  ASSERT_EQ(found->faces[0].candidates[0].subject_ref, "settle-later");
  const int s = cluster::shard_of(b->subject_uid, kShards);
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());  // node c's replica holds the subject
  auto erased = svcs_[2]->shard_service(s)->erase(kAdmin, b->subject_uid, "past the cluster service");
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto before = svcs_[0]->review_show(kAdmin, found->review_case);
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  EXPECT_TRUE(lists(*before, b->subject_uid)) << "nothing has settled the erasure in the meta vault yet";

  ASSERT_TRUE(svcs_[1]->settle_in_meta(kAdmin).is_ok());
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  for (auto& svc : svcs_) {
    auto after = svc->review_show(kAdmin, found->review_case);
    ASSERT_TRUE(after.is_ok()) << after.status().to_string();
    EXPECT_FALSE(lists(*after, b->subject_uid));
  }
  // The other nodes' replicas applied the same erasure: settling it again writes nothing.
  const uint64_t meta_seq = nodes_[0]->meta().replica->applied();
  ASSERT_TRUE(svcs_[0]->settle_in_meta(kAdmin).is_ok());
  ASSERT_TRUE(svcs_[2]->settle_in_meta(kAdmin).is_ok());
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  EXPECT_EQ(nodes_[0]->meta().replica->applied(), meta_seq);
  service::AuditFilter leave;
  leave.action = "review_leave";
  auto entries = svcs_[2]->audit_show(kAdmin, leave);
  ASSERT_TRUE(entries.is_ok()) << entries.status().to_string();
  size_t about = 0;
  for (const auto& e : entries->entries)
    about += std::find(e.subjects.begin(), e.subjects.end(), b->subject_uid) != e.subjects.end() ? 1 : 0;
  EXPECT_EQ(about, 1u);
  auto verified = svcs_[1]->audit_verify(kAdmin);
  ASSERT_TRUE(verified.is_ok()) << verified.status().to_string();
  EXPECT_TRUE(verified->ok) << verified->to_json().dump();
}

// A subject erased after its shard was searched and before the search's case is written (the
// hook runs in between) is withheld from the result and the case, and the audit entry says so.
TEST_F(ClusterServiceTest, ASubjectErasedWhileASearchRunsIsWithheldFromItsCase) {
  std::mt19937 rng(123);
  auto b = svcs_[2]->add_basis(kAdmin, consent("erased-mid-search"));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  const auto face = random_template(rng);
  ASSERT_TRUE(svcs_[2]->enroll_template(kAdmin, {"erased-mid-search", b->basis_id}, face).is_ok());
  Status erased_meanwhile = internal_error("the hook did not run");
  svcs_[0]->set_before_record_for_testing([&] {
    erased_meanwhile = svcs_[1]->erase(kAdmin, "erased-mid-search", "while a search runs").status();
  });
  service::SearchRequest req{"investigation", "case-race", 3};
  req.mode = "investigation";
  auto found = svcs_[0]->search_templates(kAdmin, req, {face});
  svcs_[0]->set_before_record_for_testing(nullptr);
  ASSERT_TRUE(erased_meanwhile.is_ok()) << erased_meanwhile.to_string();
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  for (const auto& c : found->faces[0].candidates) EXPECT_NE(c.subject_uid, b->subject_uid);
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  auto rc = svcs_[2]->review_show(kAdmin, found->review_case);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  EXPECT_FALSE(lists(*rc, b->subject_uid)) << "the shard found it, the erasure came before the case";
  service::AuditFilter searches;
  searches.action = "search";
  auto withheld_in = [&](const std::string& review_case) {
    auto audited = svcs_[1]->audit_show(kAdmin, searches);
    EXPECT_TRUE(audited.is_ok()) << audited.status().to_string();
    int64_t withheld = -1;
    if (audited.is_ok())
      for (const auto& e : audited->entries)
        if (e.details.value("review_case", "") == review_case) withheld = e.details.value("candidates_withheld", 0);
    return withheld;
  };
  EXPECT_EQ(withheld_in(found->review_case), 1);
  // A later search of the same face no longer finds it on its shard: nothing to withhold.
  service::SearchRequest again{"investigation", "case-race-2", 3};
  again.mode = "investigation";
  auto later = svcs_[0]->search_templates(kAdmin, again, {face});
  ASSERT_TRUE(later.is_ok()) << later.status().to_string();
  for (const auto& c : later->faces[0].candidates) EXPECT_NE(c.subject_uid, b->subject_uid);
  for (auto& n : nodes_) ASSERT_TRUE(n->catch_up(30000).is_ok());
  EXPECT_EQ(withheld_in(later->review_case), 0);
}

// What `serve` runs before it listens: the pipelines and every hosted shard's gallery, so that
// no shard loads its gallery inside a search (at 1 M that outlasted the shard timeout).
TEST_F(ClusterServiceTest, WarmUpLoadsEveryHostedShardsGalleryBeforeTheFirstSearch) {
  FV_REQUIRE_MODELS();
  cluster::ClusterNode& node = *nodes_[0];
  ASSERT_TRUE(node.catch_up(30000).is_ok());
  // A second service on node a: its shard services open their vaults afresh, nothing loaded.
  auto fresh = service::ClusterService::open(node, {});
  ASSERT_TRUE(fresh.is_ok()) << fresh.status().to_string();
  EXPECT_EQ((*fresh)->stats().templates_in_memory, 0u);
  int64_t held = 0;
  for (int s : node.hosted_shards()) held += (*fresh)->shard_service(s)->vault_for_testing().catalog().count_faces().value();
  ASSERT_GT(held, 0) << "the earlier tests left templates on node a's shards";
  ASSERT_TRUE((*fresh)->warm_up().is_ok());
  EXPECT_EQ((*fresh)->stats().templates_in_memory, static_cast<size_t>(held));
}

}  // namespace
}  // namespace fv
