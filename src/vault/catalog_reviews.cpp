// The catalog's review cases (human oversight, EU AI Act Art 14(5)): a search's case with its
// candidates, sealed probe crops and the reviewers' decisions; the reference crops of enrolled
// faces. Policy (who may decide, when a case closes) is the service's: these are the rows.
#include "vault/catalog.h"

#include <nlohmann/json.hpp>

namespace fv::vault {
namespace {

void bind_opt(Stmt& s, int i, const std::optional<double>& v) {
  if (v) s.bind(i, *v);
  else s.bind_null(i);
}

std::optional<double> opt_f64(const Stmt& s, int col) {
  return s.is_null(col) ? std::nullopt : std::optional<double>(s.f64(col));
}

Result<std::vector<ReviewDecisionRow>> decisions_of(Db& db, int64_t candidate_id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(
      "SELECT id, candidate_id, reviewer, reviewer_role, decision, reason, decided_at, reference_available, audit_seq "
      "FROM review_decision WHERE candidate_id=? ORDER BY id"));
  q.bind(1, candidate_id);
  std::vector<ReviewDecisionRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    ReviewDecisionRow d;
    d.id = q.i64(0);
    d.candidate_id = q.i64(1);
    d.reviewer = q.text(2);
    d.reviewer_role = q.text(3);
    d.decision = q.text(4);
    d.reason = q.text(5);
    d.decided_at = q.text(6);
    d.reference_available = q.i64(7) != 0;
    d.audit_seq = q.i64(8);
    out.push_back(std::move(d));
  }
  return out;
}

// Candidates (with the subject's current reference, empty once erased) and their decisions.
constexpr const char* kCandidateColumns =
    "c.id, c.case_id, c.face_index, c.rank, c.subject_id, c.subject_uid, coalesce(s.ref, ''), c.similarity, c.fmr, "
    "c.fpir, r.uid, r.status, r.unusable, a.uid, a.authority, a.reference FROM review_candidate c "
    "JOIN review_case r ON r.id=c.case_id LEFT JOIN subject s ON s.id=c.subject_id "
    "LEFT JOIN authorisation a ON a.id=r.authorisation_id ";

template <typename Key>
Result<std::vector<ReviewCandidateRow>> candidates_where(Db& db, const std::string& where, const Key& key) {
  FV_ASSIGN_OR_RETURN(Stmt q, db.prepare(std::string("SELECT ") + kCandidateColumns + where));
  q.bind(1, key);
  std::vector<ReviewCandidateRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    ReviewCandidateRow c;
    c.id = q.i64(0);
    c.case_id = q.i64(1);
    c.face_index = static_cast<int>(q.i64(2));
    c.rank = static_cast<int>(q.i64(3));
    if (!q.is_null(4)) c.subject_id = q.i64(4);
    c.subject_uid = q.text(5);
    c.subject_ref = q.text(6);
    c.similarity = q.f64(7);
    c.fmr = opt_f64(q, 8);
    c.fpir = opt_f64(q, 9);
    c.case_uid = q.text(10);
    c.case_status = q.text(11);
    c.case_unusable = q.opt_text(12);
    if (!q.is_null(13)) c.case_authorisation = CitedAuthorisationRow{q.text(13), q.text(14), q.text(15)};
    out.push_back(std::move(c));
  }
  for (auto& c : out) {
    FV_ASSIGN_OR_RETURN(c.decisions, decisions_of(db, c.id));
  }
  return out;
}

constexpr const char* kCaseColumns =
    "SELECT r.id, r.uid, r.opened_at, r.searcher, r.searcher_role, r.purpose, r.case_ref, r.mode, r.probe_sha256, "
    "r.status, r.closed_at, r.unusable, a.uid, r.search_audit_seq, r.probe_key FROM review_case r "
    "LEFT JOIN authorisation a ON a.id=r.authorisation_id ";

ReviewCaseRow case_from(const Stmt& q) {
  ReviewCaseRow r;
  r.id = q.i64(0);
  r.uid = q.text(1);
  r.opened_at = q.text(2);
  r.searcher = q.text(3);
  r.searcher_role = q.text(4);
  r.purpose = q.text(5);
  r.case_ref = q.text(6);
  r.mode = q.text(7);
  r.probe_sha256 = q.text(8);
  r.status = q.text(9);
  r.closed_at = q.opt_text(10);
  r.unusable = q.opt_text(11);
  r.authorisation_uid = q.opt_text(12);
  r.search_audit_seq = q.i64(13);
  if (!q.is_null(14)) r.wrapped_probe_key = q.blob(14);
  return r;
}

Status fill_case(Db& db, ReviewCaseRow& r) {
  {
    FV_ASSIGN_OR_RETURN(Stmt p, db.prepare("SELECT face_index FROM review_probe WHERE case_id=? ORDER BY face_index"));
    p.bind(1, r.id);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, p.step());
      if (!row) break;
      r.probe_faces.push_back(static_cast<int>(p.i64(0)));
    }
  }
  FV_ASSIGN_OR_RETURN(r.candidates, candidates_where(db, "WHERE c.case_id=? ORDER BY c.face_index, c.rank, c.id", r.id));
  return Status::ok();
}

}  // namespace

Result<int64_t> Catalog::insert_review_case(const NewReviewCase& c) {
  FV_ASSIGN_OR_RETURN(Stmt ins, db_->prepare(
      "INSERT INTO review_case(uid, opened_at, searcher, searcher_role, purpose, case_ref, mode, probe_sha256, "
      "authorisation_id, search_audit_seq, status, closed_at, probe_key, probe_master_key_id) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  ins.bind_all(c.uid, c.opened_at, c.searcher, c.searcher_role, c.purpose, c.case_ref, c.mode, c.probe_sha256);
  if (c.authorisation_id) ins.bind(9, *c.authorisation_id);
  else ins.bind_null(9);
  ins.bind(10, c.search_audit_seq);
  ins.bind(11, c.closed_at ? "closed" : "open");
  ins.bind(12, c.closed_at);
  if (c.wrapped_probe_key) {
    ins.bind(13, *c.wrapped_probe_key);
    ins.bind(14, c.probe_master_key_id);
  } else {
    ins.bind_null(13);
    ins.bind_null(14);
  }
  FV_RETURN_IF_ERROR(ins.run());
  const int64_t id = db_->last_insert_rowid();
  FV_ASSIGN_OR_RETURN(Stmt cand, db_->prepare(
      "INSERT INTO review_candidate(case_id, face_index, rank, subject_id, subject_uid, similarity, fmr, fpir) "
      "VALUES(?,?,?,?,?,?,?,?)"));
  for (const auto& k : c.candidates) {
    FV_RETURN_IF_ERROR(cand.reset());
    cand.bind_all(id, k.face_index, k.rank);
    if (k.subject_id) cand.bind(4, *k.subject_id);
    else cand.bind_null(4);
    cand.bind(5, k.subject_uid).bind(6, k.similarity);
    bind_opt(cand, 7, k.fmr);
    bind_opt(cand, 8, k.fpir);
    FV_RETURN_IF_ERROR(cand.run());
  }
  FV_ASSIGN_OR_RETURN(Stmt probe, db_->prepare("INSERT INTO review_probe(case_id, face_index, crop) VALUES(?,?,?)"));
  for (const auto& [face_index, sealed] : c.sealed_probe_crops) {
    FV_RETURN_IF_ERROR(probe.reset());
    probe.bind_all(id, face_index, sealed);
    FV_RETURN_IF_ERROR(probe.run());
  }
  return id;
}

Result<std::optional<ReviewCaseRow>> Catalog::find_review_case(const std::string& uid) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(std::string(kCaseColumns) + "WHERE r.uid=?"));
  q.bind(1, uid);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) return std::optional<ReviewCaseRow>();
  ReviewCaseRow r = case_from(q);
  FV_RETURN_IF_ERROR(fill_case(*db_, r));
  return std::optional<ReviewCaseRow>(std::move(r));
}

Result<std::vector<ReviewCaseRow>> Catalog::list_review_cases(const ReviewCaseQuery& qry) {
  std::string sql = std::string(kCaseColumns) + "WHERE (?1 IS NULL OR r.status=?1) AND (?2 IS NULL OR r.searcher=?2) "
                    "ORDER BY r.id DESC";
  if (qry.limit > 0) sql += " LIMIT " + std::to_string(qry.limit);
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(sql));
  q.bind(1, qry.status);
  q.bind(2, qry.searcher);
  std::vector<ReviewCaseRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    ReviewCaseRow r = case_from(q);
    out.push_back(std::move(r));
  }
  for (auto& r : out) FV_RETURN_IF_ERROR(fill_case(*db_, r));
  return out;
}

Result<int64_t> Catalog::insert_review_decision(const ReviewDecisionRow& d) {
  FV_ASSIGN_OR_RETURN(Stmt ins, db_->prepare(
      "INSERT INTO review_decision(candidate_id, reviewer, reviewer_role, decision, reason, reference_available, "
      "decided_at, audit_seq) VALUES(?,?,?,?,?,?,?,?)"));
  ins.bind_all(d.candidate_id, d.reviewer, d.reviewer_role, d.decision, d.reason,
               static_cast<int64_t>(d.reference_available ? 1 : 0), d.decided_at, d.audit_seq);
  FV_RETURN_IF_ERROR(ins.run());
  return db_->last_insert_rowid();
}

Result<std::optional<Bytes>> Catalog::sealed_probe_crop(int64_t case_id, int face_index) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT crop FROM review_probe WHERE case_id=? AND face_index=?"));
  q.bind_all(case_id, face_index);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) return std::optional<Bytes>();
  return std::optional<Bytes>(q.blob(0));
}

Status Catalog::close_review_case(int64_t case_id, const std::string& closed_at) {
  FV_ASSIGN_OR_RETURN(Stmt d, db_->prepare("DELETE FROM review_probe WHERE case_id=?"));
  d.bind(1, case_id);
  FV_RETURN_IF_ERROR(d.run());
  FV_ASSIGN_OR_RETURN(Stmt u, db_->prepare(
      "UPDATE review_case SET status='closed', closed_at=?, probe_key=NULL, probe_master_key_id=NULL WHERE id=?"));
  u.bind_all(closed_at, case_id);
  return u.run();
}

Result<int64_t> Catalog::destroy_probe_crops_before(const std::string& before) {
  const std::string aged = "SELECT id FROM review_case WHERE opened_at < ?1 AND (probe_key IS NOT NULL OR "
                           "EXISTS (SELECT 1 FROM review_probe p WHERE p.case_id=review_case.id))";
  FV_ASSIGN_OR_RETURN(Stmt n, db_->prepare("SELECT count(*) FROM (" + aged + ")"));
  n.bind(1, before);
  FV_ASSIGN_OR_RETURN(bool row, n.step());
  const int64_t count = row ? n.i64(0) : 0;
  if (count == 0) return count;
  FV_ASSIGN_OR_RETURN(Stmt d, db_->prepare("DELETE FROM review_probe WHERE case_id IN (" + aged + ")"));
  d.bind(1, before);
  FV_RETURN_IF_ERROR(d.run());
  FV_ASSIGN_OR_RETURN(Stmt u, db_->prepare(
      "UPDATE review_case SET probe_key=NULL, probe_master_key_id=NULL WHERE opened_at < ? AND probe_key IS NOT NULL"));
  u.bind(1, before);
  FV_RETURN_IF_ERROR(u.run());
  return count;
}

Status Catalog::mark_cases_unusable(int64_t authorisation_id, const std::string& why) {
  FV_ASSIGN_OR_RETURN(Stmt u, db_->prepare("UPDATE review_case SET unusable=? WHERE authorisation_id=? AND unusable IS NULL"));
  u.bind_all(why, authorisation_id);
  return u.run();
}

Result<std::vector<ReviewCandidateRow>> Catalog::review_candidates_of_subject(int64_t subject_id) {
  return candidates_where(*db_, "WHERE c.subject_id=? ORDER BY c.case_id, c.id", subject_id);
}

Result<std::vector<ReviewCandidateRow>> Catalog::review_candidates_of_uid(const std::string& subject_uid) {
  return candidates_where(*db_, "WHERE c.subject_uid=? ORDER BY c.case_id, c.id", subject_uid);
}

Status Catalog::for_each_probe_key(
    const std::function<Result<Bytes>(const std::string& case_uid, const Bytes& wrapped)>& rewrap,
    const std::string& new_master_key_id) {
  std::vector<std::pair<int64_t, std::string>> cases;
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT id, uid FROM review_case WHERE probe_key IS NOT NULL ORDER BY id"));
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      cases.emplace_back(q.i64(0), q.text(1));
    }
  }
  FV_ASSIGN_OR_RETURN(Stmt get, db_->prepare("SELECT probe_key FROM review_case WHERE id=?"));
  FV_ASSIGN_OR_RETURN(Stmt put, db_->prepare("UPDATE review_case SET probe_key=?, probe_master_key_id=? WHERE id=?"));
  for (const auto& [id, uid] : cases) {
    FV_RETURN_IF_ERROR(get.reset());
    get.bind(1, id);
    FV_ASSIGN_OR_RETURN(bool row, get.step());
    if (!row) continue;
    const Bytes wrapped = get.blob(0);
    FV_ASSIGN_OR_RETURN(Bytes rewrapped, rewrap(uid, wrapped));
    FV_RETURN_IF_ERROR(put.reset());
    put.bind_all(rewrapped, new_master_key_id, id);
    FV_RETURN_IF_ERROR(put.run());
  }
  return Status::ok();
}

Status Catalog::insert_reference_crop(int64_t face_id, int64_t subject_id, const Bytes& sealed) {
  FV_ASSIGN_OR_RETURN(Stmt ins, db_->prepare("INSERT INTO reference_crop(face_id, subject_id, crop) VALUES(?,?,?)"));
  ins.bind_all(face_id, subject_id, sealed);
  return ins.run();
}

namespace {
// A face's reference crop counts for a purpose when the face was collected under a basis that
// covers it: a reviewer for one purpose is not shown a photo collected for another.
constexpr const char* kCropsFor =
    " FROM reference_crop rc JOIN face f ON f.id = rc.face_id WHERE rc.subject_id = ?1 AND (?2 IS NULL OR EXISTS("
    "SELECT 1 FROM basis_purpose bp WHERE bp.basis_id = f.basis_id AND bp.purpose = ?2))";
}  // namespace

Result<std::vector<std::pair<int64_t, Bytes>>> Catalog::reference_crops(int64_t subject_id,
                                                                        const std::optional<std::string>& purpose) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(std::string("SELECT rc.face_id, rc.crop") + kCropsFor + " ORDER BY rc.face_id DESC"));
  q.bind(1, subject_id);
  q.bind(2, purpose);
  std::vector<std::pair<int64_t, Bytes>> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    out.emplace_back(q.i64(0), q.blob(1));
  }
  return out;
}

Result<int64_t> Catalog::count_reference_crops(int64_t subject_id, const std::optional<std::string>& purpose) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(std::string("SELECT count(*)") + kCropsFor));
  q.bind(1, subject_id);
  q.bind(2, purpose);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  return row ? q.i64(0) : 0;
}

Result<std::vector<std::string>> Catalog::drop_candidacies_without_basis(int64_t subject_id, const std::string& now) {
  // The subject's candidacies in open cases whose purpose no basis of theirs in force covers
  // any more (after a withdrawal): a reviewer must not go on looking at them for that purpose.
  constexpr const char* kUncovered =
      "FROM review_candidate c JOIN review_case r ON r.id = c.case_id WHERE c.subject_id = ?1 AND r.status = 'open' "
      "AND NOT EXISTS (SELECT 1 FROM lawful_basis b JOIN basis_purpose bp ON bp.basis_id = b.id WHERE b.subject_id = ?1 "
      "AND bp.purpose = r.purpose AND b.withdrawn_at IS NULL AND (b.expires_at IS NULL OR b.expires_at > ?2))";
  std::vector<std::string> cases;
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(std::string("SELECT DISTINCT r.uid ") + kUncovered));
    q.bind(1, subject_id);
    q.bind(2, now);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      cases.push_back(q.text(0));
    }
  }
  FV_ASSIGN_OR_RETURN(Stmt d, db_->prepare(std::string("DELETE FROM review_candidate WHERE id IN (SELECT c.id ") + kUncovered + ")"));
  d.bind(1, subject_id);
  d.bind(2, now);
  FV_RETURN_IF_ERROR(d.run());
  return cases;
}

Result<Catalog::CasesLeft> Catalog::leave_open_cases(const std::string& subject_uid,
                                                     const std::vector<std::string>& purposes_kept) {
  const std::string kept = nlohmann::json(purposes_kept).dump();
  constexpr const char* kOpen =
      "FROM review_candidate c JOIN review_case r ON r.id = c.case_id WHERE c.subject_uid = ?1 AND r.status = 'open' "
      "AND r.purpose NOT IN (SELECT value FROM json_each(?2))";
  CasesLeft left;
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(std::string("SELECT r.uid, count(*) ") + kOpen + " GROUP BY r.id ORDER BY r.id"));
    q.bind_all(subject_uid, kept);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      left.case_uids.push_back(q.text(0));
      left.candidacies += q.i64(1);
    }
  }
  if (left.candidacies == 0) return left;
  FV_ASSIGN_OR_RETURN(Stmt d, db_->prepare(std::string("DELETE FROM review_candidate WHERE id IN (SELECT c.id ") + kOpen + ")"));
  d.bind_all(subject_uid, kept);
  FV_RETURN_IF_ERROR(d.run());
  return left;
}

Result<bool> Catalog::record_review_exclusion(const std::string& subject_uid, const std::string& purpose, int64_t shard_seq) {
  {
    FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT shard_seq FROM review_exclusion WHERE subject_uid=? AND purpose=?"));
    q.bind_all(subject_uid, purpose);
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (row && q.i64(0) >= shard_seq) return false;
  }
  FV_ASSIGN_OR_RETURN(Stmt w, db_->prepare(
      "INSERT INTO review_exclusion(subject_uid, purpose, shard_seq) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(subject_uid, purpose) DO UPDATE SET shard_seq = excluded.shard_seq"));
  w.bind_all(subject_uid, purpose, shard_seq);
  FV_RETURN_IF_ERROR(w.run());
  return true;
}

Result<int64_t> Catalog::review_exclusion_seq(const std::string& subject_uid, const std::string& purpose) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT coalesce(max(shard_seq), 0) FROM review_exclusion WHERE subject_uid=?1 AND purpose IN ('', ?2)"));
  q.bind_all(subject_uid, purpose);
  FV_ASSIGN_OR_RETURN(const bool row, q.step());
  return row ? q.i64(0) : int64_t{0};
}

}  // namespace fv::vault
