#pragma once

#include "adapters/datastore.hpp"

#include <memory>

namespace retentiond::adapters::postgres {

// Opens a PostgreSQL datastore through libpq's `dsn`, with the password read from
// `password_file` when one is configured. read_only makes every transaction of the session
// read-only (the server refuses any write). Throws std::runtime_error naming the datastore when
// the password file cannot be read or the server refuses the connection.
std::unique_ptr<Datastore> open_postgres_datastore(const DatastoreConfig& config, OpenMode mode,
                                                   const AdapterSecrets& secrets);

}  // namespace retentiond::adapters::postgres
