// The vault itself, without models: keys and files, schema migrations, ids never given again,
// sealed blobs bound to their rows, the audit chain's append-only table and tamper detection.
// The use cases above it are tested in tests/service/. Templates are synthetic.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "service/service_test_util.h"

namespace fv::test {
namespace {

using service::BasisKind;
using service::EnrollRequest;

// A vault opened by a service: most checks read the rows the use cases wrote.
class VaultTest : public ServiceTest {};

// ------------------------------------------------------------------ crypto

TEST(VaultCrypto, SealOpensOnlyWithTheRightKeyAndContext) {
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  auto k = vault::SecretKey::random(), other = vault::SecretKey::random();
  std::string msg = "a template's bytes";
  auto sealed = vault::seal(k, vault::as_bytes(msg), "ctx/1");
  EXPECT_EQ(sealed.size(), msg.size() + 24 + 16);
  auto ok = vault::open_sealed(k, sealed, "ctx/1");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(std::string(ok->begin(), ok->end()), msg);
  EXPECT_FALSE(vault::open_sealed(other, sealed, "ctx/1").is_ok());
  EXPECT_FALSE(vault::open_sealed(k, sealed, "ctx/2").is_ok());
  sealed[30] ^= 1;
  EXPECT_FALSE(vault::open_sealed(k, sealed, "ctx/1").is_ok());
  auto h = vault::SecretKey::from_hex(k.to_hex() + "\n");
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->id(), k.id());
  EXPECT_NE(k.id(), other.id());
  EXPECT_FALSE(vault::SecretKey::from_hex("abcd").is_ok());
}

// ------------------------------------------------------------------ files and keys

TEST_F(VaultTest, InitCreatesPrivateFilesAndConfiguresSqlite) {
  struct stat st {};
  ASSERT_EQ(::stat(vault::VaultPaths{dir_}.key().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(vault::VaultPaths{dir_}.db().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  auto& db = raw_db(*svc_);
  EXPECT_EQ(**db.query_text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(*db.query_int("PRAGMA secure_delete"), 1);
  EXPECT_EQ(*db.query_int("PRAGMA foreign_keys"), 1);
  EXPECT_EQ(*db.query_int("PRAGMA user_version"), vault::kSchemaVersion);
  EXPECT_GT(*db.query_int("PRAGMA busy_timeout"), 1000);
  EXPECT_FALSE(vault::Vault::init(dir_).is_ok()) << "a second init must not overwrite a vault";
  auto cfg = nlohmann::json::parse(std::ifstream(vault::VaultPaths{dir_}.config()));
  EXPECT_EQ(cfg["default_retention_days"], 365);
  EXPECT_EQ(cfg["models"]["embedder"], "faceplugin-mobilefacenet-512");
}

TEST_F(VaultTest, WrongOrMissingMasterKeyIsAClearError) {
  svc_.reset();
  const auto key = vault::VaultPaths{dir_}.key();
  const auto good = file_bytes(key);
  std::filesystem::remove(key);
  auto v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("no master key"), std::string::npos) << v.status().message();
  {
    std::ofstream(key) << vault::SecretKey::random().to_hex() << "\n";
    std::filesystem::permissions(key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::replace);
  }
  v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("wrong master key"), std::string::npos) << v.status().message();
  std::ofstream(key, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(good.data()), good.size());
  std::filesystem::permissions(key, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("readable by others"), std::string::npos) << v.status().message();
  std::filesystem::permissions(key, std::filesystem::perms::others_read, std::filesystem::perm_options::remove);
  EXPECT_TRUE(vault::Vault::open(dir_).is_ok());
}

TEST(VaultKeys, MasterKeyFromEnvironmentWritesNoKeyFile) {
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  TempDir tmp;
  const auto key = vault::SecretKey::random();
  setenv(vault::kMasterKeyEnv, key.to_hex().c_str(), 1);
  ASSERT_TRUE(vault::Vault::init(tmp.path() / "v").is_ok());
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "v" / "master.key"));
  EXPECT_TRUE(vault::Vault::open(tmp.path() / "v").is_ok());
  setenv(vault::kMasterKeyEnv, vault::SecretKey::random().to_hex().c_str(), 1);
  auto wrong = vault::Vault::open(tmp.path() / "v");
  EXPECT_FALSE(wrong.is_ok());
  unsetenv(vault::kMasterKeyEnv);
  auto missing = vault::Vault::open(tmp.path() / "v");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find(vault::kMasterKeyEnv), std::string::npos);
}

TEST(VaultInit, AnInterruptedInitIsResumedAndItsKeyFileReused) {
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  unsetenv(vault::kMasterKeyEnv);
  TempDir tmp;
  const auto dir = tmp.path() / "v";
  // What a killed init can leave: the key file, a half-written database and config.
  std::filesystem::create_directories(dir);
  const std::string hex = vault::SecretKey::random().to_hex() + "\n";
  { std::ofstream(dir / "master.key") << hex; }
  std::filesystem::permissions(dir / "master.key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  { std::ofstream(dir / "vault.db.init") << "half a database"; }
  { std::ofstream(dir / "vault.db.init-wal") << "half a WAL"; }
  { std::ofstream(dir / "config.json.tmp") << "{\"format\":"; }
  auto st = vault::Vault::init(dir);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(file_bytes(dir / "master.key"), std::vector<uint8_t>(hex.begin(), hex.end())) << "the key file is reused";
  for (const char* left : {"vault.db.init", "vault.db.init-wal", "config.json.tmp"})
    EXPECT_FALSE(std::filesystem::exists(dir / left)) << left;
  struct stat st_cfg {};
  ASSERT_EQ(::stat((dir / "config.json").c_str(), &st_cfg), 0);
  EXPECT_EQ(st_cfg.st_mode & 077, 0u);
  auto v = vault::Vault::open(dir);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(*raw_db(**v).query_int("PRAGMA user_version"), vault::kSchemaVersion);
  v->reset();
  // A key file that cannot be used is named, and nothing is created.
  const auto dir2 = tmp.path() / "w";
  std::filesystem::create_directories(dir2);
  { std::ofstream(dir2 / "master.key") << "not a key\n"; }
  std::filesystem::permissions(dir2 / "master.key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  auto bad = vault::Vault::init(dir2);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("master.key"), std::string::npos) << bad.message();
  EXPECT_FALSE(std::filesystem::exists(dir2 / "vault.db"));
}

TEST_F(VaultTest, NewerSchemaIsRefused) {
  ASSERT_TRUE(raw_db(*svc_).exec("PRAGMA user_version=99").is_ok());
  svc_.reset();
  auto v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("newer"), std::string::npos);
}

TEST_F(VaultTest, OlderSchemaIsMigratedOnOpen) {
  // Take the database back to schema 1 (without migration 2's indexes), then reopen.
  auto& db = raw_db(*svc_);
  ASSERT_TRUE(db.exec("DROP INDEX face_by_image; DROP INDEX face_by_basis; DROP INDEX source_image_by_basis; "
                      "PRAGMA user_version=1").is_ok());
  svc_.reset();
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  EXPECT_EQ(count("PRAGMA user_version"), vault::kSchemaVersion);
  EXPECT_EQ(count("SELECT count(*) FROM sqlite_master WHERE type='index' AND name IN "
                  "('face_by_image','face_by_basis','source_image_by_basis')"), 3);
}

TEST_F(VaultTest, ErasedIdsAreNeverGivenAgain) {
  const int64_t a = basis("alice", {"access-control"});
  const int64_t b = basis("bob", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
  auto bob = enroll("bob", b, random_template(rng_));
  ASSERT_TRUE(bob.is_ok());
  const int64_t bob_subject = count("SELECT id FROM subject WHERE ref='bob'");
  ASSERT_TRUE(svc_->erase(actor_, "bob").is_ok());
  // Bob's rows had the highest ids: without AUTOINCREMENT, SQLite would give them again.
  const int64_t c = basis("carol", {"access-control"});
  EXPECT_GT(c, b);
  EXPECT_GT(count("SELECT id FROM subject WHERE ref='carol'"), bob_subject);
  auto carol = enroll("carol", c, random_template(rng_));
  ASSERT_TRUE(carol.is_ok());
  EXPECT_GT(carol->face_id, bob->face_id);
  EXPECT_GT(carol->image_id, bob->image_id);
  // A late withdrawal meant for bob's basis reaches nobody.
  auto late = svc_->withdraw_basis(actor_, b);
  ASSERT_FALSE(late.is_ok());
  EXPECT_EQ(late.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(count("SELECT count(*) FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='carol')"), 1);
  for (const char* table : {"subject", "lawful_basis", "source_image", "face"})
    EXPECT_EQ(count(std::string("SELECT count(*) FROM sqlite_master WHERE name='") + table + "' AND sql LIKE '%AUTOINCREMENT%'"), 1)
        << table;
}

TEST_F(VaultTest, SealedBlobsAreBoundToTheirOwnRow) {
  // Two kept photos and two templates of one subject: a blob moved to the other row (same
  // subject, same key) must not open there.
  const int64_t a = basis("alice", {"access-control"});
  std::vector<int64_t> faces, images;
  for (int i = 0; i < 2; ++i) {
    std::vector<uint8_t> photo(2000);
    for (auto& x : photo) x = static_cast<uint8_t>(rng_());
    auto r = enroll_kept_photo(*svc_, actor_, {"alice", a}, photo, random_template(rng_));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    faces.push_back(r->face_id);
    images.push_back(r->image_id);
  }
  auto& db = raw_db(*svc_);
  auto copy_blob = [&](const std::string& table, const std::string& col, int64_t from, int64_t to) {
    ASSERT_TRUE(db.exec("UPDATE " + table + " SET " + col + "=(SELECT " + col + " FROM " + table + " WHERE id=" +
                        std::to_string(from) + ") WHERE id=" + std::to_string(to)).is_ok());
  };
  ASSERT_TRUE(svc_->export_subject(actor_, "alice", true, tmp_.path() / "ok").is_ok());
  copy_blob("source_image", "image", images[1], images[0]);
  auto img = svc_->export_subject(actor_, "alice", false, tmp_.path() / "x1");
  ASSERT_FALSE(img.is_ok()) << "photo 2 opened as photo 1";
  copy_blob("face", "template", faces[1], faces[0]);
  auto tmpl = svc_->export_subject(actor_, "alice", true, std::nullopt);
  ASSERT_FALSE(tmpl.is_ok()) << "template 2 opened as template 1";
  EXPECT_EQ(tmpl.status().code(), StatusCode::kCorruptData);
  actor_ = kInvestigator;
  EXPECT_FALSE(svc_->search_templates(actor_, {"access-control", "c"}, {random_template(rng_)}).is_ok());
}

TEST(VaultMigration, Schema2VaultIsResealedAndNeverReusesErasedIds) {
  // A vault as facevault wrote it at schema 2: no AUTOINCREMENT, blobs bound to the subject
  // only. Alice stays; Bob (the highest ids) was erased before the upgrade.
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  unsetenv(vault::kMasterKeyEnv);
  TempDir tmp;
  const auto dir = tmp.path() / "v";
  ASSERT_TRUE(vault::Vault::init(dir, {}, 2).is_ok());
  std::mt19937 rng(7);
  const auto t1 = random_template(rng);
  std::vector<uint8_t> photo(5000);
  for (auto& x : photo) x = static_cast<uint8_t>(rng());
  {
    const auto key_file = file_bytes(dir / "master.key");
    auto master = vault::SecretKey::from_hex(std::string(key_file.begin(), key_file.end()));
    ASSERT_TRUE(master.is_ok());
    auto db = vault::Db::open(dir / "vault.db", false);
    ASSERT_TRUE(db.is_ok());
    ASSERT_EQ(*db->query_int("PRAGMA user_version"), 2);
    const std::string now = vault::utc_now(), later = vault::add_days(now, 365), model = t1.model_id;
    auto run = [&](const std::string& sql, auto... args) {
      auto s = db->prepare(sql);
      ASSERT_TRUE(s.is_ok()) << sql;
      s->bind_all(args...);
      ASSERT_TRUE(s->run().is_ok()) << sql;
    };
    auto audit = [&](const std::string& action, nlohmann::json details) {
      vault::AuditEntry e;
      e.ts = now;
      e.actor = "old";
      e.role = "admin";
      e.action = action;
      e.details = std::move(details);
      auto txn = vault::Txn::begin(*db);
      ASSERT_TRUE(vault::append_audit(*db, e).is_ok());
      ASSERT_TRUE(txn->commit().is_ok());
    };
    for (int64_t id : {1, 2}) {
      const auto key = vault::SecretKey::random();
      const std::string sid = std::to_string(id);
      run("INSERT INTO subject(id, uid, ref, created_at, retention_until) VALUES(?,?,?,?,?)", id, "uid" + sid,
          std::string(id == 1 ? "alice" : "bob"), now, later);
      run("INSERT INTO subject_key(subject_id, wrapped, master_key_id) VALUES(?,?,?)", id,
          vault::wrap_key(*master, key, "facevault/subject-key/" + sid), master->id());
      run("INSERT INTO lawful_basis(id, subject_id, kind, reference, granted_at, recorded_by) VALUES(?,?,'consent','f',?,'old')",
          id, id, now);
      run("INSERT INTO basis_purpose(basis_id, purpose) VALUES(?, 'access-control')", id);
      audit("basis_add", {{"basis_id", id}, {"subject_created", true}});
      run("INSERT INTO source_image(id, subject_id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image)"
          " VALUES(?,?,?,'0',?,'png','old','file','s',?,?)",
          id, id, id, static_cast<int64_t>(photo.size()), now, vault::seal(key, photo, "facevault/image/" + sid));
      run("INSERT INTO face(id, subject_id, image_id, basis_id, model_id, model_version, dim, template, box, quality, created_at)"
          " VALUES(?,?,?,?,?,1,512,?,'[]','{}',?)",
          id, id, id, id, model, vault::seal(key, vault::as_bytes(t1.values), "facevault/face/" + sid + "/" + model + "/1"), now);
      audit("enroll", {{"basis_id", id}, {"face_id", id}, {"image_id", id}});
    }
    for (const char* sql : {"DELETE FROM face WHERE subject_id=2", "DELETE FROM source_image WHERE subject_id=2",
                            "DELETE FROM basis_purpose WHERE basis_id=2", "DELETE FROM lawful_basis WHERE subject_id=2",
                            "DELETE FROM subject_key WHERE subject_id=2", "DELETE FROM subject WHERE id=2"})
      ASSERT_TRUE(db->exec(sql).is_ok()) << sql;
    audit("erase", {{"reason", "erasure request"}});
  }
  auto svc = open_service(dir);
  ASSERT_TRUE(svc);
  auto& db = raw_db(*svc);
  EXPECT_EQ(*db.query_int("PRAGMA user_version"), vault::kSchemaVersion);
  EXPECT_EQ(*db.query_int("SELECT count(*) FROM sqlite_master WHERE type='table' AND sql LIKE '%AUTOINCREMENT%' "
                          "AND name IN ('subject','lawful_basis','source_image','face')"), 4);
  EXPECT_EQ(**db.query_text("PRAGMA integrity_check"), "ok");
  EXPECT_FALSE(*db.prepare("PRAGMA foreign_key_check")->step());
  EXPECT_EQ(*db.query_int("PRAGMA foreign_keys"), 1) << "enforcement back on after the migration";
  // Alice's template and photo, re-sealed under the row-bound associated data.
  auto j = svc->export_subject(kAdmin, "alice", true, tmp.path() / "export");
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  EXPECT_NEAR((*j)["templates"][0]["template"][3].get<double>(), t1.values[3], 1e-7);
  EXPECT_EQ(file_bytes((*j)["source_images"][0]["file"].get<std::string>()), photo);
  auto found = svc->search_templates(kAdmin, {"access-control", "c"}, {t1});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_EQ(found->faces[0].candidates.size(), 1u);
  // New rows never take Bob's ids, although his rows were gone before AUTOINCREMENT existed.
  auto b = svc->add_basis(kAdmin, {"carol", BasisKind::kConsent, "f", {"access-control"}, std::nullopt});
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->basis_id, 3);
  EXPECT_EQ(*db.query_int("SELECT id FROM subject WHERE ref='carol'"), 3);
  service::EnrollRequest req{"carol", b->basis_id};
  auto e = svc->enroll_template(kAdmin, req, random_template(rng));
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->face_id, 3);
  EXPECT_EQ(e->image_id, 3);
  EXPECT_EQ(svc->withdraw_basis(kAdmin, 2).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(svc->audit_verify(kAdmin)->ok);
}

// ------------------------------------------------------------------ audit chain

TEST_F(VaultTest, AuditTableIsAppendOnly) {
  const int64_t b = basis("s", {"access-control"});
  ASSERT_GT(b, 0);
  EXPECT_FALSE(raw_db(*svc_).exec("UPDATE audit SET actor='x' WHERE seq=1").is_ok());
  EXPECT_FALSE(raw_db(*svc_).exec("DELETE FROM audit WHERE seq=1").is_ok());
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
}

// Tampering by someone with write access to the database file (who can drop the triggers).
class AuditTamperTest : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    for (char c : std::string("abcd")) {  // (not "s" + to_string(i): GCC 12 -Wrestrict false positive)
      const std::string ref(1, c);
      const int64_t b = basis(ref, {"access-control"});
      ASSERT_TRUE(enroll(ref, b, random_template(rng_)).is_ok());
    }
    ASSERT_EQ(count("SELECT count(*) FROM audit"), 8);
    auto ok = svc_->audit_verify(actor_);
    ASSERT_TRUE(ok.is_ok() && ok->ok);
    svc_.reset();
    ASSERT_EQ(sqlite3_open((dir_ / "vault.db").c_str(), &db_), SQLITE_OK);
    sql("DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete;");
  }
  void TearDown() override { sqlite3_close(db_); }
  void sql(const std::string& s) { ASSERT_EQ(sqlite3_exec(db_, s.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << s; }
  vault::AuditVerifyReport verify() {
    sqlite3_close(db_);
    db_ = nullptr;
    svc_ = open_service(dir_);
    auto r = svc_->audit_verify(actor_);
    EXPECT_TRUE(r.is_ok());
    return *r;
  }
  sqlite3* db_ = nullptr;
};

TEST_F(AuditTamperTest, EditedEntryIsNamed) {
  sql("UPDATE audit SET actor='mallory' WHERE seq=5");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 5);
  EXPECT_EQ(r.problem, "altered");
}

TEST_F(AuditTamperTest, EditedDetailsAreNamed) {
  sql("UPDATE audit SET details='{\"basis_id\":1}' WHERE seq=3");
  auto r = verify();
  EXPECT_EQ(r.first_bad_seq, 3);
  EXPECT_EQ(r.problem, "altered");
}

TEST_F(AuditTamperTest, DeletedEntryIsNamed) {
  sql("DELETE FROM audit WHERE seq=4");
  auto r = verify();
  EXPECT_EQ(r.first_bad_seq, 4);
  EXPECT_EQ(r.problem, "removed");
}

TEST_F(AuditTamperTest, DeletedAndRenumberedEntryIsNamed) {
  sql("DELETE FROM audit WHERE seq=4; UPDATE audit SET seq=-seq WHERE seq>4; UPDATE audit SET seq=-seq-1 WHERE seq<0;");
  auto r = verify();
  EXPECT_EQ(r.first_bad_seq, 4);
  EXPECT_EQ(r.problem, "removed");
}

TEST_F(AuditTamperTest, InsertedEntryIsNamed) {
  // A forger who knows the hash function: a self-consistent entry linked after entry 4.
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db_, "SELECT hash FROM audit WHERE seq=4", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  std::string prev = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  vault::AuditEntry e;
  e.ts = "2026-01-01T00:00:00.000Z";
  e.actor = "mallory";
  e.role = "admin";
  e.action = "erase";
  e.prev_hash = prev;
  e.hash = vault::chain_hash(prev, e.canonical());
  sql("UPDATE audit SET seq=-seq WHERE seq>=5; UPDATE audit SET seq=-seq+1 WHERE seq<0;");
  sql("INSERT INTO audit VALUES(5,'" + e.ts + "','mallory','admin','erase','ok','','','[]','{}','" + e.prev_hash + "','" +
      e.hash + "')");
  auto r = verify();
  EXPECT_EQ(r.first_bad_seq, 5);
  EXPECT_EQ(r.problem, "inserted") << r.message;
}

TEST_F(AuditTamperTest, ReorderedEntriesAreNamed) {
  sql("UPDATE audit SET seq=100 WHERE seq=5; UPDATE audit SET seq=5 WHERE seq=6; UPDATE audit SET seq=6 WHERE seq=100;");
  auto r = verify();
  EXPECT_EQ(r.first_bad_seq, 5);
  EXPECT_EQ(r.problem, "reordered") << r.message;
}

TEST_F(AuditTamperTest, TruncatedTailIsNamed) {
  sql("DELETE FROM audit WHERE seq>=7");
  auto r = verify();
  EXPECT_EQ(r.first_bad_seq, 7);
  EXPECT_EQ(r.problem, "truncated") << r.message;
}

TEST_F(AuditTamperTest, AppendedForgeryIsNamed) {
  sql("INSERT INTO audit SELECT 9, ts, actor, role, action, outcome, purpose, case_ref, subjects, details, hash, hash FROM audit WHERE seq=8");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 9);
}

TEST_F(AuditTamperTest, ReencodedSubjectsColumnIsNamed) {
  // The same parsed value in other bytes ("\u0061" for "a"): the hash still matches, but a
  // text search for the uid (audit show --subject, export) would no longer find the entry.
  sql("UPDATE audit SET subjects='[\"\\u' || printf('%04x', unicode(substr(subjects, 3, 1))) || substr(subjects, 4) "
      "WHERE seq=3");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 3);
  EXPECT_EQ(r.problem, "altered") << r.message;
}

TEST_F(AuditTamperTest, ReencodedDetailsColumnIsNamed) {
  sql("UPDATE audit SET details=replace(details, ',', ', ') WHERE seq=4");
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 4);
  EXPECT_EQ(r.problem, "altered") << r.message;
}

TEST_F(AuditTamperTest, NonNumericAuditHeadIsCorruptDataNotACrash) {
  sql("UPDATE meta SET value='8x' WHERE key='audit_head_seq'");
  sqlite3_close(db_);
  db_ = nullptr;
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  auto v = svc_->audit_verify(actor_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_EQ(v.status().code(), StatusCode::kCorruptData) << v.status().to_string();
  auto b = svc_->add_basis(actor_, {"e", BasisKind::kConsent, "f", {"access-control"}, std::nullopt});
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::kCorruptData) << b.status().to_string();
  EXPECT_EQ(count("SELECT count(*) FROM subject WHERE ref='e'"), 0) << "nothing committed";
}

TEST_F(VaultTest, AuditSubjectFilterMatchesExactlyNotAsAPattern) {
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_GT(a, 0);
  ASSERT_GT(basis("bob", {"access-control"}), 0);
  auto show = [&](const std::string& subject) {
    vault::AuditQuery q;
    q.subject = subject;
    return read_audit_or_die(q).size();
  };
  const std::string uid = **raw_db(*svc_).query_text("SELECT uid FROM subject WHERE ref='alice'");
  EXPECT_EQ(show(uid), 1u);
  EXPECT_EQ(show("%"), 0u);
  EXPECT_EQ(show(std::string(uid.size(), '_')), 0u) << "'_' is not a wildcard";
  EXPECT_EQ(show(uid.substr(0, 4) + "%"), 0u);
  vault::AuditQuery limited;
  limited.subject = uid;
  limited.limit = 1;
  EXPECT_EQ(read_audit_or_die(limited).size(), 1u);
  // Through the service too (auditor's `audit show --subject`).
  service::AuditFilter wildcard;
  wildcard.subject = std::string(uid.size(), '_');
  auto entries = svc_->audit_show(actor_, wildcard);
  ASSERT_TRUE(entries.is_ok());
  EXPECT_TRUE(entries->entries.empty());
  EXPECT_EQ(entries->matched, 0u);
}

TEST_F(VaultTest, InvalidUtf8InAuditTextIsReplacedNotThrown) {
  vault::AuditEntry e;
  e.ts = clock_.now;
  e.actor = "bad\xff\xfe" "actor";
  e.role = "admin";
  e.action = "test";
  e.details = {{"reason", std::string("no \xc3( utf-8")}};
  std::string canonical;
  EXPECT_NO_THROW(canonical = e.canonical());
  auto& db = raw_db(*svc_);
  auto txn = vault::Txn::begin(db);
  ASSERT_TRUE(txn.is_ok());
  auto h = vault::append_audit(db, e);
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  ASSERT_TRUE(txn->commit().is_ok());
  auto v = svc_->audit_verify(actor_);
  ASSERT_TRUE(v.is_ok());
  EXPECT_TRUE(v->ok) << v->message;
}

}  // namespace
}  // namespace fv::test
