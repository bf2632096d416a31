#include "adapters/datastore.hpp"

#include "adapters/files/files_datastore.hpp"
#include "adapters/sqlite/sqlite_datastore.hpp"
#include "daemon/postgres_support.hpp"

#include <functional>
#include <map>
#include <stdexcept>

namespace retentiond::adapters {
namespace {

// PostgreSQL's adapter is in a module loaded on first use (daemon/postgres_support.hpp).
std::unique_ptr<Datastore> open_postgres_datastore(const DatastoreConfig& config, OpenMode mode,
                                                   const AdapterSecrets& secrets) {
  return postgres_support().open_datastore(config, mode, secrets);
}

using Factory = std::function<std::unique_ptr<Datastore>(const DatastoreConfig&, OpenMode,
                                                         const AdapterSecrets&)>;

// One line per datastore kind.
const std::map<std::string, Factory, std::less<>>& registry() {
  static const std::map<std::string, Factory, std::less<>> factories{
      {"files", &files::open_files_datastore},
      {"postgres", &open_postgres_datastore},
      {"sqlite", &sqlite::open_sqlite_datastore},
  };
  return factories;
}

}  // namespace

std::unique_ptr<Datastore> open_datastore(const DatastoreConfig& config, OpenMode mode,
                                          const AdapterSecrets& secrets) {
  const auto factory = registry().find(config.type);
  if (factory == registry().end())
    throw std::runtime_error("datastore '" + config.name + "': type '" + config.type +
                             "' is not supported by this version");
  return factory->second(config, mode, secrets);
}

Datastore& DatastorePool::get(const std::string& name) {
  auto& store = m_open[name];
  if (!store)
    store = open_datastore(m_config.datastores.at(name), m_mode, m_secrets);
  return *store;
}

LinkedFiles* DatastorePool::linked_files_of(const Rule& rule) {
  if (!rule.files)
    return nullptr;
  LinkedFiles* files = get(rule.files->datastore).linked_files();
  if (files == nullptr)
    throw std::runtime_error("datastore '" + rule.files->datastore + "' cannot hold linked files");
  return files;
}

}  // namespace retentiond::adapters
