// A small RAII layer over the SQLite C API: Db (one connection), Stmt (prepared statement with
// chained binds), Txn (BEGIN IMMEDIATE … COMMIT, rolled back unless committed). Errors are
// Status values naming the SQL that failed.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "vault/stmt_cache.h"

namespace fv::vault {

class Stmt {
 public:
  Stmt() = default;
  // With a cache, the statement goes back to it under `sql` instead of being finalized.
  Stmt(sqlite3* db, sqlite3_stmt* s, std::shared_ptr<StmtCache> cache = {}, std::string sql = {})
      : db_(db), s_(s), cache_(std::move(cache)), sql_(std::move(sql)) {}
  ~Stmt() { release(); }
  Stmt(Stmt&& o) noexcept
      : db_(o.db_), s_(o.s_), err_(std::move(o.err_)), cache_(std::move(o.cache_)), sql_(std::move(o.sql_)) {
    o.s_ = nullptr;
  }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters are 1-based, as in SQLite.
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, const std::string& v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string(v)); }
  Stmt& bind(int i, std::span<const uint8_t> blob);
  Stmt& bind(int i, const std::vector<uint8_t>& blob) { return bind(i, std::span<const uint8_t>(blob)); }
  Stmt& bind(int i, const std::optional<std::string>& v);
  Stmt& bind_null(int i);
  template <class... A>
  Stmt& bind_all(const A&... a) {
    int i = 0;
    (bind(++i, a), ...);
    return *this;
  }

  // true: a row is available; false: done.
  Result<bool> step();
  // Runs to completion (for INSERT/UPDATE/DELETE).
  Status run();
  Status reset();

  int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  double f64(int col) const { return sqlite3_column_double(s_, col); }
  std::string text(int col) const;
  std::optional<std::string> opt_text(int col) const;
  // Steps through every remaining row: column `col` of each, as text.
  Result<std::vector<std::string>> texts(int col);
  std::vector<uint8_t> blob(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  int type(int col) const { return sqlite3_column_type(s_, col); }  // SQLITE_INTEGER, SQLITE_TEXT, ...

 private:
  void release();
  sqlite3* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
  Status err_;
  std::shared_ptr<StmtCache> cache_;
  std::string sql_;
};

class Db;

// Cluster mode (docs/cluster.md): a connection whose transactions are replicated instead of
// committed locally. begin() runs right after BEGIN and returns what the transaction needs at
// its end; PendingCommit::commit() replaces COMMIT — it takes the transaction's changes, ends
// the transaction itself and returns once the change is durable where the interceptor says
// (for a shard: stored by JetStream and applied by enough replicas). A transaction dropped
// without commit() is rolled back as usual.
class PendingCommit {
 public:
  virtual ~PendingCommit() = default;
  virtual Status commit(Db& db) = 0;
};
class CommitInterceptor {
 public:
  virtual ~CommitInterceptor() = default;
  virtual Result<std::unique_ptr<PendingCommit>> begin(Db& db) = 0;
};

class Db {
 public:
  Db() = default;
  ~Db();
  Db(Db&& o) noexcept
      : h_(o.h_), cache_(std::move(o.cache_)), interceptor_(std::move(o.interceptor_)),
        schema_facts_(std::move(o.schema_facts_)) {
    o.h_ = nullptr;
  }
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  static Result<Db> open(const std::filesystem::path& path, bool create);
  void close();
  bool is_open() const { return h_ != nullptr; }

  Status exec(const std::string& sql);
  // A statement of this connection's cache when one of the same text is idle (stmt_cache.h).
  Result<Stmt> prepare(const std::string& sql);
  // One value from the first row of a query, or nullopt when there is no row.
  Result<std::optional<std::string>> query_text(const std::string& sql);
  Result<int64_t> query_int(const std::string& sql);
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(h_); }
  int changes() const { return sqlite3_changes(h_); }
  sqlite3* handle() { return h_; }
  // Whether a transaction is open on this connection.
  bool in_transaction() const { return h_ && sqlite3_get_autocommit(h_) == 0; }

  // Transactions begun after this go through `interceptor` (nullptr: commit locally again).
  void set_commit_interceptor(std::shared_ptr<CommitInterceptor> interceptor) { interceptor_ = std::move(interceptor); }
  const std::shared_ptr<CommitInterceptor>& commit_interceptor() const { return interceptor_; }

  StmtCache::Stats statement_cache_stats() const { return cache_ ? cache_->stats() : StmtCache::Stats{}; }

  // What replication reads of the schema on every transaction (changeset.cpp: the tables it
  // records and their columns), kept with the connection until the schema changes.
  struct SchemaFacts;
  std::shared_ptr<SchemaFacts>& schema_facts() { return schema_facts_; }

 private:
  explicit Db(sqlite3* h);
  sqlite3* h_ = nullptr;
  std::shared_ptr<StmtCache> cache_;
  std::shared_ptr<CommitInterceptor> interceptor_;
  std::shared_ptr<SchemaFacts> schema_facts_;
};

// BEGIN IMMEDIATE: takes the write lock up front (waiting up to the busy timeout), so two
// processes never deadlock upgrading read locks.
class Txn {
 public:
  static Result<Txn> begin(Db& db);
  Txn(Txn&& o) noexcept : db_(o.db_), done_(o.done_), pending_(std::move(o.pending_)) { o.done_ = true; }
  Txn(const Txn&) = delete;
  ~Txn();
  Status commit();

 private:
  explicit Txn(Db& db) : db_(&db) {}
  Db* db_;
  bool done_ = false;
  std::unique_ptr<PendingCommit> pending_;  // replicated (cluster mode): commit() hands over to it
};

// One consistent view for a use case that reads with several statements: another connection
// (a cluster replica applying a message, another process) may commit between two of them. A
// deferred BEGIN: the first read fixes the snapshot (WAL), and no lock stops the writers.
// Inside a transaction already open it adds nothing.
class ReadSnapshot {
 public:
  static Result<ReadSnapshot> begin(Db& db);
  ReadSnapshot(ReadSnapshot&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ~ReadSnapshot();

 private:
  explicit ReadSnapshot(Db* db) : db_(db) {}
  Db* db_;  // null when this began nothing
};

}  // namespace fv::vault

