#pragma once

#include "daemon/audit_log.hpp"
#include "daemon/timestamp.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace SQLite {
class Database;
}

namespace retentiond {

// A legal hold: protects rows whose subject equals `subject` (or everything, when no subject)
// in one rule (or every rule, when no rule).
struct Hold {
  std::int64_t id = 0;
  std::optional<std::string> subject;  // empty = --all (the rule is suspended)
  std::optional<std::string> rule;     // empty = every rule
  std::string reason;
  std::string created;                  // ISO 8601 UTC
  std::optional<std::string> until;     // ISO 8601 UTC; empty = until released
  std::optional<std::string> released;  // ISO 8601 UTC when released
  std::optional<std::string> release_reason;

  // Active at `now`: not released and `until` (if any) not yet passed.
  bool active_at(Instant now) const;
};

// One run of one rule, from the run history.
struct RunRecord {
  std::int64_t id = 0;
  std::string rule;
  std::string started;   // ISO 8601 UTC
  std::string finished;  // empty while running (or when the process died)
  std::string result;    // "running", "ok", "partial", "refused", "error", "dry_run"
  std::int64_t rows = 0;
  std::string message;
};

// Filters for reading the audit log; empty members match everything.
struct AuditFilter {
  std::optional<std::string> rule;
  std::optional<Instant> since;
};

// The state DB (SQLite): audit log, holds and run history. Every write is its own short
// BEGIN IMMEDIATE transaction that reads the chain head inside the transaction, so several
// processes (a running `once` and an operator's `hold add`) can append safely.
// Throws std::runtime_error with a message naming the path when the file cannot be opened.
class StateStore {
public:
  enum class Mode { read_write, read_only };

  // Opens (read_write: creating file and schema if missing) the state DB at `path`.
  // `audit_key` switches the chain to HMAC-SHA-256 under that key.
  StateStore(const std::filesystem::path& path, Mode mode,
             std::optional<std::string> audit_key = std::nullopt);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  const std::filesystem::path& path() const { return m_path; }

  // Appends one entry and commits it; returns it with seq and hashes filled in.
  AuditEntry append_audit(std::string_view kind, std::string_view rule, std::int64_t rows,
                          std::string detail_json = "{}");
  // Entries in seq order, filtered.
  std::vector<AuditEntry> audit_entries(const AuditFilter& filter = {}) const;
  // Walks the whole chain: seq contiguous from 1, each prev_hash equals the previous hash,
  // each hash matches its content. Detects edited, deleted and reordered entries.
  AuditVerification verify_audit() const;
  // The hash of the last entry, or k_genesis_hash when the log is empty.
  std::string audit_head_hash() const;
  // The digest recorded by the newest `config` entry, if any.
  std::optional<std::string> last_config_digest() const;

  // Adds a hold and its hold_add audit entry in one transaction; returns the hold.
  Hold add_hold(std::optional<std::string> subject, std::optional<std::string> rule,
                std::string reason, std::optional<Instant> until, Instant now);
  // Releases a hold and writes its hold_release audit entry in one transaction.
  // Throws std::runtime_error("hold N does not exist" / "hold N is already released").
  Hold release_hold(std::int64_t id, std::string reason, Instant now);
  // All holds (include_released) or only those active at `now`, ordered by id.
  std::vector<Hold> holds(bool include_inactive, Instant now) const;

  // Starts a run record with result "running"; returns its id.
  std::int64_t begin_run(std::string_view rule, Instant started);
  void finish_run(std::int64_t run_id, std::string_view result, std::int64_t rows,
                  std::string_view message, Instant finished);
  // The newest `limit` runs of a rule, newest first.
  std::vector<RunRecord> last_runs(std::string_view rule, int limit) const;
  // Finish time of the newest run with result "ok" (or "partial": it made progress), if any.
  std::optional<Instant> last_success(std::string_view rule) const;

private:
  std::filesystem::path m_path;
  std::optional<std::string> m_audit_key;
  std::unique_ptr<SQLite::Database> m_db;
};

}  // namespace retentiond
