#include "daemon/timestamp.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <string>

using namespace retentiond;
using namespace std::chrono;

namespace {

// Parses text that must be valid and returns the canonical UTC form.
std::string canonical(std::string_view text) {
  const auto parsed = parse_iso8601(text);
  REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
  return format_iso8601(*parsed);
}

std::string error_of(std::string_view text) {
  const auto parsed = parse_iso8601(text);
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error();
}

const std::string k_hint = "(expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)";

}  // namespace

TEST_CASE("format_iso8601") {
  SUBCASE("epoch") {
    CHECK(format_iso8601(Instant{}) == "1970-01-01T00:00:00Z");
  }
  SUBCASE("whole seconds have no fraction") {
    CHECK(format_iso8601(sys_days{2026y / November / 23} + 19h) == "2026-11-23T19:00:00Z");
  }
  SUBCASE("milliseconds only when non-zero") {
    CHECK(format_iso8601(sys_days{2026y / November / 23} + 19h + 250ms) ==
          "2026-11-23T19:00:00.250Z");
    CHECK(format_iso8601(sys_days{2026y / November / 23} + 1ms) == "2026-11-23T00:00:00.001Z");
  }
  SUBCASE("before 1970") {
    CHECK(format_iso8601(from_unix_millis(-1)) == "1969-12-31T23:59:59.999Z");
    CHECK(format_iso8601(sys_days{1900y / February / 28} + 23h + 59min) == "1900-02-28T23:59:00Z");
  }
  SUBCASE("four-digit years are zero padded") {
    CHECK(format_iso8601(sys_days{year{33} / January / 2}) == "0033-01-02T00:00:00Z");
  }
}

TEST_CASE("parse_iso8601 accepts the documented shapes") {
  SUBCASE("date only is midnight UTC") {
    CHECK(canonical("2024-02-29") == "2024-02-29T00:00:00Z");
  }
  SUBCASE("minutes") {
    CHECK(canonical("2024-02-29T13:45") == "2024-02-29T13:45:00Z");
  }
  SUBCASE("seconds") {
    CHECK(canonical("2024-02-29T13:45:07") == "2024-02-29T13:45:07Z");
  }
  SUBCASE("Z") {
    CHECK(canonical("2026-11-23T19:00:00Z") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("space separator") {
    CHECK(canonical("2026-11-23 19:00:00") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("fraction of one digit") {
    CHECK(canonical("2026-11-23T19:00:00.5Z") == "2026-11-23T19:00:00.500Z");
  }
  SUBCASE("fraction of three digits") {
    CHECK(canonical("2026-11-23T19:00:00.250Z") == "2026-11-23T19:00:00.250Z");
  }
  SUBCASE("fraction of nine digits is truncated, not rounded") {
    CHECK(canonical("2026-12-31T23:59:59.999999999Z") == "2026-12-31T23:59:59.999Z");
  }
  SUBCASE("zero fraction") {
    CHECK(canonical("2026-11-23T19:00:00.000Z") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("positive offset with colon") {
    CHECK(canonical("2026-11-23T20:00:00+01:00") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("negative offset with colon") {
    CHECK(canonical("2026-11-23T14:00:00-05:00") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("offset without colon") {
    CHECK(canonical("2026-11-23T20:30:00+0130") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("offset after minutes only") {
    CHECK(canonical("2026-11-23T20:00+01:00") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("offset after a fraction") {
    CHECK(canonical("2026-11-23T20:00:00.125+01:00") == "2026-11-23T19:00:00.125Z");
  }
  SUBCASE("offset crosses the date line backwards") {
    CHECK(canonical("2024-03-01T00:30:00+02:00") == "2024-02-29T22:30:00Z");
  }
  SUBCASE("offset crosses the year forwards") {
    CHECK(canonical("2025-12-31T23:00:00-02:00") == "2026-01-01T01:00:00Z");
  }
  SUBCASE("zero offsets") {
    CHECK(canonical("2026-11-23T19:00:00+00:00") == "2026-11-23T19:00:00Z");
    CHECK(canonical("2026-11-23T19:00:00-00:00") == "2026-11-23T19:00:00Z");
  }
  SUBCASE("largest offsets") {
    CHECK(canonical("2026-11-23T23:59:00+23:59") == "2026-11-23T00:00:00Z");
    CHECK(canonical("2026-11-23T00:00:00-23:59") == "2026-11-23T23:59:00Z");
  }
  SUBCASE("leap days") {
    CHECK(canonical("2000-02-29") == "2000-02-29T00:00:00Z");
    CHECK(canonical("2024-02-29") == "2024-02-29T00:00:00Z");
  }
  SUBCASE("month lengths") {
    CHECK(canonical("2026-01-31") == "2026-01-31T00:00:00Z");
    CHECK(canonical("2026-04-30") == "2026-04-30T00:00:00Z");
    CHECK(canonical("2026-12-31") == "2026-12-31T00:00:00Z");
    CHECK(canonical("2026-02-28") == "2026-02-28T00:00:00Z");
  }
  SUBCASE("end of day") {
    CHECK(canonical("2026-11-23T23:59:59") == "2026-11-23T23:59:59Z");
  }
  SUBCASE("before 1970") {
    CHECK(canonical("1969-07-20T20:17:40Z") == "1969-07-20T20:17:40Z");
  }
}

TEST_CASE("parse_iso8601 refuses malformed text") {
  const auto shape = [](std::string_view text) {
    return "'" + std::string{text} + "' is not an ISO 8601 timestamp " + k_hint;
  };
  SUBCASE("empty") {
    CHECK(error_of("") == shape(""));
  }
  SUBCASE("words") {
    CHECK(error_of("abc") == shape("abc"));
  }
  SUBCASE("unix seconds") {
    CHECK(error_of("1700000000") == shape("1700000000"));
  }
  SUBCASE("two-digit year") {
    CHECK(error_of("24-02-01") == shape("24-02-01"));
  }
  SUBCASE("one-digit month") {
    CHECK(error_of("2024-2-01") == shape("2024-2-01"));
  }
  SUBCASE("one-digit day") {
    CHECK(error_of("2024-02-1") == shape("2024-02-1"));
  }
  SUBCASE("slashes") {
    CHECK(error_of("2024/02/01") == shape("2024/02/01"));
  }
  SUBCASE("compact date") {
    CHECK(error_of("20240201") == shape("20240201"));
  }
  SUBCASE("leading space") {
    CHECK(error_of(" 2024-02-01") == shape(" 2024-02-01"));
  }
  SUBCASE("trailing space") {
    CHECK(error_of("2024-02-01 ") == shape("2024-02-01 "));
  }
  SUBCASE("two spaces") {
    CHECK(error_of("2024-02-01  10:00") == shape("2024-02-01  10:00"));
  }
  SUBCASE("lowercase t") {
    CHECK(error_of("2024-02-01t10:00") == shape("2024-02-01t10:00"));
  }
  SUBCASE("separator without time") {
    CHECK(error_of("2024-02-01T") == shape("2024-02-01T"));
  }
  SUBCASE("hour only") {
    CHECK(error_of("2024-02-01T10") == shape("2024-02-01T10"));
  }
  SUBCASE("one-digit hour") {
    CHECK(error_of("2024-02-01T1:00") == shape("2024-02-01T1:00"));
  }
  SUBCASE("one-digit second") {
    CHECK(error_of("2024-02-01T10:00:5") == shape("2024-02-01T10:00:5"));
  }
  SUBCASE("dot without fraction") {
    CHECK(error_of("2024-02-01T10:00:00.") == shape("2024-02-01T10:00:00."));
  }
  SUBCASE("ten fraction digits") {
    CHECK(error_of("2024-02-01T10:00:00.1234567890") == shape("2024-02-01T10:00:00.1234567890"));
  }
  SUBCASE("fraction without seconds") {
    CHECK(error_of("2024-02-01T10:00.5") == shape("2024-02-01T10:00.5"));
  }
  SUBCASE("offset on a bare date") {
    CHECK(error_of("2024-02-01Z") == shape("2024-02-01Z"));
  }
  SUBCASE("lowercase z") {
    CHECK(error_of("2024-02-01T10:00:00z") == shape("2024-02-01T10:00:00z"));
  }
  SUBCASE("hour-only offset") {
    CHECK(error_of("2024-02-01T10:00:00+01") == shape("2024-02-01T10:00:00+01"));
  }
  SUBCASE("short offset") {
    CHECK(error_of("2024-02-01T10:00:00+1:00") == shape("2024-02-01T10:00:00+1:00"));
  }
  SUBCASE("named zone") {
    CHECK(error_of("2024-02-01T10:00:00 UTC") == shape("2024-02-01T10:00:00 UTC"));
  }
  SUBCASE("text after Z") {
    CHECK(error_of("2024-02-01T10:00:00Zx") == shape("2024-02-01T10:00:00Zx"));
  }
  SUBCASE("Z after offset") {
    CHECK(error_of("2024-02-01T10:00:00+01:00Z") == shape("2024-02-01T10:00:00+01:00Z"));
  }
  SUBCASE("negative year") {
    CHECK(error_of("-2024-02-01") == shape("-2024-02-01"));
  }
  SUBCASE("five-digit year") {
    CHECK(error_of("12024-02-01") == shape("12024-02-01"));
  }
}

TEST_CASE("parse_iso8601 refuses out-of-range fields") {
  SUBCASE("month 0") {
    CHECK(error_of("2024-00-10") == "'2024-00-10' is not a valid date");
  }
  SUBCASE("month 13") {
    CHECK(error_of("2024-13-10") == "'2024-13-10' is not a valid date");
  }
  SUBCASE("day 0") {
    CHECK(error_of("2024-01-00") == "'2024-01-00' is not a valid date");
  }
  SUBCASE("january 32") {
    CHECK(error_of("2024-01-32") == "'2024-01-32' is not a valid date");
  }
  SUBCASE("april 31") {
    CHECK(error_of("2026-04-31") == "'2026-04-31' is not a valid date");
  }
  SUBCASE("february 30 in a leap year") {
    CHECK(error_of("2024-02-30") == "'2024-02-30' is not a valid date");
  }
  SUBCASE("february 29 in a common year") {
    CHECK(error_of("2026-02-29") == "'2026-02-29' is not a valid date");
  }
  SUBCASE("february 29 in 1900, which is not a leap year") {
    CHECK(error_of("1900-02-29") == "'1900-02-29' is not a valid date");
  }
  SUBCASE("the date is quoted alone when a time follows") {
    CHECK(error_of("2024-02-30T10:00:00Z") == "'2024-02-30' is not a valid date");
  }
  SUBCASE("hour 24") {
    CHECK(error_of("2024-02-01T24:00:00Z") == "'24:00:00' is not a valid time of day");
  }
  SUBCASE("minute 60") {
    CHECK(error_of("2024-02-01T10:60") == "'10:60' is not a valid time of day");
  }
  SUBCASE("second 60") {
    CHECK(error_of("2016-12-31T23:59:60Z") ==
          "'23:59:60' is not a valid time of day (leap seconds are not supported)");
  }
  SUBCASE("second 61") {
    CHECK(error_of("2024-02-01T10:00:61") == "'10:00:61' is not a valid time of day");
  }
  SUBCASE("offset hour 24") {
    CHECK(error_of("2024-02-01T10:00:00+24:00") == "'+24:00' is not a valid UTC offset");
  }
  SUBCASE("offset minute 60") {
    CHECK(error_of("2024-02-01T10:00:00-0160") == "'-0160' is not a valid UTC offset");
  }
}

TEST_CASE("unix conversions") {
  SUBCASE("round trips") {
    CHECK(to_unix_seconds(from_unix_seconds(1'700'000'000)) == 1'700'000'000);
    CHECK(to_unix_millis(from_unix_millis(1'700'000'000'123)) == 1'700'000'000'123);
    CHECK(to_unix_millis(from_unix_seconds(-5)) == -5000);
  }
  SUBCASE("epoch") {
    CHECK(to_unix_seconds(Instant{}) == 0);
    CHECK(format_iso8601(from_unix_seconds(0)) == "1970-01-01T00:00:00Z");
  }
  SUBCASE("known instant") {
    const auto parsed = parse_iso8601("2026-11-23T19:00:00.250Z");
    REQUIRE(parsed);
    CHECK(to_unix_seconds(*parsed) == 1'795'460'400);
    CHECK(to_unix_millis(*parsed) == 1'795'460'400'250);
  }
  SUBCASE("seconds floor towards the past for negative values") {
    CHECK(to_unix_seconds(from_unix_millis(-1)) == -1);
    CHECK(to_unix_seconds(from_unix_millis(-1000)) == -1);
    CHECK(to_unix_seconds(from_unix_millis(-1001)) == -2);
    CHECK(to_unix_seconds(from_unix_millis(999)) == 0);
  }
  SUBCASE("huge seconds saturate instead of overflowing") {
    CHECK(from_unix_seconds(std::numeric_limits<std::int64_t>::max()) == Instant::max());
    CHECK(from_unix_seconds(std::numeric_limits<std::int64_t>::min()) == Instant::min());
  }
}

TEST_CASE("now_utc is close to the system clock") {
  const auto before = system_clock::now();
  const Instant now = now_utc();
  const auto after = system_clock::now();
  CHECK(now >= floor<milliseconds>(before));
  CHECK(now <= ceil<milliseconds>(after));
}
