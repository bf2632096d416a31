#include "daemon/config.hpp"
#include "tests/support/temp_dir.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <sys/stat.h>

using namespace retentiond;
using namespace std::chrono_literals;
using retentiond::test::TempDir;

namespace {

// Lines 1-6 of most main files below; a rule appended to it starts on line 7.
constexpr std::string_view k_header = R"([state]
path = "state.db"

[datastores.app]
type = "sqlite"
path = "app.db"
)";

// A valid rule, lines 7-15 when appended to k_header; a line appended to it is line 16.
constexpr std::string_view k_rule = R"([rules.r]
description = "d"
policy = "p"
datastore = "app"
table = "t"
age_column = "c"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
)";

// `text` with its only occurrence of `from` replaced by `to`, so that line numbers stay put.
std::string with(std::string_view text, std::string_view from, std::string_view to) {
  std::string result{text};
  const std::size_t at = result.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(result.find(from, at + 1) == std::string::npos);
  result.replace(at, from.size(), to);
  return result;
}

std::string operator+(std::string_view a, std::string_view b) {
  std::string result{a};
  result += b;
  return result;
}

// Lines 1-9 of a main file that includes rule files by the given array of globs.
std::string header_with_rules(std::string_view globs) {
  return "[state]\n"
         "path = \"state.db\"\n"
         "\n"
         "[daemon]\n"
         "rules = " +
         std::string{globs} +
         "\n"
         "\n"
         "[datastores.app]\n"
         "type = \"sqlite\"\n"
         "path = \"app.db\"\n";
}

// A directory holding a main file (retentiond.toml) and the rule files it names.
class ConfigDir {
public:
  std::filesystem::path main_file() const { return m_dir / "retentiond.toml"; }

  // Writes `text` to `name` inside the directory (creating folders); returns the full path.
  std::filesystem::path write(const std::string& name, std::string_view text) const {
    const std::filesystem::path path = m_dir / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    return path;
  }

  // Writes the main file and loads it: the error text, or "loaded" when the file is valid.
  std::string error_of(std::string_view main_text) const {
    write("retentiond.toml", main_text);
    try {
      load_config(main_file());
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "loaded";
  }

  std::shared_ptr<const Config> load(std::string_view main_text) const {
    write("retentiond.toml", main_text);
    return load_config(main_file());
  }

  // "FILE:LINE:COL: message" for the main file.
  std::string at(int line, int column, std::string_view message) const {
    return in(main_file(), line, column, message);
  }
  static std::string in(const std::filesystem::path& file, int line, int column,
                        std::string_view message) {
    return file.string() + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
           std::string{message};
  }

  const std::filesystem::path& path() const { return m_dir.path(); }

private:
  TempDir m_dir;
};

constexpr std::string_view k_not_identifier =
    "is not a plain SQL identifier (letters, digits and _, not starting with a digit, at most 63 "
    "characters)";

}  // namespace

TEST_CASE("load_config refuses a bad configuration with its position and a way out") {
  const ConfigDir dir;

  // --- the main file and its top level ---

  SUBCASE("main file that does not exist: no position, only the file") {
    CHECK_THROWS_WITH_AS(load_config(dir.main_file()),
                         (dir.main_file().string() +
                          ": cannot read the configuration file: No such file or directory (use "
                          "-c FILE or RETENTIOND_CONFIG)")
                             .c_str(),
                         ConfigError);
  }
  SUBCASE("main file that is a directory") {
    std::filesystem::create_directory(dir.main_file());
    CHECK_THROWS_WITH_AS(load_config(dir.main_file()),
                         (dir.main_file().string() +
                          ": cannot read the configuration file: is a directory, not a file (use "
                          "-c FILE or RETENTIOND_CONFIG)")
                             .c_str(),
                         ConfigError);
  }
  SUBCASE("a valid main file loads") {
    CHECK(dir.error_of(k_header + k_rule) == "loaded");
  }
  SUBCASE("TOML syntax error") {
    CHECK(dir.error_of("[state\npath = \"state.db\"\n") ==
          dir.at(1, 7, "invalid TOML: Error while parsing table header: expected ']', saw '\\n'"));
  }
  SUBCASE("unknown top-level key") {
    CHECK(dir.error_of("foo = 1\n" + k_header) ==
          dir.at(1, 1,
                 "unknown top-level key 'foo'; expected one of: state, daemon, datastores, rules"));
  }
  SUBCASE("missing [state]") {
    CHECK(dir.error_of("[datastores.app]\ntype = \"sqlite\"\npath = \"app.db\"\n") ==
          dir.at(1, 1,
                 "missing table [state] (set [state] path = \"/var/lib/retentiond/state.db\")"));
  }
  SUBCASE("state is not a table") {
    CHECK(dir.error_of("state = 5\n") == dir.at(1, 9, "state: expected a table, got integer 5"));
    CHECK(dir.error_of("state = []\n") == dir.at(1, 9, "state: expected a table, got an array"));
  }

  // --- [state] ---

  SUBCASE("unknown key in [state], nothing close") {
    CHECK(dir.error_of("[state]\npath = \"state.db\"\nbogus = 1\n") ==
          dir.at(3, 1,
                 "state: unknown key 'bogus'; expected one of: audit_key_file, dsn, "
                 "password_file, path"));
  }
  SUBCASE("unknown key in [state], close to a known one") {
    CHECK(dir.error_of("[state]\npath = \"state.db\"\naudit_keyfile = \"k\"\n") ==
          dir.at(3, 1, "state: unknown key 'audit_keyfile'; did you mean 'audit_key_file'?"));
  }
  SUBCASE("misspelt required key in [state] is named, not reported as missing") {
    CHECK(dir.error_of("[state]\npth = \"state.db\"\n") ==
          dir.at(2, 1, "state: unknown key 'pth'; did you mean 'path'?"));
  }
  SUBCASE("state.path missing") {
    CHECK(dir.error_of("[state]\n") ==
          dir.at(1, 1,
                 "state: missing key 'path' (the SQLite state file, e.g. "
                 "\"/var/lib/retentiond/state.db\"; or dsn for a PostgreSQL state)"));
  }
  SUBCASE("state.path: string expected, got integer") {
    CHECK(dir.error_of("[state]\npath = 5\n") ==
          dir.at(2, 8, "state.path: expected a string, got integer 5"));
  }
  SUBCASE("state.path and state.dsn together") {
    CHECK(dir.error_of("[state]\npath = \"state.db\"\ndsn = \"host=db1 dbname=retention\"\n") ==
          dir.at(3, 7,
                 "state.dsn: set either path (a SQLite state file) or dsn (a PostgreSQL state "
                 "shared by several hosts), not both"));
  }
  SUBCASE("state.dsn that libpq cannot read") {
    CHECK(dir.error_of("[state]\ndsn = \"host=db1 dbname\"\n") ==
          dir.at(2, 7,
                 "state.dsn: not a libpq connection string: missing \"=\" after \"dbname\" in "
                 "connection info string"));
  }
  SUBCASE("a dsn libpq cannot read never has its text echoed: it may hold a password") {
    CHECK(dir.error_of("[state]\ndsn = \"postgresql://u:Pa%55w0rd%!@db1/state\"\n") ==
          dir.at(2, 7,
                 "state.dsn: not a libpq connection string: invalid percent-encoded token: "
                 "\"...\" (the quoted text is withheld: it may be a password)"));
    // A value with quotes of its own.
    CHECK(dir.error_of("[state]\ndsn = 'host=db1 pa\"ss\"word'\n") ==
          dir.at(2, 7,
                 "state.dsn: not a libpq connection string: missing \"=\" after \"...\" in "
                 "connection info string (the quoted text is withheld: it may be a password)"));
    CHECK(dir.error_of("[state]\ndsn = \"host=db1 S3cret\"\n") ==
          dir.at(2, 7,
                 "state.dsn: not a libpq connection string: missing \"=\" after \"...\" in "
                 "connection info string (the quoted text is withheld: it may be a password)"));
  }
  SUBCASE("an empty state.dsn") {
    CHECK(dir.error_of("[state]\ndsn = \" \"\n") ==
          dir.at(2, 7,
                 "state.dsn: empty; give a libpq connection string, e.g. \"host=/run/postgresql "
                 "dbname=retention\" (or path = \"...\" for a SQLite state file)"));
  }
  SUBCASE("an empty path would name the configuration's own directory") {
    CHECK(dir.error_of("[state]\npath = \"\"\n") ==
          dir.at(2, 8,
                 "state.path: empty; give the SQLite state file, e.g. "
                 "\"/var/lib/retentiond/state.db\""));
    CHECK(dir.error_of(with(k_header, "path = \"app.db\"", "path = \" \"")) ==
          dir.at(6, 8, "datastores.app.path: empty; give the SQLite database file"));
    CHECK(dir.error_of(k_header + "[datastores.media]\ntype = \"files\"\nroot = \"\"\n") ==
          dir.at(9, 8, "datastores.media.root: empty; give the directory the files live in"));
    CHECK(dir.error_of(k_header + "[daemon]\nhmac_key_file = \"\"\n") ==
          dir.at(8, 17, "daemon.hmac_key_file: empty; give the file holding the hmac mask's key"));
  }
  SUBCASE("state.password_file without dsn") {
    CHECK(dir.error_of("[state]\npath = \"state.db\"\npassword_file = \"pw\"\n") ==
          dir.at(3, 17,
                 "state.password_file: password_file applies to a PostgreSQL state (dsn) only"));
  }

  // --- [daemon] ---

  SUBCASE("unknown key in [daemon], close to a known one") {
    CHECK(dir.error_of(k_header + "[daemon]\nrule = []\n") ==
          dir.at(8, 1, "daemon: unknown key 'rule'; did you mean 'rules'?"));
  }
  SUBCASE("unknown key in [daemon], nothing close") {
    CHECK(dir.error_of(k_header + "[daemon]\nhmac_key = \"k\"\n") ==
          dir.at(8, 1,
                 "daemon: unknown key 'hmac_key'; expected one of: hmac_key_file, "
                 "metrics_listen, rules"));
  }
  SUBCASE("daemon.metrics_listen: not an address") {
    CHECK(dir.error_of(k_header + "[daemon]\nmetrics_listen = \"localhost:9465\"\n") ==
          dir.at(8, 18,
                 "daemon.metrics_listen: 'localhost:9465': 'localhost' is not an IP address "
                 "(names are not resolved)"));
    CHECK(dir.error_of(k_header + "[daemon]\nmetrics_listen = \"9465\"\n") ==
          dir.at(8, 18,
                 "daemon.metrics_listen: '9465': expected HOST:PORT, e.g. \"127.0.0.1:9465\""));
    CHECK(dir.error_of(k_header + "[daemon]\nmetrics_listen = \"127.0.0.1:70000\"\n") ==
          dir.at(8, 18,
                 "daemon.metrics_listen: '127.0.0.1:70000': the port must be a number from 1 "
                 "to 65535"));
    CHECK(dir.error_of(k_header + "[daemon]\nmetrics_listen = \"::1:9465\"\n") ==
          dir.at(8, 18,
                 "daemon.metrics_listen: '::1:9465': an IPv6 host is written in brackets, "
                 "e.g. \"[::1]:9465\""));
  }
  SUBCASE("daemon.rules: array expected") {
    CHECK(dir.error_of(header_with_rules("\"rules.d/*.toml\"")) ==
          dir.at(5, 9, "daemon.rules: expected an array of globs, got string 'rules.d/*.toml'"));
    CHECK(dir.error_of(header_with_rules("[\"a.toml\", 7]")) ==
          dir.at(5, 20, "daemon.rules: expected a string glob, got integer 7"));
  }
  SUBCASE("daemon is not a table") {
    CHECK(dir.error_of("daemon = \"on\"\n" + k_header) ==
          dir.at(1, 10, "daemon: expected a table, got string 'on'"));
  }

  // --- [datastores.NAME] ---

  SUBCASE("unknown key in [datastores.app], close to a known one") {
    CHECK(dir.error_of(k_header + "busy_timeot = \"5s\"\n") ==
          dir.at(7, 1, "datastores.app: unknown key 'busy_timeot'; did you mean 'busy_timeout'?"));
  }
  SUBCASE("unknown key in [datastores.app], nothing close") {
    CHECK(dir.error_of(k_header + "journal = \"wal\"\n") ==
          dir.at(7, 1,
                 "datastores.app: unknown key 'journal'; expected one of: busy_timeout, path, "
                 "type"));
  }
  SUBCASE("unknown datastore type") {
    CHECK(dir.error_of(with(k_header, "\"sqlite\"", "\"mysql\"")) ==
          dir.at(5, 8,
                 "datastores.app.type: unknown datastore type 'mysql' (expected sqlite, "
                 "postgres or files)"));
  }
  SUBCASE("missing datastore path") {
    CHECK(dir.error_of(with(k_header, "path = \"app.db\"\n", "")) ==
          dir.at(4, 1, "datastores.app: missing key 'path' (the SQLite database file)"));
  }
  SUBCASE("missing datastore type") {
    CHECK(dir.error_of(with(k_header, "type = \"sqlite\"\n", "")) ==
          dir.at(4, 1, "datastores.app: missing key 'type' (one of: sqlite, postgres, files)"));
  }
  SUBCASE("datastore is not a table") {
    CHECK(dir.error_of("[state]\npath = \"s.db\"\n[datastores]\napp = \"app.db\"\n") ==
          dir.at(4, 7, "datastores.app: expected a table, got string 'app.db'"));
  }
  SUBCASE("bad busy_timeout") {
    CHECK(dir.error_of(k_header + "busy_timeout = \"5 s\"\n") ==
          dir.at(7, 16,
                 "datastores.app.busy_timeout: '5 s' has a space before a short unit: "
                 "write '5s'"));
  }
  SUBCASE("busy_timeout longer than its maximum (SQLite takes it in int milliseconds)") {
    CHECK(dir.error_of(k_header + "busy_timeout = \"25d\"\n") ==
          dir.at(7, 16,
                 "datastores.app.busy_timeout: '25d' is longer than the maximum of 5m (a wait "
                 "for the application's lock must end well within the service's 10-minute "
                 "watchdog)"));
    CHECK(dir.error_of(k_header + "busy_timeout = \"301s\"\n") ==
          dir.at(7, 16,
                 "datastores.app.busy_timeout: '301s' is longer than the maximum of 5m (a wait "
                 "for the application's lock must end well within the service's 10-minute "
                 "watchdog)"));
    CHECK(dir.error_of(k_header + "busy_timeout = \"5m\"\n") == "loaded");
  }
  SUBCASE("a SQLite datastore whose file is the state database") {
    const std::string message =
        "' is the state database (state.path) too: retentiond would write its own tables into "
        "the application's database (give state.path a file of its own)";
    CHECK(dir.error_of(with(k_header, "path = \"app.db\"", "path = \"./state.db\"")) ==
          dir.at(6, 8, "datastores.app.path: '" + (dir.path() / "state.db").string() + message));
    // A hard link is the same file under another name.
    dir.write("state.db", "");
    std::filesystem::create_hard_link(dir.path() / "state.db", dir.path() / "app.db");
    CHECK(dir.error_of(k_header) ==
          dir.at(6, 8, "datastores.app.path: '" + (dir.path() / "app.db").string() + message));
  }
  SUBCASE("two SQLite datastores naming one file") {
    std::filesystem::create_directory(dir.path() / "data");
    std::filesystem::create_directory_symlink(dir.path(), dir.path() / "data/up");
    CHECK(dir.error_of(k_header +
                       "[datastores.copy]\ntype = \"sqlite\"\npath = \"data/up/app.db\"\n") ==
          dir.at(9, 8,
                 "datastores.copy.path: '" + (dir.path() / "data/up/app.db").string() +
                     "' is the same file as datastores.app.path: rules on one datastore run one "
                     "at a time, and two names for it would defeat that (name it once, and use "
                     "datastore \"app\" in every rule on it)"));
  }
  SUBCASE("a files root that holds retentiond's own files (glob \"**\" would delete them)") {
    const std::string files = "[datastores.media]\ntype = \"files\"\nroot = ";  // lines 7-9
    const auto root_error = [&](std::string_view root, std::string_view what,
                                const std::filesystem::path& file) {
      return dir.at(9, 8,
                    "datastores.media.root: '" + (dir.path() / root).lexically_normal().string() +
                        "' contains " + std::string{what} + " '" + file.string() +
                        "', which a file rule or a linked path could delete (move the root or "
                        "the file)");
    };
    CHECK(dir.error_of(k_header + files + "\".\"\n") ==
          root_error(".", "the state database (state.path)", dir.path() / "state.db"));
    // Reached through a symlink.
    std::filesystem::create_directory_symlink(dir.path(), dir.path() / "link");
    CHECK(dir.error_of(k_header + files + "\"link\"\n") ==
          root_error("link", "the state database (state.path)", dir.path() / "state.db"));
    // The state and the database elsewhere: the configuration file, then a rule file.
    const TempDir elsewhere;
    const std::string away = "[state]\npath = \"" + (elsewhere / "state.db").string() +
                             "\"\n\n[datastores.app]\ntype = \"sqlite\"\npath = \"" +
                             (elsewhere / "app.db").string() + "\"\n";
    CHECK(dir.error_of(away + files + "\".\"\n") ==
          root_error(".", "the configuration file", dir.main_file()));
    const auto rule_file = dir.write("rules.d/a.toml", k_rule);
    CHECK(dir.error_of(away + files + "\"rules.d\"\n[daemon]\nrules = [\"rules.d/*.toml\"]\n") ==
          root_error("rules.d", "the rule file", rule_file));
    CHECK(dir.error_of(with(k_header, "\"app.db\"", "\"data/app.db\"") + files + "\"data\"\n") ==
          root_error("data", "the database of datastores.app", dir.path() / "data/app.db"));
    CHECK(dir.error_of(k_header + files + "\"media\"\n[daemon]\nhmac_key_file = \"media/k\"\n") ==
          root_error("media", "the key file daemon.hmac_key_file", dir.path() / "media/k"));
    // Beside them, not above them: fine.
    CHECK(dir.error_of(k_header + files + "\"media\"\n") == "loaded");
  }

  SUBCASE("a postgres datastore's dsn that libpq cannot read, or an empty one") {
    const std::string postgres =
        "[state]\npath = \"s.db\"\n[datastores.main]\ntype = \"postgres\"\n";
    CHECK(dir.error_of(postgres + "dsn = \"host=db1 dbname\"\n") ==
          dir.at(5, 7,
                 "datastores.main.dsn: not a libpq connection string: missing \"=\" after "
                 "\"dbname\" in connection info string"));
    CHECK(dir.error_of(postgres + "dsn = \"\"\n") ==
          dir.at(5, 7,
                 "datastores.main.dsn: empty; give a libpq connection string, e.g. "
                 "\"host=/run/postgresql dbname=app\""));
  }

  // --- rules: keys and types ---

  SUBCASE("unknown key in a rule, close to a known one") {
    CHECK(dir.error_of(k_header + k_rule + "shedule = \"hourly\"\n") ==
          dir.at(16, 1, "rules.r: unknown key 'shedule'; did you mean 'schedule'?"));
  }
  SUBCASE("misspelt required key in a rule is named, not reported as missing") {
    CHECK(dir.error_of(k_header + with(k_rule, "retain =", "retian =")) ==
          dir.at(14, 1, "rules.r: unknown key 'retian'; did you mean 'retain'?"));
  }
  SUBCASE("unknown key in a rule, nothing close") {
    CHECK(dir.error_of(k_header + k_rule + "owner = \"ops\"\n") ==
          dir.at(16, 1,
                 "rules.r: unknown key 'owner'; expected one of: action, age_column, "
                 "age_format, age_from, anonymize, anonymized_column, batch_time, cascade, "
                 "datastore, description, files, glob, match, max_fraction, max_runtime, "
                 "policy, retain, schedule, subject_column, table"));
  }
  SUBCASE("rule field: string expected, got integer") {
    CHECK(dir.error_of(k_header + with(k_rule, "table = \"t\"", "table = 5")) ==
          dir.at(11, 9, "rules.r.table: expected a string, got integer 5"));
  }
  SUBCASE("missing rule key") {
    CHECK(dir.error_of(k_header + with(k_rule, "policy = \"p\"", "# no policy")) ==
          dir.at(7, 1, "rules.r: missing key 'policy' (the policy clause this rule enforces)"));
  }
  SUBCASE("blank description or policy (auditors read them in the report)") {
    CHECK(dir.error_of(k_header + with(k_rule, "policy = \"p\"", "policy = \" \"")) ==
          dir.at(9, 10, "rules.r.policy: empty; give the policy clause this rule enforces"));
    CHECK(dir.error_of(k_header + with(k_rule, "description = \"d\"", "description = \"\"")) ==
          dir.at(8, 15, "rules.r.description: empty; give what the rule promises, in plain words"));
  }
  SUBCASE("a file rule's glob: relative, and no '..' component") {
    const std::string files = "[datastores.media]\ntype = \"files\"\nroot = \"media\"\n"
                              "[rules.tmp]\ndescription = \"d\"\npolicy = \"p\"\n"
                              "datastore = \"media\"\nretain = \"1 day\"\naction = \"delete\"\n";
    CHECK(dir.error_of(k_header + files + "glob = \"d/../x\"\n") ==
          dir.at(16, 8,
                 "rules.tmp.glob: 'd/../x' must be a relative pattern beneath the root, "
                 "without '..'"));
    CHECK(dir.error_of(k_header + files + "glob = \"d/*..bak\"\n") == "loaded");
  }
  SUBCASE("rule that is not a table") {
    CHECK(dir.error_of(k_header + "[rules]\nr = \"30 days\"\n") ==
          dir.at(8, 1, "rules.r: expected a table, got string '30 days'"));
  }
  SUBCASE("bad rule id") {
    CHECK(dir.error_of(k_header + with(k_rule, "[rules.r]", "[rules.Connection-Logs]")) ==
          dir.at(7, 8, "rules.Connection-Logs: rule id 'Connection-Logs' must match [a-z0-9_]+"));
  }
  SUBCASE("rule naming an unknown datastore") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"app\"", "\"ap\"")) ==
          dir.at(10, 13, "rules.r.datastore: unknown datastore 'ap' (defined: app)"));
  }

  // --- rules: retention and action ---

  SUBCASE("bad retain") {
    const auto retain_error = [&](std::string_view retain) {
      return dir.error_of(k_header +
                          with(k_rule, "\"30 days\"", "\"" + std::string{retain} + "\""));
    };
    CHECK(retain_error("12 fortnights") ==
          dir.at(14, 10,
                 "rules.r.retain: unknown unit 'fortnights' (expected seconds, minutes, "
                 "hours, days, weeks, months or years)"));
    CHECK(retain_error("12m") ==
          dir.at(14, 10, "rules.r.retain: '12m' is ambiguous: write '12 minutes' or '12 months'"));
    CHECK(retain_error("30d") ==
          dir.at(14, 10, "rules.r.retain: '30d' is a short form: write '30 days'"));
    CHECK(retain_error("-1 days") == dir.at(14, 10, "rules.r.retain: '-1 days' is negative"));
    CHECK(retain_error("1.5 months") ==
          dir.at(14, 10,
                 "rules.r.retain: '1.5 months' is fractional (use a whole number of a "
                 "smaller unit)"));
    CHECK(retain_error("") ==
          dir.at(14, 10,
                 "rules.r.retain: retention is empty (expected e.g. '30 days', '12 months' "
                 "or 'forever')"));
  }
  SUBCASE("forever with delete") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"30 days\"", "\"forever\"")) ==
          dir.at(14, 10,
                 "rules.r.retain: 'forever' is only allowed with action = \"keep\" (action "
                 "is \"delete\")"));
  }
  SUBCASE("unknown action") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"delete\"", "\"purge\"")) ==
          dir.at(15, 10,
                 "rules.r.action: unknown action 'purge' (expected delete, anonymize or "
                 "keep)"));
  }

  // --- rules: identifiers are never pasted into SQL ---

  SUBCASE("table that is not a plain SQL identifier") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"t\"", "\"users; drop table x\"")) ==
          dir.at(11, 9, "rules.r.table: 'users; drop table x' " + std::string{k_not_identifier}));
  }
  SUBCASE("age_column that is not a plain SQL identifier") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"c\"", "\"created at\"")) ==
          dir.at(12, 14, "rules.r.age_column: 'created at' " + std::string{k_not_identifier}));
  }
  SUBCASE("identifier longer than 63 characters") {
    const std::string long_name(64, 'a');
    CHECK(dir.error_of(k_header + with(k_rule, "\"t\"", "\"" + long_name + "\"")) ==
          dir.at(11, 9, "rules.r.table: '" + long_name + "' " + std::string{k_not_identifier}));
  }
  SUBCASE("match column that is not a plain SQL identifier") {
    CHECK(dir.error_of(k_header + k_rule + "match = { \"status = 1 or 1\" = 1 }\n") ==
          dir.at(16, 31, "rules.r.match: 'status = 1 or 1' " + std::string{k_not_identifier}));
  }
  SUBCASE("mask column that is not a plain SQL identifier") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"delete\"", "\"anonymize\"") +
                       "anonymized_column = \"done\"\n"
                       "\n"
                       "[rules.r.anonymize]\n"
                       "\"e-mail\" = \"null\"\n") ==
          dir.at(19, 12, "rules.r.anonymize: 'e-mail' " + std::string{k_not_identifier}));
  }
  SUBCASE("cascade table and foreign key that are not plain SQL identifiers") {
    CHECK(
        dir.error_of(k_header + k_rule +
                     "cascade = [{ table = \"tickets;--\", foreign_key = \"account_id\" }]\n") ==
        dir.at(16, 22, "rules.r.cascade[0].table: 'tickets;--' " + std::string{k_not_identifier}));
    CHECK(dir.error_of(k_header + k_rule +
                       "cascade = [{ table = \"tickets\", foreign_key = \"account-id\" }]\n") ==
          dir.at(16, 47,
                 "rules.r.cascade[0].foreign_key: 'account-id' " + std::string{k_not_identifier}));
  }
  SUBCASE("age_from fields that are not plain SQL identifiers") {
    const std::string rule = with(k_rule, "age_column = \"c\"", "# age from the parent");
    const std::string good = "\n[rules.r.age_from]\n"         // lines 16-17
                             "table = \"events\"\n"           // 18
                             "column = \"ended_at\"\n"        // 19
                             "key = \"id\"\n"                 // 20
                             "foreign_key = \"event_id\"\n";  // 21
    CHECK(dir.error_of(k_header + rule + good) == "loaded");
    CHECK(dir.error_of(k_header + rule + with(good, "\"events\"", "\"events e\"")) ==
          dir.at(18, 9, "rules.r.age_from.table: 'events e' " + std::string{k_not_identifier}));
    CHECK(dir.error_of(k_header + rule + with(good, "\"ended_at\"", "\"1ended\"")) ==
          dir.at(19, 10, "rules.r.age_from.column: '1ended' " + std::string{k_not_identifier}));
    CHECK(dir.error_of(k_header + rule + with(good, "\"id\"", "\"\"")) ==
          dir.at(20, 7, "rules.r.age_from.key: '' " + std::string{k_not_identifier}));
    CHECK(dir.error_of(k_header + rule + with(good, "\"event_id\"", "\"event.id\"")) ==
          dir.at(21, 15,
                 "rules.r.age_from.foreign_key: 'event.id' " + std::string{k_not_identifier}));
  }

  // --- rules: anonymize ---

  SUBCASE("anonymize without masks") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"delete\"", "\"anonymize\"")) ==
          dir.at(7, 1,
                 "rules.r: action \"anonymize\" needs an [rules.r.anonymize] table with a mask "
                 "per column (hmac, ip_prefix, null, redact or year)"));
  }
  SUBCASE("masks with action delete") {
    CHECK(dir.error_of(k_header + k_rule + "\n[rules.r.anonymize]\nemail = \"null\"\n") ==
          dir.at(17, 1,
                 "rules.r.anonymize: masks are only used with action = \"anonymize\" (action "
                 "is \"delete\")"));
  }
  SUBCASE("anonymized_column with action delete") {
    CHECK(dir.error_of(k_header + k_rule + "anonymized_column = \"done\"\n") ==
          dir.at(16, 21,
                 "rules.r.anonymized_column: only used with action = \"anonymize\" (action "
                 "is \"delete\")"));
  }
  SUBCASE("unknown mask") {
    CHECK(dir.error_of(
              k_header + with(k_rule, "\"delete\"", "\"anonymize\"") +
              "anonymized_column = \"done\"\n\n[rules.r.anonymize]\nemail = \"scramble\"\n") ==
          dir.at(19, 9,
                 "rules.r.anonymize.email: unknown mask 'scramble' (expected hmac, ip_prefix, "
                 "null, redact or year)"));
  }
  SUBCASE("hmac mask without daemon.hmac_key_file") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"delete\"", "\"anonymize\"") +
                       "anonymized_column = \"done\"\n\n[rules.r.anonymize]\nemail = \"hmac\"\n") ==
          dir.at(19, 9,
                 "rules.r.anonymize.email: mask 'hmac' needs daemon.hmac_key_file (a file "
                 "holding the secret key)"));
  }
  SUBCASE("anonymize masking the age column without anonymized_column") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"delete\"", "\"anonymize\"") +
                       "\n[rules.r.anonymize]\nc = \"null\"\n") ==
          dir.at(7, 1,
                 "rules.r: anonymize masks the age column 'c', which the engine clears to mark "
                 "rows done; name an 'anonymized_column' instead"));
  }
  SUBCASE("anonymize with age_from but without anonymized_column") {
    CHECK(
        dir.error_of(
            k_header +
            with(with(k_rule, "age_column = \"c\"", "# age from the parent"), "\"delete\"",
                 "\"anonymize\"") +
            "\n[rules.r.age_from]\n"
            "table = \"events\"\ncolumn = \"ended_at\"\nkey = \"id\"\nforeign_key = \"event_id\"\n"
            "\n[rules.r.anonymize]\nemail = \"null\"\n") ==
        dir.at(7, 1,
               "rules.r: anonymize with age_from needs 'anonymized_column' (the column that "
               "marks a row done, so it never matches again)"));
  }

  // --- rules: age ---

  SUBCASE("missing age_format on sqlite") {
    CHECK(dir.error_of(k_header + with(k_rule, "age_format = \"unix_seconds\"", "# no format")) ==
          dir.at(7, 1,
                 "rules.r: missing key 'age_format' (SQLite has no timestamp type: set "
                 "unix_seconds, unix_millis or iso8601)"));
  }
  SUBCASE("unknown age_format") {
    CHECK(dir.error_of(k_header + with(k_rule, "\"unix_seconds\"", "\"epoch\"")) ==
          dir.at(13, 14,
                 "rules.r.age_format: unknown age_format 'epoch' (expected unix_seconds, "
                 "unix_millis or iso8601)"));
  }
  SUBCASE("missing age_column") {
    CHECK(dir.error_of(k_header + with(k_rule, "age_column = \"c\"", "# no column")) ==
          dir.at(7, 1,
                 "rules.r: missing key 'age_column' (the column the retention period is "
                 "measured from, or an age_from table)"));
  }
  SUBCASE("age_column together with age_from") {
    CHECK(dir.error_of(k_header + k_rule +
                       "\n[rules.r.age_from]\n"
                       "table = \"events\"\ncolumn = \"ended_at\"\nkey = \"id\"\nforeign_key = "
                       "\"event_id\"\n") ==
          dir.at(12, 14,
                 "rules.r.age_column: age_column and age_from exclude each other (age_from "
                 "names the parent's column)"));
  }
  SUBCASE("unknown key in age_from") {
    CHECK(
        dir.error_of(
            k_header + with(k_rule, "age_column = \"c\"", "# age from the parent") +
            "\n[rules.r.age_from]\n"
            "table = \"events\"\ncolumn = \"ended_at\"\nkey = \"id\"\nforeign_key = \"event_id\"\n"
            "on = \"x\"\n") ==
        dir.at(22, 1,
               "rules.r.age_from: unknown key 'on'; expected one of: column, foreign_key, "
               "key, table"));
  }

  // --- rules: operational limits and schedule ---

  SUBCASE("max_fraction out of range") {
    CHECK(dir.error_of(k_header + k_rule + "max_fraction = 0\n") ==
          dir.at(16, 16,
                 "rules.r.max_fraction: 0 is out of range (0 < max_fraction <= 1; 1 disables "
                 "the breaker)"));
    CHECK(dir.error_of(k_header + k_rule + "max_fraction = 1.5\n") ==
          dir.at(16, 16,
                 "rules.r.max_fraction: 1.5 is out of range (0 < max_fraction <= 1; 1 "
                 "disables the breaker)"));
    CHECK(dir.error_of(k_header + k_rule + "max_fraction = \"half\"\n") ==
          dir.at(16, 16, "rules.r.max_fraction: expected a number, got string 'half'"));
  }
  SUBCASE("bad batch_time") {
    CHECK(dir.error_of(k_header + k_rule + "batch_time = \"fast\"\n") ==
          dir.at(16, 14,
                 "rules.r.batch_time: 'fast' is not a duration (expected e.g. '50ms', '15m' "
                 "or '15 minutes')"));
    CHECK(dir.error_of(k_header + k_rule + "batch_time = \"0ms\"\n") ==
          dir.at(16, 14, "rules.r.batch_time: '0ms' must be longer than zero"));
  }
  SUBCASE("batch_time and max_runtime longer than their maximum") {
    CHECK(dir.error_of(k_header + k_rule + "batch_time = \"61s\"\n") ==
          dir.at(16, 14,
                 "rules.r.batch_time: '61s' is longer than the maximum of 1m (a batch holds the "
                 "datastore's write lock that long, and the application waits)"));
    CHECK(dir.error_of(k_header + k_rule + "batch_time = \"9999999999d\"\n") ==
          dir.at(16, 14,
                 "rules.r.batch_time: '9999999999d' is longer than the maximum of 1m (a batch "
                 "holds the datastore's write lock that long, and the application waits)"));
    CHECK(dir.error_of(k_header + k_rule + "batch_time = \"60s\"\n") == "loaded");
    // Added to steady_clock's now in nanoseconds, 106752 days would overflow.
    CHECK(dir.error_of(k_header + k_rule + "max_runtime = \"106752d\"\n") ==
          dir.at(16, 15,
                 "rules.r.max_runtime: '106752d' is longer than the maximum of 30d (leave "
                 "max_runtime out for runs without a time budget)"));
    CHECK(dir.error_of(k_header + k_rule + "max_runtime = \"31 days\"\n") ==
          dir.at(16, 15,
                 "rules.r.max_runtime: '31 days' is longer than the maximum of 30d (leave "
                 "max_runtime out for runs without a time budget)"));
    CHECK(dir.error_of(k_header + k_rule + "max_runtime = \"30d\"\n") == "loaded");
  }
  SUBCASE("max_fraction is shown as written") {
    CHECK(dir.error_of(k_header + k_rule + "max_fraction = -0.1\n") ==
          dir.at(16, 16,
                 "rules.r.max_fraction: -0.1 is out of range (0 < max_fraction <= 1; 1 disables "
                 "the breaker)"));
    CHECK(dir.error_of(k_header + k_rule + "max_fraction = 2.0\n") ==
          dir.at(16, 16,
                 "rules.r.max_fraction: 2.0 is out of range (0 < max_fraction <= 1; 1 disables "
                 "the breaker)"));
  }
  SUBCASE("bad schedule") {
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"sometimes\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: unknown schedule 'sometimes' (expected hourly, daily, "
                 "weekly, \"every 15m\" or a 5-field cron expression)"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"61 * * * *\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: schedule '61 * * * *': minute field '61' is out of range "
                 "0-59"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"0 0 * * mon-fri\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: schedule '0 0 * * mon-fri': day of week field 'mon-fri': "
                 "names are not supported; write the number (0-7)"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"0 0 31 2 *\"\n") ==
          dir.at(16, 12, "rules.r.schedule: schedule '0 0 31 2 *' names no date that exists"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"*/0 * * * *\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: schedule '*/0 * * * *': bad step in minute field "
                 "'*/0'"));
  }
  SUBCASE("schedule: every longer than a year") {
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"every 9999999999d\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: 'every 9999999999d' is too rare (at most every 366d; for a "
                 "yearly run, write a cron expression such as \"0 3 1 1 *\")"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"every 367d\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: 'every 367d' is too rare (at most every 366d; for a yearly "
                 "run, write a cron expression such as \"0 3 1 1 *\")"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"every 366d\"\n") == "loaded");
  }
  SUBCASE("schedule: a reversed cron range is named as one, not as out of range") {
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"0 0 * * 5-1\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: schedule '0 0 * * 5-1': day of week field '5-1': the start "
                 "is after the end (a range does not wrap around; write '5-7,0-1')"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"0 0 * * 7-0\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: schedule '0 0 * * 7-0': day of week field '7-0': the start "
                 "is after the end (a range does not wrap around; write '7,0')"));
    CHECK(dir.error_of(k_header + k_rule + "schedule = \"50-0/5 * * * *\"\n") ==
          dir.at(16, 12,
                 "rules.r.schedule: schedule '50-0/5 * * * *': minute field '50-0/5': the start "
                 "is after the end (a range does not wrap around; write '50-59/5,0-0/5')"));
  }

  // --- rules: match, cascade, files ---

  SUBCASE("match with an empty list") {
    CHECK(dir.error_of(k_header + k_rule + "match = { status = [] }\n") ==
          dir.at(16, 20,
                 "rules.r.match.status: an empty list matches nothing (remove the filter or "
                 "add values)"));
  }
  SUBCASE("match values that are not finite numbers") {
    CHECK(dir.error_of(k_header + k_rule + "match = { user_id = nan }\n") ==
          dir.at(16, 21,
                 "rules.r.match.user_id: nan is not a finite number, so it matches no row "
                 "(write a number, or remove it)"));
    CHECK(dir.error_of(k_header + k_rule + "match = { user_id = inf }\n") ==
          dir.at(16, 21,
                 "rules.r.match.user_id: inf is not a finite number, so it matches no row "
                 "(write a number, or remove it)"));
    // In a list it would be dropped without a word.
    CHECK(dir.error_of(k_header + k_rule + "match = { user_id = [1, nan] }\n") ==
          dir.at(16, 25,
                 "rules.r.match.user_id: nan is not a finite number, so it matches no row "
                 "(write a number, or remove it)"));
  }
  SUBCASE("cascade not an array") {
    CHECK(dir.error_of(k_header + k_rule +
                       "cascade = { table = \"tickets\", foreign_key = \"account_id\" }\n") ==
          dir.at(16, 11,
                 "rules.r.cascade: expected an array of { table, foreign_key } tables, got a "
                 "table"));
    CHECK(dir.error_of(k_header + k_rule + "cascade = [\"tickets\"]\n") ==
          dir.at(16, 12,
                 "rules.r.cascade[0]: expected a table { table, foreign_key }, got string "
                 "'tickets'"));
  }
  SUBCASE("cascade without foreign_key") {
    CHECK(dir.error_of(k_header + k_rule + "cascade = [{ table = \"tickets\" }]\n") ==
          dir.at(16, 12,
                 "rules.r.cascade[0]: missing key 'foreign_key' (the dependent table's "
                 "column that references this rule's table)"));
  }
  SUBCASE("a files key naming a datastore that does not hold files") {
    CHECK(dir.error_of(k_header + k_rule +
                       "files = { datastore = \"app\", path_column = \"storage_path\" }\n") ==
          dir.at(16, 23, "rules.r.files.datastore: 'app' is not a datastore of type \"files\""));
  }

  // --- rule files ---

  SUBCASE("duplicate rule ids across two rule files") {
    const auto first = dir.write("rules.d/a.toml", k_rule);
    const auto second = dir.write("rules.d/b.toml", "# the same id again\n" + std::string{k_rule});
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          ConfigDir::in(second, 2, 8,
                        "rules.r: rule 'r' is already defined at " + first.string() +
                            ":1:8 (rule ids must be unique across files)"));
  }
  SUBCASE("duplicate rule id between the main file and a rule file") {
    const auto other = dir.write("rules.d/a.toml", k_rule);
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]") + k_rule) ==
          ConfigDir::in(other, 1, 8,
                        "rules.r: rule 'r' is already defined at " + dir.main_file().string() +
                            ":10:8 (rule ids must be unique across files)"));
  }
  SUBCASE("rule file glob naming a missing literal file") {
    dir.write("rules.d/a.toml", k_rule);
    CHECK(dir.error_of(header_with_rules("[\"rules.d/a.toml\", \"rules.d/missing.toml\"]")) ==
          dir.at(5, 9,
                 "daemon.rules: rule file '" + (dir.path() / "rules.d/missing.toml").string() +
                     "' does not exist"));
  }
  SUBCASE("a rule glob whose directory is not there (a typo would leave its rules unenforced)") {
    CHECK(dir.error_of(header_with_rules("[\"rulez.d/*.toml\"]")) ==
          dir.at(5, 9,
                 "daemon.rules: '" + (dir.path() / "rulez.d/*.toml").string() +
                     "' matches no file: there is no directory '" +
                     (dir.path() / "rulez.d").string() + "' (correct the pattern, or remove it)"));
  }
  SUBCASE("a rule glob that matches a directory") {
    dir.write("rules.d/a.toml", k_rule);
    std::filesystem::create_directories(dir.path() / "rules.d/b.toml");
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          dir.at(5, 9,
                 "daemon.rules: cannot read rule file '" +
                     (dir.path() / "rules.d/b.toml").string() + "': is a directory, not a file"));
  }
  SUBCASE("a rule glob that matches a FIFO: refused, never opened (that would block)") {
    dir.write("rules.d/a.toml", k_rule);
    REQUIRE(::mkfifo((dir.path() / "rules.d/b.toml").c_str(), 0600) == 0);
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          dir.at(5, 9,
                 "daemon.rules: cannot read rule file '" +
                     (dir.path() / "rules.d/b.toml").string() +
                     "': is a FIFO (named pipe), not a regular file (narrow the pattern to rule "
                     "files)"));
  }
  SUBCASE("rule file with a top-level key other than rules") {
    const auto file = dir.write("rules.d/a.toml", "[state]\npath = \"other.db\"\n");
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          ConfigDir::in(file, 1, 2, "unknown top-level key 'state'; expected one of: rules"));
  }
  SUBCASE("rule file whose [rules.x] is not a table") {
    const auto file = dir.write("rules.d/a.toml", "[rules]\nx = 5\n");
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          ConfigDir::in(file, 2, 1, "rules.x: expected a table, got integer 5"));
  }
  SUBCASE("rule file whose rules is not a table") {
    const auto file = dir.write("rules.d/a.toml", "rules = [\"x\"]\n");
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          ConfigDir::in(file, 1, 9, "rules: expected a table of rules ([rules.ID])"));
  }
  SUBCASE("TOML syntax error in a rule file") {
    const auto file = dir.write("rules.d/a.toml", k_rule + "retain = \"1 day\"\n");
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          ConfigDir::in(file, 10, 10,
                        "invalid TOML: Error while parsing key-value pair: cannot "
                        "redefine existing string 'retain'"));
  }
  SUBCASE("error inside a rule file names that file") {
    const auto file = dir.write("rules.d/a.toml", with(k_rule, "\"30 days\"", "\"30 dyas\""));
    CHECK(dir.error_of(header_with_rules("[\"rules.d/*.toml\"]")) ==
          ConfigDir::in(file, 8, 10,
                        "rules.r.retain: unknown unit 'dyas' (expected seconds, "
                        "minutes, hours, days, weeks, months or years)"));
  }
}

TEST_CASE("load_config reads a valid configuration") {
  const ConfigDir dir;

  SUBCASE("inline rule with defaults") {
    const auto config = dir.load(k_header + k_rule);
    CHECK(config->file == dir.main_file());
    CHECK(config->files == std::vector<std::filesystem::path>{dir.main_file()});
    CHECK(config->state_path == dir.path() / "state.db");
    CHECK(config->state_dsn.empty());
    CHECK_FALSE(config->audit_key_file.has_value());
    CHECK_FALSE(config->hmac_key_file.has_value());
    CHECK_FALSE(config->metrics_listen.has_value());
    REQUIRE(config->datastores.size() == 1);
    const DatastoreConfig& app = config->datastores.at("app");
    CHECK(app.name == "app");
    CHECK(app.type == "sqlite");
    CHECK(app.path == dir.path() / "app.db");
    CHECK(app.busy_timeout == 5s);

    REQUIRE(config->rules.size() == 1);
    const Rule& rule = config->rules.front();
    CHECK(config->find_rule("r") == &rule);
    CHECK(config->find_rule("other") == nullptr);
    CHECK(rule.id == "r");
    CHECK(rule.position.to_string() == dir.main_file().string() + ":7:1");
    CHECK(rule.description == "d");
    CHECK(rule.policy == "p");
    CHECK(rule.datastore == "app");
    CHECK(rule.table == "t");
    CHECK(rule.age_column == "c");
    CHECK(rule.age_format == AgeFormat::unix_seconds);
    CHECK(rule.retain == Retention{.forever = false, .count = 30, .unit = CalendarUnit::days});
    CHECK(rule.action == Action::delete_rows);
    CHECK(rule.schedule.text == "daily");
    CHECK(rule.schedule.interval == 24h);
    CHECK(rule.batch_time == 50ms);
    CHECK(rule.max_fraction == 0.5);
    CHECK_FALSE(rule.max_runtime.has_value());
    CHECK_FALSE(rule.subject_column.has_value());
    CHECK(rule.match.empty());
    CHECK(rule.masks.empty());
    CHECK(rule.cascade.empty());
    CHECK_FALSE(rule.age_from.has_value());
    CHECK(config->digest.size() == 64);
  }

  SUBCASE("a PostgreSQL state with a password file") {
    const auto config = dir.load(with(k_header, "path = \"state.db\"",
                                      "dsn = \"host=/run/postgresql dbname=retention\"\n"
                                      "password_file = \"secrets/pgpass\"") +
                                 k_rule);
    CHECK(config->state_dsn == "host=/run/postgresql dbname=retention");
    CHECK(config->state_password_file == dir.path() / "secrets/pgpass");
    CHECK(config->state_path.empty());
  }
  SUBCASE("every optional rule field") {
    const auto config =
        dir.load(k_header + "[daemon]\nhmac_key_file = \"keys/hmac.key\"\n" +
                 with(k_rule, "\"delete\"", "\"anonymize\"") +
                 "schedule = \"every 15m\"\n"
                 "subject_column = \"user_id\"\n"
                 "max_fraction = 1\n"
                 "batch_time = \"200ms\"\n"
                 "max_runtime = \"10m\"\n"
                 "anonymized_column = \"anonymized_at\"\n"
                 "match = { status = [\"rejected\", \"spam\"], kind = 3, "
                 "flagged = true, score = 0.25 }\n"
                 "cascade = [{ table = \"sessions\", foreign_key = \"account_id\" },"
                 " { table = \"notes\", foreign_key = \"owner\", key = \"uid\" }]\n"
                 "\n[rules.r.anonymize]\n"
                 "email = \"hmac\"\nip = \"ip_prefix\"\nname = \"null\"\n"
                 "phone = \"redact\"\nborn_on = \"year\"\n");
    CHECK(config->hmac_key_file == dir.path() / "keys/hmac.key");
    const Rule& rule = config->rules.at(0);
    CHECK(rule.action == Action::anonymize);
    CHECK(rule.schedule.text == "every 15m");
    CHECK(rule.schedule.interval == 15min);
    CHECK(rule.subject_column == "user_id");
    CHECK(rule.max_fraction == 1.0);
    CHECK(rule.batch_time == 200ms);
    CHECK(rule.max_runtime == std::optional{std::chrono::milliseconds{10min}});
    CHECK(rule.anonymized_column == "anonymized_at");

    // toml++ keeps a table's keys sorted, so the filters come out in key order.
    REQUIRE(rule.match.size() == 4);
    CHECK(rule.match[0].column == "flagged");
    CHECK(rule.match[0].values == std::vector<MatchValue>{true});
    CHECK(rule.match[1].column == "kind");
    CHECK(rule.match[1].values == std::vector<MatchValue>{std::int64_t{3}});
    CHECK(rule.match[2].column == "score");
    CHECK(rule.match[2].values == std::vector<MatchValue>{0.25});
    CHECK(rule.match[3].column == "status");  // an array: status IN ('rejected', 'spam')
    CHECK(rule.match[3].values ==
          std::vector<MatchValue>{std::string{"rejected"}, std::string{"spam"}});

    REQUIRE(rule.cascade.size() == 2);
    CHECK(rule.cascade[0].table == "sessions");
    CHECK(rule.cascade[0].foreign_key == "account_id");
    CHECK(rule.cascade[0].key == "id");  // the default
    CHECK(rule.cascade[1].table == "notes");
    CHECK(rule.cascade[1].foreign_key == "owner");
    CHECK(rule.cascade[1].key == "uid");

    REQUIRE(rule.masks.size() == 5);
    std::map<std::string, Mask> masks;
    for (const ColumnMask& mask : rule.masks)
      masks[mask.column] = mask.mask;
    CHECK(masks == std::map<std::string, Mask>{{"born_on", Mask::year},
                                               {"email", Mask::hmac},
                                               {"ip", Mask::ip_prefix},
                                               {"name", Mask::null},
                                               {"phone", Mask::redact}});
  }

  SUBCASE("age_from, cron schedule and a keep rule without an age") {
    const auto config = dir.load(
        k_header + with(k_rule, "age_column = \"c\"", "schedule = \"0 3 * * 1\"") +
        "\n[rules.r.age_from]\n"
        "table = \"events\"\ncolumn = \"ended_at\"\nkey = \"id\"\nforeign_key = \"event_id\"\n"
        "\n[rules.tickets]\n"
        "description = \"kept\"\npolicy = \"p\"\ndatastore = \"app\"\ntable = \"tickets\"\n"
        "retain = \"forever\"\naction = \"keep\"\n");
    REQUIRE(config->rules.size() == 2);
    const Rule& rule = *config->find_rule("r");
    REQUIRE(rule.age_from.has_value());
    CHECK(rule.age_from->table == "events");
    CHECK(rule.age_from->column == "ended_at");
    CHECK(rule.age_from->key == "id");
    CHECK(rule.age_from->foreign_key == "event_id");
    CHECK(rule.age_column.empty());
    CHECK(rule.schedule.text == "0 3 * * 1");
    CHECK(rule.schedule.interval == std::chrono::hours{24 * 7});
    const Rule& keep = *config->find_rule("tickets");
    CHECK(keep.action == Action::keep);
    CHECK(keep.retain.forever);
    CHECK(keep.age_column.empty());
  }

  SUBCASE("rules from a glob, files in sorted order, rules ordered by id") {
    const auto zeta = dir.write("rules.d/a.toml", with(k_rule, "[rules.r]", "[rules.zeta]"));
    const auto alpha = dir.write("rules.d/b.toml", with(k_rule, "[rules.r]", "[rules.alpha]"));
    dir.write("rules.d/notes.txt", "not a rule file");
    const auto config = dir.load(header_with_rules("[\"rules.d/*.toml\"]") +
                                 with(k_rule, "[rules.r]", "[rules.middle]"));
    CHECK(config->files == std::vector<std::filesystem::path>{dir.main_file(), zeta, alpha});
    REQUIRE(config->rules.size() == 3);
    CHECK(config->rules[0].id == "alpha");
    CHECK(config->rules[0].position.to_string() == alpha.string() + ":1:1");
    CHECK(config->rules[1].id == "middle");
    CHECK(config->rules[1].position.to_string() == dir.main_file().string() + ":10:1");
    CHECK(config->rules[2].id == "zeta");
    CHECK(config->rules[2].position.to_string() == zeta.string() + ":1:1");
  }

  SUBCASE("a rule file matched by several patterns is read once") {
    const auto rule_file = dir.write("rules.d/a.toml", k_rule);
    const auto config = dir.load(header_with_rules(
        "[\"rules.d/*.toml\", \"rules.d/a.toml\", \"./rules.d/../rules.d/a.*\"]"));
    CHECK(config->files == std::vector<std::filesystem::path>{dir.main_file(), rule_file});
    CHECK(config->rules.size() == 1);
    // So is the main file, when a pattern matches it too.
    const auto main_too = dir.load(header_with_rules("[\"*.toml\"]") + k_rule);
    CHECK(main_too->files == std::vector<std::filesystem::path>{dir.main_file()});
    CHECK(main_too->rules.size() == 1);
  }

  SUBCASE("a glob that matches nothing in an existing directory is a warning, not an error") {
    std::filesystem::create_directories(dir.path() / "rules.d");
    const spdlog::level::level_enum level = spdlog::get_level();
    spdlog::set_level(spdlog::level::off);  // the warning it logs is expected here
    const auto config = dir.load(header_with_rules("[\"rules.d/*.toml\"]") + k_rule);
    spdlog::set_level(level);
    CHECK(config->rules.size() == 1);  // written inline
    CHECK(config->files == std::vector<std::filesystem::path>{dir.main_file()});
  }

  SUBCASE("relative paths are resolved against the directory of the file that names them") {
    const std::filesystem::path etc = dir.path() / "etc";
    dir.write("etc/rules.d/a.toml", k_rule);
    dir.write("etc/retentiond.toml", "[state]\n"
                                     "path = \"../var/lib/state.db\"\n"
                                     "audit_key_file = \"keys/audit.key\"\n"
                                     "[daemon]\n"
                                     "rules = [\"./rules.d/*.toml\"]\n"
                                     "hmac_key_file = \"/srv/keys/hmac.key\"\n"
                                     "metrics_listen = \"127.0.0.1:9465\"\n"
                                     "[datastores.app]\n"
                                     "type = \"sqlite\"\n"
                                     "path = \"data/app.db\"\n"
                                     "[datastores.media]\n"
                                     "type = \"files\"\n"
                                     "root = \"../srv/media\"\n");
    const auto config = load_config(etc / "retentiond.toml");
    CHECK(config->state_path == dir.path() / "var/lib/state.db");
    CHECK(config->audit_key_file == etc / "keys/audit.key");
    CHECK(config->hmac_key_file == std::filesystem::path{"/srv/keys/hmac.key"});
    CHECK(config->metrics_listen == "127.0.0.1:9465");
    CHECK(config->datastores.at("app").path == etc / "data/app.db");
    CHECK(config->datastores.at("media").type == "files");
    CHECK(config->datastores.at("media").root == dir.path() / "srv/media");
    CHECK(config->files ==
          std::vector<std::filesystem::path>{etc / "retentiond.toml", etc / "rules.d/a.toml"});
    CHECK(config->rules.at(0).position.file == (etc / "rules.d/a.toml").string());
  }

  SUBCASE("the digest covers every file: it changes when a rule file changes") {
    const auto rule_file = dir.write("rules.d/a.toml", k_rule);
    const std::string main_text = header_with_rules("[\"rules.d/*.toml\"]");
    const std::string first = dir.load(main_text)->digest;
    CHECK(dir.load(main_text)->digest == first);  // reading again changes nothing

    dir.write("rules.d/a.toml", with(k_rule, "\"30 days\"", "\"31 days\""));
    const std::string changed = dir.load(main_text)->digest;
    CHECK(changed != first);

    dir.write("rules.d/a.toml", k_rule);
    CHECK(dir.load(main_text)->digest == first);

    dir.write("rules.d/a.toml", k_rule + "# a comment\n");  // bytes, not meaning, are audited
    CHECK(dir.load(main_text)->digest != first);
  }

  SUBCASE("the digest does not depend on how the configuration file is named") {
    dir.write("rules.d/a.toml", k_rule);
    const std::string first = dir.load(header_with_rules("[\"rules.d/*.toml\"]"))->digest;
    const std::filesystem::path before = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    const std::string relative =
        load_config(std::filesystem::relative(dir.main_file(), dir.path()))->digest;
    const std::string dotted = load_config(std::filesystem::path{"."} /
                                           std::filesystem::relative(dir.main_file(), dir.path()))
                                   ->digest;
    std::filesystem::current_path(before);
    CHECK(relative == first);
    CHECK(dotted == first);
    const std::filesystem::path link = dir.path() / "link.toml";
    std::filesystem::create_symlink(dir.main_file(), link);
    CHECK(load_config(link)->digest == first);
  }
}

TEST_CASE("load_config: rules on a postgres datastore may leave out age_format (native)") {
  const ConfigDir dir;
  const auto config = dir.load(
      std::string{"[state]\npath = \"state.db\"\n\n[datastores.main]\ntype = \"postgres\"\n"
                  "dsn = \"host=/run/postgresql dbname=app\"\npassword_file = \"pgpass\"\n"} +
      with(with(k_rule, "datastore = \"app\"", "datastore = \"main\""),
           "age_format = \"unix_seconds\"", "# the column's own type"));
  const DatastoreConfig& main = config->datastores.at("main");
  CHECK(main.type == "postgres");
  CHECK(main.dsn == "host=/run/postgresql dbname=app");
  CHECK(main.password_file == dir.path() / "pgpass");
  REQUIRE(config->rules.size() == 1);
  CHECK(config->rules.front().age_format == AgeFormat::native);
}
