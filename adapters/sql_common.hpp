#pragma once

#include "adapters/datastore.hpp"
#include "daemon/config.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond::adapters {

// What the SQL adapters (SQLite, PostgreSQL) share.

// "name" with embedded quotes doubled. Names are validated identifiers already; quoting keeps
// keywords (a column called "order") working, and stops PostgreSQL from folding case.
std::string quote_identifier(std::string_view name);

// Every column of the rule's own table that the rule names: the anchor, match columns, the
// subject, masked columns, anonymized_column, the parent's foreign key, the linked files' path.
std::vector<std::string> columns_named(const Rule& rule);

// The masks computed the same way whatever the datastore, so that a value anonymized in SQLite
// and in PostgreSQL reads the same.
// IPv4 -> its /24 ("192.0.2.77" -> "192.0.2.0"), IPv6 -> its /48. Anything that is not an IP
// address yields nothing: a value the mask cannot understand is not kept.
std::optional<std::string> ip_prefix(std::string_view address);
// The year of an ISO 8601 date or timestamp, four digits ("1985-06-15" -> "1985", "0985-01-01"
// -> "0985"), or of a year alone ("1985"); nothing for anything else, a date that does not
// exist ("1985-13-45") included.
std::optional<std::string> year_of(std::string_view date);

// Why a rule whose cascade key, or whose parent's key (age_from), is not unique is refused:
// rows would share it, and a kept row's children could go with a deleted row's, or a row's
// age come from either parent.
std::string not_unique_cascade_key(const Rule& rule, const Cascade& cascade);
std::string not_unique_parent_key(const ParentAnchor& parent);

// Why a rule that anonymizes without anonymized_column on a NOT NULL anchor is refused: the
// engine marks such a row done by clearing its anchor.
std::string not_null_anchor_cleared(const Rule& rule);

// Why a rule naming a column its table lacks is refused, with the columns it has as the way
// out (a misspelling is the likely cause).
std::string no_such_column(const std::string& table, const std::string& column,
                           const std::vector<std::string>& existing);

// The warning of check_schema when the linked files' path column has no index.
std::string no_index_on_linked_path(const Rule& rule);

// Batches changed in pieces (a statement each) start no piece that the previous one's pace says
// would end after the batch's deadline: a batch whose rows cost more than its size promised
// (pages not in the cache, a checkpoint) stops a piece, an eighth of its size, before it would
// have passed its deadline, and holds its locks no longer.
inline constexpr std::int64_t k_pieces_per_batch = 8;

// `budget` after `from`; time_point::max() for an unbounded budget (duration::max()).
std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point from,
                                                     std::chrono::steady_clock::duration budget);

// Whether a piece of `next` rows, taking as long per row as the piece of `size` rows that began
// at `started` and has just ended, would end after `deadline`.
bool next_piece_passes(std::chrono::steady_clock::time_point started, std::int64_t size,
                       std::int64_t next, std::chrono::steady_clock::time_point deadline);

// Which run of its rule `selection` belongs to ("rule@cutoff"): the census and the walk an
// adapter keeps from one call to the next belong to that run.
std::string run_key(const Selection& selection);

// Plans the walk of `selection`'s run with `start(key)`, unless `walk` (whose `run` is the key
// of the run it belongs to) is that run's already. A walk stopped or failed while planning is
// forgotten, so that the next call plans again.
template <typename Walk, typename Start>
void walk_for(Walk& walk, const Selection& selection, Start&& start) {
  const std::string key = run_key(selection);
  if (key == walk.run)
    return;
  try {
    start(key);
  } catch (...) {
    walk = {};
    throw;
  }
}

}  // namespace retentiond::adapters
