#include "daemon/cutoff.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <string>

using namespace retentiond;

namespace {

Instant at(std::string_view text) {
  const auto parsed = parse_iso8601(text);
  REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
  return *parsed;
}

Retention make(std::int64_t count, CalendarUnit unit) {
  Retention retention;
  retention.count = count;
  retention.unit = unit;
  return retention;
}

// `from` minus `count unit`, formatted.
std::string minus(std::string_view from, std::int64_t count, CalendarUnit unit) {
  return format_iso8601(subtract_retention(at(from), make(count, unit)));
}

}  // namespace

TEST_CASE("months clamp to the end of a shorter month") {
  SUBCASE("31 to 28 in a common year") {
    CHECK(minus("2026-03-31", 1, CalendarUnit::months) == "2026-02-28T00:00:00Z");
  }
  SUBCASE("31 to 29 in a leap year") {
    CHECK(minus("2024-03-31", 1, CalendarUnit::months) == "2024-02-29T00:00:00Z");
  }
  SUBCASE("30 to 28") {
    CHECK(minus("2026-03-30", 1, CalendarUnit::months) == "2026-02-28T00:00:00Z");
  }
  SUBCASE("29 to 28") {
    CHECK(minus("2026-03-29", 1, CalendarUnit::months) == "2026-02-28T00:00:00Z");
  }
  SUBCASE("28 stays 28") {
    CHECK(minus("2026-03-28", 1, CalendarUnit::months) == "2026-02-28T00:00:00Z");
  }
  SUBCASE("31 to 30") {
    CHECK(minus("2026-05-31", 1, CalendarUnit::months) == "2026-04-30T00:00:00Z");
  }
  SUBCASE("31 to 31") {
    CHECK(minus("2026-08-31", 1, CalendarUnit::months) == "2026-07-31T00:00:00Z");
  }
  SUBCASE("30 to 30 keeps the day although the source month is short") {
    CHECK(minus("2026-04-30", 1, CalendarUnit::months) == "2026-03-30T00:00:00Z");
  }
  SUBCASE("february 28 to january 28, not the end of january") {
    CHECK(minus("2026-02-28", 1, CalendarUnit::months) == "2026-01-28T00:00:00Z");
  }
  SUBCASE("31 to 30 across several months") {
    CHECK(minus("2026-12-31", 3, CalendarUnit::months) == "2026-09-30T00:00:00Z");
  }
  SUBCASE("1900 is not a leap year") {
    CHECK(minus("1900-03-31", 1, CalendarUnit::months) == "1900-02-28T00:00:00Z");
  }
  SUBCASE("2000 is a leap year") {
    CHECK(minus("2000-03-31", 1, CalendarUnit::months) == "2000-02-29T00:00:00Z");
  }
  SUBCASE("2100 is not a leap year") {
    CHECK(minus("2100-03-31", 1, CalendarUnit::months) == "2100-02-28T00:00:00Z");
  }
}

TEST_CASE("months cross year boundaries") {
  SUBCASE("january minus one month") {
    CHECK(minus("2026-01-15", 1, CalendarUnit::months) == "2025-12-15T00:00:00Z");
  }
  SUBCASE("twelve months is one year") {
    CHECK(minus("2026-01-15", 12, CalendarUnit::months) == "2025-01-15T00:00:00Z");
  }
  SUBCASE("thirteen months") {
    CHECK(minus("2026-01-15", 13, CalendarUnit::months) == "2024-12-15T00:00:00Z");
  }
  SUBCASE("twenty-four months") {
    CHECK(minus("2026-12-31", 24, CalendarUnit::months) == "2024-12-31T00:00:00Z");
  }
  SUBCASE("twenty-three months to a leap february") {
    CHECK(minus("2026-01-31", 23, CalendarUnit::months) == "2024-02-29T00:00:00Z");
  }
  SUBCASE("zero months") {
    CHECK(minus("2026-03-31T12:00:00Z", 0, CalendarUnit::months) == "2026-03-31T12:00:00Z");
  }
}

TEST_CASE("years from february 29") {
  SUBCASE("one year clamps to february 28") {
    CHECK(minus("2024-02-29", 1, CalendarUnit::years) == "2023-02-28T00:00:00Z");
  }
  SUBCASE("four years lands on another leap day") {
    CHECK(minus("2024-02-29", 4, CalendarUnit::years) == "2020-02-29T00:00:00Z");
  }
  SUBCASE("2000 minus 100 years clamps, 1900 is not leap") {
    CHECK(minus("2000-02-29", 100, CalendarUnit::years) == "1900-02-28T00:00:00Z");
  }
  SUBCASE("2400 minus 400 years stays on february 29") {
    CHECK(minus("2400-02-29", 400, CalendarUnit::years) == "2000-02-29T00:00:00Z");
  }
  SUBCASE("to a leap year from a common year keeps february 28") {
    CHECK(minus("2025-02-28", 1, CalendarUnit::years) == "2024-02-28T00:00:00Z");
  }
  SUBCASE("ordinary date") {
    CHECK(minus("2026-11-23", 7, CalendarUnit::years) == "2019-11-23T00:00:00Z");
  }
  SUBCASE("zero years") {
    CHECK(minus("2024-02-29", 0, CalendarUnit::years) == "2024-02-29T00:00:00Z");
  }
}

TEST_CASE("time of day and milliseconds are kept") {
  SUBCASE("months") {
    CHECK(minus("2026-03-31T23:59:59.999Z", 1, CalendarUnit::months) == "2026-02-28T23:59:59.999Z");
  }
  SUBCASE("years") {
    CHECK(minus("2024-02-29T06:30:15.250Z", 1, CalendarUnit::years) == "2023-02-28T06:30:15.250Z");
  }
  SUBCASE("an offset is applied before the calendar arithmetic (UTC, no DST)") {
    // 2026-04-01T00:30+02:00 is 2026-03-31T22:30Z, so the month end clamps.
    CHECK(minus("2026-04-01T00:30:00+02:00", 1, CalendarUnit::months) == "2026-02-28T22:30:00Z");
  }
  SUBCASE("a European DST change does not shift fixed units") {
    // Clocks went forward in Europe on 2026-03-29; in UTC a day is always 24 hours.
    CHECK(minus("2026-03-30T01:00:00Z", 1, CalendarUnit::days) == "2026-03-29T01:00:00Z");
    CHECK(minus("2026-03-30T01:00:00Z", 24, CalendarUnit::hours) == "2026-03-29T01:00:00Z");
  }
}

TEST_CASE("fixed units") {
  SUBCASE("seconds") {
    CHECK(minus("2026-01-01T00:00:00Z", 1, CalendarUnit::seconds) == "2025-12-31T23:59:59Z");
  }
  SUBCASE("minutes") {
    CHECK(minus("2026-01-01T00:00:00Z", 90, CalendarUnit::minutes) == "2025-12-31T22:30:00Z");
  }
  SUBCASE("hours") {
    CHECK(minus("2026-01-01T00:00:00Z", 48, CalendarUnit::hours) == "2025-12-30T00:00:00Z");
  }
  SUBCASE("days cross a leap day") {
    CHECK(minus("2024-03-01", 1, CalendarUnit::days) == "2024-02-29T00:00:00Z");
  }
  SUBCASE("days cross a common february") {
    CHECK(minus("2026-03-01", 1, CalendarUnit::days) == "2026-02-28T00:00:00Z");
  }
  SUBCASE("30 days is not a month") {
    CHECK(minus("2026-03-31", 30, CalendarUnit::days) == "2026-03-01T00:00:00Z");
  }
  SUBCASE("365 days in a leap year is not a year") {
    CHECK(minus("2024-12-31", 365, CalendarUnit::days) == "2024-01-01T00:00:00Z");
  }
  SUBCASE("zero days") {
    CHECK(minus("2026-11-23T19:00:00.250Z", 0, CalendarUnit::days) == "2026-11-23T19:00:00.250Z");
  }
  SUBCASE("one week") {
    CHECK(minus("2026-03-04", 1, CalendarUnit::weeks) == "2026-02-25T00:00:00Z");
  }
  SUBCASE("weeks are seven days") {
    CHECK(subtract_retention(at("2026-11-23"), make(3, CalendarUnit::weeks)) ==
          subtract_retention(at("2026-11-23"), make(21, CalendarUnit::days)));
  }
  SUBCASE("milliseconds kept") {
    CHECK(minus("2026-01-01T00:00:00.001Z", 1, CalendarUnit::seconds) ==
          "2025-12-31T23:59:59.001Z");
  }
}

TEST_CASE("around and before the epoch") {
  SUBCASE("one second before the epoch") {
    CHECK(minus("1970-01-01T00:00:00Z", 1, CalendarUnit::seconds) == "1969-12-31T23:59:59Z");
    CHECK(to_unix_seconds(subtract_retention(Instant{}, make(1, CalendarUnit::seconds))) == -1);
  }
  SUBCASE("one day before the epoch") {
    CHECK(to_unix_seconds(subtract_retention(Instant{}, make(1, CalendarUnit::days))) == -86'400);
  }
  SUBCASE("one month before the epoch") {
    CHECK(minus("1970-01-01", 1, CalendarUnit::months) == "1969-12-01T00:00:00Z");
  }
  SUBCASE("month clamping before the epoch") {
    CHECK(minus("1969-03-31T12:00:00Z", 1, CalendarUnit::months) == "1969-02-28T12:00:00Z");
  }
  SUBCASE("negative instants keep their time of day") {
    CHECK(minus("1969-12-31T23:59:59.500Z", 1, CalendarUnit::years) == "1968-12-31T23:59:59.500Z");
  }
  SUBCASE("into the 1800s") {
    CHECK(minus("2000-02-29", 200, CalendarUnit::years) == "1800-02-28T00:00:00Z");
  }
  SUBCASE("the largest parsed retention stays on the calendar") {
    CHECK(minus("2026-11-23", 10000, CalendarUnit::years) == "-7974-11-23T00:00:00Z");
  }
  SUBCASE("hand-built retentions beyond the calendar saturate") {
    CHECK(subtract_retention(at("2026-11-23"), make(1'000'000, CalendarUnit::years)) ==
          Instant::min());
    CHECK(subtract_retention(at("2026-11-23"), make(std::numeric_limits<std::int64_t>::max(),
                                                    CalendarUnit::weeks)) == Instant::min());
  }
}

TEST_CASE("cutoff_for is the instant the retention period starts") {
  const Instant now = at("2026-03-31T08:00:00Z");
  CHECK(format_iso8601(cutoff_for(now, make(1, CalendarUnit::months))) == "2026-02-28T08:00:00Z");
  CHECK(cutoff_for(now, make(0, CalendarUnit::days)) == now);
  CHECK(cutoff_for(now, make(90, CalendarUnit::days)) ==
        subtract_retention(now, make(90, CalendarUnit::days)));
}
