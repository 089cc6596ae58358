// Replication of vault transactions over real nats-server processes (docs/cluster.md): three
// "nodes" (a local vault, its ShardReplica and, on two of them, a ShardWriter on the vault's
// connection) share one shard stream with three replicas. Writes go through the ordinary
// catalog inside ordinary transactions; the interceptor replicates them.
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/applied_watch.h"
#include "cluster/envelope.h"
#include "cluster/nats_connection.h"
#include "cluster/shard_map.h"
#include "cluster/shard_replica.h"
#include "cluster/shard_writer.h"
#include "cluster/subject_keys.h"
#include "cluster/stream.h"
#include "support/nats_servers.h"
#include "vault/audit_checkpoint.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"
#include "vault/testing.h"
#include "vault/timeutil.h"
#include "vault/vault.h"

namespace fv {
namespace {

namespace fs = std::filesystem;
using vault::Bytes;

const std::string kMasterHex(64, '7');
const std::string kSigningHex(64, '5');
constexpr int kTimeoutMs = 30000;

// The whole binary shares one 3-server NATS cluster (starting one takes seconds).
test::NatsTestCluster* g_nats = nullptr;

class NatsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    ::setenv(vault::kMasterKeyEnv, kMasterHex.c_str(), 1);
    ::setenv(vault::kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    g_nats = new test::NatsTestCluster(3);
    ASSERT_TRUE(g_nats->wait_ready(60000)) << "the NATS cluster did not elect a JetStream leader in 60 s";
  }
  void TearDown() override {
    delete g_nats;
    g_nats = nullptr;
  }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new NatsEnvironment);

fs::path temp_root() {
  static const fs::path root = [] {
    std::string tmpl = (fs::temp_directory_path() / "fv-repl-XXXXXX").string();
    return fs::path(mkdtemp(tmpl.data()));
  }();
  return root;
}

// The replicas' folders go with the run (ctest runs the binary again and again).
struct RemoveTempRoot : ::testing::Environment {
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(temp_root(), ec);
  }
};
const auto* const g_cleanup = ::testing::AddGlobalTestEnvironment(new RemoveTempRoot);

vault::SecretKey master() { return *vault::SecretKey::from_hex(kMasterHex); }

// One node's part of one shard.
struct Node {
  std::string name;
  fs::path dir;
  std::unique_ptr<cluster::NatsConnection> conn;
  std::unique_ptr<vault::Vault> vault;  // the "service's" vault (its writer is installed here)
  std::unique_ptr<cluster::ShardReplica> replica;
  std::unique_ptr<cluster::AppliedWatch> watch;
  std::shared_ptr<cluster::ShardWriter> writer;

  ~Node() {
    if (vault) vault::testing::raw_db(*vault).set_commit_interceptor(nullptr);
    writer.reset();
    if (replica) replica->stop();
    replica.reset();
    watch.reset();
    vault.reset();
    conn.reset();
  }
};

struct Shard {
  std::string stream;
  std::string prefix;
};

Shard make_shard(int n) {
  static int next = 40;
  const int s = next++;
  Shard sh{cluster::shard_stream_name(s) + "-" + std::to_string(n), cluster::shard_subject_prefix(s) + "x" + std::to_string(n)};
  auto conn = cluster::NatsConnection::connect({g_nats->urls(), "setup"});
  EXPECT_TRUE(conn.is_ok()) << conn.status().to_string();
  Status st = cluster::ensure_stream(**conn, {sh.stream, {sh.prefix + ".>"}, 3});
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return sh;
}

std::unique_ptr<Node> start_node(const Shard& sh, const std::string& name, bool writer, const fs::path& dir = {}) {
  auto n = std::make_unique<Node>();
  n->name = name;
  n->dir = dir.empty() ? temp_root() / (sh.stream + "-" + name) : dir;
  if (!fs::exists(n->dir / "vault.db")) {
    Status st = vault::Vault::init(n->dir);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  }
  auto conn = cluster::NatsConnection::connect({g_nats->urls(), name});
  EXPECT_TRUE(conn.is_ok()) << conn.status().to_string();
  n->conn = std::move(*conn);
  auto v = vault::Vault::open(n->dir);
  EXPECT_TRUE(v.is_ok()) << v.status().to_string();
  n->vault = std::move(*v);
  auto r = cluster::ShardReplica::open(*n->conn, n->dir, master(), {sh.stream, name});
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  n->replica = std::move(*r);
  auto w = cluster::AppliedWatch::open(*n->conn, sh.stream);
  EXPECT_TRUE(w.is_ok()) << w.status().to_string();
  n->watch = std::move(*w);
  EXPECT_TRUE(n->replica->start().is_ok());
  if (writer) {
    n->writer = std::make_shared<cluster::ShardWriter>(*n->conn, master(), *n->replica, *n->watch,
                                                       cluster::WriterOptions{sh.stream, sh.prefix, 2, kTimeoutMs});
    vault::testing::raw_db(*n->vault).set_commit_interceptor(n->writer);
  }
  return n;
}

struct Enrolled {
  std::string uid, ref;
  Bytes sealed_template, wrapped_key;
  std::vector<float> tmpl;
};

// One enrollment through the catalog in one transaction (committed through the interceptor);
// `audited`: with its audit entry, as the service writes it (what an erasure carries forward).
Result<Enrolled> enroll(vault::Vault& v, const std::string& ref, uint32_t seed, bool audited = false) {
  FV_ASSIGN_OR_RETURN(auto txn, v.begin());
  auto& cat = v.catalog();
  Enrolled e;
  e.ref = ref;
  e.uid = vault::random_hex(16);
  const std::string t0 = vault::utc_now();
  FV_ASSIGN_OR_RETURN(const int64_t sid, cat.insert_subject(e.uid, ref, t0, "2099-01-01T00:00:00.000Z"));
  FV_ASSIGN_OR_RETURN(const auto key, v.create_subject_key(sid));
  {
    FV_ASSIGN_OR_RETURN(auto w, vault::testing::raw_db(v).prepare("SELECT wrapped FROM subject_key WHERE subject_id = ?"));
    w.bind(1, sid);
    FV_ASSIGN_OR_RETURN(const bool row, w.step());
    if (!row) return internal_error("no subject_key row");
    e.wrapped_key = w.blob(0);
  }
  FV_ASSIGN_OR_RETURN(const int64_t bid, cat.insert_basis({sid, "consent", "form-" + ref, t0, std::nullopt, "tester", {"p1"}}));
  FV_ASSIGN_OR_RETURN(const int64_t img, cat.insert_source_image({sid, bid, std::string(64, 'e'), 100, "jpeg", "tester",
                                                                  "file", ref + ".jpg", t0}));
  FV_ASSIGN_OR_RETURN(const int64_t fid, cat.insert_face({sid, img, bid, "synthetic", 1, 128, "[0,0,1,1]", "{}", t0}));
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  e.tmpl.resize(128);
  for (auto& x : e.tmpl) x = g(rng);
  e.sealed_template = vault::seal(key, vault::as_bytes(e.tmpl), vault::face_ad(sid, fid, "synthetic", 1));
  FV_RETURN_IF_ERROR(cat.seal_face(fid, e.sealed_template));
  if (audited) {
    vault::AuditEntry a;
    a.ts = t0;
    a.actor = "tester";
    a.role = "enroller";
    a.action = "enroll";
    a.purpose = "p1";
    a.subjects = {e.uid};
    a.details = {{"face_id", fid}};
    FV_RETURN_IF_ERROR(cat.append_audit(a).status());
  }
  FV_RETURN_IF_ERROR(txn.commit());
  return e;
}

// A subject's erasure in one transaction (committed through the interceptor: replicated).
Status erase(vault::Vault& v, const std::string& ref) {
  FV_ASSIGN_OR_RETURN(auto txn, v.begin());
  FV_ASSIGN_OR_RETURN(const auto subj, v.catalog().find_subject(ref));
  if (!subj) return not_found("no subject " + ref);
  FV_RETURN_IF_ERROR(v.catalog().erase_subject(subj->id).status());
  return txn.commit();
}

// Every row of the replicated tables, quoted (blobs as X'..'), for comparing replicas.
std::string dump(const fs::path& dir) {
  auto db = vault::Db::open(dir / "vault.db", false);
  EXPECT_TRUE(db.is_ok());
  std::string out;
  for (const std::string t : {"subject", "subject_key", "lawful_basis", "basis_purpose", "source_image", "face", "audit"}) {
    auto cols = db->prepare("SELECT name FROM pragma_table_info('" + t + "') ORDER BY cid");
    EXPECT_TRUE(cols.is_ok());
    std::string expr;
    for (;;) {
      auto row = cols->step();
      if (!row.is_ok() || !*row) break;
      if (!expr.empty()) expr += "||'|'||";
      expr += "quote(\"";
      expr += cols->text(0);
      expr += "\")";
    }
    auto st = db->prepare("SELECT " + expr + " FROM \"" + t + "\" ORDER BY 1");
    EXPECT_TRUE(st.is_ok()) << st.status().to_string();
    for (;;) {
      auto row = st->step();
      if (!row.is_ok() || !*row) break;
      out += t + ": " + st->text(0) + "\n";
    }
  }
  return out;
}

int64_t count(const fs::path& dir, const std::string& sql) {
  auto db = vault::Db::open(dir / "vault.db", false);
  return db.is_ok() ? db->query_int(sql).value() : -1;
}

bool contains(const Bytes& hay, std::span<const uint8_t> needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

// Any 16-byte window of `secret` in any file under `dir`.
bool any_file_holds(const fs::path& dir, std::span<const uint8_t> secret) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    const Bytes bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (size_t i = 0; i + 16 <= secret.size(); i += 8)
      if (contains(bytes, secret.subspan(i, 16))) return true;
  }
  return false;
}

TEST(Replication, AWriteIsAppliedIdenticallyOnEveryReplicaAndStoredOnlySealed) {
  const Shard sh = make_shard(1);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);

  auto e = enroll(*a->vault, "ref-alpha", 1);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  // Acknowledged: stored by JetStream and applied by at least two replicas, a's own among them.
  EXPECT_GE(a->replica->applied(), 1u);
  for (auto* n : {b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(1, kTimeoutMs).is_ok());

  const std::string da = dump(a->dir);
  std::string upper_hex = vault::to_hex(e->sealed_template);
  for (auto& ch : upper_hex) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_NE(da.find(upper_hex), std::string::npos) << "a's vault lacks the template";
  EXPECT_EQ(dump(b->dir), da);
  EXPECT_EQ(dump(c->dir), da);
  EXPECT_EQ(count(b->dir, "SELECT applied_seq FROM replication_state WHERE stream='" + sh.stream + "'"), 1);

  // What NATS stores is the sealed envelope: neither the operator's reference nor the sealed
  // template's bytes (the patchset's own plaintext) appear in it.
  auto msg = cluster::get_message(*a->conn, sh.stream, 1);
  ASSERT_TRUE(msg.is_ok() && msg->has_value());
  EXPECT_FALSE(contains((*msg)->data, vault::as_bytes(std::string("ref-alpha"))));
  EXPECT_FALSE(contains((*msg)->data, std::span<const uint8_t>(e->sealed_template).subspan(0, 32)));
  EXPECT_EQ((*msg)->subject, a->writer->subject_of(e->uid));
  // The subject's key is in no message: the master key alone does not open it, and neither the
  // key nor its wrapped form (as the vaults store it) is in the message's bytes.
  auto alone = cluster::open_message(master(), sh.stream, (*msg)->data);
  ASSERT_FALSE(alone.is_ok());
  EXPECT_EQ(alone.status().code(), StatusCode::kFailedPrecondition) << alone.status().to_string();
  auto key = a->replica->key_of(e->uid);
  ASSERT_TRUE(key.is_ok() && key->has_value()) << "a's vault holds the subject's key";
  EXPECT_FALSE(contains((*msg)->data, (*key)->span().subspan(0, 16)));
  EXPECT_FALSE(contains((*msg)->data, std::span<const uint8_t>(e->wrapped_key).subspan(0, 16)));
  const vault::SecretKey other = vault::SecretKey::random();
  EXPECT_EQ(cluster::open_message(master(), sh.stream, (*msg)->data, &other).status().code(), StatusCode::kCorruptData);
  auto opened = cluster::open_message(master(), sh.stream, (*msg)->data, &**key);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_EQ(opened->kind, cluster::EnvelopeKind::kSubject);
  EXPECT_EQ(opened->subject_uid, e->uid);
  // Every replica holds the same key (b and c took it from a's push), and none holds it twice:
  // once applied, the held copy is gone.
  for (auto* n : {b.get(), c.get()}) {
    auto k = n->replica->key_of(e->uid);
    ASSERT_TRUE(k.is_ok() && k->has_value()) << n->name;
    EXPECT_EQ((*k)->to_hex(), (*key)->to_hex()) << n->name;
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM replication_pending_key"), 0) << n->name;
  }
  // Opened under another stream's name it does not open (the body is bound to its stream).
  EXPECT_FALSE(cluster::open_message(master(), sh.stream + "-other", (*msg)->data, &**key).is_ok());
}

TEST(Replication, AWriterBehindTheStreamLosesWithAbortedAndWinsAfterCatchingUp) {
  const Shard sh = make_shard(2);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", true);
  auto c = start_node(sh, "c", false);
  // b's replica is stopped before the first write, so b's vault still reads the stream as it
  // was: its transaction expects the wrong last sequence and must not be stored.
  b->replica->stop();
  ASSERT_TRUE(enroll(*a->vault, "first", 2).is_ok());  // a and c apply it: two replicas
  auto before = cluster::last_sequence(*a->conn, sh.stream);
  ASSERT_TRUE(before.is_ok());
  ASSERT_EQ(b->replica->applied(), 0u);
  auto lost = enroll(*b->vault, "second", 3);
  ASSERT_FALSE(lost.is_ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kAborted) << lost.status().to_string();
  EXPECT_EQ(*cluster::last_sequence(*a->conn, sh.stream), *before) << "a refused write was stored";
  EXPECT_EQ(count(b->dir, "SELECT count(*) FROM subject"), 0) << "a refused write was kept locally";
  // A fresh replica for b catches up, and the same use case then commits.
  b.reset();
  b = start_node(sh, "b", true, temp_root() / (sh.stream + "-b"));
  ASSERT_TRUE(b->replica->catch_up(kTimeoutMs).is_ok());
  auto won = enroll(*b->vault, "second", 3);
  ASSERT_TRUE(won.is_ok()) << won.status().to_string();
  ASSERT_TRUE(c->replica->catch_up(kTimeoutMs).is_ok());
  ASSERT_TRUE(a->replica->catch_up(kTimeoutMs).is_ok());
  EXPECT_EQ(count(c->dir, "SELECT count(*) FROM subject"), 2);
  EXPECT_EQ(dump(a->dir), dump(c->dir));
  EXPECT_EQ(dump(b->dir), dump(c->dir));
}

TEST(Replication, ErasureReachesEveryReplicaAndTheStream) {
  const Shard sh = make_shard(3);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", true);
  auto c = start_node(sh, "c", false);
  auto kept = enroll(*a->vault, "kept", 4);
  auto gone = enroll(*a->vault, "gone", 5);
  ASSERT_TRUE(kept.is_ok() && gone.is_ok());
  auto wrapped = [&](const fs::path& dir, const std::string& uid) {
    auto db = vault::Db::open(dir / "vault.db", false);
    auto st = db->prepare("SELECT wrapped FROM subject_key k JOIN subject s ON s.id = k.subject_id WHERE s.uid = ?");
    st->bind(1, uid);
    EXPECT_TRUE(*st->step());
    return st->blob(0);
  };
  const Bytes gone_key = wrapped(a->dir, gone->uid);

  // The erasure is itself a replicated transaction: its patchset names primary keys only, so
  // the stream's copy of it holds nothing of the subject (it goes out cluster-sealed).
  const Status erasure = erase(*a->vault, "gone");
  ASSERT_TRUE(erasure.is_ok()) << erasure.to_string();
  auto last = cluster::last_sequence(*a->conn, sh.stream);
  ASSERT_TRUE(last.is_ok());
  for (auto* n : {a.get(), b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(*last, kTimeoutMs).is_ok());
  auto erase_msg = cluster::get_message(*a->conn, sh.stream, *last);
  ASSERT_TRUE(erase_msg.is_ok() && erase_msg->has_value());
  EXPECT_EQ((*erase_msg)->subject, sh.prefix + ".tx");

  // Then the subject's earlier messages are erased from the stream (js_EraseMsg).
  auto seqs = a->replica->messages_of_subject(gone->uid);
  ASSERT_TRUE(seqs.is_ok());
  ASSERT_EQ(seqs->size(), 1u);
  auto erased = a->writer->erase_messages_of_subject(gone->uid);
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  EXPECT_EQ(*erased, 1);
  EXPECT_TRUE(a->replica->messages_of_subject(gone->uid)->empty());
  // Another node erasing the same messages finds them gone: not an error.
  auto again = b->writer->erase_messages_of_subject(gone->uid);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(*again, 1);
  for (uint64_t s : *seqs) {
    auto m = cluster::get_message(*a->conn, sh.stream, s);
    ASSERT_TRUE(m.is_ok());
    EXPECT_FALSE(m->has_value()) << "message " << s << " is still in the stream";
  }

  for (auto* n : {a.get(), b.get(), c.get()}) {
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM subject WHERE ref='gone'"), 0) << n->name;
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM subject WHERE ref='kept'"), 1) << n->name;
  }
  // A replica rebuilt from the stream now (its erased messages gone, the erasure's deletes
  // kept) ends with the same rows as those that lived through it.
  auto d = start_node(sh, "d", false);
  ASSERT_TRUE(d->replica->catch_up(kTimeoutMs).is_ok()) << d->replica->error().to_string();
  EXPECT_EQ(dump(d->dir), dump(a->dir));
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM subject WHERE ref='gone'"), 0);
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM subject WHERE ref='kept'"), 1);
  d->replica->stop();

  // No replica's files hold a 16-byte window of the erased template or wrapped key (each
  // replica wiped its freed pages after applying the erasure); the kept subject is still there.
  a->replica->stop();
  b->replica->stop();
  c->replica->stop();
  for (auto* n : {a.get(), b.get(), c.get(), d.get()}) {
    EXPECT_FALSE(any_file_holds(n->dir, gone->sealed_template)) << n->name << " holds the erased template";
    EXPECT_FALSE(any_file_holds(n->dir, gone_key)) << n->name << " holds the erased wrapped key";
    EXPECT_TRUE(any_file_holds(n->dir, kept->sealed_template)) << n->name << ": the scan finds nothing at all";
  }
}

// A replica whose wipe of freed pages failed (a reader held the WAL, say) does it again by
// itself, without waiting for another deletion or a restart.
TEST(Replication, AFailedWipeIsDoneAgainWithoutAnotherDeletion) {
  const Shard sh = make_shard(12);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);
  auto kept = enroll(*a->vault, "kept", 14);
  auto gone = enroll(*a->vault, "gone", 15);
  ASSERT_TRUE(kept.is_ok() && gone.is_ok());
  auto blocked = std::make_shared<std::atomic<bool>>(true);
  b->replica->set_wipe_fault_for_testing([blocked]() -> Status {
    return blocked->load() ? failed_precondition("injected: a reader holds the WAL") : Status::ok();
  });

  const Status erasure = erase(*a->vault, "gone");
  ASSERT_TRUE(erasure.is_ok()) << erasure.to_string();
  auto last = cluster::last_sequence(*a->conn, sh.stream);
  ASSERT_TRUE(last.is_ok());
  ASSERT_TRUE(b->replica->wait_applied(*last, kTimeoutMs).is_ok()) << b->replica->error().to_string();
  EXPECT_EQ(count(b->dir, "SELECT count(*) FROM meta WHERE key='wipe_pending'"), 1) << "the wipe did not fail";
  blocked->store(false);

  for (int i = 0; i < 300 && count(b->dir, "SELECT count(*) FROM meta WHERE key='wipe_pending'") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(count(b->dir, "SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0) << "b did not wipe again";
  b->replica->stop();
  EXPECT_FALSE(any_file_holds(b->dir, gone->sealed_template)) << "b's files hold the erased template";
  EXPECT_TRUE(any_file_holds(b->dir, kept->sealed_template)) << "the scan finds nothing at all";
}

// A node that dies after a subject's erasure was applied and before the subject's messages
// were erased from the stream: its replication_message rows name a subject that no longer
// exists, and the sweep completes the erasure (carry, then js_EraseMsg) once it is back.
TEST(Replication, TheSweepCompletesAStreamErasureLeftUndone) {
  const Shard sh = make_shard(6);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", true);
  auto c = start_node(sh, "c", false);
  auto kept = enroll(*a->vault, "kept", 21, true);
  auto gone = enroll(*a->vault, "gone", 22, true);
  ASSERT_TRUE(kept.is_ok() && gone.is_ok()) << kept.status().to_string() << gone.status().to_string();
  // Nothing pending: the sweep is one query of the local vault (the stream does not move).
  auto none = a->writer->sweep_pending_erasures();
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_EQ(*none, 0);

  auto seqs = a->replica->messages_of_subject(gone->uid);
  ASSERT_TRUE(seqs.is_ok());
  ASSERT_EQ(seqs->size(), 1u);
  const Status erasure = erase(*a->vault, "gone");
  ASSERT_TRUE(erasure.is_ok()) << erasure.to_string();
  const uint64_t erasure_seq = *cluster::last_sequence(*a->conn, sh.stream);
  for (auto* n : {a.get(), b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(erasure_seq, kTimeoutMs).is_ok());
  // The crash: a goes down before erase_messages_of_subject. The message is still in the stream.
  const fs::path a_dir = a->dir;
  a.reset();
  for (uint64_t s : *seqs) EXPECT_TRUE(cluster::get_message(*b->conn, sh.stream, s)->has_value());

  // A replica built now reads the erased subject's message, still in the stream: b and c,
  // which applied the erasure, answer that its key is gone, so it applies only the message's
  // audit-log rows, and ends with the rows of those that lived through the erasure.
  auto e = start_node(sh, "e", false);
  ASSERT_TRUE(e->replica->catch_up(kTimeoutMs).is_ok()) << e->replica->error().to_string();
  EXPECT_EQ(count(e->dir, "SELECT count(*) FROM subject WHERE ref='gone'"), 0);
  EXPECT_EQ(count(e->dir, "SELECT count(*) FROM subject WHERE ref='kept'"), 1);
  EXPECT_EQ(dump(e->dir), dump(b->dir)) << "the audit log included, before any carry";

  a = start_node(sh, "a", true, a_dir);
  ASSERT_TRUE(a->replica->catch_up(kTimeoutMs).is_ok());
  EXPECT_EQ(*a->replica->messages_of_subject(kept->uid), std::vector<uint64_t>{1});
  auto swept = a->writer->sweep_pending_erasures();
  ASSERT_TRUE(swept.is_ok()) << swept.status().to_string();
  EXPECT_EQ(*swept, 1);
  for (uint64_t s : *seqs) {
    auto m = cluster::get_message(*a->conn, sh.stream, s);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    EXPECT_FALSE(m->has_value()) << "message " << s << " is still in the stream";
  }
  EXPECT_TRUE(a->replica->messages_of_subject(gone->uid)->empty());
  // Its audit rows went on in the stream first, as a carry after the erasure.
  const uint64_t last = *cluster::last_sequence(*a->conn, sh.stream);
  ASSERT_EQ(last, erasure_seq + 1);
  auto carry = cluster::get_message(*a->conn, sh.stream, last);
  ASSERT_TRUE(carry.is_ok() && carry->has_value());
  EXPECT_EQ((*carry)->subject, sh.prefix + ".carry");
  auto opened = cluster::open_message(master(), sh.stream, (*carry)->data);  // no subject key needed
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_EQ(opened->kind, cluster::EnvelopeKind::kCarry);
  EXPECT_TRUE(opened->rows.empty());
  EXPECT_FALSE(opened->log.empty());

  // Done: a second sweep has nothing to do. b still records the messages (it applied them but
  // did not erase them): its sweep finds them erased and publishes no second carry.
  EXPECT_EQ(*a->writer->sweep_pending_erasures(), 0);
  auto on_b = b->writer->sweep_pending_erasures();
  ASSERT_TRUE(on_b.is_ok()) << on_b.status().to_string();
  EXPECT_EQ(*on_b, 1);
  EXPECT_TRUE(b->replica->messages_of_subject(gone->uid)->empty());
  EXPECT_EQ(*cluster::last_sequence(*a->conn, sh.stream), last);

  // A replica rebuilt from the stream now has the survivors' rows and whole audit log.
  for (auto* n : {a.get(), b.get()}) ASSERT_TRUE(n->replica->catch_up(kTimeoutMs).is_ok());
  auto d = start_node(sh, "d", false);
  ASSERT_TRUE(d->replica->catch_up(kTimeoutMs).is_ok()) << d->replica->error().to_string();
  EXPECT_EQ(dump(d->dir), dump(a->dir));
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM audit"), 2);
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM subject WHERE ref='gone'"), 0);
  // The carry changes nothing on the replica that already applied the message's audit rows.
  ASSERT_TRUE(e->replica->catch_up(kTimeoutMs).is_ok()) << e->replica->error().to_string();
  EXPECT_EQ(dump(e->dir), dump(a->dir));
}

// A face of basis `basis` as an enrollment writes it, in one transaction (replicated): its
// source image, sealed template and reference crop, the subject's retention renewed to `until`,
// and its audit entry. Returns the sealed template.
Result<Bytes> enroll_face(vault::Vault& v, int64_t sid, int64_t basis, const std::string& until, uint32_t seed) {
  FV_ASSIGN_OR_RETURN(auto txn, v.begin());
  auto& cat = v.catalog();
  FV_ASSIGN_OR_RETURN(const auto key, v.subject_key(sid));
  const std::string t0 = vault::utc_now();
  FV_ASSIGN_OR_RETURN(const int64_t img, cat.insert_source_image({sid, basis, std::string(64, 'f'), 100, "jpeg", "tester",
                                                                  "file", "p.jpg", t0}));
  FV_ASSIGN_OR_RETURN(const int64_t fid, cat.insert_face({sid, img, basis, "synthetic", 1, 128, "[0,0,1,1]", "{}", t0}));
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> t(128);
  for (auto& x : t) x = g(rng);
  const Bytes sealed = vault::seal(key, vault::as_bytes(t), vault::face_ad(sid, fid, "synthetic", 1));
  FV_RETURN_IF_ERROR(cat.seal_face(fid, sealed));
  FV_RETURN_IF_ERROR(cat.insert_reference_crop(fid, sid, vault::seal(key, Bytes(200, 9), vault::reference_ad(sid, fid))));
  FV_RETURN_IF_ERROR(cat.set_retention(sid, until));
  vault::AuditEntry a;
  a.ts = t0;
  a.actor = "tester";
  a.role = "enroller";
  a.action = "enroll";
  a.details = {{"face_id", fid}, {"basis_id", basis}};
  FV_RETURN_IF_ERROR(cat.append_audit(a).status());
  FV_RETURN_IF_ERROR(txn.commit());
  return sealed;
}

// Issue #17, item 3: a basis withdrawn while its subject stays (another basis in force) takes
// the messages that hold its rows out of the stream, so that no copy stays readable under the
// subject's live key; what they wrote that outlives it (the retention its enrollment renewed)
// is restated first, so a replica rebuilt from the stream still ends where the others are.
TEST(Replication, AWithdrawalTheSubjectOutlivesErasesItsBasisMessagesFromTheStream) {
  const Shard sh = make_shard(10);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", true);
  auto c = start_node(sh, "c", false);
  const std::string uid = vault::random_hex(16);
  int64_t sid = 0, basis_kept = 0, basis_gone = 0;
  {
    auto txn = a->vault->begin();
    ASSERT_TRUE(txn.is_ok());
    auto& cat = a->vault->catalog();
    const std::string t0 = vault::utc_now();
    sid = *cat.insert_subject(uid, "two-bases", t0, "2080-01-01T00:00:00.000Z");
    ASSERT_TRUE(a->vault->create_subject_key(sid).is_ok());
    basis_kept = *cat.insert_basis({sid, "consent", "form-kept", t0, std::nullopt, "tester", {"p1"}});
    basis_gone = *cat.insert_basis({sid, "consent", "form-gone", t0, std::nullopt, "tester", {"p2"}});
    ASSERT_TRUE(txn->commit().is_ok());
  }
  auto kept = enroll_face(*a->vault, sid, basis_kept, "2090-01-01T00:00:00.000Z", 51);
  ASSERT_TRUE(kept.is_ok()) << kept.status().to_string();
  const uint64_t kept_seq = *cluster::last_sequence(*a->conn, sh.stream);
  // Two later enrollments, under the basis to withdraw, renewed the retention further (the
  // first creates the basis's key, the second finds it).
  auto gone_first = enroll_face(*a->vault, sid, basis_gone, "2094-01-01T00:00:00.000Z", 53);
  ASSERT_TRUE(gone_first.is_ok()) << gone_first.status().to_string();
  auto gone = enroll_face(*a->vault, sid, basis_gone, "2095-01-01T00:00:00.000Z", 52);
  ASSERT_TRUE(gone.is_ok()) << gone.status().to_string();
  const uint64_t gone_seq = *cluster::last_sequence(*a->conn, sh.stream);
  // The enrollment went under its basis's key: neither the master key nor the subject's opens it.
  const std::string basis_key = vault::basis_key_name(uid, basis_gone);
  auto stored = cluster::get_message(*a->conn, sh.stream, gone_seq);
  ASSERT_TRUE(stored.is_ok() && stored->has_value());
  const Bytes leftover = (*stored)->data;
  auto subject_key = a->replica->key_of(uid);
  ASSERT_TRUE(subject_key.is_ok() && subject_key->has_value());
  auto by_subject = cluster::open_message(master(), sh.stream, leftover, &**subject_key);
  EXPECT_EQ(by_subject.status().code(), StatusCode::kCorruptData) << by_subject.status().to_string();
  for (auto* n : {b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(gone_seq, kTimeoutMs).is_ok());
  auto held = c->replica->key_of(basis_key);
  ASSERT_TRUE(held.is_ok() && held->has_value()) << "c holds the basis's key";
  auto by_basis = cluster::open_message(master(), sh.stream, leftover, &**held);
  ASSERT_TRUE(by_basis.is_ok()) << by_basis.status().to_string();
  EXPECT_EQ(by_basis->kind, cluster::EnvelopeKind::kBasis);
  EXPECT_FALSE(contains(leftover, (*held)->span().subspan(0, 16)));
  std::optional<Bytes> held_wrapped;
  {
    auto db = vault::Db::open(c->dir / "vault.db", false);
    ASSERT_TRUE(db.is_ok());
    auto st = db->prepare("SELECT wrapped FROM basis_key WHERE basis_id = ?");
    st->bind(1, basis_gone);
    ASSERT_TRUE(*st->step());
    held_wrapped = st->blob(0);
  }
  {
    auto txn = a->vault->begin();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(a->vault->catalog().withdraw_basis_rows(basis_gone, vault::utc_now()).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  const uint64_t withdrawal_seq = *cluster::last_sequence(*a->conn, sh.stream);
  for (auto* n : {a.get(), b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(withdrawal_seq, kTimeoutMs).is_ok());
  EXPECT_EQ(count(c->dir, "SELECT count(*) FROM face"), 1);
  // From the withdrawal on, no replica holds the basis's key, each says it is gone, and the
  // copy of the enrollment opens with nothing the cluster holds (the stand-in for what NATS's
  // log keeps for minutes), though the subject's key lives on.
  for (auto* n : {a.get(), b.get(), c.get()}) {
    auto k = n->replica->key_of(basis_key);
    ASSERT_TRUE(k.is_ok()) << k.status().to_string();
    EXPECT_FALSE(k->has_value()) << n->name << " still holds the withdrawn basis's key";
    EXPECT_TRUE(*n->replica->erased(basis_key)) << n->name;
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM basis_key"), 1) << n->name << ": the other basis's key";
  }
  auto fetched = cluster::fetch_subject_keys(*c->conn, master(), sh.stream, {basis_key}, 3, kTimeoutMs);
  ASSERT_TRUE(fetched.is_ok()) << fetched.status().to_string();
  EXPECT_EQ(fetched->at(basis_key).state, cluster::FetchedKey::State::kErased);
  EXPECT_EQ(cluster::open_message(master(), sh.stream, leftover, &**subject_key).status().code(), StatusCode::kCorruptData);
  // Until its messages are erased, every replica lists the withdrawal as pending there.
  auto pending = b->replica->withdrawals_unerased_in_stream();
  ASSERT_TRUE(pending.is_ok() && pending->size() == 1u);
  EXPECT_EQ(pending->front().basis_id, basis_gone);

  auto erased = a->writer->erase_messages_of_basis(uid, basis_gone);
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  EXPECT_EQ(*erased, 2);
  for (const uint64_t seq : {gone_seq - 1, gone_seq}) {
    auto msg = cluster::get_message(*a->conn, sh.stream, seq);
    ASSERT_TRUE(msg.is_ok());
    EXPECT_FALSE(msg->has_value()) << "the withdrawn basis's enrollment " << seq << " is still in the stream";
  }
  EXPECT_TRUE(cluster::get_message(*a->conn, sh.stream, kept_seq)->has_value()) << "the other basis's went too";
  // One restatement stands in for both, after the withdrawal, under the subject's key; the
  // second carries its audit rows only.
  const uint64_t restate_seq = withdrawal_seq + 1;
  ASSERT_EQ(*cluster::last_sequence(*a->conn, sh.stream), restate_seq + 1);
  auto carried = cluster::get_message(*a->conn, sh.stream, restate_seq + 1);
  ASSERT_TRUE(carried.is_ok() && carried->has_value());
  EXPECT_EQ((*carried)->subject, sh.prefix + ".carry");
  auto restate = cluster::get_message(*a->conn, sh.stream, restate_seq);
  ASSERT_TRUE(restate.is_ok() && restate->has_value());
  EXPECT_EQ((*restate)->subject, a->writer->subject_of(uid));
  auto key = a->replica->key_of(uid);
  ASSERT_TRUE(key.is_ok() && key->has_value());
  auto opened = cluster::open_message(master(), sh.stream, (*restate)->data, &**key);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_EQ(opened->kind, cluster::EnvelopeKind::kRestate);
  EXPECT_FALSE(contains(opened->rows, std::span<const uint8_t>(*gone).subspan(0, 16)));
  for (auto* n : {a.get(), b.get(), c.get()})
    EXPECT_FALSE(any_file_holds(n->dir, *held_wrapped)) << n->name << " holds the withdrawn basis's wrapped key";
  EXPECT_TRUE(a->replica->withdrawals_unerased_in_stream()->empty());

  // b finds the message erased (its sweep counts it and publishes nothing); then nothing is pending.
  auto swept = b->writer->sweep_pending_erasures();
  ASSERT_TRUE(swept.is_ok()) << swept.status().to_string();
  EXPECT_EQ(*swept, 2);
  EXPECT_EQ(*cluster::last_sequence(*a->conn, sh.stream), restate_seq + 1);
  EXPECT_EQ(*b->writer->sweep_pending_erasures(), 0);

  // A replica rebuilt from the stream now ends with the same rows as those that lived through
  // it: the retention of the erased enrollment, its audit entry, and no row of the basis.
  for (auto* n : {a.get(), b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(restate_seq + 1, kTimeoutMs).is_ok());
  auto d = start_node(sh, "d", false);
  ASSERT_TRUE(d->replica->catch_up(kTimeoutMs).is_ok()) << d->replica->error().to_string();
  EXPECT_EQ(dump(d->dir), dump(a->dir));
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM subject WHERE retention_until = '2095-01-01T00:00:00.000Z'"), 1);
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM audit"), 3);
  d->replica->stop();
  for (auto* n : {a.get(), b.get(), c.get()}) n->replica->stop();
  for (auto* n : {a.get(), b.get(), c.get(), d.get()}) {
    EXPECT_FALSE(any_file_holds(n->dir, *gone)) << n->name << " holds the withdrawn basis's template";
    EXPECT_FALSE(any_file_holds(n->dir, *gone_first)) << n->name << " holds the withdrawn basis's first template";
    EXPECT_TRUE(any_file_holds(n->dir, *kept)) << n->name << ": the scan finds nothing at all";
  }
}

// Every row of a review case's tables, quoted, for comparing replicas.
std::string dump_cases(const fs::path& dir) {
  auto db = vault::Db::open(dir / "vault.db", false);
  EXPECT_TRUE(db.is_ok());
  std::string out;
  for (const std::string sql : {"SELECT id||'|'||uid||'|'||status||'|'||quote(closed_at)||'|'||quote(probe_key)||'|'||"
                                "quote(probe_master_key_id) FROM review_case ORDER BY id",
                                "SELECT case_id||'|'||face_index||'|'||quote(crop) FROM review_probe ORDER BY 1",
                                "SELECT id||'|'||case_id||'|'||subject_uid||'|'||similarity FROM review_candidate ORDER BY id"}) {
    auto st = db->prepare(sql);
    EXPECT_TRUE(st.is_ok()) << st.status().to_string();
    for (;;) {
      auto row = st->step();
      if (!row.is_ok() || !*row) break;
      out += st->text(0) + "\n";
    }
  }
  return out;
}

// A search's review case keeps its probe crops under a key of its own, destroyed when the case
// closes. In a stream (the meta stream, here a shard's), that key must not travel wrapped by the
// master key, or the crops would open long after the close: the crops and the case row's key
// go apart, under the case key, which the replicas hand each other like a subject key.
TEST(Replication, AClosedCasesProbeCropsOpenWithNothingTheClusterStillHolds) {
  const Shard sh = make_shard(11);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);
  const std::string uid = vault::random_hex(16);
  const Bytes crop(700, 0x5a);
  Bytes sealed_crop, wrapped;
  int64_t case_id = 0;
  {
    auto txn = a->vault->begin();
    ASSERT_TRUE(txn.is_ok());
    auto made = a->vault->create_case_key(uid);
    ASSERT_TRUE(made.is_ok()) << made.status().to_string();
    wrapped = made->second;
    sealed_crop = vault::seal(made->first, crop, vault::probe_ad(uid, 0));
    vault::NewReviewCase rc;
    rc.uid = uid;
    rc.opened_at = vault::utc_now();
    rc.searcher = "tester";
    rc.searcher_role = "investigator";
    rc.purpose = "investigation";
    rc.case_ref = "case-1";
    rc.mode = "investigation";
    rc.probe_sha256 = std::string(64, 'a');
    rc.wrapped_probe_key = wrapped;
    rc.probe_master_key_id = a->vault->master_key_id();
    rc.candidates.push_back({0, 1, std::nullopt, "some-subject-uid", 0.61, 1e-5, 1e-3});
    rc.sealed_probe_crops.emplace_back(0, sealed_crop);
    auto id = a->vault->catalog().insert_review_case(rc);
    ASSERT_TRUE(id.is_ok()) << id.status().to_string();
    case_id = *id;
    ASSERT_TRUE(txn->commit().is_ok());
  }
  const uint64_t opened_seq = *cluster::last_sequence(*a->conn, sh.stream);
  for (auto* n : {a.get(), b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(opened_seq, kTimeoutMs).is_ok());
  EXPECT_EQ(dump_cases(b->dir), dump_cases(a->dir));
  EXPECT_EQ(dump_cases(c->dir), dump_cases(a->dir));
  EXPECT_EQ(count(c->dir, "SELECT count(*) FROM review_probe"), 1);

  // What the stream holds: the case's rows open with the master key, the crops and the case
  // key (wrapped or not) are not among them, and the crops open with the case key only.
  auto stored = cluster::get_message(*a->conn, sh.stream, opened_seq);
  ASSERT_TRUE(stored.is_ok() && stored->has_value());
  const Bytes leftover = (*stored)->data;
  auto alone = cluster::open_message(master(), sh.stream, leftover);
  ASSERT_TRUE(alone.is_ok()) << alone.status().to_string();
  EXPECT_EQ(alone->kind, cluster::EnvelopeKind::kCase);
  EXPECT_FALSE(alone->rows.empty());
  EXPECT_TRUE(alone->crops.empty());
  EXPECT_FALSE(contains(alone->rows, std::span<const uint8_t>(wrapped).subspan(0, 16)));
  EXPECT_FALSE(contains(alone->rows, std::span<const uint8_t>(sealed_crop).subspan(0, 16)));
  auto key = b->replica->key_of(uid);
  ASSERT_TRUE(key.is_ok() && key->has_value()) << "b holds the case's key";
  EXPECT_FALSE(contains(leftover, (*key)->span().subspan(0, 16)));
  auto whole = cluster::open_message(master(), sh.stream, leftover, &**key);
  ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
  EXPECT_TRUE(contains(whole->crops, std::span<const uint8_t>(sealed_crop).subspan(0, 16)));
  // A replica built while the case is open fetches the key and gets the crops.
  auto e = start_node(sh, "e", false);
  ASSERT_TRUE(e->replica->catch_up(kTimeoutMs).is_ok()) << e->replica->error().to_string();
  EXPECT_EQ(dump_cases(e->dir), dump_cases(a->dir));
  e->replica->stop();

  // The case closes: every replica destroys its key and crops.
  {
    auto txn = a->vault->begin();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(a->vault->catalog().close_review_case(case_id, vault::utc_now()).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  const uint64_t closed_seq = *cluster::last_sequence(*a->conn, sh.stream);
  for (auto* n : {a.get(), b.get(), c.get()}) {
    ASSERT_TRUE(n->replica->wait_applied(closed_seq, kTimeoutMs).is_ok());
    auto k = n->replica->key_of(uid);
    ASSERT_TRUE(k.is_ok());
    EXPECT_FALSE(k->has_value()) << n->name << " still holds the closed case's key";
    EXPECT_TRUE(*n->replica->erased(uid)) << n->name;
  }
  auto after = cluster::fetch_subject_keys(*c->conn, master(), sh.stream, {uid}, 3, kTimeoutMs);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  EXPECT_EQ(after->at(uid).state, cluster::FetchedKey::State::kErased);
  // A replica rebuilt now cannot open the crops (no replica hands out the key) and ends with
  // the same rows: the case, closed, without crops or key.
  auto d = start_node(sh, "d", false);
  ASSERT_TRUE(d->replica->catch_up(kTimeoutMs).is_ok()) << d->replica->error().to_string();
  EXPECT_EQ(dump_cases(d->dir), dump_cases(a->dir));
  EXPECT_EQ(count(d->dir, "SELECT count(*) FROM review_case WHERE status='closed' AND probe_key IS NULL"), 1);
  d->replica->stop();
  // e, down meanwhile, catches up with the close as well.
  const fs::path e_dir = e->dir;
  e.reset();
  e = start_node(sh, "e", false, e_dir);
  ASSERT_TRUE(e->replica->catch_up(kTimeoutMs).is_ok()) << e->replica->error().to_string();
  EXPECT_EQ(dump_cases(e->dir), dump_cases(a->dir));
  for (auto* n : {a.get(), b.get(), c.get(), e.get()}) n->replica->stop();
  for (auto* n : {a.get(), b.get(), c.get(), d.get(), e.get()}) {
    EXPECT_FALSE(any_file_holds(n->dir, sealed_crop)) << n->name << " holds the closed case's crop";
    EXPECT_FALSE(any_file_holds(n->dir, wrapped)) << n->name << " holds the closed case's wrapped key";
  }
}

// Issue #17, item 3: NATS's internal Raft log keeps erased messages for minutes. A copy of a
// subject's message taken before its erasure stands for that leftover: from the receipt on,
// nothing the cluster holds opens it (no key in the message, none in any vault, none handed out
// by any replica), while its audit-log part, which outlives an erasure, still opens.
TEST(Replication, ALeftoverOfAnErasedSubjectOpensWithNothingTheClusterStillHolds) {
  const Shard sh = make_shard(7);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", true);
  auto c = start_node(sh, "c", false);
  auto gone = enroll(*a->vault, "gone", 31, true);
  ASSERT_TRUE(gone.is_ok()) << gone.status().to_string();
  auto seqs = a->replica->messages_of_subject(gone->uid);
  ASSERT_TRUE(seqs.is_ok() && seqs->size() == 1u);
  auto stored = cluster::get_message(*a->conn, sh.stream, seqs->front());
  ASSERT_TRUE(stored.is_ok() && stored->has_value());
  const Bytes leftover = (*stored)->data;

  // Before: every replica hands out the key, and it opens the message.
  auto before = cluster::fetch_subject_keys(*c->conn, master(), sh.stream, {gone->uid}, 3, kTimeoutMs);
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  ASSERT_EQ(before->at(gone->uid).state, cluster::FetchedKey::State::kKey);
  ASSERT_TRUE(before->at(gone->uid).applied);
  ASSERT_EQ(before->at(gone->uid).keys.size(), 1u) << "every replica holds the one applied key";
  ASSERT_TRUE(cluster::open_message(master(), sh.stream, leftover, &before->at(gone->uid).keys[0]).is_ok());

  const Status erasure = erase(*b->vault, "gone");  // returns once b and one more replica applied it
  ASSERT_TRUE(erasure.is_ok()) << erasure.to_string();
  auto erased = b->writer->erase_messages_of_subject(gone->uid);
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  const uint64_t last = *cluster::last_sequence(*a->conn, sh.stream);
  for (auto* n : {a.get(), b.get(), c.get()}) ASSERT_TRUE(n->replica->wait_applied(last, kTimeoutMs).is_ok());

  // After: no replica holds the key, each says it is gone, and a fetch finds it erased.
  for (auto* n : {a.get(), b.get(), c.get()}) {
    auto k = n->replica->key_of(gone->uid);
    ASSERT_TRUE(k.is_ok()) << k.status().to_string();
    EXPECT_FALSE(k->has_value()) << n->name << " still holds the erased subject's key";
    EXPECT_TRUE(*n->replica->erased(gone->uid)) << n->name;
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM subject_key"), 0) << n->name;
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM replication_pending_key"), 0) << n->name;
  }
  auto after = cluster::fetch_subject_keys(*c->conn, master(), sh.stream, {gone->uid}, 3, kTimeoutMs);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  EXPECT_EQ(after->at(gone->uid).state, cluster::FetchedKey::State::kErased);
  // The leftover: the master key does not open its rows, and the key it had is in no vault file
  // (as the vaults stored it: wrapped) nor in the leftover itself.
  EXPECT_EQ(cluster::open_message(master(), sh.stream, leftover).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(contains(leftover, before->at(gone->uid).keys[0].span().subspan(0, 16)));
  for (auto* n : {a.get(), b.get(), c.get()})
    EXPECT_FALSE(any_file_holds(n->dir, gone->wrapped_key)) << n->name << " holds the erased wrapped key";
  auto log = cluster::open_log(master(), sh.stream, leftover);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  EXPECT_FALSE(log->empty()) << "the audit-log part of the leftover";
}

// The writer hands a new subject's key to the replicas before it publishes: with too few of
// them serving keys the write fails as unavailable, and nothing reaches the stream.
TEST(Replication, ANewSubjectIsNotPublishedBeforeTwoReplicasHoldItsKey) {
  const Shard sh = make_shard(8);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);
  ASSERT_TRUE(enroll(*a->vault, "first", 41).is_ok());
  const uint64_t before = *cluster::last_sequence(*a->conn, sh.stream);
  // A writer that gives up on the push after 3 s, not the usual 30.
  a->writer = std::make_shared<cluster::ShardWriter>(*a->conn, master(), *a->replica, *a->watch,
                                                     cluster::WriterOptions{sh.stream, sh.prefix, 2, 3000});
  vault::testing::raw_db(*a->vault).set_commit_interceptor(a->writer);
  b->replica->stop();
  c->replica->stop();
  auto refused = enroll(*a->vault, "second", 42);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("reached 1 of the 2 replicas"), std::string::npos)
      << refused.status().to_string();
  EXPECT_EQ(*cluster::last_sequence(*a->conn, sh.stream), before) << "a message went out before its key was held";
  // a's held copy waits for a message that will never come: the next applied message drops it.
  ASSERT_TRUE(b->replica->start().is_ok());
  auto later = enroll(*a->vault, "third", 43);
  ASSERT_TRUE(later.is_ok()) << later.status().to_string();
  EXPECT_EQ(count(a->dir, "SELECT count(*) FROM replication_pending_key"), 0);
  EXPECT_EQ(count(b->dir, "SELECT count(*) FROM replication_pending_key"), 0);
}

// The key service answers only requests sealed with the cluster's key, refuses malformed ones
// with a clear error and goes on serving; a key nobody holds is reported as unknown, not erased.
TEST(Replication, TheKeyServiceRefusesWhatIsNotARequestOfTheCluster) {
  const Shard sh = make_shard(9);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto known = enroll(*a->vault, "known", 51);
  ASSERT_TRUE(known.is_ok()) << known.status().to_string();
  const std::string subject = cluster::subject_keys_subject(sh.stream);
  auto nothing = [](const std::vector<Result<Bytes>>&) { return false; };
  for (const Bytes& garbage : {Bytes{}, Bytes{'F'}, Bytes{'P', 0, 0}, Bytes{'X', 1, 2, 3}, Bytes(40, 'F')}) {
    auto replies = cluster::rpc_gather(*a->conn, master(), {subject, garbage}, 2, 3000, nothing, 250);
    ASSERT_TRUE(replies.is_ok()) << replies.status().to_string();
    ASSERT_EQ(replies->size(), 2u) << "both replicas answer";
    for (const auto& r : *replies) EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  }
  // Sealed with another master key: nobody answers.
  const vault::SecretKey stranger = vault::SecretKey::random();
  auto none = cluster::rpc_gather(*a->conn, stranger, {subject, Bytes{'F'}}, 2, 1000, nothing);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  auto keys = cluster::fetch_subject_keys(*b->conn, master(), sh.stream, {known->uid, "0123456789abcdef"}, 2, kTimeoutMs);
  ASSERT_TRUE(keys.is_ok()) << keys.status().to_string();
  EXPECT_EQ(keys->at(known->uid).state, cluster::FetchedKey::State::kKey);
  EXPECT_EQ(keys->at("0123456789abcdef").state, cluster::FetchedKey::State::kUnknown);
  // A key pushed for a sequence the replica is already past is not kept.
  auto pushed = cluster::push_subject_key(*a->conn, master(), sh.stream, "fedcba9876543210", vault::SecretKey::random(),
                                          0, 2, kTimeoutMs);
  ASSERT_TRUE(pushed.is_ok()) << pushed.status().to_string();
  EXPECT_EQ(pushed->size(), 2u);
  EXPECT_EQ(count(b->dir, "SELECT count(*) FROM replication_pending_key"), 0);
}

// What a stream holds is checked before anything is opened: truncated, altered, relabelled or
// old-format envelopes are refused as corrupt, never opened.
TEST(Replication, EnvelopesThatDoNotParseOrOpenAreRefused) {
  const vault::SecretKey k = vault::SecretKey::random();
  const Bytes rows{'P', 1, 2, 3}, log{'P', 4, 5};
  const Bytes m = cluster::seal_subject_message(master(), "fv-shard-01", "abc", k, rows, log);
  auto ok = cluster::open_message(master(), "fv-shard-01", m, &k);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->rows, rows);
  EXPECT_EQ(ok->log, log);
  for (size_t n : {size_t{0}, size_t{3}, size_t{10}, m.size() / 2, m.size() - 1}) {
    auto r = cluster::open_message(master(), "fv-shard-01", std::span(m).first(n), &k);
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << n;
  }
  Bytes flipped = m;
  flipped[flipped.size() - 5] ^= 1;
  EXPECT_EQ(cluster::open_message(master(), "fv-shard-01", flipped, &k).status().code(), StatusCode::kCorruptData);
  // A basis's envelope must name a basis key ("<subject uid>/<basis id>"); a case's must carry
  // its crops part whole.
  const Bytes unnamed = cluster::seal_subject_message(master(), "fv-shard-01", "abc", k, rows, log, cluster::EnvelopeKind::kBasis);
  EXPECT_EQ(cluster::parse_envelope(unnamed).status().code(), StatusCode::kCorruptData);
  const Bytes named = cluster::seal_subject_message(master(), "fv-shard-01", "abc/12", k, rows, log, cluster::EnvelopeKind::kBasis);
  ASSERT_TRUE(cluster::open_message(master(), "fv-shard-01", named, &k).is_ok());
  const Bytes with_crops = cluster::seal_case_message(master(), "fv-shard-01", "case-1", k, rows, Bytes{'P', 9}, log);
  auto crops = cluster::open_message(master(), "fv-shard-01", with_crops, &k);
  ASSERT_TRUE(crops.is_ok()) << crops.status().to_string();
  EXPECT_EQ(crops->crops, (Bytes{'P', 9}));
  for (size_t n : {size_t{12}, with_crops.size() / 2, with_crops.size() - 1})
    EXPECT_EQ(cluster::open_message(master(), "fv-shard-01", std::span(with_crops).first(n), &k).status().code(),
              StatusCode::kCorruptData) << n;
  Bytes relabelled = m;
  relabelled[7] = 'x';  // the uid's first byte
  EXPECT_EQ(cluster::open_message(master(), "fv-shard-01", relabelled, &k).status().code(), StatusCode::kCorruptData);
  Bytes v1 = m;
  v1[3] = '1';
  auto old = cluster::parse_envelope(v1);
  EXPECT_EQ(old.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(old.status().message().find("version 1"), std::string::npos) << old.status().to_string();
  // The audit-log part opens without the subject's key; the rows do not.
  EXPECT_EQ(*cluster::open_log(master(), "fv-shard-01", m), log);
  EXPECT_EQ(cluster::open_message(master(), "fv-shard-01", m).status().code(), StatusCode::kFailedPrecondition);
}

TEST(Replication, NoAcknowledgedWriteIsLostWhenANatsServerIsKilled) {
  const Shard sh = make_shard(4);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);
  std::vector<std::string> acked;
  int failed = 0;
  for (int i = 0; i < 60; ++i) {
    if (i == 20) g_nats->kill(2);
    if (i == 40) g_nats->restart(2);
    std::string ref = "k";  // appended, not "k" + …: GCC 12 raises a -Wrestrict false alarm there
    ref += std::to_string(i);
    auto e = enroll(*a->vault, ref, 100 + i);
    if (e.is_ok()) acked.push_back(ref);
    else ++failed;  // unacknowledged: it may or may not be stored, never half-applied
  }
  ASSERT_TRUE(g_nats->wait_ready(60000));
  EXPECT_GE(acked.size(), 50u) << failed << " writes failed";
  ASSERT_TRUE(a->replica->catch_up(kTimeoutMs).is_ok());
  for (auto* n : {b.get(), c.get()}) ASSERT_TRUE(n->replica->catch_up(kTimeoutMs).is_ok()) << n->name;
  for (const auto& ref : acked)
    for (auto* n : {a.get(), b.get(), c.get()})
      EXPECT_EQ(count(n->dir, "SELECT count(*) FROM subject WHERE ref='" + ref + "'"), 1) << ref << " on " << n->name;
  // Every subject on a replica is whole: a key, a basis and a sealed template each.
  for (auto* n : {a.get(), b.get(), c.get()}) {
    EXPECT_EQ(count(n->dir, "SELECT count(*) FROM subject s WHERE NOT EXISTS (SELECT 1 FROM face f WHERE f.subject_id = s.id "
                            "AND length(f.template) > 0) OR NOT EXISTS (SELECT 1 FROM subject_key k WHERE k.subject_id = s.id)"),
              0)
        << n->name;
  }
  EXPECT_EQ(dump(a->dir), dump(b->dir));
  EXPECT_EQ(dump(a->dir), dump(c->dir));
}

TEST(Replication, ARestartedReplicaCatchesUpFromItsOwnPosition) {
  const Shard sh = make_shard(5);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);
  ASSERT_TRUE(enroll(*a->vault, "r0", 7).is_ok());
  ASSERT_TRUE(c->replica->wait_applied(1, kTimeoutMs).is_ok());
  const fs::path c_dir = c->dir;
  c.reset();  // the node goes away; writes go on with a and b
  for (int i = 1; i <= 5; ++i) {
    std::string ref = "r";  // appended: see above
    ref += std::to_string(i);
    ASSERT_TRUE(enroll(*a->vault, ref, 7 + i).is_ok());
  }
  EXPECT_EQ(count(c_dir, "SELECT count(*) FROM subject"), 1);
  c = start_node(sh, "c", false, c_dir);
  ASSERT_TRUE(c->replica->catch_up(kTimeoutMs).is_ok());
  EXPECT_EQ(count(c_dir, "SELECT count(*) FROM subject"), 6);
  EXPECT_EQ(dump(c_dir), dump(a->dir));
}

// Two writers can race to create one subject (a client's retry through another node while the
// first is still at it, or dead): each pushes its own key for the same sequence, and only one
// message lands. A replica left holding the loser's key, as one that went down right after the
// loser's push, opens the message with the winner's key, which it fetches from the others,
// instead of halting on a message it cannot open.
TEST(Replication, AReplicaHoldingALosingWritersKeyFetchesTheKeyOfTheMessageThatLanded) {
  const Shard sh = make_shard(10);
  auto a = start_node(sh, "a", true);
  auto b = start_node(sh, "b", false);
  auto c = start_node(sh, "c", false);
  ASSERT_TRUE(enroll(*a->vault, "first", 21).is_ok());
  ASSERT_TRUE(c->replica->wait_applied(1, kTimeoutMs).is_ok());
  const fs::path c_dir = c->dir;
  c.reset();
  auto raced = enroll(*a->vault, "raced", 22);  // message 2, sealed under a's key for the subject
  ASSERT_TRUE(raced.is_ok()) << raced.status().to_string();
  {
    // What the losing writer's push left on c: another key for the same uid and sequence.
    auto v = vault::Vault::open(c_dir);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    ASSERT_TRUE((*v)->hold_subject_key(sh.stream, raced->uid, vault::SecretKey::random(), 1).is_ok());
  }
  EXPECT_EQ(count(c_dir, "SELECT count(*) FROM replication_pending_key"), 1);
  c = start_node(sh, "c", false, c_dir);
  const Status caught_up = c->replica->catch_up(kTimeoutMs);
  ASSERT_TRUE(caught_up.is_ok()) << caught_up.to_string() << "; replica: " << c->replica->error().to_string();
  EXPECT_EQ(count(c_dir, "SELECT count(*) FROM subject"), 2);
  EXPECT_EQ(count(c_dir, "SELECT count(*) FROM replication_pending_key"), 0) << "the loser's key went with its sequence";
  EXPECT_EQ(dump(c_dir), dump(a->dir));
  auto k = c->replica->key_of(raced->uid);
  auto winner = a->replica->key_of(raced->uid);
  ASSERT_TRUE(k.is_ok() && k->has_value() && winner.is_ok() && winner->has_value());
  EXPECT_EQ((*k)->to_hex(), (*winner)->to_hex());
}

}  // namespace
}  // namespace fv
