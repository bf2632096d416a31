#include "adapters/sqlite/sqlite_masks.hpp"

#include "adapters/sql_common.hpp"

#include "daemon/digest.hpp"

#include <sqlite3.h>

#include <cctype>
#include <cstring>
#include <stdexcept>

namespace retentiond::adapters::sqlite {

namespace {

std::string_view text_of(sqlite3_value* value) {
  const auto* bytes = static_cast<const char*>(sqlite3_value_blob(value));
  const int size = sqlite3_value_bytes(value);
  return bytes == nullptr ? std::string_view{}
                          : std::string_view{bytes, static_cast<std::size_t>(size)};
}

void hmac_function(sqlite3_context* context, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
    return sqlite3_result_null(context);
  const auto* key = static_cast<const std::string*>(sqlite3_user_data(context));
  if (key->empty())
    return sqlite3_result_error(context, "retentiond_hmac: no hmac key is configured", -1);
  // Numbers hash by their text form, so 42 and '42' give the same token.
  if (sqlite3_value_type(argv[0]) != SQLITE_BLOB)
    sqlite3_value_text(argv[0]);
  const std::string token = hmac_sha256_hex(*key, text_of(argv[0]));
  sqlite3_result_text(context, token.c_str(), static_cast<int>(token.size()), SQLITE_TRANSIENT);
}

void ip_prefix_function(sqlite3_context* context, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT)
    return sqlite3_result_null(context);
  const auto prefix = ip_prefix(text_of(argv[0]));
  if (!prefix)
    return sqlite3_result_null(context);
  sqlite3_result_text(context, prefix->c_str(), static_cast<int>(prefix->size()), SQLITE_TRANSIENT);
}

void year_function(sqlite3_context* context, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT)
    return sqlite3_result_null(context);
  const auto year = year_of(text_of(argv[0]));
  if (!year)
    return sqlite3_result_null(context);
  sqlite3_result_text(context, year->c_str(), static_cast<int>(year->size()), SQLITE_TRANSIENT);
}

void delete_key(void* key) {
  delete static_cast<std::string*>(key);
}

void check(sqlite3* db, int result) {
  if (result != SQLITE_OK)
    throw std::runtime_error(std::string{"cannot register anonymize masks: "} + sqlite3_errmsg(db));
}

}  // namespace

void register_masks(sqlite3* db, const std::string& hmac_key) {
  constexpr int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
  check(db, sqlite3_create_function_v2(db, "retentiond_hmac", 1, flags, new std::string{hmac_key},
                                       hmac_function, nullptr, nullptr, delete_key));
  check(db, sqlite3_create_function_v2(db, "retentiond_ip_prefix", 1, flags, nullptr,
                                       ip_prefix_function, nullptr, nullptr, nullptr));
  check(db, sqlite3_create_function_v2(db, "retentiond_year", 1, flags, nullptr, year_function,
                                       nullptr, nullptr, nullptr));
}

}  // namespace retentiond::adapters::sqlite
