#include "daemon/sqlite_state_store.hpp"

#include "daemon/json_writer.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/fmt/fmt.h>
#include <sqlite3.h>

#include <limits>
#include <stdexcept>
#include <sys/stat.h>
#include <system_error>
#include <utility>

namespace retentiond {

namespace {

constexpr int k_busy_timeout_ms = 10'000;
// 2 added meta (the audit key's fingerprint).
constexpr int k_schema_version = 2;

constexpr const char* k_schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS audit(
  seq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  kind TEXT NOT NULL,
  rule TEXT,
  rows INTEGER NOT NULL,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS holds(
  id INTEGER PRIMARY KEY,
  subject TEXT,
  rule TEXT,
  reason TEXT NOT NULL,
  created TEXT NOT NULL,
  until TEXT,
  released TEXT,
  release_reason TEXT
);
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY,
  rule TEXT NOT NULL,
  started TEXT NOT NULL,
  finished TEXT,
  result TEXT NOT NULL,
  rows INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_rule_id ON runs(rule, id);
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

constexpr const char* k_audit_columns = "seq, time, kind, rule, rows, detail, prev_hash, hash";
constexpr const char* k_hold_columns =
    "id, subject, rule, reason, created, until, released, release_reason";
constexpr const char* k_run_columns = "id, rule, started, finished, result, rows, message";

std::optional<std::string> optional_text(const SQLite::Column& column) {
  if (column.isNull())
    return std::nullopt;
  return column.getString();
}

std::string text_or_empty(const SQLite::Column& column) {
  return column.isNull() ? std::string{} : column.getString();
}

void bind_optional(SQLite::Statement& statement, int index,
                   const std::optional<std::string>& value) {
  if (value)
    statement.bind(index, *value);
  else
    statement.bind(index);
}

AuditEntry read_audit_row(const SQLite::Statement& row) {
  AuditEntry entry;
  entry.seq = row.getColumn(0).getInt64();
  entry.time = row.getColumn(1).getString();
  entry.kind = row.getColumn(2).getString();
  entry.rule = text_or_empty(row.getColumn(3));
  entry.rows = row.getColumn(4).getInt64();
  entry.detail = row.getColumn(5).getString();
  entry.prev_hash = row.getColumn(6).getString();
  entry.hash = row.getColumn(7).getString();
  return entry;
}

Hold read_hold_row(const SQLite::Statement& row) {
  Hold hold;
  hold.id = row.getColumn(0).getInt64();
  hold.subject = optional_text(row.getColumn(1));
  hold.rule = optional_text(row.getColumn(2));
  hold.reason = row.getColumn(3).getString();
  hold.created = row.getColumn(4).getString();
  hold.until = optional_text(row.getColumn(5));
  hold.released = optional_text(row.getColumn(6));
  hold.release_reason = optional_text(row.getColumn(7));
  return hold;
}

RunRecord read_run_row(const SQLite::Statement& row) {
  RunRecord run;
  run.id = row.getColumn(0).getInt64();
  run.rule = row.getColumn(1).getString();
  run.started = row.getColumn(2).getString();
  run.finished = text_or_empty(row.getColumn(3));
  run.result = row.getColumn(4).getString();
  run.rows = row.getColumn(5).getInt64();
  run.message = row.getColumn(6).getString();
  return run;
}

// The first table a state of schema `version` should have and does not: such a state is
// damaged (an audit table dropped to hide what was deleted), not new.
std::optional<std::string> missing_table(SQLite::Database& db, int version) {
  if (version < 1)
    return std::nullopt;  // see reset_version
  for (const char* table : {"audit", "holds", "runs"})
    if (!db.tableExists(table))
      return table;
  if (version >= 2 && !db.tableExists("meta"))
    return "meta";
  return std::nullopt;
}

// Whether a state whose schema version reads 0 has tables all the same: the version was reset
// (which would hide the chain from read-only opens), not never set.
bool reset_version(SQLite::Database& db) {
  for (const char* table : {"audit", "holds", "runs", "meta"})
    if (db.tableExists(table))
      return true;
  return false;
}

[[noreturn]] void throw_damaged(const std::string& table) {
  throw std::runtime_error(fmt::format("the state is damaged: its table '{}' is missing (restore "
                                       "the state file from a backup; audit verify cannot pass)",
                                       table));
}

[[noreturn]] void throw_damaged_version() {
  throw std::runtime_error("the state is damaged: its schema version reads 0 although it has "
                           "tables (restore the state file from a backup; audit verify cannot "
                           "pass)");
}

// The fingerprint of the audit key the state recorded; nullopt when none is recorded yet (a
// new state, or one written before schema 2).
std::optional<std::string> recorded_key_fingerprint(SQLite::Database& db) {
  if (!db.tableExists("meta"))
    return std::nullopt;
  SQLite::Statement query(db, "SELECT value FROM meta WHERE key = 'audit_key'");
  if (!query.executeStep())
    return std::nullopt;
  return query.getColumn(0).getString();
}

// The chain's first entry, when it has one.
std::optional<AuditEntry> first_audit_entry(SQLite::Database& db) {
  SQLite::Statement first(
      db, fmt::format("SELECT {} FROM audit ORDER BY seq LIMIT 1", k_audit_columns));
  if (!first.executeStep())
    return std::nullopt;
  return read_audit_row(first);
}

// Appends one entry inside the caller's BEGIN IMMEDIATE transaction. Reading the head here,
// under the write lock, is what keeps concurrent writers from forking the chain.
AuditEntry append_in_transaction(SQLite::Database& db, const std::optional<std::string>& key,
                                 std::string_view kind, std::string_view rule, std::int64_t rows,
                                 std::string detail_json) {
  ChainHead head;
  {
    SQLite::Statement last(db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (last.executeStep())
      head.emplace(last.getColumn(0).getInt64(), last.getColumn(1).getString());
  }
  AuditEntry entry = next_audit_entry(head, kind, rule, rows, std::move(detail_json), key);

  SQLite::Statement insert(
      db, fmt::format("INSERT INTO audit({}) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", k_audit_columns));
  insert.bind(1, entry.seq);
  insert.bind(2, entry.time);
  insert.bind(3, entry.kind);
  if (entry.rule.empty())
    insert.bind(4);
  else
    insert.bind(4, entry.rule);
  insert.bind(5, entry.rows);
  insert.bind(6, entry.detail);
  insert.bind(7, entry.prev_hash);
  insert.bind(8, entry.hash);
  insert.exec();
  return entry;
}

std::optional<Hold> find_hold(SQLite::Database& db, std::int64_t id) {
  SQLite::Statement query(db, fmt::format("SELECT {} FROM holds WHERE id = ?", k_hold_columns));
  query.bind(1, id);
  if (!query.executeStep())
    return std::nullopt;
  return read_hold_row(query);
}

// The schema version, read on a read-only connection. A process killed while writing the state
// leaves a journal that the next reader must roll back, which a read-only connection cannot
// do: the write is rolled back here through a connection with write access, when this process
// has it (an auditor's account may not).
int read_only_user_version(SQLite::Database& db, const std::filesystem::path& path) {
  try {
    return db.execAndGet("PRAGMA user_version").getInt();
  } catch (const SQLite::Exception& error) {
    if (error.getExtendedErrorCode() != SQLITE_READONLY_ROLLBACK)
      throw;
  }
  try {
    SQLite::Database writer(path, SQLite::OPEN_READWRITE, k_busy_timeout_ms);
    (void)writer.execAndGet("PRAGMA user_version");  // reading rolls the journal back
  } catch (const SQLite::Exception& error) {
    throw std::runtime_error(fmt::format(
        "a process ended while writing it, and rolling that write back needs write access ({}); "
        "the next once or run does it, or run this command as the state's owner",
        error.what()));
  }
  return db.execAndGet("PRAGMA user_version").getInt();
}

// The instance lock goes by the state's name, and SQLite keeps the journal that makes a write
// atomic beside the name the file was opened by: through two hard links, two processes would
// each take a lock of their own, and neither would roll back a write the other left unfinished.
// Checked once the file is open (and exists): a new state has one link.
void refuse_hard_links(const std::filesystem::path& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0 && status.st_nlink > 1)
    throw std::runtime_error(fmt::format(
        "it has {} hard links, and the instance lock and SQLite's journal go by the file's name, "
        "so processes writing it through two names would not exclude each other; remove the "
        "other links (find / -xdev -samefile {}) and name the state by one path (a symlink to "
        "it is fine)",
        status.st_nlink, path.string()));
}

}  // namespace

SqliteStateStore::SqliteStateStore(const std::filesystem::path& path, Mode mode,
                                   std::optional<std::string> audit_key)
    : m_path(path), m_audit_key(std::move(audit_key)) {
  try {
    if (mode == Mode::read_only) {
      std::error_code ec;
      // A missing state file reads as an empty store; read-only must never create it.
      if (!std::filesystem::exists(m_path, ec))
        return;
      m_db = std::make_unique<SQLite::Database>(m_path, SQLite::OPEN_READONLY, k_busy_timeout_ms);
      refuse_hard_links(m_path);
      // One snapshot: a first writer creating the schema meanwhile is seen whole or not at all.
      SQLite::Transaction snapshot(*m_db, SQLite::TransactionBehavior::DEFERRED);
      const int version = read_only_user_version(*m_db, m_path);
      if (version > k_schema_version)
        throw std::runtime_error(fmt::format("schema version {} is newer than this retentiond ({})",
                                             version, k_schema_version));
      if (version == 0 && reset_version(*m_db))
        throw_damaged_version();
      // A file that was never initialized (e.g. empty) has nothing to report.
      if (version == 0) {
        snapshot.commit();  // before the connection it belongs to goes
        m_db.reset();
        return;
      }
      if (auto table = missing_table(*m_db, version))
        throw_damaged(*table);
      if (auto recorded = recorded_key_fingerprint(*m_db))
        m_key_problem = audit_key_mismatch(*recorded, m_audit_key);
      snapshot.commit();
      return;
    }

    m_db = std::make_unique<SQLite::Database>(m_path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                                              k_busy_timeout_ms);
    refuse_hard_links(m_path);
    // A rollback journal, not WAL: a read-only open (report, dry runs, audit verify, an
    // auditor's account without write access) then creates no -wal/-shm files beside the
    // state. Writes are short, so readers and writers barely wait for each other. FULL makes
    // each committed audit entry survive a power loss, which the tamper-evidence depends on.
    // PERSIST ends a transaction by zeroing the journal's header instead of truncating it: the
    // journal keeps its size, so its syncs change no file metadata (each batch's entry is
    // written while the batch holds the datastore's write lock: 0.2 ms less of about 1.2).
    m_db->exec("PRAGMA journal_mode=PERSIST");
    m_db->exec("PRAGMA synchronous=FULL");
    // The record of a batch's pending files names files by path until the run ends: once
    // cleared, its pages in the state file are overwritten, not left in its free space. (The
    // journal may keep their earlier images until later writes reuse it.)
    m_db->exec("PRAGMA secure_delete=ON");
    SQLite::Transaction transaction(*m_db, SQLite::TransactionBehavior::IMMEDIATE);
    const int version = m_db->execAndGet("PRAGMA user_version").getInt();
    if (version > k_schema_version)
      throw std::runtime_error(fmt::format("schema version {} is newer than this retentiond ({})",
                                           version, k_schema_version));
    if (version == 0 && reset_version(*m_db))
      throw_damaged_version();
    if (auto table = missing_table(*m_db, version))
      throw_damaged(*table);
    if (version < k_schema_version) {
      m_db->exec(k_schema_sql);
      m_db->exec(fmt::format("PRAGMA user_version={}", k_schema_version));
    }
    record_audit_key();
    transaction.commit();
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("cannot open state database {}: {}", m_path.string(), e.what()));
  }
}

SqliteStateStore::~SqliteStateStore() = default;

// Entries under another key (or none) than the chain's could never be verified together with
// it: the state records which key its chain has, and refuses to take entries under another.
void SqliteStateStore::record_audit_key() {
  const std::optional<std::string> recorded = recorded_key_fingerprint(*m_db);
  if (recorded) {
    if (auto mismatch = audit_key_mismatch(*recorded, m_audit_key))
      throw std::runtime_error(*mismatch + ": set it as it was when the chain began (entries under "
                                           "another key could never be verified)");
    return;
  }
  if (const auto first = first_audit_entry(*m_db))
    require_first_entry_under_key(*first, m_audit_key);
  SQLite::Statement insert(*m_db, "INSERT INTO meta(key, value) VALUES('audit_key', ?)");
  insert.bind(1, audit_key_fingerprint(m_audit_key));
  insert.exec();
}

namespace {

SQLite::Database& writable(const std::unique_ptr<SQLite::Database>& db,
                           const std::filesystem::path& path) {
  // A read-only store with a missing file has no connection; any other read-only store fails
  // on the write itself, with SQLite's "attempt to write a readonly database".
  if (!db)
    throw std::runtime_error(
        fmt::format("state database {} is open read-only and does not exist", path.string()));
  return *db;
}

}  // namespace

AuditEntry SqliteStateStore::append_audit(std::string_view kind, std::string_view rule,
                                          std::int64_t rows, std::string detail_json) {
  try {
    auto& db = writable(m_db, m_path);
    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    auto entry = append_in_transaction(db, m_audit_key, kind, rule, rows, std::move(detail_json));
    transaction.commit();
    return entry;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot append a {} entry to the audit log in {}: {}",
                                         kind, m_path.string(), e.what()));
  }
}

AuditEntry SqliteStateStore::append_batch_audit(std::string_view rule, std::int64_t rows,
                                                std::string detail_json,
                                                const PendingFiles& pending) {
  try {
    auto& db = writable(m_db, m_path);
    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    auto entry =
        append_in_transaction(db, m_audit_key, "batch", rule, rows, std::move(detail_json));
    SQLite::Statement record(db, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO "
                                 "UPDATE SET value = excluded.value");
    record.bind(1, pending_files_key(rule));
    record.bind(2, encode_pending_files(pending));
    record.exec();
    transaction.commit();
    return entry;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot append a batch entry to the audit log in {}: {}",
                                         m_path.string(), e.what()));
  }
}

std::optional<PendingFiles> SqliteStateStore::pending_files(std::string_view rule) const {
  if (!m_db || !m_db->tableExists("meta"))
    return std::nullopt;
  SQLite::Statement query(*m_db, "SELECT value FROM meta WHERE key = ?");
  query.bind(1, pending_files_key(rule));
  if (!query.executeStep())
    return std::nullopt;
  return decode_pending_files(query.getColumn(0).getString(), rule);
}

void SqliteStateStore::clear_pending_files(std::string_view rule) {
  try {
    SQLite::Statement clear(writable(m_db, m_path), "DELETE FROM meta WHERE key = ?");
    clear.bind(1, pending_files_key(rule));
    clear.exec();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot clear the pending files of rule {} in {}: {}",
                                         rule, m_path.string(), e.what()));
  }
}

void SqliteStateStore::for_each_audit_entry(
    const AuditFilter& filter, const std::function<void(const AuditEntry&)>& visit) const {
  if (!m_db)
    return;
  // Keyset pages: each statement is its own read transaction (the connection is in autocommit),
  // which ends when the statement is destroyed, before the page is handed out. A read
  // transaction held across the whole log would keep every batch's audit entry (and with it
  // the batch, which holds the datastore's write lock) waiting until it ends: the state has a
  // rollback journal, whose writers wait for readers.
  std::string sql = fmt::format("SELECT {} FROM audit WHERE seq >= ?", k_audit_columns);
  if (filter.rule)
    sql += " AND rule = ?";
  sql += " ORDER BY seq LIMIT ?";
  // From the lowest seq there can be: an entry numbered 0 or below, which only a tamperer
  // writes, is still listed (and fails verification).
  std::int64_t from = std::numeric_limits<std::int64_t>::min();
  std::vector<AuditEntry> page;
  while (true) {
    page.clear();
    {
      SQLite::Statement query(*m_db, sql);
      int index = 1;
      query.bind(index++, from);
      if (filter.rule)
        query.bind(index++, *filter.rule);
      query.bind(index, k_audit_page_entries);
      while (query.executeStep())
        page.push_back(read_audit_row(query));
    }
    const auto next = visit_audit_page(page, filter, visit);
    if (!next)
      return;
    from = *next;
  }
}

AuditVerification SqliteStateStore::verify_audit() const {
  ChainVerifier verifier(m_audit_key);
  if (m_key_problem)
    return unverifiable_under_key(*m_key_problem);
  // Page by page: the chain links across pages as within one (the verifier carries the last
  // seq and hash), so a gap or an edited entry at a page's edge is found all the same.
  for_each_audit_entry({}, [&](const AuditEntry& entry) { verifier.add(entry); });
  return verifier.result();
}

std::string SqliteStateStore::audit_head_hash() const {
  if (!m_db)
    return std::string{k_genesis_hash};
  SQLite::Statement head(*m_db, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1");
  if (!head.executeStep())
    return std::string{k_genesis_hash};
  return head.getColumn(0).getString();
}

std::optional<std::string> SqliteStateStore::last_config_digest() const {
  if (!m_db)
    return std::nullopt;
  SQLite::Statement query(
      *m_db, "SELECT detail FROM audit WHERE kind = 'config' ORDER BY seq DESC LIMIT 1");
  if (!query.executeStep())
    return std::nullopt;
  return config_digest_of(query.getColumn(0).getString());
}

Hold SqliteStateStore::add_hold(std::optional<std::string> subject, std::optional<std::string> rule,
                                std::string reason, std::optional<Instant> until, Instant now) {
  try {
    auto& db = writable(m_db, m_path);
    Hold hold;
    hold.subject = std::move(subject);
    hold.rule = std::move(rule);
    hold.reason = std::move(reason);
    hold.created = format_iso8601(now);
    if (until)
      hold.until = format_iso8601(*until);

    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement insert(
        db, "INSERT INTO holds(subject, rule, reason, created, until) VALUES(?, ?, ?, ?, ?)");
    bind_optional(insert, 1, hold.subject);
    bind_optional(insert, 2, hold.rule);
    insert.bind(3, hold.reason);
    insert.bind(4, hold.created);
    bind_optional(insert, 5, hold.until);
    insert.exec();
    hold.id = db.getLastInsertRowid();

    append_in_transaction(db, m_audit_key, "hold_add", hold.rule.value_or(""), 0,
                          hold_added_detail(hold, m_audit_key));
    transaction.commit();
    return hold;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot add a hold in {}: {}", m_path.string(), e.what()));
  }
}

Hold SqliteStateStore::release_hold(std::int64_t id, std::string reason, Instant now) {
  try {
    auto& db = writable(m_db, m_path);
    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    // Checked inside the transaction so two operators cannot both release the same hold.
    auto hold = find_hold(db, id);
    if (!hold)
      throw HoldRefused(fmt::format("hold {} does not exist", id));
    if (hold->released)
      throw HoldRefused(fmt::format("hold {} is already released", id));
    hold->released = format_iso8601(now);
    hold->release_reason = std::move(reason);
    // A released hold protects nothing: its subject is kept as its digest, not its value.
    if (hold->subject)
      hold->subject = subject_digest(*hold->subject, m_audit_key);
    SQLite::Statement update(
        db, "UPDATE holds SET released = ?, release_reason = ?, subject = ? WHERE id = ?");
    update.bind(1, *hold->released);
    update.bind(2, *hold->release_reason);
    bind_optional(update, 3, hold->subject);
    update.bind(4, id);
    update.exec();

    append_in_transaction(db, m_audit_key, "hold_release", hold->rule.value_or(""), 0,
                          hold_released_detail(*hold));
    transaction.commit();
    return *hold;
  } catch (const HoldRefused&) {
    throw;  // the documented messages, unwrapped
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("cannot release hold {} in {}: {}", id, m_path.string(), e.what()));
  }
}

std::vector<Hold> SqliteStateStore::holds(bool include_inactive, Instant now) const {
  std::vector<Hold> result;
  if (!m_db)
    return result;
  SQLite::Statement query(*m_db, fmt::format("SELECT {} FROM holds ORDER BY id", k_hold_columns));
  while (query.executeStep()) {
    auto hold = read_hold_row(query);
    if (include_inactive || hold.active_at(now))
      result.push_back(std::move(hold));
  }
  return result;
}

std::int64_t SqliteStateStore::begin_run(std::string_view rule, Instant started) {
  try {
    auto& db = writable(m_db, m_path);
    SQLite::Statement insert(db, "INSERT INTO runs(rule, started, result) VALUES(?, ?, 'running')");
    insert.bind(1, std::string{rule});
    insert.bind(2, format_iso8601(started));
    insert.exec();
    return db.getLastInsertRowid();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot record the start of a run of {} in {}: {}", rule,
                                         m_path.string(), e.what()));
  }
}

void SqliteStateStore::finish_run(std::int64_t run_id, std::string_view result, std::int64_t rows,
                                  std::string_view message, Instant finished) {
  int changed = 0;
  try {
    auto& db = writable(m_db, m_path);
    SQLite::Statement update(
        db, "UPDATE runs SET finished = ?, result = ?, rows = ?, message = ? WHERE id = ?");
    update.bind(1, format_iso8601(finished));
    update.bind(2, std::string{result});
    update.bind(3, rows);
    update.bind(4, std::string{message});
    update.bind(5, run_id);
    changed = update.exec();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot record the end of run {} in {}: {}", run_id,
                                         m_path.string(), e.what()));
  }
  if (changed == 0)
    throw std::runtime_error(fmt::format("run {} does not exist", run_id));
}

std::vector<RunRecord> SqliteStateStore::last_runs(std::string_view rule, int limit) const {
  std::vector<RunRecord> runs;
  if (!m_db || limit <= 0)
    return runs;
  SQLite::Statement query(
      *m_db,
      fmt::format("SELECT {} FROM runs WHERE rule = ? ORDER BY id DESC LIMIT ?", k_run_columns));
  query.bind(1, std::string{rule});
  query.bind(2, limit);
  while (query.executeStep())
    runs.push_back(read_run_row(query));
  return runs;
}

std::optional<Instant> SqliteStateStore::last_success(std::string_view rule) const {
  if (!m_db)
    return std::nullopt;
  SQLite::Statement query(
      *m_db, "SELECT finished FROM runs WHERE rule = ? AND result IN ('ok', 'partial') "
             "AND finished IS NOT NULL ORDER BY id DESC LIMIT 1");
  query.bind(1, std::string{rule});
  if (!query.executeStep())
    return std::nullopt;
  const auto finished = query.getColumn(0).getString();
  auto instant = parse_iso8601(finished);
  if (!instant)
    throw std::runtime_error(fmt::format("run history in {} has an unreadable finish time '{}': {}",
                                         m_path.string(), finished, instant.error()));
  return *instant;
}

std::expected<std::unique_ptr<RuleLock>, std::string>
SqliteStateStore::lock_rule(std::string_view rule) {
  (void)rule;
  return std::make_unique<RuleLock>();
}

}  // namespace retentiond
