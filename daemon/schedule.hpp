#pragma once

#include "daemon/config.hpp"

#include <expected>
#include <string>
#include <string_view>

namespace retentiond {

// Parses "hourly", "daily", "weekly", "every DURATION" (e.g. "every 15m") or a 5-field cron
// expression ("0 3 * * *": minute hour day-of-month month day-of-week; lists, ranges and
// steps). Returns the reason on failure.
std::expected<Schedule, std::string> parse_schedule(std::string_view text);

}  // namespace retentiond
