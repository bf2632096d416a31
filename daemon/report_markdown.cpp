#include "daemon/report_markdown.hpp"

#include "daemon/timestamp.hpp"

#include <spdlog/fmt/fmt.h>

#include <cctype>

namespace retentiond {
namespace {

constexpr std::string_view k_none = "—";

// Names (ids, tables, datastores) as code; escaped text if a name could break the code span.
std::string code(std::string_view name) {
  if (name.empty() || name.find_first_of("`\r\n|") != std::string_view::npos)
    return markdown_escape(name);
  return fmt::format("`{}`", name);
}

std::string instant_or_none(const std::optional<Instant>& instant) {
  return instant ? format_iso8601(*instant) : std::string{k_none};
}

std::string overshoot_or_none(const RuleReport& entry) {
  return entry.worst_overshoot ? human_duration(*entry.worst_overshoot) : std::string{k_none};
}

// Error and refusal messages come from datastores and may hold anything.
std::string status_text(const RuleReport& entry) {
  std::string text = fmt::format("**{}**", entry.status);
  if (!entry.message.empty())
    text += " — " + markdown_escape(entry.message);
  return text;
}

void write_header(std::string& out, const Report& report) {
  out += "# Retention report\n\n";
  out += fmt::format("- Generated: {}\n", format_iso8601(report.generated_at));
  out += fmt::format("- Due as of: {}\n", format_iso8601(report.as_of));
  out += fmt::format("- Config digest: {}\n", code(report.config_digest));
  out += fmt::format("- Audit log: {} entries, head {}\n", report.audit.entries,
                     code(report.audit.head_hash));
  if (report.audit.ok)
    out += "- Audit chain: verified\n\n";
  else
    out +=
        fmt::format("- Audit chain: **BROKEN** — {}\n\n> **Warning:** the audit log's hash chain "
                    "does not verify; the enforcement history below cannot be trusted.\n\n",
                    markdown_escape(report.audit.problem));
}

void write_summary(std::string& out, const Report& report) {
  out += "## Summary\n\n";
  out += "| rule | status | action | retain | cutoff | due | held | undated | unreadable | refused "
         "| future | total | oldest due | overshoot |\n";
  out += "|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|\n";
  for (const RuleReport& entry : report.rules) {
    const Rule& rule = *entry.rule;
    const adapters::RuleCounts& c = entry.counts;
    const bool counted = entry.counted();
    const auto count = [&](std::int64_t n) {
      return counted ? std::to_string(n) : std::string{k_none};
    };
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                       code(rule.id), entry.status, to_string(rule.action), rule.retain.to_string(),
                       instant_or_none(entry.cutoff), count(c.due), count(c.held), count(c.undated),
                       count(c.unreadable), count(refused_rows(c)), count(c.future), count(c.total),
                       instant_or_none(c.oldest_due), overshoot_or_none(entry));
  }
  out += "\n";
}

void write_rule(std::string& out, const RuleReport& entry) {
  const Rule& rule = *entry.rule;
  const adapters::RuleCounts& c = entry.counts;
  out += fmt::format("### {}\n\n", code(rule.id));
  if (!rule.description.empty())
    out += markdown_escape(rule.description) + "\n\n";
  out += fmt::format("- Status: {}\n", status_text(entry));
  out += fmt::format("- Target: {} in datastore {}\n", code(report_target(rule)),
                     code(rule.datastore));
  out += fmt::format("- Action: {}, retain {}, schedule {}\n", to_string(rule.action),
                     rule.retain.to_string(), markdown_escape(rule.schedule.text));
  if (entry.cutoff)
    out += fmt::format("- Cutoff: {}\n", format_iso8601(*entry.cutoff));
  if (rule.action != Action::keep && entry.status == "error") {
    out += "- Rows: not counted (the rule failed)\n";
  } else if (rule.action != Action::keep) {
    out += fmt::format("- Rows: {} due, {} held, {} undated, {} unreadable, {} refused, {} future, "
                       "{} total\n",
                       c.due, c.held, c.undated, c.unreadable, refused_rows(c), c.future, c.total);
    if (c.oldest_due)
      out += fmt::format("- Oldest due: {} ({} past the cutoff)\n", format_iso8601(*c.oldest_due),
                         overshoot_or_none(entry));
  }
  if (entry.last_runs.empty()) {
    out += "- Last runs: none\n\n";
    return;
  }
  out += "\n| run started | result | rows |\n|---|---|--:|\n";
  for (const RunRecord& run : entry.last_runs)
    out += fmt::format("| {} | {} | {} |\n", markdown_escape(run.started),
                       markdown_escape(run.result), run.rows);
  out += "\n";
}

}  // namespace

std::string markdown_escape(std::string_view text) {
  const auto word = [&](std::size_t i) {
    return i < text.size() && std::isalnum(static_cast<unsigned char>(text[i])) != 0;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    switch (c) {
    case '_':
      // Inside a word (snake_case names) an underscore is never emphasis: keep it readable.
      if (!(i > 0 && word(i - 1) && word(i + 1)))
        out += '\\';
      out += c;
      break;
    case '\\':
    case '`':
    case '*':
    case '[':
    case ']':
    case '<':
    case '>':
    case '|':
    case '#':
    case '!':
    case '&':
      out += '\\';
      out += c;
      break;
    case '\r': break;
    case '\n': out += ' '; break;
    default: out += c;
    }
  }
  return out;
}

std::string report_markdown(const Report& report) {
  std::string out;
  write_header(out, report);
  write_summary(out, report);
  for (const PolicyGroup& group : group_by_policy(report)) {
    out += fmt::format("## Policy: {}\n\n",
                       group.policy.empty() ? "none cited" : markdown_escape(group.policy));
    for (const RuleReport* entry : group.rules)
      write_rule(out, *entry);
  }
  return out;
}

}  // namespace retentiond
