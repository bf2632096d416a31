#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace retentiond {

// The unit of a retention period. Months and years are calendar units, not fixed lengths.
enum class CalendarUnit { seconds, minutes, hours, days, weeks, months, years };

// A retention period as written in a rule: "12 months", "0 days", or forever.
struct Retention {
  bool forever = false;
  std::int64_t count = 0;  // >= 0; unused when forever
  CalendarUnit unit = CalendarUnit::days;

  // The canonical text: "12 months", "1 year", "0 days", "forever".
  std::string to_string() const;
  bool operator==(const Retention&) const = default;
};

// Parses "N seconds|minutes|hours|days|weeks|months|years" (singular allowed, one space or more
// between number and unit) or "forever". Short forms (ms, s, m, h, d) are refused here: "m" is
// ambiguous between minutes and months, which is exactly the mistake a retention rule must not
// make. Returns the reason on failure, e.g. "unknown unit 'fortnights'".
std::expected<Retention, std::string> parse_retention(std::string_view text);

// Parses an operational duration: "50ms", "5s", "15m", "1h", "2d", or the long forms
// ("5 seconds", "10 minutes", ...; no months or years). Returns the reason on failure.
std::expected<std::chrono::milliseconds, std::string> parse_duration(std::string_view text);

// "50ms", "5s", "15m", "1h", "2d" — the shortest exact short form.
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace retentiond
