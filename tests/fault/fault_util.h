// Helpers for the fault-injection tests: running the facevault CLI with extra environment
// (the failing_io shim, a master key) and separate stdout/stderr, snapshots of a vault
// directory (file hashes), and the consistency checks every fault must leave intact.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "vault/vault_test_util.h"

extern char** environ;

namespace fv::test {

struct Proc {
  int status = -1;  // raw wait status
  std::string out, err;
  bool exited() const { return WIFEXITED(status); }
  int code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
  bool signalled() const { return WIFSIGNALED(status); }
  std::string describe() const {
    std::ostringstream s;
    if (WIFEXITED(status)) s << "exit " << WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) s << "signal " << WTERMSIG(status);
    else s << "status " << status;
    s << "; stderr: " << err;
    return s.str();
  }
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `argv` (argv[0] a path) with the current environment plus `env` ("" values unset the
// variable); stdout and stderr go to files in `scratch` and are read back.
inline Proc run_proc(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                     const std::filesystem::path& scratch) {
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    const std::string k = kv.substr(0, kv.find('='));
    if (!env.count(k)) envs.push_back(kv);
  }
  for (auto& [k, v] : env)
    if (!v.empty()) envs.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  const auto out = scratch / "proc.out", err = scratch / "proc.err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  Proc p;
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    p.err = "posix_spawn failed";
    return p;
  }
  waitpid(pid, &p.status, 0);
  p.out = slurp(out);
  p.err = slurp(err);
  return p;
}

inline Proc run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                    const std::filesystem::path& scratch) {
  std::vector<std::string> argv{FACEVAULT_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_proc(argv, env, scratch);
}

// What a failing command may print, and what it must never print: a clean failure is one
// line "facevault: <reason>" and an exit code, never a crash.
inline void expect_clean_exit(const Proc& p, const std::string& what) {
  EXPECT_TRUE(p.exited()) << what << ": " << p.describe();
  for (const char* bad : {"terminate called", "Sanitizer", "runtime error:", "Aborted", "Segmentation", "core dumped",
                          "std::", "what():"})
    EXPECT_EQ(p.err.find(bad), std::string::npos) << what << ": stderr has '" << bad << "': " << p.err;
  if (p.code() != 0) {
    EXPECT_NE(p.err.find("facevault"), std::string::npos) << what << ": a failure without a message: " << p.describe();
  }
}

// name → sha256 of every regular file under `dir` (recursively), and its mode.
inline std::map<std::string, std::string> hash_tree(const std::filesystem::path& dir) {
  std::map<std::string, std::string> h;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto bytes = file_bytes(e.path());
    struct stat st {};
    ::stat(e.path().c_str(), &st);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    h[std::filesystem::relative(e.path(), dir).string()] = vault::sha256_hex(bytes) + " " + mode;
  }
  return h;
}

inline void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::remove_all(to, ec);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  std::filesystem::permissions(to, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
}

// Row counts that define a vault's state for these tests.
struct VaultCounts {
  int64_t subjects = 0, keys = 0, bases = 0, purposes = 0, images = 0, kept = 0, faces = 0, optouts = 0, audit = 0;
  std::string master_key_id;
  bool operator==(const VaultCounts&) const = default;
  std::string str() const {
    std::ostringstream s;
    s << "subjects=" << subjects << " keys=" << keys << " bases=" << bases << " purposes=" << purposes
      << " images=" << images << " kept=" << kept << " faces=" << faces << " optouts=" << optouts << " audit=" << audit
      << " master_key_id=" << master_key_id;
    return s.str();
  }
};

inline VaultCounts counts(vault::Db& db) {
  VaultCounts c;
  auto q = [&](const char* sql) {
    auto r = db.query_int(sql);
    EXPECT_TRUE(r.is_ok()) << sql;
    return r.is_ok() ? *r : -1;
  };
  c.subjects = q("SELECT count(*) FROM subject");
  c.keys = q("SELECT count(*) FROM subject_key");
  c.bases = q("SELECT count(*) FROM lawful_basis");
  c.purposes = q("SELECT count(*) FROM basis_purpose");
  c.images = q("SELECT count(*) FROM source_image");
  c.kept = q("SELECT count(*) FROM source_image WHERE image IS NOT NULL");
  c.faces = q("SELECT count(*) FROM face");
  c.optouts = q("SELECT count(*) FROM optout");
  c.audit = q("SELECT count(*) FROM audit");
  auto id = db.query_text("SELECT value FROM meta WHERE key='master_key_id'");
  if (id.is_ok() && id->has_value()) c.master_key_id = **id;
  return c;
}

// The structural invariants: SQLite integrity, foreign keys, no orphan, every subject with a
// key and a basis, no wipe left pending once the vault was opened, and the audit chain.
inline void expect_consistent(service::Service& svc, const std::string& what) {
  auto& db = raw_db(svc);
  EXPECT_EQ(**db.query_text("PRAGMA integrity_check"), "ok") << what;
  EXPECT_FALSE(db.query_text("PRAGMA foreign_key_check")->has_value()) << what;
  const char* orphans[] = {
      "SELECT count(*) FROM subject s WHERE NOT EXISTS (SELECT 1 FROM subject_key k WHERE k.subject_id=s.id)",
      "SELECT count(*) FROM subject s WHERE NOT EXISTS (SELECT 1 FROM lawful_basis b WHERE b.subject_id=s.id)",
      "SELECT count(*) FROM subject_key k WHERE NOT EXISTS (SELECT 1 FROM subject s WHERE s.id=k.subject_id)",
      "SELECT count(*) FROM face f WHERE NOT EXISTS (SELECT 1 FROM subject s WHERE s.id=f.subject_id)",
      "SELECT count(*) FROM face f WHERE NOT EXISTS (SELECT 1 FROM lawful_basis b WHERE b.id=f.basis_id)",
      "SELECT count(*) FROM face f WHERE NOT EXISTS (SELECT 1 FROM source_image i WHERE i.id=f.image_id)",
      "SELECT count(*) FROM source_image i WHERE NOT EXISTS (SELECT 1 FROM face f WHERE f.image_id=i.id)",
      "SELECT count(*) FROM face WHERE length(template) = 0",
      "SELECT count(*) FROM subject_key WHERE master_key_id <> (SELECT value FROM meta WHERE key='master_key_id')",
      "SELECT count(*) FROM meta WHERE key='wipe_pending'",
  };
  for (const char* sql : orphans) EXPECT_EQ(*db.query_int(sql), 0) << what << ": " << sql;
  auto v = svc.audit_verify(kAdmin);
  ASSERT_TRUE(v.is_ok()) << what << ": " << v.status().to_string();
  EXPECT_TRUE(v->ok) << what << ": " << v->message;
}

// Files a vault directory may hold when no command runs (SQLite's -wal and -shm included: a
// WAL left by a failed checkpoint is replayed by the next open).
inline std::vector<std::string> unexpected_files(const std::filesystem::path& dir) {
  static const std::set<std::string> ok = {"vault.db",   "vault.db-wal", "vault.db-shm",     "master.key",
                                            "config.json", "vault.lock",   "audit-signing.key"};
  std::vector<std::string> extra;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (!ok.count(e.path().filename().string())) extra.push_back(e.path().filename().string());
  return extra;
}

}  // namespace fv::test
