// The datastore contract: what the engine relies on from every adapter, written once as test
// bodies that take a factory and a fixture builder, then run against every backend.
//
// A backend joins by adding one ContractTarget to contract_targets(): a factory that opens its
// adapter (passing k_contract_hmac_key as the hmac secret) and a FixtureBuilder that creates
// tables, rows and snapshots in a fresh datastore of that kind.
#include "adapters/datastore.hpp"
#include "adapters/files/files_datastore.hpp"
#include "adapters/postgres/postgres_datastore.hpp"
#include "adapters/sqlite/sqlite_datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/digest.hpp"
#include "daemon/postgres_connection.hpp"
#include "daemon/timestamp.hpp"
#include "tests/support/files.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace retentiond;
using adapters::Batch;
using adapters::Datastore;
using adapters::OpenMode;
using adapters::RuleCounts;
using adapters::Selection;
using retentiond::test::error_of;
using retentiond::test::file_bytes;
using retentiond::test::tree_set;

namespace {

// ---------------------------------------------------------------------------------------------
// What a backend provides

// A value written into a fixture row.
using Cell = std::variant<std::nullptr_t, std::int64_t, double, std::string>;

// A column's declared type, mapped by each backend to its own.
enum class ColumnType { key, integer, real, text };

struct Column {
  std::string name;
  ColumnType type = ColumnType::integer;
  bool not_null = false;
};

// A row read back: each value in its text form, nullopt for NULL.
using TextRow = std::vector<std::optional<std::string>>;

// Builds fixtures in one fresh, empty datastore of its backend.
class FixtureBuilder {
public:
  virtual ~FixtureBuilder() = default;
  // The datastore the factory opens.
  virtual const DatastoreConfig& config() const = 0;
  virtual void create_table(const std::string& table, const std::vector<Column>& columns) = 0;
  // An index on `column`; `kind` "UNIQUE" makes it unique, "UNIQUE ... WHERE" unique over the
  // rows with `column` > 0 only (partial).
  virtual void create_index(const std::string& table, const std::string& column,
                            const std::string& kind = "") = 0;
  // Inserts rows given as values for `columns`, in order.
  virtual void insert(const std::string& table, const std::vector<std::string>& columns,
                      const std::vector<std::vector<Cell>>& rows) = 0;
  // Every row of `table` (the named columns, text form), ordered by the first column.
  virtual std::vector<TextRow> select(const std::string& table,
                                      const std::vector<std::string>& columns) = 0;
  // Makes deleting a `parent` row fail while a `child` row still references it, so a cascade
  // that deletes the parent before its children fails visibly.
  virtual void forbid_orphans(const std::string& parent, const std::string& key,
                              const std::string& child, const std::string& foreign_key) = 0;
  // Everything the datastore stores, as bytes: equal snapshots mean nothing was written.
  virtual std::string snapshot() = 0;
  // Takes, from another connection, a lock that makes every reader of `table` wait (as an
  // application's long write transaction can); released when the result is destroyed.
  virtual std::shared_ptr<void> lock_out_readers(const std::string& table) = 0;
};

// CREATE [UNIQUE] INDEX for FixtureBuilder::create_index; `quote` quotes a name.
std::string index_sql(const std::string& table, const std::string& column, const std::string& kind,
                      const std::function<std::string(const std::string&)>& quote) {
  const bool unique = kind.starts_with("UNIQUE");
  const bool partial = kind.ends_with("WHERE");
  const std::string name =
      table + "_" + column + (unique ? "_unique" : "") + (partial ? "_some" : "");
  return std::string("CREATE ") + (unique ? "UNIQUE " : "") + "INDEX " + quote(name) + " ON " +
         quote(table) + "(" + quote(column) + ")" +
         (partial ? " WHERE " + quote(column) + " > 0" : "");
}

using DatastoreFactory =
    std::function<std::unique_ptr<Datastore>(const DatastoreConfig&, OpenMode)>;

struct ContractTarget {
  std::string name;
  DatastoreFactory open;
  std::function<std::unique_ptr<FixtureBuilder>()> fixture;
};

// The secret every factory gives its adapter for the `hmac` mask.
constexpr std::string_view k_contract_hmac_key = "contract-hmac-key-0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// SQLite

std::string sql_type(ColumnType type) {
  switch (type) {
  case ColumnType::key: return "INTEGER PRIMARY KEY";
  case ColumnType::integer: return "INTEGER";
  case ColumnType::real: return "REAL";
  case ColumnType::text: return "TEXT";
  }
  return "";
}

class SqliteFixture final : public FixtureBuilder {
public:
  SqliteFixture() : m_db(m_dir / "contract.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE) {
    m_config.name = "contract";
    m_config.type = "sqlite";
    m_config.path = m_dir / "contract.db";
  }

  const DatastoreConfig& config() const override { return m_config; }

  void create_table(const std::string& table, const std::vector<Column>& columns) override {
    std::string sql = "CREATE TABLE \"" + table + "\"(";
    for (std::size_t i = 0; i < columns.size(); ++i)
      sql += (i == 0 ? "\"" : ", \"") + columns[i].name + "\" " + sql_type(columns[i].type) +
             (columns[i].not_null ? " NOT NULL" : "");
    m_db.exec(sql + ")");
  }

  void create_index(const std::string& table, const std::string& column,
                    const std::string& kind = "") override {
    m_db.exec(
        index_sql(table, column, kind, [](const std::string& name) { return "\"" + name + "\""; }));
  }

  void insert(const std::string& table, const std::vector<std::string>& columns,
              const std::vector<std::vector<Cell>>& rows) override {
    std::string names;
    std::string marks;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      names += (i == 0 ? "\"" : ", \"") + columns[i] + "\"";
      marks += i == 0 ? "?" : ", ?";
    }
    SQLite::Transaction transaction(m_db);
    SQLite::Statement statement(m_db, "INSERT INTO \"" + table + "\"(" + names + ") VALUES(" +
                                          marks + ")");
    for (const auto& row : rows) {
      REQUIRE(row.size() == columns.size());
      for (std::size_t i = 0; i < row.size(); ++i) {
        const int index = static_cast<int>(i + 1);
        std::visit(
            [&](const auto& value) {
              using T = std::decay_t<decltype(value)>;
              if constexpr (std::is_same_v<T, std::nullptr_t>)
                statement.bind(index);
              else if constexpr (std::is_same_v<T, std::int64_t>)
                statement.bind(index, static_cast<int64_t>(value));
              else
                statement.bind(index, value);
            },
            row[i]);
      }
      statement.exec();
      statement.reset();
    }
    transaction.commit();
  }

  std::vector<TextRow> select(const std::string& table,
                              const std::vector<std::string>& columns) override {
    std::string names;
    for (std::size_t i = 0; i < columns.size(); ++i)
      names += (i == 0 ? "\"" : ", \"") + columns[i] + "\"";
    SQLite::Statement query(m_db, "SELECT " + names + " FROM \"" + table + "\" ORDER BY 1");
    std::vector<TextRow> rows;
    while (query.executeStep()) {
      TextRow row;
      for (int i = 0; i < query.getColumnCount(); ++i) {
        const SQLite::Column column = query.getColumn(i);
        row.push_back(column.isNull() ? std::nullopt : std::optional{column.getString()});
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void forbid_orphans(const std::string& parent, const std::string& key, const std::string& child,
                      const std::string& foreign_key) override {
    m_db.exec("CREATE TRIGGER \"" + parent + "_" + child + "_orphans\" BEFORE DELETE ON \"" +
              parent + "\" WHEN EXISTS (SELECT 1 FROM \"" + child + "\" WHERE \"" + foreign_key +
              "\" = OLD.\"" + key + "\") BEGIN SELECT RAISE(ABORT, 'parent deleted before its " +
              "children'); END");
  }

  // SQL as written, on the fixture's own connection (values SQLite alone can store: blobs,
  // infinities, text in a number's column).
  void exec(const std::string& sql) { m_db.exec(sql); }

  // An exclusive lock of the rollback journal: readers get SQLITE_BUSY until it is released.
  std::shared_ptr<void> lock_out_readers(const std::string&) override {
    auto writer = std::make_shared<SQLite::Database>(m_config.path, SQLite::OPEN_READWRITE);
    writer->exec("BEGIN EXCLUSIVE");
    return writer;
  }

  std::string snapshot() override {
    // The database file and whatever else lives beside it (journals, WAL, shared memory).
    std::string bytes;
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(m_dir.path()))
      names.insert(entry.path().filename().string());
    for (const std::string& name : names)
      bytes += name + '\0' + file_bytes(m_dir / name) + '\0';
    return bytes;
  }

private:
  test::TempDir m_dir;
  SQLite::Database m_db;
  DatastoreConfig m_config;
};

// ---------------------------------------------------------------------------------------------
// PostgreSQL

std::string quoted(const std::string& name) {
  return "\"" + name + "\"";
}

// Each fixture is a fresh database on the test process's PostgreSQL server.
//
// A PostgreSQL column holds values of one type, where SQLite's hold anything, and the clauses
// store text and fractions in `integer` columns to have unreadable anchors. So a table is
// created when its rows arrive, each `integer` column as bigint unless those rows need numeric
// (fractions) or text, each `real` column as double precision unless they need text; or, as
// declared, when anything else needs it first (an index, a select, the adapter).
class PostgresFixture final : public FixtureBuilder {
public:
  PostgresFixture()
      : m_database(test::PostgresServer::instance().create_database("contract")),
        m_connection(test::PostgresServer::instance().dsn(m_database)) {
    m_config.name = "contract";
    m_config.type = "postgres";
    m_config.dsn = test::PostgresServer::instance().dsn(m_database);
  }

  // The adapter is about to look: every table declared so far is created.
  const DatastoreConfig& config() const override {
    create_pending();
    return m_config;
  }

  void create_table(const std::string& table, const std::vector<Column>& columns) override {
    m_pending[table] = columns;
  }

  void create_index(const std::string& table, const std::string& column,
                    const std::string& kind = "") override {
    create_pending();
    exec(index_sql(table, column, kind, quoted));
  }

  void insert(const std::string& table, const std::vector<std::string>& columns,
              const std::vector<std::vector<Cell>>& rows) override {
    if (const auto pending = m_pending.find(table); pending != m_pending.end()) {
      create(table, pending->second, columns, rows);
      m_pending.erase(pending);
    }
    create_pending();
    std::string names;
    std::string marks;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      names += (i == 0 ? "" : ", ") + quoted(columns[i]);
      marks += fmt::format("{}${}", i == 0 ? "" : ", ", i + 1);
    }
    pqxx::work work(m_connection);
    for (const auto& row : rows) {
      REQUIRE(row.size() == columns.size());
      std::vector<std::optional<std::string>> texts;
      for (const Cell& cell : row)
        texts.push_back(text_of(cell));
      std::vector<const char*> params;
      for (const auto& text : texts)
        params.push_back(text ? text->c_str() : nullptr);
      work.exec_params("INSERT INTO " + quoted(table) + "(" + names + ") VALUES(" + marks + ")",
                       pqxx::prepare::make_dynamic_params(params));
    }
    work.commit();
  }

  std::vector<TextRow> select(const std::string& table,
                              const std::vector<std::string>& columns) override {
    create_pending();
    std::string names;
    for (std::size_t i = 0; i < columns.size(); ++i)
      names += (i == 0 ? "" : ", ") + quoted(columns[i]) + "::text";
    pqxx::nontransaction query(m_connection);
    std::vector<TextRow> rows;
    for (const pqxx::row& row : query.exec("SELECT " + names + " FROM " + quoted(table) +
                                           " AS t ORDER BY t." + quoted(columns.front()))) {
      TextRow values;
      for (const pqxx::field& field : row)
        values.push_back(field.is_null() ? std::nullopt : std::optional{field.as<std::string>()});
      rows.push_back(std::move(values));
    }
    return rows;
  }

  // A real foreign key: PostgreSQL checks it at the end of each statement.
  void forbid_orphans(const std::string& parent, const std::string& key, const std::string& child,
                      const std::string& foreign_key) override {
    exec("ALTER TABLE " + quoted(child) + " ADD FOREIGN KEY (" + quoted(foreign_key) +
         ") REFERENCES " + quoted(parent) + "(" + quoted(key) + ")");
  }

  std::shared_ptr<void> lock_out_readers(const std::string& table) override {
    create_pending();
    struct Lock {
      pqxx::connection connection;
      pqxx::work transaction;
      explicit Lock(const std::string& dsn) : connection(dsn), transaction(connection) {}
    };
    auto lock = std::make_shared<Lock>(m_config.dsn);
    lock->transaction.exec("LOCK TABLE " + quoted(table) + " IN ACCESS EXCLUSIVE MODE");
    return lock;
  }

  // The schema and every row of every relation, with each row's address (ctid) and the
  // transaction that wrote it (xmin): an UPDATE that rewrote the same values changes both.
  std::string snapshot() override {
    create_pending();
    pqxx::nontransaction query(m_connection);
    std::string bytes;
    const auto dump = [&](const std::string& sql) {
      for (const pqxx::row& row : query.exec(sql)) {
        for (const pqxx::field& field : row)
          bytes += (field.is_null() ? std::string{"NULL"} : field.as<std::string>()) + '\t';
        bytes += '\n';
      }
    };
    for (const pqxx::row& relation :
         query.exec("SELECT c.oid::text, c.relname::text, c.relkind::text FROM pg_class AS c "
                    "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                    "ORDER BY c.relname")) {
      const std::string oid = relation[0].as<std::string>();
      const std::string name = relation[1].as<std::string>();
      bytes += "relation " + name + " " + relation[2].as<std::string>() + '\n';
      dump("SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
           "WHERE attrelid = " +
           oid + " AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
      dump("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = " + oid +
           " ORDER BY conname");
      dump("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = " + oid +
           " ORDER BY 1");
      if (relation[2].as<std::string>() == "r")
        dump("SELECT ctid, xmin, t::text FROM " + quoted(name) + " AS t ORDER BY ctid");
    }
    return bytes;
  }

  // Runs a statement of the test's own (PostgreSQL-only clauses).
  void exec(const std::string& sql) const {
    create_pending();
    pqxx::nontransaction statement(m_connection);
    statement.exec(sql);
  }

  const std::string& database() const { return m_database; }

private:
  static std::optional<std::string> text_of(const Cell& cell) {
    return std::visit(
        [](const auto& value) -> std::optional<std::string> {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>)
            return std::nullopt;
          else if constexpr (std::is_same_v<T, std::string>)
            return value;
          else
            return fmt::format("{}", value);
        },
        cell);
  }

  // Creates `table`, typing each column by the values `rows` hold for it (given for `names`).
  void create(const std::string& table, const std::vector<Column>& columns,
              const std::vector<std::string>& names,
              const std::vector<std::vector<Cell>>& rows) const {
    std::string sql = "CREATE TABLE " + quoted(table) + "(";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      bool text = false;
      bool fraction = false;
      const auto at = std::find(names.begin(), names.end(), columns[i].name);
      for (const auto& row : rows) {
        if (at == names.end())
          break;
        const Cell& cell = row.at(static_cast<std::size_t>(at - names.begin()));
        text = text || std::holds_alternative<std::string>(cell);
        fraction = fraction || std::holds_alternative<double>(cell);
      }
      std::string type;
      switch (columns[i].type) {
      case ColumnType::key: type = "bigint PRIMARY KEY"; break;
      case ColumnType::integer: type = text ? "text" : fraction ? "numeric" : "bigint"; break;
      case ColumnType::real: type = text ? "text" : "double precision"; break;
      case ColumnType::text: type = "text"; break;
      }
      sql += (i == 0 ? "" : ", ") + quoted(columns[i].name) + " " + type +
             (columns[i].not_null ? " NOT NULL" : "");
    }
    pqxx::nontransaction statement(m_connection);
    statement.exec(sql + ")");
  }

  void create_pending() const {
    for (const auto& [table, columns] : m_pending)
      create(table, columns, {}, {});
    m_pending.clear();
  }

  std::string m_database;
  // Mutable: config() creates the pending tables, since the adapter is about to open them.
  mutable pqxx::connection m_connection;
  mutable std::map<std::string, std::vector<Column>> m_pending;
  DatastoreConfig m_config;
};

std::unique_ptr<Datastore> open_postgres(const DatastoreConfig& config, OpenMode mode) {
  return adapters::postgres::open_postgres_datastore(
      config, mode, adapters::AdapterSecrets{std::string{k_contract_hmac_key}});
}

// Every backend the contract runs against.
std::vector<ContractTarget> contract_targets() {
  return {
      {"sqlite",
       [](const DatastoreConfig& config, OpenMode mode) {
         return adapters::sqlite::open_sqlite_datastore(
             config, mode, adapters::AdapterSecrets{std::string{k_contract_hmac_key}});
       },
       [] { return std::make_unique<SqliteFixture>(); }},
      {"postgres", &open_postgres, [] { return std::make_unique<PostgresFixture>(); }},
  };
}

// Runs one contract clause against every backend.
void for_each_target(const std::function<void(const ContractTarget&)>& clause) {
  for (const ContractTarget& target : contract_targets()) {
    CAPTURE(target.name);
    clause(target);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared fixtures

// Usable before doctest runs (static initialisation): throws instead of failing a check.
Instant at(std::string_view text) {
  auto instant = parse_iso8601(text);
  if (!instant)
    throw std::invalid_argument(instant.error());
  return *instant;
}

// Every clause judges rows against this cutoff, seen from this moment.
const Instant k_cutoff = at("2024-06-01T12:00:00Z");
const Instant k_now = at("2024-07-01T12:00:00Z");
const std::int64_t k_cutoff_s = to_unix_seconds(k_cutoff);
const std::int64_t k_cutoff_ms = to_unix_millis(k_cutoff);
const std::int64_t k_now_s = to_unix_seconds(k_now);
const std::int64_t k_now_ms = to_unix_millis(k_now);
constexpr std::int64_t k_day_s = 86'400;

// A delete rule on `table`; its id is the table's name unless given.
// A files datastore named "media" over `root`, for rules with files = { "media", PATH }.
std::unique_ptr<Datastore> open_media(const std::filesystem::path& root) {
  DatastoreConfig media;
  media.name = "media";
  media.type = "files";
  media.root = root;
  return adapters::files::open_files_datastore(media, OpenMode::read_write, {});
}

Rule make_rule(const std::string& table, const std::string& age_column, AgeFormat format,
               const std::string& id = "") {
  Rule rule;
  rule.id = id.empty() ? table : id;
  rule.description = "contract";
  rule.policy = "contract";
  rule.datastore = "contract";
  rule.table = table;
  rule.age_column = age_column;
  rule.age_format = format;
  rule.retain = Retention{false, 30, CalendarUnit::days};
  rule.action = Action::delete_rows;
  return rule;
}

Selection select_for(const Rule& rule, std::vector<std::string> held = {}) {
  return Selection{rule, k_cutoff, k_now, std::move(held)};
}

// The selection of a later run of the rule: a new cutoff, so a new walk through the table.
Selection select_later(const Rule& rule) {
  return Selection{
      rule, k_cutoff + std::chrono::milliseconds{1}, k_now + std::chrono::milliseconds{1}, {}};
}

// The first column (the id) of every row left in `table`.
std::vector<std::int64_t> ids_of(FixtureBuilder& fixture, const std::string& table,
                                 const std::string& id = "id") {
  std::vector<std::int64_t> ids;
  for (const TextRow& row : fixture.select(table, {id}))
    ids.push_back(std::stoll(row.at(0).value()));
  return ids;
}

// Runs batches of `limit` until begin_batch has covered the table, committing each; returns
// the rows and cascade children they changed. A batch may change nothing (a slice without due
// rows); once one says it is exhausted, the next call returns nullptr.
std::pair<std::int64_t, std::int64_t> drain(Datastore& store, const Selection& selection,
                                            std::int64_t limit = 1000) {
  std::int64_t rows = 0;
  std::int64_t children = 0;
  bool exhausted = false;
  for (int guard = 0; guard < 1000; ++guard) {
    auto batch = store.begin_batch(selection, limit);
    if (!batch)
      return {rows, children};
    CHECK_FALSE(exhausted);
    CHECK(batch->rows() >= 0);
    CHECK(batch->rows() <= limit);
    rows += batch->rows();
    children += batch->children();
    exhausted = batch->exhausted();
    batch->commit();
  }
  FAIL("begin_batch never ran out of rows");
  return {rows, children};
}

void check_counts(const RuleCounts& counts, const RuleCounts& expected) {
  CHECK(counts.table_rows == expected.table_rows);
  CHECK(counts.total == expected.total);
  CHECK(counts.due == expected.due);
  CHECK(counts.held == expected.held);
  CHECK(counts.undated == expected.undated);
  CHECK(counts.unreadable == expected.unreadable);
  CHECK(counts.future == expected.future);
  CHECK(counts.wrong_scale == expected.wrong_scale);
  CHECK(counts.refused == 0);
  CHECK(counts.oldest_due == expected.oldest_due);
}

RuleCounts expect(std::int64_t table_rows, std::int64_t total, std::int64_t due, std::int64_t held,
                  std::int64_t undated, std::int64_t unreadable, std::int64_t future,
                  std::int64_t wrong_scale, std::optional<Instant> oldest_due) {
  RuleCounts counts;
  counts.table_rows = table_rows;
  counts.total = total;
  counts.due = due;
  counts.held = held;
  counts.undated = undated;
  counts.unreadable = unreadable;
  counts.future = future;
  counts.wrong_scale = wrong_scale;
  counts.oldest_due = oldest_due;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Clauses

void counts_unix_seconds(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  const std::int64_t oldest = k_cutoff_s - 3650 * k_day_s;
  fixture->insert("logs", {"id", "at"},
                  {
                      {std::int64_t{1}, k_cutoff_s - k_day_s},                     // due
                      {std::int64_t{2}, k_cutoff_s},                               // equal: not due
                      {std::int64_t{3}, k_cutoff_s - 1},                           // due
                      {std::int64_t{4}, static_cast<double>(k_cutoff_s) - 0.001},  // 1 ms older
                      {std::int64_t{5}, static_cast<double>(k_cutoff_s) + 0.001},  // 1 ms younger
                      {std::int64_t{6}, nullptr},                                  // undated
                      {std::int64_t{7}, std::string{"n/a"}},                       // unreadable
                      {std::int64_t{8}, std::string{"2024-05-01"}},                // unreadable
                      {std::int64_t{9}, k_now_s + 3600},                           // future
                      {std::int64_t{10}, oldest},                                  // due, oldest
                  });
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  check_counts(store->count(select_for(rule)),
               expect(10, 10, 4, 0, 1, 2, 1, 0, from_unix_seconds(oldest)));

  CHECK(drain(*store, select_for(rule)) == std::pair<std::int64_t, std::int64_t>{4, 0});
  CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{2, 5, 6, 7, 8, 9});
  check_counts(store->count(select_for(rule)), expect(6, 6, 0, 0, 1, 2, 1, 0, std::nullopt));
}

void counts_unix_millis(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  const std::int64_t oldest = k_cutoff_ms - 400 * k_day_s * 1000;
  fixture->insert("logs", {"id", "at"},
                  {
                      {std::int64_t{1}, k_cutoff_ms - 1},      // one millisecond older: due
                      {std::int64_t{2}, k_cutoff_ms},          // equal: not due
                      {std::int64_t{3}, k_cutoff_ms + 1},      // younger
                      {std::int64_t{4}, nullptr},              // undated
                      {std::int64_t{5}, std::string{"n/a"}},   // unreadable
                      {std::int64_t{6}, k_now_ms + 1000},      // future
                      {std::int64_t{7}, oldest},               // due, oldest
                      {std::int64_t{8}, std::string{"soon"}},  // unreadable
                  });
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_millis);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  check_counts(store->count(select_for(rule)),
               expect(8, 8, 2, 0, 1, 2, 1, 0, from_unix_millis(oldest)));

  CHECK(drain(*store, select_for(rule)).first == 2);
  CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{2, 3, 4, 5, 6, 8});
}

// Most rows due, with an index on the anchor: a census may count the rows not due and subtract
// (the SQLite adapter does). Every kind of anchor must still land in its own count.
void counts_mostly_due(const ContractTarget& target) {
  auto fixture = target.fixture();
  std::vector<std::vector<Cell>> seconds;
  std::vector<std::vector<Cell>> millis;
  for (std::int64_t id = 1; id <= 30; ++id) {
    seconds.push_back({id, k_cutoff_s - id * k_day_s});
    millis.push_back({id, k_cutoff_ms - id * k_day_s * 1000});
  }
  const std::vector<std::vector<Cell>> other_seconds{
      {std::int64_t{31}, k_cutoff_s},                               // equal: not due
      {std::int64_t{32}, static_cast<double>(k_cutoff_s) + 0.001},  // younger
      {std::int64_t{33}, static_cast<double>(k_cutoff_s) - 0.001},  // due
      {std::int64_t{34}, nullptr},                                  // undated
      {std::int64_t{35}, std::string{"n/a"}},                       // unreadable
      {std::int64_t{36}, k_now_s + 3600},                           // future
      {std::int64_t{37}, k_cutoff_ms - 1000},                       // milliseconds: wrong scale
  };
  const std::vector<std::vector<Cell>> other_millis{
      {std::int64_t{31}, k_cutoff_ms},          // equal: not due
      {std::int64_t{32}, k_cutoff_ms + 1},      // younger
      {std::int64_t{33}, nullptr},              // undated
      {std::int64_t{34}, std::string{"soon"}},  // unreadable
      {std::int64_t{35}, k_now_ms + 1000},      // future
      {std::int64_t{36}, k_cutoff_s - 10},      // seconds: wrong scale
  };
  seconds.insert(seconds.end(), other_seconds.begin(), other_seconds.end());
  millis.insert(millis.end(), other_millis.begin(), other_millis.end());
  // Each table filled before the next is declared, and indexed after: a PostgreSQL fixture
  // chooses each column's type from the rows.
  fixture->create_table("seconds", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->insert("seconds", {"id", "at"}, seconds);
  fixture->create_table("millis", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->insert("millis", {"id", "at"}, millis);
  fixture->create_index("seconds", "at");
  fixture->create_index("millis", "at");
  auto store = target.open(fixture->config(), OpenMode::read_write);

  const Rule in_seconds = make_rule("seconds", "at", AgeFormat::unix_seconds);
  check_counts(store->count(select_for(in_seconds)),
               expect(37, 37, 31, 0, 1, 1, 1, 1, from_unix_seconds(k_cutoff_s - 30 * k_day_s)));
  const Rule in_millis = make_rule("millis", "at", AgeFormat::unix_millis);
  check_counts(
      store->count(select_for(in_millis)),
      expect(36, 36, 30, 0, 1, 1, 1, 1, from_unix_millis(k_cutoff_ms - 30 * k_day_s * 1000)));

  CHECK(drain(*store, select_for(in_seconds)).first == 31);
  CHECK(drain(*store, select_for(in_millis)).first == 30);
  CHECK(ids_of(*fixture, "seconds") == std::vector<std::int64_t>{31, 32, 34, 35, 36, 37});
  CHECK(ids_of(*fixture, "millis") == std::vector<std::int64_t>{31, 32, 33, 34, 35, 36});
}

void counts_iso8601(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::text}});
  std::vector<std::vector<Cell>> rows;
  const auto row = [&](std::int64_t id, Cell value) { rows.push_back({id, std::move(value)}); };
  using std::string;
  row(1, string{"2024-06-01T12:00:00Z"});           // equal: not due
  row(2, string{"2024-06-01T11:59:59.999Z"});       // one millisecond older: due
  row(3, string{"2024-06-01T14:00:00+02:00"});      // equal (offset): not due
  row(4, string{"2024-06-01T13:59:59.999+02:00"});  // due
  row(5, string{"2024-06-01 11:59:59"});            // space separator, no offset = UTC: due
  row(6, string{"2024-06-01 12:00:00"});            // equal: not due
  row(7, string{"2024-06-01T12:00:00.001Z"});       // younger
  row(8, string{"2024-06-01T09:59:59-02:00"});      // 11:59:59Z: due
  row(9, string{"2024-06-01T10:00:00-02:00"});      // equal: not due
  row(10, string{"2024-05-31"});                    // date only: due
  row(11, string{"2023-01-01T00:00:00Z"});          // due, oldest
  row(12, nullptr);                                 // undated
  row(13, string{"n/a"});                           // unreadable
  row(14, string{"2024-06-01T12:00"});              // no seconds, equal: not due
  row(15, string{"2024-13-01"});                    // no such month: unreadable
  row(16, std::int64_t{1'700'000'000});             // a number: unreadable
  row(17, 1'700'000'000.5);                         // a number: unreadable
  row(18, string{"2024-07-01T13:00:00Z"});          // future
  row(19, string{"2024-06-01T25:00:00Z"});          // no such hour: unreadable
  // A day before now, local time far behind UTC, space separator: 2024-07-01T13:59Z, future;
  // then 10:00Z, not.
  row(20, string{"2024-06-30 23:59:00-14:00"});
  row(21, string{"2024-06-30 22:00:00-12:00"});
  fixture->insert("logs", {"id", "at"}, rows);
  const Rule rule = make_rule("logs", "at", AgeFormat::iso8601);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  check_counts(store->count(select_for(rule)),
               expect(21, 21, 6, 0, 1, 5, 2, 0, at("2023-01-01T00:00:00Z")));

  CHECK(drain(*store, select_for(rule)).first == 6);
  CHECK(ids_of(*fixture, "logs") ==
        std::vector<std::int64_t>{1, 3, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21});
}

void impossible_days_are_unreadable(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::text}});
  using std::string;
  fixture->insert("logs", {"id", "at"},
                  {{std::int64_t{1}, string{"2024-02-30"}},
                   {std::int64_t{2}, string{"2023-02-29T10:00:00Z"}},
                   {std::int64_t{3}, string{"2024-04-31 08:00:00"}},
                   {std::int64_t{4}, string{"2024-02-29"}}});  // a leap day: due
  const Rule rule = make_rule("logs", "at", AgeFormat::iso8601);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const RuleCounts counts = store->count(select_for(rule));
  CHECK(counts.unreadable == 3);
  CHECK(counts.due == 1);
  CHECK(drain(*store, select_for(rule)).first == 1);
  CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{1, 2, 3});
}

void wrong_scale_is_counted_and_never_due(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("seconds", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->create_table("millis", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  // Milliseconds in a seconds column, and seconds in a milliseconds column.
  fixture->insert("seconds", {"id", "at"},
                  {{std::int64_t{1}, k_cutoff_ms - 1000}, {std::int64_t{2}, k_cutoff_s - 10}});
  fixture->insert("millis", {"id", "at"},
                  {{std::int64_t{1}, k_cutoff_s - 10}, {std::int64_t{2}, k_cutoff_ms - 1000}});
  auto store = target.open(fixture->config(), OpenMode::read_write);

  const Rule seconds = make_rule("seconds", "at", AgeFormat::unix_seconds);
  const RuleCounts in_seconds = store->count(select_for(seconds));
  CHECK(in_seconds.wrong_scale == 1);
  CHECK(in_seconds.due == 1);
  CHECK(in_seconds.unreadable == 0);
  CHECK(in_seconds.oldest_due == from_unix_seconds(k_cutoff_s - 10));

  const Rule millis = make_rule("millis", "at", AgeFormat::unix_millis);
  const RuleCounts in_millis = store->count(select_for(millis));
  CHECK(in_millis.wrong_scale == 1);
  CHECK(in_millis.due == 1);
  CHECK(in_millis.unreadable == 0);

  // Only the correctly scaled row of each table is ever changed.
  CHECK(drain(*store, select_for(seconds)).first == 1);
  CHECK(drain(*store, select_for(millis)).first == 1);
  CHECK(ids_of(*fixture, "seconds") == std::vector<std::int64_t>{1});
  CHECK(ids_of(*fixture, "millis") == std::vector<std::int64_t>{1});
}

void microseconds_in_milliseconds_are_a_wrong_scale(const ContractTarget& target) {
  // Microseconds in a milliseconds column would read as year 50000: counted as future, they
  // would never expire and nothing would say so. Mostly due rows and an index: the census
  // counts due rows as the numbers less those not due.
  for (const bool indexed : {false, true}) {
    CAPTURE(indexed);
    auto fixture = target.fixture();
    fixture->create_table("millis", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
    if (indexed)
      fixture->create_index("millis", "at");
    std::vector<std::vector<Cell>> rows;
    for (std::int64_t id = 1; id <= 20; ++id)
      rows.push_back({id, k_cutoff_ms - id * 1000});
    rows.push_back({std::int64_t{21}, k_cutoff_ms * 1000});  // microseconds
    rows.push_back({std::int64_t{22}, k_cutoff_s - 10});     // seconds
    fixture->insert("millis", {"id", "at"}, rows);
    auto store = target.open(fixture->config(), OpenMode::read_write);
    const Rule rule = make_rule("millis", "at", AgeFormat::unix_millis);
    const RuleCounts counts = store->count(select_for(rule));
    CHECK(counts.wrong_scale == 2);
    CHECK(counts.due == 20);
    CHECK(counts.future == 0);
    CHECK(drain(*store, select_for(rule)).first == 20);
    CHECK(ids_of(*fixture, "millis") == std::vector<std::int64_t>{21, 22});
  }
}

void absurdly_old_anchors_stay_in_the_calendar(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("seconds", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->insert("seconds", {"id", "at"},
                  {{std::int64_t{1}, std::int64_t{-9'000'000'000'000'000'000}},
                   {std::int64_t{2}, k_cutoff_s - 10}});
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const RuleCounts counts =
      store->count(select_for(make_rule("seconds", "at", AgeFormat::unix_seconds)));
  CHECK(counts.due == 2);
  // Held to year 1, not wrapped around into year 10850.
  CHECK(counts.oldest_due == parse_iso8601("0001-01-01T00:00:00Z").value());
}

void wrong_scale_is_not_counted_as_future(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("seconds", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->insert("seconds", {"id", "at"}, {{std::int64_t{1}, k_cutoff_ms - 1000}});
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const RuleCounts counts =
      store->count(select_for(make_rule("seconds", "at", AgeFormat::unix_seconds)));
  CHECK(counts.wrong_scale == 1);
  // A millisecond value read as seconds is tens of thousands of years ahead; it is a wrong
  // scale, not a date in the future, and the report should not show it twice.
  CHECK(counts.future == 0);
}

void match_filters(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("videos", {{"id", ColumnType::key},
                                   {"at", ColumnType::integer},
                                   {"status", ColumnType::text},
                                   {"kind", ColumnType::integer},
                                   {"public", ColumnType::integer}});
  const std::int64_t old = k_cutoff_s - 10 * k_day_s;
  const std::int64_t young = k_cutoff_s + k_day_s;
  using std::string;
  fixture->insert("videos", {"id", "at", "status", "kind", "public"},
                  {
                      {std::int64_t{1}, old, string{"rejected"}, std::int64_t{2}, std::int64_t{1}},
                      {std::int64_t{2}, old, string{"spam"}, std::int64_t{2}, std::int64_t{1}},
                      {std::int64_t{3}, old, string{"approved"}, std::int64_t{2}, std::int64_t{1}},
                      {std::int64_t{4}, old, string{"rejected"}, std::int64_t{3}, std::int64_t{1}},
                      {std::int64_t{5}, old, string{"rejected"}, std::int64_t{2}, std::int64_t{0}},
                      {std::int64_t{6}, old, nullptr, std::int64_t{2}, std::int64_t{1}},
                      {std::int64_t{7}, young, string{"spam"}, std::int64_t{2}, std::int64_t{1}},
                      {std::int64_t{8}, old, string{"Rejected"}, std::int64_t{2}, std::int64_t{1}},
                  });
  Rule rule = make_rule("videos", "at", AgeFormat::unix_seconds);
  rule.match = {
      {"status", {MatchValue{string{"rejected"}}, MatchValue{string{"spam"}}}},  // IN
      {"kind", {MatchValue{std::int64_t{2}}}},                                   // = integer
      {"public", {MatchValue{true}}},                                            // = boolean
  };
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const RuleCounts counts = store->count(select_for(rule));
  CHECK(counts.table_rows == 8);
  CHECK(counts.total == 3);
  CHECK(counts.due == 2);
  CHECK(drain(*store, select_for(rule)).first == 2);
  CHECK(ids_of(*fixture, "videos") == std::vector<std::int64_t>{3, 4, 5, 6, 7, 8});

  SUBCASE("a single string value and a false boolean") {
    Rule other = make_rule("videos", "at", AgeFormat::unix_seconds, "private_rejected_videos");
    other.match = {{"status", {MatchValue{string{"rejected"}}}}, {"public", {MatchValue{false}}}};
    CHECK(store->count(select_for(other)).due == 1);
    CHECK(drain(*store, select_for(other)).first == 1);
    CHECK(ids_of(*fixture, "videos") == std::vector<std::int64_t>{3, 4, 6, 7, 8});
  }
}

void parent_anchor(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("events", {{"id", ColumnType::key}, {"ended_at", ColumnType::integer}});
  fixture->create_table(
      "event_logs",
      {{"id", ColumnType::key}, {"event_id", ColumnType::integer}, {"ip", ColumnType::text}});
  fixture->insert("events", {"id", "ended_at"},
                  {{std::int64_t{1}, k_cutoff_s - 5 * k_day_s},  // old: its logs are due
                   {std::int64_t{2}, k_cutoff_s + k_day_s},      // young
                   {std::int64_t{3}, nullptr},                   // still running
                   {std::int64_t{4}, k_cutoff_s}});              // ended exactly at the cutoff
  const std::string ip = "192.0.2.1";
  fixture->insert("event_logs", {"id", "event_id", "ip"},
                  {{std::int64_t{1}, std::int64_t{1}, ip},
                   {std::int64_t{2}, std::int64_t{1}, ip},
                   {std::int64_t{3}, std::int64_t{2}, ip},
                   {std::int64_t{4}, std::int64_t{3}, ip},
                   {std::int64_t{5}, std::int64_t{99}, ip},  // no such event
                   {std::int64_t{6}, nullptr, ip},
                   {std::int64_t{7}, std::int64_t{4}, ip}});
  Rule rule = make_rule("event_logs", "", AgeFormat::unix_seconds);
  rule.age_from = ParentAnchor{"events", "ended_at", "id", "event_id"};
  auto store = target.open(fixture->config(), OpenMode::read_write);
  check_counts(store->count(select_for(rule)),
               expect(7, 7, 2, 0, 3, 0, 0, 0, from_unix_seconds(k_cutoff_s - 5 * k_day_s)));
  CHECK(drain(*store, select_for(rule)).first == 2);
  CHECK(ids_of(*fixture, "event_logs") == std::vector<std::int64_t>{3, 4, 5, 6, 7});
  CHECK(ids_of(*fixture, "events") == std::vector<std::int64_t>{1, 2, 3, 4});
}

void batches_are_bounded_and_exact(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  std::vector<std::vector<Cell>> rows;
  for (std::int64_t id = 1; id <= 13; ++id)
    rows.push_back({id, id % 4 == 0 ? k_cutoff_s + id : k_cutoff_s - id});  // 4, 8, 12 young
  fixture->insert("logs", {"id", "at"}, rows);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const Selection selection = select_for(rule);
  REQUIRE(store->count(selection).due == 10);

  std::int64_t changed = 0;
  int batches = 0;
  bool exhausted = false;
  while (auto batch = store->begin_batch(selection, 4)) {
    CAPTURE(batches);
    CHECK_FALSE(exhausted);  // nothing comes after an exhausted batch
    CHECK(batch->rows() >= 0);
    CHECK(batch->rows() <= 4);
    CHECK(batch->children() == 0);
    changed += batch->rows();
    exhausted = batch->exhausted();
    batch->commit();
    REQUIRE(++batches <= 13);
  }
  CHECK(changed == 10);
  CHECK(batches >= 3);
  CHECK(exhausted);
  CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{4, 8, 12});
  CHECK(store->begin_batch(selection, 4) == nullptr);

  SUBCASE("a later run finds nothing more to change") {
    CHECK(drain(*store, select_later(rule), 4).first == 0);
    CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{4, 8, 12});
  }
  SUBCASE("with one row per batch") {
    CHECK(drain(*store, select_later(rule), 1).first == 0);
  }
}

void batches_on_sparse_work(const ContractTarget& target) {
  // Few due rows in a large indexed table: however the adapter finds them, the batches change
  // exactly those.
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->create_index("logs", "at");
  std::vector<std::vector<Cell>> rows;
  for (std::int64_t id = 1; id <= 500; ++id)
    rows.push_back({id, id % 100 == 7 ? k_cutoff_s - id : k_cutoff_s + id});
  fixture->insert("logs", {"id", "at"}, rows);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const Selection selection = select_for(rule);
  REQUIRE(store->count(selection).due == 5);
  CHECK(drain(*store, selection, 2).first == 5);
  CHECK(fixture->select("logs", {"id"}).size() == 495);
  const auto left = ids_of(*fixture, "logs");
  for (std::int64_t id : {7, 107, 207, 307, 407})
    CHECK(std::find(left.begin(), left.end(), id) == left.end());
}

void batches_over_sparse_keys(const ContractTarget& target) {
  // Keys far apart (ids that are timestamps or random 63-bit numbers): the number of batches
  // follows the number of rows, not the distance between the smallest and largest key.
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->insert("logs", {"id", "at"},
                  {{std::int64_t{1}, k_cutoff_s - 1},
                   {std::int64_t{2}, k_cutoff_s + 1},
                   {std::int64_t{1'700'000'000'000}, k_cutoff_s - 1},
                   {std::int64_t{4'000'000'000'000'000'000}, k_cutoff_s + 1}});
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  int batches = 0;
  std::int64_t changed = 0;
  while (auto batch = store->begin_batch(select_for(rule), 100)) {
    changed += batch->rows();
    batch->commit();
    if (++batches > 50)
      break;
  }
  CHECK(batches <= 50);
  CHECK(changed == 2);
}

// Accounts with two kinds of dependent rows; accounts 1 and 2 are due, 3 is not.
void build_accounts(FixtureBuilder& fixture) {
  fixture.create_table("accounts", {{"id", ColumnType::key}, {"seen", ColumnType::integer}});
  fixture.create_table("sessions", {{"id", ColumnType::key}, {"account_id", ColumnType::integer}});
  fixture.create_table("tickets", {{"id", ColumnType::key}, {"owner", ColumnType::integer}});
  fixture.insert("accounts", {"id", "seen"},
                 {{std::int64_t{1}, k_cutoff_s - 100},
                  {std::int64_t{2}, k_cutoff_s - 200},
                  {std::int64_t{3}, k_cutoff_s + 100}});
  fixture.insert("sessions", {"id", "account_id"},
                 {{std::int64_t{1}, std::int64_t{1}},
                  {std::int64_t{2}, std::int64_t{1}},
                  {std::int64_t{3}, std::int64_t{2}},
                  {std::int64_t{4}, std::int64_t{3}},
                  {std::int64_t{5}, nullptr}});
  fixture.insert("tickets", {"id", "owner"},
                 {{std::int64_t{1}, std::int64_t{2}}, {std::int64_t{2}, std::int64_t{3}}});
  fixture.forbid_orphans("accounts", "id", "sessions", "account_id");
  fixture.forbid_orphans("accounts", "id", "tickets", "owner");
}

Rule accounts_rule() {
  Rule rule = make_rule("accounts", "seen", AgeFormat::unix_seconds);
  rule.cascade = {{"sessions", "account_id", "id"}, {"tickets", "owner", "id"}};
  return rule;
}

void cascades_delete_children_first(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  const Rule rule = accounts_rule();
  auto store = target.open(fixture->config(), OpenMode::read_write);

  SUBCASE("one batch") {
    auto batch = store->begin_batch(select_for(rule), 10);
    REQUIRE(batch != nullptr);
    CHECK(batch->rows() == 2);
    CHECK(batch->children() == 4);  // sessions 1, 2, 3 and ticket 1
    batch->commit();
    CHECK(ids_of(*fixture, "accounts") == std::vector<std::int64_t>{3});
    CHECK(ids_of(*fixture, "sessions") == std::vector<std::int64_t>{4, 5});
    CHECK(ids_of(*fixture, "tickets") == std::vector<std::int64_t>{2});
  }
  SUBCASE("one parent per batch: only its own children go with it") {
    auto batch = store->begin_batch(select_for(rule), 1);
    REQUIRE(batch != nullptr);
    CHECK(batch->rows() == 1);
    const std::int64_t children = batch->children();
    batch->commit();
    const auto accounts = ids_of(*fixture, "accounts");
    REQUIRE(accounts.size() == 2);
    if (accounts == std::vector<std::int64_t>{2, 3}) {  // account 1 went
      CHECK(children == 2);
      CHECK(ids_of(*fixture, "sessions") == std::vector<std::int64_t>{3, 4, 5});
      CHECK(ids_of(*fixture, "tickets") == std::vector<std::int64_t>{1, 2});
    } else {
      CHECK(accounts == std::vector<std::int64_t>{1, 3});
      CHECK(children == 2);
      CHECK(ids_of(*fixture, "sessions") == std::vector<std::int64_t>{1, 2, 4, 5});
      CHECK(ids_of(*fixture, "tickets") == std::vector<std::int64_t>{2});
    }
    CHECK(drain(*store, select_for(rule)) == std::pair<std::int64_t, std::int64_t>{1, 2});
    CHECK(ids_of(*fixture, "sessions") == std::vector<std::int64_t>{4, 5});
  }
}

void holds_exclude_subjects(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("logs", {{"id", ColumnType::key},
                                 {"at", ColumnType::integer},
                                 {"user_id", ColumnType::integer},
                                 {"username", ColumnType::text}});
  const std::int64_t old = k_cutoff_s - k_day_s;
  using std::string;
  fixture->insert("logs", {"id", "at", "user_id", "username"},
                  {
                      {std::int64_t{1}, old, std::int64_t{7}, string{"alice"}},
                      {std::int64_t{2}, old, std::int64_t{8}, string{"bob"}},
                      {std::int64_t{3}, old, nullptr, nullptr},
                      {std::int64_t{4}, k_cutoff_s + 1, std::int64_t{7}, string{"alice"}},
                      {std::int64_t{5}, old, std::int64_t{70}, string{"alice2"}},
                      {std::int64_t{6}, old - 1, std::int64_t{7}, string{"7"}},
                  });
  auto store = target.open(fixture->config(), OpenMode::read_write);

  SUBCASE("integer subject column") {
    Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    rule.subject_column = "user_id";
    const Selection selection = select_for(rule, {"7"});
    const RuleCounts counts = store->count(selection);
    CHECK(counts.due == 3);   // 2, 3 (NULL subject) and 5
    CHECK(counts.held == 2);  // 1 and 6
    CHECK(counts.oldest_due == from_unix_seconds(old));
    CHECK(drain(*store, selection).first == 3);
    CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{1, 4, 6});
  }
  SUBCASE("text subject column") {
    Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    rule.subject_column = "username";
    const Selection selection = select_for(rule, {"alice", "bob"});
    const RuleCounts counts = store->count(selection);
    CHECK(counts.due == 3);   // 3 (NULL subject), 5 and 6
    CHECK(counts.held == 2);  // 1 and 2
    CHECK(drain(*store, selection).first == 3);
    CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{1, 2, 4});
  }
  SUBCASE("held rows among the rows a match filter selects") {
    Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    rule.subject_column = "user_id";
    rule.match = {
        {"username",
         {MatchValue{string{"alice"}}, MatchValue{string{"bob"}}, MatchValue{string{"7"}}}}};
    const Selection selection = select_for(rule, {"7"});
    const RuleCounts counts = store->count(selection);
    CHECK(counts.total == 4);  // 1, 2, 4 and 6
    CHECK(counts.due == 1);    // 2
    CHECK(counts.held == 2);   // 1 and 6
    CHECK(drain(*store, selection).first == 1);
    CHECK(ids_of(*fixture, "logs") == std::vector<std::int64_t>{1, 3, 4, 5, 6});
  }
  SUBCASE("a held value that looks like SQL is only a value") {
    Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    rule.subject_column = "username";
    const Selection selection = select_for(rule, {"x') OR 1=1 --", "\"]"});
    CHECK(store->count(selection).held == 0);
    CHECK(store->count(selection).due == 5);
  }
}

// People with every mask; rows 1-4 are due, 5 is not.
void build_people(FixtureBuilder& fixture) {
  fixture.create_table("people", {{"id", ColumnType::key},
                                  {"seen", ColumnType::integer},
                                  {"email", ColumnType::text},
                                  {"ip", ColumnType::text},
                                  {"name", ColumnType::text},
                                  {"phone", ColumnType::text},
                                  {"born", ColumnType::text},
                                  {"anonymized_at", ColumnType::integer}});
  const std::int64_t old = k_cutoff_s - k_day_s;
  using std::string;
  fixture.insert(
      "people", {"id", "seen", "email", "ip", "name", "phone", "born"},
      {
          {std::int64_t{1}, old, string{"ann@example.com"}, string{"192.0.2.77"}, string{"Ann"},
           string{"+1 555 0100"}, string{"1985-06-15"}},
          {std::int64_t{2}, old, nullptr, string{"2001:db8:abcd:1234::1"}, nullptr, nullptr,
           string{"0985-01-01"}},
          {std::int64_t{3}, old, string{"bob@example.com"}, string{"not-an-ip"}, string{"Bob"},
           string{""}, string{"1999-12-31T23:00:00Z"}},
          {std::int64_t{4}, old, string{"ann@example.com"}, nullptr, string{"Ann"}, string{"0"},
           string{"1985-13-45"}},  // no such date: no year
          {std::int64_t{5}, k_cutoff_s + 1, string{"young@example.com"}, string{"198.51.100.9"},
           string{"Young"}, string{"+1 555 0199"}, string{"2001-01-01"}},
      });
}

void set_masks(Rule& rule) {
  rule.action = Action::anonymize;
  rule.masks = {{"email", Mask::hmac},
                {"ip", Mask::ip_prefix},
                {"name", Mask::null},
                {"phone", Mask::redact},
                {"born", Mask::year}};
}

void anonymize_masks(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_people(*fixture);
  Rule rule = make_rule("people", "seen", AgeFormat::unix_seconds);
  set_masks(rule);
  rule.anonymized_column = "anonymized_at";
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const auto before_young = fixture
                                ->select("people", {"id", "seen", "email", "ip", "name", "phone",
                                                    "born", "anonymized_at"})
                                .back();

  CHECK(drain(*store, select_for(rule)).first == 4);

  const std::string key{k_contract_hmac_key};
  const std::string ann = hmac_sha256_hex(key, "ann@example.com");
  const std::string bob = hmac_sha256_hex(key, "bob@example.com");
  const std::string old = std::to_string(k_cutoff_s - k_day_s);
  const std::string done = std::to_string(k_now_s);
  using Text = std::optional<std::string>;
  const auto rows = fixture->select(
      "people", {"id", "seen", "email", "ip", "name", "phone", "born", "anonymized_at"});
  REQUIRE(rows.size() == 5);
  CHECK(rows[0] == TextRow{"1", old, ann, "192.0.2.0", Text{}, "[redacted]", "1985", done});
  CHECK(rows[1] == TextRow{"2", old, Text{}, "2001:db8:abcd::", Text{}, Text{}, "0985", done});
  CHECK(rows[2] == TextRow{"3", old, bob, Text{}, Text{}, "[redacted]", "1999", done});
  CHECK(rows[3] == TextRow{"4", old, ann, Text{}, Text{}, "[redacted]", Text{}, done});
  CHECK(rows[4] == before_young);
  CHECK(ann.size() == 64);

  // Anonymized rows never match again.
  const RuleCounts after = store->count(select_later(rule));
  CHECK(after.due == 0);
  CHECK(after.total == 1);  // the young row
  const auto anonymized = fixture->select("people", {"id", "email", "anonymized_at"});
  CHECK(drain(*store, select_later(rule)).first == 0);
  CHECK(fixture->select("people", {"id", "email", "anonymized_at"}) == anonymized);
}

void anonymize_without_marker_clears_the_anchor(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_people(*fixture);
  Rule rule = make_rule("people", "seen", AgeFormat::unix_seconds);
  set_masks(rule);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  CHECK(drain(*store, select_for(rule)).first == 4);

  const auto rows = fixture->select("people", {"id", "seen", "anonymized_at", "name"});
  REQUIRE(rows.size() == 5);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(rows[i][1] == std::nullopt);  // the anchor is cleared ...
    CHECK(rows[i][2] == std::nullopt);  // ... and nothing else marks the row
    CHECK(rows[i][3] == std::nullopt);
  }
  CHECK(rows[4][1] == std::to_string(k_cutoff_s + 1));
  const RuleCounts after = store->count(select_later(rule));
  CHECK(after.due == 0);
  CHECK(after.undated == 4);
  CHECK(drain(*store, select_later(rule)).first == 0);
}

void anonymize_with_cascade(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  fixture->create_table("profiles", {{"id", ColumnType::key},
                                     {"account_id", ColumnType::integer},
                                     {"seen", ColumnType::integer},
                                     {"email", ColumnType::text},
                                     {"anonymized_at", ColumnType::integer}});
  fixture->insert("profiles", {"id", "account_id", "seen", "email"},
                  {{std::int64_t{1}, std::int64_t{1}, k_cutoff_s - 1, std::string{"a@x.org"}},
                   {std::int64_t{2}, std::int64_t{3}, k_cutoff_s + 1, std::string{"c@x.org"}}});
  Rule rule = make_rule("profiles", "seen", AgeFormat::unix_seconds);
  rule.action = Action::anonymize;
  rule.masks = {{"email", Mask::hmac}};
  rule.anonymized_column = "anonymized_at";
  rule.cascade = {{"sessions", "account_id", "account_id"}};
  auto store = target.open(fixture->config(), OpenMode::read_write);
  CHECK(drain(*store, select_for(rule)) == std::pair<std::int64_t, std::int64_t>{1, 2});
  CHECK(ids_of(*fixture, "sessions") == std::vector<std::int64_t>{3, 4, 5});
  CHECK(ids_of(*fixture, "profiles") == std::vector<std::int64_t>{1, 2});
}

// What a process that died between a batch's audit entry and its commit leaves the next run
// to ask: the rule's last batch that committed reads as committed, a later one that rolled
// back as not (Datastore::batch_committed).
void tokens_tell_which_batches_committed(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  const Rule rule = accounts_rule();
  auto store = target.open(fixture->config(), OpenMode::read_write);
  std::string committed;
  {
    auto batch = store->begin_batch(select_for(rule), 1);
    REQUIRE(batch != nullptr);
    REQUIRE(batch->rows() == 1);
    committed = batch->token();
    batch->commit();
  }
  std::string rolled_back;
  {
    auto batch = store->begin_batch(select_for(rule), 1);
    REQUIRE(batch != nullptr);
    REQUIRE(batch->rows() == 1);
    rolled_back = batch->token();
  }
  CHECK_FALSE(committed.empty());
  CHECK(rolled_back != committed);
  CHECK(store->batch_committed(rule, committed) == true);
  CHECK(store->batch_committed(rule, rolled_back) == false);
  // Not a token of this adapter's (the rule's datastore was another kind): nothing to tell.
  CHECK(store->batch_committed(rule, "a token of another kind") == std::nullopt);
}

void uncommitted_batches_roll_back(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  build_people(*fixture);
  const auto contents = [&] {
    return std::vector{fixture->select("accounts", {"id", "seen"}),
                       fixture->select("sessions", {"id", "account_id"}),
                       fixture->select("tickets", {"id", "owner"}),
                       fixture->select("people", {"id", "seen", "email", "ip", "name", "phone",
                                                  "born", "anonymized_at"})};
  };
  const auto before = contents();
  auto store = target.open(fixture->config(), OpenMode::read_write);

  SUBCASE("delete with cascade") {
    {
      auto batch = store->begin_batch(select_for(accounts_rule()), 10);
      REQUIRE(batch != nullptr);
      CHECK(batch->rows() == 2);
    }
    CHECK(contents() == before);
    CHECK(store->count(select_for(accounts_rule())).due == 2);
    // The store is usable again afterwards: the next run changes the rows.
    const Rule rule = accounts_rule();
    CHECK(drain(*store, select_later(rule)) == std::pair<std::int64_t, std::int64_t>{2, 4});
    CHECK(ids_of(*fixture, "accounts") == std::vector<std::int64_t>{3});
  }
  SUBCASE("anonymize") {
    Rule rule = make_rule("people", "seen", AgeFormat::unix_seconds);
    set_masks(rule);
    rule.anonymized_column = "anonymized_at";
    {
      auto batch = store->begin_batch(select_for(rule), 10);
      REQUIRE(batch != nullptr);
      CHECK(batch->rows() == 4);
    }
    CHECK(contents() == before);
    CHECK(store->count(select_for(rule)).due == 4);
  }
}

void anchors_by_bucket(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table("seconds", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->create_table("iso", {{"id", ColumnType::key}, {"at", ColumnType::text}});
  const auto buckets = std::vector<std::vector<Cell>>{
      {std::int64_t{1}, k_cutoff_s - 10 * k_day_s},  // [0] before cutoff - 5 days
      {std::int64_t{2}, k_cutoff_s - 1},             // [1] [cutoff - 5 days, cutoff)
      {std::int64_t{3}, k_cutoff_s},                 // [2] [cutoff, now)
      {std::int64_t{4}, k_cutoff_s + 5 * k_day_s},   // [2]
      {std::int64_t{5}, nullptr},                    // not counted
      {std::int64_t{6}, std::string{"n/a"}},         // not counted
      {std::int64_t{7}, k_now_s + 3600},             // [3] at or after now
      {std::int64_t{8}, k_now_s},                    // [3]
  };
  fixture->insert("seconds", {"id", "at"}, buckets);
  using std::string;
  fixture->insert("iso", {"id", "at"},
                  {{std::int64_t{1}, string{"2024-05-01T00:00:00Z"}},
                   {std::int64_t{2}, string{"2024-06-01T13:59:59+02:00"}},
                   {std::int64_t{3}, string{"2024-06-01 12:00:00"}},
                   {std::int64_t{4}, string{"2024-06-01T13:00:00+02:00"}},  // 11:00Z: [1]
                   {std::int64_t{5}, nullptr},
                   {std::int64_t{6}, string{"2024-02-31x"}},
                   {std::int64_t{7}, string{"2024-07-01T12:00:00Z"}}});
  const std::vector<Instant> edges{k_cutoff - std::chrono::days{5}, k_cutoff, k_now};
  auto store = target.open(fixture->config(), OpenMode::read_only);
  CHECK(store->count_by_anchor(select_for(make_rule("seconds", "at", AgeFormat::unix_seconds)),
                               edges) == std::vector<std::int64_t>{1, 1, 2, 2});
  CHECK(store->count_by_anchor(select_for(make_rule("iso", "at", AgeFormat::iso8601)), edges) ==
        std::vector<std::int64_t>{1, 2, 1, 1});
  CHECK(store->count_by_anchor(select_for(make_rule("iso", "at", AgeFormat::iso8601)), {}) ==
        std::vector<std::int64_t>{5});
}

void schema_checks(const ContractTarget& target) {
  auto fixture = target.fixture();
  fixture->create_table(
      "logs",
      {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"user_id", ColumnType::integer}});
  fixture->create_table("indexed", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture->create_index("indexed", "at");
  auto store = target.open(fixture->config(), OpenMode::read_write);
  const auto contains = [](const std::vector<std::string>& messages, const std::string& part) {
    return std::any_of(messages.begin(), messages.end(),
                       [&](const std::string& m) { return m.find(part) != std::string::npos; });
  };

  SUBCASE("missing table") {
    const auto check = store->check_schema(make_rule("nope", "at", AgeFormat::unix_seconds));
    REQUIRE(check.errors.size() == 1);
    CHECK(check.errors.front().find("'nope'") != std::string::npos);
    CHECK(check.errors.front().find("does not exist") != std::string::npos);
  }
  SUBCASE("missing anchor, match, subject and parent columns") {
    Rule rule = make_rule("logs", "created", AgeFormat::unix_seconds);
    rule.match = {{"status", {MatchValue{std::string{"x"}}}}};
    rule.subject_column = "account";
    const auto check = store->check_schema(rule);
    CHECK(check.errors.size() == 3);
    // The table's columns are the way out: a misspelling is the likely cause.
    CHECK(contains(check.errors, "table 'logs' has no column 'created' (it has id, at, user_id)"));
    CHECK(contains(check.errors, "no column 'status'"));
    CHECK(contains(check.errors, "no column 'account'"));

    Rule child = make_rule("logs", "", AgeFormat::unix_seconds);
    child.age_from = ParentAnchor{"indexed", "ended_at", "id", "event_id"};
    const auto parent = store->check_schema(child);
    CHECK(contains(parent.errors, "no column 'ended_at'"));
    CHECK(contains(parent.errors, "no column 'event_id'"));
  }
  SUBCASE("missing cascade table") {
    Rule rule = make_rule("indexed", "at", AgeFormat::unix_seconds);
    rule.cascade = {{"children", "parent_id", "id"}};
    const auto check = store->check_schema(rule);
    CHECK(contains(check.errors, "'children'"));
  }
  SUBCASE("no index on the anchor is a warning, not an error") {
    const auto check = store->check_schema(make_rule("logs", "at", AgeFormat::unix_seconds));
    CHECK(check.errors.empty());
    REQUIRE(check.warnings.size() == 1);
    CHECK(check.warnings.front().find("logs.at") != std::string::npos);
  }
  SUBCASE("an indexed anchor passes cleanly") {
    const auto check = store->check_schema(make_rule("indexed", "at", AgeFormat::unix_seconds));
    CHECK(check.errors.empty());
    CHECK(check.warnings.empty());
  }
  SUBCASE("a cascade key or a parent key that is not unique is an error") {
    fixture->create_table(
        "parents",
        {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"code", ColumnType::integer}});
    fixture->create_index("parents", "at");
    fixture->create_table("kids", {{"id", ColumnType::key}, {"parent_code", ColumnType::integer}});
    fixture->create_index("kids", "parent_code");
    Rule cascade = make_rule("parents", "at", AgeFormat::unix_seconds);
    cascade.cascade = {{"kids", "parent_code", "code"}};
    Rule child = make_rule("kids", "", AgeFormat::unix_seconds);
    child.age_from = ParentAnchor{"parents", "at", "code", "parent_code"};
    const std::vector<std::string> cascade_error{
        "cascade key parents.code (of kids) is not unique: rows sharing a value would share "
        "children, which could go with another row; make it the primary key or add a unique "
        "index on it (CREATE UNIQUE INDEX ON parents(code))"};
    const std::vector<std::string> parent_error{
        "age_from key parents.code is not unique: a row could have several parents and several "
        "ages; make it the primary key or add a unique index on it (CREATE UNIQUE INDEX ON "
        "parents(code))"};
    CHECK(store->check_schema(cascade).errors == cascade_error);
    CHECK(store->check_schema(child).errors == parent_error);
    fixture->create_index("parents", "code");                  // an index, not unique
    fixture->create_index("parents", "code", "UNIQUE WHERE");  // unique for some rows only
    CHECK(store->check_schema(cascade).errors == cascade_error);
    CHECK(store->check_schema(child).errors == parent_error);
    fixture->create_index("parents", "code", "UNIQUE");
    CHECK(store->check_schema(cascade).errors.empty());
    CHECK(store->check_schema(child).errors.empty());
  }
  SUBCASE("anonymize without anonymized_column on a NOT NULL anchor is an error") {
    fixture->create_table("members", {{"id", ColumnType::key},
                                      {"seen", ColumnType::integer, true},
                                      {"email", ColumnType::text},
                                      {"anonymized_at", ColumnType::integer}});
    fixture->create_index("members", "seen");
    Rule rule = make_rule("members", "seen", AgeFormat::unix_seconds);
    rule.action = Action::anonymize;
    rule.masks = {{"email", Mask::redact}};
    CHECK(store->check_schema(rule).errors ==
          std::vector<std::string>{
              "column 'members.seen' is NOT NULL: anonymizing without anonymized_column clears "
              "the anchor to mark a row done, which this column refuses; set anonymized_column "
              "(a column the engine fills when it anonymizes a row)"});
    rule.anonymized_column = "anonymized_at";
    CHECK(store->check_schema(rule).errors.empty());
  }
  SUBCASE("linked files without an index on their path: each batch scans the table") {
    fixture->create_table(
        "clips",
        {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"path", ColumnType::text}});
    fixture->create_index("clips", "at");
    Rule rule = make_rule("clips", "at", AgeFormat::unix_seconds);
    rule.files = LinkedFilesConfig{"media", "path"};
    const auto check = store->check_schema(rule);
    CHECK(check.errors.empty());
    CHECK(check.warnings ==
          std::vector<std::string>{"no index on clips.path: each batch scans clips for rows that "
                                   "still name its files (CREATE INDEX ON clips(path))"});
    fixture->create_index("clips", "path");
    CHECK(store->check_schema(rule).warnings.empty());
  }
}

void read_only_changes_nothing(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  build_people(*fixture);
  const std::string before = fixture->snapshot();
  {
    auto store = target.open(fixture->config(), OpenMode::read_only);
    CHECK(store->check_schema(accounts_rule()).errors.empty());
    CHECK(store->count(select_for(accounts_rule())).due == 2);
    Rule rule = make_rule("people", "seen", AgeFormat::unix_seconds);
    set_masks(rule);
    CHECK(store->count(select_for(rule)).due == 4);
    CHECK_THROWS_AS(store->begin_batch(select_for(accounts_rule()), 10), std::runtime_error);
    CHECK_THROWS_AS(store->begin_batch(select_for(rule), 10), std::runtime_error);
    store->finish_run();
  }
  CHECK(fixture->snapshot() == before);
  CHECK(ids_of(*fixture, "accounts") == std::vector<std::int64_t>{1, 2, 3});
}

// Linked files of which none exists; the first lookup sets `stop`, as a SIGTERM arriving in
// the middle of a census would.
class StopOnFirstLookup final : public adapters::LinkedFiles {
public:
  explicit StopOnFirstLookup(std::atomic<bool>& stop) : m_stop(stop) {}

  std::expected<std::unique_ptr<adapters::ResolvedFile>, std::string>
  resolve(std::string_view) override {
    ++lookups;
    m_stop = true;
    return std::unique_ptr<adapters::ResolvedFile>{};
  }
  std::int64_t count_present(const std::vector<PendingFile>&) override { return 0; }

  int lookups = 0;

private:
  std::atomic<bool>& m_stop;
};

// Sets `stop` 100 ms after it starts, as a SIGTERM would while a census waits for `lock`, and
// releases the lock when destroyed (the census is over) or 10 s later at the latest: an
// adapter that does not look at the flag fails its clause instead of hanging it.
class SignalWhileLocked {
public:
  SignalWhileLocked(std::atomic<bool>& stop, std::shared_ptr<void> lock)
      : m_thread([this, &stop, lock = std::move(lock)](std::stop_token census_over) mutable {
          std::this_thread::sleep_for(std::chrono::milliseconds{100});
          stop = true;
          std::unique_lock guard(m_mutex);
          m_wake.wait_for(guard, census_over, std::chrono::seconds{10}, [] { return false; });
          lock.reset();
        }) {}
  SignalWhileLocked(const SignalWhileLocked&) = delete;
  SignalWhileLocked& operator=(const SignalWhileLocked&) = delete;

private:
  std::mutex m_mutex;
  std::condition_variable_any m_wake;
  std::jthread m_thread;  // last: joined first
};

// SIGTERM during the reads before the first batch: they give up at once, even while waiting
// for a lock the application holds; batches never look at the flag.
void census_stops_on_signal(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  const Rule rule = accounts_rule();
  auto store = target.open(fixture->config(), OpenMode::read_write);
  std::atomic<bool> stop{false};
  Selection selection = select_for(rule);
  selection.stop = &stop;
  const std::string before = fixture->snapshot();

  SUBCASE("set before the census") {
    stop = true;
    CHECK(error_of([&] { store->count(selection); }) == "stopped by signal during the census");
    CHECK_THROWS_AS(store->count_by_anchor(selection, {k_cutoff}), adapters::CensusStopped);
    CHECK_THROWS_AS(store->plan_run(selection), adapters::CensusStopped);
    CHECK(fixture->snapshot() == before);
  }
  // Patient enough that giving up at the end of busy_timeout would fail the clause.
  DatastoreConfig patient = fixture->config();
  patient.busy_timeout = std::chrono::seconds{30};
  SUBCASE("set while the census waits for a lock") {
    store = target.open(patient, OpenMode::read_write);
    SignalWhileLocked signal(stop, fixture->lock_out_readers("accounts"));
    const auto started = std::chrono::steady_clock::now();
    CHECK(error_of([&] { store->count(selection); }) == "stopped by signal during the census");
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{2});
  }
  SUBCASE("a walk stopped while planning is planned again by the next run") {
    store = target.open(patient, OpenMode::read_write);
    {
      SignalWhileLocked signal(stop, fixture->lock_out_readers("accounts"));
      CHECK_THROWS_AS(store->plan_run(selection), adapters::CensusStopped);
    }
    stop = false;
    store->plan_run(selection);
    CHECK(drain(*store, selection) == std::pair<std::int64_t, std::int64_t>{2, 4});
  }
  SUBCASE("set in the middle of a census statement") {
    std::vector<std::vector<Cell>> videos;
    for (std::int64_t id = 1; id <= 2000; ++id)
      videos.push_back({id, k_cutoff_s - id, "videos/" + std::to_string(id) + ".mp4"});
    fixture->create_table(
        "videos",
        {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"path", ColumnType::text}});
    fixture->insert("videos", {"id", "at", "path"}, videos);
    Rule linked = make_rule("videos", "at", AgeFormat::unix_seconds);
    linked.files = LinkedFilesConfig{"media", "path"};
    StopOnFirstLookup files(stop);
    Selection census = select_for(linked);
    census.linked_files = &files;
    census.stop = &stop;
    store = target.open(fixture->config(), OpenMode::read_write);
    CHECK(error_of([&] { store->count(census); }) == "stopped by signal during the census");
    // It ended within a few rows of the flag, not after all 2000 due paths.
    CHECK(files.lookups >= 1);
    CHECK(files.lookups < 200);
  }
  SUBCASE("batches still run while it is set") {
    CHECK(store->count(selection).due == 2);
    store->plan_run(selection);
    stop = true;
    CHECK(drain(*store, selection) == std::pair<std::int64_t, std::int64_t>{2, 4});
    CHECK(ids_of(*fixture, "accounts") == std::vector<std::int64_t>{3});
  }
}

// A linked file goes only when no row the run keeps names it: not a held row's, not a row's
// that is not due, and a file two due rows name is removed once, whether one batch or two
// delete them.
void linked_files_named_elsewhere_stay(const ContractTarget& target, std::int64_t limit) {
  retentiond::test::TempDir dir;
  const std::filesystem::path root = dir / "media";
  std::filesystem::create_directories(root / "v");
  for (const std::string name : {"held.mp4", "young.mp4", "twice.mp4", "alone.mp4"})
    std::ofstream(root / "v" / name) << "video";
  auto fixture = target.fixture();
  fixture->create_table("videos", {{"id", ColumnType::key},
                                   {"at", ColumnType::integer},
                                   {"owner", ColumnType::integer},
                                   {"path", ColumnType::text}});
  const std::int64_t old = k_cutoff_s - k_day_s;
  using std::string;
  fixture->insert("videos", {"id", "at", "owner", "path"},
                  {{std::int64_t{1}, old, std::int64_t{1}, string{"v/held.mp4"}},
                   {std::int64_t{2}, old, std::int64_t{7}, string{"v/held.mp4"}},  // held
                   {std::int64_t{3}, old, std::int64_t{1}, string{"v/young.mp4"}},
                   {std::int64_t{4}, k_cutoff_s + 1, std::int64_t{1}, string{"v/young.mp4"}},
                   {std::int64_t{5}, old, std::int64_t{1}, string{"v/twice.mp4"}},
                   {std::int64_t{6}, old, std::int64_t{1}, string{"v/twice.mp4"}},
                   {std::int64_t{7}, old, std::int64_t{1}, string{"v/alone.mp4"}}});
  auto files = open_media(root);
  Rule rule = make_rule("videos", "at", AgeFormat::unix_seconds);
  rule.files = LinkedFilesConfig{"media", "path"};
  rule.subject_column = "owner";
  Selection selection = select_for(rule, {"7"});
  selection.linked_files = files->linked_files();
  auto store = target.open(fixture->config(), OpenMode::read_write);

  CHECK(store->count(selection).due == 5);
  std::int64_t rows = 0;
  std::int64_t removed = 0;
  while (auto batch = store->begin_batch(selection, limit)) {
    rows += batch->rows();
    removed += batch->files();
    batch->commit();
    CHECK(batch->vanished() == 0);
    if (batch->exhausted())
      break;
  }
  CHECK(rows == 5);
  CHECK(removed == 2);
  CHECK(ids_of(*fixture, "videos") == std::vector<std::int64_t>{2, 4});
  CHECK(tree_set(root) == std::set<std::string>{"v/", "v/held.mp4", "v/young.mp4"});
}

void finish_run_after_changes(const ContractTarget& target) {
  auto fixture = target.fixture();
  build_accounts(*fixture);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  CHECK(drain(*store, select_for(accounts_rule())).first == 2);
  CHECK_NOTHROW(store->finish_run());
  CHECK(ids_of(*fixture, "accounts") == std::vector<std::int64_t>{3});
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The contract, for every backend

TEST_CASE("datastore contract: unix_seconds anchors are counted and batched exactly") {
  for_each_target(counts_unix_seconds);
}

TEST_CASE("datastore contract: unix_millis anchors are counted and batched exactly") {
  for_each_target(counts_unix_millis);
}

TEST_CASE("datastore contract: a census of mostly due rows still counts every kind exactly") {
  for_each_target(counts_mostly_due);
}

TEST_CASE("datastore contract: iso8601 anchors with offsets, fractions and bad dates") {
  for_each_target(counts_iso8601);
}

TEST_CASE("datastore contract: iso8601 anchors on days that do not exist are unreadable") {
  for_each_target(impossible_days_are_unreadable);
}

TEST_CASE("datastore contract: wrong-scale anchors are counted and never due") {
  for_each_target(wrong_scale_is_counted_and_never_due);
}

TEST_CASE("datastore contract: microseconds in a milliseconds column are a wrong scale, not "
          "future") {
  for_each_target(microseconds_in_milliseconds_are_a_wrong_scale);
}

TEST_CASE("datastore contract: a wrong-scale anchor is not also counted as future") {
  for_each_target(wrong_scale_is_not_counted_as_future);
}

TEST_CASE("datastore contract: match filters (=, IN; string, integer, boolean)") {
  for_each_target(match_filters);
}

TEST_CASE("datastore contract: age measured from a parent row") {
  for_each_target(parent_anchor);
}

TEST_CASE("datastore contract: begin_batch changes at most limit rows, exactly the due ones") {
  for_each_target(batches_are_bounded_and_exact);
}

TEST_CASE("datastore contract: sparse due rows in a large table") {
  for_each_target(batches_on_sparse_work);
}

TEST_CASE("datastore contract: an anchor before year 1 is the oldest due, held to year 1") {
  for_each_target(absurdly_old_anchors_stay_in_the_calendar);
}

TEST_CASE("datastore contract: batches over keys far apart") {
  for_each_target(batches_over_sparse_keys);
}

TEST_CASE("datastore contract: count_by_anchor buckets readable anchors") {
  for_each_target(anchors_by_bucket);
}

TEST_CASE("datastore contract: cascades delete children first and count them") {
  for_each_target(cascades_delete_children_first);
}

TEST_CASE("datastore contract: held subjects are excluded, NULL subjects are not") {
  for_each_target(holds_exclude_subjects);
}

TEST_CASE("datastore contract: anonymize masks and anonymized_column") {
  for_each_target(anonymize_masks);
}

TEST_CASE("datastore contract: anonymize without anonymized_column clears the anchor") {
  for_each_target(anonymize_without_marker_clears_the_anchor);
}

TEST_CASE("datastore contract: anonymize deletes cascade children") {
  for_each_target(anonymize_with_cascade);
}

TEST_CASE("datastore contract: a batch destroyed uncommitted rolls back") {
  for_each_target(uncommitted_batches_roll_back);
}

TEST_CASE("datastore contract: a batch's token tells after a crash whether it committed") {
  for_each_target(tokens_tell_which_batches_committed);
}

TEST_CASE("datastore contract: check_schema errors and warnings") {
  for_each_target(schema_checks);
}

TEST_CASE("datastore contract: read_only leaves the datastore byte-identical") {
  for_each_target(read_only_changes_nothing);
}

TEST_CASE("datastore contract: a stop (SIGTERM) ends the census, not the batches") {
  for_each_target(census_stops_on_signal);
}

TEST_CASE("datastore contract: a linked file another row still names stays") {
  SUBCASE("in one batch") {
    for_each_target(
        [](const ContractTarget& target) { linked_files_named_elsewhere_stay(target, 100); });
  }
  SUBCASE("one row a batch") {
    for_each_target(
        [](const ContractTarget& target) { linked_files_named_elsewhere_stay(target, 1); });
  }
}

TEST_CASE("datastore contract: finish_run after a run that changed rows") {
  for_each_target(finish_run_after_changes);
}

// ---------------------------------------------------------------------------------------------
// SQLite specifics

TEST_CASE("sqlite datastore: a missing file is an error naming the datastore, and not created") {
  test::TempDir dir;
  DatastoreConfig config;
  config.name = "app";
  config.type = "sqlite";
  config.path = dir / "missing.db";
  for (const OpenMode mode : {OpenMode::read_write, OpenMode::read_only}) {
    try {
      adapters::sqlite::open_sqlite_datastore(config, mode, {});
      FAIL("opened a missing file");
    } catch (const std::runtime_error& error) {
      CHECK(std::string{error.what()}.find("datastore 'app'") != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(config.path));
  }
}

TEST_CASE("sqlite datastore: read_only on a WAL-mode file leaves it byte-identical") {
  test::TempDir dir;
  DatastoreConfig config;
  config.name = "app";
  config.type = "sqlite";
  config.path = dir / "app.db";
  {
    SQLite::Database db(config.path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER)");
    db.exec("INSERT INTO logs(at) VALUES(1), (2), (3)");
  }
  const std::string before = file_bytes(config.path);
  {
    auto store = adapters::sqlite::open_sqlite_datastore(config, OpenMode::read_only, {});
    const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    CHECK(store->count(select_for(rule)).due == 3);
    store->finish_run();
  }
  CHECK(file_bytes(config.path) == before);
}

TEST_CASE("sqlite datastore: a linked path stored as a blob is refused, its row kept") {
  // A blob compares unequal to the same text, so a row that stores the path as text could not
  // keep the file: the blob is no path.
  retentiond::test::TempDir dir;
  std::filesystem::create_directories(dir / "media/v");
  std::ofstream(dir / "media/v/a.mp4") << "video";
  SqliteFixture fixture;
  fixture.create_table(
      "videos", {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"path", ColumnType::text}});
  fixture.exec(fmt::format("INSERT INTO videos VALUES (1, {0}, CAST('v/a.mp4' AS BLOB)), (2, {0}, "
                           "'v/gone.mp4')",
                           k_cutoff_s - k_day_s));
  auto files = open_media(dir / "media");
  Rule rule = make_rule("videos", "at", AgeFormat::unix_seconds);
  rule.files = LinkedFilesConfig{"media", "path"};
  Selection selection = select_for(rule);
  selection.linked_files = files->linked_files();
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});

  const RuleCounts counts = store->count(selection);
  CHECK(counts.due == 1);
  CHECK(counts.refused == 1);
  auto batch = store->begin_batch(selection, 10);
  REQUIRE(batch != nullptr);
  CHECK(batch->rows() == 1);
  CHECK(batch->refusals() == std::vector<std::pair<std::string, std::string>>{
                                 {"rowid 1", "path is stored as a blob, not text"}});
  batch->commit();
  CHECK(ids_of(fixture, "videos") == std::vector<std::int64_t>{1});
  CHECK(std::filesystem::exists(dir / "media/v/a.mp4"));
}

TEST_CASE("sqlite datastore: Unix times in a column of TEXT affinity are refused, never compared "
          "as text") {
  // SQLite stores a number written to a TEXT column as text, and compares the cutoff with it as
  // text: '' and 'n/a' sort before any cutoff, '1000000000' after '100'.
  SqliteFixture fixture;
  fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::text}});
  fixture.create_index("logs", "at");
  fixture.exec(fmt::format("INSERT INTO logs(at) VALUES (''), ('n/a'), (' {0}'), ('{0}'), ({0}), "
                           "('1.6e9')",
                           k_cutoff_s - k_day_s));
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  CHECK(store->check_schema(rule).errors ==
        std::vector<std::string>{
            "logs.at is declared as text, so SQLite stores the numbers of age_format "
            "'unix_seconds' in it as text, which cannot be compared with the cutoff (declare the "
            "column INTEGER, or keep ISO 8601 text in it with age_format = \"iso8601\")"});
  // Declared INTEGER, the column turns numeric text into numbers as it stores it; '' and 'n/a'
  // stay text, which sorts after every number and is never due.
  fixture.create_table("typed", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture.exec("INSERT INTO typed SELECT * FROM logs");
  const Rule typed = make_rule("typed", "at", AgeFormat::unix_seconds);
  CHECK(store->check_schema(typed).errors.empty());
  CHECK(drain(*store, select_for(typed)).first == 4);
  CHECK(ids_of(fixture, "typed") == std::vector<std::int64_t>{1, 2});
}

TEST_CASE("sqlite datastore: infinities in a numeric anchor are unreadable, never due") {
  // A REAL column holds -Inf and +Inf (SQLite's 9e999); NaN it stores as NULL.
  for (const bool indexed : {false, true}) {
    CAPTURE(indexed);
    SqliteFixture fixture;
    fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::real}});
    if (indexed)
      fixture.create_index("logs", "at");
    fixture.exec(fmt::format("INSERT INTO logs VALUES (1, {}), (2, {}), (3, -9e999), (4, 9e999), "
                             "(5, {}), (6, NULL), (7, {})",
                             std::to_string(k_cutoff_s - 1) + ".5", k_cutoff_s, k_cutoff_ms - 1000,
                             k_cutoff_s - 10 * k_day_s));
    fixture.exec("CREATE TABLE millis AS SELECT id, at * 1000 AS at FROM logs");
    auto store =
        adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
    const Rule seconds = make_rule("logs", "at", AgeFormat::unix_seconds);
    check_counts(store->count(select_for(seconds)),
                 expect(7, 7, 2, 0, 1, 2, 0, 1, from_unix_seconds(k_cutoff_s - 10 * k_day_s)));
    CHECK(drain(*store, select_for(seconds)).first == 2);
    CHECK(ids_of(fixture, "logs") == std::vector<std::int64_t>{2, 3, 4, 5, 6});
    // In milliseconds minus infinity is unreadable too, not a value "in seconds" (row 5, now a
    // thousand times larger, looks like microseconds).
    const Rule millis = make_rule("millis", "at", AgeFormat::unix_millis);
    check_counts(store->count(select_for(millis)),
                 expect(7, 7, 2, 0, 1, 2, 0, 1, from_unix_seconds(k_cutoff_s - 10 * k_day_s)));
  }
}

TEST_CASE("sqlite datastore: a census of mostly due rows counts infinities as unreadable") {
  // Mostly due and indexed: the census counts the rows not due (an open range to the index's
  // end, less what it takes along) and the due ones as the rest.
  SqliteFixture fixture;
  fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::real}});
  fixture.create_index("logs", "at");
  fixture.exec(fmt::format("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i "
                           "< 40) INSERT INTO logs(at) SELECT {} - i * {} FROM n",
                           k_cutoff_s, k_day_s));
  fixture.exec(fmt::format("INSERT INTO logs(at) VALUES (-9e999), (9e999), (9e999), ('n/a'), "
                           "(X'00'), (NULL), ({})",
                           k_cutoff_s + 1));
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  check_counts(store->count(select_for(rule)),
               expect(47, 47, 40, 0, 1, 5, 0, 0, from_unix_seconds(k_cutoff_s - 40 * k_day_s)));
  CHECK(drain(*store, select_for(rule)).first == 40);
  CHECK(ids_of(fixture, "logs").size() == 7);
}

TEST_CASE("sqlite datastore: a held subject that is not UTF-8 still holds its rows") {
  SqliteFixture fixture;
  fixture.create_table(
      "people",
      {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"owner", ColumnType::text}});
  fixture.exec(fmt::format("INSERT INTO people VALUES (1, {0}, CAST(X'6dfc6c6c6572' AS TEXT)), "
                           "(2, {0}, 'other')",
                           k_cutoff_s - k_day_s));
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  Rule rule = make_rule("people", "at", AgeFormat::unix_seconds);
  rule.subject_column = "owner";
  const Selection selection = select_for(rule, {std::string{"m\xfcller"}});
  CHECK(store->count(selection).held == 1);
  CHECK(drain(*store, selection).first == 1);
  CHECK(ids_of(fixture, "people") == std::vector<std::int64_t>{1});
}

TEST_CASE("sqlite datastore: hmac without a key fails the batch and changes nothing") {
  SqliteFixture fixture;
  build_people(fixture);
  const auto before = fixture.select("people", {"id", "email", "anonymized_at"});
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  Rule rule = make_rule("people", "seen", AgeFormat::unix_seconds);
  set_masks(rule);
  rule.anonymized_column = "anonymized_at";
  CHECK_THROWS_AS(store->begin_batch(select_for(rule), 10), std::exception);
  CHECK(fixture.select("people", {"id", "email", "anonymized_at"}) == before);
}

TEST_CASE(
    "sqlite datastore: a batch stops at its deadline after a piece, and says how far it got") {
  SqliteFixture fixture;
  fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  std::vector<std::vector<Cell>> rows;
  for (std::int64_t id = 1; id <= 1000; ++id)
    rows.push_back({id, k_cutoff_s - 1});
  fixture.insert("logs", {"id", "at"}, rows);
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);

  // No time at all: the first piece runs, no more. A slice of 1,600 rows has 8 pieces of 200;
  // a smaller one (below) would be one piece.
  auto late = store->begin_batch(select_for(rule), 1600, std::chrono::steady_clock::duration{0});
  CHECK(late->rows() == 200);
  CHECK(late->stopped_at_deadline() == std::optional<std::int64_t>{200});
  late->commit();
  late.reset();
  auto in_time = store->begin_batch(select_for(rule), 700);
  CHECK(in_time->rows() == 700);
  CHECK(in_time->stopped_at_deadline() == std::nullopt);
  in_time->commit();
  in_time.reset();
  auto small_late =
      store->begin_batch(select_for(rule), 60, std::chrono::steady_clock::duration{0});
  CHECK(small_late->rows() == 60);
  CHECK(small_late->stopped_at_deadline() == std::nullopt);
  small_late->commit();
  small_late.reset();

  std::vector<std::int64_t> left(40);
  std::iota(left.begin(), left.end(), 961);
  CHECK(ids_of(fixture, "logs") == left);
}

// A table `logs(id, at)` of `count` rows, every one due.
void create_due_logs(SqliteFixture& fixture, std::int64_t count) {
  fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  std::vector<std::vector<Cell>> rows;
  for (std::int64_t id = 1; id <= count; ++id)
    rows.push_back({id, k_cutoff_s - 1});
  fixture.insert("logs", {"id", "at"}, rows);
}

TEST_CASE("sqlite datastore: a walk's pieces start at 200 rows and double, whatever the batch") {
  SqliteFixture fixture;
  create_due_logs(fixture, 20'000);
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  const auto batch_rows = [&](std::optional<std::chrono::steady_clock::duration> budget) {
    auto batch = budget ? store->begin_batch(select_for(rule), 12'800, *budget)
                        : store->begin_batch(select_for(rule), 12'800);
    const std::int64_t changed = batch->rows();
    batch->commit();
    return changed;
  };

  // No time at all: one piece, 200 rows, then twice that; a piece is an eighth of the batch
  // only once the walk has changed pieces half that size.
  CHECK(batch_rows(std::chrono::steady_clock::duration{0}) == 200);
  CHECK(batch_rows(std::chrono::steady_clock::duration{0}) == 400);
  CHECK(batch_rows(std::nullopt) == 12'800);
  CHECK(batch_rows(std::chrono::steady_clock::duration{0}) == 1'600);
  CHECK(ids_of(fixture, "logs").size() == 20'000 - 200 - 400 - 12'800 - 1'600);
}

TEST_CASE("sqlite datastore: a batch's pages are in the WAL before the engine audits it, so its "
          "commit appends one frame") {
  // The engine writes a batch's audit entry between begin_batch and commit: a process killed
  // after the entry and before the commit leaves an entry for a batch that did not happen.
  SqliteFixture fixture;
  create_due_logs(fixture, 5'000);
  fixture.exec("PRAGMA journal_mode=WAL");
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  const std::filesystem::path wal = fixture.config().path.string() + "-wal";
  auto batch =
      store->begin_batch(select_for(make_rule("logs", "at", AgeFormat::unix_seconds)), 5'000);
  REQUIRE(batch->rows() == 5'000);
  const auto before_commit = std::filesystem::file_size(wal);
  CHECK(before_commit > 10 * 4'096);  // the batch's pages
  batch->commit();
  CHECK(std::filesystem::file_size(wal) - before_commit <= 2 * (4'096 + 24));
  CHECK(ids_of(fixture, "logs").empty());
}

TEST_CASE("sqlite datastore: batches that follow each other keep the WAL to four batches' pages") {
  // The checkpoint after a batch runs beside the next one; every fourth batch waits for them, so
  // SQLite writes the log from its start again instead of growing it for the whole run.
  SqliteFixture fixture;
  fixture.create_table(
      "logs",
      {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"payload", ColumnType::text}});
  fixture.exec("PRAGMA journal_mode=WAL");
  fixture.exec(
      fmt::format("INSERT INTO logs(at, payload) SELECT {}, hex(randomblob(500)) FROM "
                  "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i "
                  "< 20000) SELECT i FROM n)",
                  k_cutoff_s - 1));
  fixture.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  const std::filesystem::path wal = fixture.config().path.string() + "-wal";
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  const Selection selection = select_for(rule);
  std::uintmax_t first_batch = 0;  // the log's size after the first batch: its pages
  std::uintmax_t largest_log = 0;
  int batches = 0;
  while (auto batch = store->begin_batch(selection, 1'000)) {
    batch->commit();
    store->between_batches(std::chrono::milliseconds{0});
    // The file keeps its largest size: SQLite overwrites a restarted log.
    largest_log = std::filesystem::file_size(wal);
    if (++batches == 1)
      first_batch = largest_log;
  }
  store->finish_run();
  CHECK(batches == 20);
  CHECK(ids_of(fixture, "logs").empty());
  REQUIRE(first_batch > 100 * 4'096);
  CHECK(largest_log < 5 * first_batch);
  CHECK(std::filesystem::file_size(wal) == 0);  // finish_run truncates it
}

TEST_CASE("sqlite datastore: a deleted row's values do not linger in the file") {
  SqliteFixture fixture;
  fixture.create_table(
      "logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"secret", ColumnType::text}});
  fixture.insert("logs", {"id", "at", "secret"},
                 {{std::int64_t{1}, k_cutoff_s - 1, std::string{"SECRET-VALUE-4711"}},
                  {std::int64_t{2}, k_cutoff_s + 1, std::string{"kept-value"}}});
  auto store = adapters::sqlite::open_sqlite_datastore(fixture.config(), OpenMode::read_write, {});
  CHECK(drain(*store, select_for(make_rule("logs", "at", AgeFormat::unix_seconds))).first == 1);
  store->finish_run();
  store.reset();
  const std::string bytes = fixture.snapshot();
  CHECK(bytes.find("SECRET-VALUE-4711") == std::string::npos);
  CHECK(bytes.find("kept-value") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL specifics

namespace {

DatastoreConfig postgres_config(const std::string& dsn) {
  DatastoreConfig config;
  config.name = "main";
  config.type = "postgres";
  config.dsn = dsn;
  return config;
}

}  // namespace

TEST_CASE("postgres datastore: timestamptz, timestamp and date anchors are read natively") {
  PostgresFixture fixture;
  // Whatever the server's or the database's time zone, timestamps without one are UTC.
  fixture.exec("ALTER DATABASE " + quoted(fixture.database()) +
               " SET timezone TO 'Pacific/Auckland'");
  fixture.exec("CREATE TABLE stamped(id bigint PRIMARY KEY, at timestamptz)");
  fixture.exec("INSERT INTO stamped VALUES (1, '2024-06-01 11:59:59.999999+00'), "
               "(2, '2024-06-01 12:00:00+00'), (3, '2024-06-01 14:00:00+02'), "
               "(4, '2024-06-01 13:59:59+02'), (5, NULL), (6, 'infinity'), (7, '-infinity'), "
               "(8, '2024-07-01 13:00:00+00'), (9, '2023-01-01 00:00:00+00')");
  fixture.exec("CREATE TABLE local(id bigint PRIMARY KEY, at timestamp)");
  fixture.exec("INSERT INTO local VALUES (1, '2024-06-01 11:59:59.999999'), "
               "(2, '2024-06-01 12:00:00'), (3, NULL), (4, 'infinity'), "
               "(5, '2024-07-01 12:00:00.001'), (6, '2024-05-01 00:00:00')");
  fixture.exec("CREATE TABLE days(id bigint PRIMARY KEY, at date)");
  fixture.exec("INSERT INTO days VALUES (1, '2024-05-31'), (2, '2024-06-01'), (3, '2024-06-02'), "
               "(4, '2024-07-02'), (5, '2024-07-01'), (6, NULL), (7, '-infinity')");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);

  const Rule stamped = make_rule("stamped", "at", AgeFormat::native);
  CHECK(store->check_schema(stamped).errors.empty());
  check_counts(store->count(select_for(stamped)),
               expect(9, 9, 3, 0, 1, 2, 1, 0, at("2023-01-01T00:00:00Z")));
  CHECK(store->count_by_anchor(select_for(stamped), {k_cutoff, k_now}) ==
        std::vector<std::int64_t>{3, 2, 1});
  CHECK(drain(*store, select_for(stamped)).first == 3);
  CHECK(ids_of(fixture, "stamped") == std::vector<std::int64_t>{2, 3, 5, 6, 7, 8});

  const Rule local = make_rule("local", "at", AgeFormat::native);
  check_counts(store->count(select_for(local)),
               expect(6, 6, 2, 0, 1, 1, 1, 0, at("2024-05-01T00:00:00Z")));
  CHECK(drain(*store, select_for(local)).first == 2);
  CHECK(ids_of(fixture, "local") == std::vector<std::int64_t>{2, 3, 4, 5});

  // A date is its midnight, UTC: 2024-06-01 is older than noon that day.
  const Rule days = make_rule("days", "at", AgeFormat::native);
  check_counts(store->count(select_for(days)),
               expect(7, 7, 2, 0, 1, 1, 1, 0, at("2024-05-31T00:00:00Z")));
  CHECK(drain(*store, select_for(days)).first == 2);
  CHECK(ids_of(fixture, "days") == std::vector<std::int64_t>{3, 4, 5, 6, 7});
}

TEST_CASE("postgres datastore: a table rewritten during a run (VACUUM FULL) is walked again from "
          "its first page") {
  // The walk addresses pages (ctid ranges); a rewrite packs the rows into new pages, some of
  // them before the page the walk has reached.
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint, filler text)");
  fixture.exec(fmt::format("INSERT INTO logs SELECT i, CASE WHEN i <= 5000 THEN {} ELSE {} END, "
                           "repeat('x', 100) FROM generate_series(1, 10000) AS i",
                           k_cutoff_s + 1, k_cutoff_s - 1));
  fixture.exec("ANALYZE logs");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  const Selection selection = select_for(rule);
  REQUIRE(store->count(selection).due == 5000);
  std::int64_t changed = 0;
  {
    auto first = store->begin_batch(selection, 1000);  // the first pages: nothing due there
    REQUIRE(first);
    changed += first->rows();
    first->commit();
  }
  // The application deletes the rows that were not due; the rewrite moves the due ones to the
  // first pages.
  fixture.exec("DELETE FROM logs WHERE id <= 5000");
  fixture.exec("VACUUM FULL logs");
  changed += drain(*store, selection, 1000).first;
  CHECK(changed == 5000);
  CHECK(ids_of(fixture, "logs").empty());
}

TEST_CASE("postgres datastore: a batch is changed in pieces and stops at its deadline") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  fixture.exec(fmt::format("INSERT INTO logs SELECT i, {} FROM generate_series(1, 8000) AS i",
                           k_cutoff_s - 1));
  fixture.exec("ANALYZE logs");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  const Selection selection = select_for(rule);
  REQUIRE(store->count(selection).due == 8000);
  {
    // No time at all: one piece, an eighth of the batch.
    auto batch = store->begin_batch(selection, 8000, std::chrono::steady_clock::duration{0});
    REQUIRE(batch);
    CHECK(batch->rows() == 1000);
    CHECK(batch->stopped_at_deadline() == std::optional<std::int64_t>{1000});
    CHECK_FALSE(batch->exhausted());
    batch->commit();
  }
  // Without a deadline, the next batch changes all it may, and the walk goes on after the
  // first one's rows.
  auto batch = store->begin_batch(selection, 8000);
  REQUIRE(batch);
  CHECK(batch->rows() == 7000);
  CHECK_FALSE(batch->stopped_at_deadline());
  batch->commit();
  CHECK(drain(*store, selection).first == 0);
  CHECK(ids_of(fixture, "logs").empty());
}

// accounts(id, email, at, anonymized_at), both due, and sessions referencing them; `email_index`
// is "UNIQUE" or empty. Returns the rule that redacts the email.
Rule accounts_with_sessions(const PostgresFixture& fixture, std::string_view email_index) {
  fixture.exec(fmt::format("CREATE TABLE accounts(id bigint PRIMARY KEY, email text {}, at bigint, "
                           "anonymized_at bigint)",
                           email_index));
  fixture.exec("CREATE TABLE sessions(id bigint PRIMARY KEY, account_id bigint REFERENCES "
               "accounts(id))");
  fixture.exec(fmt::format("INSERT INTO accounts VALUES (1, 'a@example.org', {0}, NULL), "
                           "(2, 'b@example.org', {0}, NULL)",
                           k_cutoff_s - 1));
  Rule rule = make_rule("accounts", "at", AgeFormat::unix_seconds);
  rule.action = Action::anonymize;
  rule.masks = {{"email", Mask::redact}};
  rule.anonymized_column = "anonymized_at";
  return rule;
}

TEST_CASE("postgres datastore: an anonymize batch lets the application add child rows to the "
          "rows it holds") {
  PostgresFixture fixture;
  const Rule rule = accounts_with_sessions(fixture, "");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  auto batch = store->begin_batch(select_for(rule), 10);
  REQUIRE(batch);
  REQUIRE(batch->rows() == 2);
  // The foreign-key check of the insert takes a KEY SHARE lock on account 1, which the
  // batch's lock does not conflict with: it does not wait (lock_timeout would fail it).
  fixture.exec("SET lock_timeout = '200ms'");
  CHECK_NOTHROW(fixture.exec("INSERT INTO sessions VALUES (1, 1)"));
  batch->commit();
  CHECK(ids_of(fixture, "sessions") == std::vector<std::int64_t>{1});
}

TEST_CASE("postgres datastore: an anonymize batch that changes a unique column skips the rows "
          "the application references, instead of waiting for them") {
  PostgresFixture fixture;
  const Rule rule = accounts_with_sessions(fixture, "UNIQUE");
  // The application inserts a session of account 1 and has not committed: its foreign-key
  // check holds account 1 FOR KEY SHARE, which conflicts with changing the unique email.
  pqxx::connection application(fixture.config().dsn);
  pqxx::work holding(application);
  holding.exec("INSERT INTO sessions VALUES (1, 1)");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  auto batch = store->begin_batch(select_for(rule), 10);
  REQUIRE(batch);
  CHECK(batch->rows() == 1);  // account 2; account 1 is left for the next run
  batch->commit();
  holding.commit();
}

TEST_CASE("postgres datastore: a statement_timeout and a lost connection say what happened") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  fixture.exec(fmt::format("INSERT INTO logs SELECT i, {} FROM generate_series(1, 300000) AS i",
                           k_cutoff_s - 1));
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  SUBCASE("statement_timeout") {
    fixture.exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET statement_timeout = 1', "
                 "current_database()); END $$");
    auto store = open_postgres(fixture.config(), OpenMode::read_write);
    const std::string message = error_of([&] { (void)store->count(select_for(rule)); });
    CHECK(retentiond::test::contains(
        message, "canceling statement due to statement timeout: statement_timeout (set "
                 "for the server, the database or the role retentiond connects as) "
                 "ended it; give retentiond's role a longer one"));
  }
  SUBCASE("a lost connection") {
    auto store = open_postgres(fixture.config(), OpenMode::read_write);
    fixture.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                 "pg_backend_pid() AND datname = current_database()");
    const std::string message = error_of([&] { (void)store->count(select_for(rule)); });
    CHECK(retentiond::test::contains(
        message, "datastore 'contract': the connection to the server was lost ("));
  }
}

TEST_CASE("postgres datastore: a connection lost during COMMIT asks the server how the "
          "transaction ended") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  fixture.exec(fmt::format("INSERT INTO logs VALUES (1, {0}), (2, {0})", k_cutoff_s - 1));
  // A deferred trigger runs inside COMMIT: this one ends its own session there, before the
  // commit record, so the transaction rolls back and the client cannot tell.
  fixture.exec("CREATE FUNCTION end_session() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$");
  fixture.exec("CREATE CONSTRAINT TRIGGER end_session AFTER DELETE ON logs DEFERRABLE INITIALLY "
               "DEFERRED FOR EACH ROW EXECUTE FUNCTION end_session()");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto batch = store->begin_batch(select_for(rule), 10);
  REQUIRE(batch);
  REQUIRE(batch->rows() == 2);
  const std::string message = error_of([&] { batch->commit(); });
  CHECK(retentiond::test::contains(message, "datastore 'contract': the connection was lost "
                                            "during COMMIT ("));
  CHECK(retentiond::test::contains(message, "); the server says transaction "));
  CHECK(retentiond::test::contains(message, " rolled back"));
  CHECK(ids_of(fixture, "logs") == std::vector<std::int64_t>{1, 2});
}

TEST_CASE("postgres datastore: numbers in floating-point and numeric columns") {
  PostgresFixture fixture;
  for (const std::string type : {"double precision", "numeric"}) {
    CAPTURE(type);
    const std::string table = type == "numeric" ? "exact" : "floating";
    fixture.exec("CREATE TABLE " + table + "(id bigint PRIMARY KEY, at " + type + ")");
    fixture.exec(fmt::format("INSERT INTO {} VALUES (1, {}), (2, {}), (3, 'NaN'), (4, 'Infinity'), "
                             "(5, '-Infinity'), (6, {}), (7, NULL), (8, {})",
                             table, std::to_string(k_cutoff_s - 1) + ".5", k_cutoff_s,
                             k_cutoff_ms - 1000, k_cutoff_s - 10 * k_day_s));
    auto store = open_postgres(fixture.config(), OpenMode::read_write);
    const Rule rule = make_rule(table, "at", AgeFormat::unix_seconds);
    check_counts(store->count(select_for(rule)),
                 expect(8, 8, 2, 0, 1, 3, 0, 1, from_unix_seconds(k_cutoff_s - 10 * k_day_s)));
    // The wrong-scale row is never due, so only the two right ones go.
    CHECK(drain(*store, select_for(rule)).first == 2);
    CHECK(ids_of(fixture, table) == std::vector<std::int64_t>{2, 3, 4, 5, 6, 7});
  }
}

TEST_CASE("postgres datastore: check_schema names anchor types, relations and masks it cannot "
          "use") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint, email bytea, ip inet)");
  fixture.exec("CREATE TABLE stamped(id bigint PRIMARY KEY, at timestamptz)");
  fixture.exec("CREATE VIEW recent AS SELECT * FROM logs");
  fixture.exec("CREATE TABLE parts(id bigint, at timestamptz) PARTITION BY RANGE (at)");
  auto store = open_postgres(fixture.config(), OpenMode::read_only);
  const auto errors = [&](const Rule& rule) { return store->check_schema(rule).errors; };
  using Errors = std::vector<std::string>;

  CHECK(errors(make_rule("logs", "at", AgeFormat::native)) ==
        Errors{"column 'logs.at' has type int8: without age_format the anchor must be a "
               "timestamp, timestamptz or date column (set age_format to unix_seconds, "
               "unix_millis or iso8601)"});
  CHECK(errors(make_rule("stamped", "at", AgeFormat::iso8601)) ==
        Errors{"column 'stamped.at' has type timestamptz: remove age_format = \"iso8601\" "
               "(timestamp, timestamptz and date columns are read natively)"});
  CHECK(errors(make_rule("logs", "at", AgeFormat::iso8601)) ==
        Errors{"column 'logs.at' has type int8, which age_format = \"iso8601\" cannot read (use "
               "a text column)"});
  CHECK(errors(make_rule("recent", "at", AgeFormat::unix_seconds)) ==
        Errors{"'recent' in datastore 'contract' is a view, not a table"});
  CHECK(errors(make_rule("parts", "at", AgeFormat::native)) ==
        Errors{"table 'parts' in datastore 'contract' is partitioned, which this version cannot "
               "batch (write a rule per partition)"});

  Rule masks = make_rule("logs", "at", AgeFormat::unix_seconds);
  masks.action = Action::anonymize;
  masks.masks = {{"email", Mask::hmac}, {"ip", Mask::ip_prefix}, {"id", Mask::null}};
  CHECK(errors(masks) == Errors{"column 'logs.email' has type bytea: mask 'hmac' writes text (use "
                                "it on a text column, or mask 'null')",
                                "column 'logs.ip' has type inet: mask 'ip_prefix' writes text "
                                "(use it on a text column, or mask 'null')"});
  // A fixed-length mask that does not fit the column would fail every batch.
  fixture.exec("CREATE TABLE people(id bigint PRIMARY KEY, at bigint, phone varchar(10), "
               "code char(9), email varchar(64), nick varchar)");
  Rule narrow = make_rule("people", "at", AgeFormat::unix_seconds);
  narrow.action = Action::anonymize;
  narrow.masks = {{"phone", Mask::redact}, {"email", Mask::hmac}, {"nick", Mask::hmac}};
  CHECK(errors(narrow).empty());
  narrow.masks = {{"code", Mask::redact}, {"phone", Mask::hmac}, {"email", Mask::ip_prefix}};
  CHECK(errors(narrow) ==
        Errors{"column 'people.code' holds at most 9 characters: mask 'redact' writes 10 (widen "
               "the column, or use mask 'null')",
               "column 'people.phone' holds at most 10 characters: mask 'hmac' writes 64 (widen "
               "the column, or use mask 'null')"});
  // anonymized_column receives the time of anonymization in the rule's age_format.
  fixture.exec("CREATE TABLE members(id bigint PRIMARY KEY, at bigint, seen timestamptz, "
               "email text, done_flag boolean, done_text varchar(12), done_at timestamptz, "
               "done_s bigint)");
  Rule members = make_rule("members", "at", AgeFormat::unix_seconds);
  members.action = Action::anonymize;
  members.masks = {{"email", Mask::redact}};
  members.anonymized_column = "done_s";
  CHECK(errors(members).empty());
  members.anonymized_column = "done_text";  // 12 characters hold a Unix time in seconds
  CHECK(errors(members).empty());
  members.anonymized_column = "done_flag";
  CHECK(errors(members) ==
        Errors{"column 'members.done_flag' has type bool: anonymized_column receives the time a "
               "row was anonymized, a Unix time like the age column's (use a bigint column)"});
  Rule native = make_rule("members", "seen", AgeFormat::native);
  native.action = Action::anonymize;
  native.masks = {{"email", Mask::redact}};
  native.anonymized_column = "done_at";
  CHECK(errors(native).empty());
  native.anonymized_column = "done_text";  // too short for 2026-11-24T15:12:54.968Z
  CHECK(errors(native) ==
        Errors{"column 'members.done_text' has type varchar: anonymized_column receives the "
               "time a row was anonymized, as ISO 8601 text (use a timestamptz or date "
               "column)"});
  // The census refuses what check_schema reports, rather than guess.
  CHECK(error_of([&] { store->count(select_for(make_rule("logs", "at", AgeFormat::native))); }) ==
        "datastore 'contract': column 'logs.at' has type int8: without age_format the anchor "
        "must be a timestamp, timestamptz or date column (set age_format to unix_seconds, "
        "unix_millis or iso8601)");
  CHECK(error_of([&] {
          store->count(select_for(make_rule("missing", "at", AgeFormat::unix_seconds)));
        }) == "datastore 'contract': table 'missing' does not exist");
}

TEST_CASE("postgres datastore: a missing database or a bad dsn is an error naming the "
          "datastore") {
  auto& server = test::PostgresServer::instance();
  const std::string socket = (server.socket_dir() / ".s.PGSQL.5432").string();
  for (const OpenMode mode : {OpenMode::read_write, OpenMode::read_only}) {
    CHECK(error_of([&] { open_postgres(postgres_config(server.dsn("nope")), mode); }) ==
          fmt::format("datastore 'main': cannot connect: connection to server on socket \"{}\" "
                      "failed: FATAL:  database \"nope\" does not exist",
                      socket));
    CHECK(error_of([&] { open_postgres(postgres_config("host=/nowhere nosuchoption=1"), mode); }) ==
          "datastore 'main': cannot connect: invalid connection option \"...\" (the quoted "
          "text is withheld: it may be a password)");
  }
}

TEST_CASE("postgres datastore: password_file") {
  auto& server = test::PostgresServer::instance();
  const std::string database = server.create_database("password");
  test::TempDir dir;
  const std::string key_value =
      fmt::format("host={} dbname={} user={}", server.socket_dir().string(), database,
                  test::PostgresServer::k_password_user);
  DatastoreConfig config = postgres_config(key_value);
  config.password_file = dir / "pgpass";
  const Rule rule = make_rule("pg_class", "relpages", AgeFormat::unix_seconds);

  SUBCASE("the password is read from the file (a final newline is not part of it)") {
    std::ofstream(config.password_file) << test::PostgresServer::k_password << "\n";
    CHECK(open_postgres(config, OpenMode::read_only)->count(select_for(rule)).table_rows > 0);
    // The same in a URI dsn.
    config.dsn = fmt::format("postgresql:///{}?host={}&user={}", database,
                             server.socket_dir().string(), test::PostgresServer::k_password_user);
    CHECK(open_postgres(config, OpenMode::read_only)->count(select_for(rule)).table_rows > 0);
  }
  SUBCASE("a wrong password is refused, and the message does not show it") {
    std::ofstream(config.password_file) << "not-the-password-4711";
    const std::string message = error_of([&] { open_postgres(config, OpenMode::read_only); });
    CHECK(message == fmt::format("datastore 'main': cannot connect: connection to server on "
                                 "socket \"{}\" failed: FATAL:  password authentication failed "
                                 "for user \"{}\"",
                                 (server.socket_dir() / ".s.PGSQL.5432").string(),
                                 test::PostgresServer::k_password_user));
    CHECK(message.find("4711") == std::string::npos);
  }
  SUBCASE("without the file's password the role cannot log in") {
    config.password_file.clear();
    CHECK(error_of([&] {
            open_postgres(config, OpenMode::read_only);
          }).ends_with("fe_sendauth: no password supplied"));
  }
  SUBCASE("a missing or empty file") {
    CHECK(error_of([&] { open_postgres(config, OpenMode::read_only); }) ==
          "datastore 'main': cannot read password file " + config.password_file.string() +
              ": No such file or directory");
    std::ofstream(config.password_file) << "\n";
    CHECK(error_of([&] { open_postgres(config, OpenMode::read_only); }) ==
          "datastore 'main': password file " + config.password_file.string() + " is empty");
    // The state reads its password file the same way (daemon/postgres_connection).
    CHECK(error_of([&] { read_password_file(config.password_file); }) ==
          "password file " + config.password_file.string() + " is empty");
  }
}

TEST_CASE("postgres datastore: a census waits a bounded time for a table locked whole") {
  PostgresFixture fixture;
  fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  fixture.insert("logs", {"id", "at"}, {{std::int64_t{1}, k_cutoff_s - 1}});
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  // A migration (ALTER TABLE) or VACUUM FULL takes the whole table.
  pqxx::connection migration(fixture.config().dsn);
  pqxx::work holding(migration);
  holding.exec("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE");

  const auto started = std::chrono::steady_clock::now();
  CHECK(error_of([&] { store->count(select_for(rule)); }) ==
        "datastore 'contract': another session held a lock on 'logs' for more than 10 s (ALTER "
        "TABLE, VACUUM FULL or LOCK TABLE); nothing was counted or changed, the next run tries "
        "again");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{20});
  holding.abort();
  CHECK(store->count(select_for(rule)).due == 1);  // the connection is fine afterwards
}

TEST_CASE("postgres datastore: rows another session holds locked are skipped, not waited for") {
  PostgresFixture fixture;
  fixture.create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::integer}});
  std::vector<std::vector<Cell>> rows;
  for (std::int64_t id = 1; id <= 6; ++id)
    rows.push_back({id, id == 6 ? k_cutoff_s + 1 : k_cutoff_s - id});
  fixture.insert("logs", {"id", "at"}, rows);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  auto store = open_postgres(fixture.config(), OpenMode::read_write);

  // The application holds row 2 in an open transaction.
  pqxx::connection application(fixture.config().dsn);
  auto holding = std::make_unique<pqxx::work>(application);
  holding->exec("SELECT 1 FROM logs WHERE id = 2 FOR UPDATE");

  const auto started = std::chrono::steady_clock::now();
  SUBCASE("walking the table") {
    CHECK(store->count(select_for(rule)).due == 5);
    CHECK(drain(*store, select_for(rule), 2).first == 4);
  }
  SUBCASE("through the anchor's index") {
    fixture.create_index("logs", "at");
    fixture.insert("logs", {"id", "at"}, {{std::int64_t{100}, k_cutoff_s + 100}});
    std::vector<std::vector<Cell>> young;
    for (std::int64_t id = 200; id < 400; ++id)
      young.push_back({id, k_cutoff_s + id});
    fixture.insert("logs", {"id", "at"}, young);
    CHECK(store->count(select_for(rule)).due == 5);
    CHECK(drain(*store, select_for(rule), 2).first == 4);
  }
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{2});
  CHECK(ids_of(fixture, "logs").front() == 2);

  // Once the application lets go, the next run takes the row.
  holding.reset();
  CHECK(drain(*store, select_later(rule)).first == 1);
  CHECK(ids_of(fixture, "logs").front() == 6);
}

TEST_CASE("postgres datastore: a locked parent is skipped with its children; a locked child "
          "fails the batch quickly") {
  PostgresFixture fixture;
  build_accounts(fixture);
  const Rule rule = accounts_rule();
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  pqxx::connection application(fixture.config().dsn);
  pqxx::work holding(application);

  SUBCASE("parent") {
    holding.exec("SELECT 1 FROM accounts WHERE id = 1 FOR UPDATE");
    CHECK(drain(*store, select_for(rule)) == std::pair<std::int64_t, std::int64_t>{1, 2});
    CHECK(ids_of(fixture, "accounts") == std::vector<std::int64_t>{1, 3});
    CHECK(ids_of(fixture, "sessions") == std::vector<std::int64_t>{1, 2, 4, 5});
    CHECK(ids_of(fixture, "tickets") == std::vector<std::int64_t>{2});
  }
  SUBCASE("child") {
    holding.exec("SELECT 1 FROM sessions WHERE id = 3 FOR UPDATE");
    const auto started = std::chrono::steady_clock::now();
    CHECK(error_of([&] { drain(*store, select_for(rule)); }) ==
          "datastore 'contract': another session held a lock the batch needed for more than "
          "500 ms (canceling statement due to lock timeout); the batch was rolled back, the next "
          "run tries again");
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{2});
    CHECK(ids_of(fixture, "accounts") == std::vector<std::int64_t>{1, 2, 3});
    CHECK(ids_of(fixture, "sessions") == std::vector<std::int64_t>{1, 2, 3, 4, 5});
    // The connection is usable again: with the lock gone, the next run goes through.
    holding.abort();
    CHECK(drain(*store, select_later(rule)) == std::pair<std::int64_t, std::int64_t>{2, 4});
  }
}

TEST_CASE("postgres datastore: a read_only session writes nothing, not even a transaction id") {
  PostgresFixture fixture;
  build_accounts(fixture);
  build_people(fixture);
  const std::string before = fixture.snapshot();
  pqxx::connection observer(fixture.config().dsn);
  const auto next_transaction_id = [&] {
    pqxx::nontransaction query(observer);
    return query.exec("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0][0]
        .as<std::string>();
  };
  const std::string next_before = next_transaction_id();
  {
    auto store = open_postgres(fixture.config(), OpenMode::read_only);
    CHECK(store->check_schema(accounts_rule()).errors.empty());
    CHECK(store->count(select_for(accounts_rule())).due == 2);
    CHECK(store->count_by_anchor(select_for(accounts_rule()), {k_cutoff}) ==
          std::vector<std::int64_t>{2, 1});
    store->plan_run(select_for(accounts_rule()));
    CHECK(error_of([&] { store->begin_batch(select_for(accounts_rule()), 10); }) ==
          "datastore 'contract' is open read-only");
    store->finish_run();
  }
  // Every transaction that writes anything gets an id; none was handed out.
  CHECK(next_transaction_id() == next_before);
  CHECK(fixture.snapshot() == before);
}

TEST_CASE("postgres datastore: hmac without a key fails the batch and changes nothing") {
  PostgresFixture fixture;
  build_people(fixture);
  const auto before = fixture.select("people", {"id", "email", "anonymized_at"});
  auto store =
      adapters::postgres::open_postgres_datastore(fixture.config(), OpenMode::read_write, {});
  Rule rule = make_rule("people", "seen", AgeFormat::unix_seconds);
  set_masks(rule);
  rule.anonymized_column = "anonymized_at";
  CHECK(error_of([&] { store->begin_batch(select_for(rule), 10); }) ==
        "datastore 'contract': mask 'hmac' on column 'email' needs a key, and none is configured");
  CHECK(fixture.select("people", {"id", "email", "anonymized_at"}) == before);
}

TEST_CASE("postgres datastore: linked files go first, then their rows; refused paths keep theirs") {
  PostgresFixture fixture;
  test::TempDir dir;
  std::filesystem::create_directories(dir / "media/videos");
  for (const std::string name : {"videos/1.mp4", "videos/2.mp4", "videos/6.mp4"})
    std::ofstream(dir / ("media/" + name)) << "video";
  std::ofstream(dir / "outside.txt") << "not retentiond's";
  fixture.create_table(
      "videos", {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"path", ColumnType::text}});
  const std::int64_t old = k_cutoff_s - k_day_s;
  using std::string;
  fixture.insert("videos", {"id", "at", "path"},
                 {{std::int64_t{1}, old, string{"videos/1.mp4"}},
                  {std::int64_t{2}, old, string{"videos/2.mp4"}},
                  {std::int64_t{3}, old, string{"../outside.txt"}},   // refused: leaves the root
                  {std::int64_t{4}, old, string{"videos/gone.mp4"}},  // already gone: not an error
                  {std::int64_t{5}, old, nullptr},
                  {std::int64_t{6}, k_cutoff_s + 1, string{"videos/6.mp4"}}});
  auto files = open_media(dir / "media");
  Rule rule = make_rule("videos", "at", AgeFormat::unix_seconds);
  rule.files = LinkedFilesConfig{"media", "path"};
  Selection selection = select_for(rule);
  selection.linked_files = files->linked_files();
  auto store = open_postgres(fixture.config(), OpenMode::read_write);

  const RuleCounts counts = store->count(selection);
  CHECK(counts.due == 4);
  CHECK(counts.refused == 1);
  auto batch = store->begin_batch(selection, 100);
  REQUIRE(batch != nullptr);
  CHECK(batch->rows() == 4);
  CHECK(batch->files() == 2);
  REQUIRE(batch->refusals().size() == 1);
  CHECK(batch->refusals().front().first == "id 3");
  // Nothing is removed before the commit.
  CHECK(std::filesystem::exists(dir / "media/videos/1.mp4"));
  batch->commit();
  CHECK(batch->vanished() == 0);
  CHECK(ids_of(fixture, "videos") == std::vector<std::int64_t>{3, 6});
  CHECK_FALSE(std::filesystem::exists(dir / "media/videos/1.mp4"));
  CHECK_FALSE(std::filesystem::exists(dir / "media/videos/2.mp4"));
  CHECK(std::filesystem::exists(dir / "media/videos/6.mp4"));
  CHECK(file_bytes(dir / "outside.txt") == "not retentiond's");
  CHECK(drain(*store, selection).first == 0);

  // A later run refuses the same row again, and still keeps it.
  Selection later = select_later(rule);
  later.linked_files = files->linked_files();
  CHECK(store->count(later).refused == 1);
  CHECK(drain(*store, later).first == 0);
  CHECK(ids_of(fixture, "videos") == std::vector<std::int64_t>{3, 6});
}

TEST_CASE("datastore contract: iso8601 text is read with exactly parse_iso8601's grammar") {
  for_each_target([](const ContractTarget& target) {
    const std::vector<std::string> texts{
        "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "0000-02-29",
        "0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.999Z",
        "2024-06-01T12:00+0530", "2024-06-01T12:00:00-2359", "2024-06-01T12:00:00.5+02:00",
        "2024-06-01 08:15:30.25",
        // Unreadable: ten fraction digits, an empty fraction, hour 24, a leap second, offsets
        // out of range or without minutes, lower case, spaces, short fields, no time after T, an
        // offset after a bare date, month 0, day 0, June 31.
        "2024-06-01T12:00:00.1234567891Z", "2024-06-01T12:00:00.Z", "2024-06-01T24:00:00Z",
        "2024-06-01T23:59:60Z", "2024-06-01T12:00:00+24:00", "2024-06-01T12:00:00+05:60",
        "2024-06-01T12:00:00+02", "2024-06-01t12:00:00z", "2024-06-01 12:00:00 ", " 2024-06-01",
        "2024-6-01", "2024-06-01T12", "2024-06-01Z", "2024-00-10", "2024-06-00", "2024-06-31"};
    auto fixture = target.fixture();
    fixture->create_table("logs", {{"id", ColumnType::key}, {"at", ColumnType::text}});
    std::vector<std::vector<Cell>> rows;
    std::vector<Instant> instants;  // of the readable ones
    for (std::size_t i = 0; i < texts.size(); ++i) {
      rows.push_back({static_cast<std::int64_t>(i), texts[i]});
      if (const auto instant = parse_iso8601(texts[i]))
        instants.push_back(*instant);
    }
    fixture->insert("logs", {"id", "at"}, rows);
    const Rule rule = make_rule("logs", "at", AgeFormat::iso8601);
    auto store = target.open(fixture->config(), OpenMode::read_only);
    const auto due_at = [&](Instant cutoff) {
      return store->count(Selection{rule, cutoff, cutoff, {}}).due;
    };
    CHECK(store->count(select_for(rule)).unreadable ==
          static_cast<std::int64_t>(texts.size() - instants.size()));
    // Each readable anchor is the very instant parse_iso8601 reads: due one millisecond after
    // it, not at it.
    for (const Instant instant : instants) {
      CAPTURE(format_iso8601(instant));
      const auto older = [&](Instant cutoff) {
        return std::count_if(instants.begin(), instants.end(),
                             [&](Instant other) { return other < cutoff; });
      };
      CHECK(due_at(instant) == older(instant));
      CHECK(due_at(instant + std::chrono::milliseconds{1}) ==
            older(instant + std::chrono::milliseconds{1}));
    }
  });
}

namespace {

// The `id`s of the rows stored in `table` itself, without its inheritance children's.
std::vector<std::int64_t> own_ids(const PostgresFixture& fixture, const std::string& table) {
  pqxx::connection connection(fixture.config().dsn);
  pqxx::nontransaction query(connection);
  std::vector<std::int64_t> ids;
  for (const pqxx::row& row : query.exec("SELECT id FROM ONLY " + quoted(table) + " ORDER BY id"))
    ids.push_back(row[0].as<std::int64_t>());
  return ids;
}

}  // namespace

TEST_CASE("postgres datastore: tables with inheritance children or parents are refused") {
  PostgresFixture fixture;
  const std::int64_t old = k_cutoff_s - k_day_s;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint, account_id bigint)");
  fixture.exec(fmt::format("INSERT INTO logs SELECT g, {}, 1 FROM generate_series(1, 5) AS g",
                           k_cutoff_s + 100));
  fixture.exec("CREATE TABLE logs_archive() INHERITS (logs)");
  // Stored at the same addresses (ctids) as logs' first three rows.
  fixture.exec(fmt::format("INSERT INTO logs_archive SELECT g, {}, 1 FROM generate_series(11, 13) "
                           "AS g",
                           old));
  fixture.exec("CREATE TABLE accounts(id bigint PRIMARY KEY, seen bigint)");
  fixture.exec(fmt::format("INSERT INTO accounts VALUES (1, {})", old));
  // A partition is a table of its own: its rows have their own addresses.
  fixture.exec("CREATE TABLE parts(id bigint, at bigint) PARTITION BY RANGE (at)");
  fixture.exec("CREATE TABLE parts_old PARTITION OF parts FOR VALUES FROM (0) TO (2000000000)");
  fixture.exec(fmt::format("INSERT INTO parts VALUES (1, {}), (2, {})", old, k_cutoff_s + 100));
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  using Errors = std::vector<std::string>;
  const std::string parent_error =
      "table 'logs' in datastore 'contract' has inheritance children (logs_archive), which this "
      "version cannot batch: statements on it would change their rows too (detach them: ALTER "
      "TABLE logs_archive NO INHERIT logs)";

  const Rule logs = make_rule("logs", "at", AgeFormat::unix_seconds);
  CHECK(store->check_schema(logs).errors == Errors{parent_error});
  // Even when asked to, a batch changes nothing.
  CHECK(error_of([&] { store->begin_batch(select_for(logs), 100); }) ==
        "datastore 'contract': " + parent_error);

  const Rule archive = make_rule("logs_archive", "at", AgeFormat::unix_seconds);
  CHECK(store->check_schema(archive).errors ==
        Errors{"table 'logs_archive' in datastore 'contract' inherits from logs, which this "
               "version cannot batch (detach it: ALTER TABLE logs_archive NO INHERIT logs)"});
  CHECK(error_of([&] { store->begin_batch(select_for(archive), 100); })
            .starts_with("datastore 'contract': table 'logs_archive' in datastore 'contract' "
                         "inherits from logs"));

  Rule cascade = make_rule("accounts", "seen", AgeFormat::unix_seconds);
  cascade.cascade = {{"logs", "account_id", "id"}};
  CHECK(store->check_schema(cascade).errors == Errors{parent_error});
  CHECK(error_of([&] { store->begin_batch(select_for(cascade), 100); }) ==
        "datastore 'contract': " + parent_error);

  Rule parent = make_rule("accounts", "", AgeFormat::native);
  parent.age_from = ParentAnchor{"logs", "at", "id", "id"};
  parent.age_format = AgeFormat::unix_seconds;
  CHECK(store->check_schema(parent).errors == Errors{parent_error});

  CHECK(own_ids(fixture, "logs") == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(own_ids(fixture, "logs_archive") == std::vector<std::int64_t>{11, 12, 13});
  CHECK(own_ids(fixture, "accounts") == std::vector<std::int64_t>{1});

  const Rule partition = make_rule("parts_old", "at", AgeFormat::unix_seconds);
  CHECK(store->check_schema(partition).errors.empty());
  CHECK(drain(*store, select_for(partition)).first == 1);
  CHECK(own_ids(fixture, "parts_old") == std::vector<std::int64_t>{2});
}

TEST_CASE("postgres datastore: held subjects are compared in the subject column's type") {
  PostgresFixture fixture;
  const std::int64_t old = k_cutoff_s - k_day_s;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint, uid uuid, n integer, "
               "amount numeric, flag boolean, born date)");
  fixture.exec(fmt::format(
      "INSERT INTO logs VALUES (1, {0}, '3f2504e0-4f89-11d3-9a0c-0305e82c3301', 42, 42.0, true, "
      "'1985-06-15'), (2, {0}, '6ba7b810-9dad-11d1-80b4-00c04fd430c8', 7, 7.5, false, "
      "'1990-01-01'), (3, {0}, NULL, NULL, NULL, NULL, NULL), (4, {1}, "
      "'3f2504e0-4f89-11d3-9a0c-0305e82c3301', 42, 42, true, '1985-06-15')",
      old, k_cutoff_s + 100));
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  const auto held_run = [&](const std::string& column, std::vector<std::string> subjects) {
    CAPTURE(column);
    Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    rule.subject_column = column;
    const Selection selection = select_for(rule, std::move(subjects));
    CHECK(store->count(selection).held == 1);
    CHECK(store->count(selection).due == 2);
    CHECK(drain(*store, selection).first == 2);
    CHECK(ids_of(fixture, "logs") == std::vector<std::int64_t>{1, 4});
  };

  // Subjects that are no value of the column's type (a stray text, an integer out of range)
  // hold nothing and fail nothing; a NULL subject is never held.
  SUBCASE("uuid, in upper case") {
    held_run("uid", {"3F2504E0-4F89-11D3-9A0C-0305E82C3301", "not-a-uuid"});
  }
  // By value, where SQLite compares text forms (docs/operations.md).
  SUBCASE("integer, with a leading zero") {
    held_run("n", {"042", "99999999999", "4.2"});
  }
  SUBCASE("numeric 42.0, held as 42") {
    held_run("amount", {"42"});
  }
  SUBCASE("boolean, as yes") {
    held_run("flag", {"yes", "maybe"});
  }
  SUBCASE("date") {
    held_run("born", {"1985-06-15", "1985-13-45"});
  }
  SUBCASE("no subject casts: nothing is held") {
    Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
    rule.subject_column = "uid";
    const Selection selection = select_for(rule, {"x') OR true --"});
    CHECK(store->count(selection).held == 0);
    CHECK(drain(*store, selection).first == 3);
    CHECK(ids_of(fixture, "logs") == std::vector<std::int64_t>{4});
  }
}

TEST_CASE("postgres datastore: foreign keys that delete or change rows the rule does not name "
          "are refused") {
  PostgresFixture fixture;
  const std::int64_t old = k_cutoff_s - k_day_s;
  fixture.exec("CREATE TABLE accounts(id bigint PRIMARY KEY, seen bigint, email text, "
               "anonymized_at text)");
  fixture.exec("CREATE TABLE sessions(id bigint PRIMARY KEY, account_id bigint REFERENCES "
               "accounts ON DELETE CASCADE)");
  fixture.exec("CREATE TABLE notes(id bigint PRIMARY KEY, author bigint REFERENCES accounts "
               "ON DELETE SET NULL)");
  fixture.exec("CREATE TABLE tickets(id bigint PRIMARY KEY, owner bigint REFERENCES accounts)");
  fixture.exec(fmt::format("INSERT INTO accounts VALUES (1, {}, 'a', NULL), (2, {}, 'b', NULL)",
                           old, k_cutoff_s + 100));
  fixture.exec("INSERT INTO sessions VALUES (1, 1), (2, 2)");
  fixture.exec("INSERT INTO notes VALUES (1, 1), (2, 2)");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  using Errors = std::vector<std::string>;
  const std::string sessions_error =
      "table 'sessions' references 'accounts' (account_id) ON DELETE CASCADE: deleting rows of "
      "'accounts' would make PostgreSQL delete rows of 'sessions' that the rule does not name and "
      "the audit does not count (add it to cascade: { table = \"sessions\", foreign_key = "
      "\"account_id\" })";
  const std::string notes_error =
      "table 'notes' references 'accounts' (author) ON DELETE SET NULL: deleting rows of "
      "'accounts' would make PostgreSQL change rows of 'notes' that the rule does not name and "
      "the audit does not count (add it to cascade: { table = \"notes\", foreign_key = "
      "\"author\" })";

  Rule rule = make_rule("accounts", "seen", AgeFormat::unix_seconds);
  // ON DELETE NO ACTION (tickets) fails the delete instead: nothing changes unseen.
  CHECK(store->check_schema(rule).errors == Errors{notes_error, sessions_error});
  CHECK(error_of([&] { store->begin_batch(select_for(rule), 100); }) ==
        "datastore 'contract': " + notes_error + "; " + sessions_error);
  rule.cascade = {{"sessions", "account_id", "id"}};
  CHECK(store->check_schema(rule).errors == Errors{notes_error});
  // A cascade on another column does not count what the foreign key deletes.
  rule.cascade = {{"sessions", "id", "id"}, {"notes", "author", "id"}};
  CHECK(store->check_schema(rule).errors == Errors{sessions_error});
  CHECK(ids_of(fixture, "accounts") == std::vector<std::int64_t>{1, 2});
  CHECK(ids_of(fixture, "sessions") == std::vector<std::int64_t>{1, 2});

  // Anonymizing deletes no account; its cascades are deleted, and checked alike.
  Rule anonymize = make_rule("accounts", "seen", AgeFormat::unix_seconds);
  anonymize.action = Action::anonymize;
  anonymize.anonymized_column = "anonymized_at";
  anonymize.masks = {{"email", Mask::redact}};
  CHECK(store->check_schema(anonymize).errors.empty());
  fixture.exec("CREATE TABLE session_events(id bigint PRIMARY KEY, session_id bigint REFERENCES "
               "sessions ON DELETE CASCADE)");
  anonymize.cascade = {{"sessions", "account_id", "id"}};
  CHECK(store->check_schema(anonymize).errors ==
        Errors{"table 'session_events' references 'sessions' (session_id) ON DELETE CASCADE: "
               "deleting rows of 'sessions' would make PostgreSQL delete rows of "
               "'session_events' that the rule does not name and the audit does not count "
               "(cascade deletes children of the rule's table only: make the foreign key ON "
               "DELETE RESTRICT or NO ACTION)"});

  // Every foreign key that acts is in cascade: the rule runs and counts all it deletes.
  rule.cascade = {{"sessions", "account_id", "id"}, {"notes", "author", "id"}};
  fixture.exec("DROP TABLE session_events");
  const adapters::SchemaCheck check = store->check_schema(rule);
  CHECK(check.errors.empty());
  CHECK(check.warnings == Errors{"no index on accounts.seen: finding expired rows scans the whole "
                                 "table (CREATE INDEX ON accounts(seen))",
                                 "no index on sessions.account_id: each batch scans sessions to "
                                 "find children",
                                 "no index on notes.author: each batch scans notes to find "
                                 "children"});
  CHECK(drain(*store, select_for(rule)) == std::pair<std::int64_t, std::int64_t>{1, 2});
  CHECK(ids_of(fixture, "accounts") == std::vector<std::int64_t>{2});
  CHECK(ids_of(fixture, "sessions") == std::vector<std::int64_t>{2});
  CHECK(ids_of(fixture, "notes") == std::vector<std::int64_t>{2});
}

TEST_CASE("postgres datastore: triggers and rewrite rules are warned about; suppressed deletes "
          "end the run") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  fixture.exec("CREATE INDEX ON logs(at)");
  fixture.exec(fmt::format("INSERT INTO logs SELECT g, CASE WHEN g <= 3 THEN {} ELSE {} END FROM "
                           "generate_series(1, 100) AS g",
                           k_cutoff_s - k_day_s, k_cutoff_s + 100));
  fixture.exec("CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; "
               "END$$");
  fixture.exec("CREATE TRIGGER keep_logs BEFORE DELETE ON logs FOR EACH ROW EXECUTE FUNCTION "
               "keep()");
  fixture.exec("CREATE TRIGGER on_insert BEFORE INSERT ON logs FOR EACH ROW EXECUTE FUNCTION "
               "keep()");
  fixture.exec("ALTER TABLE logs DISABLE TRIGGER on_insert");
  fixture.exec("CREATE RULE no_update AS ON UPDATE TO logs DO INSTEAD NOTHING");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  CHECK(store->check_schema(rule).warnings ==
        std::vector<std::string>{"table 'logs' has trigger 'keep_logs' on DELETE: what it does is "
                                 "not counted in the audit log"});
  rule.action = Action::anonymize;
  rule.masks = {{"id", Mask::null}};
  CHECK(store->check_schema(rule).warnings ==
        std::vector<std::string>{"table 'logs' has rewrite rule 'no_update' on UPDATE: what it "
                                 "does is not counted in the audit log"});

  // Through the anchor's index (3 of 100 due) and by ranges of pages: the rows stay, and each
  // run ends instead of finding them again and again.
  rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  CHECK(store->count(select_for(rule)).due == 3);
  auto batch = store->begin_batch(select_for(rule), 2);
  REQUIRE(batch != nullptr);
  CHECK(batch->rows() == 0);
  CHECK(batch->exhausted());
  batch->commit();
  CHECK(store->begin_batch(select_for(rule), 2) == nullptr);
  CHECK(drain(*store, select_later(rule), 2).first == 0);
  CHECK(ids_of(fixture, "logs").size() == 100);
}

TEST_CASE("postgres datastore: session settings live in the connection string, with the dsn's "
          "own options, and survive a reconnection") {
  PostgresFixture fixture;
  fixture.exec("CREATE SCHEMA app");
  // A view that shows the settings of the session reading it: the anchor is NULL (undated)
  // unless the session is read-only by default and in UTC.
  fixture.exec("CREATE VIEW app.probe AS SELECT 1::bigint AS id, CASE WHEN "
               "current_setting('default_transaction_read_only') = 'on' AND "
               "current_setting('TimeZone') = 'UTC' AND current_setting('DateStyle') = 'ISO, YMD' "
               "THEN 0::bigint END AS at");
  fixture.exec("ALTER DATABASE " + quoted(fixture.database()) +
               " SET timezone TO 'Pacific/Auckland'");
  DatastoreConfig config = fixture.config();
  config.dsn += " options='-c search_path=app'";
  auto store = open_postgres(config, OpenMode::read_only);
  const Rule rule = make_rule("probe", "at", AgeFormat::unix_seconds);
  CHECK(store->count(select_for(rule)).due == 1);

  pqxx::connection admin(fixture.config().dsn);
  pqxx::nontransaction(admin).exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
      "current_database() AND application_name = 'retentiond'");
  // libpqxx reconnects on the next use (that one may fail first).
  RuleCounts counts;
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      counts = store->count(select_for(rule));
      break;
    } catch (const std::runtime_error&) {
    }
  }
  CHECK(counts.total == 1);
  CHECK(counts.due == 1);
  CHECK(counts.undated == 0);
}

// A token that is all digits but no transaction this server has run (a datastore now pointing
// at another cluster, or one restored since): the server says "transaction ID ... is in the
// future". That reads as "cannot tell", not as an error that keeps the rule from running.
TEST_CASE("postgres datastore: a batch token from another cluster cannot be told, not an error") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  const Rule rule = make_rule("logs", "at", AgeFormat::unix_seconds);
  std::optional<bool> answer = true;
  std::string error;
  try {
    answer = store->batch_committed(rule, "4938271650123456");
  } catch (const std::exception& e) {
    error = e.what();
  }
  CAPTURE(error);
  CHECK(error.empty());
  CHECK(answer == std::nullopt);
}

// A batch whose session the server has ended (idle_in_transaction_session_timeout after a slow
// audit write, pg_terminate_backend, a network drop) cannot commit its rows any more: it must
// not remove their linked files either.
TEST_CASE("postgres datastore: a batch whose session died before COMMIT keeps its linked files") {
  retentiond::test::TempDir dir;
  const std::filesystem::path root = dir / "media";
  std::filesystem::create_directories(root / "v");
  std::ofstream(root / "v" / "a.mp4") << "video";
  PostgresFixture fixture;
  fixture.create_table(
      "videos", {{"id", ColumnType::key}, {"at", ColumnType::integer}, {"path", ColumnType::text}});
  fixture.insert("videos", {"id", "at", "path"},
                 {{std::int64_t{1}, k_cutoff_s - k_day_s, std::string{"v/a.mp4"}}});
  auto files = open_media(root);
  Rule rule = make_rule("videos", "at", AgeFormat::unix_seconds);
  rule.files = LinkedFilesConfig{"media", "path"};
  Selection selection = select_for(rule);
  selection.linked_files = files->linked_files();
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  auto batch = store->begin_batch(selection, 10);
  REQUIRE(batch != nullptr);
  REQUIRE(batch->rows() == 1);
  REQUIRE(batch->files() == 1);
  {
    pqxx::connection admin(fixture.config().dsn);
    pqxx::nontransaction(admin).exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
        "current_database() AND state = 'idle in transaction'");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK_THROWS(batch->commit());
  CHECK(ids_of(fixture, "videos") == std::vector<std::int64_t>{1});
  CHECK(batch->files_removed() == 0);
  CHECK(std::filesystem::exists(root / "v" / "a.mp4"));
}

// A batch ends its transaction's idle time at 60 s (a host that went down leaves no row locks
// for long), but never lengthens a stricter limit set for the server, database or role.
TEST_CASE("postgres datastore: a stricter idle_in_transaction_session_timeout stays in force in "
          "a batch") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  fixture.exec(fmt::format("INSERT INTO logs VALUES (1, {})", k_cutoff_s - 1));
  fixture.exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET "
               "idle_in_transaction_session_timeout = 1000', current_database()); END $$");
  auto store = open_postgres(fixture.config(), OpenMode::read_write);
  auto batch = store->begin_batch(select_for(make_rule("logs", "at", AgeFormat::unix_seconds)), 10);
  REQUIRE(batch);
  REQUIRE(batch->rows() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  CHECK_THROWS(batch->commit());
  CHECK(ids_of(fixture, "logs") == std::vector<std::int64_t>{1});
}

// A COMMIT that loses its connection, with a server that cannot be asked how it ended (here:
// retentiond's role may no longer log in): the batch is in doubt, and says so, so that the
// engine writes no compensating entry that could be wrong and leaves the run for the next one.
TEST_CASE("postgres datastore: a COMMIT lost with no way to ask the server is in doubt") {
  PostgresFixture fixture;
  fixture.exec("CREATE TABLE logs(id bigint PRIMARY KEY, at bigint)");
  fixture.exec(fmt::format("INSERT INTO logs VALUES (1, {})", k_cutoff_s - 1));
  // A deferred trigger runs inside COMMIT: this one keeps the COMMIT going for a while.
  fixture.exec("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "PERFORM pg_sleep(10); RETURN NULL; END $$");
  fixture.exec("CREATE CONSTRAINT TRIGGER slow_commit AFTER DELETE ON logs DEFERRABLE INITIALLY "
               "DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()");
  fixture.exec("CREATE ROLE in_doubt LOGIN");
  fixture.exec("GRANT ALL ON logs TO in_doubt");
  DatastoreConfig config = fixture.config();
  config.dsn += " user=in_doubt";
  auto store = open_postgres(config, OpenMode::read_write);
  auto batch = store->begin_batch(select_for(make_rule("logs", "at", AgeFormat::unix_seconds)), 10);
  REQUIRE(batch);
  REQUIRE(batch->rows() == 1);
  std::thread cut([&] {
    // While the COMMIT sleeps: the role may no longer log in, and its session ends.
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
    pqxx::connection admin(fixture.config().dsn);
    pqxx::nontransaction cutting(admin);
    cutting.exec("ALTER ROLE in_doubt NOLOGIN");
    cutting.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "
                 "'in_doubt'");
  });
  const std::string message = error_of([&] {
    try {
      batch->commit();
    } catch (const adapters::CommitInDoubt& in_doubt) {
      throw std::runtime_error(std::string{"in doubt: "} + in_doubt.what());
    }
  });
  cut.join();
  CHECK(retentiond::test::contains(message, "in doubt: datastore 'contract': the connection was "
                                            "lost during COMMIT ("));
  CHECK(retentiond::test::contains(message, " committed is not known yet"));
  CHECK(ids_of(fixture, "logs") == std::vector<std::int64_t>{1});  // it had rolled back
}
