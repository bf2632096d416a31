#pragma once

#include <string>
#include <string_view>

namespace retentiond {

// Lowercase hex SHA-256 of `data` (64 characters).
std::string sha256_hex(std::string_view data);

// Lowercase hex HMAC-SHA-256 of `data` under `key` (64 characters).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// `bytes` random bytes from OpenSSL's generator, in lowercase hex (2 * bytes characters).
std::string random_hex(std::size_t bytes);

}  // namespace retentiond
