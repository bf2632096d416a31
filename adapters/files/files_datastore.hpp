#pragma once

#include "adapters/datastore.hpp"

#include <memory>

namespace retentiond::adapters::files {

// Opens a files datastore: its root directory, once, held by descriptor for the datastore's
// life. File rules select regular files beneath it by glob and age them by mtime; table rules
// resolve their linked files through it. read_only: counting and resolving work, removing
// throws. Throws std::runtime_error "datastore 'NAME': root PATH does not exist or is not a
// directory" (or "... is not readable: REASON").
std::unique_ptr<Datastore> open_files_datastore(const DatastoreConfig& config, OpenMode mode,
                                                const AdapterSecrets& secrets);

}  // namespace retentiond::adapters::files
