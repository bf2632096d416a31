// `retentiond once` killed with SIGKILL at random instants (SPEC 4.3 and 4.5): after the next
// run, the rows the audit log counts are the rows that went.

#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <spdlog/fmt/fmt.h>

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

using retentiond::test::contains;
using retentiond::test::lines_of;
using retentiond::test::run_retentiond;
using retentiond::test::RunningRetentiond;
using retentiond::test::TempDir;

namespace {

constexpr std::int64_t k_rows = 300'000;
// Kills per journal mode, and the rule's batch_time: short batches put more commits within
// reach of a kill, but AddressSanitizer makes each row several times slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr int k_trials = 3;
constexpr const char* k_batch_time = "50ms";
#else
constexpr int k_trials = 8;
constexpr const char* k_batch_time = "10ms";
#endif

// A datastore of `k_rows` log rows, all expired, in the journal mode given, and a config with
// one rule on it; returns the config file.
std::string build_site(const std::filesystem::path& dir, const std::string& journal_mode) {
  const std::int64_t old = std::time(nullptr) - 400 * 86'400;
  {
    SQLite::Database db((dir / "app.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA journal_mode = " + journal_mode);
    db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER, note TEXT)");
    db.exec(fmt::format("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
                        "{}) INSERT INTO logs SELECT i, {} + i, printf('note %d', i) FROM n",
                        k_rows, old));
    db.exec("CREATE INDEX logs_at ON logs(at)");
  }
  std::ofstream(dir / "retentiond.toml") << fmt::format(R"([state]
path = "state.db"

[datastores.app]
type = "sqlite"
path = "app.db"

[rules.logs]
description = "Logs are kept 30 days"
policy = "test policy"
datastore = "app"
table = "logs"
age_column = "at"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
max_fraction = 1.0
batch_time = "{}"
)",
                                                        k_batch_time);
  return (dir / "retentiond.toml").string();
}

std::int64_t rows_left(const std::filesystem::path& dir) {
  SQLite::Database db((dir / "app.db").string(), SQLite::OPEN_READONLY);
  return db.execAndGet("SELECT count(*) FROM logs").getInt64();
}

// The sum of `rows` over the rule's `batch` entries.
std::int64_t audited_rows(const std::string& config) {
  const auto log =
      run_retentiond({"-c", config, "audit", "log", "--rule", "logs", "--format", "json"});
  REQUIRE(log.exit_code == 0);
  std::int64_t sum = 0;
  for (const std::string& line : lines_of(log.out)) {
    if (!contains(line, "\"kind\":\"batch\""))
      continue;
    const std::size_t at = line.find("\"rows\":");
    REQUIRE(at != std::string::npos);
    sum += std::stoll(line.substr(at + 7));
  }
  return sum;
}

}  // namespace

TEST_CASE("crash: killed at any instant, the next run leaves the audited rows equal to the "
          "rows that went") {
  // A rollback journal puts the whole commit after the batch's audit entry, so kills land
  // between the two often; WAL keeps that interval short.
  for (const std::string journal_mode : {"DELETE", "WAL"}) {
    CAPTURE(journal_mode);
    std::mt19937 random(20261125);
    int killed_mid_run = 0;
    for (int trial = 0; trial < k_trials; ++trial) {
      CAPTURE(trial);
      const TempDir dir;
      const std::string config = build_site(dir.path(), journal_mode);
      {
        RunningRetentiond once({"-c", config, "once"}, {}, dir.path());
        std::this_thread::sleep_for(
            std::chrono::milliseconds{std::uniform_int_distribution<int>(10, 150)(random)});
        once.signal(SIGKILL);
        killed_mid_run += once.wait(std::chrono::seconds{10}) == 128 + SIGKILL ? 1 : 0;
      }
      const auto next = run_retentiond({"-c", config, "once"});
      CAPTURE(next.err);
      REQUIRE(next.exit_code == 0);
      CHECK(rows_left(dir.path()) == 0);
      CHECK(audited_rows(config) == k_rows);
      CHECK(run_retentiond({"-c", config, "audit", "verify"}).exit_code == 0);
    }
    // The kills must have landed during the runs for the test to say anything.
    CHECK(killed_mid_run * 2 >= k_trials);
  }
}
