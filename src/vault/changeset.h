// Replication of vault transactions (cluster mode, docs/cluster.md): a writer runs a use case
// in a transaction with a ChangeCapture started on its connection, takes the transaction's row
// changes as an SQLite session *patchset*, rolls back, and publishes the patchset; every
// replica (the writer included) applies it in a transaction of its own (Vault::apply_replicated).
//
// A patchset carries inserts and updates with their new values and deletes with the primary
// key only, so an erasure's patchset holds none of the erased bytes. Ids, timestamps and nonces
// are in the rows it carries: applying it gives every replica the same rows.
//
// What is not replicated (local-only): the tables `replication_state` and `replication_message`
// (each replica's own progress through its streams, by stream sequence), `replication_pending_key`
// and `replication_erased_subject` (the subject keys a replica holds for messages to come, and
// the subjects whose erasure it applied), `replication_settled_withdrawal` and
// `replication_withdrawn_in_stream` (the withdrawals its node has settled in the meta vault's
// review cases, and those whose stream messages it erased) and, in table `meta`, the rows that each vault keeps for
// itself: the generation counters (triggers recompute them on each replica as it applies the
// rows they count), `wipe_pending` (each replica wipes its own files) and `created_at`. Every
// other table is captured, and must have a PRIMARY KEY (the session extension silently ignores
// a table without one: start() refuses instead). Tables are captured children first (by their
// foreign keys), so that applying a patchset deletes child rows before their parent's
// ON DELETE CASCADE could remove them under it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "vault/patchset_format.h"
#include "vault/sqlite.h"

struct sqlite3_session;

namespace fv::vault {

// Tables that are never captured nor applied.
const std::vector<std::string>& local_only_tables();
// Rows of `meta` (by key) that are replicated, and those each vault keeps for itself. A change
// of a meta key in neither list makes ChangeCapture::patchset() fail: a new key must be
// classified before it can be lost or leaked by replication.
const std::vector<std::string>& replicated_meta_keys();
const std::vector<std::string>& local_meta_keys();

// The tables of `db`'s main schema that a capture records, children before parents; fails
// naming any that has no PRIMARY KEY.
Result<std::vector<std::string>> captured_tables(Db& db);

// The append-only audit log's tables (audit, audit_checkpoint). Cluster mode records them
// apart (CaptureScope::kLog): their rows outlive a subject's erasure in the stream too, carried
// forward when the subject's messages are erased (docs/cluster.md, "Erasure").
const std::vector<std::string>& audit_log_tables();

// Which captured tables a ChangeCapture records.
enum class CaptureScope { kAll, kLog, kAllButLog };

// RAII over an sqlite3_session on one connection. Start it inside (or right before) the
// writer's transaction and take the patchset before the rollback: the session does not see a
// rollback, so one capture serves one transaction.
class ChangeCapture {
 public:
  static Result<ChangeCapture> start(Db& db, CaptureScope scope = CaptureScope::kAll);
  ChangeCapture(ChangeCapture&& o) noexcept;
  ChangeCapture& operator=(ChangeCapture&& o) noexcept;
  ChangeCapture(const ChangeCapture&) = delete;
  ChangeCapture& operator=(const ChangeCapture&) = delete;
  ~ChangeCapture();

  // The changes recorded so far, local-only meta rows left out. Fails when a table was created
  // after start() (its changes were not recorded) or a meta key is unclassified.
  Result<std::vector<uint8_t>> patchset();
  // No replicated change was recorded (true as well when patchset() would fail).
  bool empty();
  // The tables recorded, in the order of the patchset.
  const std::vector<std::string>& tables() const { return tables_; }

 private:
  ChangeCapture() = default;
  Db* db_ = nullptr;
  sqlite3_session* session_ = nullptr;
  std::vector<std::string> tables_;
  std::vector<std::string> captured_;  // every captured table at start(), recorded here or not
};

// Applies a patchset inside the caller's transaction. Any conflict (a row to update that is
// missing, an insert whose key exists, a constraint or foreign key that fails) aborts it with
// kFailedPrecondition naming the table and key: the replica diverged from the stream. A delete
// of a row that is already gone is skipped: that is how a replica rebuilt from a stream applies
// an erasure whose subject's earlier messages were erased from the stream.
// Nothing of it stays applied on failure. A patchset naming a local-only table or meta key is
// kInvalidArgument, one naming a table this vault lacks or has with other columns
// kFailedPrecondition (SQLite would skip those changes silently). Foreign keys are checked at
// the end of the patchset, not change by change; triggers fire as for any write.
// A delete of an AUTOINCREMENT table, applied or skipped, raises the table's sqlite_sequence to
// at least the deleted key: sqlite_sequence is not replicated, and a replica rebuilt from a
// stream whose erased messages are gone must still never give one of their ids again.
// kCarry applies the audit-log rows carried forward by an erasure: inserts into the log tables
// only (anything else is kInvalidArgument), and a row that is already there is kept as it is.
// kRestate applies a restatement (restate_updates) with the audit-log rows of the message it
// stands in for: inserts into the log tables, kept when there, and updates of other tables'
// rows, which must exist; anything else is kInvalidArgument.
enum class ApplyMode { kNormal, kCarry, kRestate };
Status apply_patchset(Db& db, std::span<const uint8_t> patchset, ApplyMode mode = ApplyMode::kNormal);

// What a message erased from a stream wrote that outlives it, restated for a replica rebuilt
// without it (ShardWriter::erase_messages_of_basis): each UPDATE of `changes` (what
// decode_patchset read of the message) with the values that the columns it sets have in `db`
// now, read by its key. A change whose row is gone is left out, and so is every change that is
// no UPDATE. Empty when nothing is left.
Result<std::vector<uint8_t>> restate_updates(Db& db, const std::vector<PatchChange>& changes);

// A whole row of `table` (by its integer key `id`), every column but the key restated as it is
// in `db` now: restate_updates for a change that can no longer be read. Empty when the row is gone.
Result<std::vector<uint8_t>> restate_row(Db& db, const std::string& table, int64_t id);

// The position of `column` among `table`'s columns in `db` (-1 when it has none), from the
// connection's cached schema facts.
Result<int> column_position(Db& db, const std::string& table, const std::string& column);

// What a patchset does, per table (in patchset order), and which faces and subjects it adds or
// removes: the cluster layer updates its in-memory index and wipes freed pages after applying.
struct PatchsetSummary {
  std::vector<std::pair<std::string, int64_t>> inserts, updates, deletes;  // table → count
  std::vector<int64_t> face_ids_inserted, face_ids_deleted;
  std::vector<int64_t> subject_ids_deleted;

  int64_t total_deletes() const;
  int64_t count(const std::string& table, int op) const;  // op: SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE
};
Result<PatchsetSummary> summarize_patchset(std::span<const uint8_t> patchset);

}  // namespace fv::vault
