// Signed audit checkpoints (src/vault/audit_checkpoint.h): a chain rewritten end to end with
// valid hashes fails audit verify because a checkpoint no longer matches; an edited or deleted
// checkpoint is detected; a checkpoint kept elsewhere (--against) catches a rewrite that also
// replaced the checkpoint table and the signing key; the key is a 0600 file outside vault.db;
// a vault of the previous schema migrates and gets its key and start checkpoint.
#include <sys/stat.h>

#include "service/service_test_util.h"
#include "vault/audit_checkpoint.h"

namespace fv::test {
namespace {

constexpr int64_t kEvery = 5;

class CheckpointTest : public ServiceTest {
 protected:
  void SetUp() override {
    unsetenv(vault::kAuditSigningKeyEnv);
    config_.audit_checkpoint_every = kEvery;
    ServiceTest::SetUp();
  }
  // Appends audit entries (one per basis recorded) until the chain holds at least n.
  void grow_to(int64_t n) {
    int i = 0;
    while (count("SELECT count(*) FROM audit") < n) basis("s" + std::to_string(i++), {"access-control"});
  }
  vault::AuditVerifyReport verify() {
    auto r = svc_->audit_verify(kAuditor);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : vault::AuditVerifyReport{};
  }
  vault::Db& db() { return raw_db(*svc_); }
  void exec(const std::string& sql) {
    auto st = db().exec(sql);
    ASSERT_TRUE(st.is_ok()) << st.to_string() << "\n" << sql;
  }
  // What someone with write access to vault.db can do: change an entry, then recompute every
  // hash after it (vault::chain_hash) and the recorded head, so that the chain verifies.
  void rewrite_chain(int64_t edit_seq) {
    exec("DROP TRIGGER audit_append_only_update");
    exec("UPDATE audit SET actor='mallory' WHERE seq=" + std::to_string(edit_seq));
    vault::AuditQuery q;
    auto entries = *vault::read_audit(db(), q);
    std::string prev = vault::genesis_hash();
    for (auto& e : entries) {
      const std::string h = vault::chain_hash(prev, e.canonical());
      auto s = db().prepare("UPDATE audit SET prev_hash=?, hash=? WHERE seq=?");
      s->bind_all(prev, h, e.seq);
      ASSERT_TRUE(s->run().is_ok());
      prev = h;
    }
    auto m = db().prepare("UPDATE meta SET value=? WHERE key='audit_head_hash'");
    m->bind_all(prev);
    ASSERT_TRUE(m->run().is_ok());
  }
};

TEST_F(CheckpointTest, SignedEveryNEntriesAndVerified) {
  grow_to(3 * kEvery + 2);
  auto cps = *vault::read_checkpoints(db());
  ASSERT_GE(cps.size(), 4u);
  EXPECT_EQ(cps[0].kind, "start");
  EXPECT_EQ(cps[0].seq, 0);
  for (size_t i = 1; i < cps.size(); ++i) {
    EXPECT_EQ(cps[i].seq % kEvery, 0);
    EXPECT_EQ(cps[i].kind, "auto");
    EXPECT_TRUE(vault::checkpoint_signature_valid(cps[i]));
    EXPECT_EQ(cps[i].public_key, svc_->vault_for_testing().audit_public_key());
  }
  auto r = verify();
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.checkpoints, static_cast<int64_t>(cps.size()));
  // Roles: the auditor's and the admin's, not an investigator's.
  EXPECT_EQ(svc_->audit_checkpoint(kInvestigator).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(CheckpointTest, ChainRewrittenWithValidHashesFailsOnACheckpoint) {
  grow_to(2 * kEvery + 1);
  ASSERT_TRUE(verify().ok);
  rewrite_chain(3);
  // The chain alone verifies: every hash and link is consistent.
  auto chain = vault::verify_audit(db());
  ASSERT_TRUE(chain.is_ok());
  EXPECT_TRUE(chain->ok) << chain->message;
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "checkpoint_head") << r.message;
  EXPECT_EQ(r.first_bad_seq, kEvery) << r.message;  // the first checkpoint after the edit
  EXPECT_NE(r.first_bad_checkpoint, 0);
  EXPECT_NE(r.message.find("rewritten"), std::string::npos) << r.message;

  // Re-pointing the checkpoints at the new heads breaks their signatures.
  exec("DROP TRIGGER audit_checkpoint_append_only_update");
  exec("UPDATE audit_checkpoint SET head=(SELECT hash FROM audit WHERE audit.seq=audit_checkpoint.seq) WHERE seq > 0");
  r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "checkpoint_signature") << r.message;
  EXPECT_EQ(r.first_bad_seq, kEvery);
}

TEST_F(CheckpointTest, EditedCheckpointIsDetected) {
  grow_to(2 * kEvery + 1);
  ASSERT_TRUE(verify().ok);
  exec("DROP TRIGGER audit_checkpoint_append_only_update");
  exec("UPDATE audit_checkpoint SET created_at='2000-01-01T00:00:00.000Z' WHERE seq=" + std::to_string(2 * kEvery));
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "checkpoint_signature") << r.message;
  EXPECT_EQ(r.first_bad_seq, 2 * kEvery);
  EXPECT_NE(r.message.find("altered"), std::string::npos) << r.message;
  EXPECT_EQ(r.to_json()["first_bad_checkpoint"], r.first_bad_checkpoint);
}

TEST_F(CheckpointTest, DeletedCheckpointIsDetected) {
  grow_to(3 * kEvery + 1);
  ASSERT_TRUE(verify().ok);
  exec("DROP TRIGGER audit_checkpoint_append_only_delete");
  exec("DELETE FROM audit_checkpoint WHERE seq=" + std::to_string(2 * kEvery));
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "checkpoint_missing") << r.message;
  EXPECT_EQ(r.first_bad_seq, 2 * kEvery) << r.message;
  // The last one, and the start checkpoint, count too.
  exec("DELETE FROM audit_checkpoint WHERE seq>=" + std::to_string(kEvery));
  r = verify();
  EXPECT_EQ(r.problem, "checkpoint_missing") << r.message;
  EXPECT_EQ(r.first_bad_seq, kEvery) << r.message;
  exec("DELETE FROM audit_checkpoint");
  r = verify();
  EXPECT_EQ(r.problem, "checkpoint_missing") << r.message;
}

TEST_F(CheckpointTest, ExternalCheckpointCatchesARewriteThatReplacedTheKey) {
  grow_to(kEvery + 2);
  auto kept = svc_->audit_checkpoint(kAuditor);
  ASSERT_TRUE(kept.is_ok()) << kept.status().to_string();
  EXPECT_EQ(kept->kind, "manual");
  EXPECT_EQ(kept->seq, count("SELECT count(*) FROM audit")) << "signs the head that includes its own entry";
  EXPECT_EQ(audit("audit_checkpoint").size(), 1u);
  // Kept elsewhere as JSON, and read back.
  const auto external = *vault::AuditCheckpoint::from_json(nlohmann::json::parse(kept->to_json().dump()));
  auto ok = svc_->audit_verify_against(kAuditor, external);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_TRUE(ok->ok) << ok->message;
  grow_to(2 * kEvery + 1);

  // The attacker holds the directory: rewrites the chain, replaces the signing key and
  // re-signs a whole new checkpoint table with it.
  rewrite_chain(2);
  svc_.reset();
  const auto key_file = dir_ / "audit-signing.key";
  std::filesystem::remove(key_file);
  {
    auto v = vault::Vault::open(dir_);
    ASSERT_FALSE(v.is_ok()) << "a lost key is not silently replaced once checkpoints exist";
    EXPECT_EQ(v.status().code(), StatusCode::kFailedPrecondition);
  }
  const vault::SecretKey forged_seed = vault::SecretKey::random();
  {
    std::FILE* f = std::fopen(key_file.c_str(), "w");
    ASSERT_TRUE(f);
    std::fputs((forged_seed.to_hex() + "\n").c_str(), f);
    std::fclose(f);
    ::chmod(key_file.c_str(), 0600);
  }
  svc_ = open_service(dir_, &clock_);
  ASSERT_TRUE(svc_);
  exec("DROP TRIGGER audit_checkpoint_append_only_delete");
  exec("DELETE FROM audit_checkpoint");
  {
    vault::AuditSigner forged(forged_seed, kEvery);
    const int64_t n = count("SELECT count(*) FROM audit");
    for (int64_t seq = 0; seq <= n; seq += kEvery) {
      vault::AuditCheckpoint c;
      c.seq = c.entries = seq;
      c.head = seq == 0 ? vault::genesis_hash() : **db().query_text("SELECT hash FROM audit WHERE seq=" + std::to_string(seq));
      c.every = kEvery;
      c.kind = seq == 0 ? "start" : "auto";
      c.created_at = "2024-01-01T00:00:00.000Z";
      c.public_key = forged.public_key();
      c.signature = forged.sign(c.canonical());
      auto s = db().prepare("INSERT INTO audit_checkpoint(seq, entries, head, every, kind, created_at, public_key, signature)"
                            " VALUES(?,?,?,?,?,?,?,?)");
      s->bind_all(c.seq, c.entries, c.head, c.every, c.kind, c.created_at, c.public_key, c.signature);
      ASSERT_TRUE(s->run().is_ok());
    }
  }
  auto inside = verify();
  EXPECT_TRUE(inside.ok) << "from inside the vault alone the forgery holds: " << inside.message;
  auto r = svc_->audit_verify_against(kAuditor, external);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->problem, "external_key") << r->message;

  // An external copy whose head was changed does not verify under its own key.
  auto edited = external;
  edited.head = std::string(64, 'a');
  r = svc_->audit_verify_against(kAuditor, edited);
  EXPECT_EQ(r->problem, "external_signature") << r->message;
}

TEST_F(CheckpointTest, ExternalCheckpointCatchesARewriteUnderTheSameKey) {
  grow_to(3);
  auto kept = svc_->audit_checkpoint(kAdmin);
  ASSERT_TRUE(kept.is_ok());
  rewrite_chain(1);
  auto r = svc_->audit_verify_against(kAuditor, *kept);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->problem, "external_head") << r->message;
}

TEST_F(CheckpointTest, KeyFileIsPrivateAndNotInTheDatabase) {
  grow_to(kEvery + 1);
  const auto key_file = dir_ / "audit-signing.key";
  struct stat st {};
  ASSERT_EQ(::stat(key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto hex_bytes = file_bytes(key_file);
  std::string hex(hex_bytes.begin(), hex_bytes.end());
  auto seed = vault::SecretKey::from_hex(hex);
  ASSERT_TRUE(seed.is_ok());
  EXPECT_EQ(vault::AuditSigner(*seed, kEvery).public_key(), svc_->vault_for_testing().audit_public_key());
  svc_.reset();  // WAL checkpointed into vault.db
  for (const std::string& f : files_holding(dir_, seed->span())) EXPECT_TRUE(false) << "raw seed in " << f;
  for (const std::string& f : files_holding(dir_, vault::as_bytes(seed->to_hex())))
    EXPECT_EQ(f.substr(0, f.find('@')), "audit-signing.key") << "seed (hex) in " << f;
  // A world-readable key file is refused, like the master key's.
  ::chmod(key_file.c_str(), 0644);
  auto v = vault::Vault::open(dir_);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("audit signing key"), std::string::npos) << v.status().message();
}

TEST_F(CheckpointTest, EnvModeKeepsNoKeyFile) {
  svc_.reset();
  const auto d = tmp_.path() / "env";
  const std::string hex = vault::SecretKey::random().to_hex();
  setenv(vault::kAuditSigningKeyEnv, hex.c_str(), 1);
  ASSERT_TRUE(vault::Vault::init(d, config_).is_ok());
  EXPECT_FALSE(std::filesystem::exists(d / "audit-signing.key"));
  {
    auto v = vault::Vault::open(d);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ((*v)->config().audit_signing_key, "env");
  }
  unsetenv(vault::kAuditSigningKeyEnv);
  auto v = vault::Vault::open(d);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find(vault::kAuditSigningKeyEnv), std::string::npos);
}

TEST_F(CheckpointTest, PreviousSchemaMigratesWithKeyAndStartCheckpoint) {
  svc_.reset();
  const auto d = tmp_.path() / "old";
  ASSERT_TRUE(vault::Vault::init(d, config_, 6).is_ok());  // the schema before signed checkpoints
  EXPECT_FALSE(std::filesystem::exists(d / "audit-signing.key"));
  {
    auto v = vault::Vault::open(d);  // migrates
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ(*vault::testing::raw_db(**v).query_int("PRAGMA user_version"), vault::kSchemaVersion);
    EXPECT_TRUE(std::filesystem::exists(d / "audit-signing.key"));
    auto cps = *vault::read_checkpoints(vault::testing::raw_db(**v));
    ASSERT_EQ(cps.size(), 1u);
    EXPECT_EQ(cps[0].kind, "start");
  }
  svc_ = open_service(d, &clock_);
  ASSERT_TRUE(svc_);
  grow_to(kEvery + 1);
  auto r = verify();
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.checkpoints, 2);
}

}  // namespace
}  // namespace fv::test
