// The session extension's iterator is declared only with these defined (as in vault/changeset.cpp).
#ifndef SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_SESSION 1
#endif
#ifndef SQLITE_ENABLE_PREUPDATE_HOOK
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#endif
#include <sqlite3.h>

#include "cluster/patch_subjects.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fv::cluster {
namespace {

struct TableShape {
  int subject_col = -1;  // index of subject_id, -1 when none
  std::vector<std::string> pk;  // primary-key column names, in key order
};

Result<TableShape> shape_of(vault::Db& db, const std::string& table) {
  FV_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid"));
  st.bind(1, table);
  TableShape shape;
  std::map<int64_t, std::string> pk;
  for (int col = 0;; ++col) {
    FV_ASSIGN_OR_RETURN(const bool row, st.step());
    if (!row) break;
    const std::string name = st.text(0);
    if (name == "subject_id") shape.subject_col = col;
    if (st.i64(1) > 0) pk[st.i64(1)] = name;
  }
  for (auto& [i, name] : pk) shape.pk.push_back(name);
  return shape;
}

// The subject of an updated row whose subject_id the update left as it was; nullopt when that
// column is NULL (a row no longer linked to a subject).
Result<std::optional<int64_t>> lookup_subject(vault::Db& db, const std::string& table, const TableShape& shape,
                                              sqlite3_changeset_iter* it) {
  std::string sql = "SELECT subject_id FROM \"" + table + "\" WHERE ";
  for (size_t i = 0; i < shape.pk.size(); ++i) sql += (i ? " AND \"" : "\"") + shape.pk[i] + "\" = ?";
  FV_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
  unsigned char* pk_flags = nullptr;
  int ncol = 0;
  if (sqlite3changeset_pk(it, &pk_flags, &ncol) != SQLITE_OK) return internal_error("patchset: no primary key for " + table);
  int bound = 0;
  for (int c = 0; c < ncol; ++c) {
    if (!pk_flags[c]) continue;
    sqlite3_value* v = nullptr;
    // An update carries its primary key among the old values in a patchset.
    if (sqlite3changeset_old(it, c, &v) != SQLITE_OK || !v) return internal_error("patchset: key of " + table + " missing");
    ++bound;
    if (sqlite3_value_type(v) == SQLITE_INTEGER) st.bind(bound, static_cast<int64_t>(sqlite3_value_int64(v)));
    else st.bind(bound, std::string(reinterpret_cast<const char*>(sqlite3_value_text(v))));
  }
  FV_ASSIGN_OR_RETURN(const bool row, st.step());
  if (!row) return failed_precondition("patchset updates a row of " + table + " that the transaction cannot see");
  if (st.is_null(0)) return std::optional<int64_t>{};
  return std::optional<int64_t>{st.i64(0)};
}

}  // namespace

Result<std::set<int64_t>> subjects_written(vault::Db& db, std::span<const uint8_t> patchset) {
  std::set<int64_t> out;
  if (patchset.empty()) return out;
  sqlite3_changeset_iter* it = nullptr;
  if (sqlite3changeset_start(&it, static_cast<int>(patchset.size()), const_cast<uint8_t*>(patchset.data())) != SQLITE_OK)
    return corrupt_data("patchset does not parse");
  struct Finish {
    sqlite3_changeset_iter* it;
    ~Finish() { sqlite3changeset_finalize(it); }
  } finish{it};
  std::map<std::string, TableShape> shapes;
  while (sqlite3changeset_next(it) == SQLITE_ROW) {
    const char* table_c = nullptr;
    int ncol = 0, op = 0, indirect = 0;
    if (sqlite3changeset_op(it, &table_c, &ncol, &op, &indirect) != SQLITE_OK || !table_c)
      return corrupt_data("patchset change without a table");
    if (op == SQLITE_DELETE) continue;
    const std::string table = table_c;
    auto found = shapes.find(table);
    if (found == shapes.end()) {
      FV_ASSIGN_OR_RETURN(auto shape, shape_of(db, table));
      found = shapes.emplace(table, std::move(shape)).first;
    }
    const TableShape& shape = found->second;
    if (table == "subject") {
      sqlite3_value* v = nullptr;
      if (op == SQLITE_INSERT) sqlite3changeset_new(it, 0, &v);
      else sqlite3changeset_old(it, 0, &v);
      if (!v) return corrupt_data("patchset: subject row without its id");
      out.insert(sqlite3_value_int64(v));
      continue;
    }
    if (shape.subject_col < 0) continue;
    sqlite3_value* v = nullptr;
    if (sqlite3changeset_new(it, shape.subject_col, &v) == SQLITE_OK && v) {
      // A new value of NULL unlinks the row from its subject (an erasure keeps a closed review
      // case's candidate by uid only): it writes nothing of a subject.
      if (sqlite3_value_type(v) == SQLITE_INTEGER) out.insert(sqlite3_value_int64(v));
      continue;
    }
    FV_ASSIGN_OR_RETURN(const auto id, lookup_subject(db, table, shape, it));
    if (id) out.insert(*id);
  }
  return out;
}

}  // namespace fv::cluster
