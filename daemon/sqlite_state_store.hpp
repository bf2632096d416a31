#pragma once

#include "daemon/state_store.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace SQLite {
class Database;
}

namespace retentiond {

// The state in one SQLite file, for one host. Its instance lock (beside the file) keeps other
// processes out, so rule locks are always granted.
class SqliteStateStore final : public StateStore {
public:
  // Opens (read_write: creating file and schema if missing) the state DB at `path`.
  SqliteStateStore(const std::filesystem::path& path, Mode mode,
                   std::optional<std::string> audit_key = std::nullopt);
  ~SqliteStateStore() override;
  SqliteStateStore(const SqliteStateStore&) = delete;
  SqliteStateStore& operator=(const SqliteStateStore&) = delete;

  std::string describe() const override { return m_path.string(); }

  AuditEntry append_audit(std::string_view kind, std::string_view rule, std::int64_t rows,
                          std::string detail_json = "{}") override;
  AuditEntry append_batch_audit(std::string_view rule, std::int64_t rows, std::string detail_json,
                                const PendingFiles& pending) override;
  std::optional<PendingFiles> pending_files(std::string_view rule) const override;
  void clear_pending_files(std::string_view rule) override;
  void for_each_audit_entry(const AuditFilter& filter,
                            const std::function<void(const AuditEntry&)>& visit) const override;
  AuditVerification verify_audit() const override;
  std::string audit_head_hash() const override;
  std::optional<std::string> last_config_digest() const override;

  Hold add_hold(std::optional<std::string> subject, std::optional<std::string> rule,
                std::string reason, std::optional<Instant> until, Instant now) override;
  Hold release_hold(std::int64_t id, std::string reason, Instant now) override;
  std::vector<Hold> holds(bool include_inactive, Instant now) const override;

  std::int64_t begin_run(std::string_view rule, Instant started) override;
  void finish_run(std::int64_t run_id, std::string_view result, std::int64_t rows,
                  std::string_view message, Instant finished) override;
  std::vector<RunRecord> last_runs(std::string_view rule, int limit) const override;
  std::optional<Instant> last_success(std::string_view rule) const override;

  std::expected<std::unique_ptr<RuleLock>, std::string> lock_rule(std::string_view rule) override;

private:
  void record_audit_key();

  std::filesystem::path m_path;
  std::optional<std::string> m_audit_key;
  std::unique_ptr<SQLite::Database> m_db;
  // Read-only: why the configured audit key is not the chain's, when the state recorded so.
  std::optional<std::string> m_key_problem;
};

}  // namespace retentiond
