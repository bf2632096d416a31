#include "adapters/sql_common.hpp"

#include "daemon/timestamp.hpp"

#include <spdlog/fmt/fmt.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace retentiond::adapters {

std::string quote_identifier(std::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"')
      quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

std::vector<std::string> columns_named(const Rule& rule) {
  std::vector<std::string> columns;
  if (!rule.age_column.empty() && !rule.age_from)
    columns.push_back(rule.age_column);
  for (const MatchFilter& filter : rule.match)
    columns.push_back(filter.column);
  if (rule.subject_column)
    columns.push_back(*rule.subject_column);
  for (const ColumnMask& mask : rule.masks)
    columns.push_back(mask.column);
  if (rule.anonymized_column)
    columns.push_back(*rule.anonymized_column);
  if (rule.age_from)
    columns.push_back(rule.age_from->foreign_key);
  if (rule.files)
    columns.push_back(rule.files->path_column);
  return columns;
}

std::optional<std::string> ip_prefix(std::string_view address) {
  const std::string text{address};
  char out[INET6_ADDRSTRLEN] = {};
  unsigned char bytes[16] = {};
  if (::inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    bytes[3] = 0;
    return std::string{::inet_ntop(AF_INET, bytes, out, sizeof out)};
  }
  if (::inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    std::memset(bytes + 6, 0, 10);
    return std::string{::inet_ntop(AF_INET6, bytes, out, sizeof out)};
  }
  return std::nullopt;
}

std::optional<std::string> year_of(std::string_view date) {
  if (date.size() < 4 || !std::all_of(date.begin(), date.begin() + 4, [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      }))
    return std::nullopt;
  if (date.size() > 4 && !parse_iso8601(date))
    return std::nullopt;
  return std::string(date.substr(0, 4));
}

std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point from,
                                                     std::chrono::steady_clock::duration budget) {
  return budget == std::chrono::steady_clock::duration::max()
             ? std::chrono::steady_clock::time_point::max()
             : from + budget;
}

bool next_piece_passes(std::chrono::steady_clock::time_point started, std::int64_t size,
                       std::int64_t next, std::chrono::steady_clock::time_point deadline) {
  using std::chrono::steady_clock;
  const auto now = steady_clock::now();
  const auto next_takes = std::chrono::duration_cast<steady_clock::duration>(
      (now - started) * (static_cast<double>(next) / static_cast<double>(size)));
  return now + next_takes > deadline;
}

std::string run_key(const Selection& selection) {
  return selection.rule.id + "@" + format_iso8601(selection.cutoff);
}

std::string not_unique_cascade_key(const Rule& rule, const Cascade& cascade) {
  return fmt::format("cascade key {}.{} (of {}) is not unique: rows sharing a value would share "
                     "children, which could go with another row; make it the primary key or "
                     "add a unique index on it (CREATE UNIQUE INDEX ON {}({}))",
                     rule.table, cascade.key, cascade.table, rule.table, cascade.key);
}

std::string no_such_column(const std::string& table, const std::string& column,
                           const std::vector<std::string>& existing) {
  constexpr std::size_t k_listed = 12;
  const std::vector<std::string> listed(
      existing.begin(),
      existing.begin() + static_cast<std::ptrdiff_t>(std::min(existing.size(), k_listed)));
  return fmt::format("table '{}' has no column '{}' (it has {}{})", table, column,
                     fmt::join(listed, ", "), existing.size() > k_listed ? ", ..." : "");
}

std::string not_unique_parent_key(const ParentAnchor& parent) {
  return fmt::format("age_from key {}.{} is not unique: a row could have several parents and "
                     "several ages; make it the primary key or add a unique index on it (CREATE "
                     "UNIQUE INDEX ON {}({}))",
                     parent.table, parent.key, parent.table, parent.key);
}

std::string not_null_anchor_cleared(const Rule& rule) {
  return fmt::format("column '{}.{}' is NOT NULL: anonymizing without anonymized_column clears "
                     "the anchor to mark a row done, which this column refuses; set "
                     "anonymized_column (a column the engine fills when it anonymizes a row)",
                     rule.table, rule.age_column);
}

std::string no_index_on_linked_path(const Rule& rule) {
  return fmt::format("no index on {}.{}: each batch scans {} for rows that still name its files "
                     "(CREATE INDEX ON {}({}))",
                     rule.table, rule.files->path_column, rule.table, rule.table,
                     rule.files->path_column);
}

}  // namespace retentiond::adapters
