// `facevault key create | list | revoke` end to end: the key is printed once, only a salted
// BLAKE2b hash reaches the database (byte scan of every vault file), revocation is final, and
// both are in the audit chain. No models needed.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/run.h"
#include "vault/api_keys.h"
#include "vault/vault_test_util.h"

namespace fv::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string all_bytes_of(const fs::path& dir) {
  std::string s;
  for (auto& f : fs::directory_iterator(dir)) {
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    s += ss.str();
  }
  return s;
}

TEST(KeyCli, CreateListRevoke) {
  unsetenv(vault::kMasterKeyEnv);
  TempDir tmp;
  const std::string v = (tmp.path() / "v").string();
  ASSERT_EQ(run_facevault({"init", v}).exit_code, 0);
  auto made = run_facevault({"key", "create", "--role", "investigator", "--purpose", "access-control", "--purpose",
                             "investigation", "--label", "Det. Ivan", "--vault", v, "--json"});
  ASSERT_EQ(made.exit_code, 0);
  auto j = json::parse(made.out);
  const std::string secret = j["key"], id = j["id"];
  EXPECT_EQ(secret.substr(0, 4), "fvk_");
  EXPECT_EQ(secret.substr(4, 12), id);
  EXPECT_EQ(j["role"], "investigator");
  EXPECT_EQ(j["purposes"], json::array({"access-control", "investigation"}));
  // Only the hash is stored: neither the key nor its secret part is in any file of the vault.
  const std::string bytes = all_bytes_of(v);
  EXPECT_EQ(bytes.find(secret.substr(17)), std::string::npos);
  EXPECT_EQ(bytes.find(secret.substr(17, 16)), std::string::npos);
  {
    auto db = vault::Db::open(fs::path(v) / "vault.db", false);
    ASSERT_TRUE(db.is_ok());
    auto k = vault::authenticate_api_key(*db, secret);
    ASSERT_TRUE(k.is_ok() && k->has_value());
    EXPECT_EQ((*k)->id, id);
    std::string wrong = secret;
    wrong.back() = wrong.back() == '0' ? '1' : '0';
    EXPECT_FALSE(vault::authenticate_api_key(*db, wrong)->has_value());
    EXPECT_FALSE(vault::authenticate_api_key(*db, secret.substr(0, 40))->has_value());
  }
  auto list = run_facevault({"key", "list", "--vault", v, "--json"});
  ASSERT_EQ(list.exit_code, 0);
  ASSERT_EQ(list.lines().size(), 1u);
  EXPECT_EQ(list.out.find(secret.substr(17)), std::string::npos);
  EXPECT_EQ(json::parse(list.lines()[0])["label"], "Det. Ivan");

  EXPECT_EQ(run_facevault({"key", "revoke", id, "--vault", v}).exit_code, 0);
  EXPECT_EQ(run_facevault({"key", "revoke", id, "--vault", v}).exit_code, 2) << "already revoked";
  EXPECT_EQ(run_facevault({"key", "revoke", "000000000000", "--vault", v}).exit_code, 2) << "unknown";
  {
    auto db = vault::Db::open(fs::path(v) / "vault.db", false);
    EXPECT_FALSE(vault::authenticate_api_key(*db, secret)->has_value()) << "a revoked key is refused";
  }
  EXPECT_EQ(run_facevault({"key", "create", "--role", "superuser", "--vault", v}).exit_code, 1);
  EXPECT_EQ(run_facevault({"key", "create", "--role", "admin", "--purpose", "bad purpose!", "--vault", v}).exit_code, 1);
  EXPECT_NE(run_facevault({"key", "create", "--vault", v}).exit_code, 0) << "--role is required";
  // Both changes are in the audit chain, which still verifies.
  auto audit = run_facevault({"audit", "show", "--vault", v, "--json"});
  EXPECT_NE(audit.out.find("api_key_create"), std::string::npos);
  EXPECT_NE(audit.out.find("api_key_revoke"), std::string::npos);
  EXPECT_EQ(run_facevault({"audit", "verify", "--vault", v}).exit_code, 0);
  // The master key's commands still work beside the API-key ones.
  EXPECT_EQ(run_facevault({"key", "generate"}).lines()[0].size(), 64u);
}

}  // namespace
}  // namespace fv::test
