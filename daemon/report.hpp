#pragma once

#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/state_store.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace retentiond {

// What the report says about one rule.
struct RuleReport {
  const Rule* rule = nullptr;
  std::string status;  // ok, due, stale, refused, error, keep
  std::string message; // why, for refused and error
  adapters::RuleCounts counts;
  std::optional<Instant> cutoff;  // none for keep rules
  std::optional<std::chrono::milliseconds> worst_overshoot;  // cutoff - oldest due anchor
  std::vector<RunRecord> last_runs;  // newest first
};

struct Report {
  Instant generated_at;
  Instant as_of;  // the moment cutoffs are computed for (now, or --as-of)
  std::string config_digest;
  AuditVerification audit;
  std::vector<RuleReport> rules;
};

// Builds the report: opens every datastore read-only and the state read-only, so nothing
// changes anywhere. `only` restricts it to some rules (empty = all).
Report build_report(const Config& config, const StateStore& state,
                    const adapters::AdapterSecrets& secrets, Instant as_of,
                    const std::vector<std::string>& only);

// The machine form: {generated_at, as_of, config_digest, audit{...}, rules[...]} (SPEC 6 names).
std::string report_json(const Report& report);

// A Markdown document for people: summary table, then one line per rule of detail.
std::string report_markdown(const Report& report);

} // namespace retentiond
