#include "vault/api_keys.h"

#include <sodium.h>

#include <algorithm>
#include <set>

#include "vault/audit.h"
#include "vault/audit_checkpoint.h"
#include "vault/crypto.h"
#include "vault/timeutil.h"

namespace fv::vault {
namespace {

constexpr size_t kIdHex = 12;      // 6 bytes
constexpr size_t kSecretHex = 64;  // 32 bytes
constexpr const char* kPrefix = "fvk_";

bool is_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// BLAKE2b-256 of the secret, keyed with the row's random salt.
Bytes key_hash(const std::string& secret, std::span<const uint8_t> salt) {
  Bytes out(32);
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const uint8_t*>(secret.data()), secret.size(), salt.data(),
                     salt.size());
  return out;
}

bool known_role(const std::string& r) {
  return r == "admin" || r == "enroller" || r == "investigator" || r == "auditor" || r == "reviewer";
}

bool valid_purpose(const std::string& p) {
  if (p.empty() || p.size() > 64) return false;
  for (char c : p)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' && c != '/' && c != '-')
      return false;
  return true;
}

ApiKey row_key(const Stmt& s) {
  ApiKey k;
  k.id = s.text(0);
  k.role = s.text(1);
  auto p = nlohmann::json::parse(s.text(2), nullptr, false);
  if (p.is_array())
    for (auto& x : p)
      if (x.is_string()) k.purposes.push_back(x.get<std::string>());
  k.label = s.text(3);
  k.created_at = s.text(4);
  k.created_by = s.text(5);
  k.revoked_at = s.opt_text(6);
  return k;
}

Status audit_key(Db& db, const std::string& actor, const std::string& action, nlohmann::json details,
                 const AuditSigner* signer) {
  AuditEntry e;
  e.ts = utc_now();
  e.actor = actor;
  e.role = "admin";
  e.action = action;
  e.details = std::move(details);
  auto h = append_audit(db, e);
  if (!h.is_ok()) return h.status();
  return checkpoint_if_due(db, signer, e.seq);
}

}  // namespace

bool ApiKey::may_purpose(const std::string& p) const {
  return std::find(purposes.begin(), purposes.end(), p) != purposes.end();
}

nlohmann::json ApiKey::to_json() const {
  return {{"id", id},
          {"role", role},
          {"purposes", purposes},
          {"label", label},
          {"created_at", created_at},
          {"created_by", created_by},
          {"revoked_at", revoked_at ? nlohmann::json(*revoked_at) : nlohmann::json(nullptr)}};
}

// Not a numbered migration of vault.cpp's schema: the table serves the HTTP API, which a vault
// used only from the command line never needs. CREATE TABLE IF NOT EXISTS is idempotent and
// safe to run from every process.
Status ensure_api_key_table(Db& db) {
  return db.exec(
      "CREATE TABLE IF NOT EXISTS api_key("
      " id TEXT PRIMARY KEY,"          // public, 12 hex digits
      " role TEXT NOT NULL,"
      " purposes TEXT NOT NULL,"       // JSON array
      " label TEXT NOT NULL,"
      " salt BLOB NOT NULL,"           // 32 random bytes: the BLAKE2b key
      " hash BLOB NOT NULL,"           // BLAKE2b-256(secret; key = salt)
      " created_at TEXT NOT NULL,"
      " created_by TEXT NOT NULL,"
      " revoked_at TEXT)");
}

Result<NewApiKey> create_api_key(Db& db, const std::string& role, const std::vector<std::string>& purposes_in,
                                 const std::string& label, const std::string& actor, const AuditSigner* signer) {
  FV_RETURN_IF_ERROR(ensure_sodium());
  if (!known_role(role)) return invalid_argument("unknown role '" + role + "' (admin, enroller, investigator, auditor, reviewer)");
  std::set<std::string> uniq;
  for (auto& p : purposes_in) {
    if (!valid_purpose(p)) return invalid_argument("invalid purpose '" + p + "' (letters, digits, . _ : / -)");
    uniq.insert(p);
  }
  if (label.size() > 200) return invalid_argument("label longer than 200 characters");
  FV_RETURN_IF_ERROR(ensure_api_key_table(db));
  NewApiKey out;
  out.key.id = random_hex(kIdHex / 2);
  out.key.role = role;
  out.key.purposes.assign(uniq.begin(), uniq.end());
  out.key.label = label;
  out.key.created_at = utc_now();
  out.key.created_by = actor;
  std::string secret = random_hex(kSecretHex / 2);
  Bytes salt(32);
  randombytes_buf(salt.data(), salt.size());
  const Bytes hash = key_hash(secret, salt);
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
  FV_ASSIGN_OR_RETURN(Stmt ins, db.prepare(
      "INSERT INTO api_key(id, role, purposes, label, salt, hash, created_at, created_by) VALUES(?,?,?,?,?,?,?,?)"));
  ins.bind_all(out.key.id, role, nlohmann::json(out.key.purposes).dump(), label, salt, hash, out.key.created_at, actor);
  FV_RETURN_IF_ERROR(ins.run());
  FV_RETURN_IF_ERROR(audit_key(db, actor, "api_key_create",
                               {{"key", out.key.id}, {"role", role}, {"purposes", out.key.purposes}}, signer));
  FV_RETURN_IF_ERROR(txn.commit());
  out.secret = std::string(kPrefix) + out.key.id + "_" + secret;
  wipe(secret);
  return out;
}

Status revoke_api_key(Db& db, const std::string& id, const std::string& actor, const AuditSigner* signer) {
  FV_RETURN_IF_ERROR(ensure_api_key_table(db));
  FV_ASSIGN_OR_RETURN(Txn txn, Txn::begin(db));
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare("SELECT revoked_at FROM api_key WHERE id=?"));
  q.bind(1, id);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) return not_found("no API key '" + id + "'");
  if (!q.is_null(0)) return failed_precondition("API key " + id + " was already revoked on " + q.text(0));
  FV_ASSIGN_OR_RETURN(Stmt u, db.prepare("UPDATE api_key SET revoked_at=? WHERE id=?"));
  u.bind_all(utc_now(), id);
  FV_RETURN_IF_ERROR(u.run());
  FV_RETURN_IF_ERROR(audit_key(db, actor, "api_key_revoke", {{"key", id}}, signer));
  return txn.commit();
}

Result<std::vector<ApiKey>> list_api_keys(Db& db) {
  FV_RETURN_IF_ERROR(ensure_api_key_table(db));
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
      "SELECT id, role, purposes, label, created_at, created_by, revoked_at FROM api_key ORDER BY created_at, id"));
  std::vector<ApiKey> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back(row_key(q));
  }
  return out;
}

Result<std::optional<ApiKey>> authenticate_api_key(Db& db, const std::string& presented) {
  const size_t want = 4 + kIdHex + 1 + kSecretHex;
  if (presented.size() != want || presented.compare(0, 4, kPrefix) != 0 || presented[4 + kIdHex] != '_')
    return std::optional<ApiKey>();
  const std::string id = presented.substr(4, kIdHex);
  const std::string secret = presented.substr(4 + kIdHex + 1);
  if (!is_hex(id) || !is_hex(secret)) return std::optional<ApiKey>();
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
      "SELECT id, role, purposes, label, created_at, created_by, revoked_at, salt, hash FROM api_key WHERE id=?"));
  q.bind(1, id);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  // An unknown id takes the same path as a wrong secret: the secret is hashed (with a fixed
  // dummy salt) and compared with sodium_memcmp (constant time) against a dummy hash, so the
  // work after the lookup does not depend on whether the id exists, nor on how many bytes of
  // the hash match. The lookup itself is one primary-key probe either way. Every refusal is
  // the same nullopt. (security_test KeyComparison; ids are public anyway: they name keys in
  // the audit log.)
  static const Bytes kDummySalt(32, 0x5a), kDummyHash(32, 0);
  const Bytes salt = row ? q.blob(7) : kDummySalt, stored = row ? q.blob(8) : kDummyHash;
  const Bytes got = key_hash(secret, salt);
  const bool match = stored.size() == got.size() && sodium_memcmp(stored.data(), got.data(), got.size()) == 0;
  if (!row || !match) return std::optional<ApiKey>();
  ApiKey k = row_key(q);
  if (k.revoked_at) return std::optional<ApiKey>();
  return std::optional<ApiKey>(std::move(k));
}

}  // namespace fv::vault
