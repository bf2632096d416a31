#include "daemon/service_metrics.hpp"

#include "daemon/process_metrics.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

namespace retentiond {

void metric_family(std::string& text, std::string_view name, std::string_view type,
                   std::string_view help) {
  text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void ServiceMetrics::record_batch(const std::string& rule, std::chrono::nanoseconds took,
                                  std::int64_t rows) {
  const double seconds = std::chrono::duration<double>(took).count();
  const std::scoped_lock lock(m_mutex);
  m_rules[rule].rows_affected += rows;
  Histogram& histogram = m_rules[rule].batches;
  for (std::size_t i = 0; i < k_batch_buckets.size(); ++i)
    if (seconds <= k_batch_buckets[i]) {
      ++histogram.buckets[i];
      break;
    }
  ++histogram.count;
  histogram.sum += seconds;
}

void ServiceMetrics::record_run(const RuleOutcome& outcome, std::optional<Instant> last_success) {
  const std::scoped_lock lock(m_mutex);
  RuleMetrics& rule = m_rules[outcome.rule];
  rule.ran = true;
  ++rule.runs_by_result[outcome.result];
  // A run that failed before its census says nothing about what is due: keep the last count.
  if (outcome.counted) {
    rule.due_rows = outcome.counts.due;
    rule.backlog_runs = outcome.backlog_runs;
  }
  if (last_success)
    rule.last_success = last_success;
}

void ServiceMetrics::keep_only(const std::vector<std::string>& rules) {
  const std::scoped_lock lock(m_mutex);
  std::erase_if(m_rules, [&](const auto& entry) {
    return std::find(rules.begin(), rules.end(), entry.first) == rules.end();
  });
}

void ServiceMetrics::record_reload(bool ok, Instant when) {
  const std::scoped_lock lock(m_mutex);
  m_reload_ok = ok;
  if (ok)
    m_last_reload_success = when;
}

std::string ServiceMetrics::render() const {
  std::string text = render_recorded();
  // Outside the lock: reading /proc never holds up the scheduler's record_batch.
  append_process_metrics(text);
  return text;
}

std::string ServiceMetrics::render_recorded() const {
  const std::scoped_lock lock(m_mutex);
  std::string text;
  metric_family(
      text, "retentiond_rows_affected_total", "counter",
      "Rows deleted or anonymized (cascade children and linked files included) since start.");
  for (const auto& [id, rule] : m_rules)
    text +=
        fmt::format("retentiond_rows_affected_total{{rule=\"{}\"}} {}\n", id, rule.rows_affected);
  metric_family(text, "retentiond_runs_total", "counter", "Runs of a rule since start, by result.");
  for (const auto& [id, rule] : m_rules)
    for (const auto& [result, count] : rule.runs_by_result)
      text +=
          fmt::format("retentiond_runs_total{{rule=\"{}\",result=\"{}\"}} {}\n", id, result, count);
  metric_family(text, "retentiond_due_rows", "gauge",
                "Rows due when the last run of a rule started.");
  for (const auto& [id, rule] : m_rules)
    if (rule.ran)
      text += fmt::format("retentiond_due_rows{{rule=\"{}\"}} {}\n", id, rule.due_rows);
  metric_family(text, "retentiond_backlog_runs", "gauge",
                "Runs in a row that ended (max_runtime) with rows still due.");
  for (const auto& [id, rule] : m_rules)
    if (rule.ran)
      text += fmt::format("retentiond_backlog_runs{{rule=\"{}\"}} {}\n", id, rule.backlog_runs);
  metric_family(text, "retentiond_last_success_timestamp_seconds", "gauge",
                "Finish time of a rule's last successful run.");
  for (const auto& [id, rule] : m_rules)
    if (rule.last_success)
      text += fmt::format("retentiond_last_success_timestamp_seconds{{rule=\"{}\"}} {}\n", id,
                          to_unix_seconds(*rule.last_success));
  metric_family(text, "retentiond_batch_duration_seconds", "histogram",
                "Duration of a batch: its statements, audit entry and commit.");
  for (const auto& [id, rule] : m_rules) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < k_batch_buckets.size(); ++i) {
      cumulative += rule.batches.buckets[i];
      text += fmt::format("retentiond_batch_duration_seconds_bucket{{rule=\"{}\",le=\"{}\"}} {}\n",
                          id, k_batch_buckets[i], cumulative);
    }
    text += fmt::format("retentiond_batch_duration_seconds_bucket{{rule=\"{}\",le=\"+Inf\"}} {}\n",
                        id, rule.batches.count);
    text += fmt::format("retentiond_batch_duration_seconds_sum{{rule=\"{}\"}} {}\n", id,
                        rule.batches.sum);
    text += fmt::format("retentiond_batch_duration_seconds_count{{rule=\"{}\"}} {}\n", id,
                        rule.batches.count);
  }
  metric_family(text, "retentiond_config_last_reload_successful", "gauge",
                "Whether the last configuration (re)load succeeded (1) or was rejected (0).");
  text += fmt::format("retentiond_config_last_reload_successful {}\n", m_reload_ok ? 1 : 0);
  metric_family(text, "retentiond_config_last_reload_success_timestamp_seconds", "gauge",
                "When the configuration in use was loaded.");
  if (m_last_reload_success)
    text += fmt::format("retentiond_config_last_reload_success_timestamp_seconds {}\n",
                        to_unix_seconds(*m_last_reload_success));
  metric_family(text, "retentiond_build_info", "gauge",
                "The version of retentiond serving these metrics (always 1).");
  text += "retentiond_build_info{version=\"" RETENTIOND_VERSION "\"} 1\n";
  return text;
}

}  // namespace retentiond
