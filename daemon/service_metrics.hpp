#pragma once

#include "daemon/engine.hpp"
#include "daemon/timestamp.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond {

// Appends the HELP and TYPE lines that start a metric family in the Prometheus text format.
void metric_family(std::string& text, std::string_view name, std::string_view type,
                   std::string_view help);

// What `run` exports on metrics_listen, in the Prometheus text format. Written by the scheduler
// thread, read by the metrics server's thread: every member function locks.
class ServiceMetrics {
public:
  // Bucket upper bounds (seconds) of retentiond_batch_duration_seconds: around the 50 ms default
  // batch_time.
  static constexpr std::array<double, 9> k_batch_buckets{0.005, 0.01, 0.025, 0.05, 0.075,
                                                         0.1,   0.25, 0.5,   1.0};

  // A committed batch: its duration, and the rows it changed (counted as it commits, so a run
  // that a restart cuts short still shows them).
  void record_batch(const std::string& rule, std::chrono::nanoseconds took, std::int64_t rows);
  void record_run(const RuleOutcome& outcome, std::optional<Instant> last_success);
  void record_reload(bool ok, Instant when);
  // Drops the series of rules a reload removed.
  void keep_only(const std::vector<std::string>& rules);

  // The exposition text, every metric family with its HELP and TYPE, the process metrics last.
  std::string render() const;

private:
  // The families recorded here, under the lock.
  std::string render_recorded() const;

  struct Histogram {
    std::array<std::uint64_t, k_batch_buckets.size()> buckets{};  // not cumulative here
    std::uint64_t count = 0;
    double sum = 0;
  };
  struct RuleMetrics {
    bool ran = false;  // a run finished: the per-run gauges below mean something
    std::int64_t rows_affected = 0;
    std::map<std::string, std::uint64_t> runs_by_result;
    std::int64_t due_rows = 0;
    int backlog_runs = 0;
    std::optional<Instant> last_success;
    Histogram batches;
  };

  mutable std::mutex m_mutex;
  std::map<std::string, RuleMetrics> m_rules;
  bool m_reload_ok = true;
  std::optional<Instant> m_last_reload_success;
};

}  // namespace retentiond
