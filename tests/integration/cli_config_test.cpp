// The real binary against bad configurations and bad command lines: exit status, the exact text
// on stderr, and that nothing was touched.
#include "daemon/cli.hpp"
#include "tests/support/files.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <thread>

using retentiond::test::file_bytes;
using retentiond::test::run_retentiond;
using retentiond::test::RunResult;
using retentiond::test::TempDir;

namespace {

void write_file(const std::filesystem::path& path, std::string_view text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Every file name under `dir`, relative to it.
std::set<std::string> listing(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir))
    names.insert(std::filesystem::relative(entry.path(), dir).string());
  return names;
}

// A valid main file whose state lives in state/ and whose datastore is app.db, both beside it;
// the rule is on lines 10-19.
constexpr std::string_view k_valid = R"([state]
path = "state/state.db"

[daemon]
rules = ["rules.d/*.toml"]

[datastores.app]
type = "sqlite"
path = "app.db"
[rules.sessions]
description = "Sessions are deleted 30 days after they ended"
policy = "test policy, clause 1"
datastore = "app"
table = "sessions"
age_column = "ended_at"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
max_fraction = 1
)";

// `text` with its only occurrence of `from` replaced by `to`.
std::string with(std::string_view text, std::string_view from, std::string_view to) {
  std::string result{text};
  const std::size_t at = result.find(from);
  REQUIRE(at != std::string::npos);
  result.replace(at, from.size(), to);
  return result;
}

// A second rule, in rules.d/, so that the glob of k_valid matches a file.
constexpr std::string_view k_keep_rule = R"([rules.tokens]
description = "Tokens are kept"
policy = "test policy, clause 2"
datastore = "app"
table = "sessions"
retain = "forever"
action = "keep"
)";

// A directory with rules.d/tokens.toml and app.db: a SQLite file whose `sessions` table has rows
// far older than any retention period, so that a run that reached the datastore would change it.
// The test writes retentiond.toml.
class Setup {
public:
  Setup() {
    write("rules.d/tokens.toml", k_keep_rule);
    SQLite::Database db((m_dir / "app.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE sessions (id INTEGER PRIMARY KEY, ended_at INTEGER)");
    db.exec("CREATE INDEX sessions_ended_at ON sessions (ended_at)");
    db.exec("INSERT INTO sessions (ended_at) VALUES (1000000000), (1000000001), (1000000002)");
  }

  std::filesystem::path main_file() const { return m_dir / "retentiond.toml"; }
  std::filesystem::path app_db() const { return m_dir / "app.db"; }
  const std::filesystem::path& path() const { return m_dir.path(); }
  void write(const std::string& name, std::string_view text) const {
    write_file(m_dir / name, text);
  }

  // "retentiond: error: FILE:LINE:COL: message\n" for `file` inside the directory.
  std::string error_line(const std::string& file, int line, int column,
                         std::string_view message) const {
    return "retentiond: error: " + (m_dir / file).string() + ":" + std::to_string(line) + ":" +
           std::to_string(column) + ": " + std::string{message} + "\n";
  }

private:
  TempDir m_dir;
};

}  // namespace

TEST_CASE("an invalid configuration exits 78 with the exact error and touches nothing") {
  const Setup setup;

  struct BadConfig {
    std::string_view name;
    std::string main_text;
    std::string rule_file;  // rules.d/extra.toml, when not empty
    std::string expected;   // stderr
  };
  const std::vector<BadConfig> corpus{
      {"TOML syntax error", "[state\n" + std::string{k_valid}, "",
       setup.error_line("retentiond.toml", 1, 7,
                        "invalid TOML: Error while parsing table header: expected ']', saw '\\n'")},
      {"ambiguous retention", with(k_valid, "\"30 days\"", "\"12m\""), "",
       setup.error_line(
           "retentiond.toml", 17, 10,
           "rules.sessions.retain: '12m' is ambiguous: write '12 minutes' or '12 months'")},
      {"unknown key in a rule", std::string{k_valid} + "max_fracton = 0.5\n", "",
       setup.error_line("retentiond.toml", 20, 1,
                        "rules.sessions: unknown key 'max_fracton'; did you mean 'max_fraction'?")},
      {"table that is not an identifier",
       with(k_valid, "\"sessions\"", "\"sessions; drop table x\""), "",
       setup.error_line(
           "retentiond.toml", 14, 9,
           "rules.sessions.table: 'sessions; drop table x' is not a plain SQL identifier "
           "(letters, digits and _, not starting with a digit, at most 63 characters)")},
      {"max_fraction out of range", with(k_valid, "max_fraction = 1", "max_fraction = 1.5"), "",
       setup.error_line(
           "retentiond.toml", 19, 16,
           "rules.sessions.max_fraction: 1.5 is out of range (0 < max_fraction <= 1; 1 "
           "disables the breaker)")},
      {"duplicate rule id in a rule file", std::string{k_valid},
       "# the same id again\n[rules.sessions]\ndescription = \"d\"\n",
       setup.error_line("rules.d/extra.toml", 2, 8,
                        "rules.sessions: rule 'sessions' is already defined at " +
                            (setup.path() / "retentiond.toml").string() +
                            ":10:8 (rule ids must be unique across files)")},
      {"the state database is the datastore's file",
       with(k_valid, "path = \"state/state.db\"", "path = \"app.db\""), "",
       setup.error_line("retentiond.toml", 9, 8,
                        "datastores.app.path: '" + setup.app_db().string() +
                            "' is the state database (state.path) too: retentiond would write "
                            "its own tables into the application's database (give state.path a "
                            "file of its own)")},
      {"a files root above the configuration and the state",
       std::string{k_valid} + "[datastores.media]\ntype = \"files\"\nroot = \".\"\n", "",
       setup.error_line("retentiond.toml", 22, 8,
                        "datastores.media.root: '" + setup.path().string() +
                            "/' contains the state database (state.path) '" +
                            (setup.path() / "state/state.db").string() +
                            "', which a file rule or a linked path could delete (move the root "
                            "or the file)")},
      {"error in a rule file", std::string{k_valid},
       with(with(k_valid.substr(k_valid.find("[rules.sessions]")), "[rules.sessions]",
                 "[rules.cookies]"),
            "\"delete\"", "\"purge\""),
       setup.error_line(
           "rules.d/extra.toml", 9, 10,
           "rules.cookies.action: unknown action 'purge' (expected delete, anonymize or "
           "keep)")},
  };

  const std::string app_before = file_bytes(setup.app_db());
  const std::set<std::string> files_before = [&] {
    setup.write("retentiond.toml", k_valid);
    return listing(setup.path());
  }();

  for (const BadConfig& bad : corpus) {
    CAPTURE(bad.name);
    setup.write("retentiond.toml", bad.main_text);
    std::filesystem::remove(setup.path() / "rules.d/extra.toml");
    if (!bad.rule_file.empty())
      setup.write("rules.d/extra.toml", bad.rule_file);
    std::set<std::string> expected_files = files_before;
    if (!bad.rule_file.empty())
      expected_files.insert("rules.d/extra.toml");

    for (const std::vector<std::string>& command : {std::vector<std::string>{"once"},
                                                    {"check", "--connect"},
                                                    {"report"},
                                                    {"hold", "add", "--all", "--reason", "test"},
                                                    {"audit", "verify"}}) {
      CAPTURE(command.front());
      std::vector<std::string> args{"-c", setup.main_file().string()};
      args.insert(args.end(), command.begin(), command.end());
      const RunResult result = run_retentiond(args);
      CHECK(result.exit_code == 78);
      CHECK(result.err == bad.expected);
      CHECK(result.out.empty());
      CHECK(file_bytes(setup.app_db()) == app_before);
      CHECK(listing(setup.path()) == expected_files);  // no state/, no journal beside app.db
    }
  }

  // The control: with the valid configuration the same run does change the datastore.
  std::filesystem::remove(setup.path() / "rules.d/extra.toml");
  setup.write("retentiond.toml", k_valid);
  const RunResult result = run_retentiond({"-c", setup.main_file().string(), "once"});
  CHECK(result.exit_code == 0);
  CHECK(result.out.starts_with("sessions: ok (3 rows)\n"));
  CHECK(file_bytes(setup.app_db()) != app_before);
  CHECK(std::filesystem::exists(setup.path() / "state/state.db"));
}

TEST_CASE("a configuration file that cannot be read exits 78") {
  const TempDir dir;
  const std::string missing = (dir / "missing.toml").string();
  const RunResult result = run_retentiond({"-c", missing, "check"});
  CHECK(result.exit_code == 78);
  CHECK(result.err ==
        "retentiond: error: " + missing +
            ": cannot read the configuration file: No such file or directory (use -c FILE or "
            "RETENTIOND_CONFIG)\n");
  CHECK(result.out.empty());
}

TEST_CASE("usage errors exit 2 and name the offending word") {
  const Setup setup;
  setup.write("retentiond.toml", k_valid);
  const std::string config = setup.main_file().string();
  const std::set<std::string> files_before = listing(setup.path());
  const auto usage_error = [&](const std::vector<std::string>& args, std::string_view message) {
    const RunResult result = run_retentiond(args);
    CHECK(result.exit_code == 2);
    CHECK(result.err == "retentiond: error: " + std::string{message} + "\n");
    CHECK(result.out.empty());
    CHECK(listing(setup.path()) == files_before);  // a usage error creates no state either
  };

  SUBCASE("unknown command") {
    usage_error({"-c", config, "purge"}, "unknown command 'purge' (see retentiond --help)");
  }
  SUBCASE("missing command") {
    usage_error({"-c", config}, "missing command (see retentiond --help)");
  }
  SUBCASE("unknown global option") {
    usage_error({"--verbose", "check"}, "unknown option '--verbose' (see retentiond --help)");
  }
  SUBCASE("option that the command does not take") {
    usage_error({"-c", config, "check", "--dry-run"},
                "unknown option '--dry-run' for check (see retentiond --help)");
  }
  SUBCASE("option without its value") {
    usage_error({"-c", config, "once", "--rule"}, "option '--rule' needs a value");
  }
  SUBCASE("hold add without --reason") {
    usage_error({"-c", config, "hold", "add", "--all"},
                "hold add needs --reason TEXT (it is written to the audit log)");
  }
  SUBCASE("hold add with neither --subject nor --all") {
    usage_error({"-c", config, "hold", "add", "--reason", "litigation"},
                "hold add needs exactly one of --subject VALUE or --all");
  }
  SUBCASE("--rule naming an unknown rule") {
    usage_error({"-c", config, "once", "--rule", "session"},
                "--rule: unknown rule 'session' (see retentiond check)");
    usage_error({"-c", config, "report", "--rule", "session"},
                "--rule: unknown rule 'session' (see retentiond check)");
    usage_error({"-c", config, "hold", "add", "--all", "--rule", "session", "--reason", "r"},
                "--rule: unknown rule 'session' (see retentiond check)");
  }
  SUBCASE("--confirm-mass naming an unknown rule") {
    usage_error({"-c", config, "once", "--confirm-mass", "session"},
                "--confirm-mass: unknown rule 'session' (see retentiond check)");
  }
  SUBCASE("an empty --subject or a blank --reason") {
    usage_error({"-c", config, "hold", "add", "--subject", "", "--reason", "litigation"},
                "--subject: empty; give the value of the rule's subject_column to protect");
    usage_error({"-c", config, "hold", "add", "--all", "--reason", " "},
                "--reason: empty; say why (it is written to the audit log)");
    usage_error({"-c", config, "hold", "release", "1", "--reason", ""},
                "--reason: empty; say why (it is written to the audit log)");
  }
  SUBCASE("a second --rule where one is taken") {
    usage_error({"-c", config, "audit", "log", "--rule", "sessions", "--rule", "sessions"},
                "audit log takes at most one --rule");
    usage_error(
        {"-c", config, "hold", "add", "--all", "--rule", "a", "--rule", "b", "--reason", "r"},
        "hold add takes at most one --rule");
  }
  SUBCASE("usage errors come before the configuration is read") {
    const std::string missing = (setup.path() / "missing.toml").string();
    usage_error({"-c", missing, "report", "--format", "pdf"},
                "--format 'pdf': unknown report format; use html, json, md or csv");
    usage_error({"-c", missing, "report", "--as-of", "yesterday"},
                "--as-of: 'yesterday' is not an ISO 8601 timestamp (expected YYYY-MM-DD or "
                "YYYY-MM-DDTHH:MM:SSZ)");
    usage_error({"-c", missing, "audit", "log", "--format", "xml"},
                "--format 'xml': expected text or json");
    usage_error({"-c", missing, "hold", "release", "x1", "--reason", "r"},
                "hold release: 'x1' is not a hold id (see retentiond hold list)");
    usage_error({"-c", missing, "hold", "add", "--all", "--reason", "r", "--until", "2001-01-01"},
                "--until '2001-01-01' is in the past");
  }
  SUBCASE("bad --log-level") {
    usage_error({"-c", config, "--log-level", "loud", "check"},
                "--log-level 'loud': expected trace, debug, info, warn, error or off");
  }
}

TEST_CASE("check --connect opens every datastore, also one that no rule uses") {
  const Setup setup;
  setup.write("retentiond.toml", std::string{k_valid} +
                                     "[datastores.archive]\ntype = \"sqlite\"\npath = "
                                     "\"archive.db\"\n");
  const std::string config = setup.main_file().string();
  const RunResult missing = run_retentiond({"-c", config, "check", "--connect"});
  CHECK(missing.exit_code == 78);
  CHECK(missing.err == setup.error_line("retentiond.toml", 20, 1,
                                        "datastores.archive: datastore 'archive': " +
                                            (setup.path() / "archive.db").string() +
                                            " does not exist or is not a file"));
  CHECK(missing.out.empty());

  SQLite::Database(setup.path() / "archive.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE)
      .exec("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  const RunResult present = run_retentiond({"-c", config, "check", "--connect"});
  CHECK_MESSAGE(present.exit_code == 0, present.err);
  CHECK(present.out == "configuration OK: 2 rules checked against 2 datastores\n");
}

TEST_CASE("a key file that is a directory is named as one, not as holding 0 bytes") {
  const Setup setup;
  std::filesystem::create_directory(setup.path() / "keys");
  const std::string config = setup.main_file().string();
  const std::string message = ": cannot read key file '" + (setup.path() / "keys").string() +
                              "': is a directory, not a file (name the file holding the key)";

  setup.write("retentiond.toml", with(k_valid, "rules = [\"rules.d/*.toml\"]",
                                      "rules = [\"rules.d/*.toml\"]\nhmac_key_file = \"keys\""));
  const RunResult hmac = run_retentiond({"-c", config, "check"});
  CHECK(hmac.exit_code == 78);
  CHECK(hmac.err == setup.error_line("retentiond.toml", 6, 17, "daemon.hmac_key_file" + message));

  setup.write("retentiond.toml", with(k_valid, "path = \"state/state.db\"",
                                      "path = \"state/state.db\"\naudit_key_file = \"keys\""));
  const RunResult audit = run_retentiond({"-c", config, "check"});
  CHECK(audit.exit_code == 78);
  CHECK(audit.err == setup.error_line("retentiond.toml", 3, 18, "state.audit_key_file" + message));
}

TEST_CASE("report and dry runs need no hmac key; a run that could mask does") {
  const Setup setup;
  {
    SQLite::Database db(setup.app_db().string(), SQLite::OPEN_READWRITE);
    db.exec("ALTER TABLE sessions ADD COLUMN email TEXT");
    db.exec("ALTER TABLE sessions ADD COLUMN anonymized_at INTEGER");
  }
  // An anonymize rule with the hmac mask, whose key file this account cannot read (here: it
  // does not exist), as for an auditor's account.
  setup.write("retentiond.toml",
              with(with(k_valid, "action = \"delete\"",
                        "action = \"anonymize\"\nanonymized_column = \"anonymized_at\"\n"
                        "anonymize = { email = \"hmac\" }"),
                   "[datastores.app]", "hmac_key_file = \"keys/hmac.key\"\n[datastores.app]"));
  const std::string config = setup.main_file().string();
  const RunResult report = run_retentiond({"-c", config, "report", "--format", "json"});
  CHECK_MESSAGE(report.exit_code == 0, report.err);
  CHECK(report.out.find("\"due\":3") != std::string::npos);
  const RunResult dry_run = run_retentiond({"-c", config, "once", "--dry-run"});
  CHECK_MESSAGE(dry_run.exit_code == 0, dry_run.err);
  const RunResult once = run_retentiond({"-c", config, "once"});
  CHECK(once.exit_code == 78);
  CHECK(once.err.find("daemon.hmac_key_file: cannot read key file") != std::string::npos);
}

TEST_CASE("report ends at once on SIGTERM, even while it waits for a locked datastore") {
  const Setup setup;
  setup.write("retentiond.toml",
              with(k_valid, "path = \"app.db\"", "path = \"app.db\"\nbusy_timeout = \"60s\""));
  SQLite::Database app(setup.app_db().string(), SQLite::OPEN_READWRITE);
  SQLite::Transaction exclusive(app, SQLite::TransactionBehavior::EXCLUSIVE);
  const TempDir output;
  retentiond::test::RunningRetentiond report(
      {"-c", setup.main_file().string(), "report", "--format", "json"}, {}, output.path());
  std::this_thread::sleep_for(std::chrono::milliseconds{300});
  REQUIRE(report.running());  // waiting for the lock
  report.signal(SIGTERM);
  // It changes nothing, so nothing needs finishing: killed by the signal, as by default.
  CHECK(report.wait(std::chrono::seconds{5}) == 128 + SIGTERM);
}

TEST_CASE("--version and --help") {
  SUBCASE("--version") {
    const RunResult result = run_retentiond({"--version"});
    CHECK(result.exit_code == 0);
    CHECK(result.out == "retentiond " RETENTIOND_VERSION "\n");
    CHECK(result.err.empty());
  }
  SUBCASE("--help") {
    const RunResult result = run_retentiond({"--help"});
    CHECK(result.exit_code == 0);
    CHECK(result.out == retentiond::usage_text());
    CHECK(result.err.empty());
  }
  SUBCASE("--help after a command") {
    const RunResult result = run_retentiond({"once", "--help"});
    CHECK(result.exit_code == 0);
    CHECK(result.out == retentiond::usage_text());
  }
  SUBCASE("--help and --version need no configuration") {
    const RunResult result = run_retentiond({"-c", "/nonexistent/retentiond.toml", "--version"},
                                            {{"RETENTIOND_CONFIG", "/nonexistent/other.toml"}});
    CHECK(result.exit_code == 0);
    CHECK(result.out == "retentiond " RETENTIOND_VERSION "\n");
  }
}

TEST_CASE("-c takes precedence over RETENTIOND_CONFIG, which takes precedence over the default") {
  const Setup setup;
  setup.write("retentiond.toml", k_valid);
  const std::string good = setup.main_file().string();
  setup.write("bad.toml", "[state]\npth = \"state.db\"\n");
  const std::string bad = (setup.path() / "bad.toml").string();
  const std::string bad_error =
      setup.error_line("bad.toml", 2, 1, "state: unknown key 'pth'; did you mean 'path'?");

  SUBCASE("-c wins over RETENTIOND_CONFIG") {
    const RunResult good_flag = run_retentiond({"-c", good, "check"}, {{"RETENTIOND_CONFIG", bad}});
    CHECK(good_flag.exit_code == 0);
    CHECK(good_flag.out.starts_with("configuration OK: 2 rules, 1 datastores, 2 files (digest "));
    CHECK(good_flag.err.empty());

    const RunResult bad_flag = run_retentiond({"-c", bad, "check"}, {{"RETENTIOND_CONFIG", good}});
    CHECK(bad_flag.exit_code == 78);
    CHECK(bad_flag.err == bad_error);
  }
  SUBCASE("--config is -c") {
    const RunResult result =
        run_retentiond({"--config", bad, "check"}, {{"RETENTIOND_CONFIG", good}});
    CHECK(result.exit_code == 78);
    CHECK(result.err == bad_error);
  }
  SUBCASE("RETENTIOND_CONFIG is used without -c") {
    const RunResult good_env = run_retentiond({"check"}, {{"RETENTIOND_CONFIG", good}});
    CHECK(good_env.exit_code == 0);
    CHECK(good_env.out.starts_with("configuration OK: 2 rules"));

    const RunResult bad_env = run_retentiond({"check"}, {{"RETENTIOND_CONFIG", bad}});
    CHECK(bad_env.exit_code == 78);
    CHECK(bad_env.err == bad_error);
  }
  SUBCASE("without either, the default path; an empty RETENTIOND_CONFIG counts as unset") {
    const std::filesystem::path fallback = "/etc/retentiond/retentiond.toml";
    if (std::filesystem::exists(fallback))
      return;  // an installed configuration: nothing to learn from reading it here
    const std::string expected = "retentiond: error: " + fallback.string() +
                                 ": cannot read the configuration file: No such file or "
                                 "directory (use -c FILE or RETENTIOND_CONFIG)\n";
    const RunResult unset = run_retentiond({"check"});
    CHECK(unset.exit_code == 78);
    CHECK(unset.err == expected);
    const RunResult empty = run_retentiond({"check"}, {{"RETENTIOND_CONFIG", ""}});
    CHECK(empty.exit_code == 78);
    CHECK(empty.err == expected);
  }
}
