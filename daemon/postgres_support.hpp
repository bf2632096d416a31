#pragma once

#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/state_store.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond {

// PostgreSQL support (datastores of type "postgres" and a `[state] dsn`) lives in a module,
// retentiond-postgres.so, loaded the first time a configuration names PostgreSQL. libpq and what
// it links (gnutls, gssapi, ldap) cost about 5 MB of memory, which a host that only purges SQLite
// files and file trees should not pay.

// What the module offers. The program and the module come from one build: each carries a build
// id (the version and a hash of every header, the compiler and the build options; see
// cmake/module_abi.cmake), and the module refuses a program with another, so these signatures
// and the classes behind them never meet a different layout.
struct PostgresSupport {
  // adapters::postgres::open_postgres_datastore.
  std::unique_ptr<adapters::Datastore> (*open_datastore)(const DatastoreConfig& config,
                                                         adapters::OpenMode mode,
                                                         const adapters::AdapterSecrets& secrets);
  // The state in `config.state_dsn`, with its password_file read (see open_state_store).
  std::unique_ptr<StateStore> (*open_state_store)(const Config& config, StateStore::Mode mode,
                                                  std::optional<std::string> audit_key);
  // libpq's reason when `dsn` cannot be parsed, nullopt when it can.
  std::optional<std::string> (*dsn_problem)(std::string_view dsn);
  // The dsn for messages, without any password.
  std::string (*describe_dsn)(std::string_view dsn);
};

// The file name of the module.
inline constexpr std::string_view k_postgres_module_name = "retentiond-postgres.so";

// Where the module is looked for, in order: beside the running program (a build tree, or a
// tarball unpacked in one directory), in lib/.../retentiond next to the program's bin/ (an
// installed tree moved elsewhere), then the directory it was installed in
// (RETENTIOND_MODULE_DIR, e.g. /usr/lib/x86_64-linux-gnu/retentiond).
std::vector<std::filesystem::path> postgres_module_candidates();

// Loads the module from the first of `candidates` that loads and comes from this build. Throws
// std::runtime_error naming each path tried with the loader's reason, and the way out, when
// none does.
const PostgresSupport& load_postgres_support(const std::vector<std::filesystem::path>& candidates);

// The module, loaded from postgres_module_candidates() on first use and kept until exit.
// Throws as load_postgres_support does; a later call tries again.
const PostgresSupport& postgres_support();

}  // namespace retentiond

// The module's one exported symbol: its PostgresSupport when `program_build` is the build id it
// was built with, otherwise nullptr. Sets `*module_build` to its own build id either way.
extern "C" const retentiond::PostgresSupport*
retentiond_postgres_support(const char* program_build, const char** module_build);
