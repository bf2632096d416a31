// When the service runs a rule next: intervals from the last run, cron expressions in UTC.
#include "daemon/schedule.hpp"
#include "daemon/timestamp.hpp"

#include <doctest/doctest.h>

#include <string>

using retentiond::Instant;

namespace {

Instant at(const std::string& iso) {
  auto parsed = retentiond::parse_iso8601(iso);
  REQUIRE(parsed);
  return *parsed;
}

// The next run after a last run at `last` (ISO 8601), as ISO 8601.
std::string next_after(const std::string& schedule_text, const std::string& last) {
  auto schedule = retentiond::parse_schedule(schedule_text);
  REQUIRE(schedule);
  const Instant now = at("2030-01-01T00:00:00Z");
  return retentiond::format_iso8601(retentiond::next_run_time(*schedule, at(last), now));
}

}  // namespace

TEST_CASE("schedule: a rule that never ran is due now") {
  const auto schedule = retentiond::parse_schedule("0 3 * * *");
  REQUIRE(schedule);
  const Instant now = at("2026-11-23T10:00:00Z");
  CHECK(retentiond::next_run_time(*schedule, std::nullopt, now) == now);
}

TEST_CASE("schedule: intervals count from the last run's start") {
  CHECK(next_after("hourly", "2026-11-23T10:17:05.250Z") == "2026-11-23T11:17:05.250Z");
  CHECK(next_after("daily", "2026-11-23T10:17:05Z") == "2026-11-24T10:17:05Z");
  CHECK(next_after("weekly", "2026-11-23T10:17:05Z") == "2026-11-30T10:17:05Z");
  CHECK(next_after("every 15m", "2026-11-23T10:17:05Z") == "2026-11-23T10:32:05Z");
}

TEST_CASE("schedule: cron expressions name the next matching minute, in UTC") {
  CHECK(next_after("0 3 * * *", "2026-11-23T10:00:00Z") == "2026-11-24T03:00:00Z");
  CHECK(next_after("0 3 * * *", "2026-11-23T02:59:59Z") == "2026-11-23T03:00:00Z");
  // A run that started exactly on time is not run again in the same minute.
  CHECK(next_after("0 3 * * *", "2026-11-23T03:00:00Z") == "2026-11-24T03:00:00Z");
  CHECK(next_after("*/15 * * * *", "2026-11-23T10:07:00Z") == "2026-11-23T10:15:00Z");
  CHECK(next_after("5/15 * * * *", "2026-11-23T10:21:00Z") == "2026-11-23T10:35:00Z");
  CHECK(next_after("30 1-3 * * *", "2026-11-23T03:31:00Z") == "2026-11-24T01:30:00Z");
  CHECK(next_after("0 0 1,15 * *", "2026-11-02T00:00:00Z") == "2026-11-15T00:00:00Z");
  CHECK(next_after("0 0 1 */3 *", "2026-11-02T00:00:00Z") == "2027-01-01T00:00:00Z");
  // 2026-11-23 is a Monday. Day of week 0 and 7 are both Sunday.
  CHECK(next_after("0 4 * * 0", "2026-11-23T10:00:00Z") == "2026-11-29T04:00:00Z");
  CHECK(next_after("0 4 * * 7", "2026-11-23T10:00:00Z") == "2026-11-29T04:00:00Z");
  CHECK(next_after("0 4 * * 1-5", "2026-11-27T10:00:00Z") == "2026-11-30T04:00:00Z");
  // Both day fields restricted: either one matching is enough (as in cron).
  CHECK(next_after("0 0 1 * 3", "2026-11-23T10:00:00Z") == "2026-11-25T00:00:00Z");
  CHECK(next_after("5/1 * * * *", "2026-11-23T10:21:00Z") == "2026-11-23T10:22:00Z");
  // 29 February: the next leap year; 2100 is not one.
  CHECK(next_after("0 0 29 2 *", "2026-11-23T10:00:00Z") == "2028-02-29T00:00:00Z");
  CHECK(next_after("0 0 29 2 *", "2096-02-29T00:00:00Z") == "2104-02-29T00:00:00Z");
  // A day of the month on a given weekday: years away.
  CHECK(next_after("0 0 1 2 */7", "2027-02-01T00:00:00Z") == "2032-02-01T00:00:00Z");
  // Both day fields restricted: 29 February or any Monday of February.
  CHECK(next_after("0 0 29 2 1", "2026-11-23T10:00:00Z") == "2027-02-01T00:00:00Z");
  CHECK(next_after("0 0 29 2 */6", "2026-11-23T10:00:00Z") == "2032-02-29T00:00:00Z");
}

TEST_CASE("schedule: an overdue rule is due in the past, so it runs at once") {
  auto schedule = retentiond::parse_schedule("hourly");
  REQUIRE(schedule);
  const Instant now = at("2026-11-23T10:00:00Z");
  CHECK(retentiond::next_run_time(*schedule, at("2026-11-20T10:00:00Z"), now) < now);
}
