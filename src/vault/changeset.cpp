// Session capture, patchset filtering, application and summary (changeset.h).
//
// The session extension's declarations in sqlite3.h are compiled only with these two macros;
// Debian's libsqlite3 has the extension built in.
#ifndef SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_SESSION 1
#endif
#ifndef SQLITE_ENABLE_PREUPDATE_HOOK
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#endif
#include <sqlite3.h>

#include "vault/changeset.h"
#include "vault/patchset_format.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace fv::vault {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

struct Column {
  std::string name;
  int pk = 0;  // position in the primary key (1, 2, …), 0 outside it
};

Result<std::vector<Column>> table_columns(Db& db, const std::string& table) {
  FV_ASSIGN_OR_RETURN(Stmt s, db.prepare("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid"));
  s.bind(1, table);
  std::vector<Column> cols;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    cols.push_back({s.text(0), static_cast<int>(s.i64(1))});
  }
  return cols;
}

// A table whose key is `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite keeps its highest id ever
// given in sqlite_sequence and never gives an id at or below it again.
Result<bool> is_autoincrement(Db& db, const std::string& table, const std::vector<Column>& cols) {
  if (std::count_if(cols.begin(), cols.end(), [](const Column& c) { return c.pk > 0; }) != 1) return false;
  FV_ASSIGN_OR_RETURN(Stmt s, db.prepare("SELECT 1 FROM sqlite_schema WHERE type='table' AND name=? AND "
                                         "sql LIKE '%AUTOINCREMENT%'"));
  s.bind(1, table);
  return s.step();
}

Result<std::vector<std::string>> main_tables(Db& db) {
  FV_ASSIGN_OR_RETURN(Stmt s, db.prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite\\_%' "
                                         "ESCAPE '\\' ORDER BY name"));
  std::vector<std::string> names;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    names.push_back(s.text(0));
  }
  return names;
}

// One table as replication sees it: its columns in order (with their place in the key), and
// whether its key is AUTOINCREMENT.
struct TableShape {
  std::vector<Column> columns;
  bool autoincrement = false;
};

}  // namespace

// Cached per connection: computing these costs a dozen PRAGMA queries, which every replicated
// transaction and every applied message needed (a third of a cluster node's CPU, measured).
struct Db::SchemaFacts {
  int64_t version = -1;                  // PRAGMA schema_version they were read at
  std::vector<std::string> main;         // main_tables()
  std::optional<std::vector<std::string>> captured;  // captured_tables(), once computed
  std::map<std::string, TableShape> tables;          // read on first use
};

namespace {

// The facts of the schema as it is now: SQLite raises schema_version on every change of the
// schema (a table created on first use, a migration), by any connection.
Result<Db::SchemaFacts*> schema_facts(Db& db) {
  FV_ASSIGN_OR_RETURN(const int64_t version, db.query_int("PRAGMA schema_version"));
  auto& facts = db.schema_facts();
  if (facts && facts->version == version) return facts.get();
  auto fresh = std::make_shared<Db::SchemaFacts>();
  fresh->version = version;
  FV_ASSIGN_OR_RETURN(fresh->main, main_tables(db));
  facts = std::move(fresh);
  return facts.get();
}

// `table`'s shape (no columns: the vault has no such table). Stable while `facts` lives.
Result<const TableShape*> table_shape(Db& db, Db::SchemaFacts& facts, const std::string& table) {
  auto it = facts.tables.find(table);
  if (it == facts.tables.end()) {
    TableShape shape;
    FV_ASSIGN_OR_RETURN(shape.columns, table_columns(db, table));
    FV_ASSIGN_OR_RETURN(shape.autoincrement, is_autoincrement(db, table, shape.columns));
    it = facts.tables.emplace(table, std::move(shape)).first;
  }
  return &it->second;
}

// The patchset without the changes of local-only meta rows; fails on an unclassified meta key.
Result<std::vector<uint8_t>> drop_local_rows(std::span<const uint8_t> in) {
  std::vector<uint8_t> out;
  out.reserve(in.size());
  size_t written_header = SIZE_MAX;  // the header last copied to `out`
  Status st = walk_patchset(in, [&](const ChangeView& v) -> Status {
    if (v.table == "meta") {
      if (contains(local_meta_keys(), v.first_text)) return Status::ok();
      if (!contains(replicated_meta_keys(), v.first_text))
        return internal_error("meta key '" + v.first_text +
                              "' is neither replicated nor local-only (src/vault/changeset.cpp lists both): "
                              "classify it before it is replicated");
    }
    if (written_header != v.header_begin) {
      out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(v.header_begin),
                 in.begin() + static_cast<std::ptrdiff_t>(v.header_end));
      written_header = v.header_begin;
    }
    out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(v.begin), in.begin() + static_cast<std::ptrdiff_t>(v.end));
    return Status::ok();
  });
  if (st.code() == StatusCode::kInvalidArgument) return internal_error("the session's patchset: " + st.message());
  if (!st.is_ok()) return st;
  return out;
}

// ---- iterating a patchset with SQLite's own reader

struct IterCloser {
  sqlite3_changeset_iter* it;
  ~IterCloser() {
    if (it) sqlite3changeset_finalize(it);
  }
};

std::string value_text(sqlite3_value* v) {
  if (!v) return "?";
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return std::to_string(sqlite3_value_int64(v));
    case SQLITE_TEXT: return "'" + std::string(reinterpret_cast<const char*>(sqlite3_value_text(v))) + "'";
    case SQLITE_NULL: return "NULL";
    default: return "(value)";  // a key is never a blob or real here; never print blob bytes
  }
}

// The primary key of the iterator's current change, as text ("id=5", "basis_id=3,purpose='x'").
std::string change_key(sqlite3_changeset_iter* it, const std::vector<Column>* cols) {
  const char* table = nullptr;
  int ncol = 0, op = 0, indirect = 0;
  if (sqlite3changeset_op(it, &table, &ncol, &op, &indirect) != SQLITE_OK) return "?";
  unsigned char* pk = nullptr;
  if (sqlite3changeset_pk(it, &pk, nullptr) != SQLITE_OK || !pk) return "?";
  std::string out;
  for (int i = 0; i < ncol; ++i) {
    if (!pk[i]) continue;
    sqlite3_value* v = nullptr;
    if (op == SQLITE_INSERT) sqlite3changeset_new(it, i, &v);
    else sqlite3changeset_old(it, i, &v);
    if (!out.empty()) out += ",";
    out += (cols && static_cast<size_t>(i) < cols->size() ? (*cols)[i].name : "col" + std::to_string(i)) + "=" +
           value_text(v);
  }
  return out;
}

const char* op_name(int op) {
  return op == SQLITE_INSERT ? "insert into" : op == SQLITE_UPDATE ? "update of" : "delete from";
}

struct ApplyContext {
  std::map<std::string, const TableShape*> tables;  // per table seen, checked against the patchset
  std::map<std::string, int64_t> deleted_key_max;  // per AUTOINCREMENT table, its highest deleted key
  std::string conflict;  // the first conflict, described
  ApplyMode mode = ApplyMode::kNormal;
};

// sqlite_sequence is no table of the patchset (SQLite's own, no primary key), so a replica
// rebuilt from a stream never learns the ids of rows whose messages were erased from it: it
// sees only their deletes. Raising each table's sequence to the keys it deleted keeps such a
// replica, once a writer, from giving an erased row's id to a new one (docs/cluster.md).
Status raise_sequences(Db& db, const std::map<std::string, int64_t>& floors) {
  for (const auto& [table, key] : floors) {
    FV_ASSIGN_OR_RETURN(Stmt up, db.prepare("UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1"));
    up.bind_all(table, key);
    FV_RETURN_IF_ERROR(up.run());
    if (db.changes() > 0) continue;
    FV_ASSIGN_OR_RETURN(Stmt in, db.prepare("INSERT INTO sqlite_sequence(name, seq) VALUES(?1, ?2)"));
    in.bind_all(table, key);
    FV_RETURN_IF_ERROR(in.run());
  }
  return Status::ok();
}

int on_conflict(void* ctx, int kind, sqlite3_changeset_iter* it) {
  auto* a = static_cast<ApplyContext*>(ctx);
  if (!a->conflict.empty()) return SQLITE_CHANGESET_ABORT;
  if (kind == SQLITE_CHANGESET_FOREIGN_KEY) {
    a->conflict = "foreign keys fail after applying it (a row refers to a row the replica does not have)";
    return SQLITE_CHANGESET_ABORT;
  }
  const char* table = nullptr;
  int ncol = 0, op = 0, indirect = 0;
  sqlite3changeset_op(it, &table, &ncol, &op, &indirect);
  const std::string t = table ? table : "?";
  auto shape = a->tables.find(t);
  const std::string what = std::string(op_name(op)) + " " + t + " (" +
                           change_key(it, shape == a->tables.end() ? nullptr : &shape->second->columns) + ")";
  // A delete of a row that is not there leaves the row absent, which is all a delete asks.
  // It is what a replica rebuilt from a stream meets after an erasure: the subject's earlier
  // messages were erased from the stream, its erasure's deletes were not (docs/cluster.md).
  if (kind == SQLITE_CHANGESET_NOTFOUND && op == SQLITE_DELETE) return SQLITE_CHANGESET_OMIT;
  // A carried audit row that this replica already holds: it lived through the erasure.
  if (a->mode != ApplyMode::kNormal && kind == SQLITE_CHANGESET_CONFLICT && op == SQLITE_INSERT) return SQLITE_CHANGESET_OMIT;
  switch (kind) {
    case SQLITE_CHANGESET_NOTFOUND: a->conflict = what + ": the row does not exist"; break;
    case SQLITE_CHANGESET_CONFLICT: a->conflict = what + ": a row with that key exists"; break;
    case SQLITE_CHANGESET_DATA: a->conflict = what + ": the row differs"; break;
    case SQLITE_CHANGESET_CONSTRAINT: a->conflict = what + ": a constraint fails"; break;
    default: a->conflict = what + ": conflict " + std::to_string(kind); break;
  }
  return SQLITE_CHANGESET_ABORT;
}

Status apply_changes(Db& db, std::span<const uint8_t> patchset, ApplyContext& ctx) {
  // SQLite applies it inside a savepoint of its own (rolled back on failure), with foreign keys
  // deferred to its end; every conflict aborts.
  void* data = const_cast<uint8_t*>(patchset.data());
  const int rc = sqlite3changeset_apply_v2(db.handle(), static_cast<int>(patchset.size()), data, nullptr, on_conflict,
                                           &ctx, nullptr, nullptr, 0);
  if (rc == SQLITE_OK) return Status::ok();
  if (!ctx.conflict.empty() || rc == SQLITE_ABORT || rc == SQLITE_CONSTRAINT)
    return failed_precondition("the patchset does not apply to this replica (it diverged from the stream): " +
                               (ctx.conflict.empty() ? std::string(sqlite3_errstr(rc)) : ctx.conflict));
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    return failed_precondition(std::string("applying the patchset: ") + sqlite3_errmsg(db.handle()));
  return internal_error(std::string("applying the patchset: ") + sqlite3_errstr(rc) + " (" + sqlite3_errmsg(db.handle()) + ")");
}

}  // namespace

const std::vector<std::string>& local_only_tables() {
  static const std::vector<std::string> t{"replication_state", "replication_message", "replication_pending_key",
                                          "replication_erased_subject", "replication_settled_erasure",
                                          "replication_settled_withdrawal", "replication_withdrawn_in_stream"};
  return t;
}

const std::vector<std::string>& audit_log_tables() {
  static const std::vector<std::string> t{"audit", "audit_checkpoint"};
  return t;
}

const std::vector<std::string>& replicated_meta_keys() {
  // The audit chain's head goes with the audit rows; the opt-out key with the opt-outs it
  // seals; the master key's id with the subject keys wrapped under it (a rotation replicated
  // without it would leave replicas naming the old key).
  static const std::vector<std::string> k{"audit_head_seq", "audit_head_hash", "optout_key", "master_key_id"};
  return k;
}

const std::vector<std::string>& local_meta_keys() {
  // Generations: bumped by triggers on every vault as it writes (or applies) the rows they
  // count; replicating them too would count twice. wipe_pending: each replica wipes its own
  // files (apply_replicated sets it when a patchset deletes rows). created_at: the vault's own.
  static const std::vector<std::string> k{"gallery_generation", "eligibility_generation", "wipe_pending", "created_at"};
  return k;
}

Result<std::vector<std::string>> captured_tables(Db& db) {
  FV_ASSIGN_OR_RETURN(Db::SchemaFacts* facts, schema_facts(db));
  if (facts->captured) return *facts->captured;
  std::vector<std::string> names;
  for (auto& n : facts->main)
    if (!contains(local_only_tables(), n)) names.push_back(n);
  // Parents of each table (its foreign keys), and refuse tables without a primary key.
  std::map<std::string, std::set<std::string>> children;  // parent → tables referring to it
  for (auto& n : names) {
    FV_ASSIGN_OR_RETURN(const TableShape* shape, table_shape(db, *facts, n));
    const auto& cols = shape->columns;
    if (std::none_of(cols.begin(), cols.end(), [](const Column& c) { return c.pk > 0; }))
      return failed_precondition("table " + n +
                                 " has no PRIMARY KEY: the session extension would not record its changes, so it "
                                 "cannot be replicated (give it one, or list it in local_only_tables())");
    FV_ASSIGN_OR_RETURN(Stmt fk, db.prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?)"));
    fk.bind(1, n);
    for (;;) {
      FV_ASSIGN_OR_RETURN(bool row, fk.step());
      if (!row) break;
      const std::string parent = fk.text(0);
      if (parent != n) children[parent].insert(n);
    }
  }
  // Children first: a table comes once every table that refers to it came (by name among equals).
  std::vector<std::string> order;
  std::set<std::string> placed;
  while (order.size() < names.size()) {
    bool progress = false;
    for (auto& n : names) {
      if (placed.count(n)) continue;
      bool ready = true;
      for (auto& child : children[n])
        if (!placed.count(child) && contains(names, child)) ready = false;
      if (!ready) continue;
      order.push_back(n);
      placed.insert(n);
      progress = true;
    }
    if (!progress) return internal_error("the vault's foreign keys form a cycle: no order applies deletes safely");
  }
  facts->captured = order;
  return order;
}

Result<ChangeCapture> ChangeCapture::start(Db& db, CaptureScope scope) {
  FV_ASSIGN_OR_RETURN(std::vector<std::string> tables, captured_tables(db));
  ChangeCapture c;
  c.db_ = &db;
  int rc = sqlite3session_create(db.handle(), "main", &c.session_);
  if (rc != SQLITE_OK) return internal_error(std::string("cannot start a session: ") + sqlite3_errstr(rc));
  for (auto& t : tables) {
    if (scope != CaptureScope::kAll && (scope == CaptureScope::kLog) != contains(audit_log_tables(), t)) continue;
    rc = sqlite3session_attach(c.session_, t.c_str());
    if (rc != SQLITE_OK) return internal_error("cannot record table " + t + ": " + sqlite3_errstr(rc));
    c.tables_.push_back(t);
  }
  c.captured_ = std::move(tables);
  return c;
}

ChangeCapture::ChangeCapture(ChangeCapture&& o) noexcept
    : db_(o.db_), session_(o.session_), tables_(std::move(o.tables_)), captured_(std::move(o.captured_)) {
  o.session_ = nullptr;
}

ChangeCapture& ChangeCapture::operator=(ChangeCapture&& o) noexcept {
  if (this != &o) {
    if (session_) sqlite3session_delete(session_);
    db_ = o.db_;
    session_ = o.session_;
    tables_ = std::move(o.tables_);
    captured_ = std::move(o.captured_);
    o.session_ = nullptr;
  }
  return *this;
}

ChangeCapture::~ChangeCapture() {
  if (session_) sqlite3session_delete(session_);
}

Result<std::vector<uint8_t>> ChangeCapture::patchset() {
  if (!session_) return failed_precondition("the change capture was moved from");
  // A table created since start() (the API-key table is created on first use) was not recorded.
  FV_ASSIGN_OR_RETURN(const Db::SchemaFacts* now, schema_facts(*db_));
  for (auto& t : now->main)
    if (!contains(captured_, t) && !contains(local_only_tables(), t))
      return failed_precondition("table " + t + " was created after the change capture started: its changes were not recorded");
  int n = 0;
  void* p = nullptr;
  const int rc = sqlite3session_patchset(session_, &n, &p);
  if (rc != SQLITE_OK) return internal_error(std::string("cannot take the session's patchset: ") + sqlite3_errstr(rc));
  std::span<const uint8_t> raw(static_cast<const uint8_t*>(p), static_cast<size_t>(n));
  auto out = drop_local_rows(raw);
  sqlite3_free(p);
  return out;
}

bool ChangeCapture::empty() {
  if (!session_ || sqlite3session_isempty(session_)) return true;
  auto p = patchset();
  return !p.is_ok() || p->empty();
}

Status apply_patchset(Db& db, std::span<const uint8_t> patchset, ApplyMode mode) {
  if (patchset.empty()) return Status::ok();
  if (patchset.size() > static_cast<size_t>(INT32_MAX)) return invalid_argument("the patchset is too large");
  if (patchset[0] != 'P') return invalid_argument("not a patchset (a changeset, or other bytes)");
  FV_RETURN_IF_ERROR(walk_patchset(patchset, [](const ChangeView&) { return Status::ok(); }));
  ApplyContext ctx;
  ctx.mode = mode;
  FV_ASSIGN_OR_RETURN(Db::SchemaFacts* facts, schema_facts(db));
  // Then with SQLite's reader: every table is one this vault has, with the same columns and key
  // (SQLite skips the changes of any other table without an error), and nothing local-only is
  // touched.
  {
    sqlite3_changeset_iter* raw = nullptr;
    void* data = const_cast<uint8_t*>(patchset.data());
    int rc = sqlite3changeset_start(&raw, static_cast<int>(patchset.size()), data);
    IterCloser closer{raw};
    if (rc != SQLITE_OK) return invalid_argument(std::string("the patchset does not parse: ") + sqlite3_errstr(rc));
    while ((rc = sqlite3changeset_next(raw)) == SQLITE_ROW) {
      const char* table = nullptr;
      int ncol = 0, op = 0, indirect = 0;
      if (sqlite3changeset_op(raw, &table, &ncol, &op, &indirect) != SQLITE_OK || !table)
        return invalid_argument("the patchset does not parse");
      const std::string t = table;
      if (contains(local_only_tables(), t)) return invalid_argument("the patchset changes local-only table " + t);
      if (mode == ApplyMode::kCarry && (op != SQLITE_INSERT || !contains(audit_log_tables(), t)))
        return invalid_argument("a carried patchset may only insert audit-log rows (it has a change of " + t + ")");
      if (mode == ApplyMode::kRestate && (op == SQLITE_INSERT) != contains(audit_log_tables(), t))
        return invalid_argument("a restatement may only update rows and insert audit-log rows (it has a change of " +
                                t + ")");
      if (!ctx.tables.count(t)) {
        FV_ASSIGN_OR_RETURN(const TableShape* shape, table_shape(db, *facts, t));
        const auto& cols = shape->columns;
        unsigned char* pk = nullptr;
        int npk = 0;
        sqlite3changeset_pk(raw, &pk, &npk);
        bool same = !cols.empty() && static_cast<int>(cols.size()) == ncol && npk == ncol;
        for (int i = 0; same && i < ncol; ++i) same = cols[static_cast<size_t>(i)].pk == pk[i];
        if (!same)
          return failed_precondition("the patchset's table " + t + " (" + std::to_string(ncol) +
                                     " columns) is not this vault's: the replica's schema differs from the writer's");
        ctx.tables.emplace(t, shape);
      }
      if (const TableShape& shape = *ctx.tables[t]; op == SQLITE_DELETE && shape.autoincrement) {
        // Applied or skipped (the row already gone), a delete names an id that was given once.
        const auto& cols = shape.columns;
        const auto pk = std::find_if(cols.begin(), cols.end(), [](const Column& c) { return c.pk > 0; });
        sqlite3_value* key = nullptr;
        sqlite3changeset_old(raw, static_cast<int>(pk - cols.begin()), &key);
        if (key && sqlite3_value_type(key) == SQLITE_INTEGER) {
          auto& floor = ctx.deleted_key_max[t];
          floor = std::max<int64_t>(floor, sqlite3_value_int64(key));
        }
      }
      if (t == "meta") {
        sqlite3_value* key = nullptr;
        if (op == SQLITE_INSERT) sqlite3changeset_new(raw, 0, &key);
        else sqlite3changeset_old(raw, 0, &key);
        const std::string k = key && sqlite3_value_type(key) == SQLITE_TEXT
                                  ? reinterpret_cast<const char*>(sqlite3_value_text(key)) : "";
        if (!contains(replicated_meta_keys(), k))
          return invalid_argument("the patchset changes meta key '" + k + "', which is not replicated");
      }
    }
    if (rc != SQLITE_DONE) return invalid_argument(std::string("the patchset does not parse: ") + sqlite3_errstr(rc));
  }
  // A savepoint of ours around the patchset and the sequences it raises: both or neither.
  FV_RETURN_IF_ERROR(db.exec("SAVEPOINT fv_apply_patchset"));
  Status st = apply_changes(db, patchset, ctx);
  if (st.is_ok()) st = raise_sequences(db, ctx.deleted_key_max);
  if (!st.is_ok()) (void)db.exec("ROLLBACK TO fv_apply_patchset");
  const Status released = db.exec("RELEASE fv_apply_patchset");
  return st.is_ok() ? released : st;
}

Result<std::vector<uint8_t>> restate_updates(Db& db, const std::vector<PatchChange>& changes) {
  FV_ASSIGN_OR_RETURN(Db::SchemaFacts* facts, schema_facts(db));
  std::vector<PatchChange> restated;
  for (const PatchChange& ch : changes) {
    if (ch.op != SQLITE_UPDATE) continue;
    if (contains(local_only_tables(), ch.table) || contains(audit_log_tables(), ch.table))
      return invalid_argument("a restatement of table " + ch.table + ", which is local-only or the audit log's");
    FV_ASSIGN_OR_RETURN(const TableShape* shape, table_shape(db, *facts, ch.table));
    const auto& cols = shape->columns;
    if (cols.size() != ch.fields.size())
      return failed_precondition("table " + ch.table + " of the patchset is not this vault's");
    std::string set, where;
    for (size_t k = 0; k < cols.size(); ++k) {
      if (ch.pk[k] != 0) where += std::string(where.empty() ? "" : " AND ") + "\"" + cols[k].name + "\" = ?";
      else if (ch.fields[k].type != PatchField::Type::kUndefined) set += std::string(set.empty() ? "" : ", ") + "\"" + cols[k].name + "\"";
    }
    if (set.empty()) continue;
    FV_ASSIGN_OR_RETURN(Stmt q, db.prepare("SELECT " + set + " FROM \"" + ch.table + "\" WHERE " + where));
    int param = 0;
    for (size_t k = 0; k < cols.size(); ++k) {
      if (ch.pk[k] == 0) continue;
      const PatchField& f = ch.fields[k];
      if (f.type == PatchField::Type::kInteger) q.bind(++param, f.integer);
      else if (f.type == PatchField::Type::kReal) q.bind(++param, f.real);
      else if (f.type == PatchField::Type::kText) q.bind(++param, f.bytes);
      else return invalid_argument("a restatement of table " + ch.table + " keyed by a blob");
    }
    FV_ASSIGN_OR_RETURN(const bool row, q.step());
    if (!row) continue;  // deleted since: the delete is in a later message of the stream
    PatchChange now = ch;
    int col = 0;
    for (size_t k = 0; k < cols.size(); ++k) {
      if (ch.pk[k] != 0 || ch.fields[k].type == PatchField::Type::kUndefined) continue;
      PatchField& f = now.fields[k];
      f = PatchField{};
      switch (q.type(col)) {
        case SQLITE_INTEGER: f.type = PatchField::Type::kInteger; f.integer = q.i64(col); break;
        case SQLITE_FLOAT: f.type = PatchField::Type::kReal; f.real = q.f64(col); break;
        case SQLITE_TEXT: f.type = PatchField::Type::kText; f.bytes = q.text(col); break;
        case SQLITE_BLOB: {
          f.type = PatchField::Type::kBlob;
          const auto b = q.blob(col);
          f.bytes.assign(b.begin(), b.end());
          break;
        }
        default: f.type = PatchField::Type::kNull; break;
      }
      ++col;
    }
    restated.push_back(std::move(now));
  }
  if (restated.empty()) return std::vector<uint8_t>{};
  return encode_patchset(restated);
}

Result<std::vector<uint8_t>> restate_row(Db& db, const std::string& table, int64_t id) {
  FV_ASSIGN_OR_RETURN(Db::SchemaFacts* facts, schema_facts(db));
  FV_ASSIGN_OR_RETURN(const TableShape* shape, table_shape(db, *facts, table));
  if (std::count_if(shape->columns.begin(), shape->columns.end(), [](const Column& c) { return c.pk > 0; }) != 1)
    return invalid_argument("a restated row of table " + table + " needs a single integer key");
  PatchChange ch;
  ch.table = table;
  ch.op = SQLITE_UPDATE;
  for (const Column& c : shape->columns) {
    ch.pk.push_back(static_cast<uint8_t>(c.pk));
    // The key as given; every other column marked set, to be read as it is now.
    ch.fields.push_back(c.pk > 0 ? PatchField{PatchField::Type::kInteger, id, 0, {}}
                                 : PatchField{PatchField::Type::kNull, 0, 0, {}});
  }
  return restate_updates(db, {ch});
}

Result<int> column_position(Db& db, const std::string& table, const std::string& column) {
  FV_ASSIGN_OR_RETURN(Db::SchemaFacts* facts, schema_facts(db));
  FV_ASSIGN_OR_RETURN(const TableShape* shape, table_shape(db, *facts, table));
  for (size_t k = 0; k < shape->columns.size(); ++k)
    if (shape->columns[k].name == column) return static_cast<int>(k);
  return -1;
}

int64_t PatchsetSummary::total_deletes() const {
  int64_t n = 0;
  for (auto& d : deletes) n += d.second;
  return n;
}

int64_t PatchsetSummary::count(const std::string& table, int op) const {
  const auto& v = op == SQLITE_INSERT ? inserts : op == SQLITE_UPDATE ? updates : deletes;
  for (auto& e : v)
    if (e.first == table) return e.second;
  return 0;
}

Result<PatchsetSummary> summarize_patchset(std::span<const uint8_t> patchset) {
  PatchsetSummary s;
  if (patchset.empty()) return s;
  if (patchset.size() > static_cast<size_t>(INT32_MAX)) return invalid_argument("the patchset is too large");
  if (patchset[0] != 'P') return invalid_argument("not a patchset (a changeset, or other bytes)");
  FV_RETURN_IF_ERROR(walk_patchset(patchset, [](const ChangeView&) { return Status::ok(); }));
  sqlite3_changeset_iter* raw = nullptr;
  void* data = const_cast<uint8_t*>(patchset.data());
  int rc = sqlite3changeset_start(&raw, static_cast<int>(patchset.size()), data);
  IterCloser closer{raw};
  if (rc != SQLITE_OK) return invalid_argument(std::string("the patchset does not parse: ") + sqlite3_errstr(rc));
  auto bump = [](std::vector<std::pair<std::string, int64_t>>& v, const std::string& t) {
    auto e = std::find_if(v.begin(), v.end(), [&](const std::pair<std::string, int64_t>& x) { return x.first == t; });
    if (e == v.end()) v.emplace_back(t, 1);
    else ++e->second;
  };
  while ((rc = sqlite3changeset_next(raw)) == SQLITE_ROW) {
    const char* table = nullptr;
    int ncol = 0, op = 0, indirect = 0;
    if (sqlite3changeset_op(raw, &table, &ncol, &op, &indirect) != SQLITE_OK || !table)
      return invalid_argument("the patchset does not parse");
    const std::string t = table;
    bump(op == SQLITE_INSERT ? s.inserts : op == SQLITE_UPDATE ? s.updates : s.deletes, t);
    if ((t == "face" && op != SQLITE_UPDATE) || (t == "subject" && op == SQLITE_DELETE)) {
      sqlite3_value* id = nullptr;  // column 0: `id INTEGER PRIMARY KEY` of both tables
      if (op == SQLITE_INSERT) sqlite3changeset_new(raw, 0, &id);
      else sqlite3changeset_old(raw, 0, &id);
      if (!id || sqlite3_value_type(id) != SQLITE_INTEGER) return invalid_argument("the patchset's " + t + " row has no integer id");
      const int64_t v = sqlite3_value_int64(id);
      if (t == "subject") s.subject_ids_deleted.push_back(v);
      else if (op == SQLITE_INSERT) s.face_ids_inserted.push_back(v);
      else s.face_ids_deleted.push_back(v);
    }
  }
  if (rc != SQLITE_DONE) return invalid_argument(std::string("the patchset does not parse: ") + sqlite3_errstr(rc));
  for (auto* v : {&s.face_ids_inserted, &s.face_ids_deleted, &s.subject_ids_deleted}) std::sort(v->begin(), v->end());
  return s;
}

}  // namespace fv::vault
