// Replication of vault transactions (changeset.h): a writer's transaction captured as a
// patchset and rolled back, then applied on identical replicas with the stream's sequence; an
// erasure's patchset carries none of the erased bytes; a replica that diverged fails and keeps
// its state; every table is captured or explicitly local; foreign keys and cascades apply.
#include "vault/changeset.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "vault/catalog.h"
#include "vault/testing.h"
#include "vault/vault.h"
#include "vault/vault_test_util.h"

namespace fv::vault {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr const char* kStream = "fv-shard-03";
const std::string kMasterHex(64, '7');
const std::string kSigningHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// Every row of a table, every column typed and byte for byte, ordered by primary key.
std::string dump_table(Db& db, const std::string& table, const std::string& where = "") {
  std::string order;
  {
    auto s = db.prepare("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk");
    EXPECT_TRUE(s.is_ok());
    s->bind(1, table);
    while (*s->step()) {
      if (!order.empty()) order += ", ";
      order += '"';
      order += s->text(0);
      order += '"';
    }
  }
  if (order.empty()) order = "rowid";  // sqlite_sequence
  const std::string sql = "SELECT * FROM \"" + table + "\"" + (where.empty() ? "" : " WHERE " + where) + " ORDER BY " + order;
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  std::string out = "[" + table + "]\n";
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const int t = sqlite3_column_type(st, i);
      out += std::to_string(t) + ":";
      if (t == SQLITE_BLOB || t == SQLITE_TEXT) {
        const auto* p = static_cast<const char*>(t == SQLITE_BLOB ? sqlite3_column_blob(st, i)
                                                                  : reinterpret_cast<const char*>(sqlite3_column_text(st, i)));
        out += std::to_string(sqlite3_column_bytes(st, i)) + ":" + std::string(p ? p : "", sqlite3_column_bytes(st, i));
      } else if (t != SQLITE_NULL) {
        out += reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      }
      out += "|";
    }
    out += "\n";
  }
  sqlite3_finalize(st);
  return out;
}

// Every captured table of a vault, minus what each vault writes for itself at init: its
// creation time, and the "start" audit checkpoint (signed then, with the vault's own clock).
std::string dump_vault(Db& db) {
  auto tables = captured_tables(db);
  EXPECT_TRUE(tables.is_ok()) << tables.status().to_string();
  std::vector<std::string> names = *tables;
  std::sort(names.begin(), names.end());
  std::string out;
  for (auto& t : names)
    out += dump_table(db, t, t == "meta" ? "key <> 'created_at'" : t == "audit_checkpoint" ? "kind <> 'start'" : "");
  out += dump_table(db, "sqlite_sequence", "");
  return out;
}

bool holds_window(std::span<const uint8_t> hay, std::span<const uint8_t> secret) {
  TempDir d;
  std::ofstream(d.path() / "patchset", std::ios::binary)
      .write(reinterpret_cast<const char*>(hay.data()), static_cast<std::streamsize>(hay.size()));
  return !test::files_holding(d.path(), secret).empty();
}

struct Enrolled {
  int64_t subject = 0, basis = 0, image = 0, face = 0;
  Bytes sealed_template, sealed_image, reference_crop, wrapped_key;
};

class ChangesetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* env : {kMasterKeyEnv, kAuditSigningKeyEnv}) {
      const char* v = std::getenv(env);
      saved_env_.emplace_back(env, v ? std::optional<std::string>(v) : std::nullopt);
    }
    // One cluster master key and audit signing key on every node (docs/cluster.md).
    ::setenv(kMasterKeyEnv, kMasterHex.c_str(), 1);
    ::setenv(kAuditSigningKeyEnv, kSigningHex.c_str(), 1);
    a_ = make_vault("a");
    b_ = make_vault("b");
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    for (auto& [name, value] : saved_env_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }

  std::unique_ptr<Vault> make_vault(const std::string& name) {
    const fs::path dir = tmp_.path() / name;
    Status st = Vault::init(dir);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    auto v = Vault::open(dir);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    return v.is_ok() ? std::move(*v) : nullptr;
  }

  static int64_t count(Vault& v, const std::string& sql) { return *testing::raw_db(v).query_int(sql); }

  // One enrollment on `v`, inside the caller's transaction, through the catalog: subject, key,
  // basis with two purposes, kept source image, sealed template, reference crop, audit entry.
  static Enrolled enroll(Vault& v, const std::string& ref) {
    Catalog& cat = v.catalog();
    Enrolled e;
    const std::string t0 = "2025-03-01T10:00:00.000Z";
    e.subject = *cat.insert_subject("uid-" + ref, ref, t0, "2099-01-01T00:00:00.000Z");
    auto key = v.create_subject_key(e.subject);
    EXPECT_TRUE(key.is_ok()) << key.status().to_string();
    e.basis = *cat.insert_basis({e.subject, "consent", "form-7", t0, std::nullopt, "tester", {"access-control", "research"}});
    e.image = *cat.insert_source_image({e.subject, e.basis, std::string(64, 'c'), 4321, "jpeg", "tester", "file", "x.jpg", t0});
    std::mt19937 rng(static_cast<uint32_t>(e.subject * 7919 + ref.size()));
    std::vector<uint8_t> photo(3000);
    for (auto& b : photo) b = static_cast<uint8_t>(rng());
    e.sealed_image = seal(*key, photo, image_ad(e.subject, e.image));
    EXPECT_TRUE(cat.seal_source_image(e.image, e.sealed_image).is_ok());
    e.face = *cat.insert_face({e.subject, e.image, e.basis, "synthetic", 1, 512, "[1,2,3,4]", "{}", t0});
    const auto t = test::random_template(rng);
    e.sealed_template = seal(*key, test::float_bytes(t.values), face_ad(e.subject, e.face, "synthetic", 1));
    EXPECT_TRUE(cat.seal_face(e.face, e.sealed_template).is_ok());
    e.reference_crop = seal(*key, std::vector<uint8_t>(photo.begin(), photo.begin() + 900), reference_ad(e.subject, e.face));
    EXPECT_TRUE(cat.insert_reference_crop(e.face, e.subject, e.reference_crop).is_ok());
    AuditEntry a;
    a.ts = t0;
    a.actor = "tester";
    a.role = "enroller";
    a.action = "enroll";
    a.purpose = "access-control";
    a.subjects = {"uid-" + ref};
    a.details = {{"face_id", e.face}};
    EXPECT_TRUE(cat.append_audit(a).is_ok());
    auto w = testing::raw_db(v).prepare("SELECT wrapped FROM subject_key WHERE subject_id=?");
    w->bind(1, e.subject);
    EXPECT_TRUE(*w->step());
    e.wrapped_key = w->blob(0);
    return e;
  }

  // One enrollment in a transaction of its own, committed (a replica acting as a writer).
  static Enrolled enroll_committed(Vault& v, const std::string& ref) {
    auto txn = v.begin();
    EXPECT_TRUE(txn.is_ok()) << txn.status().to_string();
    Enrolled e = enroll(v, ref);
    EXPECT_TRUE(txn->commit().is_ok());
    return e;
  }

  // Runs `body` on the writer in a transaction under a capture; returns the patchset and rolls
  // the transaction back.
  template <class F>
  std::vector<uint8_t> capture(Vault& v, F body) {
    auto txn = v.begin();
    EXPECT_TRUE(txn.is_ok());
    auto cap = v.capture_changes();
    EXPECT_TRUE(cap.is_ok()) << cap.status().to_string();
    body();
    auto ps = cap->patchset();
    EXPECT_TRUE(ps.is_ok()) << ps.status().to_string();
    return ps.is_ok() ? *ps : std::vector<uint8_t>{};
  }  // the Txn's destructor rolls back

  std::vector<uint8_t> enroll_patchset(const std::string& ref, Enrolled* out) {
    return capture(*a_, [&] { *out = enroll(*a_, ref); });
  }

  void apply_both(int64_t seq, const std::vector<uint8_t>& ps) {
    for (Vault* v : {a_.get(), b_.get()}) {
      auto r = v->apply_replicated(kStream, seq, ps, "2025-03-01T10:00:01.000Z");
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_TRUE(*r);
    }
  }

  TempDir tmp_;
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_env_;
  std::unique_ptr<Vault> a_, b_;
};

TEST_F(ChangesetTest, TheWriterRollsBackAndEveryReplicaAppliesTheSameRows) {
  const std::string a0 = dump_vault(testing::raw_db(*a_)), b0 = dump_vault(testing::raw_db(*b_));
  ASSERT_EQ(a0, b0) << "two fresh vaults differ";
  const int64_t gen0 = *a_->catalog().generation(Generation::kGallery);
  Enrolled e;
  const auto ps = enroll_patchset("alice", &e);
  ASSERT_FALSE(ps.empty());
  // Rolled back: the writer is unchanged until it applies its own message.
  for (const char* t : {"subject", "subject_key", "lawful_basis", "basis_purpose", "source_image", "face", "reference_crop", "audit"})
    EXPECT_EQ(count(*a_, std::string("SELECT count(*) FROM ") + t), 0) << t;
  EXPECT_EQ(dump_vault(testing::raw_db(*a_)), a0);

  apply_both(1, ps);
  const std::string a1 = dump_vault(testing::raw_db(*a_));
  EXPECT_EQ(a1, dump_vault(testing::raw_db(*b_)));
  EXPECT_NE(a1, a0);
  for (Vault* v : {a_.get(), b_.get()}) {
    EXPECT_EQ(*v->catalog().applied_seq(kStream), 1);
    EXPECT_EQ(*v->catalog().applied_seq("fv-shard-04"), 0);
    EXPECT_EQ(count(*v, "SELECT count(*) FROM face"), 1);
    EXPECT_EQ(count(*v, "SELECT count(*) FROM basis_purpose"), 2);
    // The generation is recomputed by each replica's triggers (it is not in the patchset).
    EXPECT_EQ(*v->catalog().generation(Generation::kGallery), gen0 + 1);
    // The sealed rows open on the replica, under the shared master key.
    auto key = v->subject_key(e.subject);
    ASSERT_TRUE(key.is_ok()) << key.status().to_string();
    int faces = 0;
    ASSERT_TRUE(v->catalog().faces_for_gallery([&](const GalleryFaceRow& r) {
      ++faces;
      EXPECT_TRUE(open_sealed(*key, r.sealed_template, face_ad(r.subject_id, r.face_id, r.model_id, r.model_version)).is_ok());
      return Status::ok();
    }).is_ok());
    EXPECT_EQ(faces, 1);
    auto verified = v->catalog().verify_audit();
    ASSERT_TRUE(verified.is_ok());
    EXPECT_TRUE(verified->ok) << verified->message;
    EXPECT_EQ(verified->entries, 1);
  }

  // A replay of the same message changes nothing.
  auto again = b_->apply_replicated(kStream, 1, ps, "2025-03-01T11:00:00.000Z");
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_FALSE(*again);
  EXPECT_EQ(dump_vault(testing::raw_db(*b_)), a1);
  auto rows = b_->catalog().replication_state();
  ASSERT_TRUE(rows.is_ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].applied_at, "2025-03-01T10:00:01.000Z");

  // The next writer transaction builds on the applied one: ids continue on every replica.
  Enrolled e2;
  const auto ps2 = enroll_patchset("bob", &e2);
  EXPECT_EQ(e2.subject, e.subject + 1);
  EXPECT_EQ(e2.face, e.face + 1);
  apply_both(2, ps2);
  EXPECT_EQ(dump_vault(testing::raw_db(*a_)), dump_vault(testing::raw_db(*b_)));
  for (Vault* v : {a_.get(), b_.get()}) EXPECT_TRUE(v->catalog().verify_audit()->ok);
}

TEST_F(ChangesetTest, AnErasurePatchsetCarriesNoErasedBytes) {
  Enrolled e;
  const auto enroll_ps = enroll_patchset("alice", &e);
  // The scan finds what an insert carries (so its silence below means something).
  EXPECT_TRUE(holds_window(enroll_ps, e.sealed_template));
  EXPECT_TRUE(holds_window(enroll_ps, e.wrapped_key));
  apply_both(1, enroll_ps);
  const int64_t gen1 = *b_->catalog().generation(Generation::kGallery);

  const auto erase_ps = capture(*a_, [&] {
    auto c = a_->catalog().erase_subject(e.subject);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(c->faces, 1);
    EXPECT_TRUE(a_->mark_wipe_pending().is_ok());  // as the erase use case does: a local row, left out
  });
  ASSERT_FALSE(erase_ps.empty());
  for (const Bytes* secret : {&e.sealed_template, &e.wrapped_key, &e.sealed_image, &e.reference_crop})
    EXPECT_FALSE(holds_window(erase_ps, *secret));
  EXPECT_EQ(count(*a_, "SELECT count(*) FROM face"), 1);  // rolled back

  auto sum = summarize_patchset(erase_ps);
  ASSERT_TRUE(sum.is_ok()) << sum.status().to_string();
  // Its one kind of insert: the record of each AUTOINCREMENT table's sequence (names and numbers).
  for (const auto& [table, n] : sum->inserts) EXPECT_EQ(table, "id_floor") << n << " inserts";
  EXPECT_EQ(sum->count("id_floor", SQLITE_INSERT), count(*a_, "SELECT count(*) FROM sqlite_sequence"));
  EXPECT_GE(sum->count("id_floor", SQLITE_INSERT), 4) << "subject, lawful_basis, source_image, face";
  EXPECT_TRUE(sum->updates.empty());
  EXPECT_EQ(sum->face_ids_deleted, std::vector<int64_t>{e.face});
  EXPECT_EQ(sum->subject_ids_deleted, std::vector<int64_t>{e.subject});
  EXPECT_EQ(sum->count("basis_purpose", SQLITE_DELETE), 2);
  EXPECT_EQ(sum->count("meta", SQLITE_INSERT), 0);  // wipe_pending stays local

  EXPECT_EQ(count(*b_, "SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0);
  apply_both(2, erase_ps);
  for (Vault* v : {a_.get(), b_.get()}) {
    for (const char* t : {"subject", "subject_key", "lawful_basis", "basis_purpose", "source_image", "face", "reference_crop"})
      EXPECT_EQ(count(*v, std::string("SELECT count(*) FROM ") + t), 0) << t;
    EXPECT_EQ(count(*v, "SELECT count(*) FROM audit"), 1);
    EXPECT_EQ(*v->catalog().generation(Generation::kGallery), gen1 + 1);
    EXPECT_EQ(*v->catalog().applied_seq(kStream), 2);
    // Each replica wipes its own files: flagged by the apply, done by wipe_free_space().
    EXPECT_EQ(count(*v, "SELECT count(*) FROM meta WHERE key='wipe_pending'"), 1);
    ASSERT_TRUE(v->wipe_free_space().is_ok());
    EXPECT_TRUE(test::files_holding(v->paths().dir, e.sealed_template).empty());
    EXPECT_TRUE(test::files_holding(v->paths().dir, e.wrapped_key).empty());
  }
  EXPECT_EQ(dump_vault(testing::raw_db(*a_)), dump_vault(testing::raw_db(*b_)));
}

TEST_F(ChangesetTest, ADivergedReplicaFailsAndKeepsItsState) {
  Enrolled e;
  const auto enroll_ps = enroll_patchset("alice", &e);
  apply_both(1, enroll_ps);
  const auto erase_ps = capture(*a_, [&] { ASSERT_TRUE(a_->catalog().erase_subject(e.subject).is_ok()); });

  // A replica that never had the rows (one rebuilt from a stream whose erased messages are
  // gone): the deletes find nothing, which leaves it as the erasure wants it.
  auto c = make_vault("c");
  auto r = c->apply_replicated(kStream, 2, erase_ps, "2025-03-02T00:00:00.000Z");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(*r);
  EXPECT_EQ(*c->catalog().applied_seq(kStream), 2);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM subject"), 0);

  // But an update of a row the replica lacks is a divergence: nothing applied.
  auto d = make_vault("d");
  const std::string d0 = dump_vault(testing::raw_db(*d));
  auto upd_ps = capture(*b_, [&] {
    ASSERT_TRUE(b_->catalog().set_retention(e.subject, "2100-01-01T00:00:00.000Z").is_ok());
  });
  r = d->apply_replicated(kStream, 3, upd_ps, "2025-03-02T00:00:00.000Z");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().to_string();
  EXPECT_NE(r.status().message().find("does not exist"), std::string::npos) << r.status().message();
  EXPECT_EQ(*d->catalog().applied_seq(kStream), 0);
  EXPECT_EQ(dump_vault(testing::raw_db(*d)), d0);
  EXPECT_EQ(count(*d, "SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0);

  // A replica that already has the rows (under another stream): the inserts collide, and the
  // rows applied before the collision are rolled back with it.
  const std::string b1 = dump_vault(testing::raw_db(*b_));
  r = b_->apply_replicated("fv-shard-09", 1, enroll_ps, "2025-03-02T00:00:00.000Z");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().to_string();
  EXPECT_NE(r.status().message().find("exists"), std::string::npos) << r.status().message();
  EXPECT_EQ(*b_->catalog().applied_seq("fv-shard-09"), 0);
  EXPECT_EQ(dump_vault(testing::raw_db(*b_)), b1);

  // A child whose parent the replica lacks: the foreign key fails at the end of the patchset.
  const auto orphan_ps = [&] {
    auto txn = a_->begin();
    EXPECT_TRUE(txn.is_ok());
    const int64_t sid = *a_->catalog().insert_subject("uid-bob", "bob", "2025-03-01T00:00:00.000Z", "2099-01-01T00:00:00.000Z");
    auto cap = a_->capture_changes();
    EXPECT_TRUE(cap.is_ok());
    EXPECT_TRUE(a_->catalog().insert_basis({sid, "consent", "f", "2025-03-01T00:00:00.000Z", std::nullopt, "t", {"x"}}).is_ok());
    return *cap->patchset();
  }();
  r = d->apply_replicated(kStream, 1, orphan_ps, "2025-03-02T00:00:00.000Z");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().to_string();
  EXPECT_NE(r.status().message().find("foreign key"), std::string::npos) << r.status().message();
  EXPECT_EQ(dump_vault(testing::raw_db(*d)), d0);
  EXPECT_EQ(*d->catalog().applied_seq(kStream), 0);

  // Truncated anywhere: refused, never half-applied.
  // (A prefix that ends between two changes is a smaller patchset, and applies: the envelope's
  // seal, not the patchset, proves a message whole.)
  // (SQLite 3.40's own reader loops forever on a patchset cut inside a table header, even on
  // "P" alone: summarize_patchset and apply_patchset check the structure first.)
  for (size_t n = 1; n < enroll_ps.size(); ++n) {
    const std::span<const uint8_t> part(enroll_ps.data(), n);
    (void)summarize_patchset(part);
    const bool dump = n % 61 == 0;
    const std::string before = dump ? dump_vault(testing::raw_db(*c)) : "";
    const int64_t at = *c->catalog().applied_seq("prefixes");
    auto t = c->apply_replicated("prefixes", at + 1, part, "2025-03-02T00:00:00.000Z");
    if (t.is_ok()) continue;
    EXPECT_EQ(*c->catalog().applied_seq("prefixes"), at);
    if (dump) {
      EXPECT_EQ(dump_vault(testing::raw_db(*c)), before);
    }
  }
  c = make_vault("c2");

  // Not a patchset at all.
  const std::vector<uint8_t> junk = {'P', 0xff, 0xff, 0xff};
  r = c->apply_replicated(kStream, 1, junk, "2025-03-02T00:00:00.000Z");
  EXPECT_FALSE(r.is_ok());
  EXPECT_EQ(*c->catalog().applied_seq(kStream), 0);
}

// sqlite_sequence is not replicated. A replica rebuilt from a stream after an erasure never saw
// the erased rows (their messages are gone), only the deletes: applying them raises each
// AUTOINCREMENT table's sequence, so as a writer it never gives an erased id to a new row.
TEST_F(ChangesetTest, ARebuiltReplicaNeverGivesAnErasedIdAgain) {
  Enrolled alice, bob;
  const auto alice_ps = enroll_patchset("alice", &alice);
  apply_both(1, alice_ps);
  const auto bob_ps = enroll_patchset("bob", &bob);
  apply_both(2, bob_ps);
  ASSERT_GT(bob.subject, alice.subject);
  const auto erase_ps = capture(*a_, [&] { ASSERT_TRUE(a_->catalog().erase_subject(bob.subject).is_ok()); });
  apply_both(3, erase_ps);

  // Rebuilt: message 2 (bob's enrollment) was erased from the stream, so it applies 1 and 3.
  auto c = make_vault("rebuilt");
  for (auto [seq, ps] : {std::pair{1, &alice_ps}, std::pair{3, &erase_ps}}) {
    auto r = c->apply_replicated(kStream, seq, *ps, "2025-03-02T00:00:00.000Z");
    ASSERT_TRUE(r.is_ok() && *r) << r.status().to_string();
  }
  EXPECT_EQ(count(*c, "SELECT count(*) FROM subject"), 1);
  EXPECT_EQ(count(*c, "SELECT seq FROM sqlite_sequence WHERE name='subject'"), bob.subject);
  EXPECT_EQ(count(*c, "SELECT seq FROM sqlite_sequence WHERE name='face'"), bob.face);
  // The survivors' sequences, already at bob's ids, are unchanged by the same deletes.
  EXPECT_EQ(dump_table(testing::raw_db(*c), "sqlite_sequence"), dump_table(testing::raw_db(*b_), "sqlite_sequence"));

  // As a writer, the rebuilt replica gives new ids above every erased one.
  const Enrolled carol = enroll_committed(*c, "carol");
  EXPECT_GT(carol.subject, bob.subject);
  EXPECT_GT(carol.basis, bob.basis);
  EXPECT_GT(carol.image, bob.image);
  EXPECT_GT(carol.face, bob.face);

  // A patchset that fails leaves the sequences as they were (one savepoint around both).
  auto d = make_vault("d");
  const std::string d0 = dump_table(testing::raw_db(*d), "sqlite_sequence");
  const std::vector<uint8_t> both = [&] {
    std::vector<uint8_t> v = erase_ps;  // deletes of bob's rows, then an update of alice's: d has neither
    const auto upd = capture(*b_, [&] { ASSERT_TRUE(b_->catalog().set_retention(alice.subject, "2100-01-01T00:00:00.000Z").is_ok()); });
    v.insert(v.end(), upd.begin(), upd.end());
    return v;
  }();
  EXPECT_FALSE(d->apply_replicated(kStream, 1, both, "2025-03-02T00:00:00.000Z").is_ok());
  EXPECT_EQ(dump_table(testing::raw_db(*d), "sqlite_sequence"), d0);
}

// A row inserted and deleted by messages that are later erased (a face withdrawn before its
// subject's erasure) is named by no delete left in the stream: the erasure's own message
// records every table's sequence (id_floor), and a replica rebuilt from what is left raises
// its sequences to it.
TEST_F(ChangesetTest, ARebuiltReplicaNeverGivesTheIdOfARowWithdrawnBeforeTheErasure) {
  Enrolled alice, bob;
  const auto alice_ps = enroll_patchset("alice", &alice);
  apply_both(1, alice_ps);
  const auto bob_ps = enroll_patchset("bob", &bob);
  apply_both(2, bob_ps);
  // Bob's second basis and face (message 3), withdrawn (message 4): both are bob's messages.
  int64_t second_basis = 0, second_image = 0, second_face = 0;
  const auto second_ps = capture(*a_, [&] {
    const std::string t0 = "2025-03-01T11:00:00.000Z";
    second_basis = *a_->catalog().insert_basis({bob.subject, "consent", "form-8", t0, std::nullopt, "tester", {"research"}});
    second_image = *a_->catalog().insert_source_image({bob.subject, second_basis, std::string(64, 'd'), 10, "jpeg", "tester", "file", "y.jpg", t0});
    second_face = *a_->catalog().insert_face({bob.subject, second_image, second_basis, "synthetic", 1, 512, "[1]", "{}", t0});
  });
  apply_both(3, second_ps);
  ASSERT_GT(second_face, bob.face);
  const auto withdraw_ps = capture(*a_, [&] {
    ASSERT_TRUE(a_->catalog().withdraw_basis_rows(second_basis, "2025-03-01T12:00:00.000Z").is_ok());
  });
  apply_both(4, withdraw_ps);
  const auto erase_ps = capture(*a_, [&] { ASSERT_TRUE(a_->catalog().erase_subject(bob.subject).is_ok()); });
  apply_both(5, erase_ps);
  EXPECT_EQ(count(*b_, "SELECT seq FROM id_floor WHERE name='face'"), second_face) << "recorded where every replica applies it";
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM id_floor"), count(*b_, "SELECT count(*) FROM sqlite_sequence"))
      << "one record per table: the latest";

  // Rebuilt: bob's messages 2-4 were erased from the stream; what is left is 1 and 5.
  auto c = make_vault("rebuilt");
  for (auto [seq, ps] : {std::pair{1, &alice_ps}, std::pair{5, &erase_ps}}) {
    auto r = c->apply_replicated(kStream, seq, *ps, "2025-03-02T00:00:00.000Z");
    ASSERT_TRUE(r.is_ok() && *r) << r.status().to_string();
  }
  EXPECT_EQ(count(*c, "SELECT seq FROM sqlite_sequence WHERE name='face'"), second_face)
      << "no delete left names the withdrawn face";
  EXPECT_EQ(count(*c, "SELECT seq FROM sqlite_sequence WHERE name='lawful_basis'"), second_basis);
  EXPECT_EQ(count(*c, "SELECT seq FROM sqlite_sequence WHERE name='source_image'"), second_image);
  auto sequences = [](Vault& v) {
    std::string out;
    auto q = testing::raw_db(v).prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name");
    while (*q->step()) out += q->text(0) + "=" + std::to_string(q->i64(1)) + " ";
    return out;
  };
  EXPECT_EQ(sequences(*c), sequences(*b_));
  EXPECT_EQ(dump_table(testing::raw_db(*c), "id_floor"), dump_table(testing::raw_db(*b_), "id_floor"));

  const Enrolled carol = enroll_committed(*c, "carol");
  EXPECT_GT(carol.face, second_face);
  EXPECT_GT(carol.basis, second_basis);
  EXPECT_GT(carol.image, second_image);
}

TEST_F(ChangesetTest, SequencesOnlyMoveForwardAndMayHaveGaps) {
  const auto empty_ps = capture(*a_, [] {});
  EXPECT_TRUE(empty_ps.empty());
  auto r = b_->apply_replicated(kStream, 1, empty_ps, "t1");
  ASSERT_TRUE(r.is_ok() && *r) << r.status().to_string();
  Enrolled e;
  const auto ps = enroll_patchset("alice", &e);
  r = b_->apply_replicated(kStream, 5, ps, "t5", "uid-alice");  // 2..4 were erased from the stream
  ASSERT_TRUE(r.is_ok() && *r) << r.status().to_string();
  r = b_->apply_replicated(kStream, 3, ps, "t3", "uid-alice");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(*r);
  r = b_->apply_replicated(kStream, 5, ps, "t5", "uid-alice");  // a replay records nothing twice
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(*r);
  EXPECT_EQ(*b_->catalog().subject_messages(kStream, "uid-alice"), std::vector<int64_t>{5});
  EXPECT_TRUE(b_->catalog().subject_messages("fv-shard-04", "uid-alice")->empty());
  EXPECT_TRUE(b_->catalog().subject_messages(kStream, "uid-bob")->empty());
  ASSERT_TRUE(b_->catalog().forget_subject_messages(kStream, "uid-alice").is_ok());
  EXPECT_TRUE(b_->catalog().subject_messages(kStream, "uid-alice")->empty());
  EXPECT_EQ(*b_->catalog().applied_seq(kStream), 5);
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM face"), 1);
  EXPECT_FALSE(b_->apply_replicated(kStream, 0, ps, "t0").is_ok());
  {
    auto txn = b_->begin();
    ASSERT_TRUE(txn.is_ok());
    Status back = b_->catalog().set_applied_seq(kStream, 4, "t4");
    EXPECT_EQ(back.code(), StatusCode::kFailedPrecondition) << back.to_string();
  }
  EXPECT_EQ(*b_->catalog().applied_seq(kStream), 5);
}

// A replica catching up applies what it has buffered in one transaction: the result is the
// vault the messages give one by one, and a batch is all or nothing.
TEST_F(ChangesetTest, ABatchAppliesAsItsMessagesOneByOneOrNotAtAll) {
  Enrolled alice, bob;
  const auto alice_ps = enroll_patchset("alice", &alice);
  apply_both(1, alice_ps);
  const auto bob_ps = enroll_patchset("bob", &bob);
  apply_both(2, bob_ps);
  const auto erase_ps = capture(*a_, [&] { ASSERT_TRUE(a_->catalog().erase_subject(alice.subject).is_ok()); });
  apply_both(4, erase_ps);

  auto one_by_one = make_vault("one-by-one");
  auto batched = make_vault("batched");
  ASSERT_TRUE(one_by_one->apply_replicated(kStream, 1, alice_ps, "t", "uid-alice").is_ok());
  ASSERT_TRUE(batched->apply_replicated(kStream, 1, alice_ps, "t", "uid-alice").is_ok());
  ASSERT_TRUE(one_by_one->apply_replicated(kStream, 2, bob_ps, "t", "uid-bob").is_ok());
  ASSERT_TRUE(one_by_one->apply_replicated(kStream, 4, erase_ps, "t", "uid-alice").is_ok());
  // Message 1 again (a replay after a reconnect), then 2 and 4 (3 was erased from the stream).
  const std::vector<Vault::ReplicatedMessage> batch = {
      {1, alice_ps, "uid-alice"}, {2, bob_ps, "uid-bob"}, {4, erase_ps, "uid-alice"}};
  auto applied = batched->apply_replicated_batch(kStream, batch, "t");
  ASSERT_TRUE(applied.is_ok()) << applied.status().to_string();
  EXPECT_EQ(*applied, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(dump_vault(testing::raw_db(*batched)), dump_vault(testing::raw_db(*one_by_one)));
  EXPECT_EQ(*batched->catalog().applied_seq(kStream), 4);
  EXPECT_EQ(*batched->catalog().subject_messages(kStream, "uid-alice"), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(*batched->catalog().subject_messages(kStream, "uid-bob"), std::vector<int64_t>{2});
  EXPECT_EQ(count(*batched, "SELECT count(*) FROM subject"), 1);
  // The erasure in the batch flagged the wipe that removes its freed pages.
  EXPECT_TRUE(batched->wipe_free_space().is_ok());

  // A conflict in the third message rolls back the first two: nothing of the batch is applied.
  auto c = make_vault("all-or-nothing");
  const std::string c0 = dump_vault(testing::raw_db(*c));
  const std::vector<Vault::ReplicatedMessage> broken = {
      {1, alice_ps, "uid-alice"}, {2, bob_ps, "uid-bob"}, {3, bob_ps, "uid-bob"}};
  auto failed = c->apply_replicated_batch(kStream, broken, "t");
  EXPECT_EQ(failed.status().code(), StatusCode::kFailedPrecondition) << failed.status().to_string();
  EXPECT_EQ(dump_vault(testing::raw_db(*c)), c0);
  EXPECT_EQ(*c->catalog().applied_seq(kStream), 0);
  EXPECT_TRUE(c->catalog().subject_messages(kStream, "uid-alice")->empty());

  // Out of order, or a malformed patchset anywhere, is refused before anything is applied.
  const std::vector<Vault::ReplicatedMessage> backwards = {{2, bob_ps, ""}, {1, alice_ps, ""}};
  EXPECT_EQ(c->apply_replicated_batch(kStream, backwards, "t").status().code(), StatusCode::kInvalidArgument);
  const std::vector<uint8_t> junk = {'P', 0xff, 0xff, 0xff};
  const std::vector<Vault::ReplicatedMessage> with_junk = {{1, alice_ps, ""}, {2, junk, ""}};
  EXPECT_FALSE(c->apply_replicated_batch(kStream, with_junk, "t").is_ok());
  EXPECT_EQ(dump_vault(testing::raw_db(*c)), c0);
  auto none = c->apply_replicated_batch(kStream, {}, "t");
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(ChangesetTest, EveryTableIsCapturedOrLocalOnly) {
  Db& db = testing::raw_db(*a_);
  auto tables = captured_tables(db);
  ASSERT_TRUE(tables.is_ok()) << tables.status().to_string();
  std::set<std::string> all;
  {
    auto s = db.prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'");
    ASSERT_TRUE(s.is_ok());
    while (*s->step()) all.insert(s->text(0));
  }
  std::multiset<std::string> classified(tables->begin(), tables->end());
  classified.insert(local_only_tables().begin(), local_only_tables().end());
  EXPECT_EQ(classified, std::multiset<std::string>(all.begin(), all.end()));
  EXPECT_TRUE(all.count("replication_state"));
  EXPECT_TRUE(all.count("replication_message"));
  EXPECT_TRUE(all.count("api_key"));  // schema 9 creates it: every replica has the same tables
  // Children before parents: applying deletes never finds a child already removed by a cascade.
  for (size_t i = 0; i < tables->size(); ++i) {
    auto fk = db.prepare("SELECT \"table\" FROM pragma_foreign_key_list(?)");
    fk->bind(1, (*tables)[i]);
    while (*fk->step()) {
      const auto at = std::find(tables->begin(), tables->end(), fk->text(0));
      EXPECT_TRUE(at > tables->begin() + static_cast<std::ptrdiff_t>(i)) << (*tables)[i] << " refers to " << fk->text(0);
    }
  }
  // Every meta key a vault holds after some activity is classified.
  Enrolled e;
  apply_both(1, enroll_patchset("alice", &e));
  ASSERT_TRUE(a_->optout_key(true).is_ok());
  ASSERT_TRUE(a_->mark_wipe_pending().is_ok());
  auto keys = db.prepare("SELECT key FROM meta");
  while (*keys->step()) {
    const std::string k = keys->text(0);
    const bool replicated = std::count(replicated_meta_keys().begin(), replicated_meta_keys().end(), k) == 1;
    const bool local = std::count(local_meta_keys().begin(), local_meta_keys().end(), k) == 1;
    EXPECT_TRUE(replicated != local) << "meta key " << k;
  }
}

TEST_F(ChangesetTest, ATableWithoutPrimaryKeyOrCreatedLaterIsRefused) {
  Db& db = testing::raw_db(*b_);
  ASSERT_TRUE(db.exec("CREATE TABLE scratch(x TEXT)").is_ok());
  auto cap = b_->capture_changes();
  ASSERT_FALSE(cap.is_ok());
  EXPECT_EQ(cap.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(cap.status().message().find("scratch"), std::string::npos) << cap.status().message();
  ASSERT_TRUE(db.exec("DROP TABLE scratch").is_ok());

  auto txn = b_->begin();
  ASSERT_TRUE(txn.is_ok());
  auto late = b_->capture_changes();
  ASSERT_TRUE(late.is_ok()) << late.status().to_string();
  ASSERT_TRUE(db.exec("CREATE TABLE late_table(id INTEGER PRIMARY KEY); INSERT INTO late_table VALUES(1)").is_ok());
  auto ps = late->patchset();
  ASSERT_FALSE(ps.is_ok());
  EXPECT_NE(ps.status().message().find("late_table"), std::string::npos) << ps.status().message();
}

TEST_F(ChangesetTest, CascadedDeletesAreCapturedAndApplyChildrenFirst) {
  Enrolled e;
  apply_both(1, enroll_patchset("alice", &e));
  // Only the subject row is deleted by the statement: its children go by ON DELETE CASCADE.
  const auto ps = capture(*a_, [&] {
    ASSERT_TRUE(testing::raw_db(*a_).exec("DELETE FROM subject WHERE id=" + std::to_string(e.subject)).is_ok());
  });
  auto sum = summarize_patchset(ps);
  ASSERT_TRUE(sum.is_ok());
  for (const char* t : {"subject", "subject_key", "lawful_basis", "source_image", "face", "reference_crop"})
    EXPECT_EQ(sum->count(t, SQLITE_DELETE), 1) << t;
  EXPECT_EQ(sum->count("basis_purpose", SQLITE_DELETE), 2);
  // The patchset lists the children before the parent.
  auto tables = captured_tables(testing::raw_db(*a_));
  ASSERT_TRUE(tables.is_ok());
  std::vector<std::string> order;
  for (auto& d : sum->deletes) order.push_back(d.first);
  EXPECT_LT(std::find(order.begin(), order.end(), "face"), std::find(order.begin(), order.end(), "subject"));
  EXPECT_LT(std::find(order.begin(), order.end(), "basis_purpose"), std::find(order.begin(), order.end(), "lawful_basis"));
  apply_both(2, ps);
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM face"), 0);
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM subject_key"), 0);
  EXPECT_EQ(dump_vault(testing::raw_db(*a_)), dump_vault(testing::raw_db(*b_)));
}

TEST_F(ChangesetTest, SummaryCountsTablesAndFaceIds) {
  Enrolled e;
  const auto ps = enroll_patchset("alice", &e);
  auto sum = summarize_patchset(ps);
  ASSERT_TRUE(sum.is_ok()) << sum.status().to_string();
  EXPECT_EQ(sum->count("subject", SQLITE_INSERT), 1);
  EXPECT_EQ(sum->count("subject_key", SQLITE_INSERT), 1);
  EXPECT_EQ(sum->count("lawful_basis", SQLITE_INSERT), 1);
  EXPECT_EQ(sum->count("basis_purpose", SQLITE_INSERT), 2);
  EXPECT_EQ(sum->count("source_image", SQLITE_INSERT), 1);  // sealed after its insert: one insert
  EXPECT_EQ(sum->count("face", SQLITE_INSERT), 1);
  EXPECT_EQ(sum->count("reference_crop", SQLITE_INSERT), 1);
  EXPECT_EQ(sum->count("audit", SQLITE_INSERT), 1);
  // The audit chain's head (its rows exist from the vault's creation, so an append updates
  // them); not the gallery generation, which is local.
  EXPECT_EQ(sum->count("meta", SQLITE_UPDATE), 2);
  EXPECT_EQ(sum->count("meta", SQLITE_INSERT), 0);
  EXPECT_EQ(sum->updates.size(), 1u);
  EXPECT_TRUE(sum->deletes.empty());
  EXPECT_EQ(sum->total_deletes(), 0);
  EXPECT_EQ(sum->face_ids_inserted, std::vector<int64_t>{e.face});
  EXPECT_TRUE(sum->face_ids_deleted.empty());
  EXPECT_TRUE(summarize_patchset({}).is_ok());
  const std::vector<uint8_t> junk = {'T', 1, 1, 'x', 0};
  EXPECT_FALSE(summarize_patchset(junk).is_ok());
}

TEST_F(ChangesetTest, SchemaEightVaultsMigrateToTheCurrentSchema) {
  const fs::path dir = tmp_.path() / "old";
  ASSERT_TRUE(Vault::init(dir, {}, 8).is_ok());
  {
    auto db = Db::open(dir / "vault.db", false);
    ASSERT_TRUE(db.is_ok());
    EXPECT_EQ(*db->query_int("PRAGMA user_version"), 8);
    EXPECT_EQ(*db->query_int("SELECT count(*) FROM sqlite_schema WHERE name IN "
                             "('replication_state','replication_message','api_key')"), 0);
  }
  auto v = Vault::open(dir);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(count(**v, "PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(count(**v, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                      "('replication_state','replication_message','api_key','replication_pending_key',"
                      "'replication_erased_subject','replication_settled_erasure','replication_settled_withdrawal',"
                      "'replication_withdrawn_in_stream')"), 8);
  EXPECT_EQ(*(*v)->catalog().applied_seq(kStream), 0);
}

// Schema 13 keeps several held keys per uid: a key held under schema 12 (one per uid) is kept,
// and a rival writer's key joins it.
TEST_F(ChangesetTest, SchemaTwelveHeldKeysSurviveTheMigration) {
  const fs::path dir = tmp_.path() / "twelve";
  ASSERT_TRUE(Vault::init(dir, {}, 12).is_ok());
  const SecretKey old_key = SecretKey::random();
  {
    auto db = Db::open(dir / "vault.db", false);
    ASSERT_TRUE(db.is_ok());
    ASSERT_EQ(*db->query_int("PRAGMA user_version"), 12);
    auto put = db->prepare("INSERT INTO replication_pending_key(uid, stream, expected_seq, wrapped) VALUES(?,?,?,?)");
    ASSERT_TRUE(put.is_ok());
    put->bind_all(std::string("uid-old"), std::string(kStream), int64_t{4},
                  wrap_key(*SecretKey::from_hex(kMasterHex), old_key,
                           std::string("facevault/replication/pending-key/v1|") + kStream + "|uid-old"));
    ASSERT_TRUE(put->run().is_ok());
  }
  auto v = Vault::open(dir);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(count(**v, "PRAGMA user_version"), kSchemaVersion);
  auto held = (*v)->held_subject_keys("uid-old");
  ASSERT_TRUE(held.is_ok() && held->size() == 1u) << held.status().to_string();
  EXPECT_EQ(held->front().to_hex(), old_key.to_hex());
  ASSERT_TRUE((*v)->hold_subject_key(kStream, "uid-old", SecretKey::random(), 4).is_ok());
  EXPECT_EQ((*v)->held_subject_keys("uid-old")->size(), 2u);
}

// Cluster mode keeps subject keys out of the stream (docs/cluster.md): a replica holds a pushed
// key until the one message that can create its subject is applied or passed, and an applied
// erasure leaves the subject's uid as a tombstone and no key.
TEST_F(ChangesetTest, AHeldKeyLastsUntilItsMessageIsPassedAndAnErasureLeavesNoKey) {
  Enrolled e;
  const auto enroll_ps = enroll_patchset("alice", &e);
  auto a_key = a_->subject_key(e.subject);
  ASSERT_FALSE(a_key.is_ok()) << "the writer's transaction was rolled back";
  const SecretKey k = *unwrap_subject_key(*SecretKey::from_hex(kMasterHex), e.subject, e.wrapped_key);

  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-alice", k, 0).is_ok());
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-stray", SecretKey::random(), 0).is_ok());
  auto held = b_->held_subject_keys("uid-alice");
  ASSERT_TRUE(held.is_ok() && held->size() == 1u) << held.status().to_string();
  EXPECT_EQ(held->front().to_hex(), k.to_hex());
  EXPECT_FALSE(*b_->replicated_key("uid-alice")) << "held, not applied";
  EXPECT_TRUE(b_->held_subject_keys("uid-nobody")->empty());
  // Another writer's key for the same uid and sequence is kept beside it (only one of the two
  // messages lands, and only opening it tells which); the same key pushed again stays one row.
  const SecretKey rival = SecretKey::random();
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-alice", rival, 0).is_ok());
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-alice", k, 0).is_ok());
  held = b_->held_subject_keys("uid-alice");
  ASSERT_TRUE(held.is_ok() && held->size() == 2u);
  EXPECT_NE(held->at(0).to_hex(), held->at(1).to_hex());
  EXPECT_TRUE(held->at(0).to_hex() == k.to_hex() || held->at(1).to_hex() == k.to_hex());
  // Kept wrapped, never as the key itself.
  EXPECT_TRUE(test::files_holding(b_->paths().dir, k.span()).empty());

  // Message 1 creates alice: both held keys are done with (the stray one's message never came).
  auto r = b_->apply_replicated(kStream, 1, enroll_ps, "2025-03-01T10:00:01.000Z");
  ASSERT_TRUE(r.is_ok() && *r) << r.status().to_string();
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM replication_pending_key"), 0);
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0) << "an enrollment calls for no wipe";
  auto applied = b_->replicated_key("uid-alice");
  ASSERT_TRUE(applied.is_ok() && applied->has_value());
  EXPECT_EQ((*applied)->to_hex(), k.to_hex()) << "now from its subject_key row";
  EXPECT_TRUE(b_->held_subject_keys("uid-alice")->empty());
  // A push for a sequence the replica is past keeps nothing.
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-late", SecretKey::random(), 0).is_ok());
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM replication_pending_key"), 0);
  EXPECT_FALSE(*b_->key_destroyed_by_stream("uid-alice"));

  // a_ applies message 1 too; the erasure is captured on it and applied on b_.
  ASSERT_TRUE(a_->apply_replicated(kStream, 1, enroll_ps, "2025-03-01T10:00:01.000Z").is_ok());
  const auto erasure = capture(*a_, [&] { ASSERT_TRUE(a_->catalog().erase_subject(e.subject).is_ok()); });
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-alice", k, 1).is_ok());  // a stray push for it
  r = b_->apply_replicated(kStream, 2, erasure, "2025-03-01T10:00:02.000Z");
  ASSERT_TRUE(r.is_ok() && *r) << r.status().to_string();
  EXPECT_FALSE(*b_->replicated_key("uid-alice"));
  EXPECT_TRUE(*b_->key_destroyed_by_stream("uid-alice"));
  EXPECT_EQ(count(*b_, "SELECT count(*) FROM replication_pending_key"), 0);
  ASSERT_TRUE(b_->wipe_free_space().is_ok());
  EXPECT_TRUE(test::files_holding(b_->paths().dir, e.wrapped_key).empty());

  // A master-key rotation re-wraps held keys with the subjects' own.
  const SecretKey held_key = SecretKey::random(), rival_key = SecretKey::random();
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-bob", held_key, 2).is_ok());
  ASSERT_TRUE(b_->hold_subject_key(kStream, "uid-bob", rival_key, 2).is_ok());
  const std::string next_hex = SecretKey::random().to_hex();
  ::setenv(kNewMasterKeyEnv, next_hex.c_str(), 1);
  auto rotated = b_->rotate_master_key([](const Vault::RotateReport&) { return Status::ok(); });
  ::unsetenv(kNewMasterKeyEnv);
  ASSERT_TRUE(rotated.is_ok()) << rotated.status().to_string();
  ::setenv(kMasterKeyEnv, next_hex.c_str(), 1);
  b_.reset();
  auto reopened = Vault::open(tmp_.path() / "b");
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  b_ = std::move(*reopened);
  auto bob = b_->held_subject_keys("uid-bob");
  ASSERT_TRUE(bob.is_ok() && bob->size() == 2u) << bob.status().to_string();
  std::set<std::string> bobs{bob->at(0).to_hex(), bob->at(1).to_hex()};
  EXPECT_EQ(bobs, (std::set<std::string>{held_key.to_hex(), rival_key.to_hex()}));
}

}  // namespace
}  // namespace fv::vault
