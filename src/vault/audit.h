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

// JSON text that never throws on invalid UTF-8 (such bytes become U+FFFD): use it wherever
// text supplied by a user is dumped.
std::string dump_json(const nlohmann::json& j, int indent = -1, bool ensure_ascii = false);
// The stored (canonical) text of an entry's subjects and details columns.
std::string audit_subjects_text(const std::vector<std::string>& subjects);
std::string audit_details_text(const nlohmann::json& details);
// A non-negative integer kept as text in the meta table (0 when absent); kCorruptData when
// it is not one.
Result<int64_t> parse_meta_int(const std::optional<std::string>& text, const std::string& key);
std::string chain_hash(const std::string& prev_hash_hex, const std::string& canonical);

// Appends inside the caller's transaction; fills seq, prev_hash and hash. Returns the new hash.
Result<std::string> append_audit(Db& db, AuditEntry& e);

struct AuditVerifyReport {
  bool ok = true;
  int64_t entries = 0;
  std::string head;  // hash of the last entry
  int64_t first_bad_seq = 0;  // 0 when ok
  // altered | removed | inserted | reordered | truncated (the chain), checkpoint_signature |
  // checkpoint_head | checkpoint_key | checkpoint_missing (signed checkpoints,
  // audit_checkpoint.h), external_signature | external_key | external_head (--against)
  std::string problem;
  std::string message;        // one line naming the entry
  int64_t checkpoints = 0;           // signed checkpoints checked
  int64_t first_bad_checkpoint = 0;  // its row id, when a checkpoint is the problem
  nlohmann::json to_json() const;
};

// Checks every hash and link, and that each entry's subjects and details columns hold exactly
// the canonical text of their values (a re-encoded column counts as altered). `hashes`, when
// given, receives the chain's hash at each seq (index 0: the genesis hash) when the chain is intact.
Result<AuditVerifyReport> verify_audit(Db& db, std::vector<std::string>* hashes = nullptr);

struct AuditQuery {
  std::optional<std::string> since;    // ts >= since
  std::optional<std::string> subject;  // subject uid, matched exactly
  std::optional<std::string> action, outcome, actor;
  size_t limit = 0;                    // 0: all
  bool newest_first = false;           // descending
  // Order by (ts, seq) instead of seq: how the chains of several vaults merge into one log.
  bool by_time = false;
  // A page after the one read before: the entries that come after its last one in this order
  // (seq, or with by_time (after_ts, seq)). after_seq 0: from the start.
  int64_t after_seq = 0;
  std::string after_ts;
};
// Every filter is applied by SQLite, the limit too: a page of a long log costs its own rows.
Result<std::vector<AuditEntry>> read_audit(Db& db, const AuditQuery& q);
// How many entries pass q's filters (its limit and order aside), without reading them.
Result<int64_t> count_audit(Db& db, const AuditQuery& q);

}  // namespace fv::vault
