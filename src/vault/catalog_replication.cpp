// The catalog's replication state: per stream, the last sequence applied to this vault, written
// in the transaction that applied it (so a crash never leaves a message applied but unrecorded,
// or recorded but unapplied), and which messages were sealed under which subject's key. Local
// to each vault: never captured (changeset.h).
#include "vault/catalog.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>

#include "vault/changeset.h"
#include "vault/patchset_format.h"

namespace fv::vault {

Result<int64_t> Catalog::applied_seq(const std::string& stream) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT applied_seq FROM replication_state WHERE stream=?"));
  q.bind(1, stream);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  return row ? q.i64(0) : int64_t{0};
}

Status Catalog::set_applied_seq(const std::string& stream, int64_t seq, const std::string& applied_at) {
  if (stream.empty()) return invalid_argument("a stream name is required");
  if (seq <= 0) return invalid_argument("a stream sequence starts at 1 (got " + std::to_string(seq) + ")");
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "INSERT INTO replication_state(stream, applied_seq, applied_at) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(stream) DO UPDATE SET applied_seq=excluded.applied_seq, applied_at=excluded.applied_at "
      "WHERE excluded.applied_seq > replication_state.applied_seq"));
  s.bind_all(stream, seq, applied_at);
  FV_RETURN_IF_ERROR(s.run());
  if (db_->changes() == 0) {
    FV_ASSIGN_OR_RETURN(int64_t at, applied_seq(stream));
    return failed_precondition("stream " + stream + " is already at sequence " + std::to_string(at) +
                               " in this vault: sequence " + std::to_string(seq) + " would go back");
  }
  return Status::ok();
}

Result<std::vector<Catalog::ReplicationStateRow>> Catalog::replication_state() {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT stream, applied_seq, applied_at FROM replication_state ORDER BY stream"));
  std::vector<ReplicationStateRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back({q.text(0), q.i64(1), q.text(2)});
  }
  return out;
}

Status Catalog::record_subject_message(const std::string& stream, int64_t seq, const std::string& subject_uid) {
  if (subject_uid.empty()) return invalid_argument("a subject uid is required");
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "INSERT INTO replication_message(stream, seq, subject_uid) VALUES(?,?,?)"));
  s.bind_all(stream, seq, subject_uid);
  return s.run();
}

Result<std::vector<int64_t>> Catalog::subject_messages(const std::string& stream, const std::string& subject_uid) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT seq FROM replication_message WHERE subject_uid=? AND stream=? ORDER BY seq"));
  q.bind_all(subject_uid, stream);
  std::vector<int64_t> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back(q.i64(0));
  }
  return out;
}

Status Catalog::forget_subject_messages(const std::string& stream, const std::string& subject_uid) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare("DELETE FROM replication_message WHERE subject_uid=? AND stream=?"));
  s.bind_all(subject_uid, stream);
  return s.run();
}

Result<std::vector<std::string>> Catalog::erased_subjects_with_messages(const std::string& stream) {
  // One pass over replication_message_by_subject (uid first), one lookup of subject.uid per uid.
  // An applied message of a subject always has its subject row (the writer seals a message
  // under a subject's key only when the row exists), so only an erasure removes it.
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT u FROM (SELECT DISTINCT subject_uid AS u FROM replication_message WHERE stream=?) "
      "WHERE NOT EXISTS (SELECT 1 FROM subject WHERE uid = u) ORDER BY u"));
  q.bind(1, stream);
  return q.texts(0);
}

Result<std::vector<Catalog::UnsettledErasure>> Catalog::erasures_unsettled_in_meta(const std::string& stream) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT e.uid, e.seq FROM replication_erased_subject e WHERE e.stream=? "
      "AND NOT EXISTS (SELECT 1 FROM replication_settled_erasure s WHERE s.uid = e.uid) ORDER BY e.seq, e.uid"));
  q.bind(1, stream);
  std::vector<UnsettledErasure> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back({q.text(0), q.i64(1)});
  }
  return out;
}

Status Catalog::mark_erasure_settled_in_meta(const std::string& subject_uid) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare("INSERT OR IGNORE INTO replication_settled_erasure(uid) VALUES(?)"));
  s.bind(1, subject_uid);
  return s.run();
}

namespace {

// The bases withdrawn, or erased after they lapsed, while their subject stays that local-only
// table `done` (keyed by basis_id) does not list yet.
Result<std::vector<Catalog::UnsettledWithdrawal>> withdrawals_not_in(Db& db, const std::string& done) {
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
      "SELECT b.id, s.uid, b.withdrawn_at IS NULL FROM lawful_basis b JOIN subject s ON s.id = b.subject_id WHERE (b.withdrawn_at IS NOT NULL "
      "OR EXISTS (SELECT 1 FROM lapsed_basis_erasure l WHERE l.basis_id = b.id)) AND NOT EXISTS (SELECT 1 FROM " + done + " w WHERE w.basis_id = b.id) ORDER BY b.id"));
  std::vector<Catalog::UnsettledWithdrawal> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back({q.i64(0), q.text(1), q.i64(2) != 0});
  }
  return out;
}

}  // namespace

Result<std::vector<Catalog::UnsettledWithdrawal>> Catalog::withdrawals_unsettled_in_meta() {
  return withdrawals_not_in(*db_, "replication_settled_withdrawal");
}

Status Catalog::mark_withdrawal_settled_in_meta(int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare("INSERT OR IGNORE INTO replication_settled_withdrawal(basis_id) VALUES(?)"));
  s.bind(1, basis_id);
  return s.run();
}

Result<std::vector<Catalog::UnsettledWithdrawal>> Catalog::withdrawals_unerased_in_stream() {
  return withdrawals_not_in(*db_, "replication_withdrawn_in_stream");
}

Status Catalog::mark_withdrawal_erased_in_stream(int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare("INSERT OR IGNORE INTO replication_withdrawn_in_stream(basis_id) VALUES(?)"));
  s.bind(1, basis_id);
  return s.run();
}

Status Catalog::forget_subject_message(const std::string& stream, int64_t seq) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare("DELETE FROM replication_message WHERE stream=? AND seq=?"));
  s.bind_all(stream, seq);
  return s.run();
}

namespace {

std::optional<int64_t> integer_at(const PatchChange& ch, int col) {
  if (col < 0 || static_cast<size_t>(col) >= ch.fields.size()) return std::nullopt;
  const PatchField& f = ch.fields[static_cast<size_t>(col)];
  if (f.type != PatchField::Type::kInteger) return std::nullopt;
  return f.integer;
}

// Per change that is no update: the lawful basis whose rows it inserts (a face, its source
// image, its reference crop), or nullopt when it is something else.
Result<std::vector<std::optional<int64_t>>> bases_inserted(Db& db, const std::vector<PatchChange>& changes) {
  FV_ASSIGN_OR_RETURN(const int face_basis, column_position(db, "face", "basis_id"));
  FV_ASSIGN_OR_RETURN(const int image_basis, column_position(db, "source_image", "basis_id"));
  FV_ASSIGN_OR_RETURN(const int crop_face, column_position(db, "reference_crop", "face_id"));
  FV_ASSIGN_OR_RETURN(const int face_id, column_position(db, "face", "id"));
  // A patchset lists children first (a face's reference crop before the face): the faces'
  // bases are collected in a pass of their own.
  std::map<int64_t, int64_t> face_bases;
  for (const PatchChange& ch : changes)
    if (ch.op == SQLITE_INSERT && ch.table == "face")
      if (auto id = integer_at(ch, face_id), b = integer_at(ch, face_basis); id && b) face_bases[*id] = *b;
  std::vector<std::optional<int64_t>> out;
  for (const PatchChange& ch : changes) {
    if (ch.op == SQLITE_UPDATE) continue;
    std::optional<int64_t> basis;
    if (ch.op == SQLITE_INSERT && ch.table == "face") basis = integer_at(ch, face_basis);
    if (ch.op == SQLITE_INSERT && ch.table == "source_image") basis = integer_at(ch, image_basis);
    if (ch.op == SQLITE_INSERT && ch.table == "reference_crop") {
      const auto f = face_bases.find(integer_at(ch, crop_face).value_or(0));
      if (f != face_bases.end()) basis = f->second;
    }
    out.push_back(basis);
  }
  return out;
}

}  // namespace

Result<std::optional<int64_t>> enrollment_basis(Db& db, std::span<const uint8_t> rows) {
  FV_ASSIGN_OR_RETURN(const auto changes, decode_patchset(rows));
  FV_ASSIGN_OR_RETURN(const auto bases, bases_inserted(db, changes));
  std::optional<int64_t> one;
  for (const auto& b : bases) {
    if (!b || (one && *one != *b)) return std::optional<int64_t>();
    one = b;
  }
  return one;
}

Result<Catalog::WithdrawnBasisMessage> Catalog::withdrawn_basis_message(std::span<const uint8_t> rows, int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(const auto changes, decode_patchset(rows));
  FV_ASSIGN_OR_RETURN(const auto bases, bases_inserted(*db_, changes));
  WithdrawnBasisMessage out;
  size_t k = 0;
  for (const PatchChange& ch : changes) {
    if (ch.op == SQLITE_UPDATE) continue;
    const auto& b = bases[k++];
    if (b == basis_id) out.holds_basis = true;
    else if (out.also.empty()) out.also = std::string(ch.op == SQLITE_INSERT ? "an insert into " : "a delete from ") + ch.table;
  }
  if (out.holds_basis && out.also.empty()) {
    FV_ASSIGN_OR_RETURN(out.restatement, restate_updates(*db_, changes));
  }
  return out;
}

Result<std::vector<uint8_t>> Catalog::subject_restatement(const std::string& subject_uid) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT id FROM subject WHERE uid = ?"));
  q.bind(1, subject_uid);
  FV_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::vector<uint8_t>{};
  return restate_row(*db_, "subject", q.i64(0));
}

Result<std::optional<int64_t>> Catalog::erasure_seq(const std::string& subject_uid) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT seq FROM replication_erased_subject WHERE uid=?"));
  q.bind(1, subject_uid);
  FV_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(q.i64(0));
}

}  // namespace fv::vault
