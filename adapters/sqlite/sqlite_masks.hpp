#pragma once

#include <optional>
#include <string>
#include <string_view>

struct sqlite3;

namespace retentiond::adapters::sqlite {

// The masks of `anonymize` as plain functions (unit-tested) ...

// IPv4 -> its /24 ("192.0.2.77" -> "192.0.2.0"), IPv6 -> its /48. Anything that is not an IP
// address yields nothing: a value the mask cannot understand is not kept.
std::optional<std::string> ip_prefix(std::string_view address);

// The year of an ISO 8601 date ("1985-06-15" -> 1985); nothing for anything else.
std::optional<int> year_of(std::string_view date);

// ... and as SQL functions on one connection: retentiond_hmac(x), retentiond_ip_prefix(x),
// retentiond_year(x). NULL stays NULL. `hmac_key` may be empty when no rule uses hmac; the
// function then fails the statement rather than hashing with an empty key.
void register_masks(sqlite3* db, const std::string& hmac_key);

}  // namespace retentiond::adapters::sqlite
