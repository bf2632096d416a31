#include "daemon/report.hpp"

#include "daemon/cutoff.hpp"
#include "daemon/engine.hpp"
#include "daemon/holds.hpp"
#include "daemon/json_writer.hpp"
#include "daemon/report_csv.hpp"
#include "daemon/report_html.hpp"
#include "daemon/report_markdown.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace retentiond {
namespace {

constexpr int k_runs_shown = 5;

// 20 buckets of a tenth of the retention period each, from twice the period to now, so the
// cutoff sits in the middle of the chart; plus "older" and "future".
std::vector<AgeBucket> age_buckets(adapters::Datastore& store, const adapters::Selection& selection,
                                   Instant as_of, Instant cutoff) {
  using std::chrono::milliseconds;
  constexpr int k_buckets = 20;
  milliseconds span = as_of - cutoff;
  span = std::max(span, milliseconds{std::chrono::hours{24}});
  const milliseconds width = span / (k_buckets / 2);
  std::vector<Instant> edges;
  for (int k = 0; k <= k_buckets; ++k)
    edges.push_back(as_of - 2 * span + k * width);
  const std::vector<std::int64_t> counts = store.count_by_anchor(selection, edges);
  std::vector<AgeBucket> buckets;
  buckets.push_back({as_of - edges.front(), std::nullopt, counts.front(), true});
  for (std::size_t i = 1; i < edges.size(); ++i)
    buckets.push_back({as_of - edges[i], as_of - edges[i - 1], counts[i], edges[i] <= cutoff});
  buckets.push_back({std::nullopt, milliseconds{0}, counts.back(), false});
  return buckets;
}

void assess(RuleReport& entry, const Rule& rule, const StateStore& state, Instant as_of) {
  const adapters::RuleCounts& counts = entry.counts;
  if (counts.wrong_scale > 0) {
    entry.status = "refused";
    entry.message = wrong_scale_problem(rule, counts.wrong_scale);
    return;
  }
  if (auto problem = mass_change_problem(rule, counts)) {
    entry.status = "refused";
    entry.message = *problem;
    return;
  }
  const auto success = state.last_success(rule.id);
  if (success && as_of - *success > 2 * rule.schedule.interval) {
    entry.status = "stale";
    entry.message = fmt::format("last success {} is older than twice the schedule ({})",
                                format_iso8601(*success), rule.schedule.text);
    return;
  }
  // Rows past their time that no run will change until someone looks: not "ok".
  if (counts.refused > 0) {
    entry.status = "refused";
    entry.message = fmt::format(
        "{} due {} refused and kept: an unsafe linked or listed file path (see retentiond audit "
        "log --rule {})",
        counts.refused, counts.refused == 1 ? "row is" : "rows are", rule.id);
    return;
  }
  entry.status = counts.due > 0 ? "due" : "ok";
}

// Whole seconds (rounded toward zero), or null.
void optional_seconds(JsonWriter& json, const std::optional<std::chrono::milliseconds>& duration) {
  if (duration)
    json.value(std::int64_t{std::chrono::duration_cast<std::chrono::seconds>(*duration).count()});
  else
    json.null();
}

}  // namespace

std::string report_target(const Rule& rule) {
  if (!rule.glob.empty())
    return fmt::format("{} (age from mtime)", rule.glob);
  if (rule.age_from)
    return fmt::format("{} (age from {}.{})", rule.table, rule.age_from->table,
                       rule.age_from->column);
  return rule.table;
}

std::string human_duration(std::chrono::milliseconds duration) {
  using namespace std::chrono;
  const auto total = duration_cast<seconds>(duration).count();
  const auto d = total / 86400, h = (total % 86400) / 3600, m = (total % 3600) / 60, s = total % 60;
  if (d > 0)
    return fmt::format("{}d {}h", d, h);
  if (h > 0)
    return fmt::format("{}h {}m", h, m);
  if (m > 0)
    return fmt::format("{}m {}s", m, s);
  return fmt::format("{}s", s);
}

std::vector<PolicyGroup> group_by_policy(const Report& report) {
  std::vector<PolicyGroup> groups;
  for (const RuleReport& entry : report.rules) {
    const std::string& policy = entry.rule->policy;
    auto group = std::find_if(groups.begin(), groups.end(),
                              [&](const PolicyGroup& g) { return g.policy == policy; });
    if (group == groups.end())
      group = groups.insert(groups.end(), PolicyGroup{policy, {}});
    group->rules.push_back(&entry);
  }
  return groups;
}

std::string render_report(const Report& report, std::string_view format) {
  if (format == "json")
    return report_json(report);
  if (format == "md")
    return report_markdown(report);
  if (format == "csv")
    return report_csv(report);
  if (format == "html")
    return report_html(report);
  throw std::invalid_argument(fmt::format("unknown report format '{}'", format));
}

Report build_report(const Config& config, const StateStore& state,
                    const adapters::AdapterSecrets& secrets, Instant as_of,
                    const std::vector<std::string>& only, bool with_ages) {
  Report report;
  report.generated_at = now_utc();
  report.as_of = as_of;
  report.config_digest = config.digest;
  report.audit = state.verify_audit();

  std::vector<Hold> holds = state.holds(false, as_of);
  adapters::DatastorePool stores(config, adapters::OpenMode::read_only, secrets);
  for (const Rule& rule : config.rules) {
    if (!only.empty() && std::find(only.begin(), only.end(), rule.id) == only.end())
      continue;
    RuleReport entry;
    entry.rule = &rule;
    entry.last_runs = state.last_runs(rule.id, k_runs_shown);
    if (rule.action == Action::keep) {
      entry.status = "keep";
      report.rules.push_back(std::move(entry));
      continue;
    }
    entry.cutoff = cutoff_for(as_of, rule.retain);
    try {
      adapters::Datastore& store = stores.get(rule.datastore);
      const adapters::SchemaCheck schema = store.check_schema(rule);
      if (!schema.errors.empty())
        throw std::runtime_error(fmt::format("{}", fmt::join(schema.errors, "; ")));
      const HeldSubjects held = held_subjects_of(rule, holds);
      adapters::Selection selection{rule, *entry.cutoff, as_of, held.subjects,
                                    stores.linked_files_of(rule)};
      entry.counts = store.count(selection);
      if (with_ages)
        entry.ages = age_buckets(store, selection, as_of, *entry.cutoff);
      if (held.suspended) {
        entry.counts.held += entry.counts.due;
        entry.counts.due = 0;
        entry.counts.oldest_due.reset();
        entry.message = "suspended by a hold on the whole rule";
      }
      if (entry.counts.oldest_due)
        entry.worst_overshoot = *entry.cutoff - *entry.counts.oldest_due;
      assess(entry, rule, state, as_of);
    } catch (const std::exception& error) {
      entry.status = "error";
      entry.message = error.what();
    }
    report.rules.push_back(std::move(entry));
  }
  return report;
}

std::string report_json(const Report& report) {
  JsonWriter json;
  json.begin_object();
  json.field("generated_at", format_iso8601(report.generated_at));
  json.field("as_of", format_iso8601(report.as_of));
  json.field("config_digest", report.config_digest);
  json.key("audit");
  json.begin_object();
  json.field("verified", report.audit.ok);
  json.field("entries", report.audit.entries);
  json.field("head_hash", report.audit.head_hash);
  if (!report.audit.ok)
    json.field("problem", report.audit.problem);
  json.end_object();
  json.key("rules");
  json.begin_array();
  for (const RuleReport& entry : report.rules) {
    const Rule& rule = *entry.rule;
    const adapters::RuleCounts& counts = entry.counts;
    json.begin_object();
    json.field("id", rule.id);
    json.field("description", rule.description);
    json.field("policy", rule.policy);
    json.field("datastore", rule.datastore);
    json.field("target", report_target(rule));
    json.field("action", to_string(rule.action));
    json.field("retain", rule.retain.to_string());
    json.key("cutoff");
    if (entry.cutoff)
      json.value(format_iso8601(*entry.cutoff));
    else
      json.null();
    const auto count = [&](std::string_view name, std::int64_t value) {
      json.key(name);
      if (entry.counted())
        json.value(value);
      else
        json.null();
    };
    count("due", counts.due);
    count("held", counts.held);
    count("undated", counts.undated);
    count("unreadable", counts.unreadable);
    count("refused", refused_rows(counts));
    count("future", counts.future);
    count("total", counts.total);
    json.key("oldest_due");
    if (counts.oldest_due)
      json.value(format_iso8601(*counts.oldest_due));
    else
      json.null();
    json.key("worst_overshoot_seconds");
    optional_seconds(json, entry.worst_overshoot);
    json.key("last_runs");
    json.begin_array();
    for (const RunRecord& run : entry.last_runs) {
      json.begin_object();
      json.field("time", run.started);
      json.field("result", run.result);
      json.field("rows", run.rows);
      json.end_object();
    }
    json.end_array();
    json.key("ages");
    json.begin_array();
    for (const AgeBucket& bucket : entry.ages) {
      json.begin_object();
      json.key("min_age_seconds");
      optional_seconds(json, bucket.min_age);
      json.key("max_age_seconds");
      optional_seconds(json, bucket.max_age);
      json.field("rows", bucket.rows);
      json.field("past_cutoff", bucket.past_cutoff);
      json.end_object();
    }
    json.end_array();
    json.field("status", entry.status);
    if (!entry.message.empty())
      json.field("message", entry.message);
    json.end_object();
  }
  json.end_array();
  json.end_object();
  return json.str() + "\n";
}

}  // namespace retentiond
