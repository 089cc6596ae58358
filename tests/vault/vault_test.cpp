// Vault and service without models: keys and files, lawful basis, enrolment policy, purpose-
// bound search, erasure (with the byte-scan proof), export, retention, opt-out, audit chain
// tamper detection, key rotation, two processes at once. Templates are synthetic.
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "vault_test_util.h"

namespace fv::test {
namespace {

using service::EnrollRequest;
using service::SearchRequest;

class VaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    unsetenv(vault::kNewMasterKeyEnv);
    dir_ = tmp_.path() / "v";
    ASSERT_TRUE(vault::Vault::init(dir_, config_).is_ok());
    svc_ = open_service(dir_, "admin", &clock_);
    ASSERT_TRUE(svc_);
  }
  int64_t basis(const std::string& ref, std::vector<std::string> purposes, std::string kind = "consent",
                std::optional<std::string> expires = std::nullopt) {
    auto r = svc_->add_basis({ref, kind, "form-" + ref, purposes, expires});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->basis_id : 0;
  }
  Result<service::EnrollResult> enroll(const std::string& ref, int64_t b, const face::FaceTemplate& t) {
    EnrollRequest req;
    req.subject_ref = ref;
    req.basis_id = b;
    return svc_->enroll_template(req, t);
  }
  int64_t count(const std::string& sql) { return *svc_->vault().db().query_int(sql); }
  std::vector<vault::AuditEntry> read_audit_or_die(const vault::AuditQuery& q) {
    auto r = vault::read_audit(svc_->vault().db(), q);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<vault::AuditEntry>{};
  }
  std::vector<vault::AuditEntry> audit(const std::string& action) {
    vault::AuditQuery q;
    q.action = action;
    return *vault::read_audit(svc_->vault().db(), q);
  }

  TempDir tmp_;
  std::filesystem::path dir_;
  vault::VaultConfig config_;
  Clock clock_;
  std::mt19937 rng_{42};
  std::unique_ptr<service::Service> svc_;
};

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
  auto& db = svc_->vault().db();
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
  EXPECT_EQ(*(*v)->db().query_int("PRAGMA user_version"), vault::kSchemaVersion);
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
  ASSERT_TRUE(svc_->vault().db().exec("PRAGMA user_version=99").is_ok());
  svc_.reset();
  auto v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("newer"), std::string::npos);
}

TEST_F(VaultTest, OlderSchemaIsMigratedOnOpen) {
  // Take the database back to schema 1 (without migration 2's indexes), then reopen.
  auto& db = svc_->vault().db();
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
  ASSERT_TRUE(svc_->erase("bob").is_ok());
  // Bob's rows had the highest ids: without AUTOINCREMENT, SQLite would give them again.
  const int64_t c = basis("carol", {"access-control"});
  EXPECT_GT(c, b);
  EXPECT_GT(count("SELECT id FROM subject WHERE ref='carol'"), bob_subject);
  auto carol = enroll("carol", c, random_template(rng_));
  ASSERT_TRUE(carol.is_ok());
  EXPECT_GT(carol->face_id, bob->face_id);
  EXPECT_GT(carol->image_id, bob->image_id);
  // A late withdrawal meant for bob's basis reaches nobody.
  auto late = svc_->withdraw_basis(b);
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
    service::PreparedFace pf;
    pf.image.assign(2000, 0);
    for (auto& x : pf.image) x = static_cast<uint8_t>(rng_());
    pf.sha256 = vault::sha256_hex(pf.image);
    pf.format = "png";
    pf.image_bytes = pf.image.size();
    pf.face.face_template = random_template(rng_);
    EnrollRequest kept{"alice", a};
    kept.keep_image = true;
    auto r = svc_->commit_enrollment(kept, pf);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    faces.push_back(r->face_id);
    images.push_back(r->image_id);
  }
  auto& db = svc_->vault().db();
  auto copy_blob = [&](const std::string& table, const std::string& col, int64_t from, int64_t to) {
    ASSERT_TRUE(db.exec("UPDATE " + table + " SET " + col + "=(SELECT " + col + " FROM " + table + " WHERE id=" +
                        std::to_string(from) + ") WHERE id=" + std::to_string(to)).is_ok());
  };
  ASSERT_TRUE(svc_->export_subject("alice", true, tmp_.path() / "ok").is_ok());
  copy_blob("source_image", "image", images[1], images[0]);
  auto img = svc_->export_subject("alice", false, tmp_.path() / "x1");
  ASSERT_FALSE(img.is_ok()) << "photo 2 opened as photo 1";
  copy_blob("face", "template", faces[1], faces[0]);
  auto tmpl = svc_->export_subject("alice", true, std::nullopt);
  ASSERT_FALSE(tmpl.is_ok()) << "template 2 opened as template 1";
  EXPECT_EQ(tmpl.status().code(), StatusCode::kCorruptData);
  svc_->set_actor({"ivan", "investigator"});
  EXPECT_FALSE(svc_->search_templates({"access-control", "c"}, {random_template(rng_)}).is_ok());
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
  auto& db = svc->vault().db();
  EXPECT_EQ(*db.query_int("PRAGMA user_version"), vault::kSchemaVersion);
  EXPECT_EQ(*db.query_int("SELECT count(*) FROM sqlite_master WHERE type='table' AND sql LIKE '%AUTOINCREMENT%'"), 4);
  EXPECT_EQ(**db.query_text("PRAGMA integrity_check"), "ok");
  EXPECT_FALSE(*db.prepare("PRAGMA foreign_key_check")->step());
  EXPECT_EQ(*db.query_int("PRAGMA foreign_keys"), 1) << "enforcement back on after the migration";
  // Alice's template and photo, re-sealed under the row-bound associated data.
  auto j = svc->export_subject("alice", true, tmp.path() / "export");
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  EXPECT_NEAR((*j)["templates"][0]["template"][3].get<double>(), t1.values[3], 1e-7);
  EXPECT_EQ(file_bytes((*j)["source_images"][0]["file"].get<std::string>()), photo);
  auto found = svc->search_templates({"access-control", "c"}, {t1});
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_EQ(found->faces[0].candidates.size(), 1u);
  // New rows never take Bob's ids, although his rows were gone before AUTOINCREMENT existed.
  auto b = svc->add_basis({"carol", "consent", "f", {"access-control"}, std::nullopt});
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->basis_id, 3);
  EXPECT_EQ(*db.query_int("SELECT id FROM subject WHERE ref='carol'"), 3);
  service::EnrollRequest req{"carol", b->basis_id};
  auto e = svc->enroll_template(req, random_template(rng));
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->face_id, 3);
  EXPECT_EQ(e->image_id, 3);
  EXPECT_EQ(svc->withdraw_basis(2).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(svc->audit_verify()->ok);
}

// ------------------------------------------------------------------ lawful basis and enrolment

TEST_F(VaultTest, BasisIsValidatedAndCreatesTheSubject) {
  auto r = svc_->add_basis({"alice", "consent", "form-17", {"access-control", "payroll"}, std::nullopt});
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->subject_created);
  auto r2 = svc_->add_basis({"alice", "law_enforcement", "warrant 5", {"investigation"}, "2099-01-01"});
  ASSERT_TRUE(r2.is_ok()) << r2.status().to_string();
  EXPECT_FALSE(r2->subject_created);
  EXPECT_EQ(r2->subject_uid, r->subject_uid);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM subject_key"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM basis_purpose"), 3);
  EXPECT_FALSE(svc_->add_basis({"bob", "whim", "x", {"p"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis({"bob", "consent", "", {"p"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis({"bob", "consent", "x", {}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis({"bob", "consent", "x", {"bad purpose"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis({"bob", "consent", "x", {"p"}, "2001-01-01"}).is_ok()) << "already expired";
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 1);
}

TEST_F(VaultTest, EnrolmentNeedsAValidBasisCoveringThePurpose) {
  auto t = random_template(rng_);
  auto no_subject = enroll("nobody", 1, t);
  ASSERT_FALSE(no_subject.is_ok());
  EXPECT_NE(no_subject.status().message().find("lawful basis"), std::string::npos);

  const int64_t a = basis("alice", {"access-control"});
  const int64_t b = basis("bob", {"access-control"});
  EXPECT_FALSE(enroll("alice", b, t).is_ok()) << "bob's basis does not cover alice";
  EXPECT_FALSE(enroll("alice", 999, t).is_ok());
  EnrollRequest req{"alice", a, std::string("marketing")};
  auto wrong_purpose = svc_->enroll_template(req, t);
  ASSERT_FALSE(wrong_purpose.is_ok());
  EXPECT_NE(wrong_purpose.status().message().find("does not cover the purpose"), std::string::npos);
  req.purpose = "access-control";
  ASSERT_TRUE(svc_->enroll_template(req, t).is_ok());

  // Expired basis.
  const int64_t c = basis("carol", {"access-control"}, "consent", vault::add_days(clock_.now, 10));
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());
  clock_.now = vault::add_days(clock_.now, 11);
  auto expired = enroll("carol", c, random_template(rng_));
  ASSERT_FALSE(expired.is_ok());
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos);

  // Withdrawn basis (carol keeps another one, so she is not erased).
  const int64_t c2 = basis("carol", {"access-control"});
  const int64_t c3 = basis("carol", {"payroll"});
  ASSERT_TRUE(svc_->withdraw_basis(c2).is_ok());
  auto withdrawn = enroll("carol", c2, random_template(rng_));
  ASSERT_FALSE(withdrawn.is_ok());
  EXPECT_NE(withdrawn.status().message().find("withdrawn"), std::string::npos);
  EXPECT_TRUE(enroll("carol", c3, random_template(rng_)).is_ok());

  // Every refusal is in the audit log, with its reason and without biometric data.
  int refusals = 0;
  for (auto& e : audit("enroll"))
    if (e.outcome == "refused") {
      ++refusals;
      EXPECT_TRUE(e.details.contains("reason"));
    }
  EXPECT_EQ(refusals, 6);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 3);
}

TEST_F(VaultTest, NonUtf8TextIsRefusedCleanlyWithNoPartialCommit) {
  const int64_t audit_before = count("SELECT count(*) FROM audit");
  // A Latin-1 "café" (not UTF-8): a clear refusal, not an exception from the JSON library.
  auto r = svc_->add_basis({"caf\xe9", "consent", "form-1", {"access-control"}, std::nullopt});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("UTF-8"), std::string::npos) << r.status().message();
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82"})  // overlong, surrogate, > U+10FFFF, cut
    EXPECT_FALSE(svc_->add_basis({bad, "consent", "form-1", {"access-control"}, std::nullopt}).is_ok());
  EXPECT_FALSE(svc_->add_basis({"carol", "consent", "form-\xff", {"access-control"}, std::nullopt}).is_ok());
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM lawful_basis") +
                count("SELECT count(*) FROM subject_key"),
            0)
      << "nothing committed";
  EXPECT_EQ(count("SELECT count(*) FROM audit"), audit_before);
  EXPECT_TRUE(svc_->add_basis({"caf\xc3\xa9", "consent", "form-1", {"access-control"}, std::nullopt}).is_ok())
      << "UTF-8 is fine";

  // Actor names, case references and provenance too.
  auto bad_actor = service::Service::open(dir_, {"\xff", "admin"});
  ASSERT_FALSE(bad_actor.is_ok());
  EXPECT_NE(bad_actor.status().message().find("UTF-8"), std::string::npos);
  auto search = svc_->search_templates({"access-control", "case-\xff"}, {random_template(rng_)});
  EXPECT_FALSE(search.is_ok());
  EnrollRequest req{"caf\xc3\xa9", 1};
  req.provenance.source = "scan-\xff.png";
  auto enrolled = svc_->enroll_template(req, random_template(rng_));
  ASSERT_FALSE(enrolled.is_ok());
  EXPECT_NE(enrolled.status().message().find("UTF-8"), std::string::npos);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 0);
  EXPECT_TRUE(svc_->audit_verify()->ok);
}

TEST_F(VaultTest, RolesAreEnforcedAndDenialsAudited) {
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
  svc_->set_actor({"ivan", "investigator"});
  EXPECT_FALSE(svc_->erase("alice").is_ok());
  EXPECT_FALSE(enroll("alice", a, random_template(rng_)).is_ok());
  EXPECT_FALSE(svc_->rotate_key().is_ok());
  EXPECT_TRUE(svc_->search_templates({"access-control", "case-1"}, {random_template(rng_)}).is_ok());
  svc_->set_actor({"eve", "enroller"});
  EXPECT_FALSE(svc_->search_templates({"access-control", "case-1"}, {random_template(rng_)}).is_ok());
  EXPECT_FALSE(svc_->export_subject("alice", false, std::nullopt).is_ok());
  svc_->set_actor({"dora", "auditor"});
  EXPECT_FALSE(svc_->search_templates({"access-control", "case-1"}, {random_template(rng_)}).is_ok());
  EXPECT_TRUE(svc_->export_subject("alice", false, std::nullopt).is_ok());
  EXPECT_TRUE(svc_->audit_verify()->ok);
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE outcome='denied'"), 6);
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE outcome='denied' AND actor='eve' AND action='search'"), 1);
}

// ------------------------------------------------------------------ search

TEST_F(VaultTest, SearchRefusesWithoutPurposeAndCase) {
  for (auto [p, c] : {std::pair{"", "case-1"}, std::pair{"access-control", ""}, std::pair{"", ""}}) {
    auto r = svc_->search_templates({p, c}, {random_template(rng_)});
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("purpose"), std::string::npos);
    auto r2 = svc_->search({p, c}, {});  // refused before any image work
    EXPECT_FALSE(r2.is_ok());
  }
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE action='search' AND outcome='refused'"), 6);
}

TEST_F(VaultTest, PurposeFilterRunsInsideTheScan) {
  auto probe = random_template(rng_);
  // 30 close subjects enrolled for access control, 3 less close ones for an investigation.
  for (int i = 0; i < 30; ++i) {
    const int64_t b = basis("ac" + std::to_string(i), {"access-control"});
    ASSERT_TRUE(enroll("ac" + std::to_string(i), b, near_template(probe, rng_, 0.3f)).is_ok());
  }
  for (int i = 0; i < 3; ++i) {
    const int64_t b = basis("inv" + std::to_string(i), {"investigation"}, "law-enforcement");
    ASSERT_TRUE(enroll("inv" + std::to_string(i), b, near_template(probe, rng_, 0.9f)).is_ok());
  }
  SearchRequest inv{"investigation", "case-7", 3};
  auto r = svc_->search_templates(inv, {probe});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->faces.size(), 1u);
  ASSERT_EQ(r->faces[0].candidates.size(), 3u) << "K eligible candidates, although 30 others score higher";
  for (auto& c : r->faces[0].candidates) {
    EXPECT_EQ(c.subject_ref.rfind("inv", 0), 0u) << c.subject_ref;
    ASSERT_TRUE(c.fmr.has_value());
    EXPECT_LE(*c.fmr, 1e-3);
  }
  EXPECT_EQ(r->eligible_subjects, 3);
  auto ac = svc_->search_templates({"access-control", "door-2", 50}, {probe});
  ASSERT_TRUE(ac.is_ok());
  EXPECT_EQ(ac->faces[0].candidates.size(), 30u);
  for (auto& c : ac->faces[0].candidates) EXPECT_EQ(c.subject_ref.rfind("ac", 0), 0u);
  EXPECT_TRUE(svc_->search_templates({"marketing", "x"}, {probe})->faces[0].candidates.empty());
  // An unrelated face returns nobody: candidates must clear the false-match-rate threshold.
  EXPECT_TRUE(svc_->search_templates({"access-control", "door-2"}, {random_template(rng_)})->faces[0].candidates.empty());
  // The search is audited with purpose, case and candidate ids (opaque uids, no scores).
  auto entries = audit("search");
  ASSERT_FALSE(entries.empty());
  const auto& e = entries[0];
  EXPECT_EQ(e.purpose, "investigation");
  EXPECT_EQ(e.case_ref, "case-7");
  EXPECT_EQ(e.subjects.size(), 3u);
  EXPECT_EQ(e.details["candidates"][0].size(), 3u);
  EXPECT_EQ(e.details.dump().find("similarity"), std::string::npos);
}

// Purpose limitation is per template: a template collected under a consent for access
// control is not searchable for an investigation just because the same subject also has a
// law-enforcement basis (with no template of its own).
TEST_F(VaultTest, PurposeLimitationIsPerTemplateNotPerSubject) {
  auto face = random_template(rng_);
  const int64_t consent = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", consent, face).is_ok());
  ASSERT_GT(basis("alice", {"investigation"}, "law-enforcement"), 0);
  auto inv = svc_->search_templates({"investigation", "case-1", 5}, {face});
  ASSERT_TRUE(inv.is_ok()) << inv.status().to_string();
  EXPECT_TRUE(inv->faces[0].candidates.empty()) << "the badge photo was consented for access control only";
  auto ac = svc_->search_templates({"access-control", "door-1", 5}, {face});
  ASSERT_TRUE(ac.is_ok());
  ASSERT_EQ(ac->faces[0].candidates.size(), 1u);
  EXPECT_EQ(ac->faces[0].candidates[0].subject_ref, "alice");
}

// A long-lived service (the server) must not keep returning a subject that another process
// erased: the vault's gallery generation tells it to rebuild its index.
TEST_F(VaultTest, ErasureByAnotherProcessTakesTheSubjectOutOfThisProcessesSearches) {
  auto face = random_template(rng_);
  ASSERT_TRUE(enroll("carol", basis("carol", {"access-control"}), random_template(rng_)).is_ok());
  ASSERT_TRUE(enroll("alice", basis("alice", {"access-control"}), face).is_ok());
  auto before = svc_->search_templates({"access-control", "door-1", 5}, {face});
  ASSERT_TRUE(before.is_ok());
  ASSERT_EQ(before->faces[0].candidates.size(), 1u) << "the index is loaded and finds alice";
  {
    auto other = open_service(dir_, "admin", &clock_);  // a second connection: another process
    ASSERT_TRUE(other->erase("alice").is_ok());
    ASSERT_TRUE(other->add_basis({"bob", "consent", "form-bob", {"access-control"}, std::nullopt}).is_ok());
  }
  auto after = svc_->search_templates({"access-control", "door-1", 5}, {face});
  ASSERT_TRUE(after.is_ok());
  EXPECT_TRUE(after->faces[0].candidates.empty()) << "alice was erased elsewhere; this index must not still hold her";
  // And this process's own enrolments still go into its index without a rebuild.
  auto face2 = random_template(rng_);
  ASSERT_TRUE(enroll("dave", basis("dave", {"access-control"}), face2).is_ok());
  auto dave = svc_->search_templates({"access-control", "door-1", 5}, {face2});
  ASSERT_TRUE(dave.is_ok());
  ASSERT_EQ(dave->faces[0].candidates.size(), 1u);
  EXPECT_EQ(dave->faces[0].candidates[0].subject_ref, "dave");
}

TEST_F(VaultTest, SearchMayTightenButNotLoosenTheFalseMatchLimit) {
  for (int i = 0; i < 20; ++i) {
    const std::string ref = std::to_string(100 + i);
    ASSERT_TRUE(enroll(ref, basis(ref, {"access-control"}), random_template(rng_)).is_ok());
  }
  svc_->set_actor({"ivan", "investigator"});
  SearchRequest loose{"access-control", "case-9", 50};
  loose.max_fmr = 1.0;  // "any score": would list every eligible subject
  auto r = svc_->search_templates(loose, {random_template(rng_)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->faces[0].candidates.empty()) << "a stranger's face returns nobody, whatever max_fmr asks";
  EXPECT_DOUBLE_EQ(r->max_fmr, config_.search_max_fmr);
  auto e = audit("search").back();
  EXPECT_DOUBLE_EQ(e.details["max_fmr"].get<double>(), config_.search_max_fmr) << "the limit used is audited";
  EXPECT_DOUBLE_EQ(e.details["threshold"].get<double>(), r->threshold);
  SearchRequest strict{"access-control", "case-9"};
  strict.max_fmr = 1e-6;
  auto s = svc_->search_templates(strict, {random_template(rng_)});
  ASSERT_TRUE(s.is_ok());
  EXPECT_DOUBLE_EQ(s->max_fmr, 1e-6) << "tightening is honoured";
  EXPECT_GE(s->threshold, r->threshold);
  EXPECT_DOUBLE_EQ(audit("search").back().details["max_fmr"].get<double>(), 1e-6);
}

TEST_F(VaultTest, ExpiredOrWithdrawnBasisTakesSubjectOutOfSearch) {
  auto probe = random_template(rng_);
  const int64_t b = basis("alice", {"investigation"}, "law-enforcement", vault::add_days(clock_.now, 5));
  ASSERT_TRUE(enroll("alice", b, near_template(probe, rng_, 0.2f)).is_ok());
  EXPECT_EQ(svc_->search_templates({"investigation", "c"}, {probe})->faces[0].candidates.size(), 1u);
  clock_.now = vault::add_days(clock_.now, 6);
  EXPECT_TRUE(svc_->search_templates({"investigation", "c"}, {probe})->faces[0].candidates.empty());

  // Withdrawn: Bob's investigation basis goes; he stays enrolled under his payroll basis.
  auto bob_probe = random_template(rng_);
  const int64_t inv = basis("bob", {"investigation"}, "law-enforcement");
  const int64_t pay = basis("bob", {"payroll"});
  ASSERT_TRUE(enroll("bob", inv, near_template(bob_probe, rng_, 0.2f)).is_ok());
  ASSERT_TRUE(enroll("bob", pay, near_template(bob_probe, rng_, 0.2f)).is_ok());
  EXPECT_EQ(svc_->search_templates({"investigation", "c"}, {bob_probe})->faces[0].candidates.size(), 1u);
  auto w = svc_->withdraw_basis(inv);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_FALSE(w->key_destroyed) << "the payroll basis is still in force";
  EXPECT_EQ(w->faces, 1);
  EXPECT_TRUE(svc_->search_templates({"investigation", "c"}, {bob_probe})->faces[0].candidates.empty())
      << "no basis in force covers the purpose any more";
  EXPECT_EQ(svc_->search_templates({"payroll", "c"}, {bob_probe})->faces[0].candidates.size(), 1u);
  svc_.reset();  // and in a new process
  svc_ = open_service(dir_, "admin", &clock_);
  EXPECT_TRUE(svc_->search_templates({"investigation", "c"}, {bob_probe})->faces[0].candidates.empty());
}

// ------------------------------------------------------------------ erasure

class EraseTest : public VaultTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    config_.erase_vacuum = GetParam();
    VaultTest::SetUp();
  }
};

TEST_P(EraseTest, NoByteOfTheErasedSubjectRemainsInAnyFile) {
  auto t1 = random_template(rng_), t2 = near_template(t1, rng_, 0.3f), tb = random_template(rng_);
  std::vector<uint8_t> image(20000);
  for (auto& x : image) x = static_cast<uint8_t>(rng_());
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, t1).is_ok());
  service::PreparedFace pf;
  pf.sha256 = vault::sha256_hex(image);
  pf.format = "png";
  pf.image = image;
  pf.image_bytes = image.size();
  pf.face.face_template = t2;
  EnrollRequest kept{"alice", a};
  kept.keep_image = true;
  ASSERT_TRUE(svc_->commit_enrollment(kept, pf).is_ok());
  const int64_t b = basis("bob", {"access-control"});
  ASSERT_TRUE(enroll("bob", b, tb).is_ok());

  // The stored forms, as the database holds them.
  auto blobs = [&](const std::string& sql) {
    std::vector<std::vector<uint8_t>> out;
    auto s = svc_->vault().db().prepare(sql);
    while (*s->step()) out.push_back(s->blob(0));
    return out;
  };
  auto alice_ct = blobs("SELECT template FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='alice')");
  auto alice_img_ct = blobs("SELECT image FROM source_image WHERE image IS NOT NULL");
  auto alice_key = blobs("SELECT wrapped FROM subject_key WHERE subject_id=(SELECT id FROM subject WHERE ref='alice')");
  auto bob_ct = blobs("SELECT template FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='bob')");
  ASSERT_EQ(alice_ct.size(), 2u);
  ASSERT_EQ(alice_img_ct.size(), 1u);

  // At rest nothing is in clear; the stored ciphertext is found (so the scan can fail).
  EXPECT_TRUE(files_holding(dir_, float_bytes(t1.values)).empty());
  EXPECT_TRUE(files_holding(dir_, image).empty());
  EXPECT_FALSE(files_holding(dir_, alice_ct[0]).empty());
  EXPECT_FALSE(files_holding(dir_, alice_img_ct[0]).empty());

  ASSERT_TRUE(svc_->search_templates({"access-control", "c"}, {t1}).is_ok());  // load the in-memory gallery
  EXPECT_EQ(svc_->gallery_size(), 3u);
  auto receipt = svc_->erase("alice");
  ASSERT_TRUE(receipt.is_ok()) << receipt.status().to_string();
  EXPECT_EQ(receipt->faces, 2);
  EXPECT_EQ(receipt->images, 2);
  EXPECT_EQ(receipt->kept_images, 1);
  EXPECT_EQ(receipt->bases, 1);
  EXPECT_TRUE(receipt->key_destroyed);
  EXPECT_TRUE(receipt->wiped);
  EXPECT_EQ(svc_->gallery_size(), 1u) << "removed from the in-memory gallery at once";
  EXPECT_TRUE(svc_->search_templates({"access-control", "c"}, {t1})->faces[0].candidates.empty());

  auto check_files = [&](const char* when) {
    SCOPED_TRACE(when);
    for (auto* secret : {&t1.values, &t2.values})
      EXPECT_EQ(files_holding(dir_, float_bytes(*secret)), std::vector<std::string>());
    for (auto& ct : alice_ct) EXPECT_EQ(files_holding(dir_, ct), std::vector<std::string>());
    EXPECT_EQ(files_holding(dir_, image), std::vector<std::string>());
    EXPECT_EQ(files_holding(dir_, alice_img_ct[0]), std::vector<std::string>());
    EXPECT_EQ(files_holding(dir_, alice_key[0]), std::vector<std::string>());
    EXPECT_FALSE(files_holding(dir_, bob_ct[0]).empty()) << "bob must still be there";
  };
  check_files("service open");
  EXPECT_EQ(count("SELECT count(*) FROM subject WHERE ref='alice'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM subject_key"), 1);
  svc_.reset();
  check_files("service closed");

  svc_ = open_service(dir_);
  EXPECT_TRUE(svc_->search_templates({"access-control", "c"}, {t1})->faces[0].candidates.empty());
  auto e = audit("erase");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].hash, receipt->audit_hash);
  EXPECT_EQ(e[0].subjects, std::vector<std::string>{receipt->subject_uid});
  EXPECT_EQ(e[0].canonical().find("alice"), std::string::npos) << "no external reference in the log";
  EXPECT_FALSE(svc_->erase("alice").is_ok());
  EXPECT_TRUE(svc_->audit_verify()->ok);
}

INSTANTIATE_TEST_SUITE_P(Vacuum, EraseTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "with_vacuum" : "checkpoint_only"; });

TEST_F(VaultTest, ErasureWhoseWipeFailsKeepsItsReceiptAndTheNextOpenWipes) {
  auto t = random_template(rng_);
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, t).is_ok());
  const int64_t b = basis("bob", {"access-control"});
  ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  std::vector<uint8_t> stored;
  {
    auto s = svc_->vault().db().prepare("SELECT template FROM face WHERE subject_id=(SELECT id FROM subject WHERE ref='alice')");
    ASSERT_TRUE(*s->step());
    stored = s->blob(0);
  }
  svc_->vault().wipe_fault_for_testing = [] { return io_error("injected: the disk said no"); };
  auto r = svc_->erase("alice");
  ASSERT_TRUE(r.is_ok()) << "the erasure is committed: its receipt must not be lost: " << r.status().to_string();
  EXPECT_FALSE(r->wiped);
  EXPECT_NE(r->wipe_error.find("injected"), std::string::npos);
  EXPECT_TRUE(r->key_destroyed);
  EXPECT_EQ(r->faces, 1);
  ASSERT_FALSE(r->audit_hash.empty());
  EXPECT_EQ(audit("erase").back().hash, r->audit_hash);
  EXPECT_EQ(r->to_json()["wipe_pending"], true);
  EXPECT_EQ(count("SELECT count(*) FROM meta WHERE key='wipe_pending'"), 1);
  // The same for a withdrawal that erases part of a subject.
  const int64_t b2 = basis("bob", {"payroll"});
  ASSERT_TRUE(enroll("bob", b2, random_template(rng_)).is_ok());
  auto w = svc_->withdraw_basis(b2);
  ASSERT_TRUE(w.is_ok());
  EXPECT_FALSE(w->wiped);
  EXPECT_FALSE(files_holding(dir_, stored).empty()) << "not wiped yet: the old page is still in the WAL";
  svc_.reset();
  // The next open finishes the wipe.
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  EXPECT_EQ(count("SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0);
  EXPECT_EQ(files_holding(dir_, stored), std::vector<std::string>());
  EXPECT_EQ(files_holding(dir_, float_bytes(t.values)), std::vector<std::string>());
  // A wipe that succeeds leaves nothing pending.
  ASSERT_TRUE(svc_->erase("bob")->wiped);
  EXPECT_EQ(count("SELECT count(*) FROM meta WHERE key='wipe_pending'"), 0);
  EXPECT_TRUE(svc_->audit_verify()->ok);
}

TEST_F(VaultTest, WithdrawalErasesWhatTheBasisCovered) {
  const int64_t b1 = basis("alice", {"access-control"});
  const int64_t b2 = basis("alice", {"payroll"});
  ASSERT_TRUE(enroll("alice", b1, random_template(rng_)).is_ok());
  ASSERT_TRUE(enroll("alice", b2, random_template(rng_)).is_ok());
  auto r1 = svc_->withdraw_basis(b1);
  ASSERT_TRUE(r1.is_ok());
  EXPECT_EQ(r1->faces, 1);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 1);
  auto r2 = svc_->withdraw_basis(b2);
  ASSERT_TRUE(r2.is_ok());
  EXPECT_TRUE(r2->key_destroyed) << "no basis left: the whole subject goes";
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM face") +
                count("SELECT count(*) FROM subject_key") + count("SELECT count(*) FROM lawful_basis"),
            0);
}

TEST_F(VaultTest, NoExternalReferenceOrPathEntersTheAuditLog) {
  // The log is append-only and outlives erasure: it must hold vault ids, never the operator's
  // references or file paths.
  const std::string alice = "alice-REF-7731", bob = "bob-REF-8842", ghost = "ghost-REF-9953";
  const int64_t a = basis(alice, {"access-control"});
  const int64_t b = basis(bob, {"access-control"});
  auto t = random_template(rng_);
  EnrollRequest req{alice, a};
  req.provenance = {"desk-3", "file", "/srv/intake/PATH-4410/alice.png"};
  ASSERT_TRUE(svc_->enroll_template(req, t).is_ok());
  ASSERT_TRUE(enroll(bob, b, random_template(rng_)).is_ok());
  auto unknown = enroll(ghost, a, random_template(rng_));
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find(ghost), std::string::npos) << "the caller is told which reference";
  EXPECT_FALSE(enroll(alice, b, random_template(rng_)).is_ok());
  EXPECT_FALSE(enroll(bob, 999, random_template(rng_)).is_ok());
  svc_->set_actor({"ivan", "investigator"});
  ASSERT_TRUE(svc_->search_templates({"access-control", "case-1"}, {t}).is_ok());
  svc_->set_actor({"dora", "auditor"});
  ASSERT_TRUE(svc_->export_subject(bob, false, std::nullopt).is_ok());
  auto receipt = svc_->erase(alice);
  ASSERT_TRUE(receipt.is_ok());
  for (const auto& s : {alice, ghost, std::string("nobody-REF-0")}) {
    auto shown = svc_->audit_show(std::nullopt, s);
    ASSERT_TRUE(shown.is_ok());
    EXPECT_TRUE(shown->empty()) << s;
  }
  auto by_uid = svc_->audit_show(std::nullopt, receipt->subject_uid);
  ASSERT_TRUE(by_uid.is_ok());
  EXPECT_GE(by_uid->size(), 4u) << "the erased subject's history is found by the id on the receipt";
  EXPECT_EQ(audit("audit_show").back().subjects, std::vector<std::string>{receipt->subject_uid});
  EXPECT_EQ(audit("audit_show").front().details["subject"], "unknown subject");

  const std::string log = audit_table_text(svc_->vault().db());
  ASSERT_FALSE(log.empty());
  for (const char* needle : {"REF-", "PATH-4410", "/srv/intake", "alice", "bob", "ghost", "nobody"})
    EXPECT_EQ(log.find(needle), std::string::npos) << needle << " is in the audit log";
  EXPECT_TRUE(svc_->audit_verify()->ok);
}

TEST_F(VaultTest, WithdrawingABasisTwiceIsRefusedAndKeepsTheFirstDate) {
  const int64_t b1 = basis("alice", {"access-control"});
  ASSERT_GT(basis("alice", {"payroll"}), 0);
  ASSERT_TRUE(svc_->withdraw_basis(b1).is_ok());
  const std::string first = **svc_->vault().db().query_text("SELECT withdrawn_at FROM lawful_basis WHERE id=" + std::to_string(b1));
  clock_.now = vault::add_days(clock_.now, 3);
  auto again = svc_->withdraw_basis(b1);
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.status().message().find("already withdrawn"), std::string::npos) << again.status().message();
  EXPECT_EQ(**svc_->vault().db().query_text("SELECT withdrawn_at FROM lawful_basis WHERE id=" + std::to_string(b1)), first);
  EXPECT_EQ(audit("basis_withdraw").size(), 1u);
}

TEST_F(VaultTest, WithdrawalErasesTheSubjectWhenNoOtherBasisIsInForce) {
  // Alice's other basis has expired: withdrawing the one in force leaves her none.
  const int64_t old = basis("alice", {"access-control"}, "consent", vault::add_days(clock_.now, 5));
  const int64_t cur = basis("alice", {"payroll"});
  ASSERT_TRUE(enroll("alice", old, random_template(rng_)).is_ok());
  ASSERT_TRUE(enroll("alice", cur, random_template(rng_)).is_ok());
  clock_.now = vault::add_days(clock_.now, 6);
  auto r = svc_->withdraw_basis(cur);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->key_destroyed) << "an expired basis does not keep the subject";
  EXPECT_EQ(r->faces, 2);
  EXPECT_EQ(count("SELECT count(*) FROM subject") + count("SELECT count(*) FROM face") +
                count("SELECT count(*) FROM lawful_basis") + count("SELECT count(*) FROM subject_key"),
            0);
}

TEST_F(VaultTest, OnlyRolesThatMayEraseMayWithdrawABasis) {
  const int64_t b = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", b, random_template(rng_)).is_ok());
  for (const char* role : {"enroller", "investigator"}) {
    svc_->set_actor({"eve", role});
    auto r = svc_->withdraw_basis(b);
    ASSERT_FALSE(r.is_ok()) << role;
    EXPECT_NE(r.status().message().find("may not"), std::string::npos);
  }
  EXPECT_EQ(count("SELECT count(*) FROM face"), 1) << "nothing erased";
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE action='basis_withdraw' AND outcome='denied'"), 2);
  svc_->set_actor({"dora", "auditor"});
  auto ok = svc_->withdraw_basis(b);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->key_destroyed);
}

// ------------------------------------------------------------------ export

TEST_F(VaultTest, ExportHoldsEverythingIncludingSearchesThatReturnedTheSubject) {
  auto t = random_template(rng_);
  const int64_t a = basis("alice", {"access-control", "investigation"});
  const int64_t b = basis("bob", {"investigation"});
  EnrollRequest req{"alice", a};
  req.provenance = {"hr-desk", "scanner", "badge photo 2026"};
  ASSERT_TRUE(svc_->enroll_template(req, t).is_ok());
  ASSERT_TRUE(enroll("bob", b, near_template(t, rng_, 0.4f)).is_ok());
  svc_->set_actor({"ivan", "investigator"});
  ASSERT_TRUE(svc_->search_templates({"investigation", "case-42"}, {near_template(t, rng_, 0.3f)}).is_ok());
  ASSERT_TRUE(svc_->search_templates({"investigation", "case-43"}, {random_template(rng_)}).is_ok());
  svc_->set_actor({"dora", "auditor"});
  auto j = svc_->export_subject("alice", false, std::nullopt);
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  EXPECT_EQ((*j)["subject"]["reference"], "alice");
  EXPECT_TRUE((*j)["subject"].contains("retention_until"));
  ASSERT_EQ((*j)["lawful_bases"].size(), 1u);
  EXPECT_EQ((*j)["lawful_bases"][0]["purposes"].size(), 2u);
  ASSERT_EQ((*j)["source_images"].size(), 1u);
  EXPECT_EQ((*j)["source_images"][0]["provenance"]["supplied_by"], "hr-desk");
  EXPECT_EQ((*j)["source_images"][0]["provenance"]["source"], "badge photo 2026");
  ASSERT_EQ((*j)["templates"].size(), 1u);
  EXPECT_TRUE((*j)["templates"][0]["template"].is_string()) << "values only on request";
  bool search_seen = false;
  for (auto& e : (*j)["audit"]) {
    if (e["action"] == "search") {
      EXPECT_EQ(e["case"], "case-42");
      EXPECT_EQ(e["details"]["returned_as_candidate"], true);
      EXPECT_EQ(e["subjects"].size(), 1u) << "other subjects' ids are not in alice's export";
      search_seen = true;
    }
  }
  EXPECT_TRUE(search_seen);
  auto with_t = svc_->export_subject("alice", true, std::nullopt);
  ASSERT_TRUE(with_t.is_ok());
  EXPECT_NEAR((*with_t)["templates"][0]["template"][0].get<double>(), t.values[0], 1e-7);
  EXPECT_EQ(audit("export").size(), 2u);
}

TEST_F(VaultTest, ExportedPhotosArePrivateFilesInAPrivateFolder) {
  const int64_t a = basis("alice", {"access-control"});
  service::PreparedFace pf;
  pf.image.assign(3000, 0);
  for (auto& x : pf.image) x = static_cast<uint8_t>(rng_());
  pf.sha256 = vault::sha256_hex(pf.image);
  pf.format = "png";
  pf.image_bytes = pf.image.size();
  pf.face.face_template = random_template(rng_);
  EnrollRequest kept{"alice", a};
  kept.keep_image = true;
  const auto image = pf.image;
  ASSERT_TRUE(svc_->commit_enrollment(kept, pf).is_ok());
  const mode_t old_umask = ::umask(022);  // the usual umask: would give 0755 and 0644
  const auto out = tmp_.path() / "exports" / "alice";
  auto j = svc_->export_subject("alice", false, out);
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  // An existing file is made private too.
  const std::string file = (*j)["source_images"][0]["file"];
  std::filesystem::permissions(file, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  ASSERT_TRUE(svc_->export_subject("alice", false, out).is_ok());
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(file_bytes(file), image);
}

// ------------------------------------------------------------------ retention

TEST_F(VaultTest, ExpireErasesWhatIsDueAndAuditsIt) {
  const std::string t0 = clock_.now;
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
  const int64_t b = basis("bob", {"access-control"}, "consent", vault::add_days(t0, 30));
  ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  const int64_t c = basis("carol", {"access-control"});
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());
  // Carol comes back after 200 days: her retention is renewed by the new enrolment.
  clock_.now = vault::add_days(t0, 200);
  ASSERT_TRUE(enroll("carol", c, random_template(rng_)).is_ok());

  auto r = svc_->expire(vault::add_days(t0, 10), false);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->erased.empty());
  auto dry = svc_->expire(vault::add_days(t0, 31), true);
  ASSERT_EQ(dry->erased.size(), 1u);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 3) << "a dry run erases nothing";
  r = svc_->expire(vault::add_days(t0, 31), false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "bob");
  EXPECT_EQ(r->erased[0].reason, "no lawful basis in force");
  // A date in the future erases nothing: it is refused unless it is a dry run.
  auto ahead = svc_->expire(vault::add_days(t0, 366), false);
  ASSERT_FALSE(ahead.is_ok());
  EXPECT_NE(ahead.status().message().find("--dry-run"), std::string::npos) << ahead.status().message();
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 2);
  dry = svc_->expire(vault::add_days(t0, 566), true);
  ASSERT_TRUE(dry.is_ok());
  EXPECT_EQ(dry->erased.size(), 2u);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 2);
  clock_.now = vault::add_days(t0, 366);
  r = svc_->expire(vault::add_days(t0, 366), false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "alice");
  EXPECT_EQ(r->erased[0].reason, "retention period ended");
  clock_.now = vault::add_days(t0, 566);
  r = svc_->expire(std::nullopt, false);
  ASSERT_EQ(r->erased.size(), 1u);
  EXPECT_EQ(r->erased[0].subject_ref, "carol");
  EXPECT_EQ(audit("erase").size(), 3u);
  EXPECT_EQ(audit("expire").size(), 6u);
  EXPECT_TRUE(svc_->audit_verify()->ok);
}

// ------------------------------------------------------------------ opt-out

TEST_F(VaultTest, OptOutBlocksEnrolmentAndFlagsEnrolledMatches) {
  const double thr = svc_->optout_threshold();
  auto cal = face::Calibration::builtin("faceplugin-mobilefacenet-512");
  if (cal.is_ok()) {
    EXPECT_DOUBLE_EQ(thr, cal->threshold_at(1e-5));
  }
  auto person = random_template(rng_), early = random_template(rng_);
  const int64_t e = basis("early", {"access-control"});
  ASSERT_TRUE(enroll("early", e, early).is_ok());
  auto r = svc_->optout_add_template(person);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->enrolled_match_count, 0);
  EXPECT_TRUE(files_holding(dir_, float_bytes(person.values)).empty()) << "only an encrypted template is stored";
  EXPECT_EQ(count("SELECT count(*) FROM pragma_table_info('optout')"), 6) << "nothing but id, uid, model, template, time";

  const int64_t a = basis("again", {"access-control"});
  auto refused = enroll("again", a, near_template(person, rng_, 0.3f));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("opt-out"), std::string::npos);
  auto last = audit("enroll").back();
  EXPECT_EQ(last.outcome, "refused");
  EXPECT_EQ(last.details["optout"], r->optout_uid);
  EXPECT_TRUE(enroll("again", a, random_template(rng_)).is_ok()) << "someone else is not blocked";

  // A person enrolled before they opted out. Whoever adds the opt-out (an enroller may) learns
  // only how many enrolled subjects match, not who: adding an opt-out is not a search. The
  // audit entry records the number and the subjects' vault ids.
  svc_->set_actor({"eve", "enroller"});
  auto r2 = svc_->optout_add_template(near_template(early, rng_, 0.3f));
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ(r2->enrolled_match_count, 1);
  const std::string early_uid = **svc_->vault().db().query_text("SELECT uid FROM subject WHERE ref='early'");
  auto added = audit("optout_add").back();
  EXPECT_EQ(added.details["optout"], r2->optout_uid);
  EXPECT_EQ(added.details["enrolled_matches"], 1);
  EXPECT_EQ(added.subjects, std::vector<std::string>{early_uid});
  EXPECT_EQ(added.canonical().find("early\""), std::string::npos) << "no external reference in the log";
  // Listing them is the auditor's optout_check, itself audited with their ids.
  svc_->set_actor({"dora", "auditor"});
  auto check = svc_->optout_check();
  ASSERT_TRUE(check.is_ok());
  ASSERT_EQ(check->size(), 1u);
  EXPECT_EQ((*check)[0].subject_ref, "early");
  EXPECT_EQ((*check)[0].optout_uid, r2->optout_uid);
  EXPECT_EQ(audit("optout_check").back().subjects, std::vector<std::string>{early_uid});
}

TEST_F(VaultTest, OptOutsOfAnotherModelAreCountedAndAudited) {
  // Opt-outs are compared only with templates of their own model: after a model change the
  // old entries block nothing, and `optout check` must say so instead of staying silent.
  ASSERT_TRUE(enroll("alice", basis("alice", {"access-control"}), random_template(rng_)).is_ok());
  auto old_model = random_template(rng_, "some-older-embedder");
  ASSERT_TRUE(svc_->optout_add_template(old_model).is_ok());
  ASSERT_TRUE(svc_->optout_add_template(random_template(rng_)).is_ok());
  auto other_version = random_template(rng_);
  other_version.model_version = 2;
  ASSERT_TRUE(svc_->optout_add_template(other_version).is_ok());
  EXPECT_EQ(*svc_->incomparable_optouts(), 2);
  svc_->set_actor({"dora", "auditor"});
  ASSERT_TRUE(svc_->optout_check().is_ok());
  EXPECT_EQ(audit("optout_check").back().details["incomparable_optouts"], 2);
  // An enrolment of the old model's face is not blocked by it (the documented limitation).
  svc_->set_actor({"tester", "admin"});
  auto again = near_template(old_model, rng_, 0.2f);
  again.model_id = "faceplugin-mobilefacenet-512";
  EXPECT_TRUE(enroll("bob", basis("bob", {"access-control"}), again).is_ok());
}

// ------------------------------------------------------------------ audit chain

TEST_F(VaultTest, AuditTableIsAppendOnly) {
  const int64_t b = basis("s", {"access-control"});
  ASSERT_GT(b, 0);
  EXPECT_FALSE(svc_->vault().db().exec("UPDATE audit SET actor='x' WHERE seq=1").is_ok());
  EXPECT_FALSE(svc_->vault().db().exec("DELETE FROM audit WHERE seq=1").is_ok());
  EXPECT_TRUE(svc_->audit_verify()->ok);
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
    auto ok = svc_->audit_verify();
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
    auto r = svc_->audit_verify();
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
  auto v = svc_->audit_verify();
  ASSERT_FALSE(v.is_ok());
  EXPECT_EQ(v.status().code(), StatusCode::kCorruptData) << v.status().to_string();
  auto b = svc_->add_basis({"e", "consent", "f", {"access-control"}, std::nullopt});
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
  const std::string uid = **svc_->vault().db().query_text("SELECT uid FROM subject WHERE ref='alice'");
  EXPECT_EQ(show(uid), 1u);
  EXPECT_EQ(show("%"), 0u);
  EXPECT_EQ(show(std::string(uid.size(), '_')), 0u) << "'_' is not a wildcard";
  EXPECT_EQ(show(uid.substr(0, 4) + "%"), 0u);
  vault::AuditQuery limited;
  limited.subject = uid;
  limited.limit = 1;
  EXPECT_EQ(read_audit_or_die(limited).size(), 1u);
  // Through the service too (auditor's `audit show --subject`).
  auto entries = svc_->audit_show(std::nullopt, std::string(uid.size(), '_'));
  ASSERT_TRUE(entries.is_ok());
  EXPECT_TRUE(entries->empty());
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
  auto& db = svc_->vault().db();
  auto txn = vault::Txn::begin(db);
  ASSERT_TRUE(txn.is_ok());
  auto h = vault::append_audit(db, e);
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  ASSERT_TRUE(txn->commit().is_ok());
  auto v = svc_->audit_verify();
  ASSERT_TRUE(v.is_ok());
  EXPECT_TRUE(v->ok) << v->message;
}

// ------------------------------------------------------------------ key rotation

TEST_F(VaultTest, KeyRotationRewrapsSubjectKeysWithoutTouchingTemplates) {
  auto t = random_template(rng_);
  for (int i = 0; i < 5; ++i) {
    const int64_t b = basis("s" + std::to_string(i), {"access-control"});
    ASSERT_TRUE(enroll("s" + std::to_string(i), b, i == 0 ? t : random_template(rng_)).is_ok());
  }
  ASSERT_TRUE(svc_->optout_add_template(random_template(rng_)).is_ok());
  auto dump = [&](const std::string& sql) {
    std::vector<std::vector<uint8_t>> out;
    auto s = svc_->vault().db().prepare(sql);
    while (*s->step()) out.push_back(s->blob(0));
    return out;
  };
  const auto templates = dump("SELECT template FROM face ORDER BY id");
  const auto wrapped = dump("SELECT wrapped FROM subject_key ORDER BY subject_id");
  const auto old_key = file_bytes(dir_ / "master.key");
  auto r = svc_->rotate_key();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->subject_keys, 5);
  EXPECT_TRUE(r->optout_key);
  EXPECT_EQ(dump("SELECT template FROM face ORDER BY id"), templates) << "templates untouched";
  const auto rewrapped = dump("SELECT wrapped FROM subject_key ORDER BY subject_id");
  for (size_t i = 0; i < wrapped.size(); ++i) EXPECT_NE(rewrapped[i], wrapped[i]);
  EXPECT_NE(file_bytes(dir_ / "master.key"), old_key);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "master.key.new"));
  EXPECT_EQ(svc_->search_templates({"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
  svc_.reset();
  svc_ = open_service(dir_);
  EXPECT_EQ(svc_->search_templates({"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
  EXPECT_EQ(audit("key_rotate").size(), 1u);
  EXPECT_TRUE(enroll("s0", 1, random_template(rng_)).is_ok()) << "opt-out registry still readable";
  svc_.reset();
  // The old key no longer opens the vault.
  {
    std::ofstream out(dir_ / "master.key", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(old_key.data()), old_key.size());
  }
  auto v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("wrong master key"), std::string::npos);
}

TEST_F(VaultTest, InterruptedRotationIsFinishedOrDiscardedOnOpen) {
  const int64_t b = basis("s", {"access-control"});
  auto t = random_template(rng_);
  ASSERT_TRUE(enroll("s", b, t).is_ok());
  // Killed after the commit, before the key file was replaced.
  svc_.reset();
  pid_t pid = fork();
  if (pid == 0) {
    auto s = service::Service::open(dir_, {"t", "admin"});
    if (!s.is_ok()) _exit(3);
    (void)(*s)->rotate_key([] { _exit(0); });
    _exit(4);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(std::filesystem::exists(dir_ / "master.key.new"));
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "master.key.new"));
  EXPECT_EQ(svc_->search_templates({"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
  // Killed before the commit: a stray new key file is discarded.
  svc_.reset();
  {
    std::ofstream out(dir_ / "master.key.new");
    out << vault::SecretKey::random().to_hex() << "\n";
  }
  std::filesystem::permissions(dir_ / "master.key.new", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "master.key.new"));
  EXPECT_EQ(svc_->search_templates({"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
}

TEST(VaultKeys, EnvModeRotationTakesTheNewKeyFromTheEnvironment) {
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  TempDir tmp;
  const auto k1 = vault::SecretKey::random(), k2 = vault::SecretKey::random();
  setenv(vault::kMasterKeyEnv, k1.to_hex().c_str(), 1);
  unsetenv(vault::kNewMasterKeyEnv);
  ASSERT_TRUE(vault::Vault::init(tmp.path() / "v").is_ok());
  {
    auto s = open_service(tmp.path() / "v");
    auto r = s->rotate_key();
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find(vault::kNewMasterKeyEnv), std::string::npos);
    setenv(vault::kNewMasterKeyEnv, k2.to_hex().c_str(), 1);
    ASSERT_TRUE(s->rotate_key().is_ok());
  }
  EXPECT_FALSE(vault::Vault::open(tmp.path() / "v").is_ok());
  setenv(vault::kMasterKeyEnv, k2.to_hex().c_str(), 1);
  EXPECT_TRUE(vault::Vault::open(tmp.path() / "v").is_ok());
  unsetenv(vault::kMasterKeyEnv);
  unsetenv(vault::kNewMasterKeyEnv);
}

// ------------------------------------------------------------------ two processes

TEST_F(VaultTest, TwoProcessesEnrollingAtOnceLeaveAConsistentVault) {
  svc_.reset();
  std::vector<pid_t> pids;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      std::mt19937 rng(p + 100);
      auto s = service::Service::open(dir_, {"proc" + std::to_string(p), "admin"});
      if (!s.is_ok()) _exit(3);
      for (int i = 0; i < 15; ++i) {
        const std::string ref = "p" + std::to_string(p) + "-" + std::to_string(i);
        auto b = (*s)->add_basis({ref, "consent", "f", {"access-control"}, std::nullopt});
        if (!b.is_ok()) _exit(4);
        EnrollRequest req{ref, b->basis_id};
        if (!(*s)->enroll_template(req, random_template(rng)).is_ok()) _exit(5);
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child exit " << WEXITSTATUS(status);
  }
  svc_ = open_service(dir_);
  EXPECT_EQ(count("SELECT count(*) FROM subject"), 30);
  EXPECT_EQ(count("SELECT count(*) FROM face"), 30);
  EXPECT_EQ(count("SELECT count(*) FROM audit"), 60);
  EXPECT_TRUE(svc_->audit_verify()->ok);
  EXPECT_EQ(**svc_->vault().db().query_text("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace fv::test
