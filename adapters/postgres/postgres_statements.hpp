#pragma once

#include "adapters/datastore.hpp"
#include "adapters/sql_common.hpp"

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond::adapters::postgres {

// A parameter in its text form, nullopt for NULL. PostgreSQL infers its type from where it is
// used, or the statement casts it.
using SqlValue = std::optional<std::string>;

// SQL text with `?` placeholders and the values that go with them, in order. No `?` appears in
// the text otherwise (the regular expressions below are written without one).
struct SqlFragment {
  std::string text;
  std::vector<SqlValue> values;

  SqlFragment& append(const SqlFragment& other);
  SqlFragment& append(std::string_view text);
  // The text with each `?` replaced by $1, $2, ... in order, as libpq wants it.
  std::string numbered() const;
};

// A PostgreSQL array literal of row addresses ("(0,1)"), for `?::tid[]`.
std::string tid_array(const std::vector<std::string>& tids);
// A PostgreSQL array literal of texts (nullopt: NULL), for `?::text[]`.
std::string text_array(const std::vector<SqlValue>& texts);

// How the anchor column stores time: the rule's age_format read against the column's type.
enum class AnchorKind {
  timestamptz,  // native
  timestamp,    // native, read as UTC
  date,         // native, midnight UTC
  integer,      // unix_seconds or unix_millis in smallint, integer or bigint
  floating,     // ... in real or double precision
  numeric,      // ... in numeric
  number_text,  // ... written as decimal text
  iso_text,     // iso8601 text
};

// The kind for a column of PostgreSQL type `type_name` (pg_type.typname) read as `format`, or
// what is wrong with the pair: a sentence naming the type and the way out.
std::expected<AnchorKind, std::string> anchor_kind(AgeFormat format, std::string_view type_name);

// Whether `type_name` holds text (text, varchar, char): what the masks other than `null` write.
bool is_text_type(std::string_view type_name);

// The selection's held subjects as the subject column compares them. PostgreSQL prints values
// in a normal form (a uuid in lower case, numeric with its scale, boolean as true), so a
// subject is compared in the column's own type: held_values() in the datastore casts each one
// on the server first, and one that does not cast cannot equal any value of the column.
struct HeldValues {
  // The column's type (format_type) to compare in; empty: compare the column's text form.
  std::string type;
  // The subjects that cast, in that type's text form; empty: nothing is held.
  std::vector<std::string> values;
};

// Every statement one rule needs, built from the validated rule and bound values only.
class RuleStatements {
public:
  // `held`: the selection's held subjects, resolved against the subject column's type.
  RuleStatements(const Selection& selection, AnchorKind kind, HeldValues held = {});

  // One pass over the table: every row, then matched, due, due and held, undated, unreadable,
  // future and wrong-scale rows, and the oldest due unheld anchor (unix ms, NULL when none).
  SqlFragment census() const;
  // Readable anchors of matched rows before edges[0], in each [edges[i-1], edges[i]), and at or
  // after the last edge: edges.size() + 1 columns of one row, in one pass.
  SqlFragment count_by_anchor(const std::vector<Instant>& edges) const;
  // (linked path, anchor as unix ms) of every due, unheld row, oldest first.
  SqlFragment due_paths() const;
  // Whether an index on the anchor can answer `anchor < cutoff` (a plain column comparison).
  bool index_comparable() const;

  // Locks and returns up to `limit` selectable rows, skipping rows another session has locked:
  // (ctid, the text of `key_column` (NULL without one), the linked path when the rule has
  // files, then the text of each column whose mask retentiond computes). With `range`, only
  // rows with first <= ctid < last, in ctid order; without, found through the anchor's index.
  // `refused`: rows kept in this run because their file was refused (a tid[] literal).
  // `keys_kept`: the batch changes no column of a unique index (see RowLock).
  struct Range {
    std::string first;  // tid text form
    std::string last;
  };
  SqlFragment lock_batch(const std::optional<Range>& range, std::int64_t limit,
                         const std::string& refused, const std::optional<std::string>& key_column,
                         bool keys_kept) const;
  // Which of `paths` (a text[] literal of linked paths) a row other than those in `tids` (a
  // tid[] literal) names too: their files stay. Compared as text, as stored.
  SqlFragment shared_paths(const std::string& paths, const std::string& tids) const;
  // Deletes one cascade's children of the rows in `tids` (a tid[] literal).
  SqlFragment delete_children(const Cascade& cascade, const std::string& tids) const;
  // Deletes the rows in `tids`.
  SqlFragment delete_rows(const std::string& tids) const;
  // The masks retentiond computes itself (hmac, ip_prefix, year), in the order lock_batch
  // returns their columns.
  std::vector<ColumnMask> client_masks() const;
  // Anonymizes the rows `tids`; masked[m][r] is the value the caller computed for client mask
  // m (in client_masks() order) and row tids[r]. Client masks write text columns only
  // (check_schema), so the values travel as text arrays.
  SqlFragment anonymize_rows(const std::vector<std::string>& tids,
                             const std::vector<std::vector<SqlValue>>& masked) const;

private:
  SqlFragment from_clause() const;  // FROM table t [LEFT JOIN parent p ON ...]
  SqlFragment matched() const;      // match filters and not-yet-anonymized
  SqlFragment readable() const;     // the anchor can be read in the declared format
  SqlFragment number() const;       // a numeric anchor as a number (NULL when unreadable)
  SqlFragment iso_millis() const;   // an iso8601 anchor as unix ms (NULL when unreadable)
  SqlFragment value_of(Instant instant) const;  // the instant as the anchor compares with it
  SqlFragment before(Instant instant) const;    // anchor < instant (anchor readable)
  SqlFragment at_or_after(Instant instant) const;
  SqlFragment due() const;          // readable, strictly older than the cutoff, right scale
  SqlFragment held() const;         // the subject is under a hold
  SqlFragment future() const;       // readable and later than now
  SqlFragment wrong_scale() const;  // seconds/milliseconds mix-up
  SqlFragment anchor_millis() const;
  SqlFragment server_masks() const;  // "col = expr, " for null and redact masks
  SqlFragment done_marker() const;   // what marks an anonymized row so it never matches again
  bool numeric_anchor() const;
  bool native_anchor() const;

  const Selection& m_selection;
  const Rule& m_rule;
  AnchorKind m_kind;
  HeldValues m_held;
  std::string m_anchor;  // t."col" or p."col"
};

}  // namespace retentiond::adapters::postgres
