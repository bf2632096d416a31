#include "daemon/duration.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <string>

using namespace retentiond;
using namespace std::chrono;

namespace {

Retention retention_of(std::string_view text) {
  const auto parsed = parse_retention(text);
  REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
  return *parsed;
}

std::string retention_error(std::string_view text) {
  const auto parsed = parse_retention(text);
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error();
}

milliseconds duration_of(std::string_view text) {
  const auto parsed = parse_duration(text);
  REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
  return *parsed;
}

std::string duration_error(std::string_view text) {
  const auto parsed = parse_duration(text);
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error();
}

Retention make(std::int64_t count, CalendarUnit unit) {
  Retention retention;
  retention.count = count;
  retention.unit = unit;
  return retention;
}

const std::string k_retention_units =
    "(expected seconds, minutes, hours, days, weeks, months or years)";
const std::string k_duration_units =
    "(expected ms, s, m, h, d, seconds, minutes, hours, days or weeks)";

}  // namespace

TEST_CASE("Retention::to_string") {
  SUBCASE("forever") {
    Retention forever;
    forever.forever = true;
    CHECK(forever.to_string() == "forever");
  }
  SUBCASE("singular") {
    CHECK(make(1, CalendarUnit::years).to_string() == "1 year");
    CHECK(make(1, CalendarUnit::months).to_string() == "1 month");
    CHECK(make(1, CalendarUnit::seconds).to_string() == "1 second");
  }
  SUBCASE("plural") {
    CHECK(make(12, CalendarUnit::months).to_string() == "12 months");
    CHECK(make(2, CalendarUnit::weeks).to_string() == "2 weeks");
    CHECK(make(90, CalendarUnit::minutes).to_string() == "90 minutes");
    CHECK(make(36, CalendarUnit::hours).to_string() == "36 hours");
  }
  SUBCASE("zero is plural") {
    CHECK(make(0, CalendarUnit::days).to_string() == "0 days");
  }
}

TEST_CASE("parse_retention accepts long forms") {
  SUBCASE("forever") {
    CHECK(retention_of("forever").forever);
  }
  SUBCASE("every unit, plural and singular") {
    CHECK(retention_of("30 seconds") == make(30, CalendarUnit::seconds));
    CHECK(retention_of("1 second") == make(1, CalendarUnit::seconds));
    CHECK(retention_of("15 minutes") == make(15, CalendarUnit::minutes));
    CHECK(retention_of("1 minute") == make(1, CalendarUnit::minutes));
    CHECK(retention_of("48 hours") == make(48, CalendarUnit::hours));
    CHECK(retention_of("1 hour") == make(1, CalendarUnit::hours));
    CHECK(retention_of("90 days") == make(90, CalendarUnit::days));
    CHECK(retention_of("1 day") == make(1, CalendarUnit::days));
    CHECK(retention_of("2 weeks") == make(2, CalendarUnit::weeks));
    CHECK(retention_of("1 week") == make(1, CalendarUnit::weeks));
    CHECK(retention_of("12 months") == make(12, CalendarUnit::months));
    CHECK(retention_of("1 month") == make(1, CalendarUnit::months));
    CHECK(retention_of("7 years") == make(7, CalendarUnit::years));
    CHECK(retention_of("1 year") == make(1, CalendarUnit::years));
  }
  SUBCASE("zero") {
    CHECK(retention_of("0 days") == make(0, CalendarUnit::days));
  }
  SUBCASE("grammatical number is not enforced") {
    CHECK(retention_of("1 months") == make(1, CalendarUnit::months));
  }
  SUBCASE("several spaces") {
    CHECK(retention_of("12   months") == make(12, CalendarUnit::months));
  }
  SUBCASE("surrounding whitespace") {
    CHECK(retention_of("  12 months ") == make(12, CalendarUnit::months));
  }
  SUBCASE("leading zeros") {
    CHECK(retention_of("007 days") == make(7, CalendarUnit::days));
  }
  SUBCASE("largest") {
    CHECK(retention_of("10000 years") == make(10000, CalendarUnit::years));
  }
  SUBCASE("round trip through to_string") {
    for (const char* text : {"1 year", "12 months", "0 days", "forever", "1 week", "5 seconds"})
      CHECK(retention_of(text).to_string() == text);
  }
}

TEST_CASE("parse_retention refuses") {
  SUBCASE("empty") {
    CHECK(retention_error("") ==
          "retention is empty (expected e.g. '30 days', '12 months' or 'forever')");
  }
  SUBCASE("blank") {
    CHECK(retention_error("   ") ==
          "retention is empty (expected e.g. '30 days', '12 months' or 'forever')");
  }
  SUBCASE("words") {
    CHECK(retention_error("a year") ==
          "'a year' is not a retention period (expected e.g. '30 days', '12 months' or 'forever')");
  }
  SUBCASE("capitalised forever") {
    CHECK(
        retention_error("Forever") ==
        "'Forever' is not a retention period (expected e.g. '30 days', '12 months' or 'forever')");
  }
  SUBCASE("plus sign") {
    CHECK(
        retention_error("+5 days") ==
        "'+5 days' is not a retention period (expected e.g. '30 days', '12 months' or 'forever')");
  }
  SUBCASE("negative") {
    CHECK(retention_error("-5 days") == "'-5 days' is negative");
  }
  SUBCASE("fractional") {
    CHECK(retention_error("1.5 years") ==
          "'1.5 years' is fractional (use a whole number of a smaller unit)");
  }
  SUBCASE("fractional with a comma") {
    CHECK(retention_error("1,5 years") ==
          "'1,5 years' is fractional (use a whole number of a smaller unit)");
  }
  SUBCASE("overflows int64") {
    CHECK(retention_error("99999999999999999999 days") ==
          "'99999999999999999999 days' is too large");
  }
  SUBCASE("beyond the calendar") {
    CHECK(retention_error("10001 years") ==
          "'10001 years' is too large (at most about 10000 years; use 'forever')");
  }
  SUBCASE("too many months") {
    CHECK(retention_error("120001 months") ==
          "'120001 months' is too large (at most about 10000 years; use 'forever')");
  }
  SUBCASE("no unit") {
    CHECK(retention_error("12") == "'12' has no unit (expected e.g. '12 days')");
  }
  SUBCASE("unknown unit") {
    CHECK(retention_error("2 fortnights") == "unknown unit 'fortnights' " + k_retention_units);
  }
  SUBCASE("capitalised unit") {
    CHECK(retention_error("12 Months") == "unknown unit 'Months' " + k_retention_units);
  }
  SUBCASE("trailing words") {
    CHECK(retention_error("12 months ago") == "unknown unit 'months ago' " + k_retention_units);
  }
  SUBCASE("m is ambiguous") {
    CHECK(retention_error("12m") == "'12m' is ambiguous: write '12 minutes' or '12 months'");
  }
  SUBCASE("m with a space is ambiguous too") {
    CHECK(retention_error("12 m") == "'12 m' is ambiguous: write '12 minutes' or '12 months'");
  }
  SUBCASE("short s") {
    CHECK(retention_error("30s") == "'30s' is a short form: write '30 seconds'");
  }
  SUBCASE("short h") {
    CHECK(retention_error("1h") == "'1h' is a short form: write '1 hour'");
  }
  SUBCASE("short d") {
    CHECK(retention_error("90d") == "'90d' is a short form: write '90 days'");
  }
  SUBCASE("short w") {
    CHECK(retention_error("2w") == "'2w' is a short form: write '2 weeks'");
  }
  SUBCASE("short y") {
    CHECK(retention_error("7y") == "'7y' is a short form: write '7 years'");
  }
  SUBCASE("milliseconds") {
    CHECK(retention_error("50ms") == "unknown unit 'ms' " + k_retention_units);
  }
  SUBCASE("long form without a space") {
    CHECK(retention_error("12months") == "'12months' needs a space: write '12 months'");
  }
}

TEST_CASE("parse_duration accepts short forms") {
  SUBCASE("ms") {
    CHECK(duration_of("50ms") == 50ms);
  }
  SUBCASE("s") {
    CHECK(duration_of("5s") == 5s);
  }
  SUBCASE("m means minutes") {
    CHECK(duration_of("15m") == 15min);
  }
  SUBCASE("h") {
    CHECK(duration_of("1h") == 1h);
  }
  SUBCASE("d") {
    CHECK(duration_of("2d") == days{2});
  }
  SUBCASE("zero") {
    CHECK(duration_of("0s") == 0ms);
  }
  SUBCASE("surrounding whitespace") {
    CHECK(duration_of(" 5s ") == 5s);
  }
}

TEST_CASE("parse_duration accepts long forms") {
  SUBCASE("seconds") {
    CHECK(duration_of("5 seconds") == 5s);
  }
  SUBCASE("second") {
    CHECK(duration_of("1 second") == 1s);
  }
  SUBCASE("minute") {
    CHECK(duration_of("1 minute") == 1min);
  }
  SUBCASE("minutes") {
    CHECK(duration_of("10 minutes") == 10min);
  }
  SUBCASE("hours") {
    CHECK(duration_of("2 hours") == 2h);
  }
  SUBCASE("days") {
    CHECK(duration_of("3 days") == days{3});
  }
  SUBCASE("week") {
    CHECK(duration_of("1 week") == weeks{1});
  }
  SUBCASE("several spaces") {
    CHECK(duration_of("2   hours") == 2h);
  }
}

TEST_CASE("parse_duration refuses") {
  SUBCASE("empty") {
    CHECK(duration_error("") == "duration is empty (expected e.g. '50ms', '15m' or '15 minutes')");
  }
  SUBCASE("words") {
    CHECK(duration_error("soon") ==
          "'soon' is not a duration (expected e.g. '50ms', '15m' or '15 minutes')");
  }
  SUBCASE("unit without number") {
    CHECK(duration_error("s") ==
          "'s' is not a duration (expected e.g. '50ms', '15m' or '15 minutes')");
  }
  SUBCASE("negative") {
    CHECK(duration_error("-5s") == "'-5s' is negative");
  }
  SUBCASE("fractional") {
    CHECK(duration_error("1.5h") == "'1.5h' is fractional (use a whole number of a smaller unit)");
  }
  SUBCASE("number too large") {
    CHECK(duration_error("99999999999999999999s") == "'99999999999999999999s' is too large");
  }
  SUBCASE("milliseconds overflow") {
    CHECK(duration_error("9223372036854775807s") == "'9223372036854775807s' is too large");
  }
  SUBCASE("largest milliseconds") {
    CHECK(duration_of("9223372036854775807ms").count() == std::numeric_limits<std::int64_t>::max());
  }
  SUBCASE("no unit") {
    CHECK(duration_error("15") == "'15' has no unit (expected e.g. '15s' or '15 seconds')");
  }
  SUBCASE("unknown unit") {
    CHECK(duration_error("2 fortnights") == "unknown unit 'fortnights' " + k_duration_units);
  }
  SUBCASE("unknown short unit") {
    CHECK(duration_error("2w") == "unknown unit 'w' " + k_duration_units);
  }
  SUBCASE("uppercase short unit") {
    CHECK(duration_error("15M") == "unknown unit 'M' " + k_duration_units);
  }
  SUBCASE("months") {
    CHECK(duration_error("3 months") == "months and years are not allowed here (use days)");
  }
  SUBCASE("month") {
    CHECK(duration_error("1 month") == "months and years are not allowed here (use days)");
  }
  SUBCASE("years") {
    CHECK(duration_error("2 years") == "months and years are not allowed here (use days)");
  }
  SUBCASE("year") {
    CHECK(duration_error("1 year") == "months and years are not allowed here (use days)");
  }
  SUBCASE("short form with a space") {
    CHECK(duration_error("5 s") == "'5 s' has a space before a short unit: write '5s'");
  }
  SUBCASE("long form without a space") {
    CHECK(duration_error("5seconds") == "'5seconds' needs a space: write '5 seconds'");
  }
}

TEST_CASE("format_duration picks the shortest exact short form") {
  SUBCASE("zero") {
    CHECK(format_duration(0ms) == "0s");
  }
  SUBCASE("ms") {
    CHECK(format_duration(50ms) == "50ms");
  }
  SUBCASE("s") {
    CHECK(format_duration(5s) == "5s");
  }
  SUBCASE("not exact in seconds") {
    CHECK(format_duration(1500ms) == "1500ms");
  }
  SUBCASE("m") {
    CHECK(format_duration(15min) == "15m");
  }
  SUBCASE("not exact in minutes") {
    CHECK(format_duration(90s) == "90s");
  }
  SUBCASE("h") {
    CHECK(format_duration(1h) == "1h");
  }
  SUBCASE("not exact in hours") {
    CHECK(format_duration(90min) == "90m");
  }
  SUBCASE("d") {
    CHECK(format_duration(days{2}) == "2d");
  }
  SUBCASE("weeks are days") {
    CHECK(format_duration(weeks{1}) == "7d");
  }
  SUBCASE("not exact in days") {
    CHECK(format_duration(36h) == "36h");
  }
  SUBCASE("round trip") {
    for (const char* text : {"50ms", "5s", "15m", "1h", "2d", "1500ms", "90m"})
      CHECK(format_duration(duration_of(text)) == text);
  }
}
