#include "daemon/cutoff.hpp"

#include <algorithm>
#include <limits>

namespace retentiond {

namespace {

using namespace std::chrono;

// Parsed retentions stay within about 10000 years; anything beyond the representable range
// (only reachable with a hand-built Retention) saturates to the earliest instant, which
// expires nothing.
constexpr std::int64_t k_max_months = std::int64_t{12} * 30'000;

Instant subtract_fixed(Instant from, std::int64_t count, milliseconds unit) {
  const std::int64_t from_ms = from.time_since_epoch().count();
  const std::int64_t lowest = Instant::min().time_since_epoch().count();
  if (count > std::numeric_limits<std::int64_t>::max() / unit.count())
    return Instant::min();
  const std::int64_t span = count * unit.count();
  if (from_ms < lowest + span)
    return Instant::min();
  return Instant{milliseconds{from_ms - span}};
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

Instant subtract_months(Instant from, std::int64_t months) {
  if (months > k_max_months)
    return Instant::min();
  const sys_days midnight = floor<days>(from);
  const milliseconds time_of_day = from - midnight;
  const year_month_day ymd{midnight};
  const std::int64_t total = std::int64_t{static_cast<int>(ymd.year())} * 12 +
                             std::int64_t{static_cast<unsigned>(ymd.month())} - 1 - months;
  const std::int64_t new_year = floor_div(total, 12);
  if (new_year < static_cast<int>(year::min()))
    return Instant::min();
  const year_month target{year{static_cast<int>(new_year)},
                          month{static_cast<unsigned>(total - new_year * 12 + 1)}};
  // Clamp to the end of a shorter month: 03-31 minus one month is 02-28 (or 02-29).
  const std::chrono::day last =
      year_month_day_last{target.year(), month_day_last{target.month()}}.day();
  const year_month_day result{target.year(), target.month(), std::min(ymd.day(), last)};
  return sys_days{result} + time_of_day;
}

}  // namespace

Instant subtract_retention(Instant from, const Retention& retain) {
  const std::int64_t count = retain.count < 0 ? 0 : retain.count;
  switch (retain.unit) {
  case CalendarUnit::seconds: return subtract_fixed(from, count, seconds{1});
  case CalendarUnit::minutes: return subtract_fixed(from, count, minutes{1});
  case CalendarUnit::hours: return subtract_fixed(from, count, hours{1});
  case CalendarUnit::days: return subtract_fixed(from, count, days{1});
  case CalendarUnit::weeks: return subtract_fixed(from, count, weeks{1});
  case CalendarUnit::months: return subtract_months(from, count);
  case CalendarUnit::years:
    return count > k_max_months / 12 ? Instant::min() : subtract_months(from, count * 12);
  }
  return from;
}

Instant cutoff_for(Instant now, const Retention& retain) {
  return subtract_retention(now, retain);
}

}  // namespace retentiond
