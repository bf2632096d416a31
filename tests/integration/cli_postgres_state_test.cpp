// The real binary with `[state] dsn`: the audit log, holds and run history in a PostgreSQL
// database on the test server, shared as several hosts would share it.
#include "daemon/postgres_state_store.hpp"
#include "tests/support/files.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using retentiond::test::contains;
using retentiond::test::lines_of;
using retentiond::test::PostgresServer;
using retentiond::test::run_retentiond;
using retentiond::test::RunResult;
using retentiond::test::TempDir;

namespace {

constexpr std::int64_t k_day_s = 86'400;

// A host: app.db (a SQLite datastore with a `logs` table) and retentiond.toml whose state is a
// fresh database on the test server.
class Host {
public:
  Host() : m_database(PostgresServer::instance().create_database("cli_state")) {
    SQLite::Database app(m_dir / "app.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    app.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER, user_id INTEGER)");
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    // 1-3 are 400 days old, 4-6 a day old.
    for (int id = 1; id <= 6; ++id)
      app.exec(fmt::format("INSERT INTO logs VALUES({}, {}, {})", id,
                           now - (id <= 3 ? 400 : 1) * k_day_s, id));
    write_config(dsn());
  }

  std::string dsn() const { return PostgresServer::instance().dsn(m_database); }
  const std::string& database() const { return m_database; }

  // retentiond.toml with this state dsn and `state_extra` lines in [state].
  void write_config(const std::string& dsn, const std::string& state_extra = "") const {
    std::ofstream(m_dir / "retentiond.toml", std::ios::trunc)
        << "[state]\ndsn = \"" << dsn << "\"\n"
        << state_extra
        << "\n[datastores.app]\ntype = \"sqlite\"\npath = \"app.db\"\n\n"
           "[rules.logs]\ndescription = \"Logs are kept 12 months\"\npolicy = \"test policy\"\n"
           "datastore = \"app\"\ntable = \"logs\"\nage_column = \"at\"\n"
           "age_format = \"unix_seconds\"\nretain = \"365 days\"\naction = \"delete\"\n"
           "subject_column = \"user_id\"\n";
  }

  RunResult retentiond(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-c", (m_dir / "retentiond.toml").string()});
    return run_retentiond(args);
  }

  std::vector<std::int64_t> ids() const {
    SQLite::Database app(m_dir / "app.db");
    std::vector<std::int64_t> result;
    SQLite::Statement query(app, "SELECT id FROM logs ORDER BY id");
    while (query.executeStep())
      result.push_back(query.getColumn(0).getInt64());
    return result;
  }

  void add_old_row(int id) const {
    SQLite::Database app(m_dir / "app.db", SQLite::OPEN_READWRITE);
    app.exec(fmt::format("INSERT INTO logs VALUES({}, 1000000000, {})", id, id));
  }

  // How messages name this state.
  std::string described() const {
    return fmt::format("PostgreSQL state (host={} dbname={} user=postgres)",
                       PostgresServer::instance().socket_dir().string(), m_database);
  }

  const std::filesystem::path& dir() const { return m_dir.path(); }

private:
  TempDir m_dir;
  std::string m_database;
};

}  // namespace

TEST_CASE("cli: with a PostgreSQL state, once, audit, holds and report use the database") {
  const Host host;
  const RunResult once = host.retentiond({"once"});
  CHECK(once.exit_code == 0);
  CHECK(once.out == "logs: ok (3 rows)\n");
  CHECK(host.ids() == std::vector<std::int64_t>{4, 5, 6});

  const RunResult verify = host.retentiond({"audit", "verify"});
  CHECK(verify.exit_code == 0);
  CHECK(contains(verify.out, "audit log verified: "));

  const RunResult log = host.retentiond({"audit", "log", "--format", "json", "--rule", "logs"});
  CHECK(log.exit_code == 0);
  const auto lines = lines_of(log.out);
  REQUIRE(lines.size() == 2);
  CHECK(contains(lines[0], R"("kind":"batch","rule":"logs","rows":3,)"));
  CHECK(contains(lines[1], R"("kind":"rule_done","rule":"logs",)"));

  // The state is in the database: the report reads the run from there.
  const RunResult report = host.retentiond({"report", "--format", "md"});
  CHECK(report.exit_code == 0);
  CHECK(contains(report.out, "ok"));

  const RunResult hold =
      host.retentiond({"hold", "add", "--all", "--rule", "logs", "--reason", "litigation"});
  CHECK(hold.exit_code == 0);
  CHECK(hold.out == "hold 1 added\n");
  host.add_old_row(7);
  const RunResult held = host.retentiond({"once"});
  CHECK(held.exit_code == 0);
  CHECK(held.out == "logs: held (0 rows): suspended by a hold on the whole rule\n");
  CHECK(host.ids() == std::vector<std::int64_t>{4, 5, 6, 7});

  // Whoever can write to the database can edit the log, but not without it showing.
  {
    pqxx::connection raw(host.dsn());
    pqxx::work edit(raw);
    edit.exec("UPDATE retentiond.audit SET rows = 99 WHERE kind = 'batch'");
    edit.commit();
  }
  const RunResult broken = host.retentiond({"audit", "verify"});
  CHECK(broken.exit_code == 1);
  CHECK(contains(broken.err,
                 "retentiond: error: audit log " + host.described() + " is broken: entry "));
  CHECK(contains(broken.err, ": hash does not match its content\n"));
}

TEST_CASE("cli: with a PostgreSQL state, a rule another host is running is skipped") {
  const Host host;
  // Another host, as retentiond names itself to the server, holding the rule's lock.
  pqxx::connection other(host.dsn() + " application_name='retentiond web2:4242'");
  pqxx::nontransaction session(other);
  session.exec_params("SELECT pg_advisory_lock($1)", retentiond::postgres_rule_lock_key("logs"));

  const RunResult skipped = host.retentiond({"once"});
  CHECK(skipped.exit_code == 0);
  CHECK(skipped.out == "logs: skipped (0 rows): retentiond web2:4242 is running this rule "
                       "(advisory lock in " +
                           host.described() + ")\n");
  CHECK(host.ids() == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
  // Nothing was recorded for the skipped rule: no run, no audit entry but the config's.
  const RunResult log = host.retentiond({"audit", "log", "--format", "json", "--rule", "logs"});
  CHECK(log.out.empty());

  session.exec_params("SELECT pg_advisory_unlock($1)", retentiond::postgres_rule_lock_key("logs"));
  const RunResult once = host.retentiond({"once"});
  CHECK(once.out == "logs: ok (3 rows)\n");
  CHECK(host.ids() == std::vector<std::int64_t>{4, 5, 6});
}

TEST_CASE("cli: a PostgreSQL state's password comes from password_file, and never shows") {
  const Host host;
  const std::string password{PostgresServer::k_password};
  const std::string dsn =
      fmt::format("host={} dbname={} user={}", PostgresServer::instance().socket_dir().string(),
                  host.database(), PostgresServer::k_password_user);
  std::ofstream(host.dir() / "pgpass") << password << "\n";
  std::ofstream(host.dir() / "wrong") << "not the password\n";

  host.write_config(dsn, "password_file = \"pgpass\"\n");
  const RunResult once = host.retentiond({"once"});
  CHECK(once.exit_code == 0);
  CHECK(once.out == "logs: ok (3 rows)\n");

  host.write_config(dsn, "password_file = \"wrong\"\n");
  const RunResult refused = host.retentiond({"once"});
  CHECK(refused.exit_code == 1);
  CHECK(contains(refused.err,
                 fmt::format("retentiond: error: cannot open PostgreSQL state (host={} dbname={} "
                             "user={}): ",
                             PostgresServer::instance().socket_dir().string(), host.database(),
                             PostgresServer::k_password_user)));
  CHECK(contains(refused.err, "password authentication failed"));
  CHECK_FALSE(contains(refused.err, "not the password"));

  const RunResult check = host.retentiond({"check", "--connect"});
  CHECK(check.exit_code == 78);
  CHECK(contains(check.err, "retentiond: error: state: cannot open PostgreSQL state (host="));
  CHECK(contains(check.err, "password authentication failed"));
}

TEST_CASE("cli: two services sharing a PostgreSQL state run a due rule once between them") {
  const Host host;
  const std::vector<std::string> args{"-c", (host.dir() / "retentiond.toml").string(), "run"};
  TempDir logs_a;
  TempDir logs_b;
  retentiond::test::RunningRetentiond a(args, {}, logs_a.path());
  retentiond::test::RunningRetentiond b(args, {}, logs_b.path());

  pqxx::connection raw(host.dsn());
  const auto finished_runs = [&] {
    pqxx::read_transaction read(raw);
    if (read.exec("SELECT to_regclass('retentiond.runs')")[0][0].is_null())
      return std::int64_t{-1};
    return read.exec("SELECT count(*) FROM retentiond.runs WHERE finished IS NOT NULL")[0][0]
        .as<std::int64_t>();
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (finished_runs() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  // Time for the other host to run it too, were it going to.
  std::this_thread::sleep_for(std::chrono::milliseconds{1500});

  pqxx::read_transaction read(raw);
  const pqxx::result runs = read.exec("SELECT rule, result, rows FROM retentiond.runs");
  REQUIRE(runs.size() == 1);
  CHECK(std::string{runs[0][1].c_str()} == "ok");
  CHECK(runs[0][2].as<std::int64_t>() == 3);
  CHECK(host.ids() == std::vector<std::int64_t>{4, 5, 6});

  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait(std::chrono::seconds{30}) == 0);
  CHECK(b.wait(std::chrono::seconds{30}) == 0);
}
