#include "adapters/sqlite/sqlite_datastore.hpp"

#include "adapters/sqlite/sqlite_masks.hpp"
#include "adapters/sqlite/sqlite_statements.hpp"
#include "adapters/sqlite/sqlite_time.hpp"
#include "adapters/sqlite/wal_checkpointer.hpp"
#include "daemon/digest.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>

namespace retentiond::adapters::sqlite {
namespace {

constexpr int k_page_cache_kib = 16 * 1024;
// The table, in the datastore, where each rule's last committed batch leaves its token.
constexpr std::string_view k_batches_table = "retentiond_batches";
// Due rows per band of a run (see start_walk): their part of the anchor's index, at a few dozen
// bytes an entry, stays well inside the page cache.
constexpr std::int64_t k_rows_per_band = 150'000;
// But every band walks the whole stretch of rowids: on large tables, fewer and larger bands
// (5M rows, 3.3M due, no writer: 22 bands took 54 s, 8 took 37 s).
constexpr std::int64_t k_max_bands = 8;
constexpr std::int64_t k_max_linked_files_per_batch = 256;
// Rows the census looks at to guess which side of the cutoff is smaller (see mostly_due).
constexpr int k_census_probes = 32;
// A piece is at most twice the largest one the walk has changed, and the first is at most this
// many rows: a run's first batch, whatever its size, finds the table's pace in pieces of 200,
// 400, 800... rows, and stops at its deadline before a piece it cannot afford.
constexpr std::int64_t k_first_piece = 200;
// An application that has not committed for this long is idle: batches follow each other.
constexpr std::chrono::seconds k_application_quiet{1};
// SQLite's automatic checkpoint, which runs inside COMMIT, only when the checkpoints beside the
// batches fall behind (64 MiB of log at 4 KiB pages).
constexpr int k_backstop_checkpoint_pages = 16'384;
// SQLite virtual machine instructions between two looks at Selection::stop during a census:
// microseconds of work, so SIGTERM ends even a scan of a large table at once.
constexpr int k_census_progress_steps = 1000;
// How long a census waiting for a lock sleeps between two tries (and two looks at the stop).
constexpr std::chrono::milliseconds k_census_busy_step{5};
// Every this many batches, a batch starts once the checkpoints of those before it are done: the
// log is then wholly copied (unless the application committed meanwhile), and SQLite writes it
// from its start again instead of growing it for the whole run: 1M rows kept it under 20 MB
// without a writer and under 40 MB with one. A reader of the application that keeps an old
// snapshot, which no checkpoint may copy past, keeps it growing until it ends. 1M append-only rows,
// no writer, 6 paired runs: 0.421 s; 0.432 s every 2 batches; 0.464 s with each checkpoint between
// two batches; a single DELETE 0.419 s.
constexpr int k_batches_per_log_restart = 4;
// How long the final TRUNCATE checkpoint, which holds off the application's writers, waits for
// readers of the WAL to finish.
constexpr std::chrono::milliseconds k_truncate_wait{20};

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

// While it lives, a census on `db` ends soon after Selection::stop is set: SQLite asks the
// progress handler every k_census_progress_steps instructions of a statement (a non-zero answer
// ends it with SQLITE_INTERRUPT), and the busy handler, which waits for a lock the application
// holds as busy_timeout would, gives up (SQLITE_BUSY). The progress handler also tells
// Selection::progress at every call, which keeps its own time: a thousand instructions can take
// a millisecond (a cold disk, or malloc under a sanitizer), so a million could take seconds. A
// wait for a lock is no progress.
class CensusWatch {
public:
  CensusWatch(sqlite3* db, const Selection& selection, std::chrono::milliseconds busy_timeout)
      : m_db(db), m_stop(selection.stop), m_progress(selection.progress),
        m_busy_timeout(busy_timeout) {
    if (!watching())
      return;
    sqlite3_progress_handler(m_db, k_census_progress_steps, &on_progress, this);
    sqlite3_busy_handler(m_db, &on_busy, this);
  }
  ~CensusWatch() {
    if (!watching())
      return;
    sqlite3_progress_handler(m_db, 0, nullptr, nullptr);
    sqlite3_busy_timeout(m_db, static_cast<int>(m_busy_timeout.count()));
  }
  CensusWatch(const CensusWatch&) = delete;
  CensusWatch& operator=(const CensusWatch&) = delete;

private:
  bool watching() const { return m_stop != nullptr || m_progress != nullptr; }
  bool stopped() const { return m_stop != nullptr && m_stop->load(); }

  static int on_progress(void* self) {
    auto& watch = *static_cast<CensusWatch*>(self);
    if (watch.m_progress != nullptr)
      (*watch.m_progress)();
    return watch.stopped() ? 1 : 0;
  }

  static int on_busy(void* self, int attempts) {
    auto& watch = *static_cast<CensusWatch*>(self);
    const auto now = std::chrono::steady_clock::now();
    if (attempts == 0)
      watch.m_busy_since = now;
    if (watch.stopped() || now - watch.m_busy_since >= watch.m_busy_timeout)
      return 0;
    std::this_thread::sleep_for(k_census_busy_step);
    return 1;
  }

  sqlite3* m_db;
  const std::atomic<bool>* m_stop;
  const std::function<void()>* m_progress;
  std::chrono::milliseconds m_busy_timeout;
  std::chrono::steady_clock::time_point m_busy_since;
};

// Resolves a linked path read from the table. Only text is a path: a number or a blob that
// spells one would not compare equal to the rows that store it as text (which keep its file).
std::expected<std::unique_ptr<ResolvedFile>, std::string>
resolve_linked(LinkedFiles& linked, const SQLite::Column& path) {
  if (!path.isText())
    return std::unexpected(
        fmt::format("path is stored as {}, not text", path.isBlob() ? "a blob" : "a number"));
  return linked.resolve(path.getString());
}

// 64 random bits in hex: the name of one batch in k_batches_table and in its audit entry.
std::string random_token() {
  return random_hex(8);
}

class SqliteBatch final : public Batch {
public:
  explicit SqliteBatch(SQLite::Database& db) : m_db(db) {
    const auto asked = std::chrono::steady_clock::now();
    m_db.exec("BEGIN IMMEDIATE");
    m_locked_at = std::chrono::steady_clock::now();
    m_waited_for_lock = m_locked_at - asked;
  }

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

  void commit() override {
    // The file goes first: a row is never deleted while its file stays behind.
    for (auto& file : m_files) {
      if (file->remove())
        ++m_removed;
      else
        ++m_vanished;
    }
    m_db.exec("COMMIT");
    m_committed = true;
  }

  // Selects the batch's rows with `select` (into k_batch_table), resolves their linked files,
  // deletes cascade children, then deletes or anonymizes the rows.
  void apply(const RuleStatements& statements, const Selection& selection,
             const SqlFragment& select) {
    m_db.exec(fmt::format("DELETE FROM {}", k_batch_table));
    m_selected = execute(m_db, select);
    if (m_selected == 0)
      return;
    if (selection.linked_files != nullptr)
      resolve_linked_files(statements, *selection.linked_files);
    // Children first, in the same transaction, so no child ever points at a missing parent.
    for (const Cascade& cascade : selection.rule.cascade)
      m_children += execute(m_db, statements.delete_children(cascade));
    m_rows = execute(m_db, statements.change_rows());
  }

  // Changes the rows with one prepared statement (a rowid slice without dependents).
  // Adds what `statement` changes to the batch (a batch may run it for several pieces).
  void change_all(SQLite::Statement& statement) {
    const std::int64_t changed = statement.exec();
    m_rows += changed;
    m_selected += changed;
    statement.reset();
  }

  std::int64_t selected() const { return m_selected; }
  std::int64_t vanished() const override { return m_vanished; }
  std::int64_t files_removed() const override { return m_removed; }
  bool cut_short() const override { return m_cut_short; }
  std::optional<std::int64_t> stopped_at_deadline() const override { return m_covered; }
  std::chrono::steady_clock::duration waited_for_lock() const override { return m_waited_for_lock; }
  // When the batch got the write lock: its budget counts from here.
  std::chrono::steady_clock::time_point locked_at() const { return m_locked_at; }
  void set_exhausted(bool exhausted) { m_exhausted = exhausted; }
  void set_cut_short(bool cut_short) { m_cut_short = cut_short; }
  void set_stopped_at_deadline(std::int64_t covered) { m_covered = covered; }
  std::string token() const override { return m_token; }
  std::vector<PendingFile> pending_files() const override { return pending_files_of(m_files); }
  void set_token(std::string token) { m_token = std::move(token); }

private:
  // Resolves each row's file beneath the files root; a refused path keeps its row. A file
  // that a row outside the batch still names stays (the row goes), and a file two rows of the
  // batch name is removed once.
  void resolve_linked_files(const RuleStatements& statements, LinkedFiles& linked) {
    std::set<std::string> keep;
    SQLite::Statement shared(m_db, statements.shared_paths().text);
    while (shared.executeStep())
      keep.insert(shared.getColumn(0).getString());
    SQLite::Statement paths(m_db, statements.linked_paths().text);
    std::vector<std::int64_t> refused;
    while (paths.executeStep()) {
      if (paths.getColumn(1).isNull())
        continue;
      const std::int64_t rowid = paths.getColumn(0).getInt64();
      const std::string path = paths.getColumn(1).getString();
      auto file = resolve_linked(linked, paths.getColumn(1));
      if (!file) {
        m_refusals.emplace_back(fmt::format("rowid {}", rowid), file.error());
        refused.push_back(rowid);
      } else if (*file && keep.insert(path).second) {
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
  bool m_cut_short = false;
  std::optional<std::int64_t> m_covered;
  std::string m_token;  // see random_token
  std::chrono::steady_clock::time_point m_locked_at;
  std::chrono::steady_clock::duration m_waited_for_lock{0};
  std::int64_t m_selected = 0;
  std::int64_t m_vanished = 0;
  std::int64_t m_removed = 0;  // files removed at commit
  std::int64_t m_rows = 0;
  std::int64_t m_children = 0;
  std::vector<std::unique_ptr<ResolvedFile>> m_files;
  std::vector<std::pair<std::string, std::string>> m_refusals;
};

class SqliteDatastore final : public Datastore {
public:
  SqliteDatastore(const DatastoreConfig& config, OpenMode mode, const AdapterSecrets& secrets)
      : m_name(config.name), m_path(config.path), m_mode(mode), m_busy_timeout(config.busy_timeout),
        m_db(open(config, mode)) {
    register_masks(m_db.getHandle(), secrets.hmac_key);
    register_time_functions(m_db.getHandle());
    if (mode == OpenMode::read_only) {
      m_db.exec("PRAGMA query_only = ON");
      return;
    }
    // Deleted values are overwritten in the file instead of lingering in free pages.
    m_db.exec("PRAGMA secure_delete = ON");
    if (m_db.execAndGet("PRAGMA journal_mode").getString() == "wal") {
      m_wal = true;
      // Each batch's pages are copied into the database file right after it commits, outside
      // the write lock and beside the next batch (see between_batches), instead of inside
      // COMMIT. SQLite's own automatic checkpoint stays as a backstop, far above what one
      // batch writes.
      m_db.exec(fmt::format("PRAGMA wal_autocheckpoint = {}", k_backstop_checkpoint_pages));
      // The checkpoint that follows each commit syncs the log before copying it: a batch is
      // durable a few milliseconds after COMMIT (before the batch after next begins, at the
      // latest), and a power loss in between can only undo it together with every later
      // commit. Syncing in COMMIT as well would hold the write lock through an fsync.
      m_db.exec("PRAGMA synchronous = NORMAL");
      start_checkpointer();
    }
    // Consecutive batches walk neighbouring pages: a cache larger than SQLite's 2 MiB default
    // keeps the interior pages of the table and its indexes between batches (batches run about
    // twice as fast), at a bounded cost in memory.
    m_db.exec(fmt::format("PRAGMA cache_size = -{}", k_page_cache_kib));
    for (const std::string_view table : {k_batch_table, k_refused_table})
      m_db.exec(fmt::format("CREATE TEMP TABLE IF NOT EXISTS {}(id INTEGER PRIMARY KEY)",
                            table.substr(5)));
  }

  SchemaCheck check_schema(const Rule& rule) override {
    SchemaCheck check;
    check_table(check, rule.table, columns_named(rule));
    if (check.errors.empty() && without_rowid(rule.table))
      check.errors.push_back(fmt::format("table '{}' is a WITHOUT ROWID table, which this version "
                                         "cannot batch",
                                         rule.table));
    if (const auto& parent = rule.age_from) {
      check_table(check, parent->table, {parent->column, parent->key});
      if (check.errors.empty())
        check_numeric_anchor(check, rule, parent->table, parent->column);
      if (check.errors.empty() && !is_unique_key(parent->table, parent->key))
        check.errors.push_back(not_unique_parent_key(*parent));
      if (check.errors.empty() && !has_leading_index(parent->table, parent->key))
        check.warnings.push_back(fmt::format("no index on {}.{}: every lookup of a parent scans {}",
                                             parent->table, parent->key, parent->table));
    } else if (!rule.age_column.empty() && check.errors.empty()) {
      check_numeric_anchor(check, rule, rule.table, rule.age_column);
      if (rule.action == Action::anonymize && !rule.anonymized_column &&
          is_not_null(rule.table, rule.age_column))
        check.errors.push_back(not_null_anchor_cleared(rule));
      if (!has_leading_index(rule.table, rule.age_column))
        check.warnings.push_back(fmt::format("no index on {}.{}: finding expired rows scans the "
                                             "whole table (CREATE INDEX ON {}({}))",
                                             rule.table, rule.age_column, rule.table,
                                             rule.age_column));
    }
    if (rule.files && check.errors.empty() &&
        !has_leading_index(rule.table, rule.files->path_column))
      check.warnings.push_back(no_index_on_linked_path(rule));
    for (const Cascade& cascade : rule.cascade) {
      check_table(check, cascade.table, {cascade.foreign_key});
      if (!table_has_column(rule.table, cascade.key))
        check.errors.push_back(fmt::format("table '{}' has no column '{}' (cascade key of {})",
                                           rule.table, cascade.key, cascade.table));
      else if (!is_unique_key(rule.table, cascade.key))
        check.errors.push_back(not_unique_cascade_key(rule, cascade));
      if (check.errors.empty() && !has_leading_index(cascade.table, cascade.foreign_key))
        check.warnings.push_back(
            fmt::format("no index on {}.{}: each batch scans {} to find children", cascade.table,
                        cascade.foreign_key, cascade.table));
    }
    return check;
  }

  RuleCounts count(const Selection& selection) override {
    return stoppable(selection, [&] { return census(selection); });
  }

  RuleCounts census(const Selection& selection) {
    const RuleStatements statements(selection);
    // The census takes a while on a large table: a commit by the application meanwhile shows
    // it is writing before the first batch (see start_walk).
    m_data_version = data_version();
    // One snapshot: the counts add up even while the application writes.
    SQLite::Transaction snapshot(m_db, SQLite::TransactionBehavior::DEFERRED);
    RuleCounts counts;
    counts.table_rows = scalar(statements.count_table_rows());
    counts.undated = scalar(statements.count_undated());
    counts.unreadable = scalar(statements.count_unreadable());
    counts.future = scalar(statements.count_future());
    counts.wrong_scale = scalar(statements.count_wrong_scale());
    const bool with_held = !selection.held_subjects.empty();
    std::int64_t due = 0;
    if (statements_need_match(selection.rule) && !selection.rule.age_from) {
      SQLite::Statement& census = prepared(statements.count_matched_due_held(with_held));
      census.executeStep();
      counts.total = census.getColumn(0).getInt64();
      due = census.getColumn(1).getInt64();
      counts.held = census.getColumn(2).getInt64();
      census.reset();
    } else {
      counts.total = statements_need_match(selection.rule) ? scalar(statements.count_matched())
                                                           : counts.table_rows;
      due = mostly_due(statements, selection)
                ? count_due_by_complement(statements, selection.rule, counts)
                : scalar(statements.count_due());
      counts.held = with_held ? scalar(statements.count_due_held()) : 0;
    }
    counts.due = due - counts.held;
    if (counts.due > 0) {
      SQLite::Statement& oldest = prepared(statements.oldest_due());
      if (oldest.executeStep() && !oldest.getColumn(0).isNull())
        counts.oldest_due = from_unix_millis_in_calendar(oldest.getColumn(0).getInt64());
      oldest.reset();
    }
    snapshot.commit();
    if (selection.linked_files != nullptr)
      count_refused_files(statements, selection, counts);
    m_census = {run_key(selection), counts};
    return counts;
  }

  // Whether most of the rule's rows look due, from the rows at a few rowids spread over the
  // table (a guess: it only decides which side of the cutoff the census counts). Only where
  // the two sides add up to the table: numeric anchors in an index, no match filter, the
  // anchor in the rule's own table.
  bool mostly_due(const RuleStatements& statements, const Selection& selection) {
    const Rule& rule = selection.rule;
    if (statements_need_match(rule) || rule.age_from || !statements.numeric_anchor() ||
        !has_anchor_index(rule))
      return false;
    const auto rowids = rowid_range(rule.table);
    if (!rowids)
      return false;
    const auto [low, high] = *rowids;
    int due = 0;
    int dated = 0;
    for (int probe = 0; probe < k_census_probes; ++probe) {
      const std::int64_t rowid =
          low +
          static_cast<std::int64_t>((static_cast<double>(high - low) * probe) / k_census_probes);
      SQLite::Statement& row = prepared(statements.row_due_from(rowid));
      if (row.executeStep() && !row.getColumn(0).isNull()) {
        ++dated;
        due += row.getColumn(0).getInt() != 0 ? 1 : 0;
      }
      row.reset();
    }
    return dated > 0 && due * 10 > dated * 6;
  }

  // Due rows as the table's numbers less those not due: every row is undated, unreadable
  // (text or blob), or a number, and a number is due unless it is at or after the cutoff or,
  // for milliseconds, below the scale threshold (wrong_scale). Seconds at or above that
  // threshold are at or after any cutoff.
  std::int64_t count_due_by_complement(const RuleStatements& statements, const Rule& rule,
                                       const RuleCounts& counts) {
    const std::int64_t numbers = counts.table_rows - counts.undated - counts.unreadable;
    const std::int64_t too_small =
        rule.age_format == AgeFormat::unix_millis ? scalar(statements.count_below_scale()) : 0;
    return numbers - too_small - scalar(statements.count_numbers_not_due());
  }

  std::vector<std::int64_t> count_by_anchor(const Selection& selection,
                                            const std::vector<Instant>& edges) override {
    return stoppable(selection, [&] {
      const RuleStatements statements(selection);
      std::vector<std::int64_t> counts;
      std::optional<Instant> from;
      for (const Instant& edge : edges) {
        counts.push_back(scalar(statements.count_anchors(from, edge)));
        from = edge;
      }
      counts.push_back(scalar(statements.count_anchors(from, std::nullopt)));
      return counts;
    });
  }

  RunPlan plan_run(const Selection& selection) override {
    stoppable(selection, [&] { walk_for(selection); });
    return {.in_physical_order = m_walk.in_physical_order};
  }

  std::unique_ptr<Batch> begin_batch(const Selection& selection, std::int64_t limit,
                                     std::chrono::steady_clock::duration budget) override {
    std::unique_ptr<SqliteBatch> batch = change_batch(selection, limit, budget);
    if (batch && batch->rows() + batch->children() > 0) {
      m_run_changed_rows = true;
      batch->set_token(random_token());
      record_batch(selection.rule, batch->token());
    }
    // The changed pages go to the WAL now, before the engine writes the batch's audit entry:
    // the COMMIT that follows the entry then appends one frame instead of the whole batch, so
    // the instant in which a killed process leaves an entry for a batch that did not commit is
    // a few microseconds instead of a few milliseconds.
    if (batch && m_wal)
      if (const int result = sqlite3_db_cacheflush(m_db.getHandle()); result != SQLITE_OK)
        throw std::runtime_error(fmt::format("datastore '{}': cannot write the batch's pages: {}",
                                             m_name, sqlite3_errstr(result)));
    return batch;
  }

  std::unique_ptr<SqliteBatch> change_batch(const Selection& selection, std::int64_t limit,
                                            std::chrono::steady_clock::duration budget) {
    if (m_mode == OpenMode::read_only)
      throw std::runtime_error(fmt::format("datastore '{}' is open read-only", m_name));
    walk_for(selection);
    // Each linked file stays open (by descriptor) until the batch commits: keep batches with
    // files small enough for the process's descriptor limit.
    if (selection.linked_files != nullptr)
      limit = std::min(limit, k_max_linked_files_per_batch);
    const RuleStatements statements(selection);
    while (!m_walk.done && m_walk.by_rowid && m_walk.next_rowid > m_walk.last_rowid)
      enter_band(m_walk.band + 1);
    if (m_walk.done)
      return nullptr;
    if (m_checkpointer) {
      // The batch before last is durable before this one begins: a power loss can undo at
      // most two batches (usually the checkpoint ended long ago).
      if (++m_batches_since_log_restart < k_batches_per_log_restart)
        m_checkpointer->wait(m_checkpoint_before_last);
      else {
        m_checkpointer->wait();
        m_batches_since_log_restart = 0;
      }
    }
    auto batch = std::make_unique<SqliteBatch>(m_db);
    // Read inside the transaction, which holds the write lock: whatever changes data_version
    // from here on was committed after this batch.
    if (data_version() != m_data_version)
      note_application_write();
    if (m_walk.by_rowid) {
      // A slice holds `limit` physical rows, however far apart their keys are. Found inside
      // the transaction: the statement that follows changes rows on the very pages this read
      // brought into the page cache.
      const std::int64_t lo = m_walk.next_rowid;
      std::int64_t hi = lo;
      bool cut_short = false;
      if (statements.single_statement_batches())
        std::tie(hi, cut_short) = change_in_pieces(*batch, statements, lo, limit, budget);
      else {
        std::tie(hi, cut_short) = slice_end(statements.table(), lo, limit);
        batch->apply(statements, selection, statements.select_range(lo, hi));
      }
      m_walk.next_rowid = hi;
      // Every row the band had due has changed: the rest of its stretch has none (unless the
      // application changed rows meanwhile; the next run finds those).
      RuleStatements::Band& band = m_walk.bands[m_walk.band];
      if (band.due >= 0 && (band.due -= batch->rows()) <= 0)
        m_walk.next_rowid = m_walk.last_rowid + 1;
      batch->set_cut_short(cut_short);
      batch->set_exhausted(m_walk.next_rowid > m_walk.last_rowid &&
                           m_walk.band + 1 == m_walk.bands.size());
      return batch;
    }
    batch->apply(statements, selection, statements.select_batch(limit));
    // Found through the index: fewer rows than asked means none are left.
    m_walk.done = batch->selected() < limit;
    batch->set_exhausted(m_walk.done);
    return batch;
  }

  void between_batches(std::chrono::milliseconds longest) override {
    using std::chrono::steady_clock;
    // First the work the batch left that needs no lock: copying its pages from the WAL into
    // the database file, on the checkpointer's thread while the next batch runs. A writer of
    // the application that queued behind the batch gets in meanwhile; its own automatic
    // checkpoint then finds nothing left to copy (or ours running), so the application never
    // pays for the copy.
    m_checkpoint_before_last = m_checkpoint_last;
    m_checkpoint_last = checkpoint_soon();
    // data_version changes when another connection commits; begin_batch noted it inside the
    // batch's transaction. Changed since: the application's writer got in, nothing to wait
    // for. Unchanged, but the application wrote within the last second: one of its writers
    // most likely queued behind the batch, sleeping in SQLite's busy handler; wait until it is
    // through or `longest` has passed. An idle application costs nothing.
    if (data_version() != m_data_version) {
      application_got_in();
      return;
    }
    if (steady_clock::now() - m_application_wrote > k_application_quiet)
      return;
    const auto deadline = steady_clock::now() + longest;
    while (steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds{200});
      if (data_version() != m_data_version) {
        application_got_in();
        return;
      }
    }
  }

  void finish_run() override {
    if (m_mode == OpenMode::read_only || !m_wal)
      return;
    const bool changed_rows = std::exchange(m_run_changed_rows, false);
    // An empty log holds nothing to take out: a run that changed nothing after one that
    // finished costs no checkpoint. One that is not empty may hold an earlier run's deleted
    // values (killed before its finish_run, with the application's connection keeping the
    // WAL open, so that SQLite never removes it), whatever this run changed.
    if (!changed_rows && wal_is_empty())
      return;
    // Truncating the WAL removes the last copies of deleted pages from the write-ahead log. A
    // TRUNCATE checkpoint holds off the application's writers while it copies and while it
    // waits for readers: whatever is left to copy (the checkpointer copies the last batch's
    // pages; the application may have written since) is copied first without blocking anyone,
    // and the wait for readers is short. A reader that stays longer keeps the WAL until the
    // next checkpoint (the application's own, or the next run's).
    if (m_checkpointer)
      m_checkpointer->wait();
    checkpoint();
    m_db.setBusyTimeout(static_cast<int>(k_truncate_wait.count()));
    SQLite::Statement truncate(m_db, "PRAGMA wal_checkpoint(TRUNCATE)");
    const bool blocked = truncate.executeStep() && truncate.getColumn(0).getInt() != 0;
    m_db.setBusyTimeout(static_cast<int>(m_busy_timeout.count()));
    // After a run that changed nothing the log most likely holds only the application's own
    // writes: a reader that blocks it is no news, and would be logged at every run.
    if (blocked)
      spdlog::log(changed_rows ? spdlog::level::warn : spdlog::level::debug,
                  "datastore '{}': WAL checkpoint was blocked by a reader; deleted values stay "
                  "in the WAL until the next checkpoint",
                  m_name);
  }

private:
  // Where a run's batches are in the table.
  struct Walk {
    std::string run;       // rule@cutoff
    bool by_rowid = true;  // slices of rowids, or batches found through the anchor index
    std::vector<RuleStatements::Band> bands{RuleStatements::Band{}};
    std::size_t band = 0;
    std::int64_t next_rowid = 0;
    std::int64_t last_rowid = -1;  // of the current band, when it started
    bool done = false;
    bool in_physical_order = false;  // many due rows, in rowid order (see RunPlan)
    std::int64_t largest_piece = 0;  // rows, see k_first_piece
  };

  static bool statements_need_match(const Rule& rule) {
    return !rule.match.empty() || rule.anonymized_column.has_value();
  }

  // Starts the walk of the selection's run unless it is the one under way.
  void walk_for(const Selection& selection) {
    adapters::walk_for(m_walk, selection,
                       [&](const std::string& key) { start_walk(selection, key); });
  }

  // Chooses the access path for a run. Walking rowid slices touches each table page once and
  // keeps every transaction's cost proportional to its slice, whatever the time order of the
  // rows; but when few rows are due, reading the whole table to find them is waste, and the
  // anchor's index finds them directly.
  //
  // With an index on the anchor, one pass over the due rows' index entries finds the rowids
  // they span: for append-only data (time grows with rowid) the walk covers just that stretch.
  // When the due rows are scattered and many, the run is split into bands of the anchor's
  // values, each walked over the rowids it spans: rows in random time order would otherwise
  // make every small transaction rewrite pages all over the anchor's index, which then no
  // longer fits the page cache. A band's part of the index does, so a batch costs what its rows
  // cost.
  void start_walk(const Selection& selection, const std::string& key) {
    // The table of refused rows exists only where batches can run.
    if (m_mode == OpenMode::read_write)
      m_db.exec(fmt::format("DELETE FROM {}", k_refused_table));
    m_walk = Walk{key};
    // An application writer that queues behind the first batches must be waited for as well:
    // a commit since the census (or, with no census, since this connection last looked) says
    // it is active.
    if (data_version() != m_data_version)
      note_application_write();
    const RuleStatements statements(selection);
    const RuleCounts* census = m_census.first == key ? &m_census.second : nullptr;
    const bool indexed = has_anchor_index(selection.rule);
    const bool sparse = census != nullptr && census->due * 20 < census->table_rows;
    m_walk.by_rowid = !(sparse && indexed);
    if (!m_walk.by_rowid)
      return;
    if (const auto rowids = rowid_range(statements.table()))
      m_walk.bands.front() = {nullptr, nullptr, rowids->first, rowids->second,
                              census ? census->due : -1};
    // Many due rows in random time order: bands (see above). In time order, one walk over the
    // table touches each page of the table and of the index once, and stops after the last due
    // row.
    if (census != nullptr && indexed && statements.single_statement_batches() &&
        census->due > k_rows_per_band) {
      m_walk.in_physical_order = time_follows_rowid(statements, *census, selection.cutoff);
      if (!m_walk.in_physical_order)
        m_walk.bands = plan_bands(statements, census->due);
    }
    enter_band(0);
  }

  // Bands of about k_rows_per_band due rows each, with the rowids each spans; a single band
  // when the due rows are few.
  std::vector<RuleStatements::Band> plan_bands(const RuleStatements& statements, std::int64_t due) {
    const std::int64_t count =
        std::clamp<std::int64_t>((due + k_rows_per_band - 1) / k_rows_per_band, 1, k_max_bands);
    const std::int64_t step = std::max<std::int64_t>(1, due / count);
    constexpr std::int64_t none = std::numeric_limits<std::int64_t>::max();
    std::vector<RuleStatements::Band> bands{{nullptr, nullptr, none, -1, 0}};
    RuleStatements::Band whole{nullptr, nullptr, none, -1, due};
    std::int64_t seen = 0;
    const SqlFragment query = statements.due_anchor_values();
    SQLite::Statement values(m_db, query.text);
    bind_all(values, query.values);
    bool splittable = true;
    bool split_wanted = false;
    SqlValue previous = nullptr;
    for (; values.executeStep(); ++seen) {
      const SQLite::Column column = values.getColumn(0);
      SqlValue value = nullptr;
      if (column.isInteger())
        value = static_cast<std::int64_t>(column.getInt64());
      else if (column.isFloat())
        value = column.getDouble();
      else if (column.isText())
        value = column.getString();
      else
        splittable = false;
      if (seen > 0 && seen % step == 0 && static_cast<std::int64_t>(bands.size()) < count)
        split_wanted = true;
      // Split where the value changes, so that equal anchors stay in one band.
      if (split_wanted && splittable && value != previous) {
        bands.back().high = value;
        bands.push_back({value, nullptr, none, -1, 0});
        split_wanted = false;
      }
      const std::int64_t rowid = values.getColumn(1).getInt64();
      RuleStatements::Band& band = bands.back();
      ++band.due;
      band.first_rowid = std::min(band.first_rowid, rowid);
      band.last_rowid = std::max(band.last_rowid, rowid);
      whole.first_rowid = std::min(whole.first_rowid, rowid);
      whole.last_rowid = std::max(whole.last_rowid, rowid);
      previous = std::move(value);
    }
    if (seen == 0)
      return {RuleStatements::Band{}};  // nothing due: an empty walk
    // With time growing with the rowid, the bands span disjoint stretches of rowids and the
    // walk reads each row once; with rows in random order, each band's walk reads the whole
    // stretch again, the price of a small index working set.
    if (!splittable || bands.size() == 1)
      return {whole};
    return bands;
  }

  // Whether the anchors of the due rows grow with their rowids (an append-only table), judged
  // from the rowids of the first due rows at or after evenly spaced instants. Only the access
  // path depends on it: a wrong guess makes a run slower, never different.
  bool time_follows_rowid(const RuleStatements& statements, const RuleCounts& census,
                          Instant cutoff) {
    if (!census.oldest_due || *census.oldest_due >= cutoff)
      return false;
    constexpr int k_probes = 16;
    const Instant oldest = *census.oldest_due;
    const auto span = std::chrono::duration_cast<std::chrono::milliseconds>(cutoff - oldest);
    std::int64_t previous = std::numeric_limits<std::int64_t>::min();
    for (int probe = 0; probe < k_probes; ++probe) {
      SQLite::Statement& first =
          prepared(statements.first_due_rowid_from(oldest + span * probe / k_probes));
      if (!first.executeStep()) {
        first.reset();
        return false;
      }
      const std::int64_t rowid = first.getColumn(0).getInt64();
      first.reset();
      if (rowid < previous)
        return false;
      previous = rowid;
    }
    return true;
  }

  // Moves the walk to band `index`, or to the end of the run.
  void enter_band(std::size_t index) {
    m_walk.band = index;
    if (index >= m_walk.bands.size()) {
      m_walk.done = true;
      return;
    }
    m_walk.next_rowid = m_walk.bands[index].first_rowid;
    m_walk.last_rowid = m_walk.bands[index].last_rowid;
  }

  // Changes the slice of `limit` rows from `lo` on in pieces, one statement each, and starts no
  // piece that the previous one's pace says would end more than `budget` after the batch got
  // the write lock: a batch that runs slower than its size promised (pages not in the
  // cache, a busy disk) still ends in time for the application's writer. Returns the end of
  // what it covered and whether the band ended.
  std::pair<std::int64_t, bool> change_in_pieces(SqliteBatch& batch,
                                                 const RuleStatements& statements, std::int64_t lo,
                                                 std::int64_t limit,
                                                 std::chrono::steady_clock::duration budget) {
    using std::chrono::steady_clock;
    const steady_clock::time_point deadline = deadline_after(batch.locked_at(), budget);
    // A small batch is one piece: split in eight, a batch whose first piece already reaches
    // its deadline (a short aim, a slow host) would cover an eighth of its size, and the next
    // size, scaled from what it covered, an eighth of that.
    const std::int64_t piece =
        std::max({std::int64_t{1}, limit / k_pieces_per_batch, std::min(limit, k_first_piece)});
    std::int64_t covered = 0;
    const auto next_size = [&] {
      return std::min({piece, limit - covered, std::max(k_first_piece, 2 * m_walk.largest_piece)});
    };
    std::int64_t size = next_size();
    while (true) {
      const auto piece_started = steady_clock::now();
      const auto [hi, band_ended] = slice_end(statements.table(), lo, size);
      batch.change_all(prepared(statements.change_range(lo, hi, m_walk.bands[m_walk.band])));
      m_walk.largest_piece = std::max(m_walk.largest_piece, size);
      covered += size;
      lo = hi;
      if (band_ended || covered >= limit)
        return {hi, band_ended};
      const std::int64_t next = next_size();
      if (next_piece_passes(piece_started, size, next, deadline)) {
        batch.set_stopped_at_deadline(covered);
        return {hi, false};
      }
      size = next;
    }
  }

  // The smallest and largest rowid of `table`; nullopt when it is empty. Two statements: SQLite
  // answers a lone min() or max() of the rowid from the b-tree's edge, but both in one statement
  // by reading the whole table.
  std::optional<std::pair<std::int64_t, std::int64_t>> rowid_range(const std::string& table) {
    const std::string quoted = quote_identifier(table);
    SQLite::Statement first(m_db, fmt::format("SELECT min(rowid) FROM {}", quoted));
    SQLite::Statement last(m_db, fmt::format("SELECT max(rowid) FROM {}", quoted));
    if (!first.executeStep() || !last.executeStep() || first.getColumn(0).isNull())
      return std::nullopt;
    return std::pair{first.getColumn(0).getInt64(), last.getColumn(0).getInt64()};
  }

  // The rowid just after the `limit` rows from `lo` on, or just after the band's last rowid
  // when that comes first (the slice is then cut short).
  std::pair<std::int64_t, bool> slice_end(const std::string& table, std::int64_t lo,
                                          std::int64_t limit) {
    SQLite::Statement& next = prepared(
        {fmt::format("SELECT rowid FROM {} WHERE rowid >= ? ORDER BY rowid LIMIT 1 OFFSET ?",
                     quote_identifier(table)),
         {lo, limit}});
    const std::int64_t band_end = m_walk.last_rowid + 1;
    const std::int64_t end = next.executeStep() ? next.getColumn(0).getInt64() : band_end;
    next.reset();
    return {std::min(end, band_end), end >= band_end};
  }

  bool has_anchor_index(const Rule& rule) {
    if (rule.age_from)
      return has_leading_index(rule.age_from->table, rule.age_from->column);
    return has_leading_index(rule.table, rule.age_column);
  }

  // Runs the reads of a census so that Selection::stop ends them (CensusStopped).
  template <typename Reads>
  auto stoppable(const Selection& selection, Reads&& reads) -> decltype(reads()) {
    throw_if_stopped(selection);
    const CensusWatch watch(m_db.getHandle(), selection, m_busy_timeout);
    try {
      return reads();
    } catch (const SQLite::Exception& error) {
      const int code = error.getErrorCode() & 0xff;
      if (selection.stop != nullptr && selection.stop->load() &&
          (code == SQLITE_INTERRUPT || code == SQLITE_BUSY))
        throw CensusStopped();
      throw;
    }
  }

  // Copies what the WAL holds into the database file, without waiting for anyone (PASSIVE):
  // frames a reader still needs stay for the next one.
  void checkpoint() {
    if (!m_wal)
      return;
    checkpoint_passive(m_db.getHandle(), m_name);
  }

  // Names the batch under way in its own transaction (see Datastore::batch_committed): the
  // rule's row of k_batches_table holds the token of its last committed batch. The first
  // batch that changes rows creates the table, inside its transaction; for the others the
  // prepared CREATE ... IF NOT EXISTS is a check of the schema SQLite holds in memory.
  void record_batch(const Rule& rule, const std::string& token) {
    prepared({fmt::format("CREATE TABLE IF NOT EXISTS {}(rule TEXT PRIMARY KEY, token TEXT NOT "
                          "NULL) WITHOUT ROWID",
                          k_batches_table),
              {}})
        .exec();
    SQLite::Statement& upsert = prepared(
        {fmt::format("INSERT INTO {}(rule, token) VALUES (?, ?) ON CONFLICT(rule) DO UPDATE SET "
                     "token = excluded.token",
                     k_batches_table),
         {rule.id, token}});
    upsert.exec();
  }

public:
  std::optional<bool> batch_committed(const Rule& rule, const std::string& token) override {
    // Not a token of this adapter's (see random_token): nothing this datastore can tell.
    if (token.size() != 16 || token.find_first_not_of("0123456789abcdef") != std::string::npos)
      return std::nullopt;
    // No table: no batch that would have made it ever committed.
    SQLite::Statement exists(m_db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?");
    exists.bind(1, std::string{k_batches_table});
    if (!exists.executeStep())
      return false;
    SQLite::Statement& last =
        prepared({fmt::format("SELECT token FROM {} WHERE rule = ?", k_batches_table), {rule.id}});
    const bool committed = last.executeStep() && last.getColumn(0).getString() == token;
    last.reset();
    return committed;
  }

private:
  // Whether the WAL file is 0 bytes long (as a TRUNCATE checkpoint leaves it) or missing. One
  // that cannot be looked at counts as not empty: better a checkpoint too many.
  bool wal_is_empty() {
    const char* log = sqlite3_filename_wal(sqlite3_db_filename(m_db.getHandle(), "main"));
    std::error_code error;
    const std::uintmax_t size = std::filesystem::file_size(log, error);
    if (error)
      return error == std::errc::no_such_file_or_directory;
    return size == 0;
  }

  // Checkpoints of a datastore in WAL mode run on a thread of their own (see between_batches),
  // with a connection opened beside m_db, on the same file. Where that cannot open, they run
  // between batches.
  void start_checkpointer() {
    try {
      m_checkpointer = std::make_unique<WalCheckpointer>(m_path, m_name, m_busy_timeout);
    } catch (const std::exception& error) {
      spdlog::warn("datastore '{}': checkpoints run between batches, not beside them: {}", m_name,
                   error.what());
    }
  }

  // Asks for a checkpoint on the checkpointer's thread, and returns its ticket; without the
  // thread, checkpoints here.
  std::uint64_t checkpoint_soon() {
    if (m_checkpointer)
      return m_checkpointer->request();
    checkpoint();
    return 0;
  }

  // The application committed after the batch. Its frames are copied as well (a few pages):
  // the batch that waits for the checkpoints (see k_batches_per_log_restart) then finds the WAL
  // wholly copied and SQLite writes it from the start again. Otherwise, with the application
  // writing between every two batches, the log is never wholly copied at the start of a batch
  // and grows for the whole run (500 MB on 5M rows), and the final TRUNCATE, which holds off
  // writers, has that much to cut.
  void application_got_in() {
    note_application_write();
    checkpoint_soon();
  }

  void note_application_write() {
    m_data_version = data_version();
    m_application_wrote = std::chrono::steady_clock::now();
  }

  std::int64_t data_version() {
    SQLite::Statement& version = prepared({"PRAGMA data_version", {}});
    version.executeStep();
    const std::int64_t value = version.getColumn(0).getInt64();
    version.reset();
    return value;
  }

  // A statement prepared once per connection and text, with `fragment`'s values bound. Batches
  // of one run share their statement text, so SQLite plans it once.
  SQLite::Statement& prepared(const SqlFragment& fragment) {
    auto found = m_statements.find(fragment.text);
    if (found == m_statements.end())
      found = m_statements.try_emplace(fragment.text, m_db, fragment.text).first;
    SQLite::Statement& statement = found->second;
    // Not reset(), which throws again the error of the statement's last step: a statement that
    // failed once (a census stopped, a lock not granted) is reusable.
    statement.tryReset();
    statement.clearBindings();
    bind_all(statement, fragment.values);
    return statement;
  }

  std::int64_t scalar(const SqlFragment& query) {
    SQLite::Statement& statement = prepared(query);
    statement.executeStep();
    const std::int64_t value = statement.getColumn(0).getInt64();
    statement.reset();
    return value;
  }

  // Due rows whose linked file would be refused stay: they are `refused`, not `due`.
  void count_refused_files(const RuleStatements& statements, const Selection& selection,
                           RuleCounts& counts) {
    LinkedFiles& linked = *selection.linked_files;
    const SqlFragment query = statements.due_paths();
    SQLite::Statement paths(m_db, query.text);
    bind_all(paths, query.values);
    counts.oldest_due.reset();
    while (paths.executeStep()) {
      census_step(selection);  // each path is a few lookups in the file system
      if (!paths.getColumn(0).isNull() && !resolve_linked(linked, paths.getColumn(0)))
        ++counts.refused;
      else if (!counts.oldest_due)
        counts.oldest_due = from_unix_millis_in_calendar(paths.getColumn(1).getInt64());
    }
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

  // The table's columns, in its order.
  std::vector<std::string> columns_of(const std::string& table) {
    SQLite::Statement query(m_db, "SELECT name FROM pragma_table_info(?) ORDER BY cid");
    query.bind(1, table);
    std::vector<std::string> columns;
    while (query.executeStep())
      columns.push_back(query.getColumn(0).getString());
    return columns;
  }

  bool table_has_column(const std::string& table, const std::string& column) {
    const std::vector<std::string> columns = columns_of(table);
    return std::find(columns.begin(), columns.end(), column) != columns.end();
  }

  // Whether SQLite gives the column TEXT affinity (its declared type names CHAR, CLOB or TEXT,
  // and not INT): it stores every number written to it as text, and compares it as text.
  bool has_text_affinity(const std::string& table, const std::string& column) {
    return counts_any("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2 AND "
                      "upper(type) NOT LIKE '%INT%' AND (upper(type) LIKE '%CHAR%' OR "
                      "upper(type) LIKE '%CLOB%' OR upper(type) LIKE '%TEXT%')",
                      table, column);
  }

  // A Unix time in a column of TEXT affinity is text: it cannot be read as a number, and every
  // comparison with the cutoff would compare text ('1000000000' < '2' ...).
  void check_numeric_anchor(SchemaCheck& check, const Rule& rule, const std::string& table,
                            const std::string& column) {
    if ((rule.age_format != AgeFormat::unix_seconds && rule.age_format != AgeFormat::unix_millis) ||
        !has_text_affinity(table, column))
      return;
    check.errors.push_back(fmt::format(
        "{}.{} is declared as text, so SQLite stores the numbers of age_format '{}' in it as "
        "text, which cannot be compared with the cutoff (declare the column INTEGER, or keep "
        "ISO 8601 text in it with age_format = \"iso8601\")",
        table, column, to_string(rule.age_format)));
  }

  bool is_not_null(const std::string& table, const std::string& column) {
    return counts_any("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2 AND \"notnull\"",
                      table, column);
  }

  void check_table(SchemaCheck& check, const std::string& table,
                   const std::vector<std::string>& columns) {
    SQLite::Statement kind(m_db, "SELECT type FROM sqlite_schema WHERE name = ?");
    kind.bind(1, table);
    if (!kind.executeStep()) {
      check.errors.push_back(
          fmt::format("table '{}' does not exist in datastore '{}'", table, m_name));
      return;
    }
    if (kind.getColumn(0).getString() != "table") {
      check.errors.push_back(fmt::format("'{}' in datastore '{}' is a {}, not a table", table,
                                         m_name, kind.getColumn(0).getString()));
      return;
    }
    const std::vector<std::string> existing = columns_of(table);
    for (const std::string& column : columns)
      if (std::find(existing.begin(), existing.end(), column) == existing.end())
        check.errors.push_back(no_such_column(table, column, existing));
  }

  bool without_rowid(const std::string& table) {
    SQLite::Statement query(m_db, "SELECT wr FROM pragma_table_list(?)");
    query.bind(1, table);
    return query.executeStep() && query.getColumn(0).getInt() != 0;
  }

  // Whether no two rows of `table` can hold the same `column`: an INTEGER PRIMARY KEY (the
  // rowid), or a unique index, not partial, on that column alone.
  bool is_unique_key(const std::string& table, const std::string& column) {
    return counts_any("SELECT count(*) FROM pragma_index_list(?1) AS il WHERE il.\"unique\" "
                      "AND NOT il.partial AND (SELECT count(*) FROM pragma_index_info(il.name)) "
                      "= 1 AND (SELECT name FROM pragma_index_info(il.name)) = ?2",
                      table, column) ||
           is_rowid_alias(table, column);
  }

  // Whether `column` is the table's INTEGER PRIMARY KEY, another name for its rowid.
  bool is_rowid_alias(const std::string& table, const std::string& column) {
    return counts_any("SELECT count(*) FROM pragma_table_info(?1) WHERE pk = 1 AND name = ?2 "
                      "AND upper(type) = 'INTEGER' AND (SELECT count(*) FROM "
                      "pragma_table_info(?1) WHERE pk > 0) = 1",
                      table, column);
  }

  bool has_leading_index(const std::string& table, const std::string& column) {
    // An INTEGER PRIMARY KEY is the rowid itself: indexed without an index.
    return counts_any("SELECT count(*) FROM pragma_index_list(?1) AS il, "
                      "pragma_index_info(il.name) AS ii WHERE ii.seqno = 0 AND ii.name = ?2",
                      table, column) ||
           is_rowid_alias(table, column);
  }

  // Whether the schema question `count_query` (?1 the table, ?2 the column) counts any row.
  bool counts_any(const char* count_query, const std::string& table, const std::string& column) {
    SQLite::Statement query(m_db, count_query);
    query.bind(1, table);
    query.bind(2, column);
    query.executeStep();
    return query.getColumn(0).getInt() > 0;
  }

  std::string m_name;
  std::filesystem::path m_path;
  OpenMode m_mode;
  std::chrono::milliseconds m_busy_timeout;
  SQLite::Database m_db;
  std::unique_ptr<WalCheckpointer> m_checkpointer;  // read-write, in WAL mode
  int m_batches_since_log_restart = 0;
  std::uint64_t m_checkpoint_last = 0;         // the ticket of the last batch's checkpoint
  std::uint64_t m_checkpoint_before_last = 0;  // and of the one before
  Walk m_walk;
  std::pair<std::string, RuleCounts> m_census;  // the last count(), by run key
  bool m_wal = false;                           // the datastore is in WAL mode
  bool m_run_changed_rows = false;              // a batch changed rows since the last finish_run
  std::int64_t m_data_version = 0;
  std::chrono::steady_clock::time_point m_application_wrote;  // last commit seen from others
  std::map<std::string, SQLite::Statement> m_statements;
};

}  // namespace

std::unique_ptr<Datastore> open_sqlite_datastore(const DatastoreConfig& config, OpenMode mode,
                                                 const AdapterSecrets& secrets) {
  return std::make_unique<SqliteDatastore>(config, mode, secrets);
}

}  // namespace retentiond::adapters::sqlite
