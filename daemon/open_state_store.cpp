#include "daemon/postgres_support.hpp"
#include "daemon/sqlite_state_store.hpp"
#include "daemon/state_store.hpp"

namespace retentiond {

std::unique_ptr<StateStore> open_state_store(const Config& config, StateStore::Mode mode,
                                             std::optional<std::string> audit_key) {
  if (config.state_dsn.empty())
    return std::make_unique<SqliteStateStore>(config.state_path, mode, std::move(audit_key));
  return postgres_support().open_state_store(config, mode, std::move(audit_key));
}

}  // namespace retentiond
