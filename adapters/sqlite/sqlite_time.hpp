#pragma once

struct sqlite3;

namespace retentiond::adapters::sqlite {

// retentiond_iso8601_ms(x) on one connection: the instant parse_iso8601 reads in the text x,
// in milliseconds since the Unix epoch; NULL for anything else (not text, or text that is not
// exactly that grammar). iso8601 anchors are read with it, so SQLite reads them as PostgreSQL
// and the rest of retentiond do: no julianday() leniency (hour 24, trailing spaces).
void register_time_functions(sqlite3* db);

}  // namespace retentiond::adapters::sqlite
