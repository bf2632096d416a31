#pragma once

#include "daemon/state_store.hpp"

#include <pqxx/connection>

#include <memory>
#include <optional>
#include <string>

namespace retentiond {

// The key of the session advisory lock a host holds while it runs `rule` (pg_locks shows it as
// classid = the high 32 bits, objid = the low 32 bits, objsubid = 1).
std::int64_t postgres_rule_lock_key(std::string_view rule);

// The state in a PostgreSQL database that several hosts share, in the schema `retentiond`.
// Appends to the audit chain are serialized by a transaction advisory lock; rule locks are
// session advisory locks, each on a connection of its own, so a host that dies (or loses the
// server) lets go of its rules at once.
class PostgresStateStore final : public StateStore {
public:
  // Connects with libpq's `dsn` (and `password`, when given). read_write creates the schema
  // and its tables when missing; read_only reads a missing schema as an empty state.
  PostgresStateStore(std::string dsn, std::optional<std::string> password, Mode mode,
                     std::optional<std::string> audit_key = std::nullopt);
  ~PostgresStateStore() override;
  PostgresStateStore(const PostgresStateStore&) = delete;
  PostgresStateStore& operator=(const PostgresStateStore&) = delete;

  std::string describe() const override;

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
  pqxx::connection& connection() const;

  std::string m_dsn;
  std::string m_connection_string;  // with the password: never logged
  Mode m_mode;
  std::optional<std::string> m_audit_key;
  // Read-only: why the configured audit key is not the chain's, when the state recorded so.
  std::optional<std::string> m_key_problem;
  std::unique_ptr<pqxx::connection> m_connection;
  bool m_ready = false;  // the schema exists (read_only may find none)
};

}  // namespace retentiond
