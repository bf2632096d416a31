#include "adapters/postgres/postgres_datastore.hpp"

#include "adapters/postgres/postgres_masks.hpp"
#include "adapters/postgres/postgres_statements.hpp"
#include "daemon/postgres_connection.hpp"

#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

namespace retentiond::adapters::postgres {
namespace {

// How long a batch waits for a lock the application holds (a table lock, or a child row that
// a cascade deletes) before it gives up. Waiting longer would queue the application's own
// later lock requests behind the batch; rows of the rule's table are never waited for (SKIP
// LOCKED).
constexpr std::chrono::milliseconds k_lock_timeout{500};
// How long a census waits for a table another session locked whole (ALTER TABLE, VACUUM FULL,
// LOCK TABLE): the rules after it on the datastore wait as long.
constexpr std::chrono::seconds k_census_lock_timeout{10};
constexpr std::int64_t k_max_linked_files_per_batch = 256;
// How long a batch whose COMMIT lost the server waits for its transaction to end, when asked
// at once it is still "in progress" (see PostgresDatastore::transaction_outcome).
constexpr int k_commit_status_attempts = 50;
constexpr std::chrono::milliseconds k_commit_status_pause{100};
// How long the server keeps a batch's transaction open while retentiond is silent (between
// its statements and its COMMIT it writes the batch's audit entry and removes linked files).
// A host that went down mid-batch leaves a session that TCP would only notice hours later;
// this ends it, releasing its row locks, and lets the next run learn how the batch ended.
constexpr std::chrono::seconds k_batch_idle_timeout{60};
constexpr std::string_view k_lock_not_available = "55P03";
constexpr std::string_view k_undefined_function = "42883";
constexpr std::string_view k_query_canceled = "57014";
constexpr std::string_view k_invalid_parameter_value = "22023";
// How often a census looks at Selection::stop while the server counts.
constexpr std::chrono::milliseconds k_stop_poll{20};
constexpr int k_oldest_server = 140000;  // PQserverVersion's form of 14.0

// While it lives, a thread looks at `stop` every k_stop_poll and, once it is set, cancels the
// statement the connection is running (the server ends it with query_canceled). The census
// runs in the calling thread meanwhile, and the thread is gone before the next statement.
class CancelOnStop {
public:
  CancelOnStop(pqxx::connection_base& connection, const std::atomic<bool>* stop) {
    if (stop == nullptr)
      return;
    m_watch = std::jthread([this, &connection, stop](std::stop_token done) {
      std::unique_lock lock(m_mutex);
      while (!done.stop_requested()) {
        // Again at every poll: the server drops a cancel that finds no statement running
        // (between two statements, or while the client checks linked files).
        if (stop->load()) {
          try {
            connection.cancel_query();
          } catch (const std::exception& error) {
            spdlog::warn("cannot cancel the census on SIGTERM: {}", error.what());
            return;
          }
        }
        // Woken early when the census ends (the jthread asks the token to stop).
        m_wake.wait_for(lock, done, k_stop_poll, [] { return false; });
      }
    });
  }
  CancelOnStop(const CancelOnStop&) = delete;
  CancelOnStop& operator=(const CancelOnStop&) = delete;

private:
  std::mutex m_mutex;
  std::condition_variable_any m_wake;
  std::jthread m_watch;  // last: joined first
};

pqxx::result run(pqxx::transaction_base& tx, const SqlFragment& fragment) {
  std::vector<const char*> params;
  params.reserve(fragment.values.size());
  for (const SqlValue& value : fragment.values)
    params.push_back(value ? value->c_str() : nullptr);
  return tx.exec_params(fragment.numbered(), pqxx::prepare::make_dynamic_params(params));
}

std::int64_t scalar(const pqxx::field& field) {
  return field.is_null() ? 0 : field.as<std::int64_t>();
}

// A message from libpq or the server without the "ERROR:  " prefix and without the lines that
// point into the statement.
std::string first_line(const std::exception& error) {
  std::string text = error.what();
  if (text.starts_with("ERROR:  "))
    text.erase(0, 8);
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r'))
    text.pop_back();
  return text;
}

// Set for the whole session in the connection string, so that libpqxx's silent reconnection
// of a broken connection keeps them: timestamps without a time zone are read as UTC and text
// forms are ISO, whatever the server's defaults; read-only sessions make the server itself
// refuse any write, whatever a statement would do.
std::string session_options(OpenMode mode) {
  std::string options = "-c TimeZone=UTC -c DateStyle=ISO,YMD";
  if (mode == OpenMode::read_only)
    options += " -c default_transaction_read_only=on";
  return options;
}

std::unique_ptr<pqxx::connection> connect(const DatastoreConfig& config, OpenMode mode) {
  std::optional<std::string> password;
  if (!config.password_file.empty()) {
    try {
      password = read_password_file(config.password_file);
    } catch (const std::exception& error) {
      throw std::runtime_error(fmt::format("datastore '{}': {}", config.name, error.what()));
    }
  }
  if (const auto problem = dsn_problem(config.dsn))
    throw std::runtime_error(
        fmt::format("datastore '{}': cannot connect: {}", config.name, *problem));
  const std::string conninfo = connection_string(config.dsn, password, session_options(mode)) +
                               " fallback_application_name='retentiond'";
  std::unique_ptr<pqxx::connection> connection;
  try {
    connection = std::make_unique<pqxx::connection>(conninfo);
  } catch (const std::exception& error) {
    throw std::runtime_error(
        fmt::format("datastore '{}': cannot connect: {}", config.name, first_line(error)));
  }
  // Numeric infinities (read as unreadable anchors) and TID range scans (batches) came in 14.
  if (connection->server_version() < k_oldest_server)
    throw std::runtime_error(fmt::format("datastore '{}': the server runs PostgreSQL {}; this "
                                         "version of retentiond needs 14 or later",
                                         config.name, connection->server_version() / 10000));
  return connection;
}

std::string tid_text(std::int64_t block, std::int64_t offset) {
  return fmt::format("({},{})", block, offset);
}

// The position just after the row at `tid` ("(12,5)" -> block 12, offset 6), in datastore
// `name`.
std::pair<std::int64_t, std::int64_t> after_tid(const std::string& name, const std::string& tid) {
  long long block = 0;
  long long offset = 0;
  if (std::sscanf(tid.c_str(), "(%lld,%lld)", &block, &offset) != 2)
    throw std::runtime_error(fmt::format("datastore '{}': unexpected row address '{}'", name, tid));
  return {block, offset + 1};
}

std::string_view relation_kind(std::string_view relkind) {
  if (relkind == "v")
    return "view";
  if (relkind == "m")
    return "materialized view";
  if (relkind == "f")
    return "foreign table";
  if (relkind == "S")
    return "sequence";
  if (relkind == "i" || relkind == "I")
    return "index";
  return "relation";
}

// A table as the catalog describes it.
struct TableInfo {
  std::string kind;                          // pg_class.relkind; empty: no such table
  std::string oid;                           // pg_class.oid, as text
  std::string name;                          // as SQL names it (regclass text: quoted if need be)
  std::map<std::string, std::string> types;  // column -> type name (a domain's base type)
  std::vector<std::string> columns;          // in the table's order
  std::set<std::string> indexed;             // columns that lead an index
  std::set<std::string> unique;              // columns a unique index (not partial) covers alone
  std::set<std::string> not_null;            // columns declared NOT NULL
  std::map<std::string, int> max_length;     // varchar(n) and char(n) columns -> n
  std::vector<std::string> children;  // tables that inherit from it (INHERITS), as regclass text
  std::vector<std::string> parents;   // tables it inherits from (partitions excluded)
};

// The names in a text[] column's text form ("{a,"b c"}"), for names from the catalog.
std::vector<std::string> text_list(const pqxx::field& field) {
  std::vector<std::string> names;
  auto parser = field.as_array();
  for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done;
       std::tie(kind, value) = parser.get_next())
    if (kind == pqxx::array_parser::string_value)
      names.push_back(value);
  return names;
}

// Through the session's search_path, as the statements name the table.
TableInfo table_info(pqxx::transaction_base& tx, const std::string& table) {
  TableInfo info;
  // A partition is a table of its own (its ctids are its own); a table that INHERITS, or is
  // inherited from, is not: statements on the parent reach the children's rows too.
  const pqxx::result kind = run(
      tx, {"SELECT c.relkind::text, c.oid::text, c.oid::regclass::text, ARRAY(SELECT "
           "i.inhrelid::regclass::text FROM "
           "pg_catalog.pg_inherits AS i WHERE i.inhparent = c.oid ORDER BY 1), ARRAY(SELECT "
           "i.inhparent::regclass::text FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = c.oid "
           "AND NOT c.relispartition ORDER BY 1) FROM pg_catalog.pg_class AS c WHERE c.oid = "
           "to_regclass(?)",
           {quote_identifier(table)}});
  if (kind.empty())
    return info;
  info.kind = kind[0][0].as<std::string>();
  info.oid = kind[0][1].as<std::string>();
  info.name = kind[0][2].as<std::string>();
  if (info.kind != "p")
    info.children = text_list(kind[0][3]);
  info.parents = text_list(kind[0][4]);
  const pqxx::result columns = run(
      tx, {"SELECT a.attname::text, (CASE WHEN ty.typtype = 'd' THEN base.typname ELSE "
           "ty.typname END)::text, EXISTS (SELECT 1 FROM pg_catalog.pg_index AS i WHERE "
           "i.indrelid = a.attrelid AND i.indkey[0] = a.attnum), EXISTS (SELECT 1 FROM "
           "pg_catalog.pg_index AS i WHERE i.indrelid = a.attrelid AND i.indisunique AND "
           "i.indisvalid AND "
           "i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL), a.attnotnull, "
           "(CASE WHEN coalesce(base.typname, ty.typname) IN ('varchar', 'bpchar') THEN "
           "greatest(a.atttypmod, ty.typtypmod) - 4 END) "
           "FROM pg_catalog.pg_attribute AS a "
           "JOIN pg_catalog.pg_type AS ty ON ty.oid = a.atttypid LEFT JOIN pg_catalog.pg_type AS "
           "base ON base.oid = ty.typbasetype WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 "
           "AND NOT a.attisdropped ORDER BY a.attnum",
           {quote_identifier(table)}});
  for (const pqxx::row& column : columns) {
    const std::string name = column[0].as<std::string>();
    info.types.emplace(name, column[1].as<std::string>());
    info.columns.push_back(name);
    if (column[2].as<bool>())
      info.indexed.insert(name);
    if (column[3].as<bool>())
      info.unique.insert(name);
    if (column[4].as<bool>())
      info.not_null.insert(name);
    if (!column[5].is_null() && column[5].as<int>() > 0)
      info.max_length.emplace(name, column[5].as<int>());
  }
  return info;
}

class PostgresBatch final : public Batch {
public:
  // What one statement of a batch found: the address of the last row it locked (empty when it
  // locked none) and how many it locked.
  struct Piece {
    std::string last;
    std::int64_t selected = 0;
  };

  // Asks the server, on a connection of its own, whether the transaction with this id
  // committed: true, false (rolled back), nullopt (it cannot tell, or cannot be asked).
  using CommitStatus = std::function<std::optional<bool>(const std::string& xid)>;

  PostgresBatch(pqxx::connection& connection, std::string name, CommitStatus commit_status)
      : m_name(std::move(name)), m_commit_status(std::move(commit_status)), m_work(connection) {
    // The idle timeout only ever shortens: a stricter one set for the server or the role stays.
    m_work.exec(fmt::format(
        "SET LOCAL lock_timeout = '{0}ms'; SELECT set_config("
        "'idle_in_transaction_session_timeout', CASE WHEN setting::bigint BETWEEN 1 AND {1} THEN "
        "setting ELSE '{1}' END, true) FROM pg_settings WHERE name = "
        "'idle_in_transaction_session_timeout'",
        k_lock_timeout.count(),
        std::chrono::duration_cast<std::chrono::milliseconds>(k_batch_idle_timeout).count()));
  }

  // Destroying m_work uncommitted rolls the transaction back.
  ~PostgresBatch() override = default;

  std::int64_t rows() const override { return m_rows; }
  std::int64_t children() const override { return m_children; }
  std::int64_t files() const override { return static_cast<std::int64_t>(m_files.size()); }
  bool exhausted() const override { return m_exhausted; }
  bool cut_short() const override { return m_cut_short; }
  std::int64_t vanished() const override { return m_vanished; }
  std::int64_t files_removed() const override { return m_removed; }
  const std::vector<std::pair<std::string, std::string>>& refusals() const override {
    return m_refusals;
  }

  // A session the server has ended since the statements (idle_in_transaction_session_timeout
  // after a slow audit write, a lost connection) can no longer commit: fail before any file
  // goes.
  void check_session_before_removals() {
    try {
      m_work.exec("SELECT 1");
    } catch (const std::exception& error) {
      throw std::runtime_error(
          fmt::format("datastore '{}': commit failed: {}", m_name, first_line(error)));
    }
  }

  // After the batch's statements: the id of its transaction (none when it wrote nothing),
  // which names the batch (token) and lets a COMMIT that loses the server ask how it ended.
  void note_transaction_id() {
    const pqxx::field xid = m_work.exec1("SELECT txid_current_if_assigned()::text")[0];
    m_xid = xid.is_null() ? "" : xid.as<std::string>();
  }
  std::string token() const override { return m_xid; }
  std::vector<PendingFile> pending_files() const override { return pending_files_of(m_files); }

  void commit() override {
    const std::string& id = m_xid;
    if (!m_files.empty())
      check_session_before_removals();
    // The file goes first: a row is never deleted while its file stays behind.
    for (auto& file : m_files) {
      if (file->remove())
        ++m_removed;
      else
        ++m_vanished;
    }
    try {
      m_work.commit();
    } catch (const pqxx::in_doubt_error& error) {
      if (id.empty())
        return;  // the transaction wrote nothing: either way nothing changed
      const std::optional<bool> committed = m_commit_status(id);
      if (committed == true) {
        spdlog::warn("datastore '{}': the connection was lost during COMMIT; the server says "
                     "transaction {} committed",
                     m_name, id);
        return;
      }
      if (committed == false)
        throw std::runtime_error(fmt::format("datastore '{}': the connection was lost during "
                                             "COMMIT ({}); the server says transaction {} rolled "
                                             "back",
                                             m_name, first_line(error), id));
      throw CommitInDoubt(fmt::format("datastore '{}': the connection was lost during COMMIT "
                                      "({}); whether transaction {} committed is not known yet",
                                      m_name, first_line(error), id));
    } catch (const std::exception& error) {
      throw std::runtime_error(
          fmt::format("datastore '{}': commit failed: {}", m_name, first_line(error)));
    }
  }

  // The file that holds `table` now (pg_relation_filenode) and its pages, read in the batch's
  // transaction: once the batch has locked the table, nothing can rewrite it until it ends.
  struct TableFile {
    std::int64_t filenode = 0;
    std::int64_t pages = 0;
  };
  TableFile table_file(const std::string& table) {
    const pqxx::row file =
        run(m_work,
            {"SELECT pg_relation_filenode(to_regclass(?)), pg_relation_size(to_regclass(?)) "
             "/ current_setting('block_size')::bigint",
             {quote_identifier(table), quote_identifier(table)}})
            .at(0);
    return {file[0].as<std::int64_t>(), file[1].as<std::int64_t>()};
  }

  // Locks the batch's rows with `select`, resolves their linked files (a refused path keeps
  // its row, and `refused` remembers it for the rest of the run), deletes cascade children,
  // then deletes or anonymizes the rows. A batch applies one piece after another, all in its
  // transaction.
  Piece apply(const RuleStatements& statements, const Selection& selection,
              const SqlFragment& select, const std::string& key_column, const std::string& hmac_key,
              std::vector<std::string>& refused) {
    const pqxx::result locked = run(m_work, select);
    Piece piece{{}, static_cast<std::int64_t>(locked.size())};
    if (locked.empty())
      return piece;
    const Rule& rule = selection.rule;
    const std::size_t masks_from = rule.files ? 3 : 2;
    // A file that a row outside the batch still names stays (the row goes), and a file two
    // rows of the batch name is removed once.
    std::set<std::string> keep;
    if (selection.linked_files != nullptr)
      keep = shared_paths(statements, locked);
    std::vector<std::string> tids;
    std::vector<pqxx::result::size_type> kept;  // their rows in `locked`
    for (pqxx::result::size_type index = 0; index < locked.size(); ++index) {
      const pqxx::row row = locked[index];
      const std::string tid = row[0].as<std::string>();
      if (selection.linked_files != nullptr && !row[2].is_null()) {
        const std::string path = row[2].as<std::string>();
        auto file = selection.linked_files->resolve(path);
        if (!file) {
          // Named by its primary key when it has a single-column one: a ctid is only where the
          // row happens to be stored.
          m_refusals.emplace_back(row[1].is_null() ? "ctid " + tid
                                                   : key_column + " " + row[1].as<std::string>(),
                                  file.error());
          refused.push_back(tid);
          continue;
        }
        if (*file && keep.insert(path).second)
          m_files.push_back(std::move(*file));
      }
      tids.push_back(tid);
      kept.push_back(index);
    }
    piece.last = locked[locked.size() - 1][0].as<std::string>();
    if (tids.empty())
      return piece;
    m_attempted += static_cast<std::int64_t>(tids.size());
    const std::string tid_list = tid_array(tids);
    // Children first, in the same transaction, so no child ever points at a missing parent.
    for (const Cascade& cascade : rule.cascade)
      m_children += run(m_work, statements.delete_children(cascade, tid_list)).affected_rows();
    if (rule.action != Action::anonymize) {
      m_rows += run(m_work, statements.delete_rows(tid_list)).affected_rows();
      return piece;
    }
    const std::vector<ColumnMask> masks = statements.client_masks();
    std::vector<std::vector<SqlValue>> masked(masks.size());
    for (const pqxx::result::size_type index : kept) {
      const pqxx::row row = locked[index];
      for (std::size_t m = 0; m < masks.size(); ++m) {
        const pqxx::field field = row[static_cast<pqxx::row::size_type>(masks_from + m)];
        try {
          masked[m].push_back(apply_client_mask(
              masks[m].mask,
              field.is_null() ? std::nullopt : std::optional{field.as<std::string>()}, hmac_key));
        } catch (const std::runtime_error& error) {
          throw std::runtime_error(fmt::format("datastore '{}': {}", m_name, error.what()));
        }
      }
    }
    m_rows += run(m_work, statements.anonymize_rows(tids, masked)).affected_rows();
    return piece;
  }

  // The linked paths of the `locked` rows that another row of the table names too.
  std::set<std::string> shared_paths(const RuleStatements& statements, const pqxx::result& locked) {
    std::set<std::string> distinct;
    std::vector<std::string> tids;
    for (const pqxx::row row : locked) {
      tids.push_back(row[0].as<std::string>());
      if (!row[2].is_null())
        distinct.insert(row[2].as<std::string>());
    }
    std::set<std::string> shared;
    if (distinct.empty())
      return shared;
    const std::vector<SqlValue> paths(distinct.begin(), distinct.end());
    for (const pqxx::row row :
         run(m_work, statements.shared_paths(text_array(paths), tid_array(tids))))
      shared.insert(row[0].as<std::string>());
    return shared;
  }

  std::optional<std::int64_t> stopped_at_deadline() const override { return m_stopped_at; }
  void set_stopped_at_deadline(std::int64_t covered) { m_stopped_at = covered; }
  // Rows were due and locked (and not kept for a refused file), and yet none changed: a
  // trigger returning NULL, a rewrite rule or the like suppressed the statement.
  bool stalled() const { return m_attempted > 0 && m_rows == 0; }
  std::int64_t attempted() const { return m_attempted; }
  void set_exhausted(bool exhausted) { m_exhausted = exhausted; }
  void set_cut_short(bool cut_short) { m_cut_short = cut_short; }

private:
  std::string m_name;
  CommitStatus m_commit_status;
  pqxx::work m_work;
  std::string m_xid;  // see note_transaction_id
  bool m_exhausted = false;
  bool m_cut_short = false;
  std::optional<std::int64_t> m_stopped_at;
  std::int64_t m_attempted = 0;
  std::int64_t m_vanished = 0;
  std::int64_t m_removed = 0;  // files removed at commit
  std::int64_t m_rows = 0;
  std::int64_t m_children = 0;
  std::vector<std::unique_ptr<ResolvedFile>> m_files;
  std::vector<std::pair<std::string, std::string>> m_refusals;
};

class PostgresDatastore final : public Datastore {
public:
  PostgresDatastore(const DatastoreConfig& config, OpenMode mode, const AdapterSecrets& secrets)
      : m_config(config), m_name(config.name), m_mode(mode), m_hmac_key(secrets.hmac_key),
        m_connection(connect(config, mode)) {}

  SchemaCheck check_schema(const Rule& rule) override {
    return guarded([&] {
      pqxx::read_transaction tx(*m_connection);
      SchemaCheck check;
      const TableInfo table = table_info(tx, rule.table);
      check_table(check, table, rule.table, columns_named(rule));
      if (const auto& parent = rule.age_from) {
        const TableInfo parent_table = table_info(tx, parent->table);
        check_table(check, parent_table, parent->table, {parent->column, parent->key});
        check_anchor(check, parent_table, parent->table, parent->column, rule.age_format);
        if (check.errors.empty() && !parent_table.unique.contains(parent->key))
          check.errors.push_back(not_unique_parent_key(*parent));
        if (check.errors.empty() && !parent_table.indexed.contains(parent->key))
          check.warnings.push_back(
              fmt::format("no index on {}.{}: every lookup of a parent scans {}", parent->table,
                          parent->key, parent->table));
      } else if (!rule.age_column.empty()) {
        check_anchor(check, table, rule.table, rule.age_column, rule.age_format);
        if (check.errors.empty() && rule.action == Action::anonymize && !rule.anonymized_column &&
            table.not_null.contains(rule.age_column))
          check.errors.push_back(not_null_anchor_cleared(rule));
        if (check.errors.empty() && !table.indexed.contains(rule.age_column))
          check.warnings.push_back(fmt::format("no index on {}.{}: finding expired rows scans the "
                                               "whole table (CREATE INDEX ON {}({}))",
                                               rule.table, rule.age_column, rule.table,
                                               rule.age_column));
      }
      if (rule.files && check.errors.empty() && !table.indexed.contains(rule.files->path_column))
        check.warnings.push_back(no_index_on_linked_path(rule));
      for (const ColumnMask& mask : rule.masks) {
        const auto type = table.types.find(mask.column);
        if (mask.mask != Mask::null && type != table.types.end() && !is_text_type(type->second))
          check.errors.push_back(fmt::format("column '{}.{}' has type {}: mask '{}' writes text "
                                             "(use it on a text column, or mask 'null')",
                                             rule.table, mask.column, type->second,
                                             to_string(mask.mask)));
        // ip_prefix and year write no more than the value they replace; these write a fixed
        // length, which every batch would fail on.
        const auto length = table.max_length.find(mask.column);
        const int written = mask.mask == Mask::redact ? 10 : mask.mask == Mask::hmac ? 64 : 0;
        if (length != table.max_length.end() && written > length->second)
          check.errors.push_back(fmt::format(
              "column '{}.{}' holds at most {} characters: mask '{}' writes {} (widen the "
              "column, or use mask 'null')",
              rule.table, mask.column, length->second, to_string(mask.mask), written));
      }
      if (rule.anonymized_column)
        check_done_marker(check, table, rule);
      for (const Cascade& cascade : rule.cascade) {
        const TableInfo child = table_info(tx, cascade.table);
        check_table(check, child, cascade.table, {cascade.foreign_key});
        if (!table.kind.empty() && !table.types.contains(cascade.key))
          check.errors.push_back(fmt::format("table '{}' has no column '{}' (cascade key of {})",
                                             rule.table, cascade.key, cascade.table));
        else if (!table.kind.empty() && !table.unique.contains(cascade.key))
          check.errors.push_back(not_unique_cascade_key(rule, cascade));
        if (check.errors.empty() && !child.indexed.contains(cascade.foreign_key))
          check.warnings.push_back(
              fmt::format("no index on {}.{}: each batch scans {} to find children", cascade.table,
                          cascade.foreign_key, cascade.table));
      }
      if (check.errors.empty())
        check_side_effects(tx, rule, check);
      tx.commit();
      return check;
    });
  }

  // anonymized_column receives the time a row was anonymized, in the rule's age_format (see
  // RuleStatements::done_marker): a column that cannot take it would fail every batch.
  static void check_done_marker(SchemaCheck& check, const TableInfo& table, const Rule& rule) {
    const std::string& column = *rule.anonymized_column;
    const auto type = table.types.find(column);
    if (type == table.types.end())
      return;  // check_table named it
    const bool unix_time =
        rule.age_format == AgeFormat::unix_seconds || rule.age_format == AgeFormat::unix_millis;
    const std::size_t width = rule.age_format == AgeFormat::unix_seconds  ? 10
                              : rule.age_format == AgeFormat::unix_millis ? 13
                                                                          : 24;
    // Only whether it is NULL is ever read back: any type that stores the value will do.
    const std::set<std::string> takes =
        rule.age_format == AgeFormat::unix_seconds
            ? std::set<std::string>{"int4", "int8", "numeric", "float4", "float8"}
        : unix_time ? std::set<std::string>{"int8", "numeric", "float4", "float8"}
                    : std::set<std::string>{"timestamptz", "timestamp", "date"};
    const auto length = table.max_length.find(column);
    const bool fits =
        takes.contains(type->second) ||
        (is_text_type(type->second) &&
         (length == table.max_length.end() || static_cast<std::size_t>(length->second) >= width));
    if (!fits)
      check.errors.push_back(
          fmt::format("column '{}.{}' has type {}: anonymized_column receives the time a row was "
                      "anonymized, {} (use a {} column)",
                      rule.table, column, type->second,
                      unix_time ? "a Unix time like the age column's" : "as ISO 8601 text",
                      unix_time ? "bigint" : "timestamptz or date"));
  }

  RuleCounts count(const Selection& selection) override {
    return stoppable(selection, [&] {
      // One snapshot for the census and the linked paths.
      HeldValues held = held_values(selection);
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*m_connection);
      tx.exec(fmt::format("SET LOCAL lock_timeout = '{}s'", k_census_lock_timeout.count()));
      const RuleStatements statements(selection, anchor_kind_of(tx, selection.rule),
                                      std::move(held));
      pqxx::result result;
      try {
        result = run(tx, statements.census());
      } catch (const pqxx::sql_error& error) {
        if (error.sqlstate() != k_lock_not_available)
          throw;
        const Rule& rule = selection.rule;
        throw std::runtime_error(fmt::format(
            "datastore '{}': another session held a lock on '{}'{} for more than {} s (ALTER "
            "TABLE, VACUUM FULL or LOCK TABLE); nothing was counted or changed, the next run "
            "tries again",
            m_name, rule.table,
            rule.age_from ? fmt::format(" or its parent '{}'", rule.age_from->table) : "",
            k_census_lock_timeout.count()));
      }
      const pqxx::row census = result.at(0);
      RuleCounts counts;
      counts.table_rows = scalar(census[0]);
      counts.total = scalar(census[1]);
      counts.held = scalar(census[3]);
      counts.due = scalar(census[2]) - counts.held;
      counts.undated = scalar(census[4]);
      counts.unreadable = scalar(census[5]);
      counts.future = scalar(census[6]);
      counts.wrong_scale = scalar(census[7]);
      if (!census[8].is_null())
        counts.oldest_due = from_unix_millis_in_calendar(census[8].as<std::int64_t>());
      if (selection.linked_files != nullptr)
        count_refused_files(tx, statements, selection, counts);
      tx.commit();
      m_census = {run_key(selection), counts};
      return counts;
    });
  }

  std::vector<std::int64_t> count_by_anchor(const Selection& selection,
                                            const std::vector<Instant>& edges) override {
    return stoppable(selection, [&] {
      pqxx::read_transaction tx(*m_connection);
      const RuleStatements statements(selection, anchor_kind_of(tx, selection.rule));
      const pqxx::row row = run(tx, statements.count_by_anchor(edges)).at(0);
      std::vector<std::int64_t> counts;
      for (const pqxx::field& field : row)
        counts.push_back(scalar(field));
      tx.commit();
      return counts;
    });
  }

  RunPlan plan_run(const Selection& selection) override {
    stoppable(selection, [&] { walk_for(selection); });
    // Rows are locked one by one, never the whole table: no writer waits for a batch to end.
    return {};
  }

  // PostgreSQL locks rows, not the table: a batch holds up no writer of other rows. But a DDL
  // statement (ALTER TABLE) waits for the batch's table lock, and every statement on the table
  // queues behind that: the batch keeps to its deadline (see change_slice).
  std::unique_ptr<Batch> begin_batch(const Selection& selection, std::int64_t limit,
                                     std::chrono::steady_clock::duration budget) override {
    if (m_mode == OpenMode::read_only)
      throw std::runtime_error(fmt::format("datastore '{}' is open read-only", m_name));
    for (const ColumnMask& mask : selection.rule.masks)
      if (mask.mask == Mask::hmac && m_hmac_key.empty())
        throw std::runtime_error(fmt::format("datastore '{}': mask 'hmac' on column '{}' needs a "
                                             "key, and none is configured",
                                             m_name, mask.column));
    guarded([&] { walk_for(selection); });
    if (m_walk.done)
      return nullptr;
    // Each linked file stays open (by descriptor) until the batch commits: keep batches with
    // files small enough for the process's descriptor limit.
    if (selection.linked_files != nullptr)
      limit = std::min(limit, k_max_linked_files_per_batch);
    limit = std::max<std::int64_t>(limit, 1);
    return guarded([&]() -> std::unique_ptr<Batch> {
      // Before the batch's transaction: a held subject that does not cast fails only its own
      // statement.
      const RuleStatements statements(selection, m_walk.kind, held_values(selection));
      if (m_walk.by_range && m_walk.block >= m_walk.end_block) {
        m_walk.done = true;
        return nullptr;
      }
      auto batch = std::make_unique<PostgresBatch>(
          *m_connection, m_name, [this](const std::string& xid) { return commit_status(xid); });
      const auto deadline = deadline_after(std::chrono::steady_clock::now(), budget);
      if (m_walk.by_range)
        change_slice(*batch, statements, selection, limit, deadline);
      else
        change_through_index(*batch, statements, selection, limit);
      batch->note_transaction_id();
      return batch;
    });
  }

  // between_batches stays the default: PostgreSQL locks rows, not the database, so the
  // application's writers never queue behind a batch except on the rows it changes, and a
  // committed batch leaves nothing to copy.

  // Nothing to do. PostgreSQL has no journal to truncate: a deleted row stays in its page as a
  // dead tuple until VACUUM (autovacuum) reclaims the space, and the write-ahead log is
  // recycled by the server's checkpoints. Forcing either (VACUUM FULL rewrites and locks the
  // whole table) is the database administrator's call, not a retention run's.
  void finish_run() override {}

private:
  // A batch found through the anchor's index: one statement (pieces would each walk the index
  // past the rows the earlier ones changed, which stay in it until the batch commits). Few rows
  // are due on this path, so batches are small.
  void change_through_index(PostgresBatch& batch, const RuleStatements& statements,
                            const Selection& selection, std::int64_t limit) {
    const PostgresBatch::Piece found =
        batch.apply(statements, selection,
                    statements.lock_batch(std::nullopt, limit, tid_array(m_walk.refused),
                                          m_walk.key_column, m_walk.keys_kept),
                    m_walk.key_column.value_or(""), m_hmac_key, m_walk.refused);
    // Fewer rows than asked means none are left (rows another session has locked are left for
    // the next run). Rows that stayed although the batch changed them would be found again by
    // every batch: the run ends there.
    m_walk.done = found.selected < limit || batch.stalled();
    if (batch.stalled())
      warn_stalled(selection.rule, batch, "the rule stops until its next run");
    batch.set_exhausted(m_walk.done);
  }

  // A batch over the next slice of about `limit` rows (by the table's average rows per page),
  // from where the walk stands, in pieces (see k_pieces_per_batch): a DDL statement queued
  // behind the batch's table lock, and the application's statements queued behind that, wait
  // no longer than its deadline.
  void change_slice(PostgresBatch& batch, const RuleStatements& statements,
                    const Selection& selection, std::int64_t limit,
                    std::chrono::steady_clock::time_point deadline) {
    const std::int64_t pages =
        std::max<std::int64_t>(1, (limit + m_walk.rows_per_block - 1) / m_walk.rows_per_block);
    const std::int64_t end = std::min(m_walk.block + pages, m_walk.end_block);
    const bool whole_slice = m_walk.offset == 0 && m_walk.block + pages <= m_walk.end_block;
    const std::int64_t most = std::max<std::int64_t>(1, limit / k_pieces_per_batch);
    bool slice_ended = false;
    for (std::int64_t covered = 0; covered < limit && !batch.stalled();) {
      const std::int64_t size = std::min(most, limit - covered);
      const auto started = std::chrono::steady_clock::now();
      const PostgresBatch::Piece found = batch.apply(
          statements, selection,
          statements.lock_batch(
              RuleStatements::Range{tid_text(m_walk.block, m_walk.offset), tid_text(end, 0)}, size,
              tid_array(m_walk.refused), m_walk.key_column, m_walk.keys_kept),
          m_walk.key_column.value_or(""), m_hmac_key, m_walk.refused);
      covered += found.selected;
      if (found.selected < size) {
        slice_ended = true;
        break;
      }
      // The slice may hold more: the next piece starts just after this one's last row.
      std::tie(m_walk.block, m_walk.offset) = after_tid(m_name, found.last);
      if (covered < limit &&
          next_piece_passes(started, size, std::min(most, limit - covered), deadline)) {
        batch.set_stopped_at_deadline(covered);
        break;
      }
    }
    if (batch.stalled() && !m_walk.warned_stalled) {
      m_walk.warned_stalled = true;
      warn_stalled(selection.rule, batch, "the run goes on past them");
    }
    // VACUUM FULL, CLUSTER or a rewriting ALTER TABLE since the walk began moved every row to
    // new pages, some of them before the page the walk has reached: it starts again.
    if (const PostgresBatch::TableFile file = batch.table_file(selection.rule.table);
        file.filenode != m_walk.filenode) {
      spdlog::info("rule {}: table '{}' was rewritten during the run (VACUUM FULL, CLUSTER, "
                   "ALTER TABLE); its walk starts again from the first page",
                   selection.rule.id, selection.rule.table);
      m_walk.filenode = file.filenode;
      m_walk.block = 0;
      m_walk.offset = 0;
      m_walk.end_block = file.pages;
      m_walk.refused.clear();  // addresses in the old file
      batch.set_cut_short(true);
      return;
    }
    if (!slice_ended)
      return;
    m_walk.block = end;
    m_walk.offset = 0;
    m_walk.done = end >= m_walk.end_block;
    batch.set_exhausted(m_walk.done);
    batch.set_cut_short(!whole_slice);
  }

  // Where a run's batches are in the table.
  struct Walk {
    std::string run;  // rule@cutoff
    AnchorKind kind = AnchorKind::integer;
    bool by_range = true;    // ranges of pages, or batches found through the anchor's index
    std::int64_t block = 0;  // where the next batch starts: page and line pointer
    std::int64_t offset = 0;
    std::int64_t end_block = 0;  // pages of the table when the run started
    std::int64_t filenode = 0;   // the file that held the table then (see begin_batch)
    std::int64_t rows_per_block = 1;
    std::vector<std::string> refused;       // rows kept in this run because their file was refused
    std::optional<std::string> key_column;  // the table's primary key, when it is one column
    bool keys_kept = false;  // no masked column is in a unique index (see lock_batch)
    bool done = false;
    bool warned_stalled = false;  // warn_stalled has spoken for this run
  };

  // A subject column's type, as held_values() compares in it.
  struct SubjectType {
    std::string type;       // format_type, empty: compare the text form (text columns)
    bool by_value = false;  // the type has an equality operator (and is no array)
  };

  // Chooses the access path for a run. Walking the table by ranges of pages (ctid ranges, a
  // TID Range Scan) touches each page once and keeps every transaction's cost proportional to
  // its slice; rows the application appends meanwhile lie beyond the last page and wait for
  // the next run. When few rows are due and the anchor has an index, the index finds them
  // directly instead.
  void start_walk(const Selection& selection, const std::string& key) {
    pqxx::read_transaction tx(*m_connection);
    // check_schema refuses the rule first; checked again here, since these are what make a
    // batch change rows the rule does not name.
    SchemaCheck check;
    const Rule& checked = selection.rule;
    for (const std::string* table : tables_of(checked))
      check_table(check, table_info(tx, *table), *table, {});
    if (check.errors.empty())
      check_side_effects(tx, checked, check);
    if (!check.errors.empty())
      throw std::runtime_error(
          fmt::format("datastore '{}': {}", m_name, fmt::join(check.errors, "; ")));
    m_walk = Walk{};
    m_walk.run = key;
    m_walk.kind = anchor_kind_of(tx, selection.rule);
    const RuleStatements statements(selection, m_walk.kind);
    const RuleCounts* census = m_census.first == key ? &m_census.second : nullptr;
    const pqxx::result primary_key = run(
        tx, {"SELECT a.attname::text FROM pg_catalog.pg_index AS i JOIN pg_catalog.pg_attribute "
             "AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = "
             "to_regclass(?) AND i.indisprimary AND i.indnatts = 1",
             {quote_identifier(selection.rule.table)}});
    if (!primary_key.empty())
      m_walk.key_column = primary_key[0][0].as<std::string>();
    m_walk.keys_kept = !changes_unique_column(tx, selection.rule);
    const Rule& rule = selection.rule;
    const TableInfo anchor_table =
        table_info(tx, rule.age_from ? rule.age_from->table : rule.table);
    const bool indexed =
        anchor_table.indexed.contains(rule.age_from ? rule.age_from->column : rule.age_column);
    if (census != nullptr && census->due * 20 < census->table_rows && indexed &&
        statements.index_comparable()) {
      m_walk.by_range = false;
      return;
    }
    const pqxx::row size =
        run(tx, {"SELECT pg_relation_size(to_regclass(?)) / current_setting('block_size')::bigint, "
                 "c.reltuples::bigint, pg_relation_filenode(c.oid) FROM pg_catalog.pg_class AS c "
                 "WHERE c.oid = to_regclass(?)",
                 {quote_identifier(rule.table), quote_identifier(rule.table)}})
            .at(0);
    m_walk.end_block = size[0].as<std::int64_t>();
    m_walk.filenode = size[2].as<std::int64_t>();
    std::int64_t rows = census != nullptr ? census->table_rows : size[1].as<std::int64_t>();
    if (rows < 0)  // never analyzed
      rows = run(tx, {fmt::format("SELECT count(*) FROM {}", quote_identifier(rule.table)), {}})
                 .at(0)[0]
                 .as<std::int64_t>();
    m_walk.rows_per_block =
        std::max<std::int64_t>(1, rows / std::max<std::int64_t>(1, m_walk.end_block));
    tx.commit();
  }

  // Whether an anonymize rule writes a column of a unique index (a mask, or
  // anonymized_column): PostgreSQL then counts the UPDATE as changing the row's key.
  bool changes_unique_column(pqxx::transaction_base& tx, const Rule& rule) {
    if (rule.action != Action::anonymize)
      return true;
    std::vector<SqlValue> columns;
    for (const ColumnMask& mask : rule.masks)
      columns.push_back(mask.column);
    if (rule.anonymized_column)
      columns.push_back(*rule.anonymized_column);
    return run(tx, {"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index AS i JOIN "
                    "pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = "
                    "ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisunique AND "
                    "a.attname = ANY(?::text[]))",
                    {quote_identifier(rule.table), text_array(columns)}})
        .at(0)[0]
        .as<bool>();
  }

  AnchorKind anchor_kind_of(pqxx::transaction_base& tx, const Rule& rule) {
    const std::string& table = rule.age_from ? rule.age_from->table : rule.table;
    const std::string& column = rule.age_from ? rule.age_from->column : rule.age_column;
    const TableInfo info = table_info(tx, table);
    if (info.kind.empty())
      throw std::runtime_error(
          fmt::format("datastore '{}': table '{}' does not exist", m_name, table));
    const auto type = info.types.find(column);
    if (type == info.types.end())
      throw std::runtime_error(
          fmt::format("datastore '{}': table '{}' has no column '{}'", m_name, table, column));
    auto kind = anchor_kind(rule.age_format, type->second);
    if (!kind)
      throw std::runtime_error(
          fmt::format("datastore '{}': column '{}.{}' {}", m_name, table, column, kind.error()));
    return *kind;
  }

  // Due rows whose linked file would be refused stay: they are `refused`, not `due`.
  void count_refused_files(pqxx::transaction_base& tx, const RuleStatements& statements,
                           const Selection& selection, RuleCounts& counts) {
    counts.oldest_due.reset();
    for (const pqxx::row& row : run(tx, statements.due_paths())) {
      census_step(selection);  // the paths are checked here, not by the server
      if (!row[0].is_null() && !selection.linked_files->resolve(row[0].as<std::string>()))
        ++counts.refused;
      else if (!counts.oldest_due && !row[1].is_null())
        counts.oldest_due = from_unix_millis_in_calendar(row[1].as<std::int64_t>());
    }
    counts.due -= counts.refused;
  }

  // Every table the rule reads or changes: its own, its age_from parent, its cascades.
  static std::vector<const std::string*> tables_of(const Rule& rule) {
    std::vector<const std::string*> tables{&rule.table};
    if (rule.age_from)
      tables.push_back(&rule.age_from->table);
    for (const Cascade& cascade : rule.cascade)
      tables.push_back(&cascade.table);
    return tables;
  }

  // What changing the rule's rows would change beyond them, unseen and unaudited: foreign keys
  // through which PostgreSQL itself deletes or changes rows of tables the rule does not name
  // (errors: a cascade child retentiond deletes and counts first leaves them nothing to do),
  // and user triggers and rewrite rules (warnings).
  void check_side_effects(pqxx::transaction_base& tx, const Rule& rule, SchemaCheck& check) const {
    // (table, whether rows are deleted from it rather than updated)
    std::vector<std::pair<const std::string*, bool>> changed;
    changed.emplace_back(&rule.table, rule.action != Action::anonymize);
    for (const Cascade& cascade : rule.cascade)
      changed.emplace_back(&cascade.table, true);
    std::vector<std::string> cascade_oids;
    for (const Cascade& cascade : rule.cascade)
      cascade_oids.push_back(table_info(tx, cascade.table).oid);
    for (const auto& [table, deleted] : changed) {
      if (deleted)
        check_foreign_keys(tx, rule, *table, table == &rule.table, cascade_oids, check);
      check_triggers(tx, *table, deleted, check);
    }
  }

  void check_foreign_keys(pqxx::transaction_base& tx, const Rule& rule, const std::string& table,
                          bool rule_table, const std::vector<std::string>& cascade_oids,
                          SchemaCheck& check) const {
    // One row per foreign key (a partitioned table's, not its partitions' copies).
    const pqxx::result keys = run(
        tx, {"SELECT con.conrelid::regclass::text, con.conrelid::text, con.confdeltype::text, "
             "ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, i) "
             "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.n "
             "ORDER BY k.i), ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH "
             "ORDINALITY AS k(n, i) JOIN pg_catalog.pg_attribute AS a ON a.attrelid = "
             "con.confrelid AND a.attnum = k.n ORDER BY k.i) FROM pg_catalog.pg_constraint AS con "
             "WHERE con.contype = 'f' AND con.confrelid = to_regclass(?) AND con.confdeltype IN "
             "('c', 'n', 'd') AND con.conparentid = 0 ORDER BY 1, con.conname",
             {quote_identifier(table)}});
    for (const pqxx::row& key : keys) {
      const std::string referencing = key[0].as<std::string>();
      const std::string oid = key[1].as<std::string>();
      const std::string action = key[2].as<std::string>();
      const std::vector<std::string> columns = text_list(key[3]);
      const std::vector<std::string> referenced = text_list(key[4]);
      // retentiond deletes a cascade's children of the rule's rows only: one column that
      // holds the rule table's key.
      const bool one_column = rule_table && columns.size() == 1 && referenced.size() == 1;
      bool counted = false;
      for (std::size_t c = 0; one_column && c < rule.cascade.size(); ++c)
        counted = counted || (cascade_oids[c] == oid && rule.cascade[c].foreign_key == columns[0] &&
                              rule.cascade[c].key == referenced[0]);
      if (counted)
        continue;
      const std::string way_out =
          one_column
              ? fmt::format("add it to cascade: {{ table = \"{}\", foreign_key = \"{}\"{} }}",
                            referencing, columns[0],
                            referenced[0] == "id" ? std::string{}
                                                  : fmt::format(", key = \"{}\"", referenced[0]))
          : rule_table
              ? "cascade takes one column only: make the foreign key ON DELETE RESTRICT or NO "
                "ACTION"
              : "cascade deletes children of the rule's table only: make the foreign key ON "
                "DELETE RESTRICT or NO ACTION";
      check.errors.push_back(fmt::format(
          "table '{}' references '{}' ({}) ON DELETE {}: deleting rows of '{}' would make "
          "PostgreSQL {} rows of '{}' that the rule does not name and the audit does not count "
          "({})",
          referencing, table, fmt::join(columns, ", "),
          action == "c"   ? "CASCADE"
          : action == "n" ? "SET NULL"
                          : "SET DEFAULT",
          table, action == "c" ? "delete" : "change", referencing, way_out));
    }
  }

  void check_triggers(pqxx::transaction_base& tx, const std::string& table, bool deleted,
                      SchemaCheck& check) const {
    // pg_trigger.tgtype: 8 DELETE, 16 UPDATE. pg_rewrite.ev_type: '4' DELETE, '2' UPDATE.
    const std::string event = deleted ? "DELETE" : "UPDATE";
    const pqxx::result found = run(
        tx, {"SELECT 'trigger', t.tgname::text FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = "
             "to_regclass(?) AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND (t.tgtype::int & "
             "?::int) <> 0 UNION ALL SELECT 'rewrite rule', r.rulename::text FROM "
             "pg_catalog.pg_rewrite AS r WHERE r.ev_class = to_regclass(?) AND r.ev_type = ? AND "
             "r.ev_enabled <> 'D' ORDER BY 1, 2",
             {quote_identifier(table), deleted ? "8" : "16", quote_identifier(table),
              deleted ? "4" : "2"}});
    for (const pqxx::row& row : found)
      check.warnings.push_back(fmt::format("table '{}' has {} '{}' on {}: what it does is not "
                                           "counted in the audit log",
                                           table, row[0].as<std::string>(),
                                           row[1].as<std::string>(), event));
  }

  // Rows were locked for a change and none changed (PostgresBatch::stalled).
  void warn_stalled(const Rule& rule, const PostgresBatch& batch, std::string_view then) const {
    spdlog::warn("datastore '{}': rule {}: {} due rows of '{}' were locked to be {}, and none "
                 "was: a trigger or rewrite rule on '{}' suppresses the change; they stay, and {}",
                 m_name, rule.id, batch.attempted(), rule.table,
                 rule.action == Action::anonymize ? "anonymized" : "deleted", rule.table, then);
  }

  // The selection's held subjects as the subject column compares them (HeldValues). Runs with
  // no transaction open: a subject that does not cast fails only its own statement. Casts are
  // remembered for the run, not longer: a type may change (an enum gains a label).
  HeldValues held_values(const Selection& selection) {
    const Rule& rule = selection.rule;
    if (!rule.subject_column || selection.held_subjects.empty())
      return {};
    const std::string key = run_key(selection);
    if (m_casts_run != key) {
      m_casts.clear();
      m_subject_types.clear();
      m_casts_run = key;
    }
    auto type = m_subject_types.find(rule.id);
    if (type == m_subject_types.end())
      type = m_subject_types.emplace(rule.id, subject_type(rule)).first;
    HeldValues held;
    if (type->second.type.empty()) {
      held.values = selection.held_subjects;
      return held;
    }
    if (type->second.by_value)
      held.type = type->second.type;
    for (const std::string& subject : selection.held_subjects) {
      const auto cast_key = std::make_pair(type->second.type, subject);
      auto cast = m_casts.find(cast_key);
      if (cast == m_casts.end())
        cast = m_casts.emplace(cast_key, cast_subject(type->second.type, subject)).first;
      if (cast->second)
        held.values.push_back(*cast->second);
    }
    return held;
  }

  SubjectType subject_type(const Rule& rule) {
    pqxx::result column;
    {
      pqxx::nontransaction tx(*m_connection);
      column = run(
          tx,
          {"SELECT format_type(a.atttypid, a.atttypmod), (CASE WHEN ty.typtype = 'd' THEN "
           "base.typname ELSE ty.typname END)::text, coalesce(base.typcategory, "
           "ty.typcategory)::text FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS "
           "ty ON ty.oid = a.atttypid LEFT JOIN pg_catalog.pg_type AS base ON base.oid = "
           "ty.typbasetype WHERE a.attrelid = to_regclass(?) AND a.attname = ? AND a.attnum > 0 "
           "AND NOT a.attisdropped",
           {quote_identifier(rule.table), *rule.subject_column}});
    }
    // No such column: the statements fail and say so. Text is compared exactly, as stored.
    if (column.empty() || is_text_type(column[0][1].as<std::string>()))
      return {};
    SubjectType type{column[0][0].as<std::string>(), column[0][2].as<std::string>() != "A"};
    if (type.by_value) {
      try {
        pqxx::nontransaction probe(*m_connection);
        probe.exec(fmt::format("SELECT NULL::{0} = NULL::{0}", type.type));
      } catch (const pqxx::sql_error& error) {
        if (error.sqlstate() != k_undefined_function)
          throw;
        type.by_value = false;  // no equality (json, point, ...): compare text forms
      }
    }
    return type;
  }

  // `subject` as a value of `type`, in its text form; nullopt when it is not one.
  std::optional<std::string> cast_subject(const std::string& type, const std::string& subject) {
    try {
      pqxx::nontransaction tx(*m_connection);
      return run(tx, {fmt::format("SELECT ?::{}::text", type), {subject}})
          .at(0)[0]
          .as<std::string>();
    } catch (const pqxx::sql_error& error) {
      // Class 22 (data exception: invalid text, out of range) and 23 (a domain's CHECK).
      if (error.sqlstate().starts_with("22") || error.sqlstate().starts_with("23"))
        return std::nullopt;
      throw;
    }
  }

  void check_table(SchemaCheck& check, const TableInfo& info, const std::string& table,
                   const std::vector<std::string>& columns) const {
    if (info.kind.empty()) {
      check.errors.push_back(
          fmt::format("table '{}' does not exist in datastore '{}'", table, m_name));
      return;
    }
    // Batches address rows by ctid, which is unique within one table only.
    if (info.kind == "p") {
      check.errors.push_back(fmt::format("table '{}' in datastore '{}' is partitioned, which this "
                                         "version cannot batch (write a rule per partition)",
                                         table, m_name));
      return;
    }
    if (info.kind != "r") {
      check.errors.push_back(fmt::format("'{}' in datastore '{}' is a {}, not a table", table,
                                         m_name, relation_kind(info.kind)));
      return;
    }
    // Statements name the table without ONLY, and rows by ctid, which is unique within one
    // table only: refused rather than audited table by table.
    if (!info.children.empty()) {
      std::vector<std::string> detach;
      for (const std::string& child : info.children)
        detach.push_back(fmt::format("ALTER TABLE {} NO INHERIT {}", child, info.name));
      check.errors.push_back(fmt::format(
          "table '{}' in datastore '{}' has inheritance children ({}), which this version cannot "
          "batch: statements on it would change their rows too (detach them: {})",
          table, m_name, fmt::join(info.children, ", "), fmt::join(detach, "; ")));
      return;
    }
    if (!info.parents.empty()) {
      std::vector<std::string> detach;
      for (const std::string& parent : info.parents)
        detach.push_back(fmt::format("ALTER TABLE {} NO INHERIT {}", info.name, parent));
      check.errors.push_back(fmt::format("table '{}' in datastore '{}' inherits from {}, which "
                                         "this version cannot batch (detach it: {})",
                                         table, m_name, fmt::join(info.parents, ", "),
                                         fmt::join(detach, "; ")));
      return;
    }
    for (const std::string& column : columns)
      if (!info.types.contains(column))
        check.errors.push_back(no_such_column(table, column, info.columns));
  }

  void check_anchor(SchemaCheck& check, const TableInfo& info, const std::string& table,
                    const std::string& column, AgeFormat format) const {
    const auto type = info.types.find(column);
    if (info.kind != "r" || type == info.types.end())
      return;
    if (auto kind = anchor_kind(format, type->second); !kind)
      check.errors.push_back(fmt::format("column '{}.{}' {}", table, column, kind.error()));
  }

  // Starts the walk of the selection's run unless it is the one under way.
  void walk_for(const Selection& selection) {
    adapters::walk_for(m_walk, selection,
                       [&](const std::string& key) { start_walk(selection, key); });
  }

  // Runs the reads of a census, like guarded, so that Selection::stop ends them
  // (CensusStopped).
  template <typename Reads>
  auto stoppable(const Selection& selection, Reads&& reads) -> decltype(reads()) {
    throw_if_stopped(selection);
    return guarded([&] {
      const CancelOnStop cancel(*m_connection, selection.stop);
      try {
        return reads();
      } catch (const pqxx::sql_error& error) {
        if (error.sqlstate() == k_query_canceled && selection.stop != nullptr &&
            selection.stop->load())
          throw CensusStopped();
        throw;
      }
    });
  }

  // Runs `work`, turning libpq's and the server's errors into messages that name the
  // datastore.
  template <typename Work> auto guarded(Work&& work) -> decltype(work()) {
    try {
      return work();
    } catch (const pqxx::sql_error& error) {
      if (error.sqlstate() == k_lock_not_available)
        throw std::runtime_error(fmt::format(
            "datastore '{}': another session held a lock the batch needed for more than {} ms "
            "({}); the batch was rolled back, the next run tries again",
            m_name, k_lock_timeout.count(), first_line(error)));
      if (error.sqlstate() == k_query_canceled &&
          std::string_view{error.what()}.find("statement timeout") != std::string_view::npos)
        throw std::runtime_error(fmt::format(
            "datastore '{}': {}: statement_timeout (set for the server, the database or the "
            "role retentiond connects as) ended it; give retentiond's role a longer one (ALTER "
            "ROLE ... SET statement_timeout) or set it in the dsn's options",
            m_name, first_line(error)));
      throw std::runtime_error(fmt::format("datastore '{}': {}", m_name, first_line(error)));
    } catch (const pqxx::failure& error) {
      // libpq's words for a dead connection ("Could not obtain client encoding", "no connection
      // to the server") do not say that it died.
      if (!m_connection->is_open())
        throw std::runtime_error(fmt::format(
            "datastore '{}': the connection to the server was lost ({}); the next run connects "
            "again",
            m_name, first_line(error)));
      throw std::runtime_error(fmt::format("datastore '{}': {}", m_name, first_line(error)));
    }
  }

public:
  // A batch's token is its transaction id, and the server remembers how each transaction
  // ended until the id is frozen, hundreds of millions of transactions later.
  std::optional<bool> batch_committed(const Rule& rule, const std::string& token) override {
    (void)rule;
    // Not a transaction id (a token of another adapter): nothing this server can tell.
    if (token.empty() || token.size() > 18 ||
        token.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    switch (transaction_outcome(token)) {
    case TransactionOutcome::committed: return true;
    case TransactionOutcome::aborted: return false;
    case TransactionOutcome::in_progress:
      throw std::runtime_error(fmt::format(
          "datastore '{}': transaction {} of the batch is still in progress on the server (the "
          "session of the process that ended has not ended yet; the server ends it after {} s "
          "idle), so whether it commits is not known yet; the next run asks again",
          m_name, token, k_batch_idle_timeout.count()));
    case TransactionOutcome::forgotten:
      spdlog::warn("datastore '{}': the server no longer remembers how transaction {} ended",
                   m_name, token);
      return std::nullopt;
    case TransactionOutcome::not_yet_assigned:
      spdlog::warn("datastore '{}': transaction {} is not one this server has run (a token of "
                   "another kind, another cluster, or one restored since)",
                   m_name, token);
      return std::nullopt;
    }
    return std::nullopt;
  }

private:
  enum class TransactionOutcome { committed, aborted, in_progress, forgotten, not_yet_assigned };

  // How the transaction with id `xid` ended (txid_status), asked on a new connection (the
  // batch's may have died); throws when the server cannot be asked. One still "in progress"
  // may be committing in its old session: asked again for a few seconds.
  TransactionOutcome transaction_outcome(const std::string& xid) const {
    const auto connection = connect(m_config, OpenMode::read_only);
    pqxx::nontransaction ask(*connection);
    for (int attempt = 0; attempt < k_commit_status_attempts; ++attempt) {
      if (attempt > 0)
        std::this_thread::sleep_for(k_commit_status_pause);
      std::optional<std::string> text;
      try {
        const pqxx::field status = ask.exec_params1("SELECT txid_status($1::bigint)", xid)[0];
        if (status.is_null())
          return TransactionOutcome::forgotten;
        text = status.as<std::string>();
      } catch (const pqxx::sql_error& error) {
        // "transaction ID ... is in the future": an id this server has not assigned yet.
        if (error.sqlstate() == k_invalid_parameter_value)
          return TransactionOutcome::not_yet_assigned;
        throw;
      }
      if (text == "committed")
        return TransactionOutcome::committed;
      if (text == "aborted")
        return TransactionOutcome::aborted;
    }
    return TransactionOutcome::in_progress;
  }

  // See PostgresBatch::CommitStatus.
  std::optional<bool> commit_status(const std::string& xid) const {
    try {
      switch (transaction_outcome(xid)) {
      case TransactionOutcome::committed: return true;
      case TransactionOutcome::aborted: return false;
      case TransactionOutcome::in_progress:
      case TransactionOutcome::forgotten:
      case TransactionOutcome::not_yet_assigned: return std::nullopt;
      }
    } catch (const std::exception& error) {
      spdlog::warn("datastore '{}': cannot ask the server whether transaction {} committed: {}",
                   m_name, xid, first_line(error));
    }
    return std::nullopt;
  }

  DatastoreConfig m_config;
  std::string m_name;
  OpenMode m_mode;
  std::string m_hmac_key;
  std::unique_ptr<pqxx::connection> m_connection;
  Walk m_walk;
  std::pair<std::string, RuleCounts> m_census;  // the last count(), by run key
  // held_values' memory for one run (m_casts_run): each rule's subject column type, and each
  // (type, subject)'s cast (nullopt: not a value of that type).
  std::string m_casts_run;
  std::map<std::string, SubjectType> m_subject_types;
  std::map<std::pair<std::string, std::string>, std::optional<std::string>> m_casts;
};

}  // namespace

std::unique_ptr<Datastore> open_postgres_datastore(const DatastoreConfig& config, OpenMode mode,
                                                   const AdapterSecrets& secrets) {
  return std::make_unique<PostgresDatastore>(config, mode, secrets);
}

}  // namespace retentiond::adapters::postgres
