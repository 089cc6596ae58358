// The prepared statements of one connection, kept for reuse. The vault runs the same ~100
// statements over and over, and preparing them again each time was measured at a sixth of
// the CPU of a replicated enrollment (docs/benchmarks.md, "Cluster mode"). A `Stmt` made from
// a cached statement hands it back when it is destroyed; the cache resets it and clears its
// bindings at once, so an idle statement holds no read transaction, no lock and no bound value.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace fv::vault {

class StmtCache {
 public:
  // At most `capacity` idle statements, one per SQL text; the least recently used goes first.
  explicit StmtCache(size_t capacity) : capacity_(capacity) {}
  ~StmtCache() { close(); }
  StmtCache(const StmtCache&) = delete;
  StmtCache& operator=(const StmtCache&) = delete;

  // The idle statement of exactly this SQL text (reset, no bindings), or nullptr.
  sqlite3_stmt* take(const std::string& sql);
  // Resets `s`, clears its bindings and keeps it as the idle statement of `sql`; finalizes it
  // instead when the cache is closed or another one of that text is already idle.
  void give_back(const std::string& sql, sqlite3_stmt* s);
  // Finalizes every idle statement; statements given back later are finalized at once. The
  // connection can then close: sqlite3_close_v2 waits for every statement to be finalized.
  void close();

  // Whether statements of this SQL text are worth keeping: not PRAGMAs, some of which compute
  // their rows when they are prepared.
  static bool cacheable(const std::string& sql);

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;
    size_t idle = 0;
  };
  Stats stats() const;

 private:
  using Lru = std::list<std::pair<std::string, sqlite3_stmt*>>;  // most recent first
  mutable std::mutex mu_;
  size_t capacity_;
  bool closed_ = false;
  Lru lru_;
  std::unordered_map<std::string, Lru::iterator> idle_;
  Stats stats_;
};

}  // namespace fv::vault
