#include "vault/sqlite.h"

namespace fv::vault {
namespace {
Status sql_error(sqlite3* db, int rc, const std::string& what) {
  std::string m = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    return failed_precondition(m + " (the vault is busy: another process holds it)");
  if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return corrupt_data(m);
  if (rc == SQLITE_FULL) return storage_full(m + " (the disk is full: nothing was written)");
  if (rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY) return io_error(m);
  if (rc == SQLITE_CONSTRAINT) return invalid_argument(m);
  return internal_error(m);
}
}  // namespace

// Enough for every statement the vault runs (~100 texts) with room for the few built at run time.
constexpr size_t kStatementCacheCapacity = 256;

void Stmt::release() {
  if (s_ == nullptr) return;
  if (cache_) cache_->give_back(sql_, s_);
  else sqlite3_finalize(s_);
  s_ = nullptr;
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    release();
    db_ = o.db_;
    s_ = o.s_;
    err_ = std::move(o.err_);
    cache_ = std::move(o.cache_);
    sql_ = std::move(o.sql_);
    o.s_ = nullptr;
  }
  return *this;
}

#define FV_BIND(call)                                                              \
  do {                                                                             \
    int rc_ = (call);                                                              \
    if (rc_ != SQLITE_OK && err_.is_ok()) err_ = sql_error(db_, rc_, "bind");      \
  } while (0)

Stmt& Stmt::bind(int i, int64_t v) { FV_BIND(sqlite3_bind_int64(s_, i, v)); return *this; }
Stmt& Stmt::bind(int i, double v) { FV_BIND(sqlite3_bind_double(s_, i, v)); return *this; }
Stmt& Stmt::bind(int i, const std::string& v) {
  FV_BIND(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  return *this;
}
Stmt& Stmt::bind(int i, std::span<const uint8_t> b) {
  FV_BIND(sqlite3_bind_blob(s_, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT));
  return *this;
}
Stmt& Stmt::bind(int i, const std::optional<std::string>& v) { return v ? bind(i, *v) : bind_null(i); }
Stmt& Stmt::bind_null(int i) { FV_BIND(sqlite3_bind_null(s_, i)); return *this; }

Result<bool> Stmt::step() {
  if (!err_.is_ok()) return err_;
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sql_error(db_, rc, std::string("query failed: ") + sqlite3_sql(s_));
}

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r.is_ok()) return r.status();
    if (!*r) return Status::ok();
  }
}

Status Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
  err_ = Status::ok();
  return Status::ok();
}

std::string Stmt::text(int col) const {
  const auto* p = sqlite3_column_text(s_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, col)) : std::string();
}

Result<std::vector<std::string>> Stmt::texts(int col) {
  std::vector<std::string> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, step());
    if (!row) return out;
    out.push_back(text(col));
  }
}

std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}

std::vector<uint8_t> Stmt::blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, col));
  const int n = sqlite3_column_bytes(s_, col);
  return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
}

Db::Db(sqlite3* h) : h_(h), cache_(std::make_shared<StmtCache>(kStatementCacheCapacity)) {}

Db::~Db() { close(); }

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    close();
    h_ = o.h_;
    o.h_ = nullptr;
    cache_ = std::move(o.cache_);
    interceptor_ = std::move(o.interceptor_);
    schema_facts_ = std::move(o.schema_facts_);
  }
  return *this;
}

void Db::close() {
  // The idle statements first: sqlite3_close_v2 keeps the connection (and its file) open until
  // every statement is finalized. A Stmt still alive finalizes its own when it goes.
  if (cache_) cache_->close();
  cache_.reset();
  if (h_) sqlite3_close_v2(h_);
  h_ = nullptr;
  schema_facts_.reset();
}

Result<Db> Db::open(const std::filesystem::path& path, bool create) {
  sqlite3* h = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &h, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status st = sql_error(h, rc, "cannot open " + path.string());
    if (h) sqlite3_close_v2(h);
    return st;
  }
  sqlite3_extended_result_codes(h, 0);
  return Db(h);
}

Status Db::exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(h_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return sql_error(nullptr, rc, m + " [" + sql.substr(0, 80) + "]");
  }
  return Status::ok();
}

Result<Stmt> Db::prepare(const std::string& sql) {
  const bool cacheable = cache_ && StmtCache::cacheable(sql);
  if (cacheable)
    if (sqlite3_stmt* s = cache_->take(sql)) return Stmt(h_, s, cache_, sql);
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v3(h_, sql.c_str(), static_cast<int>(sql.size()),
                                    cacheable ? SQLITE_PREPARE_PERSISTENT : 0, &s, nullptr);
  if (rc != SQLITE_OK) return sql_error(h_, rc, "prepare [" + sql.substr(0, 80) + "]");
  if (s == nullptr) return invalid_argument("prepare: no statement in [" + sql.substr(0, 80) + "]");
  if (cacheable) return Stmt(h_, s, cache_, sql);
  return Stmt(h_, s);
}

Result<std::optional<std::string>> Db::query_text(const std::string& sql) {
  FV_ASSIGN_OR_RETURN(Stmt s, prepare(sql));
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row || s.is_null(0)) return std::optional<std::string>();
  return std::optional<std::string>(s.text(0));
}

Result<int64_t> Db::query_int(const std::string& sql) {
  FV_ASSIGN_OR_RETURN(Stmt s, prepare(sql));
  FV_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return int64_t{0};
  return s.i64(0);
}

Result<Txn> Txn::begin(Db& db) {
  FV_RETURN_IF_ERROR(db.exec("BEGIN IMMEDIATE"));
  Txn txn(db);
  if (db.commit_interceptor()) {
    auto pending = db.commit_interceptor()->begin(db);
    if (!pending.is_ok()) return pending.status();  // ~Txn rolls back
    txn.pending_ = std::move(*pending);
  }
  return txn;
}

Txn::~Txn() {
  if (!done_) (void)db_->exec("ROLLBACK");
}

Status Txn::commit() {
  done_ = true;
  if (pending_) {
    auto pending = std::move(pending_);
    Status st = pending->commit(*db_);
    if (db_->in_transaction()) (void)db_->exec("ROLLBACK");  // whatever the interceptor left open
    return st;
  }
  Status st = db_->exec("COMMIT");
  if (!st.is_ok()) (void)db_->exec("ROLLBACK");
  return st;
}

Result<ReadSnapshot> ReadSnapshot::begin(Db& db) {
  if (db.in_transaction()) return ReadSnapshot(nullptr);
  FV_RETURN_IF_ERROR(db.exec("BEGIN"));
  return ReadSnapshot(&db);
}

ReadSnapshot::~ReadSnapshot() {
  if (db_ != nullptr) (void)db_->exec("ROLLBACK");  // nothing was written
}

}  // namespace fv::vault
