// The real binary against a PostgreSQL datastore on the test server: report, hold, once, and
// the audit log, with native, numeric, text and parent anchors, a cascade and an hmac mask.
#include "daemon/digest.hpp"
#include "daemon/sqlite_state_store.hpp"
#include "daemon/timestamp.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
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
constexpr std::string_view k_hmac_key = "cli-postgres-hmac-key";

// One field of one rule in a `report --format json` document, read through SQLite's JSON
// functions (the tests need no JSON library); nullopt when it is null or missing.
std::optional<std::int64_t> rule_field(const std::string& report, const std::string& rule,
                                       const std::string& field) {
  SQLite::Database db(":memory:");
  SQLite::Statement query(db, "SELECT json_extract(value, '$.' || ?) FROM json_each(?, '$.rules') "
                              "WHERE json_extract(value, '$.id') = ?");
  query.bind(1, field);
  query.bind(2, report);
  query.bind(3, rule);
  if (!query.executeStep() || query.getColumn(0).isNull())
    return std::nullopt;
  return query.getColumn(0).getInt64();
}

// The sum of `rows` over the `batch` entries of each rule in `audit log --format json`.
std::map<std::string, std::int64_t> batch_rows(const std::string& audit_log) {
  SQLite::Database db(":memory:");
  std::map<std::string, std::int64_t> sums;
  for (const std::string& line : lines_of(audit_log)) {
    SQLite::Statement entry(db, "SELECT json_extract(?1, '$.kind'), json_extract(?1, '$.rule'), "
                                "json_extract(?1, '$.rows')");
    entry.bind(1, line);
    REQUIRE(entry.executeStep());
    if (entry.getColumn(0).getString() == "batch")
      sums[entry.getColumn(1).getString()] += entry.getColumn(2).getInt64();
  }
  return sums;
}

// A datastore on the test server and a configuration whose rules use it:
//   logs (timestamptz, 30 days, subject user_id): 1, 2 and 5 expire; user 7 owns 1, 3 and 5.
//   accounts (unix seconds, 5 years, anonymize email with hmac, cascade sessions): 1 and 3.
//   event_logs (age from events.ended_at, a date, 30 days): 1 and 2 (event 1 ended long ago).
//   cookies (iso8601 text, 365 days): 1 expires, 3 is unreadable.
class Install {
public:
  Install()
      : m_database(PostgresServer::instance().create_database("cli")),
        m_connection(PostgresServer::instance().dsn(m_database)) {
    const auto now = retentiond::now_utc();
    const std::int64_t now_s = retentiond::to_unix_seconds(now);
    const auto ago = [&](std::int64_t days) {
      return "'" + retentiond::format_iso8601(now - std::chrono::days{days}) + "'";
    };
    const auto seconds_ago = [&](std::int64_t days) {
      return std::to_string(now_s - days * k_day_s);
    };
    exec("CREATE TABLE logs(id bigint PRIMARY KEY, created_at timestamptz, user_id bigint)");
    exec("CREATE INDEX ON logs(created_at)");
    exec(fmt::format("INSERT INTO logs VALUES (1, {0}, 7), (2, {0}, 8), (3, {1}, 7), (4, NULL, 9), "
                     "(5, {2}, 7), (6, {3}, 8), (7, {3}, 9)",
                     ago(40), ago(10), ago(50), ago(5)));
    exec("CREATE TABLE accounts(id bigint PRIMARY KEY, last_seen bigint, email text, "
         "anonymized_at text)");
    exec("CREATE TABLE sessions(id bigint PRIMARY KEY, account_id bigint REFERENCES accounts)");
    exec(fmt::format("INSERT INTO accounts VALUES (1, {0}, 'ann@example.com', NULL), "
                     "(2, {1}, 'bob@example.com', NULL), (3, {0}, 'cy@example.com', NULL)",
                     seconds_ago(6 * 366), seconds_ago(1)));
    exec("INSERT INTO sessions VALUES (1, 1), (2, 1), (3, 2), (4, 3), (5, NULL)");
    exec("CREATE TABLE events(id bigint PRIMARY KEY, ended_at date)");
    exec("CREATE TABLE event_logs(id bigint PRIMARY KEY, event_id bigint, ip text)");
    exec(fmt::format(
        "INSERT INTO events VALUES (1, {}::timestamptz::date), (2, {}::timestamptz::date)", ago(40),
        ago(1)));
    exec("INSERT INTO event_logs VALUES (1, 1, '192.0.2.1'), (2, 1, '192.0.2.2'), "
         "(3, 2, '192.0.2.3'), (4, 99, '192.0.2.4')");
    exec("CREATE TABLE cookies(id bigint PRIMARY KEY, consented_at text)");
    exec(fmt::format("INSERT INTO cookies VALUES (1, {}), (2, {}), (3, 'last spring')", ago(400),
                     ago(0)));

    std::ofstream(m_dir / "hmac.key") << k_hmac_key;
    std::ofstream(config()) << fmt::format(R"toml([state]
path = "state.db"

[daemon]
hmac_key_file = "hmac.key"

[datastores.main]
type = "postgres"
dsn = "{}"

[rules.logs]
description = "Connection logs are kept 30 days"
policy = "Privacy policy, section V"
datastore = "main"
table = "logs"
age_column = "created_at"
retain = "30 days"
action = "delete"
subject_column = "user_id"
max_fraction = 1

[rules.accounts]
description = "Accounts are anonymized 5 years after their last use"
policy = "Privacy policy, section VI"
datastore = "main"
table = "accounts"
age_column = "last_seen"
age_format = "unix_seconds"
retain = "5 years"
action = "anonymize"
anonymized_column = "anonymized_at"
cascade = [{{ table = "sessions", foreign_key = "account_id" }}]
max_fraction = 1

[rules.accounts.anonymize]
email = "hmac"

[rules.event_logs]
description = "Event logs are kept 30 days after the event"
policy = "Privacy policy, section VII"
datastore = "main"
table = "event_logs"
retain = "30 days"
action = "delete"
max_fraction = 1

[rules.event_logs.age_from]
table = "events"
column = "ended_at"
key = "id"
foreign_key = "event_id"

[rules.cookies]
description = "Cookies are kept 12 months after consent"
policy = "Cookie policy, section 2"
datastore = "main"
table = "cookies"
age_column = "consented_at"
age_format = "iso8601"
retain = "365 days"
action = "delete"
max_fraction = 1
)toml",
                                           PostgresServer::instance().dsn(m_database));
  }

  std::filesystem::path config() const { return m_dir / "retentiond.toml"; }
  std::filesystem::path state_path() const { return m_dir / "state.db"; }
  std::string dsn() const { return PostgresServer::instance().dsn(m_database); }

  // Runs `sql` in a transaction of its own, which commits or rolls back; returns its id.
  std::string transaction(const std::string& sql, bool commit) {
    pqxx::work work(m_connection);
    work.exec(sql);
    const std::string xid = work.exec1("SELECT txid_current()::text")[0].as<std::string>();
    if (commit)
      work.commit();
    else
      work.abort();
    return xid;
  }

  RunResult cli(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-c", config().string()});
    return run_retentiond(args);
  }

  // Every row of `table` as text, columns separated by '|', NULL as "-", ordered by id.
  std::vector<std::string> rows(const std::string& table, const std::string& columns) {
    pqxx::nontransaction query(m_connection);
    std::vector<std::string> result;
    for (const pqxx::row& row :
         query.exec("SELECT " + columns + " FROM " + table + " ORDER BY id")) {
      std::string line;
      for (const pqxx::field& field : row)
        line += (line.empty() ? "" : "|") +
                (field.is_null() ? std::string{"-"} : field.as<std::string>());
      result.push_back(line);
    }
    return result;
  }

private:
  void exec(const std::string& sql) {
    pqxx::nontransaction statement(m_connection);
    statement.exec(sql);
  }

  TempDir m_dir;
  std::string m_database;
  pqxx::connection m_connection;
};

}  // namespace

TEST_CASE("cli postgres: report, then once, on a PostgreSQL datastore") {
  Install install;
  REQUIRE(install.cli({"check", "--connect"}).exit_code == 0);
  REQUIRE(install.cli({"hold", "add", "--subject", "7", "--rule", "logs", "--reason", "claim"})
              .exit_code == 0);

  const RunResult report = install.cli({"report", "--format", "json"});
  REQUIRE(report.exit_code == 0);
  using Field = std::optional<std::int64_t>;
  const auto field = [&](const std::string& rule, const std::string& name) {
    return rule_field(report.out, rule, name);
  };
  CHECK(field("logs", "due") == Field{1});
  CHECK(field("logs", "held") == Field{2});
  CHECK(field("logs", "undated") == Field{1});
  CHECK(field("logs", "total") == Field{7});
  CHECK(field("accounts", "due") == Field{2});
  CHECK(field("accounts", "total") == Field{3});
  CHECK(field("event_logs", "due") == Field{2});
  CHECK(field("event_logs", "undated") == Field{1});  // its event does not exist
  CHECK(field("cookies", "due") == Field{1});
  CHECK(field("cookies", "unreadable") == Field{1});
  // The report changed nothing.
  CHECK(install.rows("logs", "id").size() == 7);

  const RunResult once = install.cli({"once"});
  CHECK(once.exit_code == 0);
  CHECK(lines_of(once.out) == std::vector<std::string>{
                                  "accounts: ok (2 rows, 3 dependent rows)",
                                  "cookies: ok (1 rows)",
                                  "event_logs: ok (2 rows)",
                                  "logs: ok (1 rows)",
                              });
  CHECK(install.rows("logs", "id") == std::vector<std::string>{"1", "3", "4", "5", "6", "7"});
  const std::string key{k_hmac_key};
  const auto accounts = install.rows("accounts", "id, email, anonymized_at IS NOT NULL");
  CHECK(accounts == std::vector<std::string>{
                        "1|" + retentiond::hmac_sha256_hex(key, "ann@example.com") + "|t",
                        "2|bob@example.com|f",
                        "3|" + retentiond::hmac_sha256_hex(key, "cy@example.com") + "|t",
                    });
  CHECK(install.rows("sessions", "id") == std::vector<std::string>{"3", "5"});
  CHECK(install.rows("event_logs", "id") == std::vector<std::string>{"3", "4"});
  CHECK(install.rows("events", "id") == std::vector<std::string>{"1", "2"});
  CHECK(install.rows("cookies", "id") == std::vector<std::string>{"2", "3"});

  const RunResult audit = install.cli({"audit", "log", "--format", "json"});
  REQUIRE(audit.exit_code == 0);
  CHECK(batch_rows(audit.out) ==
        std::map<std::string, std::int64_t>{
            {"accounts", 5}, {"cookies", 1}, {"event_logs", 2}, {"logs", 1}});
  CHECK(install.cli({"audit", "verify"}).exit_code == 0);

  SUBCASE("a second pass changes nothing") {
    const RunResult again = install.cli({"once"});
    CHECK(again.exit_code == 0);
    CHECK(lines_of(again.out) == std::vector<std::string>{
                                     "accounts: ok (0 rows)",
                                     "cookies: ok (0 rows)",
                                     "event_logs: ok (0 rows)",
                                     "logs: ok (0 rows)",
                                 });
    CHECK(install.rows("accounts", "id, email, anonymized_at IS NOT NULL") == accounts);
    const RunResult after = install.cli({"report", "--format", "json"});
    for (const std::string rule : {"accounts", "cookies", "event_logs", "logs"}) {
      CAPTURE(rule);
      CHECK(rule_field(after.out, rule, "due") == Field{0});
    }
    CHECK(rule_field(after.out, "logs", "held") == Field{2});
  }
}

namespace {

// A batch entry as the engine writes it for rule logs, of one row, named by transaction `xid`.
std::string logs_batch_detail(std::int64_t run, int batch, const std::string& xid) {
  return fmt::format("{{\"run\":{},\"batch\":{},\"token\":\"{}\",\"datastore\":\"main\","
                     "\"table\":\"logs\",\"cutoff\":\"2026-01-01T00:00:00Z\",\"table_rows\":1,"
                     "\"cascade_rows\":0,\"files\":0}}",
                     run, batch, xid);
}

}  // namespace

TEST_CASE("cli postgres: a run that died between a batch's audit entry and its commit is set "
          "right by the server's word on the batch's transaction") {
  Install install;
  // What a process that died leaves: its run still `running`, and the entries of its two
  // batches, each naming its transaction: the first committed (row 1 went), the second rolled
  // back as the process ended (row 2 is still there).
  const std::string committed = install.transaction("DELETE FROM logs WHERE id = 1", true);
  const std::string rolled_back = install.transaction("DELETE FROM logs WHERE id = 2", false);
  std::int64_t dead_run = 0;
  std::int64_t second_seq = 0;
  {
    retentiond::SqliteStateStore state(install.state_path(),
                                       retentiond::StateStore::Mode::read_write);
    dead_run = state.begin_run("logs", retentiond::now_utc());
    state.append_audit("batch", "logs", 1, logs_batch_detail(dead_run, 1, committed));
    second_seq =
        state.append_audit("batch", "logs", 1, logs_batch_detail(dead_run, 2, rolled_back)).seq;
  }

  SUBCASE("the server says: the first committed, the second rolled back") {
    const RunResult once = install.cli({"once", "--rule", "logs"});
    CAPTURE(once.err);
    CHECK(once.exit_code == 0);
    CHECK(lines_of(once.out) == std::vector<std::string>{"logs: ok (2 rows)"});  // rows 2 and 5
    CHECK(install.rows("logs", "id") == std::vector<std::string>{"3", "4", "6", "7"});
    const RunResult audit = install.cli({"audit", "log", "--rule", "logs", "--format", "json"});
    REQUIRE(audit.exit_code == 0);
    // Rows 1, 2 and 5 went: the second batch's entry is taken back.
    CHECK(batch_rows(audit.out) == std::map<std::string, std::int64_t>{{"logs", 3}});
    CHECK(contains(audit.out, fmt::format("\"rows\":-1,\"detail\":{{\"run\":{},\"reverts\":{},",
                                          dead_run, second_seq)));
    CHECK(install.cli({"audit", "verify"}).exit_code == 0);
  }
  SUBCASE("the second transaction is still open: the rule waits for the server to end it") {
    // As when the host that ran it went down: the server keeps the session until it notices.
    pqxx::connection session(install.dsn());
    pqxx::work open(session);
    open.exec("DELETE FROM logs WHERE id = 5");
    const std::string xid = open.exec1("SELECT txid_current()::text")[0].as<std::string>();
    {
      retentiond::SqliteStateStore state(install.state_path(),
                                         retentiond::StateStore::Mode::read_write);
      state.append_audit("batch", "logs", 1, logs_batch_detail(dead_run, 3, xid));
    }
    const RunResult waiting = install.cli({"once", "--rule", "logs"});
    CHECK(waiting.exit_code == 1);
    CHECK(contains(waiting.out,
                   fmt::format("logs: error (0 rows): cannot close the last run, which the "
                               "process did not finish: datastore 'main': transaction {} of the "
                               "batch is still in progress on the server",
                               xid)));
    CHECK(install.rows("logs", "id") == std::vector<std::string>{"2", "3", "4", "5", "6", "7"});
    open.abort();
    const RunResult once = install.cli({"once", "--rule", "logs"});
    CHECK(once.exit_code == 0);
    CHECK(lines_of(once.out) == std::vector<std::string>{"logs: ok (2 rows)"});
    const RunResult audit = install.cli({"audit", "log", "--rule", "logs", "--format", "json"});
    CHECK(batch_rows(audit.out) == std::map<std::string, std::int64_t>{{"logs", 3}});
  }
}

TEST_CASE("cli postgres: a COMMIT in doubt leaves its run open, and the next run asks the "
          "server how it ended") {
  const std::string dsn =
      PostgresServer::instance().dsn(PostgresServer::instance().create_database("in_doubt"));
  pqxx::connection admin(dsn);
  const auto exec = [&](const std::string& sql) { pqxx::nontransaction(admin).exec(sql); };
  exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  exec(fmt::format("INSERT INTO logs VALUES (1, {})", std::time(nullptr) - 40 * k_day_s));
  // A deferred trigger runs inside COMMIT: this one keeps the batch's COMMIT going.
  exec("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM "
       "pg_sleep(10); RETURN NULL; END $$");
  exec("CREATE CONSTRAINT TRIGGER slow_commit AFTER DELETE ON logs DEFERRABLE INITIALLY "
       "DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()");
  exec("CREATE ROLE cli_in_doubt LOGIN");
  exec("GRANT ALL ON logs TO cli_in_doubt");
  const TempDir dir;
  std::ofstream(dir / "retentiond.toml") << fmt::format(R"toml([state]
path = "state.db"

[datastores.main]
type = "postgres"
dsn = "{} user=cli_in_doubt"

[rules.logs]
description = "Connection logs are kept 30 days"
policy = "Privacy policy, section V"
datastore = "main"
table = "logs"
age_column = "at"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
max_fraction = 1
)toml",
                                                        dsn);
  const std::string config = (dir / "retentiond.toml").string();
  const auto audited = [&] {
    return batch_rows(run_retentiond({"-c", config, "audit", "log", "--format", "json"}).out);
  };
  {
    retentiond::test::RunningRetentiond once({"-c", config, "once"}, {}, dir.path());
    // While its COMMIT sleeps, the role may no longer log in (so the server cannot be asked)
    // and its session ends.
    std::this_thread::sleep_for(std::chrono::milliseconds{1500});
    exec("ALTER ROLE cli_in_doubt NOLOGIN");
    exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "
         "'cli_in_doubt'");
    CHECK(once.wait(std::chrono::seconds{30}) == 1);
    CHECK(contains(once.err(), "whether transaction "));
    CHECK(contains(once.err(), " committed is not known yet"));
  }
  // The batch's entry stands, and its run stays open: no compensating entry was guessed.
  CHECK(audited() == std::map<std::string, std::int64_t>{{"logs", 1}});
  retentiond::SqliteStateStore state(dir / "state.db", retentiond::StateStore::Mode::read_only);
  CHECK(state.last_runs("logs", 1).front().result == "running");

  exec("ALTER ROLE cli_in_doubt LOGIN");
  exec("DROP TRIGGER slow_commit ON logs");
  const RunResult next = run_retentiond({"-c", config, "once"});
  CAPTURE(next.err);
  CHECK(next.exit_code == 0);
  CHECK(lines_of(next.out) == std::vector<std::string>{"logs: ok (1 rows)"});
  // The server said the transaction rolled back: its entry is taken back, and row 1 went now.
  CHECK(audited() == std::map<std::string, std::int64_t>{{"logs", 1}});
  CHECK(pqxx::nontransaction(admin).exec1("SELECT count(*) FROM logs")[0].as<int>() == 0);
}

TEST_CASE("cli postgres: a datastore that cannot be reached fails its rules with exit 1") {
  TempDir dir;
  std::ofstream(dir / "retentiond.toml") << fmt::format(R"toml([state]
path = "state.db"

[datastores.main]
type = "postgres"
dsn = "{}"

[rules.logs]
description = "Connection logs are kept 30 days"
policy = "Privacy policy, section V"
datastore = "main"
table = "logs"
age_column = "created_at"
retain = "30 days"
action = "delete"
)toml",
                                                        PostgresServer::instance().dsn("nope"));
  const RunResult once = run_retentiond({"-c", (dir / "retentiond.toml").string(), "once"});
  CHECK(once.exit_code == 1);
  CHECK(retentiond::test::contains(
      once.err, "datastore 'main': cannot connect: connection to server on socket \"" +
                    (PostgresServer::instance().socket_dir() / ".s.PGSQL.5432").string() +
                    "\" failed: FATAL:  database \"nope\" does not exist"));
}

TEST_CASE("cli postgres: inheritance and acting foreign keys refuse the rule; a hold on a uuid "
          "holds it in any case") {
  const std::string database = PostgresServer::instance().create_database("cli_refuse");
  pqxx::connection connection(PostgresServer::instance().dsn(database));
  const auto exec = [&](const std::string& sql) { pqxx::nontransaction(connection).exec(sql); };
  const auto ids = [&](const std::string& from) {
    std::vector<std::string> result;
    for (const pqxx::row& row :
         pqxx::nontransaction(connection).exec("SELECT id FROM " + from + " ORDER BY id"))
      result.push_back(row[0].as<std::string>());
    return result;
  };
  exec("CREATE TABLE logs(id bigint PRIMARY KEY, created_at timestamptz)");
  exec("INSERT INTO logs SELECT g, now() FROM generate_series(1, 5) AS g");
  exec("CREATE TABLE logs_archive() INHERITS (logs)");
  exec("INSERT INTO logs_archive SELECT g, now() - interval '90 days' FROM generate_series(11, 13) "
       "AS g");
  exec("CREATE TABLE accounts(id bigint PRIMARY KEY, created_at timestamptz)");
  exec("CREATE TABLE sessions(id bigint PRIMARY KEY, account_id bigint REFERENCES accounts ON "
       "DELETE CASCADE)");
  exec("INSERT INTO accounts VALUES (1, now() - interval '90 days'), (2, now())");
  exec("INSERT INTO sessions VALUES (1, 1), (2, 2)");
  exec("CREATE TABLE devices(id bigint PRIMARY KEY, created_at timestamptz, owner uuid)");
  exec("INSERT INTO devices VALUES (1, now() - interval '90 days', "
       "'3f2504e0-4f89-11d3-9a0c-0305e82c3301'), (2, now() - interval '90 days', "
       "'6ba7b810-9dad-11d1-80b4-00c04fd430c8'), (3, now(), NULL)");
  TempDir dir;
  std::string config = fmt::format(R"toml([state]
path = "state.db"

[datastores.main]
type = "postgres"
dsn = "{}"
)toml",
                                   PostgresServer::instance().dsn(database));
  for (const std::string table : {"logs", "accounts", "devices"})
    config += fmt::format(R"toml(
[rules.{0}]
description = "{0} are kept 30 days"
policy = "Privacy policy"
datastore = "main"
table = "{0}"
age_column = "created_at"
retain = "30 days"
action = "delete"
max_fraction = 1
{1}
)toml",
                          table, table == "devices" ? "subject_column = \"owner\"" : "");
  std::ofstream(dir / "retentiond.toml") << config;
  const auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", (dir / "retentiond.toml").string()});
    return run_retentiond(args);
  };
  REQUIRE(cli({"hold", "add", "--subject", "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "--rule",
               "devices", "--reason", "claim"})
              .exit_code == 0);

  const RunResult once = cli({"once"});
  CHECK(once.exit_code == 1);
  CHECK(lines_of(once.out) ==
        std::vector<std::string>{
            "accounts: refused (0 rows): table 'sessions' references 'accounts' (account_id) ON "
            "DELETE CASCADE: deleting rows of 'accounts' would make PostgreSQL delete rows of "
            "'sessions' that the rule does not name and the audit does not count (add it to "
            "cascade: { table = \"sessions\", foreign_key = \"account_id\" })",
            "devices: ok (1 rows)",
            "logs: refused (0 rows): table 'logs' in datastore 'main' has inheritance children "
            "(logs_archive), which this version cannot batch: statements on it would change "
            "their rows too (detach them: ALTER TABLE logs_archive NO INHERIT logs)",
        });
  CHECK(ids("ONLY logs") == std::vector<std::string>{"1", "2", "3", "4", "5"});
  CHECK(ids("logs_archive") == std::vector<std::string>{"11", "12", "13"});
  CHECK(ids("accounts") == std::vector<std::string>{"1", "2"});
  CHECK(ids("sessions") == std::vector<std::string>{"1", "2"});
  CHECK(ids("devices") == std::vector<std::string>{"1", "3"});
}
