// The entry point of retentiond-postgres.so (see daemon/postgres_support.hpp).

#include "adapters/postgres/postgres_datastore.hpp"
#include "daemon/postgres_connection.hpp"
#include "daemon/postgres_state_store.hpp"
#include "daemon/postgres_support.hpp"

#include "build_id.hpp"

#include <cstring>

namespace retentiond {
namespace {

std::unique_ptr<StateStore> open_postgres_state(const Config& config, StateStore::Mode mode,
                                                std::optional<std::string> audit_key) {
  std::optional<std::string> password;
  if (config.state_password_file)
    password = read_password_file(*config.state_password_file);
  return std::make_unique<PostgresStateStore>(config.state_dsn, std::move(password), mode,
                                              std::move(audit_key));
}

constexpr PostgresSupport k_support{
    .open_datastore = &adapters::postgres::open_postgres_datastore,
    .open_state_store = &open_postgres_state,
    .dsn_problem = &dsn_problem,
    .describe_dsn = &describe_dsn,
};

}  // namespace
}  // namespace retentiond

extern "C" __attribute__((visibility("default"))) const retentiond::PostgresSupport*
retentiond_postgres_support(const char* program_build, const char** module_build) {
  *module_build = RETENTIOND_BUILD_ID;
  if (std::strcmp(program_build, RETENTIOND_BUILD_ID) != 0)
    return nullptr;
  return &retentiond::k_support;
}
