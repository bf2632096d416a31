#include "daemon/sqlite_state_store.hpp"
#include "daemon/state_store.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>

using retentiond::Instant;
using retentiond::SqliteStateStore;
using retentiond::StateStore;
using retentiond::test::file_bytes;
using retentiond::test::TempDir;

namespace {

Instant at(std::string_view text) {
  auto instant = retentiond::parse_iso8601(text);
  REQUIRE(instant.has_value());
  return *instant;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a new state DB gets the schema, a rollback journal and user_version 1") {
  TempDir dir;
  const auto path = dir / "state.db";
  { SqliteStateStore store(path, StateStore::Mode::read_write); }
  REQUIRE(std::filesystem::exists(path));
  SQLite::Database raw(path, SQLite::OPEN_READONLY);
  CHECK(raw.execAndGet("PRAGMA user_version").getInt() == 1);
  // Not WAL: read-only opens must create no -wal/-shm files beside the state.
  CHECK(raw.execAndGet("PRAGMA journal_mode").getString() != "wal");
  CHECK(raw.tableExists("audit"));
  CHECK(raw.tableExists("holds"));
  CHECK(raw.tableExists("runs"));

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
    raw.exec("PRAGMA user_version=2");
  }
  CHECK_THROWS_AS(SqliteStateStore(path, StateStore::Mode::read_write), std::runtime_error);
  CHECK_THROWS_AS(SqliteStateStore(path, StateStore::Mode::read_only), std::runtime_error);
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

TEST_CASE("a read-only store on an uninitialized file is empty") {
  TempDir dir;
  const auto path = dir / "state.db";
  { std::ofstream create(path); }
  SqliteStateStore store(path, StateStore::Mode::read_only);
  CHECK(store.audit_entries().empty());
  CHECK(store.verify_audit().ok);
  CHECK(file_bytes(path).empty());
}

TEST_CASE("holds are added, listed and released") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  const auto now = at("2026-06-01T12:00:00Z");

  const auto forever = store.add_hold(std::string{"user-1"}, std::string{"sessions"},
                                      "litigation #12", std::nullopt, now);
  const auto expired = store.add_hold(std::string{"user-2"}, std::nullopt, "audit request",
                                      at("2026-05-01T00:00:00Z"), at("2026-04-01T00:00:00Z"));
  const auto suspend = store.add_hold(std::nullopt, std::string{"logs"}, "investigation",
                                      at("2026-07-01T00:00:00Z"), now);

  CHECK(forever.id == 1);
  CHECK(expired.id == 2);
  CHECK(suspend.id == 3);
  CHECK(forever.created == "2026-06-01T12:00:00Z");
  CHECK_FALSE(forever.until);
  CHECK(expired.until == "2026-05-01T00:00:00Z");
  CHECK_FALSE(suspend.subject);

  SUBCASE("listing") {
    const auto all = store.holds(true, now);
    REQUIRE(all.size() == 3);
    CHECK(all[0].id == 1);
    CHECK(all[0].subject == "user-1");
    CHECK(all[0].rule == "sessions");
    CHECK(all[0].reason == "litigation #12");
    CHECK_FALSE(all[1].rule);
    CHECK_FALSE(all[2].subject);

    // The hold whose `until` has passed is no longer active.
    const auto active = store.holds(false, now);
    REQUIRE(active.size() == 2);
    CHECK(active[0].id == 1);
    CHECK(active[1].id == 3);
    // ... and the time-limited one ends at its `until`.
    CHECK(store.holds(false, at("2026-07-01T00:00:00Z")).size() == 1);
    CHECK(store.holds(false, at("2026-06-30T23:59:59.999Z")).size() == 2);
  }

  SUBCASE("releasing") {
    const auto released = store.release_hold(1, "case closed", at("2026-06-02T00:00:00Z"));
    CHECK(released.id == 1);
    CHECK(released.released == "2026-06-02T00:00:00Z");
    CHECK(released.release_reason == "case closed");
    CHECK_FALSE(released.active_at(now));

    const auto active = store.holds(false, now);
    REQUIRE(active.size() == 1);
    CHECK(active[0].id == 3);
    const auto all = store.holds(true, now);
    REQUIRE(all.size() == 3);
    CHECK(all[0].released == "2026-06-02T00:00:00Z");
    CHECK(all[0].release_reason == "case closed");

    CHECK(error_of([&] { store.release_hold(1, "again", now); }) == "hold 1 is already released");
    CHECK(error_of([&] { store.release_hold(99, "nope", now); }) == "hold 99 does not exist");
    // A refused release writes no audit entry.
    CHECK(store.audit_entries().size() == 4);
  }
}

TEST_CASE("hold changes write their audit entries in the chain") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  const auto now = at("2026-06-01T12:00:00Z");
  store.add_hold(std::string{"user \"1\""}, std::string{"sessions"}, "litigation",
                 at("2026-07-01T00:00:00Z"), now);
  store.add_hold(std::nullopt, std::nullopt, "freeze", std::nullopt, now);
  store.release_hold(2, "thawed", now);

  const auto entries = store.audit_entries();
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].kind == "hold_add");
  CHECK(entries[0].rule == "sessions");
  CHECK(entries[0].rows == 0);
  CHECK(entries[0].detail == R"({"hold":1,"subject":"user \"1\"","rule":"sessions",)"
                             R"("reason":"litigation","until":"2026-07-01T00:00:00Z"})");
  CHECK(entries[1].kind == "hold_add");
  CHECK(entries[1].rule.empty());
  CHECK(entries[1].detail ==
        R"({"hold":2,"subject":null,"rule":null,"reason":"freeze","until":null})");
  CHECK(entries[2].kind == "hold_release");
  CHECK(entries[2].rows == 0);
  CHECK(entries[2].detail == R"({"hold":2,"reason":"thawed"})");
  CHECK(store.verify_audit().ok);
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

TEST_CASE("run history") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  CHECK(store.last_runs("a", 5).empty());
  CHECK_FALSE(store.last_success("a"));

  const auto r1 = store.begin_run("a", at("2026-06-01T00:00:00Z"));
  store.finish_run(r1, "ok", 10, "", at("2026-06-01T00:01:00Z"));
  const auto r2 = store.begin_run("a", at("2026-06-02T00:00:00Z"));
  store.finish_run(r2, "partial", 4, "time budget", at("2026-06-02T00:05:00Z"));
  const auto r3 = store.begin_run("b", at("2026-06-02T00:00:00Z"));
  store.finish_run(r3, "ok", 1, "", at("2026-06-02T00:00:30Z"));
  const auto r4 = store.begin_run("a", at("2026-06-03T00:00:00Z"));
  store.finish_run(r4, "error", 0, "connection refused", at("2026-06-03T00:00:01Z"));
  const auto r5 = store.begin_run("a", at("2026-06-04T00:00:00Z"));

  const auto runs = store.last_runs("a", 10);
  REQUIRE(runs.size() == 4);
  CHECK(runs[0].id == r5);
  CHECK(runs[0].result == "running");
  CHECK(runs[0].finished.empty());
  CHECK(runs[0].rows == 0);
  CHECK(runs[1].id == r4);
  CHECK(runs[1].result == "error");
  CHECK(runs[1].message == "connection refused");
  CHECK(runs[2].id == r2);
  CHECK(runs[2].rows == 4);
  CHECK(runs[2].started == "2026-06-02T00:00:00Z");
  CHECK(runs[2].finished == "2026-06-02T00:05:00Z");
  CHECK(runs[3].id == r1);

  CHECK(store.last_runs("a", 2).size() == 2);
  CHECK(store.last_runs("a", 0).empty());
  CHECK(store.last_runs("c", 5).empty());

  // The newest "ok" or "partial" run counts; errors and running runs do not.
  CHECK(store.last_success("a") == at("2026-06-02T00:05:00Z"));
  CHECK(store.last_success("b") == at("2026-06-02T00:00:30Z"));
  CHECK_FALSE(store.last_success("c"));

  CHECK(error_of([&] { store.finish_run(999, "ok", 0, "", at("2026-06-05T00:00:00Z")); }) ==
        "run 999 does not exist");
}
