// Signed audit checkpoints: an Ed25519 key per vault signs the audit chain's head (its seq and
// hash) every N entries, when the vault is created or migrated ("start"), and on demand. The
// private key (a 32-byte seed) lives beside the master key, never in the database:
// DIR/audit-signing.key (hex, mode 0600) or $FACEVAULT_AUDIT_SIGNING_KEY when config.json says
// "audit_signing_key": "env". Someone who can write vault.db but not the key can recompute
// every hash of the chain, but cannot sign the new heads: `audit verify` then finds a checkpoint
// whose head is not the chain's hash at its seq, or whose signature does not verify, or a gap
// where a checkpoint was removed. A checkpoint copied elsewhere (`audit checkpoint --json`,
// checked with `audit verify --against FILE`) also catches a rewrite by someone who replaced
// the key and re-signed the whole checkpoint table (docs/security.md).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vault/audit.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"

namespace fv::vault {

inline constexpr const char* kAuditSigningKeyEnv = "FACEVAULT_AUDIT_SIGNING_KEY";
inline constexpr const char* kCheckpointFormat = "facevault-audit-checkpoint/1";

// The vault's signing key and the interval of automatic checkpoints.
class AuditSigner {
 public:
  AuditSigner(const SecretKey& seed, int64_t every);
  const std::string& public_key() const { return pk_hex_; }  // 64 hex digits
  int64_t every() const { return every_; }                   // 0: no automatic checkpoints
  std::string sign(const std::string& message) const;       // 128 hex digits

 private:
  SecretKey seed_;
  std::string pk_hex_;
  int64_t every_ = 0;
};

struct AuditCheckpoint {
  int64_t id = 0;       // row id (not signed)
  int64_t seq = 0;      // the audit entry whose hash is `head` (0: the empty chain)
  int64_t entries = 0;  // entries in the chain at that point (equals seq)
  std::string head;     // the chain's hash at seq (genesis_hash() for seq 0)
  int64_t every = 0;    // the automatic interval in force when it was made
  std::string kind;     // start | auto | manual
  std::string created_at, public_key, signature;

  // The signed text: one "name=value" line per field above except id, after a format line.
  std::string canonical() const;
  nlohmann::json to_json() const;
  // The JSON of to_json() (as printed by `audit checkpoint --json`); kInvalidArgument otherwise.
  static Result<AuditCheckpoint> from_json(const nlohmann::json& j);
};

// The signature verifies under the checkpoint's own public key.
bool checkpoint_signature_valid(const AuditCheckpoint& c);

// The checkpoint table (schema 7, vault.cpp); idempotent.
extern const char* const kCheckpointSchemaSql;

// Inside the caller's transaction: signs the chain's current head (from the meta table) and
// stores it; when a checkpoint of that seq exists already, returns it instead.
Result<AuditCheckpoint> checkpoint_audit_head(Db& db, const AuditSigner& signer, const std::string& kind);
// After an append inside the same transaction: a checkpoint when `seq` is a multiple of the
// interval (nothing without a signer or with interval 0).
Status checkpoint_if_due(Db& db, const AuditSigner* signer, int64_t seq);
Result<std::vector<AuditCheckpoint>> read_checkpoints(Db& db);
Result<int64_t> count_checkpoints(Db& db);  // 0 when the table does not exist

// Checks every checkpoint against the chain (hashes[s] = the chain's hash at seq s, hashes[0]
// the genesis hash; the chain itself verified): signed by `vault_public_key`, signature valid,
// head equal to the chain's hash at its seq, the first one the vault's "start" checkpoint, and
// no gap longer than the interval where one was removed. Fills rep (checkpoints, and on the
// first bad one ok=false, first_bad_checkpoint, first_bad_seq, problem, message).
Status verify_checkpoints(Db& db, const std::string& vault_public_key, int64_t every_now,
                          const std::vector<std::string>& hashes, AuditVerifyReport& rep);
// A checkpoint kept elsewhere: its signature, its key equal to the vault's, and the chain's hash
// at its seq equal to its head.
void verify_external_checkpoint(const AuditCheckpoint& c, const std::string& vault_public_key,
                                const std::vector<std::string>& hashes, AuditVerifyReport& rep);

}  // namespace fv::vault
