// What `run` exports for Prometheus: exact exposition text for counters, gauges and histograms.
#include "daemon/service_metrics.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fcntl.h>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using retentiond::RuleOutcome;
using retentiond::ServiceMetrics;
using retentiond::test::contains;

namespace {

RuleOutcome outcome(const std::string& rule, const std::string& result, std::int64_t rows,
                    std::int64_t due, bool counted) {
  RuleOutcome o;
  o.rule = rule;
  o.result = result;
  o.rows = rows;
  o.counts.due = due;
  o.counted = counted;
  return o;
}

}  // namespace

TEST_CASE("service metrics: batch durations are a cumulative histogram") {
  ServiceMetrics metrics;
  metrics.record_batch("logs", 3ms, 10);
  metrics.record_batch("logs", 30ms, 100);
  metrics.record_batch("logs", 30ms, 100);
  metrics.record_batch("logs", 2s, 5);
  const std::string text = metrics.render();
  CHECK(contains(text, "# TYPE retentiond_batch_duration_seconds histogram\n"));
  CHECK(contains(text, "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.005\"} 1\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.01\"} 1\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.025\"} 1\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.05\"} 3\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.075\"} 3\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.1\"} 3\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.25\"} 3\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"0.5\"} 3\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"1\"} 3\n"
                       "retentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"+Inf\"} 4\n"
                       "retentiond_batch_duration_seconds_sum{rule=\"logs\"} 2.063\n"
                       "retentiond_batch_duration_seconds_count{rule=\"logs\"} 4\n"));
  // Rows count as their batches commit, before the run ends; no per-run gauges yet.
  CHECK(contains(text, "\nretentiond_rows_affected_total{rule=\"logs\"} 215\n"));
  CHECK_FALSE(contains(text, "retentiond_due_rows{"));
}

TEST_CASE("service metrics: runs count by result; a run without a census keeps the last count") {
  ServiceMetrics metrics;
  metrics.record_run(outcome("logs", "ok", 7, 7, true), std::nullopt);
  metrics.record_run(outcome("logs", "partial", 5, 20, true), std::nullopt);
  metrics.record_run(outcome("logs", "error", 0, 0, false), std::nullopt);
  const std::string text = metrics.render();
  CHECK(contains(text, "# TYPE retentiond_runs_total counter\n"
                       "retentiond_runs_total{rule=\"logs\",result=\"error\"} 1\n"
                       "retentiond_runs_total{rule=\"logs\",result=\"ok\"} 1\n"
                       "retentiond_runs_total{rule=\"logs\",result=\"partial\"} 1\n"));
  // Rows are counted by their batches (record_batch), not again when the run ends.
  CHECK(contains(text, "\nretentiond_rows_affected_total{rule=\"logs\"} 0\n"));
  CHECK(contains(text, "\nretentiond_due_rows{rule=\"logs\"} 20\n"));
}

TEST_CASE("service metrics: reload status, and rules a reload removed disappear") {
  ServiceMetrics metrics;
  metrics.record_reload(true, retentiond::from_unix_seconds(1'795'000'000));
  metrics.record_reload(false, retentiond::from_unix_seconds(1'795'000'100));
  metrics.record_run(outcome("logs", "ok", 1, 1, true), std::nullopt);
  metrics.record_run(outcome("cookies", "ok", 1, 1, true), std::nullopt);
  metrics.keep_only({"cookies"});
  const std::string text = metrics.render();
  CHECK(contains(text, "\nretentiond_config_last_reload_successful 0\n"));
  CHECK(contains(text, "\nretentiond_config_last_reload_success_timestamp_seconds 1795000000\n"));
  CHECK(contains(text, "{rule=\"cookies\"}"));
  CHECK_FALSE(contains(text, "{rule=\"logs\""));
}

// The value of the unlabelled series `name` in `text`, which must have its TYPE line.
double series_value(const std::string& text, const std::string& name) {
  const std::string line_start = "\n" + name + " ";
  const std::size_t at = text.find(line_start);
  REQUIRE_MESSAGE(at != std::string::npos, name);
  CHECK(contains(text, "# TYPE " + name + " "));
  return std::stod(text.substr(at + line_start.size()));
}

// Open descriptors of this process, counted without /proc: the numbers fcntl accepts.
double descriptors_open() {
  struct rlimit limit {};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  double open = 0;
  for (rlim_t fd = 0; fd < std::min<rlim_t>(limit.rlim_cur, 1 << 20); ++fd)
    open += ::fcntl(static_cast<int>(fd), F_GETFD) != -1 ? 1 : 0;
  return open;
}

TEST_CASE("service metrics: the version, and the process metrics of Prometheus client libraries") {
  // Some CPU time for process_cpu_seconds_total to count (it counts in ticks of 10 ms).
  const std::clock_t spin_until = std::clock() + CLOCKS_PER_SEC / 20;
  while (std::clock() < spin_until) {
  }
  const std::string text = ServiceMetrics().render();
  CHECK(contains(text, "# TYPE retentiond_build_info gauge\n"
                       "retentiond_build_info{version=\"" RETENTIOND_VERSION "\"} 1\n"));
  CHECK(contains(text, "# TYPE process_cpu_seconds_total counter\n"));
  CHECK(series_value(text, "process_cpu_seconds_total") > 0);
  CHECK(series_value(text, "process_resident_memory_bytes") > 1e6);
  CHECK(series_value(text, "process_virtual_memory_bytes") >
        series_value(text, "process_resident_memory_bytes"));
  struct rlimit limit {};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  CHECK(series_value(text, "process_max_fds") == static_cast<double>(limit.rlim_cur));
  // This test process started within the last day, before now.
  const double now = static_cast<double>(::time(nullptr));
  CHECK(series_value(text, "process_start_time_seconds") <= now + 1);
  CHECK(series_value(text, "process_start_time_seconds") > now - 86'400);

  SUBCASE("open descriptors: exactly those of the process") {
    const double before = descriptors_open();
    CHECK(series_value(ServiceMetrics().render(), "process_open_fds") == before);
    std::vector<int> opened;
    for (int i = 0; i < 10; ++i)
      opened.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    CHECK(series_value(ServiceMetrics().render(), "process_open_fds") == before + 10);
    for (const int fd : opened)
      ::close(fd);
  }
}
