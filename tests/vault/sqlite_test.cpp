// vault::Db's statement cache (vault/stmt_cache.h) on real SQLite files: reuse, no leftover
// bindings or snapshots, statements of one text side by side, schema changes, PRAGMAs, the
// least recently used going first, and a connection that really closes.
#include <dirent.h>
#include <cerrno>

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "vault/sqlite.h"
#include "vault/stmt_cache.h"

namespace fv::vault {
namespace {

namespace fs = std::filesystem;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "fv-sqlite-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ / "t.db";
    db_ = open();
    ASSERT_TRUE(db_.exec("PRAGMA journal_mode=WAL; CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);"
                         "INSERT INTO t(b) VALUES('one'),('two')").is_ok());
  }
  void TearDown() override {
    db_.close();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Db open() {
    auto db = Db::open(path_, true);
    EXPECT_TRUE(db.is_ok()) << db.status().to_string();
    return db.is_ok() ? std::move(*db) : Db();
  }
  // Descriptors of this process open on the database file itself.
  int fds_on_db() const {
    int n = 0;
    for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
      std::error_code ec;
      const fs::path target = fs::read_symlink(e.path(), ec);
      n += !ec && target == fs::canonical(path_) ? 1 : 0;
    }
    return n;
  }
  fs::path dir_, path_;
  Db db_;
};

TEST_F(SqliteTest, TextsReadsOneColumnOfEveryRemainingRow) {
  auto s = db_.prepare("SELECT b FROM t WHERE a >= ? ORDER BY a");
  ASSERT_TRUE(s.is_ok());
  s->bind(1, int64_t{1});
  auto all = s->texts(0);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  EXPECT_EQ(*all, (std::vector<std::string>{"one", "two"}));
  ASSERT_TRUE(s->reset().is_ok());
  s->bind(1, int64_t{3});
  auto none = s->texts(0);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  auto bad = db_.prepare("SELECT abs(-9223372036854775807 - 1)");  // fails when stepped: integer overflow
  ASSERT_TRUE(bad.is_ok());
  EXPECT_FALSE(bad->texts(0).is_ok());
}

TEST_F(SqliteTest, ARepeatedStatementIsPreparedOnceAndComesBackUnbound) {
  const std::string sql = "SELECT b, ?2 FROM t WHERE a = ?1";
  const auto before = db_.statement_cache_stats();
  {
    auto s = db_.prepare(sql);
    ASSERT_TRUE(s.is_ok());
    s->bind(1, int64_t{2}).bind(2, std::string("bound"));
    ASSERT_TRUE(*s->step());
    EXPECT_EQ(s->text(0), "two");
    EXPECT_EQ(s->text(1), "bound");
  }
  for (int64_t a : {1, 2}) {
    auto s = db_.prepare(sql);
    ASSERT_TRUE(s.is_ok());
    s->bind(1, a);  // ?2 left unbound: the last use's value must not leak into this one
    ASSERT_TRUE(*s->step());
    EXPECT_EQ(s->text(0), a == 1 ? "one" : "two");
    EXPECT_TRUE(s->is_null(1)) << "a statement from the cache carries no binding of its last use";
  }
  const auto after = db_.statement_cache_stats();
  EXPECT_EQ(after.misses - before.misses, 1u);
  EXPECT_EQ(after.hits - before.hits, 2u);
  EXPECT_EQ(after.idle, before.idle + 1);
}

TEST_F(SqliteTest, AStatementDroppedBetweenRowsKeepsNoSnapshot) {
  Db writer = open();
  {
    auto s = db_.prepare("SELECT a FROM t ORDER BY a");
    ASSERT_TRUE(s.is_ok());
    ASSERT_TRUE(*s->step());  // one row of two read: the statement holds a read snapshot now
  }
  ASSERT_TRUE(writer.exec("INSERT INTO t(b) VALUES('three')").is_ok());
  // A reader still on the old snapshot would keep the checkpoint from truncating the WAL.
  auto ck = writer.prepare("PRAGMA wal_checkpoint(TRUNCATE)");
  ASSERT_TRUE(ck.is_ok());
  ASSERT_TRUE(*ck->step());
  EXPECT_EQ(ck->i64(0), 0) << "the checkpoint was blocked (busy)";
  EXPECT_EQ(ck->i64(1), 0) << "WAL frames left after TRUNCATE: a reader held them";
  EXPECT_EQ(*db_.query_int("SELECT count(*) FROM t"), 3) << "the reader sees the new row";
}

TEST_F(SqliteTest, TwoStatementsOfOneTextRunSideBySide) {
  const std::string sql = "SELECT a FROM t ORDER BY a";
  ASSERT_TRUE(db_.prepare(sql).is_ok());  // cached, idle
  int pairs = 0;
  {
    auto outer = db_.prepare(sql);  // the cached one
    ASSERT_TRUE(outer.is_ok());
    while (*outer->step()) {
      auto inner = db_.prepare(sql);  // none idle: a second statement
      ASSERT_TRUE(inner.is_ok());
      int rows = 0;
      while (*inner->step()) ++rows;
      EXPECT_EQ(rows, 2);
      ++pairs;
    }
  }
  EXPECT_EQ(pairs, 2) << "the inner statements did not disturb the outer one";
  EXPECT_EQ(db_.statement_cache_stats().idle, 1u) << "one idle statement per text; the others were finalized";
}

TEST_F(SqliteTest, ACachedStatementFollowsASchemaChange) {
  ASSERT_TRUE(db_.prepare("SELECT * FROM t WHERE a = 1").is_ok());
  Db other = open();
  ASSERT_TRUE(other.exec("ALTER TABLE t ADD COLUMN c INTEGER DEFAULT 7").is_ok());
  auto s = db_.prepare("SELECT * FROM t WHERE a = 1");
  ASSERT_TRUE(s.is_ok());
  auto row = s->step();
  ASSERT_TRUE(row.is_ok()) << row.status().to_string();
  ASSERT_TRUE(*row);
  EXPECT_EQ(s->i64(2), 7) << "the column added by another connection is read";
}

// A full database (here: the page limit; on a real disk, ENOSPC, which SQLite reports the same
// way) is kStorageFull, never an over-sized request, and the failed write leaves nothing.
TEST_F(SqliteTest, AFullDatabaseIsStorageFullAndKeepsWhatItHeld) {
  const int64_t rows = *db_.query_int("SELECT count(*) FROM t");
  const int64_t pages = *db_.query_int("PRAGMA page_count");
  ASSERT_TRUE(db_.exec("PRAGMA max_page_count = " + std::to_string(pages + 1)).is_ok());
  Status st;
  for (int i = 0; i < 64 && st.is_ok(); ++i) {
    auto ins = db_.prepare("INSERT INTO t(a, b) VALUES(?, ?)");
    ASSERT_TRUE(ins.is_ok());
    ins->bind_all(int64_t{1000 + i}, std::string(64 << 10, 'x'));
    st = ins->run();
  }
  ASSERT_FALSE(st.is_ok()) << "64 rows of 64 KiB fit in one page more";
  EXPECT_EQ(st.code(), StatusCode::kStorageFull) << st.to_string();
  EXPECT_NE(st.message().find("disk is full"), std::string::npos) << st.message();
  EXPECT_GE(*db_.query_int("SELECT count(*) FROM t"), rows);
  EXPECT_EQ(os_error(ENOSPC, "write").code(), StatusCode::kStorageFull);
  EXPECT_EQ(os_error(EDQUOT, "write").code(), StatusCode::kStorageFull);
  EXPECT_EQ(os_error(EIO, "write").code(), StatusCode::kIoError);
}

TEST_F(SqliteTest, PragmasArePreparedAfresh) {
  const auto before = db_.statement_cache_stats();
  EXPECT_EQ(*db_.query_int("PRAGMA user_version"), 0);
  ASSERT_TRUE(db_.exec("PRAGMA user_version = 5").is_ok());
  EXPECT_EQ(*db_.query_int("  pragma user_version"), 5);
  const auto after = db_.statement_cache_stats();
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses) << "a PRAGMA never asks the cache";
  EXPECT_TRUE(StmtCache::cacheable("SELECT 1"));
  EXPECT_FALSE(StmtCache::cacheable("\n PrAgMa table_info(t)"));
}

TEST_F(SqliteTest, TheLeastRecentlyUsedStatementGoesFirst) {
  StmtCache cache(2);
  auto prepared = [&](const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_.handle(), sql.c_str(), -1, &s, nullptr), SQLITE_OK);
    return s;
  };
  cache.give_back("SELECT 1", prepared("SELECT 1"));
  cache.give_back("SELECT 2", prepared("SELECT 2"));
  sqlite3_stmt* one = cache.take("SELECT 1");
  ASSERT_NE(one, nullptr);
  cache.give_back("SELECT 1", one);  // now the most recent
  cache.give_back("SELECT 3", prepared("SELECT 3"));
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_EQ(cache.stats().idle, 2u);
  EXPECT_EQ(cache.take("SELECT 2"), nullptr) << "the least recently used one was finalized";
  sqlite3_stmt* again = cache.take("SELECT 1");
  EXPECT_EQ(again, one);
  cache.give_back("SELECT 1", again);
  cache.close();
  EXPECT_EQ(cache.stats().idle, 0u);
  EXPECT_EQ(cache.take("SELECT 1"), nullptr) << "a closed cache hands out nothing";
}

TEST_F(SqliteTest, ClosingTheConnectionClosesTheFileWithStatementsIdleOrAlive) {
  ASSERT_TRUE(db_.query_int("SELECT count(*) FROM t").is_ok());  // leaves an idle statement
  ASSERT_GT(db_.statement_cache_stats().idle, 0u);
  ASSERT_GT(fds_on_db(), 0);
  db_.close();
  EXPECT_EQ(fds_on_db(), 0) << "an idle cached statement kept the connection open";

  Db db = open();
  auto alive = db.prepare("SELECT a FROM t");
  ASSERT_TRUE(alive.is_ok());
  ASSERT_TRUE(*alive->step());
  db.close();  // the statement outlives its connection
  *alive = Stmt();
  EXPECT_EQ(fds_on_db(), 0) << "the last statement's end closes the connection";
}

}  // namespace
}  // namespace fv::vault
