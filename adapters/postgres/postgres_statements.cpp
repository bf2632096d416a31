#include "adapters/postgres/postgres_statements.hpp"

#include "adapters/postgres/postgres_masks.hpp"

#include <spdlog/fmt/fmt.h>

#include <chrono>

namespace retentiond::adapters::postgres {
namespace {

// Anything at or above 10^11 is not a plausible Unix time in seconds (year 5138) and anything
// below it is not a plausible one in milliseconds (before 1973-03-03): the tell-tale of a
// column written in the other unit. The same threshold as the SQLite adapter's.
constexpr std::string_view k_scale_threshold = "100000000000";
// At or above 10^14 a Unix time in milliseconds is past year 5138 too: microseconds, which
// would otherwise count as future and never expire. The same as the SQLite adapter's.
constexpr std::string_view k_micros_threshold = "100000000000000";

// A decimal number, as unix_seconds and unix_millis text anchors are written.
constexpr std::string_view k_number_pattern = R"(^-{0,1}[0-9]+(\.[0-9]+){0,1}$)";

// Exactly the grammar of parse_iso8601 (daemon/timestamp.cpp): YYYY-MM-DD, then optionally 'T'
// or a space, HH:MM, optionally :SS and a fraction of 1 to 9 digits, and optionally Z or an
// offset +HH:MM / +HHMM. Groups: 1 year, 2 month, 3 day, 5 hour, 6 minute, 8 second,
// 10 fraction, 12 offset sign, 13 offset hours, 14 offset minutes.
constexpr std::string_view k_iso8601_pattern =
    R"(^([0-9]{4})-([0-9]{2})-([0-9]{2})([T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})(\.([0-9]{1,9})))"
    R"({0,1}){0,1}(Z|([+-])([0-9]{2}):{0,1}([0-9]{2})){0,1}){0,1}$)";

SqlFragment sql(std::string text, std::vector<SqlValue> values = {}) {
  return {std::move(text), std::move(values)};
}

std::string to_text(const MatchValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>)
          return v ? "1" : "0";  // as SQLite binds it; PostgreSQL reads '1' as true as well
        else if constexpr (std::is_same_v<T, std::string>)
          return v;
        else
          return fmt::format("{}", v);
      },
      value);
}

// Unix seconds as exact decimal text: "1717243199.999".
std::string decimal_seconds(std::int64_t millis) {
  const std::int64_t magnitude = millis < 0 ? -millis : millis;
  return fmt::format("{}{}.{:03}", millis < 0 ? "-" : "", magnitude / 1000, magnitude % 1000);
}

// The smallest whole second at or after `millis`: for an integer anchor a, a < x exactly when
// a < ceil(x), so comparisons stay plain integer ranges an index answers.
std::int64_t ceil_seconds(std::int64_t millis) {
  return millis >= 0 ? (millis + 999) / 1000 : -((-millis) / 1000);
}

std::string clamp_to_bigint(const std::string& numeric) {
  return fmt::format("least(greatest({}, -9223372036854775807), 9223372036854775807)::bigint",
                     numeric);
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

std::string SqlFragment::numbered() const {
  std::string out;
  out.reserve(text.size() + values.size() * 2);
  int index = 0;
  for (char c : text) {
    if (c == '?')
      out += fmt::format("${}", ++index);
    else
      out += c;
  }
  return out;
}

std::string tid_array(const std::vector<std::string>& tids) {
  std::string literal = "{";
  for (std::size_t i = 0; i < tids.size(); ++i)
    literal += (i == 0 ? "\"" : ",\"") + tids[i] + '"';
  return literal + '}';
}

std::string text_array(const std::vector<SqlValue>& texts) {
  std::string literal = "{";
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (i > 0)
      literal += ',';
    if (!texts[i]) {
      literal += "NULL";
      continue;
    }
    literal += '"';
    for (const char c : *texts[i]) {
      if (c == '"' || c == '\\')
        literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  return literal + '}';
}

bool is_text_type(std::string_view type_name) {
  return type_name == "text" || type_name == "varchar" || type_name == "bpchar";
}

std::expected<AnchorKind, std::string> anchor_kind(AgeFormat format, std::string_view type_name) {
  const bool timestamp_type =
      type_name == "timestamptz" || type_name == "timestamp" || type_name == "date";
  switch (format) {
  case AgeFormat::native:
    if (type_name == "timestamptz")
      return AnchorKind::timestamptz;
    if (type_name == "timestamp")
      return AnchorKind::timestamp;
    if (type_name == "date")
      return AnchorKind::date;
    return std::unexpected(fmt::format("has type {}: without age_format the anchor must be a "
                                       "timestamp, timestamptz or date column (set age_format "
                                       "to unix_seconds, unix_millis or iso8601)",
                                       type_name));
  case AgeFormat::unix_seconds:
  case AgeFormat::unix_millis:
    if (type_name == "int2" || type_name == "int4" || type_name == "int8")
      return AnchorKind::integer;
    if (type_name == "float4" || type_name == "float8")
      return AnchorKind::floating;
    if (type_name == "numeric")
      return AnchorKind::numeric;
    if (is_text_type(type_name))
      return AnchorKind::number_text;
    break;
  case AgeFormat::iso8601:
    if (is_text_type(type_name))
      return AnchorKind::iso_text;
    break;
  }
  if (timestamp_type)
    return std::unexpected(fmt::format("has type {}: remove age_format = \"{}\" (timestamp, "
                                       "timestamptz and date columns are read natively)",
                                       type_name, to_string(format)));
  return std::unexpected(fmt::format(
      "has type {}, which age_format = \"{}\" cannot read ({})", type_name, to_string(format),
      format == AgeFormat::iso8601 ? "use a text column"
                                   : "use an integer, numeric, floating-point or text "
                                     "column"));
}

RuleStatements::RuleStatements(const Selection& selection, AnchorKind kind, HeldValues held)
    : m_selection(selection), m_rule(selection.rule), m_kind(kind), m_held(std::move(held)) {
  m_anchor = m_rule.age_from ? "p." + quote_identifier(m_rule.age_from->column)
                             : "t." + quote_identifier(m_rule.age_column);
}

bool RuleStatements::numeric_anchor() const {
  return m_kind == AnchorKind::integer || m_kind == AnchorKind::floating ||
         m_kind == AnchorKind::numeric || m_kind == AnchorKind::number_text;
}

bool RuleStatements::native_anchor() const {
  return m_kind == AnchorKind::timestamptz || m_kind == AnchorKind::timestamp ||
         m_kind == AnchorKind::date;
}

bool RuleStatements::index_comparable() const {
  return m_kind != AnchorKind::number_text && m_kind != AnchorKind::iso_text;
}

SqlFragment RuleStatements::from_clause() const {
  SqlFragment from = sql(fmt::format(" FROM {} AS t", quote_identifier(m_rule.table)));
  if (const auto& parent = m_rule.age_from)
    from.append(fmt::format(" LEFT JOIN {} AS p ON p.{} = t.{}", quote_identifier(parent->table),
                            quote_identifier(parent->key), quote_identifier(parent->foreign_key)));
  return from;
}

SqlFragment RuleStatements::matched() const {
  // Values are bound untyped: PostgreSQL reads each as the type of the column it is compared
  // with.
  SqlFragment where = sql("true");
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
      where.values.emplace_back(to_text(value));
  }
  if (m_rule.anonymized_column)
    where.append(fmt::format(" AND t.{} IS NULL", quote_identifier(*m_rule.anonymized_column)));
  return where;
}

SqlFragment RuleStatements::number() const {
  if (m_kind != AnchorKind::number_text)
    return sql(m_anchor);
  // Cast only what the pattern accepted: a failing cast would abort the whole transaction.
  return sql(fmt::format("(CASE WHEN {0} ~ ? THEN {0}::numeric END)", m_anchor),
             {std::string{k_number_pattern}});
}

SqlFragment RuleStatements::iso_millis() const {
  // The pattern pins the shape; the ranges are checked before make_date (which would fail on a
  // month 13) runs, and a day that does not exist (2024-02-30) is found by adding it to the
  // first of its month and seeing the month change. 400 years (146097 days, a whole Gregorian
  // cycle) are added and taken away again because PostgreSQL has no year 0, which ISO 8601
  // (and parse_iso8601) allow. Every cast reads digits the pattern has already accepted.
  return sql(
      fmt::format("(SELECT CASE WHEN r.d IS NULL OR extract(month FROM r.d) <> r.m[2]::int THEN "
                  "NULL ELSE (r.d - DATE '1970-01-01' - 146097)::bigint * 86400000 + "
                  "coalesce(r.m[5]::bigint, 0) * 3600000 + coalesce(r.m[6]::bigint, 0) * 60000 + "
                  "coalesce(r.m[8]::bigint, 0) * 1000 + "
                  "coalesce(substr(r.m[10] || '00', 1, 3)::bigint, 0) - "
                  "(CASE WHEN r.m[12] = '-' THEN -1 ELSE 1 END) * "
                  "(coalesce(r.m[13]::bigint, 0) * 60 + coalesce(r.m[14]::bigint, 0)) * 60000 END "
                  "FROM (SELECT s.m, CASE WHEN s.m[2]::int BETWEEN 1 AND 12 AND "
                  "coalesce(s.m[5]::int, 0) <= 23 AND coalesce(s.m[6]::int, 0) <= 59 AND "
                  "coalesce(s.m[8]::int, 0) <= 59 AND coalesce(s.m[13]::int, 0) <= 23 AND "
                  "coalesce(s.m[14]::int, 0) <= 59 THEN make_date(s.m[1]::int + 400, "
                  "s.m[2]::int, 1) + (s.m[3]::int - 1) END AS d "
                  "FROM (SELECT regexp_match({}, ?) AS m) AS s) AS r)",
                  m_anchor),
      {std::string{k_iso8601_pattern}});
}

SqlFragment RuleStatements::readable() const {
  const std::string& a = m_anchor;
  switch (m_kind) {
  case AnchorKind::timestamptz:
  case AnchorKind::timestamp:
  case AnchorKind::date: return sql(fmt::format("isfinite({})", a));
  case AnchorKind::integer: return sql(fmt::format("({} IS NOT NULL)", a));
  case AnchorKind::floating:
  case AnchorKind::numeric:
    // NaN sorts above 'Infinity' in PostgreSQL: the upper bound excludes it as well.
    return sql(fmt::format("({0} > '-Infinity' AND {0} < 'Infinity')", a));
  case AnchorKind::number_text:
    return sql(fmt::format("({} ~ ?)", a), {std::string{k_number_pattern}});
  case AnchorKind::iso_text: return sql("(").append(iso_millis()).append(" IS NOT NULL)");
  }
  return sql("false");
}

SqlFragment RuleStatements::value_of(Instant instant) const {
  const std::int64_t millis = to_unix_millis(instant);
  const bool seconds = m_rule.age_format == AgeFormat::unix_seconds;
  switch (m_kind) {
  case AnchorKind::timestamptz: return sql("?::timestamptz", {format_iso8601(instant)});
  case AnchorKind::timestamp:
  case AnchorKind::date:
    // Timestamps without a time zone are read as UTC.
    return sql("(?::timestamptz AT TIME ZONE 'UTC')", {format_iso8601(instant)});
  case AnchorKind::integer:
    return sql("?::bigint", {std::to_string(seconds ? ceil_seconds(millis) : millis)});
  case AnchorKind::floating:
    return sql("?::float8", {seconds ? decimal_seconds(millis) : std::to_string(millis)});
  case AnchorKind::numeric:
  case AnchorKind::number_text:
    return sql("?::numeric", {seconds ? decimal_seconds(millis) : std::to_string(millis)});
  case AnchorKind::iso_text: return sql("?::bigint", {std::to_string(millis)});
  }
  return sql("NULL");
}

// Integer and native anchors compare as plain ranges that an index on the anchor answers;
// text anchors are read row by row.
SqlFragment RuleStatements::before(Instant instant) const {
  const std::string& a = m_anchor;
  switch (m_kind) {
  case AnchorKind::timestamptz:
  case AnchorKind::timestamp:
  case AnchorKind::date:
    return sql(fmt::format("(isfinite({0}) AND {0} < ", a)).append(value_of(instant)).append(")");
  case AnchorKind::integer: return sql("(" + a + " < ").append(value_of(instant)).append(")");
  case AnchorKind::floating:
  case AnchorKind::numeric:
    return sql(fmt::format("({0} > '-Infinity' AND {0} < ", a))
        .append(value_of(instant))
        .append(")");
  case AnchorKind::number_text:
    return sql("(").append(number()).append(" < ").append(value_of(instant)).append(")");
  case AnchorKind::iso_text:
    return sql("(").append(iso_millis()).append(" < ").append(value_of(instant)).append(")");
  }
  return sql("false");
}

SqlFragment RuleStatements::at_or_after(Instant instant) const {
  const std::string& a = m_anchor;
  switch (m_kind) {
  case AnchorKind::timestamptz:
  case AnchorKind::timestamp:
  case AnchorKind::date:
    return sql(fmt::format("(isfinite({0}) AND {0} >= ", a)).append(value_of(instant)).append(")");
  case AnchorKind::integer: return sql("(" + a + " >= ").append(value_of(instant)).append(")");
  case AnchorKind::floating:
  case AnchorKind::numeric:
    return sql(fmt::format("({0} < 'Infinity' AND {0} >= ", a))
        .append(value_of(instant))
        .append(")");
  case AnchorKind::number_text:
    return sql("(").append(number()).append(" >= ").append(value_of(instant)).append(")");
  case AnchorKind::iso_text:
    return sql("(").append(iso_millis()).append(" >= ").append(value_of(instant)).append(")");
  }
  return sql("false");
}

SqlFragment RuleStatements::due() const {
  SqlFragment due = sql("(").append(before(m_selection.cutoff));
  // Never select a value written in the other unit (see k_scale_threshold).
  if (m_rule.age_format == AgeFormat::unix_seconds)
    due.append(" AND ").append(number()).append(fmt::format(" < {}", k_scale_threshold));
  else if (m_rule.age_format == AgeFormat::unix_millis)
    due.append(" AND ").append(number()).append(fmt::format(" >= {}", k_scale_threshold));
  return due.append(")");
}

SqlFragment RuleStatements::held() const {
  if (!m_rule.subject_column || m_held.values.empty())
    return sql("false");
  std::vector<SqlValue> values(m_held.values.begin(), m_held.values.end());
  const std::string subject = "t." + quote_identifier(*m_rule.subject_column);
  // The type comes from the catalog (format_type quotes what needs quoting), never from the
  // rule. A NULL subject is never held.
  if (!m_held.type.empty())
    return sql(fmt::format("({0} IS NOT NULL AND {0} = ANY(?::{1}[]))", subject, m_held.type),
               {text_array(values)});
  return sql(fmt::format("({0} IS NOT NULL AND {0}::text = ANY(?::text[]))", subject),
             {text_array(values)});
}

SqlFragment RuleStatements::future() const {
  if (native_anchor())
    return sql(fmt::format("(isfinite({0}) AND {0} > ", m_anchor))
        .append(value_of(m_selection.now))
        .append(")");
  // Later than now: at or after now + 1 ms, as the SQLite adapter counts. A value in the other
  // unit is counted as wrong_scale, not as future.
  SqlFragment future = at_or_after(m_selection.now + std::chrono::milliseconds{1});
  if (m_rule.age_format == AgeFormat::unix_seconds)
    future.append(" AND ").append(number()).append(fmt::format(" < {}", k_scale_threshold));
  else if (m_rule.age_format == AgeFormat::unix_millis)
    future.append(" AND ").append(number()).append(fmt::format(" < {}", k_micros_threshold));
  return sql("(").append(future).append(")");
}

SqlFragment RuleStatements::wrong_scale() const {
  if (m_rule.age_format == AgeFormat::unix_seconds)
    return sql("(")
        .append(readable())
        .append(" AND ")
        .append(number())
        .append(fmt::format(" >= {})", k_scale_threshold));
  if (m_rule.age_format == AgeFormat::unix_millis)
    return sql("(")
        .append(readable())
        .append(" AND (")
        .append(number())
        .append(fmt::format(" < {} OR ", k_scale_threshold))
        .append(number())
        .append(fmt::format(" >= {}))", k_micros_threshold));
  return sql("false");
}

SqlFragment RuleStatements::anchor_millis() const {
  switch (m_kind) {
  case AnchorKind::timestamptz:
  case AnchorKind::timestamp:
  case AnchorKind::date:
    return sql(fmt::format("floor(extract(epoch FROM {}) * 1000)::bigint", m_anchor));
  case AnchorKind::iso_text: return iso_millis();
  default: break;
  }
  SqlFragment number_text = number();
  const std::string scaled = m_rule.age_format == AgeFormat::unix_seconds
                                 ? fmt::format("trunc({}::numeric * 1000)", number_text.text)
                                 : fmt::format("trunc({}::numeric)", number_text.text);
  return sql(clamp_to_bigint(scaled), number_text.values);
}

SqlFragment RuleStatements::census() const {
  // Each condition once per row in the inner query; the outer one counts. The table's own
  // count is a subquery: a parent that several rows share must not count twice.
  SqlFragment inner = sql("SELECT coalesce(").append(matched()).append(", false) AS m, ");
  inner.append("coalesce(").append(due()).append(", false) AS d, ");
  inner.append("coalesce(").append(held()).append(", false) AS h, ");
  inner.append(m_anchor + " IS NULL AS n, ");
  inner.append("coalesce(").append(readable()).append(", false) AS r, ");
  inner.append("coalesce(").append(future()).append(", false) AS f, ");
  inner.append("coalesce(").append(wrong_scale()).append(", false) AS w, ");
  inner.append("CASE WHEN ").append(due()).append(" THEN ").append(anchor_millis());
  inner.append(" END AS ms").append(from_clause());
  return sql(fmt::format("SELECT (SELECT count(*) FROM {}), ", quote_identifier(m_rule.table)))
      .append("count(*) FILTER (WHERE c.m), count(*) FILTER (WHERE c.m AND c.d), "
              "count(*) FILTER (WHERE c.m AND c.d AND c.h), count(*) FILTER (WHERE c.m AND c.n), "
              "count(*) FILTER (WHERE c.m AND NOT c.n AND NOT c.r), "
              "count(*) FILTER (WHERE c.m AND c.f), count(*) FILTER (WHERE c.m AND c.w), "
              "min(c.ms) FILTER (WHERE c.m AND c.d AND NOT c.h) FROM (")
      .append(inner)
      .append(") AS c");
}

SqlFragment RuleStatements::count_by_anchor(const std::vector<Instant>& edges) const {
  SqlFragment query = sql("SELECT ");
  std::optional<Instant> from;
  for (std::size_t i = 0; i <= edges.size(); ++i) {
    if (i > 0)
      query.append(", ");
    query.append("count(*) FILTER (WHERE true");
    if (from)
      query.append(" AND ").append(at_or_after(*from));
    if (i < edges.size()) {
      query.append(" AND ").append(before(edges[i]));
      from = edges[i];
    }
    query.append(")");
  }
  return query.append(from_clause())
      .append(" WHERE ")
      .append(matched())
      .append(" AND ")
      .append(readable());
}

SqlFragment RuleStatements::due_paths() const {
  SqlFragment query =
      sql(fmt::format("SELECT t.{}::text, ", quote_identifier(m_rule.files->path_column)));
  query.append(anchor_millis()).append(from_clause()).append(" WHERE ").append(matched());
  query.append(" AND ").append(due()).append(" AND NOT ").append(held());
  return query.append(" ORDER BY 2");
}

std::vector<ColumnMask> RuleStatements::client_masks() const {
  std::vector<ColumnMask> masks;
  for (const ColumnMask& mask : m_rule.masks)
    if (is_client_mask(mask.mask))
      masks.push_back(mask);
  return masks;
}

SqlFragment RuleStatements::lock_batch(const std::optional<Range>& range, std::int64_t limit,
                                       const std::string& refused,
                                       const std::optional<std::string>& key_column,
                                       bool keys_kept) const {
  SqlFragment query = sql("SELECT t.ctid::text, ");
  query.append(key_column ? fmt::format("t.{}::text", quote_identifier(*key_column))
                          : "NULL::text");
  if (m_rule.files)
    query.append(fmt::format(", t.{}::text", quote_identifier(m_rule.files->path_column)));
  if (m_rule.action == Action::anonymize)
    for (const ColumnMask& mask : client_masks())
      query.append(fmt::format(", t.{}::text", quote_identifier(mask.column)));
  query.append(from_clause()).append(" WHERE ");
  if (range)
    query.append(sql("t.ctid >= ?::tid AND t.ctid < ?::tid AND ", {range->first, range->last}));
  query.append(matched()).append(" AND ").append(due()).append(" AND NOT ").append(held());
  if (m_rule.files)
    query.append(sql(" AND NOT (t.ctid = ANY(?::tid[]))", {refused}));
  // In a range, ctid order lets the next batch start after this one's last row; otherwise the
  // anchor's order keeps the planner on its index.
  query.append(range ? " ORDER BY t.ctid" : " ORDER BY " + m_anchor);
  // Anonymizing keeps the row, and when it changes no column of a unique index, its key: NO KEY
  // UPDATE then lets the application's foreign-key checks (an INSERT of a child row) through
  // while the batch runs. Otherwise the UPDATE needs the stronger lock, which SKIP LOCKED must
  // have taken, or it would wait for rows the application holds.
  const bool no_key = m_rule.action == Action::anonymize && keys_kept;
  query.append(sql(
      fmt::format(" LIMIT ?::bigint FOR {} OF t SKIP LOCKED", no_key ? "NO KEY UPDATE" : "UPDATE"),
      {std::to_string(limit)}));
  return query;
}

SqlFragment RuleStatements::shared_paths(const std::string& paths, const std::string& tids) const {
  // One lookup per (distinct) path, which stops at the first row outside the batch: a path many
  // rows share (a placeholder) costs about what a path of its own does.
  return sql(fmt::format("SELECT p FROM unnest(?::text[]) AS p WHERE EXISTS (SELECT 1 FROM {1} "
                         "AS o WHERE o.{0}::text = p AND NOT (o.ctid = ANY(?::tid[])))",
                         quote_identifier(m_rule.files->path_column),
                         quote_identifier(m_rule.table)),
             {paths, tids});
}

SqlFragment RuleStatements::delete_children(const Cascade& cascade, const std::string& tids) const {
  return sql(fmt::format("DELETE FROM {} WHERE {} IN (SELECT t.{} FROM {} AS t WHERE t.ctid = "
                         "ANY(?::tid[]))",
                         quote_identifier(cascade.table), quote_identifier(cascade.foreign_key),
                         quote_identifier(cascade.key), quote_identifier(m_rule.table)),
             {tids});
}

SqlFragment RuleStatements::delete_rows(const std::string& tids) const {
  return sql(fmt::format("DELETE FROM {} AS t WHERE t.ctid = ANY(?::tid[])",
                         quote_identifier(m_rule.table)),
             {tids});
}

SqlFragment RuleStatements::server_masks() const {
  SqlFragment set;
  for (const ColumnMask& mask : m_rule.masks) {
    const std::string column = quote_identifier(mask.column);
    if (mask.mask == Mask::null)
      set.append(column + " = NULL, ");
    else if (mask.mask == Mask::redact)
      set.append(
          fmt::format("{0} = CASE WHEN t.{0} IS NULL THEN NULL ELSE '[redacted]' END, ", column));
  }
  return set;
}

SqlFragment RuleStatements::done_marker() const {
  if (!m_rule.anonymized_column)
    return sql(fmt::format("{} = NULL", quote_identifier(m_rule.age_column)));
  SqlFragment marker = sql(fmt::format("{} = ?", quote_identifier(*m_rule.anonymized_column)));
  switch (m_rule.age_format) {
  case AgeFormat::unix_seconds:
    marker.values.emplace_back(std::to_string(to_unix_seconds(m_selection.now)));
    break;
  case AgeFormat::unix_millis:
    marker.values.emplace_back(std::to_string(to_unix_millis(m_selection.now)));
    break;
  default: marker.values.emplace_back(format_iso8601(m_selection.now)); break;
  }
  return marker;
}

SqlFragment RuleStatements::anonymize_rows(const std::vector<std::string>& tids,
                                           const std::vector<std::vector<SqlValue>>& masked) const {
  SqlFragment update = sql(fmt::format("UPDATE {} AS t SET ", quote_identifier(m_rule.table)));
  const std::vector<ColumnMask> masks = client_masks();
  if (masks.empty())
    return update.append(server_masks())
        .append(done_marker())
        .append(sql(" WHERE t.ctid = ANY(?::tid[])", {tid_array(tids)}));
  // One row of values per row to change, joined on its address (a TID Scan per row).
  SqlFragment values = sql(" FROM unnest(?::tid[]", {tid_array(tids)});
  std::string names = "row_id";
  for (std::size_t m = 0; m < masks.size(); ++m) {
    update.append(fmt::format("{} = v.m{}, ", quote_identifier(masks[m].column), m));
    values.append(sql(", ?::text[]", {text_array(masked.at(m))}));
    names += fmt::format(", m{}", m);
  }
  return update.append(server_masks())
      .append(done_marker())
      .append(values)
      .append(fmt::format(") AS v({}) WHERE t.ctid = v.row_id", names));
}

}  // namespace retentiond::adapters::postgres
