// Erasure reaches every copy, end to end through the cluster facade (issue #17's acceptance):
// a subject enrolled through one node and erased through another leaves no 16-byte window of
// its template (float32, or as the vault stores it sealed) or of its wrapped key in any file
// under any node's folder, and no window of any of its stream messages in any nats-server's
// store directory once NATS's internal Raft log is compacted (polled for up to 5 minutes).
// The receipt names every replica. A control subject whose messages are purged by subject
// instead (what erasure must never rely on) stays on every server's disk: the scan can find
// what it looks for.
//
// Slow by nature (NATS compacts its log after 2-3 minutes): the release suite runs it, the
// sanitizer run leaves it out (Makefile).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/cluster_config.h"
#include "cluster/envelope.h"
#include "cluster/nats_connection.h"
#include "cluster/node.h"
#include "cluster/shard_map.h"
#include "cluster/stream.h"
#include "service/cluster_service.h"
#include "support/nats_servers.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/vault.h"

namespace fv {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kShards = 2;
constexpr size_t kWindow = 16;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every kWindow-byte window of the needles, and the files under `root` holding any of them.
struct Windows {
  std::unordered_set<std::string> set;
  void add(std::string_view needle) {
    for (size_t i = 0; i + kWindow <= needle.size(); ++i) set.emplace(needle.substr(i, kWindow));
  }
  std::vector<std::string> files_holding(const fs::path& root) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      const std::string content = read_file(it->path());
      for (size_t i = 0; i + kWindow <= content.size(); ++i) {
        if (set.count(content.substr(i, kWindow))) {
          out.push_back(fs::relative(it->path(), root).string());
          break;
        }
      }
    }
    return out;
  }
};

std::string as_text(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "none" : s;
}

TEST(ClusterErasureScan, NoWindowOfTheSubjectLeftOnAnyNodeOrNatsServer) {
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  ::setenv(vault::kMasterKeyEnv, std::string(64, '1').c_str(), 1);
  ::setenv(vault::kAuditSigningKeyEnv, std::string(64, '2').c_str(), 1);
  test::NatsTestCluster nats(3);
  ASSERT_TRUE(nats.wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
  std::string tmpl = (fs::temp_directory_path() / "fv-escan-XXXXXX").string();
  const fs::path root = mkdtemp(tmpl.data());
  struct Cleanup {
    fs::path p;
    ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
  } cleanup{root};
  auto conn = cluster::NatsConnection::connect({nats.urls(), "test"});
  ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
  ASSERT_TRUE(cluster::init_cluster(**conn, kShards, 3).is_ok());

  std::vector<std::unique_ptr<cluster::ClusterNode>> nodes;
  std::vector<std::unique_ptr<service::ClusterService>> svcs;
  for (const std::string name : {"a", "b", "c"}) {
    cluster::NodeOptions o;
    o.servers = nats.urls();
    o.name = name;
    o.dir = root / name;
    auto n = cluster::ClusterNode::start(o);
    ASSERT_TRUE(n.is_ok()) << name << ": " << n.status().to_string();
    nodes.push_back(std::move(*n));
  }
  for (auto& n : nodes) {
    auto cs = service::ClusterService::open(*n, {});
    ASSERT_TRUE(cs.is_ok()) << cs.status().to_string();
    svcs.push_back(std::move(*cs));
  }
  struct StopServices {  // services before the nodes whose writers they hold
    std::vector<std::unique_ptr<service::ClusterService>>& s;
    ~StopServices() { s.clear(); }
  } stop_services{svcs};

  const service::Actor admin{"tester", service::Role::kAdmin};
  std::mt19937 rng(42);
  std::normal_distribution<float> g(0.f, 1.f);
  auto random_template = [&] {
    face::FaceTemplate t{"faceplugin-mobilefacenet-512", 1, std::vector<float>(512)};
    double n = 0;
    for (auto& x : t.values) {
      x = g(rng);
      n += double(x) * x;
    }
    for (auto& x : t.values) x = static_cast<float>(x / std::sqrt(n));
    return t;
  };
  // The subject (through node a), the purge control (through node c), and others around them.
  struct Person {
    std::string ref, uid;
    int shard = 0;
    face::FaceTemplate tmpl;
  };
  auto enroll = [&](const std::string& ref, service::ClusterService& via) {
    Person p{ref, "", 0, random_template()};
    auto b = via.add_basis(admin, {ref, service::BasisKind::kConsent, "form-" + ref, {"investigation"}, std::nullopt});
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    if (!b.is_ok()) return p;
    p.uid = b->subject_uid;
    p.shard = cluster::shard_of(p.uid, kShards);
    auto e = via.enroll_template(admin, {ref, b->basis_id}, p.tmpl);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    return p;
  };
  for (int i = 0; i < 6; ++i) enroll("other-" + std::to_string(i), *svcs[static_cast<size_t>(i % 3)]);
  const Person subject = enroll("subject", *svcs[0]);
  const Person control = enroll("control", *svcs[2]);
  for (int i = 6; i < 12; ++i) enroll("other-" + std::to_string(i), *svcs[static_cast<size_t>(i % 3)]);
  ASSERT_FALSE(subject.uid.empty());
  ASSERT_FALSE(control.uid.empty());
  for (auto& n : nodes) ASSERT_TRUE(n->catch_up(30000).is_ok());

  // What the subject is, in every form a copy could take: its template as float32, as the
  // vault stores it (sealed), its wrapped key, and its stream messages as NATS stores them.
  Windows vault_windows, subject_messages, control_messages;
  vault_windows.add(std::string_view(reinterpret_cast<const char*>(subject.tmpl.values.data()),
                                     subject.tmpl.values.size() * sizeof(float)));
  const fs::path shard_dir = nodes[0]->shard(subject.shard)->dir;
  {
    auto db = vault::Db::open(shard_dir / "vault.db", false);
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    auto q = db->prepare("SELECT f.template, k.wrapped FROM face f JOIN subject s ON s.id = f.subject_id "
                         "JOIN subject_key k ON k.subject_id = s.id WHERE s.uid = ?");
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    q->bind(1, subject.uid);
    ASSERT_TRUE(*q->step()) << "the subject's template is in node a's vault";
    vault_windows.add(as_text(q->blob(0)));
    vault_windows.add(as_text(q->blob(1)));
  }
  auto messages_of = [&](const Person& p, Windows& w) {
    auto seqs = nodes[0]->shard(p.shard)->replica->messages_of_subject(p.uid);
    EXPECT_TRUE(seqs.is_ok()) << seqs.status().to_string();
    size_t n = 0;
    for (uint64_t seq : seqs.is_ok() ? *seqs : std::vector<uint64_t>{}) {
      auto m = cluster::get_message(**conn, cluster::shard_stream_name(p.shard), seq);
      ASSERT_TRUE(m.is_ok() && m->has_value()) << seq;
      // The message's own bytes: its two sealed parts (the framing around them repeats the
      // stream's and the subject's names, which later messages carry too).
      auto env = cluster::parse_envelope((*m)->data);
      ASSERT_TRUE(env.is_ok()) << env.status().to_string();
      w.add(as_text(env->sealed_rows));
      w.add(as_text(env->sealed_log));
      ++n;
    }
    EXPECT_GE(n, 2u) << p.ref << ": its basis and its enrollment";
  };
  messages_of(subject, subject_messages);
  messages_of(control, control_messages);

  // Before: the scan finds the subject's messages on every server and its rows on every node.
  auto servers_holding = [&](const Windows& w) {
    std::vector<std::string> out;
    for (int i = 0; i < nats.size(); ++i)
      if (!w.files_holding(nats.store_dir(i)).empty()) out.push_back(std::to_string(i).insert(0, 1, 'n'));
    return out;
  };
  const auto w0 = Clock::now();
  while (servers_holding(subject_messages).size() < 3 && Clock::now() - w0 < std::chrono::seconds(30))
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(servers_holding(subject_messages).size(), 3u) << "the scan does not find what it should";
  for (const std::string name : {"a", "b", "c"})
    ASSERT_FALSE(vault_windows.files_holding(root / name).empty()) << name << " holds the subject before its erasure";

  // The erasure, through node b; the control purged by subject.
  auto receipt = svcs[1]->erase(admin, "subject", "erasure request");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->replicas, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_GE(receipt->stream_messages_erased, 2);
  EXPECT_TRUE(receipt->key_destroyed);
  jsOptions po;
  jsOptions_Init(&po);
  const std::string control_subject = cluster::shard_subject_prefix(control.shard) + ".s." + control.uid;
  po.Stream.Purge.Subject = control_subject.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  ASSERT_EQ(js_PurgeStream((*conn)->js(), cluster::shard_stream_name(control.shard).c_str(), &po, &jerr), NATS_OK) << jerr;

  // Every node's folder: nothing of the subject, as soon as every replica applied the erasure.
  for (auto& n : nodes) ASSERT_TRUE(n->catch_up(30000).is_ok());
  for (const std::string name : {"a", "b", "c"}) {
    const auto left = vault_windows.files_holding(root / name);
    EXPECT_TRUE(left.empty()) << "node " << name << " still holds the subject in: " << list(left);
  }
  for (auto& svc : svcs) {
    service::SearchRequest req{"investigation", "after-erasure", 10};
    req.mode = "investigation";
    auto found = svc->search_templates(admin, req, {subject.tmpl});
    ASSERT_TRUE(found.is_ok()) << found.status().to_string();
    for (const auto& c : found->faces[0].candidates) EXPECT_NE(c.subject_ref, "subject");
  }

  // Every nats-server's store: the erased messages leave once NATS compacts its Raft log.
  const auto t0 = Clock::now();
  std::vector<std::string> erased_on = servers_holding(subject_messages);
  while (!erased_on.empty() && Clock::now() - t0 < std::chrono::seconds(300)) {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    erased_on = servers_holding(subject_messages);
  }
  const double clean_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::vector<std::string> purged_on = servers_holding(control_messages);
  std::printf("[ measure ] the erased subject's messages left every store dir after %.0f s (still on: %s); "
              "the purged control is on: %s\n",
              clean_s, list(erased_on).c_str(), list(purged_on).c_str());
  EXPECT_TRUE(erased_on.empty()) << "the erased messages are still on " << list(erased_on) << " after 300 s";
  EXPECT_FALSE(purged_on.empty()) << "the purged control left no bytes either: the scan proves nothing";
  RecordProperty("erase_clean_seconds", static_cast<int>(clean_s));
}

}  // namespace
}  // namespace fv
