// A vault as a replica of a stream (cluster mode): applying one replicated transaction.
#include "vault/vault.h"

#include <cstdint>

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
  std::vector<std::vector<int64_t>> subjects_deleted(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const ReplicatedMessage& m = messages[i];
    if (m.seq <= 0) return invalid_argument("a stream sequence starts at 1 (got " + std::to_string(m.seq) + ")");
    if (m.seq <= prev) return invalid_argument("the messages of a batch must be in stream order");
    prev = m.seq;
    // Parsed before the transaction: a malformed patchset fails without taking the write lock.
    FV_ASSIGN_OR_RETURN(PatchsetSummary summary, summarize_patchset(m.patchset));
    deletes = deletes || summary.total_deletes() > 0;
    subjects_deleted[i] = std::move(summary.subject_ids_deleted);
  }
  FV_ASSIGN_OR_RETURN(LocalTxn txn, LocalTxn::begin(db_));
  FV_ASSIGN_OR_RETURN(const int64_t at, catalog_->applied_seq(stream));
  std::vector<bool> applied(messages.size(), false);
  int64_t last = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ReplicatedMessage& m = messages[i];
    if (m.seq <= at) continue;  // a replay
    FV_ASSIGN_OR_RETURN(const auto erased_uids, uids_of_subjects(subjects_deleted[i]));
    FV_RETURN_IF_ERROR(apply_patchset(db_, m.patchset, m.mode));
    if (!m.subject_uid.empty()) FV_RETURN_IF_ERROR(catalog_->record_subject_message(stream, m.seq, m.subject_uid));
    FV_RETURN_IF_ERROR(record_erased_subjects(stream, m.seq, erased_uids));
    applied[i] = true;
    last = m.seq;
  }
  if (last == 0) return applied;  // all replays: nothing to commit (the transaction rolls back)
  // A held key is done with once the one message that could create its subject is passed:
  // applied (the subject_key row holds it now) or taken by another writer's message. No wipe
  // for these: the key is a live subject's, or one no message was sealed under (an erased
  // subject's held key went with the erasure's deletes above, which do call for a wipe).
  {
    FV_ASSIGN_OR_RETURN(Stmt gc, db_.prepare("DELETE FROM replication_pending_key WHERE stream = ? AND expected_seq < ?"));
    gc.bind_all(stream, last);
    FV_RETURN_IF_ERROR(gc.run());
  }
  // Deleted rows leave their bytes in the WAL until it is checkpointed and the file vacuumed:
  // flagged here, in the same transaction, the wipe happens even after a crash (open()).
  if (deletes) FV_RETURN_IF_ERROR(mark_wipe_pending());
  FV_RETURN_IF_ERROR(catalog_->set_applied_seq(stream, last, applied_at));
  FV_RETURN_IF_ERROR(txn.commit());
  return applied;
}

namespace {

std::string pending_key_ad(const std::string& stream, const std::string& uid) {
  return "facevault/replication/pending-key/v1|" + stream + "|" + uid;
}

}  // namespace

Result<std::vector<std::string>> Vault::uids_of_subjects(const std::vector<int64_t>& subject_ids) {
  std::vector<std::string> out;
  if (subject_ids.empty()) return out;
  FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT uid FROM subject WHERE id = ?"));
  for (const int64_t id : subject_ids) {
    FV_RETURN_IF_ERROR(q.reset());
    q.bind(1, id);
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (row) out.push_back(q.text(0));  // a subject this replica never received has no uid here
  }
  return out;
}

Status Vault::record_erased_subjects(const std::string& stream, int64_t seq, const std::vector<std::string>& uids) {
  if (uids.empty()) return Status::ok();
  FV_ASSIGN_OR_RETURN(Stmt tomb, db_.prepare("INSERT OR IGNORE INTO replication_erased_subject(uid, stream, seq) VALUES(?,?,?)"));
  FV_ASSIGN_OR_RETURN(Stmt held, db_.prepare("DELETE FROM replication_pending_key WHERE uid = ?"));
  for (const std::string& uid : uids) {
    FV_RETURN_IF_ERROR(tomb.reset());
    tomb.bind_all(uid, stream, seq);
    FV_RETURN_IF_ERROR(tomb.run());
    FV_RETURN_IF_ERROR(held.reset());
    held.bind(1, uid);
    FV_RETURN_IF_ERROR(held.run());
  }
  return Status::ok();
}

Status Vault::hold_subject_key(const std::string& stream, const std::string& uid, const SecretKey& key,
                               int64_t expected_seq) {
  if (stream.empty() || uid.empty() || expected_seq < 0)
    return invalid_argument("a held subject key needs its stream, its subject's uid and a stream sequence");
  FV_ASSIGN_OR_RETURN(LocalTxn txn, LocalTxn::begin(db_));
  FV_ASSIGN_OR_RETURN(const int64_t at, catalog_->applied_seq(stream));
  // Past the one sequence its message could take: that message was applied here (its
  // subject_key row holds the key) or another writer's took the sequence (this one is refused).
  if (at > expected_seq) return Status::ok();
  // OR IGNORE: a push is sent again until enough replicas answer; the same key stays one row.
  FV_ASSIGN_OR_RETURN(Stmt put, db_.prepare("INSERT OR IGNORE INTO replication_pending_key(uid, key_id, stream, "
                                            "expected_seq, wrapped) VALUES(?,?,?,?,?)"));
  put.bind_all(uid, key.id(), stream, expected_seq, wrap_key(master_, key, pending_key_ad(stream, uid)));
  FV_RETURN_IF_ERROR(put.run());
  return txn.commit();
}

std::string basis_key_name(const std::string& subject_uid, int64_t basis_id) {
  return subject_uid + "/" + std::to_string(basis_id);
}

std::optional<std::pair<std::string, int64_t>> parse_basis_key_name(const std::string& name) {
  const size_t slash = name.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= name.size()) return std::nullopt;
  int64_t id = 0;
  for (size_t i = slash + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || id > (INT64_MAX - 9) / 10) return std::nullopt;
    id = id * 10 + (name[i] - '0');
  }
  return std::make_pair(name.substr(0, slash), id);
}

Result<std::optional<SecretKey>> Vault::replicated_key(const std::string& uid) {
  if (const auto basis = parse_basis_key_name(uid)) {
    FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT k.wrapped FROM basis_key k JOIN lawful_basis b ON b.id = k.basis_id "
                                            "JOIN subject s ON s.id = b.subject_id WHERE k.basis_id = ? AND s.uid = ?"));
    q.bind_all(basis->second, basis->first);
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (row) {
      FV_ASSIGN_OR_RETURN(SecretKey k, unwrap_basis_key(master_, basis->second, q.blob(0)));
      return std::optional<SecretKey>(std::move(k));
    }
  }
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT k.subject_id, k.wrapped FROM subject s JOIN subject_key k ON "
                                            "k.subject_id = s.id WHERE s.uid = ?"));
    q.bind(1, uid);
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (row) {
      FV_ASSIGN_OR_RETURN(SecretKey k, unwrap_subject_key(master_, q.i64(0), q.blob(1)));
      return std::optional<SecretKey>(std::move(k));
    }
  }
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT probe_key FROM review_case WHERE uid = ? AND probe_key IS NOT NULL"));
    q.bind(1, uid);
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (row) {
      FV_ASSIGN_OR_RETURN(SecretKey k, unwrap_case_key(master_, uid, q.blob(0)));
      return std::optional<SecretKey>(std::move(k));
    }
  }
  return std::optional<SecretKey>();
}

Result<std::vector<SecretKey>> Vault::held_subject_keys(const std::string& uid) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT stream, wrapped FROM replication_pending_key WHERE uid = ? "
                                          "ORDER BY expected_seq DESC"));
  q.bind(1, uid);
  std::vector<SecretKey> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (!row) return out;
    auto k = unwrap_key(master_, q.blob(1), pending_key_ad(q.text(0), uid));
    if (!k.is_ok()) return corrupt_data("the held key of subject " + uid + " does not unwrap: " + k.status().message());
    out.push_back(std::move(*k));
  }
}

Status Vault::rewrap_held_subject_keys(const SecretKey& next) {
  struct Rewrapped {
    std::string uid, key_id;
    Bytes wrapped;
  };
  std::vector<Rewrapped> rewrapped;
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT uid, key_id, stream, wrapped FROM replication_pending_key"));
    for (;;) {
      FV_ASSIGN_OR_RETURN(const bool row, q.step());
      if (!row) break;
      const std::string uid = q.text(0), stream = q.text(2);
      auto k = unwrap_key(master_, q.blob(3), pending_key_ad(stream, uid));
      if (!k.is_ok()) return corrupt_data("the held key of subject " + uid + " does not unwrap: " + k.status().message());
      rewrapped.push_back({uid, q.text(1), wrap_key(next, *k, pending_key_ad(stream, uid))});
    }
  }
  FV_ASSIGN_OR_RETURN(Stmt upd, db_.prepare("UPDATE replication_pending_key SET wrapped = ? WHERE uid = ? AND key_id = ?"));
  for (const auto& [uid, key_id, wrapped] : rewrapped) {
    FV_RETURN_IF_ERROR(upd.reset());
    upd.bind_all(wrapped, uid, key_id);
    FV_RETURN_IF_ERROR(upd.run());
  }
  return Status::ok();
}

Result<bool> Vault::key_destroyed_by_stream(const std::string& uid) {
  if (const auto basis = parse_basis_key_name(uid)) {
    FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT 1 FROM replication_erased_subject WHERE uid = ?1 UNION ALL "
                                            "SELECT 1 FROM lawful_basis b JOIN subject s ON s.id = b.subject_id "
                                            "WHERE b.id = ?2 AND s.uid = ?1 AND (b.withdrawn_at IS NOT NULL OR EXISTS "
                                            "(SELECT 1 FROM lapsed_basis_erasure l WHERE l.basis_id = b.id))"));
    q.bind_all(basis->first, basis->second);
    return q.step();
  }
  FV_ASSIGN_OR_RETURN(Stmt q, db_.prepare("SELECT 1 FROM replication_erased_subject WHERE uid = ?1 UNION ALL "
                                          "SELECT 1 FROM review_case WHERE uid = ?1 AND probe_key IS NULL"));
  q.bind(1, uid);
  return q.step();
}

}  // namespace fv::vault
