// The datastore contract: what the engine relies on from every adapter, written once as test
// bodies that take a factory and a fixture builder, then run against every backend.
//
// A backend joins by adding one ContractTarget to contract_targets(): a factory that opens its
// adapter (passing k_contract_hmac_key as the hmac secret) and a FixtureBuilder that creates
// tables, rows and snapshots in a fresh datastore of that kind.
#include "adapters/datastore.hpp"
#include "adapters/sqlite/sqlite_datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/digest.hpp"
#include "daemon/timestamp.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

using namespace retentiond;
using adapters::Batch;
using adapters::Datastore;
using adapters::OpenMode;
using adapters::RuleCounts;
using adapters::Selection;
using retentiond::test::file_bytes;

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
  virtual void create_index(const std::string& table, const std::string& column) = 0;
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
};

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
      sql += (i == 0 ? "\"" : ", \"") + columns[i].name + "\" " + sql_type(columns[i].type);
    m_db.exec(sql + ")");
  }

  void create_index(const std::string& table, const std::string& column) override {
    m_db.exec("CREATE INDEX \"" + table + "_" + column + "\" ON \"" + table + "\"(\"" + column +
              "\")");
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

// Every backend the contract runs against. PostgreSQL joins here when its adapter exists.
std::vector<ContractTarget> contract_targets() {
  return {
      {"sqlite",
       [](const DatastoreConfig& config, OpenMode mode) {
         return adapters::sqlite::open_sqlite_datastore(
             config, mode, adapters::AdapterSecrets{std::string{k_contract_hmac_key}});
       },
       [] { return std::make_unique<SqliteFixture>(); }},
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
  fixture->insert("logs", {"id", "at"}, rows);
  const Rule rule = make_rule("logs", "at", AgeFormat::iso8601);
  auto store = target.open(fixture->config(), OpenMode::read_write);
  check_counts(store->count(select_for(rule)),
               expect(19, 19, 6, 0, 1, 5, 1, 0, at("2023-01-01T00:00:00Z")));

  CHECK(drain(*store, select_for(rule)).first == 6);
  CHECK(ids_of(*fixture, "logs") ==
        std::vector<std::int64_t>{1, 3, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18, 19});
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
           nullptr},
          {std::int64_t{3}, old, string{"bob@example.com"}, string{"not-an-ip"}, string{"Bob"},
           string{""}, string{"1999-12-31T23:00:00Z"}},
          {std::int64_t{4}, old, string{"ann@example.com"}, nullptr, string{"Ann"}, string{"0"},
           string{"unknown"}},
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
  CHECK(rows[1] == TextRow{"2", old, Text{}, "2001:db8:abcd::", Text{}, Text{}, Text{}, done});
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
    CHECK(contains(check.errors, "no column 'created'"));
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

TEST_CASE("datastore contract: iso8601 anchors with offsets, fractions and bad dates") {
  for_each_target(counts_iso8601);
}

TEST_CASE("datastore contract: iso8601 anchors on days that do not exist are unreadable") {
  for_each_target(impossible_days_are_unreadable);
}

TEST_CASE("datastore contract: wrong-scale anchors are counted and never due") {
  for_each_target(wrong_scale_is_counted_and_never_due);
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

TEST_CASE("datastore contract: check_schema errors and warnings") {
  for_each_target(schema_checks);
}

TEST_CASE("datastore contract: read_only leaves the datastore byte-identical") {
  for_each_target(read_only_changes_nothing);
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
