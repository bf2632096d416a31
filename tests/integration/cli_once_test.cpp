// The real binary: once, the instance lock, audit verify/log, holds, report and dry runs, on a
// real configuration, datastore and state file in a temporary directory.
#include "daemon/timestamp.hpp"
#include "tests/support/files.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/table_ids.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using retentiond::test::contains;
using retentiond::test::file_bytes;
using retentiond::test::lines_of;
using retentiond::test::run_retentiond;
using retentiond::test::RunResult;
using retentiond::test::TempDir;

namespace {

constexpr std::int64_t k_day_s = 86'400;
constexpr std::string_view k_genesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Reads JSON through SQLite's JSON functions, so the tests need no JSON library.
class Json {
public:
  explicit Json(std::string text) : m_db(":memory:"), m_text(std::move(text)) {}

  bool valid() { return query("SELECT json_valid(?)").getInt() == 1; }
  // json_type at `path` ("integer", "text", "null", "object", ...), or "missing".
  std::string type(const std::string& path) {
    auto statement = prepare("SELECT json_type(?, ?)", path);
    statement->executeStep();
    return statement->getColumn(0).isNull() ? "missing" : statement->getColumn(0).getString();
  }
  std::string text(const std::string& path) { return extract(path).getString(); }
  std::int64_t integer(const std::string& path) { return extract(path).getInt64(); }
  std::int64_t length(const std::string& path) {
    auto statement = prepare("SELECT json_array_length(?, ?)", path);
    statement->executeStep();
    return statement->getColumn(0).getInt64();
  }

private:
  std::unique_ptr<SQLite::Statement> prepare(const std::string& sql, const std::string& path) {
    auto statement = std::make_unique<SQLite::Statement>(m_db, sql);
    statement->bind(1, m_text);
    statement->bind(2, path);
    return statement;
  }
  SQLite::Column query(const std::string& sql) {
    m_statement = std::make_unique<SQLite::Statement>(m_db, sql);
    m_statement->bind(1, m_text);
    m_statement->executeStep();
    return m_statement->getColumn(0);
  }
  SQLite::Column extract(const std::string& path) {
    m_statement = prepare("SELECT json_extract(?, ?)", path);
    m_statement->executeStep();
    return m_statement->getColumn(0);
  }

  SQLite::Database m_db;
  std::string m_text;
  std::unique_ptr<SQLite::Statement> m_statement;
};

// A temporary installation: retentiond.toml, app.db and (once something writes it) state.db.
//   logs (30 days, subject user_id): 1, 2 and 5 expire; user 7 owns 1, 3 and 5.
//   cookies (365 days, no subject_column): 1 expires.
//   tickets: kept forever.
class Install {
public:
  Install() {
    const std::int64_t now = retentiond::to_unix_seconds(retentiond::now_utc());
    const auto ago = [&](std::int64_t days) { return std::to_string(now - days * k_day_s); };
    {
      SQLite::Database db(app(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, created_at INTEGER, user_id INTEGER)");
      db.exec("CREATE INDEX logs_created_at ON logs(created_at)");
      db.exec("INSERT INTO logs VALUES(1, " + ago(40) + ", 7), (2, " + ago(40) + ", 8), (3, " +
              ago(10) + ", 7), (4, NULL, 9), (5, " + ago(50) + ", 7), (6, " + ago(5) +
              ", 8), (7, " + ago(5) + ", 9)");
      db.exec("CREATE TABLE cookies(id INTEGER PRIMARY KEY, consented_at TEXT)");
      db.exec("CREATE INDEX cookies_consented_at ON cookies(consented_at)");
      db.exec("INSERT INTO cookies VALUES(1, '" +
              retentiond::format_iso8601(retentiond::from_unix_seconds(now - 400 * k_day_s)) +
              "'), (2, '" + retentiond::format_iso8601(retentiond::from_unix_seconds(now)) +
              "'), (3, NULL)");
      db.exec("CREATE TABLE tickets(id INTEGER PRIMARY KEY, body TEXT)");
      db.exec("INSERT INTO tickets VALUES(1, 'kept')");
    }
    std::ofstream(config()) << R"toml([state]
path = "state.db"

[datastores.app]
type = "sqlite"
path = "app.db"

[rules.logs]
description = "Connection logs are kept 30 days"
policy = "Privacy policy, section V"
datastore = "app"
table = "logs"
age_column = "created_at"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
subject_column = "user_id"

[rules.cookies]
description = "Cookies are kept 12 months after consent"
policy = "Cookie policy, section 2"
datastore = "app"
table = "cookies"
age_column = "consented_at"
age_format = "iso8601"
retain = "365 days"
action = "delete"

[rules.tickets]
description = "Support tickets are kept forever"
policy = "Privacy policy, section VI"
datastore = "app"
table = "tickets"
retain = "forever"
action = "keep"
)toml";
  }

  std::filesystem::path config() const { return m_dir / "retentiond.toml"; }
  std::filesystem::path app() const { return m_dir / "app.db"; }
  std::filesystem::path state() const { return m_dir / "state.db"; }

  RunResult cli(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-c", config().string()});
    return run_retentiond(args);
  }

  std::vector<std::int64_t> ids(const std::string& table) const {
    return retentiond::test::table_ids(app(), table);
  }

private:
  TempDir m_dir;
};

// Holds the instance lock of a state file the way another retentiond would.
class ForeignLock {
public:
  explicit ForeignLock(const std::filesystem::path& state) {
    const std::string path = state.string() + ".lock";
    m_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(m_fd >= 0);
    REQUIRE(::flock(m_fd, LOCK_EX | LOCK_NB) == 0);
    const std::string pid = "4242\n";
    REQUIRE(::ftruncate(m_fd, 0) == 0);
    REQUIRE(::pwrite(m_fd, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size()));
  }
  ~ForeignLock() { ::close(m_fd); }
  ForeignLock(const ForeignLock&) = delete;
  ForeignLock& operator=(const ForeignLock&) = delete;

private:
  int m_fd = -1;
};

std::vector<Json> json_lines(const std::string& text) {
  std::vector<Json> lines;
  for (const std::string& line : lines_of(text))
    lines.emplace_back(line);
  return lines;
}

}  // namespace

TEST_CASE("cli: once applies every rule and reports each one") {
  Install install;
  const RunResult result = install.cli({"once"});
  CHECK(result.exit_code == 0);
  CHECK(lines_of(result.out) == std::vector<std::string>{
                                    "cookies: ok (1 rows)",
                                    "logs: ok (3 rows)",
                                    "tickets: keep (0 rows): kept forever by policy",
                                });
  CHECK(install.ids("logs") == std::vector<std::int64_t>{3, 4, 6, 7});
  CHECK(install.ids("cookies") == std::vector<std::int64_t>{2, 3});
  CHECK(install.ids("tickets") == std::vector<std::int64_t>{1});
  CHECK(std::filesystem::exists(install.state()));

  SUBCASE("--rule runs only the named rule") {
    const RunResult again = install.cli({"once", "--rule", "logs"});
    CHECK(again.exit_code == 0);
    CHECK(lines_of(again.out) == std::vector<std::string>{"logs: ok (0 rows)"});
  }
  SUBCASE("an unknown --rule is a usage error") {
    const RunResult unknown = install.cli({"once", "--rule", "nope"});
    CHECK(unknown.exit_code == 2);
    CHECK(contains(unknown.err, "retentiond: error: --rule: unknown rule 'nope'"));
  }
}

TEST_CASE("cli: once --metrics-file writes the last run of each rule for Prometheus") {
  Install install;
  const std::string metrics = (install.state().parent_path() / "metrics.prom").string();
  // The systemd unit runs with UMask=0077; the node exporter reads the file as its own user.
  const mode_t umask_before = ::umask(077);
  const RunResult once = install.cli({"once", "--metrics-file", metrics});
  ::umask(umask_before);
  REQUIRE(once.exit_code == 0);
  namespace fs = std::filesystem;
  CHECK((fs::status(metrics).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
         fs::perms::others_read));
  const std::string text = file_bytes(metrics);
  CHECK(text.starts_with(
      "# HELP retentiond_rows_affected Rows deleted or anonymized by the last run of a rule.\n"
      "# TYPE retentiond_rows_affected gauge\n"
      "retentiond_rows_affected{rule=\"cookies\"} 1\n"
      "retentiond_rows_affected{rule=\"logs\"} 3\n"
      "retentiond_rows_affected{rule=\"tickets\"} 0\n"
      "# HELP retentiond_rule_result Result of the last run of a rule (1 for its result).\n"
      "# TYPE retentiond_rule_result gauge\n"
      "retentiond_rule_result{rule=\"cookies\",result=\"ok\"} 1\n"
      "retentiond_rule_result{rule=\"logs\",result=\"ok\"} 1\n"
      "retentiond_rule_result{rule=\"tickets\",result=\"keep\"} 1\n"
      "# HELP retentiond_due_rows Rows due when the last run of a rule started.\n"
      "# TYPE retentiond_due_rows gauge\n"
      "retentiond_due_rows{rule=\"cookies\"} 1\n"
      "retentiond_due_rows{rule=\"logs\"} 3\n"
      "retentiond_due_rows{rule=\"tickets\"} 0\n"
      "# HELP retentiond_backlog_runs Runs in a row that ended (max_runtime) with rows still "
      "due.\n"
      "# TYPE retentiond_backlog_runs gauge\n"
      "retentiond_backlog_runs{rule=\"cookies\"} 0\n"
      "retentiond_backlog_runs{rule=\"logs\"} 0\n"
      "retentiond_backlog_runs{rule=\"tickets\"} 0\n"
      "# HELP retentiond_last_success_timestamp_seconds Finish time of a rule's last successful "
      "run.\n"
      "# TYPE retentiond_last_success_timestamp_seconds gauge\n"
      "retentiond_last_success_timestamp_seconds{rule=\"cookies\"} "));
  CHECK(contains(text, "\nretentiond_last_success_timestamp_seconds{rule=\"logs\"} "));
}

TEST_CASE("cli: once exits 1 when a rule is refused, and the others still run") {
  Install install;
  {
    SQLite::Database db(install.app(), SQLite::OPEN_READWRITE);
    db.exec("DELETE FROM cookies WHERE id = 2");                             // 1 of 2 rows due ...
    db.exec("UPDATE cookies SET consented_at = '2000-01-01' WHERE id = 3");  // ... now 2 of 2
  }
  const RunResult result = install.cli({"once"});
  CHECK(result.exit_code == 1);
  CHECK(contains(result.out, "cookies: refused (0 rows): would delete 2 of 2 rows"));
  CHECK(contains(result.out, "logs: ok (3 rows)"));
  CHECK(install.ids("cookies") == std::vector<std::int64_t>{1, 3});

  const RunResult confirmed = install.cli({"once", "--confirm-mass", "cookies"});
  CHECK(confirmed.exit_code == 0);
  CHECK(contains(confirmed.out, "cookies: ok (2 rows)"));
  CHECK(install.ids("cookies").empty());
}

TEST_CASE("cli: a second once while the lock is held exits 75 and changes nothing") {
  Install install;
  const std::string before = file_bytes(install.app());
  {
    ForeignLock lock(install.state());
    const RunResult locked = install.cli({"once"});
    CHECK(locked.exit_code == 75);
    CHECK(locked.out.empty());
    CHECK(
        contains(locked.err, "retentiond: error: another retentiond (pid 4242) holds the lock on"));
    CHECK(contains(locked.err, install.state().string()));
    CHECK(file_bytes(install.app()) == before);
    CHECK_FALSE(std::filesystem::exists(install.state()));
  }
  const RunResult unlocked = install.cli({"once"});
  CHECK(unlocked.exit_code == 0);
  CHECK(install.ids("logs") == std::vector<std::int64_t>{3, 4, 6, 7});
}

TEST_CASE("cli: a second once naming the state through a symlink exits 75") {
  Install install;
  REQUIRE(install.cli({"hold", "add", "--subject", "9", "--reason", "claim"}).exit_code == 0);
  const auto dir = install.state().parent_path();
  std::filesystem::create_symlink("state.db", dir / "other.db");
  // A second configuration, the same but for the state's name.
  std::string text = file_bytes(install.config());
  text.replace(text.find("path = \"state.db\""), 18, "path = \"other.db\"");
  std::ofstream(dir / "other.toml") << text;
  const std::string before = file_bytes(install.app());

  ForeignLock lock(install.state());
  const RunResult locked = run_retentiond({"-c", (dir / "other.toml").string(), "once"});
  CHECK(locked.exit_code == 75);
  CHECK(contains(locked.err, "retentiond: error: another retentiond (pid 4242) holds the lock on"));
  CHECK(file_bytes(install.app()) == before);
  CHECK_FALSE(std::filesystem::exists(dir / "other.db.lock"));
}

TEST_CASE("cli: a state file with a second hard link is refused, and nothing changes") {
  Install install;
  REQUIRE(install.cli({"hold", "add", "--subject", "9", "--reason", "claim"}).exit_code == 0);
  const auto dir = install.state().parent_path();
  std::filesystem::create_hard_link(install.state(), dir / "other.db");
  const std::string before = file_bytes(install.app());
  const RunResult refused = install.cli({"once"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.out.empty());
  CHECK(refused.err == "retentiond: error: cannot open state database " + install.state().string() +
                           ": it has 2 hard links, and the instance lock and SQLite's journal go "
                           "by the file's name, so processes writing it through two names would "
                           "not exclude each other; remove the other links (find / -xdev "
                           "-samefile " +
                           install.state().string() +
                           ") and name the state by one path (a symlink to it is fine)\n");
  CHECK(file_bytes(install.app()) == before);

  std::filesystem::remove(dir / "other.db");
  CHECK(install.cli({"once"}).exit_code == 0);
}

TEST_CASE("cli: audit verify passes on an intact log and names the entry that was tampered with") {
  Install install;
  REQUIRE(install.cli({"hold", "add", "--subject", "9", "--reason", "claim"}).exit_code == 0);
  REQUIRE(install.cli({"once"}).exit_code == 0);
  const RunResult intact = install.cli({"audit", "verify"});
  CHECK(intact.exit_code == 0);
  CHECK(contains(intact.out, "audit log verified: "));
  CHECK(intact.err.empty());

  // seq 1 hold_add, 2 config, 3 run_start, then batch and rule_done entries.
  SQLite::Database state(install.state(), SQLite::OPEN_READWRITE);
  const std::int64_t entries = state.execAndGet("SELECT count(*) FROM audit").getInt64();
  REQUIRE(entries >= 6);
  const std::int64_t batch =
      state.execAndGet("SELECT min(seq) FROM audit WHERE kind = 'batch'").getInt64();

  std::string expected;
  SUBCASE("a row count edited") {
    state.exec("UPDATE audit SET rows = rows + 1 WHERE seq = " + std::to_string(batch));
    expected = "entry " + std::to_string(batch) + ": hash does not match its content";
  }
  SUBCASE("a rule id edited") {
    state.exec("UPDATE audit SET rule = CASE rule WHEN 'logs' THEN 'cookies' ELSE 'logs' END "
               "WHERE seq = " +
               std::to_string(batch));
    expected = "entry " + std::to_string(batch) + ": hash does not match its content";
  }
  SUBCASE("an entry in the middle deleted") {
    state.exec("DELETE FROM audit WHERE seq = 3");
    expected = "entry 4: expected seq 3";
  }
  SUBCASE("two entries' content swapped") {
    state.exec("CREATE TEMP TABLE saved AS SELECT * FROM audit WHERE seq IN (2, 3)");
    state.exec("UPDATE audit SET (time, kind, rule, rows, detail) = (SELECT time, kind, rule, "
               "rows, detail FROM saved WHERE saved.seq = 5 - audit.seq) WHERE seq IN (2, 3)");
    REQUIRE(state.execAndGet("SELECT kind FROM audit WHERE seq = 2").getString() == "run_start");
    expected = "entry 2: hash does not match its content";
  }

  const RunResult broken = install.cli({"audit", "verify"});
  CHECK(broken.exit_code == 1);
  CHECK(contains(broken.err, "retentiond: error: audit log " + install.state().string() +
                                 " is broken: " + expected));
  CHECK_FALSE(contains(broken.out, "verified"));
}

TEST_CASE("cli: audit log --format json prints one chained JSON object per line") {
  Install install;
  REQUIRE(install.cli({"once"}).exit_code == 0);
  const RunResult result = install.cli({"audit", "log", "--format", "json"});
  CHECK(result.exit_code == 0);
  auto lines = json_lines(result.out);
  REQUIRE(lines.size() >= 6);

  std::string previous{k_genesis};
  std::map<std::string, std::int64_t> batch_rows;
  std::map<std::string, int> kinds;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Json& line = lines[i];
    CAPTURE(i);
    REQUIRE(line.valid());
    CHECK(line.type("$") == "object");
    CHECK(line.type("$.seq") == "integer");
    CHECK(line.integer("$.seq") == static_cast<std::int64_t>(i + 1));
    CHECK(line.type("$.time") == "text");
    CHECK(retentiond::parse_iso8601(line.text("$.time")).has_value());
    CHECK(line.type("$.kind") == "text");
    CHECK((line.type("$.rule") == "text" || line.type("$.rule") == "null"));
    CHECK(line.type("$.rows") == "integer");
    CHECK(line.type("$.prev_hash") == "text");
    CHECK(line.type("$.hash") == "text");
    CHECK(line.text("$.prev_hash") == previous);
    CHECK(line.text("$.hash").size() == 64);
    previous = line.text("$.hash");
    const std::string kind = line.text("$.kind");
    ++kinds[kind];
    if (kind == "batch")
      batch_rows[line.text("$.rule")] += line.integer("$.rows");
    else
      CHECK(line.integer("$.rows") == 0);
    if (kind == "run_start" || kind == "config")
      CHECK(line.type("$.rule") == "null");
  }
  CHECK(kinds["config"] == 1);
  CHECK(kinds["run_start"] == 1);
  CHECK(kinds["rule_done"] == 2);  // logs and cookies; keep rules do not run
  CHECK(batch_rows == std::map<std::string, std::int64_t>{{"cookies", 1}, {"logs", 3}});

  SUBCASE("--rule filters by rule") {
    const RunResult logs = install.cli({"audit", "log", "--rule", "logs", "--format", "json"});
    CHECK(logs.exit_code == 0);
    auto filtered = json_lines(logs.out);
    REQUIRE_FALSE(filtered.empty());
    for (Json& line : filtered)
      CHECK(line.text("$.rule") == "logs");
  }
  SUBCASE("the text form has one line per entry") {
    const RunResult text = install.cli({"audit", "log"});
    CHECK(text.exit_code == 0);
    CHECK(lines_of(text.out).size() == lines.size());
  }
}

TEST_CASE("cli: hold release before any hold was added changes nothing") {
  Install install;
  const RunResult released = install.cli({"hold", "release", "1", "--reason", "typo"});
  CHECK(released.exit_code == 1);
  CHECK(released.err == "retentiond: error: hold 1 does not exist (no state file at " +
                            install.state().string() +
                            ": no hold was ever added; see retentiond hold list)\n");
  CHECK_FALSE(std::filesystem::exists(install.state()));
}

TEST_CASE("cli: hold add, list and release") {
  Install install;
  const RunResult added =
      install.cli({"hold", "add", "--subject", "7", "--rule", "logs", "--reason", "litigation"});
  CHECK(added.exit_code == 0);
  CHECK(added.out == "hold 1 added\n");

  const RunResult listed = install.cli({"hold", "list", "--format", "json"});
  CHECK(listed.exit_code == 0);
  auto holds = json_lines(listed.out);
  REQUIRE(holds.size() == 1);
  Json& hold = holds.front();
  CHECK(hold.integer("$.id") == 1);
  CHECK(hold.text("$.subject") == "7");
  CHECK(hold.text("$.rule") == "logs");
  CHECK(hold.text("$.reason") == "litigation");
  CHECK(retentiond::parse_iso8601(hold.text("$.created")).has_value());
  CHECK(hold.type("$.until") == "null");
  CHECK(hold.type("$.released") == "null");

  // The held subject's expired rows (1 and 5) stay.
  REQUIRE(install.cli({"once"}).exit_code == 0);
  CHECK(install.ids("logs") == std::vector<std::int64_t>{1, 3, 4, 5, 6, 7});

  const RunResult released = install.cli({"hold", "release", "1", "--reason", "case closed"});
  CHECK(released.exit_code == 0);
  CHECK(released.out == "hold 1 released\n");
  CHECK(lines_of(install.cli({"hold", "list", "--format", "json"}).out).empty());

  REQUIRE(install.cli({"once"}).exit_code == 0);
  CHECK(install.ids("logs") == std::vector<std::int64_t>{3, 4, 6, 7});

  const RunResult twice = install.cli({"hold", "release", "1", "--reason", "again"});
  CHECK(twice.exit_code == 1);
  CHECK(contains(twice.err, "hold 1 is already released"));

  // Both changes to the holds are audited.
  auto entries = json_lines(install.cli({"audit", "log", "--format", "json"}).out);
  int hold_adds = 0;
  int hold_releases = 0;
  for (Json& entry : entries) {
    hold_adds += entry.text("$.kind") == "hold_add" ? 1 : 0;
    hold_releases += entry.text("$.kind") == "hold_release" ? 1 : 0;
  }
  CHECK(hold_adds == 1);
  CHECK(hold_releases == 1);
  CHECK(install.cli({"audit", "verify"}).exit_code == 0);
}

TEST_CASE("cli: hold add --subject on a rule without subject_column is a usage error") {
  Install install;
  const RunResult result =
      install.cli({"hold", "add", "--subject", "7", "--rule", "cookies", "--reason", "claim"});
  CHECK(result.exit_code == 2);
  CHECK(result.out.empty());
  CHECK(contains(result.err, "retentiond: error: --subject: rule 'cookies' has no subject_column"));
  CHECK(contains(result.err, "--all"));

  SUBCASE("--all on that rule is allowed") {
    const RunResult all =
        install.cli({"hold", "add", "--all", "--rule", "cookies", "--reason", "freeze"});
    CHECK(all.exit_code == 0);
    const RunResult once = install.cli({"once"});
    CHECK(contains(once.out, "cookies: held (0 rows)"));
    CHECK(install.ids("cookies") == std::vector<std::int64_t>{1, 2, 3});
  }
}

TEST_CASE("cli: report --format json has the fields of SPEC 6") {
  Install install;
  REQUIRE(install.cli({"hold", "add", "--subject", "7", "--rule", "logs", "--reason", "claim"})
              .exit_code == 0);
  const RunResult result = install.cli({"report", "--format", "json"});
  CHECK(result.exit_code == 0);
  Json report(result.out);
  REQUIRE(report.valid());
  CHECK(retentiond::parse_iso8601(report.text("$.generated_at")).has_value());
  CHECK(report.text("$.config_digest").size() == 64);
  CHECK(report.type("$.audit") == "object");
  CHECK(report.integer("$.audit.verified") == 1);
  CHECK(report.type("$.audit.head_hash") == "text");
  REQUIRE(report.length("$.rules") == 3);

  const std::vector<std::string> fields{
      "id",        "description", "policy",     "datastore",
      "target",    "action",      "retain",     "cutoff",
      "due",       "held",        "undated",    "unreadable",
      "refused",   "total",       "oldest_due", "worst_overshoot_seconds",
      "last_runs", "status"};
  for (int i = 0; i < 3; ++i) {
    for (const std::string& field : fields) {
      CAPTURE(i);
      CAPTURE(field);
      CHECK(report.type("$.rules[" + std::to_string(i) + "]." + field) != "missing");
    }
  }
  // Rules in id order: cookies, logs, tickets.
  CHECK(report.text("$.rules[0].id") == "cookies");
  CHECK(report.text("$.rules[0].status") == "due");
  CHECK(report.integer("$.rules[0].due") == 1);
  CHECK(report.integer("$.rules[0].undated") == 1);
  CHECK(report.integer("$.rules[0].total") == 3);
  CHECK(report.text("$.rules[0].policy") == "Cookie policy, section 2");
  CHECK(report.text("$.rules[0].action") == "delete");
  CHECK(report.text("$.rules[0].retain") == "365 days");
  CHECK(report.type("$.rules[0].worst_overshoot_seconds") == "integer");
  CHECK(report.integer("$.rules[0].worst_overshoot_seconds") >= 35 * k_day_s - 60);
  CHECK(report.text("$.rules[1].id") == "logs");
  CHECK(report.integer("$.rules[1].due") == 1);
  CHECK(report.integer("$.rules[1].held") == 2);
  CHECK(report.integer("$.rules[1].undated") == 1);
  CHECK(report.integer("$.rules[1].total") == 7);
  CHECK(report.text("$.rules[1].target") == "logs");
  CHECK(report.text("$.rules[2].id") == "tickets");
  CHECK(report.text("$.rules[2].status") == "keep");
  CHECK(report.text("$.rules[2].retain") == "forever");

  SUBCASE("after a run, the report shows it and nothing is due") {
    REQUIRE(install.cli({"once"}).exit_code == 0);
    Json after(install.cli({"report", "--format", "json"}).out);
    REQUIRE(after.valid());
    CHECK(after.text("$.rules[0].status") == "ok");
    CHECK(after.integer("$.rules[0].due") == 0);
    CHECK(after.type("$.rules[0].oldest_due") == "null");
    REQUIRE(after.length("$.rules[0].last_runs") == 1);
    CHECK(after.text("$.rules[0].last_runs[0].result") == "ok");
    CHECK(after.integer("$.rules[0].last_runs[0].rows") == 1);
    CHECK(retentiond::parse_iso8601(after.text("$.rules[0].last_runs[0].time")).has_value());
    CHECK(after.integer("$.rules[1].held") == 2);
  }
  SUBCASE("--output FILE.json writes JSON there") {
    const auto output = install.state().parent_path() / "report.json";
    const RunResult written = install.cli({"report", "--output", output.string()});
    CHECK(written.exit_code == 0);
    CHECK(written.out.empty());
    CHECK(Json(file_bytes(output)).valid());
  }
}

TEST_CASE("cli: once --dry-run and report leave every file byte-identical") {
  Install install;
  const auto directory = [&] {
    std::map<std::string, std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(install.app().parent_path()))
      files[entry.path().filename().string()] = file_bytes(entry.path());
    return files;
  };

  SUBCASE("before any state exists") {
    const auto before = directory();
    const RunResult dry = install.cli({"once", "--dry-run"});
    CHECK(dry.exit_code == 0);
    CHECK(contains(dry.out, "logs: would delete 3 rows"));
    CHECK(contains(dry.out, "cookies: would delete 1 rows"));
    CHECK(install.cli({"report", "--format", "json"}).exit_code == 0);
    CHECK(directory() == before);
    CHECK_FALSE(std::filesystem::exists(install.state()));
  }
  SUBCASE("with a state file") {
    REQUIRE(install.cli({"hold", "add", "--subject", "8", "--reason", "claim"}).exit_code == 0);
    const std::string app = file_bytes(install.app());
    const std::string state = file_bytes(install.state());
    const RunResult dry = install.cli({"once", "--dry-run"});
    CHECK(dry.exit_code == 0);
    CHECK(contains(dry.out, "logs: would delete 2 rows (held 1"));
    CHECK(install.cli({"report", "--format", "md"}).exit_code == 0);
    CHECK(install.cli({"audit", "verify"}).exit_code == 0);
    CHECK(file_bytes(install.app()) == app);
    CHECK(file_bytes(install.state()) == state);
  }
}

// `-c retentiond.toml` makes the state path "state.db", whose directory is the empty path.
TEST_CASE("cli: a configuration named relative to the working directory") {
  Install install;
  const auto dir = install.config().parent_path();
  const RunResult hold = run_retentiond(
      {"-c", "retentiond.toml", "hold", "add", "--subject", "7", "--reason", "claim"}, {}, dir);
  CHECK(hold.exit_code == 0);
  CHECK(hold.err.empty());
  const RunResult once = run_retentiond({"-c", "./retentiond.toml", "once"}, {}, dir);
  CHECK(once.exit_code == 0);
  CHECK(install.ids("logs") == std::vector<std::int64_t>{1, 3, 4, 5, 6, 7});
  const RunResult from_env =
      run_retentiond({"once"}, {{"RETENTIOND_CONFIG", "retentiond.toml"}}, dir);
  CHECK(from_env.exit_code == 0);
}

TEST_CASE("cli: dry runs and reports leave no new files beside the state") {
  Install install;
  REQUIRE(install.cli({"once"}).exit_code == 0);
  const auto dir = install.config().parent_path();
  const auto listing = [&] {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  const auto before = listing();
  CHECK(install.cli({"once", "--dry-run"}).exit_code == 0);
  CHECK(install.cli({"report", "--format", "json"}).exit_code == 0);
  CHECK(install.cli({"audit", "verify"}).exit_code == 0);
  CHECK(listing() == before);
}
