#pragma once

#include "daemon/duration.hpp"

#include <bitset>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace retentiond {

// Where something was written: file, line and column (1-based; 0 when unknown).
struct SourcePosition {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;

  // "file:line:col", "file" when the line is unknown.
  std::string to_string() const;
};

// An invalid configuration. what() is "FILE:LINE:COL: message"; main prints it after
// "retentiond: error: " and exits 78.
class ConfigError : public std::runtime_error {
public:
  ConfigError(const SourcePosition& where, const std::string& message);
  const SourcePosition& where() const { return m_where; }

private:
  SourcePosition m_where;
};

enum class Action { delete_rows, anonymize, keep };

// How an anchor column stores time. `native` is a datastore's own timestamp type.
enum class AgeFormat { native, unix_seconds, unix_millis, iso8601 };

// How `anonymize` rewrites one column.
enum class Mask { null, hmac, ip_prefix, redact, year };

std::string_view to_string(Action action);
std::string_view to_string(AgeFormat format);
std::string_view to_string(Mask mask);

// A value a `match` filter compares with; bound, never pasted into a statement.
using MatchValue = std::variant<std::int64_t, double, bool, std::string>;

// column = value, or column IN (values...) when several.
struct MatchFilter {
  std::string column;
  std::vector<MatchValue> values;
};

// The anchor lives in a parent row: parent.column, joined on parent.key = row.foreign_key.
struct ParentAnchor {
  std::string table;
  std::string column;
  std::string key;
  std::string foreign_key;
};

// Dependent rows removed before their parent: child.foreign_key = parent.key.
struct Cascade {
  std::string table;
  std::string foreign_key;
  std::string key = "id";
};

// Files a table rule removes with its rows: the row's path_column, beneath a files datastore.
struct LinkedFilesConfig {
  std::string datastore;
  std::string path_column;
};

struct ColumnMask {
  std::string column;
  Mask mask = Mask::null;
};

// The values a 5-field cron expression allows, one bit per value (evaluated in UTC).
struct CronFields {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // bits 1-31
  std::bitset<13> months;         // bits 1-12
  std::bitset<7> days_of_week;    // 0 = Sunday (cron's 7 is folded onto 0)
  // As in cron: when both day fields are restricted, a day matching either one runs.
  bool any_day_of_month = true;
  bool any_day_of_week = true;
};

// When a rule runs: every `interval` after its last run, or at the times a cron expression
// names. `interval` is also the nominal period used for start-up catch-up and for the report's
// `stale` status.
struct Schedule {
  std::string text;  // as written: "hourly", "every 15m", "0 3 * * *"
  std::chrono::milliseconds interval{std::chrono::hours{24}};
  std::optional<CronFields> cron;
};

// One validated retention rule. Immutable once the configuration is loaded.
struct Rule {
  std::string id;
  SourcePosition position;
  std::string description;
  std::string policy;
  std::string datastore;
  std::string table;       // empty for file rules
  std::string glob;        // file rules only: which files under the root, age from mtime
  std::string age_column;  // empty for `keep` rules that name none, and for file rules
  AgeFormat age_format = AgeFormat::native;
  Retention retain;
  Action action = Action::delete_rows;
  Schedule schedule;
  std::vector<MatchFilter> match;
  std::optional<std::string> subject_column;
  double max_fraction = 0.5;
  std::chrono::milliseconds batch_time{50};
  std::optional<std::chrono::milliseconds> max_runtime;
  std::vector<ColumnMask> masks;  // action == anonymize
  std::optional<std::string> anonymized_column;
  std::optional<ParentAnchor> age_from;
  std::vector<Cascade> cascade;
  std::optional<LinkedFilesConfig> files;
};

struct DatastoreConfig {
  std::string name;
  std::string type;  // "sqlite", "postgres", "files"
  SourcePosition position;
  std::filesystem::path path;  // sqlite
  std::chrono::milliseconds busy_timeout{5000};
  std::string dsn;                      // postgres
  std::filesystem::path password_file;  // postgres, optional
  std::filesystem::path root;           // files
};

// The whole validated configuration: an immutable value, swapped in only when valid.
struct Config {
  std::filesystem::path file;  // the main file
  // The state: a SQLite file (state_path), or a PostgreSQL database (state_dsn, not empty)
  // shared by several hosts.
  std::filesystem::path state_path;
  std::string state_dsn;
  std::optional<std::filesystem::path> state_password_file;
  std::optional<std::filesystem::path> audit_key_file;
  SourcePosition audit_key_file_position;  // of its value: key file errors point there
  std::optional<std::string> metrics_listen;
  std::optional<std::filesystem::path> hmac_key_file;
  SourcePosition hmac_key_file_position;
  std::map<std::string, DatastoreConfig> datastores;
  std::vector<Rule> rules;                   // ordered by id
  std::vector<std::filesystem::path> files;  // main file, then rule files in glob order
  std::string digest;  // SHA-256 over every file's path and bytes: what `config` audits

  // The rule with this id, or nullptr.
  const Rule* find_rule(std::string_view id) const;
};

// Reads and validates the main file and every rule file it includes. Throws ConfigError on the
// first problem; never touches a datastore.
std::shared_ptr<const Config> load_config(const std::filesystem::path& main_file);

}  // namespace retentiond
