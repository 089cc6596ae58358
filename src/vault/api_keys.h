// API keys for the HTTP server, stored in the vault's database: one row per key with its role,
// the purposes it may search for, and a keyed BLAKE2b-256 hash of the secret (never the secret).
//
// A key as handed out is "fvk_<id>_<secret>": <id> (12 hex digits) is public and names the key
// in the audit log ("key:<id>"); <secret> is 32 random bytes as hex. Keys are random, so a fast
// keyed hash is as strong as a slow password hash here: the row's random salt is the BLAKE2b
// key, and the comparison is constant-time (sodium_memcmp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vault/sqlite.h"

namespace fv::vault {
class AuditSigner;
}

namespace fv::vault {

struct ApiKey {
  std::string id;                     // 12 hex digits, public
  std::string role;                   // admin | enroller | investigator | auditor
  std::vector<std::string> purposes;  // purposes this key may search for; empty: none
  std::string label;                  // free text: who holds it
  std::string created_at, created_by;
  std::optional<std::string> revoked_at;
  bool may_purpose(const std::string& p) const;
  nlohmann::json to_json() const;     // no secret, no hash
};

struct NewApiKey {
  ApiKey key;
  std::string secret;  // the full "fvk_<id>_<secret>" string: shown once, never stored
};

// Creates the api_key table if the vault does not have it yet (idempotent).
Status ensure_api_key_table(Db& db);

// Creates a key and appends an audit entry (actor, role "admin") in one transaction.
Result<NewApiKey> create_api_key(Db& db, const std::string& role, const std::vector<std::string>& purposes,
                                 const std::string& label, const std::string& actor,
                                 const AuditSigner* signer = nullptr);
// Marks a key revoked (kept for the audit trail); audited. not_found for an unknown id.
// `signer`: the vault's audit signing key, for the checkpoint due at the entry (audit_checkpoint.h).
Status revoke_api_key(Db& db, const std::string& id, const std::string& actor, const AuditSigner* signer = nullptr);
Result<std::vector<ApiKey>> list_api_keys(Db& db);

// The active key a presented "fvk_…" string belongs to, or nullopt (unknown, malformed,
// revoked or wrong secret: the caller cannot tell which, on purpose).
Result<std::optional<ApiKey>> authenticate_api_key(Db& db, const std::string& presented);

}  // namespace fv::vault
