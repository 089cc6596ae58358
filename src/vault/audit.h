// The audit chain: an append-only table where every entry's hash is
// BLAKE2b-256(prev_hash ‖ canonical entry) and the head (entry count and last hash) is kept in
// the vault's meta table. Entries record who did what, under which role, purpose and case, and
// which subjects were involved (by their opaque vault id) — never templates, images or scores.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vault/sqlite.h"

namespace fv::vault {

struct AuditEntry {
  int64_t seq = 0;  // position in the chain, 1-based
  std::string ts;   // UTC, ISO 8601 with milliseconds
  std::string actor, role, action;
  std::string outcome = "ok";  // ok | refused | denied | failed
  std::string purpose, case_ref;
  std::vector<std::string> subjects;  // subject uids (opaque), never external references
  nlohmann::json details = nlohmann::json::object();  // counts, ids, reasons: no biometric data
  std::string prev_hash, hash;  // 64 hex digits each

  // The bytes that are hashed: the fields above except seq and the hashes, as JSON with sorted
  // keys, no whitespace, non-ASCII escaped.
  std::string canonical() const;
  nlohmann::json to_json() const;
};

std::string genesis_hash();  // 64 zeros
std::string chain_hash(const std::string& prev_hash_hex, const std::string& canonical);

// Appends inside the caller's transaction; fills seq, prev_hash and hash. Returns the new hash.
Result<std::string> append_audit(Db& db, AuditEntry& e);

struct AuditVerifyReport {
  bool ok = true;
  int64_t entries = 0;
  std::string head;  // hash of the last entry
  int64_t first_bad_seq = 0;  // 0 when ok
  std::string problem;        // altered | removed | inserted | reordered | truncated
  std::string message;        // one line naming the entry
  nlohmann::json to_json() const;
};

Result<AuditVerifyReport> verify_audit(Db& db);

struct AuditQuery {
  std::optional<std::string> since;    // ts >= since
  std::optional<std::string> subject;  // subject uid
  std::optional<std::string> action;
  size_t limit = 0;                    // 0: all
};
Result<std::vector<AuditEntry>> read_audit(Db& db, const AuditQuery& q);

}  // namespace fv::vault
