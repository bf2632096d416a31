#pragma once

#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/state_store.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond {

// Rows whose anchor age falls in [min_age, max_age) at the report's moment, for the age chart.
// No min_age: anchors in the future; no max_age: older than every bucket.
struct AgeBucket {
  std::optional<std::chrono::milliseconds> min_age;
  std::optional<std::chrono::milliseconds> max_age;
  std::int64_t rows = 0;
  bool past_cutoff = false;  // every anchor in it is older than the cutoff
};

// What the report says about one rule.
struct RuleReport {
  const Rule* rule = nullptr;
  std::string status;   // ok, due, stale, refused, error, keep
  std::string message;  // why, for refused and error
  adapters::RuleCounts counts;
  std::optional<Instant> cutoff;                             // none for keep rules
  std::optional<std::chrono::milliseconds> worst_overshoot;  // cutoff - oldest due anchor
  std::vector<RunRecord> last_runs;                          // newest first
  std::vector<AgeBucket> ages;  // oldest first: older, 20 buckets to twice retain, future

  // Keep rules and failed rules are not counted: their counts are absent (null, empty, a
  // dash), never a misleading zero.
  bool counted() const { return rule->action != Action::keep && status != "error"; }
};

// Everything `report` states, whatever the format.
struct Report {
  Instant generated_at;
  Instant as_of;  // the moment cutoffs are computed for (now, or --as-of)
  std::string config_digest;
  AuditVerification audit;
  std::vector<RuleReport> rules;
};

// Rows a rule leaves although they are due: unsafe linked paths, and anchors written in the
// other unit (which refuse the whole rule). The report's `refused`.
inline std::int64_t refused_rows(const adapters::RuleCounts& counts) {
  return counts.refused + counts.wrong_scale;
}

// Builds the report: opens every datastore read-only and the state read-only, so nothing
// changes anywhere. `only` restricts it to some rules (empty = all).
// `with_ages` fills RuleReport::ages, the age histogram the HTML chart draws: one more pass
// over every anchor, which the other formats do not need.
Report build_report(const Config& config, const StateStore& state,
                    const adapters::AdapterSecrets& secrets, Instant as_of,
                    const std::vector<std::string>& only, bool with_ages = true);

// The formats `report` writes: "html", "json", "md", "csv".
inline constexpr std::string_view k_report_formats[] = {"html", "json", "md", "csv"};

// The report in `format` (one of k_report_formats). Throws std::invalid_argument otherwise.
std::string render_report(const Report& report, std::string_view format);

// The machine form: {generated_at, as_of, config_digest, audit{...}, rules[...]} (SPEC 6 names),
// one object per rule with its counts, last runs and `ages` buckets; ends with a newline.
std::string report_json(const Report& report);

// Helpers shared by the renderers (report_markdown, report_csv, report_html).

// What a rule reads: its table, and the parent it measures age from: "event_logs (age from
// events.ended_at)".
std::string report_target(const Rule& rule);

// "3d 4h", "5h 2m", "2m 5s", "40s": a duration rounded down to its two largest units.
std::string human_duration(std::chrono::milliseconds duration);

// Rules that cite one policy clause (Rule::policy, verbatim), in report order.
struct PolicyGroup {
  std::string policy;  // empty when the rules cite none
  std::vector<const RuleReport*> rules;
};

// The report's rules grouped by policy clause, clauses in order of their first rule.
std::vector<PolicyGroup> group_by_policy(const Report& report);

}  // namespace retentiond
