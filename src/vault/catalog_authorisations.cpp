// The catalog's authorisations of searches (EU AI Act Art 26(10)): who issued them, for which
// purposes and period, and whether they were granted, are pending, were refused or lapsed.
#include <nlohmann/json.hpp>

#include "vault/catalog.h"

namespace fv::vault {
namespace {

constexpr const char* kColumns =
    "a.id, a.uid, a.authority, a.reference, a.purposes, a.valid_from, a.valid_until, a.status, a.requested_at, "
    "a.deadline, a.decided_at, a.decided_by, a.recorded_by, a.note, "
    "(SELECT count(*) FROM review_case c WHERE c.authorisation_id = a.id)";

Result<AuthorisationRow> read_row(const Stmt& s) {
  AuthorisationRow a;
  a.id = s.i64(0);
  a.uid = s.text(1);
  a.authority = s.text(2);
  a.reference = s.text(3);
  const auto purposes = nlohmann::json::parse(s.text(4), nullptr, false);
  if (!purposes.is_array()) return corrupt_data("authorisation " + a.uid + ": its purposes are not a JSON array");
  for (auto& p : purposes)
    if (p.is_string()) a.purposes.push_back(p.get<std::string>());
  a.valid_from = s.text(5);
  a.valid_until = s.text(6);
  a.status = s.text(7);
  a.requested_at = s.text(8);
  a.deadline = s.opt_text(9);
  a.decided_at = s.opt_text(10);
  a.decided_by = s.opt_text(11);
  a.recorded_by = s.text(12);
  a.note = s.text(13);
  a.cases_citing = s.i64(14);
  return a;
}

Result<std::vector<AuthorisationRow>> read_rows(Stmt& s) {
  std::vector<AuthorisationRow> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    FV_ASSIGN_OR_RETURN(auto a, read_row(s));
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

Result<int64_t> Catalog::insert_authorisation(const AuthorisationRow& a) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "INSERT INTO authorisation(uid, authority, reference, purposes, valid_from, valid_until, status, requested_at, "
      "deadline, decided_at, decided_by, recorded_by, note) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  s.bind_all(a.uid, a.authority, a.reference, nlohmann::json(a.purposes).dump(), a.valid_from, a.valid_until, a.status,
             a.requested_at, a.deadline, a.decided_at, a.decided_by, a.recorded_by, a.note);
  FV_RETURN_IF_ERROR(s.run());
  return db_->last_insert_rowid();
}

Result<std::optional<AuthorisationRow>> Catalog::find_authorisation(const std::string& uid) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(std::string("SELECT ") + kColumns + " FROM authorisation a WHERE a.uid=?"));
  s.bind(1, uid);
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<AuthorisationRow>();
  FV_ASSIGN_OR_RETURN(auto a, read_row(s));
  return std::optional<AuthorisationRow>(std::move(a));
}

Result<std::vector<AuthorisationRow>> Catalog::list_authorisations() {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(std::string("SELECT ") + kColumns + " FROM authorisation a ORDER BY a.id"));
  return read_rows(s);
}

Status Catalog::update_authorisation_status(int64_t id, const std::string& status, const std::string& decided_at,
                                            const std::string& decided_by, const std::string& note) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "UPDATE authorisation SET status=?, decided_at=?, decided_by=?, "
      "note=CASE WHEN ?4 = '' THEN note WHEN note = '' THEN ?4 ELSE note || char(10) || ?4 END WHERE id=?5"));
  s.bind_all(status, decided_at, decided_by, note, id);
  FV_RETURN_IF_ERROR(s.run());
  if (db_->changes() != 1) return not_found("no authorisation with row id " + std::to_string(id));
  return Status::ok();
}

Result<std::vector<AuthorisationRow>> Catalog::lapsed_pending(const std::string& as_of, std::optional<int64_t> only) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(std::string("SELECT ") + kColumns +
                                           " FROM authorisation a WHERE a.status='pending' AND a.deadline <= ?1 "
                                           "AND (?2 IS NULL OR a.id = ?2) ORDER BY a.id"));
  s.bind(1, as_of);
  if (only) s.bind(2, *only);
  return read_rows(s);
}

}  // namespace fv::vault
