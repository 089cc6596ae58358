#include "vault/stmt_cache.h"

#include <cctype>

namespace fv::vault {

sqlite3_stmt* StmtCache::take(const std::string& sql) {
  std::lock_guard l(mu_);
  auto it = idle_.find(sql);
  if (closed_ || it == idle_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  sqlite3_stmt* s = it->second->second;
  lru_.erase(it->second);
  idle_.erase(it);
  ++stats_.hits;
  return s;
}

void StmtCache::give_back(const std::string& sql, sqlite3_stmt* s) {
  // Reset first: a statement stopped between rows would otherwise keep its read transaction
  // (and in WAL mode its snapshot) while it waits here.
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  sqlite3_stmt* drop = s;
  {
    std::lock_guard l(mu_);
    if (!closed_ && !idle_.count(sql)) {
      lru_.emplace_front(sql, s);
      idle_.emplace(sql, lru_.begin());
      drop = nullptr;
      if (lru_.size() > capacity_) {
        drop = lru_.back().second;
        idle_.erase(lru_.back().first);
        lru_.pop_back();
        ++stats_.evictions;
      }
    }
  }
  if (drop != nullptr) sqlite3_finalize(drop);
}

void StmtCache::close() {
  Lru idle;
  {
    std::lock_guard l(mu_);
    closed_ = true;
    idle.swap(lru_);
    idle_.clear();
  }
  for (auto& [sql, s] : idle) sqlite3_finalize(s);
}

bool StmtCache::cacheable(const std::string& sql) {
  size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  static const std::string kPragma = "pragma";
  if (sql.size() - i < kPragma.size()) return true;
  for (size_t k = 0; k < kPragma.size(); ++k)
    if (std::tolower(static_cast<unsigned char>(sql[i + k])) != kPragma[k]) return true;
  return false;
}

StmtCache::Stats StmtCache::stats() const {
  std::lock_guard l(mu_);
  Stats s = stats_;
  s.idle = lru_.size();
  return s;
}

}  // namespace fv::vault
