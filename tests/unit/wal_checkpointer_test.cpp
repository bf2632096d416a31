#include "adapters/sqlite/wal_checkpointer.hpp"

#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

using retentiond::adapters::sqlite::log_needs_sync;
using retentiond::adapters::sqlite::WalCheckpointer;

namespace {

// A WAL-mode database whose log only its writers' checkpoints copy.
struct WalDatabase {
  retentiond::test::TempDir dir;
  std::filesystem::path path = dir / "app.db";
  SQLite::Database db{path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};

  WalDatabase() {
    REQUIRE(db.execAndGet("PRAGMA journal_mode=WAL").getString() == "wal");
    db.exec("PRAGMA wal_autocheckpoint=0");
    db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, payload BLOB)");
  }

  void write_pages(int rows) {
    db.exec("INSERT INTO logs(payload) SELECT randomblob(3000) FROM "
            "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
            std::to_string(rows) + ") SELECT i FROM n)");
  }

  // The frames in the log: SQLite restarts it at the first write after a checkpoint copied all
  // of it. (This checkpoint of its own copies them too: the last look.)
  int log_frames() {
    SQLite::Statement checkpoint(db, "PRAGMA wal_checkpoint(PASSIVE)");
    REQUIRE(checkpoint.executeStep());
    return checkpoint.getColumn(1).getInt();
  }
};

}  // namespace

TEST_CASE("wal checkpointer: once wait returns, the whole log is copied and SQLite writes it "
          "from its start again") {
  WalDatabase app;
  WalCheckpointer checkpointer(app.path, "app", std::chrono::seconds{1});
  app.write_pages(100);
  checkpointer.request();
  checkpointer.wait();
  app.write_pages(10);
  CHECK(app.log_frames() < 30);

  // Without the checkpointer, the log grows.
  WalDatabase alone;
  alone.write_pages(100);
  alone.write_pages(10);
  CHECK(alone.log_frames() > 110);
}

TEST_CASE("wal checkpointer: requests made while it copies are answered by a later checkpoint") {
  WalDatabase app;
  WalCheckpointer checkpointer(app.path, "app", std::chrono::seconds{1});
  for (int round = 0; round < 20; ++round) {
    app.write_pages(20);
    checkpointer.request();
  }
  checkpointer.wait();
  app.write_pages(1);
  CHECK(app.log_frames() < 10);
}

TEST_CASE("wal checkpointer: waiting for a ticket waits for that checkpoint") {
  WalDatabase app;
  WalCheckpointer checkpointer(app.path, "app", std::chrono::seconds{1});
  app.write_pages(100);
  const std::uint64_t ticket = checkpointer.request();
  checkpointer.wait(ticket);
  app.write_pages(10);
  CHECK(app.log_frames() < 30);
  // A ticket never handed out waits for every request so far, not forever.
  checkpointer.wait(ticket + 10);
}

TEST_CASE("wal checkpointer: wait without a request returns, and it stops with none pending") {
  WalDatabase app;
  WalCheckpointer checkpointer(app.path, "app", std::chrono::seconds{1});
  checkpointer.wait();
}

TEST_CASE("wal checkpointer: the log is synced by hand whenever the checkpoint may not have") {
  CHECK_FALSE(log_needs_sync(SQLITE_OK, 120, 120));  // copied all: SQLite synced it first
  CHECK_FALSE(log_needs_sync(SQLITE_OK, 0, 0));      // nothing written
  CHECK(log_needs_sync(SQLITE_OK, 120, 0));          // a reader's snapshot: nothing copied
  CHECK(log_needs_sync(SQLITE_OK, 120, 80));         // part copied
  CHECK(log_needs_sync(SQLITE_BUSY, 120, 120));      // another connection checkpointing
  CHECK(log_needs_sync(SQLITE_IOERR, -1, -1));
}

TEST_CASE("wal checkpointer: a reader's old snapshot keeps the log, and wait still returns") {
  WalDatabase app;
  app.write_pages(10);
  SQLite::Database reader(app.path, SQLite::OPEN_READONLY);
  reader.exec("BEGIN");
  CHECK(reader.execAndGet("SELECT count(*) FROM logs").getInt() == 10);
  WalCheckpointer checkpointer(app.path, "app", std::chrono::seconds{1});
  app.write_pages(100);
  checkpointer.wait(checkpointer.request());
  // The frames after the reader's snapshot stay in the log (and were synced by hand).
  app.write_pages(1);
  reader.exec("COMMIT");
  CHECK(app.log_frames() > 100);
}
