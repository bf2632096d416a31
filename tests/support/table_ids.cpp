#include "tests/support/table_ids.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

namespace retentiond::test {

std::vector<std::int64_t> table_ids(const std::filesystem::path& db, const std::string& table) {
  SQLite::Database connection(db, SQLite::OPEN_READONLY);
  SQLite::Statement query(connection, "SELECT id FROM \"" + table + "\" ORDER BY id");
  std::vector<std::int64_t> ids;
  while (query.executeStep())
    ids.push_back(query.getColumn(0).getInt64());
  return ids;
}

}  // namespace retentiond::test
