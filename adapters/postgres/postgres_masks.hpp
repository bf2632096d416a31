#pragma once

#include "daemon/config.hpp"

#include <optional>
#include <string>

namespace retentiond::adapters::postgres {

// Whether retentiond computes `mask` itself rather than PostgreSQL: hmac (the key never goes to
// the server, where statement logging could record it), ip_prefix and year (the same functions
// as the SQLite adapter's, so both give the same output for the same input).
bool is_client_mask(Mask mask);

// Applies a client mask to a column's text form. NULL stays NULL; a value the mask cannot
// understand becomes NULL. Throws std::runtime_error for hmac without a key.
std::optional<std::string> apply_client_mask(Mask mask, const std::optional<std::string>& value,
                                             const std::string& hmac_key);

}  // namespace retentiond::adapters::postgres
