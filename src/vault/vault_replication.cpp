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
  const ReplicatedMessage m{seq, patchset, subject_uid, mode};
  FV_ASSIGN_OR_RETURN(auto applied, apply_replicated_batch(stream, std::span(&m, 1), applied_at));
  return static_cast<bool>(applied.front());
}

Result<std::vector<bool>> Vault::apply_replicated_batch(const std::string& stream,
                                                        std::span<const ReplicatedMessage> messages,
                                                        const std::string& applied_at) {
  if (stream.empty()) return invalid_argument("a stream name is required");
  if (messages.empty()) return std::vector<bool>();
  int64_t prev = 0;
  bool deletes = false;
  for (const ReplicatedMessage& m : messages) {
    if (m.seq <= 0) return invalid_argument("a stream sequence starts at 1 (got " + std::to_string(m.seq) + ")");
    if (m.seq <= prev) return invalid_argument("the messages of a batch must be in stream order");
    prev = m.seq;
    // Parsed before the transaction: a malformed patchset fails without taking the write lock.
    FV_ASSIGN_OR_RETURN(PatchsetSummary summary, summarize_patchset(m.patchset));
    deletes = deletes || summary.total_deletes() > 0;
  }
  FV_ASSIGN_OR_RETURN(LocalTxn txn, LocalTxn::begin(db_));
  FV_ASSIGN_OR_RETURN(const int64_t at, catalog_->applied_seq(stream));
  std::vector<bool> applied(messages.size(), false);
  int64_t last = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ReplicatedMessage& m = messages[i];
    if (m.seq <= at) continue;  // a replay
    FV_RETURN_IF_ERROR(apply_patchset(db_, m.patchset, m.mode));
    if (!m.subject_uid.empty()) FV_RETURN_IF_ERROR(catalog_->record_subject_message(stream, m.seq, m.subject_uid));
    applied[i] = true;
    last = m.seq;
  }
  if (last == 0) return applied;  // all replays: nothing to commit (the transaction rolls back)
  // Deleted rows leave their bytes in the WAL until it is checkpointed and the file vacuumed:
  // flagged here, in the same transaction, the wipe happens even after a crash (open()).
  if (deletes) FV_RETURN_IF_ERROR(mark_wipe_pending());
  FV_RETURN_IF_ERROR(catalog_->set_applied_seq(stream, last, applied_at));
  FV_RETURN_IF_ERROR(txn.commit());
  return applied;
}

}  // namespace fv::vault
