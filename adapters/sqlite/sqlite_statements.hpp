#pragma once

#include "adapters/datastore.hpp"
#include "adapters/sql_common.hpp"

#include <cstdint>
#include <optional>
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

// The name of the per-connection temporary table that holds one batch's rowids.
inline constexpr std::string_view k_batch_table = "temp.retentiond_batch";
// Rowids whose linked file was refused during this run, so later batches skip them.
inline constexpr std::string_view k_refused_table = "temp.retentiond_refused";

// Every statement one rule needs, built from the validated rule and bound values only.
class RuleStatements {
public:
  explicit RuleStatements(const Selection& selection);
  const std::string& table() const { return m_rule.table; }

  // The census, as several statements that each return one row, so that every one of them can
  // walk an index range on the anchor instead of reading the whole table.
  SqlFragment count_table_rows() const;  // every row of the table
  SqlFragment count_matched() const;     // rows passing the match filters
  SqlFragment count_due() const;         // due rows, held or not
  // Numeric anchors at or after the cutoff: on a table whose rows are mostly due, cheaper to
  // walk than the due ones (see SqliteDatastore::count). Meant for an index on the anchor.
  SqlFragment count_numbers_not_due() const;
  // Whether the first row at or after `rowid` is due: 1, 0, or NULL (an undated row).
  SqlFragment row_due_from(std::int64_t rowid) const;
  SqlFragment count_due_held() const;  // due rows under a hold
  // Matched rows, due rows and (with_held) due rows under a hold, in one pass over the table.
  // For rules whose total needs a full scan anyway (match filters, anonymized_column): cheaper
  // than walking the anchor's index for the due rows and looking up each one's row (5x on 1M
  // rows with 2/3 due). Not for age_from rules, whose due rows come from a join.
  SqlFragment count_matched_due_held(bool with_held) const;
  SqlFragment oldest_due() const;  // anchor of the oldest due, unheld row (unix ms); no row if none
  SqlFragment count_undated() const;
  SqlFragment count_unreadable() const;
  SqlFragment count_future() const;
  SqlFragment count_wrong_scale() const;
  // Numbers below the milliseconds' threshold (unix_millis): wrong_scale's low end.
  SqlFragment count_below_scale() const;
  // Readable anchors of matched rows in [from, to); either bound may be absent.
  SqlFragment count_anchors(std::optional<Instant> from, std::optional<Instant> to) const;
  // Whether batches may change rows with one statement over a rowid range: no cascade, no
  // linked files, no parent anchor.
  bool single_statement_batches() const;
  // A slice of the anchor's values, as stored: [low, high), NULL meaning unbounded. Bands
  // split a run so that each pass over the table touches only one part of the anchor's index.
  struct Band {
    SqlValue low = nullptr;
    SqlValue high = nullptr;
    std::int64_t first_rowid = 0;  // the rowids its due rows span
    std::int64_t last_rowid = -1;
    std::int64_t due = -1;  // its due rows when the run was planned; -1 when not counted
  };
  // The rowid of the first due row (in the anchor's order) whose anchor is at or after
  // `instant`; no row when there is none. A few of these tell whether time grows with the rowid.
  SqlFragment first_due_rowid_from(Instant instant) const;
  // (anchor, rowid) of every due row in the anchor's order: one pass over the index that finds
  // the bands' boundaries and the rowids each band spans.
  SqlFragment due_anchor_values() const;
  // Deletes or anonymizes the due, unheld rows with lo <= rowid < hi and the anchor in `band`.
  SqlFragment change_range(std::int64_t lo, std::int64_t hi, const Band& band) const;
  // Fills k_batch_table with the due, unheld rows with lo <= rowid < hi.
  SqlFragment select_range(std::int64_t lo, std::int64_t hi) const;
  // Fills k_batch_table with the rowids of up to `limit` due, unheld rows, found through the
  // anchor's index: for sparse work, where walking rowid ranges would read the whole table.
  SqlFragment select_batch(std::int64_t limit) const;
  // (rowid, linked path) of the rows in k_batch_table, for rules with `files`.
  SqlFragment linked_paths() const;
  // The linked paths of rows in k_batch_table that a row outside it names too (held, not due,
  // not matched): their files stay. Compared as stored.
  SqlFragment shared_paths() const;
  // (linked path, anchor as unix ms) of every due, unheld row, oldest first, for counting
  // refusals.
  SqlFragment due_paths() const;
  // Deletes one cascade's children of the rows in k_batch_table.
  SqlFragment delete_children(const Cascade& cascade) const;
  // Deletes or anonymizes the rows in k_batch_table.
  SqlFragment change_rows() const;
  bool numeric_anchor() const;  // unix_seconds or unix_millis

private:
  SqlFragment from_clause() const;                 // FROM table t [LEFT JOIN parent p ON ...]
  SqlFragment matched() const;                     // match filters and not-yet-anonymized
  SqlFragment readable() const;                    // the anchor can be read in the declared format
  SqlFragment due() const;                         // readable and strictly older than the cutoff
  SqlValue numeric_value(Instant instant) const;   // the instant as a numeric anchor stores it
  SqlFragment before(Instant instant) const;       // anchor < instant (anchor readable)
  SqlFragment at_or_after(Instant instant) const;  // anchor >= instant (anchor readable)
  SqlFragment selectable() const;  // matched, due, not held, not refused in this run
  SqlFragment in_band(const Band& band, bool use_index) const;
  SqlFragment held() const;         // the subject is under a hold ("0" when none)
  SqlFragment future() const;       // readable and later than now
  SqlFragment wrong_scale() const;  // seconds/milliseconds/microseconds mix-up
  // "(SELECT count(*) FROM ... WHERE matched AND condition)", one term of a census sum.
  SqlFragment count_where(const SqlFragment& condition) const;
  SqlFragment anchor_millis() const;  // the anchor as unix milliseconds (for oldest_due)
  std::string mask_expression(const ColumnMask& mask) const;
  SqlFragment done_marker() const;  // what marks an anonymized row so it never matches again

  const Selection& m_selection;
  const Rule& m_rule;
  std::string m_anchor;  // t."col" or p."col"
};

}  // namespace retentiond::adapters::sqlite
