#pragma once

#include "adapters/datastore.hpp"

#include <memory>

namespace retentiond::adapters::sqlite {

// Opens a SQLite datastore: read_write with secure_delete on and the busy timeout of its
// config, or read_only (query_only, no file is created or changed). Throws std::runtime_error
// when the file does not exist or cannot be opened.
std::unique_ptr<Datastore> open_sqlite_datastore(const DatastoreConfig& config, OpenMode mode,
                                                 const AdapterSecrets& secrets);

}  // namespace retentiond::adapters::sqlite
