#include "daemon/report_csv.hpp"

#include "daemon/timestamp.hpp"

#include <spdlog/fmt/fmt.h>

#include <vector>

namespace retentiond {
namespace {

constexpr std::string_view k_columns[] = {"id",
                                          "description",
                                          "policy",
                                          "datastore",
                                          "target",
                                          "action",
                                          "retain",
                                          "cutoff",
                                          "due",
                                          "held",
                                          "undated",
                                          "unreadable",
                                          "refused",
                                          "future",
                                          "total",
                                          "oldest_due",
                                          "worst_overshoot_seconds",
                                          "last_run_time",
                                          "last_run_result",
                                          "last_run_rows",
                                          "status",
                                          "message",
                                          "config_digest",
                                          "audit_head_hash",
                                          "audit_verified"};

std::string instant_or_empty(const std::optional<Instant>& instant) {
  return instant ? format_iso8601(*instant) : std::string{};
}

void write_row(std::string& out, const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0)
      out += ',';
    out += csv_field(fields[i]);
  }
  out += "\r\n";
}

// One row per rule; the configuration and the audit chain the report speaks for are repeated
// on every row, so that each row stands on its own wherever it is copied.
std::vector<std::string> rule_row(const Report& report, const RuleReport& entry) {
  const Rule& rule = *entry.rule;
  const adapters::RuleCounts& c = entry.counts;
  const auto count = [&](std::int64_t value) {
    return entry.counted() ? std::to_string(value) : std::string{};
  };
  const RunRecord* last = entry.last_runs.empty() ? nullptr : &entry.last_runs.front();
  std::string overshoot;
  if (entry.worst_overshoot)
    overshoot = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(*entry.worst_overshoot).count());
  return {rule.id,
          rule.description,
          rule.policy,
          rule.datastore,
          report_target(rule),
          std::string{to_string(rule.action)},
          rule.retain.to_string(),
          instant_or_empty(entry.cutoff),
          count(c.due),
          count(c.held),
          count(c.undated),
          count(c.unreadable),
          count(refused_rows(c)),
          count(c.future),
          count(c.total),
          instant_or_empty(c.oldest_due),
          overshoot,
          last ? last->started : "",
          last ? last->result : "",
          last ? std::to_string(last->rows) : "",
          entry.status,
          entry.message,
          report.config_digest,
          report.audit.head_hash,
          report.audit.ok ? "true" : "false"};
}

}  // namespace

std::string csv_field(std::string_view text) {
  // A spreadsheet runs a cell that starts with = + - @ (or a tab or CR before one) as a
  // formula. Messages quote paths and values from the datastore, which users may have chosen:
  // a leading apostrophe makes such a cell plain text (OWASP's advice for CSV injection).
  std::string cell;
  if (!text.empty() && std::string_view{"=+-@\t\r"}.find(text.front()) != std::string_view::npos)
    cell = "'";
  cell += text;
  const bool quote = cell.find_first_of(",\"\r\n") != std::string::npos ||
                     (!cell.empty() && (cell.front() == ' ' || cell.back() == ' '));
  if (!quote)
    return cell;
  std::string out = "\"";
  for (const char c : cell) {
    if (c == '"')
      out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string report_csv(const Report& report) {
  std::string out;
  write_row(out, {std::begin(k_columns), std::end(k_columns)});
  for (const RuleReport& entry : report.rules)
    write_row(out, rule_row(report, entry));
  return out;
}

}  // namespace retentiond
