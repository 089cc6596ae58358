// A wrong master key: FACEVAULT_MASTER_KEY set to another valid key or to malformed text; the
// key file replaced by another key, truncated, emptied, removed or readable by others; an
// env-mode vault without its key; a malformed FACEVAULT_NEW_MASTER_KEY for a rotation. Every
// vault command (run through the CLI) must exit non-zero with one "facevault: …" line naming
// the problem, and change no byte of any file in the vault directory (sha256 and mode of
// every file before and after; no file added or removed).
//
// Mutation tried (test must be able to fail): read_key_file without its mode check (a key
// file readable by others accepted). Result: KeyFileVault… failed for "key file readable by
// others": the commands ran instead of refusing (exit 0 and no "readable by others" for 11
// of 13; erase and basis withdraw failed only because an earlier command had erased the
// subject), and "changed the vault: vault.db differs" 13 times; reverted.
#include "fault/fault_util.h"
#include "support/paths.h"

namespace fs = std::filesystem;

namespace fv::test {
namespace {

struct KeyCase {
  std::string name;
  std::map<std::string, std::string> env;          // extra environment
  std::function<void(const fs::path& dir)> damage;  // what is done to the key file ({} : nothing)
  std::string expect;                               // in the message
};

// Commands that open the vault (no photo needed: the refusal comes before any model is loaded
// or after; the photo is one the vault tests use).
std::vector<std::vector<std::string>> commands(const fs::path& v) {
  const fs::path img = data_dir() / "samples" / "face-api-js" / "images" / "raj" / "raj1.png";
  const std::string d = v.string();
  std::vector<std::vector<std::string>> with_photo;
  if (models_present() && fs::exists(img))  // else they would fail for want of models first
    with_photo = {{"enroll", "--subject", "raj", "--basis", "1", img.string(), "--vault", d},
                  {"search", img.string(), "--purpose", "access-control", "--case", "c", "--vault", d}};
  std::vector<std::vector<std::string>> cmds = {
      {"basis", "add", "--subject", "leonard", "--kind", "consent", "--reference", "f", "--purpose", "access-control", "--vault", d},
      {"erase", "raj", "--vault", d},
      {"basis", "withdraw", "1", "--vault", d},
      {"export", "raj", "--vault", d},
      {"expire", "--vault", d},
      {"optout", "check", "--vault", d},
      {"audit", "verify", "--vault", d},
      {"audit", "show", "--vault", d},
      {"key", "rotate", "--vault", d},
      {"key", "create", "--role", "admin", "--vault", d},
      {"key", "list", "--vault", d},
  };
  cmds.insert(cmds.end(), with_photo.begin(), with_photo.end());
  return cmds;
}

void write_key(const fs::path& p, const std::string& text, fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
  std::error_code ec;
  fs::remove(p, ec);
  std::ofstream(p, std::ios::binary) << text;
  fs::permissions(p, mode, fs::perm_options::replace);
}

class WrongMasterKey : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    unsetenv(vault::kNewMasterKeyEnv);
  }

  // The same, with its master key only in FACEVAULT_MASTER_KEY (no key file); returns the key.
  static std::string make_env_mode_vault(const fs::path& v) {
    const std::string key = vault::SecretKey::random().to_hex();
    setenv(vault::kMasterKeyEnv, key.c_str(), 1);
    make_vault(v);
    unsetenv(vault::kMasterKeyEnv);
    return key;
  }

  // A vault with one enrolled subject (synthetic template: no model needed) and a kept image.
  static void make_vault(const fs::path& v) {
    ASSERT_TRUE(vault::Vault::init(v).is_ok());
    auto svc = open_service(v);
    ASSERT_TRUE(svc);
    auto b = svc->add_basis(kAdmin, {"raj", service::BasisKind::kConsent, "form", {"access-control"}, std::nullopt});
    ASSERT_TRUE(b.is_ok());
    std::mt19937 rng(3);
    auto kept = enroll_kept_photo(*svc, kAdmin, {"raj", b->basis_id}, std::vector<uint8_t>(2000, 7), random_template(rng), "bin");
    ASSERT_TRUE(kept.is_ok()) << kept.status().to_string();
  }

  void check_cases(const fs::path& v, const std::vector<KeyCase>& cases) {
    const fs::path scratch = v.parent_path();
    const fs::path pristine = scratch / "pristine";
    copy_tree(v, pristine);
    for (const auto& kc : cases) {
      copy_tree(pristine, v);
      if (kc.damage) kc.damage(v);
      const auto before = hash_tree(v);
      for (const auto& args : commands(v)) {
        const std::string what = kc.name + ": facevault " + args[0] + (args.size() > 1 && args[1][0] != '-' ? " " + args[1] : "");
        SCOPED_TRACE(what);
        auto p = run_cli(args, kc.env, scratch);
        expect_clean_exit(p, what);
        EXPECT_NE(p.code(), 0) << p.describe();
        EXPECT_NE(p.err.find(kc.expect), std::string::npos) << "the message should say '" << kc.expect << "': " << p.err;
        const auto after = hash_tree(v);
        for (auto& [f, h] : before) {
          auto it = after.find(f);
          EXPECT_TRUE(it != after.end() && it->second == h) << "changed the vault: " << f << (it == after.end() ? " removed" : " differs");
        }
        for (auto& [f, h] : after) EXPECT_TRUE(before.count(f)) << "changed the vault: " << f << " added";
      }
    }
  }
};

TEST_F(WrongMasterKey, KeyFileVaultRefusesEveryWrongKeyAndChangesNothing) {
  TempDir tmp;
  const fs::path v = tmp.path() / "v";
  make_vault(v);
  const std::string other = vault::SecretKey::random().to_hex();
  const std::string good = slurp(v / "master.key");
  std::vector<KeyCase> cases = {
      {"another valid key in FACEVAULT_MASTER_KEY", {{"FACEVAULT_MASTER_KEY", other}}, {}, "wrong master key"},
      {"FACEVAULT_MASTER_KEY not hex", {{"FACEVAULT_MASTER_KEY", "not-a-key"}}, {}, "FACEVAULT_MASTER_KEY is malformed"},
      {"FACEVAULT_MASTER_KEY 63 hex digits", {{"FACEVAULT_MASTER_KEY", other.substr(1)}}, {}, "FACEVAULT_MASTER_KEY is malformed"},
      {"FACEVAULT_MASTER_KEY 66 hex digits", {{"FACEVAULT_MASTER_KEY", other + "ab"}}, {}, "FACEVAULT_MASTER_KEY is malformed"},
      {"key file replaced by another key", {}, [&](const fs::path& d) { write_key(d / "master.key", other + "\n"); }, "wrong master key"},
      {"key file truncated", {}, [&](const fs::path& d) { write_key(d / "master.key", good.substr(0, 20)); }, "malformed"},
      {"key file empty", {}, [&](const fs::path& d) { write_key(d / "master.key", ""); }, "malformed"},
      {"key file with a flipped digit", {}, [&](const fs::path& d) {
         std::string k = good;
         k[5] = k[5] == '0' ? '1' : '0';
         write_key(d / "master.key", k);
       }, "wrong master key"},
      {"key file readable by others", {}, [&](const fs::path& d) {
         fs::permissions(d / "master.key", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read,
                         fs::perm_options::replace);
       }, "readable by others"},
      {"key file missing", {}, [&](const fs::path& d) { fs::remove(d / "master.key"); }, "no master key"},
      {"key file is a directory", {}, [&](const fs::path& d) {
         fs::remove(d / "master.key");
         fs::create_directory(d / "master.key");
         fs::permissions(d / "master.key", fs::perms::owner_all, fs::perm_options::replace);
       }, "master key"},
  };
  check_cases(v, cases);
}

TEST_F(WrongMasterKey, EnvKeyVaultRefusesAMissingOrWrongKeyAndChangesNothing) {
  TempDir tmp;
  const fs::path v = tmp.path() / "v";
  const std::string key = make_env_mode_vault(v);
  ASSERT_FALSE(fs::exists(v / "master.key"));
  std::vector<KeyCase> cases = {
      {"env vault without FACEVAULT_MASTER_KEY", {}, {}, "set FACEVAULT_MASTER_KEY"},
      {"env vault, another key", {{"FACEVAULT_MASTER_KEY", vault::SecretKey::random().to_hex()}}, {}, "wrong master key"},
      {"env vault, malformed key", {{"FACEVAULT_MASTER_KEY", key.substr(0, 40)}}, {}, "FACEVAULT_MASTER_KEY is malformed"},
      // A key file planted in an env-mode vault is not used in place of the missing variable.
      {"env vault, planted key file", {}, [&](const fs::path& d) { write_key(d / "master.key", key + "\n"); }, "set FACEVAULT_MASTER_KEY"},
  };
  check_cases(v, cases);
}

// key rotate with the right key but a malformed or missing new key (env mode): refused before
// anything is written.
TEST_F(WrongMasterKey, RotationWithAMalformedNewKeyChangesNothing) {
  TempDir tmp;
  const fs::path v = tmp.path() / "v";
  const std::string key = make_env_mode_vault(v);
  const auto before = hash_tree(v);
  for (const auto& [nk, expect] : std::vector<std::pair<std::string, std::string>>{
           {"", "FACEVAULT_NEW_MASTER_KEY"}, {"zz", "FACEVAULT_NEW_MASTER_KEY is malformed"}, {key, "the new master key is the current one"}}) {
    SCOPED_TRACE("new key '" + nk + "'");
    auto p = run_cli({"key", "rotate", "--vault", v.string()}, {{"FACEVAULT_MASTER_KEY", key}, {"FACEVAULT_NEW_MASTER_KEY", nk}},
                     tmp.path());
    expect_clean_exit(p, "key rotate");
    EXPECT_NE(p.code(), 0);
    EXPECT_NE(p.err.find(expect), std::string::npos) << p.err;
    EXPECT_EQ(hash_tree(v), before);
  }
}

}  // namespace
}  // namespace fv::test
