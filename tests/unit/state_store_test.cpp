#include "daemon/sqlite_state_store.hpp"
#include "daemon/state_store.hpp"
#include "tests/support/audit_chain.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

using retentiond::Instant;
using retentiond::SqliteStateStore;
using retentiond::StateStore;
using retentiond::test::file_bytes;
using retentiond::test::TempDir;

using retentiond::test::error_of;

namespace {

Instant at(std::string_view text) {
  auto instant = retentiond::parse_iso8601(text);
  REQUIRE(instant.has_value());
  return *instant;
}

}  // namespace

TEST_CASE("a new state DB gets the schema, a rollback journal and user_version 2") {
  TempDir dir;
  const auto path = dir / "state.db";
  { SqliteStateStore store(path, StateStore::Mode::read_write); }
  REQUIRE(std::filesystem::exists(path));
  SQLite::Database raw(path, SQLite::OPEN_READONLY);
  CHECK(raw.execAndGet("PRAGMA user_version").getInt() == 2);
  // Not WAL: read-only opens must create no -wal/-shm files beside the state.
  CHECK(raw.execAndGet("PRAGMA journal_mode").getString() != "wal");
  CHECK(raw.tableExists("audit"));
  CHECK(raw.tableExists("holds"));
  CHECK(raw.tableExists("runs"));
  CHECK(raw.tableExists("meta"));

  // Reopening keeps what is there.
  {
    SqliteStateStore store(path, StateStore::Mode::read_write);
    store.append_audit("run_start", "", 0);
  }
  SqliteStateStore again(path, StateStore::Mode::read_write);
  CHECK(again.audit_entries().size() == 1);
}

TEST_CASE("a state DB from a newer retentiond is refused") {
  TempDir dir;
  const auto path = dir / "state.db";
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("PRAGMA user_version=3");
  }
  CHECK_THROWS_AS(SqliteStateStore(path, StateStore::Mode::read_write), std::runtime_error);
  CHECK_THROWS_AS(SqliteStateStore(path, StateStore::Mode::read_only), std::runtime_error);
}

TEST_CASE("a state from schema 1 gets meta and records the key its chain was written with") {
  TempDir dir;
  const auto path = dir / "state.db";
  {
    SqliteStateStore store(path, StateStore::Mode::read_write, std::string{"key-one"});
    store.append_audit("run_start", "", 0);
  }
  {
    // As schema 1 left it: no meta table.
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("DROP TABLE meta; PRAGMA user_version=1");
  }
  // The first entry shows which key the chain has: another one is refused before it writes.
  CHECK(error_of([&] { SqliteStateStore store(path, StateStore::Mode::read_write); }) ==
        "cannot open state database " + path.string() +
            ": its audit chain's first entry does not verify under state.audit_key_file (or its "
            "absence): set it as it was when the chain began, or see retentiond audit verify");
  {
    SqliteStateStore store(path, StateStore::Mode::read_write, std::string{"key-one"});
    store.append_audit("run_start", "", 0);
    CHECK(store.verify_audit().ok);
  }
  SQLite::Database raw(path, SQLite::OPEN_READONLY);
  CHECK(raw.execAndGet("PRAGMA user_version").getInt() == 2);
  CHECK(raw.execAndGet("SELECT count(*) FROM meta WHERE key = 'audit_key'").getInt() == 1);
}

namespace {

// A state with one audit entry, damaged afterwards by `damage` (SQL run on the file itself):
// both open modes refuse it, saying `why`.
void check_damaged(const std::filesystem::path& path, const std::string& damage,
                   const std::string& why) {
  {
    SqliteStateStore store(path, StateStore::Mode::read_write);
    store.append_audit("run_start", "", 0);
  }
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec(damage);
  }
  const std::string damaged = "cannot open state database " + path.string() +
                              ": the state is damaged: " + why +
                              " (restore the state file from a backup; audit verify cannot pass)";
  CHECK(error_of([&] { SqliteStateStore store(path, StateStore::Mode::read_only); }) == damaged);
  CHECK(error_of([&] { SqliteStateStore store(path, StateStore::Mode::read_write); }) == damaged);
}

}  // namespace

TEST_CASE("a state that lost a table is damaged, not new") {
  TempDir dir;
  const auto path = dir / "state.db";
  check_damaged(path, "DROP TABLE audit", "its table 'audit' is missing");
  SQLite::Database raw(path, SQLite::OPEN_READONLY);
  CHECK_FALSE(raw.tableExists("audit"));  // not created anew
}

TEST_CASE("a state whose schema version was reset to 0 is damaged, not new") {
  TempDir dir;
  check_damaged(dir / "state.db", "PRAGMA user_version=0",
                "its schema version reads 0 although it has tables");
}

TEST_CASE("an unopenable state DB names its path") {
  TempDir dir;
  const auto path = dir / "missing-dir" / "state.db";
  const auto message =
      error_of([&] { SqliteStateStore store(path, StateStore::Mode::read_write); });
  CHECK(message.find(path.string()) != std::string::npos);
}

TEST_CASE("a read-only store on a missing file is empty and creates nothing") {
  TempDir dir;
  const auto path = dir / "state.db";
  SqliteStateStore store(path, StateStore::Mode::read_only);
  const auto now = at("2026-06-01T00:00:00Z");

  CHECK(store.audit_entries().empty());
  const auto v = store.verify_audit();
  CHECK(v.ok);
  CHECK(v.entries == 0);
  CHECK(v.head_hash == retentiond::k_genesis_hash);
  CHECK(store.audit_head_hash() == retentiond::k_genesis_hash);
  CHECK_FALSE(store.last_config_digest());
  CHECK(store.holds(true, now).empty());
  CHECK(store.holds(false, now).empty());
  CHECK(store.last_runs("r", 10).empty());
  CHECK_FALSE(store.last_success("r"));

  CHECK_THROWS_AS(store.append_audit("batch", "r", 1), std::runtime_error);
  CHECK_THROWS_AS(store.add_hold(std::nullopt, std::nullopt, "x", std::nullopt, now),
                  std::runtime_error);
  CHECK_THROWS_AS(store.begin_run("r", now), std::runtime_error);

  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("a read-only store leaves the state file byte-identical") {
  TempDir dir;
  const auto path = dir / "state.db";
  const auto now = at("2026-06-01T00:00:00Z");
  {
    SqliteStateStore store(path, StateStore::Mode::read_write);
    store.append_audit("config", "", 0, R"({"digest":"abcd"})");
    store.add_hold(std::string{"user-1"}, std::string{"r"}, "litigation", std::nullopt, now);
    const auto run = store.begin_run("r", now);
    store.finish_run(run, "ok", 3, "", now);
  }
  const auto before = file_bytes(path);
  REQUIRE_FALSE(before.empty());
  {
    SqliteStateStore store(path, StateStore::Mode::read_only);
    CHECK(store.audit_entries().size() == 2);
    CHECK(store.verify_audit().ok);
    CHECK(store.audit_head_hash().size() == 64);
    CHECK(store.last_config_digest() == "abcd");
    CHECK(store.holds(true, now).size() == 1);
    CHECK(store.holds(false, now).size() == 1);
    CHECK(store.last_runs("r", 5).size() == 1);
    CHECK(store.last_success("r") == now);
    // Writes fail rather than touch the file.
    CHECK_THROWS_AS(store.append_audit("batch", "r", 1), std::runtime_error);
    CHECK_THROWS_AS(store.release_hold(1, "done", now), std::runtime_error);
  }
  CHECK(file_bytes(path) == before);
  // SQLite may leave the WAL index files of a WAL database behind, but the log holds nothing.
  const auto wal = dir / "state.db-wal";
  if (std::filesystem::exists(wal))
    CHECK(std::filesystem::file_size(wal) == 0);
}

TEST_CASE("a read-only store rolls back the write of a process that ended while writing") {
  TempDir dir;
  const auto path = dir / "state.db";
  {
    SqliteStateStore store(path, StateStore::Mode::read_write);
    store.append_audit("config", "", 0, R"({"digest":"abcd"})");
  }
  // A child process writes more than its page cache holds (so pages reach the file before the
  // commit) and ends without committing: a hot journal is left beside the state.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    sqlite3* db = nullptr;
    const int opened = sqlite3_open(path.c_str(), &db);
    const int wrote = sqlite3_exec(
        db,
        "PRAGMA journal_mode=PERSIST; PRAGMA cache_size=2; BEGIN IMMEDIATE; "
        "INSERT INTO audit SELECT seq + 1000, time, kind, rule, rows, detail, prev_hash, hash "
        "FROM audit; CREATE TABLE filler(x); "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
        "INSERT INTO filler SELECT randomblob(4000) FROM n;",
        nullptr, nullptr, nullptr);
    ::_exit(opened == SQLITE_OK && wrote == SQLITE_OK ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  SqliteStateStore store(path, StateStore::Mode::read_only);
  CHECK(store.audit_entries().size() == 1);
  CHECK(store.verify_audit().ok);
  SQLite::Database db(path.string(), SQLite::OPEN_READONLY);
  CHECK_FALSE(db.tableExists("filler"));
}

TEST_CASE("a read-only store on an uninitialized file is empty") {
  TempDir dir;
  const auto path = dir / "state.db";
  { std::ofstream create(path); }
  SqliteStateStore store(path, StateStore::Mode::read_only);
  CHECK(store.audit_entries().empty());
  CHECK(store.verify_audit().ok);
  CHECK(file_bytes(path).empty());
}

TEST_CASE("a state file with another hard link is refused, through either name and in either "
          "mode") {
  TempDir dir;
  const auto path = dir / "state.db";
  const auto other = dir / "other.db";
  {
    SqliteStateStore store(path, StateStore::Mode::read_write);
    store.append_audit("run_start", "", 0);
  }
  std::filesystem::create_hard_link(path, other);
  const auto refusal = [](const std::filesystem::path& name) {
    return "cannot open state database " + name.string() +
           ": it has 2 hard links, and the instance lock and SQLite's journal go by the file's "
           "name, so processes writing it through two names would not exclude each other; "
           "remove the other links (find / -xdev -samefile " +
           name.string() + ") and name the state by one path (a symlink to it is fine)";
  };
  for (const auto& name : {path, other}) {
    CAPTURE(name);
    CHECK(error_of([&] { SqliteStateStore store(name, StateStore::Mode::read_write); }) ==
          refusal(name));
    CHECK(error_of([&] { SqliteStateStore store(name, StateStore::Mode::read_only); }) ==
          refusal(name));
  }
  std::filesystem::remove(other);
  SqliteStateStore store(path, StateStore::Mode::read_write);
  CHECK(store.audit_entries().size() == 1);
}

TEST_CASE("a reader of the audit log holds no lock on the state while its caller takes the "
          "entries") {
  // A SQLite state has a rollback journal: a read transaction left open while the entries are
  // printed (into a pager, say) would keep every batch's audit entry waiting, and the batch
  // with it, holding the datastore's write lock.
  TempDir dir;
  const auto path = dir / "state.db";
  {
    SqliteStateStore writer(path, StateStore::Mode::read_write);
    const auto first = writer.append_audit("run_start", "", 0);
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec(retentiond::test::chained_entries_sql(first, retentiond::k_audit_page_entries + 10));
  }
  SqliteStateStore reader(path, StateStore::Mode::read_only);
  // An exclusive lock, taken without waiting (busy timeout 0), is refused while anyone reads.
  const auto exclusive_lock_free = [&] {
    SQLite::Database other(path, SQLite::OPEN_READWRITE);
    try {
      other.exec("BEGIN EXCLUSIVE");
    } catch (const SQLite::Exception& error) {
      FAIL_CHECK("the state is locked: " << error.what());
      return false;
    }
    other.exec("COMMIT");
    return true;
  };
  std::vector<std::int64_t> checked_at;
  std::int64_t seen = 0;
  reader.for_each_audit_entry({}, [&](const retentiond::AuditEntry& entry) {
    CHECK(entry.seq == ++seen);
    // The first entry of each page, the second page read after the first was handed out.
    if (entry.seq == 1 || entry.seq == retentiond::k_audit_page_entries + 1)
      if (exclusive_lock_free())
        checked_at.push_back(entry.seq);
  });
  CHECK(seen == retentiond::k_audit_page_entries + 11);
  CHECK(checked_at == std::vector<std::int64_t>{1, retentiond::k_audit_page_entries + 1});
  CHECK(reader.verify_audit().ok);
}

TEST_CASE("Hold::active_at") {
  retentiond::Hold hold;
  const auto now = at("2026-06-01T00:00:00Z");
  CHECK(hold.active_at(now));
  hold.until = "2026-06-01T00:00:00.001Z";
  CHECK(hold.active_at(now));
  hold.until = "2026-06-01T00:00:00Z";
  CHECK_FALSE(hold.active_at(now));
  hold.until.reset();
  hold.released = "2026-05-01T00:00:00Z";
  CHECK_FALSE(hold.active_at(now));
}
