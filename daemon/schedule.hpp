#pragma once

#include "daemon/config.hpp"
#include "daemon/timestamp.hpp"

#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace retentiond {

// Parses "hourly", "daily", "weekly", "every DURATION" (e.g. "every 15m") or a 5-field cron
// expression ("0 3 * * *": minute hour day-of-month month day-of-week; lists, ranges and
// steps). Returns the reason on failure.
std::expected<Schedule, std::string> parse_schedule(std::string_view text);

// When a rule whose last run started at `last_run` runs next: `interval` later, or (cron) at the
// first matching minute after it, in UTC. Never run before: at once (`now`). A time in the past
// means the run is overdue (the daemon was down): it runs at once.
Instant next_run_time(const Schedule& schedule, std::optional<Instant> last_run, Instant now);

}  // namespace retentiond
