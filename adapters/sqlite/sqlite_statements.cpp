#include "adapters/sqlite/sqlite_statements.hpp"

#include "daemon/json_writer.hpp"

#include <spdlog/fmt/fmt.h>

#include <chrono>

namespace retentiond::adapters::sqlite {
namespace {

// Anything at or above 10^11 is not a plausible Unix time in seconds (year 5138) and anything
// below it is not a plausible one in milliseconds (before 1973-03-03): the tell-tale of a
// column written in the other unit.
constexpr std::int64_t k_scale_threshold = 100'000'000'000;
// At or above 10^14 a Unix time in milliseconds is past year 5138 too: microseconds, which
// would otherwise count as future and never expire.
constexpr std::int64_t k_micros_threshold = 100'000'000'000'000;

SqlValue to_sql_value(const MatchValue& value) {
  return std::visit(
      [](const auto& v) -> SqlValue {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>)
          return std::int64_t{v ? 1 : 0};
        else
          return v;
      },
      value);
}

// A text bound that sorts after every anchor text dated before `instant`: its ISO form, or past
// the year 9999 (five digits, which would sort low), one after every four-digit date.
std::string text_bound_after(Instant instant) {
  const std::string text = format_iso8601(instant);
  return text.size() > 4 && text[4] == '-' ? text : "9999-12-32";
}

SqlFragment sql(std::string text, std::vector<SqlValue> values = {}) {
  return {std::move(text), std::move(values)};
}

}  // namespace

SqlFragment& SqlFragment::append(const SqlFragment& other) {
  text += other.text;
  values.insert(values.end(), other.values.begin(), other.values.end());
  return *this;
}

SqlFragment& SqlFragment::append(std::string_view more) {
  text += more;
  return *this;
}

RuleStatements::RuleStatements(const Selection& selection)
    : m_selection(selection), m_rule(selection.rule) {
  m_anchor = m_rule.age_from ? "p." + quote_identifier(m_rule.age_from->column)
                             : "t." + quote_identifier(m_rule.age_column);
}

SqlFragment RuleStatements::from_clause() const {
  SqlFragment from = sql(fmt::format(" FROM {} AS t", quote_identifier(m_rule.table)));
  if (const auto& parent = m_rule.age_from)
    from.append(fmt::format(" LEFT JOIN {} AS p ON p.{} = t.{}", quote_identifier(parent->table),
                            quote_identifier(parent->key), quote_identifier(parent->foreign_key)));
  return from;
}

SqlFragment RuleStatements::matched() const {
  SqlFragment where = sql("1");
  for (const MatchFilter& filter : m_rule.match) {
    where.append(fmt::format(" AND t.{} ", quote_identifier(filter.column)));
    if (filter.values.size() == 1) {
      where.append("= ?");
    } else {
      std::string placeholders;
      for (std::size_t i = 0; i < filter.values.size(); ++i)
        placeholders += i == 0 ? "?" : ", ?";
      where.append("IN (" + placeholders + ")");
    }
    for (const MatchValue& value : filter.values)
      where.values.push_back(to_sql_value(value));
  }
  if (m_rule.anonymized_column)
    where.append(fmt::format(" AND t.{} IS NULL", quote_identifier(*m_rule.anonymized_column)));
  return where;
}

SqlFragment RuleStatements::readable() const {
  const std::string& a = m_anchor;
  switch (m_rule.age_format) {
  case AgeFormat::unix_seconds:
  case AgeFormat::unix_millis:
    // 9e999 is SQLite's infinity: a REAL column can hold it, and it is no instant.
    return sql(
        fmt::format("(typeof({0}) IN ('integer', 'real') AND {0} > -9e999 AND {0} < 9e999)", a));
  case AgeFormat::iso8601:
  case AgeFormat::native:
    // GLOB turns most other text away cheaply; retentiond_iso8601_ms() (sqlite_time) then
    // reads exactly parse_iso8601's grammar.
    return sql(fmt::format("(typeof({0}) = 'text' AND {0} GLOB "
                           "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' AND "
                           "retentiond_iso8601_ms({0}) IS NOT NULL)",
                           a));
  }
  return sql("0");
}

bool RuleStatements::numeric_anchor() const {
  return m_rule.age_format == AgeFormat::unix_seconds ||
         m_rule.age_format == AgeFormat::unix_millis;
}

SqlValue RuleStatements::numeric_value(Instant instant) const {
  if (m_rule.age_format == AgeFormat::unix_seconds)
    return static_cast<double>(to_unix_millis(instant)) / 1000.0;
  return to_unix_millis(instant);
}

// For numeric anchors the comparisons need no typeof(): SQLite orders every number before every
// text and blob, so `anchor < number` holds for numbers only, and `anchor < ''` bounds a range
// to numbers. That holds for every column but one of TEXT affinity, where the bound number
// becomes text too: check_schema refuses those (a typeof() here would cost a fifth of a
// batch's time). The conditions are then plain ranges that an index on the anchor answers alone.
// For text anchors, a comparison of the text lets an index narrow the scan (a local time is at
// most 14 hours after, or 12 hours before, its UTC instant: a day of margin), and
// retentiond_iso8601_ms() then compares the instants exactly. The lower bound is a date alone: a
// text that starts with it sorts after it whatever separates the time ('T' or a space, which sorts
// before 'T').
SqlFragment RuleStatements::before(Instant instant) const {
  const std::string& a = m_anchor;
  // The '+' keeps the bound that excludes minus infinity out of the index's choice of range.
  if (numeric_anchor())
    return sql(fmt::format("({0} < ? AND +{0} > -9e999)", a), {numeric_value(instant)});
  return sql("(")
      .append(readable())
      .append(sql(fmt::format(" AND {0} < ? AND retentiond_iso8601_ms({0}) < ?)", a),
                  {text_bound_after(instant + std::chrono::days{1}), to_unix_millis(instant)}));
}

SqlFragment RuleStatements::at_or_after(Instant instant) const {
  const std::string& a = m_anchor;
  if (numeric_anchor())
    return sql(fmt::format("({0} >= ? AND {0} < 9e999)", a), {numeric_value(instant)});
  return sql("(")
      .append(readable())
      .append(sql(
          fmt::format(" AND {0} >= ? AND retentiond_iso8601_ms({0}) >= ?)", a),
          {format_iso8601(instant - std::chrono::days{1}).substr(0, 10), to_unix_millis(instant)}));
}

SqlFragment RuleStatements::due() const {
  SqlFragment due = before(m_selection.cutoff);
  // Never select a value written in the other unit (see k_scale_threshold).
  if (m_rule.age_format == AgeFormat::unix_seconds)
    due.append(fmt::format(" AND {} < {}", m_anchor, k_scale_threshold));
  else if (m_rule.age_format == AgeFormat::unix_millis)
    due.append(fmt::format(" AND {} >= {}", m_anchor, k_scale_threshold));

  return sql("(").append(due).append(")");
}

SqlFragment RuleStatements::selectable() const {
  SqlFragment where = matched();
  where.append(" AND ").append(due()).append(" AND NOT ").append(held());
  if (m_rule.files)
    where.append(fmt::format(" AND t.rowid NOT IN (SELECT id FROM {})", k_refused_table));
  return where;
}

SqlFragment RuleStatements::held() const {
  if (!m_rule.subject_column)
    return sql("0");
  std::string subjects = "[";
  for (std::size_t i = 0; i < m_selection.held_subjects.size(); ++i) {
    if (i > 0)
      subjects += ',';
    // Byte for byte: a subject that is not UTF-8 must still equal the value it holds.
    subjects += json_quote_bytes(m_selection.held_subjects[i]);
  }
  subjects += ']';
  const std::string subject = "t." + quote_identifier(*m_rule.subject_column);
  // Holds name subjects as text; comparing the column's text form makes 42 and '42' the same.
  return sql(
      fmt::format("({0} IS NOT NULL AND CAST({0} AS TEXT) IN (SELECT value FROM json_each(?)))",
                  subject),
      {std::move(subjects)});
}

SqlFragment RuleStatements::future() const {
  // Later than now: at or after now + 1 ms, which is the same for millisecond anchors. A value
  // in the other unit is counted as wrong_scale, not as future.
  SqlFragment future = at_or_after(m_selection.now + std::chrono::milliseconds{1});
  if (m_rule.age_format == AgeFormat::unix_seconds)
    future.append(fmt::format(" AND {} < {}", m_anchor, k_scale_threshold));
  else if (m_rule.age_format == AgeFormat::unix_millis)
    future.append(fmt::format(" AND {} < {}", m_anchor, k_micros_threshold));
  return future;
}

SqlFragment RuleStatements::wrong_scale() const {
  const std::string& a = m_anchor;
  switch (m_rule.age_format) {
  case AgeFormat::unix_seconds:
    return sql(fmt::format("(typeof({0}) IN ('integer', 'real') AND {0} >= {1} AND {0} < 9e999)", a,
                           k_scale_threshold));
  case AgeFormat::unix_millis:
    return sql(fmt::format("(typeof({0}) IN ('integer', 'real') AND (({0} > -9e999 AND {0} < {1}) "
                           "OR ({0} >= {2} AND {0} < 9e999)))",
                           a, k_scale_threshold, k_micros_threshold));
  default: return sql("0");
  }
}

SqlFragment RuleStatements::count_below_scale() const {
  return sql("SELECT ").append(
      count_where(sql(fmt::format("{0} > -9e999 AND {0} < {1}", m_anchor, k_scale_threshold))));
}

SqlFragment RuleStatements::anchor_millis() const {
  const std::string& a = m_anchor;
  switch (m_rule.age_format) {
  case AgeFormat::unix_seconds: return sql(fmt::format("CAST({} * 1000 AS INTEGER)", a));
  case AgeFormat::unix_millis: return sql(fmt::format("CAST({} AS INTEGER)", a));
  default: return sql(fmt::format("retentiond_iso8601_ms({})", a));
  }
}

SqlFragment RuleStatements::count_table_rows() const {
  return sql(fmt::format("SELECT count(*) FROM {}", quote_identifier(m_rule.table)));
}

SqlFragment RuleStatements::count_matched() const {
  return sql(fmt::format("SELECT count(*) FROM {} AS t WHERE ", quote_identifier(m_rule.table)))
      .append(matched());
}

SqlFragment RuleStatements::count_due() const {
  return sql("SELECT count(*)")
      .append(from_clause())
      .append(" WHERE ")
      .append(matched())
      .append(" AND ")
      .append(due());
}

SqlFragment RuleStatements::count_matched_due_held(bool with_held) const {
  SqlFragment query = sql("SELECT count(*), coalesce(sum(CASE WHEN ").append(due());
  query.append(" THEN 1 ELSE 0 END), 0), ");
  if (with_held)
    query.append("coalesce(sum(CASE WHEN ")
        .append(due())
        .append(" AND ")
        .append(held())
        .append(" THEN 1 ELSE 0 END), 0)");
  else
    query.append("0");
  query.append(fmt::format(" FROM {} AS t WHERE ", quote_identifier(m_rule.table)));
  return query.append(matched());
}

SqlFragment RuleStatements::count_numbers_not_due() const {
  // One open range from the cutoff to the index's end, which takes +Inf, text and blobs along,
  // less those two (each a short range): a bound at 9e999 would compare every entry with a REAL
  // (1M rows, 333k not due: 7.7 ms against 2.6).
  return sql("SELECT ")
      .append(
          count_where(sql(fmt::format("{} >= ?", m_anchor), {numeric_value(m_selection.cutoff)})))
      .append(" - ")
      .append(count_where(sql(m_anchor + " >= ''")))
      .append(" - ")
      .append(count_where(sql(m_anchor + " = 9e999")));
}

SqlFragment RuleStatements::row_due_from(std::int64_t rowid) const {
  SqlFragment query = sql("SELECT ").append(due()).append(from_clause());
  query.append(" WHERE t.rowid >= ? ORDER BY t.rowid LIMIT 1");
  query.values.push_back(rowid);
  return query;
}

SqlFragment RuleStatements::count_due_held() const {
  return sql("SELECT count(*)")
      .append(from_clause())
      .append(" WHERE ")
      .append(matched())
      .append(" AND ")
      .append(due())
      .append(" AND ")
      .append(held());
}

SqlFragment RuleStatements::oldest_due() const {
  SqlFragment query = sql("SELECT ").append(anchor_millis()).append(from_clause());
  query.append(" WHERE ").append(matched()).append(" AND ").append(due()).append(" AND NOT ");
  query.append(held());
  // Numbers: the index gives the smallest at once. Text: compare the instants.
  if (numeric_anchor())
    query.append(" ORDER BY " + m_anchor);
  else
    query.append(" ORDER BY retentiond_iso8601_ms(" + m_anchor + ")");
  return query.append(" LIMIT 1");
}

SqlFragment RuleStatements::count_undated() const {
  return sql("SELECT count(*)")
      .append(from_clause())
      .append(" WHERE ")
      .append(matched())
      .append(" AND " + m_anchor + " IS NULL");
}

SqlFragment RuleStatements::count_where(const SqlFragment& condition) const {
  return sql("(SELECT count(*)")
      .append(from_clause())
      .append(" WHERE ")
      .append(matched())
      .append(" AND ")
      .append(condition)
      .append(")");
}

SqlFragment RuleStatements::count_unreadable() const {
  if (!numeric_anchor())
    return sql("SELECT ").append(
        count_where(sql(m_anchor + " IS NOT NULL AND NOT ").append(readable())));
  // Text and blobs sort after every number, and the infinities are the numbers' two ends: an
  // index on the anchor finds both at once.
  return sql("SELECT ")
      .append(count_where(sql(m_anchor + " >= ''")))
      .append(" + ")
      .append(count_where(sql(m_anchor + " IN (-9e999, 9e999)")));
}

SqlFragment RuleStatements::count_future() const {
  return sql("SELECT count(*)")
      .append(from_clause())
      .append(" WHERE ")
      .append(matched())
      .append(" AND ")
      .append(future());
}

SqlFragment RuleStatements::count_wrong_scale() const {
  // Milliseconds go wrong at both ends: one index range each.
  if (m_rule.age_format == AgeFormat::unix_millis)
    return count_below_scale().append(" + ").append(
        count_where(sql(fmt::format("{0} >= {1} AND {0} < 9e999", m_anchor, k_micros_threshold))));
  return sql("SELECT ").append(count_where(wrong_scale()));
}

SqlFragment RuleStatements::count_anchors(std::optional<Instant> from,
                                          std::optional<Instant> to) const {
  SqlFragment query =
      sql("SELECT count(*)").append(from_clause()).append(" WHERE ").append(matched());
  const bool numeric = numeric_anchor();
  if (numeric && from && to) {
    // One index range: with a third bound (at_or_after's "< 9e999"), the planner might pick that
    // one as the range's end and filter the rest row by row.
    query.append(" AND ").append(before(*to)).append(fmt::format(" AND {} >= ?", m_anchor));
    query.values.push_back(numeric_value(*from));
    return query;
  }
  if (!numeric || (!from && !to))
    query.append(" AND ").append(readable());  // bounds on numbers already exclude text
  if (from)
    query.append(" AND ").append(at_or_after(*from));
  if (to)
    query.append(" AND ").append(before(*to));
  return query;
}

bool RuleStatements::single_statement_batches() const {
  return m_rule.cascade.empty() && !m_rule.files && !m_rule.age_from;
}

SqlFragment RuleStatements::due_anchor_values() const {
  return sql(fmt::format("SELECT t.{0}, t.rowid FROM {1} AS t WHERE ",
                         quote_identifier(m_rule.age_column), quote_identifier(m_rule.table)))
      .append(due())
      .append(fmt::format(" ORDER BY t.{}", quote_identifier(m_rule.age_column)));
}

SqlFragment RuleStatements::first_due_rowid_from(Instant instant) const {
  return sql("SELECT t.rowid")
      .append(from_clause())
      .append(" WHERE ")
      .append(due())
      .append(" AND ")
      .append(at_or_after(instant))
      .append(fmt::format(" ORDER BY {} LIMIT 1", m_anchor));
}

SqlFragment RuleStatements::in_band(const Band& band, bool use_index) const {
  // Inside a rowid slice the anchor's index must not drive the scan: '+' keeps the planner on
  // the rowid range and makes the band a plain filter.
  const std::string anchor = (use_index ? "t." : "+t.") + quote_identifier(m_rule.age_column);
  SqlFragment condition = sql("1");
  if (!std::holds_alternative<std::nullptr_t>(band.low)) {
    condition.append(fmt::format(" AND {} >= ?", anchor));
    condition.values.push_back(band.low);
  }
  if (!std::holds_alternative<std::nullptr_t>(band.high)) {
    condition.append(fmt::format(" AND {} < ?", anchor));
    condition.values.push_back(band.high);
  }
  return condition;
}

SqlFragment RuleStatements::change_range(std::int64_t lo, std::int64_t hi, const Band& band) const {
  SqlFragment statement;
  if (m_rule.action == Action::anonymize) {
    statement = sql(fmt::format("UPDATE {} AS t SET ", quote_identifier(m_rule.table)));
    for (const ColumnMask& mask : m_rule.masks)
      statement.append(
          fmt::format("{} = {}, ", quote_identifier(mask.column), mask_expression(mask)));
    statement.append(done_marker());
  } else {
    statement = sql(fmt::format("DELETE FROM {} AS t", quote_identifier(m_rule.table)));
  }
  statement.append(" WHERE t.rowid >= ? AND t.rowid < ? AND ");
  statement.values.emplace_back(lo);
  statement.values.emplace_back(hi);
  return statement.append(in_band(band, false)).append(" AND ").append(selectable());
}

SqlFragment RuleStatements::select_range(std::int64_t lo, std::int64_t hi) const {
  SqlFragment query = sql(fmt::format("INSERT INTO {}(id) SELECT t.rowid", k_batch_table));
  query.append(from_clause()).append(" WHERE t.rowid >= ? AND t.rowid < ? AND ");
  query.values.emplace_back(lo);
  query.values.emplace_back(hi);
  return query.append(selectable());
}

SqlFragment RuleStatements::select_batch(std::int64_t limit) const {
  SqlFragment query = sql(fmt::format("INSERT INTO {}(id) SELECT t.rowid", k_batch_table));
  query.append(from_clause()).append(" WHERE ").append(selectable()).append(" LIMIT ?");
  query.values.emplace_back(limit);
  return query;
}

SqlFragment RuleStatements::linked_paths() const {
  return sql(fmt::format("SELECT t.rowid, t.{} FROM {} AS t WHERE t.rowid IN (SELECT id FROM {})",
                         quote_identifier(m_rule.files->path_column),
                         quote_identifier(m_rule.table), k_batch_table));
}

SqlFragment RuleStatements::shared_paths() const {
  // One lookup per distinct path, which stops at the first row outside the batch: a path many
  // rows share (a placeholder) costs about what a path of its own does.
  return sql(fmt::format("SELECT p FROM (SELECT DISTINCT t.{0} AS p FROM {1} AS t WHERE t.rowid "
                         "IN (SELECT id FROM {2})) WHERE EXISTS (SELECT 1 FROM {1} AS o WHERE "
                         "o.{0} = p AND o.rowid NOT IN (SELECT id FROM {2}))",
                         quote_identifier(m_rule.files->path_column),
                         quote_identifier(m_rule.table), k_batch_table));
}

SqlFragment RuleStatements::due_paths() const {
  SqlFragment query =
      sql(fmt::format("SELECT t.{}, ", quote_identifier(m_rule.files->path_column)));
  query.append(anchor_millis()).append(from_clause()).append(" WHERE ").append(matched());
  query.append(" AND ").append(due()).append(" AND NOT ").append(held());
  return query.append(" ORDER BY 2");
}

SqlFragment RuleStatements::delete_children(const Cascade& cascade) const {
  return sql(fmt::format("DELETE FROM {} WHERE {} IN (SELECT t.{} FROM {} AS t WHERE t.rowid IN "
                         "(SELECT id FROM {}))",
                         quote_identifier(cascade.table), quote_identifier(cascade.foreign_key),
                         quote_identifier(cascade.key), quote_identifier(m_rule.table),
                         k_batch_table));
}

std::string RuleStatements::mask_expression(const ColumnMask& mask) const {
  const std::string column = quote_identifier(mask.column);
  switch (mask.mask) {
  case Mask::null: return "NULL";
  case Mask::redact:
    return fmt::format("CASE WHEN {0} IS NULL THEN NULL ELSE '[redacted]' END", column);
  case Mask::hmac: return fmt::format("retentiond_hmac({})", column);
  case Mask::ip_prefix: return fmt::format("retentiond_ip_prefix({})", column);
  case Mask::year: return fmt::format("retentiond_year({})", column);
  }
  return "NULL";
}

SqlFragment RuleStatements::done_marker() const {
  if (!m_rule.anonymized_column)
    return sql(fmt::format("{} = NULL", quote_identifier(m_rule.age_column)));
  SqlFragment marker = sql(fmt::format("{} = ?", quote_identifier(*m_rule.anonymized_column)));
  switch (m_rule.age_format) {
  case AgeFormat::unix_seconds: marker.values.emplace_back(to_unix_seconds(m_selection.now)); break;
  case AgeFormat::unix_millis: marker.values.emplace_back(to_unix_millis(m_selection.now)); break;
  default: marker.values.emplace_back(format_iso8601(m_selection.now)); break;
  }
  return marker;
}

SqlFragment RuleStatements::change_rows() const {
  const std::string rows = fmt::format("rowid IN (SELECT id FROM {})", k_batch_table);
  if (m_rule.action != Action::anonymize)
    return sql(fmt::format("DELETE FROM {} WHERE {}", quote_identifier(m_rule.table), rows));
  SqlFragment update = sql(fmt::format("UPDATE {} SET ", quote_identifier(m_rule.table)));
  for (const ColumnMask& mask : m_rule.masks)
    update.append(fmt::format("{} = {}, ", quote_identifier(mask.column), mask_expression(mask)));
  update.append(done_marker()).append(" WHERE " + rows);
  return update;
}

}  // namespace retentiond::adapters::sqlite
