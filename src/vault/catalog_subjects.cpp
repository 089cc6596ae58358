// The catalog's subjects and lawful bases: lookup, creation, withdrawal, erasure, who a
// purpose may search (eligibility) and who is due for expiry.
#include "vault/catalog.h"

namespace fv::vault {

Catalog::Catalog(Db&& owned) : owned_(std::make_unique<Db>(std::move(owned))), db_(owned_.get()) {}

Result<std::optional<SubjectRow>> Catalog::find_subject(const std::string& ref_or_uid) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "SELECT id, uid, ref, created_at, retention_until FROM subject WHERE ref=?1 UNION ALL "
      "SELECT id, uid, ref, created_at, retention_until FROM subject WHERE uid=?1 AND ref<>?1 LIMIT 1"));
  s.bind(1, ref_or_uid);
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<SubjectRow>();
  return std::optional<SubjectRow>(SubjectRow{s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4)});
}

Result<int64_t> Catalog::insert_subject(const std::string& uid, const std::string& ref, const std::string& created_at,
                                        const std::string& retention_until) {
  FV_ASSIGN_OR_RETURN(Stmt ins, db_->prepare("INSERT INTO subject(uid, ref, created_at, retention_until) VALUES(?,?,?,?)"));
  ins.bind_all(uid, ref, created_at, retention_until);
  FV_RETURN_IF_ERROR(ins.run());
  return db_->last_insert_rowid();
}

Status Catalog::set_retention(int64_t subject_id, const std::string& until) {
  FV_ASSIGN_OR_RETURN(Stmt ru, db_->prepare("UPDATE subject SET retention_until=? WHERE id=?"));
  ru.bind_all(until, subject_id);
  return ru.run();
}

Result<int64_t> Catalog::insert_basis(const NewBasis& nb) {
  FV_ASSIGN_OR_RETURN(Stmt b, db_->prepare(
      "INSERT INTO lawful_basis(subject_id, kind, reference, granted_at, expires_at, recorded_by) VALUES(?,?,?,?,?,?)"));
  b.bind_all(nb.subject_id, nb.kind, nb.reference, nb.granted_at, nb.expires_at, nb.recorded_by);
  FV_RETURN_IF_ERROR(b.run());
  const int64_t id = db_->last_insert_rowid();
  for (auto& p : nb.purposes) {
    FV_ASSIGN_OR_RETURN(Stmt bp, db_->prepare("INSERT INTO basis_purpose(basis_id, purpose) VALUES(?,?)"));
    bp.bind_all(id, p);
    FV_RETURN_IF_ERROR(bp.run());
  }
  return id;
}

Result<std::optional<BasisOwnerRow>> Catalog::basis_owner(int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT s.id, s.uid, s.ref, s.created_at, s.retention_until, b.withdrawn_at FROM lawful_basis b "
      "JOIN subject s ON s.id=b.subject_id WHERE b.id=?"));
  q.bind(1, basis_id);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) return std::optional<BasisOwnerRow>();
  return std::optional<BasisOwnerRow>(
      BasisOwnerRow{SubjectRow{q.i64(0), q.text(1), q.text(2), q.text(3), q.text(4)}, q.opt_text(5)});
}

Result<std::optional<BasisCheckRow>> Catalog::basis_for_enrollment(int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(Stmt bq, db_->prepare("SELECT subject_id, kind, expires_at, withdrawn_at FROM lawful_basis WHERE id=?"));
  bq.bind(1, basis_id);
  FV_ASSIGN_OR_RETURN(bool row, bq.step());
  if (!row) return std::optional<BasisCheckRow>();
  return std::optional<BasisCheckRow>(BasisCheckRow{bq.i64(0), bq.text(1), bq.opt_text(2), bq.opt_text(3)});
}

Result<bool> Catalog::basis_covers(int64_t basis_id, const std::string& purpose) {
  FV_ASSIGN_OR_RETURN(Stmt pq, db_->prepare("SELECT 1 FROM basis_purpose WHERE basis_id=? AND purpose=?"));
  pq.bind_all(basis_id, purpose);
  return pq.step();
}

Result<int64_t> Catalog::other_bases_in_force(int64_t subject_id, int64_t except, const std::string& now) {
  FV_ASSIGN_OR_RETURN(Stmt others, db_->prepare(
      "SELECT count(*) FROM lawful_basis WHERE subject_id=? AND id<>? AND withdrawn_at IS NULL "
      "AND (expires_at IS NULL OR expires_at > ?)"));
  others.bind_all(subject_id, except, now);
  FV_ASSIGN_OR_RETURN(bool row, others.step());
  return row ? others.i64(0) : 0;
}

Result<std::vector<std::string>> Catalog::purposes_in_force(int64_t subject_id, const std::string& now) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT DISTINCT bp.purpose FROM lawful_basis b JOIN basis_purpose bp ON bp.basis_id=b.id WHERE b.subject_id=? "
      "AND b.withdrawn_at IS NULL AND (b.expires_at IS NULL OR b.expires_at > ?) ORDER BY 1"));
  q.bind_all(subject_id, now);
  return q.texts(0);
}

Result<std::vector<std::string>> Catalog::basis_purposes(int64_t basis_id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT purpose FROM basis_purpose WHERE basis_id=? ORDER BY 1"));
  q.bind(1, basis_id);
  return q.texts(0);
}

namespace {

Result<int64_t> count_by_id(Db& db, const char* sql, int64_t id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(sql));
  q.bind(1, id);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  return row ? q.i64(0) : 0;
}

Status run_by_id(Db& db, const char* sql, int64_t id) {
  FV_ASSIGN_OR_RETURN(Stmt d, db.prepare(sql));
  d.bind(1, id);
  return d.run();
}

// Every sequence SQLite keeps (one per AUTOINCREMENT table that ever gave an id), recorded by
// an erasure in its own transaction (id_floor, schema 15): a replica rebuilt from a stream
// whose earlier messages of these rows were erased learns from it the ids it must never give
// again. Its trigger drops the table's older records.
Status record_id_floors(Db& db) {
  return db.exec(
      "INSERT INTO id_floor(name, erasure, seq) SELECT s.name, coalesce("
      "(SELECT max(f.erasure) FROM id_floor f WHERE f.name = s.name), 0) + 1, s.seq FROM sqlite_sequence s");
}

// What a basis covered, deleted: its faces (their reference crops cascade), its source images,
// and cluster mode's key of the basis (its enrollments in a stream open with nothing from now on).
Result<WithdrawnCounts> delete_basis_rows(Db& db, int64_t basis_id) {
  WithdrawnCounts c;
  FV_ASSIGN_OR_RETURN(c.faces, count_by_id(db, "SELECT count(*) FROM face WHERE basis_id=?", basis_id));
  FV_RETURN_IF_ERROR(run_by_id(db, "DELETE FROM face WHERE basis_id=?", basis_id));
  FV_ASSIGN_OR_RETURN(c.kept_images,
                      count_by_id(db, "SELECT count(*) FROM source_image WHERE basis_id=? AND image IS NOT NULL", basis_id));
  FV_ASSIGN_OR_RETURN(c.images, count_by_id(db, "SELECT count(*) FROM source_image WHERE basis_id=?", basis_id));
  FV_RETURN_IF_ERROR(run_by_id(db, "DELETE FROM source_image WHERE basis_id=?", basis_id));
  FV_RETURN_IF_ERROR(run_by_id(db, "DELETE FROM basis_key WHERE basis_id=?", basis_id));
  FV_RETURN_IF_ERROR(record_id_floors(db));
  return c;
}

}  // namespace

Result<WithdrawnCounts> Catalog::withdraw_basis_rows(int64_t basis_id, const std::string& withdrawn_at) {
  FV_ASSIGN_OR_RETURN(WithdrawnCounts c, delete_basis_rows(*db_, basis_id));
  FV_ASSIGN_OR_RETURN(Stmt w, db_->prepare("UPDATE lawful_basis SET withdrawn_at=? WHERE id=?"));
  w.bind_all(withdrawn_at, basis_id);
  FV_RETURN_IF_ERROR(w.run());
  return c;
}

Result<WithdrawnCounts> Catalog::erase_lapsed_basis_rows(int64_t basis_id, const std::string& erased_at) {
  FV_ASSIGN_OR_RETURN(WithdrawnCounts c, delete_basis_rows(*db_, basis_id));
  FV_ASSIGN_OR_RETURN(Stmt w, db_->prepare("INSERT OR REPLACE INTO lapsed_basis_erasure(basis_id, erased_at) VALUES(?,?)"));
  w.bind_all(basis_id, erased_at);
  FV_RETURN_IF_ERROR(w.run());
  return c;
}

Result<std::vector<LapsedBasisRow>> Catalog::lapsed_bases_holding_rows(const std::string& as_of, std::optional<int64_t> only) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT b.id, s.id, s.uid, s.ref, s.created_at, s.retention_until, b.expires_at FROM lawful_basis b "
      "JOIN subject s ON s.id=b.subject_id WHERE b.withdrawn_at IS NULL AND b.expires_at IS NOT NULL "
      "AND b.expires_at <= ?1 AND s.retention_until > ?1 AND (?2 IS NULL OR b.id = ?2) "
      "AND EXISTS (SELECT 1 FROM lawful_basis o WHERE o.subject_id=s.id AND o.withdrawn_at IS NULL "
      "AND (o.expires_at IS NULL OR o.expires_at > ?1)) "
      "AND (EXISTS (SELECT 1 FROM face f WHERE f.basis_id=b.id) OR EXISTS (SELECT 1 FROM source_image i WHERE i.basis_id=b.id) "
      "OR EXISTS (SELECT 1 FROM basis_key k WHERE k.basis_id=b.id)) ORDER BY b.id"));
  q.bind(1, as_of);
  if (only) q.bind(2, *only);
  std::vector<LapsedBasisRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back({q.i64(0), SubjectRow{q.i64(1), q.text(2), q.text(3), q.text(4), q.text(5)}, q.text(6)});
  }
  return out;
}

Result<ErasedCounts> Catalog::erase_subject(int64_t subject_id) {
  ErasedCounts c;
  FV_ASSIGN_OR_RETURN(c.faces, count_by_id(*db_, "SELECT count(*) FROM face WHERE subject_id=?", subject_id));
  FV_ASSIGN_OR_RETURN(c.images, count_by_id(*db_, "SELECT count(*) FROM source_image WHERE subject_id=?", subject_id));
  FV_ASSIGN_OR_RETURN(c.kept_images, count_by_id(*db_, "SELECT count(*) FROM source_image WHERE subject_id=? AND image IS NOT NULL",
                                                 subject_id));
  FV_ASSIGN_OR_RETURN(c.bases, count_by_id(*db_, "SELECT count(*) FROM lawful_basis WHERE subject_id=?", subject_id));
  FV_ASSIGN_OR_RETURN(c.keys, count_by_id(*db_, "SELECT count(*) FROM subject_key WHERE subject_id=?", subject_id));
  FV_ASSIGN_OR_RETURN(c.reference_crops, count_by_id(*db_, "SELECT count(*) FROM reference_crop WHERE subject_id=?", subject_id));
  // Review cases: the subject leaves every open case (its candidates and their decisions go);
  // in a closed case the candidate stays with its opaque uid only (subject_id becomes NULL
  // when the subject row goes), so the record of what was decided survives without biometrics.
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
        "SELECT r.uid, count(*) FROM review_candidate c JOIN review_case r ON r.id=c.case_id "
        "WHERE c.subject_id=? AND r.status='open' GROUP BY r.id ORDER BY r.id"));
    q.bind(1, subject_id);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      c.open_review_cases.push_back(q.text(0));
      c.review_candidates += q.i64(1);
    }
  }
  for (const char* sql : {"DELETE FROM review_candidate WHERE subject_id=? AND case_id IN "
                          "(SELECT id FROM review_case WHERE status='open')",
                          "DELETE FROM reference_crop WHERE subject_id=?", "DELETE FROM face WHERE subject_id=?", "DELETE FROM source_image WHERE subject_id=?",
                          "DELETE FROM basis_purpose WHERE basis_id IN (SELECT id FROM lawful_basis WHERE subject_id=?)",
                          "DELETE FROM lapsed_basis_erasure WHERE basis_id IN (SELECT id FROM lawful_basis WHERE subject_id=?)",
                          "DELETE FROM lawful_basis WHERE subject_id=?", "DELETE FROM subject_key WHERE subject_id=?",
                          "DELETE FROM subject WHERE id=?"})
    FV_RETURN_IF_ERROR(run_by_id(*db_, sql, subject_id));
  FV_RETURN_IF_ERROR(record_id_floors(*db_));
  return c;
}

Result<std::vector<EligibleBasisRow>> Catalog::eligible_bases(const std::string& purpose, const std::string& now) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "SELECT b.id, b.subject_id, b.expires_at, s.retention_until FROM basis_purpose p JOIN lawful_basis b ON b.id=p.basis_id "
      "JOIN subject s ON s.id=b.subject_id WHERE p.purpose=?1 AND b.withdrawn_at IS NULL "
      "AND (b.expires_at IS NULL OR b.expires_at > ?2) AND s.retention_until > ?2"));
  s.bind_all(purpose, now);
  std::vector<EligibleBasisRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back({s.i64(0), s.i64(1), s.opt_text(2), s.text(3)});
  }
  return out;
}

Result<std::vector<DueSubject>> Catalog::due_for_expiry(const std::string& as_of, std::optional<int64_t> only) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT id, uid, ref, created_at, retention_until, CASE WHEN retention_until <= ?1 THEN 'retention period ended' "
      "ELSE 'no lawful basis in force' END FROM subject s WHERE (retention_until <= ?1 OR NOT EXISTS ("
      "SELECT 1 FROM lawful_basis b WHERE b.subject_id=s.id AND b.withdrawn_at IS NULL "
      "AND (b.expires_at IS NULL OR b.expires_at > ?1))) AND (?2 IS NULL OR id = ?2) ORDER BY id"));
  q.bind(1, as_of);
  if (only) q.bind(2, *only);
  std::vector<DueSubject> due;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    due.push_back({SubjectRow{q.i64(0), q.text(1), q.text(2), q.text(3), q.text(4)}, q.text(5)});
  }
  return due;
}

Result<std::vector<BasisRecord>> Catalog::bases_of_subject(int64_t subject_id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT id, kind, reference, granted_at, expires_at, withdrawn_at, recorded_by, "
      "(SELECT json_group_array(purpose) FROM basis_purpose WHERE basis_id=lawful_basis.id), "
      "(SELECT erased_at FROM lapsed_basis_erasure WHERE basis_id=lawful_basis.id) "
      "FROM lawful_basis WHERE subject_id=? ORDER BY id"));
  q.bind(1, subject_id);
  std::vector<BasisRecord> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.push_back({q.i64(0), q.text(1), q.text(2), q.text(3), q.opt_text(4), q.opt_text(5), q.opt_text(8), q.text(6), q.text(7)});
  }
  return out;
}

}  // namespace fv::vault
