#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace retentiond::test {

// The `id` column of every row of `table` in the SQLite file `db`, ascending: the surviving
// rows a test expects, exactly.
std::vector<std::int64_t> table_ids(const std::filesystem::path& db, const std::string& table);

}  // namespace retentiond::test
