#include "adapters/sqlite/sqlite_datastore.hpp"

#include "adapters/sqlite/sqlite_masks.hpp"
#include "adapters/sqlite/sqlite_statements.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

namespace retentiond::adapters::sqlite {
namespace {

void bind_all(SQLite::Statement& statement, const std::vector<SqlValue>& values) {
  int index = 1;
  for (const SqlValue& value : values) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>)
            statement.bind(index);
          else if constexpr (std::is_same_v<T, std::int64_t>)
            statement.bind(index, static_cast<int64_t>(v));
          else
            statement.bind(index, v);
        },
        value);
    ++index;
  }
}

// Runs a data-changing statement and returns the rows it changed.
std::int64_t execute(SQLite::Database& db, const SqlFragment& fragment) {
  SQLite::Statement statement(db, fragment.text);
  bind_all(statement, fragment.values);
  return statement.exec();
}

class SqliteBatch final : public Batch {
public:
  explicit SqliteBatch(SQLite::Database& db) : m_db(db) { m_db.exec("BEGIN IMMEDIATE"); }

  ~SqliteBatch() override {
    if (m_committed)
      return;
    try {
      m_db.exec("ROLLBACK");
    } catch (const std::exception& error) {
      spdlog::error("rollback failed: {}", error.what());
    }
  }

  std::int64_t rows() const override { return m_rows; }
  std::int64_t children() const override { return m_children; }
  std::int64_t files() const override { return static_cast<std::int64_t>(m_files.size()); }
  bool exhausted() const override { return m_exhausted; }
  const std::vector<std::pair<std::string, std::string>>& refusals() const override {
    return m_refusals;
  }
  bool empty() const { return m_rows == 0 && m_refusals.empty(); }

  void commit() override {
    // The file goes first: a row is never deleted while its file stays behind.
    for (auto& file : m_files)
      file->remove();
    m_db.exec("COMMIT");
    m_committed = true;
  }

  void apply(const RuleStatements& statements, const Selection& selection, std::int64_t limit) {
    m_db.exec(fmt::format("DELETE FROM {}", k_batch_table));
    const std::int64_t selected = execute(m_db, statements.select_batch(limit));
    m_exhausted = selected < limit;
    if (selected == 0)
      return;
    if (selection.linked_files != nullptr)
      resolve_linked_files(statements, *selection.linked_files);
    // Children first, in the same transaction, so no child ever points at a missing parent.
    for (const Cascade& cascade : selection.rule.cascade)
      m_children += execute(m_db, statements.delete_children(cascade));
    m_rows = execute(m_db, statements.change_rows());
  }

private:
  // Resolves each row's file beneath the files root; a refused path keeps its row.
  void resolve_linked_files(const RuleStatements& statements, LinkedFiles& linked) {
    const SqlFragment query = statements.linked_paths();
    SQLite::Statement paths(m_db, query.text);
    std::vector<std::int64_t> refused;
    while (paths.executeStep()) {
      if (paths.getColumn(1).isNull())
        continue;
      const std::int64_t rowid = paths.getColumn(0).getInt64();
      auto file = linked.resolve(paths.getColumn(1).getString());
      if (!file) {
        m_refusals.emplace_back(fmt::format("rowid {}", rowid), file.error());
        refused.push_back(rowid);
      } else if (*file) {
        m_files.push_back(std::move(*file));
      }
    }
    for (const std::int64_t rowid : refused) {
      m_db.exec(fmt::format("DELETE FROM {} WHERE id = {}", k_batch_table, rowid));
      m_db.exec(fmt::format("INSERT OR IGNORE INTO {}(id) VALUES ({})", k_refused_table, rowid));
    }
  }

  SQLite::Database& m_db;
  bool m_committed = false;
  bool m_exhausted = false;
  std::int64_t m_rows = 0;
  std::int64_t m_children = 0;
  std::vector<std::unique_ptr<ResolvedFile>> m_files;
  std::vector<std::pair<std::string, std::string>> m_refusals;
};

class SqliteDatastore final : public Datastore {
public:
  SqliteDatastore(const DatastoreConfig& config, OpenMode mode, const AdapterSecrets& secrets)
      : m_name(config.name), m_mode(mode), m_db(open(config, mode)) {
    register_masks(m_db.getHandle(), secrets.hmac_key);
    if (mode == OpenMode::read_only) {
      m_db.exec("PRAGMA query_only = ON");
      return;
    }
    // Deleted values are overwritten in the file instead of lingering in free pages.
    m_db.exec("PRAGMA secure_delete = ON");
    for (const std::string_view table : {k_batch_table, k_refused_table})
      m_db.exec(fmt::format("CREATE TEMP TABLE IF NOT EXISTS {}(id INTEGER PRIMARY KEY)",
                            table.substr(5)));
  }

  SchemaCheck check_schema(const Rule& rule) override {
    SchemaCheck check;
    check_table(check, rule.table, table_columns_needed(rule));
    if (check.errors.empty() && without_rowid(rule.table))
      check.errors.push_back(fmt::format("table '{}' is a WITHOUT ROWID table, which this version "
                                         "cannot batch", rule.table));
    if (const auto& parent = rule.age_from) {
      check_table(check, parent->table, {parent->column, parent->key});
      if (check.errors.empty() && !has_leading_index(parent->table, parent->key))
        check.warnings.push_back(fmt::format("no index on {}.{}: every lookup of a parent scans {}",
                                             parent->table, parent->key, parent->table));
    } else if (!rule.age_column.empty() && check.errors.empty() &&
               !has_leading_index(rule.table, rule.age_column)) {
      check.warnings.push_back(fmt::format("no index on {}.{}: finding expired rows scans the "
                                           "whole table (CREATE INDEX ON {}({}))",
                                           rule.table, rule.age_column, rule.table, rule.age_column));
    }
    for (const Cascade& cascade : rule.cascade) {
      check_table(check, cascade.table, {cascade.foreign_key});
      if (!table_has_column(rule.table, cascade.key))
        check.errors.push_back(fmt::format("table '{}' has no column '{}' (cascade key of {})",
                                           rule.table, cascade.key, cascade.table));
      if (check.errors.empty() && !has_leading_index(cascade.table, cascade.foreign_key))
        check.warnings.push_back(fmt::format("no index on {}.{}: each batch scans {} to find children",
                                             cascade.table, cascade.foreign_key, cascade.table));
    }
    return check;
  }

  RuleCounts count(const Selection& selection) override {
    const RuleStatements statements(selection);
    const SqlFragment query = statements.count();
    SQLite::Statement statement(m_db, query.text);
    bind_all(statement, query.values);
    statement.executeStep();
    RuleCounts counts;
    counts.table_rows = statement.getColumn(0).getInt64();
    counts.total = statement.getColumn(1).getInt64();
    counts.due = statement.getColumn(2).getInt64();
    counts.held = statement.getColumn(3).getInt64();
    counts.undated = statement.getColumn(4).getInt64();
    counts.unreadable = statement.getColumn(5).getInt64();
    counts.future = statement.getColumn(6).getInt64();
    counts.wrong_scale = statement.getColumn(7).getInt64();
    if (!statement.getColumn(8).isNull())
      counts.oldest_due = from_unix_millis(statement.getColumn(8).getInt64());
    if (selection.linked_files != nullptr)
      count_refused_files(statements, *selection.linked_files, counts);
    return counts;
  }

  std::vector<std::int64_t> count_by_anchor(const Selection& selection,
                                            const std::vector<Instant>& edges) override {
    const SqlFragment query = RuleStatements(selection).count_by_anchor(edges);
    SQLite::Statement statement(m_db, query.text);
    bind_all(statement, query.values);
    std::vector<std::int64_t> counts(edges.size() + 1, 0);
    while (statement.executeStep())
      counts.at(static_cast<std::size_t>(statement.getColumn(0).getInt64())) = statement.getColumn(1).getInt64();
    return counts;
  }

  std::unique_ptr<Batch> begin_batch(const Selection& selection, std::int64_t limit) override {
    if (m_mode == OpenMode::read_only)
      throw std::runtime_error(fmt::format("datastore '{}' is open read-only", m_name));
    // A new run of a rule (a new cutoff) gives refused rows another chance.
    const std::string run_key = selection.rule.id + "@" + format_iso8601(selection.cutoff);
    if (run_key != m_refused_run) {
      m_db.exec(fmt::format("DELETE FROM {}", k_refused_table));
      m_refused_run = run_key;
    }
    const RuleStatements statements(selection);
    auto batch = std::make_unique<SqliteBatch>(m_db);
    batch->apply(statements, selection, limit);
    if (batch->empty())
      return nullptr;
    return batch;
  }

  void finish_run() override {
    if (m_mode == OpenMode::read_only)
      return;
    // Truncating the WAL removes the last copies of deleted pages from the write-ahead log.
    SQLite::Statement checkpoint(m_db, "PRAGMA wal_checkpoint(TRUNCATE)");
    if (checkpoint.executeStep() && checkpoint.getColumn(0).getInt() != 0)
      spdlog::warn("datastore '{}': WAL checkpoint was blocked by a reader; deleted values stay "
                   "in the WAL until the next checkpoint", m_name);
  }

private:
  // Due rows whose linked file would be refused stay: they are `refused`, not `due`.
  void count_refused_files(const RuleStatements& statements, LinkedFiles& linked, RuleCounts& counts) {
    const SqlFragment query = statements.due_paths();
    SQLite::Statement paths(m_db, query.text);
    bind_all(paths, query.values);
    while (paths.executeStep())
      if (!paths.getColumn(0).isNull() && !linked.resolve(paths.getColumn(0).getString()))
        ++counts.refused;
    counts.due -= counts.refused;
  }

  static SQLite::Database open(const DatastoreConfig& config, OpenMode mode) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(config.path, error))
      throw std::runtime_error(fmt::format("datastore '{}': {} does not exist or is not a file",
                                           config.name, config.path.string()));
    const int flags = mode == OpenMode::read_only ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
    try {
      return SQLite::Database(config.path.string(), flags,
                              static_cast<int>(config.busy_timeout.count()));
    } catch (const SQLite::Exception& failure) {
      throw std::runtime_error(fmt::format("datastore '{}': cannot open {}: {}", config.name,
                                           config.path.string(), failure.what()));
    }
  }

  static std::vector<std::string> table_columns_needed(const Rule& rule) {
    std::vector<std::string> columns;
    if (!rule.age_column.empty() && !rule.age_from)
      columns.push_back(rule.age_column);
    for (const MatchFilter& filter : rule.match)
      columns.push_back(filter.column);
    if (rule.subject_column)
      columns.push_back(*rule.subject_column);
    for (const ColumnMask& mask : rule.masks)
      columns.push_back(mask.column);
    if (rule.anonymized_column)
      columns.push_back(*rule.anonymized_column);
    if (rule.age_from)
      columns.push_back(rule.age_from->foreign_key);
    if (rule.files)
      columns.push_back(rule.files->path_column);
    return columns;
  }

  std::set<std::string> columns_of(const std::string& table) {
    SQLite::Statement query(m_db, "SELECT name FROM pragma_table_info(?)");
    query.bind(1, table);
    std::set<std::string> columns;
    while (query.executeStep())
      columns.insert(query.getColumn(0).getString());
    return columns;
  }

  bool table_has_column(const std::string& table, const std::string& column) {
    return columns_of(table).contains(column);
  }

  void check_table(SchemaCheck& check, const std::string& table,
                   const std::vector<std::string>& columns) {
    SQLite::Statement kind(m_db, "SELECT type FROM sqlite_schema WHERE name = ?");
    kind.bind(1, table);
    if (!kind.executeStep()) {
      check.errors.push_back(fmt::format("table '{}' does not exist in datastore '{}'", table, m_name));
      return;
    }
    if (kind.getColumn(0).getString() != "table") {
      check.errors.push_back(fmt::format("'{}' in datastore '{}' is a {}, not a table", table, m_name,
                                         kind.getColumn(0).getString()));
      return;
    }
    const std::set<std::string> existing = columns_of(table);
    for (const std::string& column : columns)
      if (!existing.contains(column))
        check.errors.push_back(fmt::format("table '{}' has no column '{}'", table, column));
  }

  bool without_rowid(const std::string& table) {
    SQLite::Statement query(m_db, "SELECT wr FROM pragma_table_list(?)");
    query.bind(1, table);
    return query.executeStep() && query.getColumn(0).getInt() != 0;
  }

  bool has_leading_index(const std::string& table, const std::string& column) {
    SQLite::Statement query(m_db,
                            "SELECT count(*) FROM pragma_index_list(?1) AS il, "
                            "pragma_index_info(il.name) AS ii WHERE ii.seqno = 0 AND ii.name = ?2");
    query.bind(1, table);
    query.bind(2, column);
    query.executeStep();
    if (query.getColumn(0).getInt() > 0)
      return true;
    // An INTEGER PRIMARY KEY is the rowid itself: indexed without an index.
    SQLite::Statement pk(m_db, "SELECT count(*) FROM pragma_table_info(?1) WHERE pk = 1 AND name = ?2 "
                               "AND upper(type) = 'INTEGER'");
    pk.bind(1, table);
    pk.bind(2, column);
    pk.executeStep();
    return pk.getColumn(0).getInt() > 0;
  }

  std::string m_name;
  OpenMode m_mode;
  SQLite::Database m_db;
  std::string m_refused_run;  // rule@cutoff whose refusals k_refused_table holds
};

} // namespace

std::unique_ptr<Datastore> open_sqlite_datastore(const DatastoreConfig& config, OpenMode mode,
                                                 const AdapterSecrets& secrets) {
  return std::make_unique<SqliteDatastore>(config, mode, secrets);
}

} // namespace retentiond::adapters::sqlite
