#pragma once

#include <optional>
#include <string>
#include <string_view>

struct sqlite3;

namespace retentiond::adapters::sqlite {

// The masks of `anonymize` (adapters/sql_common.hpp) as SQL functions on one connection:
// retentiond_hmac(x), retentiond_ip_prefix(x), retentiond_year(x). NULL stays NULL. `hmac_key` may
// be empty when no rule uses hmac; the function then fails the statement rather than hashing with
// an empty key.
void register_masks(sqlite3* db, const std::string& hmac_key);

}  // namespace retentiond::adapters::sqlite
