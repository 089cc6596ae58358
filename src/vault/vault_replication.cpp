// A vault as a replica of a stream (cluster mode): applying one replicated transaction.
#include "vault/vault.h"

namespace fv::vault {
namespace {

// BEGIN IMMEDIATE … COMMIT on the connection itself, never through a commit interceptor
// (sqlite.h): applying a message is the local end of replication, not a write to replicate.
class LocalTxn {
 public:
  static Result<LocalTxn> begin(Db& db) {
    Status st = db.exec("BEGIN IMMEDIATE");
    // Another connection held the write lock past the busy timeout (a long VACUUM, say): the
    // replica waits and applies the same message again, it has not diverged.
    if (!st.is_ok() && (sqlite3_extended_errcode(db.handle()) & 0xff) == SQLITE_BUSY)
      return unavailable("the vault stayed locked by another connection: " + st.message());
    FV_RETURN_IF_ERROR(st);
    return LocalTxn(db);
  }
  LocalTxn(LocalTxn&& o) noexcept : db_(o.db_), done_(o.done_) { o.done_ = true; }
  LocalTxn(const LocalTxn&) = delete;
  ~LocalTxn() {
    if (!done_) (void)db_->exec("ROLLBACK");
  }
  Status commit() {
    done_ = true;
    Status st = db_->exec("COMMIT");
    if (!st.is_ok()) (void)db_->exec("ROLLBACK");
    return st;
  }

 private:
  explicit LocalTxn(Db& db) : db_(&db) {}
  Db* db_;
  bool done_ = false;
};

}  // namespace

Result<bool> Vault::apply_replicated(const std::string& stream, int64_t seq, std::span<const uint8_t> patchset,
                                     const std::string& applied_at, const std::string& subject_uid, ApplyMode mode) {
  if (stream.empty()) return invalid_argument("a stream name is required");
  if (seq <= 0) return invalid_argument("a stream sequence starts at 1 (got " + std::to_string(seq) + ")");
  // Parsed before the transaction: a malformed patchset fails without taking the write lock.
  FV_ASSIGN_OR_RETURN(PatchsetSummary summary, summarize_patchset(patchset));
  FV_ASSIGN_OR_RETURN(LocalTxn txn, LocalTxn::begin(db_));
  FV_ASSIGN_OR_RETURN(int64_t at, catalog_->applied_seq(stream));
  if (seq <= at) return false;
  FV_RETURN_IF_ERROR(apply_patchset(db_, patchset, mode));
  // Deleted rows leave their bytes in the WAL until it is checkpointed and the file vacuumed:
  // flagged here, in the same transaction, the wipe happens even after a crash (open()).
  if (summary.total_deletes() > 0) FV_RETURN_IF_ERROR(mark_wipe_pending());
  FV_RETURN_IF_ERROR(catalog_->set_applied_seq(stream, seq, applied_at));
  if (!subject_uid.empty()) FV_RETURN_IF_ERROR(catalog_->record_subject_message(stream, seq, subject_uid));
  FV_RETURN_IF_ERROR(txn.commit());
  return true;
}

}  // namespace fv::vault
