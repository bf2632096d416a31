#pragma once

#include <string>
#include <string_view>

namespace retentiond {

// Lowercase hex SHA-256 of `data` (64 characters).
std::string sha256_hex(std::string_view data);

// Lowercase hex HMAC-SHA-256 of `data` under `key` (64 characters).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

}  // namespace retentiond
