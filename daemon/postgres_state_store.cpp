#include "daemon/postgres_state_store.hpp"

#include "daemon/digest.hpp"
#include "daemon/json_writer.hpp"
#include "daemon/postgres_connection.hpp"

#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <limits>
#include <stdexcept>
#include <utility>

namespace retentiond {

namespace {

constexpr int k_schema_version = 1;

// Advisory lock keys are one bigint space shared with the application: retentiond's keys are
// hashes under its own prefix, so a clash is as unlikely as a 64-bit collision.
constexpr std::uint64_t k_fnv_offset = 14695981039346656037ull;
constexpr std::uint64_t k_fnv_prime = 1099511628211ull;

std::int64_t lock_key(std::string_view name) {
  std::uint64_t hash = k_fnv_offset;
  for (const char c : std::string{"retentiond:"} + std::string{name}) {
    hash ^= static_cast<unsigned char>(c);
    hash *= k_fnv_prime;
  }
  return static_cast<std::int64_t>(hash);
}

// Held by a transaction that creates the schema or appends to the audit chain.
const std::int64_t k_chain_lock = lock_key("audit chain");

constexpr const char* k_schema_sql = R"sql(
CREATE SCHEMA IF NOT EXISTS retentiond;
CREATE TABLE IF NOT EXISTS retentiond.meta(
  key text PRIMARY KEY,
  value text NOT NULL
);
CREATE TABLE IF NOT EXISTS retentiond.audit(
  seq bigint PRIMARY KEY,
  time text NOT NULL,
  kind text NOT NULL,
  rule text,
  rows bigint NOT NULL,
  detail text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS retentiond.holds(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject text,
  rule text,
  reason text NOT NULL,
  created text NOT NULL,
  until text,
  released text,
  release_reason text
);
CREATE TABLE IF NOT EXISTS retentiond.runs(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule text NOT NULL,
  started text NOT NULL,
  finished text,
  result text NOT NULL,
  rows bigint NOT NULL DEFAULT 0,
  message text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_rule_id ON retentiond.runs(rule, id);
)sql";

constexpr const char* k_audit_columns = "seq, time, kind, rule, rows, detail, prev_hash, hash";
constexpr const char* k_hold_columns =
    "id, subject, rule, reason, created, until, released, release_reason";
constexpr const char* k_run_columns = "id, rule, started, finished, result, rows, message";

// libpq's messages carry a trailing newline and sometimes a second line; the first is the point.
std::string first_line(std::string_view message) {
  const auto end = message.find('\n');
  return std::string{message.substr(0, end)};
}

std::optional<std::string> optional_text(const pqxx::field& field) {
  if (field.is_null())
    return std::nullopt;
  return field.c_str();
}

// A parameter that may be NULL: libpqxx sends a null pointer as NULL.
const char* nullable(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

AuditEntry read_audit_row(const pqxx::row& row) {
  AuditEntry entry;
  entry.seq = row[0].as<std::int64_t>();
  entry.time = row[1].c_str();
  entry.kind = row[2].c_str();
  entry.rule = row[3].is_null() ? std::string{} : row[3].c_str();
  entry.rows = row[4].as<std::int64_t>();
  entry.detail = row[5].c_str();
  entry.prev_hash = row[6].c_str();
  entry.hash = row[7].c_str();
  return entry;
}

Hold read_hold_row(const pqxx::row& row) {
  Hold hold;
  hold.id = row[0].as<std::int64_t>();
  hold.subject = optional_text(row[1]);
  hold.rule = optional_text(row[2]);
  hold.reason = row[3].c_str();
  hold.created = row[4].c_str();
  hold.until = optional_text(row[5]);
  hold.released = optional_text(row[6]);
  hold.release_reason = optional_text(row[7]);
  return hold;
}

RunRecord read_run_row(const pqxx::row& row) {
  RunRecord run;
  run.id = row[0].as<std::int64_t>();
  run.rule = row[1].c_str();
  run.started = row[2].c_str();
  run.finished = row[3].is_null() ? std::string{} : row[3].c_str();
  run.result = row[4].c_str();
  run.rows = row[5].as<std::int64_t>();
  run.message = row[6].c_str();
  return run;
}

// Appends one entry inside the caller's transaction. The chain lock, taken first, makes every
// other appender (on any host) wait until this transaction ends, so the head read here stays
// the head.
AuditEntry append_in_transaction(pqxx::work& transaction, const std::optional<std::string>& key,
                                 std::string_view kind, std::string_view rule, std::int64_t rows,
                                 std::string detail_json) {
  transaction.exec_params("SELECT pg_advisory_xact_lock($1)", k_chain_lock);
  ChainHead head;
  const pqxx::result last =
      transaction.exec("SELECT seq, hash FROM retentiond.audit ORDER BY seq DESC LIMIT 1");
  if (!last.empty())
    head.emplace(last[0][0].as<std::int64_t>(), last[0][1].c_str());
  AuditEntry entry = next_audit_entry(head, kind, rule, rows, std::move(detail_json), key);
  const std::optional<std::string> rule_or_null =
      entry.rule.empty() ? std::nullopt : std::optional<std::string>{entry.rule};
  transaction.exec_params(
      fmt::format("INSERT INTO retentiond.audit({}) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
                  k_audit_columns),
      entry.seq, entry.time, entry.kind, nullable(rule_or_null), entry.rows, entry.detail,
      entry.prev_hash, entry.hash);
  return entry;
}

// How many of the state's tables exist: none is a new state, all of them a whole one, and
// anything between a damaged one (a table dropped to hide what was deleted).
constexpr int k_state_tables = 4;
int state_tables(pqxx::transaction_base& transaction) {
  return transaction
      .exec("SELECT count(*) FROM (VALUES ('retentiond.meta'), ('retentiond.audit'), "
            "('retentiond.holds'), ('retentiond.runs')) AS t(name) WHERE to_regclass(t.name) "
            "IS NOT NULL")[0][0]
      .as<int>();
}

[[noreturn]] void throw_damaged() {
  throw std::runtime_error("the state is damaged: some of its tables in schema retentiond are "
                           "missing (restore them from a backup; audit verify cannot pass)");
}

// This host and process, as other hosts see it in pg_stat_activity and in lock messages.
std::string application_name() {
  std::array<char, HOST_NAME_MAX + 1> host{};
  if (gethostname(host.data(), host.size() - 1) != 0)
    host[0] = '\0';
  return fmt::format("retentiond {}:{}", host.data(), getpid());
}

// A session advisory lock on a connection of its own: closing the connection releases it,
// whatever happens to this process's other connections.
class PostgresRuleLock final : public RuleLock {
public:
  PostgresRuleLock(std::unique_ptr<pqxx::connection> connection, std::int64_t key)
      : m_connection(std::move(connection)), m_key(key) {}

  // Unlocked before the connection closes: the server ends a closed session a moment after the
  // client leaves, and another host should not have to wait for that.
  ~PostgresRuleLock() override {
    // A broken connection has lost the lock with its session; libpqxx would reconnect first.
    if (!m_connection->is_open())
      return;
    try {
      pqxx::nontransaction session(*m_connection);
      session.exec_params("SELECT pg_advisory_unlock($1)", m_key);
    } catch (const std::exception&) {
      // The connection is gone: so is the lock.
    }
  }

private:
  std::unique_ptr<pqxx::connection> m_connection;
  std::int64_t m_key;
};

// Runs one read of the state; a failure names the state and what was being read.
template <typename Read>
auto reading(const StateStore& store, std::string_view what, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("cannot read {} from {}: {}", what, store.describe(), first_line(e.what())));
  }
}

}  // namespace

std::int64_t postgres_rule_lock_key(std::string_view rule) {
  return lock_key("rule " + std::string{rule});
}

PostgresStateStore::PostgresStateStore(std::string dsn, std::optional<std::string> password,
                                       Mode mode, std::optional<std::string> audit_key)
    : m_dsn(std::move(dsn)), m_mode(mode), m_audit_key(std::move(audit_key)) {
  try {
    // Every transaction of a read-only session is read-only: report and audit verify cannot
    // write, whatever a bug might ask.
    m_connection_string =
        connection_string(m_dsn, password,
                          mode == Mode::read_only ? "-c default_transaction_read_only=on" : "") +
        fmt::format(" fallback_application_name='{}'", application_name());
    m_connection = std::make_unique<pqxx::connection>(m_connection_string);
    if (mode == Mode::read_only) {
      pqxx::read_transaction transaction(*m_connection);
      const int tables = state_tables(transaction);
      if (tables != 0 && tables != k_state_tables)
        throw_damaged();
      m_ready = tables == k_state_tables;
      if (m_ready) {
        const pqxx::result version =
            transaction.exec("SELECT value FROM retentiond.meta WHERE key = 'schema_version'");
        if (!version.empty() && version[0][0].as<int>() > k_schema_version)
          throw std::runtime_error(
              fmt::format("schema version {} is newer than this retentiond ({})",
                          version[0][0].c_str(), k_schema_version));
        const pqxx::result key =
            transaction.exec("SELECT value FROM retentiond.meta WHERE key = 'audit_key'");
        if (!key.empty())
          m_key_problem = audit_key_mismatch(key[0][0].c_str(), m_audit_key);
      }
      return;
    }
    pqxx::work transaction(*m_connection);
    // The schema is created once; later opens only read it, so that a role without CREATE on
    // the database (and without DDL locks on every start) can use it.
    const int tables = state_tables(transaction);
    if (tables != 0 && tables != k_state_tables)
      throw_damaged();
    if (tables == 0) {
      // Hosts starting together create the schema one at a time.
      transaction.exec_params("SELECT pg_advisory_xact_lock($1)", k_chain_lock);
      transaction.exec(k_schema_sql);
      transaction.exec_params("INSERT INTO retentiond.meta(key, value) "
                              "VALUES('schema_version', $1) ON CONFLICT DO NOTHING",
                              std::to_string(k_schema_version));
    }
    const pqxx::result version =
        transaction.exec("SELECT value FROM retentiond.meta WHERE key = 'schema_version'");
    if (version.empty() || version[0][0].as<int>() > k_schema_version)
      throw std::runtime_error(fmt::format("schema version {} is newer than this retentiond ({})",
                                           version.empty() ? "(none)" : version[0][0].c_str(),
                                           k_schema_version));
    // One chain for every host: one key (or none) for every host. The first to write records
    // which; a host configured otherwise would write entries nobody could verify.
    const std::string fingerprint = audit_key_fingerprint(m_audit_key);
    // A chain written before its key was recorded: its first entry tells which key it has.
    if (transaction.exec("SELECT 1 FROM retentiond.meta WHERE key = 'audit_key'").empty()) {
      const pqxx::result first = transaction.exec(
          fmt::format("SELECT {} FROM retentiond.audit ORDER BY seq LIMIT 1", k_audit_columns));
      if (!first.empty())
        require_first_entry_under_key(read_audit_row(first[0]), m_audit_key);
    }
    transaction.exec_params("INSERT INTO retentiond.meta(key, value) VALUES('audit_key', $1) "
                            "ON CONFLICT DO NOTHING",
                            fingerprint);
    const std::string recorded =
        transaction.exec("SELECT value FROM retentiond.meta WHERE key = 'audit_key'")[0][0].c_str();
    if (auto mismatch = audit_key_mismatch(recorded, m_audit_key))
      throw std::runtime_error(*mismatch + (recorded == "none"
                                                ? ": every host that shares the state needs the "
                                                  "same audit_key_file (or none)"
                                                : ": every host that shares the state needs the "
                                                  "same audit_key_file"));
    transaction.commit();
    m_ready = true;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot open {}: {}", describe(), first_line(e.what())));
  }
}

PostgresStateStore::~PostgresStateStore() = default;

std::string PostgresStateStore::describe() const {
  return fmt::format("PostgreSQL state ({})", describe_dsn(m_dsn));
}

pqxx::connection& PostgresStateStore::connection() const {
  if (m_mode == Mode::read_only && !m_ready)
    throw std::runtime_error("it is open read-only and has no retentiond schema yet");
  return *m_connection;
}

AuditEntry PostgresStateStore::append_audit(std::string_view kind, std::string_view rule,
                                            std::int64_t rows, std::string detail_json) {
  try {
    pqxx::work transaction(connection());
    auto entry =
        append_in_transaction(transaction, m_audit_key, kind, rule, rows, std::move(detail_json));
    transaction.commit();
    return entry;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot append a {} entry to the audit log in {}: {}",
                                         kind, describe(), first_line(e.what())));
  }
}

AuditEntry PostgresStateStore::append_batch_audit(std::string_view rule, std::int64_t rows,
                                                  std::string detail_json,
                                                  const PendingFiles& pending) {
  try {
    pqxx::work transaction(connection());
    auto entry = append_in_transaction(transaction, m_audit_key, "batch", rule, rows,
                                       std::move(detail_json));
    transaction.exec_params("INSERT INTO retentiond.meta(key, value) VALUES($1, $2) ON CONFLICT "
                            "(key) DO UPDATE SET value = excluded.value",
                            pending_files_key(rule), encode_pending_files(pending));
    transaction.commit();
    return entry;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot append a batch entry to the audit log in {}: {}",
                                         describe(), first_line(e.what())));
  }
}

std::optional<PendingFiles> PostgresStateStore::pending_files(std::string_view rule) const {
  if (!m_ready)
    return std::nullopt;
  return reading(*this, "the pending files", [&]() -> std::optional<PendingFiles> {
    pqxx::read_transaction transaction(*m_connection);
    const pqxx::result value = transaction.exec_params(
        "SELECT value FROM retentiond.meta WHERE key = $1", pending_files_key(rule));
    if (value.empty())
      return std::nullopt;
    return decode_pending_files(value[0][0].c_str(), rule);
  });
}

void PostgresStateStore::clear_pending_files(std::string_view rule) {
  try {
    pqxx::work transaction(connection());
    transaction.exec_params("DELETE FROM retentiond.meta WHERE key = $1", pending_files_key(rule));
    transaction.commit();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot clear the pending files of rule {} in {}: {}",
                                         rule, describe(), first_line(e.what())));
  }
}

void PostgresStateStore::for_each_audit_entry(
    const AuditFilter& filter, const std::function<void(const AuditEntry&)>& visit) const {
  if (!m_ready)
    return;
  // Keyset pages, each in a read transaction of its own that has ended before `visit` sees it:
  // a caller that takes its time (output into a pager) keeps no transaction open on the
  // server, where it would hold back vacuum, and memory stays flat however long the log is.
  const std::string sql =
      fmt::format("SELECT {} FROM retentiond.audit WHERE seq >= $1{} ORDER BY seq LIMIT $2",
                  k_audit_columns, filter.rule ? " AND rule = $3" : "");
  // From the lowest seq there can be: an entry numbered 0 or below, which only a tamperer
  // writes, is still listed (and fails verification).
  std::int64_t from = std::numeric_limits<std::int64_t>::min();
  while (true) {
    const std::vector<AuditEntry> page = reading(*this, "the audit log", [&] {
      std::vector<AuditEntry> entries;
      pqxx::read_transaction transaction(*m_connection);
      const pqxx::result rows =
          filter.rule ? transaction.exec_params(sql, from, k_audit_page_entries, *filter.rule)
                      : transaction.exec_params(sql, from, k_audit_page_entries);
      for (const pqxx::row& row : rows)
        entries.push_back(read_audit_row(row));
      return entries;
    });
    const auto next = visit_audit_page(page, filter, visit);
    if (!next)
      return;
    from = *next;
  }
}

AuditVerification PostgresStateStore::verify_audit() const {
  if (m_key_problem)
    return unverifiable_under_key(*m_key_problem);
  ChainVerifier verifier(m_audit_key);
  if (!m_ready)
    return verifier.result();
  return reading(*this, "the audit log", [&] {
    // A cursor keeps memory flat however long the log is.
    pqxx::read_transaction transaction(*m_connection);
    pqxx::stateless_cursor<pqxx::cursor_base::read_only, pqxx::cursor_base::owned> cursor(
        transaction, fmt::format("SELECT {} FROM retentiond.audit ORDER BY seq", k_audit_columns),
        "retentiond_verify", false);
    constexpr pqxx::cursor_base::difference_type k_chunk = 10'000;
    for (pqxx::cursor_base::difference_type at = 0;; at += k_chunk) {
      const pqxx::result chunk = cursor.retrieve(at, at + k_chunk);
      for (const pqxx::row& row : chunk)
        verifier.add(read_audit_row(row));
      if (chunk.size() < static_cast<pqxx::result::size_type>(k_chunk))
        break;
    }
    return verifier.result();
  });
}

std::string PostgresStateStore::audit_head_hash() const {
  if (!m_ready)
    return std::string{k_genesis_hash};
  return reading(*this, "the audit log", [&] {
    pqxx::read_transaction transaction(*m_connection);
    const pqxx::result head =
        transaction.exec("SELECT hash FROM retentiond.audit ORDER BY seq DESC LIMIT 1");
    return head.empty() ? std::string{k_genesis_hash} : std::string{head[0][0].c_str()};
  });
}

std::optional<std::string> PostgresStateStore::last_config_digest() const {
  if (!m_ready)
    return std::nullopt;
  return reading(*this, "the audit log", [&]() -> std::optional<std::string> {
    pqxx::read_transaction transaction(*m_connection);
    const pqxx::result detail = transaction.exec(
        "SELECT detail FROM retentiond.audit WHERE kind = 'config' ORDER BY seq DESC LIMIT 1");
    if (detail.empty())
      return std::nullopt;
    return config_digest_of(detail[0][0].c_str());
  });
}

Hold PostgresStateStore::add_hold(std::optional<std::string> subject,
                                  std::optional<std::string> rule, std::string reason,
                                  std::optional<Instant> until, Instant now) {
  try {
    Hold hold;
    hold.subject = std::move(subject);
    hold.rule = std::move(rule);
    hold.reason = std::move(reason);
    hold.created = format_iso8601(now);
    if (until)
      hold.until = format_iso8601(*until);

    pqxx::work transaction(connection());
    hold.id = transaction
                  .exec_params("INSERT INTO retentiond.holds(subject, rule, reason, created, "
                               "until) VALUES($1, $2, $3, $4, $5) RETURNING id",
                               nullable(hold.subject), nullable(hold.rule), hold.reason,
                               hold.created, nullable(hold.until))[0][0]
                  .as<std::int64_t>();

    append_in_transaction(transaction, m_audit_key, "hold_add", hold.rule.value_or(""), 0,
                          hold_added_detail(hold, m_audit_key));
    transaction.commit();
    return hold;
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("cannot add a hold in {}: {}", describe(), first_line(e.what())));
  }
}

Hold PostgresStateStore::release_hold(std::int64_t id, std::string reason, Instant now) {
  try {
    pqxx::work transaction(connection());
    // Locked for this transaction so two operators cannot both release the same hold.
    const pqxx::result found = transaction.exec_params(
        fmt::format("SELECT {} FROM retentiond.holds WHERE id = $1 FOR UPDATE", k_hold_columns),
        id);
    if (found.empty())
      throw HoldRefused(fmt::format("hold {} does not exist", id));
    Hold hold = read_hold_row(found[0]);
    if (hold.released)
      throw HoldRefused(fmt::format("hold {} is already released", id));
    hold.released = format_iso8601(now);
    hold.release_reason = std::move(reason);
    // A released hold protects nothing: its subject is kept as its digest, not its value.
    if (hold.subject)
      hold.subject = subject_digest(*hold.subject, m_audit_key);
    transaction.exec_params("UPDATE retentiond.holds SET released = $1, release_reason = $2, "
                            "subject = $3 WHERE id = $4",
                            *hold.released, *hold.release_reason, hold.subject, id);

    append_in_transaction(transaction, m_audit_key, "hold_release", hold.rule.value_or(""), 0,
                          hold_released_detail(hold));
    transaction.commit();
    return hold;
  } catch (const HoldRefused&) {
    throw;  // the documented messages, unwrapped
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("cannot release hold {} in {}: {}", id, describe(), first_line(e.what())));
  }
}

std::vector<Hold> PostgresStateStore::holds(bool include_inactive, Instant now) const {
  std::vector<Hold> result;
  if (!m_ready)
    return result;
  return reading(*this, "the holds", [&] {
    pqxx::read_transaction transaction(*m_connection);
    for (const pqxx::row& row : transaction.exec(
             fmt::format("SELECT {} FROM retentiond.holds ORDER BY id", k_hold_columns))) {
      auto hold = read_hold_row(row);
      if (include_inactive || hold.active_at(now))
        result.push_back(std::move(hold));
    }
    return result;
  });
}

std::int64_t PostgresStateStore::begin_run(std::string_view rule, Instant started) {
  try {
    pqxx::work transaction(connection());
    const std::int64_t id = transaction
                                .exec_params("INSERT INTO retentiond.runs(rule, started, result) "
                                             "VALUES($1, $2, 'running') RETURNING id",
                                             std::string{rule}, format_iso8601(started))[0][0]
                                .as<std::int64_t>();
    transaction.commit();
    return id;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot record the start of a run of {} in {}: {}", rule,
                                         describe(), first_line(e.what())));
  }
}

void PostgresStateStore::finish_run(std::int64_t run_id, std::string_view result, std::int64_t rows,
                                    std::string_view message, Instant finished) {
  pqxx::result::size_type changed = 0;
  try {
    pqxx::work transaction(connection());
    changed = transaction
                  .exec_params("UPDATE retentiond.runs SET finished = $1, result = $2, rows = $3, "
                               "message = $4 WHERE id = $5",
                               format_iso8601(finished), std::string{result}, rows,
                               std::string{message}, run_id)
                  .affected_rows();
    transaction.commit();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot record the end of run {} in {}: {}", run_id,
                                         describe(), first_line(e.what())));
  }
  if (changed == 0)
    throw std::runtime_error(fmt::format("run {} does not exist", run_id));
}

std::vector<RunRecord> PostgresStateStore::last_runs(std::string_view rule, int limit) const {
  std::vector<RunRecord> runs;
  if (!m_ready || limit <= 0)
    return runs;
  return reading(*this, "the run history", [&] {
    pqxx::read_transaction transaction(*m_connection);
    for (const pqxx::row& row : transaction.exec_params(
             fmt::format("SELECT {} FROM retentiond.runs WHERE rule = $1 ORDER BY id DESC LIMIT $2",
                         k_run_columns),
             std::string{rule}, limit))
      runs.push_back(read_run_row(row));
    return runs;
  });
}

std::optional<Instant> PostgresStateStore::last_success(std::string_view rule) const {
  if (!m_ready)
    return std::nullopt;
  return reading(*this, "the run history", [&]() -> std::optional<Instant> {
    pqxx::read_transaction transaction(*m_connection);
    const pqxx::result found = transaction.exec_params(
        "SELECT finished FROM retentiond.runs WHERE rule = $1 AND result IN ('ok', 'partial') "
        "AND finished IS NOT NULL ORDER BY id DESC LIMIT 1",
        std::string{rule});
    if (found.empty())
      return std::nullopt;
    const std::string finished = found[0][0].c_str();
    auto instant = parse_iso8601(finished);
    if (!instant)
      throw std::runtime_error(
          fmt::format("unreadable finish time '{}': {}", finished, instant.error()));
    return *instant;
  });
}

std::expected<std::unique_ptr<RuleLock>, std::string>
PostgresStateStore::lock_rule(std::string_view rule) {
  const std::int64_t key = postgres_rule_lock_key(rule);
  try {
    // Keepalives on both ends: a host cut off from the network (not closed cleanly) loses its
    // rules within about a minute, instead of after the kernel's two hours.
    auto lock_connection = std::make_unique<pqxx::connection>(
        m_connection_string + " keepalives=1 keepalives_idle=30 keepalives_interval=10 "
                              "keepalives_count=3");
    {
      pqxx::nontransaction session(*lock_connection);
      session.exec("SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; "
                   "SET tcp_keepalives_count = 3");
      if (session.exec_params("SELECT pg_try_advisory_lock($1)", key)[0][0].as<bool>())
        return std::make_unique<PostgresRuleLock>(std::move(lock_connection), key);
    }
    // Who has it, for the message: the holder's application_name names its host and pid.
    pqxx::read_transaction transaction(*m_connection);
    const auto bits = static_cast<std::uint64_t>(key);
    const pqxx::result holder = transaction.exec_params(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid",
        static_cast<std::int64_t>(bits >> 32), static_cast<std::int64_t>(bits & 0xffffffffu));
    const std::string who =
        holder.empty() || holder[0][0].is_null() || std::string_view{holder[0][0].c_str()}.empty()
            ? "another retentiond"
            : holder[0][0].c_str();
    return std::unexpected(
        fmt::format("{} is running this rule (advisory lock in {})", who, describe()));
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("cannot lock rule {} in {}: {}", rule, describe(), first_line(e.what())));
  }
}

}  // namespace retentiond
