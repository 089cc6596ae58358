// Roles and the audit of their denials, and the master key's rotation: subject keys re-wrapped
// without touching templates, an interrupted rotation finished or discarded on open, the new
// key taken from the environment in env mode. API keys are tested in tests/vault/ (the key
// table) and tests/server/ (the routes).
#include <sys/wait.h>
#include <unistd.h>

#include "service/service_test_util.h"

namespace fv::test {
namespace {

class AuditKeysTest : public ServiceTest {};

TEST_F(AuditKeysTest, RolesAreEnforcedAndDenialsAudited) {
  const int64_t a = basis("alice", {"access-control"});
  ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
  actor_ = kInvestigator;
  EXPECT_EQ(svc_->erase(actor_, "alice").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(enroll("alice", a, random_template(rng_)).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(svc_->rotate_key(actor_).status().code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(svc_->search_templates(actor_, {"access-control", "case-1"}, {random_template(rng_)}).is_ok());
  actor_ = kEnroller;
  auto by_enroller = svc_->search_templates(actor_, {"access-control", "case-1"}, {random_template(rng_)});
  ASSERT_FALSE(by_enroller.is_ok());
  EXPECT_EQ(by_enroller.status().code(), StatusCode::kPermissionDenied) << by_enroller.status().to_string();
  EXPECT_NE(by_enroller.status().message().find("may not"), std::string::npos) << by_enroller.status().message();
  EXPECT_EQ(svc_->export_subject(actor_, "alice", false, std::nullopt).status().code(), StatusCode::kPermissionDenied);
  actor_ = kAuditor;
  EXPECT_EQ(svc_->search_templates(actor_, {"access-control", "case-1"}, {random_template(rng_)}).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(svc_->export_subject(actor_, "alice", false, std::nullopt).is_ok());
  EXPECT_TRUE(svc_->audit_verify(actor_)->ok);
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE outcome='denied'"), 6);
  EXPECT_EQ(count("SELECT count(*) FROM audit WHERE outcome='denied' AND actor='eve' AND action='search'"), 1);
}

// audit_show pages in SQLite: each filter, the counts, the order and the limit give what the
// whole log, filtered here by hand, gives.
TEST_F(AuditKeysTest, AnAuditPageIsTheWholeLogFilteredCountedAndCut) {
  const int64_t a = basis("alice", {"access-control"});
  const int64_t b = basis("bob", {"access-control"});
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(enroll("alice", a, random_template(rng_)).is_ok());
    ASSERT_TRUE(enroll("bob", b, random_template(rng_)).is_ok());
  }
  EXPECT_FALSE(svc_->erase(kInvestigator, "bob").is_ok());  // denied
  const std::string alice_uid = svc_->export_subject(actor_, "alice", false, std::nullopt)->at("subject").at("id");
  const auto all = read_audit_or_die({});
  std::vector<service::AuditFilter> filters(5);
  filters[0].action = "enroll";
  filters[0].limit = 3;
  filters[0].newest_first = true;
  filters[1].subject = "alice";
  filters[1].action = "enroll";
  filters[1].limit = 2;
  filters[2].outcome = "denied";
  filters[3].actor = kAdmin.name;
  filters[3].action = "basis_add";
  filters[4].limit = 1;
  filters[4].newest_first = true;
  for (const auto& f : filters) {
    // The expected page, from the whole log, taken before the call (which audits itself).
    const auto before = read_audit_or_die({});
    std::vector<vault::AuditEntry> scope, matched;
    for (const auto& e : before) {
      if (f.subject && std::find(e.subjects.begin(), e.subjects.end(), alice_uid) == e.subjects.end()) continue;
      scope.push_back(e);
      if ((f.action && e.action != *f.action) || (f.outcome && e.outcome != *f.outcome) || (f.actor && e.actor != *f.actor))
        continue;
      matched.push_back(e);
    }
    const size_t matched_all = matched.size();
    if (f.newest_first) std::reverse(matched.begin(), matched.end());
    if (f.limit && matched.size() > f.limit) matched.resize(f.limit);
    auto page = svc_->audit_show(actor_, f);
    ASSERT_TRUE(page.is_ok()) << page.status().to_string();
    EXPECT_EQ(page->total, scope.size());
    ASSERT_EQ(page->entries.size(), matched.size());
    for (size_t i = 0; i < matched.size(); ++i) EXPECT_EQ(page->entries[i].seq, matched[i].seq) << i;
    EXPECT_EQ(page->matched, matched_all);
  }
  EXPECT_EQ(all.size(), 14u) << "2 bases, 10 enrollments, a denial, an export";
  auto denied = svc_->audit_show(actor_, filters[2]);
  ASSERT_TRUE(denied.is_ok());
  EXPECT_EQ(denied->matched, 1u);
  EXPECT_EQ(denied->entries[0].actor, kInvestigator.name);
}

TEST_F(AuditKeysTest, KeyRotationRewrapsSubjectKeysWithoutTouchingTemplates) {
  auto t = random_template(rng_);
  for (char c : std::string("01234")) {  // (not "s" + to_string(i): GCC 12 -Wrestrict false positive)
    const std::string ref{'s', c};
    const int64_t b = basis(ref, {"access-control"});
    ASSERT_TRUE(enroll(ref, b, c == '0' ? t : random_template(rng_)).is_ok());
  }
  ASSERT_TRUE(svc_->optout_add_template(actor_, random_template(rng_)).is_ok());
  auto dump = [&](const std::string& sql) {
    std::vector<std::vector<uint8_t>> out;
    auto s = raw_db(*svc_).prepare(sql);
    while (*s->step()) out.push_back(s->blob(0));
    return out;
  };
  const auto templates = dump("SELECT template FROM face ORDER BY id");
  const auto wrapped = dump("SELECT wrapped FROM subject_key ORDER BY subject_id");
  const auto old_key = file_bytes(dir_ / "master.key");
  auto r = svc_->rotate_key(actor_);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->subject_keys, 5);
  EXPECT_TRUE(r->optout_key);
  EXPECT_EQ(dump("SELECT template FROM face ORDER BY id"), templates) << "templates untouched";
  const auto rewrapped = dump("SELECT wrapped FROM subject_key ORDER BY subject_id");
  for (size_t i = 0; i < wrapped.size(); ++i) EXPECT_NE(rewrapped[i], wrapped[i]);
  EXPECT_NE(file_bytes(dir_ / "master.key"), old_key);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "master.key.new"));
  EXPECT_EQ(svc_->search_templates(actor_, {"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
  svc_.reset();
  svc_ = open_service(dir_);
  EXPECT_EQ(svc_->search_templates(actor_, {"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
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

TEST_F(AuditKeysTest, InterruptedRotationIsFinishedOrDiscardedOnOpen) {
  const int64_t b = basis("s", {"access-control"});
  auto t = random_template(rng_);
  ASSERT_TRUE(enroll("s", b, t).is_ok());
  // Killed after the commit, before the key file was replaced.
  svc_.reset();
  pid_t pid = fork();
  if (pid == 0) {
    auto s = service::Service::open(dir_);
    if (!s.is_ok()) _exit(3);
    (void)(*s)->rotate_key({"t", service::Role::kAdmin}, [] { _exit(0); });
    _exit(4);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(std::filesystem::exists(dir_ / "master.key.new"));
  svc_ = open_service(dir_);
  ASSERT_TRUE(svc_);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "master.key.new"));
  EXPECT_EQ(svc_->search_templates(actor_, {"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
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
  EXPECT_EQ(svc_->search_templates(actor_, {"access-control", "c"}, {t})->faces[0].candidates.size(), 1u);
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
    auto r = s->rotate_key(kAdmin);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find(vault::kNewMasterKeyEnv), std::string::npos);
    setenv(vault::kNewMasterKeyEnv, k2.to_hex().c_str(), 1);
    ASSERT_TRUE(s->rotate_key(kAdmin).is_ok());
  }
  EXPECT_FALSE(vault::Vault::open(tmp.path() / "v").is_ok());
  setenv(vault::kMasterKeyEnv, k2.to_hex().c_str(), 1);
  EXPECT_TRUE(vault::Vault::open(tmp.path() / "v").is_ok());
  unsetenv(vault::kMasterKeyEnv);
  unsetenv(vault::kNewMasterKeyEnv);
}

}  // namespace
}  // namespace fv::test
