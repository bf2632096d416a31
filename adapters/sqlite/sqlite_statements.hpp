#pragma once

#include "adapters/datastore.hpp"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace retentiond::adapters::sqlite {

// A value bound to a `?` placeholder.
using SqlValue = std::variant<std::nullptr_t, std::int64_t, double, std::string>;

// SQL text with `?` placeholders and the values that go with them, in order.
struct SqlFragment {
  std::string text;
  std::vector<SqlValue> values;

  SqlFragment& append(const SqlFragment& other);
  SqlFragment& append(std::string_view text);
};

// "name" with embedded quotes doubled. Names are validated identifiers already; quoting keeps
// keywords (a column called "order") working.
std::string quote_identifier(std::string_view name);

// The name of the per-connection temporary table that holds one batch's rowids.
inline constexpr std::string_view k_batch_table = "temp.retentiond_batch";
// Rowids whose linked file was refused during this run, so later batches skip them.
inline constexpr std::string_view k_refused_table = "temp.retentiond_refused";

// Every statement one rule needs, built from the validated rule and bound values only.
class RuleStatements {
public:
  explicit RuleStatements(const Selection& selection);

  // One row: table_rows, total, due, held, undated, unreadable, future, wrong_scale,
  // oldest due anchor (unix milliseconds, or NULL).
  SqlFragment count() const;
  // One row per non-empty bucket: (bucket index, rows); buckets as Datastore::count_by_anchor.
  SqlFragment count_by_anchor(const std::vector<Instant>& edges) const;
  // Fills k_batch_table with the rowids of up to `limit` due, unheld rows.
  SqlFragment select_batch(std::int64_t limit) const;
  // (rowid, linked path) of the rows in k_batch_table, for rules with `files`.
  SqlFragment linked_paths() const;
  // The linked path of every due, unheld row, for counting refusals.
  SqlFragment due_paths() const;
  // Deletes one cascade's children of the rows in k_batch_table.
  SqlFragment delete_children(const Cascade& cascade) const;
  // Deletes or anonymizes the rows in k_batch_table.
  SqlFragment change_rows() const;

private:
  SqlFragment from_clause() const;       // FROM table t [LEFT JOIN parent p ON ...]
  SqlFragment matched() const;           // match filters and not-yet-anonymized
  SqlFragment readable() const;          // the anchor can be read in the declared format
  SqlFragment due() const;               // readable and strictly older than the cutoff
  SqlFragment held() const;              // the subject is under a hold ("0" when none)
  SqlFragment future() const;            // readable and later than now
  SqlFragment wrong_scale() const;       // seconds/milliseconds mix-up
  SqlFragment anchor_millis() const;     // the anchor as unix milliseconds (for oldest_due)
  std::string mask_expression(const ColumnMask& mask) const;
  SqlFragment done_marker() const;       // what marks an anonymized row so it never matches again

  const Selection& m_selection;
  const Rule& m_rule;
  std::string m_anchor;  // t."col" or p."col"
};

} // namespace retentiond::adapters::sqlite
