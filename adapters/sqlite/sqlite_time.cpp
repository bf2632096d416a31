#include "adapters/sqlite/sqlite_time.hpp"

#include "daemon/timestamp.hpp"

#include <sqlite3.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace retentiond::adapters::sqlite {
namespace {

void iso8601_ms_function(sqlite3_context* context, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT)
    return sqlite3_result_null(context);
  const auto* bytes = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const auto instant = parse_iso8601(
      std::string_view{bytes, static_cast<std::size_t>(sqlite3_value_bytes(argv[0]))});
  if (!instant)
    return sqlite3_result_null(context);
  sqlite3_result_int64(context, to_unix_millis(*instant));
}

}  // namespace

void register_time_functions(sqlite3* db) {
  constexpr int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  if (sqlite3_create_function_v2(db, "retentiond_iso8601_ms", 1, flags, nullptr,
                                 iso8601_ms_function, nullptr, nullptr, nullptr) != SQLITE_OK)
    throw std::runtime_error(std::string{"cannot register retentiond_iso8601_ms: "} +
                             sqlite3_errmsg(db));
}

}  // namespace retentiond::adapters::sqlite
