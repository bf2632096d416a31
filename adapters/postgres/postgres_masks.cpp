#include "adapters/postgres/postgres_masks.hpp"

#include "adapters/sql_common.hpp"
#include "daemon/digest.hpp"

#include <stdexcept>

namespace retentiond::adapters::postgres {

bool is_client_mask(Mask mask) {
  return mask == Mask::hmac || mask == Mask::ip_prefix || mask == Mask::year;
}

std::optional<std::string> apply_client_mask(Mask mask, const std::optional<std::string>& value,
                                             const std::string& hmac_key) {
  if (!value)
    return std::nullopt;
  switch (mask) {
  case Mask::hmac:
    if (hmac_key.empty())
      throw std::runtime_error("mask 'hmac': no hmac key is configured");
    return hmac_sha256_hex(hmac_key, *value);
  case Mask::ip_prefix: return ip_prefix(*value);
  case Mask::year: return year_of(*value);
  case Mask::null:
  case Mask::redact: break;
  }
  return std::nullopt;
}

}  // namespace retentiond::adapters::postgres
