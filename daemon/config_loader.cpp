#include "daemon/config.hpp"

#include "daemon/digest.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/postgres_support.hpp"
#include "daemon/schedule.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <expected>
#include <fstream>
#include <glob.h>
#include <set>
#include <sstream>
#include <system_error>

namespace retentiond {

namespace {

// Upper bounds of the operational durations. A longer one is a mistake, and would overflow where
// it is used: a steady_clock deadline in nanoseconds, SQLite's busy timeout in int milliseconds.
constexpr std::chrono::milliseconds k_max_batch_time = std::chrono::seconds{60};
// Below the shipped unit's WatchdogSec=10min: a wait for a lock does not feed the watchdog.
constexpr std::chrono::milliseconds k_max_busy_timeout = std::chrono::minutes{5};
constexpr std::chrono::milliseconds k_max_runtime = std::chrono::days{30};

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
  case toml::node_type::string: return "string";
  case toml::node_type::integer: return "integer";
  case toml::node_type::floating_point: return "float";
  case toml::node_type::boolean: return "boolean";
  case toml::node_type::table: return "table";
  case toml::node_type::array: return "array";
  case toml::node_type::date: return "date";
  case toml::node_type::time: return "time";
  case toml::node_type::date_time: return "date-time";
  default: return "value";
  }
}

// The value as the user would recognise it in a message: strings quoted, tables elided.
std::string show(const toml::node& node) {
  if (const auto* s = node.as_string())
    return fmt::format("'{}'", s->get());
  if (node.is_table())
    return "a table";
  if (node.is_array())
    return "an array";
  // As written: the shortest text that reads back as the same double (-0.1, not toml++'s
  // -0.10000000000000001), still a float (2.0, not 2).
  if (const auto* f = node.as_floating_point()) {
    std::string text = fmt::format("{}", f->get());
    if (text.find_first_not_of("-0123456789") == std::string::npos)
      text += ".0";
    return text;
  }
  std::ostringstream out;
  node.visit([&out](const auto& value) {
    if constexpr (toml::is_value<decltype(value)>)
      out << value;
  });
  return out.str();
}

// What was found instead of the expected type: "integer 5", "string 'x'", "a table".
std::string describe(const toml::node& node) {
  if (node.is_table() || node.is_array())
    return show(node);
  return fmt::format("{} {}", type_name(node), show(node));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool is_sql_identifier(std::string_view text) {
  if (text.empty() || text.size() > 63)
    return false;
  if (!(std::isalpha(static_cast<unsigned char>(text[0])) || text[0] == '_'))
    return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool is_rule_id(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::filesystem::path resolve(const std::filesystem::path& base_dir, const std::string& text) {
  const std::filesystem::path path{text};
  return (path.is_absolute() ? path : base_dir / path).lexically_normal();
}

// `path` as the file system resolves it: absolute, with the symlinks of its existing part
// followed, so that `./app.db`, `app.db` and a link to it read the same.
std::filesystem::path resolved(const std::filesystem::path& path) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  if (error)
    absolute = path;
  std::filesystem::path canonical = std::filesystem::weakly_canonical(absolute, error);
  if (error)
    canonical = absolute.lexically_normal();
  // "media/" and "media" are one directory.
  if (canonical.has_relative_path() && canonical.filename().empty())
    canonical = canonical.parent_path();
  return canonical;
}

// Whether two paths name one file: the same resolved path or, when both exist, the same device
// and inode (a hard link, a bind mount).
bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  if (resolved(a) == resolved(b))
    return true;
  std::error_code error;
  return std::filesystem::equivalent(a, b, error) && !error;
}

// Whether `file` lies anywhere beneath the directory `root`, where a file rule on it reaches:
// its name, or what it links to.
bool lies_beneath(const std::filesystem::path& root, const std::filesystem::path& file) {
  const std::filesystem::path directory = resolved(root);
  std::error_code error;
  const std::filesystem::path name = std::filesystem::absolute(file, error).lexically_normal();
  for (const std::filesystem::path& start :
       {resolved(error ? file.parent_path() : name.parent_path()), resolved(file).parent_path()})
    for (std::filesystem::path ancestor = start; !ancestor.empty();
         ancestor = ancestor.parent_path()) {
      if (ancestor == directory || same_file(ancestor, root))
        return true;
      if (ancestor == ancestor.parent_path())
        break;  // "/"
    }
  return false;
}

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// Reads one TOML table strictly: every key must be consumed, types must match, and every
// error carries the file, line and column of the offending key or value.
class TableReader {
public:
  TableReader(const toml::table& table, std::string path, std::string file)
      : m_table(table), m_path(std::move(path)), m_file(std::move(file)) {}

  const std::string& path() const { return m_path; }
  std::string key_path(std::string_view key) const {
    return m_path.empty() ? std::string{key} : fmt::format("{}.{}", m_path, key);
  }

  SourcePosition position_of(const toml::source_region& region) const {
    return {m_file, region.begin.line, region.begin.column};
  }
  SourcePosition position() const { return position_of(m_table.source()); }

  [[noreturn]] void fail_at(const toml::node& node, std::string_view key,
                            const std::string& message) const {
    throw ConfigError(position_of(node.source()), fmt::format("{}: {}", key_path(key), message));
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw ConfigError(position(), fmt::format("{}: {}", m_path, message));
  }

  const toml::node* find(std::string_view key) {
    m_consumed.insert(std::string{key});
    return m_table.get(key);
  }

  std::optional<std::string> optional_string(std::string_view key) {
    const toml::node* node = find(key);
    if (node == nullptr)
      return std::nullopt;
    const auto* text = node->as_string();
    if (text == nullptr)
      fail_at(*node, key, fmt::format("expected a string, got {}", describe(*node)));
    return text->get();
  }

  // A required key is absent. A misspelling of it is the likelier cause, so it is named first.
  [[noreturn]] void fail_missing(std::string_view key, const std::string& message) const {
    for (const auto& [other, node] : m_table) {
      const std::string name{other.str()};
      if (!m_consumed.contains(name) && edit_distance(name, key) < 3)
        throw ConfigError(
            position_of(other.source()),
            fmt::format("{}: unknown key '{}'; did you mean '{}'?", m_path, name, key));
    }
    fail(message);
  }

  std::string required_string(std::string_view key, std::string_view hint) {
    auto value = optional_string(key);
    if (!value)
      fail_missing(key, fmt::format("missing key '{}' ({})", key, hint));
    return *value;
  }

  // Text a person reads (an auditor, in the report): blank is as good as missing.
  std::string required_text(std::string_view key, std::string_view hint) {
    std::string value = required_string(key, hint);
    if (is_blank(value))
      fail_at(*m_table.get(key), key, fmt::format("empty; give {}", hint));
    return value;
  }

  // A path, relative to `base` (the directory of the file that names it). An empty one would
  // name `base` itself: for a files datastore's root, the directory of the configuration.
  std::optional<std::filesystem::path>
  optional_path(std::string_view key, const std::filesystem::path& base, std::string_view hint) {
    auto value = optional_string(key);
    if (!value)
      return std::nullopt;
    if (is_blank(*value))
      fail_at(*m_table.get(key), key, fmt::format("empty; give {}", hint));
    return resolve(base, *value);
  }

  std::filesystem::path required_path(std::string_view key, const std::filesystem::path& base,
                                      std::string_view hint) {
    auto value = optional_path(key, base, hint);
    if (!value)
      fail_missing(key, fmt::format("missing key '{}' ({})", key, hint));
    return *value;
  }

  // A plain SQL identifier: validated here so that no rule field is ever pasted into SQL.
  std::optional<std::string> optional_identifier(std::string_view key) {
    auto value = optional_string(key);
    if (value && !is_sql_identifier(*value))
      fail_at(*m_table.get(key), key,
              fmt::format("'{}' is not a plain SQL identifier (letters, digits and _, not starting "
                          "with a digit, at most 63 characters)",
                          *value));
    return value;
  }

  std::string required_identifier(std::string_view key, std::string_view hint) {
    auto value = optional_identifier(key);
    if (!value)
      fail_missing(key, fmt::format("missing key '{}' ({})", key, hint));
    return *value;
  }

  // A duration longer than zero and at most `maximum`; `beyond` says why a longer one is refused
  // and what to do instead.
  std::optional<std::chrono::milliseconds> optional_duration(std::string_view key,
                                                             std::chrono::milliseconds maximum,
                                                             std::string_view beyond) {
    auto text = optional_string(key);
    if (!text)
      return std::nullopt;
    auto duration = parse_duration(*text);
    if (!duration)
      fail_at(*m_table.get(key), key, duration.error());
    if (duration->count() <= 0)
      fail_at(*m_table.get(key), key, fmt::format("'{}' must be longer than zero", *text));
    if (*duration > maximum)
      fail_at(*m_table.get(key), key,
              fmt::format("'{}' is longer than the maximum of {} ({})", *text,
                          format_duration(maximum), beyond));
    return *duration;
  }

  const toml::table* optional_table(std::string_view key) {
    const toml::node* node = find(key);
    if (node == nullptr)
      return nullptr;
    if (!node->is_table())
      fail_at(*node, key, fmt::format("expected a table, got {}", describe(*node)));
    return node->as_table();
  }

  // Refuses every key that no reader asked for, suggesting the closest known one.
  void reject_unknown_keys() const {
    for (const auto& [key, node] : m_table) {
      const std::string name{key.str()};
      if (m_consumed.contains(name))
        continue;
      std::string best;
      std::size_t best_distance = 3;
      for (const std::string& known : m_consumed) {
        const std::size_t distance = edit_distance(name, known);
        if (distance < best_distance) {
          best_distance = distance;
          best = known;
        }
      }
      std::string way_out;
      if (!best.empty()) {
        way_out = fmt::format("did you mean '{}'?", best);
      } else {
        std::vector<std::string> known(m_consumed.begin(), m_consumed.end());
        way_out = fmt::format("expected one of: {}", fmt::join(known, ", "));
      }
      throw ConfigError(position_of(key.source()),
                        fmt::format("{}: unknown key '{}'; {}", m_path, name, way_out));
    }
  }

private:
  const toml::table& m_table;
  std::string m_path;
  std::string m_file;
  std::set<std::string> m_consumed;
};

// What a file that is not a regular file is, for a message: "a FIFO", "a socket".
std::string_view file_kind(std::filesystem::file_type type) {
  switch (type) {
  case std::filesystem::file_type::fifo: return "a FIFO (named pipe)";
  case std::filesystem::file_type::socket: return "a socket";
  case std::filesystem::file_type::block: return "a block device";
  case std::filesystem::file_type::character: return "a character device";
  default: return "a special file";
  }
}

// The bytes of a configuration file, or why they cannot be read ("Permission denied", "is a
// directory"): an unreadable file must not pass for an empty one.
std::expected<std::string, std::string> read_file_bytes(const std::filesystem::path& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    return std::unexpected("is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::unexpected(std::generic_category().message(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad())
    return std::unexpected(std::generic_category().message(errno));
  return bytes.str();
}

toml::table parse_toml(const std::filesystem::path& path, const std::string& bytes) {
  try {
    return toml::parse(bytes, path.string());
  } catch (const toml::parse_error& error) {
    const auto& begin = error.source().begin;
    throw ConfigError({path.string(), begin.line, begin.column},
                      fmt::format("invalid TOML: {}", error.description()));
  }
}

// The libpq connection string in `reader`'s key `dsn`, checked before anything connects: libpq
// reads an empty one as "all defaults", which here is a mistake; `example` shows a good one.
// Loads PostgreSQL support, so a missing module is reported at the key that needs it.
void check_postgres_dsn(TableReader& reader, const std::string& dsn, std::string_view example) {
  const toml::node& node = *reader.find("dsn");
  if (is_blank(dsn))
    reader.fail_at(node, "dsn",
                   fmt::format("empty; give a libpq connection string, e.g. {}", example));
  const PostgresSupport* postgres = nullptr;
  try {
    postgres = &postgres_support();
  } catch (const std::runtime_error& error) {
    reader.fail_at(node, "dsn", error.what());
  }
  if (auto problem = postgres->dsn_problem(dsn))
    reader.fail_at(node, "dsn", fmt::format("not a libpq connection string: {}", *problem));
}

std::optional<MatchValue> to_match_value(const toml::node& node) {
  if (const auto* s = node.as_string())
    return MatchValue{s->get()};
  if (const auto* i = node.as_integer())
    return MatchValue{i->get()};
  if (const auto* f = node.as_floating_point())
    return MatchValue{f->get()};
  if (const auto* b = node.as_boolean())
    return MatchValue{b->get()};
  return std::nullopt;
}

class ConfigLoader {
public:
  std::shared_ptr<const Config> load(const std::filesystem::path& main_file) {
    m_config.file = main_file;
    const std::string bytes = read_main(main_file);
    const toml::table root = parse_toml(main_file, bytes);
    m_digest_input = digest_part(main_file, bytes);
    m_config.files.push_back(main_file);

    TableReader top(root, "", main_file.string());
    const std::filesystem::path base = main_file.parent_path();
    read_state(top, root, base);
    const toml::table* daemon = top.optional_table("daemon");
    std::vector<std::string> rule_globs;
    if (daemon != nullptr)
      rule_globs = read_daemon(*daemon, main_file.string(), base);
    if (const toml::table* datastores = top.optional_table("datastores"))
      read_datastores(*datastores, main_file.string(), base);
    if (const toml::table* rules = top.optional_table("rules"))
      read_rules(*rules, main_file.string());
    reject_unknown_top_level(root, main_file.string(), {"state", "daemon", "datastores", "rules"});

    for (const std::string& pattern : rule_globs)
      for (const auto& file : expand_glob(pattern, base, daemon)) {
        // A file two patterns match (or the main file, matched by one) is read once: its rules
        // are not duplicates of themselves.
        const bool seen = std::any_of(m_config.files.begin(), m_config.files.end(),
                                      [&](const auto& read) { return same_file(read, file); });
        if (!seen)
          read_rule_file(file, daemon);
      }

    std::sort(m_config.rules.begin(), m_config.rules.end(),
              [](const Rule& a, const Rule& b) { return a.id < b.id; });
    check_hmac_key();
    check_files_roots();
    m_config.digest = sha256_hex(m_digest_input);
    return std::make_shared<const Config>(std::move(m_config));
  }

private:
  // A file's canonical path and its bytes: `-c retentiond.toml`, `-c /etc/.../retentiond.toml`
  // and a symlink to it name the same configuration, and must not look like a change of it in
  // the audit log.
  static std::string digest_part(const std::filesystem::path& path, const std::string& bytes) {
    std::error_code error;
    std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
    if (error)
      canonical = std::filesystem::absolute(path, error).lexically_normal();
    return canonical.string() + '\0' + bytes + '\0';
  }

  static std::string read_main(const std::filesystem::path& path) {
    auto bytes = read_file_bytes(path);
    if (!bytes)
      throw ConfigError({path.string(), 0, 0},
                        fmt::format("cannot read the configuration file: {} (use -c FILE or "
                                    "RETENTIOND_CONFIG)",
                                    bytes.error()));
    return std::move(*bytes);
  }

  static void reject_unknown_top_level(const toml::table& root, const std::string& file,
                                       std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, node] : root) {
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end())
        continue;
      throw ConfigError({file, key.source().begin.line, key.source().begin.column},
                        fmt::format("unknown top-level key '{}'; expected one of: {}", key.str(),
                                    fmt::join(allowed, ", ")));
    }
  }

  void read_state(TableReader& top, const toml::table& root, const std::filesystem::path& base) {
    const toml::table* state = top.optional_table("state");
    if (state == nullptr)
      throw ConfigError(
          {m_config.file.string(), 1, 1},
          "missing table [state] (set [state] path = \"/var/lib/retentiond/state.db\")");
    (void)root;
    TableReader reader(*state, "state", m_config.file.string());
    auto path = reader.optional_string("path");
    auto dsn = reader.optional_string("dsn");
    if (path && dsn)
      reader.fail_at(*reader.find("dsn"), "dsn",
                     "set either path (a SQLite state file) or dsn (a PostgreSQL state shared "
                     "by several hosts), not both");
    if (dsn) {
      check_postgres_dsn(reader, *dsn,
                         "\"host=/run/postgresql dbname=retention\" (or path = \"...\" for a "
                         "SQLite state file)");
      m_config.state_dsn = *dsn;
      m_config.state_password_file =
          reader.optional_path("password_file", base, "the file holding the password");
    } else {
      if (const toml::node* password = reader.find("password_file"))
        reader.fail_at(*password, "password_file",
                       "password_file applies to a PostgreSQL state (dsn) only");
      if (!path)
        reader.fail_missing("path",
                            "missing key 'path' (the SQLite state file, e.g. "
                            "\"/var/lib/retentiond/state.db\"; or dsn for a PostgreSQL state)");
      m_config.state_path = *reader.optional_path("path", base,
                                                  "the SQLite state file, e.g. "
                                                  "\"/var/lib/retentiond/state.db\"");
    }
    m_config.audit_key_file =
        reader.optional_path("audit_key_file", base, "the file holding the audit chain's key");
    if (m_config.audit_key_file)
      m_config.audit_key_file_position = reader.position_of(state->get("audit_key_file")->source());
    reader.reject_unknown_keys();
  }

  std::vector<std::string> read_daemon(const toml::table& daemon, const std::string& file,
                                       const std::filesystem::path& base) {
    TableReader reader(daemon, "daemon", file);
    std::vector<std::string> globs;
    if (const toml::node* rules = reader.find("rules")) {
      const auto* array = rules->as_array();
      if (array == nullptr)
        reader.fail_at(*rules, "rules",
                       fmt::format("expected an array of globs, got {}", describe(*rules)));
      for (const toml::node& item : *array) {
        const auto* text = item.as_string();
        if (text == nullptr)
          reader.fail_at(item, "rules",
                         fmt::format("expected a string glob, got {}", describe(item)));
        globs.push_back(text->get());
      }
    }
    m_config.metrics_listen = reader.optional_string("metrics_listen");
    if (m_config.metrics_listen)
      if (auto address = parse_listen_address(*m_config.metrics_listen); !address)
        reader.fail_at(*daemon.get("metrics_listen"), "metrics_listen",
                       fmt::format("'{}': {}", *m_config.metrics_listen, address.error()));
    m_config.hmac_key_file =
        reader.optional_path("hmac_key_file", base, "the file holding the hmac mask's key");
    if (m_config.hmac_key_file)
      m_config.hmac_key_file_position = reader.position_of(daemon.get("hmac_key_file")->source());
    reader.reject_unknown_keys();
    return globs;
  }

  std::vector<std::filesystem::path> expand_glob(const std::string& pattern,
                                                 const std::filesystem::path& base,
                                                 const toml::table* daemon) {
    const std::filesystem::path full = resolve(base, pattern);
    glob_t matches{};
    errno = 0;
    const int result = ::glob(full.c_str(), GLOB_ERR, nullptr, &matches);
    const int glob_errno = errno;
    std::vector<std::filesystem::path> files;
    if (result == 0)
      for (std::size_t i = 0; i < matches.gl_pathc; ++i)
        files.emplace_back(matches.gl_pathv[i]);
    ::globfree(&matches);
    // A directory on the way that cannot be read hides its rule files: not "no match".
    if (result == GLOB_ABORTED && glob_errno != ENOENT && glob_errno != ENOTDIR)
      fail_at_rules(daemon, fmt::format("cannot read the directories of '{}': {}", full.string(),
                                        std::generic_category().message(glob_errno)));
    const bool has_wildcard = pattern.find_first_of("*?[") != std::string::npos;
    // A pattern that finds nothing is most likely a typo, and its rules would silently not be
    // enforced.
    if (files.empty() && !has_wildcard)
      fail_at_rules(daemon, fmt::format("rule file '{}' does not exist", full.string()));
    // An existing directory with no match yet (rules.d/ before the first rule file) is fine;
    // a directory that is not there is most likely a typo.
    if (files.empty()) {
      const std::filesystem::path directory = full.parent_path();
      std::error_code error;
      if (directory.string().find_first_of("*?[") == std::string::npos &&
          !std::filesystem::is_directory(directory, error))
        fail_at_rules(daemon,
                      fmt::format("'{}' matches no file: there is no directory '{}' (correct the "
                                  "pattern, or remove it)",
                                  full.string(), directory.string()));
      spdlog::warn("daemon.rules: '{}' matches no file", full.string());
    }
    return files;
  }

  [[noreturn]] void fail_at_rules(const toml::table* daemon, const std::string& message) const {
    const toml::node* node = daemon->get("rules");
    throw ConfigError(
        {m_config.file.string(), node->source().begin.line, node->source().begin.column},
        "daemon.rules: " + message);
  }

  void read_datastores(const toml::table& datastores, const std::string& file,
                       const std::filesystem::path& base) {
    for (const auto& [key, node] : datastores) {
      const std::string name{key.str()};
      const std::string path = "datastores." + name;
      const auto* table = node.as_table();
      if (table == nullptr)
        throw ConfigError({file, node.source().begin.line, node.source().begin.column},
                          fmt::format("{}: expected a table, got {}", path, describe(node)));
      TableReader reader(*table, path, file);
      DatastoreConfig store;
      store.name = name;
      store.position = reader.position();
      store.type = reader.required_string("type", "one of: sqlite, postgres, files");
      if (store.type == "sqlite") {
        store.path = reader.required_path("path", base, "the SQLite database file");
        check_database_is_its_own(reader, *table->get("path"), store.path);
        if (auto timeout = reader.optional_duration(
                "busy_timeout", k_max_busy_timeout,
                "a wait for the application's lock must end well within the service's 10-minute "
                "watchdog"))
          store.busy_timeout = *timeout;
      } else if (store.type == "postgres") {
        store.dsn = reader.required_string("dsn", "a libpq connection string");
        check_postgres_dsn(reader, store.dsn, "\"host=/run/postgresql dbname=app\"");
        if (auto password =
                reader.optional_path("password_file", base, "the file holding the password"))
          store.password_file = *password;
      } else if (store.type == "files") {
        store.root = reader.required_path("root", base, "the directory the files live in");
        m_root_positions.emplace(name, reader.position_of(table->get("root")->source()));
      } else {
        reader.fail_at(
            *table->get("type"), "type",
            fmt::format("unknown datastore type '{}' (expected sqlite, postgres or files)",
                        store.type));
      }
      reader.reject_unknown_keys();
      m_config.datastores.emplace(name, std::move(store));
    }
  }

  // A SQLite datastore's file is neither the state's (retentiond would write its tables into the
  // application's database) nor another datastore's (rules on one datastore run one at a time,
  // which two names for one file would defeat).
  void check_database_is_its_own(const TableReader& reader, const toml::node& node,
                                 const std::filesystem::path& path) const {
    if (m_config.state_dsn.empty() && same_file(path, m_config.state_path))
      reader.fail_at(node, "path",
                     fmt::format("'{}' is the state database (state.path) too: retentiond would "
                                 "write its own tables into the application's database (give "
                                 "state.path a file of its own)",
                                 path.string()));
    for (const auto& [name, other] : m_config.datastores)
      if (other.type == "sqlite" && same_file(path, other.path))
        reader.fail_at(node, "path",
                       fmt::format("'{}' is the same file as datastores.{}.path: rules on one "
                                   "datastore run one at a time, and two names for it would "
                                   "defeat that (name it once, and use datastore \"{}\" in "
                                   "every rule on it)",
                                   path.string(), name, name));
  }

  // No files datastore may reach what retentiond itself needs: a file rule with glob "**" (or a
  // row's path) would delete its configuration, its state or an application's database.
  void check_files_roots() const {
    std::vector<std::pair<std::filesystem::path, std::string>> own;  // the file, what it is
    if (m_config.state_dsn.empty())
      own.emplace_back(m_config.state_path, "the state database (state.path)");
    own.emplace_back(m_config.file, "the configuration file");
    for (std::size_t i = 1; i < m_config.files.size(); ++i)
      own.emplace_back(m_config.files[i], "the rule file");
    for (const auto& [name, store] : m_config.datastores) {
      if (store.type == "sqlite")
        own.emplace_back(store.path, fmt::format("the database of datastores.{}", name));
      if (!store.password_file.empty())
        own.emplace_back(store.password_file,
                         fmt::format("the password file datastores.{}.password_file", name));
    }
    if (m_config.hmac_key_file)
      own.emplace_back(*m_config.hmac_key_file, "the key file daemon.hmac_key_file");
    if (m_config.audit_key_file)
      own.emplace_back(*m_config.audit_key_file, "the key file state.audit_key_file");
    if (m_config.state_password_file)
      own.emplace_back(*m_config.state_password_file, "the password file state.password_file");

    for (const auto& [name, store] : m_config.datastores) {
      if (store.type != "files")
        continue;
      for (const auto& [file, what] : own)
        if (lies_beneath(store.root, file))
          throw ConfigError(m_root_positions.at(name),
                            fmt::format("datastores.{}.root: '{}' contains {} '{}', which a file "
                                        "rule or a linked path could delete (move the root or "
                                        "the file)",
                                        name, store.root.string(), what, file.string()));
    }
  }

  void read_rule_file(const std::filesystem::path& file, const toml::table* daemon) {
    // Opening a FIFO would wait for a writer forever, a device may act on being opened: only
    // regular files (and directories, refused as they are read) are opened.
    std::error_code error;
    const std::filesystem::file_status status = std::filesystem::status(file, error);
    if (!error && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status) &&
        !std::filesystem::is_directory(status))
      fail_at_rules(daemon, fmt::format("cannot read rule file '{}': is {}, not a regular file "
                                        "(narrow the pattern to rule files)",
                                        file.string(), file_kind(status.type())));
    const auto read = read_file_bytes(file);
    if (!read)
      fail_at_rules(daemon,
                    fmt::format("cannot read rule file '{}': {}", file.string(), read.error()));
    const std::string& bytes = *read;
    const toml::table root = parse_toml(file, bytes);
    m_digest_input += digest_part(file, bytes);
    m_config.files.push_back(file);
    reject_unknown_top_level(root, file.string(), {"rules"});
    if (const toml::node* rules = root.get("rules")) {
      if (!rules->is_table())
        throw ConfigError({file.string(), rules->source().begin.line, rules->source().begin.column},
                          "rules: expected a table of rules ([rules.ID])");
      read_rules(*rules->as_table(), file.string());
    }
  }

  void read_rules(const toml::table& rules, const std::string& file) {
    for (const auto& [key, node] : rules) {
      const std::string id{key.str()};
      const SourcePosition where{file, key.source().begin.line, key.source().begin.column};
      if (!is_rule_id(id))
        throw ConfigError(where,
                          fmt::format("rules.{}: rule id '{}' must match [a-z0-9_]+", id, id));
      if (const auto it = m_rule_positions.find(id); it != m_rule_positions.end())
        throw ConfigError(where,
                          fmt::format("rules.{}: rule '{}' is already defined at {} (rule ids "
                                      "must be unique across files)",
                                      id, id, it->second.to_string()));
      const auto* table = node.as_table();
      if (table == nullptr)
        throw ConfigError(where,
                          fmt::format("rules.{}: expected a table, got {}", id, describe(node)));
      m_rule_positions.emplace(id, where);
      m_config.rules.push_back(read_rule(id, *table, file));
    }
  }

  Rule read_rule(const std::string& id, const toml::table& table, const std::string& file) {
    TableReader reader(table, "rules." + id, file);
    Rule rule;
    rule.id = id;
    rule.position = reader.position();
    rule.description =
        reader.required_text("description", "what the rule promises, in plain words");
    rule.policy = reader.required_text("policy", "the policy clause this rule enforces");

    rule.datastore = reader.required_string("datastore", "the name of a [datastores.NAME] table");
    const auto store = m_config.datastores.find(rule.datastore);
    if (store == m_config.datastores.end()) {
      std::vector<std::string> names;
      for (const auto& [name, _] : m_config.datastores)
        names.push_back(name);
      reader.fail_at(*table.get("datastore"), "datastore",
                     fmt::format("unknown datastore '{}' (defined: {})", rule.datastore,
                                 names.empty() ? std::string{"none"}
                                               : fmt::format("{}", fmt::join(names, ", "))));
    }
    const std::string& store_type = store->second.type;

    const std::string action = reader.required_string("action", "delete, anonymize or keep");
    if (action == "delete")
      rule.action = Action::delete_rows;
    else if (action == "anonymize")
      rule.action = Action::anonymize;
    else if (action == "keep")
      rule.action = Action::keep;
    else
      reader.fail_at(
          *table.get("action"), "action",
          fmt::format("unknown action '{}' (expected delete, anonymize or keep)", action));

    const std::string retain = reader.required_string(
        "retain", "e.g. \"12 months\", or \"forever\" with action = \"keep\"");
    auto retention = parse_retention(retain);
    if (!retention)
      reader.fail_at(*table.get("retain"), "retain", retention.error());
    rule.retain = *retention;
    if (rule.retain.forever && rule.action != Action::keep)
      reader.fail_at(
          *table.get("retain"), "retain",
          fmt::format("'forever' is only allowed with action = \"keep\" (action is \"{}\")",
                      action));

    if (store_type == "files")
      return read_file_rule(reader, table, std::move(rule));
    rule.table = reader.required_identifier("table", "the table this rule applies to");

    const bool has_parent_anchor = table.contains("age_from");
    if (auto column = reader.optional_identifier("age_column")) {
      if (has_parent_anchor)
        reader.fail_at(*table.get("age_column"), "age_column",
                       "age_column and age_from exclude each other (age_from names the parent's "
                       "column)");
      rule.age_column = *column;
    } else if (rule.action != Action::keep && !has_parent_anchor) {
      reader.fail_missing("age_column",
                          "missing key 'age_column' (the column the retention period is "
                          "measured from, or an age_from table)");
    }

    if (auto format = reader.optional_string("age_format")) {
      if (*format == "unix_seconds")
        rule.age_format = AgeFormat::unix_seconds;
      else if (*format == "unix_millis")
        rule.age_format = AgeFormat::unix_millis;
      else if (*format == "iso8601")
        rule.age_format = AgeFormat::iso8601;
      else
        reader.fail_at(
            *table.get("age_format"), "age_format",
            fmt::format("unknown age_format '{}' (expected unix_seconds, unix_millis or iso8601)",
                        *format));
    } else if (store_type == "sqlite" && (!rule.age_column.empty() || has_parent_anchor)) {
      reader.fail_missing("age_format",
                          "missing key 'age_format' (SQLite has no timestamp type: set "
                          "unix_seconds, unix_millis or iso8601)");
    }

    rule.schedule = read_schedule(reader, table);
    read_match(reader, table, rule);
    rule.subject_column = reader.optional_identifier("subject_column");

    read_limits(reader, rule);

    read_masks(reader, table, rule);
    rule.anonymized_column = reader.optional_identifier("anonymized_column");
    read_age_from(reader, rule);
    read_cascade(reader, table, rule);

    if (rule.action == Action::anonymize) {
      if (rule.masks.empty())
        reader.fail(
            fmt::format("action \"anonymize\" needs an [rules.{}.anonymize] table with a mask "
                        "per column (hmac, ip_prefix, null, redact or year)",
                        id));
      if (rule.age_from && !rule.anonymized_column)
        reader.fail("anonymize with age_from needs 'anonymized_column' (the column that marks a "
                    "row done, so it never matches again)");
      if (!rule.anonymized_column)
        for (const ColumnMask& mask : rule.masks)
          if (mask.column == rule.age_column)
            reader.fail(
                fmt::format("anonymize masks the age column '{}', which the engine clears to "
                            "mark rows done; name an 'anonymized_column' instead",
                            rule.age_column));
    } else if (!rule.masks.empty()) {
      reader.fail_at(
          *table.get("anonymize"), "anonymize",
          fmt::format("masks are only used with action = \"anonymize\" (action is \"{}\")",
                      action));
    } else if (rule.anonymized_column) {
      reader.fail_at(
          *table.get("anonymized_column"), "anonymized_column",
          fmt::format("only used with action = \"anonymize\" (action is \"{}\")", action));
    }
    read_linked_files(reader, table, rule);
    if (const toml::node* glob = reader.find("glob"))
      reader.fail_at(*glob, "glob",
                     fmt::format("glob is for rules on a files datastore ('{}' is {})",
                                 rule.datastore, store_type));

    reader.reject_unknown_keys();
    return rule;
  }

  // max_fraction, batch_time and max_runtime: the same for table and file rules.
  static void read_limits(TableReader& reader, Rule& rule) {
    if (const toml::node* fraction = reader.find("max_fraction")) {
      std::optional<double> value;
      if (const auto* f = fraction->as_floating_point())
        value = f->get();
      else if (const auto* i = fraction->as_integer())
        value = static_cast<double>(i->get());
      if (!value)
        reader.fail_at(*fraction, "max_fraction",
                       fmt::format("expected a number, got {}", describe(*fraction)));
      if (!(*value > 0.0 && *value <= 1.0))
        reader.fail_at(
            *fraction, "max_fraction",
            fmt::format("{} is out of range (0 < max_fraction <= 1; 1 disables the breaker)",
                        show(*fraction)));
      rule.max_fraction = *value;
    }
    if (auto batch_time = reader.optional_duration(
            "batch_time", k_max_batch_time,
            "a batch holds the datastore's write lock that long, and the application waits"))
      rule.batch_time = *batch_time;
    rule.max_runtime = reader.optional_duration(
        "max_runtime", k_max_runtime, "leave max_runtime out for runs without a time budget");
  }

  // A rule on a files datastore: files under the root matching `glob`, aged by mtime.
  Rule read_file_rule(TableReader& reader, const toml::table& table, Rule rule) {
    for (const char* key : {"table", "age_column", "age_format", "match", "subject_column",
                            "anonymize", "anonymized_column", "age_from", "cascade", "files"})
      if (const toml::node* node = table.get(key))
        reader.fail_at(*node, key,
                       fmt::format("does not apply to a rule on files datastore '{}' (file rules "
                                   "take glob; their age is the file's mtime)",
                                   rule.datastore));
    rule.glob =
        reader.required_string("glob", "which files under the root, e.g. \"uploads/tmp/**\"");
    const auto has_parent_component = [](std::string_view glob) {
      for (std::size_t at = 0; at <= glob.size();) {
        const std::size_t slash = std::min(glob.find('/', at), glob.size());
        if (glob.substr(at, slash - at) == "..")
          return true;
        at = slash + 1;
      }
      return false;
    };
    if (rule.glob.empty() || rule.glob.front() == '/' || has_parent_component(rule.glob))
      reader.fail_at(
          *table.get("glob"), "glob",
          fmt::format("'{}' must be a relative pattern beneath the root, without '..'", rule.glob));
    if (rule.action == Action::anonymize)
      reader.fail_at(*table.get("action"), "action",
                     "files cannot be anonymized (use delete or keep)");
    rule.schedule = read_schedule(reader, table);
    read_limits(reader, rule);
    reader.reject_unknown_keys();
    return rule;
  }

  void read_linked_files(TableReader& reader, const toml::table& table, Rule& rule) {
    const toml::table* files = reader.optional_table("files");
    if (files == nullptr)
      return;
    TableReader linked(*files, reader.key_path("files"), reader.position().file);
    LinkedFilesConfig config;
    config.datastore = linked.required_string("datastore", "a datastore of type \"files\"");
    config.path_column = linked.required_identifier(
        "path_column", "the column holding the file's path beneath the root");
    const auto store = m_config.datastores.find(config.datastore);
    if (store == m_config.datastores.end() || store->second.type != "files")
      linked.fail_at(*files->get("datastore"), "datastore",
                     fmt::format("'{}' is not a datastore of type \"files\"", config.datastore));
    linked.reject_unknown_keys();
    if (rule.action != Action::delete_rows)
      reader.fail_at(*table.get("files"), "files",
                     fmt::format("linked files are deleted with their rows: only with action = "
                                 "\"delete\" (action is \"{}\")",
                                 to_string(rule.action)));
    rule.files = config;
  }

  static Schedule read_schedule(TableReader& reader, const toml::table& table) {
    Schedule schedule;
    auto text = reader.optional_string("schedule");
    if (!text) {
      schedule.text = "daily";
      return schedule;
    }
    auto parsed = parse_schedule(*text);
    if (!parsed)
      reader.fail_at(*table.get("schedule"), "schedule", parsed.error());
    return *parsed;
  }

  static void read_match(TableReader& reader, const toml::table& table, Rule& rule) {
    const toml::table* match = reader.optional_table("match");
    if (match == nullptr)
      return;
    (void)table;
    for (const auto& [key, node] : *match) {
      const std::string column{key.str()};
      if (!is_sql_identifier(column))
        reader.fail_at(node, "match",
                       fmt::format("'{}' is not a plain SQL identifier (letters, digits and _, not "
                                   "starting with a digit, at most 63 characters)",
                                   column));
      MatchFilter filter{column, {}};
      // nan equals nothing, not even itself, and no column holds inf: the filter would match no
      // row, and in a list the value would be lost without a word.
      const auto refuse_non_finite = [&](const toml::node& value) {
        if (const auto* f = value.as_floating_point(); f != nullptr && !std::isfinite(f->get()))
          reader.fail_at(value, "match." + column,
                         fmt::format("{} is not a finite number, so it matches no row (write a "
                                     "number, or remove it)",
                                     show(value)));
      };
      if (const auto* array = node.as_array()) {
        for (const toml::node& item : *array) {
          auto value = to_match_value(item);
          if (!value)
            reader.fail_at(
                item, "match." + column,
                fmt::format("expected a string, number or boolean, got {}", type_name(item)));
          refuse_non_finite(item);
          filter.values.push_back(std::move(*value));
        }
        if (filter.values.empty())
          reader.fail_at(node, "match." + column,
                         "an empty list matches nothing (remove the filter or add values)");
      } else {
        auto value = to_match_value(node);
        if (!value)
          reader.fail_at(
              node, "match." + column,
              fmt::format("expected a string, number, boolean or an array of them, got {}",
                          type_name(node)));
        refuse_non_finite(node);
        filter.values.push_back(std::move(*value));
      }
      rule.match.push_back(std::move(filter));
    }
  }

  void read_masks(TableReader& reader, const toml::table& table, Rule& rule) {
    const toml::table* masks = reader.optional_table("anonymize");
    if (masks == nullptr)
      return;
    (void)table;
    for (const auto& [key, node] : *masks) {
      const std::string column{key.str()};
      if (!is_sql_identifier(column))
        reader.fail_at(node, "anonymize",
                       fmt::format("'{}' is not a plain SQL identifier (letters, digits and _, not "
                                   "starting with a digit, at most 63 characters)",
                                   column));
      const auto* text = node.as_string();
      const std::string key_name = "anonymize." + column;
      if (text == nullptr)
        reader.fail_at(node, key_name, fmt::format("expected a mask name, got {}", describe(node)));
      const std::string& name = text->get();
      Mask mask;
      if (name == "null")
        mask = Mask::null;
      else if (name == "hmac")
        mask = Mask::hmac;
      else if (name == "ip_prefix")
        mask = Mask::ip_prefix;
      else if (name == "redact")
        mask = Mask::redact;
      else if (name == "year")
        mask = Mask::year;
      else
        reader.fail_at(
            node, key_name,
            fmt::format("unknown mask '{}' (expected hmac, ip_prefix, null, redact or year)",
                        name));
      rule.masks.push_back({column, mask});
      if (mask == Mask::hmac)
        m_hmac_users.emplace_back(reader.position_of(node.source()), reader.key_path(key_name));
    }
  }

  static void read_age_from(TableReader& reader, Rule& rule) {
    const toml::table* age_from = reader.optional_table("age_from");
    if (age_from == nullptr)
      return;
    TableReader parent(*age_from, reader.key_path("age_from"), reader.position().file);
    ParentAnchor anchor;
    anchor.table = parent.required_identifier("table", "the parent table that holds the anchor");
    anchor.column = parent.required_identifier("column", "the parent's anchor column");
    anchor.key = parent.required_identifier("key", "the parent's key column");
    anchor.foreign_key = parent.required_identifier(
        "foreign_key", "this table's column that references the parent key");
    parent.reject_unknown_keys();
    rule.age_from = anchor;
  }

  static void read_cascade(TableReader& reader, const toml::table& table, Rule& rule) {
    const toml::node* node = reader.find("cascade");
    if (node == nullptr)
      return;
    (void)table;
    const auto* array = node->as_array();
    if (array == nullptr)
      reader.fail_at(*node, "cascade",
                     fmt::format("expected an array of {{ table, foreign_key }} tables, got {}",
                                 describe(*node)));
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& item = *array->get(i);
      const auto* child = item.as_table();
      const std::string path = fmt::format("{}[{}]", reader.key_path("cascade"), i);
      if (child == nullptr)
        throw ConfigError(reader.position_of(item.source()),
                          fmt::format("{}: expected a table {{ table, foreign_key }}, got {}", path,
                                      describe(item)));
      TableReader child_reader(*child, path, reader.position().file);
      Cascade cascade;
      cascade.table = child_reader.required_identifier("table", "the dependent table");
      cascade.foreign_key = child_reader.required_identifier(
          "foreign_key", "the dependent table's column that references this rule's table");
      if (auto key = child_reader.optional_identifier("key"))
        cascade.key = *key;
      child_reader.reject_unknown_keys();
      rule.cascade.push_back(cascade);
    }
  }

  void check_hmac_key() const {
    if (m_config.hmac_key_file || m_hmac_users.empty())
      return;
    const auto& [where, key] = m_hmac_users.front();
    throw ConfigError(where,
                      fmt::format("{}: mask 'hmac' needs daemon.hmac_key_file (a file holding "
                                  "the secret key)",
                                  key));
  }

  Config m_config;
  std::string m_digest_input;
  std::map<std::string, SourcePosition> m_rule_positions;
  std::map<std::string, SourcePosition> m_root_positions;  // of each files datastore's root
  std::vector<std::pair<SourcePosition, std::string>> m_hmac_users;  // masks that need the key
};

}  // namespace

std::shared_ptr<const Config> load_config(const std::filesystem::path& main_file) {
  ConfigLoader loader;
  return loader.load(main_file);
}

}  // namespace retentiond
