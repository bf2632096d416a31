#include "daemon/timestamp.hpp"

#include <algorithm>

#include <spdlog/fmt/fmt.h>

#include <limits>
#include <optional>

namespace retentiond {

namespace {

using namespace std::chrono;

constexpr std::string_view k_shape_hint = "(expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)";
constexpr int k_max_fraction_digits = 9;

// A forward-only reader over the text; every accessor refuses rather than guesses.
class Cursor {
public:
  explicit Cursor(std::string_view text) : m_text(text) {}

  bool at_end() const { return m_pos == m_text.size(); }
  std::size_t pos() const { return m_pos; }
  std::string_view slice(std::size_t from, std::size_t to) const {
    return m_text.substr(from, to - from);
  }

  bool peek(char c) const { return m_pos < m_text.size() && m_text[m_pos] == c; }
  bool peek_digit() const { return m_pos < m_text.size() && is_digit(m_text[m_pos]); }

  bool accept(char c) {
    if (!peek(c))
      return false;
    ++m_pos;
    return true;
  }

  // Exactly `width` decimal digits.
  std::optional<int> digits(int width) {
    int value = 0;
    for (int i = 0; i < width; ++i) {
      if (!peek_digit())
        return std::nullopt;
      value = value * 10 + (m_text[m_pos] - '0');
      ++m_pos;
    }
    return value;
  }

private:
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  std::string_view m_text;
  std::size_t m_pos = 0;
};

struct Fields {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  int millis = 0;
  int offset_minutes = 0;  // east of UTC
  std::string_view date_text;
  std::string_view time_text;    // "HH:MM" or "HH:MM:SS", empty for a bare date
  std::string_view offset_text;  // "+HH:MM", "+HHMM", empty for none or "Z"
  int offset_hours = 0;
  int offset_mins = 0;
};

// Reads the grammar only; ranges are checked afterwards so the message can say which part is off.
std::optional<Fields> scan(std::string_view text) {
  Cursor in{text};
  Fields f;
  auto year = in.digits(4);
  if (!year || !in.accept('-'))
    return std::nullopt;
  auto month = in.digits(2);
  if (!month || !in.accept('-'))
    return std::nullopt;
  auto day = in.digits(2);
  if (!day)
    return std::nullopt;
  f.year = *year;
  f.month = *month;
  f.day = *day;
  f.date_text = in.slice(0, in.pos());
  if (in.at_end())
    return f;

  if (!in.accept('T') && !in.accept(' '))
    return std::nullopt;
  const std::size_t time_start = in.pos();
  auto hour = in.digits(2);
  if (!hour || !in.accept(':'))
    return std::nullopt;
  auto minute = in.digits(2);
  if (!minute)
    return std::nullopt;
  f.hour = *hour;
  f.minute = *minute;
  if (in.accept(':')) {
    auto second = in.digits(2);
    if (!second)
      return std::nullopt;
    f.second = *second;
    f.time_text = in.slice(time_start, in.pos());
    if (in.accept('.')) {
      // Digits past the millisecond are dropped, not rounded: rounding could move into the next
      // day.
      int count = 0;
      int scale = 100;
      while (in.peek_digit()) {
        const auto digit = in.digits(1);
        if (++count > k_max_fraction_digits)
          return std::nullopt;
        f.millis += *digit * scale;
        scale /= 10;
      }
      if (count == 0)
        return std::nullopt;
    }
  } else {
    f.time_text = in.slice(time_start, in.pos());
  }

  if (in.accept('Z'))
    return in.at_end() ? std::optional{f} : std::nullopt;
  if (in.peek('+') || in.peek('-')) {
    const std::size_t offset_start = in.pos();
    const int sign = in.peek('-') ? -1 : 1;
    in.accept(in.peek('-') ? '-' : '+');
    auto offset_hours = in.digits(2);
    if (!offset_hours)
      return std::nullopt;
    in.accept(':');
    auto offset_mins = in.digits(2);
    if (!offset_mins)
      return std::nullopt;
    f.offset_hours = *offset_hours;
    f.offset_mins = *offset_mins;
    f.offset_minutes = sign * (*offset_hours * 60 + *offset_mins);
    f.offset_text = in.slice(offset_start, in.pos());
  }
  return in.at_end() ? std::optional{f} : std::nullopt;
}

}  // namespace

Instant now_utc() {
  return time_point_cast<milliseconds>(system_clock::now());
}

std::string format_iso8601(Instant instant) {
  const sys_days midnight = floor<days>(instant);
  const year_month_day ymd{midnight};
  const hh_mm_ss<milliseconds> tod{instant - midnight};
  const int y = static_cast<int>(ymd.year());
  std::string text =
      fmt::format("{}{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", y < 0 ? "-" : "", y < 0 ? -y : y,
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  tod.hours().count(), tod.minutes().count(), tod.seconds().count());
  if (tod.subseconds().count() != 0)
    text += fmt::format(".{:03}", tod.subseconds().count());
  text += 'Z';
  return text;
}

std::expected<Instant, std::string> parse_iso8601(std::string_view text) {
  const auto fields = scan(text);
  if (!fields)
    return std::unexpected(fmt::format("'{}' is not an ISO 8601 timestamp {}", text, k_shape_hint));
  const Fields& f = *fields;

  const year_month_day ymd{year{f.year}, month{static_cast<unsigned>(f.month)},
                           day{static_cast<unsigned>(f.day)}};
  if (!ymd.ok())
    return std::unexpected(fmt::format("'{}' is not a valid date", f.date_text));
  if (f.second == 60)
    return std::unexpected(fmt::format(
        "'{}' is not a valid time of day (leap seconds are not supported)", f.time_text));
  if (f.hour > 23 || f.minute > 59 || f.second > 59)
    return std::unexpected(fmt::format("'{}' is not a valid time of day", f.time_text));
  if (f.offset_hours > 23 || f.offset_mins > 59)
    return std::unexpected(fmt::format("'{}' is not a valid UTC offset", f.offset_text));

  const Instant local = sys_days{ymd} + hours{f.hour} + minutes{f.minute} + seconds{f.second} +
                        milliseconds{f.millis};
  // The offset says how far local time is ahead of UTC.
  return local - minutes{f.offset_minutes};
}

std::int64_t to_unix_seconds(Instant instant) {
  return floor<seconds>(instant).time_since_epoch().count();
}

std::int64_t to_unix_millis(Instant instant) {
  return instant.time_since_epoch().count();
}

Instant from_unix_seconds(std::int64_t value) {
  // Saturate instead of overflowing the millisecond representation.
  constexpr std::int64_t k_limit = std::numeric_limits<std::int64_t>::max() / 1000;
  if (value > k_limit)
    return Instant::max();
  if (value < -k_limit)
    return Instant::min();
  return Instant{seconds{value}};
}

Instant from_unix_millis(std::int64_t millis) {
  return Instant{milliseconds{millis}};
}

Instant from_unix_millis_in_calendar(std::int64_t millis) {
  constexpr std::int64_t k_year_1 = -62'135'596'800'000;          // 0001-01-01T00:00:00Z
  constexpr std::int64_t k_year_10000 = 253'402'300'800'000 - 1;  // 9999-12-31T23:59:59.999Z
  return from_unix_millis(std::clamp(millis, k_year_1, k_year_10000));
}

}  // namespace retentiond
