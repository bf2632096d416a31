#pragma once

#include "daemon/audit_log.hpp"
#include "daemon/config.hpp"
#include "daemon/pending_files.hpp"
#include "daemon/timestamp.hpp"

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

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

  // Whether `entry` is at or after `since` (the rule is matched by the query itself).
  bool admits_time(const AuditEntry& entry) const;
};

// Audit entries read per transaction by for_each_audit_entry (and a SQLite state's
// verify_audit): a few milliseconds of reading, after which a waiting writer gets in.
inline constexpr std::int64_t k_audit_page_entries = 2'000;

// Hands a page of entries read by for_each_audit_entry (in seq order, at most
// k_audit_page_entries) to `visit`, those `filter` admits; returns the seq the next page starts
// at, or nullopt after the last page.
std::optional<std::int64_t> visit_audit_page(const std::vector<AuditEntry>& page,
                                             const AuditFilter& filter,
                                             const std::function<void(const AuditEntry&)>& visit);

// What every state backend shares when it changes holds.

// The documented refusals of release_hold ("hold N does not exist", "hold N is already
// released"), passed to the operator without further context.
class HoldRefused : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// How the audit log names a held subject: never its value (an e-mail address, say, that must
// not outlive the rows it protected), but "sha256:HEX" of it, or "hmac-sha256:HEX" under the
// audit key when there is one, so that an auditor who knows the value can match it.
std::string subject_digest(std::string_view subject, const std::optional<std::string>& audit_key);

// The `detail` of the hold_add and hold_release audit entries.
std::string hold_added_detail(const Hold& hold, const std::optional<std::string>& audit_key);
std::string hold_released_detail(const Hold& hold);

// Held while this process runs one rule; released when destroyed.
class RuleLock {
public:
  virtual ~RuleLock() = default;
};

// The state: audit log, holds and run history. A SQLite file for one host, or a PostgreSQL
// database that several hosts share. Every write is its own short transaction that reads the
// chain head inside it, so several processes (a running `once` and an operator's `hold add`,
// or several hosts) can append safely. Methods throw std::runtime_error with a message naming
// the state (describe()).
class StateStore {
public:
  enum class Mode { read_write, read_only };

  virtual ~StateStore() = default;

  // What messages call this state: its file, or its PostgreSQL database (without password).
  virtual std::string describe() const = 0;

  // Appends one entry and commits it; returns it with seq and hashes filled in.
  virtual AuditEntry append_audit(std::string_view kind, std::string_view rule, std::int64_t rows,
                                  std::string detail_json = "{}") = 0;
  // append_audit of a `batch` entry that also records, in the same transaction, the files the
  // batch's commit is about to remove, in place of the rule's earlier record: after a crash
  // among the removals the rule's next run counts those still there.
  virtual AuditEntry append_batch_audit(std::string_view rule, std::int64_t rows,
                                        std::string detail_json, const PendingFiles& pending) = 0;
  // The rule's record of pending files, if any.
  virtual std::optional<PendingFiles> pending_files(std::string_view rule) const = 0;
  // Drops the rule's record (a run's paths are kept no longer than the run).
  virtual void clear_pending_files(std::string_view rule) = 0;
  // Calls `visit` with each entry in seq order, filtered. Reads k_audit_page_entries entries at
  // a time, each page in a transaction of its own that has ended before `visit` sees its
  // entries: a caller that takes its time (output into a pager) holds no lock on the state,
  // which would delay every batch's audit entry (SQLite). Entries appended meanwhile are
  // visited too. Exceptions from `visit` pass through unchanged.
  virtual void for_each_audit_entry(const AuditFilter& filter,
                                    const std::function<void(const AuditEntry&)>& visit) const = 0;
  // Entries in seq order, filtered: for_each_audit_entry, collected.
  std::vector<AuditEntry> audit_entries(const AuditFilter& filter = {}) const;
  // Walks the whole chain (see ChainVerifier); a SQLite state in pages, as
  // for_each_audit_entry.
  virtual AuditVerification verify_audit() const = 0;
  // The hash of the last entry, or k_genesis_hash when the log is empty.
  virtual std::string audit_head_hash() const = 0;
  // The digest recorded by the newest `config` entry, if any.
  virtual std::optional<std::string> last_config_digest() const = 0;

  // Adds a hold and its hold_add audit entry in one transaction; returns the hold.
  virtual Hold add_hold(std::optional<std::string> subject, std::optional<std::string> rule,
                        std::string reason, std::optional<Instant> until, Instant now) = 0;
  // Releases a hold and writes its hold_release audit entry in one transaction.
  // Throws std::runtime_error("hold N does not exist" / "hold N is already released").
  virtual Hold release_hold(std::int64_t id, std::string reason, Instant now) = 0;
  // All holds (include_inactive) or only those active at `now`, ordered by id.
  virtual std::vector<Hold> holds(bool include_inactive, Instant now) const = 0;

  // Starts a run record with result "running"; returns its id.
  virtual std::int64_t begin_run(std::string_view rule, Instant started) = 0;
  virtual void finish_run(std::int64_t run_id, std::string_view result, std::int64_t rows,
                          std::string_view message, Instant finished) = 0;
  // The newest `limit` runs of a rule, newest first.
  virtual std::vector<RunRecord> last_runs(std::string_view rule, int limit) const = 0;
  // Finish time of the newest run with result "ok" (or "partial": it made progress), if any.
  virtual std::optional<Instant> last_success(std::string_view rule) const = 0;

  // Keeps other processes that share this state from running `rule` until the lock is
  // destroyed; the error says who holds it. A SQLite state is one process's alone (the
  // instance lock beside the file): always granted. A PostgreSQL state takes an advisory lock.
  virtual std::expected<std::unique_ptr<RuleLock>, std::string>
  lock_rule(std::string_view rule) = 0;
};

// The key under which the state's meta table keeps `rule`'s record of pending files.
std::string pending_files_key(std::string_view rule);

// Opens the state the configuration names: read_write creates the file (or schema) and its
// tables when missing; read_only never writes and reads a missing state as empty.
// `audit_key` switches the chain to HMAC-SHA-256 under that key.
std::unique_ptr<StateStore> open_state_store(const Config& config, StateStore::Mode mode,
                                             std::optional<std::string> audit_key);

}  // namespace retentiond
