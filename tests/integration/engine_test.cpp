// Engine::run_once against real SQLite files, configured through a real TOML file: what goes,
// what stays, what is audited, and what refuses.
#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/engine.hpp"
#include "daemon/report.hpp"
#include "daemon/sqlite_state_store.hpp"
#include "daemon/state_store.hpp"
#include "daemon/timestamp.hpp"
#include "tests/support/files.hpp"
#include "tests/support/outcomes.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <spdlog/fmt/fmt.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace retentiond;
using retentiond::test::file_bytes;
using retentiond::test::outcome_of;

namespace {

constexpr std::int64_t k_day_s = 86'400;

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

// Every file of a directory, name and bytes: equal snapshots mean nothing was written there.
std::map<std::string, std::string> directory_snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    files[entry.path().filename().string()] = file_bytes(entry.path());
  return files;
}

// A rule as TOML. `extra` holds further keys, one per line.
std::string rule_toml(const std::string& id, const std::string& table, const std::string& column,
                      const std::string& format, const std::string& retain,
                      const std::string& extra = "") {
  return "[rules." + id + "]\n" + "description = \"" + id + " are deleted after " + retain +
         "\"\n" + "policy = \"test policy, section " + id + "\"\n" + "datastore = \"app\"\n" +
         "table = \"" + table + "\"\n" +
         (column.empty() ? std::string{} : "age_column = \"" + column + "\"\n") +
         "age_format = \"" + format + "\"\n" + "retain = \"" + retain + "\"\n" +
         "action = \"delete\"\n" + extra + "\n";
}

// A table logs(id, at) of rows 1 to `rows`, all 100 days old, indexed on `at` unless told not.
void create_old_logs(SQLite::Database& db, std::int64_t rows, bool indexed = true) {
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER)");
  db.exec(fmt::format("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
                      "{}) INSERT INTO logs SELECT i, {} FROM n",
                      rows, to_unix_seconds(now_utc()) - 100 * k_day_s));
  if (indexed)
    db.exec("CREATE INDEX logs_at ON logs(at)");
}

// A temporary installation: app.db (the datastore), state.db and retentiond.toml.
class Site {
public:
  Site() : m_app(m_dir / "app.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE) {}

  SQLite::Database& app() { return m_app; }
  std::filesystem::path app_path() const { return m_dir / "app.db"; }
  std::filesystem::path state_path() const { return m_dir / "state.db"; }
  const std::filesystem::path& dir() const { return m_dir.path(); }

  // Writes retentiond.toml with the given rules and loads it.
  std::shared_ptr<const Config> configure(const std::string& rules) {
    const std::string main = "[state]\npath = \"state.db\"\n\n"
                             "[datastores.app]\ntype = \"sqlite\"\npath = \"app.db\"\n\n" +
                             rules;
    write_file(m_dir / "retentiond.toml", main);
    return load_config(m_dir / "retentiond.toml");
  }

  // The ids left in a table, in order.
  std::vector<std::int64_t> ids(const std::string& table, const std::string& id = "id") {
    std::vector<std::int64_t> result;
    SQLite::Statement query(m_app, "SELECT \"" + id + "\" FROM \"" + table + "\" ORDER BY 1");
    while (query.executeStep())
      result.push_back(query.getColumn(0).getInt64());
    return result;
  }

  std::int64_t row_count(const std::string& table) {
    return m_app.execAndGet("SELECT count(*) FROM \"" + table + "\"").getInt64();
  }

  // Every row of a table with the type and text of each value, keyed by rowid.
  std::map<std::int64_t, std::string> dump(const std::string& table) {
    std::map<std::int64_t, std::string> rows;
    SQLite::Statement query(m_app, "SELECT rowid, * FROM \"" + table + "\"");
    while (query.executeStep()) {
      std::string row;
      for (int i = 1; i < query.getColumnCount(); ++i) {
        const SQLite::Column column = query.getColumn(i);
        row += std::to_string(column.getType()) + ":" +
               (column.isNull() ? std::string{"NULL"} : column.getString()) + "|";
      }
      rows[query.getColumn(0).getInt64()] = row;
    }
    return rows;
  }

private:
  test::TempDir m_dir;
  SQLite::Database m_app;
};

// `dump` restricted to some rowids.
std::map<std::int64_t, std::string> only(const std::map<std::int64_t, std::string>& rows,
                                         const std::vector<std::int64_t>& ids) {
  std::map<std::int64_t, std::string> kept;
  for (std::int64_t id : ids)
    if (rows.contains(id))
      kept[id] = rows.at(id);
  return kept;
}

std::vector<AuditEntry> entries_of(const StateStore& state, const std::string& rule,
                                   const std::string& kind) {
  std::vector<AuditEntry> entries;
  for (AuditEntry& entry : state.audit_entries(AuditFilter{rule, std::nullopt}))
    if (entry.kind == kind)
      entries.push_back(std::move(entry));
  return entries;
}

std::int64_t batch_rows(const StateStore& state, const std::string& rule) {
  std::int64_t sum = 0;
  for (const AuditEntry& entry : entries_of(state, rule, "batch"))
    sum += entry.rows;
  return sum;
}

RunSummary run(const std::shared_ptr<const Config>& config, StateStore& state,
               RunOptions options = {}) {
  const std::atomic<bool> stop{false};
  Engine engine(config, &state, adapters::AdapterSecrets{}, stop);
  return engine.run_once(options);
}

// The shared scenario: three rules on app.db, with every kind of row that must stay.
struct Scenario {
  std::int64_t now_s = to_unix_seconds(now_utc());

  // logs (unix_seconds, 30 days, subject user_id): 1, 7 and 8 expire; 6 is held (user 7).
  // accounts (unix_millis, 365 days, cascade sessions): 1 and 3 expire with sessions 1, 2, 4.
  // errors (iso8601, 730 days): 1 expires.
  // notes: no rule.
  void build(Site& site) {
    auto& db = site.app();
    db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, created_at INTEGER, user_id INTEGER, "
            "note TEXT)");
    db.exec("CREATE INDEX logs_created_at ON logs(created_at)");
    SQLite::Statement log(db, "INSERT INTO logs VALUES(?, ?, ?, ?)");
    const auto add_log = [&](std::int64_t id, std::optional<std::int64_t> at,
                             std::optional<std::int64_t> user, const char* text_at = nullptr) {
      log.bind(1, static_cast<int64_t>(id));
      if (text_at != nullptr)
        log.bind(2, text_at);
      else if (at)
        log.bind(2, static_cast<int64_t>(*at));
      else
        log.bind(2);
      if (user)
        log.bind(3, static_cast<int64_t>(*user));
      else
        log.bind(3);
      log.bind(4, "log " + std::to_string(id));
      log.exec();
      log.reset();
    };
    add_log(1, now_s - 40 * k_day_s, 1);
    add_log(2, now_s - 20 * k_day_s, 1);
    add_log(3, std::nullopt, 2);
    add_log(4, std::nullopt, 2, "n/a");
    add_log(5, now_s + 10 * k_day_s, 3);
    add_log(6, now_s - 400 * k_day_s, 7);
    add_log(7, now_s - 400 * k_day_s, 8);
    add_log(8, now_s - 31 * k_day_s, std::nullopt);

    db.exec("CREATE TABLE accounts(id INTEGER PRIMARY KEY, last_seen_at INTEGER, email TEXT)");
    db.exec("CREATE INDEX accounts_last_seen_at ON accounts(last_seen_at)");
    db.exec("CREATE TABLE sessions(id INTEGER PRIMARY KEY, account_id INTEGER, ip TEXT)");
    db.exec("CREATE INDEX sessions_account_id ON sessions(account_id)");
    const std::int64_t now_ms = now_s * 1000;
    const std::int64_t day_ms = k_day_s * 1000;
    db.exec("INSERT INTO accounts VALUES(1, " + std::to_string(now_ms - 730 * day_ms) +
            ", 'a@example.com'), (2, " + std::to_string(now_ms - 30 * day_ms) +
            ", 'b@example.com'), (3, " + std::to_string(now_ms - 1100 * day_ms) +
            ", 'c@example.com')");
    db.exec("INSERT INTO sessions VALUES(1, 1, '192.0.2.1'), (2, 1, '192.0.2.2'), "
            "(3, 2, '192.0.2.3'), (4, 3, '192.0.2.4'), (5, NULL, '192.0.2.5')");

    db.exec("CREATE TABLE errors(id INTEGER PRIMARY KEY, logged_at TEXT, message TEXT)");
    db.exec("CREATE INDEX errors_logged_at ON errors(logged_at)");
    SQLite::Statement error(db, "INSERT INTO errors VALUES(?, ?, 'failure')");
    error.bind(1, 1);
    error.bind(2, format_iso8601(from_unix_seconds(now_s - 1000 * k_day_s)));
    error.exec();
    error.reset();
    error.bind(1, 2);
    error.bind(2, format_iso8601(from_unix_seconds(now_s - 100 * k_day_s)));
    error.exec();
    error.reset();
    error.bind(1, 3);
    error.bind(2, "garbage");
    error.exec();

    db.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, created_at INTEGER)");
    db.exec("INSERT INTO notes VALUES(1, 'keep me', 0), (2, NULL, " +
            std::to_string(now_s - 4000 * k_day_s) + ")");
  }

  static std::string rules() {
    return rule_toml("logs", "logs", "created_at", "unix_seconds", "30 days",
                     "subject_column = \"user_id\"\n") +
           rule_toml("accounts", "accounts", "last_seen_at", "unix_millis", "365 days",
                     "max_fraction = 1.0\n"
                     "cascade = [{ table = \"sessions\", foreign_key = \"account_id\" }]\n") +
           rule_toml("errors", "errors", "logged_at", "iso8601", "730 days");
  }
};

}  // namespace

TEST_CASE("engine: exactly the expired, unheld rows go, with their cascade children") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  const auto logs_before = site.dump("logs");
  const auto accounts_before = site.dump("accounts");
  const auto sessions_before = site.dump("sessions");
  const auto errors_before = site.dump("errors");
  const auto notes_before = site.dump("notes");

  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  state.add_hold(std::string{"7"}, std::string{"logs"}, "litigation", std::nullopt, now_utc());
  const RunSummary summary = run(config, state);

  CHECK_FALSE(summary.any_failed());
  REQUIRE(summary.outcomes.size() == 3);
  CHECK(outcome_of(summary, "logs").result == "ok");
  CHECK(outcome_of(summary, "logs").rows == 3);
  CHECK(outcome_of(summary, "accounts").result == "ok");
  CHECK(outcome_of(summary, "accounts").rows == 5);
  CHECK(outcome_of(summary, "accounts").children == 3);
  CHECK(outcome_of(summary, "errors").result == "ok");
  CHECK(outcome_of(summary, "errors").rows == 1);

  CHECK(site.ids("logs") == std::vector<std::int64_t>{2, 3, 4, 5, 6});
  CHECK(site.ids("accounts") == std::vector<std::int64_t>{2});
  CHECK(site.ids("sessions") == std::vector<std::int64_t>{3, 5});
  CHECK(site.ids("errors") == std::vector<std::int64_t>{2, 3});

  // Nothing else changed: surviving rows and other tables are the same, value for value.
  CHECK(site.dump("logs") == only(logs_before, {2, 3, 4, 5, 6}));
  CHECK(site.dump("accounts") == only(accounts_before, {2}));
  CHECK(site.dump("sessions") == only(sessions_before, {3, 5}));
  CHECK(site.dump("errors") == only(errors_before, {2, 3}));
  CHECK(site.dump("notes") == notes_before);

  // The audit log accounts for every row and its chain verifies.
  CHECK(batch_rows(state, "logs") == 3);
  CHECK(batch_rows(state, "accounts") == 5);
  CHECK(batch_rows(state, "errors") == 1);
  for (const char* rule : {"logs", "accounts", "errors"})
    CHECK(entries_of(state, rule, "rule_done").size() == 1);
  const AuditVerification verified = state.verify_audit();
  CHECK(verified.ok);
  CHECK(verified.problem == "");
  const auto runs = state.last_runs("accounts", 5);
  REQUIRE(runs.size() == 1);
  CHECK(runs.front().result == "ok");
  CHECK(runs.front().rows == 5);

  SUBCASE("a second run changes nothing more") {
    const RunSummary again = run(config, state);
    for (const RuleOutcome& outcome : again.outcomes) {
      CAPTURE(outcome.rule);
      CHECK(outcome.result == "ok");
      CHECK(outcome.rows == 0);
    }
    CHECK(site.ids("logs") == std::vector<std::int64_t>{2, 3, 4, 5, 6});
    CHECK(batch_rows(state, "logs") == 3);
    CHECK(state.verify_audit().ok);
  }
}

TEST_CASE("engine: a large rule runs in several batches whose audited rows add up") {
  Site site;
  auto& db = site.app();
  const std::int64_t now_s = to_unix_seconds(now_utc());
  db.exec("CREATE TABLE parents(id INTEGER PRIMARY KEY, at INTEGER, payload TEXT)");
  db.exec("CREATE INDEX parents_at ON parents(at)");
  db.exec("CREATE TABLE children(id INTEGER PRIMARY KEY, parent_id INTEGER)");
  db.exec("CREATE INDEX children_parent_id ON children(parent_id)");
  {
    SQLite::Transaction transaction(db);
    SQLite::Statement parent(db, "INSERT INTO parents VALUES(?, ?, 'some payload')");
    SQLite::Statement child(db, "INSERT INTO children(parent_id) VALUES(?)");
    for (int id = 1; id <= 6000; ++id) {
      parent.bind(1, id);
      parent.bind(2, static_cast<int64_t>(id <= 5000 ? now_s - 100 * k_day_s : now_s - k_day_s));
      parent.exec();
      parent.reset();
      for (int n = 0; n < (id % 10 == 0 ? 2 : 1); ++n) {
        child.bind(1, id);
        child.exec();
        child.reset();
      }
    }
    transaction.commit();
  }
  const auto config = site.configure(rule_toml(
      "parents", "parents", "at", "unix_seconds", "30 days",
      "max_fraction = 1.0\ncascade = [{ table = \"children\", foreign_key = \"parent_id\" }]\n"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  const std::int64_t before = site.row_count("parents") + site.row_count("children");

  const RunSummary summary = run(config, state);

  const RuleOutcome& outcome = outcome_of(summary, "parents");
  CHECK(outcome.result == "ok");
  CHECK(site.row_count("parents") == 1000);
  CHECK(site.row_count("children") == 1100);
  CHECK(site.ids("parents").front() == 5001);
  const std::int64_t changed = before - site.row_count("parents") - site.row_count("children");
  CHECK(changed == 5000 + 5500);
  CHECK(outcome.rows == changed);
  CHECK(outcome.children == 5500);
  CHECK(entries_of(state, "parents", "batch").size() >= 2);
  CHECK(batch_rows(state, "parents") == changed);
  CHECK(state.verify_audit().ok);
}

// More due rows than one band of the SQLite adapter's walk holds (150,000), so that each way of
// walking a large table runs: one walk of a table whose time grows with the rowid, bands of
// anchor values for rows in random time order, and the stop after the census's due rows.
TEST_CASE("engine: every walk of a large table leaves exactly the rows it must") {
  constexpr std::int64_t k_rows = 240'000;
  Site site;
  auto& db = site.app();
  const std::int64_t now_s = to_unix_seconds(now_utc());
  const std::int64_t cutoff_s = now_s - 365 * k_day_s;
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER, user_id INTEGER)");
  db.exec("CREATE INDEX logs_at ON logs(at)");

  // Anchors over three years, 2/3 of them older than the cutoff; `in_time_order` makes them
  // grow with the id, otherwise they come from a fixed pseudo-random sequence. `backdated` rows
  // with old anchors go at the end of the table, as an import of old data would.
  const auto fill = [&](bool in_time_order, std::int64_t backdated) {
    SQLite::Transaction transaction(db);
    SQLite::Statement insert(db, "INSERT INTO logs VALUES(?, ?, ?)");
    std::uint64_t random = 42;
    const std::int64_t span = 3 * 365 * k_day_s;
    for (std::int64_t id = 1; id <= k_rows + backdated; ++id) {
      random = random * 6364136223846793005ULL + 1442695040888963407ULL;
      std::int64_t age = in_time_order ? span - id * span / k_rows
                                       : static_cast<std::int64_t>((random >> 11) % span);
      if (id > k_rows)
        age = 2 * 365 * k_day_s + id;
      // The engine's cutoff comes a moment after this test's: no anchor in between.
      if (std::abs(age - 365 * k_day_s) < 60)
        age -= 120;
      insert.bind(1, static_cast<int64_t>(id));
      insert.bind(2, static_cast<int64_t>(now_s - age));
      insert.bind(3, static_cast<int64_t>(id % 50));
      insert.exec();
      insert.reset();
    }
    transaction.commit();
  };
  // The ids a correct run keeps: anchors at or after the cutoff, and rows of held users.
  const auto expected_survivors = [&](const std::set<std::int64_t>& held_users) {
    std::vector<std::int64_t> ids;
    SQLite::Statement query(db, "SELECT id, at, user_id FROM logs ORDER BY id");
    while (query.executeStep())
      if (query.getColumn(1).getInt64() >= cutoff_s ||
          held_users.contains(query.getColumn(2).getInt64()))
        ids.push_back(query.getColumn(0).getInt64());
    return ids;
  };

  std::set<std::int64_t> held_users;
  bool in_physical_order = false;  // what plan_run should find
  SUBCASE("time grows with the rowid") {
    fill(true, 0);
    in_physical_order = true;
  }
  SUBCASE("time grows with the rowid, old rows imported at the end") {
    fill(true, 500);
    in_physical_order = true;  // one walk still covers them, at its end
  }
  SUBCASE("random time order") {
    fill(false, 0);
  }
  SUBCASE("random time order, some users held") {
    fill(false, 0);
    held_users = {7, 8};
  }
  const auto config =
      site.configure(rule_toml("logs", "logs", "at", "unix_seconds", "365 days",
                               "max_fraction = 1.0\nsubject_column = \"user_id\"\n"));
  {
    // Batches are kept shorter only when the walk finds the due rows in the table's order.
    auto store =
        adapters::open_datastore(config->datastores.at("app"), adapters::OpenMode::read_only, {});
    const adapters::Selection selection{
        config->rules.front(), now_utc() - std::chrono::days{365}, now_utc(), {}};
    REQUIRE(store->count(selection).due > 150'000);
    CHECK(store->plan_run(selection).in_physical_order == in_physical_order);
  }
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  for (const std::int64_t user : held_users)
    state.add_hold(std::to_string(user), std::string{"logs"}, "claim", std::nullopt, now_utc());
  const std::vector<std::int64_t> survivors = expected_survivors(held_users);
  const std::int64_t before = site.row_count("logs");
  REQUIRE(before - static_cast<std::int64_t>(survivors.size()) > 150'000);

  const RunSummary summary = run(config, state);

  const RuleOutcome& outcome = outcome_of(summary, "logs");
  CHECK(outcome.result == "ok");
  CHECK(site.ids("logs") == survivors);
  CHECK(outcome.rows == before - static_cast<std::int64_t>(survivors.size()));
  CHECK(batch_rows(state, "logs") == outcome.rows);
  CHECK(state.verify_audit().ok);
  // In the table's order the first batch may grow past 200 rows (all due here) in pieces of 200,
  // 400, 800..., as far as its deadline allows (a slow or busy machine, or a sanitizer build,
  // may stop it after the first piece); elsewhere it is 200 rows.
  const std::int64_t first_batch = entries_of(state, "logs", "batch").front().rows;
  if (in_physical_order)
    CHECK(first_batch >= 200);
  else
    CHECK(first_batch <= 200);
}

TEST_CASE("engine: a census tells on_census_progress it is moving") {
  Site site;
  auto& db = site.app();
  // No index on the anchor: the census reads every row several times, and the breaker then
  // refuses the rule before any batch.
  db.exec("CREATE TABLE visits(id INTEGER PRIMARY KEY, at INTEGER)");
  db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) "
          "INSERT INTO visits SELECT i, i FROM n");
  const auto config =
      site.configure(rule_toml("visits", "visits", "at", "unix_seconds", "30 days"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  int calls = 0;
  RunOptions options;
  options.on_census_progress = [&calls] { ++calls; };

  const RunSummary summary = run(config, state, options);

  CHECK(outcome_of(summary, "visits").result == "refused");
  CHECK(site.row_count("visits") == 400'000);
  CHECK(calls >= 1000);  // every thousand instructions: some twenty per row and count
  // Nothing else calls it.
  calls = 0;
  CHECK(outcome_of(run(config, state), "visits").result == "refused");
  CHECK(calls == 0);
}

TEST_CASE("engine: a wrong-scale refusal names the unit the values look like") {
  Rule rule;
  rule.table = "logs";
  rule.age_column = "at";
  rule.age_format = AgeFormat::unix_seconds;
  CHECK(wrong_scale_problem(rule, 3) ==
        "3 rows of logs.at look like milliseconds but age_format is unix_seconds; correct "
        "age_format or the data");
  rule.age_format = AgeFormat::unix_millis;
  CHECK(wrong_scale_problem(rule, 1) ==
        "1 rows of logs.at look like seconds or microseconds but age_format is unix_millis; "
        "correct age_format or the data");
}

TEST_CASE("engine: the mass-deletion breaker refuses, and --confirm-mass lets the run through") {
  Site site;
  auto& db = site.app();
  const std::int64_t now_s = to_unix_seconds(now_utc());
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER)");
  for (int id = 1; id <= 10; ++id)
    db.exec("INSERT INTO logs VALUES(" + std::to_string(id) + ", " +
            std::to_string(id <= 8 ? now_s - 60 * k_day_s : now_s) + ")");
  const auto config = site.configure(rule_toml("logs", "logs", "at", "unix_seconds", "30 days"));
  const auto before = site.dump("logs");
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  const RunSummary refused = run(config, state);
  CHECK(refused.any_failed());
  const RuleOutcome& outcome = outcome_of(refused, "logs");
  CHECK(outcome.result == "refused");
  CHECK(outcome.rows == 0);
  CHECK(outcome.message.find("max_fraction") != std::string::npos);
  CHECK(outcome.message.find("--confirm-mass logs") != std::string::npos);
  CHECK(site.dump("logs") == before);
  const auto refusals = entries_of(state, "logs", "refused");
  REQUIRE(refusals.size() == 1);
  CHECK(refusals.front().rows == 0);
  CHECK(entries_of(state, "logs", "batch").empty());

  RunOptions confirmed;
  confirmed.confirm_mass = {"logs"};
  const RunSummary allowed = run(config, state, confirmed);
  CHECK_FALSE(allowed.any_failed());
  CHECK(outcome_of(allowed, "logs").result == "ok");
  CHECK(outcome_of(allowed, "logs").rows == 8);
  CHECK(site.ids("logs") == std::vector<std::int64_t>{9, 10});
  CHECK(batch_rows(state, "logs") == 8);
  CHECK(state.verify_audit().ok);
}

TEST_CASE("engine: wrong-scale anchors refuse their rule while the other rules run") {
  Site site;
  auto& db = site.app();
  const std::int64_t now_s = to_unix_seconds(now_utc());
  db.exec("CREATE TABLE events(id INTEGER PRIMARY KEY, at INTEGER)");
  db.exec("INSERT INTO events VALUES(1, " + std::to_string(now_s - 60 * k_day_s) + "), (2, " +
          std::to_string((now_s - 60 * k_day_s) * 1000) + "), (3, " + std::to_string(now_s) +
          "), (4, " + std::to_string(now_s) + ")");
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER)");
  db.exec("INSERT INTO logs VALUES(1, " + std::to_string(now_s - 60 * k_day_s) + "), (2, " +
          std::to_string(now_s) + ")");
  const auto config =
      site.configure(rule_toml("events", "events", "at", "unix_seconds", "30 days") +
                     rule_toml("logs", "logs", "at", "unix_seconds", "30 days"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  const RunSummary summary = run(config, state);
  CHECK(summary.any_failed());
  CHECK(outcome_of(summary, "events").result == "refused");
  CHECK(outcome_of(summary, "events").message.find("milliseconds") != std::string::npos);
  CHECK(site.ids("events") == std::vector<std::int64_t>{1, 2, 3, 4});
  CHECK(entries_of(state, "events", "refused").size() == 1);
  CHECK(outcome_of(summary, "logs").result == "ok");
  CHECK(site.ids("logs") == std::vector<std::int64_t>{2});
  CHECK(state.verify_audit().ok);
}

TEST_CASE("engine: an --all hold suspends a rule until released") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  SUBCASE("on one rule") {
    const Hold hold = state.add_hold(std::nullopt, std::string{"logs"}, "audit in progress",
                                     std::nullopt, now_utc());
    const RunSummary held = run(config, state);
    CHECK_FALSE(held.any_failed());
    CHECK(outcome_of(held, "logs").result == "held");
    CHECK(outcome_of(held, "logs").rows == 0);
    CHECK(site.ids("logs") == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(entries_of(state, "logs", "batch").empty());
    CHECK(outcome_of(held, "errors").rows == 1);  // other rules are not held

    state.release_hold(hold.id, "audit done", now_utc());
    const RunSummary released = run(config, state);
    CHECK(outcome_of(released, "logs").result == "ok");
    CHECK(site.ids("logs") == std::vector<std::int64_t>{2, 3, 4, 5});
  }
  SUBCASE("on every rule") {
    state.add_hold(std::nullopt, std::nullopt, "freeze", std::nullopt, now_utc());
    const RunSummary held = run(config, state);
    for (const RuleOutcome& outcome : held.outcomes) {
      CAPTURE(outcome.rule);
      CHECK(outcome.result == "held");
      CHECK(outcome.rows == 0);
    }
    CHECK(site.row_count("logs") == 8);
    CHECK(site.row_count("accounts") == 3);
    CHECK(site.row_count("sessions") == 5);
    CHECK(site.row_count("errors") == 3);
  }
  SUBCASE("that has expired") {
    state.add_hold(std::nullopt, std::string{"logs"}, "short",
                   now_utc() + std::chrono::milliseconds{1}, now_utc());
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
    CHECK(outcome_of(run(config, state), "logs").rows == 4);
  }
  CHECK(state.verify_audit().ok);
}

TEST_CASE("engine: SIGTERM during a census ends the run before any change") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  const auto tables = [&] {
    std::map<std::string, std::map<std::int64_t, std::string>> rows;
    for (const char* table : {"logs", "accounts", "sessions", "errors", "notes"})
      rows[table] = site.dump(table);
    return rows;
  };
  const auto before = tables();
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  // The signal arrives as the first rule starts: its census gives up, the others never start.
  std::atomic<bool> stop{false};
  RunOptions options;
  std::string first;
  options.still_due = [&](const Rule& rule) {
    first = rule.id;
    stop = true;
    return true;
  };
  Engine engine(config, &state, adapters::AdapterSecrets{}, stop);
  const RunSummary summary = engine.run_once(options);

  REQUIRE(summary.outcomes.size() == 3);
  for (const RuleOutcome& outcome : summary.outcomes) {
    CAPTURE(outcome.rule);
    CHECK(outcome.result == "partial");
    CHECK(outcome.rows == 0);
    CHECK(outcome.message == (outcome.rule == first ? "stopped by signal during the census"
                                                    : "stopped before this rule started"));
  }
  CHECK(tables() == before);
  CHECK(entries_of(state, first, "batch").empty());
  const auto done = entries_of(state, first, "rule_done");
  REQUIRE(done.size() == 1);
  CHECK(done.front().detail.find("\"result\":\"partial\"") != std::string::npos);
  const auto runs = state.last_runs(first, 5);
  REQUIRE(runs.size() == 1);
  CHECK(runs.front().result == "partial");
  CHECK(state.verify_audit().ok);
}

TEST_CASE("engine: subject holds spare the held rows, and release lets them go") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  SUBCASE("held in the named rule") {
    const Hold hold =
        state.add_hold(std::string{"7"}, std::string{"logs"}, "claim", std::nullopt, now_utc());
    CHECK(outcome_of(run(config, state), "logs").rows == 3);
    CHECK(site.ids("logs") == std::vector<std::int64_t>{2, 3, 4, 5, 6});

    state.release_hold(hold.id, "claim settled", now_utc());
    CHECK(outcome_of(run(config, state), "logs").rows == 1);
    CHECK(site.ids("logs") == std::vector<std::int64_t>{2, 3, 4, 5});
    CHECK(batch_rows(state, "logs") == 4);
  }
  SUBCASE("held in every rule with a subject_column") {
    state.add_hold(std::string{"7"}, std::nullopt, "claim", std::nullopt, now_utc());
    state.add_hold(std::string{"3"}, std::nullopt, "claim", std::nullopt, now_utc());
    const RunSummary summary = run(config, state);
    CHECK(outcome_of(summary, "logs").rows == 3);
    CHECK(site.ids("logs") == std::vector<std::int64_t>{2, 3, 4, 5, 6});
    // accounts has no subject_column: the subject hold does not reach it.
    CHECK(outcome_of(summary, "accounts").rows == 5);
  }
  CHECK(state.verify_audit().ok);
}

TEST_CASE("engine: dry runs and reports change nothing") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  const std::atomic<bool> stop{false};
  RunOptions dry;
  dry.dry_run = true;

  SUBCASE("without a state file, which a dry run does not create") {
    const auto before = site.app().execAndGet("SELECT count(*) FROM logs").getInt64();
    const auto files = directory_snapshot(site.dir());
    RunSummary summary;
    {
      SqliteStateStore state(site.state_path(), StateStore::Mode::read_only);
      Engine engine(config, &state, {}, stop);
      summary = engine.run_once(dry);
      const Report report = build_report(*config, state, {}, now_utc(), {});
      CHECK(report.rules.size() == 3);
    }
    CHECK_FALSE(std::filesystem::exists(site.state_path()));
    CHECK(directory_snapshot(site.dir()) == files);
    CHECK(site.row_count("logs") == before);
    CHECK(outcome_of(summary, "logs").result == "dry_run");
    CHECK(outcome_of(summary, "logs").rows == 4);  // nothing is held
    CHECK(outcome_of(summary, "accounts").rows == 2);
    CHECK(outcome_of(summary, "errors").rows == 1);
  }
  SUBCASE("with a state file that has history and holds") {
    {
      SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
      state.add_hold(std::string{"7"}, std::string{"logs"}, "claim", std::nullopt, now_utc());
      RunOptions errors_only;
      errors_only.only_rules = {"errors"};
      run(config, state, errors_only);
    }
    const auto app_before = file_bytes(site.app_path());
    const auto state_before = file_bytes(site.state_path());
    RunSummary summary;
    {
      SqliteStateStore state(site.state_path(), StateStore::Mode::read_only);
      Engine engine(config, &state, {}, stop);
      summary = engine.run_once(dry);
      const Report report = build_report(*config, state, {}, now_utc(), {});
      CHECK(report.audit.ok);
    }
    CHECK(file_bytes(site.app_path()) == app_before);
    CHECK(file_bytes(site.state_path()) == state_before);
    CHECK(outcome_of(summary, "logs").rows == 3);  // the hold is honoured
    CHECK(outcome_of(summary, "logs").counts.held == 1);
    CHECK(outcome_of(summary, "errors").rows == 0);
  }
}

TEST_CASE("engine: report counts equal what run_once then changes, rule by rule") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  auto& db = site.app();
  // A rule the breaker refuses: the report says so, and the run changes nothing.
  db.exec("CREATE TABLE cookies(id INTEGER PRIMARY KEY, consented_at INTEGER)");
  db.exec("INSERT INTO cookies VALUES(1, 0), (2, 0), (3, NULL)");
  const auto config = site.configure(
      Scenario::rules() + rule_toml("cookies", "cookies", "consented_at", "unix_seconds", "1 day"));
  {
    SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
    state.add_hold(std::string{"7"}, std::string{"logs"}, "claim", std::nullopt, now_utc());
  }
  const std::map<std::string, std::string> tables{
      {"logs", "logs"}, {"accounts", "accounts"}, {"errors", "errors"}, {"cookies", "cookies"}};
  std::map<std::string, std::int64_t> before;
  for (const auto& [rule, table] : tables)
    before[rule] = site.row_count(table);

  Report report;
  {
    const SqliteStateStore state(site.state_path(), StateStore::Mode::read_only);
    report = build_report(*config, state, {}, now_utc(), {});
  }
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  const RunSummary summary = run(config, state);

  REQUIRE(report.rules.size() == 4);
  for (const RuleReport& entry : report.rules) {
    const std::string& rule = entry.rule->id;
    CAPTURE(rule);
    const RuleOutcome& outcome = outcome_of(summary, rule);
    const std::int64_t removed = before[rule] - site.row_count(tables.at(rule));
    CHECK(outcome.counts.due == entry.counts.due);
    CHECK(outcome.counts.held == entry.counts.held);
    if (entry.status == "refused") {
      CHECK(outcome.result == "refused");
      CHECK(removed == 0);
    } else {
      CHECK(entry.status == "due");
      CHECK(entry.counts.due == removed);
      CHECK(outcome.rows - outcome.children == removed);
    }
  }
  CHECK(report.rules[0].rule->id == "accounts");
  CHECK(report.rules[1].status == "refused");     // cookies
  CHECK(report.rules[2].counts.unreadable == 1);  // errors
  CHECK(report.rules[3].counts.held == 1);        // logs
}

TEST_CASE("engine: a missing table or datastore fails its rule, the others run") {
  Site site;
  Scenario scenario;
  scenario.build(site);

  SUBCASE("missing table") {
    const auto config = site.configure(
        Scenario::rules() + rule_toml("ghosts", "ghosts", "at", "unix_seconds", "30 days"));
    SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
    const RunSummary summary = run(config, state);
    CHECK(summary.any_failed());
    const RuleOutcome& ghosts = outcome_of(summary, "ghosts");
    CHECK((ghosts.result == "refused" || ghosts.result == "error"));
    CHECK(ghosts.message.find("ghosts") != std::string::npos);
    CHECK(entries_of(state, "ghosts", ghosts.result).size() == 1);
    CHECK(outcome_of(summary, "logs").rows == 4);
    CHECK(outcome_of(summary, "errors").rows == 1);
    CHECK(state.verify_audit().ok);
  }
  SUBCASE("missing datastore file") {
    const std::string other = "[datastores.gone]\ntype = \"sqlite\"\npath = \"gone.db\"\n\n"
                              "[rules.lost]\ndescription = \"d\"\npolicy = \"p\"\n"
                              "datastore = \"gone\"\ntable = \"t\"\nage_column = \"at\"\n"
                              "age_format = \"unix_seconds\"\nretain = \"1 day\"\n"
                              "action = \"delete\"\n\n";
    const auto config = site.configure(other + Scenario::rules());
    SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
    const RunSummary summary = run(config, state);
    CHECK(summary.any_failed());
    CHECK(outcome_of(summary, "lost").result == "error");
    CHECK(outcome_of(summary, "lost").message.find("gone") != std::string::npos);
    CHECK(entries_of(state, "lost", "error").size() == 1);
    CHECK_FALSE(std::filesystem::exists(site.dir() / "gone.db"));
    CHECK(outcome_of(summary, "logs").rows == 4);
  }
}

TEST_CASE("engine: a run that fails after some batches counts the rows they changed") {
  Site site;
  auto& db = site.app();
  create_old_logs(db, 5000);
  // The application refuses to lose row 4000: the batch that reaches it fails.
  db.exec("CREATE TRIGGER keep_4000 BEFORE DELETE ON logs WHEN old.id = 4000 "
          "BEGIN SELECT RAISE(ABORT, 'row 4000 is needed'); END");
  const auto config = site.configure(
      rule_toml("logs", "logs", "at", "unix_seconds", "30 days", "max_fraction = 1"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  const RuleOutcome outcome = outcome_of(run(config, state), "logs");

  CHECK(outcome.result == "error");
  CHECK(outcome.message.find("row 4000 is needed") != std::string::npos);
  const std::int64_t deleted = 5000 - site.row_count("logs");
  CHECK(deleted > 0);  // the first batches (200 rows, then more) committed
  CHECK(deleted < 4000);
  CHECK(outcome.rows == deleted);
  CHECK(batch_rows(state, "logs") == deleted);
  const auto runs = state.last_runs("logs", 1);
  REQUIRE(runs.size() == 1);
  CHECK(runs.front().result == "error");
  CHECK(runs.front().rows == deleted);
}

namespace {

// A batch entry as the engine writes it, for run `run`, of `rows` rows, named `token`.
std::string batch_entry_detail(std::int64_t run, int number, const std::string& token,
                               std::int64_t rows) {
  return fmt::format("{{\"run\":{},\"batch\":{},\"token\":\"{}\",\"datastore\":\"app\","
                     "\"table\":\"logs\",\"cutoff\":\"2026-01-01T00:00:00Z\",\"table_rows\":{},"
                     "\"cascade_rows\":0,\"files\":0}}",
                     run, number, token, rows);
}

std::string reverts_detail(std::int64_t run, std::int64_t seq) {
  return fmt::format("{{\"run\":{},\"reverts\":{},\"reason\":\"the process ended after the "
                     "batch's audit entry and before its commit\"}}",
                     run, seq);
}

}  // namespace

TEST_CASE("engine: a run killed between a batch's audit entry and its commit is set right") {
  Site site;
  auto& db = site.app();
  create_old_logs(db, 5000);
  const auto config = site.configure(
      rule_toml("logs", "logs", "at", "unix_seconds", "30 days", "max_fraction = 1"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  // What a process that died leaves: its run "running", and the entries of its batches, of
  // 100, 200 and 300 rows.
  const std::int64_t dead_run = state.begin_run("logs", now_utc());
  std::vector<AuditEntry> audited;
  for (int i = 1; i <= 3; ++i)
    audited.push_back(
        state.append_audit("batch", "logs", 100 * i,
                           batch_entry_detail(dead_run, i, fmt::format("{:016x}", i), 100 * i)));
  const auto hold_token = [&](int batch) {
    db.exec("CREATE TABLE retentiond_batches(rule TEXT PRIMARY KEY, token TEXT NOT NULL) "
            "WITHOUT ROWID");
    db.exec(fmt::format("INSERT INTO retentiond_batches VALUES ('logs', '{:016x}')", batch));
  };
  const auto negative_entries = [&] {
    std::vector<std::string> details;
    for (const AuditEntry& entry : entries_of(state, "logs", "batch"))
      if (entry.rows < 0)
        details.push_back(std::to_string(entry.rows) + " " + entry.detail);
    return details;
  };

  SUBCASE("killed after the first two committed: the last is undone") {
    db.exec("DELETE FROM logs WHERE id <= 300");
    hold_token(2);
    CHECK(outcome_of(run(config, state), "logs").rows == 4700);
    CHECK(negative_entries() ==
          std::vector<std::string>{"-300 " + reverts_detail(dead_run, audited[2].seq)});
  }
  SUBCASE("a power loss undid the last two: both are undone") {
    db.exec("DELETE FROM logs WHERE id <= 100");
    hold_token(1);
    CHECK(outcome_of(run(config, state), "logs").rows == 4900);
    CHECK(negative_entries() ==
          std::vector<std::string>{"-200 " + reverts_detail(dead_run, audited[1].seq),
                                   "-300 " + reverts_detail(dead_run, audited[2].seq)});
  }
  SUBCASE("every batch committed: the entries stand") {
    db.exec("DELETE FROM logs WHERE id <= 600");
    hold_token(3);
    CHECK(outcome_of(run(config, state), "logs").rows == 4400);
    CHECK(negative_entries().empty());
  }
  SUBCASE("the datastore holds none of the tokens (restored from a backup): no guess") {
    hold_token(9);
    CHECK(outcome_of(run(config, state), "logs").rows == 5000);
    CHECK(negative_entries().empty());
  }
  // In each case the dead run is closed, and the next run does not look at it again.
  const auto runs = state.last_runs("logs", 2);
  REQUIRE(runs.size() == 2);
  CHECK(runs[1].id == dead_run);
  CHECK(runs[1].result == "error");
  CHECK(runs[1].message == k_run_left_open);
  CHECK(runs[1].finished == audited.back().time);
  const auto before = negative_entries();
  run(config, state);
  CHECK(negative_entries() == before);
}

namespace {

// A state whose disk fails at one audit entry, the first for which `fails(kind, rows)` holds:
// the write reports an error after the entry reached the file (`written`, as a failed sync
// can) or before; with `stays_broken`, the audit log can be neither read nor written from
// then on (the run records still can).
class FailingState final : public StateStore {
public:
  using Fails = std::function<bool(std::string_view kind, std::int64_t rows)>;

  FailingState(StateStore& inner, Fails fails, bool written, bool stays_broken)
      : m_inner(inner), m_fails(std::move(fails)), m_written(written),
        m_stays_broken(stays_broken) {}
  // Fails the entry of the rule's `fail_at`-th batch.
  FailingState(StateStore& inner, int fail_at, bool written, bool stays_broken)
      : FailingState(
            inner,
            [fail_at, batches = 0](std::string_view kind, std::int64_t rows) mutable {
              return kind == "batch" && rows > 0 && ++batches == fail_at;
            },
            written, stays_broken) {}

  std::string describe() const override { return m_inner.describe(); }
  AuditEntry append_audit(std::string_view kind, std::string_view rule, std::int64_t rows,
                          std::string detail_json) override {
    return append(kind, rows, [&] { return m_inner.append_audit(kind, rule, rows, detail_json); });
  }
  AuditEntry append_batch_audit(std::string_view rule, std::int64_t rows, std::string detail_json,
                                const PendingFiles& pending) override {
    return append("batch", rows,
                  [&] { return m_inner.append_batch_audit(rule, rows, detail_json, pending); });
  }
  std::optional<PendingFiles> pending_files(std::string_view rule) const override {
    return m_inner.pending_files(rule);
  }
  void clear_pending_files(std::string_view rule) override { m_inner.clear_pending_files(rule); }
  void for_each_audit_entry(const AuditFilter& filter,
                            const std::function<void(const AuditEntry&)>& visit) const override {
    check();
    m_inner.for_each_audit_entry(filter, visit);
  }
  AuditVerification verify_audit() const override { return m_inner.verify_audit(); }
  std::string audit_head_hash() const override { return m_inner.audit_head_hash(); }
  std::optional<std::string> last_config_digest() const override {
    return m_inner.last_config_digest();
  }
  Hold add_hold(std::optional<std::string> subject, std::optional<std::string> rule,
                std::string reason, std::optional<Instant> until, Instant now) override {
    return m_inner.add_hold(std::move(subject), std::move(rule), std::move(reason), until, now);
  }
  Hold release_hold(std::int64_t id, std::string reason, Instant now) override {
    return m_inner.release_hold(id, std::move(reason), now);
  }
  std::vector<Hold> holds(bool include_inactive, Instant now) const override {
    check();
    return m_inner.holds(include_inactive, now);
  }
  std::int64_t begin_run(std::string_view rule, Instant started) override {
    return m_inner.begin_run(rule, started);
  }
  void finish_run(std::int64_t run_id, std::string_view result, std::int64_t rows,
                  std::string_view message, Instant finished) override {
    m_inner.finish_run(run_id, result, rows, message, finished);
  }
  std::vector<RunRecord> last_runs(std::string_view rule, int limit) const override {
    return m_inner.last_runs(rule, limit);
  }
  std::optional<Instant> last_success(std::string_view rule) const override {
    return m_inner.last_success(rule);
  }
  std::expected<std::unique_ptr<RuleLock>, std::string> lock_rule(std::string_view rule) override {
    return m_inner.lock_rule(rule);
  }

private:
  void check() const {
    if (m_broken)
      throw std::runtime_error("disk I/O error");
  }

  AuditEntry append(std::string_view kind, std::int64_t rows,
                    const std::function<AuditEntry()>& write) {
    check();
    if (m_failed || !m_fails(kind, rows))
      return write();
    m_failed = true;
    if (m_written)
      write();
    m_broken = m_stays_broken;
    throw std::runtime_error("disk I/O error");
  }

  StateStore& m_inner;
  Fails m_fails;
  bool m_written;
  bool m_stays_broken;
  bool m_failed = false;
  bool m_broken = false;
};

}  // namespace

TEST_CASE("engine: a batch whose audit entry the state reported unwritten rolls back, and an "
          "entry written all the same is taken back") {
  Site site;
  auto& db = site.app();
  create_old_logs(db, 5000);
  const auto config = site.configure(rule_toml("logs", "logs", "at", "unix_seconds", "30 days",
                                               "max_fraction = 1\nbatch_time = \"1ms\"\n"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  const auto audited = [&] { return batch_rows(state, "logs"); };
  const auto deleted = [&] { return 5000 - site.row_count("logs"); };

  SUBCASE("the entry was not written") {
    FailingState failing(state, 3, /*written=*/false, /*stays_broken=*/false);
    const RuleOutcome outcome = outcome_of(run(config, failing), "logs");
    CHECK(outcome.result == "error");
    CHECK(outcome.message == "disk I/O error");
    CHECK(deleted() > 0);  // the first two batches
    CHECK(audited() == deleted());
    CHECK(state.last_runs("logs", 1).front().result == "error");
  }
  SUBCASE("the entry was written all the same: taken back at once") {
    FailingState failing(state, 3, /*written=*/true, /*stays_broken=*/false);
    const RuleOutcome outcome = outcome_of(run(config, failing), "logs");
    CHECK(outcome.result == "error");
    CHECK(audited() == deleted());
    const auto batches = entries_of(state, "logs", "batch");
    REQUIRE(batches.size() == 4);  // two committed, the third, and its taking back
    CHECK(batches[3].rows == -batches[2].rows);
    CHECK(batches[3].detail ==
          fmt::format("{{\"run\":1,\"reverts\":{},\"reason\":\"the state reported the batch's "
                      "audit entry unwritten, so the batch rolled back; the entry was written "
                      "all the same\"}}",
                      batches[2].seq));
    CHECK(state.last_runs("logs", 1).front().result == "error");
  }
  SUBCASE("the audit log cannot be read back: the run stays open, and the next one sets it "
          "right") {
    {
      FailingState failing(state, 3, /*written=*/true, /*stays_broken=*/true);
      CHECK(outcome_of(run(config, failing), "logs").result == "error");
    }
    CHECK(state.last_runs("logs", 1).front().result == "running");
    CHECK(audited() > deleted());  // the third batch's entry stands for now
    const std::int64_t before = deleted();
    // The disk is replaced: the next run asks the datastore which batch committed last.
    CHECK(outcome_of(run(config, state), "logs").rows == 5000 - before);
    CHECK(deleted() == 5000);
    CHECK(audited() == 5000);
    const auto runs = state.last_runs("logs", 2);
    REQUIRE(runs.size() == 2);
    CHECK(runs[1].result == "error");
    CHECK(runs[1].message == k_run_left_open);
  }
}

TEST_CASE("engine: a batch whose commit failed and whose taking back could not be written is "
          "set right by the next run") {
  Site site;
  auto& db = site.app();
  db.exec("PRAGMA journal_mode = DELETE");
  create_old_logs(db, 1000);
  write_file(site.dir() / "retentiond.toml",
             "[state]\npath = \"state.db\"\n\n[datastores.app]\ntype = \"sqlite\"\npath = "
             "\"app.db\"\nbusy_timeout = \"100ms\"\n\n" +
                 rule_toml("logs", "logs", "at", "unix_seconds", "30 days", "max_fraction = 1"));
  const auto config = load_config(site.dir() / "retentiond.toml");
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  {
    // A reader of the application keeps the first batch's COMMIT from taking the file (a
    // rollback journal), and the state fails to record that the batch was undone.
    SQLite::Database reader(site.app_path(), SQLite::OPEN_READONLY);
    SQLite::Statement reading(reader, "SELECT id FROM logs");
    REQUIRE(reading.executeStep());
    FailingState failing(
        state, [](std::string_view kind, std::int64_t rows) { return kind == "batch" && rows < 0; },
        /*written=*/false, /*stays_broken=*/false);
    const RuleOutcome outcome = outcome_of(run(config, failing), "logs");
    CHECK(outcome.result == "error");
    CHECK(site.row_count("logs") == 1000);
    CHECK(batch_rows(state, "logs") > 0);  // the batch's entry stands for now
    CHECK(state.last_runs("logs", 1).front().result == "running");
  }
  CHECK(outcome_of(run(config, state), "logs").rows == 1000);
  CHECK(site.row_count("logs") == 0);
  CHECK(batch_rows(state, "logs") == 1000);
  CHECK(state.last_runs("logs", 2)[1].message == k_run_left_open);
}

TEST_CASE("engine: a dead run that cannot be closed keeps its rule from running") {
  Site site;
  auto& db = site.app();
  const std::int64_t now_s = to_unix_seconds(now_utc());
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER)");
  db.exec(fmt::format("INSERT INTO logs VALUES (1, {})", now_s - 100 * k_day_s));
  // A table of that name, but not retentiond's: the datastore cannot be asked.
  db.exec("CREATE TABLE retentiond_batches(name TEXT)");
  const auto config = site.configure(
      rule_toml("logs", "logs", "at", "unix_seconds", "30 days", "max_fraction = 1"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  const std::int64_t dead_run = state.begin_run("logs", now_utc());
  state.append_audit("batch", "logs", 1, batch_entry_detail(dead_run, 1, "00000000000000aa", 1));

  const RuleOutcome outcome = outcome_of(run(config, state), "logs");

  CHECK(outcome.result == "error");
  CHECK(outcome.message.starts_with("cannot close the last run, which the process did not "
                                    "finish: no such column: token"));
  CHECK(site.row_count("logs") == 1);
  const auto runs = state.last_runs("logs", 2);
  REQUIRE(runs.size() == 1);  // no new run hides the one to close
  CHECK(runs[0].result == "running");
}

TEST_CASE("engine: batches whose commit takes longer than their aim do not shrink to a row") {
  // A rollback journal syncs three times in each commit, and the audit entry syncs too: with a
  // batch_time of 1 ms that is more than the whole aim.
  Site site;
  auto& db = site.app();
  db.exec("PRAGMA journal_mode = DELETE");
  create_old_logs(db, 5000);
  const auto config = site.configure(rule_toml("logs", "logs", "at", "unix_seconds", "30 days",
                                               "max_fraction = 1\nbatch_time = \"1ms\"\n"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);

  CHECK(outcome_of(run(config, state), "logs").rows == 5000);
  // The statements keep half the aim whatever the syncs take: a few hundred rows a batch here,
  // about ten under AddressSanitizer. (Before, the size halved at each batch down to one row:
  // 4,975 batches.)
  const auto batches = entries_of(state, "logs", "batch");
  CAPTURE(batches.size());
  CHECK(batches.size() < 2'500);
}

TEST_CASE("engine: each batch leaves its audit entry's token in the datastore") {
  Site site;
  auto& db = site.app();
  create_old_logs(db, 3000, /*indexed=*/false);
  const auto config = site.configure(
      rule_toml("logs", "logs", "at", "unix_seconds", "30 days", "max_fraction = 1"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  run(config, state);
  const auto batches = entries_of(state, "logs", "batch");
  REQUIRE(batches.size() >= 2);
  const std::string& last = batches.back().detail;
  const std::size_t at = last.find("\"token\":\"");
  REQUIRE(at != std::string::npos);
  const std::string token = last.substr(at + 9, 16);
  CHECK(db.execAndGet("SELECT token FROM retentiond_batches WHERE rule = 'logs'").getString() ==
        token);
  CHECK(batches.front().detail.find(token) == std::string::npos);  // each batch its own
}

TEST_CASE("engine: a dry run counts every rule, whichever census fails") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  // A second datastore, locked by another connection for the whole dry run.
  const std::string locked = "[datastores.busy]\ntype = \"sqlite\"\npath = \"busy.db\"\n"
                             "busy_timeout = \"100ms\"\n\n"
                             "[rules.aaa_busy]\ndescription = \"d\"\npolicy = \"p\"\n"
                             "datastore = \"busy\"\ntable = \"t\"\nage_column = \"at\"\n"
                             "age_format = \"unix_seconds\"\nretain = \"1 day\"\n"
                             "action = \"delete\"\n\n";
  SQLite::Database busy((site.dir() / "busy.db").string(),
                        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  busy.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, at INTEGER); CREATE INDEX t_at ON t(at)");
  const auto config = site.configure(locked + Scenario::rules());
  SQLite::Transaction exclusive(busy, SQLite::TransactionBehavior::EXCLUSIVE);

  const std::atomic<bool> stop{false};
  Engine engine(config, nullptr, {}, stop);
  RunOptions dry;
  dry.dry_run = true;
  const RunSummary summary = engine.run_once(dry);

  CHECK(outcome_of(summary, "aaa_busy").result == "error");
  CHECK(outcome_of(summary, "aaa_busy").message.find("locked") != std::string::npos);
  CHECK(outcome_of(summary, "logs").result == "dry_run");
  CHECK(outcome_of(summary, "logs").rows == 4);
  CHECK(outcome_of(summary, "errors").result == "dry_run");
}

TEST_CASE("engine: deleted values do not linger in a WAL-mode datastore") {
  Site site;
  auto& db = site.app();
  REQUIRE(db.execAndGet("PRAGMA journal_mode=WAL").getString() == "wal");
  const std::int64_t now_s = to_unix_seconds(now_utc());
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER, ip TEXT)");
  db.exec("INSERT INTO logs VALUES(1, " + std::to_string(now_s - 60 * k_day_s) +
          ", 'SECRET-203.0.113.77'), (2, " + std::to_string(now_s) +
          ", 'kept-198.51.100.1'), "
          "(3, " +
          std::to_string(now_s) + ", 'kept-198.51.100.2')");
  const auto config = site.configure(rule_toml("logs", "logs", "at", "unix_seconds", "30 days"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  REQUIRE(outcome_of(run(config, state), "logs").rows == 1);

  std::string everything;
  for (const auto& [name, bytes] : directory_snapshot(site.dir()))
    if (name.starts_with("app.db"))
      everything += bytes;
  CHECK(everything.find("SECRET-203.0.113.77") == std::string::npos);
  CHECK(everything.find("kept-198.51.100.1") != std::string::npos);
  const auto wal = site.dir() / "app.db-wal";
  CHECK((!std::filesystem::exists(wal) || std::filesystem::file_size(wal) == 0));
}

TEST_CASE("engine: a run that changes nothing truncates a WAL in which an earlier run left "
          "deleted values") {
  Site site;
  auto& db = site.app();
  REQUIRE(db.execAndGet("PRAGMA journal_mode=WAL").getString() == "wal");
  // The application's connection (Site's) stays open, so SQLite never removes the WAL when a
  // connection closes, and it never checkpoints by itself.
  db.exec("PRAGMA wal_autocheckpoint = 0");
  db.exec("PRAGMA secure_delete = ON");
  const std::int64_t now_s = to_unix_seconds(now_utc());
  db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER, ip TEXT)");
  db.exec("INSERT INTO logs VALUES(1, " + std::to_string(now_s - 60 * k_day_s) +
          ", 'SECRET-203.0.113.77'), (2, " + std::to_string(now_s) + ", 'kept-198.51.100.1')");
  // What a run killed after its last batch and before its finish_run leaves: the row is gone
  // from the table, and its values are still in the WAL's earlier frames.
  db.exec("DELETE FROM logs WHERE id = 1");
  const auto wal = site.dir() / "app.db-wal";
  const auto app_files = [&] {
    std::string everything;
    for (const auto& [name, bytes] : directory_snapshot(site.dir()))
      if (name.starts_with("app.db"))
        everything += bytes;
    return everything;
  };
  REQUIRE(std::filesystem::file_size(wal) > 0);
  REQUIRE(app_files().find("SECRET-203.0.113.77") != std::string::npos);

  const auto config = site.configure(rule_toml("logs", "logs", "at", "unix_seconds", "30 days"));
  SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
  const RunSummary summary = run(config, state);
  const RuleOutcome& outcome = outcome_of(summary, "logs");
  CHECK(outcome.result == "ok");
  CHECK(outcome.rows == 0);

  CHECK(std::filesystem::file_size(wal) == 0);
  const std::string everything = app_files();
  CHECK(everything.find("SECRET-203.0.113.77") == std::string::npos);
  CHECK(everything.find("kept-198.51.100.1") != std::string::npos);
  CHECK(site.ids("logs") == std::vector<std::int64_t>{2});
}

TEST_CASE("engine: the report marks a rule stale when its last success is older than twice its "
          "interval") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  const Instant now = now_utc();
  {
    SqliteStateStore state(site.state_path(), StateStore::Mode::read_write);
    // Daily rules: logs last succeeded 3 days ago (stale), errors 1 day ago (not stale).
    const std::int64_t logs = state.begin_run("logs", now - std::chrono::hours{72});
    state.finish_run(logs, "ok", 0, "", now - std::chrono::hours{72});
    const std::int64_t errors = state.begin_run("errors", now - std::chrono::hours{24});
    state.finish_run(errors, "ok", 0, "", now - std::chrono::hours{24});
  }
  const SqliteStateStore state(site.state_path(), StateStore::Mode::read_only);
  const Report report = build_report(*config, state, {}, now, {});
  REQUIRE(report.rules.size() == 3);
  CHECK(report.rules[0].rule->id == "accounts");
  CHECK(report.rules[0].status == "due");  // never ran: due, not stale
  CHECK(report.rules[1].rule->id == "errors");
  CHECK(report.rules[1].status == "due");
  CHECK(report.rules[2].rule->id == "logs");
  CHECK(report.rules[2].status == "stale");
  REQUIRE(report.rules[2].last_runs.size() == 1);
  CHECK(report.rules[2].last_runs.front().result == "ok");
}

TEST_CASE("engine: a dry run without a state store") {
  Site site;
  Scenario scenario;
  scenario.build(site);
  const auto config = site.configure(Scenario::rules());
  const std::atomic<bool> stop{false};
  Engine engine(config, nullptr, {}, stop);
  RunOptions dry;
  dry.dry_run = true;
  const RunSummary summary = engine.run_once(dry);
  CHECK(outcome_of(summary, "logs").rows == 4);
  CHECK(site.row_count("logs") == 8);
}
